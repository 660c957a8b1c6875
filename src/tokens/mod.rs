//! Token service: verification of OTP, challenge-response and signatures against the durable
//! store, with fail counters, lockout, audit and revocation. Combines `otp` (pure decisions) and
//! `store` (durability); the D-Bus `Tokens` interface is a thin adapter over [`TokenService`].
//!
//! Semantics (DESIGN.md "Verification semantics"; every default in [`TokenPolicy`]):
//! - HOTP: look-ahead window 10 (`c .. c+9`), counter stored as match + 1 before the reply;
//!   resync with two consecutive codes within 1000.
//! - TOTP: 30 s step, ±1 step around the stored drift; drift stored on success only; a code
//!   whose step is not newer than the last accepted one is a replay.
//! - OCRA: challenges are single use (consumed by the first answer, right or wrong) and expire
//!   after 120 s; a signature is bound to the exact transaction fields of its challenge.
//! - 5 failures lock a token and, separately, a user; see [`service`] for how they count.
//!
//! No I/O here except through [`crate::store::TokenStore`]; time comes from a [`Clock`].
//! Layer rules: uses `otp`, `store` and `secret`; never `service` or zbus. Methods are blocking
//! (they wait for a durable commit); async callers use [`TokenService::blocking`].
//!
//! Throughput: `cargo bench --bench tokens` reports durable checks per second for HOTP, TOTP
//! and OCRA with 1 and 8 callers next to the disk's fsync rate and `oathtool`'s rate.

mod clock;
mod error;
mod model;
pub mod service;

pub use clock::{Clock, SystemClock, TestClock};
pub use error::TokenError;
pub use model::{
    Challenge, CreatedToken, NewTokenRequest, RejectReason, Target, TokenInfo, TokenKind,
    TokenPolicy, Verdict,
};
pub use service::TokenService;
