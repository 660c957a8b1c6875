//! The host driver's CTAP 2.1 extras against keygate's software key: long allowLists /
//! excludeLists in batches of maxCredentialCountInList (also through the WebAuthn client),
//! the typed authenticatorConfig and authenticatorLargeBlobs helpers, and those helpers
//! against python-fido2's client-side `LargeBlobs` and `Config` (pinned 2.2.1, through
//! tests/interop/ctap2_blobs_config.py over the key's SOCK_SEQPACKET socket; skipped unless
//! `KEYGATE_PYTHON` is set, failing instead when `KEYGATE_REQUIRE_INTEROP=1`).
//! Also: several keys at once (`first_touched`, `race_cbor`), each with its list fitted to its
//! own limits; the key's U2F APDU length cases (ISO 7816-4 §5.1) over CTAPHID_MSG, and the list
//! limits as options of `keygatectl virtual serve` (python-fido2's batching against it) and of
//! `Virtual.Create` (keygated on a private dbus-daemon; skipped without `dbus-daemon`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;
mod interop;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use keygate::authenticator::{PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions, serve};
use keygate::ctap2::commands::config::SetMinPinLengthParams;
use keygate::ctap2::commands::{get_assertion, make_credential};
use keygate::ctap2::extensions::{CredProtect, MakeCredentialExtensions};
use keygate::ctap2::pin_protocol::Permissions;
use keygate::ctap2::{
    AuthenticatorData, AuthenticatorDataFlags, Ctap2Error, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
    StatusCode,
};
use keygate::device::{Device, DeviceError, DeviceOptions};
use keygate::hid::socket::{SeqpacketListener, SeqpacketPipe};
use keygate::hid::{BoxFuture, HidError, PairEnd, ReportPipe, pair};
use keygate::service::client::{VirtualProxy, error_name};
use keygate::webauthn::psl::PublicSuffixList;
use keygate::webauthn::{Authenticator, Scripted, WebAuthnClient, b64};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const RP: &str = "example.com";

/// A host end that can flip one byte of the next CTAPHID_CBOR reply's first packet.
struct Tamper {
    inner: PairEnd,
    armed: Arc<AtomicBool>,
}

impl ReportPipe for Tamper {
    fn send<'a>(&'a mut self, report: &'a [u8; 64]) -> BoxFuture<'a, Result<(), HidError>> {
        self.inner.send(report)
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<[u8; 64], HidError>> {
        let armed = self.armed.clone();
        let recv = self.inner.recv();
        Box::pin(async move {
            let mut report = recv.await?;
            // Init packet (cid 4, cmd 0x90, length 2), status 0x00, then `A1 01 59 LL LL` and
            // the array: byte 20 is inside the serialized array.
            if report[4] == 0x90 && report[7] == 0x00 && armed.swap(false, Ordering::SeqCst) {
                report[20] ^= 0x01;
            }
            Ok(report)
        })
    }
}

struct Key {
    device: Device<Tamper>,
    tamper: Arc<AtomicBool>,
    shared: SharedSoftKey,
    shutdown: CancellationToken,
    /// Cancels `shutdown` when the key goes (also when its device was moved out).
    _stop: tokio_util::sync::DropGuard,
}

async fn soft_key(options: SoftKeyOptions) -> Key {
    soft_key_with(options, PresencePolicy::AutoApprove).await
}

async fn soft_key_with(options: SoftKeyOptions, presence: PresencePolicy) -> Key {
    let shared = SharedSoftKey::new(SoftKey::new(options).unwrap(), presence);
    let (host, device_end) = pair();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(device_end, shared.clone(), shutdown.clone()));
    let tamper = Arc::new(AtomicBool::new(false));
    let host = Tamper {
        inner: host,
        armed: tamper.clone(),
    };
    let device = Device::open(host, DeviceOptions::default()).await.unwrap();
    Key {
        device,
        tamper,
        shared,
        _stop: shutdown.clone().drop_guard(),
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

async fn register<P: ReportPipe>(device: &mut Device<P>) -> PublicKeyCredentialDescriptor {
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

/// The key's CTAPHID_MSG side takes every ISO 7816-4 case (1, 2S, 3S, 4S, 2E, 3E, 4E and the
/// extended Lc = 0 form python-fido2 and libfido2 send) and answers a short "Lc = 0 then Le"
/// (`CLA INS P1 P2 00 XX`, no such case) with 0x6700.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn u2f_apdus_in_every_iso_case_and_short_lc_zero_refused() {
    let mut key = soft_key(SoftKeyOptions {
        ctap: keygate::authenticator::CtapVersion::U2fOnly,
        ..SoftKeyOptions::default()
    })
    .await;
    let cancel = CancellationToken::new();
    let version: [(&str, &[u8]); 5] = [
        ("1", &[0, 3, 0, 0]),
        ("2S", &[0, 3, 0, 0, 0]),
        ("2E", &[0, 3, 0, 0, 0, 0, 0]),
        (
            "extended Lc 0 (python-fido2, libfido2)",
            &[0, 3, 0, 0, 0, 0, 0, 0, 0],
        ),
        ("2S Le 0x40", &[0, 3, 0, 0, 0x40]),
    ];
    for (case, apdu) in version {
        let reply = key.device.msg_raw(apdu, &cancel).await.unwrap();
        assert_eq!(reply, b"U2F_V2\x90\x00", "case {case}");
    }
    let (challenge, application) = ([0x11u8; 32], [0x22u8; 32]);
    let data = [challenge, application].concat();
    let register: [(&str, Vec<u8>); 4] = [
        ("3S", [&[0, 1, 0, 0, 64][..], &data].concat()),
        ("4S", [&[0, 1, 0, 0, 64][..], &data, &[0]].concat()),
        ("3E", [&[0, 1, 0, 0, 0, 0, 64][..], &data].concat()),
        ("4E", [&[0, 1, 0, 0, 0, 0, 64][..], &data, &[0, 0]].concat()),
    ];
    for (case, apdu) in register {
        let reply = key.device.msg_raw(&apdu, &cancel).await.unwrap();
        assert_eq!(&reply[reply.len() - 2..], [0x90, 0x00], "case {case}");
        assert_eq!(reply[0], 0x05, "case {case}: a registration response");
    }
    for apdu in [
        [0u8, 3, 0, 0, 0, 0x10],
        [0, 3, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0xFF],
    ] {
        let reply = key.device.msg_raw(&apdu, &cancel).await.unwrap();
        assert_eq!(reply, [0x67, 0x00], "{apdu:02x?}");
    }
    // Our own host side still speaks to it.
    assert_eq!(key.device.u2f_version().await.unwrap(), "U2F_V2");
}

/// Several keys at once (`first_touched`, `race_cbor`): each key gets the list fitted to its
/// own limits. The credential lives on the key with the smaller limits (2 per list, IDs up to
/// 100 bytes), beyond its first batch; the other key (4 per list, IDs up to 128) holds none of
/// them and waits for a touch that never comes, so it must end Cancelled rather than refuse
/// the list (LIMIT_EXCEEDED) or answer NO_CREDENTIALS first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_keys_each_get_the_list_fitted_to_their_limits() {
    use keygate::device::first_touched;
    let roomy = SoftKeyOptions {
        max_credential_count_in_list: 4,
        max_credential_id_length: 128,
        ..SoftKeyOptions::default()
    };
    let tight = SoftKeyOptions {
        max_credential_count_in_list: 2,
        max_credential_id_length: 100,
        ..SoftKeyOptions::default()
    };
    let untouched = PresencePolicy::WaitForApproval {
        timeout: std::time::Duration::from_secs(60),
    };
    let other = soft_key_with(roomy, untouched).await;
    let mut holder = soft_key(tight).await;
    let ours = register(&mut holder.device).await;
    // Batches on the holder: the 120-byte ID dropped, then [s0 s1] [s2 s3] [ours].
    // On the other key: [s0 s1 s2 s3] [long ours], no match, so a touch is awaited.
    let mut list = strangers(0x40, 4, 64);
    list.push(PublicKeyCredentialDescriptor::public_key(vec![0x77; 120]));
    list.push(ours.clone());
    let mut devices = [other.device, holder.device];
    let cancel = CancellationToken::new();
    let within = std::time::Duration::from_secs(20);

    let request = assertion(list.clone());
    let race = first_touched(&mut devices, &request, &cancel);
    let (winner, reply) = tokio::time::timeout(within, race).await.unwrap().unwrap();
    assert_eq!(winner, 1);
    let signed = reply.unwrap();
    assert_eq!(signed.credential.unwrap().id, ours.id);
    assert_ne!(
        AuthenticatorData::parse(&signed.auth_data).unwrap().flags.0 & AuthenticatorDataFlags::UP,
        0
    );

    // The excludeList the same way: the holder answers CREDENTIAL_EXCLUDED after its touch.
    let request = registration(Some(list.clone()));
    let race = first_touched(&mut devices, &request, &cancel);
    let (winner, reply) = tokio::time::timeout(within, race).await.unwrap().unwrap();
    assert_eq!(winner, 1);
    assert_eq!(
        reply.unwrap_err().status(),
        Some(StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED)
    );

    // race_cbor itself, with the loser's result: cancelled while waiting, not refused.
    let bytes = assertion(list).encode();
    let race = keygate::device::race_cbor(&mut devices, |_| Ok(bytes.clone()), &cancel);
    let outcome = tokio::time::timeout(within, race).await.unwrap();
    assert_eq!(outcome.winner, Some(1));
    assert!(
        matches!(outcome.results[0], Err(DeviceError::Cancelled)),
        "{:?}",
        outcome.results[0]
    );

    // The user touches the key without the credential: it answers NO_CREDENTIALS only then
    // (asked for a touch, not the assertion it would refuse at once), and that ends the race.
    other
        .shared
        .presence()
        .set_policy(PresencePolicy::AutoApprove);
    holder.shared.presence().set_policy(untouched);
    let race = keygate::device::race_cbor(&mut devices, |_| Ok(bytes.clone()), &cancel);
    let outcome = tokio::time::timeout(within, race).await.unwrap();
    assert_eq!(outcome.winner, Some(0));
    assert_eq!(
        outcome.results[0].as_ref().unwrap(),
        &[StatusCode::CTAP2_ERR_NO_CREDENTIALS.0]
    );
    assert!(
        matches!(outcome.results[1], Err(DeviceError::Cancelled)),
        "{:?}",
        outcome.results[1]
    );
}

/// Without an allowList (discoverable credentials), a key that holds none for the rpId waits
/// for a touch instead of ending the race with an immediate NO_CREDENTIALS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discoverable_race_waits_for_the_key_that_holds_a_credential() {
    let untouched = PresencePolicy::WaitForApproval {
        timeout: std::time::Duration::from_secs(60),
    };
    let empty = soft_key_with(SoftKeyOptions::default(), untouched).await;
    let mut holder = soft_key(SoftKeyOptions::default()).await;
    let cancel = CancellationToken::new();
    let mut resident = registration(None);
    resident.options = Some([("rk".to_owned(), true)].into());
    holder
        .device
        .make_credential(&resident, &cancel, &mut |_| {})
        .await
        .unwrap();
    let mut devices = [empty.device, holder.device];
    let request = get_assertion::Request {
        allow_list: None,
        ..assertion(Vec::new())
    };
    let race = keygate::device::first_touched(&mut devices, &request, &cancel);
    let within = std::time::Duration::from_secs(20);
    let (winner, reply) = tokio::time::timeout(within, race).await.unwrap().unwrap();
    assert_eq!(winner, 1);
    let signed = reply.unwrap();
    assert_eq!(signed.user.unwrap().id, b"user-1".to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_with_a_pin_uv_auth_token_find_uv_only_credentials() {
    let mut key = soft_key(SoftKeyOptions {
        initial_pin: Some("1234".into()),
        ..batches_of_two()
    })
    .await;
    let cancel = CancellationToken::new();
    // A credProtect=3 (userVerificationRequired) credential: invisible without UV.
    let token = key
        .device
        .pin_uv_auth_token(
            "1234",
            Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION,
            Some(RP),
        )
        .await
        .unwrap();
    let mut request = registration(None);
    request.extensions = Some(MakeCredentialExtensions {
        cred_protect: Some(CredProtect::USER_VERIFICATION_REQUIRED),
        ..Default::default()
    });
    request.pin_uv_auth_param = Some(token.authenticate(&request.client_data_hash));
    request.pin_uv_auth_protocol = Some(token.protocol().version());
    let made = key
        .device
        .make_credential(&request, &cancel, &mut |_| {})
        .await
        .unwrap();
    let id = made
        .auth_data()
        .unwrap()
        .attested_credential_data
        .unwrap()
        .credential_id;
    let ours = PublicKeyCredentialDescriptor::public_key(id);
    let mut allow = strangers(0x40, 4, 64);
    allow.push(ours.clone());

    // Without UV the pre-flight cannot see it.
    let err = key
        .device
        .get_assertion(&assertion(allow.clone()), &cancel, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS));
    assert_eq!(
        key.device
            .find_credential(RP, &allow, None, &cancel)
            .await
            .unwrap(),
        None
    );

    // With the token: the silent pre-flights (up = false) reuse the request's pinUvAuthParam
    // without consuming the token, and the real GetAssertion is user-verified.
    let token = key
        .device
        .pin_uv_auth_token("1234", Permissions::GET_ASSERTION, Some(RP))
        .await
        .unwrap();
    assert_eq!(
        key.device
            .find_credential(RP, &allow, Some(&token), &cancel)
            .await
            .unwrap(),
        Some(ours.clone())
    );
    let mut request = assertion(allow.clone());
    request.pin_uv_auth_param = Some(token.authenticate(&request.client_data_hash));
    request.pin_uv_auth_protocol = Some(token.protocol().version());
    let signed = key
        .device
        .get_assertion(&request, &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(signed.credential.unwrap().id, ours.id);
    let flags = AuthenticatorData::parse(&signed.auth_data).unwrap().flags.0;
    assert_ne!(flags & AuthenticatorDataFlags::UV, 0);
    assert_ne!(flags & AuthenticatorDataFlags::UP, 0);

    // excludeList of five, verified: the UV-only credential excludes.
    let token = key
        .device
        .pin_uv_auth_token(
            "1234",
            Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION,
            Some(RP),
        )
        .await
        .unwrap();
    let mut request = registration(Some(allow));
    request.pin_uv_auth_param = Some(token.authenticate(&request.client_data_hash));
    request.pin_uv_auth_protocol = Some(token.protocol().version());
    let err = key
        .device
        .make_credential(&request, &cancel, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED)
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_helpers_toggle_always_uv_and_set_min_pin_length() {
    let mut key = soft_key(SoftKeyOptions {
        initial_pin: Some("1234".into()),
        ..SoftKeyOptions::default()
    })
    .await;
    let device = &mut key.device;
    assert!(device.supports_config());
    // A PIN is set: unauthenticated config is refused.
    let err = device.toggle_always_uv(None).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CTAP2_ERR_PUAT_REQUIRED));
    // A token without acfg is refused too.
    let ga = device
        .pin_uv_auth_token("1234", Permissions::GET_ASSERTION, Some(RP))
        .await
        .unwrap();
    let err = device.toggle_always_uv(Some(&ga)).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID));

    let token = device
        .pin_uv_auth_token("1234", Permissions::AUTHENTICATOR_CONFIGURATION, None)
        .await
        .unwrap();
    assert!(device.toggle_always_uv(Some(&token)).await.unwrap());
    assert!(!device.toggle_always_uv(Some(&token)).await.unwrap());
    device
        .set_min_pin_length(
            Some(&token),
            SetMinPinLengthParams {
                new_min_pin_length: Some(6),
                min_pin_length_rp_ids: Some(vec!["example.org".into()]),
                force_change_pin: None,
            },
        )
        .await
        .unwrap();
    let info = device.info().unwrap();
    assert_eq!(info.min_pin_length, Some(6));
    // The 4-digit PIN is now too short: the key forces a change.
    assert_eq!(info.force_pin_change, Some(true));
    // Lowering the minimum is a policy violation (§6.11.4).
    let err = device
        .set_min_pin_length(
            Some(&token),
            SetMinPinLengthParams {
                new_min_pin_length: Some(5),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION)
    );
}

/// Incompressible bytes (a SHA-256 chain), so the DEFLATEd entry stays as long.
fn noise(len: usize, seed: u8) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut out = Vec::with_capacity(len + 32);
    let mut block: [u8; 32] = Sha256::digest([seed]).into();
    while out.len() < len {
        out.extend_from_slice(&block);
        block = Sha256::digest(block).into();
    }
    out.truncate(len);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blob_helpers_fragment_and_check_the_trailer() {
    let mut key = soft_key(SoftKeyOptions {
        initial_pin: Some("1234".into()),
        max_large_blob: 16 * 1024,
        ..SoftKeyOptions::default()
    })
    .await;
    let device = &mut key.device;
    assert!(device.supports_large_blobs());
    assert_eq!(device.large_blob_fragment_length(), 7609 - 64);
    assert!(device.read_large_blob_array().await.unwrap().is_empty());

    let first_key = [1u8; 32];
    let second_key = [2u8; 32];
    // 10 000 incompressible bytes: the array takes two fragments each way.
    let big = noise(10_000, 1);
    let err = device
        .put_large_blob(&first_key, Some(&big), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CTAP2_ERR_PUAT_REQUIRED));
    let token = device
        .pin_uv_auth_token("1234", Permissions::LARGE_BLOB_WRITE, None)
        .await
        .unwrap();
    device
        .put_large_blob(&first_key, Some(&big), Some(&token))
        .await
        .unwrap();
    let raw = device.read_large_blob_array_raw().await.unwrap();
    assert!(raw.len() as u64 > device.large_blob_fragment_length());
    device
        .put_large_blob(&second_key, Some(b"second"), Some(&token))
        .await
        .unwrap();
    assert_eq!(device.read_large_blob_array().await.unwrap().len(), 2);
    let read = device.large_blob(&first_key).await.unwrap().unwrap();
    assert_eq!(read.expose_secret(), &big);
    let read = device.large_blob(&second_key).await.unwrap().unwrap();
    assert_eq!(read.expose_secret(), b"second");
    assert!(device.large_blob(&[3u8; 32]).await.unwrap().is_none());

    // Deleting keeps the other entry.
    device
        .put_large_blob(&first_key, None, Some(&token))
        .await
        .unwrap();
    assert!(device.large_blob(&first_key).await.unwrap().is_none());
    assert_eq!(device.read_large_blob_array().await.unwrap().len(), 1);

    // A flipped byte in transit: the trailer no longer matches.
    key.tamper.store(true, Ordering::SeqCst);
    let err = key.device.read_large_blob_array().await.unwrap_err();
    assert!(
        matches!(err, DeviceError::Ctap2(Ctap2Error::LargeBlob(_))),
        "{err:?}"
    );
    assert_eq!(key.device.read_large_blob_array().await.unwrap().len(), 1);
}

// ---- python-fido2 ---------------------------------------------------------------------------

/// Runs tests/interop/ctap2_blobs_config.py off the runtime; returns its stdout, trimmed.
async fn fido2(python: &Path, socket: &Path, pin: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/ctap2_blobs_config.py");
    let mut command = std::process::Command::new(python);
    command.arg(script).arg(socket).arg(pin).args(args);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python-fido2 {args:?} failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Serves `key`'s software key also on a SOCK_SEQPACKET socket (for python-fido2), until the
/// key's shutdown; returns the socket's temp dir (removed on drop) and path.
fn listen(key: &Key) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("key.sock");
    let listener = SeqpacketListener::bind(&socket).unwrap();
    let (shared, shutdown) = (key.shared.clone(), key.shutdown.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(pipe) => { tokio::spawn(serve(pipe, shared.clone(), shutdown.clone())); }
                    Err(_) => break,
                },
            }
        }
    });
    (dir, socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_fido2_client_batches_against_our_limit() {
    let Some(python) = interop::python() else {
        return;
    };
    let mut key = soft_key(batches_of_two()).await;
    let ours = register(&mut key.device).await;
    let (_dir, socket) = listen(&key);
    let got = fido2(&python, &socket, "", &["filter", &hex::encode(&ours.id)]).await;
    assert_eq!(got, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_blobs_and_config_interoperate_with_python_fido2() {
    let Some(python) = interop::python() else {
        return;
    };
    const PIN: &str = "12345678";
    let mut key = soft_key(SoftKeyOptions {
        initial_pin: Some(PIN.into()),
        ..SoftKeyOptions::default()
    })
    .await;
    let (_dir, socket) = listen(&key);
    let device = &mut key.device;
    let ours = [0x21u8; 32];
    let theirs = [0x42u8; 32];

    // Written by us, read by python-fido2, and the other way round.
    let token = device
        .pin_uv_auth_token(PIN, Permissions::LARGE_BLOB_WRITE, None)
        .await
        .unwrap();
    device
        .put_large_blob(&ours, Some(b"written by keygate"), Some(&token))
        .await
        .unwrap();
    let got = fido2(&python, &socket, PIN, &["blob-get", &hex::encode(ours)]).await;
    assert_eq!(got, hex::encode(b"written by keygate"));
    let put = [
        "blob-put",
        &hex::encode(theirs),
        &hex::encode(b"by python-fido2"),
    ];
    assert_eq!(fido2(&python, &socket, PIN, &put).await, "ok");
    let read = device.large_blob(&theirs).await.unwrap().unwrap();
    assert_eq!(read.expose_secret(), b"by python-fido2");
    let read = device.large_blob(&ours).await.unwrap().unwrap();
    assert_eq!(read.expose_secret(), b"written by keygate");
    assert_eq!(fido2(&python, &socket, PIN, &["entries"]).await, "2");

    // Config by us, seen by python-fido2; then by python-fido2, seen by us.
    let token = device
        .pin_uv_auth_token(PIN, Permissions::AUTHENTICATOR_CONFIGURATION, None)
        .await
        .unwrap();
    device
        .set_min_pin_length(
            Some(&token),
            SetMinPinLengthParams {
                new_min_pin_length: Some(6),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        fido2(&python, &socket, PIN, &["info"]).await,
        "6 False False"
    );
    assert_eq!(fido2(&python, &socket, PIN, &["config"]).await, "ok");
    let info = device.refresh_info().await.unwrap();
    assert_eq!(info.min_pin_length, Some(8));
    assert_eq!(info.option_value("alwaysUv"), Some(true));
    assert_eq!(info.force_pin_change, Some(false));
}

/// Enterprise attestation enabled by our driver, then enabled again and requested by
/// python-fido2, which verifies the packed attestation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_attestation_interoperates_with_python_fido2() {
    let Some(python) = interop::python() else {
        return;
    };
    const PIN: &str = "12345678";
    let options = SoftKeyOptions {
        initial_pin: Some(PIN.into()),
        enterprise_attestation: Some(vec!["corp.example".into()]),
        ..SoftKeyOptions::default()
    };
    let mut key = soft_key(options.clone()).await;
    assert_eq!(key.device.enterprise_attestation(), Some(false));
    let token = key
        .device
        .pin_uv_auth_token(PIN, Permissions::AUTHENTICATOR_CONFIGURATION, None)
        .await
        .unwrap();
    key.device
        .enable_enterprise_attestation(Some(&token))
        .await
        .unwrap();
    assert_eq!(key.device.enterprise_attestation(), Some(true));
    let (_dir, socket) = listen(&key);
    // Vendor-facilitated: the listed RP gets the key's own certificate, another the batch one.
    let listed = fido2(&python, &socket, PIN, &["enterprise", "corp.example", "1"]).await;
    let (ep_att, cn) = listed.split_once(' ').unwrap();
    assert_eq!(ep_att, "True");
    assert!(
        cn.starts_with("keygate_software_key_") && cn != "keygate_software_key_batch",
        "{cn}"
    );
    assert_eq!(
        fido2(&python, &socket, PIN, &["enterprise", "other.example", "1"]).await,
        "False keygate_software_key_batch"
    );
    // Platform-managed: any RP.
    assert_eq!(
        fido2(&python, &socket, PIN, &["enterprise", "other.example", "2"]).await,
        format!("True {cn}")
    );
    // A key without the capability: our driver says so before sending anything.
    let mut plain = soft_key(SoftKeyOptions::default()).await;
    assert!(matches!(
        plain.device.enable_enterprise_attestation(None).await,
        Err(DeviceError::Unsupported(_))
    ));
}

/// The CN of the attestation certificate in a RegistrationResponseJSON's attestationObject.
fn attestation_cn(attestation_object: &str) -> Option<String> {
    let bytes = b64::decode(attestation_object).unwrap();
    let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    let field = |map: &ciborium::Value, name: &str| {
        map.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v.clone())
    };
    let x5c = field(&field(&value, "attStmt")?, "x5c")?;
    let der = x5c.as_array()?.first()?.as_bytes()?.clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_owned())
}

/// `attestation: "enterprise"` through our WebAuthn client: nothing until the key enables it,
/// platform-managed for the RP IDs the client approves, vendor-facilitated (and so refused by
/// a key whose vendor listed nothing) for the others, never for "direct".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webauthn_client_enterprise_attestation() {
    let mut key = soft_key(SoftKeyOptions {
        enterprise_attestation: Some(Vec::new()),
        ..SoftKeyOptions::default()
    })
    .await;
    let psl = Arc::new(PublicSuffixList::parse("com\n"));
    let approving = WebAuthnClient::new(psl.clone()).with_enterprise_rp_ids(vec![RP.into()]);
    let plain = WebAuthnClient::new(psl);
    let cancel = CancellationToken::new();
    let interaction = Scripted::default();
    let register = async |client: &WebAuthnClient, key: &mut Key, conveyance: &str| {
        let options = json!({
            "rp": {"id": RP, "name": "Example"},
            "user": {"id": b64::encode(b"user-ea"), "name": "eve", "displayName": "Eve"},
            "challenge": b64::encode(&[3; 32]),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "attestation": conveyance,
        });
        let mut authenticators: [&mut dyn Authenticator; 1] = [&mut key.device];
        let made = client
            .make_credential(
                "https://example.com",
                &options.to_string(),
                &mut authenticators,
                &interaction,
                &cancel,
            )
            .await
            .unwrap();
        attestation_cn(&made.response.attestation_object).unwrap()
    };
    const BATCH: &str = "keygate software key batch";
    assert_eq!(register(&approving, &mut key, "enterprise").await, BATCH);
    key.device
        .enable_enterprise_attestation(None)
        .await
        .unwrap();
    let unique = register(&approving, &mut key, "enterprise").await;
    assert!(
        unique.starts_with("keygate software key ") && unique != BATCH,
        "{unique}"
    );
    assert_eq!(register(&plain, &mut key, "enterprise").await, BATCH);
    assert_eq!(register(&approving, &mut key, "direct").await, BATCH);
}

// ---- the limits as options of `keygatectl virtual serve` and of Virtual.Create -------------

/// A `keygatectl --json virtual serve --socket` in a temp dir, SIGTERMed and reaped on drop.
struct ServeCli {
    child: std::process::Child,
    status: serde_json::Value,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServeCli {
    fn start(extra: &[&str]) -> Self {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("key.sock");
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygatectl"))
            .args(["--json", "virtual", "serve", "--socket"])
            .arg(&socket)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let status = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        Self {
            child,
            status,
            socket,
            _dir: dir,
        }
    }
}

impl Drop for ServeCli {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// The key's GetInfo limits (maxCredentialCountInList, maxCredentialIdLength) over `pipe`.
async fn listed_limits<P: ReportPipe>(device: &mut Device<P>) -> (Option<u64>, Option<u64>) {
    let info = device.refresh_info().await.unwrap();
    (
        info.max_credential_count_in_list,
        info.max_credential_id_length,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_serve_limits_reach_python_fido2_which_finds_the_last_batch() {
    // Out of range or not a number: a clear error and exit status, no panic, no socket.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("refused.sock");
    for (flag, value, want) in [
        (
            "--max-credential-count-in-list",
            "0",
            "maxCredentialCountInList must be at least 1",
        ),
        (
            "--max-credential-id-length",
            "64",
            "maxCredentialIdLength must be at least 96",
        ),
        (
            "--max-credential-count-in-list",
            "two",
            "invalid value 'two'",
        ),
        (
            "--max-credential-id-length",
            "-1",
            "unexpected argument '-1'",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygatectl"))
            .args(["virtual", "serve", "--socket"])
            .arg(&socket)
            .args([flag, value])
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(stderr.contains(want), "{flag} {value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!socket.exists());
    }

    let served = ServeCli::start(&[
        "--max-credential-count-in-list",
        "2",
        "--max-credential-id-length",
        "100",
    ]);
    assert_eq!(served.status["max_credential_count_in_list"], 2);
    assert_eq!(served.status["max_credential_id_length"], 100);
    let pipe = SeqpacketPipe::connect(&served.socket).await.unwrap();
    let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    assert_eq!(listed_limits(&mut device).await, (Some(2), Some(100)));
    let ours = register(&mut device).await;
    let Some(python) = interop::python() else {
        return;
    };
    // python-fido2's client: a raw allowList of 5 is refused, its batching finds `ours` in the
    // last batch ([s0 s1] [s2 s3] [ours]), and the same excludeList refuses a registration.
    let got = fido2(
        &python,
        &served.socket,
        "",
        &["filter", &hex::encode(&ours.id)],
    )
    .await;
    assert_eq!(got, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_create_takes_the_list_limits() {
    if bus::skip_without("dbus-daemon") {
        return;
    }
    let bus = bus::Bus::session();
    let _daemon = bus::Daemon::start(&bus, "");
    let conn = bus.connect().await;
    let virt = VirtualProxy::new(&conn).await.unwrap();
    let path = virt
        .create(r#"{"socket": true, "max_credential_count_in_list": 3, "max_credential_id_length": 100}"#)
        .await
        .unwrap();
    let socket = virt.socket(&path).await.unwrap();
    let pipe = SeqpacketPipe::connect(Path::new(&socket)).await.unwrap();
    let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    assert_eq!(listed_limits(&mut device).await, (Some(3), Some(100)));
    // Enforced: a list of 4 is refused whole, and the driver batches it.
    let ours = register(&mut device).await;
    let mut allow = strangers(0x40, 3, 64);
    allow.push(ours.clone());
    let cancel = CancellationToken::new();
    let raw = device
        .cbor_raw(&assertion(allow.clone()).encode(), &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(raw, [StatusCode::CTAP2_ERR_LIMIT_EXCEEDED.0]);
    let signed = device
        .get_assertion(&assertion(allow), &cancel, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(signed.credential.unwrap().id, ours.id);

    for bad in [
        r#"{"max_credential_count_in_list": 0}"#,
        r#"{"max_credential_id_length": 95}"#,
        r#"{"max_credential_id_length": -1}"#,
        r#"{"max_credential_count_in_list": "two"}"#,
    ] {
        let err = virt.create(bad).await.unwrap_err();
        assert_eq!(
            error_name(&err).as_deref(),
            Some("org.keygate.Keygate1.Error.InvalidArgs"),
            "{bad}: {err}"
        );
    }
    virt.remove(&path).await.unwrap();
}
