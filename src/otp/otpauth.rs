//! `otpauth://` URIs (the Key Uri Format of Google Authenticator, also read by FreeOTP, Aegis,
//! pyotp and oathtool users): `otpauth://TYPE/ISSUER:ACCOUNT?secret=BASE32&issuer=..&algorithm=..
//! &digits=..&counter=..&period=..`. Base32 is RFC 4648 §6; written without padding, read with or
//! without padding and in either case.

use super::error::OtpError;
use super::hotp::HashAlg;
use crate::secret::Secret;

/// HOTP with its next counter, or TOTP with its period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpauthMethod {
    /// `otpauth://hotp/...&counter=N`.
    Hotp {
        /// Next counter (required by the format).
        counter: u64,
    },
    /// `otpauth://totp/...&period=N` (default 30).
    Totp {
        /// Step in seconds.
        period: u64,
    },
}

/// A parsed or to-be-written `otpauth://` URI.
#[derive(Debug, Clone, PartialEq)]
pub struct OtpauthUri {
    /// HOTP or TOTP and its moving factor parameter.
    pub method: OtpauthMethod,
    /// The raw secret.
    pub secret: Secret<Vec<u8>>,
    /// Issuer (parameter `issuer`, or the label prefix before `:`).
    pub issuer: Option<String>,
    /// Account name (the label after `issuer:`).
    pub account: String,
    /// HMAC hash (default SHA1).
    pub algorithm: HashAlg,
    /// Digits (default 6; 6..=10 accepted).
    pub digits: u32,
}

/// Decodes an RFC 4648 base32 secret: case-insensitive, `=` padding and spaces optional.
pub fn decode_base32(text: &str) -> Result<Vec<u8>, OtpError> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c != ' ')
        .collect::<String>()
        .trim_end_matches('=')
        .to_ascii_uppercase();
    if cleaned.is_empty() {
        return Err(OtpError::Base32("empty secret".into()));
    }
    if let Some((pos, c)) = cleaned
        .char_indices()
        .find(|(_, c)| !matches!(c, 'A'..='Z' | '2'..='7'))
    {
        return Err(OtpError::Base32(format!(
            "character {c:?} at position {pos} is not in the base32 alphabet A-Z 2-7"
        )));
    }
    data_encoding::BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|e| {
            OtpError::Base32(format!(
                "{e} (length {} is not a valid base32 length?)",
                cleaned.len()
            ))
        })
}

/// Encodes a secret as upper-case base32 without padding.
pub fn encode_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(text: &str, plus_is_space: bool) -> Result<String, OtpError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let value = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| OtpError::Uri(format!("bad percent escape at byte {i}")))?;
                out.push(value);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| OtpError::Uri("percent-decoded text is not UTF-8".into()))
}

/// Longest URI accepted.
pub const MAX_URI_LEN: usize = 4096;

impl OtpauthUri {
    /// Parses an `otpauth://` URI.
    pub fn parse(uri: &str) -> Result<Self, OtpError> {
        if uri.len() > MAX_URI_LEN {
            return Err(OtpError::Uri(format!("longer than {MAX_URI_LEN} bytes")));
        }
        let rest = uri
            .strip_prefix("otpauth://")
            .ok_or_else(|| OtpError::Uri("must start with otpauth://".into()))?;
        let (kind, rest) = rest
            .split_once('/')
            .ok_or_else(|| OtpError::Uri("missing /label".into()))?;
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));
        // Split on a literal ':' first (the issuer may contain an escaped one); a label written
        // with an escaped separator ("Issuer%3Aaccount") is split after decoding.
        let (label_issuer, account) = match label.split_once(':') {
            Some((issuer, account)) => (
                Some(percent_decode(issuer, false)?),
                percent_decode(account, false)?,
            ),
            None => {
                let decoded = percent_decode(label, false)?;
                match decoded.split_once(':') {
                    Some((issuer, account)) => (Some(issuer.to_owned()), account.to_owned()),
                    None => (None, decoded),
                }
            }
        };
        let (label_issuer, account) = (
            label_issuer.map(|i| i.trim().to_owned()),
            account.trim().to_owned(),
        );
        let mut secret = None;
        let mut issuer = None;
        let mut algorithm = None;
        let mut digits = None;
        let mut counter = None;
        let mut period = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value, true)?;
            let slot = match name.to_ascii_lowercase().as_str() {
                "secret" => &mut secret,
                "issuer" => &mut issuer,
                "algorithm" => &mut algorithm,
                "digits" => &mut digits,
                "counter" => &mut counter,
                "period" => &mut period,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(OtpError::Uri(format!("parameter {name} repeated")));
            }
        }
        let secret = decode_base32(
            &secret.ok_or_else(|| OtpError::Uri("missing secret parameter".into()))?,
        )?;
        let number = |name: &str, value: Option<String>| -> Result<Option<u64>, OtpError> {
            value
                .map(|v| {
                    v.parse::<u64>()
                        .map_err(|_| OtpError::Uri(format!("{name}={v:?} is not a number")))
                })
                .transpose()
        };
        let method = match kind.to_ascii_lowercase().as_str() {
            "hotp" => OtpauthMethod::Hotp {
                counter: number("counter", counter)?
                    .ok_or_else(|| OtpError::Uri("hotp needs counter".into()))?,
            },
            "totp" => {
                let period = number("period", period)?.unwrap_or(30);
                if period == 0 {
                    return Err(OtpError::Uri("period must be positive".into()));
                }
                OtpauthMethod::Totp { period }
            }
            other => {
                return Err(OtpError::Uri(format!(
                    "type {other:?} is neither hotp nor totp"
                )));
            }
        };
        let algorithm = match algorithm {
            Some(name) => HashAlg::from_name(&name)
                .ok_or_else(|| OtpError::Uri(format!("unknown algorithm {name:?}")))?,
            None => HashAlg::Sha1,
        };
        let digits = u32::try_from(number("digits", digits)?.unwrap_or(6)).unwrap_or(0);
        if !(6..=10).contains(&digits) {
            return Err(OtpError::InvalidDigits(digits, "6..=10"));
        }
        Ok(Self {
            method,
            secret: Secret::new(secret),
            issuer: issuer
                .filter(|i| !i.is_empty())
                .or(label_issuer.filter(|i| !i.is_empty())),
            account,
            algorithm,
            digits,
        })
    }

    /// Writes the URI (label `issuer:account` when an issuer is set, parameters in a fixed order).
    pub fn to_uri(&self) -> String {
        let (kind, extra) = match self.method {
            OtpauthMethod::Hotp { counter } => ("hotp", format!("&counter={counter}")),
            OtpauthMethod::Totp { period } => ("totp", format!("&period={period}")),
        };
        let label = match &self.issuer {
            Some(issuer) => format!(
                "{}:{}",
                percent_encode(issuer),
                percent_encode(&self.account)
            ),
            None => percent_encode(&self.account),
        };
        let mut uri = format!(
            "otpauth://{kind}/{label}?secret={}",
            encode_base32(self.secret.expose_secret())
        );
        if let Some(issuer) = &self.issuer {
            uri.push_str(&format!("&issuer={}", percent_encode(issuer)));
        }
        uri.push_str(&format!(
            "&algorithm={}&digits={}{extra}",
            self.algorithm.name(),
            self.digits
        ));
        uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_example() {
        let uri = OtpauthUri::parse(
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        )
        .unwrap();
        assert_eq!(uri.issuer.as_deref(), Some("Example"));
        assert_eq!(uri.account, "alice@google.com");
        assert_eq!(
            uri.secret.expose_secret().as_slice(),
            b"Hello!\xde\xad\xbe\xef"
        );
        assert_eq!(uri.method, OtpauthMethod::Totp { period: 30 });
        assert_eq!(uri.digits, 6);
        assert_eq!(OtpauthUri::parse(&uri.to_uri()).unwrap(), uri);
    }

    #[test]
    fn round_trip_hotp_with_odd_characters() {
        let uri = OtpauthUri {
            method: OtpauthMethod::Hotp { counter: 42 },
            secret: Secret::new(vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
            issuer: Some("ACME & Co: Ltd".into()),
            account: "jöhn doe+x@example.com".into(),
            algorithm: HashAlg::Sha512,
            digits: 8,
        };
        let text = uri.to_uri();
        assert!(
            text.starts_with(
                "otpauth://hotp/ACME%20%26%20Co%3A%20Ltd:j%C3%B6hn%20doe%2Bx%40example.com?"
            ),
            "{text}"
        );
        assert_eq!(OtpauthUri::parse(&text).unwrap(), uri);
    }

    #[test]
    fn errors() {
        let e = OtpauthUri::parse("otpauth://totp/x?secret=JBSWY3DPEH1K3PXP").unwrap_err();
        assert!(
            matches!(e, OtpError::Base32(ref m) if m.contains("'1'")),
            "{e}"
        );
        assert!(matches!(
            OtpauthUri::parse("otpauth://totp/x?secret=A"),
            Err(OtpError::Base32(_))
        ));
        assert!(matches!(
            OtpauthUri::parse("otpauth://totp/x"),
            Err(OtpError::Uri(_))
        ));
        assert!(matches!(
            OtpauthUri::parse("otpauth://hotp/x?secret=JBSWY3DP"),
            Err(OtpError::Uri(_))
        ));
        assert!(matches!(
            OtpauthUri::parse("otpauth://motp/x?secret=JBSWY3DP"),
            Err(OtpError::Uri(_))
        ));
        assert!(matches!(
            OtpauthUri::parse("http://totp/x?secret=JBSWY3DP"),
            Err(OtpError::Uri(_))
        ));
        assert!(OtpauthUri::parse("otpauth://totp/x?secret=JBSWY3DP&digits=5").is_err());
        assert!(OtpauthUri::parse("otpauth://totp/x?secret=JBSWY3DP&algorithm=MD5").is_err());
        assert!(OtpauthUri::parse("otpauth://totp/x?secret=JBSWY3DP&period=0").is_err());
        assert!(OtpauthUri::parse("otpauth://totp/x?secret=JBSWY3DP&secret=JBSWY3DP").is_err());
        assert!(OtpauthUri::parse("otpauth://totp/%zz?secret=JBSWY3DP").is_err());
        assert!(
            OtpauthUri::parse(&format!("otpauth://totp/x?secret={}", "A".repeat(5000))).is_err()
        );
        // lower case and padding accepted
        assert_eq!(decode_base32("jbswy3dp").unwrap(), b"Hello");
        assert_eq!(decode_base32("JBSWY3DPEE======").unwrap(), b"Hello!");
    }
}
