//! Errors of the WebAuthn client, named like the DOMExceptions that
//! `navigator.credentials.create()` / `.get()` reject with (WebAuthn L3 §5.1.3, §5.1.4).

/// A WebAuthn client failure. [`WebAuthnError::name`] gives the DOMException name
/// (`NotAllowedError`, ...), which the D-Bus layer turns into its error name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebAuthnError {
    /// The user or the authenticator refused, the operation timed out, no eligible
    /// authenticator answered, or no credential matched.
    #[error("NotAllowedError: {0}")]
    NotAllowed(String),
    /// A credential of the exclude list is already on the authenticator.
    #[error("InvalidStateError: {0}")]
    InvalidState(String),
    /// The origin is not allowed for the RP ID (not secure, IP address, not a registrable suffix).
    #[error("SecurityError: {0}")]
    Security(String),
    /// No requested algorithm or required feature is supported.
    #[error("NotSupportedError: {0}")]
    NotSupported(String),
    /// The caller cancelled the request.
    #[error("AbortError: {0}")]
    Abort(String),
    /// A requirement of the options (resident key, user verification) cannot be met.
    #[error("ConstraintError: {0}")]
    Constraint(String),
    /// The options are structurally wrong (missing member, wrong JSON type, bad length).
    #[error("TypeError: {0}")]
    Type(String),
    /// A base64url member or the authenticator's reply cannot be decoded.
    #[error("EncodingError: {0}")]
    Encoding(String),
    /// A member is well-formed but names something it may not (e.g. a `prf.evalByCredential`
    /// key outside allowCredentials, L3 §10.1.4).
    #[error("SyntaxError: {0}")]
    Syntax(String),
    /// An internal failure of the client or of the device transport (reported to
    /// web callers as `UnknownError`).
    #[error("UnknownError: {0}")]
    Unknown(String),
}

impl WebAuthnError {
    /// The DOMException name of this error (`NotAllowedError`, `SecurityError`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotAllowed(_) => "NotAllowedError",
            Self::InvalidState(_) => "InvalidStateError",
            Self::Security(_) => "SecurityError",
            Self::NotSupported(_) => "NotSupportedError",
            Self::Abort(_) => "AbortError",
            Self::Constraint(_) => "ConstraintError",
            Self::Type(_) => "TypeError",
            Self::Encoding(_) => "EncodingError",
            Self::Syntax(_) => "SyntaxError",
            Self::Unknown(_) => "UnknownError",
        }
    }

    /// The message without the name prefix.
    pub fn message(&self) -> &str {
        match self {
            Self::NotAllowed(m)
            | Self::InvalidState(m)
            | Self::Security(m)
            | Self::NotSupported(m)
            | Self::Abort(m)
            | Self::Constraint(m)
            | Self::Type(m)
            | Self::Encoding(m)
            | Self::Syntax(m)
            | Self::Unknown(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_dom_exceptions() {
        let err = WebAuthnError::Security("origin http://example.com is not secure".into());
        assert_eq!(err.name(), "SecurityError");
        assert_eq!(
            err.to_string(),
            "SecurityError: origin http://example.com is not secure"
        );
        assert_eq!(
            WebAuthnError::Encoding(String::new()).name(),
            "EncodingError"
        );
        assert_eq!(WebAuthnError::Type(String::new()).name(), "TypeError");
    }
}
