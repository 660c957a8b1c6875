//! # Authenticator side
//!
//! The software security key ([`SoftKey`]), its user-presence policies, its credential
//! vaults, and `serve()`, which runs a key on any [`crate::hid::ReportPipe`].
//!
//! | piece | where |
//! |---|---|
//! | options at creation (CTAP U2F / 2.0 / 2.1-pre / 2.1, rk, clientPin, AAGUID, attestation none / self / packed, max resident, alwaysUv, counter) | [`SoftKeyOptions`] |
//! | CTAP2 commands and extensions | [`SoftKey::handle_cbor`] (`ctap2_handler.rs`) |
//! | CTAP1/U2F APDUs | [`SoftKey::handle_u2f`] (`u2f.rs`) |
//! | credentials: non-resident IDs wrap the key (AES-256-GCM, AAD = rpIdHash); discoverable ones are stored | `credential.rs` |
//! | generated attestation CA + batch certificate (hand-written DER) | [`AttestationMaterial`] |
//! | PIN retries 8, 3 mismatches → power cycle, block at 0, pinUvAuthToken permissions + rpId + timer | `pin.rs` |
//! | presence: [`PresencePolicy`], [`VirtualPresence`], [`ApprovalHandle`] | `presence.rs` |
//! | state in memory or sealed in a file | [`CredentialVault`]: [`MemoryVault`], [`FileVault`] |
//! | test controls: inject / list / remove credentials, bad signatures, built-in UV result, power cycle | [`SoftKey`], [`TestControls`] |
//! | a key on a report pipe: keepalive, cancel, several channels | [`serve`], [`SharedSoftKey`] |
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
