//! The software security key: its state, persistence, and the controls tests use.
//! The CTAP2 command handlers are in `ctap2_handler.rs`, CTAP1/U2F in `u2f.rs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::authenticator::attestation::AttestationMaterial;
use crate::authenticator::credential::{self, CredProtect, Credential, MasterKeys, UserInfo};
use crate::authenticator::keys::{self, OsRandom, RandomSource, bytes_serde};
use crate::authenticator::pin::{PinRecord, PinState};
use crate::authenticator::presence::VirtualPresence;
use crate::authenticator::{
    AuthnError, CounterMode, CredentialVault, MemoryVault, PresencePolicy, SoftKeyOptions,
};
use crate::secret::Secret;

/// Reset is allowed only this long after power-up (CTAP 2.1 §6.6).
pub const RESET_WINDOW: Duration = Duration::from_secs(10);
/// The serialized large-blob array of a fresh key: an empty CBOR array and LEFT(SHA-256, 16)
/// of it (CTAP 2.1 §6.10.2).
pub const EMPTY_LARGE_BLOB_ARRAY: [u8; 17] = [
    0x80, 0x76, 0xbe, 0x8b, 0x52, 0x8d, 0x00, 0x75, 0xf7, 0xaa, 0xe9, 0x8d, 0x6f, 0xa5, 0x7a, 0x6d,
    0x3c,
];
const STATE_VERSION: u32 = 1;

/// What is persisted in the vault.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SoftKeyState {
    pub version: u32,
    #[serde(with = "bytes_serde::secret")]
    pub master_secret: Secret<Vec<u8>>,
    pub attestation: AttestationMaterial,
    pub credentials: Vec<Credential>,
    pub global_counter: u32,
    pub next_created: u64,
    pub pin: PinRecord,
    pub always_uv: bool,
    #[serde(with = "bytes_serde")]
    pub large_blob: Vec<u8>,
    /// Enterprise attestation enabled by authenticatorConfig (the "ep" option); reset clears it.
    #[serde(default)]
    pub ep_enabled: bool,
}

/// The UP/UV outcome of the last MakeCredential, GetAssertion or U2F operation (test view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastOperation {
    /// User presence was confirmed.
    pub user_present: bool,
    /// User verification was performed.
    pub user_verified: bool,
}

/// Test controls of a key: tampering and result overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestControls {
    /// Sign assertions and attestations over altered data, so relying parties must reject them.
    pub force_bad_signature: bool,
    /// A built-in user-verification method whose result the test chooses (`None`: UV only through
    /// the PIN; `Some(result)`: `uv` is reported in GetInfo and `options.uv` gets this result).
    pub builtin_uv: Option<bool>,
}

/// Options a test gives to [`SoftKey::inject_credential`].
#[derive(Debug, Clone)]
pub struct InjectCredential {
    /// Relying party ID.
    pub rp_id: String,
    /// Credential ID (random 32 bytes if `None`).
    pub id: Option<Vec<u8>>,
    /// P-256 private scalar (generated if `None`).
    pub private_key: Option<Secret<[u8; 32]>>,
    /// User entity (required for discoverable credentials).
    pub user: Option<UserInfo>,
    /// Discoverable.
    pub discoverable: bool,
    /// Initial signature counter.
    pub sign_count: u32,
    /// credProtect level.
    pub cred_protect: CredProtect,
    /// credBlob.
    pub cred_blob: Option<Vec<u8>>,
}

impl InjectCredential {
    /// A discoverable credential for `rp_id` and user handle `user_id` with generated key and ID.
    pub fn discoverable(rp_id: &str, user_id: &[u8]) -> Self {
        Self {
            rp_id: rp_id.to_owned(),
            id: None,
            private_key: None,
            user: Some(UserInfo {
                id: user_id.to_vec(),
                name: None,
                display_name: None,
            }),
            discoverable: true,
            sign_count: 0,
            cred_protect: CredProtect::UvOptional,
            cred_blob: None,
        }
    }
}

/// A FIDO2 / U2F software security key.
#[derive(Debug)]
pub struct SoftKey {
    pub(crate) options: SoftKeyOptions,
    pub(crate) state: SoftKeyState,
    /// Keys derived from `state.master_secret` (kept in step by [`SoftKey::replace_state`]).
    pub(crate) master_keys: MasterKeys,
    pub(crate) pin: PinState,
    pub(crate) vault: Box<dyn CredentialVault>,
    pub(crate) rng: Box<dyn RandomSource>,
    pub(crate) power_up: Instant,
    pub(crate) controls: TestControls,
    pub(crate) last: LastOperation,
    /// Volatile protocol state (key agreement keys, GetNextAssertion, enumerations).
    pub(crate) session: crate::authenticator::ctap2_handler::Session,
}

impl SoftKey {
    /// A key with in-memory state and the OS random source.
    pub fn new(options: SoftKeyOptions) -> Result<Self, AuthnError> {
        Self::with_vault(
            options,
            Box::new(MemoryVault::new()),
            Box::new(OsRandom),
            Instant::now(),
        )
    }

    /// A key whose state lives in `vault` (loaded if present, else created and stored),
    /// powered up at `now`.
    pub fn with_vault(
        options: SoftKeyOptions,
        mut vault: Box<dyn CredentialVault>,
        mut rng: Box<dyn RandomSource>,
        now: Instant,
    ) -> Result<Self, AuthnError> {
        options.validate()?;
        let loaded = match vault.load()? {
            Some(bytes) => Some(
                ciborium::from_reader::<SoftKeyState, _>(bytes.expose_secret().as_slice())
                    .map_err(|e| AuthnError::BadState(e.to_string()))?,
            ),
            None => None,
        };
        let fresh = loaded.is_none();
        let mut regenerated = false;
        let state = match loaded {
            Some(mut state) if state.version == STATE_VERSION => {
                // The batch certificate names the AAGUID: a key restarted with another
                // AAGUID gets new attestation material, so authData and certificate agree.
                if state.attestation.aaguid != options.aaguid {
                    state.attestation =
                        AttestationMaterial::generate(options.aaguid, rng.as_mut())?;
                    regenerated = true;
                }
                state
            }
            Some(state) => {
                return Err(AuthnError::BadState(format!(
                    "unknown state version {}",
                    state.version
                )));
            }
            None => Self::fresh_state(&options, rng.as_mut())?,
        };
        let pin = PinState::new(state.pin.clone(), rng.as_mut(), now);
        let mut key = Self {
            session: crate::authenticator::ctap2_handler::Session::new(rng.as_mut()),
            options,
            master_keys: master_keys(&state),
            state,
            pin,
            vault,
            rng,
            power_up: now,
            controls: TestControls::default(),
            last: LastOperation::default(),
        };
        if fresh && let Some(pin) = key.options.initial_pin.clone() {
            key.pin.preset_pin(&pin).map_err(|_| {
                AuthnError::BadOption("initial PIN rejected by the PIN policy".into())
            })?;
        }
        if fresh || regenerated {
            key.persist()?;
        }
        Ok(key)
    }

    fn fresh_state(
        options: &SoftKeyOptions,
        rng: &mut dyn RandomSource,
    ) -> Result<SoftKeyState, AuthnError> {
        Ok(SoftKeyState {
            version: STATE_VERSION,
            master_secret: Secret::new(keys::random_array::<32>(rng)?.to_vec()),
            attestation: AttestationMaterial::generate(options.aaguid, rng)?,
            credentials: Vec::new(),
            global_counter: 0,
            next_created: 1,
            pin: PinRecord::new(options.min_pin_length),
            always_uv: options.always_uv,
            large_blob: EMPTY_LARGE_BLOB_ARRAY.to_vec(),
            ep_enabled: false,
        })
    }

    /// Writes the state to the vault. If the vault refuses, the command fails and the key goes
    /// back to the last state the vault holds, so that what it answers later never runs ahead
    /// of what survives a restart.
    pub(crate) fn persist(&mut self) -> Result<(), AuthnError> {
        self.state.pin = self.pin.record.clone();
        let mut out = Secret::new(Vec::new());
        ciborium::into_writer(&self.state, out.expose_secret_mut())
            .map_err(|e| AuthnError::BadState(e.to_string()))?;
        let stored = self.vault.store(out.expose_secret());
        if stored.is_err() {
            self.reload_durable_state();
        }
        stored
    }

    /// Replaces the persistent state with the vault's (after a failed store). Keeps the state
    /// in memory when the vault has none or cannot be read.
    fn reload_durable_state(&mut self) {
        let Ok(Some(bytes)) = self.vault.load() else {
            return;
        };
        match ciborium::from_reader::<SoftKeyState, _>(bytes.expose_secret().as_slice()) {
            Ok(state) if state.version == STATE_VERSION => {
                self.pin.record = state.pin.clone();
                self.replace_state(state);
            }
            _ => {}
        }
    }

    /// Whether the state lives in memory only (requests then never block on I/O).
    pub fn vault_in_memory(&self) -> bool {
        self.vault.in_memory()
    }

    /// The creation options.
    pub fn options(&self) -> &SoftKeyOptions {
        &self.options
    }

    /// The attestation CA certificate (DER), the trust anchor for `packed` attestation.
    pub fn attestation_ca_der(&self) -> &[u8] {
        &self.state.attestation.ca_cert
    }

    /// The batch attestation certificate (DER).
    pub fn attestation_cert_der(&self) -> &[u8] {
        &self.state.attestation.batch_cert
    }

    /// Replaces the persistent state, and the keys derived from its master secret with it.
    fn replace_state(&mut self, state: SoftKeyState) {
        self.master_keys = master_keys(&state);
        self.state = state;
    }

    /// A virtual power cycle (unplug and replug): volatile state is lost, the PIN mismatch
    /// count is cleared, a new reset window opens at `now`.
    pub fn power_cycle(&mut self, now: Instant) {
        self.power_up = now;
        self.pin.power_cycle(self.rng.as_mut(), now);
        self.session = crate::authenticator::ctap2_handler::Session::new(self.rng.as_mut());
    }

    /// Whether authenticatorReset is allowed at `now` (within 10 s of power-up).
    pub fn in_reset_window(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.power_up) <= RESET_WINDOW
    }

    /// Wipes credentials, PIN, large blobs and the master secret (authenticatorReset after its
    /// checks); attestation material stays (it belongs to the device, not the user).
    pub(crate) fn wipe(&mut self, now: Instant) -> Result<(), AuthnError> {
        let mut state = Self::fresh_state(&self.options, self.rng.as_mut())?;
        state.attestation = self.state.attestation.clone();
        self.replace_state(state);
        self.pin = PinState::new(self.state.pin.clone(), self.rng.as_mut(), now);
        self.session = crate::authenticator::ctap2_handler::Session::new(self.rng.as_mut());
        self.persist()
    }

    // ---- test controls ----

    /// Test controls (read).
    pub fn controls(&self) -> TestControls {
        self.controls
    }

    /// Replaces the test controls.
    pub fn set_controls(&mut self, controls: TestControls) {
        self.controls = controls;
    }

    /// Makes every following signature invalid (or valid again).
    pub fn set_force_bad_signature(&mut self, on: bool) {
        self.controls.force_bad_signature = on;
    }

    /// The UP/UV outcome of the last operation.
    pub fn last_operation(&self) -> LastOperation {
        self.last
    }

    /// pinRetries now.
    pub fn pin_retries(&self) -> u8 {
        self.pin.retries()
    }

    /// Whether a PIN is set.
    pub fn pin_is_set(&self) -> bool {
        self.pin.is_set()
    }

    /// The global signature counter.
    pub fn global_counter(&self) -> u32 {
        self.state.global_counter
    }

    /// The stored credentials (discoverable and injected), newest last.
    pub fn credentials(&self) -> &[Credential] {
        &self.state.credentials
    }

    /// Adds a credential (a test control). Fails on a duplicate ID, an invalid key, or a full
    /// resident store.
    pub fn inject_credential(&mut self, spec: InjectCredential) -> Result<Credential, AuthnError> {
        let private_key = match spec.private_key {
            Some(k) => k,
            None => keys::new_private_key(self.rng.as_mut())?,
        };
        keys::secret_key(private_key.expose_secret())?;
        let id = match spec.id {
            Some(id) if !id.is_empty() && id.len() <= 1023 => id,
            Some(_) => {
                return Err(AuthnError::BadCredential(
                    "credential ID length must be 1..=1023".into(),
                ));
            }
            None => keys::random_array::<32>(self.rng.as_mut())?.to_vec(),
        };
        if self.state.credentials.iter().any(|c| c.id == id) {
            return Err(AuthnError::BadCredential("duplicate credential ID".into()));
        }
        if spec.discoverable && spec.user.is_none() {
            return Err(AuthnError::BadCredential(
                "a discoverable credential needs a user".into(),
            ));
        }
        if spec.discoverable && self.resident_count() >= self.options.max_resident {
            return Err(AuthnError::BadCredential(
                "resident credential store is full".into(),
            ));
        }
        if spec.cred_blob.as_ref().is_some_and(|b| b.len() > 32) {
            return Err(AuthnError::BadCredential(
                "credBlob longer than 32 bytes".into(),
            ));
        }
        let cred = Credential {
            id,
            rp_id: spec.rp_id,
            rp_name: None,
            user: spec.user,
            discoverable: spec.discoverable,
            private_key: Secret::new(private_key.expose_secret().to_vec()),
            cred_protect: spec.cred_protect,
            hmac_secret: true,
            cred_random_uv: Secret::new(keys::random_array::<32>(self.rng.as_mut())?.to_vec()),
            cred_random_no_uv: Secret::new(keys::random_array::<32>(self.rng.as_mut())?.to_vec()),
            cred_blob: spec.cred_blob,
            large_blob_key: None,
            sign_count: spec.sign_count,
            created: self.next_created(),
        };
        self.state.credentials.push(cred.clone());
        self.persist()?;
        Ok(cred)
    }

    /// Removes a stored credential by ID; true if one was removed.
    pub fn remove_credential(&mut self, id: &[u8]) -> Result<bool, AuthnError> {
        let before = self.state.credentials.len();
        self.state.credentials.retain(|c| c.id != id);
        let removed = self.state.credentials.len() != before;
        if removed {
            self.persist()?;
        }
        Ok(removed)
    }

    /// Sets the PIN directly (a test control; also clears forcePINChange and restores retries).
    pub fn set_pin_for_test(&mut self, pin: &str) -> Result<(), AuthnError> {
        self.pin
            .preset_pin(pin)
            .map_err(|f| AuthnError::BadOption(format!("PIN rejected: {f:?}")))?;
        self.persist()
    }

    pub(crate) fn next_created(&mut self) -> u64 {
        let n = self.state.next_created;
        self.state.next_created += 1;
        n
    }

    pub(crate) fn resident_count(&self) -> usize {
        self.state
            .credentials
            .iter()
            .filter(|c| c.discoverable)
            .count()
    }

    /// Finds the credential `id` for `rp_id`: stored ones first, then a wrapped ID.
    pub(crate) fn find_credential(&self, rp_id: &str, id: &[u8]) -> Option<Credential> {
        if let Some(c) = self
            .state
            .credentials
            .iter()
            .find(|c| c.id == id && c.rp_id == rp_id)
        {
            return Some(c.clone());
        }
        let rp_id_hash = keys::sha256(rp_id.as_bytes());
        credential::unwrap_credential_id(&self.master_keys, &rp_id_hash, id)
            .map(|payload| Credential::from_wrapped(&self.master_keys, rp_id, id, payload))
    }

    /// Finds a credential by rpIdHash only (U2F, where the rpId string is unknown).
    pub(crate) fn find_credential_by_hash(
        &self,
        rp_id_hash: &[u8; 32],
        id: &[u8],
    ) -> Option<Credential> {
        if let Some(c) = self
            .state
            .credentials
            .iter()
            .find(|c| c.id == id && &c.rp_id_hash() == rp_id_hash)
        {
            return Some(c.clone());
        }
        credential::unwrap_credential_id(&self.master_keys, rp_id_hash, id)
            .map(|payload| Credential::from_wrapped(&self.master_keys, "", id, payload))
    }

    /// Advances the signature counter for `cred` and returns the new value.
    pub(crate) fn bump_counter(&mut self, cred: &Credential) -> u32 {
        if self.options.counter == CounterMode::PerCredential
            && let Some(stored) = self.state.credentials.iter_mut().find(|c| c.id == cred.id)
        {
            stored.sign_count = stored.sign_count.wrapping_add(1);
            return stored.sign_count;
        }
        self.state.global_counter = self.state.global_counter.wrapping_add(1);
        self.state.global_counter
    }

    /// ES256 signature over the concatenation of `parts`, or a deliberately broken one (over
    /// the message with 0xff appended) when the test control says so.
    pub(crate) fn sign(&self, key: &p256::SecretKey, parts: &[&[u8]]) -> Vec<u8> {
        if self.controls.force_bad_signature {
            keys::sign_der_parts(key, &[parts.concat().as_slice(), &[0xff]])
        } else {
            keys::sign_der_parts(key, parts)
        }
    }
}

/// The keys derived from the master secret of `state` (a master secret that is not 32 bytes
/// long counts as 32 zero bytes).
fn master_keys(state: &SoftKeyState) -> MasterKeys {
    let mut master = Secret::new([0u8; 32]);
    let stored = state.master_secret.expose_secret();
    if stored.len() == 32 {
        master.expose_secret_mut().copy_from_slice(stored);
    }
    MasterKeys::derive(master.expose_secret())
}

/// A key shared between `serve()` tasks and controllers, with its presence source.
#[derive(Debug, Clone)]
pub struct SharedSoftKey {
    key: Arc<Mutex<SoftKey>>,
    presence: VirtualPresence,
}

impl SharedSoftKey {
    /// Shares `key` with presence decided by `policy`.
    pub fn new(key: SoftKey, policy: PresencePolicy) -> Self {
        Self {
            key: Arc::new(Mutex::new(key)),
            presence: VirtualPresence::new(policy),
        }
    }

    /// The presence source (policy + approval handle).
    pub fn presence(&self) -> &VirtualPresence {
        &self.presence
    }

    /// Runs `f` with the key locked. Returns `None` if a panic poisoned the lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut SoftKey) -> T) -> Option<T> {
        self.key.lock().ok().map(|mut k| f(&mut k))
    }

    /// Like [`Self::with`], but `None` at once if the key is busy (another connection's
    /// request holds it) instead of waiting.
    pub fn try_with<T>(&self, f: impl FnOnce(&mut SoftKey) -> T) -> Option<T> {
        self.key.try_lock().ok().map(|mut k| f(&mut k))
    }

    /// A virtual power cycle now.
    pub fn power_cycle(&self) {
        self.with(|k| k.power_cycle(Instant::now()));
    }
}
