//! All SQL of the token store (the relying party's tables are in `store/webauthn.rs`, the
//! persistent software keys' in `store/virtual_keys.rs`).
//!
//! Functions here take a connection or a transaction and do one statement's worth of work;
//! [`super::SqliteStore`] composes them into reads and group-committed writes.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::error::StoreError;
use super::model::{AuditEntry, ChallengeRecord, TokenParams, TokenRecord, TokenState, UserRecord};

/// Ordered schema migrations: `(version, SQL)`. Each runs in its own transaction together with
/// its `schema_version` row. Append only; never edit a released step.
pub(crate) fn migrations() -> [(u32, &'static str); 3] {
    [
        (1, SCHEMA_V1),
        (2, super::webauthn::SCHEMA),
        (3, super::virtual_keys::SCHEMA),
    ]
}

const SCHEMA_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
)";

const SCHEMA_V1: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    login      TEXT NOT NULL UNIQUE,
    fail_count INTEGER NOT NULL DEFAULT 0,
    locked     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    serial      TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    suite       TEXT,
    algorithm   TEXT NOT NULL,
    digits      INTEGER NOT NULL,
    period      INTEGER NOT NULL,
    t0          INTEGER NOT NULL,
    sealed_seed BLOB NOT NULL,
    counter     INTEGER NOT NULL DEFAULT 0,
    last_step   INTEGER,
    drift       INTEGER NOT NULL DEFAULT 0,
    fail_count  INTEGER NOT NULL DEFAULT 0,
    locked      INTEGER NOT NULL DEFAULT 0,
    issuer      TEXT,
    label       TEXT,
    user_id     INTEGER REFERENCES users(id),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);
CREATE TABLE challenges (
    id         TEXT PRIMARY KEY,
    token_id   INTEGER NOT NULL REFERENCES tokens(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    question   TEXT NOT NULL,
    fields     TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    consumed   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX challenges_token ON challenges(token_id);
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    caller    TEXT NOT NULL,
    user      TEXT,
    serial    TEXT,
    operation TEXT NOT NULL,
    result    TEXT NOT NULL,
    reason    TEXT
);
CREATE INDEX audit_serial ON audit(serial);
CREATE INDEX audit_user ON audit(user);
";

/// Connection settings of every connection (the writer adds WAL and `synchronous=FULL`).
pub(crate) fn configure(conn: &Connection, busy_ms: u32, writer: bool) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(busy_ms)))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    if writer {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "journal mode {mode}: WAL is not available on this file system"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
    } else {
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(())
}

/// Applies every migration newer than the database's version, each in its own transaction.
/// Returns the version after migrating.
pub(crate) fn migrate(conn: &mut Connection, now: i64) -> Result<u32, StoreError> {
    conn.execute_batch(SCHEMA_VERSION_TABLE)?;
    let steps = migrations();
    let known = steps.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let current = schema_version(conn)?;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in steps {
        if version <= current {
            continue;
        }
        let step = |conn: &mut Connection| -> Result<(), rusqlite::Error> {
            let txn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Another process may have migrated between our read and this lock.
            let done: Option<i64> = txn
                .query_row(
                    "SELECT version FROM schema_version WHERE version = ?1",
                    [version],
                    |row| row.get(0),
                )
                .optional()?;
            if done.is_none() {
                if !sql.trim().is_empty() {
                    txn.execute_batch(sql)?;
                }
                txn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)",
                    params![version, now],
                )?;
            }
            txn.commit()
        };
        step(conn).map_err(|source| StoreError::Migration { version, source })?;
    }
    schema_version(conn)
}

/// The highest applied migration (0 for a new database).
pub(crate) fn schema_version(conn: &Connection) -> Result<u32, StoreError> {
    let version: Option<i64> =
        conn.query_row("SELECT MAX(version) FROM schema_version", [], |row| {
            row.get(0)
        })?;
    u32::try_from(version.unwrap_or(0))
        .map_err(|_| StoreError::Corrupt("schema_version out of range".into()))
}

/// A value of the `meta` table.
pub(crate) fn meta(conn: &Connection, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = ?1", [name], |row| {
            row.get(0)
        })
        .optional()?)
}

/// Sets a value of the `meta` table unless it exists; returns the stored value.
pub(crate) fn meta_insert_once(
    txn: &Transaction<'_>,
    name: &str,
    value: &[u8],
) -> Result<Vec<u8>, StoreError> {
    txn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        params![name, value],
    )?;
    meta(txn, name)?.ok_or_else(|| StoreError::NotFound(format!("meta {name}")))
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} exceeds 2^63")))
}

fn col_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

fn col_u32(row: &Row<'_>, idx: usize) -> rusqlite::Result<u32> {
    let value: i64 = row.get(idx)?;
    u32::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(idx, value))
}

const TOKEN_COLUMNS: &str =
    "t.id, t.serial, t.kind, t.suite, t.algorithm, t.digits, t.period, t.t0,
    t.sealed_seed, t.counter, t.last_step, t.drift, t.fail_count, t.locked, t.issuer, t.label,
    t.user_id, u.login, t.created_at, t.revoked_at";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let last_step: Option<i64> = row.get(10)?;
    let user_id: Option<i64> = row.get(16)?;
    let login: Option<String> = row.get(17)?;
    Ok(TokenRecord {
        id: row.get(0)?,
        serial: row.get(1)?,
        params: TokenParams {
            kind: row.get(2)?,
            suite: row.get(3)?,
            algorithm: row.get(4)?,
            digits: col_u32(row, 5)?,
            period: col_u64(row, 6)?,
            t0: col_u64(row, 7)?,
            issuer: row.get(14)?,
            label: row.get(15)?,
        },
        sealed_seed: row.get(8)?,
        state: TokenState {
            counter: col_u64(row, 9)?,
            last_step: match last_step {
                Some(step) => Some(
                    u64::try_from(step)
                        .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(10, step))?,
                ),
                None => None,
            },
            drift: row.get(11)?,
        },
        fail_count: col_u32(row, 12)?,
        locked: row.get(13)?,
        owner: user_id.zip(login),
        created_at: row.get(18)?,
        revoked_at: row.get(19)?,
    })
}

/// A token by serial.
pub(crate) fn token_by_serial(
    conn: &Connection,
    serial: &str,
) -> Result<Option<TokenRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.serial = ?1"
    ))?;
    Ok(stmt.query_row([serial], token_from_row).optional()?)
}

/// A token by id.
pub(crate) fn token_by_id(conn: &Connection, id: i64) -> Result<Option<TokenRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens t LEFT JOIN users u ON u.id = t.user_id WHERE t.id = ?1"
    ))?;
    Ok(stmt.query_row([id], token_from_row).optional()?)
}

/// Tokens, all or one user's, by serial.
pub(crate) fn list_tokens(
    conn: &Connection,
    owner: Option<&str>,
) -> Result<Vec<TokenRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens t LEFT JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR u.login = ?1 ORDER BY t.serial"
    ))?;
    let rows = stmt.query_map([owner], token_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A user by login.
pub(crate) fn user(conn: &Connection, login: &str) -> Result<Option<UserRecord>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT id, login, fail_count, locked FROM users WHERE login = ?1")?;
    Ok(stmt
        .query_row([login], |row| {
            Ok(UserRecord {
                id: row.get(0)?,
                login: row.get(1)?,
                fail_count: col_u32(row, 2)?,
                locked: row.get(3)?,
            })
        })
        .optional()?)
}

/// The user's id, creating the row if needed.
pub(crate) fn ensure_user(txn: &Transaction<'_>, login: &str, now: i64) -> Result<i64, StoreError> {
    txn.execute(
        "INSERT INTO users (login, created_at) VALUES (?1, ?2) ON CONFLICT(login) DO NOTHING",
        params![login, now],
    )?;
    Ok(
        txn.query_row("SELECT id FROM users WHERE login = ?1", [login], |row| {
            row.get(0)
        })?,
    )
}

/// Inserts a token row; a duplicate serial is [`StoreError::DuplicateSerial`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_token(
    txn: &Transaction<'_>,
    serial: &str,
    params_: &TokenParams,
    sealed_seed: &[u8],
    counter: u64,
    user_id: Option<i64>,
    now: i64,
) -> Result<i64, StoreError> {
    let result = txn.execute(
        "INSERT INTO tokens (serial, kind, suite, algorithm, digits, period, t0, sealed_seed,
                             counter, issuer, label, user_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            serial,
            params_.kind,
            params_.suite,
            params_.algorithm,
            params_.digits,
            to_i64(params_.period, "period")?,
            to_i64(params_.t0, "t0")?,
            sealed_seed,
            to_i64(counter, "counter")?,
            params_.issuer,
            params_.label,
            user_id,
            now
        ],
    );
    match result {
        Ok(_) => Ok(txn.last_insert_rowid()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::DuplicateSerial(serial.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Compare-and-set of an accepted check: moves the state only if it is still `expected` and the
/// token is neither locked nor revoked; resets its fail counter. Returns whether it moved.
pub(crate) fn cas_accept(
    txn: &Transaction<'_>,
    token_id: i64,
    expected: &TokenState,
    new: &TokenState,
) -> Result<bool, StoreError> {
    let mut stmt = txn.prepare_cached(
        "UPDATE tokens SET counter = ?1, last_step = ?2, drift = ?3, fail_count = 0
         WHERE id = ?4 AND counter = ?5 AND last_step IS ?6 AND locked = 0 AND revoked_at IS NULL",
    )?;
    let changed = stmt.execute(params![
        to_i64(new.counter, "counter")?,
        new.last_step.map(|s| to_i64(s, "step")).transpose()?,
        new.drift,
        token_id,
        to_i64(expected.counter, "counter")?,
        expected.last_step.map(|s| to_i64(s, "step")).transpose()?,
    ])?;
    Ok(changed == 1)
}

/// Whether the user is locked (a missing user counts as not locked).
pub(crate) fn user_locked(txn: &Transaction<'_>, user_id: i64) -> Result<bool, StoreError> {
    let mut stmt = txn.prepare_cached("SELECT locked FROM users WHERE id = ?1")?;
    Ok(stmt
        .query_row([user_id], |row| row.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Resets a user's fail counter (after an accepted check).
pub(crate) fn reset_user_failures(txn: &Transaction<'_>, user_id: i64) -> Result<(), StoreError> {
    let mut stmt =
        txn.prepare_cached("UPDATE users SET fail_count = 0 WHERE id = ?1 AND fail_count <> 0")?;
    stmt.execute([user_id])?;
    Ok(())
}

/// Counts one failure on a token; locks it at `max`. Returns whether it is locked now.
pub(crate) fn token_failure(
    txn: &Transaction<'_>,
    token_id: i64,
    max: u32,
) -> Result<bool, StoreError> {
    let mut stmt = txn.prepare_cached(
        "UPDATE tokens SET fail_count = fail_count + 1,
                locked = CASE WHEN fail_count + 1 >= ?2 THEN 1 ELSE locked END
         WHERE id = ?1 RETURNING locked",
    )?;
    Ok(stmt
        .query_row(params![token_id, max], |row| row.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Counts one failure on a user; locks at `max`. Returns whether the user is locked now.
pub(crate) fn user_failure(
    txn: &Transaction<'_>,
    user_id: i64,
    max: u32,
) -> Result<bool, StoreError> {
    let mut stmt = txn.prepare_cached(
        "UPDATE users SET fail_count = fail_count + 1,
                locked = CASE WHEN fail_count + 1 >= ?2 THEN 1 ELSE locked END
         WHERE id = ?1 RETURNING locked",
    )?;
    Ok(stmt
        .query_row(params![user_id, max], |row| row.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Lock flags of a token (missing → false).
pub(crate) fn token_locked(txn: &Transaction<'_>, token_id: i64) -> Result<bool, StoreError> {
    let mut stmt = txn.prepare_cached("SELECT locked FROM tokens WHERE id = ?1")?;
    Ok(stmt
        .query_row([token_id], |row| row.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// Consumes a challenge if still unconsumed; returns whether this call consumed it.
pub(crate) fn consume_challenge(txn: &Transaction<'_>, id: &str) -> Result<bool, StoreError> {
    let mut stmt =
        txn.prepare_cached("UPDATE challenges SET consumed = 1 WHERE id = ?1 AND consumed = 0")?;
    Ok(stmt.execute([id])? == 1)
}

/// Inserts a challenge.
pub(crate) fn insert_challenge(
    txn: &Transaction<'_>,
    challenge: &ChallengeRecord,
) -> Result<(), StoreError> {
    let fields = serde_json::to_string(&challenge.fields)
        .map_err(|e| StoreError::Corrupt(format!("challenge fields: {e}")))?;
    txn.execute(
        "INSERT INTO challenges (id, token_id, purpose, question, fields, created_at, expires_at, consumed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            challenge.id,
            challenge.token_id,
            challenge.purpose,
            challenge.question,
            fields,
            challenge.created_at,
            challenge.expires_at,
            challenge.consumed
        ],
    )?;
    Ok(())
}

/// A challenge by id.
pub(crate) fn challenge(
    conn: &Connection,
    id: &str,
) -> Result<Option<ChallengeRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, token_id, purpose, question, fields, created_at, expires_at, consumed
         FROM challenges WHERE id = ?1",
    )?;
    let row = stmt
        .query_row([id], |row| {
            Ok((
                ChallengeRecord {
                    id: row.get(0)?,
                    token_id: row.get(1)?,
                    purpose: row.get(2)?,
                    question: row.get(3)?,
                    fields: Vec::new(),
                    created_at: row.get(5)?,
                    expires_at: row.get(6)?,
                    consumed: row.get(7)?,
                },
                row.get::<_, String>(4)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((mut record, fields)) => {
            record.fields = serde_json::from_str(&fields)
                .map_err(|e| StoreError::Corrupt(format!("challenge {id} fields: {e}")))?;
            Ok(Some(record))
        }
    }
}

/// Deletes a token (its challenges cascade).
pub(crate) fn delete_token(txn: &Transaction<'_>, serial: &str) -> Result<bool, StoreError> {
    Ok(txn.execute("DELETE FROM tokens WHERE serial = ?1", [serial])? == 1)
}

/// Clears a token's lock and fail counter.
pub(crate) fn unlock_token(txn: &Transaction<'_>, serial: &str) -> Result<bool, StoreError> {
    Ok(txn.execute(
        "UPDATE tokens SET locked = 0, fail_count = 0 WHERE serial = ?1",
        [serial],
    )? == 1)
}

/// Clears a user's lock and fail counter.
pub(crate) fn unlock_user(txn: &Transaction<'_>, login: &str) -> Result<bool, StoreError> {
    Ok(txn.execute(
        "UPDATE users SET locked = 0, fail_count = 0 WHERE login = ?1",
        [login],
    )? == 1)
}

/// Revokes every active token of a user: marks it revoked, erases the sealed seed, drops its
/// challenges. Returns the number of tokens revoked.
pub(crate) fn revoke_user_tokens(
    txn: &Transaction<'_>,
    login: &str,
    now: i64,
) -> Result<u64, StoreError> {
    txn.execute(
        "DELETE FROM challenges WHERE token_id IN
           (SELECT t.id FROM tokens t JOIN users u ON u.id = t.user_id WHERE u.login = ?1)",
        [login],
    )?;
    let revoked = txn.execute(
        "UPDATE tokens SET revoked_at = ?2, sealed_seed = x''
         WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE login = ?1)",
        params![login, now],
    )?;
    Ok(revoked as u64)
}

/// Deletes the user's WebAuthn credentials, if the relying party's `webauthn_credentials`
/// table exists with a `user_login` column (convention agreed with `store/webauthn.rs`; a
/// ceremony started before PANIC then fails to finish because its credential is gone).
/// Returns the number of credentials deleted.
pub(crate) fn delete_webauthn_credentials(
    txn: &Transaction<'_>,
    login: &str,
) -> Result<u64, StoreError> {
    let has_login: bool = txn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('webauthn_credentials') WHERE name = 'user_login')",
        [],
        |row| row.get(0),
    )?;
    if !has_login {
        return Ok(0);
    }
    Ok(txn.execute(
        "DELETE FROM webauthn_credentials WHERE user_login = ?1",
        [login],
    )? as u64)
}

/// Appends an audit row.
pub(crate) fn insert_audit(txn: &Transaction<'_>, audit: &AuditEntry) -> Result<(), StoreError> {
    let mut stmt = txn.prepare_cached(
        "INSERT INTO audit (at, caller, user, serial, operation, result, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    stmt.execute(params![
        audit.at,
        audit.caller,
        audit.user,
        audit.serial,
        audit.operation,
        audit.result,
        audit.reason
    ])?;
    Ok(())
}

/// The newest `limit` audit rows (filtered), oldest first.
pub(crate) fn audit_log(
    conn: &Connection,
    serial: Option<&str>,
    user: Option<&str>,
    limit: u32,
) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, caller, user, serial, operation, result, reason FROM
           (SELECT * FROM audit WHERE (?1 IS NULL OR serial = ?1) AND (?2 IS NULL OR user = ?2)
            ORDER BY id DESC LIMIT ?3)
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![serial, user, limit], |row| {
        Ok(AuditEntry {
            at: row.get(0)?,
            caller: row.get(1)?,
            user: row.get(2)?,
            serial: row.get(3)?,
            operation: row.get(4)?,
            result: row.get(5)?,
            reason: row.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
