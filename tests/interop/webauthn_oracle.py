#!/usr/bin/env python3
"""Outside WebAuthn peer for keygate's relying party and client tests (python-fido2 2.2.1).

One command per run: `webauthn_oracle.py COMMAND`, a JSON object on stdin, a JSON object
on stdout. Client side (a browser plus a P-256 software authenticator built from
python-fido2's own data classes and `cryptography`):

  make_ca                 {} -> {ca_pem, ca_key_pem}
  register                {origin, options, uv, be, bs, counter, attestation: "none"|"packed",
                           ca_pem, ca_key_pem} -> {response, key}
  authenticate            {origin, options, key, counter, uv, be, bs, tamper} -> {response}

Server side (python-fido2's Fido2Server verifying what keygate's client produced):

  server_register_begin   {rp_id, rp_name, user_id, user_name, uv} -> {options, state}
  server_register_complete {rp_id, state, response} -> {ok, credential_data | error}
  server_authenticate_begin {rp_id, credentials, uv} -> {options, state}
  server_authenticate_complete {rp_id, state, credentials, response, repeat} -> {ok, per_sec | error}

And the PSL oracle: verify_rp_id {cases: [[rp_id, origin], ...]} -> {results: [bool, ...]}.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fido2 import cbor
from fido2.cose import ES256
from fido2.rpid import verify_rp_id
from fido2.server import Fido2Server
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    Aaguid,
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

FLAG = AuthenticatorData.FLAG
AAGUID = bytes.fromhex("6b6579676174652d6f7261636c652d31")  # "keygate-oracle-1"


def unwrap(options):
    if isinstance(options, str):
        options = json.loads(options)
    if set(options) == {"publicKey"}:
        options = options["publicKey"]
    return options


def flags(req, attested=False):
    value = FLAG.UP
    if req.get("uv", True):
        value |= FLAG.UV
    if req.get("be"):
        value |= FLAG.BE
    if req.get("bs"):
        value |= FLAG.BS
    if attested:
        value |= FLAG.AT
    return value


def make_ca(_req):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keygate oracle attestation CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return {
        "ca_pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "ca_key_pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }


def attestation_cert(req):
    """A packed attestation leaf (WebAuthn L3 §8.2.1 certificate requirements)."""
    ca_key = serialization.load_pem_private_key(req["ca_key_pem"].encode(), None)
    ca_cert = x509.load_pem_x509_certificate(req["ca_pem"].encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "keygate oracle"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation"),
            x509.NameAttribute(NameOID.COMMON_NAME, "keygate oracle attestation"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4"), b"\x04\x10" + AAGUID
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def register(req):
    options = unwrap(req["options"])
    origin = req["origin"]
    rp_id = options["rp"].get("id") or origin.split("//", 1)[1].split(":")[0]
    client_data = CollectedClientData.create(
        CollectedClientData.TYPE.CREATE, options["challenge"], origin
    )
    key = ec.generate_private_key(ec.SECP256R1())
    credential_id = os.urandom(32)
    cose = ES256.from_cryptography_key(key.public_key())
    credential_data = AttestedCredentialData.create(Aaguid(AAGUID), credential_id, cose)
    auth_data = AuthenticatorData.create(
        hashlib.sha256(rp_id.encode()).digest(),
        flags(req, attested=True),
        req.get("counter", 0),
        credential_data,
    )
    if req.get("attestation", "none") == "packed":
        att_key, att_cert = attestation_cert(req)
        signature = att_key.sign(bytes(auth_data) + client_data.hash, ec.ECDSA(hashes.SHA256()))
        statement = {
            "alg": -7,
            "sig": signature,
            "x5c": [att_cert.public_bytes(serialization.Encoding.DER)],
        }
        attestation = AttestationObject.create("packed", auth_data, statement)
    else:
        attestation = AttestationObject.create("none", auth_data, {})
    response = {
        "id": websafe_encode(credential_id),
        "rawId": websafe_encode(credential_id),
        "type": "public-key",
        "response": {
            "clientDataJSON": websafe_encode(client_data),
            "attestationObject": websafe_encode(attestation),
            "transports": ["usb"],
        },
        "authenticatorAttachment": "cross-platform",
        "clientExtensionResults": {},
    }
    return {
        "response": response,
        "key": {
            "private_pem": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
            "credential_id": websafe_encode(credential_id),
            "user_handle": options["user"]["id"],
            "rp_id": rp_id,
        },
    }


def authenticate(req):
    options = unwrap(req["options"])
    key_info = req["key"]
    rp_id = options.get("rpId") or key_info["rp_id"]
    client_data = CollectedClientData.create(
        CollectedClientData.TYPE.GET, options["challenge"], req["origin"]
    )
    auth_data = AuthenticatorData.create(
        hashlib.sha256(rp_id.encode()).digest(), flags(req), req["counter"]
    )
    key = serialization.load_pem_private_key(key_info["private_pem"].encode(), None)
    signature = key.sign(bytes(auth_data) + client_data.hash, ec.ECDSA(hashes.SHA256()))
    if req.get("tamper") == "signature":
        signature = signature[:-1] + bytes([signature[-1] ^ 1])
    return {
        "response": {
            "id": key_info["credential_id"],
            "rawId": key_info["credential_id"],
            "type": "public-key",
            "response": {
                "clientDataJSON": websafe_encode(client_data),
                "authenticatorData": websafe_encode(auth_data),
                "signature": websafe_encode(signature),
                "userHandle": key_info["user_handle"],
            },
            "authenticatorAttachment": "cross-platform",
            "clientExtensionResults": {},
        }
    }


def server(req):
    return Fido2Server(PublicKeyCredentialRpEntity(id=req["rp_id"], name=req.get("rp_name", "x")))


def uv(req):
    return UserVerificationRequirement(req.get("uv", "preferred"))


def server_register_begin(req):
    options, state = server(req).register_begin(
        PublicKeyCredentialUserEntity(
            id=websafe_decode(req["user_id"]), name=req["user_name"], display_name=req["user_name"]
        ),
        user_verification=uv(req),
        extensions=req.get("extensions"),
    )
    return {"options": dict(options)["publicKey"], "state": state}


def server_register_complete(req):
    try:
        auth_data = server(req).register_complete(req["state"], req["response"])
    except Exception as err:  # noqa: BLE001 - reported to the Rust test
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    return {
        "ok": True,
        "credential_data": websafe_encode(bytes(auth_data.credential_data)),
        "counter": auth_data.counter,
        "flags": int(auth_data.flags),
    }


def credentials(req):
    return [AttestedCredentialData(websafe_decode(c)) for c in req["credentials"]]


def server_authenticate_begin(req):
    options, state = server(req).authenticate_begin(credentials(req), user_verification=uv(req))
    return {"options": dict(options)["publicKey"], "state": state}


def server_authenticate_complete(req):
    srv = server(req)
    creds = credentials(req)
    try:
        srv.authenticate_complete(req["state"], creds, req["response"])
    except Exception as err:  # noqa: BLE001
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    repeat = int(req.get("repeat", 0))
    per_sec = None
    if repeat:
        start = time.perf_counter()
        for _ in range(repeat):
            srv.authenticate_complete(req["state"], creds, req["response"])
        per_sec = repeat / (time.perf_counter() - start)
    return {"ok": True, "per_sec": per_sec}


def rp_id_oracle(req):
    return {"results": [verify_rp_id(rp_id, origin) for rp_id, origin in req["cases"]]}


COMMANDS = {
    "make_ca": make_ca,
    "register": register,
    "authenticate": authenticate,
    "server_register_begin": server_register_begin,
    "server_register_complete": server_register_complete,
    "server_authenticate_begin": server_authenticate_begin,
    "server_authenticate_complete": server_authenticate_complete,
    "verify_rp_id": rp_id_oracle,
}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(COMMANDS)}}} < request.json")
    request = json.load(sys.stdin)
    json.dump(COMMANDS[sys.argv[1]](request), sys.stdout, default=str)


if __name__ == "__main__":
    main()
