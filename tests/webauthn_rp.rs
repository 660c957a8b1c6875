//! Relying party against outside-produced responses (python-fido2 2.2.1 through
//! `tests/interop/webauthn_oracle.py`), and the ceremony rules: restart, single use,
//! expiry, counter compare-and-set, backup flags, UV and attestation policy, PANIC,
//! malformed input.
//!
//! Interop rule: without `KEYGATE_PYTHON` the python-backed tests print
//! `skipped: python-fido2 not found`, unless `KEYGATE_REQUIRE_INTEROP=1`, then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod interop;

use std::path::PathBuf;
use std::sync::Arc;

use keygate::rp::{
    AttestationPolicy, ManualClock, RelyingParties, RpConfig, RpError, UserVerificationPolicy,
};
use keygate::store::{AuditEntry, SqliteStore, TokenStore};
use serde_json::{Value, json};

const ORIGIN: &str = "https://login.example.com";
const T0: i64 = 1_800_000_000;

struct Oracle(PathBuf);

impl Oracle {
    fn call(&self, command: &str, request: Value) -> Value {
        interop::webauthn_oracle(&self.0, command, &request)
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    store: Arc<SqliteStore>,
    rps: RelyingParties,
}

fn rp_config(attestation: AttestationPolicy, uv: UserVerificationPolicy) -> RpConfig {
    RpConfig {
        id: "example.com".into(),
        name: "Example".into(),
        origins: vec![ORIGIN.into()],
        attestation,
        user_verification: uv,
    }
}

impl Fixture {
    fn new(config: RpConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
        let rps = RelyingParties::open_with_clock(store.clone(), clock.clone()).unwrap();
        rps.configure(config).unwrap();
        Self {
            dir,
            clock,
            store,
            rps,
        }
    }

    /// Drops the relying parties and the store, and opens both again (a restart).
    fn restart(self) -> Self {
        let Self {
            dir,
            clock,
            store,
            rps,
        } = self;
        drop(rps);
        drop(store);
        let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
        let rps = RelyingParties::open_with_clock(store.clone(), clock.clone()).unwrap();
        Self {
            dir,
            clock,
            store,
            rps,
        }
    }
}

/// Registers `user` with the oracle's software authenticator; returns the oracle's key.
fn register(oracle: &Oracle, fx: &Fixture, user: &str, extra: Value) -> Value {
    let started = fx.rps.start_registration("example.com", user, "").unwrap();
    let mut request = json!({"origin": ORIGIN, "options": started.options_json});
    merge(&mut request, extra);
    let reply = oracle.call("register", request);
    let info = fx
        .rps
        .finish_registration(&started.ceremony_id, &reply["response"].to_string())
        .unwrap();
    assert_eq!(info.user_login, user);
    assert_eq!(
        info.credential_id,
        reply["key"]["credential_id"].as_str().unwrap()
    );
    reply["key"].clone()
}

fn assertion(
    oracle: &Oracle,
    options_json: &str,
    key: &Value,
    counter: u32,
    extra: Value,
) -> String {
    let mut request =
        json!({"origin": ORIGIN, "options": options_json, "key": key, "counter": counter});
    merge(&mut request, extra);
    oracle.call("authenticate", request)["response"].to_string()
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}

fn passkeys() -> RpConfig {
    rp_config(AttestationPolicy::None, UserVerificationPolicy::Required)
}

#[test]
fn python_client_registers_and_authenticates() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(passkeys());
    let key = register(&oracle, &fx, "alice", json!({}));

    let started = fx.rps.start_authentication("example.com", "alice").unwrap();
    let options: Value = serde_json::from_str(&started.options_json).unwrap();
    assert_eq!(options["rpId"], "example.com");
    assert_eq!(options["userVerification"], "required");
    assert_eq!(options["allowCredentials"][0]["id"], key["credential_id"]);
    let response = assertion(&oracle, &started.options_json, &key, 1, json!({}));
    let outcome = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap();
    assert_eq!(outcome.user_login, "alice");
    assert_eq!(outcome.counter, 1);
    assert!(outcome.user_verified);

    // Single use: the same ceremony cannot finish twice, even with a valid response.
    let again = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response);
    assert!(matches!(again, Err(RpError::UnknownCeremony)), "{again:?}");

    let creds = fx.rps.credentials("example.com", "alice").unwrap();
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].counter, 1);
    assert_eq!(creds[0].last_used_at, Some(T0));

    // A second registration excludes the first credential.
    let started = fx
        .rps
        .start_registration("example.com", "alice", "Alice")
        .unwrap();
    let options: Value = serde_json::from_str(&started.options_json).unwrap();
    assert_eq!(options["excludeCredentials"][0]["id"], key["credential_id"]);
    assert_eq!(options["user"]["displayName"], "Alice");
}

#[test]
fn ceremony_finishes_after_restart() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(passkeys());
    // Registration started before the restart, finished after it.
    let started = fx
        .rps
        .start_registration("example.com", "bob", "Bob")
        .unwrap();
    let fx = fx.restart();
    let reply = oracle.call(
        "register",
        json!({"origin": ORIGIN, "options": started.options_json}),
    );
    fx.rps
        .finish_registration(&started.ceremony_id, &reply["response"].to_string())
        .unwrap();
    let key = reply["key"].clone();
    // Same for authentication.
    let started = fx.rps.start_authentication("example.com", "bob").unwrap();
    let fx = fx.restart();
    assert_eq!(
        fx.rps.list().len(),
        1,
        "RP configuration survives the restart"
    );
    let response = assertion(&oracle, &started.options_json, &key, 7, json!({}));
    let outcome = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap();
    assert_eq!(outcome.counter, 7);
    let fx = fx.restart();
    assert!(matches!(
        fx.rps
            .finish_authentication(&started.ceremony_id, &response),
        Err(RpError::UnknownCeremony)
    ));
}

#[test]
fn ceremonies_expire() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(passkeys());
    let key = register(&oracle, &fx, "carol", json!({}));
    let started = fx.rps.start_authentication("example.com", "carol").unwrap();
    assert_eq!(started.expires_at, T0 + 300);
    let response = assertion(&oracle, &started.options_json, &key, 1, json!({}));
    fx.clock.advance(300);
    let err = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap_err();
    assert!(matches!(err, RpError::CeremonyExpired), "{err:?}");
    // The expired state is gone for good.
    let err = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap_err();
    assert!(matches!(err, RpError::UnknownCeremony), "{err:?}");
    // Within the lifetime it works.
    let started = fx.rps.start_authentication("example.com", "carol").unwrap();
    fx.clock.advance(299);
    let response = assertion(&oracle, &started.options_json, &key, 2, json!({}));
    fx.rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap();
    // Purge drops states that expired without a finish.
    fx.rps.start_authentication("example.com", "carol").unwrap();
    fx.clock.advance(301);
    assert_eq!(fx.rps.purge_expired().unwrap(), 1);
}

#[test]
fn counter_going_backwards_is_rejected() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(passkeys());
    let key = register(&oracle, &fx, "dave", json!({"counter": 3}));
    // Two ceremonies started together both saw counter 3.
    let first = fx.rps.start_authentication("example.com", "dave").unwrap();
    let second = fx.rps.start_authentication("example.com", "dave").unwrap();
    let high = assertion(&oracle, &second.options_json, &key, 10, json!({}));
    let low = assertion(&oracle, &first.options_json, &key, 5, json!({}));
    assert_eq!(
        fx.rps
            .finish_authentication(&second.ceremony_id, &high)
            .unwrap()
            .counter,
        10
    );
    let err = fx
        .rps
        .finish_authentication(&first.ceremony_id, &low)
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpError::CounterRegression {
                stored: 10,
                received: 5
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        fx.rps.credentials("example.com", "dave").unwrap()[0].counter,
        10
    );
    // A counter equal to the stored one is refused too (webauthn-rs sees the new value).
    let third = fx.rps.start_authentication("example.com", "dave").unwrap();
    let same = assertion(&oracle, &third.options_json, &key, 10, json!({}));
    assert!(
        fx.rps
            .finish_authentication(&third.ceremony_id, &same)
            .is_err()
    );
}

#[test]
fn tampered_or_misdirected_responses_fail_and_consume_the_ceremony() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(passkeys());
    let key = register(&oracle, &fx, "erin", json!({}));

    let started = fx.rps.start_authentication("example.com", "erin").unwrap();
    let bad = assertion(
        &oracle,
        &started.options_json,
        &key,
        1,
        json!({"tamper": "signature"}),
    );
    let err = fx
        .rps
        .finish_authentication(&started.ceremony_id, &bad)
        .unwrap_err();
    assert!(matches!(err, RpError::Verification(_)), "{err:?}");
    let good = assertion(&oracle, &started.options_json, &key, 1, json!({}));
    assert!(matches!(
        fx.rps.finish_authentication(&started.ceremony_id, &good),
        Err(RpError::UnknownCeremony)
    ));

    let started = fx.rps.start_authentication("example.com", "erin").unwrap();
    let mut request = json!({"origin": "https://evil.com", "options": started.options_json,
                             "key": key, "counter": 2});
    let phished = oracle.call("authenticate", request.take())["response"].to_string();
    let err = fx
        .rps
        .finish_authentication(&started.ceremony_id, &phished)
        .unwrap_err();
    assert!(matches!(err, RpError::Verification(_)), "{err:?}");

    // Registration of a UV-less authenticator at a UV-required RP fails.
    let started = fx
        .rps
        .start_registration("example.com", "erin", "")
        .unwrap();
    let reply = oracle.call(
        "register",
        json!({"origin": ORIGIN, "options": started.options_json, "uv": false}),
    );
    let err = fx
        .rps
        .finish_registration(&started.ceremony_id, &reply["response"].to_string())
        .unwrap_err();
    assert!(matches!(err, RpError::Verification(_)), "{err:?}");
}

#[test]
fn security_keys_with_preferred_uv_and_backup_flags() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(rp_config(
        AttestationPolicy::None,
        UserVerificationPolicy::Preferred,
    ));
    let key = register(&oracle, &fx, "frank", json!({"uv": false, "be": true}));
    let creds = fx.rps.credentials("example.com", "frank").unwrap();
    assert_eq!(creds[0].class, "security_key");
    assert!(creds[0].backup_eligible && !creds[0].backup_state);

    let started = fx.rps.start_authentication("example.com", "frank").unwrap();
    let response = assertion(
        &oracle,
        &started.options_json,
        &key,
        1,
        json!({"uv": false, "be": true, "bs": true}),
    );
    let outcome = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap();
    assert!(!outcome.user_verified);
    assert!(outcome.backup_eligible && outcome.backup_state);
    let creds = fx.rps.credentials("example.com", "frank").unwrap();
    assert!(creds[0].backup_state, "backup state stored");
}

#[test]
fn attestation_ca_list_policy() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let ca = oracle.call("make_ca", json!({}));
    let other = oracle.call("make_ca", json!({}));
    let policy = AttestationPolicy::CaList {
        ca_pems: vec![ca["ca_pem"].as_str().unwrap().to_owned()],
    };
    for uv in [
        UserVerificationPolicy::Preferred,
        UserVerificationPolicy::Required,
    ] {
        let fx = Fixture::new(rp_config(policy.clone(), uv));
        // Attested by a trusted CA: accepted.
        let started = fx
            .rps
            .start_registration("example.com", "gina", "")
            .unwrap();
        let options: Value = serde_json::from_str(&started.options_json).unwrap();
        assert_eq!(options["attestation"], "direct");
        let mut request = json!({"origin": ORIGIN, "options": started.options_json,
                                 "attestation": "packed"});
        merge(&mut request, ca.clone());
        let reply = oracle.call("register", request);
        let info = fx
            .rps
            .finish_registration(&started.ceremony_id, &reply["response"].to_string())
            .unwrap();
        assert!(info.class == "security_key" || info.class == "attested_passkey");
        // Attested by an unknown CA, or not attested at all: refused.
        for extra in [
            json!({"attestation": "packed"}),
            json!({"attestation": "none"}),
        ] {
            let started = fx
                .rps
                .start_registration("example.com", "gina", "")
                .unwrap();
            let mut request = json!({"origin": ORIGIN, "options": started.options_json});
            merge(&mut request, other.clone());
            merge(&mut request, extra.clone());
            let reply = oracle.call("register", request);
            let err = fx
                .rps
                .finish_registration(&started.ceremony_id, &reply["response"].to_string())
                .unwrap_err();
            assert!(
                matches!(err, RpError::Verification(_)),
                "{uv:?} {extra}: {err:?}"
            );
        }
    }
}

#[test]
fn panic_revokes_webauthn_credentials() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(passkeys());
    let key = register(&oracle, &fx, "hank", json!({}));
    let started = fx.rps.start_authentication("example.com", "hank").unwrap();
    let summary = fx
        .store
        .revoke_user(
            "hank",
            T0,
            AuditEntry {
                at: T0,
                caller: "test".into(),
                user: Some("hank".into()),
                serial: None,
                operation: "revoke-user".into(),
                result: "ok".into(),
                reason: None,
            },
        )
        .unwrap();
    assert_eq!(summary.other_factors, 1);
    // A ceremony started before PANIC cannot complete after it (PANIC also drops the user's
    // pending ceremonies).
    let response = assertion(&oracle, &started.options_json, &key, 1, json!({}));
    let err = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap_err();
    assert!(
        matches!(err, RpError::UnknownCeremony | RpError::CredentialRevoked),
        "{err:?}"
    );
    assert!(matches!(
        fx.rps.start_authentication("example.com", "hank"),
        Err(RpError::NoCredentials { .. })
    ));
}

#[test]
fn credential_deleted_during_a_ceremony_is_revoked() {
    let Some(python) = interop::python() else {
        return;
    };
    let oracle = Oracle(python);
    let fx = Fixture::new(passkeys());
    let key = register(&oracle, &fx, "iris", json!({}));
    let started = fx.rps.start_authentication("example.com", "iris").unwrap();
    let id = key["credential_id"].as_str().unwrap();
    assert!(fx.rps.delete_credential("example.com", id).unwrap());
    assert!(!fx.rps.delete_credential("example.com", id).unwrap());
    let response = assertion(&oracle, &started.options_json, &key, 1, json!({}));
    let err = fx
        .rps
        .finish_authentication(&started.ceremony_id, &response)
        .unwrap_err();
    assert!(matches!(err, RpError::CredentialRevoked), "{err:?}");
}

#[test]
fn malformed_input_is_a_named_error() {
    let fx = Fixture::new(passkeys());
    assert!(matches!(
        fx.rps.start_registration("other.example", "x", ""),
        Err(RpError::UnknownRp(_))
    ));
    assert!(matches!(
        fx.rps.start_registration("example.com", "", ""),
        Err(RpError::InvalidArgument(_))
    ));
    assert!(matches!(
        fx.rps
            .start_registration("example.com", &"x".repeat(1000), ""),
        Err(RpError::InvalidArgument(_))
    ));
    assert!(matches!(
        fx.rps.start_authentication("example.com", "nobody"),
        Err(RpError::NoCredentials { .. })
    ));
    assert!(matches!(
        fx.rps.finish_authentication("no-such-ceremony", "{}"),
        Err(RpError::UnknownCeremony)
    ));
    let garbage = [
        "",
        "{",
        "null",
        "[]",
        "{}",
        r#"{"id":"AA","rawId":"AA","type":"public-key","response":{}}"#,
        r#"{"id":"AA","rawId":"!!","type":"public-key","response":{"clientDataJSON":"AA","attestationObject":"AA"}}"#,
        r#"{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"AA","attestationObject":"AA"}}"#,
        r#"{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}"#,
    ];
    for input in garbage {
        let started = fx.rps.start_registration("example.com", "ivy", "").unwrap();
        let err = fx
            .rps
            .finish_registration(&started.ceremony_id, input)
            .unwrap_err();
        assert!(
            matches!(
                err,
                RpError::MalformedResponse(_) | RpError::Verification(_)
            ),
            "{input}: {err:?}"
        );
        // Consumed even so.
        assert!(matches!(
            fx.rps.finish_registration(&started.ceremony_id, input),
            Err(RpError::UnknownCeremony)
        ));
    }
    let huge = "x".repeat(100_000);
    let started = fx.rps.start_registration("example.com", "ivy", "").unwrap();
    assert!(matches!(
        fx.rps.finish_registration(&started.ceremony_id, &huge),
        Err(RpError::MalformedResponse(_))
    ));
    // A registration ceremony cannot be finished as an authentication.
    let started = fx.rps.start_registration("example.com", "ivy", "").unwrap();
    assert!(matches!(
        fx.rps.finish_authentication(&started.ceremony_id, "{}"),
        Err(RpError::WrongCeremony { .. })
    ));
}

#[test]
fn rp_id_checks_agree_with_python_fido2() {
    use keygate::webauthn::origin::CallerOrigin;
    use keygate::webauthn::psl::PublicSuffixList;
    let Some(python) = interop::python() else {
        return;
    };
    let Ok(psl) = PublicSuffixList::load_system() else {
        if std::env::var("KEYGATE_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("public suffix list not found");
        }
        eprintln!("skipped: publicsuffix not found");
        return;
    };
    let oracle = Oracle(python);
    // Domain cases only: python-fido2 does not reject IP addresses, and its check skips the
    // origin's own public suffix, so those rows live in the unit tests.
    let cases = [
        ("example.com", "https://example.com"),
        ("example.com", "https://login.example.com"),
        ("login.example.com", "https://example.com"),
        ("evil.com", "https://example.com"),
        ("example.com", "https://notexample.com"),
        ("com", "https://example.com"),
        ("co.uk", "https://example.co.uk"),
        ("example.co.uk", "https://www.example.co.uk"),
        ("github.io", "https://user.github.io"),
        ("user.github.io", "https://a.user.github.io"),
        ("example.com", "http://example.com"),
        ("localhost", "http://localhost:8080"),
        ("example.com", "https://example.com:8443"),
        ("appspot.com", "https://x.appspot.com"),
        ("s3.amazonaws.com", "https://b.s3.amazonaws.com"),
    ];
    let reply = oracle.call("verify_rp_id", json!({"cases": cases}));
    for ((rp_id, origin), want) in cases.iter().zip(reply["results"].as_array().unwrap()) {
        let ours = CallerOrigin::parse(origin)
            .and_then(|o| o.resolve_rp_id(Some(rp_id), &psl))
            .is_ok();
        assert_eq!(Some(ours), want.as_bool(), "rp id {rp_id} for {origin}");
    }
}
