//! CTAPHID and transport benchmark (plain bench binary, `cargo bench --bench ctaphid`).
//!
//! Reports, on one run:
//! - CTAPHID frames/s: fragmenting a message and reassembling it on the device side
//!   (`DeviceFraming::push`) and on the host side (`ResponseAssembler`);
//! - round trips/s with p50/p99 of the host driver (`device::Device`) against a device end
//!   running `DeviceFraming`, through the in-process pair and through the SOCK_SEQPACKET
//!   socket: CTAPHID_PING; and against keygate's software key (`authenticator::serve`,
//!   presence approved automatically, packed attestation): MakeCredential and GetAssertion.
//!
//! `KEYGATE_BENCH_SECS` (default 2) sets the time per measurement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use keygate::authenticator::{PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions, serve};
use keygate::ctap2::commands::{get_assertion, make_credential};
use keygate::ctap2::{
    AuthenticatorData, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use keygate::ctaphid::device::{DeviceConfig, DeviceEvent, DeviceFraming};
use keygate::ctaphid::host::ResponseAssembler;
use keygate::ctaphid::{ChannelId, HidCmd, fragment};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::socket::{SeqpacketListener, SeqpacketPipe};
use keygate::hid::{self, ReportPipe};
use tokio_util::sync::CancellationToken;

fn budget() -> Duration {
    let secs = std::env::var("KEYGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

fn frames_per_second() {
    for size in [64usize, 1024, 7609] {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        // Host → device: fragment, then reassemble in DeviceFraming.
        let mut device = DeviceFraming::new(DeviceConfig::default());
        let now = Instant::now();
        let mut rng = || 0x0102_0304;
        let init = keygate::ctaphid::packet::init_request(keygate::ctaphid::BROADCAST, &[0; 8]);
        device.push(&init, now, &mut rng);
        let cid = ChannelId(0x0102_0304);
        let (mut frames, mut messages) = (0u64, 0u64);
        let started = Instant::now();
        while started.elapsed() < budget() / 2 {
            for _ in 0..100 {
                let reports = fragment(cid, HidCmd::CBOR, &payload).unwrap();
                frames += reports.len() as u64;
                for r in &reports {
                    for event in device.push(r, now, &mut rng) {
                        if let DeviceEvent::Request { cid, .. } = event {
                            std::hint::black_box(device.respond(cid, HidCmd::CBOR, &[0]));
                            messages += 1;
                        }
                    }
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(
            messages * (1 + size.saturating_sub(57).div_ceil(59)) as u64,
            frames
        );
        println!(
            "ctaphid device-side  {size:>5} B messages: {:>10.0} frames/s {:>9.0} msgs/s",
            frames as f64 / secs,
            messages as f64 / secs
        );
        // Device → host: fragment, then reassemble in ResponseAssembler.
        let mut asm = ResponseAssembler::new(cid);
        let (mut frames, mut messages) = (0u64, 0u64);
        let started = Instant::now();
        while started.elapsed() < budget() / 2 {
            for _ in 0..100 {
                let reports = fragment(cid, HidCmd::CBOR, &payload).unwrap();
                frames += reports.len() as u64;
                for r in &reports {
                    if asm.push(r).unwrap().is_some() {
                        messages += 1;
                    }
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "ctaphid host-side    {size:>5} B messages: {:>10.0} frames/s {:>9.0} msgs/s",
            frames as f64 / secs,
            messages as f64 / secs
        );
    }
}

/// A device end answering PING through DeviceFraming (the framing layer answers it itself).
async fn echo_device(mut pipe: impl ReportPipe) {
    let mut framing = DeviceFraming::new(DeviceConfig::default());
    let mut rng = || getrandom::u32().unwrap_or(7);
    while let Ok(report) = pipe.recv().await {
        for event in framing.push(&report, Instant::now(), &mut rng) {
            let replies = match event {
                DeviceEvent::Send(r) => vec![r],
                DeviceEvent::Request { cid, cmd, payload } => {
                    // authenticatorGetInfo at open: a minimal CTAP 2.0 reply.
                    let reply = if payload == [0x04] {
                        let mut r = vec![0x00, 0xa2, 0x01, 0x81, 0x68];
                        r.extend_from_slice(b"FIDO_2_0");
                        r.extend_from_slice(&[0x03, 0x50]);
                        r.extend_from_slice(&[0; 16]);
                        r
                    } else {
                        vec![0x01]
                    };
                    framing.respond(cid, cmd, &reply)
                }
                _ => vec![],
            };
            for r in replies {
                if pipe.send(&r).await.is_err() {
                    return;
                }
            }
        }
    }
}

struct Stats {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure<P: ReportPipe>(device: &mut Device<P>, payload: &[u8]) -> Stats {
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget() {
        let t = Instant::now();
        let echo = device.ping(payload).await.unwrap();
        samples.push(t.elapsed());
        assert_eq!(echo.len(), payload.len());
    }
    stats(samples, started.elapsed().as_secs_f64())
}

fn stats(mut samples: Vec<Duration>, total: f64) -> Stats {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        per_second: samples.len() as f64 / total,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn report(name: &str, stats: &Stats) {
    println!(
        "{name:<40} {:>9.0} round trips/s  p50 {:>7.1} µs  p99 {:>7.1} µs",
        stats.per_second,
        stats.p50.as_secs_f64() * 1e6,
        stats.p99.as_secs_f64() * 1e6
    );
}

async fn round_trips() {
    let payload = vec![0x42u8; 200];
    // In-process pair.
    let (host, dev) = hid::pair();
    let server = tokio::spawn(echo_device(dev));
    let mut device = Device::open(host, DeviceOptions::default()).await.unwrap();
    report(
        "PING 200 B, in-process pair",
        &measure(&mut device, &payload).await,
    );
    drop(device);
    server.await.unwrap();
    // SOCK_SEQPACKET socket.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sock");
    let listener = SeqpacketListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let pipe = listener.accept().await.unwrap();
        echo_device(pipe).await;
    });
    let pipe = SeqpacketPipe::connect(&path).await.unwrap();
    let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    report(
        "PING 200 B, SOCK_SEQPACKET socket",
        &measure(&mut device, &payload).await,
    );
    drop(device);
    server.await.unwrap();
}

fn mc_request(n: u64) -> make_credential::Request {
    make_credential::Request {
        client_data_hash: vec![n as u8; 32],
        rp: PublicKeyCredentialRpEntity {
            id: "bench.example".into(),
            name: None,
        },
        user: PublicKeyCredentialUserEntity {
            id: n.to_be_bytes().to_vec(),
            name: Some("bench".into()),
            display_name: None,
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".into(),
            alg: -7,
        }],
        ..Default::default()
    }
}

async fn measure_softkey<P: ReportPipe>(name: &str, device: &mut Device<P>) {
    let none = CancellationToken::new();
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    let mut credential = Vec::new();
    while started.elapsed() < budget() {
        n += 1;
        let t = Instant::now();
        let reply = device
            .make_credential(&mc_request(n), &none, &mut |_| {})
            .await
            .unwrap();
        samples.push(t.elapsed());
        if credential.is_empty() {
            let auth = AuthenticatorData::parse(&reply.auth_data).unwrap();
            credential = auth.attested_credential_data.unwrap().credential_id;
        }
    }
    report(
        &format!("MakeCredential, {name}"),
        &stats(samples, started.elapsed().as_secs_f64()),
    );
    let request = get_assertion::Request {
        rp_id: "bench.example".into(),
        client_data_hash: vec![9; 32],
        allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(credential)]),
        ..Default::default()
    };
    let mut samples = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget() {
        let t = Instant::now();
        std::hint::black_box(
            device
                .get_assertion(&request, &none, &mut |_| {})
                .await
                .unwrap(),
        );
        samples.push(t.elapsed());
    }
    report(
        &format!("GetAssertion, {name}"),
        &stats(samples, started.elapsed().as_secs_f64()),
    );
}

fn soft_key() -> SharedSoftKey {
    SharedSoftKey::new(
        SoftKey::new(SoftKeyOptions::default()).unwrap(),
        PresencePolicy::AutoApprove,
    )
}

async fn softkey_round_trips() {
    let (host, dev) = hid::pair();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(dev, soft_key(), shutdown.clone()));
    let mut device = Device::open(host, DeviceOptions::default()).await.unwrap();
    measure_softkey("in-process pair", &mut device).await;
    drop(device);
    shutdown.cancel();
    server.await.unwrap().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("softkey.sock");
    let listener = SeqpacketListener::bind(&path).unwrap();
    let shutdown = CancellationToken::new();
    let s = shutdown.clone();
    let server = tokio::spawn(async move {
        let pipe = listener.accept().await.unwrap();
        serve(pipe, soft_key(), s).await.unwrap();
    });
    let pipe = SeqpacketPipe::connect(&path).await.unwrap();
    let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    measure_softkey("SOCK_SEQPACKET socket", &mut device).await;
    drop(device);
    shutdown.cancel();
    server.await.unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    frames_per_second();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(round_trips());
    rt.block_on(softkey_round_trips());
}
