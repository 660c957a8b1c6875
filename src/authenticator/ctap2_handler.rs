//! CTAP2 command handlers of the software key (CTAP 2.1 §6): GetInfo, MakeCredential,
//! GetAssertion, GetNextAssertion, ClientPIN (protocols 1 and 2), Reset,
//! CredentialManagement (also as the FIDO_2_1_PRE command 0x41), Selection,
//! AuthenticatorConfig and LargeBlobs, with the extensions credProtect, hmac-secret,
//! credBlob, minPinLength and largeBlobKey.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::authenticator::credential::{self, CredProtect, Credential, UserInfo, WrappedPayload};
use crate::authenticator::keys::{self, RandomSource};
use crate::authenticator::pin::{PinFailure, permission};
use crate::authenticator::presence::{PresenceOutcome, UserPresence};
use crate::authenticator::softkey::{LastOperation, SoftKey};
use crate::authenticator::{AttestationKind, CtapVersion};
use crate::ctap2::commands::{
    client_pin, config, credential_management as cm, get_assertion, get_info, large_blobs,
    make_credential,
};
use crate::ctap2::extensions::{
    CredBlobOutput, ExtensionOutputs, GetAssertionExtensions, HmacSecretOutput,
};
use crate::ctap2::pin_protocol::{KeyAgreementKey, PinProtocol, SharedSecret};
use crate::ctap2::{
    AttestationStatement, AttestedCredentialData, AuthenticatorData, AuthenticatorDataFlags,
    CoseKey, CtapRequest, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity, StatusCode,
};
use crate::secret::Secret;

type CtapResult<T> = Result<T, StatusCode>;

/// maxMsgSize reported in GetInfo (the largest CTAPHID message).
pub const MAX_MSG_SIZE: usize = 7609;
/// maxCredBlobLength (CTAP 2.1 §12.2: at least 32).
pub const MAX_CRED_BLOB_LENGTH: usize = 32;
/// maxRPIDsForSetMinPINLength.
pub const MAX_RP_IDS_FOR_MIN_PIN_LENGTH: usize = 8;
/// How long GetNextAssertion state lives (CTAP 2.1 §6.3: 30 s).
pub const NEXT_ASSERTION_TIMEOUT: Duration = Duration::from_secs(30);
/// First byte of the ID of a discoverable credential (never a wrapped ID, so a deleted one stays dead).
const STORED_ID_PREFIX: u8 = 0x02;

/// State of a GetAssertion whose further credentials GetNextAssertion returns.
#[derive(Debug)]
struct NextAssertions {
    rp_id: String,
    client_data_hash: Vec<u8>,
    remaining: Vec<Credential>,
    user_present: bool,
    user_verified: bool,
    extensions: Option<GetAssertionExtensions>,
    started: Instant,
}

/// A large-blob write in progress (CTAP 2.1 §6.10.2).
#[derive(Debug)]
struct LargeBlobWrite {
    expected_length: usize,
    data: Vec<u8>,
}

/// Volatile protocol state, lost at a power cycle.
#[derive(Debug)]
pub(crate) struct Session {
    /// The key-agreement key shared by PIN/UV auth protocols 1 and 2 (§6.5.6).
    key_agreement: Option<KeyAgreementKey>,
    next_assertion: Option<NextAssertions>,
    rp_enumeration: Option<Vec<(String, Option<String>)>>,
    cred_enumeration: Option<Vec<Credential>>,
    large_blob_write: Option<LargeBlobWrite>,
}

fn rng_fn(rng: &mut dyn RandomSource) -> impl FnMut(&mut [u8]) + '_ {
    move |buf: &mut [u8]| {
        // The OS source does not fail in practice; a failure leaves zeros, which the
        // callers' key checks reject.
        let _ = rng.fill(buf);
    }
}

impl Session {
    pub fn new(rng: &mut dyn RandomSource) -> Self {
        let mut fill = rng_fn(rng);
        Self {
            key_agreement: KeyAgreementKey::generate(&mut fill).ok(),
            next_assertion: None,
            rp_enumeration: None,
            cred_enumeration: None,
            large_blob_write: None,
        }
    }
}

fn presence_status(outcome: PresenceOutcome) -> CtapResult<()> {
    match outcome {
        PresenceOutcome::Approved => Ok(()),
        PresenceOutcome::Denied => Err(StatusCode::CTAP2_ERR_OPERATION_DENIED),
        PresenceOutcome::TimedOut => Err(StatusCode::CTAP2_ERR_USER_ACTION_TIMEOUT),
        PresenceOutcome::Cancelled => Err(StatusCode::CTAP2_ERR_KEEPALIVE_CANCEL),
    }
}

fn pin_status(failure: PinFailure) -> StatusCode {
    match failure {
        PinFailure::NotSet => StatusCode::CTAP2_ERR_PIN_NOT_SET,
        PinFailure::Blocked => StatusCode::CTAP2_ERR_PIN_BLOCKED,
        PinFailure::AuthBlocked => StatusCode::CTAP2_ERR_PIN_AUTH_BLOCKED,
        PinFailure::Invalid => StatusCode::CTAP2_ERR_PIN_INVALID,
        PinFailure::PolicyViolation => StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION,
        PinFailure::NotAllowed => StatusCode::CTAP2_ERR_NOT_ALLOWED,
        PinFailure::AuthInvalid => StatusCode::CTAP2_ERR_PIN_AUTH_INVALID,
    }
}

fn internal<E>(_: E) -> StatusCode {
    StatusCode::CTAP1_ERR_OTHER
}

fn user_entity(user: &UserInfo, identifying: bool) -> PublicKeyCredentialUserEntity {
    PublicKeyCredentialUserEntity {
        id: user.id.clone(),
        name: if identifying { user.name.clone() } else { None },
        display_name: if identifying {
            user.display_name.clone()
        } else {
            None
        },
    }
}

fn cose_public_key(cred: &Credential) -> CtapResult<CoseKey> {
    let key = cred.signing_key().map_err(internal)?;
    Ok(CoseKey::es256(&p256::PublicKey::from(key.verifying_key())))
}

fn descriptor(id: &[u8]) -> PublicKeyCredentialDescriptor {
    PublicKeyCredentialDescriptor {
        type_: "public-key".to_owned(),
        id: id.to_vec(),
        transports: None,
    }
}

impl SoftKey {
    /// Handles one CTAP2 request (command byte + CBOR) and returns the response (status byte +
    /// CBOR). `presence` answers user-presence checks; `now` drives the reset window and timers.
    pub fn handle_cbor(
        &mut self,
        request: &[u8],
        presence: &mut dyn UserPresence,
        now: Instant,
    ) -> Vec<u8> {
        if self.options.ctap == CtapVersion::U2fOnly {
            return vec![StatusCode::CTAP1_ERR_INVALID_COMMAND.0];
        }
        let decoded = match CtapRequest::decode(request) {
            Ok(decoded) => decoded,
            Err(status) => return vec![status.0],
        };
        if !matches!(
            decoded,
            CtapRequest::GetAssertion(_) | CtapRequest::GetNextAssertion(_)
        ) {
            self.session.next_assertion = None;
        }
        if !matches!(decoded, CtapRequest::CredentialManagement { .. }) {
            self.session.rp_enumeration = None;
            self.session.cred_enumeration = None;
        }
        if !matches!(decoded, CtapRequest::LargeBlobs(_)) {
            self.session.large_blob_write = None;
        }
        let fido21 = self.options.ctap == CtapVersion::Fido21;
        let result = match decoded {
            CtapRequest::GetInfo(_) => Ok(self.get_info().encode()),
            CtapRequest::MakeCredential(req) => {
                self.make_credential(req, presence, now).map(|r| r.encode())
            }
            CtapRequest::GetAssertion(req) => {
                self.get_assertion(req, presence, now).map(|r| r.encode())
            }
            CtapRequest::GetNextAssertion(_) => self.get_next_assertion(now).map(|r| r.encode()),
            CtapRequest::ClientPin(req) => self.client_pin(req, now).map(|r| r.encode()),
            CtapRequest::Reset(_) => self.reset(presence, now).map(|()| Vec::new()),
            CtapRequest::CredentialManagement { request, prototype }
                if fido21 || (prototype && self.pre()) =>
            {
                self.credential_management(request, now).map(|r| r.encode())
            }
            CtapRequest::Selection(_) if fido21 => {
                presence_status(presence.request("")).map(|()| Vec::new())
            }
            CtapRequest::Config(req) if fido21 => self.config(req, now).map(|()| Vec::new()),
            CtapRequest::LargeBlobs(req) if fido21 && self.options.large_blobs => {
                self.large_blobs(req, now).map(|r| r.encode())
            }
            _ => Err(StatusCode::CTAP1_ERR_INVALID_COMMAND),
        };
        match result {
            Ok(body) => {
                let mut out = Vec::with_capacity(1 + body.len());
                out.push(StatusCode::CTAP2_OK.0);
                out.extend_from_slice(&body);
                out
            }
            Err(status) => vec![status.0],
        }
    }

    fn fido21(&self) -> bool {
        self.options.ctap == CtapVersion::Fido21
    }

    fn pre(&self) -> bool {
        self.options.ctap == CtapVersion::Fido21Pre
    }

    fn protocols(&self) -> &'static [u64] {
        if self.fido21() { &[2, 1] } else { &[1] }
    }

    fn protocol(&self, version: Option<u64>) -> CtapResult<PinProtocol> {
        let version = version.ok_or(StatusCode::CTAP2_ERR_MISSING_PARAMETER)?;
        if !self.protocols().contains(&version) {
            return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
        }
        PinProtocol::from_version(version).ok_or(StatusCode::CTAP1_ERR_INVALID_PARAMETER)
    }

    fn extensions_supported(&self) -> Vec<String> {
        let mut out = vec!["credProtect".to_owned(), "hmac-secret".to_owned()];
        if self.fido21() {
            out.push("credBlob".to_owned());
            out.push("minPinLength".to_owned());
            if self.options.large_blobs && self.options.resident_keys {
                out.push("largeBlobKey".to_owned());
            }
        }
        out
    }

    /// authenticatorGetInfo (§6.4).
    pub(crate) fn get_info(&self) -> get_info::Response {
        let fido21 = self.fido21();
        let mut options = BTreeMap::new();
        options.insert("plat".to_owned(), false);
        options.insert("rk".to_owned(), self.options.resident_keys);
        options.insert("up".to_owned(), true);
        if self.options.client_pin {
            options.insert("clientPin".to_owned(), self.pin.is_set());
        }
        if let Some(_uv) = self.controls.builtin_uv {
            options.insert("uv".to_owned(), true);
        }
        if fido21 {
            if self.options.client_pin {
                options.insert("pinUvAuthToken".to_owned(), true);
                options.insert("setMinPINLength".to_owned(), true);
            }
            options.insert("credMgmt".to_owned(), self.options.resident_keys);
            options.insert("authnrCfg".to_owned(), true);
            options.insert("makeCredUvNotRqd".to_owned(), true);
            options.insert("alwaysUv".to_owned(), self.state.always_uv);
            if self.options.enterprise_attestation.is_some() {
                options.insert("ep".to_owned(), self.state.ep_enabled);
            }
            if self.options.resident_keys {
                options.insert("largeBlobs".to_owned(), self.options.large_blobs);
            }
        }
        if self.pre() && self.options.client_pin {
            options.insert(
                "credentialMgmtPreview".to_owned(),
                self.options.resident_keys,
            );
        }
        let versions = if fido21 {
            vec![
                "U2F_V2".to_owned(),
                "FIDO_2_0".to_owned(),
                "FIDO_2_1".to_owned(),
            ]
        } else if self.pre() {
            vec![
                "U2F_V2".to_owned(),
                "FIDO_2_0".to_owned(),
                "FIDO_2_1_PRE".to_owned(),
            ]
        } else {
            vec!["U2F_V2".to_owned(), "FIDO_2_0".to_owned()]
        };
        let remaining = self
            .options
            .max_resident
            .saturating_sub(self.resident_count()) as u64;
        get_info::Response {
            versions,
            extensions: Some(self.extensions_supported()),
            aaguid: self.options.aaguid,
            options: Some(options),
            max_msg_size: Some(MAX_MSG_SIZE as u64),
            pin_uv_auth_protocols: self.options.client_pin.then(|| self.protocols().to_vec()),
            max_credential_count_in_list: Some(self.options.max_credential_count_in_list as u64),
            max_credential_id_length: Some(self.options.max_credential_id_length as u64),
            transports: Some(vec!["usb".to_owned()]),
            algorithms: Some(vec![PublicKeyCredentialParameters {
                type_: "public-key".to_owned(),
                alg: -7,
            }]),
            max_serialized_large_blob_array: (fido21
                && self.options.large_blobs
                && self.options.resident_keys)
                .then_some(self.options.max_large_blob as u64),
            force_pin_change: fido21.then_some(self.pin.record.force_change),
            min_pin_length: fido21.then_some(u64::from(self.pin.record.min_pin_length)),
            firmware_version: Some(1),
            max_cred_blob_length: fido21.then_some(MAX_CRED_BLOB_LENGTH as u64),
            max_rp_ids_for_set_min_pin_length: fido21
                .then_some(MAX_RP_IDS_FOR_MIN_PIN_LENGTH as u64),
            preferred_platform_uv_attempts: None,
            uv_modality: None,
            certifications: None,
            remaining_discoverable_credentials: (fido21 && self.options.resident_keys)
                .then_some(remaining),
            vendor_prototype_config_commands: None,
        }
    }

    /// The zero-length pinUvAuthParam probe (§6.1.2 step 1, §6.2.2 step 1): after a touch,
    /// PIN_NOT_SET or PIN_INVALID tells the platform whether a PIN exists.
    fn zero_length_param_probe(
        &mut self,
        presence: &mut dyn UserPresence,
        rp_id: &str,
    ) -> StatusCode {
        if let Err(status) = presence_status(presence.request(rp_id)) {
            return status;
        }
        if self.pin.is_set() {
            StatusCode::CTAP2_ERR_PIN_INVALID
        } else {
            StatusCode::CTAP2_ERR_PIN_NOT_SET
        }
    }

    /// Verifies a pinUvAuthParam over `message` and the permission (and rpId binding).
    fn check_token(
        &mut self,
        protocol: Option<u64>,
        param: &[u8],
        message: &[u8],
        needed: u8,
        rp_id: Option<&str>,
        now: Instant,
    ) -> CtapResult<()> {
        let protocol = self.protocol(protocol)?;
        self.pin
            .verify_token_param(protocol.version() as u8, message, param, now)
            .map_err(pin_status)?;
        self.pin.check_permission(needed, rp_id).map_err(pin_status)
    }

    /// Whether the request is user-verified: through its pinUvAuthParam over the
    /// clientDataHash (checked with `permission` for `rp_id`), else through built-in UV when
    /// the `uv` option asks for it (§6.1.2 steps 5-11, §6.2.2 steps 5-9).
    fn request_uv(
        &mut self,
        protocol: Option<u64>,
        param: Option<&[u8]>,
        client_data_hash: &[u8],
        (permission, rp_id): (u8, &str),
        uv_option: Option<bool>,
        now: Instant,
    ) -> CtapResult<bool> {
        match param {
            Some(_) if !self.options.client_pin => Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID),
            Some(param) => self
                .check_token(
                    protocol,
                    param,
                    client_data_hash,
                    permission,
                    Some(rp_id),
                    now,
                )
                .map(|()| true),
            None => self.builtin_uv(uv_option.unwrap_or(false)),
        }
    }

    /// maxCredentialCountInList / maxCredentialIdLength (GetInfo 0x07 / 0x08, CTAP 2.1 §6.4):
    /// a longer allowList / excludeList, or a longer credential ID in it, is refused with
    /// CTAP2_ERR_LIMIT_EXCEEDED (§8.2 "limit for number of items exceeded"). §6.1.2 and §6.2.2
    /// leave the case to the platform, which must batch and filter (see
    /// `ctap2::credential_list`); refusing, as Chromium's virtual authenticator does, lets
    /// tests prove that a platform does.
    fn check_list_limits(
        &self,
        list: Option<&Vec<PublicKeyCredentialDescriptor>>,
    ) -> CtapResult<()> {
        let Some(list) = list else {
            return Ok(());
        };
        if list.len() > self.options.max_credential_count_in_list
            || list
                .iter()
                .any(|d| d.id.len() > self.options.max_credential_id_length)
        {
            return Err(StatusCode::CTAP2_ERR_LIMIT_EXCEEDED);
        }
        Ok(())
    }

    /// Built-in UV (a test-controlled method; this key otherwise verifies users only by PIN).
    fn builtin_uv(&self, requested: bool) -> CtapResult<bool> {
        if !requested {
            return Ok(false);
        }
        match self.controls.builtin_uv {
            None => Err(StatusCode::CTAP2_ERR_INVALID_OPTION),
            Some(true) => Ok(true),
            Some(false) => Err(StatusCode::CTAP2_ERR_UV_INVALID),
        }
    }

    /// authenticatorMakeCredential (§6.1.2).
    fn make_credential(
        &mut self,
        req: make_credential::Request,
        presence: &mut dyn UserPresence,
        now: Instant,
    ) -> CtapResult<make_credential::Response> {
        let rp_id = req.rp.id.clone();
        if req.pin_uv_auth_param.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(self.zero_length_param_probe(presence, &rp_id));
        }
        if req.client_data_hash.len() != 32 {
            return Err(StatusCode::CTAP1_ERR_INVALID_LENGTH);
        }
        self.check_list_limits(req.exclude_list.as_ref())?;
        if !req
            .pub_key_cred_params
            .iter()
            .any(|p| p.type_ == "public-key" && p.alg == -7)
        {
            return Err(StatusCode::CTAP2_ERR_UNSUPPORTED_ALGORITHM);
        }
        let enterprise = self.enterprise_requested(req.enterprise_attestation, &rp_id)?;
        let rk = req.option("rk").unwrap_or(false);
        if rk && !self.options.resident_keys {
            return Err(StatusCode::CTAP2_ERR_UNSUPPORTED_OPTION);
        }
        if req.option("up") == Some(false) {
            return Err(StatusCode::CTAP2_ERR_INVALID_OPTION);
        }
        let uv = self.request_uv(
            req.pin_uv_auth_protocol,
            req.pin_uv_auth_param.as_deref(),
            &req.client_data_hash,
            (permission::MC, &rp_id),
            req.option("uv"),
            now,
        )?;
        // Not verified (no pinUvAuthParam, no built-in UV): what the PIN and alwaysUv demand.
        if !uv {
            if self.state.always_uv {
                return Err(if self.pin.is_set() {
                    StatusCode::CTAP2_ERR_PUAT_REQUIRED
                } else {
                    StatusCode::CTAP2_ERR_PIN_NOT_SET
                });
            }
            if self.pin.is_set() && rk {
                return Err(StatusCode::CTAP2_ERR_PUAT_REQUIRED);
            }
        }

        // excludeList: a known credential (visible at this UV level) ends the operation after a touch.
        for excluded in req.exclude_list.iter().flatten() {
            if let Some(cred) = self.find_credential(&rp_id, &excluded.id) {
                if cred.cred_protect == CredProtect::UvRequired && !uv {
                    continue;
                }
                if presence.request(&rp_id) == PresenceOutcome::Cancelled {
                    return Err(StatusCode::CTAP2_ERR_KEEPALIVE_CANCEL);
                }
                return Err(StatusCode::CTAP2_ERR_CREDENTIAL_EXCLUDED);
            }
        }

        // Extensions.
        let ext = req.extensions.clone().unwrap_or_default();
        let cred_protect = match ext.cred_protect {
            None => CredProtect::UvOptional,
            Some(level) => {
                CredProtect::from_u8(level.0).ok_or(StatusCode::CTAP1_ERR_INVALID_PARAMETER)?
            }
        };
        let hmac_secret = ext.hmac_secret == Some(true);
        let fido21 = self.fido21();
        let cred_blob = ext.cred_blob.as_ref().filter(|_| fido21);
        let stored_blob = cred_blob
            .filter(|b| b.len() <= MAX_CRED_BLOB_LENGTH)
            .cloned();
        let want_large_blob_key = ext.large_blob_key;
        if want_large_blob_key == Some(false) {
            return Err(StatusCode::CTAP2_ERR_INVALID_OPTION);
        }
        let large_blob_key =
            want_large_blob_key == Some(true) && fido21 && self.options.large_blobs;
        if large_blob_key && !rk {
            return Err(StatusCode::CTAP2_ERR_INVALID_OPTION);
        }

        // Room for a new discoverable credential (a same-user credential is replaced).
        let user_id = req.user.id.clone();
        let replaces = |c: &Credential| {
            c.discoverable && c.rp_id == rp_id && c.user.as_ref().is_some_and(|u| u.id == user_id)
        };
        if rk
            && !self.state.credentials.iter().any(replaces)
            && self.resident_count() >= self.options.max_resident
        {
            return Err(StatusCode::CTAP2_ERR_KEY_STORE_FULL);
        }

        presence_status(presence.request(&rp_id))?;
        self.pin.mark_user_present();

        let private_key = keys::new_private_key(self.rng.as_mut()).map_err(internal)?;
        let rp_id_hash = keys::sha256(rp_id.as_bytes());
        let cred = if rk {
            let mut id = keys::random_array::<32>(self.rng.as_mut())
                .map_err(internal)?
                .to_vec();
            id[0] = STORED_ID_PREFIX;
            let large_blob_key = if large_blob_key {
                Some(Secret::new(
                    keys::random_array::<32>(self.rng.as_mut())
                        .map_err(internal)?
                        .to_vec(),
                ))
            } else {
                None
            };
            Credential {
                id,
                rp_id: rp_id.clone(),
                rp_name: req.rp.name.clone(),
                user: Some(UserInfo {
                    id: req.user.id.clone(),
                    name: req.user.name.clone(),
                    display_name: req.user.display_name.clone(),
                }),
                discoverable: true,
                private_key: Secret::new(private_key.expose_secret().to_vec()),
                cred_protect,
                hmac_secret,
                cred_random_uv: Secret::new(
                    keys::random_array::<32>(self.rng.as_mut())
                        .map_err(internal)?
                        .to_vec(),
                ),
                cred_random_no_uv: Secret::new(
                    keys::random_array::<32>(self.rng.as_mut())
                        .map_err(internal)?
                        .to_vec(),
                ),
                cred_blob: stored_blob.clone(),
                large_blob_key,
                sign_count: 0,
                created: self.next_created(),
            }
        } else {
            let payload = WrappedPayload {
                private_key,
                cred_protect,
                hmac_secret,
                cred_blob: stored_blob.clone(),
            };
            let id = credential::wrap_credential_id(
                &self.master_keys,
                &rp_id_hash,
                &payload,
                self.rng.as_mut(),
            )
            .map_err(internal)?;
            Credential::from_wrapped(&self.master_keys, &rp_id, &id, payload)
        };
        if rk {
            self.state.credentials.retain(|c| !replaces(c));
            self.state.credentials.push(cred.clone());
        }
        let sign_count = self.bump_counter(&cred);

        let mut outputs = ExtensionOutputs::default();
        if ext.cred_protect.is_some() {
            outputs.cred_protect = Some(crate::ctap2::extensions::CredProtect(cred_protect as u8));
        }
        if hmac_secret {
            outputs.hmac_secret = Some(HmacSecretOutput::Created(true));
        }
        if cred_blob.is_some() {
            outputs.cred_blob = Some(CredBlobOutput::Stored(stored_blob.is_some()));
        }
        if ext.min_pin_length == Some(true)
            && fido21
            && self.pin.record.min_pin_length_rp_ids.contains(&rp_id)
        {
            outputs.min_pin_length = Some(u64::from(self.pin.record.min_pin_length));
        }
        let mut flags = AuthenticatorDataFlags::UP;
        if uv {
            flags |= AuthenticatorDataFlags::UV;
        }
        let auth_data = AuthenticatorData {
            rp_id_hash,
            flags: AuthenticatorDataFlags(flags),
            sign_count,
            attested_credential_data: Some(AttestedCredentialData {
                aaguid: self.options.aaguid,
                credential_id: cred.id.clone(),
                credential_public_key: cose_public_key(&cred)?,
            }),
            extensions: (!outputs.is_empty()).then_some(outputs),
        }
        .to_bytes();
        let signed: [&[u8]; 2] = [&auth_data, &req.client_data_hash];
        let (att_stmt, ep_att) = self.attest(&cred, &signed, enterprise)?;
        self.persist().map_err(internal)?;
        if req.pin_uv_auth_param.is_some() {
            self.pin.consume_after_use();
        }
        self.last = LastOperation {
            user_present: true,
            user_verified: uv,
        };
        Ok(make_credential::Response {
            auth_data,
            att_stmt,
            ep_att,
            large_blob_key: cred
                .large_blob_key
                .as_ref()
                .map(|k| k.expose_secret().clone()),
        })
    }

    /// authenticatorGetAssertion (§6.2.2).
    fn get_assertion(
        &mut self,
        req: get_assertion::Request,
        presence: &mut dyn UserPresence,
        now: Instant,
    ) -> CtapResult<get_assertion::Response> {
        let rp_id = req.rp_id.clone();
        if req.pin_uv_auth_param.as_ref().is_some_and(|p| p.is_empty()) {
            return Err(self.zero_length_param_probe(presence, &rp_id));
        }
        if req.client_data_hash.len() != 32 {
            return Err(StatusCode::CTAP1_ERR_INVALID_LENGTH);
        }
        self.check_list_limits(req.allow_list.as_ref())?;
        if req.option("rk").is_some() {
            return Err(StatusCode::CTAP2_ERR_UNSUPPORTED_OPTION);
        }
        let up = req.option("up").unwrap_or(true);
        let uv = self.request_uv(
            req.pin_uv_auth_protocol,
            req.pin_uv_auth_param.as_deref(),
            &req.client_data_hash,
            (permission::GA, &rp_id),
            req.option("uv"),
            now,
        )?;
        if !uv && self.state.always_uv && up {
            return Err(if self.pin.is_set() {
                StatusCode::CTAP2_ERR_PUAT_REQUIRED
            } else {
                StatusCode::CTAP2_ERR_OPERATION_DENIED
            });
        }

        let allow_list = req.allow_list.as_ref().filter(|l| !l.is_empty());
        let mut found: Vec<Credential> = match allow_list {
            Some(list) => list
                .iter()
                .filter(|d| d.type_ == "public-key")
                .filter_map(|d| self.find_credential(&rp_id, &d.id))
                .filter(|c| c.cred_protect.allows(uv, true))
                .take(1)
                .collect(),
            None => {
                let mut list: Vec<Credential> = self
                    .state
                    .credentials
                    .iter()
                    .filter(|c| {
                        c.discoverable && c.rp_id == rp_id && c.cred_protect.allows(uv, false)
                    })
                    .cloned()
                    .collect();
                list.sort_by_key(|c| std::cmp::Reverse(c.created));
                list
            }
        };
        if found.is_empty() {
            return Err(StatusCode::CTAP2_ERR_NO_CREDENTIALS);
        }
        if up {
            presence_status(presence.request(&rp_id))?;
            self.pin.mark_user_present();
        }
        let total = found.len();
        let first = found.remove(0);
        let response = self.assertion_for(
            &first,
            &rp_id,
            &req.client_data_hash,
            up,
            uv,
            req.extensions.as_ref(),
        )?;
        if req.pin_uv_auth_param.is_some() && up {
            // Only a presence-checked use consumes the token (§6.2.2 step 7); a silent
            // pre-flight (up = false) leaves it usable.
            self.pin.consume_after_use();
        }
        self.last = LastOperation {
            user_present: up,
            user_verified: uv,
        };
        if allow_list.is_none() && !found.is_empty() {
            self.session.next_assertion = Some(NextAssertions {
                rp_id,
                client_data_hash: req.client_data_hash.clone(),
                remaining: found,
                user_present: up,
                user_verified: uv,
                extensions: req.extensions.clone(),
                started: now,
            });
        }
        Ok(get_assertion::Response {
            number_of_credentials: allow_list.is_none().then_some(total as u64),
            ..response
        })
    }

    /// authenticatorGetNextAssertion (§6.3).
    fn get_next_assertion(&mut self, now: Instant) -> CtapResult<get_assertion::Response> {
        let Some(mut state) = self.session.next_assertion.take() else {
            return Err(StatusCode::CTAP2_ERR_NOT_ALLOWED);
        };
        if now.saturating_duration_since(state.started) > NEXT_ASSERTION_TIMEOUT
            || state.remaining.is_empty()
        {
            return Err(StatusCode::CTAP2_ERR_NOT_ALLOWED);
        }
        let cred = state.remaining.remove(0);
        let response = self.assertion_for(
            &cred,
            &state.rp_id,
            &state.client_data_hash,
            state.user_present,
            state.user_verified,
            state.extensions.as_ref(),
        )?;
        if !state.remaining.is_empty() {
            state.started = now;
            self.session.next_assertion = Some(state);
        }
        Ok(response)
    }

    /// One assertion by `cred`: extensions, counter, authData, signature.
    fn assertion_for(
        &mut self,
        cred: &Credential,
        rp_id: &str,
        client_data_hash: &[u8],
        up: bool,
        uv: bool,
        extensions: Option<&GetAssertionExtensions>,
    ) -> CtapResult<get_assertion::Response> {
        let mut outputs = ExtensionOutputs::default();
        let mut large_blob_key = None;
        if let Some(ext) = extensions {
            if let Some(input) = &ext.hmac_secret {
                let protocol =
                    self.protocol(Some(u64::from(input.pin_uv_auth_protocol.unwrap_or(1))))?;
                let shared = self.shared_secret(protocol, &input.key_agreement)?;
                if !shared.verify(&input.salt_enc, &input.salt_auth) {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                let salts = shared
                    .decrypt(&input.salt_enc)
                    .map_err(|_| StatusCode::CTAP1_ERR_INVALID_LENGTH)?;
                let salts = salts.expose_secret();
                if salts.len() != 32 && salts.len() != 64 {
                    return Err(StatusCode::CTAP1_ERR_INVALID_LENGTH);
                }
                if cred.hmac_secret {
                    let cred_random = if uv {
                        &cred.cred_random_uv
                    } else {
                        &cred.cred_random_no_uv
                    };
                    let mut out = Secret::new(Vec::with_capacity(64));
                    for salt in salts.chunks(32) {
                        out.expose_secret_mut()
                            .extend_from_slice(&keys::hmac_sha256(
                                cred_random.expose_secret(),
                                &[salt],
                            ));
                    }
                    let mut fill = rng_fn(self.rng.as_mut());
                    let encrypted = shared
                        .encrypt(out.expose_secret(), &mut fill)
                        .map_err(internal)?;
                    outputs.hmac_secret = Some(HmacSecretOutput::Output(encrypted));
                }
            }
            if ext.cred_blob == Some(true) && self.fido21() {
                outputs.cred_blob = Some(CredBlobOutput::Blob(
                    cred.cred_blob.clone().unwrap_or_default(),
                ));
            }
            if ext.large_blob_key == Some(true) {
                large_blob_key = cred
                    .large_blob_key
                    .as_ref()
                    .map(|k| k.expose_secret().clone());
            }
        }
        let sign_count = self.bump_counter(cred);
        let mut flags = 0u8;
        if up {
            flags |= AuthenticatorDataFlags::UP;
        }
        if uv {
            flags |= AuthenticatorDataFlags::UV;
        }
        let auth_data = AuthenticatorData {
            rp_id_hash: keys::sha256(rp_id.as_bytes()),
            flags: AuthenticatorDataFlags(flags),
            sign_count,
            attested_credential_data: None,
            extensions: (!outputs.is_empty()).then_some(outputs),
        }
        .to_bytes();
        let key = cred.secret_key().map_err(internal)?;
        let signature = self.sign(&key, &[&auth_data, client_data_hash]);
        self.persist().map_err(internal)?;
        Ok(get_assertion::Response {
            credential: Some(descriptor(&cred.id)),
            auth_data,
            signature,
            user: cred
                .user
                .as_ref()
                .filter(|_| cred.discoverable)
                .map(|u| user_entity(u, uv)),
            number_of_credentials: None,
            user_selected: None,
            large_blob_key,
        })
    }

    fn shared_secret(
        &mut self,
        protocol: PinProtocol,
        platform_key: &CoseKey,
    ) -> CtapResult<SharedSecret> {
        let key = self
            .session
            .key_agreement
            .as_ref()
            .ok_or(StatusCode::CTAP1_ERR_OTHER)?;
        key.decapsulate(protocol, platform_key)
            .map_err(|_| StatusCode::CTAP1_ERR_INVALID_PARAMETER)
    }

    fn regenerate_key_agreement(&mut self) {
        let mut fill = rng_fn(self.rng.as_mut());
        self.session.key_agreement = KeyAgreementKey::generate(&mut fill).ok();
    }

    /// Decrypts pinHashEnc and runs the retry rules; persists the retry counter either way.
    fn verify_pin_hash_enc(
        &mut self,
        shared: &SharedSecret,
        pin_hash_enc: &[u8],
    ) -> CtapResult<()> {
        self.pin.precheck().map_err(pin_status)?;
        let expected_len = match shared.protocol() {
            PinProtocol::One => 16,
            PinProtocol::Two => 32,
        };
        if pin_hash_enc.len() != expected_len {
            return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
        }
        let candidate = shared
            .decrypt(pin_hash_enc)
            .map_err(|_| StatusCode::CTAP1_ERR_INVALID_PARAMETER)?;
        let result = self.pin.verify_pin_hash(candidate.expose_secret());
        self.persist().map_err(internal)?;
        if let Err(failure) = result {
            if failure == PinFailure::Invalid
                || failure == PinFailure::AuthBlocked
                || failure == PinFailure::Blocked
            {
                self.regenerate_key_agreement();
            }
            return Err(pin_status(failure));
        }
        Ok(())
    }

    fn decrypt_new_pin(
        &self,
        shared: &SharedSecret,
        new_pin_enc: &[u8],
    ) -> CtapResult<Secret<Vec<u8>>> {
        let expected_len = match shared.protocol() {
            PinProtocol::One => 64,
            PinProtocol::Two => 80,
        };
        if new_pin_enc.len() != expected_len {
            return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
        }
        shared
            .decrypt(new_pin_enc)
            .map_err(|_| StatusCode::CTAP1_ERR_INVALID_PARAMETER)
    }

    /// authenticatorClientPIN (§6.5.5).
    fn client_pin(
        &mut self,
        req: client_pin::Request,
        now: Instant,
    ) -> CtapResult<client_pin::Response> {
        if !self.options.client_pin {
            return Err(StatusCode::CTAP1_ERR_INVALID_COMMAND);
        }
        let empty = client_pin::Response {
            key_agreement: None,
            pin_uv_auth_token: None,
            pin_retries: None,
            power_cycle_state: None,
            uv_retries: None,
        };
        let sub = req.sub_command;
        if sub == client_pin::SubCommand::GET_PIN_RETRIES {
            return Ok(client_pin::Response {
                pin_retries: Some(u64::from(self.pin.retries())),
                power_cycle_state: self.fido21().then_some(self.pin.auth_blocked()),
                ..empty
            });
        }
        if sub == client_pin::SubCommand::GET_UV_RETRIES {
            return match self.controls.builtin_uv {
                Some(_) if self.fido21() => Ok(client_pin::Response {
                    uv_retries: Some(8),
                    ..empty
                }),
                _ => Err(StatusCode::CTAP2_ERR_INVALID_SUBCOMMAND),
            };
        }
        let protocol = self.protocol(req.pin_uv_auth_protocol)?;
        let missing = StatusCode::CTAP2_ERR_MISSING_PARAMETER;
        match sub {
            client_pin::SubCommand::GET_KEY_AGREEMENT => {
                let key = self
                    .session
                    .key_agreement
                    .as_ref()
                    .ok_or(StatusCode::CTAP1_ERR_OTHER)?;
                Ok(client_pin::Response {
                    key_agreement: Some(key.public_key()),
                    ..empty
                })
            }
            client_pin::SubCommand::SET_PIN => {
                let (Some(ka), Some(new_pin_enc), Some(param)) =
                    (&req.key_agreement, &req.new_pin_enc, &req.pin_uv_auth_param)
                else {
                    return Err(missing);
                };
                if self.pin.is_set() {
                    return Err(StatusCode::CTAP2_ERR_NOT_ALLOWED);
                }
                let shared = self.shared_secret(protocol, ka)?;
                if !shared.verify(new_pin_enc, param) {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                let padded = self.decrypt_new_pin(&shared, new_pin_enc)?;
                self.pin
                    .set_pin(padded.expose_secret())
                    .map_err(pin_status)?;
                self.persist().map_err(internal)?;
                Ok(empty)
            }
            client_pin::SubCommand::CHANGE_PIN => {
                let (Some(ka), Some(new_pin_enc), Some(pin_hash_enc), Some(param)) = (
                    &req.key_agreement,
                    &req.new_pin_enc,
                    &req.pin_hash_enc,
                    &req.pin_uv_auth_param,
                ) else {
                    return Err(missing);
                };
                self.pin.precheck().map_err(pin_status)?;
                let shared = self.shared_secret(protocol, ka)?;
                if !shared.verify(&[new_pin_enc.as_slice(), pin_hash_enc].concat(), param) {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                self.verify_pin_hash_enc(&shared, pin_hash_enc)?;
                let padded = self.decrypt_new_pin(&shared, new_pin_enc)?;
                self.pin
                    .change_pin(padded.expose_secret())
                    .map_err(pin_status)?;
                self.persist().map_err(internal)?;
                Ok(empty)
            }
            client_pin::SubCommand::GET_PIN_TOKEN
            | client_pin::SubCommand::GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS
            | client_pin::SubCommand::GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS => {
                let with_permissions = sub != client_pin::SubCommand::GET_PIN_TOKEN;
                if with_permissions && !self.fido21() {
                    return Err(StatusCode::CTAP2_ERR_INVALID_SUBCOMMAND);
                }
                let Some(ka) = &req.key_agreement else {
                    return Err(missing);
                };
                let permissions = if with_permissions {
                    let p = req.permissions.ok_or(missing)?.0;
                    if p == 0 {
                        return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                    }
                    let unsupported = permission::BE
                        | if self.options.large_blobs {
                            0
                        } else {
                            permission::LBW
                        }
                        | if self.options.resident_keys {
                            0
                        } else {
                            permission::CM
                        };
                    if p & unsupported != 0 {
                        return Err(StatusCode::CTAP2_ERR_UNAUTHORIZED_PERMISSION);
                    }
                    p
                } else {
                    if req.permissions.is_some() || req.rp_id.is_some() {
                        return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                    }
                    // The 2.1 prototype has no permissions: its tokens also manage credentials.
                    permission::MC | permission::GA | if self.pre() { permission::CM } else { 0 }
                };
                let shared = self.shared_secret(protocol, ka)?;
                if sub == client_pin::SubCommand::GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS {
                    match self.controls.builtin_uv {
                        None => return Err(StatusCode::CTAP2_ERR_INVALID_SUBCOMMAND),
                        Some(false) => return Err(StatusCode::CTAP2_ERR_UV_INVALID),
                        Some(true) => {}
                    }
                } else {
                    let pin_hash_enc = req.pin_hash_enc.as_ref().ok_or(missing)?;
                    self.verify_pin_hash_enc(&shared, pin_hash_enc)?;
                }
                let token = self
                    .pin
                    .issue_token(
                        self.rng.as_mut(),
                        protocol.version() as u8,
                        permissions,
                        req.rp_id.clone(),
                        now,
                    )
                    .map_err(pin_status)?;
                let mut fill = rng_fn(self.rng.as_mut());
                let encrypted = shared
                    .encrypt(token.expose_secret(), &mut fill)
                    .map_err(internal)?;
                Ok(client_pin::Response {
                    pin_uv_auth_token: Some(encrypted),
                    ..empty
                })
            }
            _ => Err(StatusCode::CTAP2_ERR_INVALID_SUBCOMMAND),
        }
    }

    /// authenticatorReset (§6.6): within 10 s of power-up, with user presence.
    fn reset(&mut self, presence: &mut dyn UserPresence, now: Instant) -> CtapResult<()> {
        if !self.in_reset_window(now) {
            return Err(StatusCode::CTAP2_ERR_NOT_ALLOWED);
        }
        presence_status(presence.request(""))?;
        self.wipe(now).map_err(internal)
    }

    /// authenticatorCredentialManagement (§6.8), also as prototype 0x41.
    fn credential_management(
        &mut self,
        req: cm::Request,
        now: Instant,
    ) -> CtapResult<cm::Response> {
        if !self.options.resident_keys || !self.options.client_pin {
            return Err(StatusCode::CTAP1_ERR_INVALID_COMMAND);
        }
        let sub = req.sub_command;
        let next = sub == cm::SubCommand::ENUMERATE_RPS_GET_NEXT_RP
            || sub == cm::SubCommand::ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL;
        if !next {
            self.session.rp_enumeration = None;
            self.session.cred_enumeration = None;
            let (Some(param), Some(_)) = (&req.pin_uv_auth_param, req.pin_uv_auth_protocol) else {
                return Err(StatusCode::CTAP2_ERR_PUAT_REQUIRED);
            };
            self.check_token(
                req.pin_uv_auth_protocol,
                param,
                &req.auth_message(),
                permission::CM,
                None,
                now,
            )?;
        }
        let params = req.sub_command_params.clone().unwrap_or_default();
        let empty = cm::Response::default();
        let bound_rp = self.pin.token_rp_id().map(str::to_owned);
        let rp_allowed = |rp_id: &str| bound_rp.as_deref().is_none_or(|b| b == rp_id);
        match sub {
            cm::SubCommand::GET_CREDS_METADATA => {
                if bound_rp.is_some() {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                let count = self.resident_count();
                Ok(cm::Response {
                    existing_resident_credentials_count: Some(count as u64),
                    max_possible_remaining_resident_credentials_count: Some(
                        self.options.max_resident.saturating_sub(count) as u64,
                    ),
                    ..empty
                })
            }
            cm::SubCommand::ENUMERATE_RPS_BEGIN => {
                if bound_rp.is_some() {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                let mut rps: Vec<(String, Option<String>)> = Vec::new();
                let mut creds: Vec<&Credential> = self
                    .state
                    .credentials
                    .iter()
                    .filter(|c| c.discoverable)
                    .collect();
                creds.sort_by_key(|c| c.created);
                for c in creds {
                    if !rps.iter().any(|(id, _)| *id == c.rp_id) {
                        rps.push((c.rp_id.clone(), c.rp_name.clone()));
                    }
                }
                if rps.is_empty() {
                    return Err(StatusCode::CTAP2_ERR_NO_CREDENTIALS);
                }
                let total = rps.len();
                let first = rps.remove(0);
                self.session.rp_enumeration = Some(rps);
                Ok(cm::Response {
                    total_rps: Some(total as u64),
                    ..rp_response(first)
                })
            }
            cm::SubCommand::ENUMERATE_RPS_GET_NEXT_RP => {
                let list = self
                    .session
                    .rp_enumeration
                    .as_mut()
                    .ok_or(StatusCode::CTAP2_ERR_NOT_ALLOWED)?;
                if list.is_empty() {
                    self.session.rp_enumeration = None;
                    return Err(StatusCode::CTAP2_ERR_NOT_ALLOWED);
                }
                Ok(rp_response(list.remove(0)))
            }
            cm::SubCommand::ENUMERATE_CREDENTIALS_BEGIN => {
                let hash = params
                    .rp_id_hash
                    .ok_or(StatusCode::CTAP2_ERR_MISSING_PARAMETER)?;
                let mut creds: Vec<Credential> = self
                    .state
                    .credentials
                    .iter()
                    .filter(|c| c.discoverable && c.rp_id_hash() == hash)
                    .cloned()
                    .collect();
                if creds.first().is_some_and(|c| !rp_allowed(&c.rp_id)) {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                if creds.is_empty() {
                    return Err(StatusCode::CTAP2_ERR_NO_CREDENTIALS);
                }
                creds.sort_by_key(|c| c.created);
                let total = creds.len();
                let first = creds.remove(0);
                self.session.cred_enumeration = Some(creds);
                Ok(cm::Response {
                    total_credentials: Some(total as u64),
                    ..cred_response(&first)?
                })
            }
            cm::SubCommand::ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL => {
                let list = self
                    .session
                    .cred_enumeration
                    .as_mut()
                    .ok_or(StatusCode::CTAP2_ERR_NOT_ALLOWED)?;
                if list.is_empty() {
                    self.session.cred_enumeration = None;
                    return Err(StatusCode::CTAP2_ERR_NOT_ALLOWED);
                }
                let cred = list.remove(0);
                cred_response(&cred)
            }
            cm::SubCommand::DELETE_CREDENTIAL => {
                let id = params
                    .credential_id
                    .ok_or(StatusCode::CTAP2_ERR_MISSING_PARAMETER)?
                    .id;
                let cred = self
                    .state
                    .credentials
                    .iter()
                    .find(|c| c.discoverable && c.id == id)
                    .ok_or(StatusCode::CTAP2_ERR_NO_CREDENTIALS)?;
                if !rp_allowed(&cred.rp_id) {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                self.state.credentials.retain(|c| c.id != id);
                self.persist().map_err(internal)?;
                Ok(empty)
            }
            cm::SubCommand::UPDATE_USER_INFORMATION => {
                let id = params
                    .credential_id
                    .ok_or(StatusCode::CTAP2_ERR_MISSING_PARAMETER)?
                    .id;
                let user = params.user.ok_or(StatusCode::CTAP2_ERR_MISSING_PARAMETER)?;
                let cred = self
                    .state
                    .credentials
                    .iter_mut()
                    .find(|c| c.discoverable && c.id == id)
                    .ok_or(StatusCode::CTAP2_ERR_NO_CREDENTIALS)?;
                if bound_rp.as_deref().is_some_and(|b| b != cred.rp_id) {
                    return Err(StatusCode::CTAP2_ERR_PIN_AUTH_INVALID);
                }
                if cred.user.as_ref().is_none_or(|u| u.id != user.id) {
                    return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                }
                cred.user = Some(UserInfo {
                    id: user.id,
                    name: user.name,
                    display_name: user.display_name,
                });
                self.persist().map_err(internal)?;
                Ok(empty)
            }
            _ => Err(StatusCode::CTAP2_ERR_INVALID_SUBCOMMAND),
        }
    }

    /// The attestation statement of a new credential, and epAtt: the certificate unique to the
    /// key for an enterprise attestation, else the kind the key was created with.
    fn attest(
        &self,
        cred: &Credential,
        signed: &[&[u8]; 2],
        enterprise: bool,
    ) -> CtapResult<(AttestationStatement, Option<bool>)> {
        let packed =
            |key: &p256::SecretKey, x5c: Option<Vec<Vec<u8>>>| AttestationStatement::Packed {
                alg: -7,
                sig: self.sign(key, signed),
                x5c,
            };
        let attestation = &self.state.attestation;
        if let Some(material) = attestation.enterprise.as_ref().filter(|_| enterprise) {
            let key = keys::secret_key(material.key.expose_secret()).map_err(internal)?;
            return Ok((packed(&key, Some(vec![material.cert.clone()])), Some(true)));
        }
        let statement = match self.options.attestation {
            AttestationKind::None => AttestationStatement::None,
            AttestationKind::SelfAttestation => packed(&cred.secret_key().map_err(internal)?, None),
            AttestationKind::Packed => packed(
                &attestation.batch_secret_key().map_err(internal)?,
                Some(vec![attestation.batch_cert.clone()]),
            ),
        };
        Ok((statement, None))
    }

    /// MakeCredential's enterpriseAttestation parameter (CTAP 2.1 §6.1.2 step 9): whether this
    /// credential gets the enterprise attestation.
    fn enterprise_requested(&self, requested: Option<u64>, rp_id: &str) -> CtapResult<bool> {
        let Some(kind) = requested else {
            return Ok(false);
        };
        let listed = match &self.options.enterprise_attestation {
            Some(rp_ids) if self.fido21() && self.state.ep_enabled => rp_ids,
            // Not capable, or capable but not enabled.
            _ => return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER),
        };
        match kind {
            // Vendor-facilitated: only for the RP IDs burned in; others get the usual one.
            1 => Ok(listed.iter().any(|id| id == rp_id)),
            // Platform-managed: the platform vouches for the RP.
            2 => Ok(true),
            _ => Err(StatusCode::CTAP2_ERR_INVALID_OPTION),
        }
    }

    /// authenticatorConfig (§6.11): enableEnterpriseAttestation, toggleAlwaysUv,
    /// setMinPINLength.
    fn config(&mut self, req: config::Request, now: Instant) -> CtapResult<()> {
        if self.pin.is_set() || self.state.always_uv {
            let (Some(param), Some(_)) = (&req.pin_uv_auth_param, req.pin_uv_auth_protocol) else {
                return Err(StatusCode::CTAP2_ERR_PUAT_REQUIRED);
            };
            self.check_token(
                req.pin_uv_auth_protocol,
                param,
                &req.auth_message(),
                permission::ACFG,
                None,
                now,
            )?;
        }
        match req.sub_command {
            config::SubCommand::ENABLE_ENTERPRISE_ATTESTATION
                if self.fido21() && self.options.enterprise_attestation.is_some() =>
            {
                self.state.ep_enabled = true;
            }
            config::SubCommand::TOGGLE_ALWAYS_UV => {
                self.state.always_uv = !self.state.always_uv;
            }
            config::SubCommand::SET_MIN_PIN_LENGTH => {
                let params = match req.sub_command_params {
                    Some(config::SubCommandParams::SetMinPinLength(p)) => p,
                    Some(config::SubCommandParams::Other(_)) => {
                        return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                    }
                    None => config::SetMinPinLengthParams::default(),
                };
                if let Some(len) = params.new_min_pin_length {
                    let current = u64::from(self.pin.record.min_pin_length);
                    if len < current || len > 63 {
                        return Err(StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION);
                    }
                    self.pin.record.min_pin_length = len as u8;
                    if self.pin.is_set() && u64::from(self.pin.record.pin_code_points) < len {
                        self.pin.record.force_change = true;
                    }
                }
                if let Some(rp_ids) = params.min_pin_length_rp_ids {
                    if rp_ids.len() > MAX_RP_IDS_FOR_MIN_PIN_LENGTH {
                        return Err(StatusCode::CTAP2_ERR_KEY_STORE_FULL);
                    }
                    self.pin.record.min_pin_length_rp_ids = rp_ids;
                }
                if params.force_change_pin == Some(true) {
                    if !self.pin.is_set() {
                        return Err(StatusCode::CTAP2_ERR_PIN_NOT_SET);
                    }
                    self.pin.record.force_change = true;
                }
            }
            _ => return Err(StatusCode::CTAP2_ERR_INVALID_SUBCOMMAND),
        }
        self.persist().map_err(internal)
    }

    /// authenticatorLargeBlobs (§6.10).
    fn large_blobs(
        &mut self,
        req: large_blobs::Request,
        now: Instant,
    ) -> CtapResult<large_blobs::Response> {
        let max_fragment = MAX_MSG_SIZE - 64;
        let offset =
            usize::try_from(req.offset).map_err(|_| StatusCode::CTAP1_ERR_INVALID_PARAMETER)?;
        match (req.get, &req.set) {
            (Some(get), None) => {
                if req.length.is_some() {
                    return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                }
                let get = usize::try_from(get).map_err(|_| StatusCode::CTAP1_ERR_INVALID_LENGTH)?;
                if get > max_fragment {
                    return Err(StatusCode::CTAP1_ERR_INVALID_LENGTH);
                }
                let stored = &self.state.large_blob;
                if offset > stored.len() {
                    return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                }
                let end = (offset + get).min(stored.len());
                Ok(large_blobs::Response {
                    config: Some(stored[offset..end].to_vec()),
                })
            }
            (None, Some(set)) => {
                if set.len() > max_fragment {
                    return Err(StatusCode::CTAP1_ERR_INVALID_LENGTH);
                }
                if offset == 0 {
                    let length = req.length.ok_or(StatusCode::CTAP1_ERR_INVALID_PARAMETER)?;
                    let length = usize::try_from(length)
                        .map_err(|_| StatusCode::CTAP2_ERR_LARGE_BLOB_STORAGE_FULL)?;
                    if length > self.options.max_large_blob {
                        return Err(StatusCode::CTAP2_ERR_LARGE_BLOB_STORAGE_FULL);
                    }
                    if length < 17 {
                        return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                    }
                    self.session.large_blob_write = Some(LargeBlobWrite {
                        expected_length: length,
                        data: Vec::new(),
                    });
                } else if req.length.is_some() {
                    return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                }
                let expected_offset = self.session.large_blob_write.as_ref().map(|w| w.data.len());
                if expected_offset != Some(offset) {
                    return Err(StatusCode::CTAP1_ERR_INVALID_SEQ);
                }
                if self.pin.is_set() || self.state.always_uv {
                    let (Some(param), Some(_)) = (&req.pin_uv_auth_param, req.pin_uv_auth_protocol)
                    else {
                        return Err(StatusCode::CTAP2_ERR_PUAT_REQUIRED);
                    };
                    let message = large_blobs::Request::set_auth_message(offset as u32, set);
                    self.check_token(
                        req.pin_uv_auth_protocol,
                        param,
                        &message,
                        permission::LBW,
                        None,
                        now,
                    )?;
                }
                let write = self
                    .session
                    .large_blob_write
                    .as_mut()
                    .ok_or(StatusCode::CTAP1_ERR_INVALID_SEQ)?;
                if offset + set.len() > write.expected_length {
                    return Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER);
                }
                write.data.extend_from_slice(set);
                if write.data.len() == write.expected_length {
                    let data = std::mem::take(&mut write.data);
                    self.session.large_blob_write = None;
                    let (body, trailer) = data.split_at(data.len() - large_blobs::TRAILER_LEN);
                    if keys::sha256(body)[..large_blobs::TRAILER_LEN] != *trailer {
                        return Err(StatusCode::CTAP2_ERR_INTEGRITY_FAILURE);
                    }
                    self.state.large_blob = data;
                    self.persist().map_err(internal)?;
                }
                Ok(large_blobs::Response { config: None })
            }
            _ => Err(StatusCode::CTAP1_ERR_INVALID_PARAMETER),
        }
    }
}

fn rp_response((id, name): (String, Option<String>)) -> cm::Response {
    let rp_id_hash = keys::sha256(id.as_bytes());
    cm::Response {
        rp: Some(PublicKeyCredentialRpEntity { id, name }),
        rp_id_hash: Some(rp_id_hash),
        ..Default::default()
    }
}

fn cred_response(cred: &Credential) -> CtapResult<cm::Response> {
    Ok(cm::Response {
        user: cred.user.as_ref().map(|u| user_entity(u, true)),
        credential_id: Some(descriptor(&cred.id)),
        public_key: Some(cose_public_key(cred)?),
        cred_protect: Some(crate::ctap2::extensions::CredProtect(
            cred.cred_protect as u8,
        )),
        large_blob_key: cred
            .large_blob_key
            .as_ref()
            .map(|k| k.expose_secret().clone()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::options::LONGEST_OWN_CREDENTIAL_ID;
    use crate::authenticator::{AutoApproveForTests, SoftKeyOptions};
    use crate::ctap2::commands::{Command, decode_response};
    use crate::ctap2::extensions::MakeCredentialExtensions;

    fn key(count: usize, id_length: usize) -> SoftKey {
        SoftKey::new(SoftKeyOptions {
            max_credential_count_in_list: count,
            max_credential_id_length: id_length,
            ..SoftKeyOptions::default()
        })
        .unwrap()
    }

    fn call<C: Command>(key: &mut SoftKey, request: &C) -> Result<C::Response, StatusCode> {
        let reply = key.handle_cbor(&request.encode(), &mut AutoApproveForTests, Instant::now());
        match reply.first() {
            Some(0) => Ok(decode_response::<C>(&reply).unwrap()),
            Some(&status) => Err(StatusCode(status)),
            None => panic!("empty reply"),
        }
    }

    fn ids(lengths: &[usize]) -> Vec<PublicKeyCredentialDescriptor> {
        lengths
            .iter()
            .enumerate()
            .map(|(i, len)| descriptor(&vec![i as u8 + 0x80; *len]))
            .collect()
    }

    fn assertion(allow: Vec<PublicKeyCredentialDescriptor>) -> get_assertion::Request {
        get_assertion::Request {
            rp_id: "example.com".into(),
            client_data_hash: vec![1; 32],
            allow_list: Some(allow),
            ..Default::default()
        }
    }

    fn registration(exclude: Vec<PublicKeyCredentialDescriptor>) -> make_credential::Request {
        make_credential::Request {
            client_data_hash: vec![1; 32],
            rp: PublicKeyCredentialRpEntity::new("example.com"),
            user: PublicKeyCredentialUserEntity::new(vec![7; 8]),
            pub_key_cred_params: vec![PublicKeyCredentialParameters {
                type_: "public-key".into(),
                alg: -7,
            }],
            exclude_list: Some(exclude),
            ..Default::default()
        }
    }

    #[test]
    fn get_info_reports_the_configured_limits() {
        let mut key = key(2, 100);
        let info = call(&mut key, &get_info::Request).unwrap();
        assert_eq!(info.max_credential_count_in_list, Some(2));
        assert_eq!(info.max_credential_id_length, Some(100));
        let info = call(
            &mut SoftKey::new(SoftKeyOptions::default()).unwrap(),
            &get_info::Request,
        );
        assert_eq!(info.unwrap().max_credential_count_in_list, Some(8));
    }

    #[test]
    fn lists_longer_than_the_limit_are_refused() {
        let mut key = key(2, 100);
        let limit = Err(StatusCode::CTAP2_ERR_LIMIT_EXCEEDED);
        assert_eq!(
            call(&mut key, &assertion(ids(&[16, 16, 16]))).map(drop),
            limit
        );
        assert_eq!(
            call(&mut key, &registration(ids(&[16, 16, 16]))).map(drop),
            limit
        );
        // Two fit: unknown credentials, so NO_CREDENTIALS / a new credential.
        assert_eq!(
            call(&mut key, &assertion(ids(&[16, 16]))).map(drop),
            Err(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
        );
        assert!(call(&mut key, &registration(ids(&[16, 16]))).is_ok());
    }

    #[test]
    fn ids_longer_than_the_limit_are_refused() {
        let mut key = key(8, 100);
        let limit = Err(StatusCode::CTAP2_ERR_LIMIT_EXCEEDED);
        assert_eq!(call(&mut key, &assertion(ids(&[16, 101]))).map(drop), limit);
        assert_eq!(call(&mut key, &registration(ids(&[101]))).map(drop), limit);
        assert_eq!(
            call(&mut key, &assertion(ids(&[100, 16]))).map(drop),
            Err(StatusCode::CTAP2_ERR_NO_CREDENTIALS)
        );
    }

    #[test]
    fn own_ids_fit_the_smallest_allowed_limit() {
        let mut options = SoftKeyOptions {
            max_credential_id_length: LONGEST_OWN_CREDENTIAL_ID - 1,
            ..SoftKeyOptions::default()
        };
        assert!(options.validate().is_err());
        options.max_credential_id_length = LONGEST_OWN_CREDENTIAL_ID;
        options.max_credential_count_in_list = 0;
        assert!(options.validate().is_err());
        options.max_credential_count_in_list = 1;
        let mut key = SoftKey::new(options).unwrap();
        // The longest wrapped ID: non-resident with a 32-byte credBlob.
        let mut request = registration(Vec::new());
        request.extensions = Some(MakeCredentialExtensions {
            cred_blob: Some(vec![5; 32]),
            ..Default::default()
        });
        let made = call(&mut key, &request).unwrap();
        let id = made
            .auth_data()
            .unwrap()
            .attested_credential_data
            .unwrap()
            .credential_id;
        assert_eq!(id.len(), LONGEST_OWN_CREDENTIAL_ID);
        let found = call(&mut key, &assertion(vec![descriptor(&id)])).unwrap();
        assert_eq!(found.credential.unwrap().id, id);
    }
}
