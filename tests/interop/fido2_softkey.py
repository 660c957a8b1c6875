"""python-fido2 (pinned 2.2.1) drives a keygate software key over its SOCK_SEQPACKET socket.

Run by tests/authn_python_fido2.rs. Environment:
  KEYGATE_SOCKET            path of the key's socket (`keygatectl virtual serve --socket`)
  KEYGATE_SERVE_PID         pid of the serving process (SIGUSR1 = virtual power cycle)
  KEYGATE_AAGUID            the key's AAGUID (UUID string)
  KEYGATE_ATTESTATION_CA    base64 DER of the key's attestation CA certificate
  KEYGATE_SCENARIO          "ctap2" (default), "u2f" (--ctap u2f), "pre" (--ctap 2.1-pre),
                            "touch" (--presence wait)

The only glue is `SeqpacketConnection`, a CtapHidConnection over the socket (each message one
64-byte report, no report-id byte). Every check prints "ok <name>"; any failure raises.
"""

import base64
import hashlib
import os
import signal
import socket
import sys
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fido2.attestation import PackedAttestation, FidoU2FAttestation
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap1 import Ctap1, ApduError
from fido2.ctap2 import Ctap2, ClientPin, CredentialManagement
from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2
from fido2.hid import CtapHidDevice
from fido2.hid.base import CtapHidConnection, HidDescriptor
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    AuthenticationResponse,
    AuthenticatorAssertionResponse,
    CollectedClientData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

REPORT = 64
RP_ID = "example.com"
ORIGIN = "https://example.com"


class SeqpacketConnection(CtapHidConnection):
    """One SOCK_SEQPACKET message per 64-byte HID report."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(30)
        self.sock.connect(path)

    def read_packet(self):
        data = self.sock.recv(REPORT)
        if len(data) != REPORT:
            raise OSError(f"short report: {len(data)} bytes")
        return data

    def write_packet(self, data):
        self.sock.send(bytes(data).ljust(REPORT, b"\0"))

    def close(self):
        self.sock.close()


def open_device(path):
    descriptor = HidDescriptor(path, 0x1209, 0x4B47, REPORT, REPORT, "keygate soft key", None)
    return CtapHidDevice(descriptor, SeqpacketConnection(path))


def ok(name):
    print(f"ok {name}", flush=True)


def expect_ctap_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except CtapError as e:
        assert e.code == code, f"expected {code!r}, got {e.code!r}"
        return
    raise AssertionError(f"expected CtapError {code!r}, call succeeded")


class PinInteraction(UserInteraction):
    def __init__(self, pin):
        self.pin = pin

    def request_pin(self, permissions, rp_id):
        return self.pin

    def request_uv(self, permissions, rp_id):
        return True


class Env:
    def __init__(self):
        self.path = os.environ["KEYGATE_SOCKET"]
        self.pid = int(os.environ["KEYGATE_SERVE_PID"])
        self.aaguid = uuid.UUID(os.environ["KEYGATE_AAGUID"]).bytes
        self.ca = x509.load_der_x509_certificate(base64.b64decode(os.environ["KEYGATE_ATTESTATION_CA"]))
        self.dev = open_device(self.path)
        self._ctap = None

    @property
    def ctap(self):
        if self._ctap is None:
            self._ctap = Ctap2(self.dev)  # strict_cbor: responses must be canonical CTAP2 CBOR
        return self._ctap

    def power_cycle(self):
        """SIGUSR1, then wait until the key-agreement key changes (it is volatile)."""
        before = self.key_agreement()
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.key_agreement() != before:
                return
            time.sleep(0.02)
        raise AssertionError("power cycle not observed")

    def key_agreement(self):
        resp = self.ctap.client_pin(2, ClientPin.CMD.GET_KEY_AGREEMENT)
        key = resp[ClientPin.RESULT.KEY_AGREEMENT]
        return (key[-2], key[-3])

    def client(self, pin):
        return Fido2Client(self.dev, DefaultClientDataCollector(ORIGIN), PinInteraction(pin))


def verify_attestation_chain(env, attestation_object, client_data_hash):
    """Packed attestation: python-fido2 checks the statement and the FIDO certificate
    requirements; we check the batch certificate chains to the key's CA."""
    assert attestation_object.fmt == "packed", attestation_object.fmt
    result = PackedAttestation().verify(
        attestation_object.att_stmt, attestation_object.auth_data, client_data_hash
    )
    batch = x509.load_der_x509_certificate(result.trust_path[0])
    env.ca.public_key().verify(
        batch.signature, batch.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256())
    )
    assert batch.issuer == env.ca.subject


def assertion_response(client_data, assertion):
    return AuthenticationResponse(
        raw_id=assertion.credential["id"],
        response=AuthenticatorAssertionResponse(
            client_data=client_data,
            authenticator_data=assertion.auth_data,
            signature=assertion.signature,
            user_handle=(assertion.user or {}).get("id"),
        ),
    )


def pin_token(env, pin, permissions, rp_id=None, protocol=None):
    protocol = protocol or PinProtocolV2()
    token = ClientPin(env.ctap, protocol).get_pin_token(pin, permissions, rp_id)
    return protocol, token


def scenario_ctap2(env):
    ctap = env.ctap
    info = ctap.get_info()
    assert "FIDO_2_1" in info.versions and "FIDO_2_0" in info.versions and "U2F_V2" in info.versions, info.versions
    assert info.aaguid == env.aaguid
    assert info.options.get("rk") is True and info.options.get("up") is True
    assert info.options.get("clientPin") is False, info.options
    assert info.options.get("credMgmt") is True and info.options.get("pinUvAuthToken") is True
    assert list(info.pin_uv_protocols) == [2, 1], info.pin_uv_protocols
    for ext in ("credProtect", "hmac-secret", "credBlob", "minPinLength", "largeBlobKey"):
        assert ext in info.extensions, info.extensions
    ok("get_info")

    # --- set and change PIN (protocol 2 sets, protocol 1 changes) ---
    ClientPin(ctap, PinProtocolV2()).set_pin("1234")
    ctap._info = ctap.get_info()
    assert ctap.info.options["clientPin"] is True
    assert ClientPin(ctap, PinProtocolV2()).get_pin_retries()[0] == 8
    expect_ctap_error(CtapError.ERR.NOT_ALLOWED, ClientPin(ctap, PinProtocolV2()).set_pin, "5555")
    ClientPin(ctap, PinProtocolV1()).change_pin("1234", "4321")
    pin_token(env, "4321", ClientPin.PERMISSION.GET_ASSERTION, RP_ID, PinProtocolV1())
    ok("set_and_change_pin")
    pin = "4321"
    client = env.client(pin)

    # --- MakeCredential without resident key, packed attestation, Fido2Server verifies ---
    server = Fido2Server(
        PublicKeyCredentialRpEntity(name="Example", id=RP_ID),
        attestation="direct",
        verify_attestation=lambda att, cdh: verify_attestation_chain(env, att, cdh),
    )
    user = PublicKeyCredentialUserEntity(id=b"user-1", name="alice", display_name="Alice")
    options, state = server.register_begin(
        user, user_verification=UserVerificationRequirement.REQUIRED, resident_key_requirement=ResidentKeyRequirement.DISCOURAGED
    )
    reg = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, reg)
    assert auth_data.is_user_present() and auth_data.is_user_verified()
    assert auth_data.credential_data.aaguid == env.aaguid
    non_resident = auth_data.credential_data
    ok("make_credential_non_resident_packed")

    options, state = server.authenticate_begin([non_resident], user_verification=UserVerificationRequirement.REQUIRED)
    result = client.get_assertion(options.public_key)
    resp = result.get_response(0)
    server.authenticate_complete(state, [non_resident], resp)
    counter1 = resp.response.authenticator_data.counter
    result = client.get_assertion(server.authenticate_begin([non_resident])[0].public_key)
    assert result.get_response(0).response.authenticator_data.counter > counter1
    ok("get_assertion_non_resident")

    # --- resident keys: two users, GetAssertion + GetNextAssertion ---
    creds = {}
    for uid, name in ((b"user-a", "anna"), (b"user-b", "bert")):
        options, state = server.register_begin(
            PublicKeyCredentialUserEntity(id=uid, name=name, display_name=name.title()),
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        reg = client.make_credential(options.public_key)
        creds[uid] = server.register_complete(state, reg).credential_data
    ok("make_credential_resident")

    protocol, token = pin_token(env, pin, ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
    options, state = server.authenticate_begin(user_verification=UserVerificationRequirement.REQUIRED)
    client_data = CollectedClientData.create(
        type=CollectedClientData.TYPE.GET, challenge=options.public_key.challenge, origin=ORIGIN
    )
    first = ctap.get_assertion(
        RP_ID, client_data.hash, None, None, None,
        protocol.authenticate(token, client_data.hash), protocol.VERSION,
    )
    assert first.number_of_credentials == 2, first.number_of_credentials
    second = ctap.get_next_assertion()
    expect_ctap_error(CtapError.ERR.NOT_ALLOWED, ctap.get_next_assertion)
    handles = [first.user["id"], second.user["id"]]
    assert handles == [b"user-b", b"user-a"], handles  # most recent first
    assert first.user.get("name") == "bert", first.user
    for a in (first, second):
        server.authenticate_complete(state, list(creds.values()), assertion_response(client_data, a))
    ok("get_assertion_get_next_assertion")

    # --- forged credential ID in the allow list: no credentials ---
    forged = bytearray(non_resident.credential_id)
    forged[-1] ^= 1
    expect_ctap_error(
        CtapError.ERR.NO_CREDENTIALS, ctap.get_assertion, RP_ID, b"\x01" * 32,
        [{"type": "public-key", "id": bytes(forged)}],
    )
    ok("forged_credential_id_rejected")

    # --- credential management: metadata, enumerate, delete ---
    protocol, token = pin_token(env, pin, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    cm = CredentialManagement(ctap, protocol, token)
    meta = cm.get_metadata()
    assert meta[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 2, meta
    rps = cm.enumerate_rps()
    assert [r[CredentialManagement.RESULT.RP]["id"] for r in rps] == [RP_ID], rps
    listed = cm.enumerate_creds(hashlib.sha256(RP_ID.encode()).digest())
    assert sorted(c[CredentialManagement.RESULT.USER]["id"] for c in listed) == [b"user-a", b"user-b"]
    victim = next(c for c in listed if c[CredentialManagement.RESULT.USER]["id"] == b"user-a")
    cm.delete_cred(victim[CredentialManagement.RESULT.CREDENTIAL_ID])
    listed = cm.enumerate_creds(hashlib.sha256(RP_ID.encode()).digest())
    assert [c[CredentialManagement.RESULT.USER]["id"] for c in listed] == [b"user-b"]
    assert cm.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1
    ok("credential_management_enumerate_delete")

    # --- hmac-secret through the PRF extension ---
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"user-prf", name="prf", display_name="PRF"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
        extensions={"prf": {}},
    )
    reg = client.make_credential(options.public_key)
    assert reg.client_extension_results.prf.enabled is True, reg.client_extension_results
    prf_cred = server.register_complete(state, reg).credential_data

    def prf(salt):
        options, state = server.authenticate_begin(
            [prf_cred], extensions={"prf": {"eval": {"first": salt}}}
        )
        result = client.get_assertion(options.public_key)
        resp = result.get_response(0)
        server.authenticate_complete(state, [prf_cred], resp)
        return resp.client_extension_results.prf.results.first

    out1, out2, out3 = prf(b"salt-one"), prf(b"salt-one"), prf(b"salt-two")
    assert len(out1) == 32 and out1 == out2 and out1 != out3
    ok("hmac_secret")

    # --- credProtect ---
    def make_protected(uid, policy):
        options, state = server.register_begin(
            PublicKeyCredentialUserEntity(id=uid, name=uid.decode(), display_name=uid.decode()),
            resident_key_requirement=ResidentKeyRequirement.REQUIRED,
            extensions={"credentialProtectionPolicy": policy, "enforceCredentialProtectionPolicy": True},
        )
        reg = client.make_credential(options.public_key)
        data = server.register_complete(state, reg)
        return data

    cp_rp = "cp.example.com"
    server_cp = Fido2Server(PublicKeyCredentialRpEntity(name="CP", id=cp_rp))
    server, saved = server_cp, server
    client_cp = Fido2Client(env.dev, DefaultClientDataCollector("https://cp.example.com"), PinInteraction(pin))
    client, saved_client = client_cp, client
    required = make_protected(b"cp-required", "userVerificationRequired")
    assert required.extensions.get("credProtect") == 3, required.extensions
    with_list = make_protected(b"cp-list", "userVerificationOptionalWithCredentialIDList")
    assert with_list.extensions.get("credProtect") == 2, with_list.extensions
    server, client = saved, saved_client
    cdh = b"\x02" * 32
    # Without UV and without an allow list neither credential is discoverable.
    expect_ctap_error(CtapError.ERR.NO_CREDENTIALS, ctap.get_assertion, cp_rp, cdh)
    # Level 2 is usable without UV through the allow list; level 3 is not.
    a = ctap.get_assertion(cp_rp, cdh, [{"type": "public-key", "id": with_list.credential_data.credential_id}])
    assert a.credential["id"] == with_list.credential_data.credential_id
    assert not a.auth_data.is_user_verified()
    expect_ctap_error(
        CtapError.ERR.NO_CREDENTIALS, ctap.get_assertion, cp_rp, cdh,
        [{"type": "public-key", "id": required.credential_data.credential_id}],
    )
    # With UV both are found.
    protocol, token = pin_token(env, pin, ClientPin.PERMISSION.GET_ASSERTION, cp_rp)
    a = ctap.get_assertion(cp_rp, cdh, None, None, None, protocol.authenticate(token, cdh), protocol.VERSION)
    assert a.number_of_credentials == 2 and a.auth_data.is_user_verified()
    ok("cred_protect")

    # --- wrong PIN, the power-cycle rule, the block ---
    def wrong(code):
        expect_ctap_error(code, ClientPin(ctap, PinProtocolV2()).get_pin_token, "0000")

    retries = lambda: ClientPin(ctap, PinProtocolV2()).get_pin_retries()[0]  # noqa: E731
    wrong(CtapError.ERR.PIN_INVALID)
    assert retries() == 7
    wrong(CtapError.ERR.PIN_INVALID)
    wrong(CtapError.ERR.PIN_AUTH_BLOCKED)
    assert retries() == 5
    # Even the right PIN is refused until a power cycle, and retries do not move.
    expect_ctap_error(CtapError.ERR.PIN_AUTH_BLOCKED, ClientPin(ctap, PinProtocolV2()).get_pin_token, pin)
    assert retries() == 5
    ok("wrong_pin_retries")
    env.power_cycle()
    pin_token(env, pin, ClientPin.PERMISSION.GET_ASSERTION, RP_ID)
    assert retries() == 8
    ok("power_cycle_rule")
    for _ in range(2):
        wrong(CtapError.ERR.PIN_INVALID)
        wrong(CtapError.ERR.PIN_INVALID)
        wrong(CtapError.ERR.PIN_AUTH_BLOCKED)
        env.power_cycle()
    assert retries() == 2
    wrong(CtapError.ERR.PIN_INVALID)
    wrong(CtapError.ERR.PIN_BLOCKED)
    assert retries() == 0
    expect_ctap_error(CtapError.ERR.PIN_BLOCKED, ClientPin(ctap, PinProtocolV2()).get_pin_token, pin)
    ok("pin_blocked_at_zero")

    # --- reset: within 10 s of a (virtual) power-up ---
    env.power_cycle()
    ctap.reset()
    info = ctap.get_info()
    assert info.options.get("clientPin") is False, info.options
    expect_ctap_error(CtapError.ERR.NO_CREDENTIALS, ctap.get_assertion, RP_ID, b"\x03" * 32)
    # The non-resident credential's ID no longer opens (new master secret).
    expect_ctap_error(
        CtapError.ERR.NO_CREDENTIALS, ctap.get_assertion, RP_ID, b"\x03" * 32,
        [{"type": "public-key", "id": non_resident.credential_id}],
    )
    ok("reset_after_power_cycle")


def scenario_u2f(env):
    """A key served with --ctap u2f: python-fido2 falls back to CTAP1 (fido-u2f attestation)."""
    ctap1 = Ctap1(env.dev)
    assert ctap1.get_version() == "U2F_V2"
    app = hashlib.sha256(b"https://example.com").digest()
    chal = hashlib.sha256(b"challenge").digest()
    reg = ctap1.register(chal, app)
    reg.verify(app, chal)
    sig = ctap1.authenticate(chal, app, reg.key_handle)
    sig.verify(app, chal, reg.public_key)
    try:
        ctap1.authenticate(chal, app, reg.key_handle, check_only=True)
        raise AssertionError("check-only must answer 0x6985")
    except ApduError as e:
        assert e.code == 0x6985, hex(e.code)
    ok("u2f_register_authenticate")

    client = Fido2Client(env.dev, DefaultClientDataCollector(ORIGIN), PinInteraction(None))
    server = Fido2Server(
        PublicKeyCredentialRpEntity(name="Example", id=RP_ID),
        attestation="direct",
        verify_attestation=lambda att, cdh: FidoU2FAttestation().verify(att.att_stmt, att.auth_data, cdh),
    )
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"u2f-user", name="u2f", display_name="U2F"),
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    reg = client.make_credential(options.public_key)
    cred = server.register_complete(state, reg).credential_data
    options, state = server.authenticate_begin([cred], user_verification=UserVerificationRequirement.DISCOURAGED)
    resp = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [cred], resp)
    ok("u2f_fido2_client_fallback")


def scenario_pre(env):
    """A key served with --ctap 2.1-pre: credential management through command 0x41."""
    ctap = env.ctap
    info = ctap.get_info()
    assert "FIDO_2_1_PRE" in info.versions and "FIDO_2_1" not in info.versions, info.versions
    assert info.options.get("credentialMgmtPreview") is True and "credMgmt" not in info.options
    assert list(info.pin_uv_protocols) == [1]
    ClientPin(ctap, PinProtocolV1()).set_pin("1234")
    ctap._info = ctap.get_info()
    client = env.client("1234")
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"pre-user", name="pre", display_name="Pre"),
        resident_key_requirement=ResidentKeyRequirement.REQUIRED,
    )
    server.register_complete(state, client.make_credential(options.public_key))
    protocol = PinProtocolV1()
    token = ClientPin(ctap, protocol).get_pin_token("1234")
    cm = CredentialManagement(ctap, protocol, token)
    rps = cm.enumerate_rps()
    assert [r[CredentialManagement.RESULT.RP]["id"] for r in rps] == [RP_ID], rps
    creds = cm.enumerate_creds(hashlib.sha256(RP_ID.encode()).digest())
    assert [c[CredentialManagement.RESULT.USER]["id"] for c in creds] == [b"pre-user"]
    cm.delete_cred(creds[0][CredentialManagement.RESULT.CREDENTIAL_ID])
    assert cm.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 0
    ok("credential_management_prototype_0x41")


class TouchOnPrompt(UserInteraction):
    """Answers KEEPALIVE(UPNEEDED) with a virtual touch (SIGUSR2 to the serving process)."""

    def __init__(self, pid):
        self.pid = pid
        self.prompts = 0

    def prompt_up(self):
        self.prompts += 1
        os.kill(self.pid, signal.SIGUSR2)


def scenario_touch(env):
    """A key served with --presence wait: the client sees UPNEEDED, a touch approves."""
    touch = TouchOnPrompt(env.pid)
    client = Fido2Client(env.dev, DefaultClientDataCollector(ORIGIN), touch)
    server = Fido2Server(PublicKeyCredentialRpEntity(name="Example", id=RP_ID))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"touch-user", name="touch", display_name="Touch"),
        user_verification=UserVerificationRequirement.DISCOURAGED,
    )
    cred = server.register_complete(state, client.make_credential(options.public_key)).credential_data
    assert touch.prompts == 1, touch.prompts
    options, state = server.authenticate_begin([cred], user_verification=UserVerificationRequirement.DISCOURAGED)
    server.authenticate_complete(state, [cred], client.get_assertion(options.public_key).get_response(0))
    assert touch.prompts == 2, touch.prompts
    ok("presence_wait_keepalive_upneeded_and_touch")


def main():
    env = Env()
    scenario = os.environ.get("KEYGATE_SCENARIO", "ctap2")
    try:
        scenarios = {"ctap2": scenario_ctap2, "u2f": scenario_u2f, "pre": scenario_pre, "touch": scenario_touch}
        scenarios[scenario](env)
    finally:
        env.dev.close()
    print("all ok", flush=True)


if __name__ == "__main__":
    sys.exit(main())
