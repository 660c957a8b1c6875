//! # keygate
//!
//! Hardware-token and security-key verification: a library shared by the
//! daemon `keygated` and its client `keygatectl`.
//!
//! # Layout
//!
//! | module          | layer                                                                 |
//! |-----------------|-----------------------------------------------------------------------|
//! | [`hid`]         | pipes of 64-byte HID reports: in-process pair, SOCK_SEQPACKET socket, hidraw, uhid |
//! | [`ctaphid`]     | sans-IO CTAPHID framing, both sides                                    |
//! | [`ctap2`]       | sans-IO CTAP2.1 and CTAP1/U2F messages, CBOR codec, PIN/UV protocols  |
//! | [`device`]      | async host driver: a transport + ctaphid + ctap2                      |
//! | [`authenticator`] | the software security key and its policies                          |
//! | [`otp`]         | sans-IO HOTP, TOTP, OCRA, PSKC, otpauth URIs, Digipass-style tokens  |
//! | [`store`]       | durable state (SQLite)                                                |
//! | [`tokens`]      | token checks against the store: windows, replay, lockout, audit, PANIC |
//! | [`rp`]          | WebAuthn relying-party ceremonies (webauthn-rs), state in the store   |
//! | [`webauthn`]    | WebAuthn client: origins, JSON options, CTAP mapping                  |
//! | [`service`]     | D-Bus adapters (zbus)                                                 |
//! | [`secret`]      | `Secret<T>`: zeroized, redacted, compared in constant time            |
//!
//! Direction of use: `bin -> service -> {device, authenticator, rp, otp, store}`,
//! `device -> {hid, ctaphid, ctap2}`, `authenticator -> {ctap2, ctaphid, hid}`.
//! Protocol modules (`ctaphid`, `ctap2`, `otp`) do no I/O and never await.

pub mod authenticator;
pub mod ctap2;
pub mod ctaphid;
pub mod device;
pub mod hid;
pub mod otp;
pub mod rp;
pub mod secret;
pub mod service;
pub mod store;
pub mod tokens;
pub mod webauthn;
