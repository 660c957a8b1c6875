//! The software token (device side): a Digipass-like token held by keygate or by a test, whose
//! seed is sealed under its PIN. It shows the current code, answers challenges (typed or scanned
//! from a QR code), signs transaction fields, and renders its enrolment as an `otpauth://` URI.
//!
//! # PIN protection
//!
//! - The PIN is `pin_digits` decimal digits (5 by default, like the reference Digipass).
//! - Key derivation: Argon2id (RFC 9106, argon2 crate 0.6, version 0x13) of the PIN with a
//!   random 16-byte salt into 64 bytes: an AES-256 key and an HMAC-SHA-256 key.
//!   Default cost [`KdfParams::DEFAULT`]: 48 MiB, 2 passes, 1 lane. Measured on this 2-core
//!   machine under load from other builds (thread CPU time, dependencies optimised, which the
//!   dev profile does too): 64 MiB 105-138 ms, 48 MiB 75-99 ms, 32 MiB 48-65 ms, 19 MiB
//!   23-43 ms per PIN check (`cargo test --lib kdf_timing -- --ignored --nocapture` prints them).
//!   Tests use [`KdfParams::TEST`] (64 KiB, 1 pass) through
//!   [`SoftTokenConfig`].
//! - Sealing: AES-256-CBC (PKCS#7) of the seed with a random IV, then HMAC-SHA-256
//!   (encrypt-then-MAC) over the whole blob and the token serial (so a blob cannot be moved to
//!   another token). A wrong PIN shows up as a MAC mismatch; nothing is decrypted before the MAC
//!   check passes.
//! - Blob layout: `"KGST" | 0x01 | m_cost u32 BE | t_cost u32 BE | p_cost u32 BE | salt[16] |
//!   iv[16] | ciphertext length u32 BE | ciphertext | mac[32]`.
//! - Lock: `max_pin_failures` (5) wrong PINs in a row lock the token itself; a correct PIN before
//!   that resets the count. The count and the lock are in [`SoftTokenState`], which the caller
//!   persists after every call (the state changes even when the call fails). A locked token is
//!   unlocked as a Digipass is, with a helpdesk code for the challenge it shows and a new PIN
//!   ([`super::soft_unlock`]); this lock is the device's, separate from the verifier's fail
//!   counter.
//!   A PIN with the wrong format (not `pin_digits` digits) is refused without counting, as a
//!   hardware keypad would not accept it.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};

use super::error::OtpError;
use super::hotp::{hotp, totp};
use super::ocra::{OcraInput, OcraPin, OcraSuite, ocra, transaction_question};
use super::otpauth::{OtpauthMethod, OtpauthUri};
use super::qr::ChallengePayload;
use super::soft_unlock;
use super::token::{FillRandom, TokenKind, TokenParams};
use crate::secret::{Secret, ct_eq};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Production default: 48 MiB, 2 passes, 1 lane (75-99 ms of CPU per PIN check here).
    pub const DEFAULT: Self = Self {
        m_cost_kib: 48 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
    /// Light parameters for tests only.
    pub const TEST: Self = Self {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    /// Upper bounds accepted from a stored blob (a corrupt or hostile state must not make a PIN
    /// check allocate gigabytes or run for minutes).
    const MAX_M_COST_KIB: u32 = 1024 * 1024;
    const MAX_T_COST: u32 = 64;
    const MAX_P_COST: u32 = 16;

    fn derive(self, pin: &[u8], salt: &[u8]) -> Result<Secret<Vec<u8>>, OtpError> {
        if self.m_cost_kib > Self::MAX_M_COST_KIB
            || self.t_cost > Self::MAX_T_COST
            || self.p_cost > Self::MAX_P_COST
        {
            return Err(OtpError::Kdf(format!(
                "Argon2 parameters out of bounds: {self:?}"
            )));
        }
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(64))
            .map_err(|e| OtpError::Kdf(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Secret::new(vec![0u8; 64]);
        argon
            .hash_password_into(pin, salt, out.expose_secret_mut())
            .map_err(|e| OtpError::Kdf(e.to_string()))?;
        Ok(out)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Soft-token configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftTokenConfig {
    /// Argon2id cost.
    pub kdf: KdfParams,
    /// PIN length in digits (default 5).
    pub pin_digits: usize,
    /// Wrong PINs in a row that lock the token (default 5).
    pub max_pin_failures: u32,
}

impl Default for SoftTokenConfig {
    fn default() -> Self {
        Self {
            kdf: KdfParams::DEFAULT,
            pin_digits: 5,
            max_pin_failures: 5,
        }
    }
}

/// Everything the caller persists for a soft token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftTokenState {
    /// Serial, kind, digits, ...
    pub params: TokenParams,
    /// The sealed seed (see the module doc for the layout).
    pub sealed_seed: Vec<u8>,
    /// Next HOTP counter / OCRA `C` value.
    pub counter: u64,
    /// Wrong PINs in a row.
    pub failed_pins: u32,
    /// Locked by too many wrong PINs.
    pub locked: bool,
    /// PIN length and lock threshold.
    pub config: SoftTokenConfig,
    /// The unlock challenge shown while locked ([`super::soft_unlock`]); single use.
    #[serde(default)]
    pub unlock_challenge: Option<String>,
    /// Check value of the seed, so an unlock re-seals only the token's own seed (absent in
    /// states written before unlocking existed; the first unlock fills it in).
    #[serde(default)]
    pub seed_check: Option<Vec<u8>>,
    /// Wrong unlock codes in a row; at [`soft_unlock::MAX_WRONG_CODES`] the token gives no
    /// more unlock challenges and must be provisioned anew.
    #[serde(default)]
    pub wrong_unlock_codes: u32,
}

const MAGIC: &[u8; 4] = b"KGST";
const VERSION: u8 = 1;
const HEADER_LEN: usize = 4 + 1 + 12 + 16 + 16 + 4;

fn blob_mac(mac_key: &[u8], blob: &[u8], serial: &str) -> Result<Vec<u8>, OtpError> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(mac_key)
        .map_err(|_| OtpError::Sealed("MAC key".into()))?;
    mac.update(blob);
    mac.update(&(serial.len() as u64).to_be_bytes());
    mac.update(serial.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

fn seal(
    seed: &[u8],
    pin: &str,
    serial: &str,
    kdf: KdfParams,
    fill: FillRandom<'_>,
) -> Result<Vec<u8>, OtpError> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    fill(&mut salt);
    fill(&mut iv);
    let keys = kdf.derive(pin.as_bytes(), &salt)?;
    let (enc_key, mac_key) = keys.expose_secret().split_at(32);
    let ciphertext = cbc::Encryptor::<aes::Aes256>::new_from_slices(enc_key, &iv)
        .map_err(|_| OtpError::Sealed("cipher key".into()))?
        .encrypt_padded_vec::<Pkcs7>(seed);
    let mut blob = Vec::with_capacity(HEADER_LEN + ciphertext.len() + 32);
    blob.extend_from_slice(MAGIC);
    blob.push(VERSION);
    for v in [kdf.m_cost_kib, kdf.t_cost, kdf.p_cost] {
        blob.extend_from_slice(&v.to_be_bytes());
    }
    blob.extend_from_slice(&salt);
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(
        &u32::try_from(ciphertext.len())
            .map_err(|_| OtpError::Sealed("seed too long".into()))?
            .to_be_bytes(),
    );
    blob.extend_from_slice(&ciphertext);
    let mac = blob_mac(mac_key, &blob, serial)?;
    blob.extend_from_slice(&mac);
    Ok(blob)
}

/// Outcome of opening a sealed seed.
enum Opened {
    Seed(Secret<Vec<u8>>),
    WrongPin,
}

fn be_u32(bytes: &[u8], at: usize) -> Result<u32, OtpError> {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| OtpError::Sealed("truncated".into()))
}

fn unseal(blob: &[u8], pin: &str, serial: &str) -> Result<Opened, OtpError> {
    if blob.len() < HEADER_LEN + 16 + 32 || &blob[..4] != MAGIC {
        return Err(OtpError::Sealed("not a sealed seed".into()));
    }
    if blob[4] != VERSION {
        return Err(OtpError::Sealed(format!("unknown version {}", blob[4])));
    }
    let kdf = KdfParams {
        m_cost_kib: be_u32(blob, 5)?,
        t_cost: be_u32(blob, 9)?,
        p_cost: be_u32(blob, 13)?,
    };
    let salt = &blob[17..33];
    let iv = &blob[33..49];
    let ct_len = be_u32(blob, 49)? as usize;
    if blob.len() != HEADER_LEN + ct_len + 32 {
        return Err(OtpError::Sealed("length mismatch".into()));
    }
    let (body, mac) = blob.split_at(HEADER_LEN + ct_len);
    let keys = kdf.derive(pin.as_bytes(), salt)?;
    let (enc_key, mac_key) = keys.expose_secret().split_at(32);
    if !ct_eq(&blob_mac(mac_key, body, serial)?, mac) {
        return Ok(Opened::WrongPin);
    }
    let seed = cbc::Decryptor::<aes::Aes256>::new_from_slices(enc_key, iv)
        .map_err(|_| OtpError::Sealed("cipher key".into()))?
        .decrypt_padded_vec::<Pkcs7>(&body[HEADER_LEN..])
        .map_err(|_| OtpError::Sealed("bad padding after a valid MAC".into()))?;
    Ok(Opened::Seed(Secret::new(seed)))
}

/// A software token. Every method that takes the PIN may change [`SoftToken::state`] (fail
/// count, lock, counter): persist it after each call, also after an error.
#[derive(Debug, Clone)]
pub struct SoftToken {
    state: SoftTokenState,
}

impl SoftToken {
    /// Provisions a token: seals `seed` under `pin`.
    pub fn create(
        params: TokenParams,
        seed: &Secret<Vec<u8>>,
        pin: &str,
        config: SoftTokenConfig,
        fill: FillRandom<'_>,
    ) -> Result<Self, OtpError> {
        params.validate()?;
        if seed.expose_secret().is_empty() {
            return Err(OtpError::EmptySecret);
        }
        check_pin_format(pin, config.pin_digits)?;
        let sealed_seed = seal(
            seed.expose_secret(),
            pin,
            params.serial.as_str(),
            config.kdf,
            fill,
        )?;
        Ok(Self {
            state: SoftTokenState {
                params,
                sealed_seed,
                counter: 0,
                failed_pins: 0,
                locked: false,
                config,
                unlock_challenge: None,
                seed_check: Some(soft_unlock::seed_check(seed.expose_secret())?),
                wrong_unlock_codes: 0,
            },
        })
    }

    /// Restores a token from its persisted state.
    pub fn from_state(state: SoftTokenState) -> Self {
        Self { state }
    }

    /// The state to persist.
    pub fn state(&self) -> &SoftTokenState {
        &self.state
    }

    /// Opens the seed with the PIN, counting wrong PINs and locking at the threshold.
    fn open(&mut self, pin: &str) -> Result<Secret<Vec<u8>>, OtpError> {
        if self.state.locked {
            return Err(OtpError::Locked);
        }
        check_pin_format(pin, self.state.config.pin_digits)?;
        match unseal(
            &self.state.sealed_seed,
            pin,
            self.state.params.serial.as_str(),
        )? {
            Opened::Seed(seed) => {
                self.state.failed_pins = 0;
                Ok(seed)
            }
            Opened::WrongPin => {
                self.state.failed_pins = self.state.failed_pins.saturating_add(1);
                if self.state.failed_pins >= self.state.config.max_pin_failures {
                    self.state.locked = true;
                    return Err(OtpError::Locked);
                }
                Err(OtpError::WrongPin {
                    remaining: self.state.config.max_pin_failures - self.state.failed_pins,
                })
            }
        }
    }

    /// Checks the PIN only (unlocking the token's screen).
    pub fn verify_pin(&mut self, pin: &str) -> Result<(), OtpError> {
        self.open(pin).map(|_| ())
    }

    /// The current code of a response-only token: HOTP at the counter (then the counter moves
    /// on), or TOTP at `now_unix`.
    pub fn code(&mut self, pin: &str, now_unix: u64) -> Result<String, OtpError> {
        let seed = self.open(pin)?;
        let p = &self.state.params;
        match &p.kind {
            TokenKind::ResponseOnlyHotp => {
                let code = hotp(seed.expose_secret(), self.state.counter, p.digits, p.alg)?;
                self.state.counter = self.state.counter.saturating_add(1);
                Ok(code)
            }
            TokenKind::ResponseOnlyTotp => totp(
                seed.expose_secret(),
                now_unix,
                p.step,
                p.t0,
                p.digits,
                p.alg,
            ),
            _ => Err(OtpError::Token(
                "not a response-only token; use answer() or sign()".into(),
            )),
        }
    }

    fn compute_ocra(
        &mut self,
        seed: &Secret<Vec<u8>>,
        suite: &OcraSuite,
        question: String,
        pin: &str,
        timestamp_steps: Option<u64>,
    ) -> Result<String, OtpError> {
        let input = OcraInput {
            counter: suite.counter.then_some(self.state.counter),
            question,
            pin: suite
                .pin_hash
                .map(|_| OcraPin::Pin(Secret::new(pin.to_owned()))),
            session: None,
            timestamp_steps,
        };
        let response = ocra(suite, seed.expose_secret(), &input)?;
        if suite.counter {
            self.state.counter = self.state.counter.saturating_add(1);
        }
        Ok(response)
    }

    /// Answers a challenge (challenge-response tokens). The PIN also feeds the OCRA `P` input
    /// if the suite has one.
    pub fn answer(
        &mut self,
        pin: &str,
        challenge: &str,
        now_unix: u64,
    ) -> Result<String, OtpError> {
        let TokenKind::ChallengeResponse { suite } = self.state.params.kind.clone() else {
            return Err(OtpError::Token("not a challenge-response token".into()));
        };
        let seed = self.open(pin)?;
        self.compute_ocra(
            &seed,
            &suite,
            challenge.to_owned(),
            pin,
            suite.timestamp_steps(now_unix),
        )
    }

    /// Signs transaction fields (signature tokens): OCRA over [`transaction_question`].
    pub fn sign(
        &mut self,
        pin: &str,
        fields: &[(String, String)],
        now_unix: u64,
    ) -> Result<String, OtpError> {
        let TokenKind::Signature { suite } = self.state.params.kind.clone() else {
            return Err(OtpError::Token("not a signature token".into()));
        };
        let question = transaction_question(fields)?;
        let seed = self.open(pin)?;
        self.compute_ocra(
            &seed,
            &suite,
            question,
            pin,
            suite.timestamp_steps(now_unix),
        )
    }

    /// Answers a scanned QR payload (offline mobile-app mode). The payload must name this
    /// token's serial and suite; its `ts` is used for timed suites.
    pub fn answer_payload(
        &mut self,
        pin: &str,
        payload: &ChallengePayload,
    ) -> Result<String, OtpError> {
        let (serial, suite, question, ts) = match payload {
            ChallengePayload::Challenge {
                serial,
                suite,
                challenge,
                timestamp_steps,
            } => (serial, suite, challenge.clone(), *timestamp_steps),
            ChallengePayload::Sign {
                serial,
                suite,
                fields,
                timestamp_steps,
            } => (
                serial,
                suite,
                transaction_question(fields)?,
                *timestamp_steps,
            ),
        };
        if serial != &self.state.params.serial {
            return Err(OtpError::Token(format!(
                "the QR code is for token {serial}, not {}",
                self.state.params.serial
            )));
        }
        if self.state.params.kind.suite() != Some(suite) {
            return Err(OtpError::Token(format!(
                "the QR code's suite {suite} is not this token's"
            )));
        }
        let matches_kind = matches!(
            (payload, &self.state.params.kind),
            (
                ChallengePayload::Challenge { .. },
                TokenKind::ChallengeResponse { .. }
            ) | (ChallengePayload::Sign { .. }, TokenKind::Signature { .. })
        );
        if !matches_kind {
            return Err(OtpError::Token(
                "the QR code's kind does not match this token".into(),
            ));
        }
        let suite = suite.clone();
        let seed = self.open(pin)?;
        self.compute_ocra(&seed, &suite, question, pin, ts)
    }

    /// Changes the PIN (the old one must be right; a wrong one counts).
    pub fn change_pin(
        &mut self,
        old_pin: &str,
        new_pin: &str,
        fill: FillRandom<'_>,
    ) -> Result<(), OtpError> {
        check_pin_format(new_pin, self.state.config.pin_digits)?;
        let seed = self.open(old_pin)?;
        self.state.sealed_seed = seal(
            seed.expose_secret(),
            new_pin,
            self.state.params.serial.as_str(),
            self.state.config.kdf,
            fill,
        )?;
        Ok(())
    }

    /// The unlock challenge of a locked token, made on first request and kept until an unlock
    /// code answers it.
    pub fn unlock_challenge(&mut self, fill: FillRandom<'_>) -> Result<String, OtpError> {
        if !self.state.locked {
            return Err(OtpError::NotLocked);
        }
        if self.state.wrong_unlock_codes >= soft_unlock::MAX_WRONG_CODES {
            return Err(OtpError::UnlockBlocked);
        }
        Ok(self
            .state
            .unlock_challenge
            .get_or_insert_with(|| soft_unlock::new_challenge(fill))
            .clone())
    }

    /// Unlocks a locked token with the helpdesk's unlock code for its challenge, and seals
    /// `seed` (the server's copy, which must be this token's) under `new_pin`. A wrong code
    /// uses the challenge up.
    pub fn unlock(
        &mut self,
        unlock_code: &str,
        seed: &Secret<Vec<u8>>,
        new_pin: &str,
        fill: FillRandom<'_>,
    ) -> Result<(), OtpError> {
        if !self.state.locked {
            return Err(OtpError::NotLocked);
        }
        check_pin_format(new_pin, self.state.config.pin_digits)?;
        let check = soft_unlock::seed_check(seed.expose_secret())?;
        if let Some(kept) = &self.state.seed_check
            && !ct_eq(kept, &check)
        {
            return Err(OtpError::Sealed(
                "the server's seed is not this token's".into(),
            ));
        }
        let Some(challenge) = self.state.unlock_challenge.take() else {
            return Err(OtpError::NoUnlockChallenge);
        };
        let serial = self.state.params.serial.as_str();
        let expected = soft_unlock::unlock_code(seed.expose_secret(), serial, &challenge)?;
        if !ct_eq(expected.as_bytes(), unlock_code.as_bytes()) {
            self.state.wrong_unlock_codes = self.state.wrong_unlock_codes.saturating_add(1);
            return Err(OtpError::WrongUnlockCode);
        }
        self.state.sealed_seed = seal(
            seed.expose_secret(),
            new_pin,
            serial,
            self.state.config.kdf,
            fill,
        )?;
        self.state.seed_check = Some(check);
        self.state.wrong_unlock_codes = 0;
        self.state.failed_pins = 0;
        self.state.locked = false;
        Ok(())
    }

    /// The enrolment QR code (an `otpauth://` URI, to scan into an authenticator app).
    pub fn enrolment_qr(&mut self, pin: &str) -> Result<super::qr::Qr, OtpError> {
        let uri = self.enrolment_uri(pin)?;
        super::qr::Qr::new(&uri.to_uri())
    }

    /// The enrolment URI of a response-only token (contains the seed: needs the PIN).
    pub fn enrolment_uri(&mut self, pin: &str) -> Result<OtpauthUri, OtpError> {
        let p = self.state.params.clone();
        let method = match p.kind {
            TokenKind::ResponseOnlyHotp => OtpauthMethod::Hotp {
                counter: self.state.counter,
            },
            TokenKind::ResponseOnlyTotp => {
                if p.t0 != 0 {
                    return Err(OtpError::Token(
                        "otpauth URIs cannot express T0 != 0".into(),
                    ));
                }
                OtpauthMethod::Totp { period: p.step }
            }
            _ => {
                return Err(OtpError::Token(
                    "otpauth URIs carry only HOTP and TOTP tokens".into(),
                ));
            }
        };
        let seed = self.open(pin)?;
        Ok(OtpauthUri {
            method,
            secret: seed,
            issuer: p.issuer.clone(),
            account: p.label.clone().unwrap_or_else(|| p.serial.to_string()),
            algorithm: p.alg,
            digits: p.digits,
        })
    }
}

fn check_pin_format(pin: &str, digits: usize) -> Result<(), OtpError> {
    if pin.len() != digits || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OtpError::InvalidPin(format!(
            "the PIN must be {digits} digits"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic xorshift byte source (shared with `scenario_tests`).
    pub(super) fn xorshift(mut state: u64) -> impl FnMut(&mut [u8]) {
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = (state >> 24) as u8;
            }
        }
    }

    fn rng() -> impl FnMut(&mut [u8]) {
        xorshift(0x9e37_79b9_7f4a_7c15)
    }

    pub(super) fn config() -> SoftTokenConfig {
        SoftTokenConfig {
            kdf: KdfParams::TEST,
            ..SoftTokenConfig::default()
        }
    }

    #[test]
    fn lock_after_five_wrong_pins_and_reset_on_success() {
        let mut fill = rng();
        let params = TokenParams::new("1234567897".parse().unwrap(), TokenKind::ResponseOnlyHotp);
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let mut token = SoftToken::create(params, &seed, "12345", config(), &mut fill).unwrap();
        for remaining in [4, 3, 2, 1] {
            assert_eq!(
                token.verify_pin("54321"),
                Err(OtpError::WrongPin { remaining })
            );
        }
        token.verify_pin("12345").unwrap();
        assert_eq!(token.state().failed_pins, 0);
        for _ in 0..4 {
            assert!(matches!(
                token.verify_pin("00000"),
                Err(OtpError::WrongPin { .. })
            ));
        }
        assert_eq!(token.verify_pin("00000"), Err(OtpError::Locked));
        assert!(token.state().locked);
        // Locked stays locked, even with the right PIN, also after a restore.
        let mut restored = SoftToken::from_state(token.state().clone());
        assert_eq!(restored.verify_pin("12345"), Err(OtpError::Locked));
        // Bad format does not count.
        let mut fresh = SoftToken::create(
            TokenParams::new("1".parse().unwrap(), TokenKind::ResponseOnlyHotp),
            &seed,
            "12345",
            config(),
            &mut fill,
        )
        .unwrap();
        assert!(matches!(
            fresh.verify_pin("1234"),
            Err(OtpError::InvalidPin(_))
        ));
        assert!(matches!(
            fresh.verify_pin("1234a"),
            Err(OtpError::InvalidPin(_))
        ));
        assert_eq!(fresh.state().failed_pins, 0);
    }

    #[test]
    fn codes_match_the_algorithms() {
        let mut fill = rng();
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let params = TokenParams {
            digits: 6,
            ..TokenParams::new("1".parse().unwrap(), TokenKind::ResponseOnlyHotp)
        };
        let mut token = SoftToken::create(params, &seed, "12345", config(), &mut fill).unwrap();
        assert_eq!(token.code("12345", 0).unwrap(), "755224");
        assert_eq!(token.code("12345", 0).unwrap(), "287082");
        assert_eq!(token.state().counter, 2);
        let params = TokenParams::new("2".parse().unwrap(), TokenKind::ResponseOnlyTotp);
        let mut token = SoftToken::create(params, &seed, "12345", config(), &mut fill).unwrap();
        assert_eq!(token.code("12345", 59).unwrap(), "94287082");
        let uri = token.enrolment_uri("12345").unwrap().to_uri();
        assert!(
            token
                .enrolment_qr("12345")
                .unwrap()
                .to_svg()
                .contains("<svg")
        );
        assert!(
            uri.starts_with("otpauth://totp/2?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        // The sealed blob is bound to the serial.
        let mut state = token.state().clone();
        state.params.serial = "3".parse().unwrap();
        assert!(matches!(
            SoftToken::from_state(state).verify_pin("12345"),
            Err(OtpError::WrongPin { .. })
        ));
        // Corrupt blobs are errors, not panics.
        let mut state = token.state().clone();
        state.sealed_seed.truncate(10);
        assert!(matches!(
            SoftToken::from_state(state).verify_pin("12345"),
            Err(OtpError::Sealed(_))
        ));
    }

    #[test]
    fn change_pin() {
        let mut fill = rng();
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let params = TokenParams::new("1".parse().unwrap(), TokenKind::ResponseOnlyTotp);
        let mut token = SoftToken::create(params, &seed, "12345", config(), &mut fill).unwrap();
        token.change_pin("12345", "99999", &mut fill).unwrap();
        assert!(matches!(
            token.verify_pin("12345"),
            Err(OtpError::WrongPin { .. })
        ));
        token.verify_pin("99999").unwrap();
    }
}

#[cfg(test)]
mod unlock_tests {
    use super::tests::xorshift;
    use super::*;

    const SERIAL: &str = "0012345678";

    /// What the helpdesk answers to `challenge` for the token holding `seed`.
    fn helpdesk_code(seed: &Secret<Vec<u8>>, challenge: &str) -> String {
        soft_unlock::unlock_code(seed.expose_secret(), SERIAL, challenge).unwrap()
    }

    /// A well-formed unlock code that is not `code`.
    fn other_code(code: &str) -> &'static str {
        if code == "0000000000" {
            "1111111111"
        } else {
            "0000000000"
        }
    }

    fn locked_token(seed: &Secret<Vec<u8>>, fill: FillRandom<'_>) -> SoftToken {
        let params = TokenParams::new(SERIAL.parse().unwrap(), TokenKind::ResponseOnlyHotp);
        let config = SoftTokenConfig {
            kdf: KdfParams::TEST,
            ..SoftTokenConfig::default()
        };
        let mut token = SoftToken::create(params, seed, "12345", config, fill).unwrap();
        for _ in 0..5 {
            let _ = token.verify_pin("54321");
        }
        assert!(token.state().locked);
        token
    }

    #[test]
    fn helpdesk_code_unlocks_with_a_new_pin() {
        let mut fill = xorshift(7);
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let mut token = locked_token(&seed, &mut fill);
        // Not before the challenge was shown.
        assert_eq!(
            token.unlock("0000000000", &seed, "24680", &mut fill),
            Err(OtpError::NoUnlockChallenge)
        );
        let challenge = token.unlock_challenge(&mut fill).unwrap();
        assert_eq!(token.unlock_challenge(&mut fill).unwrap(), challenge);
        let code = helpdesk_code(&seed, &challenge);
        // A bad new PIN is refused without using the challenge up.
        assert!(matches!(
            token.unlock(&code, &seed, "123", &mut fill),
            Err(OtpError::InvalidPin(_))
        ));
        // Survives a restart.
        let mut token = SoftToken::from_state(token.state().clone());
        token.unlock(&code, &seed, "24680", &mut fill).unwrap();
        assert!(!token.state().locked);
        assert_eq!(token.state().failed_pins, 0);
        assert_eq!(token.state().unlock_challenge, None);
        token.verify_pin("24680").unwrap();
        assert!(matches!(
            token.verify_pin("12345"),
            Err(OtpError::WrongPin { .. })
        ));
        // The counter went on: the code is the HOTP at 0, as before the lock.
        assert_eq!(token.code("24680", 0).unwrap(), "84755224");
        assert_eq!(
            token.unlock(&code, &seed, "24680", &mut fill),
            Err(OtpError::NotLocked)
        );
        assert_eq!(token.unlock_challenge(&mut fill), Err(OtpError::NotLocked));
    }

    #[test]
    fn a_wrong_code_uses_the_challenge_up() {
        let mut fill = xorshift(11);
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let mut token = locked_token(&seed, &mut fill);
        let first = token.unlock_challenge(&mut fill).unwrap();
        let code = helpdesk_code(&seed, &first);
        let wrong = other_code(&code);
        assert_eq!(
            token.unlock(wrong, &seed, "24680", &mut fill),
            Err(OtpError::WrongUnlockCode)
        );
        assert!(token.state().locked);
        // The right code for the old challenge no longer works.
        assert_eq!(
            token.unlock(&code, &seed, "24680", &mut fill),
            Err(OtpError::NoUnlockChallenge)
        );
        let second = token.unlock_challenge(&mut fill).unwrap();
        assert_ne!(first, second);
        assert_eq!(token.verify_pin("12345"), Err(OtpError::Locked));
    }

    /// Guessing is bounded: five wrong codes in a row and the token gives no more challenges.
    #[test]
    fn five_wrong_codes_block_unlocking() {
        let mut fill = xorshift(19);
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let mut token = locked_token(&seed, &mut fill);
        for _ in 0..soft_unlock::MAX_WRONG_CODES {
            let challenge = token.unlock_challenge(&mut fill).unwrap();
            let code = helpdesk_code(&seed, &challenge);
            let wrong = other_code(&code);
            assert_eq!(
                token.unlock(wrong, &seed, "24680", &mut fill),
                Err(OtpError::WrongUnlockCode)
            );
        }
        assert_eq!(
            token.unlock_challenge(&mut fill),
            Err(OtpError::UnlockBlocked)
        );
        let restored = SoftToken::from_state(token.state().clone());
        assert_eq!(
            restored.state().wrong_unlock_codes,
            soft_unlock::MAX_WRONG_CODES
        );
    }

    #[test]
    fn another_seed_is_refused() {
        let mut fill = xorshift(13);
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let mut token = locked_token(&seed, &mut fill);
        let challenge = token.unlock_challenge(&mut fill).unwrap();
        let other = Secret::new(b"00000000000000000000".to_vec());
        let code = soft_unlock::unlock_code(other.expose_secret(), SERIAL, &challenge).unwrap();
        assert!(matches!(
            token.unlock(&code, &other, "24680", &mut fill),
            Err(OtpError::Sealed(_))
        ));
        // Refused before the challenge was used.
        assert_eq!(
            token.state().unlock_challenge.as_deref(),
            Some(challenge.as_str())
        );
    }

    /// States written before unlocking existed have neither field and still load.
    #[test]
    fn older_states_load() {
        let mut fill = xorshift(17);
        let seed = Secret::new(b"12345678901234567890".to_vec());
        let token = locked_token(&seed, &mut fill);
        let mut json = serde_json::to_value(token.state()).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("unlock_challenge");
        object.remove("seed_check");
        object.remove("wrong_unlock_codes");
        let state: SoftTokenState = serde_json::from_value(json).unwrap();
        let mut token = SoftToken::from_state(state);
        let challenge = token.unlock_challenge(&mut fill).unwrap();
        let code = helpdesk_code(&seed, &challenge);
        token.unlock(&code, &seed, "24680", &mut fill).unwrap();
        assert!(token.state().seed_check.is_some());
    }
}

#[cfg(test)]
mod scenario_tests {
    //! Device side against verifier side: the soft token's answers pass `verify`, and changed
    //! inputs do not.
    use super::*;
    use crate::otp::qr::{ChallengePayload, Qr};
    use crate::otp::token::generate_challenge;
    use crate::otp::verify::{self, Reject};

    use super::tests::{config, xorshift};

    fn rng() -> impl FnMut(&mut [u8]) {
        xorshift(0x2545_f491_4f6c_dd1d)
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn challenge_response_through_a_qr_code() {
        let mut fill = rng();
        let seed = Secret::new(vec![7u8; 20]);
        let params = TokenParams::new(
            "1234567897".parse().unwrap(),
            TokenKind::default_challenge_response(),
        );
        let suite = params.kind.suite().unwrap().clone();
        let mut token =
            SoftToken::create(params.clone(), &seed, "24680", config(), &mut fill).unwrap();
        // Verifier: issue a challenge and show it as a QR code.
        let challenge = generate_challenge(&suite, &mut fill);
        let payload = ChallengePayload::Challenge {
            serial: params.serial.clone(),
            suite: suite.clone(),
            challenge: challenge.clone(),
            timestamp_steps: None,
        };
        let qr = Qr::new(&payload.to_uri()).unwrap();
        assert!(qr.to_terminal().contains('█'));
        // Token: scan, answer offline.
        let scanned = ChallengePayload::parse(&payload.to_uri()).unwrap();
        let response = token.answer_payload("24680", &scanned).unwrap();
        assert_eq!(response, token.answer("24680", &challenge, 0).unwrap());
        let input = OcraInput {
            question: challenge.clone(),
            ..OcraInput::default()
        };
        assert_eq!(
            verify::check_ocra(&suite, seed.expose_secret(), &input, &response, 0),
            Ok(())
        );
        let other = OcraInput {
            question: "00000000".into(),
            ..OcraInput::default()
        };
        assert_eq!(
            verify::check_ocra(&suite, seed.expose_secret(), &other, &response, 0),
            Err(Reject::NoMatch)
        );
        // A payload for another token is refused before the PIN is used.
        let foreign = ChallengePayload::Challenge {
            serial: "9".parse().unwrap(),
            suite,
            challenge,
            timestamp_steps: None,
        };
        assert!(matches!(
            token.answer_payload("24680", &foreign),
            Err(OtpError::Token(_))
        ));
        assert_eq!(token.state().failed_pins, 0);
    }

    #[test]
    fn transaction_signature_bound_to_exact_fields() {
        let mut fill = rng();
        let seed = Secret::new(vec![9u8; 32]);
        let suite: OcraSuite = "OCRA-1:HOTP-SHA256-8:QH64-T1M".parse().unwrap();
        let params = TokenParams::new(
            "2".parse().unwrap(),
            TokenKind::Signature {
                suite: suite.clone(),
            },
        );
        let mut token = SoftToken::create(params, &seed, "13579", config(), &mut fill).unwrap();
        let tx = fields(&[
            ("amount", "1250.00"),
            ("currency", "EUR"),
            ("iban", "DE89370400440532013000"),
        ]);
        let now = 1_700_000_000;
        let response = token.sign("13579", &tx, now).unwrap();
        let input = OcraInput {
            timestamp_steps: suite.timestamp_steps(now),
            ..OcraInput::default()
        };
        assert_eq!(
            verify::check_signature(&suite, seed.expose_secret(), &tx, &input, &response, 1),
            Ok(())
        );
        // One minute later, still within one step.
        let later = OcraInput {
            timestamp_steps: suite.timestamp_steps(now + 60),
            ..OcraInput::default()
        };
        assert_eq!(
            verify::check_signature(&suite, seed.expose_secret(), &tx, &later, &response, 1),
            Ok(())
        );
        for changed in [
            fields(&[
                ("amount", "1250.01"),
                ("currency", "EUR"),
                ("iban", "DE89370400440532013000"),
            ]),
            fields(&[
                ("currency", "EUR"),
                ("amount", "1250.00"),
                ("iban", "DE89370400440532013000"),
            ]),
            fields(&[("amount", "1250.00"), ("currency", "EUR")]),
            fields(&[
                ("amount", "1250.00"),
                ("currency", "EUR"),
                ("iban", "DE89370400440532013000"),
                ("x", ""),
            ]),
        ] {
            assert_eq!(
                verify::check_signature(
                    &suite,
                    seed.expose_secret(),
                    &changed,
                    &input,
                    &response,
                    1
                ),
                Err(Reject::NoMatch)
            );
        }
        // Signing through a QR payload gives the same response.
        let payload = ChallengePayload::Sign {
            serial: "2".parse().unwrap(),
            suite: suite.clone(),
            fields: tx.clone(),
            timestamp_steps: suite.timestamp_steps(now),
        };
        assert_eq!(
            token
                .answer_payload(
                    "13579",
                    &ChallengePayload::parse(&payload.to_uri()).unwrap()
                )
                .unwrap(),
            response
        );
        let nine: Vec<(String, String)> =
            (0..9).map(|i| (format!("f{i}"), "v".to_owned())).collect();
        assert_eq!(
            verify::check_signature(&suite, seed.expose_secret(), &nine, &input, &response, 1),
            Err(Reject::BadTransaction)
        );
    }

    #[test]
    fn ocra_with_counter_and_pin() {
        let mut fill = rng();
        let seed = Secret::new(vec![3u8; 20]);
        let suite: OcraSuite = "OCRA-1:HOTP-SHA1-6:C-QN08-PSHA1".parse().unwrap();
        let params = TokenParams::new(
            "3".parse().unwrap(),
            TokenKind::ChallengeResponse {
                suite: suite.clone(),
            },
        );
        let mut token = SoftToken::create(params, &seed, "11223", config(), &mut fill).unwrap();
        let first = token.answer("11223", "12345678", 0).unwrap();
        let second = token.answer("11223", "12345678", 0).unwrap();
        assert_ne!(first, second, "the counter moves");
        // The verifier stores only the PIN hash.
        let pin_hash = Secret::new(crate::otp::HashAlg::Sha1.digest(b"11223"));
        let input = |c| OcraInput {
            counter: Some(c),
            question: "12345678".into(),
            pin: Some(OcraPin::Hash(pin_hash.clone())),
            ..OcraInput::default()
        };
        assert_eq!(
            verify::check_ocra(&suite, seed.expose_secret(), &input(0), &first, 0),
            Ok(())
        );
        assert_eq!(
            verify::check_ocra(&suite, seed.expose_secret(), &input(1), &second, 0),
            Ok(())
        );
        assert_eq!(
            verify::check_ocra(&suite, seed.expose_secret(), &input(1), &first, 0),
            Err(Reject::NoMatch)
        );
        assert_eq!(
            verify::check_ocra(&suite, seed.expose_secret(), &input(0), "12345", 0),
            Err(Reject::WrongLength)
        );
        assert_eq!(
            verify::check_ocra(&suite, seed.expose_secret(), &input(0), "12a456", 0),
            Err(Reject::BadFormat)
        );
    }

    #[test]
    fn hotp_and_totp_tokens_against_the_verifier() {
        let mut fill = rng();
        let seed = Secret::new(vec![5u8; 20]);
        let params = TokenParams::new("4".parse().unwrap(), TokenKind::ResponseOnlyHotp);
        let mut token = SoftToken::create(params, &seed, "55555", config(), &mut fill).unwrap();
        let codes: Vec<String> = (0..12).map(|_| token.code("55555", 0).unwrap()).collect();
        // Counter 0 at the verifier: code #9 accepted, #10 not (window 10).
        assert_eq!(
            verify::check_hotp(
                seed.expose_secret(),
                8,
                crate::otp::HashAlg::Sha1,
                0,
                &codes[9],
                10
            )
            .map(|m| m.next),
            Ok(10)
        );
        assert_eq!(
            verify::check_hotp(
                seed.expose_secret(),
                8,
                crate::otp::HashAlg::Sha1,
                0,
                &codes[10],
                10
            ),
            Err(Reject::NoMatch)
        );
        // Resync with two consecutive codes.
        assert_eq!(
            verify::resync_hotp(
                seed.expose_secret(),
                8,
                crate::otp::HashAlg::Sha1,
                0,
                &codes[10],
                &codes[11],
                1000
            )
            .map(|m| m.next),
            Ok(12)
        );
        let params = TokenParams::new("5".parse().unwrap(), TokenKind::ResponseOnlyTotp);
        let mut token = SoftToken::create(params, &seed, "55555", config(), &mut fill).unwrap();
        let now = 1_800_000_000u64;
        let t = now / 30;
        // The token's clock runs 5 steps ahead: a normal check fails, a resync finds the drift.
        let a = token.code("55555", now + 5 * 30).unwrap();
        let b = token.code("55555", now + 6 * 30).unwrap();
        let alg = crate::otp::HashAlg::Sha1;
        assert_eq!(
            verify::check_totp(seed.expose_secret(), 8, alg, 30, 0, None, 0, &a, now, 1),
            Err(Reject::NoMatch)
        );
        let m = verify::resync_totp(seed.expose_secret(), 8, alg, 30, 0, None, &a, &b, now, 1000)
            .unwrap();
        assert_eq!(
            m,
            verify::TotpMatch {
                step: t + 6,
                drift_steps: 6
            }
        );
        // With the drift stored, the next code is accepted, then replays (same and older) are not.
        let c = token.code("55555", now + 7 * 30 + 30).unwrap();
        let older = token.code("55555", now + 7 * 30).unwrap();
        let accepted = verify::check_totp(
            seed.expose_secret(),
            8,
            alg,
            30,
            0,
            Some(m.step),
            m.drift_steps,
            &c,
            now + 30,
            1,
        )
        .unwrap();
        assert_eq!(accepted.step, t + 8);
        assert_eq!(
            verify::check_totp(
                seed.expose_secret(),
                8,
                alg,
                30,
                0,
                Some(accepted.step),
                accepted.drift_steps,
                &c,
                now + 30,
                1
            ),
            Err(Reject::Replay)
        );
        assert_eq!(
            verify::check_totp(
                seed.expose_secret(),
                8,
                alg,
                30,
                0,
                Some(accepted.step),
                accepted.drift_steps,
                &older,
                now + 30,
                1
            ),
            Err(Reject::Replay)
        );
    }
}

#[cfg(test)]
mod kdf_timing {
    use super::*;

    /// Prints the cost of one PIN check with the production parameters. Dependencies are built
    /// with opt-level 2 even in the dev profile, so this is close to a release figure.
    /// Run: `cargo test --lib kdf_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing figure, not a check"]
    fn default_kdf_cost() {
        // CPU time of this thread (ns), so the figure does not depend on other load on the machine.
        fn cpu_ns() -> u64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
                .unwrap_or(0)
        }
        for params in [
            KdfParams::DEFAULT,
            KdfParams {
                m_cost_kib: 64 * 1024,
                t_cost: 2,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 32 * 1024,
                t_cost: 2,
                p_cost: 1,
            },
            KdfParams {
                m_cost_kib: 19 * 1024,
                t_cost: 2,
                p_cost: 1,
            },
        ] {
            let rounds = 5u32;
            let (wall, cpu) = (std::time::Instant::now(), cpu_ns());
            for i in 0..rounds {
                params.derive(b"12345", &[i as u8; 16]).unwrap();
            }
            let cpu_ms = (cpu_ns() - cpu) as f64 / 1e6 / f64::from(rounds);
            println!(
                "Argon2id {params:?}: {cpu_ms:.1} ms CPU, {:?} wall per PIN check",
                wall.elapsed() / rounds
            );
        }
    }
}
