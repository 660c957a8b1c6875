//! `serve()`: runs a software key on one pipe of HID reports, through the device side of
//! CTAPHID. Requests run on a blocking thread (the key may wait for the user); meanwhile the
//! loop keeps reading reports, sends KEEPALIVE every 100 ms (UPNEEDED while the key waits for
//! presence, PROCESSING otherwise, CTAP 2.1 §11.2.9.1.7) and turns CTAPHID_CANCEL into a
//! cancelled presence wait, answered with CTAP2_ERR_KEEPALIVE_CANCEL (§11.2.9.1.5).

use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::authenticator::{AuthnError, CtapVersion, SharedSoftKey, SoftKeyOptions};
use crate::ctaphid::device::{DeviceConfig, DeviceEvent, DeviceFraming};
use crate::ctaphid::{Capabilities, ChannelId, HidCmd, KeepaliveStatus};
use crate::hid::{HidError, Report, ReportPipe};

/// Interval between KEEPALIVE reports while a request is processed.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);

/// CTAP1_ERR_OTHER, answered when a request handler fails unexpectedly.
const CTAP1_ERR_OTHER: u8 = 0x7f;

/// The CTAPHID presentation of a key with `options`: CBOR unless U2F-only, MSG always
/// (NMSG clear), WINK.
pub fn device_config(options: &SoftKeyOptions) -> DeviceConfig {
    let capabilities = match options.ctap {
        CtapVersion::U2fOnly => Capabilities::WINK,
        CtapVersion::Fido20 | CtapVersion::Fido21Pre | CtapVersion::Fido21 => {
            Capabilities::CBOR.union(Capabilities::WINK)
        }
    };
    DeviceConfig {
        capabilities,
        major: 0,
        minor: 1,
        build: 0,
        ..DeviceConfig::default()
    }
}

struct Pending {
    cid: ChannelId,
    cmd: HidCmd,
    task: JoinHandle<Vec<u8>>,
}

fn channel_rng() -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        // Channel ids need only be unique, not secret; fall back to the clock.
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
    }
    u32::from_le_bytes(bytes)
}

async fn send_all(pipe: &mut impl ReportPipe, reports: &[Report]) -> Result<(), HidError> {
    for report in reports {
        pipe.send(report).await?;
    }
    Ok(())
}

/// Serves `key` on `pipe` (the device end) until `shutdown` is cancelled or the host closes
/// the pipe (both are a normal end: `Ok`).
pub async fn serve(
    mut pipe: impl ReportPipe,
    key: SharedSoftKey,
    shutdown: CancellationToken,
) -> Result<(), AuthnError> {
    let config = key
        .with(|k| device_config(k.options()))
        .ok_or_else(|| AuthnError::BadState("key lock poisoned".into()))?;
    let mut framing = DeviceFraming::new(config);
    let presence = key.presence().for_connection();
    let mut pending: Option<Pending> = None;
    let mut rng = channel_rng;
    let mut keepalive = tokio::time::interval(KEEPALIVE_INTERVAL);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let result = loop {
        let deadline = framing.next_deadline();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            joined = async {
                match pending.as_mut() {
                    Some(p) => (&mut p.task).await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(done) = pending.take() else { continue };
                let payload = joined.unwrap_or_else(|_| {
                    if done.cmd == HidCmd::MSG { vec![0x6f, 0x00] } else { vec![CTAP1_ERR_OTHER] }
                });
                if let Err(e) = send_all(&mut pipe, &framing.respond(done.cid, done.cmd, &payload)).await {
                    break Err(AuthnError::Hid(e));
                }
            }
            received = pipe.recv() => {
                let report = match received {
                    Ok(report) => report,
                    Err(HidError::Closed) => break Ok(()),
                    Err(e) => break Err(AuthnError::Hid(e)),
                };
                let mut failed = None;
                for event in framing.push(&report, Instant::now(), &mut rng) {
                    match event {
                        DeviceEvent::Send(out) => {
                            if let Err(e) = pipe.send(&out).await {
                                failed = Some(e);
                                break;
                            }
                        }
                        DeviceEvent::Request { cid, cmd, payload } => {
                            presence.begin_transaction();
                            let shared = key.clone();
                            let mut task_presence = presence.clone();
                            let task = tokio::task::spawn_blocking(move || {
                                let now = Instant::now();
                                shared
                                    .with(|k| {
                                        if cmd == HidCmd::MSG {
                                            k.handle_u2f(&payload, &mut task_presence)
                                        } else {
                                            k.handle_cbor(&payload, &mut task_presence, now)
                                        }
                                    })
                                    .unwrap_or_else(|| vec![CTAP1_ERR_OTHER])
                            });
                            pending = Some(Pending { cid, cmd, task });
                            keepalive.reset();
                        }
                        DeviceEvent::Cancel(cid) => {
                            if pending.as_ref().is_some_and(|p| p.cid == cid) {
                                presence.cancel();
                            }
                        }
                        DeviceEvent::Wink(_) => {}
                    }
                }
                if let Some(e) = failed {
                    break Err(AuthnError::Hid(e));
                }
            }
            _ = keepalive.tick(), if pending.is_some() => {
                if let Some(p) = pending.as_ref() {
                    let status = if presence.is_waiting() { KeepaliveStatus::UPNEEDED } else { KeepaliveStatus::PROCESSING };
                    let report = framing.keepalive(p.cid, status);
                    if let Err(e) = pipe.send(&report).await {
                        break Err(AuthnError::Hid(e));
                    }
                }
            }
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = send_all(&mut pipe, &framing.poll_timeout(Instant::now())).await {
                    break Err(AuthnError::Hid(e));
                }
            }
        }
    };
    // A request still running must not wait for a user who is gone.
    if let Some(p) = pending.take() {
        presence.cancel();
        let _ = p.task.await;
    }
    match result {
        Err(AuthnError::Hid(HidError::Closed)) => Ok(()),
        other => other,
    }
}
