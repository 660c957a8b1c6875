//! Software security keys that survive a restart of keygated (`Virtual.Create` with
//! `"persist": true`): one row per key in `virtual_keys`, the migration runner applies [`SCHEMA`]
//! as its own step.
//!
//! - `id`: a stable random identifier chosen by the service; `path`: the D-Bus object path the
//!   key is served at, kept so that a client's saved path still works after a restart.
//! - `options`: the validated creation options as JSON (public: no PIN, no key material).
//! - `sealed_state`: the key's whole secret state (master secret, attestation keys, resident
//!   credentials, signature counters, PIN hash and retries, large blobs), sealed with the store
//!   key exactly as token seeds are (AES-256-GCM, see [`super::StoreKey`]), bound to the row by
//!   associated data (`keygate/virtual-key-state/v1\0<id>\0<owner uid>`), so a blob copied
//!   into another key's row, or to another owner, fails to open.
//! - `generation`: moves by compare-and-set on every state write
//!   (`UPDATE ... WHERE id = ? AND generation = ?old`), so two writers of one key (two
//!   keygated instances on one state directory) cannot silently overwrite each other.
//!
//! Every write goes through the group-commit writer and returns only once its COMMIT is
//! durable: a software key answers the host only after that.

use rusqlite::{OptionalExtension, Row, params};

use super::error::StoreError;
use super::sqlite::{SqliteStore, unix_now};
use crate::secret::Secret;

/// The table of persistent software keys (applied as one migration step).
pub(crate) const SCHEMA: &str = "
CREATE TABLE virtual_keys (
    id           TEXT PRIMARY KEY,
    owner_uid    INTEGER NOT NULL,
    name         TEXT NOT NULL,
    path         TEXT NOT NULL UNIQUE,
    options      TEXT NOT NULL,
    sealed_state BLOB NOT NULL,
    generation   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX virtual_keys_owner ON virtual_keys (owner_uid);
";

const COLUMNS: &str =
    "id, owner_uid, name, path, options, sealed_state, generation, created_at, updated_at";

/// A software key to store for the first time (its first state comes with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVirtualKey {
    /// Stable identifier (random, chosen by the caller).
    pub id: String,
    /// Owning uid.
    pub owner_uid: u32,
    /// Display name.
    pub name: String,
    /// D-Bus object path the key is served at.
    pub path: String,
    /// The validated creation options as JSON (no secrets).
    pub options: String,
}

/// A stored software key (its state still sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualKeyRecord {
    /// Stable identifier.
    pub id: String,
    /// Owning uid.
    pub owner_uid: u32,
    /// Display name.
    pub name: String,
    /// D-Bus object path.
    pub path: String,
    /// Creation options (JSON).
    pub options: String,
    /// The sealed state; open with [`VirtualKeyStore::open_virtual_key_state`].
    pub sealed_state: Vec<u8>,
    /// Write generation (1 after the insert, +1 per update).
    pub generation: u64,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Last state write (Unix seconds).
    pub updated_at: i64,
}

/// The durable store of software keys; a PostgreSQL backend would implement the same trait.
pub trait VirtualKeyStore: Send + Sync + std::fmt::Debug {
    /// Inserts a key with its first state (sealed here). Returns the generation (1).
    /// Fails with a constraint error if the id or path exists already.
    fn insert_virtual_key(&self, key: NewVirtualKey, state: &[u8]) -> Result<u64, StoreError>;

    /// Replaces the state of key `id` if its generation is still `generation`; returns the new
    /// generation. `NotFound` when the key was removed, `Conflict` when another writer moved it.
    fn update_virtual_key_state(
        &self,
        id: &str,
        generation: u64,
        state: &[u8],
    ) -> Result<u64, StoreError>;

    /// One key by id.
    fn virtual_key(&self, id: &str) -> Result<Option<VirtualKeyRecord>, StoreError>;

    /// Every stored key, oldest first.
    fn list_virtual_keys(&self) -> Result<Vec<VirtualKeyRecord>, StoreError>;

    /// Opens the sealed state of `key` (fails with `Unseal` if it was tampered with, moved to
    /// another row, or sealed under another store key).
    fn open_virtual_key_state(&self, key: &VirtualKeyRecord)
    -> Result<Secret<Vec<u8>>, StoreError>;

    /// Deletes key `id` and its secrets; false when it did not exist.
    fn delete_virtual_key(&self, id: &str) -> Result<bool, StoreError>;
}

fn state_aad(id: &str, owner_uid: u32) -> Vec<u8> {
    format!("keygate/virtual-key-state/v1\0{id}\0{owner_uid}").into_bytes()
}

fn generation_i64(generation: u64) -> Result<i64, StoreError> {
    i64::try_from(generation)
        .map_err(|_| StoreError::Corrupt(format!("virtual key generation {generation}")))
}

fn record(row: &Row<'_>) -> rusqlite::Result<VirtualKeyRecord> {
    let out_of_range =
        |idx: usize, value: i64| rusqlite::Error::IntegralValueOutOfRange(idx, value);
    let owner: i64 = row.get(1)?;
    let generation: i64 = row.get(6)?;
    Ok(VirtualKeyRecord {
        id: row.get(0)?,
        owner_uid: u32::try_from(owner).map_err(|_| out_of_range(1, owner))?,
        name: row.get(2)?,
        path: row.get(3)?,
        options: row.get(4)?,
        sealed_state: row.get(5)?,
        generation: u64::try_from(generation).map_err(|_| out_of_range(6, generation))?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

impl VirtualKeyStore for SqliteStore {
    fn insert_virtual_key(&self, key: NewVirtualKey, state: &[u8]) -> Result<u64, StoreError> {
        // Seal outside the writer thread; the writer only inserts.
        let sealed = self.seal(state, &state_aad(&key.id, key.owner_uid))?;
        let now = unix_now();
        self.write(move |txn| {
            txn.prepare_cached(&format!(
                "INSERT INTO virtual_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)"
            ))?
            .execute(params![
                key.id,
                i64::from(key.owner_uid),
                key.name,
                key.path,
                key.options,
                sealed,
                now
            ])?;
            Ok(1)
        })
    }

    fn update_virtual_key_state(
        &self,
        id: &str,
        generation: u64,
        state: &[u8],
    ) -> Result<u64, StoreError> {
        // The owner is part of the associated data: read it (it never changes) before sealing.
        let owner = self
            .read(|conn| {
                Ok(conn
                    .prepare_cached("SELECT owner_uid FROM virtual_keys WHERE id = ?1")?
                    .query_row([id], |row| row.get::<_, i64>(0))
                    .optional()?)
            })?
            .ok_or_else(|| StoreError::NotFound(format!("virtual key {id}")))?;
        let owner = u32::try_from(owner)
            .map_err(|_| StoreError::Corrupt(format!("owner uid {owner} of virtual key {id}")))?;
        let sealed = self.seal(state, &state_aad(id, owner))?;
        let next = generation.saturating_add(1);
        let (old, new) = (generation_i64(generation)?, generation_i64(next)?);
        let id = id.to_owned();
        let now = unix_now();
        self.write(move |txn| {
            let changed = txn
                .prepare_cached(
                    "UPDATE virtual_keys SET sealed_state = ?3, generation = ?4, updated_at = ?5
                     WHERE id = ?1 AND generation = ?2",
                )?
                .execute(params![id, old, sealed, new, now])?;
            if changed == 1 {
                return Ok(next);
            }
            let exists = txn
                .prepare_cached("SELECT 1 FROM virtual_keys WHERE id = ?1")?
                .query_row([&id], |_| Ok(()))
                .optional()?
                .is_some();
            if exists {
                Err(StoreError::Conflict)
            } else {
                Err(StoreError::NotFound(format!("virtual key {id}")))
            }
        })
    }

    fn virtual_key(&self, id: &str) -> Result<Option<VirtualKeyRecord>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM virtual_keys WHERE id = ?1"))?
                .query_row([id], record)
                .optional()?)
        })
    }

    fn list_virtual_keys(&self) -> Result<Vec<VirtualKeyRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM virtual_keys ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], record)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn open_virtual_key_state(
        &self,
        key: &VirtualKeyRecord,
    ) -> Result<Secret<Vec<u8>>, StoreError> {
        self.open_sealed(&key.sealed_state, &state_aad(&key.id, key.owner_uid))
            .map_err(|_| StoreError::Unseal {
                what: format!("state of virtual key {} ({})", key.id, key.path),
            })
    }

    fn delete_virtual_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            Ok(txn
                .prepare_cached("DELETE FROM virtual_keys WHERE id = ?1")?
                .execute([&id])?
                == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreKey;

    fn new_key(id: &str, owner_uid: u32, path: &str) -> NewVirtualKey {
        NewVirtualKey {
            id: id.into(),
            owner_uid,
            name: "test key".into(),
            path: path.into(),
            options: r#"{"v":1}"#.into(),
        }
    }

    #[test]
    fn insert_update_by_generation_list_open_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreKey::from_bytes(&[3u8; 32])).unwrap();
        assert!(store.schema_version().unwrap() >= 3);
        let secret = b"master secret 0123456789 private key";
        let generation = store
            .insert_virtual_key(new_key("k1", 1000, "/p/virtual0"), secret)
            .unwrap();
        assert_eq!(generation, 1);
        store
            .insert_virtual_key(new_key("k2", 1001, "/p/virtual1"), b"other")
            .unwrap();
        // Same id or same path: refused.
        assert!(
            store
                .insert_virtual_key(new_key("k1", 1000, "/p/virtual9"), b"x")
                .is_err()
        );
        assert!(
            store
                .insert_virtual_key(new_key("k9", 1000, "/p/virtual1"), b"x")
                .is_err()
        );

        let listed = store.list_virtual_keys().unwrap();
        assert_eq!(
            listed.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            ["k1", "k2"]
        );
        let k1 = store.virtual_key("k1").unwrap().unwrap();
        assert_eq!(
            (k1.owner_uid, k1.path.as_str(), k1.generation),
            (1000, "/p/virtual0", 1)
        );
        assert_eq!(
            store.open_virtual_key_state(&k1).unwrap().expose_secret(),
            secret
        );
        // Encrypted at rest: the plaintext is nowhere in the database file.
        drop(listed);
        let raw = std::fs::read(store.path()).unwrap();
        let wal = std::fs::read(store.path().with_extension("db-wal")).unwrap_or_default();
        for bytes in [&raw, &wal] {
            assert!(!bytes.windows(13).any(|w| w == b"master secret"));
        }

        // Compare-and-set on the generation.
        assert_eq!(
            store
                .update_virtual_key_state("k1", 1, b"state two")
                .unwrap(),
            2
        );
        assert!(matches!(
            store.update_virtual_key_state("k1", 1, b"stale writer"),
            Err(StoreError::Conflict)
        ));
        let k1 = store.virtual_key("k1").unwrap().unwrap();
        assert_eq!(k1.generation, 2);
        assert_eq!(
            store.open_virtual_key_state(&k1).unwrap().expose_secret(),
            b"state two"
        );

        // A sealed state moved to another key's row, or to another owner, does not open.
        let mut moved = store.virtual_key("k2").unwrap().unwrap();
        moved.sealed_state = k1.sealed_state.clone();
        assert!(matches!(
            store.open_virtual_key_state(&moved),
            Err(StoreError::Unseal { .. })
        ));
        let mut other_owner = k1.clone();
        other_owner.owner_uid = 1001;
        assert!(store.open_virtual_key_state(&other_owner).is_err());
        // Another store key does not open it either.
        drop(store);
        let wrong = SqliteStore::open(dir.path(), StoreKey::from_bytes(&[4u8; 32]));
        assert!(matches!(wrong, Err(StoreError::WrongKey)));
        let store = SqliteStore::open(dir.path(), StoreKey::from_bytes(&[3u8; 32])).unwrap();

        assert!(store.delete_virtual_key("k1").unwrap());
        assert!(!store.delete_virtual_key("k1").unwrap());
        assert!(store.virtual_key("k1").unwrap().is_none());
        assert!(matches!(
            store.update_virtual_key_state("k1", 2, b"after removal"),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.list_virtual_keys().unwrap().len(), 1);
    }
}
