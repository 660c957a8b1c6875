"""privacyIDEA (pinned in requirements.txt) as an outside oracle for keygate's OTP layer.

Driven by tests/otp_oracles.rs with JSON on stdin; prints JSON on stdout.

  ocra   [{suite, key_hex, question, counter?, pin?, timesteps_hex?}, ...]
         -> [response, ...] from privacyidea.lib.tokens.ocra.OCRA
  parse  {xml, psk_hex?, password?}
         -> {serial: token dict} from privacyidea.lib.importotp.parsePSKCdata
  export {psk_hex, tokens: [{type, serial, otplen, counter, hashlib, timestep, key_hex}]}
         -> the PSKC document privacyidea.lib.importotp.export_pskc writes (its token objects
            are stood in for by the few attributes export_pskc reads)

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


class _Key:
    def __init__(self, key_hex):
        self.key_hex = key_hex

    def getKey(self):
        return self.key_hex


class _DbToken:
    def __init__(self, spec):
        self.serial = spec["serial"]
        self.otplen = spec["otplen"]
        self.count = spec["counter"]
        self.description = "exported by privacyIDEA"
        self._key = _Key(spec["key_hex"])

    def get_otpkey(self):
        return self._key


class _TokenObject:
    def __init__(self, spec):
        self.type = spec["type"]
        self.token = _DbToken(spec)
        self.info = {"hashlib": spec["hashlib"]}
        if spec["type"] == "totp":
            self.info.update(timeStep=str(spec["timestep"]), timeShift="0")

    def get_tokeninfo(self, key, default=None):
        return self.info.get(key, default)


def export(request):
    from privacyidea.lib.importotp import export_pskc

    _psk, _count, soup = export_pskc(
        [_TokenObject(t) for t in request["tokens"]], psk=request["psk_hex"]
    )
    return str(soup)


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
            result = {"ocra": ocra, "parse": parse, "export": export}[command](request)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
