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
//! fires, retrying CHANNEL_BUSY and giving up after the configured timeouts.
//!
//! On top of it, typed operations built on `ctap2`: MakeCredential, GetAssertion (+Next),
//! ClientPIN (PIN/UV auth protocol 2 preferred, 1 as fallback; a pinUvAuthToken with
//! permissions and RP ID on CTAP 2.1 keys, getPinToken on 2.0 keys; set/change PIN; retries),
//! credential management (0x0A, or the FIDO_2_1_PRE prototype 0x41), reset and selection.
//! allowLists and excludeLists longer than the key's maxCredentialCountInList are probed in
//! batches with silent pre-flight GetAssertions, IDs longer than maxCredentialIdLength dropped
//! ([`crate::ctap2::credential_list`]).
//! CTAP1-only keys get MakeCredential / GetAssertion through U2F REGISTER / AUTHENTICATE
//! (CTAP 2.1 §10.2). [`race_cbor`], [`select_device`] and [`first_touched`] drive several
//! keys at once: the first one touched wins, the others get CTAPHID_CANCEL.
//!
//! authenticatorConfig helpers are in `config.rs`, authenticatorLargeBlobs helpers in
//! `blobs.rs` (both `impl Device`). Not implemented here: bio enrollment (its requests
//! can be sent with [`Device::command`]), hmac-secret salts (the `ctap2` `PlatformSession`
//! builds them; the WebAuthn client wires them in).

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ctap2::commands::{
    Command, PinUvAuthenticated, client_pin, credential_management, get_assertion, get_info,
    get_next_assertion, make_credential, reset, selection,
};
use crate::ctap2::credential_list::{self, Plan, Preflight, Step};
use crate::ctap2::pin_protocol::{Permissions, PinProtocol, PlatformSession};
use crate::ctap2::u2f::{
    self, AuthenticateControl, AuthenticateRequest, RegisterRequest, StatusWord, U2fRequest,
};
use crate::ctap2::{
    AttestationStatement, AttestedCredentialData, AuthenticatorData, AuthenticatorDataFlags,
    CoseKey, Ctap2Error, PublicKeyCredentialDescriptor, PublicKeyCredentialUserEntity, StatusCode,
};
use crate::ctaphid::host::{HostEvent, ResponseAssembler};
use crate::ctaphid::packet::{cancel_request, init_request};
use crate::ctaphid::{
    BROADCAST, Capabilities, ChannelId, CtapHidErrorCode, FramingError, HidCmd, INIT_NONCE_LEN,
    InitResponse, KeepaliveStatus, fragment,
};
use crate::hid::{BoxFuture, HidError, ReportPipe};
use crate::secret::Secret;

mod blobs;
mod config;
mod race;

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
    /// The system random generator failed (channel nonce, PIN protocol).
    #[error("random generator failed")]
    Random,
    /// A CTAP2 error: a non-zero status byte, or a reply that does not decode.
    #[error("ctap2: {0}")]
    Ctap2(#[from] Ctap2Error),
    /// The device needs a PIN (or has none set) for this operation.
    #[error("{0}")]
    Pin(&'static str),
}

impl DeviceError {
    /// The CTAP2 status code, when the authenticator answered with an error status.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            DeviceError::Ctap2(Ctap2Error::Status(code)) => Some(*code),
            _ => None,
        }
    }
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
    /// authenticatorGetInfo, for CTAP2 devices.
    info: Option<get_info::Response>,
}

/// A pinUvAuthToken obtained from the device, with the protocol it belongs to
/// (CTAP 2.1 §6.5.5.7). Zeroized on drop.
#[derive(Debug)]
pub struct PinUvAuthToken {
    protocol: PinProtocol,
    token: Secret<Vec<u8>>,
}

impl PinUvAuthToken {
    /// The PIN/UV auth protocol the token was obtained with.
    pub fn protocol(&self) -> PinProtocol {
        self.protocol
    }

    /// `authenticate(pinUvAuthToken, message)`: the pinUvAuthParam for `message`.
    pub fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        self.protocol
            .authenticate(self.token.expose_secret(), message)
    }

    /// Fills in pinUvAuthProtocol and pinUvAuthParam (over the request's own auth message)
    /// of an authenticatorConfig or credential-management request.
    pub fn sign<R: PinUvAuthenticated>(&self, request: &mut R) {
        let param = self.authenticate(&request.auth_message());
        request.set_pin_uv_auth(self.protocol.version(), param);
    }
}

/// Runs `f` with a system-random `Rng` for the `ctap2` PIN protocol builders.
fn with_rng<T>(
    f: impl FnOnce(&mut dyn FnMut(&mut [u8])) -> Result<T, Ctap2Error>,
) -> Result<T, DeviceError> {
    let mut failed = false;
    let mut rng = |buf: &mut [u8]| {
        if getrandom::fill(buf).is_err() {
            failed = true;
        }
    };
    let result = f(&mut rng);
    if failed {
        return Err(DeviceError::Random);
    }
    Ok(result?)
}

fn nonce() -> Result<[u8; INIT_NONCE_LEN], DeviceError> {
    let mut nonce = [0u8; INIT_NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| DeviceError::Random)?;
    Ok(nonce)
}

impl<P: ReportPipe> Device<P> {
    /// Allocate a channel on the device behind `pipe` (CTAPHID_INIT on the broadcast channel),
    /// then read authenticatorGetInfo if the device speaks CTAP2.
    pub async fn open(pipe: P, options: DeviceOptions) -> Result<Self, DeviceError> {
        let mut pipe = pipe;
        let init = init_channel(&mut pipe, BROADCAST, &options).await?;
        let mut device = Self {
            pipe,
            cid: init.cid,
            init,
            options,
            info: None,
        };
        if device.capabilities().contains(Capabilities::CBOR) {
            device.refresh_info().await?;
        }
        Ok(device)
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

    /// authenticatorGetInfo as read at [`Self::open`] (`None` for CTAP1-only devices).
    pub fn info(&self) -> Option<&get_info::Response> {
        self.info.as_ref()
    }

    /// Whether the device speaks CTAP2 (CBOR capability and a GetInfo reply).
    pub fn is_ctap2(&self) -> bool {
        self.info.is_some()
    }

    /// Whether the device supports version string `version` ("FIDO_2_0", "FIDO_2_1",
    /// "FIDO_2_1_PRE", "U2F_V2").
    pub fn supports_version(&self, version: &str) -> bool {
        self.info
            .as_ref()
            .is_some_and(|info| info.versions.iter().any(|v| v == version))
    }

    /// Re-read authenticatorGetInfo (after a PIN change or reset it can change).
    pub async fn refresh_info(&mut self) -> Result<&get_info::Response, DeviceError> {
        let info = self
            .command(&get_info::Request, &CancellationToken::new(), &mut |_| {})
            .await?;
        Ok(self.info.insert(info))
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

    /// Send a typed CTAP2 command and decode its reply (a non-zero status becomes
    /// [`DeviceError::Ctap2`] with [`Ctap2Error::Status`]).
    pub async fn command<C: Command>(
        &mut self,
        request: &C,
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<C::Response, DeviceError> {
        let reply = self
            .cbor_raw(&request.encode(), cancel, on_keepalive)
            .await?;
        Ok(crate::ctap2::commands::decode_response::<C>(&reply)?)
    }

    /// authenticatorMakeCredential (CTAP 2.1 §6.1); on a CTAP1-only key, mapped to
    /// U2F_REGISTER (§10.2.1, see [`Self::u2f_make_credential`]).
    pub async fn make_credential(
        &mut self,
        request: &make_credential::Request,
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<make_credential::Response, DeviceError> {
        if !self.is_ctap2() && self.capabilities().supports_msg() {
            return self.u2f_make_credential(request, cancel).await;
        }
        match self.fit_exclude_list(request, cancel).await? {
            Some(fitted) => self.command(&fitted, cancel, on_keepalive).await,
            None => self.command(request, cancel, on_keepalive).await,
        }
    }

    /// authenticatorGetAssertion (CTAP 2.1 §6.2); on a CTAP1-only key, mapped to
    /// U2F_AUTHENTICATE (§10.2.2, see [`Self::u2f_get_assertion`]).
    pub async fn get_assertion(
        &mut self,
        request: &get_assertion::Request,
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<get_assertion::Response, DeviceError> {
        if !self.is_ctap2() && self.capabilities().supports_msg() {
            return self.u2f_get_assertion(request, cancel).await;
        }
        match self.fit_allow_list(request, cancel).await? {
            Some(fitted) => self.command(&fitted, cancel, on_keepalive).await,
            None => self.command(request, cancel, on_keepalive).await,
        }
    }

    // ---- Long credential lists (CTAP 2.1 §6.4 members 0x07, 0x08) --------------------------

    /// `list` as this key can take it, or `None` when it can take it unchanged: IDs longer
    /// than maxCredentialIdLength are dropped, and a list longer than maxCredentialCountInList
    /// is reduced by a silent pre-flight to the one credential the key holds, or to none. The
    /// pre-flight reuses the request's pinUvAuthParam (`pin_uv_auth`; it authenticates the same
    /// clientDataHash), so a token for a MakeCredential with a long excludeList needs the `ga`
    /// permission besides `mc` (python-fido2 asks for both too).
    async fn fit_list(
        &mut self,
        list: &[PublicKeyCredentialDescriptor],
        probe: PreflightProbe<'_>,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<PublicKeyCredentialDescriptor>>, DeviceError> {
        let Some(info) = &self.info else {
            return Ok(None);
        };
        Ok(match credential_list::plan(info, list) {
            Plan::Direct(usable) if usable.len() == list.len() => None,
            Plan::Direct(usable) => Some(usable),
            Plan::Preflight(preflight) => Some(
                self.run_preflight(preflight, probe, cancel)
                    .await?
                    .into_iter()
                    .collect(),
            ),
        })
    }

    /// The MakeCredential request with its excludeList fitted ([`Self::fit_list`]); `None`:
    /// send it unchanged.
    async fn fit_exclude_list(
        &mut self,
        request: &make_credential::Request,
        cancel: &CancellationToken,
    ) -> Result<Option<make_credential::Request>, DeviceError> {
        let Some(list) = &request.exclude_list else {
            return Ok(None);
        };
        let probe = PreflightProbe::for_registration(request);
        let fitted = self.fit_list(list, probe, cancel).await?;
        Ok(fitted.map(|exclude| make_credential::Request {
            exclude_list: (!exclude.is_empty()).then_some(exclude),
            ..request.clone()
        }))
    }

    /// The GetAssertion request with its allowList fitted ([`Self::fit_list`]); `None`: send
    /// it unchanged. A list with no match left becomes
    /// [`credential_list::no_match_allow_list`], so the key still waits for a touch before
    /// answering NO_CREDENTIALS (an empty allowList would ask for discoverable credentials).
    async fn fit_allow_list(
        &mut self,
        request: &get_assertion::Request,
        cancel: &CancellationToken,
    ) -> Result<Option<get_assertion::Request>, DeviceError> {
        let Some(list) = request.allow_list.as_ref().filter(|list| !list.is_empty()) else {
            return Ok(None);
        };
        let probe = PreflightProbe::for_assertion(request);
        let fitted = self.fit_list(list, probe, cancel).await?;
        Ok(fitted.map(|allow| get_assertion::Request {
            allow_list: Some(if allow.is_empty() {
                credential_list::no_match_allow_list()
            } else {
                allow
            }),
            ..request.clone()
        }))
    }

    /// Which credential of `list` this key holds for `rp_id`, found with silent (`up = false`)
    /// GetAssertions over an all-zero clientDataHash, in batches of maxCredentialCountInList
    /// (1 when the key reports none), IDs longer than maxCredentialIdLength left out; with
    /// `token` (permission `ga`), credentials that need UV (credProtect 3) are found too.
    /// The platform behaviour of python-fido2's client and libfido2 (CTAP 2.1 §6.2.2 "up").
    pub async fn find_credential(
        &mut self,
        rp_id: &str,
        list: &[PublicKeyCredentialDescriptor],
        token: Option<&PinUvAuthToken>,
        cancel: &CancellationToken,
    ) -> Result<Option<PublicKeyCredentialDescriptor>, DeviceError> {
        let info = self
            .info
            .as_ref()
            .ok_or(DeviceError::Unsupported("pre-flight on a CTAP1-only key"))?;
        let usable = credential_list::usable(info, list);
        let batch = credential_list::max_count_in_list(info).unwrap_or(1);
        let client_data_hash = [0u8; 32];
        let auth = token.map(|token| {
            (
                token.authenticate(&client_data_hash),
                token.protocol().version(),
            )
        });
        let probe = PreflightProbe {
            rp_id,
            client_data_hash: &client_data_hash,
            pin_uv_auth: auth,
        };
        self.run_preflight(Preflight::new(usable, batch), probe, cancel)
            .await
    }

    /// Drives a [`Preflight`] to its end on this device.
    async fn run_preflight(
        &mut self,
        preflight: Preflight,
        probe: PreflightProbe<'_>,
        cancel: &CancellationToken,
    ) -> Result<Option<PublicKeyCredentialDescriptor>, DeviceError> {
        let cancel = cancel.clone();
        drive_preflight(
            self,
            move |device, request| {
                let cancel = cancel.clone();
                Box::pin(async move { device.command(&request, &cancel, &mut |_| {}).await })
            },
            DeviceError::status,
            preflight,
            probe,
        )
        .await
    }

    /// authenticatorGetNextAssertion (CTAP 2.1 §6.3).
    pub async fn get_next_assertion(&mut self) -> Result<get_assertion::Response, DeviceError> {
        let request = get_next_assertion::Request;
        self.command(&request, &CancellationToken::new(), &mut |_| {})
            .await
    }

    /// GetAssertion followed by GetNextAssertion for every further credential
    /// (`numberOfCredentials`, CTAP 2.1 §6.2.2 step 12).
    pub async fn get_assertions(
        &mut self,
        request: &get_assertion::Request,
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<Vec<get_assertion::Response>, DeviceError> {
        let first = self.get_assertion(request, cancel, on_keepalive).await?;
        let total = first.number_of_credentials.unwrap_or(1).clamp(1, 1024);
        let mut all = vec![first];
        for _ in 1..total {
            all.push(self.get_next_assertion().await?);
        }
        Ok(all)
    }

    /// authenticatorReset (CTAP 2.1 §6.6): needs user presence, and most keys accept it
    /// only within seconds of power-up.
    pub async fn reset(
        &mut self,
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<(), DeviceError> {
        self.command(&reset::Request, cancel, on_keepalive).await?;
        self.refresh_info().await?;
        Ok(())
    }

    /// authenticatorSelection (CTAP 2.1 §6.9): waits for a touch. A CTAP 2.0 key without the
    /// command gets a MakeCredential with an empty pinUvAuthParam instead, which also waits
    /// for a touch and then fails with PIN_INVALID / PIN_NOT_SET (§6.1.1 step 1).
    pub async fn selection(
        &mut self,
        cancel: &CancellationToken,
        on_keepalive: &mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> Result<(), DeviceError> {
        let request = self.selection_request()?;
        let reply = self.cbor_raw(&request, cancel, on_keepalive).await?;
        match crate::ctap2::commands::split_status(&reply) {
            Ok(_) => Ok(()),
            Err(Ctap2Error::Status(code)) if is_touch_status(code) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    fn selection_request(&self) -> Result<Vec<u8>, DeviceError> {
        if !self.is_ctap2() {
            return Err(DeviceError::Unsupported("selection on a CTAP1-only key"));
        }
        if self.supports_version("FIDO_2_1") {
            return Ok(selection::Request.encode());
        }
        Ok(dummy_make_credential().encode())
    }

    // ---- ClientPIN (CTAP 2.1 §6.5) -------------------------------------------------------

    /// The PIN/UV auth protocol to use: 2 if the device lists it, else 1 (also for CTAP 2.0
    /// keys that list none but support clientPin).
    pub fn pin_protocol(&self) -> Option<PinProtocol> {
        let info = self.info.as_ref()?;
        match &info.pin_uv_auth_protocols {
            Some(list) if list.contains(&2) => Some(PinProtocol::Two),
            Some(list) if list.contains(&1) => Some(PinProtocol::One),
            Some(_) => None,
            None if info.option_value("clientPin").is_some() => Some(PinProtocol::One),
            None => None,
        }
    }

    /// Whether a PIN is set (`clientPin` option true).
    pub fn pin_is_set(&self) -> bool {
        self.info
            .as_ref()
            .is_some_and(|info| info.option_value("clientPin") == Some(true))
    }

    fn require_pin_protocol(&self) -> Result<PinProtocol, DeviceError> {
        self.pin_protocol()
            .ok_or(DeviceError::Unsupported("ClientPIN"))
    }

    async fn client_pin(
        &mut self,
        request: &client_pin::Request,
    ) -> Result<client_pin::Response, DeviceError> {
        self.command(request, &CancellationToken::new(), &mut |_| {})
            .await
    }

    /// getPINRetries: the remaining PIN attempts and whether a power cycle is needed before
    /// the next attempt.
    pub async fn pin_retries(&mut self) -> Result<(u64, Option<bool>), DeviceError> {
        let protocol = self.pin_protocol().map(PinProtocol::version);
        let reply = self
            .client_pin(&client_pin::Request::get_pin_retries(protocol))
            .await?;
        let retries = reply
            .pin_retries
            .ok_or(DeviceError::Pin("getPINRetries reply without pinRetries"))?;
        Ok((retries, reply.power_cycle_state))
    }

    /// getUVRetries.
    pub async fn uv_retries(&mut self) -> Result<u64, DeviceError> {
        let protocol = self.pin_protocol().map(PinProtocol::version);
        let reply = self
            .client_pin(&client_pin::Request::get_uv_retries(protocol))
            .await?;
        reply
            .uv_retries
            .ok_or(DeviceError::Pin("getUVRetries reply without uvRetries"))
    }

    /// getKeyAgreement + encapsulate: a fresh shared secret with the device.
    async fn session(&mut self, protocol: PinProtocol) -> Result<PlatformSession, DeviceError> {
        let reply = self
            .client_pin(&client_pin::Request::get_key_agreement(protocol.version()))
            .await?;
        let key: CoseKey = reply.key_agreement.ok_or(DeviceError::Pin(
            "getKeyAgreement reply without keyAgreement",
        ))?;
        with_rng(|rng| PlatformSession::new(protocol, &key, rng))
    }

    /// setPIN: set the first PIN (4..=63 bytes of UTF-8; the device may demand more).
    pub async fn set_pin(&mut self, new_pin: &str) -> Result<(), DeviceError> {
        let protocol = self.require_pin_protocol()?;
        let session = self.session(protocol).await?;
        let request = with_rng(|rng| session.set_pin(new_pin, rng))?;
        self.client_pin(&request).await?;
        self.refresh_info().await?;
        Ok(())
    }

    /// changePIN.
    pub async fn change_pin(
        &mut self,
        current_pin: &str,
        new_pin: &str,
    ) -> Result<(), DeviceError> {
        let protocol = self.require_pin_protocol()?;
        let session = self.session(protocol).await?;
        let request = with_rng(|rng| session.change_pin(current_pin, new_pin, rng))?;
        self.client_pin(&request).await?;
        self.refresh_info().await?;
        Ok(())
    }

    /// A pinUvAuthToken from the PIN: getPinUvAuthTokenUsingPinWithPermissions with
    /// `permissions` and `rp_id` on keys with the `pinUvAuthToken` option (CTAP 2.1), else
    /// the CTAP 2.0 getPinToken (which grants everything).
    pub async fn pin_uv_auth_token(
        &mut self,
        pin: &str,
        permissions: Permissions,
        rp_id: Option<&str>,
    ) -> Result<PinUvAuthToken, DeviceError> {
        let protocol = self.require_pin_protocol()?;
        let session = self.session(protocol).await?;
        let with_permissions = self
            .info
            .as_ref()
            .is_some_and(|i| i.option_value("pinUvAuthToken") == Some(true));
        let request = if with_permissions {
            with_rng(|rng| {
                session.get_pin_uv_auth_token_using_pin(
                    pin,
                    permissions,
                    rp_id.map(str::to_owned),
                    rng,
                )
            })?
        } else {
            with_rng(|rng| session.get_pin_token(pin, rng))?
        };
        let reply = self.client_pin(&request).await?;
        let token = session.decrypt_token(&reply)?;
        Ok(PinUvAuthToken { protocol, token })
    }

    // ---- Credential management (CTAP 2.1 §6.8) -------------------------------------------

    /// Whether credential management is available, and through which command byte: 0x0A
    /// (`credMgmt`), or the FIDO_2_1_PRE prototype 0x41 (`credentialMgmtPreview`) when only
    /// that is reported.
    pub fn credential_management_command(&self) -> Option<u8> {
        let info = self.info.as_ref()?;
        if info.option_value("credMgmt") == Some(true) {
            Some(crate::ctap2::commands::CMD_CREDENTIAL_MANAGEMENT)
        } else if info.option_value("credentialMgmtPreview") == Some(true) {
            Some(crate::ctap2::commands::CMD_CREDENTIAL_MANAGEMENT_PROTOTYPE)
        } else {
            None
        }
    }

    /// One credential-management subcommand, authenticated with `token` (which needs the
    /// `cm` permission) where the subcommand requires it.
    pub async fn credential_management(
        &mut self,
        token: Option<&PinUvAuthToken>,
        sub_command: credential_management::SubCommand,
        params: Option<credential_management::SubCommandParams>,
    ) -> Result<credential_management::Response, DeviceError> {
        let cmd = self
            .credential_management_command()
            .ok_or(DeviceError::Unsupported("credential management"))?;
        let mut request = credential_management::Request::new(sub_command, params);
        if let Some(token) = token {
            token.sign(&mut request);
        }
        let bytes = if cmd == crate::ctap2::commands::CMD_CREDENTIAL_MANAGEMENT {
            request.encode()
        } else {
            request.encode_prototype()
        };
        let reply = self
            .cbor_raw(&bytes, &CancellationToken::new(), &mut |_| {})
            .await?;
        Ok(credential_management::Response::decode(
            crate::ctap2::commands::split_status(&reply)?,
        )?)
    }

    /// getCredsMetadata: (existing discoverable credentials, remaining capacity).
    pub async fn creds_metadata(
        &mut self,
        token: &PinUvAuthToken,
    ) -> Result<(u64, u64), DeviceError> {
        use credential_management::SubCommand;
        let reply = self
            .credential_management(Some(token), SubCommand::GET_CREDS_METADATA, None)
            .await?;
        Ok((
            reply.existing_resident_credentials_count.unwrap_or(0),
            reply
                .max_possible_remaining_resident_credentials_count
                .unwrap_or(0),
        ))
    }

    /// enumerateRPsBegin + enumerateRPsGetNextRP: every RP with discoverable credentials
    /// (`rp` and `rp_id_hash` of each reply). No credentials → empty.
    pub async fn enumerate_rps(
        &mut self,
        token: &PinUvAuthToken,
    ) -> Result<Vec<credential_management::Response>, DeviceError> {
        use credential_management::SubCommand;
        let first = match self
            .credential_management(Some(token), SubCommand::ENUMERATE_RPS_BEGIN, None)
            .await
        {
            Err(err) if err.status() == Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS) => {
                return Ok(Vec::new());
            }
            other => other?,
        };
        let total = first.total_rps.unwrap_or(1).clamp(1, 1024);
        let mut all = vec![first];
        for _ in 1..total {
            all.push(
                self.credential_management(None, SubCommand::ENUMERATE_RPS_GET_NEXT_RP, None)
                    .await?,
            );
        }
        Ok(all)
    }

    /// enumerateCredentialsBegin + GetNextCredential for one RP (by rpIDHash).
    pub async fn enumerate_credentials(
        &mut self,
        token: &PinUvAuthToken,
        rp_id_hash: [u8; 32],
    ) -> Result<Vec<credential_management::Response>, DeviceError> {
        use credential_management::{SubCommand, SubCommandParams};
        let params = SubCommandParams {
            rp_id_hash: Some(rp_id_hash),
            ..Default::default()
        };
        let first = match self
            .credential_management(
                Some(token),
                SubCommand::ENUMERATE_CREDENTIALS_BEGIN,
                Some(params),
            )
            .await
        {
            Err(err) if err.status() == Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS) => {
                return Ok(Vec::new());
            }
            other => other?,
        };
        let total = first.total_credentials.unwrap_or(1).clamp(1, 1024);
        let mut all = vec![first];
        for _ in 1..total {
            all.push(
                self.credential_management(
                    None,
                    SubCommand::ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL,
                    None,
                )
                .await?,
            );
        }
        Ok(all)
    }

    /// deleteCredential.
    pub async fn delete_credential(
        &mut self,
        token: &PinUvAuthToken,
        credential_id: PublicKeyCredentialDescriptor,
    ) -> Result<(), DeviceError> {
        use credential_management::{SubCommand, SubCommandParams};
        let params = SubCommandParams {
            credential_id: Some(credential_id),
            ..Default::default()
        };
        self.credential_management(Some(token), SubCommand::DELETE_CREDENTIAL, Some(params))
            .await?;
        Ok(())
    }

    /// updateUserInformation.
    pub async fn update_user_information(
        &mut self,
        token: &PinUvAuthToken,
        credential_id: PublicKeyCredentialDescriptor,
        user: PublicKeyCredentialUserEntity,
    ) -> Result<(), DeviceError> {
        use credential_management::{SubCommand, SubCommandParams};
        let params = SubCommandParams {
            credential_id: Some(credential_id),
            user: Some(user),
            ..Default::default()
        };
        self.credential_management(
            Some(token),
            SubCommand::UPDATE_USER_INFORMATION,
            Some(params),
        )
        .await?;
        Ok(())
    }
    // ---- CTAP1/U2F (CTAP 2.1 §10, §11.2.9.1.1) ---------------------------------------------

    /// One U2F APDU over CTAPHID_MSG: the response data and status word.
    pub async fn u2f(
        &mut self,
        request: &U2fRequest,
        cancel: &CancellationToken,
    ) -> Result<(Vec<u8>, StatusWord), DeviceError> {
        let reply = self.msg_raw(&request.encode()?, cancel).await?;
        let (data, status) = u2f::split_response(&reply)?;
        Ok((data.to_vec(), status))
    }

    /// U2F_VERSION: "U2F_V2" on every U2F key.
    pub async fn u2f_version(&mut self) -> Result<String, DeviceError> {
        let (data, status) = self
            .u2f(&U2fRequest::Version, &CancellationToken::new())
            .await?;
        if status != StatusWord::NO_ERROR {
            return Err(Ctap2Error::U2fStatus(status.0).into());
        }
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    /// Repeat a presence-needing U2F request while the key answers
    /// CONDITIONS_NOT_SATISFIED (no touch yet), every 100 ms, until the transaction timeout
    /// or `cancel`.
    async fn u2f_until_touched(
        &mut self,
        request: &U2fRequest,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, DeviceError> {
        let deadline = Instant::now() + self.options.transaction_timeout;
        loop {
            let (data, status) = self.u2f(request, cancel).await?;
            match status {
                StatusWord::NO_ERROR => return Ok(data),
                StatusWord::CONDITIONS_NOT_SATISFIED => {}
                other => return Err(Ctap2Error::U2fStatus(other.0).into()),
            }
            if Instant::now() >= deadline {
                return Err(DeviceError::Timeout);
            }
            tokio::select! {
                _ = tokio::time::sleep(U2F_POLL) => {}
                _ = cancel.cancelled() => return Err(DeviceError::Cancelled),
            }
        }
    }

    /// Wait for a touch with a U2F_REGISTER on a bogus application, for the cases where
    /// CTAP 2.1 §10.2 asks for a touch before an error (excluded credential, no credential).
    async fn u2f_wait_for_touch(&mut self, cancel: &CancellationToken) -> Result<(), DeviceError> {
        let bogus = U2fRequest::Register(RegisterRequest {
            challenge: [0x42; 32],
            application: [0x41; 32],
        });
        self.u2f_until_touched(&bogus, cancel).await.map(drop)
    }

    /// Whether `key_handle` belongs to this key for `application`: AUTHENTICATE check-only
    /// answers CONDITIONS_NOT_SATISFIED for a known handle, WRONG_DATA otherwise.
    async fn u2f_knows(
        &mut self,
        application: [u8; 32],
        key_handle: &[u8],
        cancel: &CancellationToken,
    ) -> Result<bool, DeviceError> {
        if key_handle.len() > 255 {
            return Ok(false);
        }
        let check = U2fRequest::Authenticate(AuthenticateRequest {
            control: AuthenticateControl::CHECK_ONLY,
            challenge: [0; 32],
            application,
            key_handle: key_handle.to_vec(),
        });
        let (_, status) = self.u2f(&check, cancel).await?;
        Ok(status == StatusWord::CONDITIONS_NOT_SATISFIED)
    }

    /// MakeCredential on a CTAP1/U2F key (CTAP 2.1 §10.2.1): ES256 only, no resident key,
    /// no UV; excluded credentials are found with check-only AUTHENTICATE (then, after a
    /// touch, CREDENTIAL_EXCLUDED); U2F_REGISTER with challenge = clientDataHash and
    /// application = SHA-256(rp.id); the reply becomes authenticator data (AAGUID zero,
    /// counter 0, credential ID = key handle) with a "fido-u2f" attestation statement.
    pub async fn u2f_make_credential(
        &mut self,
        request: &make_credential::Request,
        cancel: &CancellationToken,
    ) -> Result<make_credential::Response, DeviceError> {
        if request.option("rk") == Some(true)
            || request.option("uv") == Some(true)
            || request.pin_uv_auth_param.is_some()
        {
            return Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_UNSUPPORTED_OPTION).into());
        }
        if !request
            .pub_key_cred_params
            .iter()
            .any(|p| p.alg == crate::ctap2::cose::ES256)
        {
            return Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_UNSUPPORTED_ALGORITHM).into());
        }
        let challenge = client_data_hash(&request.client_data_hash)?;
        let application = sha256(request.rp.id.as_bytes());
        for excluded in request.exclude_list.iter().flatten() {
            if self.u2f_knows(application, &excluded.id, cancel).await? {
                self.u2f_wait_for_touch(cancel).await?;
                return Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED).into());
            }
        }
        let register = RegisterRequest {
            challenge,
            application,
        };
        let data = self
            .u2f_until_touched(&U2fRequest::Register(register), cancel)
            .await?;
        let registered = u2f::RegisterResponse::decode(&data)?;
        let public_key =
            p256::PublicKey::from_sec1_bytes(&registered.public_key).map_err(|_| {
                Ctap2Error::InvalidPublicKey("U2F REGISTER public key is not a P-256 point")
            })?;
        let auth_data = AuthenticatorData {
            rp_id_hash: application,
            flags: AuthenticatorDataFlags(AuthenticatorDataFlags::UP),
            sign_count: 0,
            attested_credential_data: Some(AttestedCredentialData {
                aaguid: [0; 16],
                credential_id: registered.key_handle.clone(),
                credential_public_key: CoseKey::es256(&public_key),
            }),
            extensions: None,
        };
        Ok(make_credential::Response {
            auth_data: auth_data.to_bytes(),
            att_stmt: AttestationStatement::FidoU2f {
                sig: registered.signature,
                x5c: vec![registered.attestation_certificate],
            },
            ep_att: None,
            large_blob_key: None,
        })
    }

    /// GetAssertion on a CTAP1/U2F key (CTAP 2.1 §10.2.2): the allow list is required; the
    /// first key handle the key knows (check-only) is used with AUTHENTICATE (enforce user
    /// presence, or dont-enforce when `up` is false); authenticator data is rpIdHash ‖
    /// user-presence byte ‖ counter. No known handle: a touch, then NO_CREDENTIALS.
    pub async fn u2f_get_assertion(
        &mut self,
        request: &get_assertion::Request,
        cancel: &CancellationToken,
    ) -> Result<get_assertion::Response, DeviceError> {
        if request.option("uv") == Some(true) || request.pin_uv_auth_param.is_some() {
            return Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_UNSUPPORTED_OPTION).into());
        }
        let challenge = client_data_hash(&request.client_data_hash)?;
        let application = sha256(request.rp_id.as_bytes());
        let mut chosen = None;
        for descriptor in request.allow_list.iter().flatten() {
            if self.u2f_knows(application, &descriptor.id, cancel).await? {
                chosen = Some(descriptor.clone());
                break;
            }
        }
        let Some(descriptor) = chosen else {
            self.u2f_wait_for_touch(cancel).await?;
            return Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_NO_CREDENTIALS).into());
        };
        let control = if request.option("up") == Some(false) {
            AuthenticateControl::DONT_ENFORCE_USER_PRESENCE_AND_SIGN
        } else {
            AuthenticateControl::ENFORCE_USER_PRESENCE_AND_SIGN
        };
        let authenticate = AuthenticateRequest {
            control,
            challenge,
            application,
            key_handle: descriptor.id.clone(),
        };
        let data = self
            .u2f_until_touched(&U2fRequest::Authenticate(authenticate), cancel)
            .await?;
        let signed = u2f::AuthenticateResponse::decode(&data)?;
        let auth_data = AuthenticatorData {
            rp_id_hash: application,
            flags: AuthenticatorDataFlags(signed.user_presence & AuthenticatorDataFlags::UP),
            sign_count: signed.counter,
            attested_credential_data: None,
            extensions: None,
        };
        Ok(get_assertion::Response {
            credential: Some(descriptor),
            auth_data: auth_data.to_bytes(),
            signature: signed.signature,
            user: None,
            number_of_credentials: None,
            user_selected: None,
            large_blob_key: None,
        })
    }
}

/// What every probe of a pre-flight carries besides its batch.
#[derive(Debug, Clone)]
pub(crate) struct PreflightProbe<'a> {
    /// The RP ID.
    pub rp_id: &'a str,
    /// The clientDataHash the probes are signed over.
    pub client_data_hash: &'a [u8],
    /// (pinUvAuthParam over `client_data_hash`, pinUvAuthProtocol), when verified.
    pub pin_uv_auth: Option<(Vec<u8>, u64)>,
}

impl<'a> PreflightProbe<'a> {
    /// The probes of a GetAssertion's allowList: its rpId, clientDataHash and pinUvAuth.
    pub(crate) fn for_assertion(request: &'a get_assertion::Request) -> Self {
        Self::from_request(
            &request.rp_id,
            &request.client_data_hash,
            request.pin_uv_auth_param.as_ref(),
            request.pin_uv_auth_protocol,
        )
    }

    /// The probes of a MakeCredential's excludeList: its rp.id, clientDataHash and pinUvAuth.
    pub(crate) fn for_registration(request: &'a make_credential::Request) -> Self {
        Self::from_request(
            &request.rp.id,
            &request.client_data_hash,
            request.pin_uv_auth_param.as_ref(),
            request.pin_uv_auth_protocol,
        )
    }

    fn from_request(
        rp_id: &'a str,
        client_data_hash: &'a [u8],
        pin_uv_auth_param: Option<&Vec<u8>>,
        pin_uv_auth_protocol: Option<u64>,
    ) -> Self {
        Self {
            rp_id,
            client_data_hash,
            pin_uv_auth: pin_uv_auth_param.cloned().zip(pin_uv_auth_protocol),
        }
    }
}

/// Drives a [`Preflight`] (`ctap2::credential_list`) to its end over any CTAP2 sender:
/// `send` issues one GetAssertion on `target` (the driver here, the WebAuthn client's session),
/// `status` extracts the CTAP status from its errors; other errors end the pre-flight.
pub(crate) async fn drive_preflight<T: ?Sized, E: From<Ctap2Error>>(
    target: &mut T,
    mut send: impl for<'a> FnMut(
        &'a mut T,
        get_assertion::Request,
    ) -> BoxFuture<'a, Result<get_assertion::Response, E>>,
    status: fn(&E) -> Option<StatusCode>,
    mut preflight: Preflight,
    probe: PreflightProbe<'_>,
) -> Result<Option<PublicKeyCredentialDescriptor>, E> {
    while let Some(request) = preflight.request(
        probe.rp_id,
        probe.client_data_hash,
        probe.pin_uv_auth.clone(),
    ) {
        let reply = match send(&mut *target, request).await {
            Ok(response) => Ok(response),
            Err(err) => Err(status(&err).ok_or(err)?),
        };
        match preflight.on_reply(reply.as_ref().map_err(|code| *code))? {
            Step::Found(descriptor) => return Ok(Some(descriptor)),
            Step::Continue => {}
            Step::NotFound => return Ok(None),
        }
    }
    Ok(None)
}

/// How often a U2F request waiting for a touch is repeated.
const U2F_POLL: Duration = Duration::from_millis(100);

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn client_data_hash(hash: &[u8]) -> Result<[u8; 32], DeviceError> {
    hash.try_into()
        .map_err(|_| Ctap2Error::U2fMalformed("clientDataHash must be 32 bytes for U2F").into())
}

/// Status codes that an authenticator only returns after the user touched it, so they
/// decide a race between several keys (and answer a selection): CTAP 2.1 §6.1.2 (excluded
/// credential), §6.2.2 (no credentials), the PIN errors of the selection MakeCredential.
pub fn is_touch_status(code: StatusCode) -> bool {
    [
        StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED,
        StatusCode::CTAP2_ERR_NO_CREDENTIALS,
        StatusCode::CTAP2_ERR_OPERATION_DENIED,
        StatusCode::CTAP2_ERR_PIN_INVALID,
        StatusCode::CTAP2_ERR_PIN_NOT_SET,
        StatusCode::CTAP2_ERR_PIN_AUTH_INVALID,
    ]
    .contains(&code)
}

/// The MakeCredential that selects a CTAP 2.0 key: empty pinUvAuthParam (CTAP 2.1 §6.1.1).
fn dummy_make_credential() -> make_credential::Request {
    use crate::ctap2::{PublicKeyCredentialParameters, PublicKeyCredentialRpEntity};
    make_credential::Request {
        client_data_hash: vec![0; 32],
        rp: PublicKeyCredentialRpEntity {
            id: ".dummy".to_owned(),
            name: None,
        },
        user: PublicKeyCredentialUserEntity {
            id: vec![1],
            name: Some("dummy".to_owned()),
            display_name: None,
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".to_owned(),
            alg: -7,
        }],
        exclude_list: None,
        extensions: None,
        options: None,
        pin_uv_auth_param: Some(Vec::new()),
        pin_uv_auth_protocol: Some(1),
        enterprise_attestation: None,
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

// ---- Several keys at once -----------------------------------------------------------------

/// The outcome of a race between several devices.
#[derive(Debug)]
pub struct RaceOutcome<T> {
    /// The device the user touched first (its reply was a success or a touch status, see
    /// [`is_touch_status`]); `None` if no device got that far.
    pub winner: Option<usize>,
    /// Every device's result, in device order. The losers normally end with
    /// [`DeviceError::Cancelled`].
    pub results: Vec<Result<T, DeviceError>>,
}

/// Whether a raw CTAP2 reply (status byte + CBOR) shows the user touched the device.
fn reply_touched(reply: &[u8]) -> bool {
    match reply.first() {
        Some(0) => true,
        Some(&status) => is_touch_status(StatusCode(status)),
        None => false,
    }
}

/// [`reply_touched`] of a transaction's outcome.
fn touched(reply: &Result<Vec<u8>, DeviceError>) -> bool {
    reply.as_deref().is_ok_and(reply_touched)
}

/// Send a CTAP2 request to every device at once (`request` builds each device's bytes, e.g.
/// with its own pinUvAuthParam); the first device whose reply shows a touch wins and every
/// other device still waiting gets CTAPHID_CANCEL. Cancelling `cancel` cancels them all.
/// Results are raw replies (status byte + CBOR).
///
/// A MakeCredential's excludeList and a GetAssertion's allowList are fitted to each device's
/// own maxCredentialCountInList / maxCredentialIdLength first, all devices at once; a device
/// that holds none of an allowList's credentials waits for a touch and then answers
/// NO_CREDENTIALS (see `race.rs`). A winner's touch also cancels the pre-flights still
/// running on the others.
pub async fn race_cbor<P: ReportPipe>(
    devices: &mut [Device<P>],
    request: impl Fn(&Device<P>) -> Result<Vec<u8>, DeviceError>,
    cancel: &CancellationToken,
) -> RaceOutcome<Vec<u8>> {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;

    type Pending<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, DeviceError>> + Send + 'a>>;
    let tokens: Vec<CancellationToken> = devices.iter().map(|_| cancel.child_token()).collect();
    let mut results: Vec<Option<Result<Vec<u8>, DeviceError>>> =
        devices.iter().map(|_| None).collect();
    let mut pending: Vec<Option<Pending<'_>>> = Vec::with_capacity(devices.len());
    for (index, device) in devices.iter_mut().enumerate() {
        match request(device) {
            Ok(bytes) => {
                let token = tokens[index].clone();
                pending.push(Some(Box::pin(async move {
                    device.race_exchange(bytes, &token).await
                })));
            }
            Err(err) => {
                results[index] = Some(Err(err));
                pending.push(None);
            }
        }
    }
    let mut winner = None;
    std::future::poll_fn(|cx| {
        for index in 0..pending.len() {
            let Some(future) = pending[index].as_mut() else {
                continue;
            };
            if let Poll::Ready(result) = future.as_mut().poll(cx) {
                pending[index] = None;
                if winner.is_none() && touched(&result) {
                    winner = Some(index);
                    for (other, token) in tokens.iter().enumerate() {
                        if other != index {
                            token.cancel();
                        }
                    }
                }
                results[index] = Some(result);
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    RaceOutcome {
        winner,
        results: results
            .into_iter()
            .map(|r| r.unwrap_or(Err(DeviceError::Cancelled)))
            .collect(),
    }
}

/// Let the user pick one of several keys by touching it (authenticatorSelection, or the
/// CTAP 2.0 fallback of [`Device::selection`]). Returns the index of the touched key.
pub async fn select_device<P: ReportPipe>(
    devices: &mut [Device<P>],
    cancel: &CancellationToken,
) -> Result<usize, DeviceError> {
    let outcome = race_cbor(devices, |d| d.selection_request(), cancel).await;
    match outcome.winner {
        Some(index) => Ok(index),
        None if cancel.is_cancelled() => Err(DeviceError::Cancelled),
        None => Err(outcome
            .results
            .into_iter()
            .find_map(Result::err)
            .unwrap_or(DeviceError::Unsupported("no CTAP2 key to select"))),
    }
}

/// Run a typed command on every key at once; the first key touched answers, the others get
/// CTAPHID_CANCEL. Returns the winner's index and its decoded reply (which may be a touch
/// status error such as CREDENTIAL_EXCLUDED). Lists are fitted to each key ([`race_cbor`]).
pub async fn first_touched<P: ReportPipe, C: Command>(
    devices: &mut [Device<P>],
    request: &C,
    cancel: &CancellationToken,
) -> Result<(usize, Result<C::Response, DeviceError>), DeviceError> {
    let bytes = request.encode();
    let outcome = race_cbor(
        devices,
        |d| {
            if d.is_ctap2() {
                Ok(bytes.clone())
            } else {
                Err(DeviceError::Unsupported("CTAP2 on a CTAP1-only key"))
            }
        },
        cancel,
    )
    .await;
    let Some(index) = outcome.winner else {
        if cancel.is_cancelled() {
            return Err(DeviceError::Cancelled);
        }
        return Err(outcome
            .results
            .into_iter()
            .find_map(Result::err)
            .unwrap_or(DeviceError::Cancelled));
    };
    let reply = outcome
        .results
        .into_iter()
        .nth(index)
        .unwrap_or(Err(DeviceError::Cancelled))?;
    let decoded = crate::ctap2::commands::decode_response::<C>(&reply).map_err(DeviceError::from);
    Ok((index, decoded))
}
