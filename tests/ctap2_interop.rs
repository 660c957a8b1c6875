//! The `ctap2` codec and PIN/UV auth protocols against an outside oracle: python-fido2
//! (`fido2==2.2.1`, found through `$KEYGATE_PYTHON`).
//!
//! Interop rule (COMMON.md): without the tool, the tests print `skipped: ...` and pass, unless
//! `KEYGATE_REQUIRE_INTEROP=1`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod interop;

use std::path::Path;

use keygate::ctap2::Value;
use keygate::ctap2::commands::{
    client_pin, config, credential_management as cm, get_assertion, get_info, large_blobs,
    make_credential,
};
use keygate::ctap2::extensions::{
    CredProtect, GetAssertionExtensions, HmacSecretInput, MakeCredentialExtensions,
};
use keygate::ctap2::pin_protocol::{
    KeyAgreementKey, Permissions, PinProtocol, PlatformSession, pad_pin, pin_hash,
};
use keygate::ctap2::u2f;
use keygate::ctap2::{
    AttestationStatement, AttestedCredentialData, AuthenticatorData, AuthenticatorDataFlags,
    CoseKey, CtapRequest, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use serde_json::json;

fn run_script(python: &Path, script: &str, input: &serde_json::Value) -> serde_json::Value {
    interop::run_json(python, script, &[], input)
}

fn field(value: &serde_json::Value, name: &str) -> Vec<u8> {
    hex::decode(
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {value}")),
    )
    .unwrap()
}

fn counter_rng(seed: u8) -> impl FnMut(&mut [u8]) {
    let mut next = seed;
    move |buf: &mut [u8]| {
        for byte in buf {
            *byte = next;
            next = next.wrapping_mul(31).wrapping_add(7);
        }
    }
}

fn p256_coordinates(key: &CoseKey) -> ([u8; 32], [u8; 32]) {
    match key {
        CoseKey::P256 { x, y, .. } => (*x, *y),
        other => panic!("not P-256: {other:?}"),
    }
}

/// python-fido2's own published protocol-1 vectors (tests/test_ctap2.py, `TestClientPin`): fixed
/// platform key, authenticator key, shared secret, PIN hash encryption, token decryption, setPIN
/// and changePIN parameters. Needs no python.
#[test]
fn python_fido2_published_protocol_one_vectors() {
    let platform = KeyAgreementKey::from_secret_bytes(
        &hex::decode("7452E599FEE739D8A653F6A507343D12D382249108A651402520B72F24FE7684")
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let (x, y) = p256_coordinates(&platform.public_key());
    assert_eq!(
        hex::encode_upper(x),
        "44D78D7989B97E62EA993496C9EF6E8FD58B8B00715F9A89153DDD9C4657E47F"
    );
    assert_eq!(
        hex::encode_upper(y),
        "EC802EE7D22BD4E100F12E48537EB4E7E96ED3A47A0A3BD5F5EEAB65001664F9"
    );
    let device = CoseKey::P256 {
        alg: -25,
        x: hex::decode("0501D5BC78DA9252560A26CB08FCC60CBE0B6D3B8E1D1FCEE514FAC0AF675168")
            .unwrap()
            .try_into()
            .unwrap(),
        y: hex::decode("D551B3ED46F665731F95B4532939C25D91DB7EB844BD96D4ABD4083785F8DF47")
            .unwrap()
            .try_into()
            .unwrap(),
    };
    let shared = platform.decapsulate(PinProtocol::One, &device).unwrap();
    assert_eq!(
        hex::encode(shared.expose_secret()),
        "c42a039d548100dfba521e487debcbbb8b66bb7496f8b1862a7a395ed83e1a1c"
    );
    let session = PlatformSession {
        key_agreement: platform.public_key(),
        shared,
    };
    let mut rng = counter_rng(1);

    let request = session.get_pin_token("1234", &mut rng).unwrap();
    assert_eq!(
        hex::encode(request.pin_hash_enc.as_deref().unwrap()),
        "afe8327ce416da8ee3d057589c2ce1a9"
    );
    let response = client_pin::Response {
        pin_uv_auth_token: Some(hex::decode("7A9F98E31B77BE90F9C64D12E9635040").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        hex::encode(session.decrypt_token(&response).unwrap().expose_secret()),
        "aff12c6dcfbf9df52f7a09211e8865cd"
    );

    let request = session.set_pin("1234", &mut rng).unwrap();
    assert_eq!(
        hex::encode(request.new_pin_enc.as_deref().unwrap()),
        "0222fc42c6dd76a274a7057858b9b29d98e8a722ec2dc6668476168c5320473cec9907b4cd76ce7943c96ba5683943211d84471e64d9c51e54763488cd66526a"
    );
    assert_eq!(
        hex::encode(request.pin_uv_auth_param.as_deref().unwrap()),
        "7b40c084ccc5794194189ab57836475f"
    );

    let request = session.change_pin("1234", "4321", &mut rng).unwrap();
    assert_eq!(
        hex::encode(request.new_pin_enc.as_deref().unwrap()),
        "4280e14aac4fcbf02dd079985f0c0ffc9ea7d5f9c173fd1a4c843826f7590cb3c2d080c6923e2fe6d7a52c31ea1309d3fcca3dedae8a2ef14b6330cafc79339e"
    );
    assert_eq!(
        hex::encode(request.pin_hash_enc.as_deref().unwrap()),
        "afe8327ce416da8ee3d057589c2ce1a9"
    );
    assert_eq!(
        hex::encode(request.pin_uv_auth_param.as_deref().unwrap()),
        "fb97e92f3724d7c85e001d7f93e6490a"
    );
}

/// Live oracle: python-fido2's PinProtocolV1/V2 on fixed keys against ours, both directions.
#[test]
fn pin_protocols_match_python_fido2() {
    let Some(python) = interop::python() else {
        return;
    };
    let authenticator_priv = [0x21u8; 32];
    let platform_priv = [0x42u8; 32];
    let plaintext: Vec<u8> = (0..64u8).collect();
    let message = b"message authenticated by both sides".to_vec();
    let token = [0x33u8; 32];
    let pin = "12345678é";
    let authenticator = KeyAgreementKey::from_secret_bytes(&authenticator_priv).unwrap();
    let platform = KeyAgreementKey::from_secret_bytes(&platform_priv).unwrap();
    let mut rng = counter_rng(9);

    let protocols = [PinProtocol::One, PinProtocol::Two];
    let mut ours = Vec::new();
    let mut cases = Vec::new();
    for protocol in protocols {
        let shared = platform
            .decapsulate(protocol, &authenticator.public_key())
            .unwrap();
        let ciphertext = shared.encrypt(&plaintext, &mut rng).unwrap();
        cases.push(json!({
            "protocol": protocol.version(),
            "authenticator_priv": hex::encode(authenticator_priv),
            "platform_priv": hex::encode(platform_priv),
            "plaintext": hex::encode(&plaintext),
            "message": hex::encode(&message),
            "token": hex::encode(token),
            "our_ciphertext": hex::encode(&ciphertext),
            "pin": pin,
        }));
        ours.push((protocol, shared, ciphertext));
    }
    let results = run_script(&python, "ctap2_pin_oracle.py", &json!(cases));

    for ((protocol, shared, ciphertext), result) in
        ours.into_iter().zip(results.as_array().unwrap())
    {
        let name = format!("{protocol:?}");
        let (x, y) = p256_coordinates(&authenticator.public_key());
        assert_eq!(field(result, "authenticator_x"), x, "{name}");
        assert_eq!(field(result, "authenticator_y"), y, "{name}");
        let (x, y) = p256_coordinates(&platform.public_key());
        assert_eq!(
            (field(result, "platform_x"), field(result, "platform_y")),
            (x.to_vec(), y.to_vec()),
            "{name}"
        );
        // Shared secret: python's platform view == ours from both sides.
        assert_eq!(
            field(result, "shared"),
            shared.expose_secret(),
            "{name} shared secret"
        );
        let theirs = authenticator
            .decapsulate(protocol, &platform.public_key())
            .unwrap();
        assert_eq!(theirs.expose_secret(), shared.expose_secret(), "{name}");
        // encrypt / decrypt both ways.
        assert_eq!(
            field(result, "our_decrypted"),
            plaintext,
            "{name}: python decrypts ours"
        );
        let python_ciphertext = field(result, "python_ciphertext");
        assert_eq!(
            shared.decrypt(&python_ciphertext).unwrap().expose_secret(),
            &plaintext,
            "{name}: we decrypt python's"
        );
        if protocol == PinProtocol::One {
            assert_eq!(python_ciphertext, ciphertext, "protocol 1 is deterministic");
        } else {
            assert_eq!(
                python_ciphertext.len(),
                16 + plaintext.len(),
                "IV prepended"
            );
        }
        // authenticate with the shared secret and with a token.
        assert_eq!(
            field(result, "authenticate_shared"),
            shared.authenticate(&message),
            "{name}"
        );
        assert_eq!(
            field(result, "authenticate_token"),
            protocol.authenticate(&token, &message),
            "{name}"
        );
        assert!(protocol.verify(&token, &message, &field(result, "authenticate_token")));
        // python-fido2 encapsulated against our authenticator key; we decapsulate.
        let python_platform = CoseKey::P256 {
            alg: -25,
            x: field(result, "encapsulated_x").try_into().unwrap(),
            y: field(result, "encapsulated_y").try_into().unwrap(),
        };
        let decapsulated = authenticator
            .decapsulate(protocol, &python_platform)
            .unwrap();
        assert_eq!(
            decapsulated.expose_secret(),
            field(result, "encapsulated_shared"),
            "{name} decapsulate"
        );
        // PIN encoding.
        assert_eq!(
            field(result, "pin_hash"),
            pin_hash(pin.as_bytes()).expose_secret()
        );
        assert_eq!(
            field(result, "padded_pin"),
            pad_pin(pin).unwrap().expose_secret().as_slice()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CBOR: python-fido2 builds requests (its Ctap2, CredentialManagement, Config, LargeBlobs) against
// responses we encoded; its requests must equal ours byte for byte, and it must accept our
// responses with strict canonical checking.

const TOKEN: [u8; 32] = [0x3C; 32];
const LARGE_BLOB_KEY: [u8; 32] = [0x4B; 32];

fn options(pairs: &[(&str, bool)]) -> Option<std::collections::BTreeMap<String, bool>> {
    Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
}

fn our_info() -> get_info::Response {
    get_info::Response {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        extensions: Some(vec![
            "credProtect".into(),
            "hmac-secret".into(),
            "largeBlobKey".into(),
            "credBlob".into(),
            "minPinLength".into(),
        ]),
        aaguid: [0xA5; 16],
        options: options(&[
            ("rk", true),
            ("up", true),
            ("clientPin", true),
            ("credMgmt", true),
            ("authnrCfg", true),
            ("largeBlobs", true),
            ("setMinPINLength", true),
            ("pinUvAuthToken", true),
            ("makeCredUvNotRqd", true),
        ]),
        max_msg_size: Some(1200),
        pin_uv_auth_protocols: Some(vec![2, 1]),
        max_credential_count_in_list: Some(8),
        max_credential_id_length: Some(128),
        transports: Some(vec!["usb".into()]),
        algorithms: Some(vec![PublicKeyCredentialParameters::es256()]),
        max_serialized_large_blob_array: Some(1024),
        min_pin_length: Some(4),
        firmware_version: Some(7),
        max_cred_blob_length: Some(32),
        remaining_discoverable_credentials: Some(10),
        ..Default::default()
    }
}

fn credential_id() -> Vec<u8> {
    vec![0xAA; 16]
}

fn user() -> PublicKeyCredentialUserEntity {
    PublicKeyCredentialUserEntity {
        id: b"user-1".to_vec(),
        name: Some("alice".into()),
        display_name: Some("Alice".into()),
    }
}

fn descriptor() -> PublicKeyCredentialDescriptor {
    PublicKeyCredentialDescriptor::public_key(credential_id())
}

fn our_auth_data(attested: bool) -> AuthenticatorData {
    AuthenticatorData {
        rp_id_hash: [0x0E; 32],
        flags: AuthenticatorDataFlags(AuthenticatorDataFlags::UP | AuthenticatorDataFlags::UV),
        sign_count: 77,
        attested_credential_data: attested.then(|| AttestedCredentialData {
            aaguid: [0xA5; 16],
            credential_id: credential_id(),
            credential_public_key: KeyAgreementKey::from_secret_bytes(&[0x17; 32])
                .map(|key| {
                    let (x, y) = p256_coordinates(&key.public_key());
                    CoseKey::P256 { alg: -7, x, y }
                })
                .unwrap(),
        }),
        extensions: None,
    }
}

fn python_key_agreement() -> CoseKey {
    CoseKey::P256 {
        alg: -25,
        x: [0x11; 32],
        y: [0x12; 32],
    }
}

#[test]
fn cbor_matches_python_fido2() {
    let Some(python) = interop::python() else {
        return;
    };
    let protocol = PinProtocol::Two;

    // Our responses.
    let mc_response = make_credential::Response {
        auth_data: our_auth_data(true).to_bytes(),
        att_stmt: AttestationStatement::Packed {
            alg: -7,
            sig: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
            x5c: None,
        },
        ep_att: None,
        large_blob_key: None,
    };
    let ga_response = get_assertion::Response {
        credential: Some(descriptor()),
        auth_data: our_auth_data(false).to_bytes(),
        signature: vec![0x30, 0x06, 0x02, 0x01, 0x02, 0x02, 0x01, 0x02],
        user: Some(user()),
        number_of_credentials: Some(2),
        user_selected: None,
        large_blob_key: None,
    };
    let pin_response = client_pin::Response {
        key_agreement: Some(python_key_agreement()),
        pin_uv_auth_token: Some(vec![0x61; 48]),
        pin_retries: Some(8),
        power_cycle_state: Some(false),
        uv_retries: None,
    };
    let cm_response = cm::Response {
        user: Some(user()),
        credential_id: Some(descriptor()),
        public_key: our_auth_data(true)
            .attested_credential_data
            .map(|a| a.credential_public_key),
        total_credentials: Some(2),
        cred_protect: Some(CredProtect(2)),
        large_blob_key: Some(LARGE_BLOB_KEY.to_vec()),
        ..Default::default()
    };
    let entry =
        large_blobs::LargeBlobEntry::seal(&LARGE_BLOB_KEY, b"hello from keygate", [0x0C; 12])
            .unwrap();
    let blob_array = large_blobs::encode_array(&[entry.to_value()]);
    let lb_response = large_blobs::Response {
        config: Some(blob_array.clone()),
    };
    let prototype_info = get_info::Response {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1_PRE".into()],
        aaguid: [0xA5; 16],
        options: options(&[("clientPin", true), ("credentialMgmtPreview", true)]),
        max_msg_size: Some(1200),
        pin_uv_auth_protocols: Some(vec![2, 1]),
        ..Default::default()
    };
    let mut u2f_public_key = [0x04u8; 65];
    u2f_public_key[1..].copy_from_slice(&[[0x71u8; 32], [0x72; 32]].concat());
    let u2f_registration = u2f::RegisterResponse {
        public_key: u2f_public_key,
        key_handle: vec![0x6B; 64],
        attestation_certificate: [&[0x30, 0x81, 0x80][..], &[0x04; 0x80]].concat(),
        signature: vec![0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x06],
    };
    let u2f_signature = u2f::AuthenticateResponse {
        user_presence: 1,
        counter: 0x0102_0304,
        signature: vec![0x30, 0x03, 0x02, 0x01, 0x07],
    };
    let input = json!({
        "responses": {
            "4": hex::encode(our_info().encode()),
            "1": hex::encode(mc_response.encode()),
            "2": hex::encode(ga_response.encode()),
            "8": hex::encode(ga_response.encode()),
            "6": hex::encode(pin_response.encode()),
            "10": hex::encode(cm_response.encode()),
            "65": hex::encode(cm_response.encode()),
            "12": hex::encode(lb_response.encode()),
        },
        "token": hex::encode(TOKEN),
        "large_blob_key": hex::encode(LARGE_BLOB_KEY),
        "prototype_info": hex::encode(prototype_info.encode()),
        "u2f_responses": {
            "3": hex::encode(u2f::encode_response(u2f::VERSION, u2f::StatusWord::NO_ERROR)),
            "1": hex::encode(u2f::encode_response(&u2f_registration.encode().unwrap(), u2f::StatusWord::NO_ERROR)),
            "2": hex::encode(u2f::encode_response(&u2f_signature.encode(), u2f::StatusWord::NO_ERROR)),
        },
    });
    let output = run_script(&python, "ctap2_cbor_oracle.py", &input);

    // python-fido2 parsed our responses (strict canonical CBOR) to the values we put in.
    let parsed = &output["parsed"];
    assert_eq!(parsed["versions"], json!(["FIDO_2_0", "FIDO_2_1"]));
    assert_eq!(parsed["max_msg_size"], json!(1200));
    assert_eq!(parsed["pin_uv_protocols"], json!([2, 1]));
    assert_eq!(parsed["options"]["credMgmt"], json!(true));
    assert_eq!(parsed["aaguid"], json!(hex::encode([0xA5; 16])));
    assert_eq!(parsed["mc_fmt"], json!("packed"));
    assert_eq!(
        parsed["mc_auth_data"],
        json!(hex::encode(&mc_response.auth_data))
    );
    assert_eq!(parsed["mc_counter"], json!(77));
    assert_eq!(
        parsed["mc_credential_id"],
        json!(hex::encode(credential_id()))
    );
    assert_eq!(
        parsed["ga_signature"],
        json!(hex::encode(&ga_response.signature))
    );
    assert_eq!(parsed["ga_user_id"], json!(hex::encode(b"user-1")));
    assert_eq!(parsed["ga_number_of_credentials"], json!(2));
    assert_eq!(parsed["pin_retries"], json!(8));
    assert_eq!(parsed["pin_token"], json!(hex::encode([0x61; 48])));
    assert_eq!(parsed["credman_count"], json!(2));
    assert_eq!(
        parsed["large_blob"],
        json!(hex::encode(b"hello from keygate")),
        "python opens our large-blob entry"
    );

    // The requests python-fido2 sent, in order.
    let requests: Vec<(String, Vec<u8>)> = output["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                hex::decode(pair[1].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let mut expected: Vec<(&str, Option<Vec<u8>>)> = vec![("get_info", Some(vec![0x04]))];
    expected.push((
        "make_credential",
        Some(
            make_credential::Request {
                client_data_hash: vec![1; 32],
                rp: PublicKeyCredentialRpEntity {
                    id: "example.com".into(),
                    name: Some("Example".into()),
                },
                user: user(),
                pub_key_cred_params: vec![
                    PublicKeyCredentialParameters::es256(),
                    PublicKeyCredentialParameters {
                        type_: "public-key".into(),
                        alg: -257,
                    },
                ],
                exclude_list: Some(vec![descriptor()]),
                extensions: Some(MakeCredentialExtensions {
                    cred_protect: Some(CredProtect(2)),
                    hmac_secret: Some(true),
                    ..Default::default()
                }),
                options: options(&[("rk", true)]),
                pin_uv_auth_param: Some(vec![0x22; 16]),
                pin_uv_auth_protocol: Some(1),
                enterprise_attestation: None,
            }
            .encode(),
        ),
    ));
    expected.push((
        "get_assertion",
        Some(
            get_assertion::Request {
                rp_id: "example.com".into(),
                client_data_hash: vec![2; 32],
                allow_list: Some(vec![PublicKeyCredentialDescriptor {
                    transports: Some(vec!["usb".into(), "nfc".into()]),
                    ..descriptor()
                }]),
                extensions: Some(GetAssertionExtensions {
                    hmac_secret: Some(HmacSecretInput {
                        key_agreement: python_key_agreement(),
                        salt_enc: vec![0x33; 48],
                        salt_auth: vec![0x44; 32],
                        pin_uv_auth_protocol: Some(2),
                    }),
                    ..Default::default()
                }),
                options: options(&[("up", false), ("uv", true)]),
                pin_uv_auth_param: Some(vec![0x55; 32]),
                pin_uv_auth_protocol: Some(2),
            }
            .encode(),
        ),
    ));
    expected.push(("get_next_assertion", Some(vec![0x08])));
    expected.push((
        "client_pin",
        Some(
            client_pin::Request::get_pin_uv_auth_token_using_pin_with_permissions(
                2,
                python_key_agreement(),
                vec![0x66; 32],
                Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION,
                Some("example.com".into()),
            )
            .encode(),
        ),
    ));
    let authed = |mut request: cm::Request| {
        request.pin_uv_auth_protocol = Some(protocol.version());
        request.pin_uv_auth_param = Some(protocol.authenticate(&TOKEN, &request.auth_message()));
        request
    };
    let begin = authed(cm::Request::new(
        cm::SubCommand::ENUMERATE_CREDENTIALS_BEGIN,
        Some(cm::SubCommandParams {
            rp_id_hash: Some([0x77; 32]),
            ..Default::default()
        }),
    ));
    expected.push(("credman", Some(begin.encode())));
    expected.push((
        "credman",
        Some(
            cm::Request::new(
                cm::SubCommand::ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
                None,
            )
            .encode(),
        ),
    ));
    expected.push((
        "credman",
        Some(
            authed(cm::Request::new(
                cm::SubCommand::DELETE_CREDENTIAL,
                Some(cm::SubCommandParams {
                    credential_id: Some(descriptor()),
                    ..Default::default()
                }),
            ))
            .encode(),
        ),
    ));
    expected.push((
        "credman",
        Some(
            authed(cm::Request::new(
                cm::SubCommand::UPDATE_USER_INFORMATION,
                Some(cm::SubCommandParams {
                    credential_id: Some(descriptor()),
                    user: Some(PublicKeyCredentialUserEntity {
                        id: b"user-1".to_vec(),
                        name: Some("alice2".into()),
                        display_name: Some("Alice Two".into()),
                    }),
                    ..Default::default()
                }),
            ))
            .encode(),
        ),
    ));
    let mut set_min = config::Request::new(
        config::SubCommand::SET_MIN_PIN_LENGTH,
        Some(config::SubCommandParams::SetMinPinLength(
            config::SetMinPinLengthParams {
                new_min_pin_length: Some(6),
                min_pin_length_rp_ids: Some(vec!["example.com".into()]),
                force_change_pin: Some(true),
            },
        )),
    );
    set_min.pin_uv_auth_protocol = Some(2);
    set_min.pin_uv_auth_param = Some(protocol.authenticate(&TOKEN, &set_min.auth_message()));
    expected.push(("config", Some(set_min.encode())));
    let read = large_blobs::Request::read(0, 1200 - 64).encode();
    expected.push(("large_blobs", Some(read.clone())));
    expected.push(("large_blobs", Some(read)));
    expected.push(("large_blobs", None)); // the write: random nonce, checked below
    expected.push(("selection", Some(vec![0x0B])));
    expected.push(("reset", Some(vec![0x07])));
    expected.push(("prototype_get_info", Some(vec![0x04])));
    expected.push((
        "prototype_credman",
        Some(authed(cm::Request::new(cm::SubCommand::GET_CREDS_METADATA, None)).encode_prototype()),
    ));

    expected.push(("u2f_version", None));
    expected.push(("u2f_register", None));
    expected.push(("u2f_authenticate", None));
    expected.push(("u2f_check_only", None));
    let u2f_requests = [
        u2f::U2fRequest::Version,
        u2f::U2fRequest::Register(u2f::RegisterRequest {
            challenge: [0xC1; 32],
            application: [0xA1; 32],
        }),
        u2f::U2fRequest::Authenticate(u2f::AuthenticateRequest {
            control: u2f::AuthenticateControl::ENFORCE_USER_PRESENCE_AND_SIGN,
            challenge: [0xC2; 32],
            application: [0xA1; 32],
            key_handle: vec![0x6B; 64],
        }),
        u2f::U2fRequest::Authenticate(u2f::AuthenticateRequest {
            control: u2f::AuthenticateControl::CHECK_ONLY,
            challenge: [0xC2; 32],
            application: [0xA1; 32],
            key_handle: vec![0x6B; 64],
        }),
    ];
    assert_eq!(parsed["u2f_version"], json!("U2F_V2"));
    assert_eq!(parsed["u2f_public_key"], json!(hex::encode(u2f_public_key)));
    assert_eq!(parsed["u2f_key_handle"], json!(hex::encode([0x6B; 64])));
    assert_eq!(
        parsed["u2f_certificate"],
        json!(hex::encode(&u2f_registration.attestation_certificate))
    );
    assert_eq!(
        parsed["u2f_register_signature"],
        json!(hex::encode(&u2f_registration.signature))
    );
    assert_eq!(parsed["u2f_user_presence"], json!(1));
    assert_eq!(parsed["u2f_counter"], json!(0x0102_0304));
    assert_eq!(
        parsed["u2f_signature"],
        json!(hex::encode(&u2f_signature.signature))
    );
    assert_eq!(parsed["u2f_check_only_sw"], json!(0x6985));
    let python_u2f: Vec<&Vec<u8>> = requests
        .iter()
        .filter(|(label, _)| label.starts_with("u2f_"))
        .map(|(_, apdu)| apdu)
        .collect();
    assert_eq!(python_u2f.len(), u2f_requests.len());
    for (apdu, want) in python_u2f.into_iter().zip(&u2f_requests) {
        assert_eq!(
            &u2f::U2fRequest::decode(apdu).unwrap(),
            want,
            "python APDU {}",
            hex::encode(apdu)
        );
        if *want != u2f::U2fRequest::Version {
            // python-fido2 and we both write extended APDUs with Le = 65536 when there is data.
            assert_eq!(hex::encode(want.encode().unwrap()), hex::encode(apdu));
        }
    }

    assert_eq!(
        requests
            .iter()
            .map(|(label, _)| label.as_str())
            .collect::<Vec<_>>(),
        expected.iter().map(|(label, _)| *label).collect::<Vec<_>>()
    );
    for ((label, theirs), (_, ours)) in requests
        .iter()
        .zip(&expected)
        .filter(|((label, _), _)| !label.starts_with("u2f_"))
    {
        // Every python request decodes with our decoder and re-encodes to the same bytes.
        let decoded =
            CtapRequest::decode(theirs).unwrap_or_else(|status| panic!("{label}: {status}"));
        assert_eq!(
            hex::encode(decoded.encode()),
            hex::encode(theirs),
            "{label}: re-encoding"
        );
        if let Some(ours) = ours {
            assert_eq!(
                hex::encode(ours),
                hex::encode(theirs),
                "{label}: python-fido2 vs keygate"
            );
        }
    }

    // The large-blob write: authenticated as CTAP 2.1 §6.10.2 says, holding our entry and
    // python's new one (AES-256-GCM, raw DEFLATE), which we open.
    let write = &requests
        .iter()
        .filter(|(label, _)| label == "large_blobs")
        .nth(2)
        .unwrap()
        .1;
    let CtapRequest::LargeBlobs(write) = CtapRequest::decode(write).unwrap() else {
        panic!("not largeBlobs")
    };
    let set = write.set.as_deref().unwrap();
    assert_eq!(write.offset, 0);
    assert_eq!(write.length, Some(set.len() as u64));
    assert!(protocol.verify(
        &TOKEN,
        &large_blobs::Request::set_auth_message(0, set),
        write.pin_uv_auth_param.as_deref().unwrap()
    ));
    let elements = large_blobs::decode_array(set).unwrap();
    assert_eq!(elements.len(), 2);
    assert_eq!(elements[0], entry.to_value(), "our entry kept as it was");
    let theirs = large_blobs::LargeBlobEntry::from_value(elements[1].clone()).unwrap();
    assert_eq!(
        theirs.open(&[0x5A; 32]).unwrap().expose_secret(),
        b"written by python-fido2"
    );
    assert!(theirs.open(&LARGE_BLOB_KEY).is_err());
}

/// A small deterministic generator of CBOR values of the kinds CTAP uses (integers of every
/// width and sign, byte and text strings up to 300 bytes, booleans, arrays, and maps with mixed
/// integer and text keys).
struct ValueGenerator(u64);

impl ValueGenerator {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn integer(&mut self) -> i64 {
        let magnitude = match self.below(6) {
            0 => self.below(24),
            1 => 24 + self.below(232),
            2 => 256 + self.below(65_280),
            3 => 65_536 + self.below(1 << 32),
            4 => self.next() >> 2,
            _ => self.below(3),
        } as i64;
        if self.below(2) == 0 {
            magnitude
        } else {
            -1 - magnitude
        }
    }

    fn text(&mut self) -> String {
        let len = match self.below(4) {
            0 => self.below(24),
            1 => 24 + self.below(40),
            2 => 256 + self.below(50),
            _ => self.below(4),
        };
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }

    fn key(&mut self) -> Value {
        if self.below(2) == 0 {
            Value::from(self.integer())
        } else {
            Value::Text(self.text())
        }
    }

    fn value(&mut self, depth: u32) -> Value {
        match if depth == 0 {
            self.below(4)
        } else {
            self.below(6)
        } {
            0 => Value::from(self.integer()),
            1 => Value::Bytes((0..self.below(300)).map(|_| self.next() as u8).collect()),
            2 => Value::Text(self.text()),
            3 => Value::Bool(self.below(2) == 0),
            4 => Value::Array((0..self.below(5)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut entries: Vec<(Value, Value)> = Vec::new();
                for _ in 0..self.below(8) {
                    let key = self.key();
                    if !entries.iter().any(|(k, _)| *k == key) {
                        let value = self.value(depth - 1);
                        entries.push((key, value));
                    }
                }
                Value::Map(entries)
            }
        }
    }
}

/// Our canonical writer against python-fido2's encoder on 2000 random values: python decodes
/// what we wrote and re-encodes it to the same bytes.
#[test]
fn canonical_writer_matches_python_fido2_encoder() {
    let Some(python) = interop::python() else {
        return;
    };
    let mut generator = ValueGenerator(0x9E37_79B9_7F4A_7C15);
    let ours: Vec<String> = (0..2000)
        .map(|_| {
            let value = match generator.value(3) {
                map @ Value::Map(_) => map,
                other => {
                    let first = generator.key();
                    let mut second = generator.key();
                    while second == first {
                        second = generator.key();
                    }
                    Value::Map(vec![(first, other), (second, Value::Bool(true))])
                }
            };
            hex::encode(keygate::ctap2::cbor::to_vec(&value))
        })
        .collect();
    let theirs = run_script(&python, "ctap2_cbor_reencode.py", &json!(ours));
    let theirs: Vec<&str> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap())
        .collect();
    assert_eq!(theirs.len(), ours.len());
    for (ours, theirs) in ours.iter().zip(theirs) {
        assert_eq!(ours, theirs);
    }
}

/// python-fido2's ClientPin as the platform, our primitives as the authenticator: setPIN,
/// changePIN and getPinUvAuthTokenUsingPinWithPermissions for both protocols. We check its
/// requests as an authenticator does (ECDH, verify pinUvAuthParam, decrypt, unpad), and it
/// decrypts the pinUvAuthToken we encrypted.
#[test]
fn client_pin_flow_against_python_fido2_platform() {
    let Some(python) = interop::python() else {
        return;
    };
    let authenticator = KeyAgreementKey::from_secret_bytes(&[0x5A; 32]).unwrap();
    let token = [0x70u8; 32];
    let mut rng = counter_rng(5);
    let mut cases = Vec::new();
    let mut platforms = Vec::new();
    for protocol in [PinProtocol::One, PinProtocol::Two] {
        let platform_priv = [0x6B + protocol.version() as u8; 32];
        let platform = KeyAgreementKey::from_secret_bytes(&platform_priv).unwrap();
        let shared = authenticator
            .decapsulate(protocol, &platform.public_key())
            .unwrap();
        let key_agreement = client_pin::Response {
            key_agreement: Some(authenticator.public_key()),
            ..Default::default()
        };
        let token_response = client_pin::Response {
            pin_uv_auth_token: Some(shared.encrypt(&token, &mut rng).unwrap()),
            ..Default::default()
        };
        cases.push(json!({
            "version": protocol.version(),
            "platform_priv": hex::encode(platform_priv),
            "responses": {
                "2": hex::encode(key_agreement.encode()),
                "9": hex::encode(token_response.encode()),
            },
        }));
        platforms.push((protocol, platform));
    }
    let input = json!({ "info": hex::encode(our_info().encode()), "protocols": cases });
    let results = run_script(&python, "ctap2_pin_flow.py", &input);

    for ((protocol, platform), result) in platforms.iter().zip(results.as_array().unwrap()) {
        let name = format!("{protocol:?}");
        let sent: Vec<Vec<u8>> = result["sent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| hex::decode(item.as_str().unwrap()).unwrap())
            .collect();
        let requests: Vec<client_pin::Request> = sent
            .iter()
            .map(|message| match CtapRequest::decode(message).unwrap() {
                CtapRequest::ClientPin(request) => {
                    assert_eq!(&request.encode(), message, "{name}: re-encoding");
                    request
                }
                other => panic!("{name}: unexpected {other:?}"),
            })
            .collect();
        let subs: Vec<u8> = requests.iter().map(|r| r.sub_command.0).collect();
        assert_eq!(subs, [2, 3, 2, 4, 2, 9], "{name}");
        for request in &requests {
            assert_eq!(
                request.pin_uv_auth_protocol,
                Some(protocol.version()),
                "{name}"
            );
        }
        let shared_of = |request: &client_pin::Request| {
            let key = request.key_agreement.as_ref().unwrap();
            assert_eq!(
                key,
                &platform.public_key(),
                "{name}: the fixed platform key"
            );
            authenticator.decapsulate(*protocol, key).unwrap()
        };
        let padded_len = if *protocol == PinProtocol::One {
            64
        } else {
            80
        };

        // setPIN: verify(newPinEnc), decrypt, unpad.
        let set_pin = &requests[1];
        let shared = shared_of(set_pin);
        let new_pin_enc = set_pin.new_pin_enc.as_deref().unwrap();
        assert_eq!(new_pin_enc.len(), padded_len, "{name}");
        assert!(
            shared.verify(new_pin_enc, set_pin.pin_uv_auth_param.as_deref().unwrap()),
            "{name}"
        );
        let pin = pad_pin("1234").unwrap();
        let decrypted = shared.decrypt(new_pin_enc).unwrap();
        assert_eq!(decrypted.expose_secret(), pin.expose_secret(), "{name}");
        assert_eq!(
            keygate::ctap2::pin_protocol::unpad_pin(decrypted.expose_secret())
                .unwrap()
                .expose_secret(),
            b"1234"
        );

        // changePIN: verify(newPinEnc || pinHashEnc), old PIN hash, new PIN.
        let change = &requests[3];
        let shared = shared_of(change);
        let new_pin_enc = change.new_pin_enc.as_deref().unwrap();
        let pin_hash_enc = change.pin_hash_enc.as_deref().unwrap();
        assert!(
            shared.verify(
                &[new_pin_enc, pin_hash_enc].concat(),
                change.pin_uv_auth_param.as_deref().unwrap()
            ),
            "{name}"
        );
        assert_eq!(
            shared
                .decrypt(pin_hash_enc)
                .unwrap()
                .expose_secret()
                .as_slice(),
            pin_hash(b"1234").expose_secret()
        );
        let new_pin = shared.decrypt(new_pin_enc).unwrap();
        assert_eq!(
            keygate::ctap2::pin_protocol::unpad_pin(new_pin.expose_secret())
                .unwrap()
                .expose_secret(),
            b"87654321"
        );

        // getPinUvAuthTokenUsingPinWithPermissions.
        let get_token = &requests[5];
        let shared = shared_of(get_token);
        assert_eq!(
            get_token.permissions,
            Some(Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION)
        );
        assert_eq!(get_token.rp_id.as_deref(), Some("example.com"));
        let pin_hash_enc = get_token.pin_hash_enc.as_deref().unwrap();
        assert_eq!(
            shared
                .decrypt(pin_hash_enc)
                .unwrap()
                .expose_secret()
                .as_slice(),
            pin_hash(b"87654321").expose_secret()
        );
        // python decrypted the token we encrypted.
        assert_eq!(field(result, "token"), token, "{name}");
    }
}
