//! WebAuthn client: origin and rp.id checks, JSON options to CTAP2 requests, responses as `toJSON()` gives them.
