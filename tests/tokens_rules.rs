//! Verification rules of the token service (DESIGN.md "Verification semantics"), bad input,
//! and racing identical codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};

use keygate::otp::pskc::{ImportOptions, PskcDecryption};
use keygate::otp::verify::Reject;
use keygate::otp::{HashAlg, OcraInput, OcraSuite, hotp, ocra, totp, transaction_question};
use keygate::secret::Secret;
use keygate::store::{SqliteStore, StoreError, TokenStore};
use keygate::tokens::{
    Challenge, CreatedToken, NewTokenRequest, RejectReason, Target, TestClock, TokenError,
    TokenInfo, TokenKind, TokenPolicy, TokenService, Verdict,
};

/// RFC 4226 Appendix D / RFC 6238 Appendix B seed.
const SEED: &[u8] = b"12345678901234567890";
const ADMIN: &str = "test-admin";
const CALLER: &str = "login-page";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    clock: Arc<TestClock>,
    svc: TokenService,
}

fn env_with(policy: TokenPolicy) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_state_dir(dir.path()).unwrap());
    let clock = Arc::new(TestClock::new(1_111_111_109));
    let svc = TokenService::new(store.clone(), policy, clock.clone());
    Env {
        _dir: dir,
        store,
        clock,
        svc,
    }
}

fn env() -> Env {
    env_with(TokenPolicy::default())
}

/// The service calls of these tests, made as the admin or the login page, that must not fail.
impl Env {
    fn create(&self, request: NewTokenRequest) -> CreatedToken {
        self.svc.create_token(ADMIN, request).unwrap()
    }

    fn token(&self, serial: &str) -> TokenInfo {
        self.svc.token(serial).unwrap().unwrap()
    }

    fn verify(&self, serial: &str, code: &str) -> Verdict {
        self.svc
            .verify_code(CALLER, Target::Serial(serial), code)
            .unwrap()
    }

    fn verify_user(&self, user: &str, code: &str) -> Verdict {
        self.svc
            .verify_code(CALLER, Target::User(user), code)
            .unwrap()
    }

    fn resync(&self, serial: &str, code1: &str, code2: &str) -> Verdict {
        self.svc.resync(ADMIN, serial, code1, code2).unwrap()
    }

    fn challenge(&self, serial: &str) -> Challenge {
        self.svc.issue_challenge(CALLER, serial).unwrap()
    }

    fn respond(&self, challenge_id: &str, response: &str) -> Verdict {
        self.svc
            .verify_response(CALLER, challenge_id, response)
            .unwrap()
    }

    fn sign_challenge(&self, serial: &str, fields: Vec<(String, String)>) -> Challenge {
        self.svc
            .issue_signature_challenge(CALLER, serial, fields)
            .unwrap()
    }

    fn check_signature(&self, id: &str, fields: &[(String, String)], signature: &str) -> Verdict {
        self.svc
            .verify_signature(CALLER, id, fields, signature)
            .unwrap()
    }

    fn unlock_token(&self, serial: &str) -> bool {
        self.svc.unlock_token(ADMIN, serial).unwrap()
    }

    fn unlock_user(&self, user: &str) -> bool {
        self.svc.unlock_user(ADMIN, user).unwrap()
    }

    fn delete_token(&self, serial: &str) -> bool {
        self.svc.delete_token(ADMIN, serial).unwrap()
    }

    /// Imports RFC 6030 figure `n` with the default import options.
    fn import(
        &self,
        n: u32,
        decryption: &PskcDecryption,
        owner: Option<&str>,
    ) -> Result<Vec<TokenInfo>, TokenError> {
        let options = ImportOptions::default();
        self.svc
            .import_pskc(ADMIN, &figure(n), decryption, &options, owner)
    }
}

fn request(kind: TokenKind, serial: &str, digits: u32, owner: Option<&str>) -> NewTokenRequest {
    let mut req = NewTokenRequest::new(kind);
    req.serial = Some(serial.into());
    req.seed = Some(Secret::new(SEED.to_vec()));
    req.digits = Some(digits);
    req.owner = owner.map(str::to_string);
    req
}

fn hotp8(counter: u64) -> String {
    hotp(SEED, counter, 8, HashAlg::Sha1).unwrap()
}

fn reason(v: &Verdict) -> RejectReason {
    v.reason()
        .unwrap_or_else(|| panic!("expected a rejection, got {v:?}"))
}

#[test]
fn hotp_window_edges_and_replay() {
    let env = env();
    env.create(request(TokenKind::Hotp, "1000000001", 6, None));
    // RFC 4226 Appendix D values (an outside oracle for the counter arithmetic).
    let rfc = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    // c + 10 is outside the window: rejected, and nothing moves.
    let c10 = hotp(SEED, 10, 6, HashAlg::Sha1).unwrap();
    assert_eq!(
        reason(&env.verify("1000000001", &c10)),
        RejectReason::Check(Reject::NoMatch)
    );
    assert_eq!(env.token("1000000001").counter, 0);
    // c + 9 is the last counter inside the window: accepted, counter stored as 10.
    assert!(env.verify("1000000001", rfc[9]).is_accepted());
    let info = env.token("1000000001");
    assert_eq!((info.counter, info.fail_count), (10, 1 - 1));
    // Replay of the same code and of an older one.
    assert!(!env.verify("1000000001", rfc[9]).is_accepted());
    assert!(!env.verify("1000000001", rfc[4]).is_accepted());
    assert_eq!(env.token("1000000001").counter, 10);
    // Now c = 10: c + 9 = 19 accepted, then c = 20 and c + 10 = 30 rejected.
    let code = |c| hotp(SEED, c, 6, HashAlg::Sha1).unwrap();
    assert!(env.verify("1000000001", &c10).is_accepted());
    assert!(env.verify("1000000001", &code(20)).is_accepted());
    assert!(!env.verify("1000000001", &code(31)).is_accepted());
    assert!(env.verify("1000000001", &code(30)).is_accepted());
    assert_eq!(env.token("1000000001").counter, 31);
}

#[test]
fn totp_step_window_drift_and_replay() {
    let env = env();
    let mut req = request(TokenKind::Totp, "2000000001", 8, None);
    req.period = Some(30);
    env.create(req);
    let now = 1_111_111_109u64; // RFC 6238: 07081804 at this time (SHA-1, 8 digits)
    let at = |t: u64| totp(SEED, t, 30, 0, 8, HashAlg::Sha1).unwrap();
    assert_eq!(at(now), "07081804");
    // Two steps behind and two ahead are outside ±1.
    assert_eq!(
        reason(&env.verify("2000000001", &at(now - 60))),
        RejectReason::Check(Reject::NoMatch)
    );
    assert_eq!(
        reason(&env.verify("2000000001", &at(now + 60))),
        RejectReason::Check(Reject::NoMatch)
    );
    // One step behind accepted (drift -1 stored), then the current step.
    assert!(env.verify("2000000001", &at(now - 30)).is_accepted());
    assert_eq!(env.token("2000000001").drift, -1);
    assert!(env.verify("2000000001", "07081804").is_accepted());
    // Same code again, and the older step: replays.
    assert_eq!(
        reason(&env.verify("2000000001", "07081804")),
        RejectReason::Check(Reject::Replay)
    );
    assert_eq!(
        reason(&env.verify("2000000001", &at(now - 30))),
        RejectReason::Check(Reject::Replay)
    );
    // A token running one step fast: +1 accepted, drift +1 stored, and the window follows it.
    assert!(env.verify("2000000001", &at(now + 30)).is_accepted());
    let info = env.token("2000000001");
    assert_eq!(info.drift, 1);
    env.clock.advance(30);
    // Centre is now now+30+30 (drift +1): now+90 is inside, so accepted.
    assert!(env.verify("2000000001", &at(now + 90)).is_accepted());
    // Drift is stored only on success: a rejection leaves it.
    let before = env.token("2000000001");
    assert!(!env.verify("2000000001", "00000000").is_accepted());
    assert_eq!(env.token("2000000001").drift, before.drift);
}

#[test]
fn resync_with_two_consecutive_codes() {
    let env = env();
    env.create(request(TokenKind::Hotp, "3000000001", 8, None));
    // Far ahead: a single code is outside the window.
    assert!(!env.verify("3000000001", &hotp8(500)).is_accepted());
    // Not consecutive: refused.
    let v = env.resync("3000000001", &hotp8(500), &hotp8(502));
    assert_eq!(reason(&v), RejectReason::Check(Reject::ResyncFailed));
    // Beyond the 1000 limit: refused.
    let v = env.resync("3000000001", &hotp8(1200), &hotp8(1201));
    assert!(!v.is_accepted());
    // Consecutive within the limit: counter moves to 502.
    let v = env.resync("3000000001", &hotp8(500), &hotp8(501));
    assert!(v.is_accepted(), "{v:?}");
    assert_eq!(env.token("3000000001").counter, 502);
    assert!(!env.verify("3000000001", &hotp8(501)).is_accepted());
    assert!(env.verify("3000000001", &hotp8(502)).is_accepted());
    // Resync with already used codes is refused.
    let v = env.resync("3000000001", &hotp8(501), &hotp8(502));
    assert!(!v.is_accepted());
}

fn ocra_response(suite: &str, question: &str, counter: Option<u64>) -> String {
    let suite: OcraSuite = suite.parse().unwrap();
    let input = OcraInput {
        question: question.into(),
        counter,
        ..OcraInput::default()
    };
    ocra(&suite, SEED, &input).unwrap()
}

#[test]
fn challenges_are_single_use_and_expire() {
    let env = env();
    let mut req = request(TokenKind::ChallengeResponse, "4000000001", 8, Some("dora"));
    req.digits = None;
    let created = env.create(req);
    assert_eq!(
        created.info.suite.as_deref(),
        Some("OCRA-1:HOTP-SHA1-8:QN08")
    );

    let ch = env.challenge("4000000001");
    assert_eq!(ch.question.len(), 8);
    assert!(ch.question.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(ch.expires_at, 1_111_111_109 + 120);
    let response = ocra_response("OCRA-1:HOTP-SHA1-8:QN08", &ch.question, None);
    assert!(env.respond(&ch.id, &response).is_accepted());
    // Reused challenge.
    let v = env.respond(&ch.id, &response);
    assert_eq!(reason(&v), RejectReason::Check(Reject::ChallengeUsed));

    // A wrong answer consumes the challenge too.
    let ch = env.challenge("4000000001");
    let good = ocra_response("OCRA-1:HOTP-SHA1-8:QN08", &ch.question, None);
    let wrong = if good == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    assert_eq!(
        reason(&env.respond(&ch.id, wrong)),
        RejectReason::Check(Reject::NoMatch)
    );
    assert_eq!(
        reason(&env.respond(&ch.id, &good)),
        RejectReason::Check(Reject::ChallengeUsed)
    );

    // Expiry: 119 s after issue still fine, 120 s is too late.
    let ch1 = env.challenge("4000000001");
    let ch2 = env.challenge("4000000001");
    env.clock.advance(119);
    let r1 = ocra_response("OCRA-1:HOTP-SHA1-8:QN08", &ch1.question, None);
    assert!(env.respond(&ch1.id, &r1).is_accepted());
    env.clock.advance(1);
    let r2 = ocra_response("OCRA-1:HOTP-SHA1-8:QN08", &ch2.question, None);
    assert_eq!(
        reason(&env.respond(&ch2.id, &r2)),
        RejectReason::Check(Reject::ChallengeExpired)
    );
    // Unknown and malformed challenge ids.
    let v = env.respond("00112233445566778899aabbccddeeff", &r2);
    assert_eq!(reason(&v), RejectReason::UnknownChallenge);
    let v = env.respond("../../etc", &r2);
    assert_eq!(reason(&v), RejectReason::UnknownChallenge);
    // A response-only token cannot be challenged.
    env.create(request(TokenKind::Hotp, "4000000002", 8, None));
    assert!(matches!(
        env.svc.issue_challenge(CALLER, "4000000002"),
        Err(TokenError::WrongKind { .. })
    ));
}

#[test]
fn ocra_counter_suite_moves_its_counter() {
    let env = env();
    let suite = "OCRA-1:HOTP-SHA1-6:C-QN08";
    let mut req = request(TokenKind::ChallengeResponse, "4100000001", 6, None);
    req.suite = Some(suite.into());
    req.counter = 3;
    env.create(req);
    let ch = env.challenge("4100000001");
    // The token is a few events ahead (counter 7): inside the look-ahead window.
    let r = ocra_response(suite, &ch.question, Some(7));
    assert!(env.respond(&ch.id, &r).is_accepted());
    assert_eq!(env.token("4100000001").counter, 8);
    // Counter 7 again on a fresh challenge is behind the counter now.
    let ch = env.challenge("4100000001");
    let r = ocra_response(suite, &ch.question, Some(7));
    assert!(!env.respond(&ch.id, &r).is_accepted());
}

#[test]
fn signature_is_bound_to_the_exact_fields() {
    let env = env();
    let mut req = request(TokenKind::Signature, "5000000001", 8, Some("erin"));
    req.digits = None;
    env.create(req);
    let fields = vec![
        ("amount".to_string(), "100.00 EUR".to_string()),
        ("iban".to_string(), "DE89370400440532013000".to_string()),
    ];
    let suite = "OCRA-1:HOTP-SHA256-8:QH64";
    let ch = env.sign_challenge("5000000001", fields.clone());
    assert_eq!(ch.question, transaction_question(&fields).unwrap());
    let signature = ocra_response(suite, &ch.question, None);
    // Changed amount with the signature over the original: rejected (and consumed).
    let mut changed = fields.clone();
    changed[0].1 = "1000.00 EUR".into();
    let v = env.check_signature(&ch.id, &changed, &signature);
    assert_eq!(reason(&v), RejectReason::FieldsChanged);
    // Reordered fields are different fields too.
    let ch = env.sign_challenge("5000000001", fields.clone());
    let reordered = vec![fields[1].clone(), fields[0].clone()];
    let v = env.check_signature(&ch.id, &reordered, &signature);
    assert_eq!(reason(&v), RejectReason::FieldsChanged);
    // A signature computed over the changed fields does not match the challenge either.
    let ch = env.sign_challenge("5000000001", fields.clone());
    let forged = ocra_response(suite, &transaction_question(&changed).unwrap(), None);
    let v = env.check_signature(&ch.id, &fields, &forged);
    assert!(!v.is_accepted());
    // The right fields and signature on a fresh challenge: accepted; then single use.
    let ch = env.sign_challenge("5000000001", fields.clone());
    assert!(
        env.check_signature(&ch.id, &fields, &signature)
            .is_accepted()
    );
    let v = env.check_signature(&ch.id, &fields, &signature);
    assert_eq!(reason(&v), RejectReason::Check(Reject::ChallengeUsed));
    // A signature challenge cannot be answered as a plain challenge.
    let ch = env.sign_challenge("5000000001", fields.clone());
    let v = env.respond(&ch.id, &signature);
    assert_eq!(reason(&v), RejectReason::WrongKind);
}

fn wrong(code: &str) -> String {
    // Same length, different last digit.
    let mut bytes = code.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'9' {
        b'0'
    } else {
        bytes[last] + 1
    };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn lockout_at_exactly_five_and_admin_unlock() {
    let env = env();
    env.create(request(TokenKind::Hotp, "6000000001", 8, Some("frank")));
    let bad = wrong(&hotp8(0));
    // A success before the lock resets the token's counter.
    for _ in 0..4 {
        assert!(!env.verify("6000000001", &bad).is_accepted());
    }
    assert_eq!(env.token("6000000001").fail_count, 4);
    assert!(env.verify("6000000001", &hotp8(0)).is_accepted());
    let info = env.token("6000000001");
    assert_eq!((info.fail_count, info.locked), (0, false));
    assert_eq!(env.svc.user("frank").unwrap().unwrap().fail_count, 0);
    // Four failures: not locked. The fifth locks token and user.
    let bad = wrong(&hotp8(1));
    for i in 1..=4 {
        match env.verify("6000000001", &bad) {
            Verdict::Rejected {
                token_locked,
                user_locked,
                ..
            } => {
                assert!(!token_locked && !user_locked, "locked after {i}");
            }
            v => panic!("{v:?}"),
        }
    }
    match env.verify("6000000001", &bad) {
        Verdict::Rejected {
            token_locked,
            user_locked,
            reason,
            ..
        } => {
            assert!(token_locked && user_locked);
            assert_eq!(reason, RejectReason::Check(Reject::NoMatch));
        }
        v => panic!("{v:?}"),
    }
    // A locked token stays locked on a valid code, and nothing moves.
    assert_eq!(
        reason(&env.verify("6000000001", &hotp8(1))),
        RejectReason::TokenLocked
    );
    let info = env.token("6000000001");
    assert_eq!((info.counter, info.fail_count, info.locked), (1, 5, true));
    // Unlocking the token alone: the user is still locked.
    assert!(env.unlock_token("6000000001"));
    assert_eq!(
        reason(&env.verify("6000000001", &hotp8(1))),
        RejectReason::UserLocked
    );
    assert!(env.unlock_user("frank"));
    assert!(env.verify("6000000001", &hotp8(1)).is_accepted());
    assert!(!env.unlock_token("9999999999"));
}

#[test]
fn per_user_lock_and_check_by_user() {
    let env = env();
    env.create(request(TokenKind::Hotp, "7000000001", 8, Some("gina")));
    let mut totp_req = request(TokenKind::Totp, "7000000002", 8, Some("gina"));
    totp_req.seed = Some(Secret::new(b"another seed of 20 b".to_vec()));
    env.create(totp_req);
    let totp_now = totp(
        b"another seed of 20 b",
        1_111_111_109,
        30,
        0,
        8,
        HashAlg::Sha1,
    )
    .unwrap();
    // By user: the TOTP token's code is found among the user's tokens.
    let v = env.verify_user("gina", &totp_now);
    assert_eq!(
        v,
        Verdict::Accepted {
            serial: "7000000002".into()
        }
    );
    let v = env.verify_user("gina", &totp_now);
    assert_eq!(reason(&v), RejectReason::Check(Reject::Replay));
    let v = env.verify_user("gina", &hotp8(0));
    assert_eq!(
        v,
        Verdict::Accepted {
            serial: "7000000001".into()
        }
    );
    // Five failures by user lock the user, not the tokens.
    for i in 1..=5 {
        match env.verify_user("gina", "12345678") {
            Verdict::Rejected { user_locked, .. } => assert_eq!(user_locked, i == 5),
            v => panic!("{v:?}"),
        }
    }
    assert!(env.svc.user("gina").unwrap().unwrap().locked);
    assert!(!env.token("7000000001").locked);
    // Every factor of a locked user is refused, by serial too, even with a valid code.
    assert_eq!(
        reason(&env.verify("7000000001", &hotp8(1))),
        RejectReason::UserLocked
    );
    let v = env.verify_user("gina", &hotp8(1));
    assert_eq!(reason(&v), RejectReason::UserLocked);
    assert_eq!(env.token("7000000001").counter, 1);
    env.unlock_user("gina");
    assert!(env.verify("7000000001", &hotp8(1)).is_accepted());
    // Unknown user.
    let v = env.verify_user("nobody", "12345678");
    assert_eq!(reason(&v), RejectReason::UnknownUser);
}

fn delete_test_factors(tx: &rusqlite::Transaction<'_>, login: &str) -> Result<u64, StoreError> {
    Ok(tx.execute("DELETE FROM test_factors WHERE login = ?1", [login])? as u64)
}

#[test]
fn panic_revokes_every_factor_of_the_user() {
    let env = env();
    env.create(request(TokenKind::Hotp, "8000000001", 8, Some("hank")));
    env.create(request(TokenKind::Totp, "8000000002", 8, Some("hank")));
    let mut cr = request(TokenKind::ChallengeResponse, "8000000003", 8, Some("hank"));
    cr.digits = None;
    env.create(cr);
    env.create(request(TokenKind::Hotp, "8000000004", 8, Some("ivy")));
    let pending = env.challenge("8000000003");
    // Another factor kind registered through the hook.
    env.store
        .write(|tx| {
            tx.execute_batch(
                "CREATE TABLE test_factors (login TEXT);
                 INSERT INTO test_factors VALUES ('hank'), ('hank'), ('ivy');",
            )?;
            Ok(())
        })
        .unwrap();
    env.store.add_revoke_hook(delete_test_factors);

    // WebAuthn credentials of the same login (the relying party's table).
    env.store
        .write(|tx| {
            tx.execute_batch(
                "INSERT INTO webauthn_credentials (rp_id, credential_id, user_login, kind, credential,
                     counter, backup_eligible, backup_state, created_at)
                 VALUES ('example.org', x'01', 'hank', 'passkey', '{}', 0, 0, 0, 0),
                        ('example.org', x'02', 'hank', 'passkey', '{}', 0, 0, 0, 0),
                        ('example.org', x'03', 'ivy', 'passkey', '{}', 0, 0, 0, 0);",
            )?;
            Ok(())
        })
        .unwrap();

    let summary = env.svc.revoke_user(ADMIN, "hank").unwrap();
    // 2 test factors through the hook + 2 WebAuthn credentials.
    assert_eq!((summary.tokens, summary.other_factors), (3, 4));
    let credentials: Vec<String> = env
        .store
        .read(|c| {
            let mut stmt = c.prepare("SELECT user_login FROM webauthn_credentials")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .unwrap();
    assert_eq!(credentials, vec!["ivy".to_string()]);
    assert_eq!(
        reason(&env.verify("8000000001", &hotp8(0))),
        RejectReason::Revoked
    );
    let v = env.verify_user("hank", &hotp8(0));
    assert_eq!(reason(&v), RejectReason::NoActiveToken);
    assert!(env.svc.issue_challenge(CALLER, "8000000003").is_err());
    let r = ocra_response("OCRA-1:HOTP-SHA1-8:QN08", &pending.question, None);
    assert!(!env.respond(&pending.id, &r).is_accepted());
    for t in env.svc.list_tokens(Some("hank")).unwrap() {
        assert!(t.revoked, "{}", t.serial);
    }
    // The seeds are gone, not only flagged.
    let record = env.store.token_by_serial("8000000001").unwrap().unwrap();
    assert!(record.sealed_seed.is_empty());
    // Ivy is untouched.
    assert!(env.verify("8000000004", &hotp8(0)).is_accepted());
    let left: i64 = env
        .store
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM test_factors", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(left, 1);
}

#[test]
fn audit_rows_for_every_check_and_no_secrets_at_rest() {
    let env = env();
    env.create(request(TokenKind::Hotp, "9000000001", 8, Some("jo")));
    let codes = [hotp8(0), wrong(&hotp8(1)), hotp8(0), "abc".to_string()];
    for code in &codes {
        env.verify("9000000001", code);
    }
    env.verify("9999999999", &hotp8(1));
    let log = env.svc.audit_log(None, None, 100).unwrap();
    let checks: Vec<_> = log.iter().filter(|a| a.operation == "verify").collect();
    let summary: Vec<(&str, Option<&str>)> = checks
        .iter()
        .map(|a| (a.result.as_str(), a.reason.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("accept", None),
            ("reject", Some("no_match")),
            ("reject", Some("no_match")),
            ("reject", Some("bad_format")),
            ("reject", Some("unknown_serial")),
        ]
    );
    assert!(
        checks[..4]
            .iter()
            .all(|a| a.serial.as_deref() == Some("9000000001")
                && a.user.as_deref() == Some("jo")
                && a.caller == CALLER
                && a.at == 1_111_111_109)
    );
    assert_eq!(log[0].operation, "create");
    // No row holds a code or the seed.
    let seed_hex = hex::encode(SEED);
    for row in &log {
        let text = format!("{row:?}");
        for code in &codes {
            assert!(!text.contains(code.as_str()), "{text}");
        }
        assert!(!text.contains("12345678901234567890") && !text.contains(&seed_hex));
    }
    // The seed is not in the database files in clear.
    let mut raw = Vec::new();
    for entry in std::fs::read_dir(env._dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("keygate.db")
        {
            raw.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(!raw.is_empty());
    assert!(!raw.windows(SEED.len()).any(|w| w == SEED));
}

#[test]
fn bad_input_gives_clear_answers_and_writes_nothing_half() {
    let env = env();
    env.create(request(TokenKind::Hotp, "1100000001", 8, None));
    let r = |code: &str| reason(&env.verify("1100000001", code));
    assert_eq!(r("1234567a"), RejectReason::Check(Reject::BadFormat));
    assert_eq!(
        r("１２３４５６７８"),
        RejectReason::Check(Reject::BadFormat)
    );
    assert_eq!(r(" 12345678"), RejectReason::Check(Reject::BadFormat));
    assert_eq!(r("1234567"), RejectReason::Check(Reject::WrongLength));
    assert_eq!(
        r(&"1".repeat(100_000)),
        RejectReason::Check(Reject::TooLong)
    );
    assert_eq!(env.token("1100000001").counter, 0);
    env.unlock_token("1100000001");
    // Overlong or malformed serials and logins are request errors.
    let long = "9".repeat(65);
    assert!(matches!(
        env.svc
            .verify_code(CALLER, Target::Serial(&long), "12345678"),
        Err(TokenError::InvalidRequest(_))
    ));
    assert!(matches!(
        env.svc
            .verify_code(CALLER, Target::Serial("12 34"), "12345678"),
        Err(TokenError::InvalidRequest(_))
    ));
    assert!(matches!(
        env.svc
            .verify_code(CALLER, Target::User(&"u".repeat(300)), "12345678"),
        Err(TokenError::InvalidRequest(_))
    ));
    assert_eq!(
        reason(&env.verify("0000000000", "12345678")),
        RejectReason::UnknownSerial
    );

    // A corrupted sealed seed: a clear error, no counter or fail count moves.
    let record = env.store.token_by_serial("1100000001").unwrap().unwrap();
    let mut blob = record.sealed_seed.clone();
    let middle = blob.len() / 2;
    blob[middle] ^= 0x01;
    env.store.debug_set_sealed_seed("1100000001", blob).unwrap();
    let err = env
        .svc
        .verify_code(CALLER, Target::Serial("1100000001"), &hotp8(0))
        .unwrap_err();
    assert!(
        matches!(err, TokenError::Store(StoreError::Unseal { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("1100000001"), "{err}");
    let after = env.store.token_by_serial("1100000001").unwrap().unwrap();
    assert_eq!((after.state, after.fail_count), (record.state, 0));
    let last = env.svc.audit_log(Some("1100000001"), None, 1).unwrap();
    assert_eq!(last[0].reason.as_deref(), Some("seed_unreadable"));
    // A sealed seed moved to another row fails too (bound to its serial).
    env.create(request(TokenKind::Hotp, "1100000002", 8, None));
    let other = env.store.token_by_serial("1100000002").unwrap().unwrap();
    env.store
        .debug_set_sealed_seed("1100000001", other.sealed_seed)
        .unwrap();
    assert!(
        env.svc
            .verify_code(CALLER, Target::Serial("1100000001"), &hotp8(0))
            .is_err()
    );
}

#[test]
fn import_batch_is_atomic() {
    let env = env();
    env.create(request(TokenKind::Hotp, "1200000000", 8, None));
    let mut short = request(TokenKind::Hotp, "1200000003", 8, None);
    short.seed = Some(Secret::new(vec![1; 10]));
    let batch = || {
        vec![
            request(TokenKind::Hotp, "1200000001", 8, Some("kim")),
            request(TokenKind::Totp, "1200000002", 6, Some("kim")),
        ]
    };
    // A short seed (80 bits) refuses the whole batch, naming the entry.
    let mut b = batch();
    b.push(short);
    match env.svc.create_tokens(ADMIN, b) {
        Err(TokenError::ImportRefused { index, reason, .. }) => {
            assert_eq!(index, 2);
            assert!(reason.contains("80 bits"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Duplicate inside the batch, and duplicate of a stored token.
    let mut b = batch();
    b.push(request(TokenKind::Hotp, "1200000001", 8, None));
    assert!(matches!(
        env.svc.create_tokens(ADMIN, b),
        Err(TokenError::ImportRefused { index: 2, .. })
    ));
    let mut b = batch();
    b.push(request(TokenKind::Hotp, "1200000000", 8, None));
    match env.svc.create_tokens(ADMIN, b) {
        Err(TokenError::ImportRefused { index, serial, .. }) => {
            assert_eq!((index, serial.as_str()), (2, "1200000000"))
        }
        other => panic!("{other:?}"),
    }
    // Bad digits / suite.
    let mut b = batch();
    b[1].digits = Some(11);
    assert!(env.svc.create_tokens(ADMIN, b).is_err());
    let mut bad_suite = request(TokenKind::Signature, "1200000009", 8, None);
    bad_suite.suite = Some("OCRA-1:HOTP-SHA1-8:QN08".into());
    assert!(env.svc.create_token(ADMIN, bad_suite).is_err());
    // Nothing of the refused batches is stored, no user row either.
    assert_eq!(env.svc.list_tokens(None).unwrap().len(), 1);
    assert!(env.svc.user("kim").unwrap().is_none());
    // The good batch goes in whole.
    let created = env.svc.create_tokens(ADMIN, batch()).unwrap();
    assert_eq!(created.len(), 2);
    assert_eq!(env.svc.list_tokens(Some("kim")).unwrap().len(), 2);
    // Generated serial and seed: 10 digits, seed of the hash's length.
    let generated = env.create(NewTokenRequest::new(TokenKind::Hotp));
    assert_eq!(generated.info.serial.len(), 10);
    assert_eq!(generated.seed.expose_secret().len(), 20);
    assert_eq!(generated.info.digits, 8);
    let code = hotp(generated.seed.expose_secret(), 0, 8, HashAlg::Sha1).unwrap();
    assert!(env.verify(&generated.info.serial, &code).is_accepted());
    assert!(env.delete_token(&generated.info.serial));
    assert!(env.svc.token(&generated.info.serial).unwrap().is_none());
}

/// 1,000 trials of two threads submitting the same valid code: exactly one accept each time.
#[test]
fn racing_identical_codes_exactly_one_accept() {
    let env = env();
    env.create(request(TokenKind::Hotp, "1300000001", 8, Some("lee")));
    let mut totp_req = request(TokenKind::Totp, "1300000002", 8, Some("lee"));
    totp_req.period = Some(30);
    env.create(totp_req);
    let barrier = Arc::new(Barrier::new(2));
    let race = |serial: &'static str, code: String| -> Vec<Verdict> {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (svc, barrier, code) = (env.svc.clone(), barrier.clone(), code.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    svc.verify_code(CALLER, Target::Serial(serial), &code)
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    };
    for trial in 0..1000u64 {
        let verdicts = race("1300000001", hotp8(trial));
        let accepted = verdicts.iter().filter(|v| v.is_accepted()).count();
        assert_eq!(accepted, 1, "trial {trial}: {verdicts:?}");
        let loser = verdicts.iter().find(|v| !v.is_accepted()).unwrap();
        assert_eq!(
            reason(loser),
            RejectReason::Check(Reject::NoMatch),
            "trial {trial}"
        );
    }
    let info = env.token("1300000001");
    assert_eq!(info.counter, 1000);
    // TOTP: identical codes of one step race; the loser is a replay.
    for trial in 0..200u64 {
        env.clock.advance(30);
        let code = totp(SEED, env.clock.as_ref().now(), 30, 0, 8, HashAlg::Sha1).unwrap();
        let verdicts = race("1300000002", code);
        assert_eq!(
            verdicts.iter().filter(|v| v.is_accepted()).count(),
            1,
            "totp trial {trial}"
        );
        let loser = verdicts.iter().find(|v| !v.is_accepted()).unwrap();
        assert_eq!(reason(loser), RejectReason::Check(Reject::Replay));
    }
}

trait Now {
    fn now(&self) -> u64;
}
impl Now for TestClock {
    fn now(&self) -> u64 {
        keygate::tokens::Clock::now_unix(self)
    }
}

fn figure(n: u32) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/vectors/rfc6030-pskc/figure{n}.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn pskc_import_is_atomic_and_imported_tokens_verify() {
    let env = env();
    // Figure 10: four packages, a serial twice: the whole file is refused, naming a package.
    let err = env.import(10, &PskcDecryption::None, None).unwrap_err();
    assert!(err.to_string().contains("9999999"), "{err}");
    // Figure 2: a 32-bit secret is refused.
    assert!(env.import(2, &PskcDecryption::None, None).is_err());
    // Figure 6 without its pre-shared key: refused.
    assert!(env.import(6, &PskcDecryption::None, None).is_err());
    assert!(env.svc.list_tokens(None).unwrap().is_empty());
    let refusals = env.svc.audit_log(None, None, 10).unwrap();
    assert!(
        refusals
            .iter()
            .all(|a| a.operation == "import" && a.result == "error")
    );

    // Figure 3: plain, with serial and user id.
    let imported = env
        .import(3, &PskcDecryption::None, Some("fallback"))
        .unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].serial, "987654321");
    assert_eq!(imported[0].digits, 8);
    assert!(env.verify("987654321", &hotp8(0)).is_accepted());
    // Figure 6 holds the same serial: refused as a whole.
    let psk = PskcDecryption::PreSharedKey(Secret::new(
        hex::decode("12345678901234567890123456789012").unwrap(),
    ));
    assert!(env.import(6, &psk, None).is_err());
    assert_eq!(env.svc.list_tokens(None).unwrap().len(), 1);

    // In another store: figure 6 (AES-128-CBC under the pre-shared key, MAC checked) and
    // figure 7 (PBKDF2 password) decrypt and verify.
    let other = self::env();
    let imported = other.import(6, &psk, Some("olga")).unwrap();
    assert!(other.verify(&imported[0].serial, &hotp8(0)).is_accepted());
    other.delete_token(&imported[0].serial);
    let wrong_password = PskcDecryption::Password(Secret::new("qwertz".to_string()));
    assert!(other.import(7, &wrong_password, None).is_err());
    let password = PskcDecryption::Password(Secret::new("qwerty".to_string()));
    let imported = other.import(7, &password, None).unwrap();
    assert!(other.verify(&imported[0].serial, &hotp8(0)).is_accepted());
}

#[test]
fn otpauth_uri_provisioning_round_trip() {
    let env = env();
    // Base32 of "12345678901234567890".
    let uri = "otpauth://totp/ACME:alice@example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME&algorithm=SHA1&digits=8&period=30";
    let created = env
        .svc
        .create_from_otpauth(ADMIN, uri, Some("1400000001".into()), Some("alice".into()))
        .unwrap();
    assert_eq!(created.info.kind, TokenKind::Totp);
    assert_eq!(created.info.issuer.as_deref(), Some("ACME"));
    assert_eq!(created.info.label.as_deref(), Some("alice@example.com"));
    assert!(env.verify("1400000001", "07081804").is_accepted());
    let back = TokenService::otpauth_uri(&created.info, &created.seed).unwrap();
    assert!(
        back.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
        "{back}"
    );
    // Bad base32: a clear error, nothing stored.
    let err = env
        .svc
        .create_from_otpauth(ADMIN, "otpauth://hotp/x?secret=GEZ1!&counter=0", None, None)
        .unwrap_err();
    assert!(matches!(err, TokenError::Otp(_)), "{err}");
    assert_eq!(env.svc.list_tokens(None).unwrap().len(), 1);
}
