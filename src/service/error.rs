//! Errors of the service layer: [`ServiceError`] inside the daemon, [`BusError`] on the wire.
//!
//! Every error a caller sees is a named D-Bus error `org.keygate.Keygate1.Error.<Name>` with a
//! human-readable message that never carries a secret.

use zbus::DBusError;

/// The D-Bus errors of `org.keygate.Keygate1` (`org.keygate.Keygate1.Error.<Name>`).
///
/// The WebAuthn client methods use the DOMException names of WebAuthn Level 3 §5.1.3 / §5.1.4
/// (`NotAllowedError`, `InvalidStateError`, ...), so that a browser bridge can pass them on as is.
#[derive(Debug, DBusError)]
#[zbus(prefix = "org.keygate.Keygate1.Error")]
pub enum BusError {
    /// A zbus transport or marshalling error.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// No such token, device, relying party, credential or ceremony.
    NotFound(String),
    /// The caller's uid/groups do not allow this call.
    AccessDenied(String),
    /// An argument is malformed, oversized or out of range.
    InvalidArgs(String),
    /// The token or user is locked after too many failures; an administrator unlocks it.
    Locked(String),
    /// A verification was rejected (wrong code, replay, bad signature, expired challenge).
    Rejected(String),
    /// A feature whose library is not part of this build or not configured.
    NotAvailable(String),
    /// The daemon is shutting down; retry against the next instance.
    ShuttingDown(String),
    /// An internal failure (storage, I/O); details are in the daemon's log.
    Failed(String),
    /// WebAuthn: the user or the authenticator did not allow the operation, or it timed out.
    NotAllowedError(String),
    /// WebAuthn: the authenticator already holds a credential from `excludeCredentials`.
    InvalidStateError(String),
    /// WebAuthn: the origin may not use this rp.id.
    SecurityError(String),
    /// WebAuthn: no requested algorithm or option is supported.
    NotSupportedError(String),
    /// WebAuthn: the caller cancelled the request.
    AbortError(String),
    /// WebAuthn: a requirement (resident key, user verification) cannot be met.
    ConstraintError(String),
    /// WebAuthn: the options JSON does not have the required shape.
    TypeError(String),
    /// WebAuthn: a value could not be encoded or decoded (base64url, CBOR).
    EncodingError(String),
    /// WebAuthn: a member names something it may not (a `prf.evalByCredential` key).
    SyntaxError(String),
}

/// Errors inside the service layer, mapped onto [`BusError`] at the adapter boundary.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Bus connection or object-server failure.
    #[error("d-bus: {0}")]
    Bus(#[from] zbus::Error),
    /// File system failure (state dir, runtime dir, config).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration file is invalid.
    #[error("config: {0}")]
    Config(String),
    /// The caller is not allowed to do this.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Something named by the caller does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Bad input from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgs(String),
    /// Other failures of a lower layer, already reduced to a message free of secrets.
    #[error("{0}")]
    Failed(String),
}

impl From<ServiceError> for BusError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Bus(e) => BusError::ZBus(e),
            ServiceError::AccessDenied(m) => BusError::AccessDenied(m),
            ServiceError::NotFound(m) => BusError::NotFound(m),
            ServiceError::InvalidArgs(m) => BusError::InvalidArgs(m),
            ServiceError::Io(e) => {
                tracing::warn!(error = %e, "i/o failure");
                BusError::Failed("internal i/o failure".into())
            }
            ServiceError::Config(m) | ServiceError::Failed(m) => BusError::Failed(m),
        }
    }
}

/// Result of a D-Bus method.
pub type BusResult<T> = Result<T, BusError>;
