//! [`SqliteStore`]: the SQLite backend (WAL, `synchronous=FULL`, group commit, read pool).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, Transaction};

use super::error::StoreError;
use super::key::StoreKey;
use super::model::{
    AuditEntry, ChallengeRecord, CheckChange, CheckCommit, CheckOutcome, NewToken, RevokeSummary,
    TokenRecord, TokenStore, UserRecord,
};
use super::sql;
use super::writer::{self, Job, WriterStats};
use crate::secret::Secret;

/// Database file name inside a state directory.
pub const DB_FILE_NAME: &str = "keygate.db";
/// Read connections kept open for reuse.
const READ_POOL_SIZE: usize = 8;
const KEY_CHECK_NAME: &str = "key_check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"keygate store key check v1";

/// A hook run inside the PANIC transaction for another kind of factor; returns rows removed.
pub type RevokeHook = fn(&Transaction<'_>, &str) -> Result<u64, StoreError>;

/// Options of [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite busy timeout (another process holding the write lock), in milliseconds.
    pub busy_timeout_ms: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            busy_timeout_ms: 5_000,
        }
    }
}

/// The SQLite store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SqliteStore {
    path: PathBuf,
    key: StoreKey,
    options: StoreOptions,
    jobs: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    revoke_hooks: Mutex<Vec<RevokeHook>>,
    stats: Arc<WriterStats>,
}

/// Group-commit counters since the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Transactions committed by the writer (one fsync each).
    pub commits: u64,
    /// Write closures those transactions carried.
    pub writes: u64,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves the data consistent (a Vec or an
    // Option), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Now in Unix seconds (0 before 1970).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn seed_aad(serial: &str) -> Vec<u8> {
    let mut aad = b"keygate/token-seed/v1\0".to_vec();
    aad.extend_from_slice(serial.as_bytes());
    aad
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`: a directory means
    /// `<dir>/keygate.db`. Applies migrations and checks that `key` is the database's key.
    pub fn open(path: &Path, key: StoreKey) -> Result<Self, StoreError> {
        Self::open_with(path, key, StoreOptions::default())
    }

    /// Opens a state directory: key file `<dir>/store.key` (created 0600 if missing) and
    /// database `<dir>/keygate.db`.
    pub fn open_state_dir(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let key = StoreKey::load_or_create(&StoreKey::default_path(dir))?;
        Self::open(dir, key)
    }

    /// [`SqliteStore::open`] with options.
    pub fn open_with(
        path: &Path,
        key: StoreKey,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let path = if path.is_dir() {
            path.join(DB_FILE_NAME)
        } else {
            path.to_path_buf()
        };
        let mut conn = Connection::open(&path)?;
        sql::configure(&conn, options.busy_timeout_ms, true)?;
        sql::migrate(&mut conn, unix_now())?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let writer_stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("keygate-store-writer".into())
            .spawn(move || writer::run(conn, receiver, writer_stats))
            .map_err(|e| StoreError::io(&path, e))?;
        let store = Self {
            path,
            key,
            options,
            jobs: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(handle)),
            readers: Mutex::new(Vec::new()),
            revoke_hooks: Mutex::new(Vec::new()),
            stats,
        };
        store.check_key()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Group-commit counters (writes per commit shows how well commits are shared).
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.stats.commits.load(Ordering::Relaxed),
            writes: self.stats.writes.load(Ordering::Relaxed),
        }
    }

    /// The applied schema version.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.read(sql::schema_version)
    }

    /// A sealed known value in `meta` proves the key: the first open writes it, later opens
    /// must decrypt it, else the key is wrong.
    fn check_key(&self) -> Result<(), StoreError> {
        let stored = match self.read(|conn| sql::meta(conn, KEY_CHECK_NAME))? {
            Some(stored) => stored,
            None => {
                let sealed = self
                    .key
                    .seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_NAME.as_bytes())?;
                self.write(move |txn| sql::meta_insert_once(txn, KEY_CHECK_NAME, &sealed))?
            }
        };
        match self
            .key
            .open_sealed(&stored, KEY_CHECK_NAME.as_bytes(), KEY_CHECK_NAME)
        {
            Ok(plain) if plain.expose_secret() == KEY_CHECK_PLAINTEXT => Ok(()),
            _ => Err(StoreError::WrongKey),
        }
    }

    /// Runs `work` in the group-commit writer and returns its result once the COMMIT that
    /// includes it is durable. `work` runs inside its own SAVEPOINT: if it returns `Err` (or
    /// panics) only its own changes are rolled back. Blocking; from async code use
    /// [`SqliteStore::write_async`].
    pub fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(writer::job(work, move |result| {
            let _ = reply.send(result);
        }))?;
        answer.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Async twin of [`SqliteStore::write`]: awaits the durable result without blocking the runtime.
    pub async fn write_async<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.submit(writer::job(work, move |result| {
            let _ = reply.send(result);
        }))?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        let guard = lock(&self.jobs);
        let sender = guard.as_ref().ok_or(StoreError::WriterGone)?;
        sender.send(job).map_err(|_| StoreError::WriterGone)
    }

    /// Runs `work` on a pooled read connection (a consistent snapshot of committed data).
    pub fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX
                        | OpenFlags::SQLITE_OPEN_URI,
                )?;
                sql::configure(&conn, self.options.busy_timeout_ms, false)?;
                conn
            }
        };
        let result = work(&conn);
        let mut pool = lock(&self.readers);
        if pool.len() < READ_POOL_SIZE {
            pool.push(conn);
        }
        result
    }

    /// Seals `plaintext` under the store key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.key.seal(plaintext, aad)
    }

    /// Opens a blob made by [`SqliteStore::seal`] with the same `aad`.
    pub fn open_sealed(&self, blob: &[u8], aad: &[u8]) -> Result<Secret<Vec<u8>>, StoreError> {
        self.key.open_sealed(blob, aad, "sealed value")
    }

    /// Adds a hook that PANIC ([`TokenStore::revoke_user`]) runs in its transaction, for factor
    /// kinds kept outside the token tables. WebAuthn credentials in a `webauthn_credentials`
    /// table with a `user_login` column are removed without a hook.
    pub fn add_revoke_hook(&self, hook: RevokeHook) {
        lock(&self.revoke_hooks).push(hook);
    }

    /// Test support: overwrites a token's sealed seed (to exercise MAC failures).
    #[doc(hidden)]
    pub fn debug_set_sealed_seed(&self, serial: &str, blob: Vec<u8>) -> Result<bool, StoreError> {
        let serial = serial.to_string();
        self.write(move |txn| {
            Ok(txn.execute(
                "UPDATE tokens SET sealed_seed = ?2 WHERE serial = ?1",
                rusqlite::params![serial, blob],
            )? == 1)
        })
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop after it has answered every queued caller.
        lock(&self.jobs).take();
        if let Some(handle) = lock(&self.writer).take() {
            let _ = handle.join();
        }
    }
}

impl TokenStore for SqliteStore {
    fn create_tokens(
        &self,
        tokens: Vec<NewToken>,
        audit: AuditEntry,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        // Seal outside the writer thread; the writer only inserts.
        let mut sealed = Vec::with_capacity(tokens.len());
        for token in tokens {
            let blob = self
                .key
                .seal(token.seed.expose_secret(), &seed_aad(&token.serial))?;
            sealed.push((token, blob));
        }
        let now = audit.at;
        let ids = self.write(move |txn| {
            let mut ids = Vec::with_capacity(sealed.len());
            for (token, blob) in &sealed {
                let user_id = match &token.owner {
                    Some(login) => Some(sql::ensure_user(txn, login, now)?),
                    None => None,
                };
                ids.push(sql::insert_token(
                    txn,
                    &token.serial,
                    &token.params,
                    blob,
                    token.counter,
                    user_id,
                    now,
                )?);
            }
            sql::insert_audit(txn, &audit)?;
            Ok(ids)
        })?;
        self.read(|conn| {
            ids.iter()
                .map(|id| {
                    sql::token_by_id(conn, *id)?
                        .ok_or_else(|| StoreError::NotFound(format!("token row {id}")))
                })
                .collect()
        })
    }

    fn token_by_serial(&self, serial: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.read(|conn| sql::token_by_serial(conn, serial))
    }

    fn token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, StoreError> {
        self.read(|conn| sql::token_by_id(conn, id))
    }

    fn list_tokens(&self, owner: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(|conn| sql::list_tokens(conn, owner))
    }

    fn user(&self, login: &str) -> Result<Option<UserRecord>, StoreError> {
        self.read(|conn| sql::user(conn, login))
    }

    fn open_seed(&self, token: &TokenRecord) -> Result<Secret<Vec<u8>>, StoreError> {
        self.key.open_sealed(
            &token.sealed_seed,
            &seed_aad(&token.serial),
            &format!("seed of token {}", token.serial),
        )
    }

    fn commit_check(&self, check: CheckCommit) -> Result<CheckOutcome, StoreError> {
        let result = self.write(move |txn| {
            if let Some(challenge) = &check.consume_challenge
                && !sql::consume_challenge(txn, challenge)?
            {
                return Ok(CheckOutcome::ChallengeUsed);
            }
            let (token_locked, user_locked) = match &check.change {
                CheckChange::Accept { expected, new } => {
                    let token_id = check.token_id.ok_or(StoreError::Conflict)?;
                    if let Some(user_id) = check.user_id {
                        if sql::user_locked(txn, user_id)? {
                            return Err(StoreError::Conflict);
                        }
                        sql::reset_user_failures(txn, user_id)?;
                    }
                    if !sql::cas_accept(txn, token_id, expected, new)? {
                        return Err(StoreError::Conflict);
                    }
                    (false, false)
                }
                CheckChange::Fail {
                    token,
                    user,
                    max_failures,
                } => {
                    let token_locked = match (token, check.token_id) {
                        (true, Some(id)) => sql::token_failure(txn, id, *max_failures)?,
                        (_, Some(id)) => sql::token_locked(txn, id)?,
                        _ => false,
                    };
                    let user_locked = match (user, check.user_id) {
                        (true, Some(id)) => sql::user_failure(txn, id, *max_failures)?,
                        (_, Some(id)) => sql::user_locked(txn, id)?,
                        _ => false,
                    };
                    (token_locked, user_locked)
                }
                CheckChange::Nothing => {
                    let token_locked = match check.token_id {
                        Some(id) => sql::token_locked(txn, id)?,
                        None => false,
                    };
                    let user_locked = match check.user_id {
                        Some(id) => sql::user_locked(txn, id)?,
                        None => false,
                    };
                    (token_locked, user_locked)
                }
            };
            sql::insert_audit(txn, &check.audit)?;
            Ok(CheckOutcome::Committed {
                token_locked,
                user_locked,
            })
        });
        match result {
            Err(StoreError::Conflict) => Ok(CheckOutcome::Conflict),
            other => other,
        }
    }

    fn insert_challenge(
        &self,
        challenge: ChallengeRecord,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.write(move |txn| {
            sql::insert_challenge(txn, &challenge)?;
            sql::insert_audit(txn, &audit)
        })
    }

    fn challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, StoreError> {
        self.read(|conn| sql::challenge(conn, id))
    }

    fn delete_token(&self, serial: &str, audit: AuditEntry) -> Result<bool, StoreError> {
        let serial = serial.to_string();
        self.write(move |txn| {
            let deleted = sql::delete_token(txn, &serial)?;
            sql::insert_audit(txn, &audit)?;
            Ok(deleted)
        })
    }

    fn unlock_token(&self, serial: &str, audit: AuditEntry) -> Result<bool, StoreError> {
        let serial = serial.to_string();
        self.write(move |txn| {
            let done = sql::unlock_token(txn, &serial)?;
            sql::insert_audit(txn, &audit)?;
            Ok(done)
        })
    }

    fn unlock_user(&self, login: &str, audit: AuditEntry) -> Result<bool, StoreError> {
        let login = login.to_string();
        self.write(move |txn| {
            let done = sql::unlock_user(txn, &login)?;
            sql::insert_audit(txn, &audit)?;
            Ok(done)
        })
    }

    fn revoke_user(
        &self,
        login: &str,
        now: i64,
        audit: AuditEntry,
    ) -> Result<RevokeSummary, StoreError> {
        let login = login.to_string();
        let hooks = lock(&self.revoke_hooks).clone();
        self.write(move |txn| {
            let tokens = sql::revoke_user_tokens(txn, &login, now)?;
            let mut other_factors = sql::delete_webauthn_credentials(txn, &login)?;
            for hook in &hooks {
                other_factors += hook(txn, &login)?;
            }
            sql::insert_audit(txn, &audit)?;
            Ok(RevokeSummary {
                tokens,
                other_factors,
            })
        })
    }

    fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        self.write(move |txn| sql::insert_audit(txn, &audit))
    }

    fn audit_log(
        &self,
        serial: Option<&str>,
        user: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|conn| sql::audit_log(conn, serial, user, limit))
    }
}
