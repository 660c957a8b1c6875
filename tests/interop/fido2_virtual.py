"""python-fido2 (pinned 2.2.1) registers and signs in with a software key that keygated serves,
through the key's socket (`Virtual.Create` with "socket": true, path from `Virtual.Socket`) or
through a descriptor from `Virtual.Connect` passed as this process's stdin.

Run by tests/service_virtual.rs:
  fido2_virtual.py socket PATH   connect to the key's socket
  fido2_virtual.py stdin         stdin is a connected SOCK_SEQPACKET socket

A Fido2Client makes a discoverable credential and an assertion (MakeCredential + GetAssertion) and a
Fido2Server verifies both. Prints "ok register", "ok authenticate", then
"credential <base64url id>" so that the caller can find it on the key over the bus.
"""

import base64
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction  # noqa: E402
from fido2.hid import CtapHidDevice  # noqa: E402
from fido2.hid.base import HidDescriptor  # noqa: E402
from fido2.server import Fido2Server  # noqa: E402
from fido2.webauthn import (  # noqa: E402
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from fido2_softkey import ORIGIN, REPORT, RP_ID, SeqpacketConnection  # noqa: E402


class InheritedConnection(SeqpacketConnection):
    """The same adapter over an already connected socket."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(30)


def open_device(mode, arg):
    if mode == "socket":
        conn = SeqpacketConnection(arg)
    elif mode == "stdin":
        sock = socket.socket(fileno=os.dup(sys.stdin.fileno()))
        assert sock.type == socket.SOCK_SEQPACKET, sock.type
        conn = InheritedConnection(sock)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    descriptor = HidDescriptor(arg or "stdin", 0x1209, 0xF1D0, REPORT, REPORT, "keygate soft key", None)
    return CtapHidDevice(descriptor, conn)


def main():
    mode = sys.argv[1]
    dev = open_device(mode, sys.argv[2] if len(sys.argv) > 2 else None)
    try:
        client = Fido2Client(dev, DefaultClientDataCollector(ORIGIN), UserInteraction())
        server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
        options, state = server.register_begin(
            PublicKeyCredentialUserEntity(id=f"python {mode}".encode(), name=mode, display_name=mode),
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.DISCOURAGED,
        )
        cred = server.register_complete(state, client.make_credential(options.public_key)).credential_data
        print("ok register", flush=True)
        options, state = server.authenticate_begin([cred], user_verification=UserVerificationRequirement.DISCOURAGED)
        result = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, [cred], result)
        print("ok authenticate", flush=True)
        cred_id = base64.urlsafe_b64encode(cred.credential_id).rstrip(b"=").decode()
        print(f"credential {cred_id}", flush=True)
    finally:
        dev.close()


if __name__ == "__main__":
    main()
