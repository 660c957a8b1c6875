//! Errors of the relying-party layer.

use crate::store::StoreError;

/// A relying-party operation failed. [`RpError::name`] is a stable short name for the
/// D-Bus error mapping.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpError {
    /// No relying party with this RP ID is configured.
    #[error("no relying party {0} is configured")]
    UnknownRp(String),
    /// The relying-party configuration is invalid (RP ID vs origins, CA list, ...).
    #[error("invalid relying-party configuration: {0}")]
    InvalidConfig(String),
    /// A caller argument is invalid (empty or oversized login, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The ceremony ID is unknown, or the ceremony was used already (single use).
    #[error("unknown or already used ceremony")]
    UnknownCeremony,
    /// The ceremony expired before it was finished.
    #[error("the ceremony expired")]
    CeremonyExpired,
    /// A registration ceremony finished as an authentication or the reverse.
    #[error("the ceremony is a {found}, not a {expected}")]
    WrongCeremony {
        /// What the caller finished.
        expected: &'static str,
        /// What the ceremony is.
        found: String,
    },
    /// The user has no credential at this relying party.
    #[error("user {user} has no credential at {rp_id}")]
    NoCredentials {
        /// RP ID.
        rp_id: String,
        /// Login name.
        user: String,
    },
    /// The client's response is not valid JSON of the expected shape.
    #[error("malformed response: {0}")]
    MalformedResponse(String),
    /// webauthn-rs rejected the response (signature, challenge, origin, flags, attestation).
    #[error("verification failed: {0}")]
    Verification(#[source] webauthn_rs::prelude::WebauthnError),
    /// The credential ID is registered already at this RP.
    #[error("this credential is registered already")]
    CredentialExists,
    /// The credential was deleted or revoked (PANIC) during the ceremony.
    #[error("the credential was revoked")]
    CredentialRevoked,
    /// The signature counter did not increase: a possible cloned authenticator.
    #[error("signature counter went from {stored} to {received}: possible cloned authenticator")]
    CounterRegression {
        /// Stored counter.
        stored: u32,
        /// Counter in the response.
        received: u32,
    },
    /// Backup eligibility cannot go from true to false (WebAuthn L3 §6.1.3).
    #[error("backup eligibility of the credential went from true to false")]
    BackupEligibilityLost,
    /// The user is locked by the verifier's lockout.
    #[error("user {0} is locked")]
    UserLocked(String),
    /// The stored ceremony state or credential cannot be read back.
    #[error("stored state is unreadable: {0}")]
    CorruptState(String),
    /// The operating system random generator failed.
    #[error("random generator: {0}")]
    Random(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An internal failure (a worker task died).
    #[error("internal error: {0}")]
    Internal(String),
}

impl RpError {
    /// A stable short name (`UnknownCeremony`, `CounterRegression`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::UnknownRp(_) => "UnknownRp",
            Self::InvalidConfig(_) => "InvalidConfig",
            Self::InvalidArgument(_) => "InvalidArgument",
            Self::UnknownCeremony => "UnknownCeremony",
            Self::CeremonyExpired => "CeremonyExpired",
            Self::WrongCeremony { .. } => "WrongCeremony",
            Self::NoCredentials { .. } => "NoCredentials",
            Self::MalformedResponse(_) => "MalformedResponse",
            Self::Verification(_) => "VerificationFailed",
            Self::CredentialExists => "CredentialExists",
            Self::CredentialRevoked => "CredentialRevoked",
            Self::CounterRegression { .. } => "CounterRegression",
            Self::BackupEligibilityLost => "BackupEligibilityLost",
            Self::UserLocked(_) => "UserLocked",
            Self::CorruptState(_) => "CorruptState",
            Self::Random(_) => "Random",
            Self::Store(_) => "Store",
            Self::Internal(_) => "Internal",
        }
    }
}
