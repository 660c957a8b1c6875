"""privacyIDEA (pinned in requirements.txt) as an outside oracle for keygate's OTP layer.

Driven by tests/otp_oracles.rs with JSON on stdin; prints JSON on stdout.

  ocra   [{suite, key_hex, question, counter?, pin?, timesteps_hex?}, ...]
         -> [response, ...] from privacyidea.lib.tokens.ocra.OCRA
  parse  {xml, psk_hex?, password?}
         -> {serial: token dict} from privacyidea.lib.importotp.parsePSKCdata

privacyIDEA's crypto helpers want a Flask application context with an encryption key file
(its default security module); a throw-away one is made here.
"""
import json
import os
import sys
import tempfile
import binascii


def ocra(cases):
    from privacyidea.lib.tokens.ocra import OCRA

    out = []
    for case in cases:
        engine = OCRA(case["suite"], key=binascii.unhexlify(case["key_hex"]))
        out.append(
            engine.get_response(
                case["question"],
                pin=case.get("pin"),
                counter=case.get("counter"),
                timesteps=case.get("timesteps_hex"),
            )
        )
    return out


def parse(request):
    from privacyidea.lib.importotp import parsePSKCdata

    tokens, refused = parsePSKCdata(
        request["xml"],
        preshared_key_hex=request.get("psk_hex"),
        password=request.get("password"),
        validate_mac="check_fail_hard",
    )
    return {"tokens": tokens, "refused": list(refused)}


def main():
    command = sys.argv[1]
    request = json.load(sys.stdin)
    from flask import Flask

    with tempfile.TemporaryDirectory() as tmp:
        encfile = os.path.join(tmp, "enckey")
        with open(encfile, "wb") as f:
            f.write(os.urandom(96))
        app = Flask("keygate-oracle")
        app.config["PI_ENCFILE"] = encfile
        with app.app_context():
            result = {"ocra": ocra, "parse": parse}[command](request)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
