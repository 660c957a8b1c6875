//! Errors of the store layer.

use std::path::PathBuf;

/// Everything that can go wrong in the durable store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An SQLite error (I/O, constraint, busy, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file-system error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store key file is unusable (length, permissions).
    #[error("store key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database was sealed under another store key.
    #[error("the store key does not open this database (wrong or replaced key file)")]
    WrongKey,
    /// A sealed value failed authentication: corrupted, moved to another row, or another key.
    #[error("sealed value {what} fails authentication (corrupted or sealed under another key)")]
    Unseal {
        /// What the value was (e.g. `seed of token 1234567890`).
        what: String,
    },
    /// The database was written by a newer keygate.
    #[error("database schema version {found} is newer than this keygate knows ({known})")]
    SchemaTooNew {
        /// Version in the database.
        found: u32,
        /// Highest version this build knows.
        known: u32,
    },
    /// One migration step failed; it was rolled back.
    #[error("schema migration to version {version} failed: {source}")]
    Migration {
        /// The step that failed.
        version: u32,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A token with this serial exists already.
    #[error("a token with serial {0} exists already")]
    DuplicateSerial(String),
    /// A named row does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A stored value is out of range or malformed.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The group-commit writer thread is gone (store dropped or writer crashed).
    #[error("the store's writer thread has stopped")]
    WriterGone,
    /// The shared COMMIT of a batch failed; this caller's change is not durable.
    #[error("commit failed, change not stored: {0}")]
    Commit(String),
    /// A write closure panicked; its savepoint was rolled back.
    #[error("a write closure panicked; its changes were rolled back")]
    Panicked,
    /// A compare-and-set found another value than expected (raced by another writer).
    #[error("compare-and-set conflict")]
    Conflict,
    /// The operating system random generator failed.
    #[error("random generator: {0}")]
    Random(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
