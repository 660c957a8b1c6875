//! Software keys that survive a restart (`Virtual.Create` with `"persist": true`).
//!
//! A persistent key keeps its state in the store ([`crate::store::VirtualKeyStore`], table
//! `virtual_keys`) through the soft key's own persistence seam, [`CredentialVault`]: the key
//! calls `store()` after every change of its persistent state (MakeCredential, signature
//! counter, PIN set/change, PIN retries, reset, credential delete/update, large-blob write)
//! and before it answers the host. [`StoreVault`] seals that state under the store key and
//! commits it through the store's group-commit writer (one fsync shared by every key writing
//! at that moment), compare-and-set on the row's generation. A failed write fails the command
//! with CTAP1_ERR_OTHER: no update is lost silently.
//!
//! At start, [`restore`] serves every stored key again (same owner, name, options,
//! credentials, object path) before keygated claims its bus name. A row that cannot be restored
//! (its state does not open under the store key, malformed options, a foreign path) is logged
//! and skipped, and kept in the database for inspection: one user's broken test key must not
//! stop token checks and WebAuthn for everybody. A store key that does not open the database
//! at all stops keygated earlier, with "the store key does not open this database".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use zbus::OwnedObjectPath;

use super::Shared;
use super::devices::{DeviceHandle, DeviceKind};
use super::error::{BusError, ServiceError};
use super::names::DEVICES_PATH;
use super::virtual_keys::start_key;
use super::virtual_transport::TransportOptions;
use crate::authenticator::keys::OsRandom;
use crate::authenticator::{
    AttestationKind, AuthnError, CounterMode, CredentialVault, CtapVersion, MemoryVault,
    PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions, format_aaguid,
};
use crate::secret::Secret;
use crate::store::{NewVirtualKey, StoreError, VirtualKeyRecord, VirtualKeyStore};

/// Where a starting key lives: its object path and the vault holding its state.
#[derive(Debug)]
pub struct KeySlot {
    /// The Device object path.
    pub path: OwnedObjectPath,
    /// The key's state: in memory, or a row of the store.
    pub vault: Box<dyn CredentialVault>,
}

/// What a key is started with: its options, presence policy and transports.
#[derive(Debug, Clone)]
pub struct KeyConfig {
    /// The soft key's options.
    pub options: SoftKeyOptions,
    /// User-presence behaviour.
    pub policy: PresencePolicy,
    /// Socket and uhid transports besides the Device object.
    pub transports: TransportOptions,
}

/// A stored key started again at keygated's start (not yet registered or served).
#[derive(Debug)]
pub struct RestoredKey {
    /// The started key.
    pub handle: Arc<DeviceHandle>,
    /// The transports it was created with (the caller attaches them).
    pub transports: TransportOptions,
}

/// The persistent software keys of this keygated: the store, and which object path is which
/// stored key.
#[derive(Debug)]
pub struct PersistentKeys {
    store: Arc<dyn VirtualKeyStore>,
    rows_by_path: Mutex<HashMap<String, Arc<KeyRow>>>,
}

impl PersistentKeys {
    /// Persistent keys kept in `store`.
    pub fn new(store: Arc<dyn VirtualKeyStore>) -> Self {
        Self {
            store,
            rows_by_path: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, path: &str, row: Arc<KeyRow>) {
        if let Ok(mut map) = self.rows_by_path.lock() {
            map.insert(path.to_owned(), row);
        }
    }

    fn row_of(&self, path: &str) -> Option<Arc<KeyRow>> {
        self.rows_by_path
            .lock()
            .ok()
            .and_then(|map| map.get(path).cloned())
    }

    /// Deletes the stored row (and secrets) of the key at `path`, if it is a persistent key.
    /// Called by `Virtual.Remove` before the key stops; on failure the key stays.
    pub async fn forget(&self, path: &str) -> Result<(), BusError> {
        let Some(row) = self.row_of(path) else {
            return Ok(());
        };
        let id = row.id.clone();
        blocking(move || row.store.delete_virtual_key(&row.id))
            .await?
            .map_err(|e| store_failed("removing the software key", &e))?;
        if let Ok(mut map) = self.rows_by_path.lock() {
            map.remove(path);
        }
        tracing::info!(path, id = %id, "persistent software key deleted from the store");
        Ok(())
    }

    /// Sets the presence policy of `key`, the key at `path` (`Virtual.SetPresence`). A
    /// persistent key's policy is first saved in its stored options, durable before this returns
    /// (written off the async workers), so that the key comes back with it after a restart; if
    /// that fails, the error is returned and the key keeps its policy.
    pub async fn set_presence(
        &self,
        path: &str,
        key: &SharedSoftKey,
        policy: PresencePolicy,
    ) -> Result<(), BusError> {
        let key = key.clone();
        let Some(row) = self.row_of(path) else {
            key.presence().set_policy(policy);
            return Ok(());
        };
        blocking(move || {
            row.update_options(
                |stored| stored.set_presence(policy),
                || key.presence().set_policy(policy),
            )
        })
        .await?
        .map_err(|e| store_failed("saving the presence policy", &e))
    }
}

/// The creation options as stored (`virtual_keys.options`): the validated
/// [`SoftKeyOptions`] without the initial PIN (a secret, and only used at creation), plus the
/// presence policy. Restoring from these values, not from the caller's JSON, keeps a restored
/// key identical even if `Create`'s defaults change.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct StoredOptions {
    /// Layout version of this record.
    v: u32,
    ctap: CtapVersion,
    resident_keys: bool,
    client_pin: bool,
    aaguid: String,
    attestation: AttestationKind,
    max_resident: usize,
    always_uv: bool,
    counter: CounterMode,
    min_pin_length: u8,
    large_blobs: bool,
    max_large_blob: usize,
    /// maxCredentialCountInList (absent: the default).
    #[serde(default)]
    max_credential_count_in_list: Option<usize>,
    /// maxCredentialIdLength (absent: the default).
    #[serde(default)]
    max_credential_id_length: Option<usize>,
    /// Enterprise attestation capability and its vendor RP ID list (absent: not capable).
    #[serde(default)]
    enterprise_attestation: Option<Vec<String>>,
    /// `auto`, `deny` or `wait`.
    presence: String,
    /// Timeout of `wait`, in milliseconds.
    presence_timeout_ms: Option<u64>,
    /// Also served on a socket under the runtime directory.
    #[serde(default)]
    socket: bool,
    /// Also a uhid device.
    #[serde(default)]
    uhid: bool,
}

const STORED_OPTIONS_VERSION: u32 = 1;

/// The stored form of a presence policy: its name and the timeout of `wait` in milliseconds.
fn presence_fields(policy: PresencePolicy) -> (String, Option<u64>) {
    let (name, timeout_ms) = match policy {
        PresencePolicy::AutoApprove => ("auto", None),
        PresencePolicy::Deny => ("deny", None),
        PresencePolicy::WaitForApproval { timeout } => (
            "wait",
            Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        ),
    };
    (name.to_owned(), timeout_ms)
}

impl StoredOptions {
    fn new(config: &KeyConfig) -> Self {
        // Every option is named (no `..`): a new SoftKeyOptions field does not compile here
        // until it is stored, or deliberately left out as the initial PIN is (a secret, used
        // only at creation; the PIN itself lives in the sealed state). `config()` builds
        // SoftKeyOptions without `..` for the same reason.
        let SoftKeyOptions {
            ctap,
            resident_keys,
            client_pin,
            initial_pin: _,
            aaguid,
            attestation,
            max_resident,
            always_uv,
            counter,
            min_pin_length,
            large_blobs,
            max_large_blob,
            max_credential_count_in_list,
            max_credential_id_length,
            enterprise_attestation,
        } = config.options.clone();
        let (presence, presence_timeout_ms) = presence_fields(config.policy);
        Self {
            v: STORED_OPTIONS_VERSION,
            ctap,
            resident_keys,
            client_pin,
            aaguid: format_aaguid(&aaguid),
            attestation,
            max_resident,
            always_uv,
            counter,
            min_pin_length,
            large_blobs,
            max_large_blob,
            max_credential_count_in_list: Some(max_credential_count_in_list),
            max_credential_id_length: Some(max_credential_id_length),
            enterprise_attestation,
            presence,
            presence_timeout_ms,
            socket: config.transports.socket,
            uhid: config.transports.uhid,
        }
    }

    /// Replaces the presence policy (`Virtual.SetPresence` on a persistent key).
    fn set_presence(&mut self, policy: PresencePolicy) {
        (self.presence, self.presence_timeout_ms) = presence_fields(policy);
    }

    fn config(&self) -> Result<KeyConfig, String> {
        if self.v != STORED_OPTIONS_VERSION {
            return Err(format!("unknown options version {}", self.v));
        }
        let defaults = SoftKeyOptions::default();
        let options = SoftKeyOptions {
            ctap: self.ctap,
            resident_keys: self.resident_keys,
            client_pin: self.client_pin,
            initial_pin: None,
            aaguid: SoftKeyOptions::parse_aaguid(&self.aaguid).map_err(|e| e.to_string())?,
            attestation: self.attestation,
            max_resident: self.max_resident,
            always_uv: self.always_uv,
            counter: self.counter,
            min_pin_length: self.min_pin_length,
            large_blobs: self.large_blobs,
            max_large_blob: self.max_large_blob,
            max_credential_count_in_list: self
                .max_credential_count_in_list
                .unwrap_or(defaults.max_credential_count_in_list),
            max_credential_id_length: self
                .max_credential_id_length
                .unwrap_or(defaults.max_credential_id_length),
            enterprise_attestation: self.enterprise_attestation.clone(),
        };
        options.validate().map_err(|e| e.to_string())?;
        let policy = match (self.presence.as_str(), self.presence_timeout_ms) {
            ("auto", _) => PresencePolicy::AutoApprove,
            ("deny", _) => PresencePolicy::Deny,
            ("wait", timeout) => PresencePolicy::WaitForApproval {
                timeout: Duration::from_millis(timeout.unwrap_or(30_000)),
            },
            (other, _) => return Err(format!("unknown presence policy {other:?}")),
        };
        let transports = TransportOptions {
            socket: self.socket,
            uhid: self.uhid,
        };
        Ok(KeyConfig {
            options,
            policy,
            transports,
        })
    }
}

/// Where a [`StoreVault`] is in its life.
#[derive(Debug)]
enum Stage {
    /// Not stored yet: the first `store()` inserts the row (so a key that fails to start
    /// leaves nothing behind).
    New(NewVirtualKey),
    /// The row exists at this generation; `record` is the row read at start, opened by the
    /// first `load()`.
    Stored {
        generation: u64,
        record: Option<Box<VirtualKeyRecord>>,
    },
}

/// The stored row of one persistent key, shared by its [`StoreVault`] (state writes) and
/// [`PersistentKeys`] (options writes, `SetPresence`): writes to the row go one at a time, each
/// compare-and-set on the generation the previous one left.
#[derive(Debug)]
struct KeyRow {
    store: Arc<dyn VirtualKeyStore>,
    id: String,
    stage: Mutex<Stage>,
}

impl KeyRow {
    fn new(store: Arc<dyn VirtualKeyStore>, id: String, stage: Stage) -> Arc<Self> {
        Arc::new(Self {
            store,
            id,
            stage: Mutex::new(stage),
        })
    }

    /// The stage, locked. A panic while it was held may have left a stale generation: the
    /// next write's compare-and-set then fails and the key reloads, so the lock is taken back.
    fn stage(&self) -> MutexGuard<'_, Stage> {
        self.stage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rewrites the row's stored options with `change`, then runs `then` with the row still
    /// locked (so changes reach memory in the order they reach the store). Durable before
    /// `then` runs; `then` does not run if anything fails. Blocking.
    fn update_options(
        &self,
        change: impl FnOnce(&mut StoredOptions),
        then: impl FnOnce(),
    ) -> Result<(), StoreError> {
        let rewrite = |json: &str| -> Result<String, StoreError> {
            let corrupt = |e: serde_json::Error| {
                StoreError::Corrupt(format!("options of virtual key {}: {e}", self.id))
            };
            let mut stored: StoredOptions = serde_json::from_str(json).map_err(corrupt)?;
            change(&mut stored);
            serde_json::to_string(&stored).map_err(corrupt)
        };
        let mut stage = self.stage();
        match &mut *stage {
            Stage::New(key) => key.options = rewrite(&key.options)?,
            Stage::Stored { generation, .. } => {
                let record = self
                    .store
                    .virtual_key(&self.id)?
                    .ok_or_else(|| StoreError::NotFound(format!("virtual key {}", self.id)))?;
                let options = rewrite(&record.options)?;
                *generation =
                    self.store
                        .update_virtual_key_options(&self.id, *generation, &options)?;
            }
        }
        then();
        Ok(())
    }
}

/// A [`CredentialVault`] that keeps a software key's state in a row of the store, sealed
/// under the store key, each `store()` durable (group commit) before it returns.
#[derive(Debug)]
pub struct StoreVault {
    row: Arc<KeyRow>,
}

impl StoreVault {
    /// The vault of a key being created (its row is inserted by the first store).
    fn create(store: Arc<dyn VirtualKeyStore>, key: NewVirtualKey) -> Self {
        let id = key.id.clone();
        Self {
            row: KeyRow::new(store, id, Stage::New(key)),
        }
    }

    /// The vault of a stored key read at start.
    fn existing(store: Arc<dyn VirtualKeyStore>, record: VirtualKeyRecord) -> Self {
        let id = record.id.clone();
        let stage = Stage::Stored {
            generation: record.generation,
            record: Some(Box::new(record)),
        };
        Self {
            row: KeyRow::new(store, id, stage),
        }
    }

    fn failed(&self, what: &str, error: &StoreError) -> AuthnError {
        tracing::error!(id = %self.row.id, error = %error, "software key state not {what}");
        AuthnError::Vault(format!("{what} the key's state: {error}"))
    }
}

impl CredentialVault for StoreVault {
    fn load(&mut self) -> Result<Option<Secret<Vec<u8>>>, AuthnError> {
        let row = &*self.row;
        let mut stage = row.stage();
        let record = match &mut *stage {
            Stage::New(_) => return Ok(None),
            Stage::Stored { record, .. } => record.take(),
        };
        let record = match record {
            Some(record) => *record,
            None => match row.store.virtual_key(&row.id) {
                Ok(Some(record)) => record,
                Ok(None) => {
                    return Err(self.failed("loaded", &StoreError::NotFound(row.id.clone())));
                }
                Err(e) => return Err(self.failed("loaded", &e)),
            },
        };
        let state = row
            .store
            .open_virtual_key_state(&record)
            .map_err(|e| self.failed("opened", &e))?;
        *stage = Stage::Stored {
            generation: record.generation,
            record: None,
        };
        Ok(Some(state))
    }

    fn store(&mut self, state: &[u8]) -> Result<(), AuthnError> {
        let row = &*self.row;
        let mut stage = row.stage();
        let result = match &*stage {
            Stage::New(key) => row.store.insert_virtual_key(key.clone(), state),
            Stage::Stored { generation, .. } => {
                row.store
                    .update_virtual_key_state(&row.id, *generation, state)
            }
        };
        let generation = result.map_err(|e| self.failed("stored", &e))?;
        *stage = Stage::Stored {
            generation,
            record: None,
        };
        Ok(())
    }
}

fn store_failed(what: &str, error: &StoreError) -> BusError {
    tracing::error!(error = %error, "{what} failed");
    BusError::Failed(format!(
        "{what} failed: the store did not accept the change"
    ))
}

/// Runs blocking store work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BusError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BusError::Failed(format!("store task: {e}")))
}

/// Builds the key from `options` and the state in `vault` (loading it, or creating and
/// storing a fresh one) on a blocking thread: a store vault does I/O.
pub async fn open_soft_key(
    options: SoftKeyOptions,
    vault: Box<dyn CredentialVault>,
) -> Result<SoftKey, BusError> {
    blocking(move || SoftKey::with_vault(options, vault, Box::new(OsRandom), Instant::now()))
        .await?
        .map_err(|e| match e {
            AuthnError::BadOption(m) => BusError::InvalidArgs(m),
            other => BusError::Failed(format!("software key did not start: {other}")),
        })
}

/// Starts a key for `Virtual.Create`: in memory, or with `persist` in a new row of the store
/// (inserted with the key's first state; deleted again if the key does not start).
pub async fn start_created(
    shared: &Shared,
    owner: u32,
    name: String,
    config: KeyConfig,
    persist: bool,
) -> Result<Arc<DeviceHandle>, BusError> {
    let path = shared.devices.allocate_path(DeviceKind::Virtual);
    if !persist {
        let vault = Box::new(MemoryVault::new());
        let slot = KeySlot { path, vault };
        return start_key(shared, owner, name, config.options, config.policy, slot).await;
    }
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|_| BusError::Failed("random source failed".into()))?;
    let id = data_encoding::HEXLOWER.encode(&id);
    let stored = serde_json::to_string(&StoredOptions::new(&config))
        .map_err(|e| BusError::Failed(format!("options: {e}")))?;
    let store = Arc::clone(&shared.persistent.store);
    let new_key = NewVirtualKey {
        id: id.clone(),
        owner_uid: owner,
        name: name.clone(),
        path: path.to_string(),
        options: stored,
    };
    let vault = StoreVault::create(Arc::clone(&store), new_key);
    let row = Arc::clone(&vault.row);
    let slot = KeySlot {
        path,
        vault: Box::new(vault),
    };
    let started = start_key(shared, owner, name, config.options, config.policy, slot).await;
    match &started {
        Ok(handle) => shared.persistent.remember(handle.record.path.as_str(), row),
        Err(_) => {
            // The row may exist if the key stored its first state and then failed.
            let cleanup = id.clone();
            if let Ok(Err(e)) = blocking(move || store.delete_virtual_key(&cleanup)).await {
                tracing::warn!(id = %id, error = %e, "row of a failed software key not deleted");
            }
        }
    }
    started
}

/// Path counters of stored keys are below this: a tampered row must not push the registry's
/// counter (see [`reserve_paths`]) towards its end.
const MAX_PATH_INDEX: u64 = 1 << 20;

/// Gives up a key just started by [`start_created`] (its transports failed): stops it and
/// deletes its stored row, if any.
pub async fn abandon(shared: &Shared, handle: &DeviceHandle) {
    handle.stop.cancel();
    if let Err(e) = shared.persistent.forget(handle.record.path.as_str()).await {
        tracing::warn!(path = %handle.record.path, error = %e, "abandoned software key not deleted");
    }
}

/// The counter of a software key's object path (`.../devices/virtualN` → N), if it is one.
fn path_index(path: &str) -> Option<u64> {
    path.strip_prefix(DEVICES_PATH)?
        .strip_prefix('/')?
        .strip_prefix(DeviceKind::Virtual.as_str())?
        .parse()
        .ok()
        .filter(|index| *index < MAX_PATH_INDEX)
}

/// Moves the registry's path counter past every stored key's path, so a key created after the
/// restart never gets the path of a stored one (restored or not).
fn reserve_paths(shared: &Shared, records: &[VirtualKeyRecord]) {
    if let Some(highest) = records.iter().filter_map(|r| path_index(&r.path)).max() {
        shared.devices.reserve(highest);
    }
}

async fn restore_one(
    shared: &Shared,
    store: &Arc<dyn VirtualKeyStore>,
    record: VirtualKeyRecord,
) -> Result<RestoredKey, String> {
    if path_index(&record.path).is_none() {
        return Err("its object path is not a software key path".into());
    }
    let path =
        OwnedObjectPath::try_from(record.path.as_str()).map_err(|e| format!("object path: {e}"))?;
    let stored: StoredOptions =
        serde_json::from_str(&record.options).map_err(|e| format!("options: {e}"))?;
    let config = stored.config().map_err(|e| format!("options: {e}"))?;
    let (owner, name) = (record.owner_uid, record.name.clone());
    let vault = StoreVault::existing(Arc::clone(store), record);
    let row = Arc::clone(&vault.row);
    let slot = KeySlot {
        path,
        vault: Box::new(vault),
    };
    let handle = start_key(shared, owner, name, config.options, config.policy, slot)
        .await
        .map_err(|e| format!("{e}"))?;
    shared.persistent.remember(handle.record.path.as_str(), row);
    Ok(RestoredKey {
        handle,
        transports: config.transports,
    })
}

/// Starts every stored software key again (at keygated start, before the bus name is
/// claimed). Returns the started keys, not yet registered or served. A key that fails is
/// logged and skipped (its row is kept); only a store that cannot be read is an error.
pub async fn restore(shared: &Shared) -> Result<Vec<RestoredKey>, ServiceError> {
    let store = Arc::clone(&shared.persistent.store);
    let list = Arc::clone(&store);
    let records = tokio::task::spawn_blocking(move || list.list_virtual_keys())
        .await
        .map_err(|e| ServiceError::Failed(format!("store task: {e}")))?
        .map_err(|e| ServiceError::Failed(format!("stored software keys: {e}")))?;
    reserve_paths(shared, &records);
    let mut restored = Vec::with_capacity(records.len());
    for record in records {
        let (id, path, owner) = (record.id.clone(), record.path.clone(), record.owner_uid);
        match restore_one(shared, &store, record).await {
            Ok(key) => {
                tracing::info!(path = %path, uid = owner, "persistent software key restored");
                restored.push(key);
            }
            Err(reason) => tracing::error!(
                id = %id,
                path = %path,
                uid = owner,
                reason = %reason,
                "persistent software key not restored (its row is kept)"
            ),
        }
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `config` through its stored JSON form and back.
    fn round_trip(config: &KeyConfig) -> KeyConfig {
        let json = serde_json::to_string(&StoredOptions::new(config)).unwrap();
        serde_json::from_str::<StoredOptions>(&json)
            .unwrap()
            .config()
            .unwrap()
    }

    /// Moves one option away from its default.
    type SetOption = fn(&mut SoftKeyOptions);

    #[test]
    fn every_option_survives_its_stored_form() {
        // One variant per SoftKeyOptions field, each away from its default. The exhaustive
        // pattern below stops compiling when a field is added: add its variant here (and
        // store it: StoredOptions::new does not compile either).
        let SoftKeyOptions {
            ctap: _,
            resident_keys: _,
            client_pin: _,
            initial_pin: _,
            aaguid: _,
            attestation: _,
            max_resident: _,
            always_uv: _,
            counter: _,
            min_pin_length: _,
            large_blobs: _,
            max_large_blob: _,
            max_credential_count_in_list: _,
            max_credential_id_length: _,
            enterprise_attestation: _,
        } = SoftKeyOptions::default();
        let variants: [(&str, SetOption); 14] = [
            ("ctap", |o| o.ctap = CtapVersion::Fido20),
            ("resident_keys", |o| o.resident_keys = false),
            ("client_pin", |o| o.client_pin = false),
            ("aaguid", |o| o.aaguid = [0x5a; 16]),
            ("attestation", |o| {
                o.attestation = AttestationKind::SelfAttestation;
            }),
            ("max_resident", |o| o.max_resident = 3),
            ("always_uv", |o| o.always_uv = true),
            ("counter", |o| o.counter = CounterMode::PerCredential),
            ("min_pin_length", |o| o.min_pin_length = 11),
            ("large_blobs", |o| o.large_blobs = false),
            ("max_large_blob", |o| o.max_large_blob = 2048),
            ("max_credential_count_in_list", |o| {
                o.max_credential_count_in_list = 2;
            }),
            ("max_credential_id_length", |o| {
                o.max_credential_id_length = 255;
            }),
            ("enterprise_attestation", |o| {
                o.enterprise_attestation = Some(vec!["corp.example".into()]);
            }),
        ];
        let default = format!("{:?}", SoftKeyOptions::default());
        for (field, set) in variants {
            let mut options = SoftKeyOptions::default();
            set(&mut options);
            let changed = format!("{options:?}");
            assert_ne!(changed, default, "{field}: the variant changes nothing");
            let config = KeyConfig {
                options,
                policy: PresencePolicy::AutoApprove,
                transports: TransportOptions::default(),
            };
            let restored = format!("{:?}", round_trip(&config).options);
            assert_eq!(restored, changed, "{field} is not kept by StoredOptions");
        }

        let wait = PresencePolicy::WaitForApproval {
            timeout: Duration::from_millis(750),
        };
        for policy in [PresencePolicy::AutoApprove, PresencePolicy::Deny, wait] {
            for (socket, uhid) in [(false, false), (true, false), (false, true)] {
                let config = KeyConfig {
                    options: SoftKeyOptions::default(),
                    policy,
                    transports: TransportOptions { socket, uhid },
                };
                let restored = round_trip(&config);
                assert_eq!(
                    (restored.policy, restored.transports),
                    (policy, config.transports)
                );
            }
        }

        // A row written before maxCredentialCountInList / maxCredentialIdLength were stored
        // restores with their defaults.
        let mut old: serde_json::Value = serde_json::to_value(StoredOptions::new(&KeyConfig {
            options: SoftKeyOptions::default(),
            policy: PresencePolicy::AutoApprove,
            transports: TransportOptions::default(),
        }))
        .unwrap();
        let fields = old.as_object_mut().unwrap();
        assert!(fields.remove("max_credential_count_in_list").is_some());
        assert!(fields.remove("max_credential_id_length").is_some());
        let restored = serde_json::from_value::<StoredOptions>(old)
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(
            format!("{:?}", restored.options),
            format!("{:?}", SoftKeyOptions::default())
        );
    }

    #[test]
    fn stored_options_round_trip_without_the_pin() {
        let mut options = SoftKeyOptions {
            ctap: CtapVersion::Fido20,
            resident_keys: false,
            attestation: AttestationKind::SelfAttestation,
            counter: CounterMode::PerCredential,
            min_pin_length: 6,
            always_uv: true,
            max_credential_count_in_list: 3,
            initial_pin: Some("123456".into()),
            ..SoftKeyOptions::default()
        };
        options.aaguid[0] = 0xab;
        let config = KeyConfig {
            options: options.clone(),
            policy: PresencePolicy::WaitForApproval {
                timeout: Duration::from_millis(1500),
            },
            transports: TransportOptions {
                socket: true,
                uhid: false,
            },
        };
        let json = serde_json::to_string(&StoredOptions::new(&config)).unwrap();
        assert!(!json.contains("123456"), "{json}");
        let restored = round_trip(&config);
        assert_eq!(restored.policy, config.policy);
        assert_eq!(restored.transports, config.transports);
        assert_eq!(restored.options.initial_pin, None);
        options.initial_pin = None;
        assert_eq!(format!("{:?}", restored.options), format!("{options:?}"));

        let bad = json.replace("\"wait\"", "\"sometimes\"");
        let bad: StoredOptions = serde_json::from_str(&bad).unwrap();
        assert!(bad.config().is_err());
    }

    /// A store in a new temporary directory (kept alive by the returned guard).
    fn sqlite(seed: u8) -> (tempfile::TempDir, Arc<crate::store::SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(
            dir.path(),
            crate::store::StoreKey::from_bytes(&[seed; 32]),
        )
        .unwrap();
        (dir, Arc::new(store))
    }

    fn new_key(id: &str, index: usize, options: String) -> NewVirtualKey {
        NewVirtualKey {
            id: id.into(),
            owner_uid: 1000,
            name: "n".into(),
            path: format!("{DEVICES_PATH}/virtual{index}"),
            options,
        }
    }

    fn stored_key(store: &Arc<dyn VirtualKeyStore>) -> SoftKey {
        let record = store.virtual_key("k1").unwrap().unwrap();
        let vault = Box::new(StoreVault::existing(Arc::clone(store), record));
        SoftKey::with_vault(
            SoftKeyOptions::default(),
            vault,
            Box::new(OsRandom),
            Instant::now(),
        )
        .unwrap()
    }

    #[test]
    fn store_vault_keeps_the_key_and_a_failed_write_fails_the_command() {
        use crate::authenticator::{AutoApproveForTests, InjectCredential};
        let (_dir, sqlite) = sqlite(1);
        let store: Arc<dyn VirtualKeyStore> = sqlite;
        let new_key = new_key("k1", 0, "{}".into());
        let options = SoftKeyOptions {
            initial_pin: Some("123456".into()),
            ..SoftKeyOptions::default()
        };
        let vault = Box::new(StoreVault::create(Arc::clone(&store), new_key));
        let mut key =
            SoftKey::with_vault(options, vault, Box::new(OsRandom), Instant::now()).unwrap();
        let injected = key
            .inject_credential(InjectCredential::discoverable("example.org", b"user"))
            .unwrap();
        drop(key);
        assert_eq!(store.virtual_key("k1").unwrap().unwrap().generation, 2);

        // Started again from its row: same credential, PIN set (from the state, not options).
        let mut key = stored_key(&store);
        assert_eq!(key.credentials()[0].id, injected.id);
        assert!(key.pin_is_set());
        // A second instance of the same row: whoever writes second loses, loudly.
        let mut twin = stored_key(&store);
        key.remove_credential(&injected.id).unwrap();
        assert!(matches!(
            twin.remove_credential(&injected.id),
            Err(AuthnError::Vault(_))
        ));
        // The loser went back to the durable state (the winner's) and writes on from there.
        assert!(twin.credentials().is_empty());
        twin.inject_credential(InjectCredential::discoverable("example.org", b"two"))
            .unwrap();
        assert_eq!(store.virtual_key("k1").unwrap().unwrap().generation, 4);
        // The row was removed under the key: a state change answers CTAP1_ERR_OTHER (0x7f).
        assert!(store.delete_virtual_key("k1").unwrap());
        let reset = key.handle_cbor(&[0x07], &mut AutoApproveForTests, Instant::now());
        assert_eq!(reset, [0x7f]);
        assert!(store.virtual_key("k1").unwrap().is_none());
    }

    #[test]
    fn concurrent_keys_share_commits_and_each_keeps_every_change() {
        use crate::authenticator::InjectCredential;
        const KEYS: usize = 8;
        const CHANGES: usize = 25;
        let (_dir, sqlite) = sqlite(2);
        let store: Arc<dyn VirtualKeyStore> = sqlite.clone();
        let before = sqlite.commit_stats();
        let started = Instant::now();
        let workers: Vec<_> = (0..KEYS)
            .map(|n| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let new_key = new_key(&format!("k{n}"), n, "{}".into());
                    let vault = Box::new(StoreVault::create(store, new_key));
                    let mut key = SoftKey::with_vault(
                        SoftKeyOptions::default(),
                        vault,
                        Box::new(OsRandom),
                        Instant::now(),
                    )
                    .unwrap();
                    for i in 0..CHANGES {
                        let user = format!("user {i}");
                        key.inject_credential(InjectCredential::discoverable(
                            "example.org",
                            user.as_bytes(),
                        ))
                        .unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        let elapsed = started.elapsed();
        let after = sqlite.commit_stats();
        let writes = after.writes - before.writes;
        let commits = after.commits - before.commits;
        assert_eq!(writes, (KEYS * (CHANGES + 1)) as u64);
        eprintln!(
            "{writes} key state writes of {KEYS} concurrent keys in {commits} commits, {elapsed:?}"
        );
        for record in store.list_virtual_keys().unwrap() {
            assert_eq!(record.generation, (CHANGES + 1) as u64);
            let vault = Box::new(StoreVault::existing(Arc::clone(&store), record));
            let key = SoftKey::with_vault(
                SoftKeyOptions::default(),
                vault,
                Box::new(OsRandom),
                Instant::now(),
            )
            .unwrap();
            assert_eq!(key.credentials().len(), CHANGES);
        }
    }

    #[test]
    fn options_updates_move_the_generation_the_vault_writes_on_from() {
        use crate::authenticator::InjectCredential;
        let (_dir, sqlite) = sqlite(5);
        let store: Arc<dyn VirtualKeyStore> = sqlite;
        let config = KeyConfig {
            options: SoftKeyOptions::default(),
            policy: PresencePolicy::AutoApprove,
            transports: TransportOptions::default(),
        };
        let json = serde_json::to_string(&StoredOptions::new(&config)).unwrap();
        let stored_policy = |store: &Arc<dyn VirtualKeyStore>| {
            let record = store.virtual_key("k1").unwrap().unwrap();
            let stored: StoredOptions = serde_json::from_str(&record.options).unwrap();
            stored.config().unwrap().policy
        };
        let vault = StoreVault::create(Arc::clone(&store), new_key("k1", 0, json));
        let row = Arc::clone(&vault.row);
        let mut key = SoftKey::with_vault(
            SoftKeyOptions::default(),
            Box::new(vault),
            Box::new(OsRandom),
            Instant::now(),
        )
        .unwrap();
        let wait = PresencePolicy::WaitForApproval {
            timeout: Duration::from_millis(2500),
        };
        let mut applied = None;
        row.update_options(|o| o.set_presence(wait), || applied = Some(wait))
            .unwrap();
        assert_eq!(applied, Some(wait));
        assert_eq!(stored_policy(&store), wait);
        // The key's next state write goes on from the generation the options write left.
        key.inject_credential(InjectCredential::discoverable("example.org", b"user"))
            .unwrap();
        assert_eq!(store.virtual_key("k1").unwrap().unwrap().generation, 3);

        // Another writer moved the row: the update fails and `then` does not run.
        store
            .update_virtual_key_state("k1", 3, b"elsewhere")
            .unwrap();
        let mut applied = false;
        let result =
            row.update_options(|o| o.set_presence(PresencePolicy::Deny), || applied = true);
        assert!(matches!(result, Err(StoreError::Conflict)), "{result:?}");
        assert!(!applied);
        assert_eq!(stored_policy(&store), wait);
        // The row is gone: NotFound, nothing applied.
        assert!(store.delete_virtual_key("k1").unwrap());
        let result =
            row.update_options(|o| o.set_presence(PresencePolicy::Deny), || applied = true);
        assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
        assert!(!applied);
    }

    #[test]
    fn path_index_accepts_only_software_key_paths() {
        assert_eq!(
            path_index("/org/keygate/Keygate1/devices/virtual12"),
            Some(12)
        );
        assert_eq!(path_index("/org/keygate/Keygate1/devices/usb3"), None);
        assert_eq!(path_index("/org/keygate/Keygate1/devices/virtual"), None);
        assert_eq!(path_index("/elsewhere/virtual1"), None);
        assert_eq!(
            path_index(&format!("{DEVICES_PATH}/virtual{MAX_PATH_INDEX}")),
            None
        );
    }
}
