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
use tokio::task::JoinHandle;
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
    pipe: impl ReportPipe,
    config: DeviceConfig,
    script: Vec<Step>,
) -> (Arc<Mutex<Seen>>, JoinHandle<()>) {
    scripted_device_with_info(pipe, config, script, scripted_get_info())
}

/// Like [`scripted_device`] with a chosen authenticatorGetInfo reply.
fn scripted_device_with_info(
    mut pipe: impl ReportPipe,
    config: DeviceConfig,
    script: Vec<Step>,
    get_info_reply: Vec<u8>,
) -> (Arc<Mutex<Seen>>, JoinHandle<()>) {
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
                        for r in framing.respond(cid, cmd, &get_info_reply) {
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

/// A scripted device (default framing) on the in-process pair, and the driver opened on it.
async fn open_scripted(
    script: Vec<Step>,
) -> (Device<hid::PairEnd>, Arc<Mutex<Seen>>, JoinHandle<()>) {
    open_scripted_with(DeviceConfig::default(), script, fast_options()).await
}

/// Like [`open_scripted`] with a chosen framing configuration and driver options.
async fn open_scripted_with(
    config: DeviceConfig,
    script: Vec<Step>,
    options: DeviceOptions,
) -> (Device<hid::PairEnd>, Arc<Mutex<Seen>>, JoinHandle<()>) {
    let (host, dev) = hid::pair();
    let (seen, task) = scripted_device(dev, config, script);
    (Device::open(host, options).await.unwrap(), seen, task)
}

/// A CBOR request that nobody cancels and whose keepalives nobody watches.
async fn cbor<P: ReportPipe>(
    device: &mut Device<P>,
    request: &[u8],
) -> Result<Vec<u8>, DeviceError> {
    device
        .cbor_raw(request, &CancellationToken::new(), &mut |_| {})
        .await
}

/// Closes the driver, then waits for the device end to see it go.
async fn close<P: ReportPipe>(device: Device<P>, task: JoinHandle<()>) {
    drop(device);
    task.await.unwrap();
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
    let (mut device, seen, task) = open_scripted(vec![Step::Reply(vec![0x00, 0xa0])]).await;
    assert_eq!(device.cid(), ChannelId(0x0100_0001));
    assert_eq!(device.init_info().protocol_version, 2);
    assert!(device.capabilities().contains(Capabilities::CBOR));
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    assert_eq!(device.ping(&data).await.unwrap(), data);
    device.wink().await.unwrap();
    assert!(device.is_ctap2() && device.supports_version("FIDO_2_1"));
    assert_eq!(device.info().unwrap().aaguid, [0x5c; 16]);
    let reply = cbor(&mut device, &[0x0b]).await.unwrap();
    assert_eq!(reply, vec![0x00, 0xa0]);
    assert_eq!(
        seen.lock().unwrap().requests,
        vec![(HidCmd::CBOR, vec![0x0b])]
    );
    // Resync keeps the channel.
    device.resync().await.unwrap();
    assert_eq!(device.cid(), ChannelId(0x0100_0001));
    close(device, task).await;
}

#[tokio::test]
async fn keepalives_reach_the_callback() {
    let (mut device, _seen, task) = open_scripted(vec![Step::WaitThenReply(
        Duration::from_millis(150),
        vec![0x00],
    )])
    .await;
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
    close(device, task).await;
}

#[tokio::test]
async fn cancel_sends_ctaphid_cancel() {
    let (mut device, seen, task) = open_scripted(vec![Step::WaitForCancel]).await;
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
    close(device, task).await;
}

#[tokio::test]
async fn silent_device_times_out() {
    let (mut device, _seen, task) = open_scripted(vec![Step::Silent]).await;
    let started = Instant::now();
    let err = cbor(&mut device, &[0x0b]).await.unwrap_err();
    assert!(matches!(err, DeviceError::Timeout), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    close(device, task).await;
}

#[tokio::test]
async fn whole_transaction_timeout_cancels() {
    let options = DeviceOptions {
        transaction_timeout: Duration::from_millis(200),
        ..fast_options()
    };
    let config = DeviceConfig::default();
    let (mut device, seen, task) =
        open_scripted_with(config, vec![Step::WaitForCancel], options).await;
    let err = cbor(&mut device, &[0x02, 0xa0]).await.unwrap_err();
    assert!(matches!(err, DeviceError::Timeout), "{err:?}");
    assert_eq!(seen.lock().unwrap().cancels.len(), 1);
    close(device, task).await;
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
    let config = DeviceConfig {
        capabilities: Capabilities::CBOR | Capabilities::NMSG,
        ..Default::default()
    };
    let script = vec![Step::Reply(vec![0x90, 0x00])];
    let (mut device, _seen, task) = open_scripted_with(config, script, fast_options()).await;
    assert!(matches!(
        device
            .msg_raw(&[0, 3, 0, 0], &CancellationToken::new())
            .await,
        Err(DeviceError::Unsupported(_))
    ));
    close(device, task).await;

    let config = DeviceConfig {
        capabilities: Capabilities::WINK,
        ..Default::default()
    };
    let script = vec![Step::Reply(b"U2F_V2\x90\x00".to_vec())];
    let (mut device, _seen, task) = open_scripted_with(config, script, fast_options()).await;
    assert!(matches!(
        cbor(&mut device, &[4]).await,
        Err(DeviceError::Unsupported(_))
    ));
    assert_eq!(
        device
            .msg_raw(&[0, 3, 0, 0, 0, 0, 0], &CancellationToken::new())
            .await
            .unwrap(),
        b"U2F_V2\x90\x00"
    );
    close(device, task).await;
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
    let reply = cbor(&mut device, &[0x0b]).await.unwrap();
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
    let (seen, task) = scripted_device(
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
        // Start B only once the device is processing A's request.
        while seen.lock().unwrap().requests.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b.cbor_raw(&[0x02], &token, &mut kb).await
    });
    assert_eq!(ra.unwrap(), vec![0x00]);
    assert_eq!(rb.unwrap(), vec![0x00, 0x01]);
    // B's first attempts were refused by the framing layer (CHANNEL_BUSY), so the device saw
    // exactly A's request and then B's retry.
    assert_eq!(
        seen.lock().unwrap().requests,
        vec![(HidCmd::CBOR, vec![0x01]), (HidCmd::CBOR, vec![0x02])]
    );
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
async fn fido_2_1_pre_key_gets_the_prototype_credential_management_command() {
    let info = get_info::Response {
        versions: vec!["FIDO_2_0".into(), "FIDO_2_1_PRE".into()],
        aaguid: [1; 16],
        options: Some(
            [("credentialMgmtPreview".to_owned(), true)]
                .into_iter()
                .collect(),
        ),
        ..Default::default()
    };
    let (host, dev) = hid::pair();
    // getCredsMetadata reply: {1: 3, 2: 22}.
    let (seen, task) = scripted_device_with_info(
        dev,
        DeviceConfig::default(),
        vec![Step::Reply(vec![0x00, 0xa2, 0x01, 0x03, 0x02, 0x16])],
        encode_ok_response::<get_info::Request>(&info),
    );
    let mut device = Device::open(host, fast_options()).await.unwrap();
    assert_eq!(device.credential_management_command(), Some(0x41));
    let reply = device
        .credential_management(
            None,
            keygate::ctap2::commands::credential_management::SubCommand::GET_CREDS_METADATA,
            None,
        )
        .await
        .unwrap();
    assert_eq!(reply.existing_resident_credentials_count, Some(3));
    assert_eq!(
        reply.max_possible_remaining_resident_credentials_count,
        Some(22)
    );
    // 0x41 followed by {1: 1}.
    assert_eq!(
        seen.lock().unwrap().requests,
        vec![(HidCmd::CBOR, vec![0x41, 0xa1, 0x01, 0x01])]
    );
    close(device, task).await;
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

// ---- Against keygate's software key (authenticator::serve) ---------------------------------

mod softkey {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use keygate::authenticator::{
        CtapVersion, PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions, serve,
    };
    use keygate::ctap2::commands::{get_assertion, make_credential};
    use keygate::ctap2::pin_protocol::{Permissions, PinProtocol};
    use keygate::ctap2::{
        AttestationStatement, AuthenticatorData, CoseKey, PublicKeyCredentialDescriptor,
        PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
        StatusCode,
    };
    use keygate::ctaphid::HidCmd;
    use keygate::device::{Device, DeviceError, DeviceOptions, first_touched};
    use keygate::hid::socket::{SeqpacketListener, SeqpacketPipe};
    use keygate::hid::{self, BoxFuture, HidError, Report, ReportPipe};
    use p256::ecdsa::signature::Verifier;
    use sha2::Digest;
    use tokio_util::sync::CancellationToken;

    const RP: &str = "example.org";

    struct Key {
        key: SharedSoftKey,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Key {
        async fn stop(self) {
            self.shutdown.cancel();
            self.task.await.unwrap();
        }

        /// Closes the driver first, then stops the key.
        async fn stop_after<P: ReportPipe>(self, device: Device<P>) {
            drop(device);
            self.stop().await;
        }
    }

    /// Default options with a PIN already set.
    fn with_pin(pin: &str) -> SoftKeyOptions {
        SoftKeyOptions {
            initial_pin: Some(pin.into()),
            ..SoftKeyOptions::default()
        }
    }

    fn start(pipe: impl ReportPipe, options: SoftKeyOptions, policy: PresencePolicy) -> Key {
        let key = SharedSoftKey::new(SoftKey::new(options).unwrap(), policy);
        let shutdown = CancellationToken::new();
        let (k, s) = (key.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            serve(pipe, k, s).await.unwrap();
        });
        Key {
            key,
            shutdown,
            task,
        }
    }

    async fn open_pair(options: SoftKeyOptions) -> (Device<hid::PairEnd>, Key) {
        let (host, dev) = hid::pair();
        let key = start(dev, options, PresencePolicy::AutoApprove);
        (
            Device::open(host, DeviceOptions::default()).await.unwrap(),
            key,
        )
    }

    /// authenticatorMakeCredential that nobody cancels, keepalives ignored.
    async fn make_credential<P: ReportPipe>(
        device: &mut Device<P>,
        request: &make_credential::Request,
    ) -> Result<make_credential::Response, DeviceError> {
        device
            .make_credential(request, &CancellationToken::new(), &mut |_| {})
            .await
    }

    /// authenticatorGetAssertion that nobody cancels, keepalives ignored.
    async fn get_assertion<P: ReportPipe>(
        device: &mut Device<P>,
        request: &get_assertion::Request,
    ) -> Result<get_assertion::Response, DeviceError> {
        device
            .get_assertion(request, &CancellationToken::new(), &mut |_| {})
            .await
    }

    /// The key refused the request with `status`.
    fn assert_status<T: std::fmt::Debug>(result: Result<T, DeviceError>, status: StatusCode) {
        let err = result.unwrap_err();
        assert_eq!(err.status(), Some(status), "{err:?}");
    }

    fn sha256(data: &[u8]) -> Vec<u8> {
        sha2::Sha256::digest(data).to_vec()
    }

    fn mc_request(cdh: &[u8], user_id: &[u8], rk: bool) -> make_credential::Request {
        let mut options = BTreeMap::new();
        options.insert("rk".to_owned(), rk);
        make_credential::Request {
            client_data_hash: cdh.to_vec(),
            rp: PublicKeyCredentialRpEntity {
                id: RP.into(),
                name: Some("Example".into()),
            },
            user: PublicKeyCredentialUserEntity {
                id: user_id.to_vec(),
                name: Some("alice".into()),
                display_name: Some("Alice".into()),
            },
            pub_key_cred_params: vec![PublicKeyCredentialParameters {
                type_: "public-key".into(),
                alg: -7,
            }],
            exclude_list: None,
            extensions: None,
            options: Some(options),
            ..Default::default()
        }
    }

    fn ga_request(cdh: &[u8], allow: Option<Vec<Vec<u8>>>) -> get_assertion::Request {
        get_assertion::Request {
            rp_id: RP.into(),
            client_data_hash: cdh.to_vec(),
            allow_list: allow.map(|ids| {
                ids.into_iter()
                    .map(PublicKeyCredentialDescriptor::public_key)
                    .collect()
            }),
            ..Default::default()
        }
    }

    /// Check a MakeCredential reply; returns (credential id, public key).
    fn check_registration(reply: &make_credential::Response, cdh: &[u8]) -> (Vec<u8>, CoseKey) {
        let auth = AuthenticatorData::parse(&reply.auth_data).unwrap();
        assert_eq!(auth.rp_id_hash.to_vec(), sha256(RP.as_bytes()));
        assert!(auth.flags.up());
        let attested = auth.attested_credential_data.unwrap();
        // Self-consistency of the attestation signature where it is made by a key we know.
        let signed = [reply.auth_data.as_slice(), cdh].concat();
        match &reply.att_stmt {
            AttestationStatement::Packed { sig, x5c: None, .. } => {
                verify(&attested.credential_public_key, &signed, sig)
            }
            AttestationStatement::Packed {
                x5c: Some(chain), ..
            } => assert!(!chain.is_empty()),
            AttestationStatement::FidoU2f { sig, x5c } => {
                assert_eq!(x5c.len(), 1);
                assert!(!sig.is_empty());
            }
            other => panic!("unexpected attestation {other:?}"),
        }
        (attested.credential_id, attested.credential_public_key)
    }

    fn verify(key: &CoseKey, message: &[u8], der_signature: &[u8]) {
        let key = p256::ecdsa::VerifyingKey::from(key.to_p256().unwrap());
        let signature = p256::ecdsa::Signature::from_der(der_signature).unwrap();
        key.verify(message, &signature).expect("signature verifies");
    }

    fn check_assertion(reply: &get_assertion::Response, key: &CoseKey, cdh: &[u8]) -> u32 {
        let auth = AuthenticatorData::parse(&reply.auth_data).unwrap();
        assert_eq!(auth.rp_id_hash.to_vec(), sha256(RP.as_bytes()));
        assert!(auth.flags.up());
        verify(
            key,
            &[reply.auth_data.as_slice(), cdh].concat(),
            &reply.signature,
        );
        auth.sign_count
    }

    async fn register_and_assert<P: ReportPipe>(device: &mut Device<P>) {
        let cdh = sha256(b"client data 1");
        let reply = make_credential(device, &mc_request(&cdh, b"user-1", false))
            .await
            .unwrap();
        let (id, key) = check_registration(&reply, &cdh);
        let cdh2 = sha256(b"client data 2");
        let assertion = get_assertion(device, &ga_request(&cdh2, Some(vec![id.clone()])))
            .await
            .unwrap();
        assert_eq!(assertion.credential.as_ref().unwrap().id, id);
        let first = check_assertion(&assertion, &key, &cdh2);
        let again = get_assertion(device, &ga_request(&cdh2, Some(vec![id])))
            .await
            .unwrap();
        assert!(
            check_assertion(&again, &key, &cdh2) > first,
            "signature counter increases"
        );
        // A credential the key never made: NO_CREDENTIALS.
        let unknown = ga_request(&cdh2, Some(vec![vec![7; 40]]));
        let refused = get_assertion(device, &unknown).await;
        assert_status(refused, StatusCode::CTAP2_ERR_NO_CREDENTIALS);
    }

    #[tokio::test]
    async fn make_credential_and_get_assertion_over_the_pair() {
        let (mut device, key) = open_pair(SoftKeyOptions::default()).await;
        assert!(device.supports_version("FIDO_2_1"));
        assert_eq!(device.pin_protocol(), Some(PinProtocol::Two));
        register_and_assert(&mut device).await;
        key.stop_after(device).await;
    }

    #[tokio::test]
    async fn make_credential_and_get_assertion_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("softkey.sock");
        let listener = SeqpacketListener::bind(&path).unwrap();
        let key = SharedSoftKey::new(
            SoftKey::new(SoftKeyOptions::default()).unwrap(),
            PresencePolicy::AutoApprove,
        );
        let shutdown = CancellationToken::new();
        let (k, s) = (key.clone(), shutdown.clone());
        let server = tokio::spawn(async move {
            let pipe = listener.accept().await.unwrap();
            serve(pipe, k, s).await.unwrap();
        });
        let pipe = SeqpacketPipe::connect(&path).await.unwrap();
        let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
        register_and_assert(&mut device).await;
        drop(device);
        shutdown.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn pin_protocol_two_permissions_retries_and_change() {
        let (mut device, key) = open_pair(SoftKeyOptions::default()).await;
        assert!(!device.pin_is_set());
        device.set_pin("1234").await.unwrap();
        assert!(device.pin_is_set());
        assert_eq!(device.pin_retries().await.unwrap().0, 8);
        // Wrong PIN: PIN_INVALID, one retry less.
        assert_status(
            device
                .pin_uv_auth_token("9999", Permissions::MAKE_CREDENTIAL, Some(RP))
                .await,
            StatusCode::CTAP2_ERR_PIN_INVALID,
        );
        assert_eq!(device.pin_retries().await.unwrap().0, 7);
        // Right PIN: a token with mc|ga for the RP; a discoverable credential with UV.
        let token = device
            .pin_uv_auth_token(
                "1234",
                Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION,
                Some(RP),
            )
            .await
            .unwrap();
        assert_eq!(token.protocol(), PinProtocol::Two);
        assert_eq!(device.pin_retries().await.unwrap().0, 8);
        let cdh = sha256(b"with pin");
        let mut request = mc_request(&cdh, b"user-pin", true);
        request.pin_uv_auth_param = Some(token.authenticate(&cdh));
        request.pin_uv_auth_protocol = Some(2);
        let reply = make_credential(&mut device, &request).await.unwrap();
        let auth = AuthenticatorData::parse(&reply.auth_data).unwrap();
        assert!(auth.flags.uv(), "UV flag set with a pinUvAuthToken");
        // A wrong pinUvAuthParam is refused.
        request.pin_uv_auth_param = Some(vec![0; 32]);
        assert_status(
            make_credential(&mut device, &request).await,
            StatusCode::CTAP2_ERR_PIN_AUTH_INVALID,
        );
        // Change the PIN; the old one no longer works.
        device.change_pin("1234", "567890").await.unwrap();
        assert_status(
            device
                .pin_uv_auth_token("1234", Permissions::GET_ASSERTION, Some(RP))
                .await,
            StatusCode::CTAP2_ERR_PIN_INVALID,
        );
        device
            .pin_uv_auth_token("567890", Permissions::GET_ASSERTION, Some(RP))
            .await
            .unwrap();
        key.stop_after(device).await;
    }

    #[tokio::test]
    async fn ctap20_key_uses_protocol_one_and_get_pin_token() {
        let options = SoftKeyOptions {
            ctap: CtapVersion::Fido20,
            initial_pin: Some("4321".into()),
            large_blobs: false,
            ..SoftKeyOptions::default()
        };
        let (mut device, key) = open_pair(options).await;
        assert!(!device.supports_version("FIDO_2_1"));
        assert_eq!(device.pin_protocol(), Some(PinProtocol::One));
        assert_eq!(device.credential_management_command(), None);
        let token = device
            .pin_uv_auth_token("4321", Permissions::MAKE_CREDENTIAL, Some(RP))
            .await
            .unwrap();
        assert_eq!(token.protocol(), PinProtocol::One);
        let cdh = sha256(b"v1");
        let mut request = mc_request(&cdh, b"user-v1", false);
        request.pin_uv_auth_param = Some(token.authenticate(&cdh));
        request.pin_uv_auth_protocol = Some(1);
        assert_eq!(
            request.pin_uv_auth_param.as_ref().unwrap().len(),
            16,
            "protocol 1 MACs are 16 bytes"
        );
        let reply = make_credential(&mut device, &request).await.unwrap();
        assert!(
            AuthenticatorData::parse(&reply.auth_data)
                .unwrap()
                .flags
                .uv()
        );
        key.stop_after(device).await;
    }

    #[tokio::test]
    async fn discoverable_credentials_get_next_assertion_and_credential_management() {
        let (mut device, key) = open_pair(with_pin("1234")).await;
        let none = CancellationToken::new();
        assert_eq!(device.credential_management_command(), Some(0x0a));
        // CTAP 2.1 §6.1.2: a successful MakeCredential clears the token's mc permission, so
        // each credential needs a fresh token (the second use of one is refused, see below).
        let mut token = None;
        for user in [b"user-a".as_slice(), b"user-b"] {
            let fresh = device
                .pin_uv_auth_token("1234", Permissions::MAKE_CREDENTIAL, Some(RP))
                .await
                .unwrap();
            let token = token.insert(fresh);
            let cdh = sha256(user);
            let mut request = mc_request(&cdh, user, true);
            request.pin_uv_auth_param = Some(token.authenticate(&cdh));
            request.pin_uv_auth_protocol = Some(2);
            make_credential(&mut device, &request).await.unwrap();
        }
        // Without an allow list: GetAssertion + GetNextAssertion return both.
        let assertions = device
            .get_assertions(&ga_request(&sha256(b"x"), None), &none, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(assertions.len(), 2);
        assert_eq!(assertions[0].number_of_credentials, Some(2));
        let mut users: Vec<Vec<u8>> = assertions
            .iter()
            .map(|a| a.user.as_ref().unwrap().id.clone())
            .collect();
        users.sort();
        assert_eq!(users, vec![b"user-a".to_vec(), b"user-b".to_vec()]);

        let cm = device
            .pin_uv_auth_token("1234", Permissions::CREDENTIAL_MANAGEMENT, None)
            .await
            .unwrap();
        assert_eq!(device.creds_metadata(&cm).await.unwrap().0, 2);
        let rps = device.enumerate_rps(&cm).await.unwrap();
        assert_eq!(rps.len(), 1);
        assert_eq!(rps[0].rp.as_ref().unwrap().id, RP);
        let rp_hash = rps[0].rp_id_hash.unwrap();
        assert_eq!(rp_hash.to_vec(), sha256(RP.as_bytes()));
        let creds = device.enumerate_credentials(&cm, rp_hash).await.unwrap();
        assert_eq!(creds.len(), 2);
        let victim = creds[0].credential_id.clone().unwrap();
        let mut new_user = creds[1].user.clone().unwrap();
        new_user.display_name = Some("Renamed".into());
        device
            .update_user_information(&cm, creds[1].credential_id.clone().unwrap(), new_user)
            .await
            .unwrap();
        device.delete_credential(&cm, victim.clone()).await.unwrap();
        assert_eq!(device.creds_metadata(&cm).await.unwrap().0, 1);
        let creds = device.enumerate_credentials(&cm, rp_hash).await.unwrap();
        assert_eq!(creds.len(), 1);
        assert_ne!(creds[0].credential_id.as_ref().unwrap().id, victim.id);
        assert_eq!(
            creds[0].user.as_ref().unwrap().display_name.as_deref(),
            Some("Renamed")
        );
        // A token without the cm permission (or whose mc permission was used up) is refused.
        let err = device
            .creds_metadata(token.as_ref().unwrap())
            .await
            .unwrap_err();
        assert!(err.status().is_some(), "{err:?}");
        key.stop_after(device).await;
    }

    #[tokio::test]
    async fn reset_within_the_window_wipes_credentials_and_pin() {
        let (mut device, key) = open_pair(with_pin("1234")).await;
        assert!(device.pin_is_set());
        device
            .reset(&CancellationToken::new(), &mut |_| {})
            .await
            .unwrap();
        assert!(!device.pin_is_set());
        key.stop_after(device).await;
    }

    #[tokio::test]
    async fn u2f_fallback_with_a_u2f_only_key() {
        let options = SoftKeyOptions {
            ctap: CtapVersion::U2fOnly,
            resident_keys: false,
            client_pin: false,
            large_blobs: false,
            ..SoftKeyOptions::default()
        };
        let (mut device, key) = open_pair(options).await;
        assert!(!device.is_ctap2());
        assert!(device.capabilities().supports_msg());
        assert_eq!(device.u2f_version().await.unwrap(), "U2F_V2");
        let cdh = sha256(b"u2f client data");
        let reply = make_credential(&mut device, &mc_request(&cdh, b"user-u2f", false))
            .await
            .unwrap();
        assert_eq!(reply.att_stmt.fmt(), "fido-u2f");
        let (id, public_key) = check_registration(&reply, &cdh);
        // The fido-u2f attestation signature (WebAuthn §8.6): 0x00 ‖ rpIdHash ‖ cdh ‖ id ‖ point.
        let AttestationStatement::FidoU2f { sig, x5c } = &reply.att_stmt else {
            unreachable!()
        };
        let cert_key = attestation_key(&x5c[0]);
        let point = public_key.to_p256().unwrap().to_sec1_bytes();
        let signed = [&[0u8][..], &sha256(RP.as_bytes()), &cdh, &id, &point].concat();
        let signature = p256::ecdsa::Signature::from_der(sig).unwrap();
        cert_key
            .verify(&signed, &signature)
            .expect("fido-u2f attestation verifies");
        let cdh2 = sha256(b"u2f assertion");
        let assertion = get_assertion(
            &mut device,
            &ga_request(&cdh2, Some(vec![vec![1; 64], id.clone()])),
        )
        .await
        .unwrap();
        assert_eq!(
            assertion.credential.unwrap().id,
            id,
            "the handle the key knows is chosen"
        );
        check_assertion_u2f(
            &assertion.auth_data,
            &assertion.signature,
            &public_key,
            &cdh2,
        );
        // Excluded credential: CREDENTIAL_EXCLUDED (after a touch).
        let mut request = mc_request(&cdh, b"user-u2f", false);
        request.exclude_list = Some(vec![PublicKeyCredentialDescriptor::public_key(id)]);
        assert_status(
            make_credential(&mut device, &request).await,
            StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED,
        );
        // Resident keys are impossible over U2F.
        assert_status(
            make_credential(&mut device, &mc_request(&cdh, b"u", true)).await,
            StatusCode::CTAP2_ERR_UNSUPPORTED_OPTION,
        );
        key.stop_after(device).await;
    }

    fn check_assertion_u2f(auth_data: &[u8], signature: &[u8], key: &CoseKey, cdh: &[u8]) {
        let auth = AuthenticatorData::parse(auth_data).unwrap();
        assert!(auth.flags.up());
        assert_eq!(auth_data.len(), 37);
        verify(key, &[auth_data, cdh].concat(), signature);
    }

    /// The P-256 key in an X.509 certificate (DER): found as the uncompressed point after the
    /// id-ecPublicKey / prime256v1 algorithm identifier.
    fn attestation_key(cert: &[u8]) -> p256::ecdsa::VerifyingKey {
        let prime256v1 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let at = cert
            .windows(prime256v1.len())
            .position(|w| w == prime256v1)
            .expect("P-256 key in certificate");
        // BIT STRING: 03 42 00 04 x y
        let rest = &cert[at + prime256v1.len()..];
        let start = rest
            .windows(3)
            .position(|w| w == [0x03, 0x42, 0x00])
            .unwrap()
            + 3;
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&rest[start..start + 65]).unwrap()
    }

    /// A device end that records the commands of the init packets the host sends.
    struct Tap<P> {
        inner: P,
        seen: Arc<Mutex<Vec<HidCmd>>>,
    }

    impl<P: ReportPipe> ReportPipe for Tap<P> {
        fn send<'a>(&'a mut self, report: &'a Report) -> BoxFuture<'a, Result<(), HidError>> {
            self.inner.send(report)
        }
        fn recv(&mut self) -> BoxFuture<'_, Result<Report, HidError>> {
            let seen = self.seen.clone();
            let fut = self.inner.recv();
            Box::pin(async move {
                let report = fut.await?;
                if report[4] & 0x80 != 0 {
                    seen.lock().unwrap().push(HidCmd(report[4]));
                }
                Ok(report)
            })
        }
    }

    #[tokio::test]
    async fn two_keys_the_approved_one_wins_the_waiting_one_gets_cancel() {
        let wait = PresencePolicy::WaitForApproval {
            timeout: Duration::from_secs(20),
        };
        let mut keys = Vec::new();
        let mut devices = Vec::new();
        let mut taps = Vec::new();
        for _ in 0..2 {
            let (host, dev) = hid::pair();
            let seen = Arc::new(Mutex::new(Vec::new()));
            taps.push(seen.clone());
            keys.push(start(
                Tap { inner: dev, seen },
                SoftKeyOptions::default(),
                wait,
            ));
            devices.push(Device::open(host, DeviceOptions::default()).await.unwrap());
        }
        let approver = keys[1].key.presence().handle();
        let approve = tokio::spawn(async move {
            while approver.pending().is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            approver.approve();
        });
        let cdh = sha256(b"race");
        let (winner, reply) = first_touched(
            &mut devices,
            &mc_request(&cdh, b"racer", false),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        approve.await.unwrap();
        assert_eq!(winner, 1);
        check_registration(&reply.unwrap(), &cdh);
        assert!(
            taps[0].lock().unwrap().contains(&HidCmd::CANCEL),
            "the waiting key got CTAPHID_CANCEL"
        );
        assert!(
            !taps[1].lock().unwrap().contains(&HidCmd::CANCEL),
            "the winner got no CANCEL"
        );
        // The loser is usable afterwards (its presence wait was cancelled, not left hanging).
        assert_eq!(devices[0].ping(b"still here").await.unwrap(), b"still here");
        drop(devices);
        for key in keys {
            key.stop().await;
        }
    }
}
