//! The steps of `keygatectl demo`, each over the bus, each checking what it prints.

use keygate::service::client::{RelyingPartyProxy, TokensProxy, VirtualProxy, WebAuthnProxy};

use super::demo::{Outcome, classify};

/// The demo user's login name.
pub const USER: &str = "alice";
/// The Digipass-style token PIN of the demo.
pub const TOKEN_PIN: &str = "12345";
/// The security key PIN of the demo.
pub const KEY_PIN: &str = "4711";

macro_rules! call {
    ($expr:expr, $what:expr) => {
        match $expr.await {
            Ok(v) => v,
            Err(e) => return classify(&e, $what),
        }
    };
}

fn expect(cond: bool, what: impl Into<String>) -> Result<(), Outcome> {
    if cond {
        Ok(())
    } else {
        Err(Outcome::Failed(what.into()))
    }
}

macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if let Err(outcome) = expect($cond, format!($($arg)*)) {
            return outcome;
        }
    };
}

async fn create_token(
    tokens: &TokensProxy<'_>,
    spec: serde_json::Value,
) -> Result<String, Outcome> {
    match tokens.create(&spec.to_string()).await {
        Ok((serial, _uri, _qr)) => Ok(serial),
        Err(e) => Err(classify(&e, "Tokens.Create")),
    }
}

/// Step 1 + 2: a software key with a PIN; registration and authentication at example.org
/// through the WebAuthn client and the RelyingParty API.
pub async fn webauthn(conn: &zbus::Connection) -> Outcome {
    let (virt, client, rp) = match (
        VirtualProxy::new(conn).await,
        WebAuthnProxy::new(conn).await,
        RelyingPartyProxy::new(conn).await,
    ) {
        (Ok(v), Ok(c), Ok(r)) => (v, c, r),
        _ => return Outcome::Failed("cannot build proxies".into()),
    };
    let options = serde_json::json!({
        "name": "keygate demo key", "pin": KEY_PIN, "resident_keys": true, "presence": "auto",
    });
    let path = call!(virt.create(&options.to_string()), "Virtual.Create");
    println!("   software security key {path} (PIN {KEY_PIN}, resident keys, touch auto-approved)");
    // Answer the key's PIN requests as a user would: they arrive as Interaction signals sent
    // to this connection only.
    let mut interactions = match client.receive_interaction().await {
        Ok(stream) => stream,
        Err(e) => return Outcome::Failed(format!("cannot receive Interaction signals: {e}")),
    };
    let answerer = client.clone();
    let pin_task = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(signal) = interactions.next().await {
            let Ok(args) = signal.args() else { continue };
            match args.kind.as_str() {
                "pin" => {
                    let retries = serde_json::from_str::<serde_json::Value>(&args.detail_json)
                        .ok()
                        .and_then(|d| d.get("retries").and_then(serde_json::Value::as_u64))
                        .map_or_else(String::new, |r| format!(", {r} retries left"));
                    println!("   the key asks for its PIN{retries}; the user types {KEY_PIN}");
                    let _ = answerer.provide_pin(&args.request_id, KEY_PIN).await;
                }
                "touch" => println!("   Touch your security key (auto-approved)"),
                _ => {}
            }
        }
    });
    let outcome = webauthn_ceremonies(&client, &rp).await;
    pin_task.abort();
    outcome
}

async fn webauthn_ceremonies(client: &WebAuthnProxy<'_>, rp: &RelyingPartyProxy<'_>) -> Outcome {
    let origin = "https://example.org";
    let (ceremony, creation) = call!(
        rp.start_registration("example.org", USER, "Alice Example"),
        "RelyingParty.StartRegistration"
    );
    println!("   example.org asks to register {USER} (ceremony {ceremony})");
    let creation_options = options_public_key(&creation);
    let response = call!(
        client.make_credential("demo-reg", origin, &creation_options),
        "WebAuthn.MakeCredential"
    );
    let credential_id = call!(
        rp.finish_registration(&ceremony, &response),
        "RelyingParty.FinishRegistration"
    );
    println!("   registered credential {credential_id}");
    let (ceremony, request) = call!(
        rp.start_authentication("example.org", USER),
        "RelyingParty.StartAuthentication"
    );
    let request_options = options_public_key(&request);
    let assertion = call!(
        client.get_assertion("demo-auth", origin, &request_options),
        "WebAuthn.GetAssertion"
    );
    let result = call!(
        rp.finish_authentication(&ceremony, &assertion),
        "RelyingParty.FinishAuthentication"
    );
    println!("   {USER} authenticated at example.org: {result}");
    // Replaying the same assertion must fail: the ceremony state is single use.
    match rp.finish_authentication(&ceremony, &assertion).await {
        Ok(r) => return Outcome::Failed(format!("replayed assertion accepted: {r}")),
        Err(e) => println!("   the same assertion replayed: rejected ({e})"),
    }
    // The wrong origin for rp.id is a SecurityError.
    let (_, request) = call!(
        rp.start_authentication("example.org", USER),
        "RelyingParty.StartAuthentication"
    );
    match client
        .get_assertion(
            "demo-evil",
            "https://example.com",
            &options_public_key(&request),
        )
        .await
    {
        Ok(_) => {
            return Outcome::Failed("https://example.com got an assertion for example.org".into());
        }
        Err(e) => println!("   https://example.com asking for example.org: refused ({e})"),
    }
    Outcome::Passed
}

/// RelyingParty options may come wrapped as `{"publicKey": {...}}`; the client takes the inner.
fn options_public_key(json: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(mut map)) => match map.remove("publicKey") {
            Some(inner) => inner.to_string(),
            None => serde_json::Value::Object(map).to_string(),
        },
        _ => json.to_owned(),
    }
}

/// Step 3: a Digipass-style response-only token.
pub async fn digipass(tokens: &TokensProxy<'_>) -> Outcome {
    let spec = serde_json::json!({
        "user": USER, "kind": "totp", "digits": 8, "algorithm": "SHA1", "period": 30,
        "software": {"pin": TOKEN_PIN},
    });
    let serial = match create_token(tokens, spec).await {
        Ok(s) => s,
        Err(o) => return o,
    };
    println!("   token {serial} for {USER} (TOTP, 8 digits, unlocked with PIN {TOKEN_PIN})");
    match tokens.soft_code(&serial, "00000").await {
        Ok(_) => return Outcome::Failed("wrong token PIN accepted".into()),
        Err(e) => println!("   wrong PIN 00000: refused ({e})"),
    }
    let code = call!(tokens.soft_code(&serial, TOKEN_PIN), "Tokens.SoftCode");
    check!(
        code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()),
        "code {code:?} is not 8 digits"
    );
    println!("   the token shows {code}");
    let (ok, reason) = call!(tokens.verify_code(&serial, &code), "Tokens.VerifyCode");
    println!("   server check of {code}: {}", outcome_text(ok, &reason));
    check!(ok, "fresh code rejected: {reason}");
    let (ok, reason) = call!(tokens.verify_code(&serial, &code), "Tokens.VerifyCode");
    println!("   the same code replayed: {}", outcome_text(ok, &reason));
    check!(!ok, "replayed code accepted");
    Outcome::Passed
}

/// "accepted" or "rejected (reason)".
fn outcome_text(ok: bool, reason: &str) -> String {
    if ok {
        "accepted".into()
    } else {
        format!("rejected ({reason})")
    }
}

/// Step 4: CRAM (OCRA challenge-response).
pub async fn cram(tokens: &TokensProxy<'_>) -> Outcome {
    let spec = serde_json::json!({
        "user": USER, "kind": "ocra", "suite": "OCRA-1:HOTP-SHA1-8:QN08",
        "software": {"pin": TOKEN_PIN},
    });
    let serial = match create_token(tokens, spec).await {
        Ok(s) => s,
        Err(o) => return o,
    };
    println!("   CRAM token {serial} (OCRA-1:HOTP-SHA1-8:QN08)");
    let (challenge, question) = call!(tokens.issue_challenge(&serial), "Tokens.IssueChallenge");
    println!("   the login page shows challenge {question}");
    let response = call!(
        tokens.soft_respond(&serial, TOKEN_PIN, &question),
        "Tokens.SoftRespond"
    );
    println!("   the token answers {response}");
    let (ok, reason) = call!(
        tokens.verify_response(&challenge, &response),
        "Tokens.VerifyResponse"
    );
    println!("   server check: {}", outcome_text(ok, &reason));
    check!(ok, "correct response rejected: {reason}");
    let (ok, reason) = call!(
        tokens.verify_response(&challenge, &response),
        "Tokens.VerifyResponse"
    );
    println!(
        "   the same challenge answered again: {}",
        outcome_text(ok, &reason)
    );
    check!(!ok, "a challenge was accepted twice");
    Outcome::Passed
}

/// Step 5: transaction signing, and a tampered transaction.
pub async fn signature(tokens: &TokensProxy<'_>) -> Outcome {
    let spec = serde_json::json!({
        "user": USER, "kind": "ocra-sign", "suite": "OCRA-1:HOTP-SHA256-8:QH64",
        "software": {"pin": TOKEN_PIN},
    });
    let serial = match create_token(tokens, spec).await {
        Ok(s) => s,
        Err(o) => return o,
    };
    let fields = [("to", "BE71 0961 2345 6769"), ("amount", "250.00 EUR")];
    println!(
        "   signing token {serial}; transaction: pay {} to {}",
        fields[1].1, fields[0].1
    );
    let (challenge, _question) = call!(
        tokens.issue_transaction(&serial, &fields),
        "Tokens.IssueTransaction"
    );
    let signature = call!(
        tokens.soft_sign(&serial, TOKEN_PIN, &fields),
        "Tokens.SoftSign"
    );
    println!("   the token signs: {signature}");
    let (ok, reason) = call!(
        tokens.verify_signature(&challenge, &fields, &signature),
        "Tokens.VerifySignature"
    );
    println!("   server check: {}", outcome_text(ok, &reason));
    check!(ok, "genuine signature rejected: {reason}");

    // Malware in the browser changes the amount: the bank issues its challenge over the
    // tampered transaction, but the token signs what the user sees and confirms.
    let tampered = [("to", "BE71 0961 2345 6769"), ("amount", "25000.00 EUR")];
    let (challenge, _) = call!(
        tokens.issue_transaction(&serial, &tampered),
        "Tokens.IssueTransaction"
    );
    let signature = call!(
        tokens.soft_sign(&serial, TOKEN_PIN, &fields),
        "Tokens.SoftSign"
    );
    let (ok, reason) = call!(
        tokens.verify_signature(&challenge, &tampered, &signature),
        "Tokens.VerifySignature"
    );
    println!(
        "   tampered in transit to {}; the user signed {}: {}",
        tampered[1].1,
        fields[1].1,
        outcome_text(ok, &reason)
    );
    check!(!ok, "tampered transaction accepted");
    Outcome::Passed
}

/// Step 6: five wrong codes lock the token; an administrator unlocks it.
pub async fn lockout(tokens: &TokensProxy<'_>) -> Outcome {
    let spec = serde_json::json!({
        "user": "bob", "kind": "hotp", "digits": 8, "software": {"pin": TOKEN_PIN},
    });
    let serial = match create_token(tokens, spec).await {
        Ok(s) => s,
        Err(o) => return o,
    };
    println!("   token {serial} for bob (HOTP, 8 digits)");
    let mut last = String::new();
    for attempt in 1..=5 {
        let wrong = format!("{:08}", 11_111_111u32.wrapping_mul(attempt) % 100_000_000);
        let (ok, reason) = call!(tokens.verify_code(&serial, &wrong), "Tokens.VerifyCode");
        check!(!ok, "wrong code {wrong} accepted");
        println!("   wrong code {attempt}/5 {wrong}: rejected ({reason})");
        last = reason;
    }
    let code = call!(tokens.soft_code(&serial, TOKEN_PIN), "Tokens.SoftCode");
    let (ok, reason) = call!(tokens.verify_code(&serial, &code), "Tokens.VerifyCode");
    println!(
        "   then the right code {code}: {}",
        outcome_text(ok, &reason)
    );
    check!(!ok, "a locked token accepted a code (last reason {last})");
    check!(
        reason.contains("lock"),
        "expected a lock reason, got {reason:?}"
    );
    call!(tokens.unlock(&serial), "Tokens.Unlock");
    call!(tokens.unlock_user("bob"), "Tokens.UnlockUser");
    let code = call!(tokens.soft_code(&serial, TOKEN_PIN), "Tokens.SoftCode");
    let (ok, reason) = call!(tokens.verify_code(&serial, &code), "Tokens.VerifyCode");
    println!(
        "   after an administrator's unlock, code {code}: {}",
        outcome_text(ok, &reason)
    );
    check!(ok, "unlocked token rejected a fresh code: {reason}");
    Outcome::Passed
}

/// Step 7: PANIC revokes every factor of the user.
pub async fn panic_button(conn: &zbus::Connection, tokens: &TokensProxy<'_>) -> Outcome {
    let list = call!(tokens.list(USER), "Tokens.List");
    let serials: Vec<String> = serde_json::from_str::<serde_json::Value>(&list)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.get("serial").and_then(|s| s.as_str()).map(str::to_owned))
        .collect();
    println!("   {USER} has {} token(s) before PANIC", serials.len());
    check!(
        !serials.is_empty(),
        "{USER} has no tokens to revoke: {list}"
    );
    let (revoked, other) = call!(tokens.revoke_user(USER), "Tokens.RevokeUser");
    println!("   PANIC for {USER}: {revoked} token(s) and {other} other factor(s) revoked");
    check!(
        revoked as usize >= serials.len(),
        "only {revoked} of {} tokens revoked",
        serials.len()
    );
    if let Ok(rp) = RelyingPartyProxy::new(conn).await {
        match rp.start_authentication("example.org", USER).await {
            Ok(_) if other > 0 => {
                return Outcome::Failed("a revoked WebAuthn credential can still sign in".into());
            }
            Ok(_) => {}
            Err(e) => println!("   example.org sign-in for {USER} after PANIC: refused ({e})"),
        }
    }
    for serial in &serials {
        let code = match tokens.soft_code(serial, TOKEN_PIN).await {
            Ok(code) => code,
            Err(_) => "00000000".to_owned(),
        };
        match tokens.verify_code(serial, &code).await {
            Ok((true, reason)) => {
                return Outcome::Failed(format!("revoked token {serial} accepted ({reason})"));
            }
            Ok((false, reason)) => println!("   {serial} after PANIC: rejected ({reason})"),
            Err(e) => println!("   {serial} after PANIC: refused ({e})"),
        }
    }
    Outcome::Passed
}
