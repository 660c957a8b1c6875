//! PIN state of the software key (CTAP 2.1 §6.5): the PIN hash, retries (8) with the
//! power-cycle rule after 3 consecutive mismatches, the block at 0, minimum PIN length,
//! forcePINChange, and the pinUvAuthToken with permissions, rpId binding and usage timer.
//!
//! The PIN/UV auth protocol crypto (key agreement, encrypt/decrypt) lives in `ctap2::pin_protocol`;
//! this module sees only decrypted values and verifies pinUvAuthParams against the token.

use std::time::{Duration, Instant};

use crate::authenticator::keys::{self, RandomSource, bytes_serde};
use crate::secret::{Secret, ct_eq};

/// Retries after a reset or a successful PIN entry (CTAP 2.1 §6.5.2.1: maximum 8).
pub const MAX_PIN_RETRIES: u8 = 8;
/// Consecutive mismatches after which the key needs a power cycle (CTAP 2.1 §6.5.5.7.2).
pub const MISMATCHES_BEFORE_POWER_CYCLE: u8 = 3;
/// pinUvAuthToken maximum usage period (CTAP 2.1 §6.5.2.1 `maxUsageTimePeriod`, 10 minutes).
pub const TOKEN_MAX_USAGE: Duration = Duration::from_secs(600);
/// How long the token's user-present flag lasts (`userPresentTimeLimit`, 30 s).
pub const TOKEN_USER_PRESENT_LIMIT: Duration = Duration::from_secs(30);

/// Permission bits of a pinUvAuthToken (CTAP 2.1 §6.5.5.7).
pub mod permission {
    /// makeCredential.
    pub const MC: u8 = 0x01;
    /// getAssertion.
    pub const GA: u8 = 0x02;
    /// credentialManagement.
    pub const CM: u8 = 0x04;
    /// bioEnrollment.
    pub const BE: u8 = 0x08;
    /// largeBlobWrite.
    pub const LBW: u8 = 0x10;
    /// authenticatorConfig.
    pub const ACFG: u8 = 0x20;
}

/// Why a PIN operation failed; the key maps each to its CTAP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinFailure {
    /// No PIN is set (CTAP2_ERR_PIN_NOT_SET).
    NotSet,
    /// Retries exhausted (CTAP2_ERR_PIN_BLOCKED).
    Blocked,
    /// Three consecutive mismatches since power-up (CTAP2_ERR_PIN_AUTH_BLOCKED).
    AuthBlocked,
    /// Wrong PIN (CTAP2_ERR_PIN_INVALID).
    Invalid,
    /// The new PIN violates the policy (CTAP2_ERR_PIN_POLICY_VIOLATION).
    PolicyViolation,
    /// The operation is not allowed in this state (CTAP2_ERR_NOT_ALLOWED).
    NotAllowed,
    /// A pinUvAuthParam did not verify, or the token lacks a permission / the rpId differs
    /// (CTAP2_ERR_PIN_AUTH_INVALID).
    AuthInvalid,
}

/// The persistent part of the PIN state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PinRecord {
    /// LEFT(SHA-256(PIN), 16) of the current PIN.
    #[serde(with = "bytes_serde::opt_secret")]
    pub pin_hash: Option<Secret<Vec<u8>>>,
    /// Length of the current PIN in Unicode code points.
    pub pin_code_points: u8,
    /// pinRetries.
    pub retries: u8,
    /// Current minimum PIN length.
    pub min_pin_length: u8,
    /// forcePINChange.
    pub force_change: bool,
    /// RP IDs allowed to read the minimum PIN length (minPinLength extension).
    pub min_pin_length_rp_ids: Vec<String>,
}

impl PinRecord {
    /// No PIN, full retries.
    pub fn new(min_pin_length: u8) -> Self {
        Self {
            pin_hash: None,
            pin_code_points: 0,
            retries: MAX_PIN_RETRIES,
            min_pin_length,
            force_change: false,
            min_pin_length_rp_ids: Vec::new(),
        }
    }
}

/// A pinUvAuthToken in use (CTAP 2.1 §6.5.2.1 `pinUvAuthTokenState`).
#[derive(Debug)]
struct TokenState {
    value: Secret<[u8; 32]>,
    in_use: bool,
    protocol: u8,
    permissions: u8,
    rp_id: Option<String>,
    issued: Instant,
    user_present: bool,
    user_verified: bool,
}

/// PIN state: the persistent record plus the volatile per-power-cycle state.
#[derive(Debug)]
pub struct PinState {
    /// Persistent part.
    pub record: PinRecord,
    consecutive_mismatches: u8,
    token: TokenState,
}

/// Validates a new PIN (CTAP 2.1 §6.5.5.5 step "newPin"): the decrypted padded block minus
/// trailing zero bytes; 4..=63 bytes, UTF-8, at least `min_len` code points.
pub fn check_new_pin(padded: &[u8], min_len: u8) -> Result<(Secret<Vec<u8>>, u8), PinFailure> {
    if padded.len() < 64 {
        return Err(PinFailure::PolicyViolation);
    }
    let end = padded.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let pin = Secret::new(padded[..end].to_vec());
    if pin.expose_secret().len() < 4 || pin.expose_secret().len() > 63 {
        return Err(PinFailure::PolicyViolation);
    }
    let Ok(text) = std::str::from_utf8(pin.expose_secret()) else {
        return Err(PinFailure::PolicyViolation);
    };
    let points = text.chars().count();
    if points < usize::from(min_len) {
        return Err(PinFailure::PolicyViolation);
    }
    Ok((pin, points.min(255) as u8))
}

/// LEFT(SHA-256(pin), 16).
pub fn pin_hash(pin: &[u8]) -> Secret<Vec<u8>> {
    Secret::new(keys::sha256(pin)[..16].to_vec())
}

impl PinState {
    /// PIN state from its record, as at power-up.
    pub fn new(record: PinRecord, rng: &mut dyn RandomSource, now: Instant) -> Self {
        let value = keys::random_array::<32>(rng).unwrap_or([0u8; 32]);
        Self {
            record,
            consecutive_mismatches: 0,
            token: TokenState {
                value: Secret::new(value),
                in_use: false,
                protocol: 0,
                permissions: 0,
                rp_id: None,
                issued: now,
                user_present: false,
                user_verified: false,
            },
        }
    }

    /// Whether a PIN is set.
    pub fn is_set(&self) -> bool {
        self.record.pin_hash.is_some()
    }

    /// pinRetries.
    pub fn retries(&self) -> u8 {
        self.record.retries
    }

    /// Whether three mismatches since power-up block PIN entry now.
    pub fn auth_blocked(&self) -> bool {
        self.consecutive_mismatches >= MISMATCHES_BEFORE_POWER_CYCLE
    }

    /// A virtual power cycle: the mismatch count and the token are volatile.
    pub fn power_cycle(&mut self, rng: &mut dyn RandomSource, now: Instant) {
        self.consecutive_mismatches = 0;
        self.reset_token(rng, now);
    }

    fn reset_token(&mut self, rng: &mut dyn RandomSource, now: Instant) {
        if let Ok(value) = keys::random_array::<32>(rng) {
            self.token.value = Secret::new(value);
        }
        self.token.in_use = false;
        self.token.permissions = 0;
        self.token.rp_id = None;
        self.token.issued = now;
        self.token.user_present = false;
        self.token.user_verified = false;
    }

    /// Sets the first PIN (setPIN, CTAP 2.1 §6.5.5.5). `padded` is the decrypted newPinEnc.
    pub fn set_pin(&mut self, padded: &[u8]) -> Result<(), PinFailure> {
        if self.is_set() {
            return Err(PinFailure::NotAllowed);
        }
        let (pin, points) = check_new_pin(padded, self.record.min_pin_length)?;
        self.record.pin_hash = Some(pin_hash(pin.expose_secret()));
        self.record.pin_code_points = points;
        self.record.retries = MAX_PIN_RETRIES;
        self.record.force_change = false;
        Ok(())
    }

    /// Sets a PIN directly (creation option, test control).
    pub fn preset_pin(&mut self, pin: &str) -> Result<(), PinFailure> {
        let mut padded = pin.as_bytes().to_vec();
        padded.resize(64.max(padded.len()), 0);
        self.record.pin_hash = None;
        self.set_pin(&padded)
    }

    /// Checks the retry and power-cycle rules before a PIN comparison (CTAP 2.1 §6.5.5.7.2).
    pub fn precheck(&self) -> Result<(), PinFailure> {
        if !self.is_set() {
            return Err(PinFailure::NotSet);
        }
        if self.record.retries == 0 {
            return Err(PinFailure::Blocked);
        }
        if self.auth_blocked() {
            return Err(PinFailure::AuthBlocked);
        }
        Ok(())
    }

    /// Verifies a decrypted pinHashEnc: decrements the retries first, then compares; a match
    /// restores the retries, a mismatch answers Blocked at 0, AuthBlocked at 3 in a row, else Invalid.
    /// The caller regenerates its key-agreement key on a mismatch.
    pub fn verify_pin_hash(&mut self, candidate: &[u8]) -> Result<(), PinFailure> {
        self.precheck()?;
        self.record.retries = self.record.retries.saturating_sub(1);
        let matches = self
            .record
            .pin_hash
            .as_ref()
            .is_some_and(|h| candidate.len() == 16 && ct_eq(h.expose_secret(), candidate));
        if matches {
            self.record.retries = MAX_PIN_RETRIES;
            self.consecutive_mismatches = 0;
            return Ok(());
        }
        if self.record.retries == 0 {
            return Err(PinFailure::Blocked);
        }
        self.consecutive_mismatches = self.consecutive_mismatches.saturating_add(1);
        if self.auth_blocked() {
            return Err(PinFailure::AuthBlocked);
        }
        Err(PinFailure::Invalid)
    }

    /// Replaces the PIN after `verify_pin_hash` succeeded (changePIN).
    pub fn change_pin(&mut self, padded: &[u8]) -> Result<(), PinFailure> {
        let (pin, points) = check_new_pin(padded, self.record.min_pin_length)?;
        let new_hash = pin_hash(pin.expose_secret());
        if self.record.force_change
            && self
                .record
                .pin_hash
                .as_ref()
                .is_some_and(|h| ct_eq(h.expose_secret(), new_hash.expose_secret()))
        {
            return Err(PinFailure::PolicyViolation);
        }
        self.record.pin_hash = Some(new_hash);
        self.record.pin_code_points = points;
        self.record.force_change = false;
        Ok(())
    }

    /// Issues a fresh pinUvAuthToken with permissions (getPinToken: mc|ga, no rpId), after the
    /// PIN verified. Returns the token bytes, to be encrypted to the platform.
    pub fn issue_token(
        &mut self,
        rng: &mut dyn RandomSource,
        protocol: u8,
        permissions: u8,
        rp_id: Option<String>,
        now: Instant,
    ) -> Result<Secret<[u8; 32]>, PinFailure> {
        if self.record.force_change {
            return Err(PinFailure::PolicyViolation);
        }
        self.reset_token(rng, now);
        self.token.in_use = true;
        self.token.protocol = protocol;
        self.token.permissions = permissions;
        self.token.rp_id = rp_id;
        self.token.user_verified = true;
        self.token.user_present = false;
        Ok(Secret::new(*self.token.value.expose_secret()))
    }

    /// Verifies `param` = authenticate(token, message) for `protocol` (1: first 16 bytes of
    /// HMAC-SHA-256; 2: all 32) and the usage timer.
    pub fn verify_token_param(
        &mut self,
        protocol: u8,
        message: &[u8],
        param: &[u8],
        now: Instant,
    ) -> Result<(), PinFailure> {
        self.expire(now);
        if !self.token.in_use || protocol != self.token.protocol {
            return Err(PinFailure::AuthInvalid);
        }
        let mac = keys::hmac_sha256(self.token.value.expose_secret(), &[message]);
        let expected: &[u8] = match protocol {
            1 => &mac[..16],
            2 => &mac[..],
            _ => return Err(PinFailure::AuthInvalid),
        };
        if ct_eq(expected, param) {
            Ok(())
        } else {
            Err(PinFailure::AuthInvalid)
        }
    }

    /// Checks that the verified token has `permission` and, if `rp_id` is given, is bound to it
    /// (or binds it now when the token has no rpId yet, CTAP 2.1 §6.1.2 step 11).
    pub fn check_permission(
        &mut self,
        permission: u8,
        rp_id: Option<&str>,
    ) -> Result<(), PinFailure> {
        if self.token.permissions & permission != permission {
            return Err(PinFailure::AuthInvalid);
        }
        if let Some(rp) = rp_id {
            match &self.token.rp_id {
                Some(bound) if bound != rp => return Err(PinFailure::AuthInvalid),
                Some(_) => {}
                None => self.token.rp_id = Some(rp.to_owned()),
            }
        }
        Ok(())
    }

    /// Checks a token that must be bound to `rp_id` only if it is bound at all (credential
    /// management with an rpId-bound token may act only on that RP).
    pub fn token_rp_id(&self) -> Option<&str> {
        self.token.rp_id.as_deref()
    }

    /// After a MakeCredential / GetAssertion that used the token: clear the UP/UV flags and all
    /// permissions except lbw (CTAP 2.1 §6.1.2 step 17, §6.2.2 step 12).
    pub fn consume_after_use(&mut self) {
        self.token.user_present = false;
        self.token.user_verified = false;
        self.token.permissions &= permission::LBW;
    }

    /// Records that the user was present for this token (after a presence check).
    pub fn mark_user_present(&mut self) {
        if self.token.in_use {
            self.token.user_present = true;
        }
    }

    fn expire(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.token.issued);
        if age >= TOKEN_USER_PRESENT_LIMIT {
            self.token.user_present = false;
        }
        if age >= TOKEN_MAX_USAGE {
            self.token.in_use = false;
            self.token.permissions = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::keys::SeededRandomForTests;

    fn padded(pin: &str) -> Vec<u8> {
        let mut v = pin.as_bytes().to_vec();
        v.resize(64, 0);
        v
    }

    fn state_with_pin(pin: &str) -> (PinState, SeededRandomForTests, Instant) {
        let mut rng = SeededRandomForTests::new(3);
        let now = Instant::now();
        let mut s = PinState::new(PinRecord::new(4), &mut rng, now);
        s.set_pin(&padded(pin)).unwrap();
        (s, rng, now)
    }

    #[test]
    fn retries_power_cycle_rule_and_block() {
        let (mut s, mut rng, now) = state_with_pin("1234");
        let wrong = pin_hash(b"9999");
        let right = pin_hash(b"1234");
        assert_eq!(s.retries(), 8);
        // 1, 2 wrong -> Invalid; 3rd -> AuthBlocked; 4th (no power cycle) still AuthBlocked without decrement.
        assert_eq!(
            s.verify_pin_hash(wrong.expose_secret()),
            Err(PinFailure::Invalid)
        );
        assert_eq!(
            s.verify_pin_hash(wrong.expose_secret()),
            Err(PinFailure::Invalid)
        );
        assert_eq!(
            s.verify_pin_hash(wrong.expose_secret()),
            Err(PinFailure::AuthBlocked)
        );
        assert_eq!(s.retries(), 5);
        assert_eq!(
            s.verify_pin_hash(right.expose_secret()),
            Err(PinFailure::AuthBlocked)
        );
        assert_eq!(s.retries(), 5);
        s.power_cycle(&mut rng, now);
        // A correct PIN after the power cycle restores the retries.
        assert_eq!(s.verify_pin_hash(right.expose_secret()), Ok(()));
        assert_eq!(s.retries(), 8);
        // Run down to zero with power cycles in between: 3 + 3 + 2 wrong.
        for round in 0..2 {
            assert_eq!(
                s.verify_pin_hash(wrong.expose_secret()),
                Err(PinFailure::Invalid),
                "round {round}"
            );
            assert_eq!(
                s.verify_pin_hash(wrong.expose_secret()),
                Err(PinFailure::Invalid)
            );
            assert_eq!(
                s.verify_pin_hash(wrong.expose_secret()),
                Err(PinFailure::AuthBlocked)
            );
            s.power_cycle(&mut rng, now);
        }
        assert_eq!(s.retries(), 2);
        assert_eq!(
            s.verify_pin_hash(wrong.expose_secret()),
            Err(PinFailure::Invalid)
        );
        assert_eq!(
            s.verify_pin_hash(wrong.expose_secret()),
            Err(PinFailure::Blocked)
        );
        assert_eq!(s.retries(), 0);
        // Blocked for good, even with the right PIN and after a power cycle.
        s.power_cycle(&mut rng, now);
        assert_eq!(
            s.verify_pin_hash(right.expose_secret()),
            Err(PinFailure::Blocked)
        );
        assert_eq!(s.retries(), 0);
    }

    #[test]
    fn new_pin_policy() {
        assert_eq!(
            check_new_pin(&padded("123"), 4).err(),
            Some(PinFailure::PolicyViolation)
        );
        assert!(check_new_pin(&padded("1234"), 4).is_ok());
        assert_eq!(
            check_new_pin(&padded("12345"), 6).err(),
            Some(PinFailure::PolicyViolation)
        );
        // Code points, not bytes: four 2-byte characters pass a minimum of 4.
        assert_eq!(check_new_pin(&padded("éééé"), 4).map(|(_, n)| n), Ok(4));
        assert_eq!(
            check_new_pin(&padded(&"1".repeat(64)), 4).err(),
            Some(PinFailure::PolicyViolation)
        );
        assert_eq!(
            check_new_pin(b"1234", 4).err(),
            Some(PinFailure::PolicyViolation)
        );
        let mut bad = padded("12");
        bad[2] = 0xff;
        bad[3] = 0xfe;
        assert_eq!(
            check_new_pin(&bad, 4).err(),
            Some(PinFailure::PolicyViolation)
        );
    }

    #[test]
    fn set_pin_twice_not_allowed_and_force_change() {
        let (mut s, mut rng, now) = state_with_pin("1234");
        assert_eq!(s.set_pin(&padded("5678")), Err(PinFailure::NotAllowed));
        s.record.force_change = true;
        assert_eq!(
            s.issue_token(&mut rng, 2, permission::MC, None, now).err(),
            Some(PinFailure::PolicyViolation)
        );
        assert_eq!(
            s.change_pin(&padded("1234")),
            Err(PinFailure::PolicyViolation)
        );
        assert_eq!(s.change_pin(&padded("5678")), Ok(()));
        assert!(!s.record.force_change);
        assert!(
            s.issue_token(&mut rng, 2, permission::MC, None, now)
                .is_ok()
        );
    }

    #[test]
    fn token_permissions_rp_binding_and_timer() {
        let (mut s, mut rng, now) = state_with_pin("1234");
        let token = s
            .issue_token(&mut rng, 2, permission::MC | permission::LBW, None, now)
            .unwrap();
        let msg = [7u8; 32];
        let param = keys::hmac_sha256(token.expose_secret(), &[&msg]);
        assert_eq!(s.verify_token_param(2, &msg, &param, now), Ok(()));
        assert_eq!(
            s.verify_token_param(1, &msg, &param[..16], now),
            Err(PinFailure::AuthInvalid)
        );
        assert_eq!(
            s.verify_token_param(2, &msg, &[0u8; 32], now),
            Err(PinFailure::AuthInvalid)
        );
        assert_eq!(
            s.check_permission(permission::GA, Some("a.com")),
            Err(PinFailure::AuthInvalid)
        );
        assert_eq!(s.check_permission(permission::MC, Some("a.com")), Ok(()));
        assert_eq!(
            s.check_permission(permission::MC, Some("b.com")),
            Err(PinFailure::AuthInvalid)
        );
        s.consume_after_use();
        assert_eq!(
            s.check_permission(permission::MC, Some("a.com")),
            Err(PinFailure::AuthInvalid)
        );
        assert_eq!(s.check_permission(permission::LBW, None), Ok(()));
        // Expired after the maximum usage period.
        assert_eq!(
            s.verify_token_param(
                2,
                &msg,
                &param,
                now + TOKEN_MAX_USAGE + Duration::from_secs(1)
            ),
            Err(PinFailure::AuthInvalid)
        );
        // Protocol 1: 16-byte param.
        let token = s
            .issue_token(&mut rng, 1, permission::GA, Some("a.com".into()), now)
            .unwrap();
        let param = keys::hmac_sha256(token.expose_secret(), &[&msg]);
        assert_eq!(s.verify_token_param(1, &msg, &param[..16], now), Ok(()));
        assert_eq!(
            s.check_permission(permission::GA, Some("b.com")),
            Err(PinFailure::AuthInvalid)
        );
        // A power cycle drops the token.
        s.power_cycle(&mut rng, now);
        assert_eq!(
            s.verify_token_param(1, &msg, &param[..16], now),
            Err(PinFailure::AuthInvalid)
        );
    }
}
