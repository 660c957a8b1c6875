//! Errors of the `otp` layer (one enum for the layer; verification outcomes are
//! [`crate::otp::verify::Reject`], which is not an error but a decision).

/// Everything that can go wrong in the sans-IO OATH layer: bad parameters, bad suites,
/// bad provisioning input (PSKC, `otpauth://`), soft-token PIN and storage problems.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtpError {
    /// HOTP/TOTP digits outside 6..=10 (RFC 4226 §5.3 requires at least 6; 10 is the
    /// largest that a 31-bit truncated value can fill).
    #[error("invalid number of digits {0} (allowed: {1})")]
    InvalidDigits(u32, &'static str),
    /// TOTP time step of zero.
    #[error("invalid TOTP time step 0")]
    InvalidStep,
    /// TOTP: the time is before T0 (RFC 6238 §4.2).
    #[error("time {time} is before T0 {t0}")]
    TimeBeforeT0 {
        /// Unix time given.
        time: u64,
        /// T0 of the token.
        t0: u64,
    },
    /// The secret (seed) is empty.
    #[error("empty secret")]
    EmptySecret,
    /// An OCRA suite string that does not follow RFC 6287 §6.
    #[error("invalid OCRA suite {suite:?}: {reason}")]
    InvalidSuite {
        /// The text given.
        suite: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An OCRA input does not fit the suite (missing counter, bad question, ...).
    #[error("OCRA input does not fit the suite: {0}")]
    OcraInput(String),
    /// Transaction data for a signature is not acceptable (too many fields, empty name, ...).
    #[error("invalid transaction data: {0}")]
    Transaction(String),
    /// An `otpauth://` URI that cannot be parsed.
    #[error("invalid otpauth URI: {0}")]
    Uri(String),
    /// A base32 secret that cannot be decoded (RFC 4648 §6).
    #[error("invalid base32 secret: {0}")]
    Base32(String),
    /// A PSKC document that cannot be parsed (malformed XML, wrong structure, bad base64 ...).
    #[error("PSKC: {0}")]
    Pskc(String),
    /// The PSKC ValueMAC does not match: wrong pre-shared key or password, or tampered data.
    #[error("PSKC: MAC check failed for {0} (wrong key or password, or tampered data)")]
    PskcMac(String),
    /// Decryption of a PSKC value failed (wrong key or password, bad padding).
    #[error("PSKC: cannot decrypt {0} (wrong key or password?)")]
    PskcDecrypt(String),
    /// The PSKC file is encrypted and no key or password was given.
    #[error("PSKC: the file is encrypted ({0}); a pre-shared key or password is needed")]
    PskcKeyNeeded(String),
    /// Import policy refused a key package. The whole batch is refused.
    #[error("PSKC import refused: KeyPackage #{index} (key id {key_id:?}): {reason}")]
    ImportRefused {
        /// 1-based index of the KeyPackage in the file.
        index: usize,
        /// `Key/@Id` if present.
        key_id: Option<String>,
        /// Why it is refused.
        reason: String,
    },
    /// Token model parameter problem (serial, fields, kind).
    #[error("invalid token: {0}")]
    Token(String),
    /// Soft token: the PIN is wrong; `remaining` tries before the token locks itself.
    #[error("wrong PIN ({remaining} tries left)")]
    WrongPin {
        /// Tries left before the lock.
        remaining: u32,
    },
    /// Soft token: locked after too many wrong PINs.
    #[error("token is locked after too many wrong PINs")]
    Locked,
    /// Soft token: an unlock was asked of a token that is not locked.
    #[error("the token is not locked")]
    NotLocked,
    /// Soft token: an unlock code was given before the token showed its unlock challenge.
    #[error("ask the token for its unlock challenge first")]
    NoUnlockChallenge,
    /// Soft token: the unlock code is wrong; the challenge is used up, ask for a new one.
    #[error("wrong unlock code; the token shows a new unlock challenge")]
    WrongUnlockCode,
    /// Soft token: too many wrong unlock codes; only a new provisioning helps.
    #[error("too many wrong unlock codes; the token must be provisioned anew")]
    UnlockBlocked,
    /// The random source failed.
    #[error("the random generator failed")]
    Random,
    /// Soft token: PIN format not acceptable.
    #[error("invalid PIN: {0}")]
    InvalidPin(String),
    /// Soft token: sealed seed blob is corrupt or has an unknown format.
    #[error("sealed seed is corrupt: {0}")]
    Sealed(String),
    /// Key derivation failed (bad Argon2 parameters).
    #[error("key derivation: {0}")]
    Kdf(String),
    /// QR code rendering failed (data too long, image encoding).
    #[error("QR code: {0}")]
    Qr(String),
}
