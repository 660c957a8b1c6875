//! WebAuthn relying-party ceremonies (webauthn-rs) with ceremony state kept in the store.
//!
//! [`RelyingParties`] holds the configured RPs ([`RpConfig`]) and runs the four ceremony
//! steps. Every `start_*` serializes the webauthn-rs state into the store under a random
//! ceremony ID (so a ceremony may finish after a restart) with an expiry (default 300 s).
//! Every `finish_*` reads that state, verifies the response with webauthn-rs, and then in
//! ONE durable transaction takes the state (`DELETE`, exactly one taker: single use) and
//! stores the outcome: the new credential, or the signature counter and backup flags moved
//! by compare-and-set. A response that fails verification also consumes its ceremony.
//!
//! Credentials belong to a login name (the `users` of the token store), so PANIC removes
//! them with the user's tokens.
//!
//! Imports: `store`; never `service`, `device` or `webauthn` (the client).

mod config;
mod error;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    AttestedPasskey, AttestedPasskeyAuthentication, AttestedPasskeyRegistration,
    AuthenticationResult, Credential, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, Uuid,
};

pub use config::{AttestationPolicy, CredentialClass, Rp, RpConfig, UserVerificationPolicy};
pub use error::RpError;

use crate::store::SqliteStore;
use crate::store::webauthn::{
    CeremonyRecord, CounterOutcome, CounterUpdate, NewCeremony, RegistrationOutcome,
    StoredCredential,
};
use crate::webauthn::b64;

/// Default lifetime of a ceremony state (WebAuthn's recommended 300 s timeout).
pub const DEFAULT_CEREMONY_TTL_SECS: i64 = 300;
/// Longest accepted login name.
pub const MAX_LOGIN_LEN: usize = 256;
/// Largest accepted response JSON (bytes).
pub const MAX_RESPONSE_LEN: usize = 64 * 1024;

const KIND_REGISTRATION: &str = "registration";
const KIND_AUTHENTICATION: &str = "authentication";

/// Unix time source (injected so tests can expire ceremonies).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the Unix epoch.
    fn unix_now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that tests set and advance.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock at `unix_now`.
    pub fn new(unix_now: i64) -> Self {
        Self(AtomicI64::new(unix_now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn unix_now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A ceremony state as kept in the store.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "class", content = "state", rename_all = "snake_case")]
enum CeremonyState {
    PasskeyRegistration(PasskeyRegistration),
    SecurityKeyRegistration(SecurityKeyRegistration),
    AttestedPasskeyRegistration(AttestedPasskeyRegistration),
    PasskeyAuthentication(PasskeyAuthentication),
    SecurityKeyAuthentication(SecurityKeyAuthentication),
    AttestedPasskeyAuthentication(AttestedPasskeyAuthentication),
}

/// A started ceremony: the options for the client and the ID to finish with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedCeremony {
    /// `PublicKeyCredentialCreationOptionsJSON` / `PublicKeyCredentialRequestOptionsJSON`
    /// (the inner `publicKey` object), ready for `PublicKeyCredential.parse*OptionsFromJSON`.
    pub options_json: String,
    /// Opaque ceremony ID (lowercase hex of 16 random bytes).
    pub ceremony_id: String,
    /// Expiry of the ceremony (Unix seconds).
    pub expires_at: i64,
}

/// A registered credential (public data only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialInfo {
    /// RP ID.
    pub rp_id: String,
    /// Login name of the owner.
    pub user_login: String,
    /// Credential ID, base64url.
    pub credential_id: String,
    /// Credential class (`passkey`, `security_key`, `attested_passkey`).
    pub class: String,
    /// Signature counter.
    pub counter: u32,
    /// Backup eligible (BE).
    pub backup_eligible: bool,
    /// Backed up (BS).
    pub backup_state: bool,
    /// Registration time (Unix seconds).
    pub created_at: i64,
    /// Last authentication (Unix seconds).
    pub last_used_at: Option<i64>,
}

/// The result of a successful authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthenticationOutcome {
    /// RP ID.
    pub rp_id: String,
    /// The authenticated user.
    pub user_login: String,
    /// Credential ID, base64url.
    pub credential_id: String,
    /// New signature counter.
    pub counter: u32,
    /// Backup eligible (BE) in this assertion.
    pub backup_eligible: bool,
    /// Backed up (BS) in this assertion.
    pub backup_state: bool,
    /// Whether the user was verified (UV flag).
    pub user_verified: bool,
}

/// The configured relying parties and their ceremonies.
#[derive(Debug)]
pub struct RelyingParties {
    store: Arc<SqliteStore>,
    rps: RwLock<HashMap<String, Arc<Rp>>>,
    clock: Arc<dyn Clock>,
    ceremony_ttl: i64,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], RpError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|err| RpError::Random(err.to_string()))?;
    Ok(bytes)
}

fn check_login(user_login: &str) -> Result<(), RpError> {
    if user_login.is_empty()
        || user_login.len() > MAX_LOGIN_LEN
        || user_login.chars().any(char::is_control)
    {
        return Err(RpError::InvalidArgument(format!(
            "login name must be 1 to {MAX_LOGIN_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> RpError {
    RpError::CorruptState(format!("{what}: {err}"))
}

impl RelyingParties {
    /// Opens the relying parties kept in the store, with the system clock.
    pub fn open(store: Arc<SqliteStore>) -> Result<Self, RpError> {
        Self::open_with_clock(store, Arc::new(SystemClock))
    }

    /// [`RelyingParties::open`] with an injected clock.
    pub fn open_with_clock(
        store: Arc<SqliteStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RpError> {
        let mut rps = HashMap::new();
        for (rp_id, json) in store.webauthn_list_rps()? {
            let config: RpConfig =
                serde_json::from_str(&json).map_err(|err| corrupt(&format!("RP {rp_id}"), err))?;
            rps.insert(rp_id, Arc::new(Rp::new(config)?));
        }
        Ok(Self {
            store,
            rps: RwLock::new(rps),
            clock,
            ceremony_ttl: DEFAULT_CEREMONY_TTL_SECS,
        })
    }

    /// Sets the ceremony lifetime (seconds, at least 1).
    pub fn set_ceremony_ttl(&mut self, secs: i64) {
        self.ceremony_ttl = secs.max(1);
    }

    /// Adds or replaces a relying party (persisted).
    pub fn configure(&self, config: RpConfig) -> Result<(), RpError> {
        let rp = Rp::new(config)?;
        let json = serde_json::to_string(&rp.config).map_err(|err| corrupt("RP config", err))?;
        self.store
            .webauthn_put_rp(&rp.config.id, &json, self.clock.unix_now())?;
        self.rps_write().insert(rp.config.id.clone(), Arc::new(rp));
        Ok(())
    }

    /// Removes a relying party with its credentials and ceremonies; false if unknown.
    pub fn remove(&self, rp_id: &str) -> Result<bool, RpError> {
        let removed = self.store.webauthn_delete_rp(rp_id)?;
        Ok(self.rps_write().remove(rp_id).is_some() || removed)
    }

    /// The configured relying parties, sorted by RP ID.
    pub fn list(&self) -> Vec<RpConfig> {
        let mut out: Vec<RpConfig> = self
            .rps_read()
            .values()
            .map(|rp| rp.config.clone())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// One relying party.
    pub fn rp(&self, rp_id: &str) -> Result<Arc<Rp>, RpError> {
        self.rps_read()
            .get(rp_id)
            .cloned()
            .ok_or_else(|| RpError::UnknownRp(rp_id.to_owned()))
    }

    fn rps_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Rp>>> {
        self.rps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn rps_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Rp>>> {
        self.rps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts registering a new credential for `user_login` at `rp_id`. The user's existing
    /// credentials there are excluded (`excludeCredentials`).
    pub fn start_registration(
        &self,
        rp_id: &str,
        user_login: &str,
        display_name: &str,
    ) -> Result<StartedCeremony, RpError> {
        check_login(user_login)?;
        if display_name.len() > MAX_LOGIN_LEN {
            return Err(RpError::InvalidArgument("display name too long".into()));
        }
        let display_name = if display_name.is_empty() {
            user_login
        } else {
            display_name
        };
        let rp = self.rp(rp_id)?;
        let handle = self
            .store
            .webauthn_user_handle(user_login, random_bytes::<16>()?)?;
        let user_id = Uuid::from_bytes(handle);
        let existing = self.store.webauthn_credentials(rp_id, user_login)?;
        let exclude: Vec<Vec<u8>> = existing.into_iter().map(|c| c.credential_id).collect();
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let webauthn = &rp.webauthn;
        let (options, state) = match rp.class {
            CredentialClass::Passkey => {
                let (ccr, state) = webauthn
                    .start_passkey_registration(user_id, user_login, display_name, exclude)
                    .map_err(RpError::Verification)?;
                (ccr.public_key, CeremonyState::PasskeyRegistration(state))
            }
            CredentialClass::SecurityKey => {
                let (ccr, state) = webauthn
                    .start_securitykey_registration(
                        user_id,
                        user_login,
                        display_name,
                        exclude,
                        rp.ca_list.clone(),
                        None,
                    )
                    .map_err(RpError::Verification)?;
                (
                    ccr.public_key,
                    CeremonyState::SecurityKeyRegistration(state),
                )
            }
            CredentialClass::AttestedPasskey => {
                let ca_list = rp.ca_list.clone().unwrap_or_default();
                let (ccr, state) = webauthn
                    .start_attested_passkey_registration(
                        user_id,
                        user_login,
                        display_name,
                        exclude,
                        ca_list,
                        None,
                    )
                    .map_err(RpError::Verification)?;
                (
                    ccr.public_key,
                    CeremonyState::AttestedPasskeyRegistration(state),
                )
            }
        };
        let options_json =
            serde_json::to_string(&options).map_err(|err| corrupt("creation options", err))?;
        self.keep_ceremony(rp_id, user_login, KIND_REGISTRATION, &state, options_json)
    }

    /// Starts authenticating `user_login` at `rp_id` with the user's credentials there.
    pub fn start_authentication(
        &self,
        rp_id: &str,
        user_login: &str,
    ) -> Result<StartedCeremony, RpError> {
        check_login(user_login)?;
        let rp = self.rp(rp_id)?;
        let stored = self.store.webauthn_credentials(rp_id, user_login)?;
        if stored.is_empty() {
            return Err(RpError::NoCredentials {
                rp_id: rp_id.to_owned(),
                user: user_login.to_owned(),
            });
        }
        let mut credentials = Vec::with_capacity(stored.len());
        for row in &stored {
            credentials.push(credential_of(row)?);
        }
        let webauthn = &rp.webauthn;
        let (options, state) = match rp.class {
            CredentialClass::Passkey => {
                let keys: Vec<Passkey> = credentials.into_iter().map(Passkey::from).collect();
                let (rcr, state) = webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(RpError::Verification)?;
                (rcr.public_key, CeremonyState::PasskeyAuthentication(state))
            }
            CredentialClass::SecurityKey => {
                let keys: Vec<SecurityKey> =
                    credentials.into_iter().map(SecurityKey::from).collect();
                let (rcr, state) = webauthn
                    .start_securitykey_authentication(&keys)
                    .map_err(RpError::Verification)?;
                (
                    rcr.public_key,
                    CeremonyState::SecurityKeyAuthentication(state),
                )
            }
            CredentialClass::AttestedPasskey => {
                let keys: Vec<AttestedPasskey> =
                    credentials.into_iter().map(AttestedPasskey::from).collect();
                let (rcr, state) = webauthn
                    .start_attested_passkey_authentication(&keys)
                    .map_err(RpError::Verification)?;
                (
                    rcr.public_key,
                    CeremonyState::AttestedPasskeyAuthentication(state),
                )
            }
        };
        let options_json =
            serde_json::to_string(&options).map_err(|err| corrupt("request options", err))?;
        self.keep_ceremony(rp_id, user_login, KIND_AUTHENTICATION, &state, options_json)
    }

    fn keep_ceremony(
        &self,
        rp_id: &str,
        user_login: &str,
        kind: &str,
        state: &CeremonyState,
        options_json: String,
    ) -> Result<StartedCeremony, RpError> {
        // Hex, not base64url: an ID that began with '-' read as an option on a command line.
        let ceremony_id = data_encoding::HEXLOWER.encode(&random_bytes::<16>()?);
        let now = self.clock.unix_now();
        let expires_at = now.saturating_add(self.ceremony_ttl);
        let state = serde_json::to_string(state).map_err(|err| corrupt("ceremony state", err))?;
        self.store.webauthn_put_ceremony(
            NewCeremony {
                ceremony_id: ceremony_id.clone(),
                rp_id: rp_id.to_owned(),
                user_login: user_login.to_owned(),
                kind: kind.to_owned(),
                state,
                expires_at,
            },
            now,
        )?;
        Ok(StartedCeremony {
            options_json,
            ceremony_id,
            expires_at,
        })
    }

    /// Reads a live ceremony of the expected kind; an expired one is discarded.
    fn load_ceremony(
        &self,
        ceremony_id: &str,
        expected: &'static str,
    ) -> Result<(CeremonyRecord, CeremonyState, Arc<Rp>), RpError> {
        if ceremony_id.is_empty() || ceremony_id.len() > 64 {
            return Err(RpError::UnknownCeremony);
        }
        let record = self
            .store
            .webauthn_ceremony(ceremony_id)?
            .ok_or(RpError::UnknownCeremony)?;
        if record.expires_at <= self.clock.unix_now() {
            self.store.webauthn_discard_ceremony(ceremony_id)?;
            return Err(RpError::CeremonyExpired);
        }
        if record.kind != expected {
            return Err(RpError::WrongCeremony {
                expected,
                found: record.kind,
            });
        }
        let state: CeremonyState =
            serde_json::from_str(&record.state).map_err(|err| corrupt("ceremony state", err))?;
        let rp = match self.rp(&record.rp_id) {
            Ok(rp) => rp,
            Err(err) => {
                self.store.webauthn_discard_ceremony(ceremony_id)?;
                return Err(err);
            }
        };
        Ok((record, state, rp))
    }

    /// Consumes the ceremony after a failed verification and returns `err`.
    fn fail<T>(&self, ceremony_id: &str, err: RpError) -> Result<T, RpError> {
        if self.store.webauthn_discard_ceremony(ceremony_id)? {
            Err(err)
        } else {
            // Someone else took it meanwhile: to them it was single use, to us unknown.
            Err(RpError::UnknownCeremony)
        }
    }

    /// Finishes a registration with the client's `RegistrationResponseJSON`.
    pub fn finish_registration(
        &self,
        ceremony_id: &str,
        response_json: &str,
    ) -> Result<CredentialInfo, RpError> {
        let (record, state, rp) = self.load_ceremony(ceremony_id, KIND_REGISTRATION)?;
        let response: RegisterPublicKeyCredential = match parse_response(response_json) {
            Ok(response) => response,
            Err(err) => return self.fail(ceremony_id, err),
        };
        let webauthn = &rp.webauthn;
        let verified = match &state {
            CeremonyState::PasskeyRegistration(state) => webauthn
                .finish_passkey_registration(&response, state)
                .map(|key| (Credential::from(key), CredentialClass::Passkey)),
            CeremonyState::SecurityKeyRegistration(state) => webauthn
                .finish_securitykey_registration(&response, state)
                .map(|key| (Credential::from(key), CredentialClass::SecurityKey)),
            CeremonyState::AttestedPasskeyRegistration(state) => webauthn
                .finish_attested_passkey_registration(&response, state)
                .map(|key| (Credential::from(key), CredentialClass::AttestedPasskey)),
            _ => {
                return self.fail(
                    ceremony_id,
                    RpError::CorruptState("registration ceremony holds another state".into()),
                );
            }
        };
        let (credential, class) = match verified {
            Ok(done) => done,
            Err(err) => return self.fail(ceremony_id, RpError::Verification(err)),
        };
        let now = self.clock.unix_now();
        let row = StoredCredential {
            rp_id: record.rp_id.clone(),
            credential_id: credential.cred_id.to_vec(),
            user_login: record.user_login.clone(),
            kind: class.as_str().to_owned(),
            credential: serde_json::to_string(&credential)
                .map_err(|err| corrupt("credential", err))?,
            counter: credential.counter,
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
            created_at: now,
            last_used_at: None,
        };
        match self
            .store
            .webauthn_commit_registration(ceremony_id, row.clone())?
        {
            RegistrationOutcome::Stored => Ok(info_of(&row)),
            RegistrationOutcome::CeremonyGone => Err(RpError::UnknownCeremony),
            RegistrationOutcome::Duplicate => Err(RpError::CredentialExists),
        }
    }

    /// Finishes an authentication with the client's `AuthenticationResponseJSON`.
    pub fn finish_authentication(
        &self,
        ceremony_id: &str,
        response_json: &str,
    ) -> Result<AuthenticationOutcome, RpError> {
        let (record, state, rp) = self.load_ceremony(ceremony_id, KIND_AUTHENTICATION)?;
        let response: PublicKeyCredential = match parse_response(response_json) {
            Ok(response) => response,
            Err(err) => return self.fail(ceremony_id, err),
        };
        let webauthn = &rp.webauthn;
        let verified: Result<AuthenticationResult, _> = match &state {
            CeremonyState::PasskeyAuthentication(state) => {
                webauthn.finish_passkey_authentication(&response, state)
            }
            CeremonyState::SecurityKeyAuthentication(state) => {
                webauthn.finish_securitykey_authentication(&response, state)
            }
            CeremonyState::AttestedPasskeyAuthentication(state) => {
                webauthn.finish_attested_passkey_authentication(&response, state)
            }
            _ => {
                return self.fail(
                    ceremony_id,
                    RpError::CorruptState("authentication ceremony holds another state".into()),
                );
            }
        };
        let result = match verified {
            Ok(result) => result,
            Err(err) => return self.fail(ceremony_id, RpError::Verification(err)),
        };
        let credential_id = result.cred_id().to_vec();
        let outcome = self.store.webauthn_commit_authentication(CounterUpdate {
            ceremony_id: ceremony_id.to_owned(),
            rp_id: record.rp_id.clone(),
            credential_id: credential_id.clone(),
            user_login: record.user_login.clone(),
            counter: result.counter(),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            now: self.clock.unix_now(),
        })?;
        match outcome {
            CounterOutcome::Accepted { .. } => Ok(AuthenticationOutcome {
                rp_id: record.rp_id,
                user_login: record.user_login,
                credential_id: b64::encode(&credential_id),
                counter: result.counter(),
                backup_eligible: result.backup_eligible(),
                backup_state: result.backup_state(),
                user_verified: result.user_verified(),
            }),
            CounterOutcome::CeremonyGone => Err(RpError::UnknownCeremony),
            CounterOutcome::CredentialGone => Err(RpError::CredentialRevoked),
            CounterOutcome::UserLocked => Err(RpError::UserLocked(record.user_login)),
            CounterOutcome::CounterRegression { stored, received } => {
                Err(RpError::CounterRegression { stored, received })
            }
            CounterOutcome::BackupEligibilityLost => Err(RpError::BackupEligibilityLost),
        }
    }

    /// The credentials of a user at an RP.
    pub fn credentials(
        &self,
        rp_id: &str,
        user_login: &str,
    ) -> Result<Vec<CredentialInfo>, RpError> {
        Ok(self
            .store
            .webauthn_credentials(rp_id, user_login)?
            .iter()
            .map(info_of)
            .collect())
    }

    /// Deletes one credential (ID in base64url); false when it did not exist.
    pub fn delete_credential(&self, rp_id: &str, credential_id: &str) -> Result<bool, RpError> {
        let id = b64::decode(credential_id)
            .map_err(|err| RpError::InvalidArgument(format!("credential ID: {err}")))?;
        Ok(self.store.webauthn_delete_credential(rp_id, &id)?)
    }

    /// Drops expired ceremony states; returns how many.
    pub fn purge_expired(&self) -> Result<u64, RpError> {
        Ok(self
            .store
            .webauthn_purge_ceremonies(self.clock.unix_now())?)
    }

    /// [`RelyingParties::start_registration`] on a blocking thread, for async callers
    /// (the store's durable commit blocks).
    pub async fn start_registration_async(
        self: &Arc<Self>,
        rp_id: String,
        user_login: String,
        display_name: String,
    ) -> Result<StartedCeremony, RpError> {
        let this = self.clone();
        blocking(move || this.start_registration(&rp_id, &user_login, &display_name)).await
    }

    /// [`RelyingParties::finish_registration`] on a blocking thread.
    pub async fn finish_registration_async(
        self: &Arc<Self>,
        ceremony_id: String,
        response_json: String,
    ) -> Result<CredentialInfo, RpError> {
        let this = self.clone();
        blocking(move || this.finish_registration(&ceremony_id, &response_json)).await
    }

    /// [`RelyingParties::start_authentication`] on a blocking thread.
    pub async fn start_authentication_async(
        self: &Arc<Self>,
        rp_id: String,
        user_login: String,
    ) -> Result<StartedCeremony, RpError> {
        let this = self.clone();
        blocking(move || this.start_authentication(&rp_id, &user_login)).await
    }

    /// [`RelyingParties::finish_authentication`] on a blocking thread.
    pub async fn finish_authentication_async(
        self: &Arc<Self>,
        ceremony_id: String,
        response_json: String,
    ) -> Result<AuthenticationOutcome, RpError> {
        let this = self.clone();
        blocking(move || this.finish_authentication(&ceremony_id, &response_json)).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RpError> + Send + 'static,
) -> Result<T, RpError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| RpError::Internal(format!("blocking task: {err}")))?
}

fn parse_response<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, RpError> {
    if json.len() > MAX_RESPONSE_LEN {
        return Err(RpError::MalformedResponse(format!(
            "{} bytes, more than {MAX_RESPONSE_LEN}",
            json.len()
        )));
    }
    serde_json::from_str(json).map_err(|err| RpError::MalformedResponse(err.to_string()))
}

/// The webauthn-rs credential of a row, with the counter and flags of their own columns.
fn credential_of(row: &StoredCredential) -> Result<Credential, RpError> {
    let mut credential: Credential =
        serde_json::from_str(&row.credential).map_err(|err| corrupt("credential", err))?;
    credential.counter = row.counter;
    credential.backup_eligible = row.backup_eligible;
    credential.backup_state = row.backup_state;
    Ok(credential)
}

fn info_of(row: &StoredCredential) -> CredentialInfo {
    CredentialInfo {
        rp_id: row.rp_id.clone(),
        user_login: row.user_login.clone(),
        credential_id: b64::encode(&row.credential_id),
        class: row.kind.clone(),
        counter: row.counter,
        backup_eligible: row.backup_eligible,
        backup_state: row.backup_state,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
    }
}
