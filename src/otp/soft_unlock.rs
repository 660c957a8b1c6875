//! The unlock procedure of a software token that locked itself after too many wrong PINs,
//! modelled on a hardware Digipass: the locked token shows an unlock challenge, the user reads it
//! to the helpdesk, the helpdesk computes the unlock code from the server's copy of the seed,
//! and the user types that code and a new PIN of their choice into the token.
//!
//! - Challenge: 8 random decimal digits, made when first asked for after the lock and kept
//!   until it is answered. A wrong unlock code discards it, so each challenge allows one guess;
//!   after [`MAX_WRONG_CODES`] wrong codes in a row the token gives no more challenges and
//!   must be provisioned anew (a 10-digit code is then guessed with odds of 5 in 10^10).
//! - Unlock code: 10 decimal digits, `HMAC-SHA-256(seed, "keygate soft-token unlock v1" ||
//!   u64 BE len(serial) || serial || challenge)`, the first 8 bytes as a big-endian integer
//!   modulo 10^10. It is bound to the serial and the challenge, so it unlocks nothing else.
//! - Seed check: `HMAC-SHA-256(seed, "keygate soft-token seed check v1")`, first 16 bytes,
//!   kept in the token's state when it is created. The PIN-sealed seed cannot be opened without
//!   the PIN, so an unlock re-seals the seed the server holds; the check refuses a seed that is
//!   not the token's own.

use hmac::{Hmac, KeyInit, Mac};

use super::error::OtpError;
use super::token::{FillRandom, random_digits};

/// Digits of an unlock challenge.
pub const CHALLENGE_DIGITS: usize = 8;
/// Digits of an unlock code.
pub const CODE_DIGITS: usize = 10;
/// Wrong unlock codes in a row after which a token cannot be unlocked any more.
pub const MAX_WRONG_CODES: u32 = 5;
/// Bytes of the seed check kept in the token's state.
pub const SEED_CHECK_LEN: usize = 16;

const UNLOCK_LABEL: &[u8] = b"keygate soft-token unlock v1";
const SEED_CHECK_LABEL: &[u8] = b"keygate soft-token seed check v1";

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; 32], OtpError> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| OtpError::Sealed("unlock key".into()))?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// A fresh unlock challenge.
pub fn new_challenge(fill: FillRandom<'_>) -> String {
    random_digits(CHALLENGE_DIGITS, fill)
}

/// Whether `challenge` has the form of an unlock challenge.
pub fn is_challenge(challenge: &str) -> bool {
    challenge.len() == CHALLENGE_DIGITS && challenge.bytes().all(|b| b.is_ascii_digit())
}

/// The unlock code for `challenge` shown by the token `serial` whose seed is `seed` (the
/// helpdesk's side, computed from the server's copy of the seed).
pub fn unlock_code(seed: &[u8], serial: &str, challenge: &str) -> Result<String, OtpError> {
    if !is_challenge(challenge) {
        return Err(OtpError::Token(format!(
            "an unlock challenge is {CHALLENGE_DIGITS} digits"
        )));
    }
    let mac = hmac_sha256(
        seed,
        &[
            UNLOCK_LABEL,
            &(serial.len() as u64).to_be_bytes(),
            serial.as_bytes(),
            challenge.as_bytes(),
        ],
    )?;
    let mut head = [0u8; 8];
    head.copy_from_slice(&mac[..8]);
    let value = u64::from_be_bytes(head) % 10u64.pow(CODE_DIGITS as u32);
    Ok(format!("{value:0width$}", width = CODE_DIGITS))
}

/// The seed check kept in a token's state.
pub fn seed_check(seed: &[u8]) -> Result<Vec<u8>, OtpError> {
    Ok(hmac_sha256(seed, &[SEED_CHECK_LABEL])?[..SEED_CHECK_LEN].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_bound_to_seed_serial_and_challenge() {
        let seed = b"12345678901234567890";
        let code = unlock_code(seed, "0012345678", "31415926").unwrap();
        assert_eq!(code.len(), CODE_DIGITS);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(code, unlock_code(seed, "0012345678", "31415926").unwrap());
        assert_ne!(code, unlock_code(seed, "0012345679", "31415926").unwrap());
        assert_ne!(code, unlock_code(seed, "0012345678", "31415927").unwrap());
        assert_ne!(
            code,
            unlock_code(b"12345678901234567891", "0012345678", "31415926").unwrap()
        );
    }

    /// Independent check of the documented construction with the hmac crate's one-shot API.
    #[test]
    fn code_follows_the_documented_construction() {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"k").unwrap();
        mac.update(b"keygate soft-token unlock v1\0\0\0\0\0\0\0\x01S00000000");
        let out = mac.finalize().into_bytes();
        let value = u64::from_be_bytes(out[..8].try_into().unwrap()) % 10_000_000_000;
        assert_eq!(
            unlock_code(b"k", "S", "00000000").unwrap(),
            format!("{value:010}")
        );
    }

    #[test]
    fn malformed_challenges_are_refused() {
        for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
            assert!(unlock_code(b"seed", "1", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seed_check_tells_seeds_apart() {
        let a = seed_check(b"seed-a").unwrap();
        assert_eq!(a.len(), SEED_CHECK_LEN);
        assert_eq!(a, seed_check(b"seed-a").unwrap());
        assert_ne!(a, seed_check(b"seed-b").unwrap());
    }

    #[test]
    fn challenges_are_digits() {
        let mut n = 0u8;
        let mut fill = |buf: &mut [u8]| {
            for b in buf {
                n = n.wrapping_add(37);
                *b = n;
            }
        };
        let c = new_challenge(&mut fill);
        assert!(is_challenge(&c), "{c}");
    }
}
