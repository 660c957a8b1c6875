"""Canonical CBOR oracle: python-fido2's encoder (fido2.cbor, CTAP2 canonical form) re-encodes
each item keygate wrote.

stdin: JSON list of hex strings. stdout: JSON list of hex strings, cbor.encode(cbor.decode(x)).
"""

import json
import sys

from fido2 import cbor


def main():
    items = json.load(sys.stdin)
    out = []
    for item in items:
        data = bytes.fromhex(item)
        value = cbor.decode(data)
        out.append(cbor.encode(value).hex())
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
