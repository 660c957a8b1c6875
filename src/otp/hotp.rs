//! HOTP (RFC 4226) and TOTP (RFC 6238) over HMAC-SHA-1/256/512.

use hmac::{Hmac, KeyInit, Mac};

use super::error::OtpError;

/// The hash function under HMAC (RFC 6238 §1.2 allows SHA-1, SHA-256, SHA-512).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashAlg {
    /// HMAC-SHA-1 (RFC 4226 default).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl HashAlg {
    /// Name as used by `otpauth://` URIs and OCRA suites: `SHA1`, `SHA256`, `SHA512`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Parses `SHA1` / `SHA256` / `SHA512` (case-insensitive, `SHA-256` also accepted).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Self::Sha1),
            "SHA256" => Some(Self::Sha256),
            "SHA512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Output length of the hash in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// Plain hash of `data` (used for OCRA PIN hashes, RFC 6287 §5.1 `P`).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Self::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Self::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// HMAC of `data` under `key` with this hash.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            // HMAC accepts keys of any length, so `new_from_slice` cannot fail; an
            // empty result would only make every comparison fail, never panic.
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        }
        match self {
            Self::Sha1 => run::<Hmac<sha1::Sha1>>(key, data),
            Self::Sha256 => run::<Hmac<sha2::Sha256>>(key, data),
            Self::Sha512 => run::<Hmac<sha2::Sha512>>(key, data),
        }
    }
}

impl std::fmt::Display for HashAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// HMAC of the 8-byte big-endian counter (RFC 4226 §5.3 step 1), the intermediate value of
/// RFC 4226 Appendix D Table 1.
pub fn hotp_hmac(secret: &[u8], counter: u64, alg: HashAlg) -> Vec<u8> {
    alg.hmac(secret, &counter.to_be_bytes())
}

/// Dynamic truncation (RFC 4226 §5.3 step 2, `DT`): 31-bit value at the offset given by the
/// low nibble of the last byte. Returns 0 for an HMAC shorter than 20 bytes (never produced here).
pub fn dynamic_truncate(hmac: &[u8]) -> u32 {
    let Some(last) = hmac.last() else { return 0 };
    let offset = usize::from(last & 0x0f);
    match hmac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a & 0x7f, b, c, d]),
        _ => 0,
    }
}

/// Reduces a truncated value to `digits` decimal digits, zero-padded (RFC 4226 §5.3 step 3).
pub(crate) fn format_code(value: u32, digits: u32) -> String {
    let modulus = 10u64.pow(digits);
    format!(
        "{:0width$}",
        u64::from(value) % modulus,
        width = digits as usize
    )
}

fn check_digits(digits: u32) -> Result<(), OtpError> {
    if (6..=10).contains(&digits) {
        Ok(())
    } else {
        Err(OtpError::InvalidDigits(digits, "6..=10"))
    }
}

/// HOTP value (RFC 4226 §5.3) with `digits` in 6..=10 and any of the three hashes.
pub fn hotp(secret: &[u8], counter: u64, digits: u32, alg: HashAlg) -> Result<String, OtpError> {
    check_digits(digits)?;
    if secret.is_empty() {
        return Err(OtpError::EmptySecret);
    }
    Ok(format_code(
        dynamic_truncate(&hotp_hmac(secret, counter, alg)),
        digits,
    ))
}

/// TOTP time step number `T = (unix_time - t0) / step` (RFC 6238 §4.2).
pub fn totp_step(unix_time: u64, step: u64, t0: u64) -> Result<u64, OtpError> {
    if step == 0 {
        return Err(OtpError::InvalidStep);
    }
    let since = unix_time.checked_sub(t0).ok_or(OtpError::TimeBeforeT0 {
        time: unix_time,
        t0,
    })?;
    Ok(since / step)
}

/// TOTP value (RFC 6238 §4.2): HOTP over the time step number.
pub fn totp(
    secret: &[u8],
    unix_time: u64,
    step: u64,
    t0: u64,
    digits: u32,
    alg: HashAlg,
) -> Result<String, OtpError> {
    hotp(secret, totp_step(unix_time, step, t0)?, digits, alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4226_first_and_last() {
        assert_eq!(
            hotp(b"12345678901234567890", 0, 6, HashAlg::Sha1).unwrap(),
            "755224"
        );
        assert_eq!(
            hotp(b"12345678901234567890", 9, 6, HashAlg::Sha1).unwrap(),
            "520489"
        );
    }

    #[test]
    fn bad_parameters() {
        assert!(hotp(b"k", 0, 5, HashAlg::Sha1).is_err());
        assert!(hotp(b"k", 0, 11, HashAlg::Sha1).is_err());
        assert_eq!(hotp(b"", 0, 6, HashAlg::Sha1), Err(OtpError::EmptySecret));
        assert_eq!(
            totp(b"k", 10, 0, 0, 6, HashAlg::Sha1),
            Err(OtpError::InvalidStep)
        );
        assert!(totp(b"k", 10, 30, 20, 6, HashAlg::Sha1).is_err());
    }

    #[test]
    fn ten_digits_pad() {
        let code = hotp(b"12345678901234567890", 2, 10, HashAlg::Sha1).unwrap();
        assert_eq!(code, "0137359152");
    }
}
