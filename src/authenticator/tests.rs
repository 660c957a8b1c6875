//! Tests of the software key through its CTAP2 wire interface (`handle_cbor`), with the
//! platform side built from the same `ctap2` types (PIN protocol sessions, requests).

use std::time::{Duration, Instant};

use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};

use super::keys::{self, RandomSource, SeededRandomForTests};
use super::presence::{AutoApproveForTests, DenyForTests, UserPresence};
use super::*;
use crate::ctap2::commands::{
    Command, client_pin, config, credential_management as cm, decode_response, get_assertion,
    get_info, get_next_assertion, large_blobs, make_credential, reset,
};
use crate::ctap2::extensions::{
    CredBlobOutput, GetAssertionExtensions, HmacSecretOutput, MakeCredentialExtensions,
};
use crate::ctap2::pin_protocol::{Permissions, PinProtocol, PlatformSession};
use crate::ctap2::{
    AttestationStatement, AuthenticatorData, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
    StatusCode,
};

const CDH: [u8; 32] = [0x11; 32];

struct Harness {
    key: SoftKey,
    now: Instant,
}

/// The platform side's randomness (not under test).
fn os_rng() -> impl FnMut(&mut [u8]) {
    |buf: &mut [u8]| {
        let _ = getrandom::fill(buf);
    }
}

impl Harness {
    fn new(options: SoftKeyOptions) -> Self {
        let now = Instant::now();
        let key = SoftKey::with_vault(
            options,
            Box::new(MemoryVault::new()),
            Box::new(SeededRandomForTests::new(5)),
            now,
        )
        .unwrap();
        Self { key, now }
    }

    fn raw(&mut self, request: &[u8], presence: &mut dyn UserPresence) -> Vec<u8> {
        self.key.handle_cbor(request, presence, self.now)
    }

    fn call<C: Command>(
        &mut self,
        request: &C,
        presence: &mut dyn UserPresence,
    ) -> Result<C::Response, StatusCode> {
        let response = self.raw(&request.encode(), presence);
        match response.first() {
            Some(0) => Ok(decode_response::<C>(&response).unwrap()),
            Some(&status) => Err(StatusCode(status)),
            None => panic!("empty response"),
        }
    }

    fn ok<C: Command>(&mut self, request: &C) -> Result<C::Response, StatusCode> {
        self.call(request, &mut AutoApproveForTests)
    }

    fn session(&mut self, protocol: PinProtocol) -> PlatformSession {
        let ka = self
            .ok(&client_pin::Request::get_key_agreement(protocol.version()))
            .unwrap()
            .key_agreement
            .unwrap();
        let mut rng = os_rng();
        PlatformSession::new(protocol, &ka, &mut rng).unwrap()
    }

    fn set_pin(&mut self, pin: &str) {
        let session = self.session(PinProtocol::Two);
        let mut rng = os_rng();
        let req = session.set_pin(pin, &mut rng).unwrap();
        self.ok(&req).unwrap();
    }

    fn token(
        &mut self,
        pin: &str,
        permissions: u8,
        rp_id: Option<&str>,
    ) -> Result<(PinProtocol, Vec<u8>), StatusCode> {
        let session = self.session(PinProtocol::Two);
        let mut rng = os_rng();
        let req = session
            .get_pin_uv_auth_token_using_pin(
                pin,
                Permissions(permissions),
                rp_id.map(str::to_owned),
                &mut rng,
            )
            .unwrap();
        let resp = self.ok(&req)?;
        Ok((
            PinProtocol::Two,
            session
                .decrypt_token(&resp)
                .unwrap()
                .expose_secret()
                .clone(),
        ))
    }

    fn make_credential_request(&self, rp: &str, user: &[u8], rk: bool) -> make_credential::Request {
        let mut options = std::collections::BTreeMap::new();
        if rk {
            options.insert("rk".to_owned(), true);
        }
        make_credential::Request {
            client_data_hash: CDH.to_vec(),
            rp: PublicKeyCredentialRpEntity {
                id: rp.to_owned(),
                name: Some("RP".to_owned()),
            },
            user: PublicKeyCredentialUserEntity {
                id: user.to_vec(),
                name: Some("name".to_owned()),
                display_name: Some("Display".to_owned()),
            },
            pub_key_cred_params: vec![PublicKeyCredentialParameters {
                type_: "public-key".to_owned(),
                alg: -7,
            }],
            exclude_list: None,
            extensions: None,
            options: (!options.is_empty()).then_some(options),
            pin_uv_auth_param: None,
            pin_uv_auth_protocol: None,
            enterprise_attestation: None,
        }
    }

    fn with_token(&mut self, req: &mut make_credential::Request, token: &(PinProtocol, Vec<u8>)) {
        req.pin_uv_auth_param = Some(token.0.authenticate(&token.1, &req.client_data_hash));
        req.pin_uv_auth_protocol = Some(token.0.version());
    }
}

fn assertion_request(rp: &str, allow: Option<&[u8]>) -> get_assertion::Request {
    get_assertion::Request {
        rp_id: rp.to_owned(),
        client_data_hash: CDH.to_vec(),
        allow_list: allow.map(|id| vec![PublicKeyCredentialDescriptor::public_key(id.to_vec())]),
        extensions: None,
        options: None,
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    }
}

fn ga_with_token(req: &mut get_assertion::Request, token: &(PinProtocol, Vec<u8>)) {
    req.pin_uv_auth_param = Some(token.0.authenticate(&token.1, &req.client_data_hash));
    req.pin_uv_auth_protocol = Some(token.0.version());
}

fn credential_public_key(resp: &make_credential::Response) -> (Vec<u8>, VerifyingKey) {
    let auth = AuthenticatorData::parse(&resp.auth_data).unwrap();
    let acd = auth.attested_credential_data.unwrap();
    let key = acd.credential_public_key.to_p256().unwrap();
    (acd.credential_id, VerifyingKey::from(&key))
}

fn verify_assertion(key: &VerifyingKey, resp: &get_assertion::Response) -> bool {
    let sig = Signature::from_der(&resp.signature).unwrap();
    key.verify(&[resp.auth_data.as_slice(), &CDH].concat(), &sig)
        .is_ok()
}

#[test]
fn get_info_reflects_options_and_versions() {
    let mut h = Harness::new(SoftKeyOptions::default());
    let info = h.ok(&get_info::Request).unwrap();
    assert_eq!(info.versions, ["U2F_V2", "FIDO_2_0", "FIDO_2_1"]);
    assert_eq!(info.aaguid, DEFAULT_AAGUID);
    let options = info.options.unwrap();
    assert_eq!(options.get("clientPin"), Some(&false));
    assert_eq!(options.get("rk"), Some(&true));
    assert_eq!(info.pin_uv_auth_protocols, Some(vec![2, 1]));
    h.set_pin("1234");
    assert_eq!(
        h.ok(&get_info::Request)
            .unwrap()
            .options
            .unwrap()
            .get("clientPin"),
        Some(&true)
    );

    let mut h = Harness::new(SoftKeyOptions {
        ctap: CtapVersion::Fido20,
        resident_keys: false,
        client_pin: false,
        ..SoftKeyOptions::default()
    });
    let info = h.ok(&get_info::Request).unwrap();
    assert_eq!(info.versions, ["U2F_V2", "FIDO_2_0"]);
    let options = info.options.unwrap();
    assert_eq!(options.get("rk"), Some(&false));
    assert_eq!(options.get("clientPin"), None);
    assert_eq!(info.pin_uv_auth_protocols, None);
    // 2.1-only commands are unknown to a 2.0 key.
    assert_eq!(h.raw(&[0x0b], &mut AutoApproveForTests), [0x01]);
    assert_eq!(
        h.raw(&[0x0d, 0xa1, 0x01, 0x02], &mut AutoApproveForTests),
        [0x01]
    );

    let mut u2f = Harness::new(SoftKeyOptions {
        ctap: CtapVersion::U2fOnly,
        ..SoftKeyOptions::default()
    });
    assert_eq!(u2f.raw(&[0x04], &mut AutoApproveForTests), [0x01]);
}

#[test]
fn bad_requests_get_spec_status_codes() {
    let mut h = Harness::new(SoftKeyOptions::default());
    let up = &mut AutoApproveForTests;
    assert_eq!(h.raw(&[], up), [StatusCode::CTAP1_ERR_INVALID_LENGTH.0]);
    assert_eq!(
        h.raw(&[0x55], up),
        [StatusCode::CTAP1_ERR_INVALID_COMMAND.0]
    );
    assert_eq!(
        h.raw(&[0x01, 0xa1, 0x01], up),
        [StatusCode::CTAP2_ERR_INVALID_CBOR.0]
    );
    assert_eq!(
        h.raw(&[0x01, 0xa0], up),
        [StatusCode::CTAP2_ERR_MISSING_PARAMETER.0]
    );
    assert_eq!(
        h.raw(&[0x01, 0x01], up),
        [StatusCode::CTAP2_ERR_CBOR_UNEXPECTED_TYPE.0]
    );
    // Unsupported algorithm, and "up": false at MakeCredential.
    let mut req = h.make_credential_request("a.com", b"u", false);
    req.pub_key_cred_params[0].alg = -8;
    assert_eq!(
        h.ok(&req).err(),
        Some(StatusCode::CTAP2_ERR_UNSUPPORTED_ALGORITHM)
    );
    let mut req = h.make_credential_request("a.com", b"u", false);
    req.options = Some([("up".to_owned(), false)].into());
    assert_eq!(h.ok(&req).err(), Some(StatusCode::CTAP2_ERR_INVALID_OPTION));
    // "uv" without a built-in UV method.
    let mut req = h.make_credential_request("a.com", b"u", false);
    req.options = Some([("uv".to_owned(), true)].into());
    assert_eq!(h.ok(&req).err(), Some(StatusCode::CTAP2_ERR_INVALID_OPTION));
    // GetNextAssertion without a GetAssertion.
    assert_eq!(
        h.ok(&get_next_assertion::Request).err(),
        Some(StatusCode::CTAP2_ERR_NOT_ALLOWED)
    );
}

#[test]
fn attestation_none_self_packed_and_forced_bad_signatures() {
    for kind in [
        AttestationKind::None,
        AttestationKind::SelfAttestation,
        AttestationKind::Packed,
    ] {
        let mut h = Harness::new(SoftKeyOptions {
            attestation: kind,
            ..SoftKeyOptions::default()
        });
        let req = h.make_credential_request("example.com", b"user", false);
        let resp = h.ok(&req).unwrap();
        let auth = AuthenticatorData::parse(&resp.auth_data).unwrap();
        assert_eq!(auth.rp_id_hash, keys::sha256(b"example.com"));
        assert!(auth.flags.up() && !auth.flags.uv());
        let (_, cred_key) = credential_public_key(&resp);
        let signed = [resp.auth_data.as_slice(), &CDH].concat();
        match (&resp.att_stmt, kind) {
            (AttestationStatement::None, AttestationKind::None) => {}
            (
                AttestationStatement::Packed {
                    alg: -7,
                    sig,
                    x5c: None,
                },
                AttestationKind::SelfAttestation,
            ) => {
                cred_key
                    .verify(&signed, &Signature::from_der(sig).unwrap())
                    .unwrap();
            }
            (
                AttestationStatement::Packed {
                    alg: -7,
                    sig,
                    x5c: Some(x5c),
                },
                AttestationKind::Packed,
            ) => {
                assert_eq!(x5c.len(), 1);
                let (_, cert) = x509_parser::parse_x509_certificate(&x5c[0]).unwrap();
                let batch =
                    VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data)
                        .unwrap();
                batch
                    .verify(&signed, &Signature::from_der(sig).unwrap())
                    .unwrap();
                h.key.set_force_bad_signature(true);
                let resp = h.ok(&req).unwrap();
                let AttestationStatement::Packed { sig, .. } = &resp.att_stmt else {
                    panic!()
                };
                let signed = [resp.auth_data.as_slice(), &CDH].concat();
                assert!(
                    batch
                        .verify(&signed, &Signature::from_der(sig).unwrap())
                        .is_err()
                );
            }
            (other, kind) => panic!("{kind:?} gave {other:?}"),
        }
    }
}

#[test]
fn reset_only_in_window_and_with_presence() {
    let mut h = Harness::new(SoftKeyOptions::default());
    h.set_pin("1234");
    let req = h.make_credential_request("example.com", b"user", false);
    h.ok(&req).unwrap();
    h.now += RESET_WINDOW + Duration::from_secs(1);
    assert_eq!(
        h.ok(&reset::Request).err(),
        Some(StatusCode::CTAP2_ERR_NOT_ALLOWED)
    );
    h.key.power_cycle(h.now);
    assert_eq!(
        h.call(&reset::Request, &mut DenyForTests).err(),
        Some(StatusCode::CTAP2_ERR_OPERATION_DENIED)
    );
    let timeout = VirtualPresence::new(PresencePolicy::WaitForApproval {
        timeout: Duration::from_millis(10),
    });
    assert_eq!(
        h.call(&reset::Request, &mut timeout.clone()).err(),
        Some(StatusCode::CTAP2_ERR_USER_ACTION_TIMEOUT)
    );
    assert!(h.key.pin_is_set());
    h.ok(&reset::Request).unwrap();
    assert!(!h.key.pin_is_set());
    assert_eq!(h.key.pin_retries(), MAX_PIN_RETRIES);
    let info = h.ok(&get_info::Request).unwrap();
    assert_eq!(info.options.unwrap().get("clientPin"), Some(&false));
}

#[test]
fn pin_token_rules_uv_flag_and_puat_required() {
    let mut h = Harness::new(SoftKeyOptions::default());
    h.set_pin("1234");
    // A resident credential needs the token once a PIN is set.
    let req = h.make_credential_request("example.com", b"user", true);
    assert_eq!(h.ok(&req).err(), Some(StatusCode::CTAP2_ERR_PUAT_REQUIRED));
    // Zero-length pinUvAuthParam probe.
    let mut probe = req.clone();
    probe.pin_uv_auth_param = Some(Vec::new());
    probe.pin_uv_auth_protocol = Some(2);
    assert_eq!(h.ok(&probe).err(), Some(StatusCode::CTAP2_ERR_PIN_INVALID));
    // A token for another RP, or without mc, is refused.
    let other = h.token("1234", 0x01, Some("other.com")).unwrap();
    let mut r = req.clone();
    h.with_token(&mut r, &other);
    assert_eq!(h.ok(&r).err(), Some(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID));
    let ga_only = h.token("1234", 0x02, None).unwrap();
    let mut r = req.clone();
    h.with_token(&mut r, &ga_only);
    assert_eq!(h.ok(&r).err(), Some(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID));
    // The right token works once, then its mc permission is gone.
    let token = h.token("1234", 0x01, Some("example.com")).unwrap();
    let mut r = req.clone();
    h.with_token(&mut r, &token);
    let resp = h.ok(&r).unwrap();
    assert!(
        AuthenticatorData::parse(&resp.auth_data)
            .unwrap()
            .flags
            .uv()
    );
    assert_eq!(
        h.key.last_operation(),
        LastOperation {
            user_present: true,
            user_verified: true
        }
    );
    assert_eq!(h.ok(&r).err(), Some(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID));
    // Wrong PIN through the wire: retries move.
    assert_eq!(
        h.token("9999", 0x01, None).err(),
        Some(StatusCode::CTAP2_ERR_PIN_INVALID)
    );
    assert_eq!(h.key.pin_retries(), 7);
}

#[test]
fn resident_credentials_next_assertion_max_and_replacement() {
    let mut h = Harness::new(SoftKeyOptions {
        max_resident: 2,
        ..SoftKeyOptions::default()
    });
    let a = h
        .ok(&h.make_credential_request("example.com", b"alice", true))
        .unwrap();
    let b = h
        .ok(&h.make_credential_request("example.com", b"bob", true))
        .unwrap();
    assert_eq!(
        h.ok(&h.make_credential_request("example.com", b"carol", true))
            .err(),
        Some(StatusCode::CTAP2_ERR_KEY_STORE_FULL)
    );
    // Same user again replaces the old credential.
    let a2 = h
        .ok(&h.make_credential_request("example.com", b"alice", true))
        .unwrap();
    assert_eq!(h.key.credentials().len(), 2);
    let (a_id, _) = credential_public_key(&a);
    let (_, b_key) = credential_public_key(&b);
    let (a2_id, a2_key) = credential_public_key(&a2);
    assert_ne!(a_id, a2_id);
    // Discoverable: newest first, then GetNextAssertion; user is the id only without UV.
    let first = h.ok(&assertion_request("example.com", None)).unwrap();
    assert_eq!(first.number_of_credentials, Some(2));
    assert_eq!(first.credential.as_ref().unwrap().id, a2_id);
    assert_eq!(first.user.as_ref().unwrap().id, b"alice");
    assert_eq!(first.user.as_ref().unwrap().name, None);
    assert!(verify_assertion(&a2_key, &first));
    let second = h.ok(&get_next_assertion::Request).unwrap();
    assert_eq!(second.user.as_ref().unwrap().id, b"bob");
    assert!(verify_assertion(&b_key, &second));
    assert_eq!(
        h.ok(&get_next_assertion::Request).err(),
        Some(StatusCode::CTAP2_ERR_NOT_ALLOWED)
    );
    // The replaced credential is gone for good.
    assert_eq!(
        h.ok(&assertion_request("example.com", Some(&a_id))).err(),
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
    );
    // GetNextAssertion state expires after 30 s.
    h.ok(&assertion_request("example.com", None)).unwrap();
    h.now += Duration::from_secs(31);
    assert_eq!(
        h.ok(&get_next_assertion::Request).err(),
        Some(StatusCode::CTAP2_ERR_NOT_ALLOWED)
    );
    // Assertion denied by the user.
    assert_eq!(
        h.call(&assertion_request("example.com", None), &mut DenyForTests)
            .err(),
        Some(StatusCode::CTAP2_ERR_OPERATION_DENIED)
    );
}

#[test]
fn non_resident_ids_forged_or_foreign_are_rejected_and_counter_moves() {
    let mut h = Harness::new(SoftKeyOptions::default());
    let resp = h
        .ok(&h.make_credential_request("example.com", b"user", false))
        .unwrap();
    let (id, key) = credential_public_key(&resp);
    assert!(
        h.key.credentials().is_empty(),
        "non-resident credentials are not stored"
    );
    let a1 = h.ok(&assertion_request("example.com", Some(&id))).unwrap();
    let a2 = h.ok(&assertion_request("example.com", Some(&id))).unwrap();
    assert!(verify_assertion(&key, &a1) && verify_assertion(&key, &a2));
    let c1 = AuthenticatorData::parse(&a1.auth_data).unwrap().sign_count;
    let c2 = AuthenticatorData::parse(&a2.auth_data).unwrap().sign_count;
    assert!(c2 > c1);
    assert_eq!(a1.number_of_credentials, None);
    let mut forged = id.clone();
    forged[5] ^= 0x80;
    assert_eq!(
        h.ok(&assertion_request("example.com", Some(&forged))).err(),
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
    );
    assert_eq!(
        h.ok(&assertion_request("evil.com", Some(&id))).err(),
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
    );
    // Silent assertion (up = false): UP flag clear.
    let mut silent = assertion_request("example.com", Some(&id));
    silent.options = Some([("up".to_owned(), false)].into());
    let s = h.call(&silent, &mut DenyForTests).unwrap();
    assert!(!AuthenticatorData::parse(&s.auth_data).unwrap().flags.up());
    // Forced bad signatures fail verification.
    h.key.set_force_bad_signature(true);
    let bad = h.ok(&assertion_request("example.com", Some(&id))).unwrap();
    assert!(!verify_assertion(&key, &bad));
    // excludeList with a known credential.
    let mut mc = h.make_credential_request("example.com", b"user", false);
    mc.exclude_list = Some(vec![PublicKeyCredentialDescriptor::public_key(id)]);
    assert_eq!(
        h.ok(&mc).err(),
        Some(StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED)
    );
}

#[test]
fn cred_protect_levels() {
    let mut h = Harness::new(SoftKeyOptions::default());
    let mut ids = Vec::new();
    for (level, user) in [(1u8, b"one"), (2, b"two"), (3, b"thr")] {
        let mut req = h.make_credential_request("example.com", user, true);
        req.extensions = Some(MakeCredentialExtensions {
            cred_protect: Some(crate::ctap2::extensions::CredProtect(level)),
            ..Default::default()
        });
        let resp = h.ok(&req).unwrap();
        let auth = AuthenticatorData::parse(&resp.auth_data).unwrap();
        assert_eq!(
            auth.extensions.unwrap().cred_protect.map(|c| c.0),
            Some(level)
        );
        ids.push(credential_public_key(&resp).0);
    }
    // Without UV and without allowList: only level 1 is discoverable.
    let a = h.ok(&assertion_request("example.com", None)).unwrap();
    assert_eq!(a.number_of_credentials, Some(1));
    assert_eq!(a.credential.unwrap().id, ids[0]);
    // With the allowList: level 2 is usable, level 3 is not.
    assert!(
        h.ok(&assertion_request("example.com", Some(&ids[1])))
            .is_ok()
    );
    assert_eq!(
        h.ok(&assertion_request("example.com", Some(&ids[2]))).err(),
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
    );
    // With UV (PIN token) all three.
    h.set_pin("1234");
    let token = h.token("1234", 0x02, Some("example.com")).unwrap();
    let mut req = assertion_request("example.com", None);
    ga_with_token(&mut req, &token);
    assert_eq!(h.ok(&req).unwrap().number_of_credentials, Some(3));
    // An invalid level is refused.
    let mut req = h.make_credential_request("example.com", b"bad", false);
    req.extensions = Some(MakeCredentialExtensions {
        cred_protect: Some(crate::ctap2::extensions::CredProtect(7)),
        ..Default::default()
    });
    assert_eq!(
        h.ok(&req).err(),
        Some(StatusCode::CTAP1_ERR_INVALID_PARAMETER)
    );
}

#[test]
fn hmac_secret_outputs_match_credrandom_and_differ_with_uv() {
    let mut h = Harness::new(SoftKeyOptions::default());
    let mut req = h.make_credential_request("example.com", b"user", true);
    req.extensions = Some(MakeCredentialExtensions {
        hmac_secret: Some(true),
        cred_blob: Some(b"blob!".to_vec()),
        ..Default::default()
    });
    let resp = h.ok(&req).unwrap();
    let ext = AuthenticatorData::parse(&resp.auth_data)
        .unwrap()
        .extensions
        .unwrap();
    assert_eq!(ext.hmac_secret, Some(HmacSecretOutput::Created(true)));
    assert_eq!(ext.cred_blob, Some(CredBlobOutput::Stored(true)));
    let cred = h.key.credentials()[0].clone();
    let salt1 = [0x5a; 32];
    let salt2 = [0xa5; 32];

    let hmac = |h: &mut Harness,
                salt2: Option<&[u8; 32]>,
                token: Option<&(PinProtocol, Vec<u8>)>,
                protocol| {
        let session = h.session(protocol);
        let mut rng = os_rng();
        let input = session.hmac_secret_input(&salt1, salt2, &mut rng).unwrap();
        let mut req = assertion_request("example.com", None);
        req.extensions = Some(GetAssertionExtensions {
            hmac_secret: Some(input),
            cred_blob: Some(true),
            ..Default::default()
        });
        if let Some(token) = token {
            ga_with_token(&mut req, token);
        }
        let resp = h.ok(&req).unwrap();
        let ext = AuthenticatorData::parse(&resp.auth_data)
            .unwrap()
            .extensions
            .unwrap();
        assert_eq!(ext.cred_blob, Some(CredBlobOutput::Blob(b"blob!".to_vec())));
        let Some(HmacSecretOutput::Output(enc)) = ext.hmac_secret else {
            panic!("no hmac-secret output")
        };
        session
            .hmac_secret_output(&enc)
            .unwrap()
            .expose_secret()
            .clone()
    };
    let no_uv = hmac(&mut h, None, None, PinProtocol::One);
    assert_eq!(
        no_uv,
        keys::hmac_sha256(cred.cred_random_no_uv.expose_secret(), &[&salt1])
    );
    assert_eq!(hmac(&mut h, None, None, PinProtocol::Two), no_uv);
    let two = hmac(&mut h, Some(&salt2), None, PinProtocol::Two);
    assert_eq!(two.len(), 64);
    assert_eq!(two[..32], no_uv[..]);
    assert_eq!(
        two[32..],
        keys::hmac_sha256(cred.cred_random_no_uv.expose_secret(), &[&salt2])
    );
    h.set_pin("1234");
    let token = h.token("1234", 0x02, Some("example.com")).unwrap();
    let uv = hmac(&mut h, None, Some(&token), PinProtocol::Two);
    assert_eq!(
        uv,
        keys::hmac_sha256(cred.cred_random_uv.expose_secret(), &[&salt1])
    );
    assert_ne!(uv, no_uv);
}

#[test]
fn credential_management_and_prototype_alias() {
    let mut h = Harness::new(SoftKeyOptions::default());
    h.set_pin("1234");
    for (rp, user) in [("a.com", b"u1"), ("b.com", b"u2"), ("a.com", b"u3")] {
        let token = h.token("1234", 0x01, Some(rp)).unwrap();
        let mut req = h.make_credential_request(rp, user, true);
        h.with_token(&mut req, &token);
        h.ok(&req).unwrap();
    }
    let token = h.token("1234", 0x04, None).unwrap();
    let authed = |sub, params: Option<cm::SubCommandParams>| {
        let mut req = cm::Request::new(sub, params);
        req.pin_uv_auth_protocol = Some(token.0.version());
        req.pin_uv_auth_param = Some(token.0.authenticate(&token.1, &req.auth_message()));
        req
    };
    let meta = h
        .ok(&authed(cm::SubCommand::GET_CREDS_METADATA, None))
        .unwrap();
    assert_eq!(meta.existing_resident_credentials_count, Some(3));
    assert_eq!(
        meta.max_possible_remaining_resident_credentials_count,
        Some(22)
    );
    // The same through the FIDO_2_1_PRE command byte 0x41.
    let mut proto = authed(cm::SubCommand::GET_CREDS_METADATA, None).encode();
    proto[0] = 0x41;
    let raw = h.raw(&proto, &mut AutoApproveForTests);
    assert_eq!(raw[0], 0);
    assert_eq!(
        cm::Response::decode(&raw[1..])
            .unwrap()
            .existing_resident_credentials_count,
        Some(3)
    );
    // Enumerate RPs.
    let first = h
        .ok(&authed(cm::SubCommand::ENUMERATE_RPS_BEGIN, None))
        .unwrap();
    assert_eq!(first.total_rps, Some(2));
    assert_eq!(first.rp.unwrap().id, "a.com");
    let next = h
        .ok(&cm::Request::new(
            cm::SubCommand::ENUMERATE_RPS_GET_NEXT_RP,
            None,
        ))
        .unwrap();
    assert_eq!(next.rp.unwrap().id, "b.com");
    assert_eq!(
        h.ok(&cm::Request::new(
            cm::SubCommand::ENUMERATE_RPS_GET_NEXT_RP,
            None
        ))
        .err(),
        Some(StatusCode::CTAP2_ERR_NOT_ALLOWED)
    );
    // Enumerate credentials of a.com, delete one, update a user.
    let params = cm::SubCommandParams {
        rp_id_hash: Some(keys::sha256(b"a.com")),
        ..Default::default()
    };
    let c1 = h
        .ok(&authed(
            cm::SubCommand::ENUMERATE_CREDENTIALS_BEGIN,
            Some(params.clone()),
        ))
        .unwrap();
    assert_eq!(c1.total_credentials, Some(2));
    assert_eq!(c1.user.as_ref().unwrap().id, b"u1");
    let c2 = h
        .ok(&cm::Request::new(
            cm::SubCommand::ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
            None,
        ))
        .unwrap();
    assert_eq!(c2.user.as_ref().unwrap().id, b"u3");
    let del = cm::SubCommandParams {
        credential_id: c1.credential_id.clone(),
        ..Default::default()
    };
    h.ok(&authed(
        cm::SubCommand::DELETE_CREDENTIAL,
        Some(del.clone()),
    ))
    .unwrap();
    assert_eq!(
        h.ok(&authed(cm::SubCommand::DELETE_CREDENTIAL, Some(del)))
            .err(),
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
    );
    let upd = cm::SubCommandParams {
        credential_id: c2.credential_id.clone(),
        user: Some(PublicKeyCredentialUserEntity {
            id: b"u3".to_vec(),
            name: Some("new".into()),
            display_name: None,
        }),
        ..Default::default()
    };
    h.ok(&authed(cm::SubCommand::UPDATE_USER_INFORMATION, Some(upd)))
        .unwrap();
    let c = h
        .ok(&authed(
            cm::SubCommand::ENUMERATE_CREDENTIALS_BEGIN,
            Some(params),
        ))
        .unwrap();
    assert_eq!(c.total_credentials, Some(1));
    assert_eq!(c.user.unwrap().name.as_deref(), Some("new"));
    // Without a token: PUAT_REQUIRED; with a wrong param: PIN_AUTH_INVALID.
    assert_eq!(
        h.ok(&cm::Request::new(cm::SubCommand::GET_CREDS_METADATA, None))
            .err(),
        Some(StatusCode::CTAP2_ERR_PUAT_REQUIRED)
    );
    let mut bad = authed(cm::SubCommand::GET_CREDS_METADATA, None);
    bad.pin_uv_auth_param = Some(vec![0; 32]);
    assert_eq!(
        h.ok(&bad).err(),
        Some(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID)
    );
}

#[test]
fn config_min_pin_length_force_change_and_always_uv() {
    let mut h = Harness::new(SoftKeyOptions::default());
    h.set_pin("1234");
    let token = h.token("1234", 0x20, None).unwrap();
    let authed = |sub, params| {
        let mut req = config::Request::new(sub, params);
        req.pin_uv_auth_protocol = Some(token.0.version());
        req.pin_uv_auth_param = Some(token.0.authenticate(&token.1, &req.auth_message()));
        req
    };
    let params = config::SubCommandParams::SetMinPinLength(config::SetMinPinLengthParams {
        new_min_pin_length: Some(6),
        min_pin_length_rp_ids: Some(vec!["example.com".into()]),
        force_change_pin: None,
    });
    h.ok(&authed(
        config::SubCommand::SET_MIN_PIN_LENGTH,
        Some(params),
    ))
    .unwrap();
    let info = h.ok(&get_info::Request).unwrap();
    assert_eq!(info.min_pin_length, Some(6));
    assert_eq!(
        info.force_pin_change,
        Some(true),
        "the 4-digit PIN is now too short"
    );
    assert_eq!(
        h.token("1234", 0x01, None).err(),
        Some(StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION)
    );
    // Shorter than before is refused.
    let shorter = config::SubCommandParams::SetMinPinLength(config::SetMinPinLengthParams {
        new_min_pin_length: Some(5),
        ..Default::default()
    });
    assert_eq!(
        h.ok(&authed(
            config::SubCommand::SET_MIN_PIN_LENGTH,
            Some(shorter)
        ))
        .err(),
        Some(StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION)
    );
    // Change the PIN to a 6-digit one; the minPinLength extension reports it to example.com.
    let session = h.session(PinProtocol::One);
    let mut rng = os_rng();
    let change = session.change_pin("1234", "123456", &mut rng).unwrap();
    h.ok(&change).unwrap();
    let token = h.token("123456", 0x01 | 0x20, Some("example.com")).unwrap();
    let mut mc = h.make_credential_request("example.com", b"u", false);
    mc.extensions = Some(MakeCredentialExtensions {
        min_pin_length: Some(true),
        ..Default::default()
    });
    h.with_token(&mut mc, &token);
    let resp = h.ok(&mc).unwrap();
    let ext = AuthenticatorData::parse(&resp.auth_data)
        .unwrap()
        .extensions
        .unwrap();
    assert_eq!(ext.min_pin_length, Some(6));
    // toggleAlwaysUv: then even a non-resident credential needs the token.
    let token = h.token("123456", 0x20, None).unwrap();
    let mut toggle = config::Request::new(config::SubCommand::TOGGLE_ALWAYS_UV, None);
    toggle.pin_uv_auth_protocol = Some(2);
    toggle.pin_uv_auth_param = Some(token.0.authenticate(&token.1, &toggle.auth_message()));
    h.ok(&toggle).unwrap();
    assert_eq!(
        h.ok(&get_info::Request)
            .unwrap()
            .options
            .unwrap()
            .get("alwaysUv"),
        Some(&true)
    );
    let mc = h.make_credential_request("example.com", b"u", false);
    assert_eq!(h.ok(&mc).err(), Some(StatusCode::CTAP2_ERR_PUAT_REQUIRED));
}

#[test]
fn large_blobs_write_read_and_integrity() {
    let mut h = Harness::new(SoftKeyOptions::default());
    let read = |h: &mut Harness| {
        h.ok(&large_blobs::Request::read(0, 4096))
            .unwrap()
            .config
            .unwrap()
    };
    assert_eq!(read(&mut h), EMPTY_LARGE_BLOB_ARRAY_FOR_TESTS);
    assert_eq!(
        keys::sha256(&[0x80])[..16],
        EMPTY_LARGE_BLOB_ARRAY_FOR_TESTS[1..]
    );
    let body = vec![0x81, 0x41, 0x07];
    let mut blob = body.clone();
    blob.extend_from_slice(&keys::sha256(&body)[..16]);
    h.set_pin("1234");
    let token = h.token("1234", 0x10, None).unwrap();
    let write = |h: &mut Harness, blob: &[u8], offset: usize, length: Option<u64>, chunk: &[u8]| {
        let mut req = large_blobs::Request::read(offset as u64, 0);
        req.get = None;
        req.set = Some(chunk.to_vec());
        req.length = length;
        req.pin_uv_auth_protocol = Some(2);
        req.pin_uv_auth_param = Some(token.0.authenticate(
            &token.1,
            &large_blobs::Request::set_auth_message(offset as u32, chunk),
        ));
        let _ = blob;
        h.ok(&req)
    };
    // In two fragments.
    write(&mut h, &blob, 0, Some(blob.len() as u64), &blob[..10]).unwrap();
    write(&mut h, &blob, 10, None, &blob[10..]).unwrap();
    assert_eq!(read(&mut h), blob);
    // Out of sequence, and a bad trailer.
    assert_eq!(
        write(&mut h, &blob, 5, None, &blob[5..]).err(),
        Some(StatusCode::CTAP1_ERR_INVALID_SEQ)
    );
    let mut bad = blob.clone();
    bad[0] = 0x82;
    assert_eq!(
        write(&mut h, &bad, 0, Some(bad.len() as u64), &bad).err(),
        Some(StatusCode::CTAP2_ERR_INTEGRITY_FAILURE)
    );
    assert_eq!(read(&mut h), blob);
    // Too large for the store.
    assert_eq!(
        write(&mut h, &blob, 0, Some(1 << 20), &blob).err(),
        Some(StatusCode::CTAP2_ERR_LARGE_BLOB_STORAGE_FULL)
    );
}

const EMPTY_LARGE_BLOB_ARRAY_FOR_TESTS: [u8; 17] = super::softkey::EMPTY_LARGE_BLOB_ARRAY;

#[test]
fn injected_credentials_counters_and_file_vault_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.state");
    let vault_key = crate::secret::Secret::new([3u8; 32]);
    let options = SoftKeyOptions {
        counter: CounterMode::PerCredential,
        ..SoftKeyOptions::default()
    };
    let now = Instant::now();
    let mut key = SoftKey::with_vault(
        options.clone(),
        Box::new(FileVault::new(&path, vault_key.clone())),
        Box::new(SeededRandomForTests::new(9)),
        now,
    )
    .unwrap();
    let injected = key
        .inject_credential(InjectCredential {
            sign_count: 41,
            ..InjectCredential::discoverable("example.com", b"injected")
        })
        .unwrap();
    key.set_pin_for_test("4321").unwrap();
    let verifying = VerifyingKey::from(&injected.signing_key().unwrap());
    let resp = key.handle_cbor(
        &assertion_request("example.com", None).encode(),
        &mut AutoApproveForTests,
        now,
    );
    let resp = decode_response::<get_assertion::Request>(&resp).unwrap();
    assert!(verify_assertion(&verifying, &resp));
    assert_eq!(
        AuthenticatorData::parse(&resp.auth_data)
            .unwrap()
            .sign_count,
        42
    );
    assert_eq!(key.global_counter(), 0);
    drop(key);

    // A new process with the same vault sees the credential, its counter and the PIN.
    let mut key = SoftKey::with_vault(
        options,
        Box::new(FileVault::new(&path, vault_key)),
        Box::new(SeededRandomForTests::new(10)),
        now,
    )
    .unwrap();
    assert!(key.pin_is_set());
    assert_eq!(key.credentials().len(), 1);
    assert_eq!(key.credentials()[0].sign_count, 42);
    assert!(
        key.inject_credential(InjectCredential::discoverable("example.com", b"x"))
            .is_ok()
    );
    assert!(
        key.inject_credential(InjectCredential {
            id: Some(injected.id.clone()),
            ..InjectCredential::discoverable("a", b"y")
        })
        .is_err()
    );
    assert!(key.remove_credential(&injected.id).unwrap());
    let resp = key.handle_cbor(
        &assertion_request("example.com", Some(&injected.id)).encode(),
        &mut AutoApproveForTests,
        now,
    );
    assert_eq!(resp, [StatusCode::CTAP2_ERR_NO_CREDENTIALS.0]);
    // Restarted with another AAGUID: new attestation material naming it.
    drop(key);
    let other_aaguid = [0x77; 16];
    let key = SoftKey::with_vault(
        SoftKeyOptions {
            aaguid: other_aaguid,
            ..SoftKeyOptions::default()
        },
        Box::new(FileVault::new(&path, crate::secret::Secret::new([3u8; 32]))),
        Box::new(SeededRandomForTests::new(12)),
        now,
    )
    .unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(key.attestation_cert_der()).unwrap();
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.4.1.45724.1.1.4")
        .unwrap();
    assert_eq!(&ext.value[2..], &other_aaguid);
    assert!(key.pin_is_set());
    // The wrong vault key cannot open the state.
    let wrong = SoftKey::with_vault(
        SoftKeyOptions::default(),
        Box::new(FileVault::new(&path, crate::secret::Secret::new([4u8; 32]))),
        Box::new(SeededRandomForTests::new(11)),
        now,
    );
    assert!(matches!(wrong, Err(AuthnError::Unseal)));
}

#[test]
fn garbage_and_mutated_requests_never_panic() {
    let mut h = Harness::new(SoftKeyOptions::default());
    h.set_pin("1234");
    let mut rng = SeededRandomForTests::new(77);
    let mut byte = || {
        let mut b = [0u8; 1];
        let _ = rng.fill(&mut b);
        b[0]
    };
    let token = h.token("1234", 0x3f & !0x08, None).unwrap();
    let mut mc = h.make_credential_request("example.com", b"user", true);
    h.with_token(&mut mc, &token);
    let mut ga = assertion_request("example.com", None);
    ga_with_token(&mut ga, &token);
    let session = h.session(PinProtocol::Two);
    let mut os = os_rng();
    let seeds: Vec<Vec<u8>> = vec![
        mc.encode(),
        ga.encode(),
        session.set_pin("5678", &mut os).unwrap().encode(),
        session.get_pin_token("1234", &mut os).unwrap().encode(),
        cm::Request::new(cm::SubCommand::ENUMERATE_RPS_BEGIN, None).encode(),
        large_blobs::Request::read(0, 64).encode(),
        vec![0x04],
    ];
    for round in 0..3000 {
        let mut request = seeds[round % seeds.len()].clone();
        match byte() % 4 {
            0 => {
                let i = usize::from(byte()) % request.len();
                request[i] ^= byte() | 1;
            }
            1 => request.truncate(usize::from(byte()) % request.len().max(1)),
            2 => request.extend((0..usize::from(byte() % 16)).map(|_| byte())),
            _ => request = (0..usize::from(byte())).map(|_| byte()).collect(),
        }
        let response = h.raw(&request, &mut AutoApproveForTests);
        assert!(!response.is_empty());
        let apdu: Vec<u8> = (0..usize::from(byte() % 80)).map(|_| byte()).collect();
        assert!(h.key.handle_u2f(&apdu, &mut AutoApproveForTests).len() >= 2);
    }
}

/// The keys derived from the master secret follow it: after a reset, IDs wrapped under the old
/// master secret are unknown, and IDs wrapped under the new one work.
#[test]
fn wrapped_ids_follow_the_master_secret_across_reset() {
    let mut h = Harness::new(SoftKeyOptions::default());
    let req = h.make_credential_request("example.com", b"user", false);
    let (old_id, old_key) = credential_public_key(&h.ok(&req).unwrap());
    let before = h
        .ok(&assertion_request("example.com", Some(&old_id)))
        .unwrap();
    assert!(verify_assertion(&old_key, &before));
    h.ok(&reset::Request).unwrap();
    assert_eq!(
        h.ok(&assertion_request("example.com", Some(&old_id))).err(),
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
    );
    let (new_id, new_key) = credential_public_key(&h.ok(&req).unwrap());
    let after = h
        .ok(&assertion_request("example.com", Some(&new_id)))
        .unwrap();
    assert!(verify_assertion(&new_key, &after));
}

/// Enterprise attestation (CTAP 2.1 §7.1, §6.1.2 step 9, §6.11.1): "ep" is reported only by a
/// capable key, false until authenticatorConfig enables it; vendor-facilitated requests get it
/// only for the listed RP IDs, platform-managed ones for any; reset disables it again.
#[test]
fn enterprise_attestation_enable_request_and_reset() {
    // Not capable: no "ep", and the parameter is refused.
    let mut plain = Harness::new(SoftKeyOptions::default());
    let info = plain.ok(&get_info::Request).unwrap();
    assert_eq!(info.options.unwrap().get("ep"), None);
    let mut mc = plain.make_credential_request("corp.example", b"u", false);
    mc.enterprise_attestation = Some(2);
    assert_eq!(
        plain.ok(&mc).err(),
        Some(StatusCode::CTAP1_ERR_INVALID_PARAMETER)
    );
    let enable = config::Request::new(config::SubCommand::ENABLE_ENTERPRISE_ATTESTATION, None);
    assert_eq!(
        plain.ok(&enable).err(),
        Some(StatusCode::CTAP2_ERR_INVALID_SUBCOMMAND)
    );

    let mut h = Harness::new(SoftKeyOptions {
        enterprise_attestation: Some(vec!["corp.example".into()]),
        ..SoftKeyOptions::default()
    });
    let ep = |h: &mut Harness| {
        h.ok(&get_info::Request)
            .unwrap()
            .options
            .unwrap()
            .get("ep")
            .copied()
    };
    assert_eq!(ep(&mut h), Some(false));
    // Capable but disabled: refused as if not capable.
    let mut mc = h.make_credential_request("corp.example", b"u", false);
    mc.enterprise_attestation = Some(1);
    assert_eq!(
        h.ok(&mc).err(),
        Some(StatusCode::CTAP1_ERR_INVALID_PARAMETER)
    );
    // With a PIN set, enabling needs a token with the acfg permission.
    h.set_pin("1234");
    assert_eq!(
        h.ok(&enable).err(),
        Some(StatusCode::CTAP2_ERR_PUAT_REQUIRED)
    );
    let token = h.token("1234", 0x20, None).unwrap();
    let mut authed = enable.clone();
    authed.pin_uv_auth_protocol = Some(token.0.version());
    authed.pin_uv_auth_param = Some(token.0.authenticate(&token.1, &authed.auth_message()));
    h.ok(&authed).unwrap();
    assert_eq!(ep(&mut h), Some(true));

    let batch = |h: &mut Harness| h.key.attestation_ca_der().to_vec();
    let ca_der = batch(&mut h);
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let ca_key = VerifyingKey::from_sec1_bytes(&ca.public_key().subject_public_key.data).unwrap();
    let mut check = |rp: &str, kind: Option<u64>| {
        let token = h.token("1234", 0x01, Some(rp)).unwrap();
        let mut mc = h.make_credential_request(rp, b"u", false);
        mc.enterprise_attestation = kind;
        h.with_token(&mut mc, &token);
        let resp = h.ok(&mc)?;
        let AttestationStatement::Packed {
            sig,
            x5c: Some(x5c),
            ..
        } = &resp.att_stmt
        else {
            panic!("{:?}", resp.att_stmt)
        };
        let (_, cert) = x509_parser::parse_x509_certificate(&x5c[0]).unwrap();
        ca_key
            .verify(
                cert.tbs_certificate.as_ref(),
                &Signature::from_der(&cert.signature_value.data).unwrap(),
            )
            .unwrap();
        let signer =
            VerifyingKey::from_sec1_bytes(&cert.public_key().subject_public_key.data).unwrap();
        let signed = [resp.auth_data.as_slice(), &CDH].concat();
        signer
            .verify(&signed, &Signature::from_der(sig).unwrap())
            .unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok::<_, StatusCode>((resp.ep_att, cn))
    };
    let (ep_att, regular) = check("corp.example", None).unwrap();
    assert_eq!(ep_att, None);
    assert_eq!(regular, "keygate software key batch");
    // Vendor-facilitated: only for the burned-in RP ID.
    let (ep_att, unique) = check("corp.example", Some(1)).unwrap();
    assert_eq!(ep_att, Some(true));
    assert!(
        unique.starts_with("keygate software key ") && unique != regular,
        "{unique}"
    );
    assert_eq!(
        check("other.example", Some(1)).unwrap(),
        (None, regular.clone())
    );
    // Platform-managed: for any RP the platform vouches for.
    assert_eq!(
        check("other.example", Some(2)).unwrap(),
        (Some(true), unique.clone())
    );
    assert_eq!(
        check("corp.example", Some(3)).err(),
        Some(StatusCode::CTAP2_ERR_INVALID_OPTION)
    );

    // Reset turns it off again.
    h.key.power_cycle(h.now);
    h.ok(&reset::Request).unwrap();
    assert_eq!(ep(&mut h), Some(false));
}
