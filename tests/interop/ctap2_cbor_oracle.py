"""Oracle for keygate's CTAP2 CBOR codec: python-fido2 (fido2==2.2.1) builds requests with its
own Ctap2 / CredentialManagement / Config / LargeBlobs classes against a fake device that answers
with the responses keygate encoded. python-fido2 parses those responses with strict_cbor=True,
so a non-canonical keygate response fails here.

stdin: JSON {"responses": {"<command byte as decimal>": hex body, ...}, "token": hex,
             "large_blob_key": hex, "prototype_info": hex,
             "u2f_responses": {"<INS as decimal>": hex response APDU (data + status word)}}

CTAP1/U2F: python-fido2's Ctap1 sends VERSION, REGISTER, AUTHENTICATE (enforce and check-only)
over the same fake device and parses keygate's response APDUs.
stdout: JSON {"requests": [[label, hex], ...], "parsed": {...}}
"""

import json
import sys

from fido2.ctap1 import ApduError, Ctap1
from fido2.ctap2 import Ctap2
from fido2.ctap2.blob import LargeBlobs
from fido2.ctap2.config import Config
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import PinProtocolV2
from fido2.hid import CAPABILITY


class FakeDevice:
    capabilities = CAPABILITY.CBOR

    def __init__(self, responses):
        self.responses = responses
        self.sent = []
        self.label = "?"

    def call(self, cmd, data, event=None, on_keepalive=None):
        self.sent.append([self.label, bytes(data).hex()])
        return b"\0" + self.responses.get(data[0], b"")


def main():
    params = json.load(sys.stdin)
    responses = {int(k): bytes.fromhex(v) for k, v in params["responses"].items()}
    token = bytes.fromhex(params["token"])
    device = FakeDevice(responses)
    parsed = {}

    device.label = "get_info"
    ctap = Ctap2(device)
    info = ctap.info
    parsed["versions"] = list(info.versions)
    parsed["options"] = dict(info.options)
    parsed["max_msg_size"] = info.max_msg_size
    parsed["pin_uv_protocols"] = list(info.pin_uv_protocols)
    parsed["aaguid"] = bytes(info.aaguid).hex()

    device.label = "make_credential"
    attestation = ctap.make_credential(
        bytes([1] * 32),
        {"id": "example.com", "name": "Example"},
        {"id": b"user-1", "name": "alice", "displayName": "Alice"},
        [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257}],
        exclude_list=[{"type": "public-key", "id": bytes([0xAA] * 16)}],
        extensions={"credProtect": 2, "hmac-secret": True},
        options={"rk": True},
        pin_uv_param=bytes([0x22] * 16),
        pin_uv_protocol=1,
    )
    parsed["mc_fmt"] = attestation.fmt
    parsed["mc_auth_data"] = bytes(attestation.auth_data).hex()
    parsed["mc_counter"] = attestation.auth_data.counter
    parsed["mc_credential_id"] = attestation.auth_data.credential_data.credential_id.hex()

    device.label = "get_assertion"
    key_agreement = {1: 2, 3: -25, -1: 1, -2: bytes([0x11] * 32), -3: bytes([0x12] * 32)}
    assertion = ctap.get_assertion(
        "example.com",
        bytes([2] * 32),
        allow_list=[
            {"type": "public-key", "id": bytes([0xAA] * 16), "transports": ["usb", "nfc"]}
        ],
        extensions={
            "hmac-secret": {
                1: key_agreement,
                2: bytes([0x33] * 48),
                3: bytes([0x44] * 32),
                4: 2,
            }
        },
        options={"up": False, "uv": True},
        pin_uv_param=bytes([0x55] * 32),
        pin_uv_protocol=2,
    )
    parsed["ga_signature"] = assertion.signature.hex()
    parsed["ga_user_id"] = assertion.user["id"].hex() if assertion.user else None
    parsed["ga_number_of_credentials"] = assertion.number_of_credentials

    device.label = "get_next_assertion"
    ctap.get_next_assertion()

    device.label = "client_pin"
    pin_response = ctap.client_pin(
        2,
        9,
        key_agreement=key_agreement,
        pin_hash_enc=bytes([0x66] * 32),
        permissions=0x03,
        permissions_rpid="example.com",
    )
    parsed["pin_retries"] = pin_response.get(3)
    parsed["pin_token"] = pin_response[2].hex()

    protocol = PinProtocolV2()
    credman = CredentialManagement(ctap, protocol, token)
    device.label = "credman"
    creds = credman.enumerate_creds(bytes([0x77] * 32))
    parsed["credman_count"] = len(creds)
    credman.delete_cred({"type": "public-key", "id": bytes([0xAA] * 16)})
    credman.update_user_info(
        {"type": "public-key", "id": bytes([0xAA] * 16)},
        {"id": b"user-1", "name": "alice2", "displayName": "Alice Two"},
    )

    device.label = "config"
    Config(ctap, protocol, token).set_min_pin_length(
        min_pin_length=6, rp_ids=["example.com"], force_change_pin=True
    )

    device.label = "large_blobs"
    blobs = LargeBlobs(ctap, protocol, token)
    large_blob_key = bytes.fromhex(params["large_blob_key"])
    parsed["large_blob"] = (blobs.get_blob(large_blob_key) or b"").hex()
    # put_blob reads the array, then writes it back with a new python-encrypted entry.
    blobs.put_blob(bytes([0x5A] * 32), b"written by python-fido2")

    device.label = "selection"
    ctap.selection()
    device.label = "reset"
    ctap.reset()

    # A FIDO_2_1_PRE key: credential management goes out as the prototype command 0x41.
    pre_responses = dict(responses)
    pre_responses[4] = bytes.fromhex(params["prototype_info"])
    pre_device = FakeDevice(pre_responses)
    pre_device.label = "prototype_get_info"
    pre_ctap = Ctap2(pre_device)
    pre_device.label = "prototype_credman"
    CredentialManagement(pre_ctap, protocol, token).get_metadata()
    device.sent.extend(pre_device.sent)

    u2f_responses = {int(k): bytes.fromhex(v) for k, v in params["u2f_responses"].items()}

    class FakeU2fDevice:
        label = "?"

        def call(self, cmd, data, event=None, on_keepalive=None):
            device.sent.append([self.label, bytes(data).hex()])
            return u2f_responses[data[1]]

    u2f = FakeU2fDevice()
    ctap1 = Ctap1(u2f)
    u2f.label = "u2f_version"
    parsed["u2f_version"] = ctap1.get_version()
    u2f.label = "u2f_register"
    registration = ctap1.register(bytes([0xC1] * 32), bytes([0xA1] * 32))
    parsed["u2f_public_key"] = registration.public_key.hex()
    parsed["u2f_key_handle"] = registration.key_handle.hex()
    parsed["u2f_certificate"] = registration.certificate.hex()
    parsed["u2f_register_signature"] = registration.signature.hex()
    u2f.label = "u2f_authenticate"
    signature = ctap1.authenticate(
        bytes([0xC2] * 32), bytes([0xA1] * 32), registration.key_handle
    )
    parsed["u2f_user_presence"] = signature.user_presence
    parsed["u2f_counter"] = signature.counter
    parsed["u2f_signature"] = signature.signature.hex()
    u2f.label = "u2f_check_only"
    u2f_responses[2] = bytes.fromhex("6985")
    try:
        ctap1.authenticate(
            bytes([0xC2] * 32), bytes([0xA1] * 32), registration.key_handle, True
        )
        parsed["u2f_check_only_sw"] = 0x9000
    except ApduError as error:
        parsed["u2f_check_only_sw"] = error.code

    json.dump({"requests": device.sent, "parsed": parsed}, sys.stdout)


if __name__ == "__main__":
    main()
