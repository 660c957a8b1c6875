//! WebAuthn client: origin and rp.id checks, JSON options to CTAP2 requests, responses as `toJSON()` gives them.
//!
//! A browser's part of WebAuthn L3 (§5.1.3 `[[Create]]`, §5.1.4 `[[DiscoverFromExternalSource]]`)
//! for callers that are not browsers: a login page bridge, a PAM module, a test.
//! The pure parts ([`origin`], [`psl`], [`json`], [`client_data`], [`extensions`]) do no I/O;
//! the client drives keys through the host driver.
//!
//! Imports: `device`, `ctap2`; never `service` (which sits on top) or `rp`.

pub mod b64;
pub mod client;
pub mod client_data;
pub mod error;
pub mod extensions;
pub mod interaction;
pub mod json;
pub mod origin;
pub mod psl;

pub use client::{Authenticator, WebAuthnClient};
pub use error::WebAuthnError;
pub use interaction::{CredentialChoice, Interaction, PinRequest, Scripted};
