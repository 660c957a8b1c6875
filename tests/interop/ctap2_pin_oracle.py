"""Oracle for keygate's PIN/UV auth protocols: python-fido2 (fido2==2.2.1) computes the same
operations on the fixed keys the Rust test sends.

stdin: JSON list of cases
  {"protocol": 1|2, "authenticator_priv": hex, "platform_priv": hex, "plaintext": hex,
   "message": hex, "token": hex, "our_ciphertext": hex, "pin": str}
stdout: JSON list of results (hex strings), one per case.
"""

import json
import sys

from cryptography.hazmat.primitives.asymmetric import ec
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2, _pad_pin
from fido2.utils import sha256


def int2bytes(value, size=32):
    return value.to_bytes(size, "big")


def one(case):
    protocol = {1: PinProtocolV1, 2: PinProtocolV2}[case["protocol"]]()
    auth_sk = ec.derive_private_key(
        int(case["authenticator_priv"], 16), ec.SECP256R1()
    )
    plat_sk = ec.derive_private_key(int(case["platform_priv"], 16), ec.SECP256R1())
    auth_pub = auth_sk.public_key().public_numbers()
    plat_pub = plat_sk.public_key().public_numbers()
    auth_cose = {
        1: 2,
        3: -25,
        -1: 1,
        -2: int2bytes(auth_pub.x),
        -3: int2bytes(auth_pub.y),
    }

    # The platform's view: ECDH with the authenticator's public key, then kdf.
    z = plat_sk.exchange(ec.ECDH(), auth_sk.public_key())
    shared = protocol.kdf(z)

    plaintext = bytes.fromhex(case["plaintext"])
    message = bytes.fromhex(case["message"])
    token = bytes.fromhex(case["token"])
    python_ciphertext = protocol.encrypt(shared, plaintext)
    our_decrypted = protocol.decrypt(shared, bytes.fromhex(case["our_ciphertext"]))

    # python-fido2's own encapsulation against our authenticator key (random platform key).
    key_agreement, encapsulated_shared = protocol.encapsulate(auth_cose)

    pin = case["pin"]
    return {
        "authenticator_x": int2bytes(auth_pub.x).hex(),
        "authenticator_y": int2bytes(auth_pub.y).hex(),
        "platform_x": int2bytes(plat_pub.x).hex(),
        "platform_y": int2bytes(plat_pub.y).hex(),
        "shared": shared.hex(),
        "python_ciphertext": python_ciphertext.hex(),
        "our_decrypted": our_decrypted.hex(),
        "authenticate_shared": protocol.authenticate(shared, message).hex(),
        "authenticate_token": protocol.authenticate(token, message).hex(),
        "encapsulated_x": key_agreement[-2].hex(),
        "encapsulated_y": key_agreement[-3].hex(),
        "encapsulated_shared": encapsulated_shared.hex(),
        "pin_hash": sha256(pin.encode())[:16].hex(),
        "padded_pin": _pad_pin(pin).hex(),
    }


def main():
    cases = json.load(sys.stdin)
    json.dump([one(case) for case in cases], sys.stdout)


if __name__ == "__main__":
    main()
