//! [`TokenService`]: checks codes, challenges and signatures against the store.
//!
//! Every check reads the token (a snapshot), decides with the pure functions of
//! [`crate::otp::verify`], then commits the decision by compare-and-set together with its audit
//! row in one group-committed write ([`TokenStore::commit_check`]). The verdict is returned only
//! after that commit. If the token moved in between (another check of the same token won the
//! race) the check is decided again on the new state, so of two identical codes racing exactly
//! one is accepted: the loser sees the advanced counter and is rejected as a replay or no-match.
//!
//! Fail counters: a rejected code counts one failure on the token and on its owner (by-serial
//! checks), or on the user only (by-user checks, where no single token was aimed at). At
//! `max_failures` the token or user locks; a success before that resets the token's and the
//! user's counters; a locked token or user rejects every code, valid or not, without counting,
//! until an administrator unlocks it.

use std::sync::Arc;

use crate::otp::pskc::{self, ImportOptions, PskcDecryption};
use crate::otp::soft_unlock;
use crate::otp::token::{TokenKind as OtpTokenKind, TokenParams as OtpTokenParams};
use crate::otp::verify::{self, Reject};
use crate::otp::{
    HashAlg, OcraInput, OcraSuite, OtpError, OtpauthMethod, OtpauthUri, QuestionKind,
    transaction_question,
};
use crate::secret::Secret;
use crate::store::{
    AuditEntry, ChallengeRecord, CheckChange, CheckCommit, CheckOutcome, NewToken, RevokeSummary,
    StoreError, TokenParams, TokenRecord, TokenState, TokenStore, UserRecord,
};

use super::clock::Clock;
use super::error::TokenError;
use super::model::{
    Challenge, CreatedToken, NewTokenRequest, RejectReason, Target, TokenInfo, TokenKind,
    TokenPolicy, Verdict,
};

/// Longest serial accepted.
pub const MAX_SERIAL_LEN: usize = 64;
/// Longest login, issuer, label or caller name accepted.
pub const MAX_NAME_LEN: usize = 256;
/// Longest seed accepted, in bytes.
pub const MAX_SEED_LEN: usize = 128;
const CHALLENGE_ID_BYTES: usize = 16;

const PURPOSE_RESPONSE: &str = "response";
const PURPOSE_SIGNATURE: &str = "signature";

/// The token verification service. Cheap to clone; every method is blocking (it waits for a
/// durable commit): from async code use [`TokenService::blocking`].
#[derive(Debug, Clone)]
pub struct TokenService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn TokenStore>,
    policy: TokenPolicy,
    clock: Arc<dyn Clock>,
}

/// A token's parsed static parameters.
struct Parsed {
    kind: TokenKind,
    alg: HashAlg,
    suite: Option<OcraSuite>,
}

/// Which operation a check is, for the audit log.
#[derive(Clone, Copy)]
enum Op {
    Verify,
    Response,
    Signature,
    Resync,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Response => "verify-response",
            Self::Signature => "verify-signature",
            Self::Resync => "resync",
        }
    }
}

fn random_bytes(len: usize) -> Result<Vec<u8>, TokenError> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(bytes)
}

/// Uniform random decimal digits (rejection sampling on bytes).
fn random_digits(count: usize) -> Result<String, TokenError> {
    let mut out = String::with_capacity(count);
    while out.len() < count {
        for byte in random_bytes(count * 2)? {
            if byte < 250 && out.len() < count {
                out.push(char::from(b'0' + byte % 10));
            }
        }
    }
    Ok(out)
}

fn random_alphanumeric(count: usize) -> Result<String, TokenError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(count);
    while out.len() < count {
        for byte in random_bytes(count * 2)? {
            // 62 * 4 = 248: reject 248..=255 for uniformity.
            if byte < 248 && out.len() < count {
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

fn check_name(what: &str, value: &str, max: usize) -> Result<(), TokenError> {
    if value.is_empty() || value.len() > max {
        return Err(TokenError::InvalidRequest(format!(
            "{what} must be 1..={max} bytes, got {}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(TokenError::InvalidRequest(format!(
            "{what} contains control characters"
        )));
    }
    Ok(())
}

fn check_serial(serial: &str) -> Result<(), TokenError> {
    check_name("serial", serial, MAX_SERIAL_LEN)?;
    if !serial.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::InvalidRequest(
            "serial must be printable ASCII without spaces".into(),
        ));
    }
    Ok(())
}

/// Caller names go to the audit log as given, cut to [`MAX_NAME_LEN`].
fn caller_name(caller: &str) -> String {
    let mut end = caller.len().min(MAX_NAME_LEN);
    while !caller.is_char_boundary(end) {
        end -= 1;
    }
    caller[..end].to_string()
}

fn parse_record(record: &TokenRecord) -> Result<Parsed, TokenError> {
    let corrupt = |why: String| {
        TokenError::Store(StoreError::Corrupt(format!(
            "token {}: {why}",
            record.serial
        )))
    };
    let kind = TokenKind::from_name(&record.params.kind)
        .ok_or_else(|| corrupt(format!("unknown kind {:?}", record.params.kind)))?;
    let alg = HashAlg::from_name(&record.params.algorithm)
        .ok_or_else(|| corrupt(format!("unknown algorithm {:?}", record.params.algorithm)))?;
    let suite = match &record.params.suite {
        Some(text) => Some(
            text.parse::<OcraSuite>()
                .map_err(|e| corrupt(format!("suite: {e}")))?,
        ),
        None => None,
    };
    Ok(Parsed { kind, alg, suite })
}

fn info(record: &TokenRecord) -> Result<TokenInfo, TokenError> {
    let parsed = parse_record(record)?;
    Ok(TokenInfo {
        serial: record.serial.clone(),
        kind: parsed.kind,
        algorithm: record.params.algorithm.clone(),
        digits: record.params.digits,
        period: record.params.period,
        suite: record.params.suite.clone(),
        counter: record.state.counter,
        last_step: record.state.last_step,
        drift: record.state.drift,
        fail_count: record.fail_count,
        locked: record.locked,
        issuer: record.params.issuer.clone(),
        label: record.params.label.clone(),
        owner: record.owner.as_ref().map(|(_, login)| login.clone()),
        created_at: record.created_at,
        revoked: record.revoked_at.is_some(),
    })
}

/// A creation request from the OTP layer's token model (PSKC import).
fn request_from_params(
    params: &OtpTokenParams,
    seed: Secret<Vec<u8>>,
    counter: u64,
    owner: Option<String>,
) -> NewTokenRequest {
    let kind = match &params.kind {
        OtpTokenKind::ResponseOnlyHotp => TokenKind::Hotp,
        OtpTokenKind::ResponseOnlyTotp => TokenKind::Totp,
        OtpTokenKind::ChallengeResponse { .. } => TokenKind::ChallengeResponse,
        OtpTokenKind::Signature { .. } => TokenKind::Signature,
    };
    let ocra = params.kind.suite().is_some();
    NewTokenRequest {
        kind,
        serial: Some(params.serial.as_str().to_string()),
        seed: Some(seed),
        algorithm: params.alg,
        digits: (!ocra).then_some(params.digits),
        period: (!ocra).then_some(params.step),
        t0: params.t0,
        suite: params.kind.suite().map(ToString::to_string),
        counter,
        issuer: params.issuer.clone(),
        label: params.label.clone(),
        owner: params.owner.clone().or(owner),
    }
}

fn counts_as_failure(reason: RejectReason) -> bool {
    match reason {
        RejectReason::Check(reject) => reject.counts_as_failure(),
        RejectReason::FieldsChanged | RejectReason::NoActiveToken => true,
        _ => false,
    }
}

impl TokenService {
    /// A service over `store` with `policy`, reading time from `clock`.
    pub fn new(store: Arc<dyn TokenStore>, policy: TokenPolicy, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                policy,
                clock,
            }),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &TokenPolicy {
        &self.inner.policy
    }

    /// The store (for administration and tests).
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// Runs a blocking call of this service on tokio's blocking pool.
    pub async fn blocking<T, F>(&self, call: F) -> Result<T, TokenError>
    where
        T: Send + 'static,
        F: FnOnce(&TokenService) -> Result<T, TokenError> + Send + 'static,
    {
        let service = self.clone();
        tokio::task::spawn_blocking(move || call(&service))
            .await
            .map_err(|e| TokenError::Task(e.to_string()))?
    }

    fn now(&self) -> u64 {
        self.inner.clock.now_unix()
    }

    fn now_i64(&self) -> i64 {
        i64::try_from(self.now()).unwrap_or(i64::MAX)
    }

    fn audit(
        &self,
        caller: &str,
        user: Option<&str>,
        serial: Option<&str>,
        operation: &str,
        result: &str,
        reason: Option<&str>,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now_i64(),
            caller: caller_name(caller),
            user: user.map(str::to_string),
            serial: serial.map(str::to_string),
            operation: operation.to_string(),
            result: result.to_string(),
            reason: reason.map(str::to_string),
        }
    }

    // ---------------------------------------------------------------- provisioning

    /// Creates one token (random serial and seed unless given). The seed is returned once.
    pub fn create_token(
        &self,
        caller: &str,
        request: NewTokenRequest,
    ) -> Result<CreatedToken, TokenError> {
        match self.create_tokens(caller, vec![request]) {
            Ok(mut created) => created
                .pop()
                .ok_or_else(|| TokenError::Store(StoreError::NotFound("created token".into()))),
            Err(TokenError::ImportRefused { reason, .. }) => {
                Err(TokenError::InvalidRequest(reason))
            }
            Err(e) => Err(e),
        }
    }

    /// Creates or imports tokens as one atomic batch (e.g. from a PSKC file): if one entry is
    /// refused, [`TokenError::ImportRefused`] names it and nothing is stored.
    pub fn create_tokens(
        &self,
        caller: &str,
        requests: Vec<NewTokenRequest>,
    ) -> Result<Vec<CreatedToken>, TokenError> {
        let policy = &self.inner.policy;
        let mut generated_serial = Vec::with_capacity(requests.len());
        let mut prepared = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let refuse = |serial: Option<&str>, reason: String| TokenError::ImportRefused {
                index,
                serial: serial.unwrap_or("-").to_string(),
                reason,
            };
            generated_serial.push(request.serial.is_none());
            let token = self
                .prepare(request)
                .map_err(|e| refuse(None, e.to_string()))?;
            if prepared
                .iter()
                .any(|other: &NewToken| other.serial == token.serial)
            {
                return Err(refuse(
                    Some(&token.serial),
                    "serial repeated in this batch".into(),
                ));
            }
            prepared.push(token);
        }
        let count = prepared.len();
        for _ in 0..5 {
            let batch: Vec<NewToken> = prepared
                .iter()
                .map(|t| NewToken {
                    serial: t.serial.clone(),
                    params: t.params.clone(),
                    seed: t.seed.clone(),
                    counter: t.counter,
                    owner: t.owner.clone(),
                })
                .collect();
            let serials: Vec<String> = batch.iter().map(|t| t.serial.clone()).collect();
            // The owner, when every token of the batch has the same one.
            let owner = batch.first().and_then(|t| t.owner.as_deref());
            let owner = owner.filter(|o| batch.iter().all(|t| t.owner.as_deref() == Some(*o)));
            let audit = self.audit(
                caller,
                owner,
                if count == 1 {
                    serials.first().map(String::as_str)
                } else {
                    None
                },
                if count == 1 { "create" } else { "import" },
                "ok",
                Some(&format!("{count} token(s): {}", serials.join(","))),
            );
            match self.inner.store.create_tokens(batch, audit) {
                Ok(records) => {
                    return records
                        .iter()
                        .zip(prepared.iter())
                        .map(|(record, token)| {
                            Ok(CreatedToken {
                                info: info(record)?,
                                seed: token.seed.clone(),
                            })
                        })
                        .collect();
                }
                Err(StoreError::DuplicateSerial(serial)) => {
                    let index = serials.iter().position(|s| *s == serial).unwrap_or(0);
                    if generated_serial.get(index).copied().unwrap_or(false) {
                        // A random serial collided: draw another and try again.
                        if let Some(token) = prepared.get_mut(index) {
                            token.serial = random_digits(policy.serial_digits as usize)?;
                        }
                        continue;
                    }
                    return Err(TokenError::ImportRefused {
                        index,
                        serial,
                        reason: "a token with this serial exists already".into(),
                    });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(TokenError::Contention("serial generation".into()))
    }

    /// Creates a HOTP or TOTP token from an `otpauth://` URI (seed, digits, algorithm, counter,
    /// period, issuer; the account becomes the label). `serial` is random if `None`.
    pub fn create_from_otpauth(
        &self,
        caller: &str,
        uri: &str,
        serial: Option<String>,
        owner: Option<String>,
    ) -> Result<CreatedToken, TokenError> {
        let parsed = OtpauthUri::parse(uri)?;
        let mut request = match parsed.method {
            OtpauthMethod::Hotp { counter } => {
                let mut r = NewTokenRequest::new(TokenKind::Hotp);
                r.counter = counter;
                r
            }
            OtpauthMethod::Totp { period } => {
                let mut r = NewTokenRequest::new(TokenKind::Totp);
                r.period = Some(period);
                r
            }
        };
        request.serial = serial;
        request.seed = Some(parsed.secret.clone());
        request.algorithm = parsed.algorithm;
        request.digits = Some(parsed.digits);
        request.issuer = parsed.issuer.clone();
        request.label = Some(parsed.account.clone()).filter(|a| !a.is_empty());
        request.owner = owner;
        self.create_token(caller, request)
    }

    /// The `otpauth://` URI of a HOTP or TOTP token (for an authenticator app or a QR code);
    /// `None` for OCRA tokens, which the format cannot describe.
    pub fn otpauth_uri(info: &TokenInfo, seed: &Secret<Vec<u8>>) -> Option<String> {
        let method = match info.kind {
            TokenKind::Hotp => OtpauthMethod::Hotp {
                counter: info.counter,
            },
            TokenKind::Totp => OtpauthMethod::Totp {
                period: info.period,
            },
            TokenKind::ChallengeResponse | TokenKind::Signature => return None,
        };
        let uri = OtpauthUri {
            method,
            secret: seed.clone(),
            issuer: info.issuer.clone(),
            account: info.label.clone().unwrap_or_else(|| info.serial.clone()),
            algorithm: HashAlg::from_name(&info.algorithm)?,
            digits: info.digits,
        };
        Some(uri.to_uri())
    }

    /// Imports a PSKC file (RFC 6030) as one atomic batch: the file is parsed and decrypted,
    /// the import policy applied (every refused package refuses the file, naming it), then all
    /// tokens are stored in one transaction, or none. Tokens without a `UserId` get `owner`.
    pub fn import_pskc(
        &self,
        caller: &str,
        xml: &str,
        decryption: &PskcDecryption,
        options: &ImportOptions,
        owner: Option<&str>,
    ) -> Result<Vec<TokenInfo>, TokenError> {
        let refused = |e: crate::otp::OtpError| {
            let audit = self.audit(caller, owner, None, "import", "error", Some(&e.to_string()));
            let _ = self.inner.store.append_audit(audit);
            e
        };
        let file = pskc::parse(xml, decryption).map_err(refused)?;
        let tokens = pskc::import_policy(&file, options).map_err(refused)?;
        let policy_min = if options.allow_short_secrets {
            1
        } else {
            self.inner.policy.min_seed_len
        };
        let requests = tokens
            .into_iter()
            .map(|token| {
                request_from_params(
                    &token.params,
                    token.secret,
                    token.counter,
                    token.user_id.or_else(|| owner.map(str::to_string)),
                )
            })
            .collect::<Vec<_>>();
        let service = if policy_min == self.inner.policy.min_seed_len {
            self.clone()
        } else {
            // The administrator's override of the minimum secret length applies to this batch.
            Self::new(
                self.inner.store.clone(),
                TokenPolicy {
                    min_seed_len: policy_min,
                    ..self.inner.policy.clone()
                },
                self.inner.clock.clone(),
            )
        };
        Ok(service
            .create_tokens(caller, requests)?
            .into_iter()
            .map(|created| created.info)
            .collect())
    }

    /// Validates a request and fills in defaults.
    fn prepare(&self, request: NewTokenRequest) -> Result<NewToken, TokenError> {
        let policy = &self.inner.policy;
        let serial = match request.serial {
            Some(serial) => {
                check_serial(&serial)?;
                serial
            }
            None => random_digits(policy.serial_digits.clamp(1, MAX_SERIAL_LEN as u32) as usize)?,
        };
        if let Some(owner) = &request.owner {
            check_name("owner", owner, MAX_NAME_LEN)?;
        }
        for (what, value) in [("issuer", &request.issuer), ("label", &request.label)] {
            if let Some(value) = value {
                check_name(what, value, MAX_NAME_LEN)?;
            }
        }
        let (algorithm, digits, period, suite) = match request.kind {
            TokenKind::Hotp | TokenKind::Totp => {
                if request.suite.is_some() {
                    return Err(TokenError::InvalidRequest(
                        "an OCRA suite is only for challenge-response and signature tokens".into(),
                    ));
                }
                let digits = request.digits.unwrap_or(policy.default_digits);
                if !(6..=10).contains(&digits) {
                    return Err(TokenError::InvalidRequest(format!(
                        "digits must be 6..=10, got {digits}"
                    )));
                }
                let period = request.period.unwrap_or(policy.verify.totp_step_secs);
                if period == 0 {
                    return Err(TokenError::InvalidRequest("TOTP period must be > 0".into()));
                }
                (request.algorithm, digits, period, None)
            }
            TokenKind::ChallengeResponse | TokenKind::Signature => {
                let text = request.suite.unwrap_or_else(|| {
                    if request.kind == TokenKind::Signature {
                        OcraSuite::DEFAULT_SIGNATURE.to_string()
                    } else {
                        OcraSuite::DEFAULT_CHALLENGE_RESPONSE.to_string()
                    }
                });
                let suite: OcraSuite = text.parse()?;
                if suite.pin_hash.is_some() || suite.session_len.is_some() {
                    return Err(TokenError::InvalidRequest(format!(
                        "suite {suite}: PIN-hash and session inputs are not supported by the verifier"
                    )));
                }
                if request.kind == TokenKind::Signature
                    && (suite.question_kind != QuestionKind::Hex || suite.question_len < 64)
                {
                    return Err(TokenError::InvalidRequest(format!(
                        "suite {suite}: a signature suite needs a QH64 question"
                    )));
                }
                (suite.hash, suite.digits, 0, Some(suite.to_string()))
            }
        };
        let seed = match request.seed {
            Some(seed) => seed,
            None => Secret::new(random_bytes(algorithm.output_len())?),
        };
        let seed_len = seed.expose_secret().len();
        if seed_len < policy.min_seed_len || seed_len > MAX_SEED_LEN {
            return Err(TokenError::InvalidRequest(format!(
                "seed of {} bits; {}..={} bits accepted",
                seed_len * 8,
                policy.min_seed_len * 8,
                MAX_SEED_LEN * 8
            )));
        }
        Ok(NewToken {
            serial,
            params: TokenParams {
                kind: request.kind.as_str().to_string(),
                suite,
                algorithm: algorithm.name().to_string(),
                digits,
                period,
                t0: request.t0,
                issuer: request.issuer,
                label: request.label,
            },
            seed,
            counter: request.counter,
            owner: request.owner,
        })
    }

    // ---------------------------------------------------------------- administration

    /// A token by serial.
    pub fn token(&self, serial: &str) -> Result<Option<TokenInfo>, TokenError> {
        check_serial(serial)?;
        self.inner
            .store
            .token_by_serial(serial)?
            .as_ref()
            .map(info)
            .transpose()
    }

    /// All tokens, or one user's.
    pub fn list_tokens(&self, owner: Option<&str>) -> Result<Vec<TokenInfo>, TokenError> {
        self.inner
            .store
            .list_tokens(owner)?
            .iter()
            .map(info)
            .collect()
    }

    /// A user's fail counter and lock, if the user exists.
    pub fn user(&self, login: &str) -> Result<Option<UserRecord>, TokenError> {
        check_name("login", login, MAX_NAME_LEN)?;
        Ok(self.inner.store.user(login)?)
    }

    /// Deletes a token; `false` if there was none.
    pub fn delete_token(&self, caller: &str, serial: &str) -> Result<bool, TokenError> {
        check_serial(serial)?;
        let audit = self.audit(caller, None, Some(serial), "delete", "ok", None);
        Ok(self.inner.store.delete_token(serial, audit)?)
    }

    /// Administrator unlock of a token (clears its lock and fail counter).
    pub fn unlock_token(&self, caller: &str, serial: &str) -> Result<bool, TokenError> {
        check_serial(serial)?;
        let audit = self.audit(caller, None, Some(serial), "unlock-token", "ok", None);
        Ok(self.inner.store.unlock_token(serial, audit)?)
    }

    /// Administrator unlock of a user (clears its lock and fail counter).
    pub fn unlock_user(&self, caller: &str, login: &str) -> Result<bool, TokenError> {
        check_name("login", login, MAX_NAME_LEN)?;
        let audit = self.audit(caller, Some(login), None, "unlock-user", "ok", None);
        Ok(self.inner.store.unlock_user(login, audit)?)
    }

    // ---------------------------------------------------------------- software-token unlock

    /// A live (not revoked) token and the server's copy of its seed.
    fn live_seed(&self, serial: &str) -> Result<(TokenRecord, Secret<Vec<u8>>), TokenError> {
        check_serial(serial)?;
        let token = self
            .inner
            .store
            .token_by_serial(serial)?
            .ok_or_else(|| TokenError::NotFound(format!("token {serial}")))?;
        if token.revoked_at.is_some() {
            return Err(TokenError::InvalidRequest(format!(
                "token {serial} is revoked"
            )));
        }
        let seed = self.inner.store.open_seed(&token)?;
        Ok((token, seed))
    }

    /// The helpdesk's unlock code for the unlock challenge that a software token locked by
    /// wrong PINs shows ([`crate::otp::soft_unlock`]), computed from the server's copy of the
    /// seed. Audited; the code itself is not recorded.
    pub fn soft_unlock_code(
        &self,
        caller: &str,
        serial: &str,
        challenge: &str,
    ) -> Result<String, TokenError> {
        let (token, seed) = self.live_seed(serial)?;
        let code = soft_unlock::unlock_code(seed.expose_secret(), serial, challenge)?;
        let owner = token.owner.as_ref().map(|(_, login)| login.as_str());
        self.inner.store.append_audit(self.audit(
            caller,
            owner,
            Some(serial),
            "soft-unlock-code",
            "ok",
            None,
        ))?;
        Ok(code)
    }

    /// Unlocks a software token with the helpdesk's code: `unlock` gets the server's copy of the
    /// seed to re-seal under the owner's new PIN (it never leaves keygated). The attempt is
    /// audited, with its outcome.
    pub fn soft_unlock<T>(
        &self,
        caller: &str,
        serial: &str,
        unlock: impl FnOnce(&Secret<Vec<u8>>) -> Result<T, OtpError>,
    ) -> Result<T, TokenError> {
        let (token, seed) = self.live_seed(serial)?;
        let result = unlock(&seed);
        let owner = token.owner.as_ref().map(|(_, login)| login.as_str());
        let (outcome, reason) = match &result {
            Ok(_) => ("ok", None),
            Err(OtpError::WrongUnlockCode) => ("rejected", Some("wrong-unlock-code")),
            Err(_) => ("rejected", Some("refused")),
        };
        self.inner.store.append_audit(self.audit(
            caller,
            owner,
            Some(serial),
            "soft-unlock",
            outcome,
            reason,
        ))?;
        Ok(result?)
    }

    /// PANIC: revokes every factor of the user at once (tokens, and WebAuthn credentials).
    pub fn revoke_user(&self, caller: &str, login: &str) -> Result<RevokeSummary, TokenError> {
        check_name("login", login, MAX_NAME_LEN)?;
        let audit = self.audit(
            caller,
            Some(login),
            None,
            "revoke-user",
            "ok",
            Some("panic"),
        );
        Ok(self.inner.store.revoke_user(login, self.now_i64(), audit)?)
    }

    /// The newest `limit` audit rows, optionally of one serial or user.
    pub fn audit_log(
        &self,
        serial: Option<&str>,
        user: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, TokenError> {
        Ok(self.inner.store.audit_log(serial, user, limit)?)
    }

    // ---------------------------------------------------------------- checks

    /// Checks a response-only code (HOTP or TOTP) by serial, or against every active
    /// response-only token of a user. The verdict is durable when returned.
    pub fn verify_code(
        &self,
        caller: &str,
        target: Target<'_>,
        code: &str,
    ) -> Result<Verdict, TokenError> {
        match target {
            Target::Serial(serial) => {
                check_serial(serial)?;
                self.with_retries(serial, || {
                    let Some(token) = self.inner.store.token_by_serial(serial)? else {
                        return self
                            .reject_unbound(
                                caller,
                                None,
                                Some(serial),
                                Op::Verify,
                                RejectReason::UnknownSerial,
                            )
                            .map(Some);
                    };
                    let user = self.owner(&token)?;
                    self.check_token(
                        caller,
                        Op::Verify,
                        &token,
                        user.as_ref(),
                        true,
                        &[TokenKind::Hotp, TokenKind::Totp],
                        None,
                        |parsed, seed, now| self.decide_code(parsed, &token, seed, code, now),
                    )
                })
            }
            Target::User(login) => {
                check_name("login", login, MAX_NAME_LEN)?;
                self.with_retries(login, || self.verify_user_once(caller, login, code))
            }
        }
    }

    /// Resynchronises a HOTP or TOTP token with two consecutive codes (RFC 4226 §7.4),
    /// searching `resync_limit` counters or steps.
    pub fn resync(
        &self,
        caller: &str,
        serial: &str,
        code1: &str,
        code2: &str,
    ) -> Result<Verdict, TokenError> {
        check_serial(serial)?;
        let limit = self.inner.policy.verify.resync_limit;
        self.with_retries(serial, || {
            let Some(token) = self.inner.store.token_by_serial(serial)? else {
                return self
                    .reject_unbound(
                        caller,
                        None,
                        Some(serial),
                        Op::Resync,
                        RejectReason::UnknownSerial,
                    )
                    .map(Some);
            };
            let user = self.owner(&token)?;
            self.check_token(
                caller,
                Op::Resync,
                &token,
                user.as_ref(),
                true,
                &[TokenKind::Hotp, TokenKind::Totp],
                None,
                |parsed, seed, now| {
                    let params = &token.params;
                    let state = token.state;
                    match parsed.kind {
                        TokenKind::Hotp => verify::resync_hotp(
                            seed,
                            params.digits,
                            parsed.alg,
                            state.counter,
                            code1,
                            code2,
                            limit,
                        )
                        .map(|m| TokenState {
                            counter: m.next,
                            ..state
                        }),
                        _ => verify::resync_totp(
                            seed,
                            params.digits,
                            parsed.alg,
                            params.period,
                            params.t0,
                            state.last_step,
                            code1,
                            code2,
                            now,
                            limit,
                        )
                        .map(|m| TokenState {
                            last_step: Some(m.step),
                            drift: m.drift_steps,
                            ..state
                        }),
                    }
                    .map_err(RejectReason::Check)
                },
            )
        })
    }

    /// Issues a single-use challenge (lifetime `challenge_ttl_secs`) for a challenge-response
    /// token: a random question of the suite's format and length.
    pub fn issue_challenge(&self, caller: &str, serial: &str) -> Result<Challenge, TokenError> {
        let (token, suite) = self.challenge_token(serial, TokenKind::ChallengeResponse)?;
        let length = usize::from(suite.question_len);
        let question = match suite.question_kind {
            QuestionKind::Numeric => random_digits(length)?,
            QuestionKind::Alphanumeric => random_alphanumeric(length)?,
            QuestionKind::Hex => data_encoding::HEXLOWER.encode(&random_bytes(length.div_ceil(2))?)
                [..length]
                .to_string(),
        };
        self.store_challenge(caller, &token, PURPOSE_RESPONSE, question, Vec::new())
    }

    /// Issues a single-use signature challenge over transaction fields (name, value; order
    /// matters): the question is [`transaction_question`] of the fields.
    pub fn issue_signature_challenge(
        &self,
        caller: &str,
        serial: &str,
        fields: Vec<(String, String)>,
    ) -> Result<Challenge, TokenError> {
        let (token, _) = self.challenge_token(serial, TokenKind::Signature)?;
        let question =
            transaction_question(&fields).map_err(|e| TokenError::InvalidRequest(e.to_string()))?;
        self.store_challenge(caller, &token, PURPOSE_SIGNATURE, question, fields)
    }

    /// Checks the response to a challenge from [`TokenService::issue_challenge`]. The challenge
    /// is consumed by the first check, accepted or not.
    pub fn verify_response(
        &self,
        caller: &str,
        challenge_id: &str,
        response: &str,
    ) -> Result<Verdict, TokenError> {
        self.verify_challenge(caller, challenge_id, PURPOSE_RESPONSE, None, response)
    }

    /// Checks a transaction signature against a challenge from
    /// [`TokenService::issue_signature_challenge`]: `fields` must be exactly the fields the
    /// challenge was issued for, and the signature the OCRA value over them.
    pub fn verify_signature(
        &self,
        caller: &str,
        challenge_id: &str,
        fields: &[(String, String)],
        signature: &str,
    ) -> Result<Verdict, TokenError> {
        self.verify_challenge(
            caller,
            challenge_id,
            PURPOSE_SIGNATURE,
            Some(fields),
            signature,
        )
    }

    // ---------------------------------------------------------------- internals

    fn with_retries<F>(&self, what: &str, mut attempt: F) -> Result<Verdict, TokenError>
    where
        F: FnMut() -> Result<Option<Verdict>, TokenError>,
    {
        for _ in 0..=self.inner.policy.max_cas_retries {
            if let Some(verdict) = attempt()? {
                return Ok(verdict);
            }
        }
        Err(TokenError::Contention(what.to_string()))
    }

    fn owner(&self, token: &TokenRecord) -> Result<Option<UserRecord>, TokenError> {
        match &token.owner {
            Some((_, login)) => Ok(self.inner.store.user(login)?),
            None => Ok(None),
        }
    }

    /// A rejection that touches no counter (unknown serial, user or challenge): audit only.
    fn reject_unbound(
        &self,
        caller: &str,
        user: Option<&str>,
        serial: Option<&str>,
        op: Op,
        reason: RejectReason,
    ) -> Result<Verdict, TokenError> {
        let audit = self.audit(
            caller,
            user,
            serial,
            op.as_str(),
            "reject",
            Some(reason.as_str()),
        );
        self.inner.store.append_audit(audit)?;
        Ok(Verdict::Rejected {
            serial: None,
            reason,
            token_locked: false,
            user_locked: false,
        })
    }

    /// Decides and commits one check of one token. `None`: the compare-and-set lost, decide again.
    #[allow(clippy::too_many_arguments)]
    fn check_token<F>(
        &self,
        caller: &str,
        op: Op,
        token: &TokenRecord,
        user: Option<&UserRecord>,
        count_on_token: bool,
        kinds: &[TokenKind],
        challenge: Option<&str>,
        decide: F,
    ) -> Result<Option<Verdict>, TokenError>
    where
        F: FnOnce(&Parsed, &[u8], u64) -> Result<TokenState, RejectReason>,
    {
        let parsed = parse_record(token)?;
        let login = user.map(|u| u.login.as_str());
        let precheck = if token.revoked_at.is_some() {
            Some(RejectReason::Revoked)
        } else if !kinds.contains(&parsed.kind) {
            Some(RejectReason::WrongKind)
        } else if token.locked {
            Some(RejectReason::TokenLocked)
        } else if user.is_some_and(|u| u.locked) {
            Some(RejectReason::UserLocked)
        } else {
            None
        };
        let decision = match precheck {
            Some(reason) => Err(reason),
            None => {
                let seed = match self.inner.store.open_seed(token) {
                    Ok(seed) => seed,
                    Err(e) => {
                        let audit = self.audit(
                            caller,
                            login,
                            Some(&token.serial),
                            op.as_str(),
                            "error",
                            Some("seed_unreadable"),
                        );
                        self.inner.store.append_audit(audit)?;
                        return Err(e.into());
                    }
                };
                decide(&parsed, seed.expose_secret(), self.now())
            }
        };
        let max_failures = self.inner.policy.verify.max_failures;
        let (change, result, reason) = match decision {
            Ok(new) => (
                CheckChange::Accept {
                    expected: token.state,
                    new,
                },
                "accept",
                None,
            ),
            Err(reason) if counts_as_failure(reason) => (
                CheckChange::Fail {
                    token: count_on_token,
                    user: user.is_some(),
                    max_failures,
                },
                "reject",
                Some(reason),
            ),
            Err(reason) => (CheckChange::Nothing, "reject", Some(reason)),
        };
        let audit = self.audit(
            caller,
            login,
            Some(&token.serial),
            op.as_str(),
            result,
            reason.map(RejectReason::as_str),
        );
        let outcome = self.inner.store.commit_check(CheckCommit {
            token_id: Some(token.id),
            user_id: user.map(|u| u.id),
            change,
            consume_challenge: challenge.map(str::to_string),
            audit,
        })?;
        Ok(match outcome {
            CheckOutcome::Conflict | CheckOutcome::ChallengeUsed => None,
            CheckOutcome::Committed {
                token_locked,
                user_locked,
            } => Some(match reason {
                None => Verdict::Accepted {
                    serial: token.serial.clone(),
                },
                Some(reason) => Verdict::Rejected {
                    serial: Some(token.serial.clone()),
                    reason,
                    token_locked,
                    user_locked,
                },
            }),
        })
    }

    fn decide_code(
        &self,
        parsed: &Parsed,
        token: &TokenRecord,
        seed: &[u8],
        code: &str,
        now: u64,
    ) -> Result<TokenState, RejectReason> {
        let policy = &self.inner.policy.verify;
        let params = &token.params;
        let state = token.state;
        match parsed.kind {
            TokenKind::Hotp => verify::check_hotp(
                seed,
                params.digits,
                parsed.alg,
                state.counter,
                code,
                policy.hotp_window,
            )
            .map(|m| TokenState {
                counter: m.next,
                ..state
            }),
            TokenKind::Totp => verify::check_totp(
                seed,
                params.digits,
                parsed.alg,
                params.period,
                params.t0,
                state.last_step,
                state.drift,
                code,
                now,
                policy.totp_window_steps,
            )
            .map(|m| TokenState {
                last_step: Some(m.step),
                drift: m.drift_steps,
                ..state
            }),
            TokenKind::ChallengeResponse | TokenKind::Signature => Err(Reject::BadParameters),
        }
        .map_err(RejectReason::Check)
    }

    /// OCRA check of `response` to `question`; for suites with a counter, the look-ahead
    /// window is searched and the counter moves to match + 1.
    fn decide_ocra(
        &self,
        suite: &OcraSuite,
        seed: &[u8],
        state: TokenState,
        question: &str,
        response: &str,
        now: u64,
    ) -> Result<TokenState, RejectReason> {
        let policy = &self.inner.policy.verify;
        let mut input = OcraInput {
            question: question.to_string(),
            timestamp_steps: suite.timestamp_steps(now),
            ..OcraInput::default()
        };
        if !suite.counter {
            return verify::check_ocra(suite, seed, &input, response, policy.totp_window_steps)
                .map(|()| state)
                .map_err(RejectReason::Check);
        }
        // Every counter of the window is tried, also after a match, so the time taken does not
        // tell how far ahead the token is.
        let end = state.counter.saturating_add(policy.hotp_window);
        let mut matched = None;
        for counter in state.counter..end {
            input.counter = Some(counter);
            match verify::check_ocra(suite, seed, &input, response, policy.totp_window_steps) {
                Ok(()) => {
                    matched = matched.or(Some(counter));
                }
                Err(Reject::NoMatch) => {}
                Err(other) => return Err(RejectReason::Check(other)),
            }
        }
        match matched {
            Some(counter) => Ok(TokenState {
                counter: counter.saturating_add(1),
                ..state
            }),
            None => Err(RejectReason::Check(Reject::NoMatch)),
        }
    }

    fn verify_user_once(
        &self,
        caller: &str,
        login: &str,
        code: &str,
    ) -> Result<Option<Verdict>, TokenError> {
        let store = &self.inner.store;
        let Some(user) = store.user(login)? else {
            return self
                .reject_unbound(
                    caller,
                    Some(login),
                    None,
                    Op::Verify,
                    RejectReason::UnknownUser,
                )
                .map(Some);
        };
        let tokens: Vec<TokenRecord> = store
            .list_tokens(Some(login))?
            .into_iter()
            .filter(|t| {
                t.revoked_at.is_none()
                    && matches!(
                        TokenKind::from_name(&t.params.kind),
                        Some(TokenKind::Hotp | TokenKind::Totp)
                    )
            })
            .collect();
        let unlocked: Vec<&TokenRecord> = tokens.iter().filter(|t| !t.locked).collect();
        let mut reason = if user.locked {
            Some(RejectReason::UserLocked)
        } else if tokens.is_empty() {
            Some(RejectReason::NoActiveToken)
        } else if unlocked.is_empty() {
            Some(RejectReason::TokenLocked)
        } else {
            None
        };
        if reason.is_none() {
            let now = self.now();
            let mut first_reject = None;
            let mut replay = false;
            for token in &unlocked {
                let parsed = parse_record(token)?;
                let seed = store.open_seed(token).inspect_err(|_| {
                    let audit = self.audit(
                        caller,
                        Some(login),
                        Some(&token.serial),
                        Op::Verify.as_str(),
                        "error",
                        Some("seed_unreadable"),
                    );
                    let _ = store.append_audit(audit);
                })?;
                match self.decide_code(&parsed, token, seed.expose_secret(), code, now) {
                    Ok(new) => {
                        let audit = self.audit(
                            caller,
                            Some(login),
                            Some(&token.serial),
                            Op::Verify.as_str(),
                            "accept",
                            None,
                        );
                        let outcome = store.commit_check(CheckCommit {
                            token_id: Some(token.id),
                            user_id: Some(user.id),
                            change: CheckChange::Accept {
                                expected: token.state,
                                new,
                            },
                            consume_challenge: None,
                            audit,
                        })?;
                        return Ok(match outcome {
                            CheckOutcome::Committed { .. } => Some(Verdict::Accepted {
                                serial: token.serial.clone(),
                            }),
                            _ => None,
                        });
                    }
                    Err(r) => {
                        replay |= r == RejectReason::Check(Reject::Replay);
                        first_reject.get_or_insert(r);
                    }
                }
            }
            reason = Some(if replay {
                RejectReason::Check(Reject::Replay)
            } else {
                first_reject.unwrap_or(RejectReason::Check(Reject::NoMatch))
            });
        }
        let reason = reason.unwrap_or(RejectReason::Check(Reject::NoMatch));
        let change = if counts_as_failure(reason) {
            CheckChange::Fail {
                token: false,
                user: true,
                max_failures: self.inner.policy.verify.max_failures,
            }
        } else {
            CheckChange::Nothing
        };
        let audit = self.audit(
            caller,
            Some(login),
            None,
            Op::Verify.as_str(),
            "reject",
            Some(reason.as_str()),
        );
        let outcome = store.commit_check(CheckCommit {
            token_id: None,
            user_id: Some(user.id),
            change,
            consume_challenge: None,
            audit,
        })?;
        Ok(match outcome {
            CheckOutcome::Committed { user_locked, .. } => Some(Verdict::Rejected {
                serial: None,
                reason,
                token_locked: false,
                user_locked,
            }),
            _ => None,
        })
    }

    fn challenge_token(
        &self,
        serial: &str,
        kind: TokenKind,
    ) -> Result<(TokenRecord, OcraSuite), TokenError> {
        check_serial(serial)?;
        let token = self
            .inner
            .store
            .token_by_serial(serial)?
            .filter(|t| t.revoked_at.is_none())
            .ok_or_else(|| TokenError::NotFound(format!("token {serial}")))?;
        let parsed = parse_record(&token)?;
        match parsed.suite {
            Some(suite) if parsed.kind == kind => Ok((token, suite)),
            _ => Err(TokenError::WrongKind {
                serial: serial.to_string(),
                kind: parsed.kind.to_string(),
                why: format!("a {kind} token is needed"),
            }),
        }
    }

    fn store_challenge(
        &self,
        caller: &str,
        token: &TokenRecord,
        purpose: &str,
        question: String,
        fields: Vec<(String, String)>,
    ) -> Result<Challenge, TokenError> {
        let id = data_encoding::HEXLOWER.encode(&random_bytes(CHALLENGE_ID_BYTES)?);
        let now = self.now_i64();
        let ttl = i64::try_from(self.inner.policy.verify.challenge_ttl_secs).unwrap_or(i64::MAX);
        let expires_at = now.saturating_add(ttl);
        let record = ChallengeRecord {
            id: id.clone(),
            token_id: token.id,
            purpose: purpose.to_string(),
            question: question.clone(),
            fields: fields.clone(),
            created_at: now,
            expires_at,
            consumed: false,
        };
        let login = token.owner.as_ref().map(|(_, login)| login.as_str());
        let audit = self.audit(
            caller,
            login,
            Some(&token.serial),
            "challenge",
            "ok",
            Some(purpose),
        );
        self.inner.store.insert_challenge(record, audit)?;
        Ok(Challenge {
            id,
            serial: token.serial.clone(),
            question,
            fields,
            expires_at,
        })
    }

    fn verify_challenge(
        &self,
        caller: &str,
        challenge_id: &str,
        purpose: &'static str,
        fields: Option<&[(String, String)]>,
        response: &str,
    ) -> Result<Verdict, TokenError> {
        let op = if purpose == PURPOSE_SIGNATURE {
            Op::Signature
        } else {
            Op::Response
        };
        let well_formed = challenge_id.len() == CHALLENGE_ID_BYTES * 2
            && challenge_id.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed {
            return self.reject_unbound(caller, None, None, op, RejectReason::UnknownChallenge);
        }
        let kind = if purpose == PURPOSE_SIGNATURE {
            TokenKind::Signature
        } else {
            TokenKind::ChallengeResponse
        };
        self.with_retries(challenge_id, || {
            let store = &self.inner.store;
            let challenge = store.challenge(challenge_id)?;
            let token = match &challenge {
                Some(c) => store.token_by_id(c.token_id)?,
                None => None,
            };
            let (Some(challenge), Some(token)) = (challenge, token) else {
                return self
                    .reject_unbound(caller, None, None, op, RejectReason::UnknownChallenge)
                    .map(Some);
            };
            let user = self.owner(&token)?;
            let ttl = u64::try_from(challenge.expires_at.saturating_sub(challenge.created_at))
                .unwrap_or(0);
            let issued = u64::try_from(challenge.created_at).unwrap_or(0);
            let now = self.now();
            let fresh = verify::check_challenge(issued, now, ttl, challenge.consumed);
            let kinds: &[TokenKind] = if challenge.purpose == purpose {
                &[kind]
            } else {
                &[]
            };
            self.check_token(
                caller,
                op,
                &token,
                user.as_ref(),
                true,
                kinds,
                fresh.is_ok().then_some(challenge_id),
                |parsed, seed, now| {
                    fresh.map_err(RejectReason::Check)?;
                    let suite = parsed
                        .suite
                        .as_ref()
                        .ok_or(RejectReason::Check(Reject::BadParameters))?;
                    if let Some(fields) = fields {
                        if fields != challenge.fields.as_slice() {
                            return Err(RejectReason::FieldsChanged);
                        }
                        let question = transaction_question(fields)
                            .map_err(|_| RejectReason::Check(Reject::BadTransaction))?;
                        if question != challenge.question {
                            return Err(RejectReason::FieldsChanged);
                        }
                    }
                    self.decide_ocra(suite, seed, token.state, &challenge.question, response, now)
                },
            )
        })
    }
}
