//! OCRA, the OATH challenge-response algorithm (RFC 6287): suite grammar (§6), DataInput (§5.1),
//! one-way, mutual and plain-signature modes (§7), and keygate's canonical transaction-data
//! question for signatures.
//!
//! # Encoding facts (RFC 6287 §5.1, confirmed by the Appendix C vectors)
//!
//! `DataInput = suite ASCII | 0x00 | C (8 bytes BE) | Q (128 bytes) | P (hash) | S (nnn bytes) | T (8 bytes BE)`,
//! where only the parts named in the suite are present.
//! - `QN`: the decimal question as a big integer, written in hex, right-padded with `0` nibbles to 256 nibbles.
//! - `QA`: the ASCII bytes, right-padded with `0x00` to 128 bytes.
//! - `QH`: the hex nibbles, right-padded with `0` nibbles to 256 nibbles.
//! - `P`: the hash of the PIN with the suite's `PSHA*` hash (or a hash supplied by the caller).
//! - `S`: exactly `nnn` bytes; shorter session data is left-padded with zero bytes (as the RFC's
//!   reference code does with its hex string), longer is refused.
//! - `T`: the number of time steps since the epoch (`unix_time / step`).
//!
//! Truncation `t = 0` in `HOTP-SHAx-t` means "no truncation is performed and the full HMAC value
//! is used" (§5.2 step 3): the response is the full HMAC in lowercase hex, as errata 5625 proposes
//! for the reference code (whose `% 10^0` would always answer "0"). `t` in 4..=10 gives a decimal
//! response of `t` digits (RFC 4226 dynamic truncation). Hours in `TG` are 1..=48 (errata 3729;
//! `T0H` would be a zero step).
//!
//! # Transaction data (signature mode)
//!
//! [`transaction_question`] turns up to 8 named fields into the 64-hex-digit question of a `QH64`
//! suite. The encoding is exact bytes, no Unicode normalisation:
//!
//! ```text
//! "keygate-tx-v1" 0x00 | field count (1 byte) |
//!   for each field, in the given order:
//!     name length (2 bytes BE) | name (UTF-8) | value length (4 bytes BE) | value (UTF-8)
//! question = lowercase hex(SHA-256(encoding))
//! ```
//!
//! Names must be 1..=64 bytes, unique, with no control characters; values at most 1024 bytes.
//! Order is significant: the same fields in another order sign differently.

use std::fmt;
use std::str::FromStr;

use super::error::OtpError;
use super::hotp::{HashAlg, dynamic_truncate, format_code};
use crate::secret::Secret;

/// The question format `QFxx` of an OCRA suite (RFC 6287 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuestionKind {
    /// `QA`: alphanumeric (printable ASCII) question.
    Alphanumeric,
    /// `QN`: numeric (decimal) question.
    Numeric,
    /// `QH`: hexadecimal question.
    Hex,
}

impl QuestionKind {
    fn letter(self) -> char {
        match self {
            Self::Alphanumeric => 'A',
            Self::Numeric => 'N',
            Self::Hex => 'H',
        }
    }
}

/// Time-step granularity `TG` of an OCRA suite (RFC 6287 §6.3; hours 1-48 per errata 3729).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeStep {
    /// `T<n>S`, n in 1..=59.
    Seconds(u8),
    /// `T<n>M`, n in 1..=59.
    Minutes(u8),
    /// `T<n>H`, n in 1..=48.
    Hours(u8),
}

impl TimeStep {
    /// The step length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Seconds(n) => u64::from(n),
            Self::Minutes(n) => u64::from(n) * 60,
            Self::Hours(n) => u64::from(n) * 3600,
        }
    }
}

/// A parsed OCRA suite, `OCRA-1:HOTP-SHAx-t:[C]-QFxx[-PH][-Snnn][-TG]` (RFC 6287 §6).
/// `Display` prints the canonical text, which parses back to the same value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OcraSuite {
    /// HMAC hash of the CryptoFunction.
    pub hash: HashAlg,
    /// Truncation: 0 (none: full HMAC in hex) or 4..=10 decimal digits.
    pub digits: u32,
    /// `C`: a counter is part of the DataInput.
    pub counter: bool,
    /// Question format.
    pub question_kind: QuestionKind,
    /// `xx` of `QFxx`, 4..=64: the length of a challenge of this suite.
    pub question_len: u8,
    /// `PSHA*`: hash of the PIN that goes into the DataInput.
    pub pin_hash: Option<HashAlg>,
    /// `Snnn`: session information length in bytes (1..=999).
    pub session_len: Option<u16>,
    /// `TG`: time-step granularity.
    pub time_step: Option<TimeStep>,
}

impl OcraSuite {
    /// Default challenge-response suite of keygate's CRAM tokens.
    pub const DEFAULT_CHALLENGE_RESPONSE: &'static str = "OCRA-1:HOTP-SHA1-8:QN08";
    /// Default signature suite (question = SHA-256 of the canonical transaction encoding).
    pub const DEFAULT_SIGNATURE: &'static str = "OCRA-1:HOTP-SHA256-8:QH64";

    /// Time-step counter for a Unix time, if the suite has `T` (RFC 6287 §5.1 `T`).
    pub fn timestamp_steps(&self, unix_time: u64) -> Option<u64> {
        self.time_step.map(|step| unix_time / step.seconds())
    }

    /// Checks a response's format for this suite: `digits` decimal digits, or for `t = 0` the
    /// full HMAC as hex.
    pub fn response_len(&self) -> usize {
        if self.digits == 0 {
            self.hash.output_len() * 2
        } else {
            self.digits as usize
        }
    }

    fn invalid(text: &str, reason: impl Into<String>) -> OtpError {
        OtpError::InvalidSuite {
            suite: text.to_owned(),
            reason: reason.into(),
        }
    }
}

fn parse_two_digits(s: &str) -> Option<u8> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

impl FromStr for OcraSuite {
    type Err = OtpError;

    fn from_str(text: &str) -> Result<Self, OtpError> {
        let bad = |reason: &str| Self::invalid(text, reason);
        let mut parts = text.split(':');
        let (Some(version), Some(function), Some(data), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected three ':'-separated parts"));
        };
        if version != "OCRA-1" {
            return Err(bad("the algorithm part must be OCRA-1"));
        }
        let mut function_parts = function.split('-');
        let (Some("HOTP"), Some(hash), Some(trunc), None) = (
            function_parts.next(),
            function_parts.next(),
            function_parts.next(),
            function_parts.next(),
        ) else {
            return Err(bad("the crypto function must be HOTP-SHAx-t"));
        };
        let hash = match hash {
            "SHA1" => HashAlg::Sha1,
            "SHA256" => HashAlg::Sha256,
            "SHA512" => HashAlg::Sha512,
            _ => return Err(bad("hash must be SHA1, SHA256 or SHA512")),
        };
        let digits: u32 = match trunc {
            "0" | "4" | "5" | "6" | "7" | "8" | "9" | "10" => {
                trunc.parse().map_err(|_| bad("truncation"))?
            }
            _ => return Err(bad("truncation must be 0 or 4..=10")),
        };

        let mut tokens = data.split('-').peekable();
        let counter = tokens.next_if_eq(&"C").is_some();
        let question = tokens.next().ok_or_else(|| bad("missing question QFxx"))?;
        let question_kind = match question.get(..2) {
            Some("QA") => QuestionKind::Alphanumeric,
            Some("QN") => QuestionKind::Numeric,
            Some("QH") => QuestionKind::Hex,
            _ => return Err(bad("the question must be QAxx, QNxx or QHxx")),
        };
        let question_len = question
            .get(2..)
            .and_then(parse_two_digits)
            .filter(|len| (4..=64).contains(len))
            .ok_or_else(|| bad("question length must be two digits 04..=64"))?;

        let mut pin_hash = None;
        let mut session_len = None;
        let mut time_step = None;
        // Stage: 0 = expect P/S/T, 1 = after P, 2 = after S, 3 = after T (fixed order).
        let mut stage = 0;
        for token in tokens {
            if let Some(alg) = token.strip_prefix("PSHA") {
                if stage >= 1 {
                    return Err(bad("PIN hash out of order or repeated"));
                }
                pin_hash = Some(match alg {
                    "1" => HashAlg::Sha1,
                    "256" => HashAlg::Sha256,
                    "512" => HashAlg::Sha512,
                    _ => return Err(bad("PIN hash must be PSHA1, PSHA256 or PSHA512")),
                });
                stage = 1;
            } else if let Some(len) = token.strip_prefix('S') {
                if stage >= 2 {
                    return Err(bad("session info out of order or repeated"));
                }
                if len.len() != 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("session length must be three digits Snnn"));
                }
                let len: u16 = len.parse().map_err(|_| bad("session length"))?;
                if len == 0 {
                    return Err(bad("session length must be at least 1"));
                }
                session_len = Some(len);
                stage = 2;
            } else if let Some(spec) = token.strip_prefix('T') {
                if stage >= 3 {
                    return Err(bad("timestamp repeated"));
                }
                let (num, unit) = spec.split_at(spec.len().saturating_sub(1));
                if num.is_empty()
                    || num.len() > 2
                    || !num.bytes().all(|b| b.is_ascii_digit())
                    || num.starts_with('0')
                {
                    return Err(bad(
                        "time step must be T<n>S, T<n>M or T<n>H with n 1..=59 (hours 1..=48)",
                    ));
                }
                let n: u8 = num.parse().map_err(|_| bad("time step"))?;
                time_step = Some(match unit {
                    "S" if (1..=59).contains(&n) => TimeStep::Seconds(n),
                    "M" if (1..=59).contains(&n) => TimeStep::Minutes(n),
                    "H" if (1..=48).contains(&n) => TimeStep::Hours(n),
                    _ => {
                        return Err(bad(
                            "time step must be T<n>S, T<n>M (n 1..=59) or T<n>H (n 1..=48, errata 3729)",
                        ));
                    }
                });
                stage = 3;
            } else {
                return Err(bad(&format!("unknown DataInput element {token:?}")));
            }
        }
        Ok(Self {
            hash,
            digits,
            counter,
            question_kind,
            question_len,
            pin_hash,
            session_len,
            time_step,
        })
    }
}

impl fmt::Display for OcraSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OCRA-1:HOTP-{}-{}:", self.hash.name(), self.digits)?;
        if self.counter {
            f.write_str("C-")?;
        }
        write!(
            f,
            "Q{}{:02}",
            self.question_kind.letter(),
            self.question_len
        )?;
        if let Some(pin) = self.pin_hash {
            write!(f, "-P{}", pin.name())?;
        }
        if let Some(len) = self.session_len {
            write!(f, "-S{len:03}")?;
        }
        match self.time_step {
            Some(TimeStep::Seconds(n)) => write!(f, "-T{n}S")?,
            Some(TimeStep::Minutes(n)) => write!(f, "-T{n}M")?,
            Some(TimeStep::Hours(n)) => write!(f, "-T{n}H")?,
            None => {}
        }
        Ok(())
    }
}

/// The PIN part `P` of an OCRA DataInput.
#[derive(Debug, Clone)]
pub enum OcraPin {
    /// The PIN itself; it is hashed with the suite's `PSHA*` hash.
    Pin(Secret<String>),
    /// A PIN hash computed elsewhere (a verifier stores only the hash); must have the hash's length.
    Hash(Secret<Vec<u8>>),
}

/// The variable inputs of one OCRA computation (RFC 6287 §5.1).
#[derive(Debug, Clone, Default)]
pub struct OcraInput {
    /// `C`: the counter, required if the suite has `C`.
    pub counter: Option<u64>,
    /// `Q`: the question as typed: decimal digits for `QN`, text for `QA`, hex for `QH`.
    /// For mutual mode, the concatenation of the two challenges (see [`mutual_question`]).
    pub question: String,
    /// `P`: required if the suite has `PSHA*`.
    pub pin: Option<OcraPin>,
    /// `S`: session information, required if the suite has `Snnn`.
    pub session: Option<Vec<u8>>,
    /// `T`: time steps, required if the suite has `T` (see [`OcraSuite::timestamp_steps`]).
    pub timestamp_steps: Option<u64>,
}

/// Longest question accepted in any format: 128 bytes of DataInput (256 hex nibbles, 128 ASCII
/// characters, and decimal numbers below 16^256).
pub const MAX_QUESTION_BYTES: usize = 128;

fn nibbles_to_bytes(nibbles: &[u8]) -> [u8; MAX_QUESTION_BYTES] {
    let mut out = [0u8; MAX_QUESTION_BYTES];
    for (i, nibble) in nibbles.iter().take(2 * MAX_QUESTION_BYTES).enumerate() {
        let shift = if i % 2 == 0 { 4 } else { 0 };
        out[i / 2] |= nibble << shift;
    }
    out
}

/// Encodes a question into the 128-byte `Q` field (RFC 6287 §5.1).
pub fn encode_question(
    kind: QuestionKind,
    question: &str,
) -> Result<[u8; MAX_QUESTION_BYTES], OtpError> {
    let bad = |why: &str| OtpError::OcraInput(format!("question: {why}"));
    if question.is_empty() {
        return Err(bad("empty"));
    }
    match kind {
        QuestionKind::Alphanumeric => {
            if question.len() > MAX_QUESTION_BYTES {
                return Err(bad("longer than 128 characters"));
            }
            if !question.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(bad("QA questions are printable ASCII"));
            }
            let mut out = [0u8; MAX_QUESTION_BYTES];
            out[..question.len()].copy_from_slice(question.as_bytes());
            Ok(out)
        }
        QuestionKind::Hex => {
            if question.len() > 2 * MAX_QUESTION_BYTES {
                return Err(bad("longer than 256 hex digits"));
            }
            let nibbles: Option<Vec<u8>> = question
                .chars()
                .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
                .collect();
            Ok(nibbles_to_bytes(
                &nibbles.ok_or_else(|| bad("QH questions are hex digits"))?,
            ))
        }
        QuestionKind::Numeric => {
            if question.len() > 2 * MAX_QUESTION_BYTES
                || !question.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad("QN questions are at most 256 decimal digits"));
            }
            // Big integer, little-endian base 256.
            let mut value: Vec<u8> = Vec::new();
            for digit in question.bytes() {
                let mut carry = u32::from(digit - b'0');
                for byte in value.iter_mut() {
                    let v = u32::from(*byte) * 10 + carry;
                    *byte = (v & 0xff) as u8;
                    carry = v >> 8;
                }
                while carry > 0 {
                    value.push((carry & 0xff) as u8);
                    carry >>= 8;
                }
            }
            // Hex digits, most significant first, without leading zeros ("0" for zero).
            let mut nibbles: Vec<u8> = value
                .iter()
                .rev()
                .flat_map(|b| [b >> 4, b & 0x0f])
                .skip_while(|n| *n == 0)
                .collect();
            if nibbles.is_empty() {
                nibbles.push(0);
            }
            if nibbles.len() > 2 * MAX_QUESTION_BYTES {
                return Err(bad("QN question too large for 128 bytes"));
            }
            Ok(nibbles_to_bytes(&nibbles))
        }
    }
}

/// Builds the DataInput of RFC 6287 §5.1 for `suite` and `input`.
pub fn data_input(suite: &OcraSuite, input: &OcraInput) -> Result<Vec<u8>, OtpError> {
    let suite_text = suite.to_string();
    let mut data = Vec::with_capacity(suite_text.len() + 1 + 8 + MAX_QUESTION_BYTES + 64 + 8);
    data.extend_from_slice(suite_text.as_bytes());
    data.push(0);
    if suite.counter {
        let counter = input
            .counter
            .ok_or_else(|| OtpError::OcraInput("the suite needs a counter C".into()))?;
        data.extend_from_slice(&counter.to_be_bytes());
    }
    data.extend_from_slice(&encode_question(suite.question_kind, &input.question)?);
    if let Some(alg) = suite.pin_hash {
        match &input.pin {
            Some(OcraPin::Pin(pin)) => {
                data.extend_from_slice(&alg.digest(pin.expose_secret().as_bytes()))
            }
            Some(OcraPin::Hash(hash)) => {
                if hash.expose_secret().len() != alg.output_len() {
                    return Err(OtpError::OcraInput(format!(
                        "PIN hash must be {} bytes",
                        alg.output_len()
                    )));
                }
                data.extend_from_slice(hash.expose_secret());
            }
            None => return Err(OtpError::OcraInput("the suite needs a PIN P".into())),
        }
    }
    if let Some(len) = suite.session_len {
        let session = input
            .session
            .as_deref()
            .ok_or_else(|| OtpError::OcraInput("the suite needs session info S".into()))?;
        let len = usize::from(len);
        if session.len() > len {
            return Err(OtpError::OcraInput(format!(
                "session info longer than {len} bytes"
            )));
        }
        data.resize(data.len() + (len - session.len()), 0);
        data.extend_from_slice(session);
    }
    if suite.time_step.is_some() {
        let steps = input
            .timestamp_steps
            .ok_or_else(|| OtpError::OcraInput("the suite needs a timestamp T".into()))?;
        data.extend_from_slice(&steps.to_be_bytes());
    }
    Ok(data)
}

/// The HMAC over the DataInput (intermediate value; [`ocra`] truncates it).
pub fn ocra_hmac(suite: &OcraSuite, key: &[u8], input: &OcraInput) -> Result<Vec<u8>, OtpError> {
    if key.is_empty() {
        return Err(OtpError::EmptySecret);
    }
    Ok(suite.hash.hmac(key, &data_input(suite, input)?))
}

/// OCRA response (RFC 6287 §5.2): decimal `t` digits, or the full HMAC in lowercase hex for `t = 0`.
pub fn ocra(suite: &OcraSuite, key: &[u8], input: &OcraInput) -> Result<String, OtpError> {
    let mac = ocra_hmac(suite, key, input)?;
    if suite.digits == 0 {
        return Ok(data_encoding::HEXLOWER.encode(&mac));
    }
    Ok(format_code(dynamic_truncate(&mac), suite.digits))
}

/// Who computes in mutual challenge-response (RFC 6287 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutualRole {
    /// The server answers the client's challenge: question = client challenge | server challenge.
    Server,
    /// The client answers the server's challenge: question = server challenge | client challenge.
    Client,
}

/// The question of a mutual challenge-response computation (RFC 6287 §7.3, Appendix C.2).
pub fn mutual_question(role: MutualRole, client_challenge: &str, server_challenge: &str) -> String {
    match role {
        MutualRole::Server => format!("{client_challenge}{server_challenge}"),
        MutualRole::Client => format!("{server_challenge}{client_challenge}"),
    }
}

/// Most transaction fields in one signature.
pub const MAX_TRANSACTION_FIELDS: usize = 8;
/// Longest transaction field name in bytes.
pub const MAX_FIELD_NAME_BYTES: usize = 64;
/// Longest transaction field value in bytes.
pub const MAX_FIELD_VALUE_BYTES: usize = 1024;

/// The canonical byte encoding of transaction fields (see the module doc).
pub fn transaction_encoding(fields: &[(String, String)]) -> Result<Vec<u8>, OtpError> {
    let bad = |why: String| OtpError::Transaction(why);
    if fields.is_empty() || fields.len() > MAX_TRANSACTION_FIELDS {
        return Err(bad(format!(
            "1..={MAX_TRANSACTION_FIELDS} fields needed, got {}",
            fields.len()
        )));
    }
    let mut out = b"keygate-tx-v1\0".to_vec();
    out.push(fields.len() as u8);
    for (i, (name, value)) in fields.iter().enumerate() {
        if name.is_empty() || name.len() > MAX_FIELD_NAME_BYTES {
            return Err(bad(format!(
                "field name #{} must be 1..={MAX_FIELD_NAME_BYTES} bytes",
                i + 1
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(bad(format!("field name {name:?} has control characters")));
        }
        if fields[..i].iter().any(|(other, _)| other == name) {
            return Err(bad(format!("field name {name:?} repeated")));
        }
        if value.len() > MAX_FIELD_VALUE_BYTES {
            return Err(bad(format!(
                "value of {name:?} longer than {MAX_FIELD_VALUE_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    Ok(out)
}

/// The `QH64` question for a transaction: lowercase hex SHA-256 of [`transaction_encoding`].
pub fn transaction_question(fields: &[(String, String)]) -> Result<String, OtpError> {
    Ok(data_encoding::HEXLOWER.encode(&HashAlg::Sha256.digest(&transaction_encoding(fields)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_round_trip_examples() {
        for text in [
            "OCRA-1:HOTP-SHA1-6:QN08",
            "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
            "OCRA-1:HOTP-SHA512-8:QN08-T1M",
            "OCRA-1:HOTP-SHA512-0:C-QH64-PSHA512-S512-T48H",
            "OCRA-1:HOTP-SHA1-10:QA04-S001-T59S",
        ] {
            let suite: OcraSuite = text.parse().unwrap();
            assert_eq!(suite.to_string(), text);
        }
    }

    #[test]
    fn suite_rejects() {
        for text in [
            "OCRA-2:HOTP-SHA1-6:QN08",
            "OCRA-1:HOTP-SHA1-3:QN08",
            "OCRA-1:HOTP-SHA1-11:QN08",
            "OCRA-1:HOTP-MD5-6:QN08",
            "OCRA-1:HOTP-SHA1-6:QN03",
            "OCRA-1:HOTP-SHA1-6:QN65",
            "OCRA-1:HOTP-SHA1-6:QX08",
            "OCRA-1:HOTP-SHA1-6:C",
            "OCRA-1:HOTP-SHA1-6:QN08-T60S",
            "OCRA-1:HOTP-SHA1-6:QN08-T0H",
            "OCRA-1:HOTP-SHA1-6:QN08-T49H",
            "OCRA-1:HOTP-SHA1-6:QN08-S64",
            "OCRA-1:HOTP-SHA1-6:QN08-T1M-PSHA1",
            "OCRA-1:HOTP-SHA1-6:QN08-PSHA1-PSHA1",
            "OCRA-1:HOTP-SHA1-6:QN08:extra",
            "OCRA-1:HOTP-SHA1-6:QN08-",
            "",
        ] {
            assert!(text.parse::<OcraSuite>().is_err(), "{text} accepted");
        }
    }

    #[test]
    fn qn_encoding() {
        let q = encode_question(QuestionKind::Numeric, "11111111").unwrap();
        assert_eq!(&q[..4], &[0xa9, 0x8a, 0xc7, 0x00]);
        let q = encode_question(QuestionKind::Hex, "abc").unwrap();
        assert_eq!(&q[..3], &[0xab, 0xc0, 0x00]);
        assert!(encode_question(QuestionKind::Numeric, "12a").is_err());
        assert!(encode_question(QuestionKind::Hex, &"0".repeat(257)).is_err());
    }

    #[test]
    fn transaction_encoding_is_order_and_boundary_sensitive() {
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        let a = transaction_question(&f(&[("amount", "100"), ("iban", "DE1")])).unwrap();
        let b = transaction_question(&f(&[("iban", "DE1"), ("amount", "100")])).unwrap();
        let c = transaction_question(&f(&[("amount", "10"), ("iban", "0DE1")])).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(transaction_question(&f(&[("a", "1"), ("a", "2")])).is_err());
        assert!(transaction_question(&[]).is_err());
        let nine: Vec<_> = (0..9).map(|i| (format!("f{i}"), String::new())).collect();
        assert!(transaction_question(&nine).is_err());
        let enc = transaction_encoding(&f(&[("ab", "xyz")])).unwrap();
        assert_eq!(
            enc,
            b"keygate-tx-v1\0\x01\x00\x02ab\x00\x00\x00\x03xyz".to_vec()
        );
    }
}
