//! keygated over a real (private) D-Bus: durable OTP verifications/s and RelyingParty
//! FinishAuthentication/s at 1 and 8 concurrent clients with p50/p99 latency, daemon RSS idle
//! and after the run, and start-to-ready time (spawn until the bus name is owned).
//!
//! Run: `cargo bench --bench bus` (release build of keygated and of this client).
//! Each client is its own bus connection; each OTP client verifies its own token (the counter
//! is committed, WAL + `synchronous=FULL`, before the reply); each FinishAuthentication client
//! finishes its own user's ceremonies in order (assertions pre-made by the WebAuthn client
//! against a software key, so only FinishAuthentication is timed).
//!
//! Measured 2026-11-22 on the 2-core shared build machine (release, another benchmark running):
//! start-to-ready 30 ms min / 37 ms median; RSS 11.6 MiB idle, 20.3 MiB after the run;
//! OTP VerifyCode 906/s (1 client, p50 0.40 ms, p99 8.1 ms), 3477/s (8 clients, p50 1.43 ms,
//! p99 12.0 ms); FinishAuthentication 474/s (1 client, p50 0.74 ms, p99 9.6 ms), 2201/s
//! (8 clients, p50 2.30 ms, p99 15.9 ms). `KEYGATE_BENCH_SCALE` (default 10) sets the counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/bus/mod.rs"]
mod bus;

use std::time::{Duration, Instant};

use keygate::otp::{HashAlg, hotp};
use keygate::service::client::{RelyingPartyProxy, TokensProxy, VirtualProxy, WebAuthnProxy};

const SEED: &[u8] = b"12345678901234567890";
fn scale() -> usize {
    std::env::var("KEYGATE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

fn config_text() -> String {
    let uid = nix::unistd::getuid().as_raw();
    format!(
        "admin_uids = [{uid}]\nverifier_uids = [{uid}]\n\
         [[relying_party]]\nid = \"example.org\"\nname = \"Bench\"\norigins = [\"https://example.org\"]\n"
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(what: &str, clients: usize, total: usize, elapsed: Duration, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "{what:<28} clients={clients}  {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({total} in {:.2} s)",
        total as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        elapsed.as_secs_f64()
    );
}

async fn otp_round(bus: &bus::Bus, clients: usize, per_client: usize, round: usize) {
    let admin = bus.connect().await;
    let tokens = TokensProxy::new(&admin).await.unwrap();
    let mut serials = Vec::new();
    for c in 0..clients {
        let serial = format!("BENCH-{round}-{c}");
        let spec = serde_json::json!({"user": format!("bench{c}"), "kind": "hotp", "digits": 8,
            "seed_hex": hex::encode(SEED), "serial": serial});
        tokens.create(&spec.to_string()).await.unwrap();
        serials.push(serial);
    }
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(bus.connect().await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (conn, serial) in conns.into_iter().zip(serials) {
        tasks.push(tokio::spawn(async move {
            let tokens = TokensProxy::new(&conn).await.unwrap();
            let mut lat = Vec::with_capacity(per_client);
            for counter in 0..per_client as u64 {
                let code = hotp(SEED, counter, 8, HashAlg::Sha1).unwrap();
                let t = Instant::now();
                let (ok, reason) = tokens.verify_code(&serial, &code).await.unwrap();
                lat.push(t.elapsed());
                assert!(ok, "{serial} counter {counter}: {reason}");
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    report(
        "OTP VerifyCode (durable)",
        clients,
        all.len(),
        start.elapsed(),
        all,
    );
}

fn inner(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v.get("publicKey").cloned().unwrap_or(v).to_string()
}

/// Registers `users` and pre-makes `per_user` assertions for each: (ceremony, assertion).
async fn prepare_assertions(
    bus: &bus::Bus,
    prefix: &str,
    users: usize,
    per_user: usize,
) -> Vec<Vec<(String, String)>> {
    let conn = bus.connect().await;
    let virt = VirtualProxy::new(&conn).await.unwrap();
    let client = WebAuthnProxy::new(&conn).await.unwrap();
    let rp = RelyingPartyProxy::new(&conn).await.unwrap();
    let key = virt
        .create(r#"{"presence":"auto","client_pin":false}"#)
        .await
        .unwrap();
    let mut out = Vec::new();
    for u in 0..users {
        let user = format!("{prefix}{u}");
        let (ceremony, options) = rp
            .start_registration("example.org", &user, &user)
            .await
            .unwrap();
        let response = client
            .make_credential("bench", "https://example.org", &inner(&options))
            .await
            .unwrap();
        rp.finish_registration(&ceremony, &response).await.unwrap();
        let mut list = Vec::new();
        for _ in 0..per_user {
            let (ceremony, options) = rp.start_authentication("example.org", &user).await.unwrap();
            let assertion = client
                .get_assertion("bench", "https://example.org", &inner(&options))
                .await
                .unwrap();
            list.push((ceremony, assertion));
        }
        out.push(list);
    }
    // One key at a time: with two, the client would ask which one to use.
    virt.remove(&key).await.unwrap();
    out
}

async fn finish_round(bus: &bus::Bus, work: Vec<Vec<(String, String)>>) {
    let clients = work.len();
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(bus.connect().await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (conn, list) in conns.into_iter().zip(work) {
        tasks.push(tokio::spawn(async move {
            let rp = RelyingPartyProxy::new(&conn).await.unwrap();
            let mut lat = Vec::with_capacity(list.len());
            for (ceremony, assertion) in list {
                let t = Instant::now();
                rp.finish_authentication(&ceremony, &assertion)
                    .await
                    .unwrap();
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    report(
        "FinishAuthentication",
        clients,
        all.len(),
        start.elapsed(),
        all,
    );
}

/// Spawns keygated on a fresh state dir and polls NameHasOwner (about 0.1 ms per poll) until
/// its name is owned; stops it again.
async fn measure_ready(bus: &bus::Bus) -> Duration {
    let conn = bus.connect().await;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    let name = zbus::names::BusName::try_from(bus::BUS_NAME).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("keygated.toml");
    std::fs::write(&config, config_text()).unwrap();
    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_keygated"))
        .arg("--bus-address")
        .arg(&bus.address)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&config)
        .env("KEYGATE_LOG", "warn")
        .spawn()
        .unwrap();
    while !dbus.name_has_owner(name.clone()).await.unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "keygated not ready"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let elapsed = start.elapsed();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().unwrap();
    assert!(status.success());
    elapsed
}

fn main() {
    if bus::skip_without("dbus-daemon") || bus::skip_without("busctl") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let bus = bus::Bus::session();

    // Start-to-ready: spawn until the name is owned, fresh state dir each time.
    let mut ready = Vec::new();
    for _ in 0..5 {
        ready.push(runtime.block_on(measure_ready(&bus)));
    }
    ready.sort();
    println!(
        "start-to-ready (spawn → name owned, fresh state): min {:.1} ms, median {:.1} ms",
        ready[0].as_secs_f64() * 1e3,
        ready[ready.len() / 2].as_secs_f64() * 1e3
    );

    let daemon = bus::Daemon::start(&bus, &config_text());
    std::thread::sleep(Duration::from_millis(300));
    let pid = daemon.pid();
    println!("daemon RSS idle: {:.1} MiB", rss_kib(pid) as f64 / 1024.0);

    runtime.block_on(async {
        otp_round(&bus, 1, 300 * scale(), 1).await;
        otp_round(&bus, 8, 100 * scale(), 8).await;
        let single = prepare_assertions(&bus, "solo", 1, 80 * scale()).await;
        finish_round(&bus, single).await;
        let eight = prepare_assertions(&bus, "team", 8, 10 * scale()).await;
        finish_round(&bus, eight).await;
    });
    println!(
        "daemon RSS after the run: {:.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    );
}
