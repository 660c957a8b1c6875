//! Errors of the token service. A rejected code is not an error (it is a [`super::Verdict`]);
//! these are requests that cannot be served.

use crate::otp::OtpError;
use crate::store::StoreError;

/// Errors of the token layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The store failed (I/O, corrupted sealed seed, wrong key, ...).
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The OTP layer refused parameters (digits, suite, ...).
    #[error("otp: {0}")]
    Otp(#[from] OtpError),
    /// The request is malformed (overlong serial, unsupported suite, short seed, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// An import batch was refused as a whole; names the refused entry.
    #[error("import refused, nothing imported: token {index} ({serial}): {reason}")]
    ImportRefused {
        /// Position in the batch (0-based).
        index: usize,
        /// The serial of the refused entry (or `-`).
        serial: String,
        /// Why.
        reason: String,
    },
    /// No such token or user (for administrative calls; checks answer with a verdict).
    #[error("not found: {0}")]
    NotFound(String),
    /// A token of another kind was named (e.g. a challenge for a response-only token).
    #[error("token {serial} is a {kind} token: {why}")]
    WrongKind {
        /// The token.
        serial: String,
        /// Its kind.
        kind: String,
        /// What was asked.
        why: String,
    },
    /// Compare-and-set kept losing to concurrent checks of the same token.
    #[error("too much contention on token {0}, try again")]
    Contention(String),
    /// The operating system random generator failed.
    #[error("random generator: {0}")]
    Random(String),
    /// The blocking task running a check was cancelled or panicked.
    #[error("background task failed: {0}")]
    Task(String),
}
