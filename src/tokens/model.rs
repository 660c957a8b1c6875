//! Requests, answers and policy of the token service.

use std::fmt;

use crate::otp::HashAlg;
use crate::otp::verify::{Policy, Reject};
use crate::secret::Secret;

/// The application of a token (DESIGN.md methods table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Response-only, event based: HOTP (RFC 4226).
    Hotp,
    /// Response-only, time based: TOTP (RFC 6238).
    Totp,
    /// Challenge-response: OCRA (RFC 6287) over a question the verifier issues.
    ChallengeResponse,
    /// Transaction signature: OCRA over the hash of transaction fields.
    Signature,
}

impl TokenKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hotp => "hotp",
            Self::Totp => "totp",
            Self::ChallengeResponse => "ocra-cr",
            Self::Signature => "ocra-sign",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "hotp" => Some(Self::Hotp),
            "totp" => Some(Self::Totp),
            "ocra-cr" => Some(Self::ChallengeResponse),
            "ocra-sign" => Some(Self::Signature),
            _ => None,
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Service policy: the verification rules (defaults from DESIGN.md) and provisioning defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Windows, resync limit, challenge lifetime, fail limit.
    pub verify: Policy,
    /// Digits of generated serials (default 10).
    pub serial_digits: u32,
    /// Digits of a new token's codes (default 8).
    pub default_digits: u32,
    /// Shortest seed accepted, in bytes (default 16 = 128 bits, RFC 4226 §4 R6).
    pub min_seed_len: usize,
    /// Compare-and-set retries before a check gives up with `Contention` (default 16).
    pub max_cas_retries: u32,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            verify: Policy::default(),
            serial_digits: 10,
            default_digits: 8,
            min_seed_len: 16,
            max_cas_retries: 16,
        }
    }
}

/// A token to create or import.
#[derive(Debug, Clone)]
pub struct NewTokenRequest {
    /// Application kind.
    pub kind: TokenKind,
    /// Serial; a random one of `serial_digits` digits if `None`.
    pub serial: Option<String>,
    /// The seed; random (the hash's output length) if `None`.
    pub seed: Option<Secret<Vec<u8>>>,
    /// HOTP/TOTP hash (default SHA-1).
    pub algorithm: HashAlg,
    /// HOTP/TOTP digits; the policy's default if `None`.
    pub digits: Option<u32>,
    /// TOTP step in seconds; the policy's default if `None`.
    pub period: Option<u64>,
    /// TOTP T0 (default 0).
    pub t0: u64,
    /// OCRA suite; `OCRA-1:HOTP-SHA1-8:QN08` (challenge-response) or
    /// `OCRA-1:HOTP-SHA256-8:QH64` (signature) if `None`.
    pub suite: Option<String>,
    /// Initial counter (HOTP, OCRA with C).
    pub counter: u64,
    /// Issuer (for authenticator apps).
    pub issuer: Option<String>,
    /// Label (for authenticator apps).
    pub label: Option<String>,
    /// Owner login.
    pub owner: Option<String>,
}

impl NewTokenRequest {
    /// A request with every default for `kind`.
    pub fn new(kind: TokenKind) -> Self {
        Self {
            kind,
            serial: None,
            seed: None,
            algorithm: HashAlg::Sha1,
            digits: None,
            period: None,
            t0: 0,
            suite: None,
            counter: 0,
            issuer: None,
            label: None,
            owner: None,
        }
    }
}

/// What the service tells about a token (never the seed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Serial.
    pub serial: String,
    /// Kind.
    pub kind: TokenKind,
    /// HOTP/TOTP hash name (`SHA1`, ...).
    pub algorithm: String,
    /// Digits of a code (OCRA: of a response, 0 = full hex HMAC).
    pub digits: u32,
    /// TOTP step.
    pub period: u64,
    /// OCRA suite.
    pub suite: Option<String>,
    /// Next counter (HOTP, OCRA with C).
    pub counter: u64,
    /// Last accepted TOTP step.
    pub last_step: Option<u64>,
    /// TOTP drift in steps.
    pub drift: i64,
    /// Consecutive failures.
    pub fail_count: u32,
    /// Locked by failures.
    pub locked: bool,
    /// Issuer.
    pub issuer: Option<String>,
    /// Label.
    pub label: Option<String>,
    /// Owner login.
    pub owner: Option<String>,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// Revoked (PANIC).
    pub revoked: bool,
}

/// A token just created, with its seed for provisioning (QR code, PSKC export, soft token).
#[derive(Debug)]
pub struct CreatedToken {
    /// The stored token.
    pub info: TokenInfo,
    /// The seed: hand it to the token holder, then drop it.
    pub seed: Secret<Vec<u8>>,
}

/// What a code is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// One token by serial.
    Serial(&'a str),
    /// Every active response-only token of a user (login name).
    User(&'a str),
}

/// Why a check was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectReason {
    /// The code itself was refused (format, window, replay, challenge state, ...).
    Check(Reject),
    /// No token with that serial.
    UnknownSerial,
    /// No such user.
    UnknownUser,
    /// The user has no active token of a kind that can answer.
    NoActiveToken,
    /// The token is locked (a valid code does not unlock it).
    TokenLocked,
    /// The user is locked.
    UserLocked,
    /// The token was revoked.
    Revoked,
    /// The token's kind cannot answer this check.
    WrongKind,
    /// No such challenge.
    UnknownChallenge,
    /// A signature check named other transaction fields than the challenge was issued for.
    FieldsChanged,
}

impl RejectReason {
    /// Stable reason string (audit log, D-Bus).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Check(reject) => reject.as_str(),
            Self::UnknownSerial => "unknown_serial",
            Self::UnknownUser => "unknown_user",
            Self::NoActiveToken => "no_active_token",
            Self::TokenLocked => "token_locked",
            Self::UserLocked => "user_locked",
            Self::Revoked => "revoked",
            Self::WrongKind => "wrong_kind",
            Self::UnknownChallenge => "unknown_challenge",
            Self::FieldsChanged => "fields_changed",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to a check; given only after its effects are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted by the token with this serial.
    Accepted {
        /// The token that matched.
        serial: String,
    },
    /// Rejected.
    Rejected {
        /// The token involved, if one was identified.
        serial: Option<String>,
        /// Why.
        reason: RejectReason,
        /// The token is locked after this check.
        token_locked: bool,
        /// The user is locked after this check.
        user_locked: bool,
    },
}

impl Verdict {
    /// Whether the check was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }

    /// The reject reason, if rejected.
    pub fn reason(&self) -> Option<RejectReason> {
        match self {
            Self::Accepted { .. } => None,
            Self::Rejected { reason, .. } => Some(*reason),
        }
    }
}

/// An issued challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Opaque id (32 hex chars) to answer with.
    pub id: String,
    /// The serial it is for.
    pub serial: String,
    /// The question to type into (or scan with) the token.
    pub question: String,
    /// Transaction fields (signature challenges).
    pub fields: Vec<(String, String)>,
    /// Expiry (Unix seconds).
    pub expires_at: i64,
}
