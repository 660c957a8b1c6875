//! Pure verification decisions (DESIGN.md "Verification semantics"). Nothing here stores
//! anything: each function returns the decision and the new state (next counter, accepted
//! step, drift), and the `tokens` layer persists it by compare-and-set before it replies.
//!
//! Every code comparison is constant-time ([`crate::secret::ct_eq`]), and every candidate in a
//! window is computed and compared, so timing does not reveal which counter matched.
//! [`Reject`] reasons have stable strings ([`Reject::as_str`]) for the audit log.

use super::error::OtpError;
use super::hotp::{HashAlg, hotp, totp_step};
use super::ocra::{OcraInput, OcraSuite, ocra, transaction_question};
use crate::secret::ct_eq;

/// Longest code/response accepted before any processing (longer input is `too_long`).
/// 128 covers the full-HMAC hex response of `t = 0` SHA-512 OCRA suites.
pub const MAX_INPUT_LEN: usize = 128;

/// Verification policy; defaults from DESIGN.md, all configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// HOTP look-ahead: counters `c .. c + hotp_window - 1` are accepted (default 10).
    pub hotp_window: u64,
    /// TOTP: steps accepted on each side of the stored drift (default 1).
    pub totp_window_steps: u64,
    /// Resync search range for two consecutive codes (default 1000 counters / steps).
    pub resync_limit: u64,
    /// Lifetime of an OCRA challenge in seconds (default 120).
    pub challenge_ttl_secs: u64,
    /// Failures that lock a token or a user (default 5).
    pub max_failures: u32,
    /// Default TOTP step in seconds for new tokens (default 30).
    pub totp_step_secs: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            hotp_window: 10,
            totp_window_steps: 1,
            resync_limit: 1000,
            challenge_ttl_secs: 120,
            max_failures: 5,
            totp_step_secs: 30,
        }
    }
}

/// Why a check failed. `as_str` gives a stable reason string for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Reject {
    /// The code contains something other than the expected characters (digits, or hex for `t = 0`).
    #[error("bad_format")]
    BadFormat,
    /// The code has the wrong number of characters.
    #[error("wrong_length")]
    WrongLength,
    /// The input is longer than [`MAX_INPUT_LEN`]; refused before any processing.
    #[error("too_long")]
    TooLong,
    /// Well-formed, but no candidate in the window matches.
    #[error("no_match")]
    NoMatch,
    /// The code matches a time step (or counter) that was already used or is older.
    #[error("replay")]
    Replay,
    /// The challenge's lifetime is over.
    #[error("challenge_expired")]
    ChallengeExpired,
    /// The challenge was already answered (single use).
    #[error("challenge_used")]
    ChallengeUsed,
    /// Resync: the two codes are not consecutive within the limit.
    #[error("resync_failed")]
    ResyncFailed,
    /// The token or user is locked; no code is checked.
    #[error("locked")]
    Locked,
    /// The stored token parameters cannot be used (bad digits, suite/input mismatch, time before T0).
    #[error("bad_parameters")]
    BadParameters,
    /// Transaction fields that cannot be encoded (too many, empty name, repeated name).
    #[error("bad_transaction")]
    BadTransaction,
}

impl Reject {
    /// Stable reason string for the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFormat => "bad_format",
            Self::WrongLength => "wrong_length",
            Self::TooLong => "too_long",
            Self::NoMatch => "no_match",
            Self::Replay => "replay",
            Self::ChallengeExpired => "challenge_expired",
            Self::ChallengeUsed => "challenge_used",
            Self::ResyncFailed => "resync_failed",
            Self::Locked => "locked",
            Self::BadParameters => "bad_parameters",
            Self::BadTransaction => "bad_transaction",
        }
    }

    /// Whether this outcome counts as a failure for the fail counters. Format errors and
    /// wrong codes do; a check refused because the token is locked or misconfigured does not
    /// add to the count (it is already locked, or it is not the user's fault).
    pub fn counts_as_failure(self) -> bool {
        !matches!(self, Self::Locked | Self::BadParameters)
    }
}

/// A HOTP match: `matched` is the counter that produced the code, `next` = `matched + 1` is the
/// counter to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotpMatch {
    /// Counter value of the matching code.
    pub matched: u64,
    /// Counter to store (matched + 1).
    pub next: u64,
}

/// A TOTP match: the accepted step (store as last accepted) and the new drift
/// (`step - current step`, store on success only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpMatch {
    /// The time step whose code matched.
    pub step: u64,
    /// Drift in steps relative to the verifier's clock.
    pub drift_steps: i64,
}

/// Format check of a decimal code: at most [`MAX_INPUT_LEN`] bytes, ASCII digits only,
/// exactly `digits` long.
pub fn check_format(code: &str, digits: u32) -> Result<(), Reject> {
    if code.len() > MAX_INPUT_LEN {
        return Err(Reject::TooLong);
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Reject::BadFormat);
    }
    if code.len() != digits as usize {
        return Err(Reject::WrongLength);
    }
    Ok(())
}

fn map_params(_: OtpError) -> Reject {
    Reject::BadParameters
}

/// Constant-time search: every candidate is computed and compared; returns the first match.
fn first_match(
    candidates: impl Iterator<Item = u64>,
    mut code_at: impl FnMut(u64) -> Result<String, Reject>,
    code: &str,
) -> Result<Option<u64>, Reject> {
    let mut found = None;
    for candidate in candidates {
        let expected = code_at(candidate)?;
        let hit = ct_eq(expected.as_bytes(), code.as_bytes());
        if hit && found.is_none() {
            found = Some(candidate);
        }
    }
    Ok(found)
}

/// HOTP check (RFC 4226 §7.4) with look-ahead: counters `counter_next .. counter_next + window - 1`.
/// On success store `next` (compare-and-set on the old `counter_next`). A code below
/// `counter_next` is [`Reject::NoMatch`]; [`hotp_recently_used`] tells whether it was a replay.
pub fn check_hotp(
    secret: &[u8],
    digits: u32,
    alg: HashAlg,
    counter_next: u64,
    code: &str,
    window: u64,
) -> Result<HotpMatch, Reject> {
    check_format(code, digits)?;
    let end = counter_next.saturating_add(window);
    let code_at = |c| hotp(secret, c, digits, alg).map_err(map_params);
    let found = first_match(counter_next..end, code_at, code)?;
    match found {
        Some(matched) => Ok(HotpMatch {
            matched,
            next: matched.saturating_add(1),
        }),
        None => Err(Reject::NoMatch),
    }
}

/// Whether `code` is the code of one of the `window` counters just below `counter_next` (already
/// used or skipped): lets an auditor label a rejected HOTP code as a replay. Constant-time like
/// [`check_hotp`]. [`check_hotp`] itself answers [`Reject::NoMatch`] for such codes.
pub fn hotp_recently_used(
    secret: &[u8],
    digits: u32,
    alg: HashAlg,
    counter_next: u64,
    code: &str,
    window: u64,
) -> bool {
    check_format(code, digits).is_ok()
        && first_match(
            counter_next.saturating_sub(window)..counter_next,
            |c| hotp(secret, c, digits, alg).map_err(map_params),
            code,
        )
        .is_ok_and(|found| found.is_some())
}

/// HOTP resynchronisation (RFC 4226 §7.4 / E.4): `code1`, `code2` must be the codes of two
/// consecutive counters `c, c + 1` with `c` in `counter_next .. counter_next + limit`.
/// The new counter to store is `c + 2` (`matched` = `c + 1`).
pub fn resync_hotp(
    secret: &[u8],
    digits: u32,
    alg: HashAlg,
    counter_next: u64,
    code1: &str,
    code2: &str,
    limit: u64,
) -> Result<HotpMatch, Reject> {
    check_format(code1, digits)?;
    check_format(code2, digits)?;
    let end = counter_next.saturating_add(limit);
    let mut found = None;
    let mut previous_hit = false;
    // Candidates counter_next ..= end: code1 at c and code2 at c+1, with c < end.
    for c in counter_next..=end {
        let expected = hotp(secret, c, digits, alg).map_err(map_params)?;
        let hit2 = ct_eq(expected.as_bytes(), code2.as_bytes());
        if previous_hit && hit2 && found.is_none() {
            found = Some(c);
        }
        previous_hit = ct_eq(expected.as_bytes(), code1.as_bytes());
    }
    match found {
        Some(matched) => Ok(HotpMatch {
            matched,
            next: matched.saturating_add(1),
        }),
        None => Err(Reject::ResyncFailed),
    }
}

/// TOTP check (RFC 6238 §5.2): steps within `window` of `current step + drift_steps`. A code
/// whose step is not newer than `last_accepted_step` is a [`Reject::Replay`].
/// On success store `step` as the last accepted step and `drift_steps` as the drift.
#[allow(clippy::too_many_arguments)] // the agreed shape in CONTRACTS.md
pub fn check_totp(
    secret: &[u8],
    digits: u32,
    alg: HashAlg,
    step: u64,
    t0: u64,
    last_accepted_step: Option<u64>,
    drift_steps: i64,
    code: &str,
    now_unix: u64,
    window: u64,
) -> Result<TotpMatch, Reject> {
    check_format(code, digits)?;
    let now_step = totp_step(now_unix, step, t0).map_err(map_params)?;
    let center = i128::from(now_step) + i128::from(drift_steps);
    let low = (center - i128::from(window)).max(0);
    let high = center + i128::from(window);
    let steps = (low..=high).filter_map(|s| u64::try_from(s).ok());
    let mut fresh = None;
    let mut replayed = false;
    for s in steps {
        let expected = hotp(secret, s, digits, alg).map_err(map_params)?;
        let hit = ct_eq(expected.as_bytes(), code.as_bytes());
        let is_new = last_accepted_step.is_none_or(|last| s > last);
        if hit && is_new && fresh.is_none() {
            fresh = Some(s);
        }
        replayed |= hit && !is_new;
    }
    match fresh {
        Some(s) => Ok(TotpMatch {
            step: s,
            drift_steps: drift_of(s, now_step),
        }),
        None if replayed => Err(Reject::Replay),
        None => Err(Reject::NoMatch),
    }
}

fn drift_of(step: u64, now_step: u64) -> i64 {
    let drift = i128::from(step) - i128::from(now_step);
    i64::try_from(drift).unwrap_or(if drift < 0 { i64::MIN } else { i64::MAX })
}

/// TOTP resynchronisation: two codes of consecutive steps `s, s + 1` within `limit` steps of the
/// current step (either side). Returns the second step as accepted and its drift. Steps not newer
/// than `last_accepted_step` are not considered.
#[allow(clippy::too_many_arguments)]
pub fn resync_totp(
    secret: &[u8],
    digits: u32,
    alg: HashAlg,
    step: u64,
    t0: u64,
    last_accepted_step: Option<u64>,
    code1: &str,
    code2: &str,
    now_unix: u64,
    limit: u64,
) -> Result<TotpMatch, Reject> {
    check_format(code1, digits)?;
    check_format(code2, digits)?;
    let now_step = totp_step(now_unix, step, t0).map_err(map_params)?;
    let low = now_step.saturating_sub(limit);
    let high = now_step.saturating_add(limit);
    let mut found = None;
    let mut previous_hit = false;
    for s in low..=high {
        let expected = hotp(secret, s, digits, alg).map_err(map_params)?;
        let hit2 = ct_eq(expected.as_bytes(), code2.as_bytes());
        let is_new = last_accepted_step.is_none_or(|last| s > last);
        if previous_hit && hit2 && is_new && found.is_none() {
            found = Some(s);
        }
        previous_hit = ct_eq(expected.as_bytes(), code1.as_bytes());
    }
    match found {
        Some(s) => Ok(TotpMatch {
            step: s,
            drift_steps: drift_of(s, now_step),
        }),
        None => Err(Reject::ResyncFailed),
    }
}

/// Freshness of an issued OCRA challenge: single use, and `now < issued_at + ttl`.
pub fn check_challenge(
    issued_at_unix: u64,
    now_unix: u64,
    ttl_secs: u64,
    consumed: bool,
) -> Result<(), Reject> {
    if consumed {
        return Err(Reject::ChallengeUsed);
    }
    if now_unix >= issued_at_unix.saturating_add(ttl_secs) {
        return Err(Reject::ChallengeExpired);
    }
    Ok(())
}

fn check_ocra_format(suite: &OcraSuite, response: &str) -> Result<(), Reject> {
    if suite.digits != 0 {
        return check_format(response, suite.digits);
    }
    if response.len() > MAX_INPUT_LEN {
        return Err(Reject::TooLong);
    }
    if !response.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Reject::BadFormat);
    }
    if response.len() != suite.response_len() {
        return Err(Reject::WrongLength);
    }
    Ok(())
}

/// OCRA response check (RFC 6287 §7.1) for a challenge the verifier issued: `input` holds the
/// challenge (and counter / PIN hash / session / time as the suite needs). If the suite has a
/// time step, `time_window` steps on each side of `input.timestamp_steps` are also accepted.
pub fn check_ocra(
    suite: &OcraSuite,
    key: &[u8],
    input: &OcraInput,
    response: &str,
    time_window: u64,
) -> Result<(), Reject> {
    check_ocra_format(suite, response)?;
    let normalized = response.to_ascii_lowercase();
    let mut candidates: Vec<Option<u64>> = Vec::new();
    match (suite.time_step, input.timestamp_steps) {
        (Some(_), Some(t)) => {
            let low = t.saturating_sub(time_window);
            let high = t.saturating_add(time_window);
            candidates.extend((low..=high).map(Some));
        }
        (Some(_), None) => return Err(Reject::BadParameters),
        (None, _) => candidates.push(None),
    }
    let mut matched = false;
    for t in candidates {
        let mut this = input.clone();
        this.timestamp_steps = t.or(input.timestamp_steps);
        let expected = ocra(suite, key, &this).map_err(map_params)?;
        matched |= ct_eq(expected.as_bytes(), normalized.as_bytes());
    }
    if matched {
        Ok(())
    } else {
        Err(Reject::NoMatch)
    }
}

/// Transaction-signature check: the response must be the OCRA value over exactly these fields
/// (in this order; see [`mod@crate::otp::ocra`] for the encoding), with the suite's other inputs from
/// `input` (its `question` is replaced by the transaction question). The suite must be `QH64`-like
/// (hex question of at least 64 digits).
pub fn check_signature(
    suite: &OcraSuite,
    key: &[u8],
    fields: &[(String, String)],
    input: &OcraInput,
    response: &str,
    time_window: u64,
) -> Result<(), Reject> {
    let question = transaction_question(fields).map_err(|_| Reject::BadTransaction)?;
    if suite.question_kind != super::ocra::QuestionKind::Hex
        || usize::from(suite.question_len) < question.len()
    {
        return Err(Reject::BadParameters);
    }
    let input = OcraInput {
        question,
        ..input.clone()
    };
    check_ocra(suite, key, &input, response, time_window)
}

/// State of a fail counter (per token or per user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailState {
    /// Consecutive failures so far.
    pub failures: u32,
    /// Locked (only an administrator's unlock clears it).
    pub locked: bool,
}

/// Fail-counter transition (DESIGN.md): a failure adds one and locks at `max_failures`; a success
/// before the lock resets the count; a locked state never changes here (a valid code does not
/// unlock). Outcomes that do not count ([`Reject::counts_as_failure`]) leave the state as is.
pub fn next_fail_state(
    state: FailState,
    outcome: Result<(), Reject>,
    max_failures: u32,
) -> FailState {
    if state.locked {
        return state;
    }
    match outcome {
        Ok(()) => FailState::default(),
        Err(reject) if reject.counts_as_failure() => {
            let failures = state.failures.saturating_add(1);
            FailState {
                failures,
                locked: failures >= max_failures,
            }
        }
        Err(_) => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn hotp_window_edges() {
        let c9 = hotp(SEED, 9, 6, HashAlg::Sha1).unwrap();
        let c10 = hotp(SEED, 10, 6, HashAlg::Sha1).unwrap();
        assert_eq!(
            check_hotp(SEED, 6, HashAlg::Sha1, 0, &c9, 10),
            Ok(HotpMatch {
                matched: 9,
                next: 10
            })
        );
        assert_eq!(
            check_hotp(SEED, 6, HashAlg::Sha1, 0, &c10, 10),
            Err(Reject::NoMatch)
        );
        // An old code (below the counter) is never accepted.
        let c0 = hotp(SEED, 0, 6, HashAlg::Sha1).unwrap();
        assert_eq!(
            check_hotp(SEED, 6, HashAlg::Sha1, 1, &c0, 10),
            Err(Reject::NoMatch)
        );
        assert!(hotp_recently_used(SEED, 6, HashAlg::Sha1, 1, &c0, 10));
        assert!(!hotp_recently_used(SEED, 6, HashAlg::Sha1, 11, &c0, 10));
        assert_eq!(
            check_hotp(SEED, 6, HashAlg::Sha1, 11, &c0, 10),
            Err(Reject::NoMatch)
        );
    }

    #[test]
    fn formats() {
        assert_eq!(check_format("12345a", 6), Err(Reject::BadFormat));
        assert_eq!(check_format("12345", 6), Err(Reject::WrongLength));
        assert_eq!(check_format(" 123456", 6), Err(Reject::BadFormat));
        assert_eq!(check_format("１２３４５６", 6), Err(Reject::BadFormat));
        assert_eq!(check_format(&"1".repeat(10_000), 6), Err(Reject::TooLong));
        assert_eq!(check_format("123456", 6), Ok(()));
    }

    #[test]
    fn totp_drift_and_replay() {
        let now = 1_000_000_000u64;
        let t = now / 30;
        let code_next = hotp(SEED, t + 1, 8, HashAlg::Sha1).unwrap();
        let m = check_totp(SEED, 8, HashAlg::Sha1, 30, 0, None, 0, &code_next, now, 1).unwrap();
        assert_eq!(
            m,
            TotpMatch {
                step: t + 1,
                drift_steps: 1
            }
        );
        assert_eq!(
            check_totp(
                SEED,
                8,
                HashAlg::Sha1,
                30,
                0,
                Some(t + 1),
                1,
                &code_next,
                now,
                1
            ),
            Err(Reject::Replay)
        );
        let code_two_ahead = hotp(SEED, t + 2, 8, HashAlg::Sha1).unwrap();
        assert_eq!(
            check_totp(
                SEED,
                8,
                HashAlg::Sha1,
                30,
                0,
                None,
                0,
                &code_two_ahead,
                now,
                1
            ),
            Err(Reject::NoMatch)
        );
        assert!(
            check_totp(
                SEED,
                8,
                HashAlg::Sha1,
                30,
                0,
                Some(t + 1),
                1,
                &code_two_ahead,
                now,
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn hotp_resync() {
        let a = hotp(SEED, 500, 6, HashAlg::Sha1).unwrap();
        let b = hotp(SEED, 501, 6, HashAlg::Sha1).unwrap();
        assert_eq!(
            resync_hotp(SEED, 6, HashAlg::Sha1, 0, &a, &b, 1000),
            Ok(HotpMatch {
                matched: 501,
                next: 502
            })
        );
        assert_eq!(
            resync_hotp(SEED, 6, HashAlg::Sha1, 0, &b, &a, 1000),
            Err(Reject::ResyncFailed)
        );
        assert_eq!(
            resync_hotp(SEED, 6, HashAlg::Sha1, 0, &a, &b, 400),
            Err(Reject::ResyncFailed)
        );
    }

    #[test]
    fn challenge_lifetime() {
        assert_eq!(check_challenge(100, 219, 120, false), Ok(()));
        assert_eq!(
            check_challenge(100, 220, 120, false),
            Err(Reject::ChallengeExpired)
        );
        assert_eq!(
            check_challenge(100, 101, 120, true),
            Err(Reject::ChallengeUsed)
        );
    }

    #[test]
    fn fail_counter() {
        let mut state = FailState::default();
        for _ in 0..4 {
            state = next_fail_state(state, Err(Reject::NoMatch), 5);
        }
        assert!(!state.locked);
        assert_eq!(next_fail_state(state, Ok(()), 5), FailState::default());
        state = next_fail_state(state, Err(Reject::NoMatch), 5);
        assert!(state.locked);
        assert!(next_fail_state(state, Ok(()), 5).locked);
    }
}
