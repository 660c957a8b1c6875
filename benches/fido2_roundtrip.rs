//! MakeCredential and GetAssertion round trips per second (p50/p99) against a keygate software
//! key: keygate's host driver (`device.rs`) through the in-process pair and through the
//! SOCK_SEQPACKET socket, and python-fido2 (`$KEYGATE_PYTHON`, tests/interop/fido2_bench.py)
//! through the same socket; prints the ratio keygate/python-fido2.
//!
//! Both clients talk to the same key, so each round trip also pays the key's own work (an ECDSA
//! signature, CBOR, credential unwrapping). The bench times that work alone by calling the key's
//! CTAP2 handler in-process and prints the clients' own cost (p50 round trip minus p50 key work)
//! and its ratio as well, next to the end-to-end ratio: the first is what the driver controls.
//!
//! Run: `KEYGATE_PYTHON=/work/venv/bin/python cargo bench --bench fido2_roundtrip`
//! (`FIDO2_BENCH_N` round trips per operation, default 300). `FIDO2_BENCH_ONLY=key` times the
//! key's own work alone (no driver, no socket, no python), for profilers such as
//! `valgrind --tool=callgrind`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use keygate::authenticator::{
    AttestationKind, AutoApproveForTests, PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions,
    serve,
};
use keygate::ctap2::commands::{decode_response, get_assertion, make_credential};
use keygate::ctap2::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::ReportPipe;
use keygate::hid::socket::{SeqpacketListener, SeqpacketPipe};
use tokio_util::sync::CancellationToken;

struct Stats {
    p50: Duration,
    p99: Duration,
    per_sec: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        per_sec: samples.len() as f64 / total.as_secs_f64(),
    }
}

fn print(label: &str, s: &Stats) {
    println!(
        "{label:<44} {:>9.0}/s   p50 {:>8.3} ms   p99 {:>8.3} ms",
        s.per_sec,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    );
}

fn mc_request() -> Vec<u8> {
    make_credential::Request {
        client_data_hash: vec![0x42; 32],
        rp: PublicKeyCredentialRpEntity {
            id: "bench.example".into(),
            name: Some("Bench".into()),
        },
        user: PublicKeyCredentialUserEntity {
            id: b"bench-user".to_vec(),
            name: Some("bench".into()),
            display_name: None,
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".into(),
            alg: -7,
        }],
        ..Default::default()
    }
    .encode()
}

fn ga_request(credential_id: &[u8]) -> Vec<u8> {
    get_assertion::Request {
        rp_id: "bench.example".into(),
        client_data_hash: vec![0x42; 32],
        allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(
            credential_id.to_vec(),
        )]),
        ..Default::default()
    }
    .encode()
}

/// The credential ID in a MakeCredential reply (status byte + CBOR).
fn credential_id_of(reply: &[u8]) -> Vec<u8> {
    decode_response::<make_credential::Request>(reply)
        .unwrap()
        .auth_data()
        .unwrap()
        .attested_credential_data
        .unwrap()
        .credential_id
}

/// keygate's driver: n MakeCredential then n GetAssertion.
/// MakeCredential then GetAssertion `n` times each; the stats and the last credential id.
async fn drive<P: ReportPipe>(pipe: P, n: usize) -> (Stats, Stats, Vec<u8>) {
    let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    let cancel = CancellationToken::new();
    let mc = mc_request();
    let mut mc_times = Vec::with_capacity(n);
    let mut credential_id = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let reply = device.cbor_raw(&mc, &cancel, &mut |_| {}).await.unwrap();
        mc_times.push(t.elapsed());
        credential_id = credential_id_of(&reply);
    }
    let ga = ga_request(&credential_id);
    let mut ga_times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let reply = device.cbor_raw(&ga, &cancel, &mut |_| {}).await.unwrap();
        ga_times.push(t.elapsed());
        assert_eq!(reply[0], 0);
    }
    (stats(mc_times), stats(ga_times), credential_id)
}

/// Runs `future` as a task on the runtime's workers, where keygated runs its drivers.
/// `block_on` would poll it on the main thread instead, and each report would then cost a
/// hand-off from the worker that owns the I/O driver: about 45 µs per round trip here.
fn on_worker<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send + 'static,
) -> T {
    runtime.block_on(runtime.spawn(future)).unwrap()
}

/// The key's own work per request: its CTAP2 handler called in-process, without framing.
fn key_work(key: &SharedSoftKey, request: &[u8], n: usize) -> Stats {
    let samples = (0..n)
        .map(|_| {
            let t = Instant::now();
            let reply = key
                .with(|k| k.handle_cbor(request, &mut AutoApproveForTests, Instant::now()))
                .unwrap();
            let elapsed = t.elapsed();
            assert_eq!(reply[0], 0, "key refused the bench request");
            elapsed
        })
        .collect();
    stats(samples)
}

/// The key's own work alone: MakeCredential `n` times, then GetAssertion `n` times with the
/// credential the first MakeCredential created.
fn key_only(key: &SharedSoftKey, n: usize) {
    let mc = mc_request();
    let reply = key
        .with(|k| k.handle_cbor(&mc, &mut AutoApproveForTests, Instant::now()))
        .unwrap();
    let credential_id = credential_id_of(&reply);
    print(
        "key's own work (handler in-process), MakeCredential",
        &key_work(key, &mc, n),
    );
    print(
        "key's own work (handler in-process), GetAssertion",
        &key_work(key, &ga_request(&credential_id), n),
    );
}

/// A client's own cost: its p50 round trip minus the key's p50 work.
fn client_cost(round_trip: &Stats, key: &Stats) -> f64 {
    (round_trip.p50.as_secs_f64() - key.p50.as_secs_f64()).max(1e-9)
}

fn python_fido2(socket: &Path, n: usize) -> Option<(Stats, Stats)> {
    let python = std::env::var_os("KEYGATE_PYTHON")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/fido2_bench.py");
    let out = Command::new(python)
        .arg(script)
        .arg(socket)
        .arg(n.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python-fido2 bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let series = |name: &str| -> Vec<Duration> {
        json[name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| Duration::from_secs_f64(v.as_f64().unwrap()))
            .collect()
    };
    Some((stats(series("mc")), stats(series("ga"))))
}

fn main() {
    let n: usize = std::env::var("FIDO2_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let options = SoftKeyOptions {
        attestation: AttestationKind::Packed,
        ..SoftKeyOptions::default()
    };
    let key = SharedSoftKey::new(SoftKey::new(options).unwrap(), PresencePolicy::AutoApprove);
    if std::env::var("FIDO2_BENCH_ONLY").as_deref() == Ok("key") {
        key_only(&key, n);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bench.sock");
    let shutdown = CancellationToken::new();

    println!(
        "fido2_roundtrip: {n} round trips per operation, software key with packed attestation"
    );
    let (pair_mc, pair_ga, _) = on_worker(&runtime, {
        let (key, shutdown) = (key.clone(), shutdown.clone());
        async move {
            let (host, device) = keygate::hid::pair();
            tokio::spawn(serve(device, key, shutdown));
            drive(host, n).await
        }
    });
    print("keygate driver, in-process pair, MakeCredential", &pair_mc);
    print("keygate driver, in-process pair, GetAssertion", &pair_ga);

    runtime.block_on(async {
        let listener = SeqpacketListener::bind(&socket).unwrap();
        let key = key.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            while let Ok(pipe) = listener.accept().await {
                tokio::spawn(serve(pipe, key.clone(), shutdown.clone()));
            }
        });
    });
    let path = socket.clone();
    let (sock_mc, sock_ga, credential_id) = on_worker(&runtime, async move {
        drive(SeqpacketPipe::connect(&path).await.unwrap(), n).await
    });
    let key_mc = key_work(&key, &mc_request(), n);
    let key_ga = key_work(&key, &ga_request(&credential_id), n);
    print(
        "key's own work (handler in-process), MakeCredential",
        &key_mc,
    );
    print("key's own work (handler in-process), GetAssertion", &key_ga);
    print("keygate driver, socket, MakeCredential", &sock_mc);
    print("keygate driver, socket, GetAssertion", &sock_ga);

    match python_fido2(&socket, n) {
        Some((py_mc, py_ga)) => {
            print("python-fido2 2.2.1, socket, MakeCredential", &py_mc);
            print("python-fido2 2.2.1, socket, GetAssertion", &py_ga);
            println!(
                "ratio keygate/python-fido2 (round trips/s, socket): MakeCredential {:.1}x, GetAssertion {:.1}x",
                sock_mc.per_sec / py_mc.per_sec,
                sock_ga.per_sec / py_ga.per_sec
            );
            // On a shared, loaded machine the mean is dominated by scheduling stalls; the
            // median ratio shows the per-request cost.
            println!(
                "ratio keygate/python-fido2 (p50 latency, socket):    MakeCredential {:.1}x, GetAssertion {:.1}x",
                py_mc.p50.as_secs_f64() / sock_mc.p50.as_secs_f64(),
                py_ga.p50.as_secs_f64() / sock_ga.p50.as_secs_f64()
            );
            println!(
                "client's own cost, p50 (round trip minus key work): keygate MakeCredential {:.3} ms, GetAssertion {:.3} ms; python-fido2 {:.3} ms, {:.3} ms",
                client_cost(&sock_mc, &key_mc) * 1e3,
                client_cost(&sock_ga, &key_ga) * 1e3,
                client_cost(&py_mc, &key_mc) * 1e3,
                client_cost(&py_ga, &key_ga) * 1e3,
            );
            println!(
                "ratio python-fido2/keygate (client's own cost, p50): MakeCredential {:.1}x, GetAssertion {:.1}x",
                client_cost(&py_mc, &key_mc) / client_cost(&sock_mc, &key_mc),
                client_cost(&py_ga, &key_ga) / client_cost(&sock_ga, &key_ga)
            );
        }
        None => println!(
            "python-fido2: skipped (set KEYGATE_PYTHON to the venv python with fido2 2.2.1)"
        ),
    }
    shutdown.cancel();
}
