"""python-fido2's ClientPin (the platform) against keygate's authenticator-side answers:
setPIN, changePIN and getPinUvAuthTokenUsingPinWithPermissions for PIN/UV auth protocols 1 and 2.

The platform's "ephemeral" key is fixed (as python-fido2's own tests do) so that keygate can
precompute its encrypted pinUvAuthToken. The requests python sends are returned for keygate to
check as an authenticator would.

stdin: JSON {"info": hex GetInfo body,
             "protocols": [{"version": 1|2, "platform_priv": hex,
                            "responses": {"<subCommand>": hex ClientPIN response body}}]}
stdout: JSON [{"sent": [hex request, ...], "token": hex}, ...]
"""

import json
import sys
from unittest import mock

from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.ctap2 import Ctap2
from fido2.ctap2.pin import ClientPin, PinProtocolV1, PinProtocolV2
from fido2.hid import CAPABILITY


class FakeDevice:
    capabilities = CAPABILITY.CBOR

    def __init__(self, info):
        self.info = info
        self.pin_responses = {}
        self.sent = []

    def call(self, cmd, data, event=None, on_keepalive=None):
        data = bytes(data)
        self.sent.append(data.hex())
        if data[0] == 0x04:
            return b"\0" + self.info
        if data[0] == 0x06:
            sub_command = cbor.decode(data[1:])[2]
            return b"\0" + self.pin_responses.get(sub_command, b"")
        return b"\x01"


def main():
    params = json.load(sys.stdin)
    device = FakeDevice(bytes.fromhex(params["info"]))
    ctap = Ctap2(device)
    results = []
    for case in params["protocols"]:
        device.sent = []
        device.pin_responses = {
            int(k): bytes.fromhex(v) for k, v in case["responses"].items()
        }
        protocol = {1: PinProtocolV1, 2: PinProtocolV2}[case["version"]]()
        platform_key = ec.derive_private_key(
            int(case["platform_priv"], 16), ec.SECP256R1()
        )
        with mock.patch(
            "cryptography.hazmat.primitives.asymmetric.ec.generate_private_key",
            return_value=platform_key,
        ):
            client = ClientPin(ctap, protocol)
            client.set_pin("1234")
            client.change_pin("1234", "87654321")
            token = client.get_pin_token(
                "87654321",
                ClientPin.PERMISSION.MAKE_CREDENTIAL
                | ClientPin.PERMISSION.GET_ASSERTION,
                "example.com",
            )
        results.append({"sent": device.sent, "token": token.hex()})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
