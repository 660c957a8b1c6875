"""python-fido2 (pinned 2.2.1) side of tests/device_extras.rs: its client-side LargeBlobs and
Config against a keygate software key on the key's SOCK_SEQPACKET socket.

Usage: ctap2_blobs_config.py SOCKET PIN COMMAND [ARGS]
  blob-get KEYHEX          print the blob stored under the largeBlobKey KEYHEX (hex), or "none"
  blob-put KEYHEX DATAHEX  store DATAHEX under KEYHEX (pinUvAuthToken with lbw)
  entries                  print the number of entries of the large-blob array
  config                   setMinPINLength(8, ["example.org"]), then toggleAlwaysUv (acfg)
  info                     print "minPINLength forcePINChange alwaysUv" from GetInfo

The socket glue is fido2_softkey.open_device.
"""

import sys

from fido2.ctap2 import Config, Ctap2, ClientPin, LargeBlobs

from fido2_softkey import open_device


def token(ctap, pin, permission):
    client_pin = ClientPin(ctap)
    return client_pin.protocol, client_pin.get_pin_token(pin, permission)


def main():
    path, pin, command, *args = sys.argv[1:]
    ctap = Ctap2(open_device(path))
    if command == "blob-get":
        blob = LargeBlobs(ctap).get_blob(bytes.fromhex(args[0]))
        print(blob.hex() if blob is not None else "none")
    elif command == "blob-put":
        protocol, pin_token = token(ctap, pin, ClientPin.PERMISSION.LARGE_BLOB_WRITE)
        blobs = LargeBlobs(ctap, protocol, pin_token)
        blobs.put_blob(bytes.fromhex(args[0]), bytes.fromhex(args[1]))
        print("ok")
    elif command == "entries":
        print(len(LargeBlobs(ctap).read_blob_array()))
    elif command == "config":
        protocol, pin_token = token(ctap, pin, ClientPin.PERMISSION.AUTHENTICATOR_CFG)
        config = Config(ctap, protocol, pin_token)
        config.set_min_pin_length(min_pin_length=8, rp_ids=["example.org"])
        config.toggle_always_uv()
        print("ok")
    elif command == "info":
        info = ctap.get_info()
        print(info.min_pin_length, info.force_pin_change, info.options.get("alwaysUv"))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
