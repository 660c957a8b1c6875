"""pyotp oracle for keygate's HOTP/TOTP: reads JSON cases on stdin, prints one code per line.

Each case: {"kind": "hotp"|"totp", "secret_b32": str, "digits": int, "alg": "sha1"|"sha256"|"sha512",
"counter": int (hotp), "time": int, "period": int (totp)}. Also {"kind": "uri", "uri": str}: prints
"kind digits alg secret_b32 counter_or_period issuer name" parsed by pyotp.parse_uri, and
{"kind": "make_uri", ...}: prints pyotp's provisioning URI for the case.
Runs with the pinned pyotp (tests/interop/requirements.txt) under $KEYGATE_PYTHON.
"""
import hashlib
import json
import sys

import pyotp

DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def main():
    cases = json.load(sys.stdin)
    for case in cases:
        kind = case["kind"]
        if kind == "hotp":
            otp = pyotp.HOTP(case["secret_b32"], digits=case["digits"], digest=DIGESTS[case["alg"]])
            print(otp.at(case["counter"]))
        elif kind == "totp":
            otp = pyotp.TOTP(case["secret_b32"], digits=case["digits"], digest=DIGESTS[case["alg"]],
                             interval=case["period"])
            print(otp.at(case["time"]))
        elif kind == "uri":
            otp = pyotp.parse_uri(case["uri"])
            extra = otp.initial_count if isinstance(otp, pyotp.HOTP) else otp.interval
            alg = otp.digest().name
            print(" ".join(str(x) for x in [
                "hotp" if isinstance(otp, pyotp.HOTP) else "totp", otp.digits, alg, otp.secret, extra,
                otp.issuer, otp.name]))
        elif kind == "make_uri":
            if case["type"] == "hotp":
                otp = pyotp.HOTP(case["secret_b32"], digits=case["digits"], digest=DIGESTS[case["alg"]],
                                 name=case["name"], issuer=case["issuer"], initial_count=case["counter"])
                print(otp.provisioning_uri(initial_count=case["counter"]))
            else:
                otp = pyotp.TOTP(case["secret_b32"], digits=case["digits"], digest=DIGESTS[case["alg"]],
                                 interval=case["period"], name=case["name"], issuer=case["issuer"])
                print(otp.provisioning_uri())
        else:
            raise SystemExit("unknown case kind %r" % kind)


if __name__ == "__main__":
    main()
