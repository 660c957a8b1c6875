//! Async host driver: a HID transport + `ctaphid` + `ctap2`; keepalive, cancel, timeouts,
//! several keys at once.
//!
//! Layer rule: uses `hid`, `ctaphid` and `ctap2`; may not import `authenticator`, `service`,
//! `store` or anything above.
//!
//! One [`Device`] owns one [`ReportPipe`] and one CTAPHID channel. [`Device::open`] allocates
//! the channel with CTAPHID_INIT (CTAP 2.1 §11.2.9.1.3), then asks a CTAP2 key for
//! authenticatorGetInfo. [`Device::transact`] sends one request and waits for its reply,
//! reporting KEEPALIVE to a callback, sending CTAPHID_CANCEL when a [`CancellationToken`]
//! fires, and giving up after the configured timeouts.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ctaphid::host::{HostEvent, ResponseAssembler};
use crate::ctaphid::packet::{cancel_request, init_request};
use crate::ctaphid::{
    BROADCAST, Capabilities, ChannelId, CtapHidErrorCode, FramingError, HidCmd, INIT_NONCE_LEN,
    InitResponse, KeepaliveStatus, fragment,
};
use crate::hid::{HidError, ReportPipe};

/// An error of the host driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The transport failed.
    #[error("hid: {0}")]
    Hid(#[from] HidError),
    /// A CTAPHID framing error, including CTAPHID_ERROR replies.
    #[error("ctaphid: {0}")]
    Framing(#[from] FramingError),
    /// No reply within the timeout.
    #[error("the device did not answer in time")]
    Timeout,
    /// The request was cancelled by the caller (CTAPHID_CANCEL was sent).
    #[error("the request was cancelled")]
    Cancelled,
    /// The operation needs a capability the device lacks.
    #[error("the device does not support {0}")]
    Unsupported(&'static str),
    /// The system random generator failed (channel nonce).
    #[error("random generator failed")]
    Random,
}

/// Timeouts of the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOptions {
    /// How long to wait for the CTAPHID_INIT reply (each of 3 attempts).
    pub init_timeout: Duration,
    /// Longest silence inside a transaction: a device that processes a request sends
    /// KEEPALIVE every 100 ms (§11.2.9.1.7), so a long gap means it is gone.
    pub idle_timeout: Duration,
    /// Longest whole transaction (user presence included); then the request is cancelled.
    pub transaction_timeout: Duration,
    /// How long to wait for the device's final reply after CTAPHID_CANCEL.
    pub cancel_grace: Duration,
    /// How often a CHANNEL_BUSY reply is retried (with a growing pause) before failing.
    pub busy_retries: u32,
}

impl Default for DeviceOptions {
    /// 1 s INIT, 5 s idle, 30 s per transaction, 500 ms cancel grace, 5 busy retries.
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            transaction_timeout: Duration::from_secs(30),
            cancel_grace: Duration::from_millis(500),
            busy_retries: 5,
        }
    }
}

/// A FIDO device reached through a report pipe, with an allocated CTAPHID channel.
#[derive(Debug)]
pub struct Device<P: ReportPipe = Box<dyn ReportPipe>> {
    pipe: P,
    cid: ChannelId,
    init: InitResponse,
    options: DeviceOptions,
}

fn nonce() -> Result<[u8; INIT_NONCE_LEN], DeviceError> {
    let mut nonce = [0u8; INIT_NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| DeviceError::Random)?;
    Ok(nonce)
}

impl<P: ReportPipe> Device<P> {
    /// Allocate a channel on the device behind `pipe` (CTAPHID_INIT on the broadcast channel).
    pub async fn open(pipe: P, options: DeviceOptions) -> Result<Self, DeviceError> {
        let mut pipe = pipe;
        let init = init_channel(&mut pipe, BROADCAST, &options).await?;
        Ok(Self {
            pipe,
            cid: init.cid,
            init,
            options,
        })
    }

    /// Resynchronise the channel (CTAPHID_INIT on the allocated channel, §11.2.9.1.3): the
    /// device aborts whatever it was doing for us.
    pub async fn resync(&mut self) -> Result<(), DeviceError> {
        let init = init_channel(&mut self.pipe, self.cid, &self.options).await?;
        self.init = init;
        Ok(())
    }

    /// The allocated channel.
    pub fn cid(&self) -> ChannelId {
        self.cid
    }

    /// The device's INIT reply (versions and capabilities).
    pub fn init_info(&self) -> &InitResponse {
        &self.init
    }

    /// The capability flags of the INIT reply.
    pub fn capabilities(&self) -> Capabilities {
        self.init.capabilities
    }

    /// The timeouts in force.
    pub fn options(&self) -> &DeviceOptions {
        &self.options
    }

    /// Change the timeouts.
    pub fn set_options(&mut self, options: DeviceOptions) {
        self.options = options;
    }

    /// Give the pipe back.
    pub fn into_pipe(self) -> P {
        self.pipe
    }

    /// One CTAPHID transaction: send `payload` as `cmd`, wait for the reply of the same
    /// command. KEEPALIVEs go to `on_keepalive`; when `cancel` fires, CTAPHID_CANCEL is sent,
    /// the device's final reply is awaited for [`DeviceOptions::cancel_grace`], and the result
    /// is [`DeviceError::Cancelled`]. CHANNEL_BUSY is retried.
    pub async fn transact(
        &mut self,
        cmd: HidCmd,
        payload: &[u8],
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<Vec<u8>, DeviceError> {
        let mut attempt = 0;
        loop {
            match self.transact_once(cmd, payload, cancel, on_keepalive).await {
                Err(DeviceError::Framing(FramingError::Device(CtapHidErrorCode::CHANNEL_BUSY)))
                    if attempt < self.options.busy_retries && !cancel.is_cancelled() =>
                {
                    attempt += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))) => {}
                        _ = cancel.cancelled() => return Err(DeviceError::Cancelled),
                    }
                }
                other => return other,
            }
        }
    }

    async fn transact_once(
        &mut self,
        cmd: HidCmd,
        payload: &[u8],
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<Vec<u8>, DeviceError> {
        for report in fragment(self.cid, cmd, payload)? {
            self.pipe.send(&report).await?;
        }
        let mut assembler = ResponseAssembler::new(self.cid);
        let deadline = Instant::now() + self.options.transaction_timeout;
        let mut cancelled_at: Option<Instant> = None;
        let mut timed_out = false;
        loop {
            let idle = Instant::now() + self.options.idle_timeout;
            let wait_until = match cancelled_at {
                Some(at) => at + self.options.cancel_grace,
                None => idle.min(deadline),
            };
            let report = tokio::select! {
                biased;
                _ = cancel.cancelled(), if cancelled_at.is_none() => {
                    self.pipe.send(&cancel_request(self.cid)).await?;
                    cancelled_at = Some(Instant::now());
                    continue;
                }
                _ = tokio::time::sleep_until(wait_until) => {
                    if cancelled_at.is_some() {
                        // The device never acknowledged the cancel: resynchronise so the
                        // channel is usable again.
                        let _ = self.resync().await;
                        return Err(if timed_out { DeviceError::Timeout } else { DeviceError::Cancelled });
                    }
                    if Instant::now() >= deadline {
                        // Whole-transaction timeout: cancel, then report the timeout.
                        self.pipe.send(&cancel_request(self.cid)).await?;
                        cancelled_at = Some(Instant::now());
                        timed_out = true;
                        continue;
                    }
                    return Err(DeviceError::Timeout);
                }
                report = self.pipe.recv() => report?,
            };
            match assembler.push(&report) {
                Ok(None) => {}
                Ok(Some(HostEvent::Keepalive(status))) => {
                    if cancelled_at.is_none() {
                        on_keepalive(status);
                    }
                }
                Ok(Some(HostEvent::Response { cmd: got, payload })) => {
                    if cancelled_at.is_some() {
                        return Err(if timed_out {
                            DeviceError::Timeout
                        } else {
                            DeviceError::Cancelled
                        });
                    }
                    if got != cmd {
                        return Err(FramingError::UnexpectedCommand(got).into());
                    }
                    return Ok(payload);
                }
                Err(err) => {
                    if cancelled_at.is_some() {
                        return Err(if timed_out {
                            DeviceError::Timeout
                        } else {
                            DeviceError::Cancelled
                        });
                    }
                    return Err(err.into());
                }
            }
        }
    }

    /// CTAPHID_PING: the device echoes `data` (§11.2.9.1.4).
    pub async fn ping(&mut self, data: &[u8]) -> Result<Vec<u8>, DeviceError> {
        self.transact(HidCmd::PING, data, &CancellationToken::new(), &mut |_| {})
            .await
    }

    /// CTAPHID_WINK (§11.2.9.2.1).
    pub async fn wink(&mut self) -> Result<(), DeviceError> {
        if !self.capabilities().contains(Capabilities::WINK) {
            return Err(DeviceError::Unsupported("CTAPHID_WINK"));
        }
        self.transact(HidCmd::WINK, &[], &CancellationToken::new(), &mut |_| {})
            .await?;
        Ok(())
    }

    /// CTAPHID_LOCK for `seconds` (0 releases, at most 10; §11.2.9.2.2).
    pub async fn lock(&mut self, seconds: u8) -> Result<(), DeviceError> {
        self.transact(
            HidCmd::LOCK,
            &[seconds],
            &CancellationToken::new(),
            &mut |_| {},
        )
        .await?;
        Ok(())
    }

    /// CTAPHID_CBOR: a raw CTAP2 request (command byte + CBOR); returns the raw reply
    /// (status byte + CBOR).
    pub async fn cbor_raw(
        &mut self,
        request: &[u8],
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<Vec<u8>, DeviceError> {
        if !self.capabilities().contains(Capabilities::CBOR) {
            return Err(DeviceError::Unsupported("CTAPHID_CBOR (CTAP2)"));
        }
        self.transact(HidCmd::CBOR, request, cancel, on_keepalive)
            .await
    }

    /// CTAPHID_MSG: a raw CTAP1/U2F APDU; returns the raw response (data + status word).
    pub async fn msg_raw(
        &mut self,
        apdu: &[u8],
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, DeviceError> {
        if !self.capabilities().supports_msg() {
            return Err(DeviceError::Unsupported("CTAPHID_MSG (CTAP1/U2F)"));
        }
        self.transact(HidCmd::MSG, apdu, cancel, &mut |_| {}).await
    }
}

/// CTAPHID_INIT on `cid` (broadcast to allocate, or the channel to resynchronise), three
/// attempts. Replies with another nonce (other clients' INITs) are skipped.
async fn init_channel<P: ReportPipe>(
    pipe: &mut P,
    cid: ChannelId,
    options: &DeviceOptions,
) -> Result<InitResponse, DeviceError> {
    for _attempt in 0..3 {
        let nonce = nonce()?;
        pipe.send(&init_request(cid, &nonce)).await?;
        let mut assembler = ResponseAssembler::new(cid);
        let deadline = Instant::now() + options.init_timeout;
        loop {
            let report = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                report = pipe.recv() => report?,
            };
            match assembler.push(&report) {
                Ok(Some(HostEvent::Response {
                    cmd: HidCmd::INIT,
                    payload,
                })) => match InitResponse::decode(&payload, &nonce) {
                    Ok(init) => {
                        if !cid.is_broadcast() && init.cid != cid {
                            return Err(FramingError::BadChannel(init.cid).into());
                        }
                        return Ok(init);
                    }
                    Err(FramingError::NonceMismatch) => continue,
                    Err(err) => return Err(err.into()),
                },
                // Stale replies of an earlier transaction, keepalives: skip.
                Ok(_) => continue,
                Err(FramingError::Device(code)) => return Err(FramingError::Device(code).into()),
                Err(_) => {
                    assembler.reset();
                    continue;
                }
            }
        }
    }
    Err(DeviceError::Timeout)
}
