//! Black-box tests of the `ctap2` codec: the example messages printed in the CTAP specification,
//! golden bytes for the canonical form, round trips of every command in both directions, the
//! documented status codes for bad input, and property tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use keygate::ctap2::commands::{
    self, Command, CtapRequest, client_pin, config, credential_management as cm, get_assertion,
    get_info, get_next_assertion, large_blobs, make_credential, reset, selection,
};
use keygate::ctap2::extensions::{
    CredBlobOutput, CredProtect, ExtensionOutputs, GetAssertionExtensions, HmacSecretInput,
    HmacSecretOutput, MakeCredentialExtensions,
};
use keygate::ctap2::pin_protocol::Permissions;
use keygate::ctap2::{
    AttestationStatement, AttestedCredentialData, AuthenticatorData, AuthenticatorDataFlags,
    CoseKey, Ctap2Error, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity, StatusCode, Value, cbor,
};
use proptest::prelude::*;

fn spec_example(name: &str) -> Vec<u8> {
    let text = include_str!("data/ctap2/spec_examples.txt");
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no example {name}"));
    hex::decode(line.split_whitespace().nth(1).unwrap()).unwrap()
}

fn client_data_hash() -> Vec<u8> {
    hex::decode("687134968222ec17202e42505f8ed2b16ae22f16bb05b88c25db9e602645f141").unwrap()
}

fn options(pairs: &[(&str, bool)]) -> Option<BTreeMap<String, bool>> {
    Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
}

// ---------------------------------------------------------------------------------------------
// The examples printed in the specification.

/// CTAP 2.1 §6.1 (CTAP 2.0 §5.1) "Example for authenticatorMakeCredential".
#[test]
fn spec_make_credential_request() {
    let bytes = spec_example("make_credential_request");
    let CtapRequest::MakeCredential(request) = CtapRequest::decode(&bytes).unwrap() else {
        panic!("not a MakeCredential");
    };
    assert_eq!(request.client_data_hash, client_data_hash());
    assert_eq!(
        request.rp,
        PublicKeyCredentialRpEntity {
            id: "example.com".into(),
            name: Some("Acme".into())
        }
    );
    assert_eq!(
        request.user.id,
        hex::decode("3082019330820138a0030201023082019330820138a003020102308201933082").unwrap()
    );
    assert_eq!(request.user.name.as_deref(), Some("johnpsmith@example.com"));
    assert_eq!(request.user.display_name.as_deref(), Some("John P. Smith"));
    let algs: Vec<i64> = request.pub_key_cred_params.iter().map(|p| p.alg).collect();
    assert_eq!(algs, [-7, -257]);
    assert!(
        request
            .pub_key_cred_params
            .iter()
            .all(|p| p.type_ == "public-key")
    );
    assert_eq!(request.option("rk"), Some(true));
    assert_eq!(request.exclude_list, None);
    assert_eq!(request.pin_uv_auth_param, None);

    // We drop the deprecated user "icon" member; everything else re-encodes to the same bytes.
    let icon = "6469636f6e782b68747470733a2f2f706963732e6578616d706c652e636f6d2f30302f702f61426a6a6a707150622e706e67";
    let without_icon = hex::encode(&bytes)
        .replacen(icon, "", 1)
        .replacen("03a4", "03a3", 1);
    assert_eq!(hex::encode(request.encode()), without_icon);
}

/// CTAP 2.1 §6.2 (CTAP 2.0 §5.2) "Example for authenticatorGetAssertion".
#[test]
fn spec_get_assertion_request() {
    let bytes = spec_example("get_assertion_request");
    let request = get_assertion::Request::decode(&bytes[1..]).unwrap();
    assert_eq!(request.rp_id, "example.com");
    assert_eq!(request.client_data_hash, client_data_hash());
    let allow = request.allow_list.as_ref().unwrap();
    assert_eq!(allow.len(), 2);
    assert_eq!(allow[0].id.len(), 64);
    assert_eq!(allow[1].id, vec![0x03; 50]);
    assert_eq!(request.option("uv"), Some(true));
    assert_eq!(request.encode(), bytes);
}

/// CTAP 2.1 §6.4 (CTAP 2.0 §5.4) example authenticatorGetInfo response.
#[test]
fn spec_get_info_response() {
    let bytes = spec_example("get_info_response");
    let info = get_info::Response::decode(&bytes).unwrap();
    assert_eq!(info.versions, ["U2F_V2", "FIDO_2_0"]);
    assert_eq!(info.extensions.as_deref().unwrap(), ["uvm", "hmac-secret"]);
    assert_eq!(hex::encode(info.aaguid), "f8a011f38c0a4d15800617111f9edc7d");
    assert!(info.option("rk") && info.option("up"));
    assert_eq!(info.option_value("plat"), Some(false));
    assert_eq!(info.option_value("clientPin"), Some(false));
    assert_eq!(info.max_msg_size, Some(1200));
    assert_eq!(info.pin_uv_auth_protocols.as_deref().unwrap(), [1]);
    assert_eq!(info.encode(), bytes);
}

/// CTAP 2.1 §6.1 example authenticatorMakeCredential response (packed attestation).
#[test]
fn spec_make_credential_response() {
    let bytes = spec_example("make_credential_response");
    let response = make_credential::Response::decode(&bytes).unwrap();
    assert_eq!(response.fmt(), "packed");
    let AttestationStatement::Packed { alg, sig, x5c } = &response.att_stmt else {
        panic!("not packed");
    };
    assert_eq!(*alg, -7);
    assert_eq!(sig.len(), 72);
    assert_eq!(x5c.as_ref().unwrap().len(), 1);
    assert_eq!(x5c.as_ref().unwrap()[0].len(), 0x197);
    let auth_data = response.auth_data().unwrap();
    assert_eq!(
        hex::encode(auth_data.rp_id_hash),
        "0021f5fc0b85cd22e60623bcd7d1ca48948909249b4776eb515154e57b66ae12"
    );
    assert_eq!(auth_data.flags.0, 0x41);
    assert_eq!(auth_data.sign_count, 28);
    let attested = auth_data.attested_credential_data.as_ref().unwrap();
    assert_eq!(
        hex::encode(attested.aaguid),
        "f8a011f38c0a4d15800617111f9edc7d"
    );
    assert_eq!(attested.credential_id.len(), 64);
    let CoseKey::P256 { alg, x, y } = &attested.credential_public_key else {
        panic!("not P-256");
    };
    assert_eq!(*alg, -7);
    assert_eq!(
        hex::encode(x),
        "643566c206dd00227005fa5de69320616ca268043a38f08bde2e9dc45a5cafaf"
    );
    assert_eq!(
        hex::encode(y),
        "171353b2932434703726aae579fa6542432861fe591e481ea22d63997e1a5290"
    );
    attested
        .credential_public_key
        .to_p256()
        .expect("the example key is on the curve");
    // authData re-serializes to the bytes that were signed, the response to the spec bytes.
    assert_eq!(auth_data.to_bytes(), response.auth_data);
    assert_eq!(response.encode(), bytes);
}

/// CTAP 2.1 §6.2 example authenticatorGetAssertion response.
#[test]
fn spec_get_assertion_response() {
    let bytes = spec_example("get_assertion_response");
    let response = get_assertion::Response::decode(&bytes).unwrap();
    let credential = response.credential.as_ref().unwrap();
    assert_eq!(credential.type_, "public-key");
    assert_eq!(credential.id.len(), 64);
    let auth_data = response.auth_data().unwrap();
    assert_eq!(auth_data.flags.0, AuthenticatorDataFlags::UP);
    assert_eq!(auth_data.sign_count, 29);
    assert!(auth_data.attested_credential_data.is_none() && auth_data.extensions.is_none());
    assert_eq!(response.signature.len(), 70);
    assert_eq!(response.user, None);
    assert_eq!(response.number_of_credentials, None);
    assert_eq!(response.encode(), bytes);
    // Through the whole-response helper (status byte first).
    let whole = [&[0x00][..], &bytes].concat();
    assert_eq!(
        commands::decode_response::<get_assertion::Request>(&whole).unwrap(),
        response
    );
    assert!(matches!(
        commands::decode_response::<get_assertion::Request>(&[0x2E]),
        Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_NO_CREDENTIALS))
    ));
    assert!(matches!(
        commands::decode_response::<get_assertion::Request>(&[]),
        Err(Ctap2Error::EmptyResponse)
    ));
}

// ---------------------------------------------------------------------------------------------
// Canonical golden bytes.

fn key_agreement() -> CoseKey {
    CoseKey::P256 {
        alg: -25,
        x: [0x11; 32],
        y: [0x12; 32],
    }
}

#[test]
fn golden_client_pin_request_orders_keys_1_2_3_minus1_minus2() {
    let request = client_pin::Request::get_pin_uv_auth_token_using_pin_with_permissions(
        2,
        key_agreement(),
        vec![0x66; 16],
        Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION,
        Some("a.b".into()),
    );
    let mut want =
        hex::decode("06a6 0102 0209 03a5 0102 0338 18 2001 2158 20".replace(' ', "")).unwrap();
    want.extend_from_slice(&[0x11; 32]);
    want.extend_from_slice(&[0x22, 0x58, 0x20]);
    want.extend_from_slice(&[0x12; 32]);
    want.extend_from_slice(&[0x06, 0x50]);
    want.extend_from_slice(&[0x66; 16]);
    want.extend_from_slice(&hex::decode("0903 0a63612e62".replace(' ', "")).unwrap());
    assert_eq!(hex::encode(request.encode()), hex::encode(&want));
}

#[test]
fn golden_get_assertion_with_options_and_extension() {
    let request = get_assertion::Request {
        rp_id: "a".into(),
        client_data_hash: vec![0; 2],
        allow_list: None,
        extensions: Some(GetAssertionExtensions {
            cred_blob: Some(true),
            ..Default::default()
        }),
        options: options(&[("uv", true), ("up", false)]),
        pin_uv_auth_param: None,
        pin_uv_auth_protocol: None,
    };
    // {1: "a", 2: h'0000', 4: {"credBlob": true}, 5: {"up": false, "uv": true}}
    assert_eq!(
        hex::encode(request.encode()),
        "02a4 0161 61 0242 0000 04a1 68 6372656442 6c6f62 f5 05a2 62 7570 f4 62 7576 f5"
            .replace(' ', "")
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips of every command, both directions.

fn rp() -> PublicKeyCredentialRpEntity {
    PublicKeyCredentialRpEntity {
        id: "example.com".into(),
        name: Some("Example".into()),
    }
}

fn user() -> PublicKeyCredentialUserEntity {
    PublicKeyCredentialUserEntity {
        id: b"user-1".to_vec(),
        name: Some("alice".into()),
        display_name: Some("Alice".into()),
    }
}

fn descriptor() -> PublicKeyCredentialDescriptor {
    PublicKeyCredentialDescriptor {
        type_: "public-key".into(),
        id: vec![0xAA; 16],
        transports: Some(vec!["usb".into(), "nfc".into()]),
    }
}

fn auth_data_bytes(attested: bool) -> Vec<u8> {
    AuthenticatorData {
        rp_id_hash: [7; 32],
        flags: AuthenticatorDataFlags(AuthenticatorDataFlags::UP | AuthenticatorDataFlags::UV),
        sign_count: 42,
        attested_credential_data: attested.then(|| AttestedCredentialData {
            aaguid: [9; 16],
            credential_id: vec![0xAA; 16],
            credential_public_key: CoseKey::P256 {
                alg: -7,
                x: [1; 32],
                y: [2; 32],
            },
        }),
        extensions: Some(ExtensionOutputs {
            cred_protect: Some(CredProtect::USER_VERIFICATION_REQUIRED),
            hmac_secret: Some(if attested {
                HmacSecretOutput::Created(true)
            } else {
                HmacSecretOutput::Output(vec![3; 48])
            }),
            cred_blob: Some(if attested {
                CredBlobOutput::Stored(true)
            } else {
                CredBlobOutput::Blob(vec![4; 8])
            }),
            min_pin_length: attested.then_some(6),
            other: vec![("example".into(), Value::Bool(true))],
        }),
    }
    .to_bytes()
}

fn check_request<C: Command + PartialEq + std::fmt::Debug + Clone>(request: C) -> C {
    let bytes = request.encode();
    assert_eq!(bytes[0], C::CMD);
    let back = C::decode(&bytes[1..]).unwrap();
    assert_eq!(back, request);
    assert_eq!(back.encode(), bytes, "re-encoding is stable");
    let any = CtapRequest::decode(&bytes).unwrap();
    assert_eq!(any.encode(), bytes);
    back
}

fn check_response<C: Command>(response: &C::Response)
where
    C::Response: PartialEq + std::fmt::Debug,
{
    let body = C::encode_response(response);
    assert_eq!(&C::decode_response(&body).unwrap(), response);
    let whole = commands::encode_ok_response::<C>(response);
    assert_eq!(&commands::decode_response::<C>(&whole).unwrap(), response);
}

#[test]
fn round_trip_get_info_reset_selection_next() {
    check_request(get_info::Request);
    check_request(reset::Request);
    check_request(selection::Request);
    check_request(get_next_assertion::Request);
    check_response::<reset::Request>(&reset::Response);
    check_response::<selection::Request>(&selection::Response);
    assert_eq!(reset::Response.encode(), Vec::<u8>::new());
    let info = get_info::Response {
        versions: vec![
            "U2F_V2".into(),
            "FIDO_2_0".into(),
            "FIDO_2_1_PRE".into(),
            "FIDO_2_1".into(),
        ],
        extensions: Some(vec![
            "credProtect".into(),
            "hmac-secret".into(),
            "credBlob".into(),
            "largeBlobKey".into(),
            "minPinLength".into(),
        ]),
        aaguid: [5; 16],
        options: options(&[
            ("rk", true),
            ("up", true),
            ("clientPin", false),
            ("credMgmt", true),
            ("alwaysUv", false),
        ]),
        max_msg_size: Some(7609),
        pin_uv_auth_protocols: Some(vec![2, 1]),
        max_credential_count_in_list: Some(8),
        max_credential_id_length: Some(128),
        transports: Some(vec!["usb".into()]),
        algorithms: Some(vec![PublicKeyCredentialParameters::es256()]),
        max_serialized_large_blob_array: Some(1024),
        force_pin_change: Some(false),
        min_pin_length: Some(4),
        firmware_version: Some(0x0102),
        max_cred_blob_length: Some(32),
        max_rp_ids_for_set_min_pin_length: Some(4),
        preferred_platform_uv_attempts: Some(3),
        uv_modality: Some(0x200),
        certifications: Some([("FIDO".to_owned(), 1)].into_iter().collect()),
        remaining_discoverable_credentials: Some(25),
        vendor_prototype_config_commands: Some(vec![0xFFFF_0000]),
    };
    check_response::<get_info::Request>(&info);
    check_response::<get_info::Request>(&get_info::Response {
        versions: vec!["FIDO_2_0".into()],
        ..Default::default()
    });
}

#[test]
fn round_trip_make_credential() {
    let request = make_credential::Request {
        client_data_hash: vec![1; 32],
        rp: rp(),
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
            cred_protect: Some(CredProtect::USER_VERIFICATION_OPTIONAL_WITH_CREDENTIAL_ID_LIST),
            hmac_secret: Some(true),
            cred_blob: Some(vec![1, 2, 3]),
            min_pin_length: Some(true),
            large_blob_key: Some(true),
            other: vec![("unknownExt".into(), Value::Integer(5.into()))],
        }),
        options: options(&[("rk", true), ("uv", false)]),
        pin_uv_auth_param: Some(vec![0x22; 32]),
        pin_uv_auth_protocol: Some(2),
        enterprise_attestation: Some(1),
    };
    check_request(request);
    check_request(make_credential::Request {
        client_data_hash: vec![1; 32],
        rp: PublicKeyCredentialRpEntity::new("x"),
        user: PublicKeyCredentialUserEntity::new(vec![1]),
        pub_key_cred_params: vec![],
        ..Default::default()
    });
    for att_stmt in [
        AttestationStatement::None,
        AttestationStatement::Packed {
            alg: -7,
            sig: vec![0x30, 1, 0],
            x5c: None,
        },
        AttestationStatement::Packed {
            alg: -7,
            sig: vec![0x30, 1, 0],
            x5c: Some(vec![vec![0x30, 0], vec![0x30, 1, 1]]),
        },
        AttestationStatement::FidoU2f {
            sig: vec![1],
            x5c: vec![vec![0x30, 0]],
        },
        AttestationStatement::Other {
            fmt: "tpm".into(),
            att_stmt: Value::Map(vec![(Value::from("ver"), Value::from("2.0"))]),
        },
    ] {
        let response = make_credential::Response {
            auth_data: auth_data_bytes(true),
            att_stmt,
            ep_att: Some(false),
            large_blob_key: Some(vec![0x5A; 32]),
        };
        check_response::<make_credential::Request>(&response);
        let parsed = response.auth_data().unwrap();
        assert_eq!(parsed.to_bytes(), response.auth_data);
        assert_eq!(parsed.extensions.unwrap().min_pin_length, Some(6));
    }
}

#[test]
fn round_trip_get_assertion_and_next() {
    let (platform, _) = (key_agreement(), ());
    let request = get_assertion::Request {
        rp_id: "example.com".into(),
        client_data_hash: vec![2; 32],
        allow_list: Some(vec![
            descriptor(),
            PublicKeyCredentialDescriptor::public_key(vec![1, 2]),
        ]),
        extensions: Some(GetAssertionExtensions {
            hmac_secret: Some(HmacSecretInput {
                key_agreement: platform,
                salt_enc: vec![0x33; 80],
                salt_auth: vec![0x44; 32],
                pin_uv_auth_protocol: Some(2),
            }),
            cred_blob: Some(true),
            large_blob_key: Some(true),
            other: vec![],
        }),
        options: options(&[("up", false), ("uv", true)]),
        pin_uv_auth_param: Some(vec![0x55; 32]),
        pin_uv_auth_protocol: Some(2),
    };
    check_request(request);
    let response = get_assertion::Response {
        credential: Some(descriptor()),
        auth_data: auth_data_bytes(false),
        signature: vec![0x30, 0x44, 1],
        user: Some(user()),
        number_of_credentials: Some(3),
        user_selected: Some(true),
        large_blob_key: Some(vec![9; 32]),
    };
    check_response::<get_assertion::Request>(&response);
    check_response::<get_next_assertion::Request>(&response);
    let parsed = response.auth_data().unwrap();
    assert_eq!(
        parsed.extensions.unwrap().hmac_secret,
        Some(HmacSecretOutput::Output(vec![3; 48]))
    );
}

#[test]
fn round_trip_client_pin_every_subcommand() {
    let requests = [
        client_pin::Request::get_pin_retries(None),
        client_pin::Request::get_pin_retries(Some(1)),
        client_pin::Request::get_uv_retries(Some(2)),
        client_pin::Request::get_key_agreement(2),
        client_pin::Request::set_pin(2, key_agreement(), vec![1; 80], vec![2; 32]),
        client_pin::Request::change_pin(1, key_agreement(), vec![3; 16], vec![1; 64], vec![2; 16]),
        client_pin::Request::get_pin_token(1, key_agreement(), vec![3; 16]),
        client_pin::Request::get_pin_uv_auth_token_using_pin_with_permissions(
            2,
            key_agreement(),
            vec![3; 32],
            Permissions(0x3F),
            None,
        ),
        client_pin::Request::get_pin_uv_auth_token_using_uv_with_permissions(
            2,
            key_agreement(),
            Permissions::CREDENTIAL_MANAGEMENT,
            Some("rp".into()),
        ),
    ];
    let subcommands: Vec<u8> = requests.iter().map(|r| r.sub_command.0).collect();
    assert_eq!(subcommands, [1, 1, 7, 2, 3, 4, 5, 9, 6]);
    for request in requests {
        check_request(request);
    }
    for response in [
        client_pin::Response::default(),
        client_pin::Response {
            key_agreement: Some(key_agreement()),
            ..Default::default()
        },
        client_pin::Response {
            pin_uv_auth_token: Some(vec![1; 48]),
            ..Default::default()
        },
        client_pin::Response {
            pin_retries: Some(8),
            power_cycle_state: Some(false),
            ..Default::default()
        },
        client_pin::Response {
            uv_retries: Some(3),
            ..Default::default()
        },
    ] {
        check_response::<client_pin::Request>(&response);
    }
    assert!(
        client_pin::Response::default().encode().is_empty(),
        "setPIN answers with a bare status"
    );
}

#[test]
fn round_trip_credential_management_and_prototype() {
    let params = cm::SubCommandParams {
        rp_id_hash: Some([0x77; 32]),
        credential_id: Some(descriptor()),
        user: Some(user()),
    };
    let mut requests = vec![
        cm::Request::new(cm::SubCommand::GET_CREDS_METADATA, None),
        cm::Request::new(cm::SubCommand::ENUMERATE_RPS_BEGIN, None),
        cm::Request::new(cm::SubCommand::ENUMERATE_RPS_GET_NEXT_RP, None),
        cm::Request::new(
            cm::SubCommand::ENUMERATE_CREDENTIALS_BEGIN,
            Some(cm::SubCommandParams {
                rp_id_hash: Some([0x77; 32]),
                ..Default::default()
            }),
        ),
        cm::Request::new(
            cm::SubCommand::ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
            None,
        ),
        cm::Request::new(
            cm::SubCommand::DELETE_CREDENTIAL,
            Some(cm::SubCommandParams {
                credential_id: Some(descriptor()),
                ..Default::default()
            }),
        ),
        cm::Request::new(cm::SubCommand::UPDATE_USER_INFORMATION, Some(params)),
    ];
    for request in &mut requests {
        request.pin_uv_auth_protocol = Some(2);
        request.pin_uv_auth_param = Some(vec![0x88; 32]);
    }
    for request in requests {
        let prototype = request.encode_prototype();
        assert_eq!(prototype[0], 0x41);
        assert_eq!(&prototype[1..], &request.encode()[1..]);
        assert_eq!(
            CtapRequest::decode(&prototype).unwrap(),
            CtapRequest::CredentialManagement {
                request: request.clone(),
                prototype: true
            }
        );
        assert_eq!(
            CtapRequest::CredentialManagement {
                request: request.clone(),
                prototype: true
            }
            .encode(),
            prototype
        );
        check_request(request);
    }
    // auth message: subCommand || canonical(subCommandParams)
    let request = cm::Request::new(
        cm::SubCommand::ENUMERATE_CREDENTIALS_BEGIN,
        Some(cm::SubCommandParams {
            rp_id_hash: Some([0x77; 32]),
            ..Default::default()
        }),
    );
    let mut want = vec![0x04, 0xA1, 0x01, 0x58, 0x20];
    want.extend_from_slice(&[0x77; 32]);
    assert_eq!(request.auth_message(), want);
    assert_eq!(
        cm::Request::new(cm::SubCommand::GET_CREDS_METADATA, None).auth_message(),
        [0x01]
    );

    for response in [
        cm::Response::default(),
        cm::Response {
            existing_resident_credentials_count: Some(3),
            max_possible_remaining_resident_credentials_count: Some(22),
            ..Default::default()
        },
        cm::Response {
            rp: Some(rp()),
            rp_id_hash: Some([1; 32]),
            total_rps: Some(2),
            ..Default::default()
        },
        cm::Response {
            user: Some(user()),
            credential_id: Some(descriptor()),
            public_key: Some(CoseKey::P256 {
                alg: -7,
                x: [1; 32],
                y: [2; 32],
            }),
            total_credentials: Some(2),
            cred_protect: Some(CredProtect(1)),
            large_blob_key: Some(vec![3; 32]),
            ..Default::default()
        },
    ] {
        check_response::<cm::Request>(&response);
    }
}

#[test]
fn round_trip_config_and_large_blobs() {
    let set_min = config::SubCommandParams::SetMinPinLength(config::SetMinPinLengthParams {
        new_min_pin_length: Some(6),
        min_pin_length_rp_ids: Some(vec!["example.com".into()]),
        force_change_pin: Some(true),
    });
    let mut requests = vec![
        config::Request::new(config::SubCommand::ENABLE_ENTERPRISE_ATTESTATION, None),
        config::Request::new(config::SubCommand::TOGGLE_ALWAYS_UV, None),
        config::Request::new(config::SubCommand::SET_MIN_PIN_LENGTH, Some(set_min)),
        config::Request::new(
            config::SubCommand::VENDOR_PROTOTYPE,
            Some(config::SubCommandParams::Other(Value::Map(vec![(
                Value::from(1),
                Value::from(0x1234),
            )]))),
        ),
    ];
    for request in &mut requests {
        request.pin_uv_auth_protocol = Some(1);
        request.pin_uv_auth_param = Some(vec![0x99; 16]);
    }
    let message = requests[2].auth_message();
    assert_eq!(
        &message[..34],
        &[&[0xFF; 32][..], &[0x0D, 0x03]].concat()[..]
    );
    assert_eq!(
        hex::encode(&message[34..]),
        "a3010602816b6578616d706c652e636f6d03f5"
    );
    for request in requests {
        check_request(request);
    }
    check_response::<config::Request>(&config::Response);

    check_request(large_blobs::Request::read(0, 1024));
    check_request(large_blobs::Request {
        get: None,
        set: Some(large_blobs::empty_array()),
        offset: 0,
        length: Some(17),
        pin_uv_auth_param: Some(vec![1; 32]),
        pin_uv_auth_protocol: Some(2),
    });
    check_response::<large_blobs::Request>(&large_blobs::Response {
        config: Some(large_blobs::empty_array()),
    });
    check_response::<large_blobs::Request>(&large_blobs::Response::default());
}

// ---------------------------------------------------------------------------------------------
// Bad input: each case with its documented status code.

fn status(message: &[u8]) -> u8 {
    CtapRequest::decode(message).unwrap_err().0
}

fn with_cmd(cmd: u8, value: Value) -> Vec<u8> {
    [vec![cmd], cbor::to_vec(&value)].concat()
}

fn int_map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

fn minimal_make_credential() -> Vec<(i64, Value)> {
    vec![
        (1, Value::Bytes(vec![0; 32])),
        (2, rp().to_value()),
        (3, user().to_value()),
        (
            4,
            Value::Array(vec![PublicKeyCredentialParameters::es256().to_value()]),
        ),
    ]
}

#[test]
fn wrong_types_are_0x11() {
    // The parameters are not a map.
    assert_eq!(status(&with_cmd(0x01, Value::Array(vec![]))), 0x11);
    assert_eq!(status(&with_cmd(0x06, Value::from(5))), 0x11);
    // A member of the wrong type, at each level.
    let cases: Vec<(usize, Value)> = vec![
        (0, Value::from("not bytes")),
        (1, Value::from("rp as text")),
        (
            2,
            Value::Map(vec![(Value::from("id"), Value::from("text id"))]),
        ),
        (3, Value::Array(vec![Value::from(-7)])),
    ];
    for (index, wrong) in cases {
        let mut entries = minimal_make_credential();
        entries[index].1 = wrong;
        assert_eq!(
            status(&with_cmd(0x01, int_map(entries))),
            0x11,
            "member {}",
            index + 1
        );
    }
    let mut entries = minimal_make_credential();
    entries.push((7, Value::Map(vec![(Value::from("rk"), Value::from(1))])));
    assert_eq!(
        status(&with_cmd(0x01, int_map(entries))),
        0x11,
        "option value not bool"
    );
    let mut entries = minimal_make_credential();
    entries.push((
        6,
        Value::Map(vec![(Value::from("hmac-secret"), Value::from("yes"))]),
    ));
    assert_eq!(
        status(&with_cmd(0x01, int_map(entries))),
        0x11,
        "extension value"
    );
    assert_eq!(
        status(&with_cmd(0x06, int_map(vec![(2, Value::from(-1))]))),
        0x11,
        "negative subCommand"
    );
    assert_eq!(
        status(&with_cmd(0x0C, int_map(vec![(3, Value::Bool(true))]))),
        0x11
    );
    assert_eq!(
        status(&with_cmd(
            0x06,
            int_map(vec![
                (1, Value::from(2)),
                (2, Value::from(2)),
                (3, Value::Bytes(vec![]))
            ])
        )),
        0x11,
        "keyAgreement not a map"
    );
}

#[test]
fn malformed_trailing_and_deep_cbor_are_0x12() {
    let good = with_cmd(0x01, int_map(minimal_make_credential()));
    assert!(CtapRequest::decode(&good).is_ok());
    for len in 1..good.len() {
        assert_eq!(status(&good[..len]), 0x12, "truncated to {len}");
    }
    let mut trailing = good.clone();
    trailing.push(0x00);
    assert_eq!(status(&trailing), 0x12);
    assert_eq!(status(&[0x04, 0x00]), 0x03, "GetInfo takes no parameters");
    assert_eq!(status(&[0x06, 0xFF]), 0x12, "break outside indefinite item");
    assert_eq!(
        status(&[0x06, 0xA1, 0x02, 0x1C]),
        0x12,
        "reserved additional info"
    );
    assert_eq!(
        status(&[0x06, 0xA2, 0x02, 0x01, 0x02, 0x01]),
        0x12,
        "duplicate key"
    );
    // Nesting: extensions with 9 levels of arrays (depth 10 overall) is too deep; 8 is fine.
    let nested = |levels: usize| {
        let mut value = Value::from(0);
        for _ in 0..levels {
            value = Value::Array(vec![value]);
        }
        let mut entries = minimal_make_credential();
        entries.push((6, Value::Map(vec![(Value::from("x-deep"), value)])));
        with_cmd(0x01, int_map(entries))
    };
    assert!(CtapRequest::decode(&nested(6)).is_ok(), "depth 8 accepted");
    assert_eq!(status(&nested(7)), 0x12, "depth 9 rejected");
}

/// Writes `value` as given (map entries in insertion order, ciborium's writer).
fn as_given(cmd: u8, value: &Value) -> Vec<u8> {
    let mut out = vec![cmd];
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

#[test]
fn non_canonical_requests_are_0x12_and_responses_are_not_checked() {
    // Canonical, as our writer and python-fido2 write it: accepted.
    let canonical = with_cmd(0x01, int_map(minimal_make_credential()));
    assert!(CtapRequest::decode(&canonical).is_ok());
    // ciborium writes maps in insertion order: the same map in canonical order is identical...
    assert_eq!(
        as_given(0x01, &int_map(minimal_make_credential())),
        canonical
    );
    // ...but top-level keys out of order (2, 1, 3, 4) are not canonical.
    let mut swapped = minimal_make_credential();
    swapped.swap(0, 1);
    assert_eq!(
        status(&as_given(0x01, &int_map(swapped))),
        0x12,
        "keys 2, 1"
    );
    // Nested: text keys of the user entity, "name" before "id" (length first: "id" < "name").
    let mut nested = minimal_make_credential();
    nested[2].1 = Value::Map(vec![
        (Value::from("name"), Value::from("a")),
        (Value::from("id"), Value::Bytes(vec![1])),
    ]);
    assert_eq!(status(&as_given(0x01, &int_map(nested))), 0x12, "user keys");
    // Options "uv" before "rk".
    let mut opts = minimal_make_credential();
    opts.push((
        7,
        Value::Map(vec![
            (Value::from("uv"), Value::Bool(false)),
            (Value::from("rk"), Value::Bool(true)),
        ]),
    ));
    assert_eq!(
        status(&as_given(0x01, &int_map(opts))),
        0x12,
        "options keys"
    );

    // Non-shortest integers: getPINRetries {1: 1, 2: 1} with subCommand as 0x18 0x01, and the
    // map key 1 as 0x18 0x01.
    let get_pin_retries = [0x06, 0xA2, 0x01, 0x01, 0x02, 0x01];
    assert!(CtapRequest::decode(&get_pin_retries).is_ok());
    assert_eq!(status(&[0x06, 0xA2, 0x01, 0x01, 0x02, 0x18, 0x01]), 0x12);
    assert_eq!(status(&[0x06, 0xA2, 0x18, 0x01, 0x01, 0x02, 0x01]), 0x12);
    assert_eq!(
        status(&[0x06, 0xA2, 0x01, 0x19, 0x00, 0x01, 0x02, 0x01]),
        0x12
    );
    // A non-shortest length head (5-byte string as 0x58 0x05) and indefinite lengths.
    let canonical_blob = [&[0x0C, 0xA2, 0x02, 0x45][..], b"abcde", &[0x03, 0x00]].concat();
    assert!(CtapRequest::decode(&canonical_blob).is_ok());
    let long_head = [&[0x0C, 0xA2, 0x02, 0x58, 0x05][..], b"abcde", &[0x03, 0x00]].concat();
    assert_eq!(status(&long_head), 0x12, "length head");
    let indefinite_bytes = [
        &[0x0C, 0xA2, 0x02, 0x5F, 0x45][..],
        b"abcde",
        &[0xFF, 0x03, 0x00],
    ]
    .concat();
    assert_eq!(status(&indefinite_bytes), 0x12, "indefinite byte string");
    assert_eq!(
        status(&[0x06, 0xBF, 0x01, 0x01, 0x02, 0x01, 0xFF]),
        0x12,
        "indefinite map"
    );

    // Responses (host side) stay lenient: a GetInfo reply with its keys out of order decodes.
    let info = get_info::Response {
        versions: vec!["FIDO_2_1".into()],
        aaguid: [7; 16],
        max_msg_size: Some(1200),
        ..Default::default()
    };
    let Value::Map(mut entries) = info.to_value() else {
        panic!("not a map")
    };
    entries.reverse();
    let mut reply = Vec::new();
    ciborium::ser::into_writer(&Value::Map(entries), &mut reply).unwrap();
    assert_ne!(reply, info.encode());
    assert_eq!(get_info::Response::decode(&reply).unwrap(), info);
}

#[test]
fn depth_ctap_needs_is_accepted() {
    // GetAssertion → extensions → hmac-secret → COSE key: 4 levels; allowList → descriptor →
    // transports: 3 + 1.
    let request = get_assertion::Request {
        rp_id: "a".into(),
        client_data_hash: vec![0; 32],
        allow_list: Some(vec![descriptor()]),
        extensions: Some(GetAssertionExtensions {
            hmac_secret: Some(HmacSecretInput {
                key_agreement: key_agreement(),
                salt_enc: vec![0; 32],
                salt_auth: vec![0; 16],
                pin_uv_auth_protocol: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        get_assertion::Request::decode(&request.encode()[1..]).unwrap(),
        request
    );
}

#[test]
fn missing_required_members_are_0x14() {
    for missing in 1..=4 {
        let entries: Vec<_> = minimal_make_credential()
            .into_iter()
            .filter(|(k, _)| *k != missing)
            .collect();
        assert_eq!(
            status(&with_cmd(0x01, int_map(entries))),
            0x14,
            "makeCredential without {missing}"
        );
    }
    assert_eq!(
        status(&with_cmd(0x02, int_map(vec![(1, Value::from("a"))]))),
        0x14
    );
    assert_eq!(
        status(&with_cmd(
            0x02,
            int_map(vec![(2, Value::Bytes(vec![0; 32]))])
        )),
        0x14
    );
    assert_eq!(
        status(&with_cmd(0x06, int_map(vec![(1, Value::from(2))]))),
        0x14,
        "no subCommand"
    );
    // Subcommand-specific members of ClientPIN.
    let ka = key_agreement().to_value();
    let pin_cases: Vec<Vec<(i64, Value)>> = vec![
        vec![(2, Value::from(2))],
        vec![
            (1, Value::from(2)),
            (2, Value::from(3)),
            (3, ka.clone()),
            (4, Value::Bytes(vec![1])),
        ],
        vec![
            (1, Value::from(2)),
            (2, Value::from(4)),
            (3, ka.clone()),
            (4, Value::Bytes(vec![1])),
            (5, Value::Bytes(vec![1])),
        ],
        vec![(1, Value::from(2)), (2, Value::from(5)), (3, ka.clone())],
        vec![
            (1, Value::from(2)),
            (2, Value::from(9)),
            (3, ka.clone()),
            (6, Value::Bytes(vec![1])),
        ],
        vec![(1, Value::from(2)), (2, Value::from(6)), (3, ka)],
    ];
    for entries in pin_cases {
        assert_eq!(
            status(&with_cmd(0x06, int_map(entries.clone()))),
            0x14,
            "{entries:?}"
        );
    }
    assert!(
        CtapRequest::decode(&with_cmd(0x06, int_map(vec![(2, Value::from(1))]))).is_ok(),
        "getPINRetries needs no protocol"
    );
    assert!(
        CtapRequest::decode(&with_cmd(0x06, int_map(vec![(2, Value::from(0x42))]))).is_ok(),
        "unknown subcommand is for the authenticator to refuse"
    );
    assert_eq!(
        status(&with_cmd(0x0A, int_map(vec![(3, Value::from(1))]))),
        0x14
    );
    assert_eq!(
        status(&with_cmd(0x41, int_map(vec![(1, Value::from(4))]))),
        0x14,
        "enumerateCredentialsBegin without rpIDHash"
    );
    assert_eq!(
        status(&with_cmd(
            0x0A,
            int_map(vec![(1, Value::from(6)), (2, int_map(vec![]))])
        )),
        0x14
    );
    assert_eq!(
        status(&with_cmd(
            0x0A,
            int_map(vec![
                (1, Value::from(7)),
                (2, int_map(vec![(2, descriptor().to_value())]))
            ])
        )),
        0x14
    );
    assert_eq!(status(&with_cmd(0x0D, int_map(vec![]))), 0x14);
    assert_eq!(
        status(&with_cmd(0x0C, int_map(vec![(1, Value::from(10))]))),
        0x14,
        "no offset"
    );
    assert_eq!(
        status(&with_cmd(
            0x01,
            int_map({
                let mut entries = minimal_make_credential();
                entries[1].1 = Value::Map(vec![(Value::from("name"), Value::from("x"))]);
                entries
            })
        )),
        0x14,
        "rp without id"
    );
}

#[test]
fn unknown_keys_are_ignored_and_other_errors() {
    let mut entries = minimal_make_credential();
    let plain = make_credential::Request::decode(&cbor::to_vec(&int_map(entries.clone()))).unwrap();
    entries.push((0x20, Value::from("future")));
    entries.push((-5, Value::Null));
    let mut value = int_map(entries);
    if let Value::Map(map) = &mut value {
        map.push((Value::from("textKey"), Value::Bool(true)));
    }
    let decoded = make_credential::Request::decode(&cbor::to_vec(&value)).unwrap();
    assert_eq!(decoded, plain);
    // Unknown members of entities are ignored too (the spec's user "icon").
    let user = PublicKeyCredentialUserEntity::from_value(Value::Map(vec![
        (Value::from("id"), Value::Bytes(vec![1])),
        (Value::from("icon"), Value::from("https://x")),
    ]))
    .unwrap();
    assert_eq!(user, PublicKeyCredentialUserEntity::new(vec![1]));

    assert_eq!(status(&[]), 0x03);
    assert_eq!(status(&[0x03]), 0x01);
    assert_eq!(status(&[0x09]), 0x01, "bioEnrollment is not implemented");
    assert_eq!(status(&[0x07, 0xA0]), 0x03);
    assert_eq!(
        status(&with_cmd(0x06, int_map(vec![(2, Value::from(256))]))),
        0x02,
        "subCommand out of range"
    );
    assert_eq!(
        status(&with_cmd(
            0x0A,
            int_map(vec![
                (1, Value::from(4)),
                (2, int_map(vec![(1, Value::Bytes(vec![0; 31]))]))
            ])
        )),
        0x03,
        "rpIDHash of 31 bytes"
    );
    // Responses: the same codes inside InvalidResponse.
    let error = get_info::Response::decode(&[0xA1, 0x01, 0x80]).unwrap_err();
    assert!(
        matches!(error, Ctap2Error::InvalidResponse(e) if e.status.0 == 0x14),
        "{error:?}"
    );
    assert!(
        reset::Response::decode(&[0xA0]).is_err(),
        "reset has no response data"
    );
}

// ---------------------------------------------------------------------------------------------
// Property tests.

fn bytes_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn text_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 .@é-]{0,20}"
}

fn descriptor_strategy() -> impl Strategy<Value = PublicKeyCredentialDescriptor> {
    (
        bytes_strategy(80),
        proptest::option::of(proptest::collection::vec(text_strategy(), 0..3)),
    )
        .prop_map(|(id, transports)| PublicKeyCredentialDescriptor {
            type_: "public-key".into(),
            id,
            transports,
        })
}

fn user_strategy() -> impl Strategy<Value = PublicKeyCredentialUserEntity> {
    (
        bytes_strategy(64),
        proptest::option::of(text_strategy()),
        proptest::option::of(text_strategy()),
    )
        .prop_map(|(id, name, display_name)| PublicKeyCredentialUserEntity {
            id,
            name,
            display_name,
        })
}

fn options_strategy() -> impl Strategy<Value = Option<BTreeMap<String, bool>>> {
    proptest::option::of(proptest::collection::btree_map(
        "[a-zA-Z]{1,12}",
        any::<bool>(),
        0..4,
    ))
}

fn cose_strategy() -> impl Strategy<Value = CoseKey> {
    prop_oneof![
        (any::<i64>(), any::<[u8; 32]>(), any::<[u8; 32]>())
            .prop_map(|(alg, x, y)| CoseKey::P256 { alg, x, y }),
        (any::<i64>(), any::<i64>(), bytes_strategy(40)).prop_map(|(alg, crv, x)| CoseKey::Okp {
            alg,
            crv,
            x
        }),
    ]
}

fn make_credential_strategy() -> impl Strategy<Value = make_credential::Request> {
    (
        bytes_strategy(40),
        (text_strategy(), proptest::option::of(text_strategy())),
        user_strategy(),
        proptest::collection::vec(any::<i64>(), 0..4),
        proptest::option::of(proptest::collection::vec(descriptor_strategy(), 0..3)),
        proptest::option::of((
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(bytes_strategy(40)),
        )),
        options_strategy(),
        proptest::option::of(bytes_strategy(40)),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(
            |(
                cdh,
                (rp_id, rp_name),
                user,
                algs,
                exclude_list,
                extensions,
                options,
                param,
                protocol,
                ep,
            )| {
                make_credential::Request {
                    client_data_hash: cdh,
                    rp: PublicKeyCredentialRpEntity {
                        id: rp_id,
                        name: rp_name,
                    },
                    user,
                    pub_key_cred_params: algs
                        .into_iter()
                        .map(|alg| PublicKeyCredentialParameters {
                            type_: "public-key".into(),
                            alg,
                        })
                        .collect(),
                    exclude_list,
                    extensions: extensions.map(|(cp, hmac, blob)| MakeCredentialExtensions {
                        cred_protect: cp.map(CredProtect),
                        hmac_secret: hmac,
                        cred_blob: blob,
                        ..Default::default()
                    }),
                    options,
                    pin_uv_auth_param: param,
                    pin_uv_auth_protocol: protocol,
                    enterprise_attestation: ep,
                }
            },
        )
}

fn get_assertion_strategy() -> impl Strategy<Value = get_assertion::Request> {
    (
        text_strategy(),
        bytes_strategy(40),
        proptest::option::of(proptest::collection::vec(descriptor_strategy(), 0..3)),
        proptest::option::of((
            cose_strategy(),
            bytes_strategy(80),
            bytes_strategy(40),
            proptest::option::of(any::<u8>()),
        )),
        options_strategy(),
        proptest::option::of(bytes_strategy(40)),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(rp_id, cdh, allow_list, hmac, options, param, protocol)| {
            get_assertion::Request {
                rp_id,
                client_data_hash: cdh,
                allow_list,
                extensions: hmac.map(
                    |(key_agreement, salt_enc, salt_auth, pin_uv_auth_protocol)| {
                        GetAssertionExtensions {
                            hmac_secret: Some(HmacSecretInput {
                                key_agreement,
                                salt_enc,
                                salt_auth,
                                pin_uv_auth_protocol,
                            }),
                            ..Default::default()
                        }
                    },
                ),
                options,
                pin_uv_auth_param: param,
                pin_uv_auth_protocol: protocol,
            }
        })
}

fn assertion_response_strategy() -> impl Strategy<Value = get_assertion::Response> {
    (
        proptest::option::of(descriptor_strategy()),
        bytes_strategy(100),
        bytes_strategy(80),
        proptest::option::of(user_strategy()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(bytes_strategy(33)),
    )
        .prop_map(
            |(
                credential,
                auth_data,
                signature,
                user,
                number_of_credentials,
                user_selected,
                large_blob_key,
            )| get_assertion::Response {
                credential,
                auth_data,
                signature,
                user,
                number_of_credentials,
                user_selected,
                large_blob_key,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn prop_make_credential_round_trip(request in make_credential_strategy()) {
        let bytes = request.encode();
        let back = make_credential::Request::decode(&bytes[1..]).unwrap();
        prop_assert_eq!(&back, &request);
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn prop_get_assertion_round_trip(request in get_assertion_strategy()) {
        let bytes = request.encode();
        let back = get_assertion::Request::decode(&bytes[1..]).unwrap();
        prop_assert_eq!(&back, &request);
        prop_assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn prop_assertion_response_round_trip(response in assertion_response_strategy()) {
        let body = response.encode();
        prop_assert_eq!(get_assertion::Response::decode(&body).unwrap(), response);
    }

    #[test]
    fn prop_client_pin_round_trip(
        protocol in proptest::option::of(any::<u64>()),
        key in proptest::option::of(cose_strategy()),
        param in proptest::option::of(bytes_strategy(64)),
        permissions in proptest::option::of(any::<u8>()),
        rp_id in proptest::option::of(text_strategy()),
        token in proptest::option::of(bytes_strategy(48)),
        retries in proptest::option::of(any::<u64>()),
    ) {
        let request = client_pin::Request {
            pin_uv_auth_protocol: protocol,
            sub_command: client_pin::SubCommand(0x42),
            key_agreement: key.clone(),
            pin_uv_auth_param: param.clone(),
            new_pin_enc: param.clone(),
            pin_hash_enc: param,
            permissions: permissions.map(Permissions),
            rp_id,
        };
        let bytes = request.encode();
        prop_assert_eq!(client_pin::Request::decode(&bytes[1..]).unwrap(), request);
        let response = client_pin::Response { key_agreement: key, pin_uv_auth_token: token, pin_retries: retries, power_cycle_state: None, uv_retries: retries };
        prop_assert_eq!(client_pin::Response::decode(&response.encode()).unwrap(), response);
    }

    #[test]
    fn prop_authenticator_data_round_trip(
        rp_id_hash in any::<[u8; 32]>(),
        flags in any::<u8>(),
        sign_count in any::<u32>(),
        attested in proptest::option::of((any::<[u8; 16]>(), bytes_strategy(100), cose_strategy())),
        cred_protect in proptest::option::of(any::<u8>()),
        min_pin in proptest::option::of(any::<u64>()),
    ) {
        let data = AuthenticatorData {
            rp_id_hash,
            flags: AuthenticatorDataFlags(flags & !(AuthenticatorDataFlags::AT | AuthenticatorDataFlags::ED)),
            sign_count,
            attested_credential_data: attested.map(|(aaguid, credential_id, credential_public_key)| AttestedCredentialData { aaguid, credential_id, credential_public_key }),
            extensions: (cred_protect.is_some() || min_pin.is_some()).then(|| ExtensionOutputs { cred_protect: cred_protect.map(CredProtect), min_pin_length: min_pin, ..Default::default() }),
        };
        let bytes = data.to_bytes();
        let parsed = AuthenticatorData::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.to_bytes(), bytes);
        prop_assert_eq!(parsed.attested_credential_data, data.attested_credential_data);
        prop_assert_eq!(parsed.extensions, data.extensions);
    }

    /// Fuzz-style: arbitrary bytes never panic any decoder, and whatever decodes re-encodes to
    /// something that decodes to the same value.
    #[test]
    fn prop_garbage_never_panics(cmd in prop_oneof![Just(1u8), Just(2), Just(4), Just(6), Just(7), Just(8), Just(0x0A), Just(0x0B), Just(0x0C), Just(0x0D), Just(0x41), any::<u8>()], body in bytes_strategy(200)) {
        let message = [vec![cmd], body.clone()].concat();
        if let Ok(request) = CtapRequest::decode(&message) {
            prop_assert_eq!(CtapRequest::decode(&request.encode()).unwrap(), request);
        }
        let _ = get_info::Response::decode(&body);
        let _ = make_credential::Response::decode(&body);
        let _ = get_assertion::Response::decode(&body);
        let _ = client_pin::Response::decode(&body);
        let _ = cm::Response::decode(&body);
        let _ = large_blobs::Response::decode(&body);
        let _ = large_blobs::decode_array(&body);
        let _ = AuthenticatorData::parse(&body);
        let _ = CoseKey::from_bytes(&body);
        let _ = keygate::ctap2::u2f::U2fRequest::decode(&body);
        let _ = keygate::ctap2::u2f::RegisterResponse::decode(&body);
        let _ = keygate::ctap2::u2f::AuthenticateResponse::decode(&body);
    }

    /// Structured garbage: random CBOR maps with small integer keys and random values.
    #[test]
    fn prop_random_maps_never_panic(cmd in prop_oneof![Just(1u8), Just(2), Just(6), Just(0x0A), Just(0x0C), Just(0x0D)], entries in proptest::collection::vec((0i64..12, value_strategy()), 0..8)) {
        let message = with_cmd(cmd, int_map(entries));
        if let Ok(request) = CtapRequest::decode(&message) {
            prop_assert_eq!(CtapRequest::decode(&request.encode()).unwrap(), request);
        }
    }
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        bytes_strategy(40).prop_map(Value::Bytes),
        text_strategy().prop_map(Value::Text),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        text_strategy().prop_map(Value::Text),
                        (-3i64..8).prop_map(Value::from)
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(Value::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Mutation fuzzing of the spec examples: flipped bytes, truncation and insertions never
    /// panic a decoder, and any request that still decodes survives a round trip.
    #[test]
    fn prop_mutated_spec_examples_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let name = ["make_credential_request", "get_assertion_request", "get_info_response", "make_credential_response", "get_assertion_response"][which];
        let mut bytes = spec_example(name);
        for (index, byte, kind) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = index.index(bytes.len());
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, byte),
            }
        }
        if name.ends_with("request") {
            if let Ok(request) = CtapRequest::decode(&bytes) {
                prop_assert_eq!(CtapRequest::decode(&request.encode()).unwrap(), request);
            }
        } else {
            if let Ok(info) = get_info::Response::decode(&bytes) {
                prop_assert_eq!(get_info::Response::decode(&info.encode()).unwrap(), info);
            }
            if let Ok(response) = make_credential::Response::decode(&bytes) {
                prop_assert_eq!(make_credential::Response::decode(&response.encode()).unwrap(), response.clone());
                let _ = response.auth_data();
            }
            if let Ok(response) = get_assertion::Response::decode(&bytes) {
                prop_assert_eq!(get_assertion::Response::decode(&response.encode()).unwrap(), response.clone());
                let _ = response.auth_data();
            }
        }
    }
}
