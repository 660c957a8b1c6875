//! Relying-party state in the store: WebAuthn credentials per user and single-use ceremony states.
//! Owned by the webauthn team; the migration runner applies [`SCHEMA`] as its own step.
//!
//! - `webauthn_credentials`: one row per (RP, credential ID); `user_login` is the same login
//!   name as the token tables' `users.login`, so PANIC (`revoke_user`) deletes these rows too.
//!   `counter`, `backup_eligible` and `backup_state` live in their own columns and move only
//!   by compare-and-set; `credential` is the webauthn-rs `Credential` as JSON (public data).
//! - `webauthn_ceremonies`: serialized webauthn-rs ceremony states, taken by `DELETE`
//!   (exactly one taker) and ignored after `expires_at`.
//! - `webauthn_user_handles`: the stable random user handle (UUID) of each login.
//! - `webauthn_relying_parties`: the configured RPs (JSON), so administration survives restarts.

use rusqlite::{OptionalExtension, Transaction, params};

use super::error::StoreError;
use super::sqlite::SqliteStore;

/// Tables of the relying party (applied as one migration step).
pub(crate) const SCHEMA: &str = "
CREATE TABLE webauthn_relying_parties (
    rp_id      TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE webauthn_user_handles (
    user_login  TEXT PRIMARY KEY,
    user_handle BLOB NOT NULL UNIQUE
);
CREATE TABLE webauthn_credentials (
    rp_id           TEXT NOT NULL,
    credential_id   BLOB NOT NULL,
    user_login      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    credential      TEXT NOT NULL,
    counter         INTEGER NOT NULL,
    backup_eligible INTEGER NOT NULL,
    backup_state    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER,
    PRIMARY KEY (rp_id, credential_id)
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials (user_login, rp_id);
CREATE TABLE webauthn_ceremonies (
    ceremony_id TEXT PRIMARY KEY,
    rp_id       TEXT NOT NULL,
    user_login  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
";

/// A stored WebAuthn credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// RP ID.
    pub rp_id: String,
    /// Credential ID.
    pub credential_id: Vec<u8>,
    /// Login name of the owner.
    pub user_login: String,
    /// Credential class (`passkey`, `security_key`, `attested_passkey`).
    pub kind: String,
    /// webauthn-rs `Credential` as JSON.
    pub credential: String,
    /// Signature counter last accepted.
    pub counter: u32,
    /// Backup eligibility (BE flag) last seen.
    pub backup_eligible: bool,
    /// Backup state (BS flag) last seen.
    pub backup_state: bool,
    /// Registration time (Unix seconds).
    pub created_at: i64,
    /// Last successful authentication (Unix seconds).
    pub last_used_at: Option<i64>,
}

/// A new ceremony state to keep.
#[derive(Debug, Clone)]
pub struct NewCeremony {
    /// Random ceremony ID handed to the caller.
    pub ceremony_id: String,
    /// RP ID.
    pub rp_id: String,
    /// Login name.
    pub user_login: String,
    /// `registration` or `authentication`.
    pub kind: String,
    /// Serialized webauthn-rs state.
    pub state: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

/// A ceremony state read back.
#[derive(Debug, Clone)]
pub struct CeremonyRecord {
    /// RP ID.
    pub rp_id: String,
    /// Login name.
    pub user_login: String,
    /// `registration` or `authentication`.
    pub kind: String,
    /// Serialized webauthn-rs state.
    pub state: String,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}

/// The counter and flags update of a successful authentication, applied by compare-and-set.
#[derive(Debug, Clone)]
pub struct CounterUpdate {
    /// Ceremony to consume in the same transaction.
    pub ceremony_id: String,
    /// RP ID.
    pub rp_id: String,
    /// Credential ID.
    pub credential_id: Vec<u8>,
    /// The owner the ceremony was started for.
    pub user_login: String,
    /// Counter from the authenticator data.
    pub counter: u32,
    /// BE flag from the authenticator data.
    pub backup_eligible: bool,
    /// BS flag from the authenticator data.
    pub backup_state: bool,
    /// Now (Unix seconds).
    pub now: i64,
}

/// What [`SqliteStore::webauthn_commit_authentication`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CounterOutcome {
    /// Ceremony consumed, counter and flags stored.
    Accepted {
        /// Counter value before.
        previous_counter: u32,
    },
    /// The ceremony was taken already (single use).
    CeremonyGone,
    /// The credential no longer exists (deleted or revoked by PANIC); ceremony consumed.
    CredentialGone,
    /// The user is locked; ceremony consumed.
    UserLocked,
    /// The counter did not move forward; ceremony consumed, nothing else changed.
    CounterRegression {
        /// Stored counter.
        stored: u32,
        /// Counter in the response.
        received: u32,
    },
    /// Backup eligibility went from true to false, which the spec forbids; ceremony consumed.
    BackupEligibilityLost,
}

/// What [`SqliteStore::webauthn_commit_registration`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationOutcome {
    /// Ceremony consumed and credential stored.
    Stored,
    /// The ceremony was taken already.
    CeremonyGone,
    /// A credential with this ID is registered for this RP already; ceremony consumed.
    Duplicate,
}

fn to_i64(value: u32) -> i64 {
    i64::from(value)
}

fn counter_from(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("webauthn counter {value}")))
}

/// Deletes the ceremony row; true when this caller took it.
fn take_ceremony(txn: &Transaction<'_>, ceremony_id: &str) -> Result<bool, StoreError> {
    let mut stmt = txn.prepare_cached("DELETE FROM webauthn_ceremonies WHERE ceremony_id = ?1")?;
    Ok(stmt.execute([ceremony_id])? == 1)
}

impl SqliteStore {
    /// Stores or replaces a relying party's configuration (JSON).
    pub fn webauthn_put_rp(&self, rp_id: &str, config: &str, now: i64) -> Result<(), StoreError> {
        let (rp_id, config) = (rp_id.to_owned(), config.to_owned());
        self.write(move |txn| {
            txn.execute(
                "INSERT INTO webauthn_relying_parties (rp_id, config, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (rp_id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
                params![rp_id, config, now],
            )?;
            Ok(())
        })
    }

    /// Removes a relying party's configuration, its credentials and pending ceremonies.
    /// Returns false when it was not configured.
    pub fn webauthn_delete_rp(&self, rp_id: &str) -> Result<bool, StoreError> {
        let rp_id = rp_id.to_owned();
        self.write(move |txn| {
            let removed = txn.execute(
                "DELETE FROM webauthn_relying_parties WHERE rp_id = ?1",
                [&rp_id],
            )?;
            txn.execute(
                "DELETE FROM webauthn_credentials WHERE rp_id = ?1",
                [&rp_id],
            )?;
            txn.execute("DELETE FROM webauthn_ceremonies WHERE rp_id = ?1", [&rp_id])?;
            Ok(removed == 1)
        })
    }

    /// All configured relying parties: (RP ID, config JSON).
    pub fn webauthn_list_rps(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT rp_id, config FROM webauthn_relying_parties ORDER BY rp_id",
            )?;
            let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The user's handle, creating a random one (from `fresh`) on first use.
    pub fn webauthn_user_handle(
        &self,
        user_login: &str,
        fresh: [u8; 16],
    ) -> Result<[u8; 16], StoreError> {
        let login = user_login.to_owned();
        let existing = self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT user_handle FROM webauthn_user_handles WHERE user_login = ?1",
                )?
                .query_row([&login], |row| row.get::<_, Vec<u8>>(0))
                .optional()?)
        })?;
        let handle = match existing {
            Some(handle) => handle,
            None => self.write(move |txn| {
                txn.execute(
                    "INSERT INTO webauthn_user_handles (user_login, user_handle) VALUES (?1, ?2)
                     ON CONFLICT (user_login) DO NOTHING",
                    params![login, fresh.to_vec()],
                )?;
                Ok(txn.query_row(
                    "SELECT user_handle FROM webauthn_user_handles WHERE user_login = ?1",
                    [&login],
                    |row| row.get::<_, Vec<u8>>(0),
                )?)
            })?,
        };
        <[u8; 16]>::try_from(handle.as_slice())
            .map_err(|_| StoreError::Corrupt(format!("user handle of {user_login}")))
    }

    /// Credentials of one user at one RP, oldest first.
    pub fn webauthn_credentials(
        &self,
        rp_id: &str,
        user_login: &str,
    ) -> Result<Vec<StoredCredential>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT rp_id, credential_id, user_login, kind, credential, counter,
                        backup_eligible, backup_state, created_at, last_used_at
                 FROM webauthn_credentials WHERE user_login = ?1 AND rp_id = ?2
                 ORDER BY created_at, credential_id",
            )?;
            let rows = stmt.query_map(params![user_login, rp_id], |row| {
                Ok((
                    StoredCredential {
                        rp_id: row.get(0)?,
                        credential_id: row.get(1)?,
                        user_login: row.get(2)?,
                        kind: row.get(3)?,
                        credential: row.get(4)?,
                        counter: 0,
                        backup_eligible: row.get(6)?,
                        backup_state: row.get(7)?,
                        created_at: row.get(8)?,
                        last_used_at: row.get(9)?,
                    },
                    row.get::<_, i64>(5)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (mut credential, counter) = row?;
                credential.counter = counter_from(counter)?;
                out.push(credential);
            }
            Ok(out)
        })
    }

    /// Deletes one credential; true when it existed.
    pub fn webauthn_delete_credential(
        &self,
        rp_id: &str,
        credential_id: &[u8],
    ) -> Result<bool, StoreError> {
        let (rp_id, credential_id) = (rp_id.to_owned(), credential_id.to_vec());
        self.write(move |txn| {
            Ok(txn.execute(
                "DELETE FROM webauthn_credentials WHERE rp_id = ?1 AND credential_id = ?2",
                params![rp_id, credential_id],
            )? == 1)
        })
    }

    /// Keeps a new ceremony state, dropping expired ones on the way.
    pub fn webauthn_put_ceremony(&self, ceremony: NewCeremony, now: i64) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.prepare_cached("DELETE FROM webauthn_ceremonies WHERE expires_at <= ?1")?
                .execute([now])?;
            txn.prepare_cached(
                "INSERT INTO webauthn_ceremonies (ceremony_id, rp_id, user_login, kind, state, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                ceremony.ceremony_id,
                ceremony.rp_id,
                ceremony.user_login,
                ceremony.kind,
                ceremony.state,
                ceremony.expires_at
            ])?;
            Ok(())
        })
    }

    /// Reads a ceremony state without taking it (the taking happens in the commit that
    /// also stores the result, or in [`SqliteStore::webauthn_discard_ceremony`]).
    pub fn webauthn_ceremony(
        &self,
        ceremony_id: &str,
    ) -> Result<Option<CeremonyRecord>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT rp_id, user_login, kind, state, expires_at
                     FROM webauthn_ceremonies WHERE ceremony_id = ?1",
                )?
                .query_row([ceremony_id], |row| {
                    Ok(CeremonyRecord {
                        rp_id: row.get(0)?,
                        user_login: row.get(1)?,
                        kind: row.get(2)?,
                        state: row.get(3)?,
                        expires_at: row.get(4)?,
                    })
                })
                .optional()?)
        })
    }

    /// Takes (deletes) a ceremony whose response failed verification or that expired;
    /// true when this caller took it.
    pub fn webauthn_discard_ceremony(&self, ceremony_id: &str) -> Result<bool, StoreError> {
        let ceremony_id = ceremony_id.to_owned();
        self.write(move |txn| take_ceremony(txn, &ceremony_id))
    }

    /// Drops every expired ceremony state; returns how many.
    pub fn webauthn_purge_ceremonies(&self, now: i64) -> Result<u64, StoreError> {
        self.write(move |txn| {
            Ok(txn.execute(
                "DELETE FROM webauthn_ceremonies WHERE expires_at <= ?1",
                [now],
            )? as u64)
        })
    }

    /// One transaction: take the registration ceremony, make sure the user exists, store
    /// the new credential.
    pub fn webauthn_commit_registration(
        &self,
        ceremony_id: &str,
        credential: StoredCredential,
    ) -> Result<RegistrationOutcome, StoreError> {
        let ceremony_id = ceremony_id.to_owned();
        self.write(move |txn| {
            if !take_ceremony(txn, &ceremony_id)? {
                return Ok(RegistrationOutcome::CeremonyGone);
            }
            super::sql::ensure_user(txn, &credential.user_login, credential.created_at)?;
            let inserted = txn.execute(
                "INSERT INTO webauthn_credentials (rp_id, credential_id, user_login, kind, credential,
                     counter, backup_eligible, backup_state, created_at, last_used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
                 ON CONFLICT (rp_id, credential_id) DO NOTHING",
                params![
                    credential.rp_id,
                    credential.credential_id,
                    credential.user_login,
                    credential.kind,
                    credential.credential,
                    to_i64(credential.counter),
                    credential.backup_eligible,
                    credential.backup_state,
                    credential.created_at,
                ],
            )?;
            Ok(if inserted == 1 {
                RegistrationOutcome::Stored
            } else {
                RegistrationOutcome::Duplicate
            })
        })
    }

    /// One transaction: take the authentication ceremony and move the credential's counter
    /// and backup flags by compare-and-set. The counter must increase unless both the stored
    /// and the received counter are 0 (authenticators without a counter, WebAuthn L3 §6.1.1).
    pub fn webauthn_commit_authentication(
        &self,
        update: CounterUpdate,
    ) -> Result<CounterOutcome, StoreError> {
        self.write(move |txn| {
            if !take_ceremony(txn, &update.ceremony_id)? {
                return Ok(CounterOutcome::CeremonyGone);
            }
            let row = txn
                .prepare_cached(
                    "SELECT c.counter, c.backup_eligible, COALESCE(u.locked, 0)
                     FROM webauthn_credentials c LEFT JOIN users u ON u.login = c.user_login
                     WHERE c.rp_id = ?1 AND c.credential_id = ?2 AND c.user_login = ?3",
                )?
                .query_row(
                    params![update.rp_id, update.credential_id, update.user_login],
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, bool>(1)?,
                            row.get::<_, bool>(2)?,
                        ))
                    },
                )
                .optional()?;
            let Some((stored, stored_be, locked)) = row else {
                return Ok(CounterOutcome::CredentialGone);
            };
            if locked {
                return Ok(CounterOutcome::UserLocked);
            }
            let stored = counter_from(stored)?;
            if (stored != 0 || update.counter != 0) && update.counter <= stored {
                return Ok(CounterOutcome::CounterRegression {
                    stored,
                    received: update.counter,
                });
            }
            if stored_be && !update.backup_eligible {
                return Ok(CounterOutcome::BackupEligibilityLost);
            }
            let changed = txn
                .prepare_cached(
                    "UPDATE webauthn_credentials
                     SET counter = ?1, backup_eligible = ?2, backup_state = ?3, last_used_at = ?4
                     WHERE rp_id = ?5 AND credential_id = ?6 AND counter = ?7",
                )?
                .execute(params![
                    to_i64(update.counter),
                    update.backup_eligible,
                    update.backup_state,
                    update.now,
                    update.rp_id,
                    update.credential_id,
                    to_i64(stored)
                ])?;
            if changed != 1 {
                // Another writer moved the counter between our read and write: roll back
                // (the ceremony stays for a retry).
                return Err(StoreError::Conflict);
            }
            Ok(CounterOutcome::Accepted {
                previous_counter: stored,
            })
        })
    }
}
