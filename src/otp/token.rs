//! The Digipass-style token model: a serial number, an application kind (response-only HOTP or
//! TOTP, challenge-response OCRA, transaction signature OCRA), digits, issuer, label and owner.
//! Randomness (serials, challenges) is injected as a `fill` function.
//!
//! # Serial numbers
//!
//! Generated serials are decimal, 10 digits by default, the last digit being the Luhn check
//! digit (ISO/IEC 7812-1 Annex B) of the others, so a mistyped digit or a swap of two adjacent
//! digits is caught before any lookup. Imported serials (PSKC `SerialNo`, figure 3 "987654321")
//! are kept as given: printable ASCII without spaces, 1..=64 characters, no check digit required.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::OtpError;
use super::hotp::HashAlg;
use super::ocra::{OcraSuite, QuestionKind};

/// Fills a buffer with random bytes (injected randomness; the daemon passes the OS RNG,
/// tests pass a seeded generator).
pub type FillRandom<'a> = &'a mut dyn FnMut(&mut [u8]);

/// Default serial length (digits, check digit included).
pub const DEFAULT_SERIAL_DIGITS: usize = 10;
/// Default number of digits of a code.
pub const DEFAULT_DIGITS: u32 = 8;
/// Default TOTP step.
pub const DEFAULT_STEP: u64 = 30;

/// Uniform random decimal digits by rejection sampling (bytes >= 250 are dropped).
pub(crate) fn random_digits(count: usize, fill: FillRandom<'_>) -> String {
    random_chars(count, b"0123456789", fill)
}

/// Uniform random characters from `alphabet` (at most 256 symbols) by rejection sampling.
pub(crate) fn random_chars(count: usize, alphabet: &[u8], fill: FillRandom<'_>) -> String {
    if alphabet.is_empty() {
        return String::new();
    }
    let n = alphabet.len().min(256);
    let limit = 256 - 256 % n; // accept bytes below the largest multiple of n
    let mut out = String::with_capacity(count);
    let mut buf = [0u8; 32];
    while out.len() < count {
        fill(&mut buf);
        for &b in &buf {
            if usize::from(b) < limit && out.len() < count {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    out
}

/// Luhn check digit of a string of decimal digits (`None` if it has a non-digit).
pub fn luhn_check_digit(digits: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        let mut d = u32::from(c - b'0');
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    u8::try_from((10 - sum % 10) % 10).ok()
}

/// A token serial number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Serial(String);

impl Serial {
    /// Generates a decimal serial of `len` digits (>= 2) whose last digit is the Luhn check digit.
    pub fn generate(len: usize, fill: FillRandom<'_>) -> Result<Self, OtpError> {
        if !(2..=32).contains(&len) {
            return Err(OtpError::Token(format!(
                "serial length {len} not in 2..=32"
            )));
        }
        // First digit non-zero so the serial keeps its length when read as a number.
        let mut body = random_chars(1, b"123456789", fill);
        body.push_str(&random_digits(len - 2, fill));
        let check =
            luhn_check_digit(&body).ok_or_else(|| OtpError::Token("serial digits".into()))?;
        body.push(char::from(b'0' + check));
        Ok(Self(body))
    }

    /// The serial text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the serial is all digits and its last digit is the Luhn check digit of the rest.
    pub fn has_valid_check_digit(&self) -> bool {
        match self.0.len().checked_sub(1).map(|n| self.0.split_at(n)) {
            Some((body, last)) if !body.is_empty() => {
                luhn_check_digit(body).map(|d| char::from(b'0' + d).to_string())
                    == Some(last.to_owned())
            }
            _ => false,
        }
    }
}

impl FromStr for Serial {
    type Err = OtpError;
    fn from_str(s: &str) -> Result<Self, OtpError> {
        if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(OtpError::Token(format!(
                "serial {s:?} must be 1..=64 printable ASCII characters without spaces"
            )));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Serial {
    type Error = OtpError;
    fn try_from(s: String) -> Result<Self, OtpError> {
        s.parse()
    }
}

impl From<Serial> for String {
    fn from(s: Serial) -> Self {
        s.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for OcraSuite {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for OcraSuite {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HashAlg {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for HashAlg {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_name(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown hash {text:?}")))
    }
}

/// The application of a token (what the user does with it; DESIGN.md methods table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TokenKind {
    /// Response-only, event based: HOTP (RFC 4226).
    ResponseOnlyHotp,
    /// Response-only, time based: TOTP (RFC 6238); step and T0 in [`TokenParams`].
    ResponseOnlyTotp,
    /// Challenge-response: OCRA (RFC 6287); default suite `OCRA-1:HOTP-SHA1-8:QN08`.
    ChallengeResponse {
        /// The OCRA suite.
        suite: OcraSuite,
    },
    /// Transaction signature: OCRA over the canonical transaction question
    /// (default suite `OCRA-1:HOTP-SHA256-8:QH64`, optionally with `T`).
    Signature {
        /// The OCRA suite (hex question of at least 64 digits).
        suite: OcraSuite,
    },
}

impl TokenKind {
    /// Challenge-response with the default suite.
    pub fn default_challenge_response() -> Self {
        Self::ChallengeResponse {
            suite: default_suite(OcraSuite::DEFAULT_CHALLENGE_RESPONSE),
        }
    }

    /// Signature with the default suite.
    pub fn default_signature() -> Self {
        Self::Signature {
            suite: default_suite(OcraSuite::DEFAULT_SIGNATURE),
        }
    }

    /// Stable name for storage and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ResponseOnlyHotp => "hotp",
            Self::ResponseOnlyTotp => "totp",
            Self::ChallengeResponse { .. } => "challenge_response",
            Self::Signature { .. } => "signature",
        }
    }

    /// The OCRA suite of challenge-response and signature tokens.
    pub fn suite(&self) -> Option<&OcraSuite> {
        match self {
            Self::ChallengeResponse { suite } | Self::Signature { suite } => Some(suite),
            _ => None,
        }
    }
}

fn default_suite(text: &str) -> OcraSuite {
    // The two default suite strings are constants that parse; the fallback keeps this total.
    text.parse().unwrap_or(OcraSuite {
        hash: HashAlg::Sha1,
        digits: 8,
        counter: false,
        question_kind: QuestionKind::Numeric,
        question_len: 8,
        pin_hash: None,
        session_len: None,
        time_step: None,
    })
}

/// Everything about a token except its secret and its moving state (counter, drift, fail count).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenParams {
    /// Serial number.
    pub serial: Serial,
    /// Application kind.
    pub kind: TokenKind,
    /// Code digits for HOTP/TOTP (6..=10, default 8). OCRA tokens use their suite's truncation.
    pub digits: u32,
    /// HMAC hash for HOTP/TOTP (default SHA-1). OCRA tokens use their suite's hash.
    pub alg: HashAlg,
    /// TOTP step in seconds (default 30).
    pub step: u64,
    /// TOTP T0 (default 0).
    pub t0: u64,
    /// Issuer shown in authenticator apps (otpauth `issuer`).
    pub issuer: Option<String>,
    /// Label / account name shown in authenticator apps.
    pub label: Option<String>,
    /// Owner user (login name) the token is registered under.
    pub owner: Option<String>,
}

impl TokenParams {
    /// A token with the defaults: 8 digits, SHA-1, 30 s step, T0 = 0, no issuer/label/owner.
    pub fn new(serial: Serial, kind: TokenKind) -> Self {
        Self {
            serial,
            kind,
            digits: DEFAULT_DIGITS,
            alg: HashAlg::Sha1,
            step: DEFAULT_STEP,
            t0: 0,
            issuer: None,
            label: None,
            owner: None,
        }
    }

    /// Checks the parameters' consistency (digits, step, suite fits the kind).
    pub fn validate(&self) -> Result<(), OtpError> {
        match &self.kind {
            TokenKind::ResponseOnlyHotp | TokenKind::ResponseOnlyTotp => {
                if !(6..=10).contains(&self.digits) {
                    return Err(OtpError::InvalidDigits(self.digits, "6..=10"));
                }
                if self.step == 0 {
                    return Err(OtpError::InvalidStep);
                }
            }
            TokenKind::ChallengeResponse { .. } => {}
            TokenKind::Signature { suite } => {
                if suite.question_kind != QuestionKind::Hex || suite.question_len < 64 {
                    return Err(OtpError::Token(format!(
                        "signature suite {suite} needs a hex question QH64"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Generates a challenge for an OCRA suite: `question_len` characters of the suite's format
/// (digits for QN, upper-case letters and digits for QA, lower-case hex for QH).
pub fn generate_challenge(suite: &OcraSuite, fill: FillRandom<'_>) -> String {
    let len = usize::from(suite.question_len);
    match suite.question_kind {
        QuestionKind::Numeric => random_digits(len, fill),
        QuestionKind::Alphanumeric => {
            random_chars(len, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", fill)
        }
        QuestionKind::Hex => random_chars(len, b"0123456789abcdef", fill),
    }
}

/// Generates a numeric challenge of `len` digits whose last digit is the Luhn check digit of the
/// others (PSKC `ChallengeFormat CheckDigits="true"`, RFC 6030 §4.3.4): a token can refuse a
/// mistyped challenge before answering it. `len` must be at least 2.
pub fn generate_checked_challenge(len: usize, fill: FillRandom<'_>) -> Result<String, OtpError> {
    if len < 2 {
        return Err(OtpError::Token(
            "a checked challenge needs at least 2 digits".into(),
        ));
    }
    let mut body = random_digits(len - 1, fill);
    let check =
        luhn_check_digit(&body).ok_or_else(|| OtpError::Token("challenge digits".into()))?;
    body.push(char::from(b'0' + check));
    Ok(body)
}

/// Whether a numeric challenge ends with the Luhn check digit of its other digits.
pub fn challenge_check_digit_valid(challenge: &str) -> bool {
    challenge
        .parse::<Serial>()
        .is_ok_and(|s| s.has_valid_check_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_rng() -> impl FnMut(&mut [u8]) {
        let mut state = 0x1234_5678_u32;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = (state >> 24) as u8;
            }
        }
    }

    #[test]
    fn luhn() {
        // Classic example: 7992739871 has check digit 3.
        assert_eq!(luhn_check_digit("7992739871"), Some(3));
        assert!(
            "79927398713"
                .parse::<Serial>()
                .unwrap()
                .has_valid_check_digit()
        );
        assert!(
            !"79927398714"
                .parse::<Serial>()
                .unwrap()
                .has_valid_check_digit()
        );
        assert!(
            !"79927398731"
                .parse::<Serial>()
                .unwrap()
                .has_valid_check_digit()
        );
    }

    #[test]
    fn generated_serials() {
        let mut rng = counter_rng();
        for _ in 0..100 {
            let s = Serial::generate(DEFAULT_SERIAL_DIGITS, &mut rng).unwrap();
            assert_eq!(s.as_str().len(), 10);
            assert!(s.as_str().bytes().all(|b| b.is_ascii_digit()));
            assert!(s.has_valid_check_digit());
        }
        assert!("".parse::<Serial>().is_err());
        assert!("12 34".parse::<Serial>().is_err());
    }

    #[test]
    fn challenges_and_kinds() {
        let mut rng = counter_rng();
        let kind = TokenKind::default_challenge_response();
        let suite = kind.suite().unwrap();
        assert_eq!(suite.to_string(), "OCRA-1:HOTP-SHA1-8:QN08");
        let c = generate_challenge(suite, &mut rng);
        assert_eq!(c.len(), 8);
        assert!(c.bytes().all(|b| b.is_ascii_digit()));
        let sig = TokenKind::default_signature();
        let params = TokenParams::new("1".parse().unwrap(), sig);
        params.validate().unwrap();
        let json = serde_json::to_string(&params).unwrap();
        assert!(json.contains("OCRA-1:HOTP-SHA256-8:QH64"), "{json}");
        assert_eq!(serde_json::from_str::<TokenParams>(&json).unwrap(), params);
        let checked = generate_checked_challenge(8, &mut rng).unwrap();
        assert!(challenge_check_digit_valid(&checked));
        let mut typo = checked.into_bytes();
        typo[3] = if typo[3] == b'9' { b'0' } else { typo[3] + 1 };
        assert!(!challenge_check_digit_valid(
            &String::from_utf8(typo).unwrap()
        ));
        let bad = TokenParams {
            kind: TokenKind::Signature {
                suite: suite.clone(),
            },
            ..params
        };
        assert!(bad.validate().is_err());
    }
}
