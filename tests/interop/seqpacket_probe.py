"""Probes a virtual HID socket as whoever runs it (tests/service_virtual.rs runs it under
`setpriv --reuid`): connects, sends CTAPHID_INIT on the broadcast channel and prints one word:

  answered        an INIT response with our nonce came back
  closed          the device end closed the connection without answering
  connect-failed  connect(2) failed (the errno follows)

Standard library only, so that any uid can run it with the system python.
"""

import os
import socket
import sys

REPORT = 64


def main():
    path = sys.argv[1]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(10)
    try:
        sock.connect(path)
    except OSError as e:
        print(f"connect-failed {e.errno}")
        return
    nonce = os.urandom(8)
    init = b"\xff\xff\xff\xff\x86\x00\x08" + nonce
    try:
        sock.send(init.ljust(REPORT, b"\0"))
        data = sock.recv(REPORT)
    except (BrokenPipeError, ConnectionResetError):
        print("closed")
        return
    if not data:
        print("closed")
    elif data[:5] == b"\xff\xff\xff\xff\x86" and data[7:15] == nonce:
        print("answered")
    else:
        print(f"unexpected {data.hex()}")


if __name__ == "__main__":
    main()
