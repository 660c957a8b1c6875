//! # Authenticator side
//!
//! The software security key ([`SoftKey`]), its user-presence policies, its credential
//! vaults, and `serve()`, which runs a key on any [`crate::hid::ReportPipe`].
//!
//! Layer rules: uses `ctap2` (messages, PIN/UV protocols), `ctaphid` (device framing) and `hid`
//! (pipes); never `device`, `service`, `store` or anything above.

mod attestation;
mod credential;
mod ctap2_handler;
mod error;
pub mod keys;
mod options;
mod pin;
mod presence;
mod serve;
mod softkey;
#[cfg(test)]
mod tests;
mod u2f;
mod vault;

pub use attestation::AttestationMaterial;
pub use credential::{CredProtect, Credential, UserInfo};
pub use error::AuthnError;
pub use options::{
    AttestationKind, CounterMode, CtapVersion, DEFAULT_AAGUID, PresencePolicy, SoftKeyOptions,
    format_aaguid,
};
pub use pin::{MAX_PIN_RETRIES, PinFailure, permission};
pub use presence::{
    ApprovalHandle, AutoApproveForTests, DenyForTests, PresenceOutcome, UserPresence,
    VirtualPresence,
};
pub use serve::{KEEPALIVE_INTERVAL, device_config, serve};
pub use softkey::{
    InjectCredential, LastOperation, RESET_WINDOW, SharedSoftKey, SoftKey, TestControls,
};
pub use u2f::sw as u2f_status;
pub use vault::{CredentialVault, FileVault, MemoryVault, atomic_write};
