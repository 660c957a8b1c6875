//! `org.keygate.Keygate1.Tokens` at `/org/keygate/Keygate1`: a thin adapter over
//! [`crate::tokens::TokenService`] (and the software tokens of [`super::soft`]).
//!
//! Roles per method (checked here from the caller's credentials; the shipped D-Bus policy is
//! the first lock):
//! - admin: `Create`, `ImportPskc`, `ExportPskc`, `Resync`, `Unlock`, `UnlockUser`,
//!   `SoftUnlockCode`, `AuditLog`, `Delete`;
//! - verifier: `VerifyCode`, `IssueChallenge`, `VerifyResponse`, `IssueTransaction`,
//!   `VerifySignature`;
//! - admin or verifier: `List`, `RevokeUser` (PANIC comes from the login page or the helpdesk);
//! - anyone, for their own software tokens only: `SoftList`, `SoftCode`, `SoftRespond`, `SoftSign`,
//!   `SoftChangePin`, `SoftUnlockChallenge`, `SoftUnlock`.
//!
//! A check answers `(accepted, reason)` only after its effect is durable. An unknown serial or
//! challenge is a `NotFound` error; a malformed argument is `InvalidArgs`.

use std::sync::Arc;

use serde::Deserialize;
use zbus::message::Header;
use zbus::{Connection, interface};

use super::Shared;
use super::call::{Allowed, Call, check_len, check_lens, found};
use super::error::BusError;
use super::soft::SoftTokens;
use crate::otp::HashAlg;
use crate::otp::pskc::{self, PskcDecryption, PskcProtection};
use crate::secret::Secret;
use crate::tokens::{
    NewTokenRequest, RejectReason, Target, TokenError, TokenInfo, TokenKind, TokenService, Verdict,
};

/// Most transaction fields in one signature request.
const MAX_FIELDS: usize = 32;
/// Longest code, response or signature accepted.
const MAX_CODE_LEN: usize = 256;
/// Longest serial, user, challenge id or question accepted.
const MAX_NAME_LEN: usize = 256;
/// Longest software-token PIN accepted.
const MAX_PIN_LEN: usize = 64;
/// Audit records returned when the caller asks for none in particular, and at most.
const DEFAULT_AUDIT_RECORDS: u32 = 100;
const MAX_AUDIT_RECORDS: u32 = 10_000;

/// `Create`'s JSON spec.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSpec {
    user: Option<String>,
    #[serde(default = "default_kind")]
    kind: String,
    serial: Option<String>,
    digits: Option<u32>,
    algorithm: Option<String>,
    period: Option<u64>,
    t0: Option<u64>,
    suite: Option<String>,
    counter: Option<u64>,
    issuer: Option<String>,
    label: Option<String>,
    /// Admin-provided seed (migration from another system), hex.
    seed_hex: Option<String>,
    /// Keep a software token for a uid, unlocked by a PIN.
    software: Option<SoftSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftSpec {
    pin: String,
    /// Owner uid (default: the caller).
    owner_uid: Option<u32>,
}

/// `ImportPskc` / `ExportPskc` key JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySpec {
    key_hex: Option<String>,
    password: Option<String>,
    user: Option<String>,
    allow_short_secrets: Option<bool>,
}

fn default_kind() -> String {
    "totp".into()
}

/// Maps the token layer's errors onto named D-Bus errors (no secrets in messages).
pub(crate) fn token_error(err: TokenError) -> BusError {
    match err {
        TokenError::NotFound(m) => BusError::NotFound(m),
        TokenError::InvalidRequest(m) => BusError::InvalidArgs(m),
        TokenError::Otp(e) => BusError::InvalidArgs(e.to_string()),
        e @ TokenError::ImportRefused { .. } => BusError::InvalidArgs(e.to_string()),
        e @ TokenError::WrongKind { .. } => BusError::InvalidArgs(e.to_string()),
        e @ TokenError::Contention(_) => BusError::Failed(e.to_string()),
        e => {
            tracing::error!(error = %e, "token service failure");
            BusError::Failed("internal failure of the token service".into())
        }
    }
}

/// `(accepted, reason)`; an unknown serial or challenge is `NotFound`.
fn verdict(v: Verdict) -> Result<(bool, String), BusError> {
    match v {
        Verdict::Accepted { .. } => Ok((true, "accepted".into())),
        Verdict::Rejected {
            reason: RejectReason::UnknownSerial,
            ..
        } => Err(BusError::NotFound("unknown serial".into())),
        Verdict::Rejected {
            reason: RejectReason::UnknownChallenge,
            ..
        } => Err(BusError::NotFound("unknown challenge".into())),
        Verdict::Rejected { reason, .. } => Ok((false, reason.as_str().to_owned())),
    }
}

pub(crate) fn info_json(info: &TokenInfo) -> serde_json::Value {
    serde_json::json!({
        "serial": info.serial,
        "kind": info.kind.as_str(),
        "algorithm": info.algorithm,
        "digits": info.digits,
        "period": info.period,
        "suite": info.suite,
        "counter": info.counter,
        "fail_count": info.fail_count,
        "locked": info.locked,
        "issuer": info.issuer,
        "label": info.label,
        "user": info.owner,
        "created_at": info.created_at,
        "revoked": info.revoked,
    })
}

fn owned_fields(fields: &[(String, String)]) -> Result<Vec<(String, String)>, BusError> {
    if fields.is_empty() || fields.len() > MAX_FIELDS {
        return Err(BusError::InvalidArgs(format!(
            "a transaction has 1 to {MAX_FIELDS} fields"
        )));
    }
    for (name, value) in fields {
        check_lens(&[("field name", name, 256), ("field value", value, 4096)])?;
    }
    Ok(fields.to_vec())
}

/// The bytes of a hex AES key given in a `key_json`.
fn key_bytes(hex: &str) -> Result<Secret<Vec<u8>>, BusError> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map(Secret::new)
        .map_err(|_| BusError::InvalidArgs("key_hex is not hex".into()))
}

/// The Tokens interface.
#[derive(Debug)]
pub struct Tokens {
    shared: Arc<Shared>,
    service: TokenService,
    soft: Arc<SoftTokens>,
}

impl Tokens {
    /// An adapter over `service` and the software tokens `soft`.
    pub fn new(shared: Arc<Shared>, service: TokenService, soft: Arc<SoftTokens>) -> Self {
        Self {
            shared,
            service,
            soft,
        }
    }

    async fn enter(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        allowed: Allowed,
    ) -> Result<Call<'_>, BusError> {
        Call::enter(&self.shared, conn, header, allowed).await
    }

    /// Runs `work` on the token service's blocking pool, with the caller's audit name.
    async fn run<T, F>(&self, call: &Call<'_>, work: F) -> Result<T, BusError>
    where
        T: Send + 'static,
        F: FnOnce(&TokenService, &str) -> Result<T, TokenError> + Send + 'static,
    {
        let who = call.audit_name();
        self.service
            .blocking(move |svc| work(svc, &who))
            .await
            .map_err(token_error)
    }

    /// The `(accepted, reason)` answer of a check run by [`Tokens::run`]; an unknown serial or
    /// challenge is `NotFound`.
    async fn judge<F>(&self, call: &Call<'_>, check: F) -> Result<(bool, String), BusError>
    where
        F: FnOnce(&TokenService, &str) -> Result<Verdict, TokenError> + Send + 'static,
    {
        verdict(self.run(call, check).await?)
    }

    /// A verifier's check of the `answer` (a code or response) to what `name` names (a serial
    /// or a challenge id): `check(service, who, name, answer)` after both length checks.
    async fn check_answer(
        &self,
        (conn, header): (&Connection, &Header<'_>),
        (name_arg, name): (&str, &str),
        (answer_arg, answer): (&str, &str),
        check: fn(&TokenService, &str, &str, &str) -> Result<Verdict, TokenError>,
    ) -> Result<(bool, String), BusError> {
        let call = self.enter(conn, header, Allowed::VERIFIER).await?;
        check_lens(&[
            (name_arg, name, MAX_NAME_LEN),
            (answer_arg, answer, MAX_CODE_LEN),
        ])?;
        let (name, answer) = (name.to_owned(), answer.to_owned());
        self.judge(&call, move |svc, who| check(svc, who, &name, &answer))
            .await
    }

    /// A call that names one token or user: `op(service, who, name)` on the blocking pool,
    /// after the length check of `name`.
    async fn by_name<T>(
        &self,
        (conn, header): (&Connection, &Header<'_>),
        allowed: Allowed,
        (what, name): (&str, &str),
        op: fn(&TokenService, &str, &str) -> Result<T, TokenError>,
    ) -> Result<T, BusError>
    where
        T: Send + 'static,
    {
        let call = self.enter(conn, header, allowed).await?;
        check_len(what, name, MAX_NAME_LEN)?;
        let name = name.to_owned();
        self.run(&call, move |svc, who| op(svc, who, &name)).await
    }
}

fn new_request(
    spec: &CreateSpec,
    default_owner: Option<String>,
) -> Result<NewTokenRequest, BusError> {
    let kind = match spec.kind.as_str() {
        "totp" => TokenKind::Totp,
        "hotp" => TokenKind::Hotp,
        "ocra" | "ocra-cr" | "cram" => TokenKind::ChallengeResponse,
        "ocra-sign" | "signature" => TokenKind::Signature,
        other => {
            return Err(BusError::InvalidArgs(format!(
                "kind {other:?} is not totp, hotp, ocra or ocra-sign"
            )));
        }
    };
    let mut request = NewTokenRequest::new(kind);
    request.serial = spec.serial.clone();
    request.digits = spec.digits;
    request.period = spec.period;
    request.t0 = spec.t0.unwrap_or(0);
    request.suite = spec.suite.clone();
    request.counter = spec.counter.unwrap_or(0);
    request.issuer = spec.issuer.clone().or_else(|| Some("keygate".into()));
    request.label = spec.label.clone();
    request.owner = spec.user.clone().or(default_owner);
    if let Some(alg) = &spec.algorithm {
        request.algorithm = HashAlg::from_name(alg)
            .ok_or_else(|| BusError::InvalidArgs(format!("unknown algorithm {alg:?}")))?;
    }
    if let Some(hex) = &spec.seed_hex {
        let seed = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| BusError::InvalidArgs("seed_hex is not hex".into()))?;
        request.seed = Some(Secret::new(seed));
    }
    Ok(request)
}

/// The `otpauth://` URI of a new HOTP/TOTP token ("" for OCRA tokens).
fn otpauth_uri(info: &TokenInfo, seed: &Secret<Vec<u8>>) -> String {
    use crate::otp::otpauth::{OtpauthMethod, OtpauthUri};
    let method = match info.kind {
        TokenKind::Hotp => OtpauthMethod::Hotp {
            counter: info.counter,
        },
        TokenKind::Totp => OtpauthMethod::Totp {
            period: info.period,
        },
        _ => return String::new(),
    };
    let Some(algorithm) = HashAlg::from_name(&info.algorithm) else {
        return String::new();
    };
    let account = info
        .label
        .clone()
        .or_else(|| info.owner.clone())
        .unwrap_or_else(|| info.serial.clone());
    OtpauthUri {
        method,
        secret: seed.clone(),
        issuer: info.issuer.clone(),
        account,
        algorithm,
        digits: info.digits,
    }
    .to_uri()
}

#[interface(name = "org.keygate.Keygate1.Tokens")]
impl Tokens {
    /// Creates a token (admin). `spec_json`: `{"user", "kind": totp|hotp|ocra|ocra-sign,
    /// "digits", "algorithm", "period", "suite", "serial", "counter", "issuer", "label",
    /// "seed_hex", "software": {"pin", "owner_uid"}}`. Returns (serial, otpauth URI, QR code as
    /// text); the URI carries the seed once, for enrolment in an authenticator app, and is empty
    /// for OCRA tokens and for tokens kept as software tokens in keygated.
    #[zbus(out_args("serial", "otpauth_uri", "qr_code"))]
    async fn create(
        &self,
        spec_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String, String), BusError> {
        let call = self.enter(conn, &header, Allowed::ADMIN).await?;
        self.shared.check_size("spec_json", spec_json)?;
        let spec: CreateSpec = serde_json::from_str(spec_json)
            .map_err(|e| BusError::InvalidArgs(format!("spec_json: {e}")))?;
        let request = new_request(&spec, None)?;
        let uid = call.caller.uid;
        let soft = spec.software.map(|s| {
            let owner = s.owner_uid.unwrap_or(uid);
            (Secret::new(s.pin), owner)
        });
        if let Some((pin, _)) = &soft {
            self.soft.check_pin_format(pin.expose_secret())?;
        }
        let created = self
            .run(&call, move |svc, who| svc.create_token(who, request))
            .await?;
        tracing::info!(serial = %created.info.serial, kind = %created.info.kind, uid, "token created");
        if let Some((pin, owner)) = soft {
            if let Err(e) = self.soft.create(owner, &created, pin).await {
                // Do not leave a verifier token behind whose only holder failed.
                let serial = created.info.serial.clone();
                let _ = self
                    .run(&call, move |svc, who| svc.delete_token(who, &serial))
                    .await;
                return Err(e);
            }
            return Ok((created.info.serial.clone(), String::new(), String::new()));
        }
        let uri = otpauth_uri(&created.info, &created.seed);
        let qr = if uri.is_empty() {
            String::new()
        } else {
            super::qr::terminal_qr(&uri)?
        };
        Ok((created.info.serial.clone(), uri, qr))
    }

    /// Imports tokens from a PSKC (RFC 6030) document (admin), all or nothing. `key_json`:
    /// `{"key_hex"}` (pre-shared key) or `{"password"}` (PBKDF2), optional `"user"` (owner of
    /// keys without a UserId) and `"allow_short_secrets"`. Returns the serials.
    #[zbus(out_args("serials"))]
    async fn import_pskc(
        &self,
        pskc_xml: &str,
        key_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<String>, BusError> {
        let call = self.enter(conn, &header, Allowed::ADMIN).await?;
        self.shared.check_size("pskc_xml", pskc_xml)?;
        let key = parse_key(key_json)?;
        let decryption = match (&key.key_hex, &key.password) {
            (Some(hex), _) => PskcDecryption::PreSharedKey(key_bytes(hex)?),
            (None, Some(password)) => PskcDecryption::Password(Secret::new(password.clone())),
            (None, None) => PskcDecryption::None,
        };
        let invalid = |e: crate::otp::OtpError| BusError::InvalidArgs(format!("PSKC: {e}"));
        let file = pskc::parse(pskc_xml, &decryption).map_err(invalid)?;
        let options = pskc::ImportOptions {
            allow_short_secrets: key.allow_short_secrets.unwrap_or(false),
            ..Default::default()
        };
        let imported = pskc::import_policy(&file, &options).map_err(invalid)?;
        let mut requests = Vec::with_capacity(imported.len());
        for token in imported {
            requests.push(pskc_request(token, key.user.clone())?);
        }
        let created = self
            .run(&call, move |svc, who| svc.create_tokens(who, requests))
            .await?;
        tracing::info!(
            count = created.len(),
            uid = call.caller.uid,
            "PSKC imported"
        );
        Ok(created.into_iter().map(|c| c.info.serial).collect())
    }

    /// Exports tokens as PSKC (admin), seeds always encrypted: `key_json` is `{"password"}`
    /// (PBKDF2-HMAC-SHA1, AES-128-CBC) or `{"key_hex"}` (pre-shared AES key).
    #[zbus(out_args("pskc_xml"))]
    async fn export_pskc(
        &self,
        serials: Vec<String>,
        key_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::ADMIN).await?;
        if serials.is_empty() || serials.len() > 10_000 {
            return Err(BusError::InvalidArgs("export 1 to 10000 serials".into()));
        }
        let key = parse_key(key_json)?;
        let protection = match (&key.key_hex, &key.password) {
            (Some(hex), _) => PskcProtection::PreSharedKey {
                key: key_bytes(hex)?,
                key_name: "keygate-export".into(),
            },
            (None, Some(password)) if password.len() >= 8 => PskcProtection::Password {
                password: Secret::new(password.clone()),
                iterations: 100_000,
                key_name: "keygate-export".into(),
            },
            _ => {
                return Err(BusError::InvalidArgs(
                    "an export is encrypted: give key_hex or a password of 8+ characters".into(),
                ));
            }
        };
        tracing::info!(count = serials.len(), uid = call.caller.uid, "PSKC export");
        self.run(&call, move |svc, _| {
            super::pskc_export::export(svc, &serials, &protection)
        })
        .await
    }

    /// Tokens of `user` ("" = all) as a JSON array (admin or verifier). Never seeds.
    #[zbus(out_args("tokens_json"))]
    async fn list(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::AdminOrVerifier).await?;
        check_len("user", user, MAX_NAME_LEN)?;
        let owner = (!user.is_empty()).then(|| user.to_owned());
        let list = self
            .run(&call, move |svc, _| svc.list_tokens(owner.as_deref()))
            .await?;
        Ok(serde_json::Value::Array(list.iter().map(info_json).collect()).to_string())
    }

    /// The newest `limit` audit records (0: 100; at most 10,000), oldest first, of one token
    /// and/or one user ("" = any), as a JSON array of `{at, caller, user, serial, operation,
    /// result, reason}` (admin). Records never hold a code, a response or a seed.
    #[zbus(out_args("records_json"))]
    async fn audit_log(
        &self,
        serial: &str,
        user: &str,
        limit: u32,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::ADMIN).await?;
        check_lens(&[
            ("serial", serial, MAX_NAME_LEN),
            ("user", user, MAX_NAME_LEN),
        ])?;
        if limit > MAX_AUDIT_RECORDS {
            return Err(BusError::InvalidArgs(format!(
                "limit is at most {MAX_AUDIT_RECORDS}"
            )));
        }
        let limit = if limit == 0 {
            DEFAULT_AUDIT_RECORDS
        } else {
            limit
        };
        let serial = (!serial.is_empty()).then(|| serial.to_owned());
        let user = (!user.is_empty()).then(|| user.to_owned());
        let records = self
            .run(&call, move |svc, _| {
                svc.audit_log(serial.as_deref(), user.as_deref(), limit)
            })
            .await?;
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "at": r.at,
                    "caller": r.caller,
                    "user": r.user,
                    "serial": r.serial,
                    "operation": r.operation,
                    "result": r.result,
                    "reason": r.reason,
                })
            })
            .collect();
        Ok(serde_json::Value::Array(records).to_string())
    }

    /// Checks an OTP code of a HOTP/TOTP token (verifier): (accepted, reason). The counter,
    /// drift or fail count is durable before the answer.
    #[zbus(out_args("accepted", "reason"))]
    async fn verify_code(
        &self,
        serial: &str,
        code: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(bool, String), BusError> {
        let (bus, name) = ((conn, &header), ("serial", serial));
        self.check_answer(bus, name, ("code", code), |svc, who, serial, code| {
            svc.verify_code(who, Target::Serial(serial), code)
        })
        .await
    }

    /// Issues a single-use OCRA challenge (verifier): (challenge id, question).
    #[zbus(out_args("challenge_id", "question"))]
    async fn issue_challenge(
        &self,
        serial: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String), BusError> {
        let (bus, name) = ((conn, &header), ("serial", serial));
        let challenge = self
            .by_name(bus, Allowed::VERIFIER, name, TokenService::issue_challenge)
            .await?;
        Ok((challenge.id, challenge.question))
    }

    /// Checks the response to a challenge (verifier): (accepted, reason). The challenge is
    /// consumed by this check.
    #[zbus(out_args("accepted", "reason"))]
    async fn verify_response(
        &self,
        challenge_id: &str,
        response: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(bool, String), BusError> {
        let (bus, id) = ((conn, &header), ("challenge_id", challenge_id));
        let answer = ("response", response);
        self.check_answer(bus, id, answer, TokenService::verify_response)
            .await
    }

    /// Issues a single-use transaction-signature challenge over (name, value) fields
    /// (verifier): (challenge id, question).
    #[zbus(out_args("challenge_id", "question"))]
    async fn issue_transaction(
        &self,
        serial: &str,
        fields: Vec<(String, String)>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(String, String), BusError> {
        let call = self.enter(conn, &header, Allowed::VERIFIER).await?;
        check_len("serial", serial, MAX_NAME_LEN)?;
        let fields = owned_fields(&fields)?;
        let serial = serial.to_owned();
        let challenge = self
            .run(&call, move |svc, who| {
                svc.issue_signature_challenge(who, &serial, fields)
            })
            .await?;
        Ok((challenge.id, challenge.question))
    }

    /// Checks a transaction signature (verifier): the fields must be those of the challenge.
    #[zbus(out_args("accepted", "reason"))]
    async fn verify_signature(
        &self,
        challenge_id: &str,
        fields: Vec<(String, String)>,
        signature: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(bool, String), BusError> {
        let call = self.enter(conn, &header, Allowed::VERIFIER).await?;
        check_lens(&[
            ("challenge_id", challenge_id, MAX_NAME_LEN),
            ("signature", signature, MAX_CODE_LEN),
        ])?;
        let fields = owned_fields(&fields)?;
        let (id, signature) = (challenge_id.to_owned(), signature.to_owned());
        self.judge(&call, move |svc, who| {
            svc.verify_signature(who, &id, &fields, &signature)
        })
        .await
    }

    /// Resynchronises a HOTP/TOTP token with two consecutive codes (admin).
    #[zbus(out_args("accepted", "reason"))]
    async fn resync(
        &self,
        serial: &str,
        code1: &str,
        code2: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(bool, String), BusError> {
        let call = self.enter(conn, &header, Allowed::ADMIN).await?;
        check_lens(&[
            ("serial", serial, MAX_NAME_LEN),
            ("code1", code1, MAX_CODE_LEN),
            ("code2", code2, MAX_CODE_LEN),
        ])?;
        let (serial, code1, code2) = (serial.to_owned(), code1.to_owned(), code2.to_owned());
        self.judge(&call, move |svc, who| {
            svc.resync(who, &serial, &code1, &code2)
        })
        .await
    }

    /// Unlocks a token locked by failures (admin).
    async fn unlock(
        &self,
        serial: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let (bus, name) = ((conn, &header), ("serial", serial));
        let unlocked = self
            .by_name(bus, Allowed::ADMIN, name, TokenService::unlock_token)
            .await?;
        found(unlocked, &format!("token {serial}"))
    }

    /// Unlocks a user locked by failures (admin).
    async fn unlock_user(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let (bus, name) = ((conn, &header), ("user", user));
        let unlocked = self
            .by_name(bus, Allowed::ADMIN, name, TokenService::unlock_user)
            .await?;
        found(unlocked, &format!("user {user}"))
    }

    /// The helpdesk's unlock code for the unlock challenge shown by a software token that
    /// locked itself after wrong PINs (admin). The code unlocks only that token, only for
    /// that challenge.
    #[zbus(out_args("unlock_code"))]
    async fn soft_unlock_code(
        &self,
        serial: &str,
        challenge: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::ADMIN).await?;
        check_lens(&[
            ("serial", serial, MAX_NAME_LEN),
            ("challenge", challenge, MAX_NAME_LEN),
        ])?;
        let (serial, challenge) = (serial.to_owned(), challenge.to_owned());
        self.run(&call, move |svc, who| {
            svc.soft_unlock_code(who, &serial, &challenge)
        })
        .await
    }

    /// Deletes a token (admin); its software token, if any, goes with it.
    async fn delete(
        &self,
        serial: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let (bus, name) = ((conn, &header), ("serial", serial));
        let deleted = self
            .by_name(bus, Allowed::ADMIN, name, TokenService::delete_token)
            .await?;
        if deleted {
            self.soft.remove_serial(serial).await;
        }
        found(deleted, &format!("token {serial}"))
    }

    /// PANIC (admin or verifier): revokes every factor of `user` (tokens and WebAuthn
    /// credentials) at once. Returns (tokens revoked, other factors revoked).
    #[zbus(out_args("tokens", "other_factors"))]
    async fn revoke_user(
        &self,
        user: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(u64, u64), BusError> {
        let call = self.enter(conn, &header, Allowed::AdminOrVerifier).await?;
        check_len("user", user, MAX_NAME_LEN)?;
        let u = user.to_owned();
        let summary = self
            .run(&call, move |svc, who| svc.revoke_user(who, &u))
            .await?;
        tracing::warn!(
            user,
            uid = call.caller.uid,
            tokens = summary.tokens,
            "PANIC: user revoked"
        );
        Ok((summary.tokens, summary.other_factors))
    }

    /// The caller's own software tokens as a JSON array.
    #[zbus(out_args("tokens_json"))]
    async fn soft_list(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::Anyone).await?;
        Ok(self.soft.list(call.caller.uid).await?.to_string())
    }

    /// The current code of one of the caller's software tokens, unlocked by its PIN.
    #[zbus(out_args("code"))]
    async fn soft_code(
        &self,
        serial: &str,
        pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::Anyone).await?;
        check_lens(&[("serial", serial, MAX_NAME_LEN), ("pin", pin, MAX_PIN_LEN)])?;
        self.soft
            .code(call.caller.uid, serial, Secret::new(pin.to_owned()))
            .await
    }

    /// One of the caller's software tokens answers a challenge question.
    #[zbus(out_args("response"))]
    async fn soft_respond(
        &self,
        serial: &str,
        pin: &str,
        question: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::Anyone).await?;
        check_lens(&[
            ("serial", serial, MAX_NAME_LEN),
            ("pin", pin, MAX_PIN_LEN),
            ("question", question, MAX_NAME_LEN),
        ])?;
        let pin = Secret::new(pin.to_owned());
        self.soft
            .respond(call.caller.uid, serial, pin, question)
            .await
    }

    /// One of the caller's software tokens signs transaction fields.
    #[zbus(out_args("signature"))]
    async fn soft_sign(
        &self,
        serial: &str,
        pin: &str,
        fields: Vec<(String, String)>,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::Anyone).await?;
        check_lens(&[("serial", serial, MAX_NAME_LEN), ("pin", pin, MAX_PIN_LEN)])?;
        let fields = owned_fields(&fields)?;
        let pin = Secret::new(pin.to_owned());
        self.soft.sign(call.caller.uid, serial, pin, fields).await
    }

    /// Changes the PIN of one of the caller's software tokens.
    async fn soft_change_pin(
        &self,
        serial: &str,
        old_pin: &str,
        new_pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let call = self.enter(conn, &header, Allowed::Anyone).await?;
        check_lens(&[
            ("serial", serial, MAX_NAME_LEN),
            ("old_pin", old_pin, MAX_PIN_LEN),
            ("new_pin", new_pin, MAX_PIN_LEN),
        ])?;
        let (old_pin, new_pin) = (
            Secret::new(old_pin.to_owned()),
            Secret::new(new_pin.to_owned()),
        );
        self.soft
            .change_pin(call.caller.uid, serial, old_pin, new_pin)
            .await
    }

    /// The unlock challenge of one of the caller's software tokens that locked itself after
    /// wrong PINs: read it to the helpdesk, which answers with `SoftUnlockCode`.
    #[zbus(out_args("challenge"))]
    async fn soft_unlock_challenge(
        &self,
        serial: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let call = self.enter(conn, &header, Allowed::Anyone).await?;
        check_len("serial", serial, MAX_NAME_LEN)?;
        self.soft.unlock_challenge(call.caller.uid, serial).await
    }

    /// Unlocks one of the caller's software tokens with the helpdesk's unlock code and sets
    /// a new PIN. A wrong code uses the challenge up.
    async fn soft_unlock(
        &self,
        serial: &str,
        unlock_code: &str,
        new_pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let call = self.enter(conn, &header, Allowed::Anyone).await?;
        check_lens(&[
            ("serial", serial, MAX_NAME_LEN),
            ("unlock_code", unlock_code, MAX_CODE_LEN),
            ("new_pin", new_pin, MAX_PIN_LEN),
        ])?;
        self.soft
            .unlock(
                call.caller.uid,
                serial,
                self.service.clone(),
                call.audit_name(),
                Secret::new(unlock_code.to_owned()),
                Secret::new(new_pin.to_owned()),
            )
            .await
    }
}

fn parse_key(key_json: &str) -> Result<KeySpec, BusError> {
    check_len("key_json", key_json, 64 * 1024)?;
    if key_json.trim().is_empty() {
        return Ok(KeySpec::default());
    }
    serde_json::from_str(key_json).map_err(|e| BusError::InvalidArgs(format!("key_json: {e}")))
}

fn pskc_request(
    token: pskc::PskcToken,
    default_owner: Option<String>,
) -> Result<NewTokenRequest, BusError> {
    use crate::otp::token::TokenKind as OtpKind;
    let params = &token.params;
    let (kind, suite) = match &params.kind {
        OtpKind::ResponseOnlyHotp => (TokenKind::Hotp, None),
        OtpKind::ResponseOnlyTotp => (TokenKind::Totp, None),
        OtpKind::ChallengeResponse { suite } => {
            (TokenKind::ChallengeResponse, Some(suite.to_string()))
        }
        OtpKind::Signature { suite } => (TokenKind::Signature, Some(suite.to_string())),
    };
    let mut request = NewTokenRequest::new(kind);
    request.serial = Some(params.serial.as_str().to_owned());
    request.seed = Some(token.secret.clone());
    request.algorithm = params.alg;
    request.digits = Some(params.digits);
    request.period = Some(params.step);
    request.t0 = params.t0;
    request.suite = suite;
    request.counter = token.counter;
    request.issuer = params.issuer.clone();
    request.label = params.label.clone();
    request.owner = token
        .user_id
        .clone()
        .or_else(|| params.owner.clone())
        .or(default_owner);
    Ok(request)
}
