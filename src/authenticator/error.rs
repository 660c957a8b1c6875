//! Errors of the authenticator layer.

/// An error of the software authenticator outside the CTAP wire (state files, options, transport).
///
/// Protocol failures are not errors of this type: they are answered on the wire with a
/// CTAP status code or an ISO 7816 status word.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// Reading or writing the state file failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The sealed state could not be opened (wrong key or tampered file).
    #[error("state file cannot be opened: wrong key or tampered content")]
    Unseal,
    /// A caller-given vault (e.g. keygated's database) could not load or store the state; the
    /// command that changed the state fails (CTAP1_ERR_OTHER), nothing is answered as done.
    #[error("credential store: {0}")]
    Vault(String),
    /// The state decoded but is not a valid software-key state.
    #[error("state is malformed: {0}")]
    BadState(String),
    /// Invalid creation option.
    #[error("invalid option: {0}")]
    BadOption(String),
    /// Invalid credential given to a test control.
    #[error("invalid credential: {0}")]
    BadCredential(String),
    /// The operating system's random source failed.
    #[error("random source failed")]
    Random,
    /// A HID transport error while serving.
    #[error("hid transport: {0}")]
    Hid(#[from] crate::hid::HidError),
}
