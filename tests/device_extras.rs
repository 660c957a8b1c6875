//! The host driver's CTAP 2.1 extras against keygate's software key: long allowLists /
//! excludeLists in batches of maxCredentialCountInList (also through the WebAuthn client).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use keygate::authenticator::{PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions, serve};
use keygate::ctap2::commands::{get_assertion, make_credential};
use keygate::ctap2::{
    AuthenticatorData, AuthenticatorDataFlags, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
    StatusCode,
};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::{PairEnd, pair};
use keygate::webauthn::psl::PublicSuffixList;
use keygate::webauthn::{Authenticator, Scripted, WebAuthnClient, b64};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const RP: &str = "example.com";

struct Key {
    device: Device<PairEnd>,
    shared: SharedSoftKey,
    shutdown: CancellationToken,
}

impl Drop for Key {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn soft_key(options: SoftKeyOptions) -> Key {
    let shared = SharedSoftKey::new(SoftKey::new(options).unwrap(), PresencePolicy::AutoApprove);
    let (host, device_end) = pair();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(device_end, shared.clone(), shutdown.clone()));
    let device = Device::open(host, DeviceOptions::default()).await.unwrap();
    Key {
        device,
        shared,
        shutdown,
    }
}

fn batches_of_two() -> SoftKeyOptions {
    SoftKeyOptions {
        max_credential_count_in_list: 2,
        max_credential_id_length: 128,
        ..SoftKeyOptions::default()
    }
}

fn registration(exclude: Option<Vec<PublicKeyCredentialDescriptor>>) -> make_credential::Request {
    make_credential::Request {
        client_data_hash: vec![3; 32],
        rp: PublicKeyCredentialRpEntity::new(RP),
        user: PublicKeyCredentialUserEntity::new(b"user-1".to_vec()),
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".into(),
            alg: -7,
        }],
        exclude_list: exclude,
        ..Default::default()
    }
}

fn assertion(allow: Vec<PublicKeyCredentialDescriptor>) -> get_assertion::Request {
    get_assertion::Request {
        rp_id: RP.into(),
        client_data_hash: vec![4; 32],
        allow_list: Some(allow),
        ..Default::default()
    }
}

/// Credential IDs the key never made (`seed` keeps lists apart).
fn strangers(seed: u8, n: usize, len: usize) -> Vec<PublicKeyCredentialDescriptor> {
    (0..n)
        .map(|i| PublicKeyCredentialDescriptor::public_key(vec![seed ^ (i as u8); len]))
        .collect()
}

async fn register(device: &mut Device<PairEnd>) -> PublicKeyCredentialDescriptor {
    let cancel = CancellationToken::new();
    let made = device
        .make_credential(&registration(None), &cancel, &mut |_| {})
        .await
        .unwrap();
    let id = made
        .auth_data()
        .unwrap()
        .attested_credential_data
        .unwrap()
        .credential_id;
    PublicKeyCredentialDescriptor::public_key(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_of_five_is_sent_in_batches_of_two() {
    let mut key = soft_key(batches_of_two()).await;
    let info = key.device.info().unwrap();
    assert_eq!(info.max_credential_count_in_list, Some(2));
    let ours = register(&mut key.device).await;
    let cancel = CancellationToken::new();

    // The matching credential is last: batches [s0 s1] [s2 s3] [ours].
    let mut allow = strangers(0x40, 4, 64);
    allow.push(ours.clone());
    // Sent whole, the key refuses the list.
    let raw = key
        .device
        .cbor_raw(&assertion(allow.clone()).encode(), &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(raw, [StatusCode::CTAP2_ERR_LIMIT_EXCEEDED.0]);
    // The driver batches it, then asserts with presence.
    let signed = key
        .device
        .get_assertion(&assertion(allow.clone()), &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(signed.credential.unwrap().id, ours.id);
    let auth_data = AuthenticatorData::parse(&signed.auth_data).unwrap();
    assert_ne!(auth_data.flags.0 & AuthenticatorDataFlags::UP, 0);
    assert!(
        key.shared
            .with(|k| k.last_operation().user_present)
            .unwrap()
    );

    // An ID above maxCredentialIdLength (128) is dropped instead of failing the request.
    let mut with_long = strangers(0x50, 1, 200);
    with_long.push(ours.clone());
    let signed = key
        .device
        .get_assertion(&assertion(with_long), &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(signed.credential.unwrap().id, ours.id);

    // python-fido2's `_filter_creds` behaviour: zero clientDataHash, batches, up = false.
    let found = key
        .device
        .find_credential(RP, &allow, None, &cancel)
        .await
        .unwrap();
    assert_eq!(found, Some(ours.clone()));
    assert!(
        !key.shared
            .with(|k| k.last_operation().user_present)
            .unwrap()
    );
    let none = key
        .device
        .find_credential(RP, &strangers(0x60, 5, 64), None, &cancel)
        .await
        .unwrap();
    assert_eq!(none, None);

    // No match in five: still a touch, then NO_CREDENTIALS (not an empty allowList, which
    // would ask for discoverable credentials).
    let err = key
        .device
        .get_assertion(&assertion(strangers(0x70, 5, 64)), &cancel, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS));

    // excludeList of five with our credential last: excluded after a touch.
    let mut exclude = strangers(0x30, 4, 64);
    exclude.push(ours);
    let err = key
        .device
        .make_credential(&registration(Some(exclude)), &cancel, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED)
    );
    // Five strangers: registered.
    key.device
        .make_credential(
            &registration(Some(strangers(0x20, 5, 64))),
            &cancel,
            &mut |_| {},
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webauthn_client_batches_allow_and_exclude_credentials() {
    let mut key = soft_key(batches_of_two()).await;
    let client = WebAuthnClient::new(Arc::new(PublicSuffixList::parse("com\n")));
    let interaction = Scripted::default();
    let origin = "https://example.com";
    let stranger_ids: Vec<String> = strangers(0x11, 4, 48)
        .iter()
        .map(|d| b64::encode(&d.id))
        .collect();
    let create = |exclude: &[String]| {
        json!({
            "rp": {"id": RP, "name": "Example"},
            "user": {"id": b64::encode(b"user-2"), "name": "dora", "displayName": "Dora"},
            "challenge": b64::encode(&[9; 32]),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "excludeCredentials": exclude.iter()
                .map(|id| json!({"type": "public-key", "id": id})).collect::<Vec<_>>(),
            "authenticatorSelection": {"residentKey": "discouraged", "userVerification": "discouraged"},
        })
        .to_string()
    };
    let mut authenticators: [&mut dyn Authenticator; 1] = [&mut key.device];
    let cancel = CancellationToken::new();
    let made = client
        .make_credential(
            origin,
            &create(&stranger_ids),
            &mut authenticators,
            &interaction,
            &cancel,
        )
        .await
        .unwrap();
    let mut listed = stranger_ids.clone();
    listed.push(made.id.clone());

    let get = json!({
        "challenge": b64::encode(&[7; 32]),
        "rpId": RP,
        "allowCredentials": listed.iter()
            .map(|id| json!({"type": "public-key", "id": id})).collect::<Vec<_>>(),
        "userVerification": "discouraged",
    })
    .to_string();
    let asserted = client
        .get_assertion(origin, &get, &mut authenticators, &interaction, &cancel)
        .await
        .unwrap();
    assert_eq!(asserted.id, made.id);

    let err = client
        .make_credential(
            origin,
            &create(&listed),
            &mut authenticators,
            &interaction,
            &cancel,
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidStateError");
}
