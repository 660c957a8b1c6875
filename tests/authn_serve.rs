//! `authenticator::serve()` over in-process report pipes: keygate's host driver (`device.rs`)
//! against the software key, KEEPALIVE while waiting for presence, CANCEL, several channels,
//! U2F over CTAPHID_MSG, and a clean stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keygate::authenticator::{PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions, serve};
use keygate::ctap2::commands::{decode_response, get_info, make_credential};
use keygate::ctap2::{
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use keygate::ctaphid::host::{HostEvent, ResponseAssembler};
use keygate::ctaphid::packet::{cancel_request, init_request};
use keygate::ctaphid::{ChannelId, HidCmd, InitResponse, KeepaliveStatus, fragment};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::{PairEnd, ReportPipe, pair};
use tokio_util::sync::CancellationToken;

fn make_credential() -> Vec<u8> {
    make_credential::Request {
        client_data_hash: vec![7; 32],
        rp: PublicKeyCredentialRpEntity {
            id: "example.com".into(),
            name: None,
        },
        user: PublicKeyCredentialUserEntity {
            id: b"user".to_vec(),
            name: None,
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

fn start(
    policy: PresencePolicy,
    options: SoftKeyOptions,
) -> (
    PairEnd,
    SharedSoftKey,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (host, device) = pair();
    let key = SharedSoftKey::new(SoftKey::new(options).unwrap(), policy);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let key = key.clone();
        let shutdown = shutdown.clone();
        async move { serve(device, key, shutdown).await.unwrap() }
    });
    (host, key, shutdown, task)
}

async fn raw_init(pipe: &mut PairEnd, nonce: [u8; 8]) -> ChannelId {
    pipe.send(&init_request(ChannelId(0xffff_ffff), &nonce))
        .await
        .unwrap();
    let mut assembler = ResponseAssembler::new(ChannelId(0xffff_ffff));
    loop {
        let report = pipe.recv().await.unwrap();
        if let Some(HostEvent::Response { payload, .. }) = assembler.push(&report).unwrap() {
            return InitResponse::decode(&payload, &nonce).unwrap().cid;
        }
    }
}

/// Reads until the reply of `cid`, collecting keepalive statuses.
async fn raw_reply(
    pipe: &mut PairEnd,
    cid: ChannelId,
    keepalives: &mut Vec<KeepaliveStatus>,
) -> Vec<u8> {
    let mut assembler = ResponseAssembler::new(cid);
    loop {
        let report = tokio::time::timeout(Duration::from_secs(10), pipe.recv())
            .await
            .unwrap()
            .unwrap();
        match assembler.push(&report).unwrap() {
            Some(HostEvent::Keepalive(status)) => keepalives.push(status),
            Some(HostEvent::Response { payload, .. }) => return payload,
            None => {}
        }
    }
}

#[tokio::test]
async fn driver_gets_info_and_makes_credential_with_keepalive_until_approval() {
    let (host, key, shutdown, task) = start(
        PresencePolicy::WaitForApproval {
            timeout: Duration::from_secs(10),
        },
        SoftKeyOptions::default(),
    );
    let mut device = Device::open(host, DeviceOptions::default()).await.unwrap();
    let cancel = CancellationToken::new();
    let info = device
        .cbor_raw(&get_info::Request.encode(), &cancel, &mut |_| {})
        .await
        .unwrap();
    let info = decode_response::<get_info::Request>(&info).unwrap();
    assert!(info.versions.contains(&"FIDO_2_1".to_owned()));

    // Approve only after the key has asked for presence for a while.
    let handle = key.presence().handle();
    let approver = tokio::spawn(async move {
        while handle.pending().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(350)).await;
        handle.approve();
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let reply = device
        .cbor_raw(&make_credential(), &cancel, &mut move |status| {
            sink.lock().unwrap().push(status)
        })
        .await
        .unwrap();
    approver.await.unwrap();
    let response = decode_response::<make_credential::Request>(&reply).unwrap();
    assert!(response.auth_data().unwrap().flags.up());
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .filter(|s| **s == KeepaliveStatus::UPNEEDED)
            .count()
            >= 2,
        "keepalives: {seen:?}"
    );

    // U2F over CTAPHID_MSG on the same key.
    let version = device
        .msg_raw(&[0x00, 0x03, 0x00, 0x00], &cancel)
        .await
        .unwrap();
    assert_eq!(version, b"U2F_V2\x90\x00");

    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn cancel_while_waiting_for_presence_answers_keepalive_cancel() {
    let (mut host, key, shutdown, task) = start(
        PresencePolicy::WaitForApproval {
            timeout: Duration::from_secs(10),
        },
        SoftKeyOptions::default(),
    );
    let cid = raw_init(&mut host, [1; 8]).await;
    for report in fragment(cid, HidCmd::CBOR, &make_credential()).unwrap() {
        host.send(&report).await.unwrap();
    }
    // Wait for the first UPNEEDED keepalive, then cancel.
    let mut assembler = ResponseAssembler::new(cid);
    loop {
        let report = host.recv().await.unwrap();
        if let Some(HostEvent::Keepalive(KeepaliveStatus::UPNEEDED)) =
            assembler.push(&report).unwrap()
        {
            break;
        }
    }
    host.send(&cancel_request(cid)).await.unwrap();
    let mut keepalives = Vec::new();
    let reply = raw_reply(&mut host, cid, &mut keepalives).await;
    assert_eq!(reply, [0x2d], "CTAP2_ERR_KEEPALIVE_CANCEL");
    assert!(key.presence().handle().pending().is_none());
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn several_channels_and_denied_presence() {
    let (mut host, _key, shutdown, task) = start(PresencePolicy::Deny, SoftKeyOptions::default());
    let a = raw_init(&mut host, [2; 8]).await;
    let b = raw_init(&mut host, [3; 8]).await;
    assert_ne!(a, b);
    for cid in [a, b, a] {
        for report in fragment(cid, HidCmd::CBOR, &get_info::Request.encode()).unwrap() {
            host.send(&report).await.unwrap();
        }
        let reply = raw_reply(&mut host, cid, &mut Vec::new()).await;
        assert_eq!(reply[0], 0);
    }
    for report in fragment(b, HidCmd::CBOR, &make_credential()).unwrap() {
        host.send(&report).await.unwrap();
    }
    let reply = raw_reply(&mut host, b, &mut Vec::new()).await;
    assert_eq!(reply, [0x27], "CTAP2_ERR_OPERATION_DENIED");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn serve_ends_when_the_host_goes_away() {
    let (host, _key, _shutdown, task) =
        start(PresencePolicy::AutoApprove, SoftKeyOptions::default());
    drop(host);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

/// `keygatectl virtual serve --state FILE --pin`: the sealed state survives a restart, the
/// status line is JSON, SIGUSR1 is survived, SIGTERM removes the socket.
#[tokio::test]
async fn virtual_serve_cli_keeps_sealed_state_across_restarts() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command as Process, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("key.sock");
    let state = dir.path().join("key.state");
    let run = |extra: &[&str]| {
        let mut child = Process::new(env!("CARGO_BIN_EXE_keygatectl"))
            .args(["--json", "virtual", "serve", "--socket"])
            .arg(&socket)
            .arg("--state")
            .arg(&state)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let status: serde_json::Value = serde_json::from_str(&line).unwrap();
        (child, status)
    };
    let signal = |child: &std::process::Child, sig| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    };
    let client_pin = |socket: std::path::PathBuf| async move {
        let pipe = keygate::hid::socket::SeqpacketPipe::connect(&socket)
            .await
            .unwrap();
        let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
        let reply = device
            .cbor_raw(
                &get_info::Request.encode(),
                &CancellationToken::new(),
                &mut |_| {},
            )
            .await
            .unwrap();
        let info = decode_response::<get_info::Request>(&reply).unwrap();
        info.options.unwrap().get("clientPin").copied()
    };

    let (mut first, status) = run(&[
        "--pin",
        "123456",
        "--aaguid",
        "00112233-4455-6677-8899-aabbccddeeff",
    ]);
    assert_eq!(status["pin_set"], true);
    assert_eq!(status["aaguid"], "00112233-4455-6677-8899-aabbccddeeff");
    assert_eq!(client_pin(socket.clone()).await, Some(true));
    signal(&first, nix::sys::signal::Signal::SIGUSR1);
    assert_eq!(client_pin(socket.clone()).await, Some(true));
    signal(&first, nix::sys::signal::Signal::SIGTERM);
    assert!(first.wait().unwrap().success());
    assert!(!socket.exists());
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key_mode = std::fs::metadata(dir.path().join("key.state.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);

    // Restart without --pin: the PIN comes from the sealed state.
    let (mut second, status) = run(&[]);
    assert_eq!(status["pin_set"], true);
    assert_eq!(client_pin(socket.clone()).await, Some(true));
    signal(&second, nix::sys::signal::Signal::SIGINT);
    assert!(second.wait().unwrap().success());
    assert!(!socket.exists());
}

/// INIT on a busy channel (resync) abandons the request waiting for a touch; the next request
/// on the channel is served and the abandoned one never answers.
#[tokio::test]
async fn resync_abandons_a_waiting_request() {
    let (mut host, key, shutdown, task) = start(
        PresencePolicy::WaitForApproval {
            timeout: Duration::from_secs(10),
        },
        SoftKeyOptions::default(),
    );
    let cid = raw_init(&mut host, [4; 8]).await;
    for report in fragment(cid, HidCmd::CBOR, &make_credential()).unwrap() {
        host.send(&report).await.unwrap();
    }
    while key.presence().handle().pending().is_none() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Resynchronise the channel, then ask GetInfo on it.
    host.send(&init_request(cid, &[5; 8])).await.unwrap();
    for report in fragment(cid, HidCmd::CBOR, &get_info::Request.encode()).unwrap() {
        host.send(&report).await.unwrap();
    }
    let mut assembler = ResponseAssembler::new(cid);
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let report = tokio::time::timeout(Duration::from_secs(5), host.recv())
            .await
            .unwrap()
            .unwrap();
        if let Some(HostEvent::Response { cmd, payload }) = assembler.push(&report).unwrap() {
            replies.push((cmd, payload));
        }
    }
    assert_eq!(replies[0].0, HidCmd::INIT);
    assert_eq!(replies[1].0, HidCmd::CBOR);
    assert_eq!(
        replies[1].1[0], 0,
        "GetInfo answered, not the abandoned MakeCredential"
    );
    assert!(key.presence().handle().pending().is_none());
    shutdown.cancel();
    task.await.unwrap();
}
