//! QR codes for enrolment (`otpauth://` URIs) and for offline challenges (the "mobile app QR
//! code" mode of DESIGN.md), rendered for a terminal (Unicode half blocks), as SVG, or as PNG.
//!
//! # What a challenge QR code encodes
//!
//! A URI, UTF-8, percent-encoded like `otpauth://`:
//!
//! ```text
//! keygate://ocra?v=1&serial=<serial>&suite=<OCRA suite>&q=<challenge>[&ts=<time steps>]
//! keygate://sign?v=1&serial=<serial>&suite=<OCRA suite>&field=<name>:<value>&field=...[&ts=<time steps>]
//! ```
//!
//! `ocra` carries the challenge the verifier issued (single use, 120 s by default); the token
//! answers it with [`crate::otp::ocra()`]. `sign` carries the transaction fields in order, so the
//! token can show the user what they sign; the token recomputes the question with
//! [`crate::otp::transaction_question`] (the verifier never sends a bare hash to sign). `ts` is
//! present when the suite has a time step, so an offline token with a wrong clock still computes
//! what the verifier expects. The QR code carries no secret.

use qrcode::{Color, EcLevel, QrCode};

use super::error::OtpError;
use super::ocra::OcraSuite;
use super::token::Serial;

/// A payload shown to an offline token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengePayload {
    /// Challenge-response.
    Challenge {
        /// Token serial (so the app picks the right token).
        serial: Serial,
        /// The suite.
        suite: OcraSuite,
        /// The challenge (question).
        challenge: String,
        /// Time steps if the suite has `T`.
        timestamp_steps: Option<u64>,
    },
    /// Transaction signature.
    Sign {
        /// Token serial.
        serial: Serial,
        /// The suite.
        suite: OcraSuite,
        /// Transaction fields in order.
        fields: Vec<(String, String)>,
        /// Time steps if the suite has `T`.
        timestamp_steps: Option<u64>,
    },
}

fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn dec(text: &str) -> Result<String, OtpError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let value = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| OtpError::Qr("bad percent escape".into()))?;
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| OtpError::Qr("payload is not UTF-8".into()))
}

impl ChallengePayload {
    /// The URI text put into the QR code.
    pub fn to_uri(&self) -> String {
        let (kind, serial, suite, ts) = match self {
            Self::Challenge {
                serial,
                suite,
                timestamp_steps,
                ..
            } => ("ocra", serial, suite, timestamp_steps),
            Self::Sign {
                serial,
                suite,
                timestamp_steps,
                ..
            } => ("sign", serial, suite, timestamp_steps),
        };
        let mut uri = format!(
            "keygate://{kind}?v=1&serial={}&suite={}",
            enc(serial.as_str()),
            enc(&suite.to_string())
        );
        match self {
            Self::Challenge { challenge, .. } => uri.push_str(&format!("&q={}", enc(challenge))),
            Self::Sign { fields, .. } => {
                for (name, value) in fields {
                    uri.push_str(&format!("&field={}:{}", enc(name), enc(value)));
                }
            }
        }
        if let Some(ts) = ts {
            uri.push_str(&format!("&ts={ts}"));
        }
        uri
    }

    /// Parses a scanned payload.
    pub fn parse(uri: &str) -> Result<Self, OtpError> {
        if uri.len() > 4096 {
            return Err(OtpError::Qr("payload too long".into()));
        }
        let bad = |why: &str| OtpError::Qr(format!("challenge payload: {why}"));
        let rest = uri
            .strip_prefix("keygate://")
            .ok_or_else(|| bad("must start with keygate://"))?;
        let (kind, query) = rest
            .split_once('?')
            .ok_or_else(|| bad("missing parameters"))?;
        let (mut version, mut serial, mut suite, mut q, mut ts) = (None, None, None, None, None);
        let mut fields = Vec::new();
        for pair in query.split('&') {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| bad("parameter without '='"))?;
            match name {
                "v" => version = Some(value.to_owned()),
                "serial" => serial = Some(dec(value)?.parse::<Serial>()?),
                "suite" => suite = Some(dec(value)?.parse::<OcraSuite>()?),
                "q" => q = Some(dec(value)?),
                "ts" => {
                    ts = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| bad("ts is not a number"))?,
                    )
                }
                "field" => {
                    let (n, v) = value
                        .split_once(':')
                        .ok_or_else(|| bad("field without ':'"))?;
                    fields.push((dec(n)?, dec(v)?));
                }
                _ => {}
            }
        }
        if version.as_deref() != Some("1") {
            return Err(bad("unsupported version (v=1 expected)"));
        }
        let serial = serial.ok_or_else(|| bad("missing serial"))?;
        let suite = suite.ok_or_else(|| bad("missing suite"))?;
        if suite.time_step.is_some() != ts.is_some() {
            return Err(bad(
                "ts must be present exactly when the suite has a time step",
            ));
        }
        match kind {
            "ocra" => Ok(Self::Challenge {
                serial,
                suite,
                challenge: q.ok_or_else(|| bad("missing q"))?,
                timestamp_steps: ts,
            }),
            "sign" if !fields.is_empty() => Ok(Self::Sign {
                serial,
                suite,
                fields,
                timestamp_steps: ts,
            }),
            "sign" => Err(bad("no fields")),
            _ => Err(bad("kind must be ocra or sign")),
        }
    }
}

/// A QR code ready to be rendered.
#[derive(Clone)]
pub struct Qr {
    code: QrCode,
}

impl std::fmt::Debug for Qr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qr")
            .field("width", &self.code.width())
            .finish()
    }
}

/// Modules of quiet zone around the code (ISO/IEC 18004 asks for 4).
const QUIET: usize = 4;

impl Qr {
    /// Encodes text with error correction level M.
    pub fn new(text: &str) -> Result<Self, OtpError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|e| OtpError::Qr(format!("cannot encode {} bytes: {e}", text.len())))?;
        Ok(Self { code })
    }

    /// Modules per side (without quiet zone).
    pub fn width(&self) -> usize {
        self.code.width()
    }

    /// Whether the module at (x, y) is dark; outside the code (quiet zone) is light.
    pub fn is_dark(&self, x: isize, y: isize) -> bool {
        let width = self.code.width();
        match (usize::try_from(x), usize::try_from(y)) {
            (Ok(x), Ok(y)) if x < width && y < width => {
                self.code.to_colors()[y * width + x] == Color::Dark
            }
            _ => false,
        }
    }

    fn matrix(&self) -> Vec<bool> {
        self.code
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect()
    }

    /// Terminal rendering with Unicode half blocks: two module rows per text line, light modules
    /// drawn (for dark-background terminals, like `qrencode -t UTF8`), quiet zone of 4.
    pub fn to_terminal(&self) -> String {
        let width = self.code.width();
        let dark = self.matrix();
        let total = width + 2 * QUIET;
        let light_at = |x: usize, y: usize| -> bool {
            if x < QUIET || y < QUIET || x >= QUIET + width || y >= QUIET + width {
                return true;
            }
            !dark[(y - QUIET) * width + (x - QUIET)]
        };
        let mut out = String::new();
        for row in (0..total).step_by(2) {
            for x in 0..total {
                let top = light_at(x, row);
                let bottom = row + 1 >= total || light_at(x, row + 1);
                out.push(match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
        }
        out
    }

    /// SVG rendering (black on white, quiet zone, at least 200 px).
    pub fn to_svg(&self) -> String {
        self.code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build()
    }

    /// PNG rendering: 8-bit grayscale, `scale` pixels per module (1..=64), quiet zone of 4.
    pub fn to_png(&self, scale: usize) -> Result<Vec<u8>, OtpError> {
        let scale = scale.clamp(1, 64);
        let width = self.code.width();
        let dark = self.matrix();
        let side = (width + 2 * QUIET) * scale;
        let mut pixels = vec![255u8; side * side];
        for y in 0..width {
            for x in 0..width {
                if dark[y * width + x] {
                    for dy in 0..scale {
                        let row = ((y + QUIET) * scale + dy) * side;
                        let start = row + (x + QUIET) * scale;
                        pixels[start..start + scale].fill(0);
                    }
                }
            }
        }
        let side_u32 = u32::try_from(side).map_err(|_| OtpError::Qr("image too large".into()))?;
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, side_u32, side_u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| OtpError::Qr(format!("PNG: {e}")))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| OtpError::Qr(format!("PNG: {e}")))?;
        writer
            .finish()
            .map_err(|e| OtpError::Qr(format!("PNG: {e}")))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let payload = ChallengePayload::Sign {
            serial: "1234567897".parse().unwrap(),
            suite: "OCRA-1:HOTP-SHA256-8:QH64-T1M".parse().unwrap(),
            fields: vec![
                ("amount".into(), "100.00 EUR".into()),
                ("to:iban".into(), "DE89 3704&=".into()),
            ],
            timestamp_steps: Some(12345),
        };
        let uri = payload.to_uri();
        assert_eq!(ChallengePayload::parse(&uri).unwrap(), payload);
        let c = ChallengePayload::Challenge {
            serial: "1234567897".parse().unwrap(),
            suite: "OCRA-1:HOTP-SHA1-8:QN08".parse().unwrap(),
            challenge: "12345678".into(),
            timestamp_steps: None,
        };
        assert_eq!(
            c.to_uri(),
            "keygate://ocra?v=1&serial=1234567897&suite=OCRA-1%3AHOTP-SHA1-8%3AQN08&q=12345678"
        );
        assert_eq!(ChallengePayload::parse(&c.to_uri()).unwrap(), c);
        assert!(
            ChallengePayload::parse(
                "keygate://ocra?v=2&serial=1&suite=OCRA-1%3AHOTP-SHA1-8%3AQN08&q=1"
            )
            .is_err()
        );
        assert!(
            ChallengePayload::parse(
                "keygate://ocra?v=1&serial=1&suite=OCRA-1%3AHOTP-SHA1-8%3AQN08-T1M&q=1"
            )
            .is_err()
        );
    }

    #[test]
    fn renderings() {
        let qr = Qr::new("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP").unwrap();
        let width = qr.width();
        let term = qr.to_terminal();
        assert_eq!(term.lines().count(), (width + 8).div_ceil(2));
        assert!(term.lines().all(|l| l.chars().count() == width + 8));
        // Finder pattern: top-left module dark.
        assert!(qr.is_dark(0, 0));
        assert!(!qr.is_dark(-1, 0));
        let svg = qr.to_svg();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"));
        let png = qr.to_png(4).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // Decode our PNG back and check one dark module at the finder pattern.
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.width as usize, (width + 8) * 4);
        let side = info.width as usize;
        assert_eq!(buf[(4 * 4) * side + 4 * 4], 0); // first code module: dark
        assert_eq!(buf[0], 255); // quiet zone: light
        assert!(Qr::new(&"x".repeat(5000)).is_err());
    }
}
