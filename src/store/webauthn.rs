//! Relying-party state in the store: WebAuthn credentials per user and single-use ceremony states.
//! Owned by the webauthn team; the migration runner applies [`SCHEMA`] as its own step.

/// Tables of the relying party (applied as one migration step).
#[allow(dead_code)]
pub(crate) const SCHEMA: &str = "";
