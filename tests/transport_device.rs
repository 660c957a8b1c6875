//! The host driver (`device::Device`) against device ends over the in-process pair and the
//! SOCK_SEQPACKET socket.
//!
//! `ScriptedDevice` is a small scripted device end written for these tests: it runs the real
//! `ctaphid::device::DeviceFraming` and answers CBOR/MSG requests from a script (reply,
//! keepalives, delays), recording what it saw (requests, CANCELs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate::ctap2::commands::{encode_ok_response, get_info};
use keygate::ctaphid::device::{DeviceConfig, DeviceEvent, DeviceFraming};
use keygate::ctaphid::{Capabilities, ChannelId, HidCmd, KeepaliveStatus};
use keygate::device::{Device, DeviceError, DeviceOptions};
use keygate::hid::socket::{SeqpacketListener, SeqpacketPipe};
use keygate::hid::{self, ReportPipe};
use tokio_util::sync::CancellationToken;

/// What the scripted device does with a request.
#[derive(Clone, Debug)]
enum Step {
    /// Answer at once with this payload.
    Reply(Vec<u8>),
    /// Send UPNEEDED keepalives every 20 ms for this long, then answer.
    WaitThenReply(Duration, Vec<u8>),
    /// Send keepalives until cancelled, then answer with CTAP2_ERR_KEEPALIVE_CANCEL (0x2d).
    WaitForCancel,
    /// Never answer and send nothing.
    Silent,
}

#[derive(Default, Debug)]
struct Seen {
    requests: Vec<(HidCmd, Vec<u8>)>,
    cancels: Vec<ChannelId>,
}

/// Serve `script` (one step per request, the last one repeats) on `pipe`.
fn scripted_device(
    mut pipe: impl ReportPipe,
    config: DeviceConfig,
    script: Vec<Step>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        let mut framing = DeviceFraming::new(config);
        let mut rng = {
            let mut next = 0x0100_0000u32;
            move || {
                next += 1;
                next
            }
        };
        let mut step_index = 0;
        // (cid, step, started)
        let mut pending: Option<(ChannelId, Step, Instant)> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            let report = tokio::select! {
                r = pipe.recv() => match r { Ok(r) => r, Err(_) => return },
                _ = tick.tick() => {
                    if let Some((cid, step, started)) = pending.clone() {
                        match step {
                            Step::WaitThenReply(wait, reply) if started.elapsed() >= wait => {
                                for r in framing.respond(cid, HidCmd::CBOR, &reply) { let _ = pipe.send(&r).await; }
                                pending = None;
                            }
                            Step::WaitThenReply(..) | Step::WaitForCancel => {
                                let _ = pipe.send(&framing.keepalive(cid, KeepaliveStatus::UPNEEDED)).await;
                            }
                            _ => {}
                        }
                    }
                    for r in framing.poll_timeout(Instant::now()) { let _ = pipe.send(&r).await; }
                    continue;
                }
            };
            for event in framing.push(&report, Instant::now(), &mut rng) {
                match event {
                    DeviceEvent::Send(r) => {
                        let _ = pipe.send(&r).await;
                    }
                    DeviceEvent::Request { cid, cmd, payload }
                        if cmd == HidCmd::CBOR && payload == [0x04] =>
                    {
                        // authenticatorGetInfo (sent by Device::open) is answered outside the script.
                        for r in framing.respond(cid, cmd, &scripted_get_info()) {
                            let _ = pipe.send(&r).await;
                        }
                    }
                    DeviceEvent::Request { cid, cmd, payload } => {
                        seen2.lock().unwrap().requests.push((cmd, payload));
                        let step = script[step_index.min(script.len() - 1)].clone();
                        step_index += 1;
                        match step {
                            Step::Reply(reply) => {
                                for r in framing.respond(cid, cmd, &reply) {
                                    let _ = pipe.send(&r).await;
                                }
                            }
                            Step::Silent => {}
                            other => {
                                let _ = pipe
                                    .send(&framing.keepalive(cid, KeepaliveStatus::PROCESSING))
                                    .await;
                                pending = Some((cid, other, Instant::now()));
                            }
                        }
                    }
                    DeviceEvent::Cancel(cid) => {
                        seen2.lock().unwrap().cancels.push(cid);
                        if pending.as_ref().is_some_and(|(c, _, _)| *c == cid) {
                            pending = None;
                            for r in framing.respond(cid, HidCmd::CBOR, &[0x2d]) {
                                let _ = pipe.send(&r).await;
                            }
                        }
                    }
                    DeviceEvent::Wink(_) => {}
                }
            }
        }
    });
    (seen, task)
}

/// The scripted device's authenticatorGetInfo reply: a CTAP 2.1 key.
fn scripted_get_info() -> Vec<u8> {
    let info = get_info::Response {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1".into()],
        aaguid: [0x5c; 16],
        ..Default::default()
    };
    encode_ok_response::<get_info::Request>(&info)
}

fn fast_options() -> DeviceOptions {
    DeviceOptions {
        init_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(300),
        transaction_timeout: Duration::from_secs(5),
        cancel_grace: Duration::from_millis(300),
        busy_retries: 3,
    }
}

#[tokio::test]
async fn open_ping_cbor_over_the_pair() {
    let (host, dev) = hid::pair();
    let (seen, task) = scripted_device(
        dev,
        DeviceConfig::default(),
        vec![Step::Reply(vec![0x00, 0xa0])],
    );
    let mut device = Device::open(host, fast_options()).await.unwrap();
    assert_eq!(device.cid(), ChannelId(0x0100_0001));
    assert_eq!(device.init_info().protocol_version, 2);
    assert!(device.capabilities().contains(Capabilities::CBOR));
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    assert_eq!(device.ping(&data).await.unwrap(), data);
    device.wink().await.unwrap();
    assert!(device.is_ctap2() && device.supports_version("FIDO_2_1"));
    assert_eq!(device.info().unwrap().aaguid, [0x5c; 16]);
    let reply = device
        .cbor_raw(&[0x0b], &CancellationToken::new(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(reply, vec![0x00, 0xa0]);
    assert_eq!(
        seen.lock().unwrap().requests,
        vec![(HidCmd::CBOR, vec![0x0b])]
    );
    // Resync keeps the channel.
    device.resync().await.unwrap();
    assert_eq!(device.cid(), ChannelId(0x0100_0001));
    drop(device);
    task.await.unwrap();
}

#[tokio::test]
async fn keepalives_reach_the_callback() {
    let (host, dev) = hid::pair();
    let (_seen, task) = scripted_device(
        dev,
        DeviceConfig::default(),
        vec![Step::WaitThenReply(Duration::from_millis(150), vec![0x00])],
    );
    let mut device = Device::open(host, fast_options()).await.unwrap();
    let mut statuses = Vec::new();
    let reply = device
        .cbor_raw(&[0x01, 0xa0], &CancellationToken::new(), &mut |s| {
            statuses.push(s)
        })
        .await
        .unwrap();
    assert_eq!(reply, vec![0x00]);
    assert_eq!(statuses.first(), Some(&KeepaliveStatus::PROCESSING));
    assert!(
        statuses.contains(&KeepaliveStatus::UPNEEDED),
        "{statuses:?}"
    );
    drop(device);
    task.await.unwrap();
}

#[tokio::test]
async fn cancel_sends_ctaphid_cancel() {
    let (host, dev) = hid::pair();
    let (seen, task) = scripted_device(dev, DeviceConfig::default(), vec![Step::WaitForCancel]);
    let mut device = Device::open(host, fast_options()).await.unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let err = device
        .cbor_raw(&[0x01, 0xa0], &cancel, &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Cancelled), "{err:?}");
    assert_eq!(seen.lock().unwrap().cancels, vec![device.cid()]);
    // The channel is usable afterwards.
    assert_eq!(device.ping(b"ok").await.unwrap(), b"ok");
    drop(device);
    task.await.unwrap();
}

#[tokio::test]
async fn silent_device_times_out() {
    let (host, dev) = hid::pair();
    let (_seen, task) = scripted_device(dev, DeviceConfig::default(), vec![Step::Silent]);
    let mut device = Device::open(host, fast_options()).await.unwrap();
    let started = Instant::now();
    let err = device
        .cbor_raw(&[0x0b], &CancellationToken::new(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Timeout), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    drop(device);
    task.await.unwrap();
}

#[tokio::test]
async fn whole_transaction_timeout_cancels() {
    let (host, dev) = hid::pair();
    let (seen, task) = scripted_device(dev, DeviceConfig::default(), vec![Step::WaitForCancel]);
    let mut options = fast_options();
    options.transaction_timeout = Duration::from_millis(200);
    let mut device = Device::open(host, options).await.unwrap();
    let err = device
        .cbor_raw(&[0x02, 0xa0], &CancellationToken::new(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Timeout), "{err:?}");
    assert_eq!(seen.lock().unwrap().cancels.len(), 1);
    drop(device);
    task.await.unwrap();
}

#[tokio::test]
async fn no_device_at_all_times_out_on_init() {
    let (host, _dev) = hid::pair();
    let err = Device::open(
        host,
        DeviceOptions {
            init_timeout: Duration::from_millis(50),
            ..fast_options()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DeviceError::Timeout), "{err:?}");
}

#[tokio::test]
async fn nmsg_device_refuses_msg_and_ctap1_device_refuses_cbor() {
    let (host, dev) = hid::pair();
    let config = DeviceConfig {
        capabilities: Capabilities::CBOR | Capabilities::NMSG,
        ..Default::default()
    };
    let (_seen, task) = scripted_device(dev, config, vec![Step::Reply(vec![0x90, 0x00])]);
    let mut device = Device::open(host, fast_options()).await.unwrap();
    assert!(matches!(
        device
            .msg_raw(&[0, 3, 0, 0], &CancellationToken::new())
            .await,
        Err(DeviceError::Unsupported(_))
    ));
    drop(device);
    task.await.unwrap();

    let (host, dev) = hid::pair();
    let config = DeviceConfig {
        capabilities: Capabilities::WINK,
        ..Default::default()
    };
    let (_seen, task) = scripted_device(dev, config, vec![Step::Reply(b"U2F_V2\x90\x00".to_vec())]);
    let mut device = Device::open(host, fast_options()).await.unwrap();
    assert!(matches!(
        device
            .cbor_raw(&[4], &CancellationToken::new(), &mut |_| {})
            .await,
        Err(DeviceError::Unsupported(_))
    ));
    assert_eq!(
        device
            .msg_raw(&[0, 3, 0, 0, 0, 0, 0], &CancellationToken::new())
            .await
            .unwrap(),
        b"U2F_V2\x90\x00"
    );
    drop(device);
    task.await.unwrap();
}

#[tokio::test]
async fn driver_over_the_seqpacket_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.sock");
    let listener = SeqpacketListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let pipe = listener.accept().await.unwrap();
        let (_seen, task) = scripted_device(
            pipe,
            DeviceConfig::default(),
            vec![Step::Reply(vec![0x00, 0xa1, 0x01, 0x02])],
        );
        task.await.unwrap();
    });
    let pipe = SeqpacketPipe::connect(&path).await.unwrap();
    let mut device = Device::open(pipe, fast_options()).await.unwrap();
    let reply = device
        .cbor_raw(&[0x0b], &CancellationToken::new(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(reply, vec![0x00, 0xa1, 0x01, 0x02]);
    let big = vec![0x5a; 7609];
    assert_eq!(device.ping(&big).await.unwrap(), big);
    drop(device);
    server.await.unwrap();
}

#[tokio::test]
async fn channel_busy_is_retried_until_the_other_client_finishes() {
    // Two clients on one device: A holds a long request; B's request is answered
    // CHANNEL_BUSY until A's finishes, and B's retries then succeed.
    let (host_a, dev) = hid::pair();
    // Multiplex two host ends onto one device end.
    let (host_b, dev_b_side) = hid::pair();
    let (mux_host, mux_dev) = hid::pair();
    let (_seen, task) = scripted_device(
        mux_dev,
        DeviceConfig::default(),
        vec![
            Step::WaitThenReply(Duration::from_millis(120), vec![0x00]),
            Step::Reply(vec![0x00, 0x01]),
        ],
    );
    let mux = tokio::spawn(mux_pipes(dev, dev_b_side, mux_host));
    let mut a = Device::open(host_a, fast_options()).await.unwrap();
    let mut b = Device::open(
        host_b,
        DeviceOptions {
            busy_retries: 10,
            ..fast_options()
        },
    )
    .await
    .unwrap();
    assert_ne!(a.cid(), b.cid());
    let token = CancellationToken::new();
    let (mut ka, mut kb) = (|_| {}, |_| {});
    let (ra, rb) = tokio::join!(a.cbor_raw(&[0x01], &token, &mut ka), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        b.cbor_raw(&[0x02], &token, &mut kb).await
    });
    assert_eq!(ra.unwrap(), vec![0x00]);
    assert_eq!(rb.unwrap(), vec![0x00, 0x01]);
    drop((a, b));
    mux.abort();
    let _ = mux.await;
    task.await.unwrap();
}

/// Forward reports from two host ends' device-side pipes into one device, and the device's
/// replies to both (each host filters by channel, like hidraw readers do).
async fn mux_pipes(mut a: impl ReportPipe, mut b: impl ReportPipe, mut device: impl ReportPipe) {
    loop {
        tokio::select! {
            r = a.recv() => match r { Ok(r) => { if device.send(&r).await.is_err() { return } } Err(_) => return },
            r = b.recv() => match r { Ok(r) => { if device.send(&r).await.is_err() { return } } Err(_) => return },
            r = device.recv() => match r {
                Ok(r) => { let _ = a.send(&r).await; let _ = b.send(&r).await; }
                Err(_) => return,
            },
        }
    }
}

#[tokio::test]
async fn two_keys_first_touched_wins_the_other_gets_cancel() {
    let (host_a, dev_a) = hid::pair();
    let (host_b, dev_b) = hid::pair();
    // Key 0 waits for its touch forever; key 1 is touched after 100 ms.
    let (seen_a, task_a) =
        scripted_device(dev_a, DeviceConfig::default(), vec![Step::WaitForCancel]);
    let (seen_b, task_b) = scripted_device(
        dev_b,
        DeviceConfig::default(),
        vec![Step::WaitThenReply(Duration::from_millis(100), vec![0x00])],
    );
    let mut devices = vec![
        Device::open(host_a, fast_options()).await.unwrap(),
        Device::open(host_b, fast_options()).await.unwrap(),
    ];
    let winner = keygate::device::select_device(&mut devices, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(winner, 1);
    // Both got authenticatorSelection (0x0b); only the waiting one got CTAPHID_CANCEL.
    assert_eq!(
        seen_a.lock().unwrap().requests,
        vec![(HidCmd::CBOR, vec![0x0b])]
    );
    assert_eq!(
        seen_b.lock().unwrap().requests,
        vec![(HidCmd::CBOR, vec![0x0b])]
    );
    assert_eq!(seen_a.lock().unwrap().cancels, vec![devices[0].cid()]);
    assert!(seen_b.lock().unwrap().cancels.is_empty());
    drop(devices);
    task_a.await.unwrap();
    task_b.await.unwrap();
}

#[tokio::test]
async fn race_with_no_touch_is_cancelled_by_the_caller() {
    let (host_a, dev_a) = hid::pair();
    let (seen_a, task_a) =
        scripted_device(dev_a, DeviceConfig::default(), vec![Step::WaitForCancel]);
    let mut devices = vec![Device::open(host_a, fast_options()).await.unwrap()];
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(80)).await;
        trigger.cancel();
    });
    let err = keygate::device::select_device(&mut devices, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Cancelled), "{err:?}");
    assert_eq!(seen_a.lock().unwrap().cancels.len(), 1);
    drop(devices);
    task_a.await.unwrap();
}
