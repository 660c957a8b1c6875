"""python-pskc oracle for keygate's PSKC import/export (Debian python3-pskc; run with /usr/bin/python3).

  otp_pskc.py write OUT plain|psk HEX|password PASS  -- writes a fixed set of keys (JSON on stdin)
  otp_pskc.py read IN [psk HEX|password PASS]        -- prints the keys of a file as JSON

Key JSON: {"serial", "id", "algorithm", "secret_hex", "counter", "time_offset", "time_interval",
"response_length", "issuer", "manufacturer", "suite", "friendly_name", "key_userid"}.
"""
import binascii
import json
import sys

import pskc

FIELDS = ("serial", "id", "algorithm", "counter", "time_offset", "time_interval", "time_drift",
          "response_length", "issuer", "manufacturer", "algorithm_suite", "friendly_name", "key_userid")


def write(out, mode, arg):
    keys = json.load(sys.stdin)
    container = pskc.PSKC()
    for spec in keys:
        key = container.add_key(
            id=spec["id"], serial=spec["serial"], algorithm=spec["algorithm"],
            secret=binascii.unhexlify(spec["secret_hex"]), response_length=spec["response_length"],
            response_encoding="DECIMAL", issuer=spec.get("issuer"), manufacturer=spec.get("manufacturer"))
        for field in ("counter", "time_offset", "time_interval", "algorithm_suite"):
            if spec.get(field) is not None:
                setattr(key, field, spec[field])
    if mode == "psk":
        container.encryption.setup_preshared_key(key=binascii.unhexlify(arg), fields=[
            "secret", "counter", "time_offset", "time_interval"])
    elif mode == "password":
        container.encryption.setup_pbkdf2(arg, iterations=2000, fields=[
            "secret", "counter", "time_offset", "time_interval"])
    container.write(out)


def read(path, mode=None, arg=None):
    container = pskc.PSKC(path)
    if mode == "psk":
        container.encryption.key = binascii.unhexlify(arg)
    elif mode == "password":
        container.encryption.derive_key(arg)
    out = []
    for key in container.keys:
        item = {field: getattr(key, field) for field in FIELDS}
        item["secret_hex"] = binascii.hexlify(key.secret).decode() if key.secret is not None else None
        out.append(item)
    print(json.dumps(out, default=str))


def main():
    if sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        read(sys.argv[2], *sys.argv[3:5])


if __name__ == "__main__":
    main()
