//! # ctap2 — sans-IO CTAP 2.1 and CTAP1/U2F messages
//!
//! Layer: protocol. No I/O, no await, no clock or randomness of its own (randomness is an
//! injected `FnMut(&mut [u8])`). Must not import `hid`, `ctaphid`, `device`, `authenticator`,
//! or anything async. Both the host driver (`device`) and the software authenticator
//! (`authenticator`) use these types, so each side tests the other.
//!
//! | module | contents |
//! |---|---|
//! | [`status`] | [`StatusCode`]: every CTAP 2.1 status code (§8.2), CTAP1 codes included |
//! | [`cbor`] | the CTAP2 canonical CBOR writer and strict reader (§8) |
//! | [`commands`] | one module per command, `Request` / `Response` with encode and decode both ways |
//! | [`types`], [`cose`], [`auth_data`], [`attestation`], [`extensions`] | shared entities |
//! | [`credential_list`] | platform side of maxCredentialCountInList / maxCredentialIdLength: batches and silent pre-flight |
//! | [`pin_protocol`] | PIN/UV auth protocols 1 and 2, PIN padding and hashing, permissions |
//! | [`u2f`] | CTAP1/U2F raw messages in ISO 7816-4 APDUs, both sides |
//!
//! ## Request decoding errors
//!
//! `Request::decode` answers with the status code an authenticator sends back:
//!
//! | input | status |
//! |---|---|
//! | a parameter (or the parameter map) of the wrong CBOR type | 0x11 CTAP2_ERR_CBOR_UNEXPECTED_TYPE |
//! | malformed CBOR, trailing bytes after the map, duplicate map keys, nesting deeper than [`cbor::MAX_DEPTH`] (8; CTAP needs 4), CBOR that is not canonical | 0x12 CTAP2_ERR_INVALID_CBOR |
//! | a required parameter missing (also subcommand-specific ones of ClientPIN and CredentialManagement) | 0x14 CTAP2_ERR_MISSING_PARAMETER |
//! | an integer out of range for its field (e.g. a subcommand > 255) | 0x02 CTAP1_ERR_INVALID_PARAMETER |
//! | a fixed-size byte string of the wrong length (aaguid, rpIDHash, COSE coordinates) | 0x03 CTAP1_ERR_INVALID_LENGTH |
//! | parameters sent to a command without parameters (GetInfo, Reset, GetNextAssertion, Selection) | 0x03 CTAP1_ERR_INVALID_LENGTH |
//! | an unknown command byte ([`commands::CtapRequest::decode`]) | 0x01 CTAP1_ERR_INVALID_COMMAND |
//!
//! Unknown map keys are ignored (forward compatibility); unknown extensions are kept.
//! Requests must be in CTAP2 canonical form (§8): well-formed but non-canonical parameters
//! (indefinite lengths, over-long integer or length heads, map keys out of order) are 0x12,
//! see [`cbor::from_slice_canonical`]. Responses are decoded leniently (non-canonical
//! accepted, as python-fido2's non-strict mode does); our writer is always canonical.
//! Decoding never panics on any input. Response decoding reports the same codes inside
//! [`Ctap2Error::InvalidResponse`].

//!
//! ## Not covered (CTAP 2.1 features without a type here)
//!
//! authenticatorBioEnrollment (0x09 / prototype 0x40); the "uvm" and "thirdPartyPayment"
//! extensions and CTAP 2.2 additions (hmac-secret-mc, GetInfo members from 0x16 on, hybrid
//! transport) — unknown extensions and GetInfo members are ignored or kept as raw CBOR;
//! authenticatorConfig vendorPrototype parameters are kept as raw CBOR.

pub mod attestation;
pub mod auth_data;
pub mod cbor;
pub mod commands;
pub mod cose;
pub mod credential_list;
pub mod error;
pub mod extensions;
pub mod pin_protocol;
pub mod status;
pub mod types;
pub mod u2f;

pub use attestation::AttestationStatement;
pub use auth_data::{AttestedCredentialData, AuthenticatorData, AuthenticatorDataFlags};
pub use commands::{Command, CtapRequest};
pub use cose::CoseKey;
pub use error::{Ctap2Error, DecodeError};
pub use status::StatusCode;
pub use types::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};

/// The `ciborium` value type used for CBOR that has no typed form here.
pub use ciborium::Value;
