//! WebAuthn relying-party ceremonies (webauthn-rs) with ceremony state kept in the store.
