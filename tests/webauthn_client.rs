//! End to end: keygate's WebAuthn client driving keygate's software key (in-process HID
//! pair, real CTAPHID framing and host driver), verified by keygate's relying party and by
//! python-fido2's `Fido2Server` (outside oracle, through `tests/interop/webauthn_oracle.py`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod interop;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate::authenticator::{PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions, serve};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::{PairEnd, pair};
use keygate::rp::{AttestationPolicy, RelyingParties, RpConfig, UserVerificationPolicy};
use keygate::store::SqliteStore;
use keygate::webauthn::psl::PublicSuffixList;
use keygate::webauthn::{Authenticator, Scripted, WebAuthnClient, WebAuthnError, b64};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ORIGIN: &str = "https://login.example.com";

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

async fn soft_key(pin: Option<&str>, policy: PresencePolicy) -> Key {
    let options = SoftKeyOptions {
        initial_pin: pin.map(str::to_owned),
        ..SoftKeyOptions::default()
    };
    let shared = SharedSoftKey::new(SoftKey::new(options).unwrap(), policy);
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

fn client() -> WebAuthnClient {
    // A small list is enough here; the system list is exercised by the origin tests.
    WebAuthnClient::new(Arc::new(PublicSuffixList::parse("com\nuk\nco.uk\n")))
}

fn relying_parties(dir: &Path, uv: UserVerificationPolicy) -> RelyingParties {
    let store = Arc::new(SqliteStore::open_state_dir(dir).unwrap());
    let rps = RelyingParties::open(store).unwrap();
    rps.configure(RpConfig {
        id: "example.com".into(),
        name: "Example".into(),
        origins: vec![ORIGIN.into()],
        attestation: AttestationPolicy::None,
        user_verification: uv,
    })
    .unwrap();
    rps
}

async fn register(
    key: &mut Key,
    options_json: &str,
    interaction: &Scripted,
) -> Result<String, WebAuthnError> {
    let mut authenticators: [&mut dyn Authenticator; 1] = [&mut key.device];
    client()
        .make_credential(
            ORIGIN,
            options_json,
            &mut authenticators,
            interaction,
            &CancellationToken::new(),
        )
        .await
        .map(|r| serde_json::to_string(&r).unwrap())
}

async fn authenticate(
    key: &mut Key,
    options_json: &str,
    interaction: &Scripted,
) -> Result<String, WebAuthnError> {
    let mut authenticators: [&mut dyn Authenticator; 1] = [&mut key.device];
    client()
        .get_assertion(
            ORIGIN,
            options_json,
            &mut authenticators,
            interaction,
            &CancellationToken::new(),
        )
        .await
        .map(|r| serde_json::to_string(&r).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_key_with_pin_registers_and_authenticates_at_our_rp() {
    let dir = tempfile::tempdir().unwrap();
    let rps = relying_parties(dir.path(), UserVerificationPolicy::Required);
    let mut key = soft_key(Some("1234"), PresencePolicy::AutoApprove).await;

    let started = rps
        .start_registration("example.com", "alice", "Alice")
        .unwrap();
    let interaction = Scripted::with_pins(&["0000", "1234"]);
    let response = register(&mut key, &started.options_json, &interaction)
        .await
        .unwrap();
    let parsed: Value = serde_json::from_str(&response).unwrap();
    assert_eq!(parsed["type"], "public-key");
    assert_eq!(parsed["response"]["publicKeyAlgorithm"], -7);
    assert!(parsed["response"]["publicKey"].as_str().is_some());
    assert_eq!(parsed["id"], parsed["rawId"]);
    // credProps was requested by webauthn-rs.
    assert!(parsed["clientExtensionResults"]["credProps"]["rk"].is_boolean());
    {
        let requests = interaction.pin_requests.lock().unwrap();
        assert_eq!(requests.len(), 2, "a wrong PIN is asked again");
        assert_eq!(requests[0].retries, Some(8));
        assert!(!requests[0].previous_attempt_failed);
        assert_eq!(requests[1].retries, Some(7));
        assert!(requests[1].previous_attempt_failed);
    }
    let info = rps
        .finish_registration(&started.ceremony_id, &response)
        .unwrap();
    assert_eq!(info.credential_id, parsed["id"].as_str().unwrap());

    for round in 1..=2u32 {
        let started = rps.start_authentication("example.com", "alice").unwrap();
        let interaction = Scripted::with_pins(&["1234"]);
        let response = authenticate(&mut key, &started.options_json, &interaction)
            .await
            .unwrap();
        let outcome = rps
            .finish_authentication(&started.ceremony_id, &response)
            .unwrap();
        assert_eq!(outcome.user_login, "alice");
        assert!(outcome.user_verified, "round {round}");
        assert!(outcome.counter >= round);
        // Single use, also with a genuine response.
        assert!(
            rps.finish_authentication(&started.ceremony_id, &response)
                .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_key_without_pin_and_exclude_list() {
    let dir = tempfile::tempdir().unwrap();
    let rps = relying_parties(dir.path(), UserVerificationPolicy::Preferred);
    let mut key = soft_key(None, PresencePolicy::AutoApprove).await;
    let interaction = Scripted::default();
    let started = rps.start_registration("example.com", "bob", "").unwrap();
    let response = register(&mut key, &started.options_json, &interaction)
        .await
        .unwrap();
    rps.finish_registration(&started.ceremony_id, &response)
        .unwrap();
    assert!(interaction.pin_requests.lock().unwrap().is_empty());

    // Registering the same key again: the RP excludes the credential → InvalidStateError.
    let started = rps.start_registration("example.com", "bob", "").unwrap();
    let err = register(&mut key, &started.options_json, &interaction)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "InvalidStateError", "{err}");

    let started = rps.start_authentication("example.com", "bob").unwrap();
    let response = authenticate(&mut key, &started.options_json, &interaction)
        .await
        .unwrap();
    let outcome = rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap();
    assert!(!outcome.user_verified);
    assert!(
        interaction
            .touches
            .load(std::sync::atomic::Ordering::SeqCst)
            <= 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prf_and_large_blob_round_trip() {
    let mut key = soft_key(Some("1234"), PresencePolicy::AutoApprove).await;
    let interaction = Scripted::with_pins(&["1234"; 8]);
    let create = json!({
        "rp": {"id": "example.com", "name": "Example"},
        "user": {"id": b64::encode(b"user-1"), "name": "carol", "displayName": "Carol"},
        "challenge": b64::encode(&[9; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        "extensions": {"credProps": true, "prf": {}, "largeBlob": {"support": "required"},
                       "credentialProtectionPolicy": "userVerificationRequired",
                       "enforceCredentialProtectionPolicy": true, "minPinLength": true}
    });
    let response = register(&mut key, &create.to_string(), &interaction)
        .await
        .unwrap();
    let parsed: Value = serde_json::from_str(&response).unwrap();
    let ext = &parsed["clientExtensionResults"];
    assert_eq!(ext["credProps"]["rk"], true);
    assert_eq!(ext["prf"]["enabled"], true);
    assert_eq!(ext["largeBlob"]["supported"], true);
    let credential_id = parsed["id"].as_str().unwrap().to_owned();

    let get = |extensions: Value| {
        json!({
            "challenge": b64::encode(&[7; 32]),
            "rpId": "example.com",
            "allowCredentials": [{"type": "public-key", "id": credential_id}],
            "userVerification": "required",
            "extensions": extensions,
        })
        .to_string()
    };
    let prf = |response: &str| -> Value {
        serde_json::from_str::<Value>(response).unwrap()["clientExtensionResults"]["prf"]["results"]
            .clone()
    };
    let a = authenticate(
        &mut key,
        &get(json!({"prf": {"eval": {"first": "AAEC"}}})),
        &interaction,
    )
    .await
    .unwrap();
    let b = authenticate(
        &mut key,
        &get(json!({"prf": {"evalByCredential": {credential_id.clone(): {"first": "AAEC", "second": "BBBB"}}}})),
        &interaction,
    )
    .await
    .unwrap();
    let c = authenticate(
        &mut key,
        &get(json!({"prf": {"eval": {"first": "AAED"}}})),
        &interaction,
    )
    .await
    .unwrap();
    assert_eq!(
        b64::decode(prf(&a)["first"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(
        prf(&a)["first"],
        prf(&b)["first"],
        "same input, same PRF output"
    );
    assert!(prf(&b)["second"].is_string());
    assert_ne!(
        prf(&a)["first"],
        prf(&c)["first"],
        "another input, another output"
    );

    let written = authenticate(
        &mut key,
        &get(json!({"largeBlob": {"write": b64::encode(b"hello large blob")}})),
        &interaction,
    )
    .await
    .unwrap();
    let written: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(
        written["clientExtensionResults"]["largeBlob"]["written"],
        true
    );
    let read = authenticate(
        &mut key,
        &get(json!({"largeBlob": {"read": true}})),
        &interaction,
    )
    .await
    .unwrap();
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(
        b64::decode(
            read["clientExtensionResults"]["largeBlob"]["blob"]
                .as_str()
                .unwrap()
        )
        .unwrap(),
        b"hello large blob"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_checks_happen_before_the_key_is_touched() {
    let mut key = soft_key(None, PresencePolicy::Deny).await;
    let interaction = Scripted::default();
    let options = |rp_id: &str| {
        json!({
            "rp": {"id": rp_id, "name": "X"},
            "user": {"id": "AQ", "name": "u", "displayName": "U"},
            "challenge": "AAAA",
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        })
        .to_string()
    };
    for (rp_id, name) in [("evil.com", "SecurityError"), ("com", "SecurityError")] {
        let err = register(&mut key, &options(rp_id), &interaction)
            .await
            .unwrap_err();
        assert_eq!(err.name(), name, "{rp_id}: {err}");
    }
    for (json, name) in [
        ("{", "TypeError"),
        (r#"{"challenge":"***"}"#, "EncodingError"),
    ] {
        let err = authenticate(&mut key, json, &interaction)
            .await
            .unwrap_err();
        assert_eq!(err.name(), name);
    }
    let mut none: [&mut dyn Authenticator; 0] = [];
    let err = client()
        .make_credential(
            ORIGIN,
            &options("example.com"),
            &mut none,
            &interaction,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NotAllowedError");
    // Only a platform authenticator wanted: a roaming key is not eligible (not even asked).
    let mut platform: serde_json::Value = serde_json::from_str(&options("example.com")).unwrap();
    platform["authenticatorSelection"] = json!({"authenticatorAttachment": "platform"});
    let err = register(&mut key, &platform.to_string(), &interaction)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NotAllowedError", "{err}");
    assert!(err.message().contains("no platform authenticator"), "{err}");
    // The user denies presence.
    let err = register(&mut key, &options("example.com"), &interaction)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NotAllowedError", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_cancel_reach_the_key() {
    let mut key = soft_key(
        None,
        PresencePolicy::WaitForApproval {
            timeout: Duration::from_secs(30),
        },
    )
    .await;
    let interaction = Scripted::default();
    let options = json!({
        "rp": {"id": "example.com", "name": "X"},
        "user": {"id": "AQ", "name": "u", "displayName": "U"},
        "challenge": "AAAA",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "timeout": 1000,
    })
    .to_string();
    let start = Instant::now();
    let err = register(&mut key, &options, &interaction)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NotAllowedError", "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(
        interaction
            .touches
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 1,
        "touch signalled"
    );

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let start = Instant::now();
    let mut authenticators: [&mut dyn Authenticator; 1] = [&mut key.device];
    let err = client()
        .make_credential(
            ORIGIN,
            &options.replace("1000", "60000"),
            &mut authenticators,
            &interaction,
            &cancel,
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), "AbortError", "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(key.shared.clone());
}

fn oracle(python: &Path, command: &str, request: Value) -> Value {
    interop::webauthn_oracle(python, command, &request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_fido2_server_verifies_our_client() {
    let Some(python) = interop::python() else {
        return;
    };
    let mut key = soft_key(Some("1234"), PresencePolicy::AutoApprove).await;
    let interaction = Scripted::with_pins(&["1234", "1234"]);
    let begin = oracle(
        &python,
        "server_register_begin",
        json!({"rp_id": "example.com", "rp_name": "Example", "user_id": b64::encode(b"dave"),
               "user_name": "dave", "uv": "required"}),
    );
    let response = register(&mut key, &begin["options"].to_string(), &interaction)
        .await
        .unwrap();
    let done = oracle(
        &python,
        "server_register_complete",
        json!({"rp_id": "example.com", "state": begin["state"],
               "response": serde_json::from_str::<Value>(&response).unwrap()}),
    );
    assert_eq!(done["ok"], true, "{done}");
    let credential = done["credential_data"].clone();

    let begin = oracle(
        &python,
        "server_authenticate_begin",
        json!({"rp_id": "example.com", "credentials": [credential], "uv": "required"}),
    );
    let response = authenticate(&mut key, &begin["options"].to_string(), &interaction)
        .await
        .unwrap();
    let done = oracle(
        &python,
        "server_authenticate_complete",
        json!({"rp_id": "example.com", "state": begin["state"], "credentials": [credential],
               "response": serde_json::from_str::<Value>(&response).unwrap()}),
    );
    assert_eq!(done["ok"], true, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_expiry_and_counter_with_the_soft_key() {
    use keygate::rp::{ManualClock, RpError};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000));
    let open = |clock: Arc<ManualClock>| {
        let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
        RelyingParties::open_with_clock(store, clock).unwrap()
    };
    let rps = open(clock.clone());
    rps.configure(RpConfig {
        id: "example.com".into(),
        name: "Example".into(),
        origins: vec![ORIGIN.into()],
        attestation: AttestationPolicy::None,
        user_verification: UserVerificationPolicy::Preferred,
    })
    .unwrap();
    let mut key = soft_key(None, PresencePolicy::AutoApprove).await;
    let interaction = Scripted::default();

    // Registration started, store dropped and reopened, registration finished.
    let started = rps.start_registration("example.com", "erin", "").unwrap();
    drop(rps);
    let response = register(&mut key, &started.options_json, &interaction)
        .await
        .unwrap();
    let rps = open(clock.clone());
    rps.finish_registration(&started.ceremony_id, &response)
        .unwrap();

    // Two ceremonies; the key signs A then B, the RP sees B then A: A's counter is behind.
    let a = rps.start_authentication("example.com", "erin").unwrap();
    let b = rps.start_authentication("example.com", "erin").unwrap();
    let response_a = authenticate(&mut key, &a.options_json, &interaction)
        .await
        .unwrap();
    let response_b = authenticate(&mut key, &b.options_json, &interaction)
        .await
        .unwrap();
    let outcome = rps
        .finish_authentication(&b.ceremony_id, &response_b)
        .unwrap();
    let err = rps
        .finish_authentication(&a.ceremony_id, &response_a)
        .unwrap_err();
    assert!(
        matches!(err, RpError::CounterRegression { stored, .. } if stored == outcome.counter),
        "{err:?}"
    );

    // Expiry: a genuine response after 300 s is refused.
    let c = rps.start_authentication("example.com", "erin").unwrap();
    let response_c = authenticate(&mut key, &c.options_json, &interaction)
        .await
        .unwrap();
    clock.advance(300);
    assert!(matches!(
        rps.finish_authentication(&c.ceremony_id, &response_c),
        Err(RpError::CeremonyExpired)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choose_among_keys_and_discoverable_credentials() {
    let mut first = soft_key(None, PresencePolicy::AutoApprove).await;
    let mut second = soft_key(None, PresencePolicy::AutoApprove).await;
    let create = |user: &str| {
        json!({
            "rp": {"id": "example.com", "name": "Example"},
            "user": {"id": b64::encode(user.as_bytes()), "name": user, "displayName": user},
            "challenge": b64::encode(&[1; 16]),
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
            "authenticatorSelection": {"residentKey": "required", "userVerification": "discouraged"},
        })
        .to_string()
    };
    // The user picks the second key: the credential lands there.
    let pick_second = Scripted {
        choice: 1,
        ..Scripted::default()
    };
    let mut both: [&mut dyn Authenticator; 2] = [&mut first.device, &mut second.device];
    client()
        .make_credential(
            ORIGIN,
            &create("frank"),
            &mut both,
            &pick_second,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(first.shared.with(|k| k.credentials().len()), Some(0));
    assert_eq!(second.shared.with(|k| k.credentials().len()), Some(1));
    register(&mut second, &create("grace"), &Scripted::default())
        .await
        .unwrap();

    // Username-less login: the key holds two credentials for the RP; the user picks one.
    let get = json!({"challenge": b64::encode(&[2; 16]), "rpId": "example.com",
                     "userVerification": "discouraged"})
    .to_string();
    let mut handles = Vec::new();
    for choice in 0..2 {
        let pick = Scripted {
            choice,
            ..Scripted::default()
        };
        let response = authenticate(&mut second, &get, &pick).await.unwrap();
        let parsed: Value = serde_json::from_str(&response).unwrap();
        handles.push(
            parsed["response"]["userHandle"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    handles.sort();
    let mut want = vec![b64::encode(b"frank"), b64::encode(b"grace")];
    want.sort();
    assert_eq!(handles, want);
}
