//! Domain records and the [`TokenStore`] trait: what the token service needs from durable state,
//! independent of the backend (SQLite now, PostgreSQL later).

use super::error::StoreError;
use crate::secret::Secret;

/// A user: the login name that every factor of one person is registered under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub login: String,
    /// Consecutive failed checks over all of the user's factors.
    pub fail_count: u32,
    /// Locked after too many failures; only an administrator unlocks.
    pub locked: bool,
}

/// The moving state of a token, changed only by compare-and-set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenState {
    /// HOTP/OCRA: the next counter value to accept (last match + 1).
    pub counter: u64,
    /// TOTP (and OCRA with T): the last accepted time step; a code for this step or older is a replay.
    pub last_step: Option<u64>,
    /// TOTP: the clock drift of the token in steps, stored on success.
    pub drift: i64,
}

/// The static description of a token, as the store keeps it (the token layer parses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenParams {
    /// Application kind: `hotp`, `totp`, `ocra-cr` (challenge-response) or `ocra-sign` (signature).
    pub kind: String,
    /// OCRA suite (e.g. `OCRA-1:HOTP-SHA1-8:QN08`); `None` for HOTP/TOTP.
    pub suite: Option<String>,
    /// HMAC hash for HOTP/TOTP: `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Number of digits of a code.
    pub digits: u32,
    /// TOTP step in seconds.
    pub period: u64,
    /// TOTP T0 (Unix seconds).
    pub t0: u64,
    /// Issuer shown in authenticator apps.
    pub issuer: Option<String>,
    /// Label shown in authenticator apps.
    pub label: Option<String>,
}

/// A stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Row id.
    pub id: i64,
    /// Serial number (unique).
    pub serial: String,
    /// Static parameters.
    pub params: TokenParams,
    /// Seed sealed under the store key, bound to the serial.
    pub sealed_seed: Vec<u8>,
    /// Moving state.
    pub state: TokenState,
    /// Consecutive failed checks of this token.
    pub fail_count: u32,
    /// Locked after too many failures.
    pub locked: bool,
    /// Owner user (row id and login), if any.
    pub owner: Option<(i64, String)>,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Revocation time (Unix seconds); a revoked token never verifies.
    pub revoked_at: Option<i64>,
}

/// A token to create.
#[derive(Debug)]
pub struct NewToken {
    /// Serial number (unique).
    pub serial: String,
    /// Static parameters.
    pub params: TokenParams,
    /// The seed (sealed by the store before it is written).
    pub seed: Secret<Vec<u8>>,
    /// Initial counter (HOTP/OCRA C).
    pub counter: u64,
    /// Owner login; the user row is created if missing.
    pub owner: Option<String>,
}

/// A stored challenge (OCRA challenge-response or signature), single use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// Random id handed to the caller.
    pub id: String,
    /// The token it was issued for.
    pub token_id: i64,
    /// `response` or `signature`.
    pub purpose: String,
    /// The OCRA question as typed into the token.
    pub question: String,
    /// For signatures: the transaction fields (name, value), in order.
    pub fields: Vec<(String, String)>,
    /// Issue time (Unix seconds).
    pub created_at: i64,
    /// Expiry (Unix seconds); at or after it the challenge is refused.
    pub expires_at: i64,
    /// Consumed by a check (accepted or not).
    pub consumed: bool,
}

/// One audit row: who checked what, and the outcome. Never a code, response or seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Time (Unix seconds).
    pub at: i64,
    /// The caller (e.g. D-Bus sender and uid).
    pub caller: String,
    /// The user login involved, if any.
    pub user: Option<String>,
    /// The token serial involved, if any.
    pub serial: Option<String>,
    /// Operation (`verify`, `challenge`, `resync`, `create`, `unlock`, `revoke-user`, ...).
    pub operation: String,
    /// `accept`, `reject`, `ok` or `error`.
    pub result: String,
    /// Reason (e.g. `replay`, `locked`, `no-match`).
    pub reason: Option<String>,
}

/// The change a check makes, applied atomically with its audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckChange {
    /// Accepted: move the token state from `expected` to `new` by compare-and-set, reset the
    /// token's and the user's fail counters. Refused with [`CheckOutcome::Conflict`] if the
    /// token moved, got locked or revoked, or its user got locked meanwhile.
    Accept {
        /// The state the decision was made on.
        expected: TokenState,
        /// The state after the accepted code.
        new: TokenState,
    },
    /// Rejected: count one failure on the token and/or the user, lock at `max_failures`.
    Fail {
        /// Count on the token.
        token: bool,
        /// Count on the user.
        user: bool,
        /// Failures that lock.
        max_failures: u32,
    },
    /// Nothing changes (e.g. the token is locked); only the audit row is written.
    Nothing,
}

/// A check to commit: state change, optional challenge consumption, audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckCommit {
    /// The token checked, if one was identified.
    pub token_id: Option<i64>,
    /// The user whose counter moves, if any.
    pub user_id: Option<i64>,
    /// What changes.
    pub change: CheckChange,
    /// A challenge to consume (single use): refused with
    /// [`CheckOutcome::ChallengeUsed`] if another check consumed it first.
    pub consume_challenge: Option<String>,
    /// The audit row.
    pub audit: AuditEntry,
}

/// The result of [`TokenStore::commit_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Durable. Lock flags after the change.
    Committed {
        /// The token is locked now.
        token_locked: bool,
        /// The user is locked now.
        user_locked: bool,
    },
    /// Compare-and-set lost (nothing written): re-read and decide again.
    Conflict,
    /// The challenge was consumed by another check first (nothing written).
    ChallengeUsed,
}

/// What a PANIC removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RevokeSummary {
    /// Tokens revoked.
    pub tokens: u64,
    /// Rows removed by other factor kinds' hooks (e.g. WebAuthn credentials).
    pub other_factors: u64,
}

/// Durable state of the token service. Every mutating method is atomic and durable when it
/// returns (committed before the caller answers anyone).
pub trait TokenStore: Send + Sync + std::fmt::Debug {
    /// Creates tokens as one atomic batch: if one fails (e.g. duplicate serial), none is stored.
    fn create_tokens(
        &self,
        tokens: Vec<NewToken>,
        audit: AuditEntry,
    ) -> Result<Vec<TokenRecord>, StoreError>;
    /// A token by serial (revoked ones included).
    fn token_by_serial(&self, serial: &str) -> Result<Option<TokenRecord>, StoreError>;
    /// A token by row id.
    fn token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, StoreError>;
    /// Tokens, optionally only one user's, ordered by serial.
    fn list_tokens(&self, owner: Option<&str>) -> Result<Vec<TokenRecord>, StoreError>;
    /// A user by login.
    fn user(&self, login: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Decrypts a token's seed (fails clearly when the blob was tampered with).
    fn open_seed(&self, token: &TokenRecord) -> Result<Secret<Vec<u8>>, StoreError>;
    /// Commits a check (see [`CheckCommit`]).
    fn commit_check(&self, check: CheckCommit) -> Result<CheckOutcome, StoreError>;
    /// Stores a new challenge with its audit row.
    fn insert_challenge(
        &self,
        challenge: ChallengeRecord,
        audit: AuditEntry,
    ) -> Result<(), StoreError>;
    /// A challenge by id.
    fn challenge(&self, id: &str) -> Result<Option<ChallengeRecord>, StoreError>;
    /// Deletes a token and its challenges; `false` if there was none.
    fn delete_token(&self, serial: &str, audit: AuditEntry) -> Result<bool, StoreError>;
    /// Clears a token's lock and fail counter; `false` if there was none.
    fn unlock_token(&self, serial: &str, audit: AuditEntry) -> Result<bool, StoreError>;
    /// Clears a user's lock and fail counter; `false` if there was none.
    fn unlock_user(&self, login: &str, audit: AuditEntry) -> Result<bool, StoreError>;
    /// PANIC: revokes every factor of the user at `now` (tokens, and other kinds through hooks).
    fn revoke_user(
        &self,
        login: &str,
        now: i64,
        audit: AuditEntry,
    ) -> Result<RevokeSummary, StoreError>;
    /// Appends an audit row on its own.
    fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError>;
    /// The newest `limit` audit rows, oldest first, optionally only one serial's or user's.
    fn audit_log(
        &self,
        serial: Option<&str>,
        user: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}
