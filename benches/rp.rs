//! Relying-party benchmark: durable FinishAuthentication/s in-process, 1 and 8 threads.
//!
//! Each thread owns one credential (counters must increase per credential) and finishes
//! pre-started ceremonies whose assertions were signed beforehand, so the timed part is
//! exactly `RelyingParties::finish_authentication`: read the state, webauthn-rs
//! verification (ES256 through RustCrypto), and one group-committed transaction that takes
//! the state and moves the counter by compare-and-set (SQLite WAL, synchronous=FULL).
//!
//! With `KEYGATE_PYTHON` set, python-fido2's `Fido2Server.authenticate_complete` is timed on
//! the same response (verification only: no state store, no counter) and printed as a ratio.
//!
//! Run: `cargo bench --bench rp` (env `RP_BENCH_N` = ceremonies per thread, default 400).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use ciborium::Value;
use keygate::rp::{AttestationPolicy, RelyingParties, RpConfig, UserVerificationPolicy};
use keygate::store::SqliteStore;
use keygate::webauthn::b64;
use keygate::webauthn::client_data::{CeremonyType, client_data_hash, client_data_json};
use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
use sha2::{Digest, Sha256};

const RP_ID: &str = "example.com";
const ORIGIN: &str = "https://login.example.com";

/// A minimal ES256 authenticator for producing valid responses quickly.
struct SoftSigner {
    key: SigningKey,
    credential_id: Vec<u8>,
}

impl SoftSigner {
    fn new() -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).unwrap();
        let mut credential_id = vec![0u8; 32];
        getrandom::fill(&mut credential_id).unwrap();
        Self {
            key: SigningKey::from_slice(&seed).unwrap(),
            credential_id,
        }
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        let key = Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(3), Value::from(-7)),
            (Value::from(-1), Value::from(1)),
            (Value::from(-2), Value::Bytes(bytes[1..33].to_vec())),
            (Value::from(-3), Value::Bytes(bytes[33..65].to_vec())),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&key, &mut out).unwrap();
        out
    }

    fn auth_data(&self, flags: u8, counter: u32, attested: bool) -> Vec<u8> {
        let mut data = Sha256::digest(RP_ID.as_bytes()).to_vec();
        data.push(flags | if attested { 0x40 } else { 0 });
        data.extend_from_slice(&counter.to_be_bytes());
        if attested {
            data.extend_from_slice(&[0u8; 16]);
            data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
            data.extend_from_slice(&self.credential_id);
            data.extend_from_slice(&self.cose_key());
        }
        data
    }

    fn register(&self, options_json: &str) -> String {
        let options: serde_json::Value = serde_json::from_str(options_json).unwrap();
        let challenge = b64::decode(options["challenge"].as_str().unwrap()).unwrap();
        let client_data = client_data_json(CeremonyType::Create, &challenge, ORIGIN);
        let auth_data = self.auth_data(0x05, 0, true);
        let attestation = Value::Map(vec![
            (Value::from("fmt"), Value::from("none")),
            (Value::from("attStmt"), Value::Map(vec![])),
            (Value::from("authData"), Value::Bytes(auth_data)),
        ]);
        let mut object = Vec::new();
        ciborium::into_writer(&attestation, &mut object).unwrap();
        serde_json::json!({
            "id": b64::encode(&self.credential_id),
            "rawId": b64::encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64::encode(&client_data),
                "attestationObject": b64::encode(&object),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        })
        .to_string()
    }

    fn assert(&self, options_json: &str, counter: u32, user_handle: &str) -> String {
        let options: serde_json::Value = serde_json::from_str(options_json).unwrap();
        let challenge = b64::decode(options["challenge"].as_str().unwrap()).unwrap();
        let client_data = client_data_json(CeremonyType::Get, &challenge, ORIGIN);
        let auth_data = self.auth_data(0x05, counter, false);
        let mut message = auth_data.clone();
        message.extend_from_slice(&client_data_hash(&client_data));
        let signature: Signature = self.key.sign(&message);
        serde_json::json!({
            "id": b64::encode(&self.credential_id),
            "rawId": b64::encode(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64::encode(&client_data),
                "authenticatorData": b64::encode(&auth_data),
                "signature": b64::encode(signature.to_der().as_bytes()),
                "userHandle": user_handle,
            },
            "clientExtensionResults": {},
        })
        .to_string()
    }

    /// WebAuthn attested credential data (for python-fido2's server).
    fn attested_credential_data(&self) -> Vec<u8> {
        let mut data = vec![0u8; 16];
        data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        data.extend_from_slice(&self.credential_id);
        data.extend_from_slice(&self.cose_key());
        data
    }
}

struct Prepared {
    ceremony_id: String,
    response: String,
}

fn prepare(rps: &RelyingParties, user: &str, count: u32) -> (SoftSigner, Vec<Prepared>, String) {
    let signer = SoftSigner::new();
    let started = rps.start_registration(RP_ID, user, "").unwrap();
    let options: serde_json::Value = serde_json::from_str(&started.options_json).unwrap();
    let user_handle = options["user"]["id"].as_str().unwrap().to_owned();
    rps.finish_registration(
        &started.ceremony_id,
        &signer.register(&started.options_json),
    )
    .unwrap();
    let mut out = Vec::with_capacity(count as usize);
    let mut last_options = String::new();
    for counter in 1..=count {
        let started = rps.start_authentication(RP_ID, user).unwrap();
        out.push(Prepared {
            response: signer.assert(&started.options_json, counter, &user_handle),
            ceremony_id: started.ceremony_id,
        });
        last_options = started.options_json;
    }
    (signer, out, last_options)
}

fn run(rps: &Arc<RelyingParties>, threads: usize, per_thread: u32, round: usize) -> f64 {
    let prepared: Vec<Vec<Prepared>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let rps = rps.clone();
                scope.spawn(move || prepare(&rps, &format!("bench-{round}-{t}"), per_thread).1)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut latencies = Vec::new();
    let start = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = prepared
            .into_iter()
            .map(|work| {
                let rps = rps.clone();
                scope.spawn(move || {
                    let mut lat = Vec::with_capacity(work.len());
                    for item in work {
                        let t0 = Instant::now();
                        rps.finish_authentication(&item.ceremony_id, &item.response)
                            .unwrap();
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    lat
                })
            })
            .collect();
        for h in handles {
            latencies.extend(h.join().unwrap());
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let rate = latencies.len() as f64 / elapsed;
    println!(
        "FinishAuthentication in-process, {threads} thread(s): {} in {elapsed:.2} s = {rate:.0}/s  (p50 {:.2} ms, p99 {:.2} ms)",
        latencies.len(),
        pct(0.5),
        pct(0.99)
    );
    rate
}

fn python_rate(rps: &RelyingParties) -> Option<f64> {
    let python = std::env::var_os("KEYGATE_PYTHON")?;
    let (signer, mut prepared, options_json) = prepare(rps, "bench-python", 1);
    let options: serde_json::Value = serde_json::from_str(&options_json).unwrap();
    let item = prepared.pop()?;
    let request = serde_json::json!({
        "rp_id": RP_ID,
        "state": {"challenge": options["challenge"], "user_verification": "required"},
        "credentials": [b64::encode(&signer.attested_credential_data())],
        "response": serde_json::from_str::<serde_json::Value>(&item.response).unwrap(),
        "repeat": 2000,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/webauthn_oracle.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg("server_authenticate_complete")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    child
        .stdin
        .take()?
        .write_all(request.to_string().as_bytes())
        .ok()?;
    let output = child.wait_with_output().ok()?;
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    if reply["ok"] != true {
        eprintln!("python-fido2 rejected the response: {reply}");
        return None;
    }
    reply["per_sec"].as_f64()
}

fn main() {
    let per_thread: u32 = std::env::var("RP_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
    let rps = Arc::new(RelyingParties::open(store).unwrap());
    rps.configure(RpConfig {
        id: RP_ID.into(),
        name: "Bench".into(),
        origins: vec![ORIGIN.into()],
        attestation: AttestationPolicy::None,
        user_verification: UserVerificationPolicy::Required,
    })
    .unwrap();
    let one = run(&rps, 1, per_thread, 0);
    let eight = run(&rps, 8, per_thread, 1);
    match python_rate(&rps) {
        Some(py) => println!(
            "python-fido2 Fido2Server.authenticate_complete (verify only, 1 thread): {py:.0}/s; keygate durable 1 thread / python = {:.2}, 8 threads / python = {:.2}",
            one / py,
            eight / py
        ),
        None => println!("python-fido2 comparison skipped (KEYGATE_PYTHON not set or failed)"),
    }
}
