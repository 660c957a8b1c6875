//! [`WebAuthnClient`]: `navigator.credentials.create()` / `.get()` for non-browser callers,
//! on CTAP2 authenticators reached through the host driver (WebAuthn L3 §5.1.3, §5.1.4;
//! CTAP 2.1 §6.1, §6.2, §6.5, §6.10, §12).
//!
//! Each request: origin and RP ID checks, `clientDataJSON`, choice of authenticator,
//! authenticatorGetInfo, user verification (built-in UV or the PIN through
//! [`Interaction`], with a pinUvAuthToken of the right permissions), the extensions
//! (credProps, prf → hmac-secret, largeBlob, credProtect, minPinLength), then the
//! response JSON as `PublicKeyCredential.toJSON()` gives it. The request's timeout and
//! the caller's cancellation both reach the key as CTAPHID_CANCEL.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ciborium::Value;
use p256::pkcs8::EncodePublicKey;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::b64;
use super::client_data::{CeremonyType, client_data_hash, client_data_json};
use super::error::WebAuthnError;
use super::extensions::{AuthenticatorSupport, make_credential_extensions, prf_salt};
use super::interaction::{CredentialChoice, Interaction, PinRequest};
use super::json::{
    AssertionResponseJson, AttestationConveyance, AttestationResponseJson,
    AuthenticationResponseJson, ClientExtensionOutputs, CreationOptions, CredPropsOutput,
    LargeBlobOutput, PrfOutput, PrfResultsJson, PrfValues, RegistrationResponseJson,
    RequestOptions, ResidentKeyRequirement, UserVerificationRequirement,
};
use super::origin::CallerOrigin;
use super::psl::PublicSuffixList;
use crate::ctap2::commands::{
    Command, client_pin, get_assertion, get_info, get_next_assertion, large_blobs, make_credential,
};
use crate::ctap2::credential_list::{self, Plan, Preflight};
use crate::ctap2::extensions::{
    CredProtect, GetAssertionExtensions, HmacSecretOutput, MakeCredentialExtensions,
};
use crate::ctap2::pin_protocol::{Permissions, PinProtocol, PlatformSession};
use crate::ctap2::{
    AuthenticatorData, CoseKey, Ctap2Error, PublicKeyCredentialDescriptor,
    PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
    StatusCode,
};
use crate::ctaphid::KeepaliveStatus;
use crate::device::{Device, DeviceError, PreflightProbe, drive_preflight};
use crate::hid::{BoxFuture, ReportPipe};
use crate::secret::Secret;

/// Default request timeout when the options give none (WebAuthn L3 §15.1 recommends 300 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Shortest and longest timeouts honoured (browsers clamp similarly).
pub const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(600));
/// Wrong PINs accepted in one request before giving up.
const MAX_PIN_ATTEMPTS: u32 = 3;

/// A CTAP2 authenticator the client can drive. Implemented for [`Device`]; the service
/// implements it for its per-device task handles.
pub trait Authenticator: Send {
    /// A label for the user ("YubiKey 5 (usb)", "software key 1").
    fn label(&self) -> String;

    /// Transports reported in the response (`usb` for HID).
    fn transports(&self) -> Vec<String> {
        vec!["usb".to_owned()]
    }

    /// Its attachment (WebAuthn L3 §5.4.5): `cross-platform` for roaming keys (USB and software
    /// keys), `platform` for one built into the machine.
    fn attachment(&self) -> &'static str {
        "cross-platform"
    }

    /// One CTAP2 request (command byte + CBOR); the reply is status byte + CBOR. `cancel`
    /// must make the device send CTAPHID_CANCEL and answer `DeviceError::Cancelled`.
    fn cbor<'a>(
        &'a mut self,
        request: &'a [u8],
        cancel: &'a CancellationToken,
        on_keepalive: &'a mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> BoxFuture<'a, Result<Vec<u8>, DeviceError>>;
}

impl<P: ReportPipe> Authenticator for Device<P> {
    fn label(&self) -> String {
        format!("security key (channel {:08x})", self.cid().0)
    }

    fn cbor<'a>(
        &'a mut self,
        request: &'a [u8],
        cancel: &'a CancellationToken,
        on_keepalive: &'a mut (dyn FnMut(KeepaliveStatus) + Send),
    ) -> BoxFuture<'a, Result<Vec<u8>, DeviceError>> {
        Box::pin(self.cbor_raw(request, cancel, on_keepalive))
    }
}

/// The WebAuthn client. Cheap to clone; shares the Public Suffix List.
#[derive(Debug, Clone)]
pub struct WebAuthnClient {
    psl: Arc<PublicSuffixList>,
    /// RP IDs this platform vouches for: `attestation: "enterprise"` is asked of the key as
    /// platform-managed enterprise attestation for them, vendor-facilitated for any other.
    enterprise_rp_ids: Vec<String>,
}

/// Failure of one CTAP call, before it is named as a DOMException.
#[derive(Debug)]
enum CallError {
    Device(DeviceError),
    Ctap(Ctap2Error),
    TimedOut,
    Aborted,
}

impl From<Ctap2Error> for CallError {
    fn from(err: Ctap2Error) -> Self {
        Self::Ctap(err)
    }
}

impl CallError {
    fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Ctap(Ctap2Error::Status(code)) => Some(*code),
            _ => None,
        }
    }

    /// The DOMException a browser reports for this failure.
    fn into_dom(self, what: &str) -> WebAuthnError {
        match self {
            Self::TimedOut => WebAuthnError::NotAllowed(format!("{what}: the request timed out")),
            Self::Aborted => WebAuthnError::Abort(format!("{what}: cancelled by the caller")),
            Self::Device(err) => WebAuthnError::NotAllowed(format!("{what}: device: {err}")),
            Self::Ctap(Ctap2Error::Status(code)) => status_error(what, code),
            Self::Ctap(Ctap2Error::InvalidResponse(err)) => {
                WebAuthnError::Encoding(format!("{what}: malformed authenticator reply: {err}"))
            }
            Self::Ctap(err) => WebAuthnError::NotAllowed(format!("{what}: {err}")),
        }
    }
}

/// CTAP status codes named as WebAuthn does (§6.3.2 / §6.3.3 error mapping).
fn status_error(what: &str, code: StatusCode) -> WebAuthnError {
    let message = format!("{what}: authenticator status {code:?}");
    match code {
        StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED => WebAuthnError::InvalidState(message),
        StatusCode::CTAP2_ERR_UNSUPPORTED_ALGORITHM | StatusCode::CTAP2_ERR_UNSUPPORTED_OPTION => {
            WebAuthnError::NotSupported(message)
        }
        StatusCode::CTAP2_ERR_KEY_STORE_FULL | StatusCode::CTAP2_ERR_LARGE_BLOB_STORAGE_FULL => {
            WebAuthnError::Constraint(message)
        }
        StatusCode::CTAP2_ERR_INVALID_CBOR
        | StatusCode::CTAP2_ERR_CBOR_UNEXPECTED_TYPE
        | StatusCode::CTAP2_ERR_MISSING_PARAMETER
        | StatusCode::CTAP1_ERR_INVALID_PARAMETER
        | StatusCode::CTAP1_ERR_INVALID_LENGTH => WebAuthnError::Encoding(message),
        _ => WebAuthnError::NotAllowed(message),
    }
}

fn rng(buf: &mut [u8]) {
    // getrandom failing means no usable OS randomness; the all-zero fallback would be
    // caught by the authenticator's checks, but fail loudly instead of continuing.
    if getrandom::fill(buf).is_err() {
        buf.fill(0);
        tracing::error!("getrandom failed while building a CTAP request");
    }
}

/// One request in flight: the authenticator, the interaction, cancellation and deadline.
struct Session<'a> {
    authenticator: &'a mut dyn Authenticator,
    label: String,
    interaction: &'a dyn Interaction,
    /// Caller's token.
    caller: CancellationToken,
    /// Cancels the device operation (child of `caller`, also fired at the deadline).
    operation: CancellationToken,
    deadline: Instant,
    timed_out: bool,
    info: get_info::Response,
}

impl<'a> Session<'a> {
    async fn raw(&mut self, request: &[u8]) -> Result<Vec<u8>, CallError> {
        let interaction = self.interaction;
        let label = self.label.clone();
        let mut touched = false;
        let mut on_keepalive = move |status: KeepaliveStatus| {
            if status == KeepaliveStatus::UPNEEDED && !touched {
                touched = true;
                interaction.touch_needed(&label);
            }
        };
        let operation = self.operation.clone();
        let future = self
            .authenticator
            .cbor(request, &operation, &mut on_keepalive);
        tokio::pin!(future);
        let result = if self.timed_out {
            Err(DeviceError::Cancelled)
        } else {
            tokio::select! {
                result = &mut future => result,
                _ = tokio::time::sleep_until(self.deadline) => {
                    self.timed_out = true;
                    self.operation.cancel();
                    future.await
                }
            }
        };
        match result {
            Ok(reply) => Ok(reply),
            Err(_) if self.timed_out => Err(CallError::TimedOut),
            Err(DeviceError::Cancelled) if self.caller.is_cancelled() => Err(CallError::Aborted),
            Err(DeviceError::Timeout) => Err(CallError::TimedOut),
            Err(err) => Err(CallError::Device(err)),
        }
    }

    async fn call<C: Command>(&mut self, request: &C) -> Result<C::Response, CallError> {
        let reply = self.raw(&request.encode()).await?;
        match crate::ctap2::commands::decode_response::<C>(&reply) {
            Ok(response) => Ok(response),
            Err(Ctap2Error::Status(StatusCode::CTAP2_ERR_KEEPALIVE_CANCEL)) => {
                Err(if self.timed_out {
                    CallError::TimedOut
                } else if self.caller.is_cancelled() {
                    CallError::Aborted
                } else {
                    CallError::Ctap(Ctap2Error::Status(StatusCode::CTAP2_ERR_KEEPALIVE_CANCEL))
                })
            }
            Err(err) => Err(CallError::Ctap(err)),
        }
    }

    /// Awaits a user answer, bounded by the deadline and the caller's cancellation.
    async fn ask<T>(&mut self, future: BoxFuture<'_, Option<T>>) -> Result<T, WebAuthnError> {
        tokio::select! {
            answer = future => answer.ok_or_else(|| {
                WebAuthnError::NotAllowed("the user cancelled".into())
            }),
            _ = self.caller.cancelled() => Err(WebAuthnError::Abort("cancelled by the caller".into())),
            _ = tokio::time::sleep_until(self.deadline) => {
                self.timed_out = true;
                Err(WebAuthnError::NotAllowed("the request timed out".into()))
            }
        }
    }

    fn support(&self) -> AuthenticatorSupport {
        AuthenticatorSupport {
            extensions: self.info.extensions.clone().unwrap_or_default(),
            large_blobs: self.info.option("largeBlobs"),
            uv_configured: self.uv_capable(),
        }
    }

    fn protocol(&self) -> PinProtocol {
        let protocols = self.info.pin_uv_auth_protocols.clone().unwrap_or_default();
        if protocols.contains(&2) {
            PinProtocol::Two
        } else {
            PinProtocol::One
        }
    }

    /// A fresh key agreement with the authenticator (getKeyAgreement, §6.5.5.4).
    async fn key_agreement(&mut self) -> Result<PlatformSession, WebAuthnError> {
        let protocol = self.protocol();
        let response = self
            .call(&client_pin::Request::get_key_agreement(protocol.version()))
            .await
            .map_err(|e| e.into_dom("getKeyAgreement"))?;
        let key: CoseKey = response
            .key_agreement
            .ok_or_else(|| WebAuthnError::Encoding("getKeyAgreement reply has no key".into()))?;
        PlatformSession::new(protocol, &key, &mut rng)
            .map_err(|e| WebAuthnError::NotAllowed(format!("key agreement: {e}")))
    }

    /// False for a CTAP 2.0 key with built-in UV and no pinUvAuthToken: it verifies the user
    /// when asked with the `uv` option, no token needed.
    fn uses_tokens(&self) -> bool {
        !self.info.option("uv") || self.info.option("pinUvAuthToken")
    }

    /// Whether the authenticator can verify the user (built-in UV, or a PIN that is set).
    fn uv_capable(&self) -> bool {
        self.info.option("uv") || self.info.option("clientPin")
    }

    /// The credential list to send (`ctap2::credential_list`): IDs longer than the key's
    /// maxCredentialIdLength dropped, and a list longer than its maxCredentialCountInList
    /// reduced to the one credential a silent pre-flight finds (or to none).
    async fn fit_list(
        &mut self,
        rp_id: &str,
        hash: &[u8],
        list: &[PublicKeyCredentialDescriptor],
        token: Option<&Token>,
    ) -> Result<Vec<PublicKeyCredentialDescriptor>, WebAuthnError> {
        match credential_list::plan(&self.info, list) {
            Plan::Direct(usable) => Ok(usable),
            Plan::Preflight(preflight) => Ok(self
                .preflight(preflight, rp_id, hash, token)
                .await?
                .into_iter()
                .collect()),
        }
    }

    /// Drives a silent (`up = false`) pre-flight to the credential the key holds, verified
    /// with the token when there is one (credProtect may hide credentials otherwise).
    async fn preflight(
        &mut self,
        preflight: Preflight,
        rp_id: &str,
        hash: &[u8],
        token: Option<&Token>,
    ) -> Result<Option<PublicKeyCredentialDescriptor>, WebAuthnError> {
        let probe = PreflightProbe {
            rp_id,
            client_data_hash: hash,
            pin_uv_auth: token.map(|token| pin_auth(token, hash)),
        };
        drive_preflight(
            self,
            |session, request| Box::pin(async move { session.call(&request).await }),
            CallError::status,
            preflight,
            probe,
        )
        .await
        .map_err(|err| err.into_dom("pre-flight authenticatorGetAssertion"))
    }

    /// Obtains a pinUvAuthToken with `permissions` (§6.5.5.7): built-in UV when offered,
    /// else the PIN from the interaction, asking again after a wrong PIN.
    async fn pin_uv_auth_token(
        &mut self,
        permissions: Permissions,
        rp_id: Option<String>,
    ) -> Result<(PlatformSession, Secret<Vec<u8>>), WebAuthnError> {
        let token_supported = self.info.option("pinUvAuthToken");
        if self.info.option("uv") && token_supported {
            let session = self.key_agreement().await?;
            let request = session.get_pin_uv_auth_token_using_uv(permissions, rp_id.clone());
            match self.call(&request).await {
                Ok(response) => {
                    let token = session
                        .decrypt_token(&response)
                        .map_err(|e| WebAuthnError::NotAllowed(format!("pinUvAuthToken: {e}")))?;
                    return Ok((session, token));
                }
                Err(err) if !self.info.option("clientPin") => {
                    return Err(err.into_dom("built-in user verification"));
                }
                Err(_) => {} // Fall back to the PIN (§6.5.5.7.1 uvBlocked / UV_INVALID).
            }
        }
        if !self.info.option("clientPin") {
            return Err(WebAuthnError::Constraint(
                "user verification is needed and the authenticator has no PIN set and no built-in UV"
                    .into(),
            ));
        }
        let mut failed = false;
        for _ in 0..MAX_PIN_ATTEMPTS {
            let retries = self
                .call(&client_pin::Request::get_pin_retries(Some(
                    self.protocol().version(),
                )))
                .await
                .map_err(|e| e.into_dom("getPinRetries"))?
                .pin_retries
                .and_then(|r| u32::try_from(r).ok());
            if retries == Some(0) {
                return Err(WebAuthnError::NotAllowed("the PIN is blocked".into()));
            }
            let request = PinRequest {
                authenticator: self.label.clone(),
                retries,
                previous_attempt_failed: failed,
            };
            let pin = self.ask(self.interaction.pin_needed(request)).await?;
            let session = self.key_agreement().await?;
            let request = if token_supported {
                session.get_pin_uv_auth_token_using_pin(
                    pin.expose_secret(),
                    permissions,
                    rp_id.clone(),
                    &mut rng,
                )
            } else {
                session.get_pin_token(pin.expose_secret(), &mut rng)
            }
            .map_err(|e| WebAuthnError::Type(format!("PIN: {e}")))?;
            match self.call(&request).await {
                Ok(response) => {
                    let token = session
                        .decrypt_token(&response)
                        .map_err(|e| WebAuthnError::NotAllowed(format!("pinUvAuthToken: {e}")))?;
                    return Ok((session, token));
                }
                Err(err) if err.status() == Some(StatusCode::CTAP2_ERR_PIN_INVALID) => {
                    failed = true;
                }
                Err(err) => return Err(err.into_dom("PIN")),
            }
        }
        Err(WebAuthnError::NotAllowed(format!(
            "{MAX_PIN_ATTEMPTS} wrong PINs"
        )))
    }
}

/// A pinUvAuthToken with the PIN/UV session it was obtained in.
type Token = (PlatformSession, Secret<Vec<u8>>);

/// (pinUvAuthParam = authenticate(token, `message`), pinUvAuthProtocol) (CTAP 2.1 §6.5.5.7).
fn pin_auth((pin_session, token): &Token, message: &[u8]) -> (Vec<u8>, u64) {
    let protocol = pin_session.shared.protocol();
    (
        protocol.authenticate(token.expose_secret(), message),
        protocol.version(),
    )
}

fn clamp_timeout(timeout_ms: Option<u64>) -> Duration {
    timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT)
        .clamp(TIMEOUT_RANGE.0, TIMEOUT_RANGE.1)
}

fn descriptor(id: &[u8], transports: &[String]) -> PublicKeyCredentialDescriptor {
    let mut descriptor = PublicKeyCredentialDescriptor::public_key(id.to_vec());
    if !transports.is_empty() {
        descriptor.transports = Some(transports.to_vec());
    }
    descriptor
}

/// SubjectPublicKeyInfo DER of a credential key the client understands (ES256 and Ed25519).
fn spki(key: &CoseKey) -> Option<Vec<u8>> {
    match key {
        CoseKey::P256 { .. } => key
            .to_p256()
            .ok()?
            .to_public_key_der()
            .ok()
            .map(|der| der.as_bytes().to_vec()),
        CoseKey::Okp { crv: 6, x, .. } if x.len() == 32 => {
            // RFC 8410: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING key }.
            let mut der = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            der.extend_from_slice(x);
            Some(der)
        }
        _ => None,
    }
}

fn split_prf(output: &[u8]) -> PrfResultsJson {
    PrfResultsJson {
        first: b64::encode(&output[..output.len().min(32)]),
        second: (output.len() == 64).then(|| b64::encode(&output[32..])),
    }
}

impl WebAuthnClient {
    /// A client checking RP IDs against `psl`.
    pub fn new(psl: Arc<PublicSuffixList>) -> Self {
        Self {
            psl,
            enterprise_rp_ids: Vec::new(),
        }
    }

    /// The RP IDs whose `attestation: "enterprise"` requests this platform approves
    /// (platform-managed enterprise attestation, CTAP 2.1 §7.1.2).
    pub fn with_enterprise_rp_ids(mut self, rp_ids: Vec<String>) -> Self {
        self.enterprise_rp_ids = rp_ids;
        self
    }

    /// The enterpriseAttestation parameter for a registration (WebAuthn L3 §5.1.3,
    /// CTAP 2.1 §7.1): only for `attestation: "enterprise"` and a key that has it enabled;
    /// platform-managed (2) for the RP IDs this platform vouches for, else vendor-facilitated
    /// (1), which the key honours only for RP IDs its vendor listed.
    fn enterprise_request(
        &self,
        conveyance: &AttestationConveyance,
        session: &Session<'_>,
        rp_id: &str,
    ) -> Option<u64> {
        if *conveyance != AttestationConveyance::Enterprise || !session.info.option("ep") {
            return None;
        }
        Some(if self.enterprise_rp_ids.iter().any(|id| id == rp_id) {
            2
        } else {
            1
        })
    }

    /// A client with Debian's Public Suffix List.
    pub fn with_system_psl() -> Result<Self, WebAuthnError> {
        Ok(Self::new(Arc::new(PublicSuffixList::load_system()?)))
    }

    async fn open_session<'a>(
        &self,
        authenticators: &'a mut [&mut dyn Authenticator],
        interaction: &'a dyn Interaction,
        cancel: &CancellationToken,
        timeout: Duration,
    ) -> Result<Session<'a>, WebAuthnError> {
        let deadline = Instant::now() + timeout;
        let index = match authenticators.len() {
            0 => {
                return Err(WebAuthnError::NotAllowed(
                    "no authenticator is available".into(),
                ));
            }
            1 => 0,
            _ => {
                let labels: Vec<String> = authenticators.iter().map(|a| a.label()).collect();
                let choice = tokio::select! {
                    choice = interaction.choose_authenticator(&labels) => choice,
                    _ = cancel.cancelled() => return Err(WebAuthnError::Abort("cancelled by the caller".into())),
                    _ = tokio::time::sleep_until(deadline) => return Err(WebAuthnError::NotAllowed("the request timed out".into())),
                };
                match choice {
                    Some(index) if index < authenticators.len() => index,
                    _ => return Err(WebAuthnError::NotAllowed("the user cancelled".into())),
                }
            }
        };
        let Some(authenticator) = authenticators.get_mut(index) else {
            return Err(WebAuthnError::NotAllowed("no authenticator chosen".into()));
        };
        let label = authenticator.label();
        let mut session = Session {
            authenticator: &mut **authenticator,
            label,
            interaction,
            caller: cancel.clone(),
            operation: cancel.child_token(),
            deadline,
            timed_out: false,
            info: get_info::Response::default(),
        };
        session.info = session
            .call(&get_info::Request)
            .await
            .map_err(|e| e.into_dom("authenticatorGetInfo"))?;
        Ok(session)
    }

    /// `navigator.credentials.create({publicKey})` from `origin` with
    /// `PublicKeyCredentialCreationOptionsJSON`; returns `RegistrationResponseJSON`.
    pub async fn make_credential<'a>(
        &self,
        origin: &str,
        options_json: &str,
        authenticators: &'a mut [&mut dyn Authenticator],
        interaction: &'a dyn Interaction,
        cancel: &CancellationToken,
    ) -> Result<RegistrationResponseJson, WebAuthnError> {
        let origin = CallerOrigin::parse(origin)?;
        let options = CreationOptions::from_json(options_json)?;
        let rp_id = origin.resolve_rp_id(options.rp.id.as_deref(), &self.psl)?;
        if options.user.name.is_empty() && options.user.display_name.is_empty() {
            // Accepted by browsers; nothing to check.
        }
        let client_data =
            client_data_json(CeremonyType::Create, &options.challenge, origin.as_str());
        let hash = client_data_hash(&client_data);
        let timeout = clamp_timeout(options.timeout_ms);
        // Only authenticators of the requested attachment are eligible (§5.1.3 step 20): they
        // are moved to the front, and the session chooses among them.
        let wanted = options.authenticator_attachment.as_deref();
        let eligible = |a: &&mut dyn Authenticator| wanted.is_none_or(|w| a.attachment() == w);
        authenticators.sort_by_key(|a| !eligible(a));
        let count = authenticators.iter().filter(|a| eligible(a)).count();
        if count == 0 && !authenticators.is_empty() {
            return Err(WebAuthnError::NotAllowed(format!(
                "no {} authenticator is available",
                wanted.unwrap_or_default()
            )));
        }
        let mut session = self
            .open_session(&mut authenticators[..count], interaction, cancel, timeout)
            .await?;

        // Resident key (§5.1.3 step 20 / authenticatorSelection.residentKey).
        let rk_capable = session.info.option("rk");
        let rk = match options.resident_key {
            ResidentKeyRequirement::Required if !rk_capable => {
                return Err(WebAuthnError::Constraint(
                    "a discoverable credential is required and the authenticator cannot store one"
                        .into(),
                ));
            }
            ResidentKeyRequirement::Required => true,
            ResidentKeyRequirement::Preferred => rk_capable && session.uv_capable(),
            ResidentKeyRequirement::Discouraged => false,
        };
        // Algorithms the authenticator announced, in the RP's order of preference.
        let params: Vec<PublicKeyCredentialParameters> = options
            .algorithms
            .iter()
            .map(|alg| PublicKeyCredentialParameters {
                type_: "public-key".into(),
                alg: *alg,
            })
            .collect();
        let support = session.support();
        let ext_list = make_credential_extensions(&options.extensions, &support)?;
        let mut extensions = MakeCredentialExtensions::default();
        for (name, value) in ext_list {
            match name.as_str() {
                "credProtect" => {
                    extensions.cred_protect = value
                        .as_integer()
                        .and_then(|v| u8::try_from(v).ok())
                        .map(CredProtect)
                }
                "hmac-secret" => extensions.hmac_secret = Some(true),
                "largeBlobKey" => extensions.large_blob_key = Some(true),
                "minPinLength" => extensions.min_pin_length = Some(true),
                _ => extensions.other.push((name, value)),
            }
        }
        let has_extensions = extensions != MakeCredentialExtensions::default();

        // User verification.
        let want_uv = match options.user_verification {
            UserVerificationRequirement::Required => true,
            UserVerificationRequirement::Preferred => session.uv_capable(),
            UserVerificationRequirement::Discouraged => false,
        };
        // The silent pre-flight over a long excludeList is a GetAssertion: the token needs `ga`.
        let permissions = if options.exclude_credentials.is_empty() {
            Permissions::MAKE_CREDENTIAL
        } else {
            Permissions::MAKE_CREDENTIAL | Permissions::GET_ASSERTION
        };
        let mut token: Option<Token> = None;
        if want_uv && session.uses_tokens() {
            token = Some(
                session
                    .pin_uv_auth_token(permissions, Some(rp_id.clone()))
                    .await?,
            );
        }
        let exclude_list: Vec<PublicKeyCredentialDescriptor> = options
            .exclude_credentials
            .iter()
            .map(|d| descriptor(&d.id, &d.transports))
            .collect();
        let exclude_list = session
            .fit_list(&rp_id, &hash, &exclude_list, token.as_ref())
            .await?;
        let mut request = make_credential::Request {
            client_data_hash: hash.to_vec(),
            rp: PublicKeyCredentialRpEntity {
                id: rp_id.clone(),
                name: Some(options.rp.name.clone()),
            },
            user: PublicKeyCredentialUserEntity {
                id: options.user.id.clone(),
                name: Some(options.user.name.clone()),
                display_name: Some(options.user.display_name.clone()),
            },
            pub_key_cred_params: params,
            exclude_list: (!exclude_list.is_empty()).then_some(exclude_list),
            extensions: has_extensions.then_some(extensions),
            options: None,
            pin_uv_auth_param: None,
            pin_uv_auth_protocol: None,
            enterprise_attestation: self.enterprise_request(&options.attestation, &session, &rp_id),
        };
        let response = loop {
            let mut flags = BTreeMap::new();
            if rk {
                flags.insert("rk".to_owned(), true);
            }
            match &token {
                Some(token) => {
                    let (param, protocol) = pin_auth(token, &hash);
                    request.pin_uv_auth_param = Some(param);
                    request.pin_uv_auth_protocol = Some(protocol);
                }
                None if want_uv => {
                    flags.insert("uv".to_owned(), true);
                }
                None => {}
            }
            request.options = (!flags.is_empty()).then_some(flags);
            match session.call(&request).await {
                Ok(response) => break response,
                Err(err)
                    if token.is_none()
                        && session.uv_capable()
                        && matches!(err.status(), Some(StatusCode::CTAP2_ERR_PUAT_REQUIRED)) =>
                {
                    // The key insists on UV for this credential (no makeCredUvNotRqd).
                    token = Some(
                        session
                            .pin_uv_auth_token(permissions, Some(rp_id.clone()))
                            .await?,
                    );
                }
                Err(err) => return Err(err.into_dom("authenticatorMakeCredential")),
            }
        };

        let auth_data = AuthenticatorData::parse(&response.auth_data).map_err(|err| {
            WebAuthnError::Encoding(format!("authenticator data of the new credential: {err}"))
        })?;
        let attested = auth_data.attested_credential_data.as_ref().ok_or_else(|| {
            WebAuthnError::Encoding("the new credential has no attested credential data".into())
        })?;
        if auth_data.rp_id_hash != sha256(rp_id.as_bytes()) {
            return Err(WebAuthnError::NotAllowed(
                "the authenticator signed another RP ID".into(),
            ));
        }
        let attestation = match options.attestation {
            AttestationConveyance::None => Value::Map(vec![
                (Value::from("fmt"), Value::from("none")),
                (Value::from("attStmt"), Value::Map(Vec::new())),
                (
                    Value::from("authData"),
                    Value::Bytes(response.auth_data.clone()),
                ),
            ]),
            _ => Value::Map(vec![
                (Value::from("fmt"), Value::from(response.att_stmt.fmt())),
                (Value::from("attStmt"), response.att_stmt.to_value()),
                (
                    Value::from("authData"),
                    Value::Bytes(response.auth_data.clone()),
                ),
            ]),
        };
        let attestation_object = crate::ctap2::cbor::to_vec(&attestation);
        let key = &attested.credential_public_key;
        let algorithm = key.alg().unwrap_or(0);
        let mut outputs = ClientExtensionOutputs::default();
        if options.extensions.cred_props {
            outputs.cred_props = Some(CredPropsOutput { rk });
        }
        let hmac_created = matches!(
            auth_data
                .extensions
                .as_ref()
                .and_then(|e| e.hmac_secret.as_ref()),
            Some(HmacSecretOutput::Created(true))
        );
        if options.extensions.prf.is_some() {
            outputs.prf = Some(PrfOutput {
                enabled: Some(hmac_created),
                results: None,
            });
        }
        if options.extensions.hmac_create_secret {
            outputs.hmac_create_secret = Some(hmac_created);
        }
        if options.extensions.large_blob.is_some() {
            outputs.large_blob = Some(LargeBlobOutput {
                supported: Some(response.large_blob_key.is_some()),
                ..LargeBlobOutput::default()
            });
        }
        let id = b64::encode(&attested.credential_id);
        let transports = session
            .info
            .transports
            .clone()
            .unwrap_or_else(|| session.authenticator.transports());
        Ok(RegistrationResponseJson {
            id: id.clone(),
            raw_id: id,
            response: AttestationResponseJson {
                client_data_json: b64::encode(&client_data),
                authenticator_data: b64::encode(&response.auth_data),
                transports,
                public_key: spki(key).map(|der| b64::encode(&der)),
                public_key_algorithm: algorithm,
                attestation_object: b64::encode(&attestation_object),
            },
            authenticator_attachment: Some(session.authenticator.attachment().into()),
            client_extension_results: outputs,
            type_: "public-key".into(),
        })
    }

    /// `navigator.credentials.get({publicKey})` from `origin` with
    /// `PublicKeyCredentialRequestOptionsJSON`; returns `AuthenticationResponseJSON`.
    pub async fn get_assertion<'a>(
        &self,
        origin: &str,
        options_json: &str,
        authenticators: &'a mut [&mut dyn Authenticator],
        interaction: &'a dyn Interaction,
        cancel: &CancellationToken,
    ) -> Result<AuthenticationResponseJson, WebAuthnError> {
        let origin = CallerOrigin::parse(origin)?;
        let options = RequestOptions::from_json(options_json)?;
        let rp_id = origin.resolve_rp_id(options.rp_id.as_deref(), &self.psl)?;
        let client_data = client_data_json(CeremonyType::Get, &options.challenge, origin.as_str());
        let hash = client_data_hash(&client_data);
        let timeout = clamp_timeout(options.timeout_ms);
        let mut session = self
            .open_session(authenticators, interaction, cancel, timeout)
            .await?;
        let ext = &options.extensions;
        let support = session.support();

        let mut allow: Vec<PublicKeyCredentialDescriptor> = options
            .allow_credentials
            .iter()
            .map(|d| descriptor(&d.id, &d.transports))
            .collect();

        let want_uv = match options.user_verification {
            UserVerificationRequirement::Required => true,
            UserVerificationRequirement::Preferred => session.uv_capable(),
            UserVerificationRequirement::Discouraged => false,
        };
        let large_blob_capable = support.large_blobs && support.has("largeBlobKey");
        let write_blob = ext.large_blob_write.is_some() && large_blob_capable;
        let mut permissions = Permissions::GET_ASSERTION;
        if write_blob {
            permissions = permissions | Permissions::LARGE_BLOB_WRITE;
        }
        let mut token: Option<Token> = None;
        if (want_uv || (write_blob && session.uv_capable())) && session.uses_tokens() {
            token = Some(
                session
                    .pin_uv_auth_token(permissions, Some(rp_id.clone()))
                    .await?,
            );
        }
        // A long allowList is narrowed to the credential this key holds (or to a dummy one, so
        // the key still waits for a touch before NO_CREDENTIALS).
        if !allow.is_empty() {
            let fitted = session
                .fit_list(&rp_id, &hash, &allow, token.as_ref())
                .await?;
            allow = if fitted.is_empty() {
                credential_list::no_match_allow_list()
            } else {
                fitted
            };
        }
        // prf.evalByCredential: with one allowed credential its inputs apply; with several,
        // find the one this key holds by one silent pre-flight over them all (§10.1.4).
        let mut prf_inputs: Option<PrfValues> = ext.prf_eval.clone();
        if !ext.prf_eval_by_credential.is_empty() && support.has("hmac-secret") {
            let inputs_of = |id: &[u8]| {
                ext.prf_eval_by_credential
                    .iter()
                    .find(|(candidate, _)| candidate.as_slice() == id)
                    .map(|(_, values)| values.clone())
            };
            if allow.len() > 1 {
                let preflight = Preflight::new(allow.clone(), allow.len());
                if let Some(found) = session
                    .preflight(preflight, &rp_id, &hash, token.as_ref())
                    .await?
                {
                    allow = vec![found];
                }
            }
            if let [only] = allow.as_slice() {
                prf_inputs = inputs_of(&only.id).or(prf_inputs);
            }
        }
        // hmac-secret needs a key agreement; reuse the PIN session's when there is one.
        let hmac_session: Option<PlatformSession> = match (&prf_inputs, support.has("hmac-secret"))
        {
            (Some(_), true) => match &token {
                Some((session, _)) => Some(session.clone()),
                None => Some(session.key_agreement().await?),
            },
            _ => None,
        };
        let mut extensions = GetAssertionExtensions::default();
        if let (Some(values), Some(pin_session)) = (&prf_inputs, &hmac_session) {
            let salt1 = prf_salt(&values.first);
            let salt2 = values.second.as_deref().map(prf_salt);
            extensions.hmac_secret = Some(
                pin_session
                    .hmac_secret_input(&salt1, salt2.as_ref(), &mut rng)
                    .map_err(|e| WebAuthnError::NotAllowed(format!("hmac-secret: {e}")))?,
            );
        }
        if (ext.large_blob_read || ext.large_blob_write.is_some()) && large_blob_capable {
            extensions.large_blob_key = Some(true);
        }
        let has_extensions = extensions != GetAssertionExtensions::default();
        let mut request = get_assertion::Request {
            rp_id: rp_id.clone(),
            client_data_hash: hash.to_vec(),
            allow_list: (!allow.is_empty()).then_some(allow.clone()),
            extensions: has_extensions.then_some(extensions),
            options: None,
            pin_uv_auth_param: None,
            pin_uv_auth_protocol: None,
        };
        match &token {
            Some(token) => {
                let (param, protocol) = pin_auth(token, &hash);
                request.pin_uv_auth_param = Some(param);
                request.pin_uv_auth_protocol = Some(protocol);
            }
            None if want_uv => {
                request.options = Some(BTreeMap::from([("uv".to_owned(), true)]));
            }
            None => {}
        }
        let first = session
            .call(&request)
            .await
            .map_err(|e| e.into_dom("authenticatorGetAssertion"))?;

        // Several discoverable credentials: collect them and let the user choose (§6.2.2).
        let count = first.number_of_credentials.unwrap_or(1);
        let chosen = if allow.is_empty() && count > 1 {
            let mut all = vec![first];
            for _ in 1..count.min(64) {
                all.push(
                    session
                        .call(&get_next_assertion::Request)
                        .await
                        .map_err(|e| e.into_dom("authenticatorGetNextAssertion"))?,
                );
            }
            let choices: Vec<CredentialChoice> = all
                .iter()
                .map(|response| CredentialChoice {
                    credential_id: response
                        .credential
                        .as_ref()
                        .map(|c| b64::encode(&c.id))
                        .unwrap_or_default(),
                    user_name: response.user.as_ref().and_then(|u| u.name.clone()),
                    display_name: response.user.as_ref().and_then(|u| u.display_name.clone()),
                })
                .collect();
            let index = session.ask(interaction.choose_credential(&choices)).await?;
            if index >= all.len() {
                return Err(WebAuthnError::NotAllowed("no credential chosen".into()));
            }
            all.swap_remove(index)
        } else {
            first
        };

        let credential_id = match (&chosen.credential, allow.as_slice()) {
            (Some(credential), _) => credential.id.clone(),
            (None, [only]) => only.id.clone(),
            (None, _) => {
                return Err(WebAuthnError::Encoding(
                    "the authenticator did not say which credential it used".into(),
                ));
            }
        };
        if !allow.is_empty() && !allow.iter().any(|d| d.id == credential_id) {
            return Err(WebAuthnError::NotAllowed(
                "the authenticator used a credential that was not allowed".into(),
            ));
        }
        let auth_data = AuthenticatorData::parse(&chosen.auth_data)
            .map_err(|err| WebAuthnError::Encoding(format!("authenticator data: {err}")))?;
        if auth_data.rp_id_hash != sha256(rp_id.as_bytes()) {
            return Err(WebAuthnError::NotAllowed(
                "the authenticator signed another RP ID".into(),
            ));
        }

        let mut outputs = ClientExtensionOutputs::default();
        if ext.prf_eval.is_some() || !ext.prf_eval_by_credential.is_empty() {
            let results = match (
                &hmac_session,
                auth_data
                    .extensions
                    .as_ref()
                    .and_then(|e| e.hmac_secret.as_ref()),
            ) {
                (Some(pin_session), Some(HmacSecretOutput::Output(encrypted))) => {
                    let output = pin_session
                        .hmac_secret_output(encrypted)
                        .map_err(|e| WebAuthnError::Encoding(format!("hmac-secret output: {e}")))?;
                    Some(split_prf(output.expose_secret()))
                }
                _ => None,
            };
            outputs.prf = Some(PrfOutput {
                enabled: None,
                results,
            });
        }
        if ext.large_blob_read || ext.large_blob_write.is_some() {
            let key = chosen
                .large_blob_key
                .as_deref()
                .and_then(|k| <[u8; 32]>::try_from(k).ok());
            let mut output = LargeBlobOutput::default();
            match (key, &ext.large_blob_write) {
                (Some(key), None) => {
                    output.blob = read_large_blob(&mut session, &key)
                        .await?
                        .map(|blob| b64::encode(blob.expose_secret()));
                }
                (Some(key), Some(blob)) => {
                    let written = match &token {
                        Some((pin_session, token)) => {
                            write_large_blob(&mut session, &key, blob, pin_session, token).await?
                        }
                        None => false,
                    };
                    output.written = Some(written);
                }
                (None, Some(_)) => output.written = Some(false),
                (None, None) => {}
            }
            outputs.large_blob = Some(output);
        }

        let id = b64::encode(&credential_id);
        Ok(AuthenticationResponseJson {
            id: id.clone(),
            raw_id: id,
            response: AssertionResponseJson {
                client_data_json: b64::encode(&client_data),
                authenticator_data: b64::encode(&chosen.auth_data),
                signature: b64::encode(&chosen.signature),
                user_handle: chosen.user.as_ref().map(|u| b64::encode(&u.id)),
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: outputs,
            type_: "public-key".into(),
        })
    }
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).into()
}

/// Largest fragment read or written per authenticatorLargeBlobs call: maxMsgSize − 64 (§6.10.2).
fn large_blob_fragment(info: &get_info::Response) -> u64 {
    info.max_msg_size.unwrap_or(1024).saturating_sub(64).max(64)
}

/// Reads the whole serialized large-blob array (§6.10.2 reading).
async fn read_blob_array(session: &mut Session<'_>) -> Result<Vec<Value>, WebAuthnError> {
    let chunk = large_blob_fragment(&session.info);
    let limit = session.info.max_serialized_large_blob_array.unwrap_or(4096);
    let mut serialized = Vec::new();
    loop {
        let response = session
            .call(&large_blobs::Request::read(serialized.len() as u64, chunk))
            .await
            .map_err(|e| e.into_dom("authenticatorLargeBlobs get"))?;
        let config = response.config.unwrap_or_default();
        let got = config.len() as u64;
        serialized.extend_from_slice(&config);
        if got < chunk || serialized.len() as u64 > limit {
            break;
        }
    }
    match large_blobs::decode_array(&serialized) {
        Ok(elements) => Ok(elements),
        // A corrupt array reads as empty (§6.10.3: the platform treats it as the initial one).
        Err(_) => Ok(Vec::new()),
    }
}

async fn read_large_blob(
    session: &mut Session<'_>,
    key: &[u8; 32],
) -> Result<Option<Secret<Vec<u8>>>, WebAuthnError> {
    for element in read_blob_array(session).await? {
        if let Ok(entry) = large_blobs::LargeBlobEntry::from_value(element)
            && let Ok(blob) = entry.open(key)
        {
            return Ok(Some(blob));
        }
    }
    Ok(None)
}

/// Replaces this credential's entry of the large-blob array (§6.10.2 writing): entries that
/// decrypt under `key` are dropped, the new one appended, the array written in fragments,
/// each authenticated with the pinUvAuthToken (permission lbw).
async fn write_large_blob(
    session: &mut Session<'_>,
    key: &[u8; 32],
    blob: &[u8],
    pin_session: &PlatformSession,
    token: &Secret<Vec<u8>>,
) -> Result<bool, WebAuthnError> {
    let mut elements: Vec<Value> = read_blob_array(session)
        .await?
        .into_iter()
        .filter(|element| {
            large_blobs::LargeBlobEntry::from_value(element.clone())
                .map(|entry| entry.open(key).is_err())
                .unwrap_or(true)
        })
        .collect();
    let mut nonce = [0u8; 12];
    rng(&mut nonce);
    let entry = large_blobs::LargeBlobEntry::seal(key, blob, nonce)
        .map_err(|e| WebAuthnError::NotAllowed(format!("large blob: {e}")))?;
    elements.push(entry.to_value());
    let serialized = large_blobs::encode_array(&elements);
    let limit = session.info.max_serialized_large_blob_array.unwrap_or(1024);
    if serialized.len() as u64 > limit {
        return Ok(false);
    }
    let chunk = usize::try_from(large_blob_fragment(&session.info)).unwrap_or(64);
    let protocol = pin_session.shared.protocol();
    let mut offset = 0usize;
    for fragment in serialized.chunks(chunk) {
        let offset32 = u32::try_from(offset)
            .map_err(|_| WebAuthnError::NotAllowed("large blob array too large".into()))?;
        let message = large_blobs::Request::set_auth_message(offset32, fragment);
        let request = large_blobs::Request {
            get: None,
            set: Some(fragment.to_vec()),
            offset: offset as u64,
            length: (offset == 0).then_some(serialized.len() as u64),
            pin_uv_auth_param: Some(protocol.authenticate(token.expose_secret(), &message)),
            pin_uv_auth_protocol: Some(protocol.version()),
        };
        match session.call(&request).await {
            Ok(_) => {}
            Err(err) if err.status().is_some() => return Ok(false),
            Err(err) => return Err(err.into_dom("authenticatorLargeBlobs set")),
        }
        offset += fragment.len();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_of_p256_and_ed25519() {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let key = CoseKey::es256(&secret.public_key());
        let der = spki(&key).unwrap();
        // SEQUENCE, id-ecPublicKey + prime256v1, BIT STRING with 0x04 point: 91 bytes.
        assert_eq!(der.len(), 91);
        assert_eq!(&der[..2], &[0x30, 0x59]);
        let ed = CoseKey::Okp {
            alg: -8,
            crv: 6,
            x: vec![1; 32],
        };
        assert_eq!(spki(&ed).unwrap().len(), 44);
        assert!(
            spki(&CoseKey::Okp {
                alg: -8,
                crv: 6,
                x: vec![1; 31]
            })
            .is_none()
        );
    }

    #[test]
    fn status_codes_map_to_dom_names() {
        let cases = [
            (
                StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED,
                "InvalidStateError",
            ),
            (
                StatusCode::CTAP2_ERR_UNSUPPORTED_ALGORITHM,
                "NotSupportedError",
            ),
            (StatusCode::CTAP2_ERR_OPERATION_DENIED, "NotAllowedError"),
            (StatusCode::CTAP2_ERR_NO_CREDENTIALS, "NotAllowedError"),
            (StatusCode::CTAP2_ERR_KEY_STORE_FULL, "ConstraintError"),
            (StatusCode::CTAP2_ERR_INVALID_CBOR, "EncodingError"),
        ];
        for (code, name) in cases {
            assert_eq!(status_error("x", code).name(), name, "{code:?}");
        }
        assert_eq!(CallError::TimedOut.into_dom("x").name(), "NotAllowedError");
        assert_eq!(CallError::Aborted.into_dom("x").name(), "AbortError");
    }

    #[test]
    fn timeouts_are_clamped() {
        assert_eq!(clamp_timeout(None), DEFAULT_TIMEOUT);
        assert_eq!(clamp_timeout(Some(5)), Duration::from_secs(1));
        assert_eq!(clamp_timeout(Some(60_000)), Duration::from_secs(60));
        assert_eq!(clamp_timeout(Some(u64::MAX)), Duration::from_secs(600));
    }

    #[test]
    fn prf_results_split() {
        let out = split_prf(&[1u8; 64]);
        assert_eq!(out.first, b64::encode(&[1u8; 32]));
        assert_eq!(out.second, Some(b64::encode(&[1u8; 32])));
        assert_eq!(split_prf(&[2u8; 32]).second, None);
    }
}
