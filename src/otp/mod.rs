//! Sans-IO OATH: HOTP (RFC 4226), TOTP (RFC 6238), OCRA (RFC 6287), PSKC (RFC 6030), otpauth URIs,
//! the Digipass-style token model and the verification rules. No I/O; time and randomness are injected.
//!
//! Layer rules: this module never touches files, sockets, clocks or the store, and never awaits.
//! It may use `crate::secret`; nothing else of the crate.
//!
//! - [`hotp`](hotp()), [`totp`] — RFC 4226 / RFC 6238 code generation.
//! - [`ocra`](ocra()), [`OcraSuite`] — RFC 6287 suites and responses, transaction questions.
//! - [`token`] — serials, token kinds and parameters, challenge generation.
//! - [`otpauth`] — `otpauth://` URIs.
//! - [`soft_token`] — the PIN-protected software token (device side).
//! - [`soft_unlock`] — the Digipass-style unlock of a token locked by wrong PINs.
//! - [`qr`] — QR codes for enrolment and offline challenges.
//! - [`pskc`] — RFC 6030 PSKC parse, import policy and write.
//! - [`verify`] — pure accept/reject decisions (windows, drift, replay, resync, challenges).

mod error;
mod hotp;
pub mod ocra;
pub mod otpauth;
pub mod pskc;
pub mod qr;
pub mod soft_token;
pub mod soft_unlock;
pub mod token;
pub mod verify;

pub use error::OtpError;
pub use hotp::{HashAlg, dynamic_truncate, hotp, hotp_hmac, totp, totp_step};
pub use ocra::{
    MutualRole, OcraInput, OcraPin, OcraSuite, QuestionKind, TimeStep, mutual_question, ocra,
    transaction_question,
};
pub use otpauth::{OtpauthMethod, OtpauthUri};
pub use token::{FillRandom, Serial, TokenKind, TokenParams, generate_challenge};
