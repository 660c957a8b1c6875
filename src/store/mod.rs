//! Durable state: SQLite (WAL, `synchronous=FULL`), group commit, encryption at rest under the
//! store key.
//!
//! - [`SqliteStore`]: one writer thread owns the write connection and commits every queued
//!   write closure in one transaction (group commit), each closure in its own SAVEPOINT; callers
//!   hear their result only after that COMMIT is durable. Reads use a small pool of connections.
//! - [`TokenStore`]: the domain operations the token service needs; a PostgreSQL backend will
//!   implement the same trait.
//! - [`StoreKey`]: the 32-byte key in a 0600 file; seeds are sealed with AES-256-GCM, bound to
//!   their row by associated data.
//!
//! All SQL of the project lives in `sql.rs`, except the relying party's own tables in
//! `webauthn.rs` and the persistent software keys in `virtual_keys.rs` ([`VirtualKeyStore`]),
//! whose `SCHEMA`s the migration runner applies as their own steps.
//! This layer knows nothing of OTP algorithms: `tokens` combines it with `otp`.
//!
//! Layer rules: may use `crate::secret` only; never `otp`, `tokens`, `service` or anything async
//! except the oneshot reply of [`SqliteStore::write_async`].
//!
//! Migrations are append-only `(version, SQL)` steps in `sql.rs`, each applied in its own
//! transaction with its `schema_version` row; step 2 is the relying party's `webauthn::SCHEMA`,
//! step 3 the software keys' `virtual_keys::SCHEMA`.
//! A later change to any table is a new step, never an edit of a released one.

mod error;
mod key;
mod model;
mod sql;
mod sqlite;
mod virtual_keys;
pub(crate) mod webauthn;
mod writer;

pub use error::StoreError;
pub use key::{KEY_LEN, StoreKey};
pub use model::{
    AuditEntry, ChallengeRecord, CheckChange, CheckCommit, CheckOutcome, NewToken, RevokeSummary,
    TokenParams, TokenRecord, TokenState, TokenStore, UserRecord,
};
pub use sqlite::{CommitStats, DB_FILE_NAME, RevokeHook, SqliteStore, StoreOptions};
pub use virtual_keys::{NewVirtualKey, VirtualKeyRecord, VirtualKeyStore};
