"""python-fido2 (pinned 2.2.1) side of tests/device_extras.rs: its client-side LargeBlobs and
Config against a keygate software key on the key's SOCK_SEQPACKET socket.

Usage: ctap2_blobs_config.py SOCKET PIN COMMAND [ARGS]
  blob-get KEYHEX          print the blob stored under the largeBlobKey KEYHEX (hex), or "none"
  blob-put KEYHEX DATAHEX  store DATAHEX under KEYHEX (pinUvAuthToken with lbw)
  entries                  print the number of entries of the large-blob array
  config                   setMinPINLength(8, ["example.org"]), then toggleAlwaysUv (acfg)
  info                     print "minPINLength forcePINChange alwaysUv" from GetInfo
  enterprise RPID KIND     enableEnterpriseAttestation (acfg), then MakeCredential at RPID
                           with enterpriseAttestation KIND (1 or 2); python-fido2 verifies the
                           packed attestation and prints "epAtt CN-of-the-certificate"
  filter CREDHEX           on a key with maxCredentialCountInList 2: a raw allowList of 5 is
                           refused (LIMIT_EXCEEDED); Fido2Client's get_assertion with 4
                           strangers + CREDHEX (last) finds it, and its make_credential with
                           the same excludeCredentials is refused (DEVICE_INELIGIBLE)

The socket glue is fido2_softkey.open_device.
"""

import os
import sys

from fido2.client import ClientError, DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Config, Ctap2, ClientPin, LargeBlobs
from fido2.webauthn import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialCreationOptions,
    PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters,
    PublicKeyCredentialRequestOptions,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
)

from fido2_softkey import open_device


def token(ctap, pin, permission):
    client_pin = ClientPin(ctap)
    return client_pin.protocol, client_pin.get_pin_token(pin, permission)


def filter_credentials(ctap, own):
    """python-fido2's client batches (`_filter_creds`) against our key's enforced limit."""
    assert ctap.info.max_creds_in_list == 2, ctap.info.max_creds_in_list
    ids = [bytes([0x90 + i]) * 64 for i in range(4)] + [own]
    raw = [{"type": "public-key", "id": i} for i in ids]
    try:
        ctap.get_assertion("example.com", b"\0" * 32, raw, None, {"up": False})
        raise AssertionError("the key took 5 credentials")
    except CtapError as e:
        assert e.code == CtapError.ERR.LIMIT_EXCEEDED, e
    descriptors = [PublicKeyCredentialDescriptor(type="public-key", id=i) for i in ids]
    client = Fido2Client(
        ctap.device, DefaultClientDataCollector("https://example.com"), UserInteraction()
    )
    result = client.get_assertion(
        PublicKeyCredentialRequestOptions(
            challenge=os.urandom(32),
            rp_id="example.com",
            allow_credentials=descriptors,
            user_verification="discouraged",
        )
    )
    assert result.get_response(0).raw_id == own
    try:
        client.make_credential(
            PublicKeyCredentialCreationOptions(
                rp=PublicKeyCredentialRpEntity(id="example.com", name="Example"),
                user=PublicKeyCredentialUserEntity(id=b"user-9", name="erin"),
                challenge=os.urandom(32),
                pub_key_cred_params=[PublicKeyCredentialParameters(type="public-key", alg=-7)],
                exclude_credentials=descriptors,
                authenticator_selection=AuthenticatorSelectionCriteria(
                    resident_key="discouraged", user_verification="discouraged"
                ),
            )
        )
        raise AssertionError("registered despite an excluded credential")
    except ClientError as e:
        assert e.code == ClientError.ERR.DEVICE_INELIGIBLE, e


def enterprise(ctap, pin, rp_id, kind):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from fido2.attestation import PackedAttestation

    protocol, pin_token = token(ctap, pin, ClientPin.PERMISSION.AUTHENTICATOR_CFG)
    Config(ctap, protocol, pin_token).enable_enterprise_attestation()
    assert ctap.get_info().options.get("ep") is True
    protocol, pin_token = token(ctap, pin, ClientPin.PERMISSION.MAKE_CREDENTIAL)
    client_data_hash = os.urandom(32)
    response = ctap.make_credential(
        client_data_hash,
        {"id": rp_id, "name": "Corp"},
        {"id": b"user-ea", "name": "eve"},
        [{"type": "public-key", "alg": -7}],
        pin_uv_param=protocol.authenticate(pin_token, client_data_hash),
        pin_uv_protocol=protocol.VERSION,
        enterprise_attestation=kind,
    )
    PackedAttestation().verify(response.att_stmt, response.auth_data, client_data_hash)
    cert = x509.load_der_x509_certificate(response.att_stmt["x5c"][0])
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    print(bool(response.ep_att), cn.replace(" ", "_"))


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
    elif command == "filter":
        filter_credentials(ctap, bytes.fromhex(args[0]))
        print("ok")
    elif command == "enterprise":
        enterprise(ctap, pin, args[0], int(args[1]))
    elif command == "info":
        info = ctap.get_info()
        print(info.min_pin_length, info.force_pin_change, info.options.get("alwaysUv"))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
