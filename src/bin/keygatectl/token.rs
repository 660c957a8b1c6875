//! `keygatectl token ...`: Digipass-style tokens (administration, checks, software tokens).

use std::path::PathBuf;

use anyhow::Context;
use keygate::service::client::TokensProxy;

use crate::conn::{BusArgs, explain};
use crate::prompt;

/// Token subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token for a user (admin); prints its serial, otpauth URI and a QR code.
    Create {
        /// Login name the token belongs to.
        #[arg(long)]
        user: String,
        /// Kind: totp, hotp, ocra (challenge-response) or ocra-sign (transaction signing).
        #[arg(long, default_value = "totp")]
        kind: String,
        /// Digits of a code (6..=10).
        #[arg(long, default_value_t = 8)]
        digits: u32,
        /// HMAC hash: SHA1, SHA256, SHA512.
        #[arg(long, default_value = "SHA1")]
        algorithm: String,
        /// TOTP step in seconds.
        #[arg(long, default_value_t = 30)]
        period: u64,
        /// OCRA suite (ocra / ocra-sign).
        #[arg(long)]
        suite: Option<String>,
        /// Serial (default: generated).
        #[arg(long)]
        serial: Option<String>,
        /// Also keep a software token in keygated, unlocked by this PIN (prompted if "-").
        #[arg(long, value_name = "PIN")]
        software_pin: Option<String>,
    },
    /// Import tokens from a PSKC file (admin).
    Import {
        /// PSKC (RFC 6030) XML file.
        file: PathBuf,
        /// Pre-shared key (hex) the file is encrypted with.
        #[arg(long, conflicts_with = "password")]
        key_hex: Option<String>,
        /// Password the file's key is derived from (PBKDF2); prompted if "-".
        #[arg(long)]
        password: Option<String>,
        /// Owner login of the imported tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Export tokens as PSKC, seeds encrypted under a password (admin).
    Export {
        /// Serials to export.
        #[arg(required = true)]
        serials: Vec<String>,
        /// Password for the export (prompted if omitted).
        #[arg(long)]
        password: Option<String>,
    },
    /// List tokens (of one user, or all).
    List {
        /// Login name.
        #[arg(long, default_value = "")]
        user: String,
    },
    /// Check an OTP code (verifier).
    Verify {
        /// Serial.
        serial: String,
        /// Code.
        code: String,
    },
    /// Issue an OCRA challenge (verifier); prints the challenge id, question and a QR code.
    Challenge {
        /// Serial.
        serial: String,
    },
    /// Check a response to a challenge (verifier).
    CheckResponse {
        /// Challenge id from `token challenge`.
        challenge: String,
        /// The token's response.
        response: String,
    },
    /// Issue a transaction to sign (verifier): fields as NAME=VALUE.
    Transaction {
        /// Serial.
        serial: String,
        /// Transaction fields.
        #[arg(required = true, value_parser = parse_field)]
        fields: Vec<(String, String)>,
    },
    /// Check a transaction signature (verifier).
    CheckSignature {
        /// Challenge id from `token transaction`.
        challenge: String,
        /// Signature shown by the token.
        signature: String,
        /// The transaction fields as NAME=VALUE, as the user saw them.
        #[arg(required = true, value_parser = parse_field)]
        fields: Vec<(String, String)>,
    },
    /// Resynchronise an HOTP token with two consecutive codes (admin).
    Resync {
        /// Serial.
        serial: String,
        /// First code.
        code1: String,
        /// Next code.
        code2: String,
    },
    /// Unlock a token locked by failures (admin).
    Unlock {
        /// Serial.
        serial: String,
    },
    /// Unlock a user locked by failures (admin).
    UnlockUser {
        /// Login name.
        user: String,
    },
    /// The unlock code for the challenge a locked software token shows (admin, helpdesk).
    UnlockCode {
        /// Serial.
        serial: String,
        /// The token's unlock challenge (from `token unlock-challenge`).
        challenge: String,
    },
    /// The audit trail of checks and administration (admin): who, token, user, result, reason.
    Audit {
        /// Only this token.
        #[arg(long, default_value = "")]
        serial: String,
        /// Only this user.
        #[arg(long, default_value = "")]
        user: String,
        /// Newest records to show (at most 10000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Delete a token (admin).
    Delete {
        /// Serial.
        serial: String,
    },
    /// PANIC: revoke every factor (tokens, WebAuthn credentials) of a user.
    Panic {
        /// Login name.
        user: String,
    },
    /// Your software tokens.
    SoftList,
    /// Show a software token's current code (PIN prompted).
    Code {
        /// Serial.
        serial: String,
        /// Token PIN (else $KEYGATE_PIN or a prompt).
        #[arg(long)]
        pin: Option<String>,
    },
    /// Answer a challenge with a software token (PIN prompted).
    Respond {
        /// Serial.
        serial: String,
        /// The challenge question.
        question: String,
        /// Token PIN.
        #[arg(long)]
        pin: Option<String>,
    },
    /// Change a software token's PIN (current PIN from --pin, $KEYGATE_PIN or a prompt; new
    /// PIN from $KEYGATE_NEW_PIN or prompted twice).
    ChangePin {
        /// Serial.
        serial: String,
        /// Current token PIN.
        #[arg(long)]
        pin: Option<String>,
    },
    /// Show the unlock challenge of a software token that locked itself after wrong PINs;
    /// read it to your helpdesk.
    UnlockChallenge {
        /// Serial.
        serial: String,
    },
    /// Unlock a software token with the helpdesk's unlock code and choose a new PIN
    /// ($KEYGATE_NEW_PIN or prompted twice).
    SoftUnlock {
        /// Serial.
        serial: String,
        /// The unlock code the helpdesk gave you.
        unlock_code: String,
    },
    /// Sign transaction fields NAME=VALUE with a software token (PIN prompted).
    Sign {
        /// Serial.
        serial: String,
        /// Transaction fields.
        #[arg(required = true, value_parser = parse_field)]
        fields: Vec<(String, String)>,
        /// Token PIN.
        #[arg(long)]
        pin: Option<String>,
    },
}

fn parse_field(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not NAME=VALUE")),
    }
}

fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fn print_verdict(json: bool, ok: bool, reason: &str) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::json!({"accepted": ok, "reason": reason}));
    } else {
        println!("{} ({reason})", if ok { "accepted" } else { "rejected" });
    }
    if ok { Ok(()) } else { std::process::exit(1) }
}

fn print_json_or(json: bool, value: serde_json::Value, text: impl FnOnce()) {
    if json {
        println!("{value}");
    } else {
        text();
    }
}

fn secret_arg(value: Option<String>, prompt_text: &str) -> anyhow::Result<Option<String>> {
    match value.as_deref() {
        Some("-") => Ok(Some(prompt::read_secret(prompt_text)?)),
        _ => Ok(value),
    }
}

/// Runs a token subcommand.
pub async fn run(bus: &BusArgs, json: bool, command: TokenCommand) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let tokens = TokensProxy::new(&conn).await.map_err(explain)?;
    match command {
        TokenCommand::Create {
            user,
            kind,
            digits,
            algorithm,
            period,
            suite,
            serial,
            software_pin,
        } => {
            let mut spec = serde_json::json!({
                "user": user, "kind": kind, "digits": digits, "algorithm": algorithm,
                "period": period,
            });
            if let Some(suite) = suite {
                spec["suite"] = suite.into();
            }
            if let Some(serial) = serial {
                spec["serial"] = serial.into();
            }
            if let Some(pin) = secret_arg(software_pin, "New token PIN: ")? {
                spec["software"] = serde_json::json!({ "pin": pin });
            }
            let (serial, uri, qr) = tokens.create(&spec.to_string()).await.map_err(explain)?;
            print_json_or(
                json,
                serde_json::json!({"serial": serial, "otpauth_uri": uri}),
                || {
                    println!("serial: {serial}");
                    if !uri.is_empty() {
                        println!("otpauth URI: {uri}");
                        println!("scan with an authenticator app:\n{qr}");
                    }
                },
            );
        }
        TokenCommand::Import {
            file,
            key_hex,
            password,
            user,
        } => {
            let xml = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut key = serde_json::json!({});
            if let Some(hex) = key_hex {
                key["key_hex"] = hex.into();
            }
            if let Some(password) = secret_arg(password, "PSKC password: ")? {
                key["password"] = password.into();
            }
            if let Some(user) = user {
                key["user"] = user.into();
            }
            let serials = tokens
                .import_pskc(&xml, &key.to_string())
                .await
                .map_err(explain)?;
            print_json_or(json, serde_json::json!({"serials": serials}), || {
                println!("imported {} token(s): {}", serials.len(), serials.join(" "));
            });
        }
        TokenCommand::Export { serials, password } => {
            let password = match password {
                Some(p) if p != "-" => p,
                _ => prompt::read_secret("Password for the export: ")?,
            };
            let key = serde_json::json!({ "password": password });
            let refs: Vec<&str> = serials.iter().map(String::as_str).collect();
            let xml = tokens
                .export_pskc(&refs, &key.to_string())
                .await
                .map_err(explain)?;
            print!("{xml}");
        }
        TokenCommand::List { user } => {
            let list = tokens.list(&user).await.map_err(explain)?;
            print_list(json, &list);
        }
        TokenCommand::Verify { serial, code } => {
            let (ok, reason) = tokens.verify_code(&serial, &code).await.map_err(explain)?;
            print_verdict(json, ok, &reason)?;
        }
        TokenCommand::Challenge { serial } => {
            let (id, question) = tokens.issue_challenge(&serial).await.map_err(explain)?;
            print_json_or(
                json,
                serde_json::json!({"challenge": id, "question": question}),
                || {
                    println!("challenge id: {id}\nquestion: {question}");
                    if let Ok(qr) = keygate::service::qr::terminal_qr(&question) {
                        println!("{qr}");
                    }
                },
            );
        }
        TokenCommand::CheckResponse {
            challenge,
            response,
        } => {
            let (ok, reason) = tokens
                .verify_response(&challenge, &response)
                .await
                .map_err(explain)?;
            print_verdict(json, ok, &reason)?;
        }
        TokenCommand::Transaction { serial, fields } => {
            let (id, question) = tokens
                .issue_transaction(&serial, &pairs(&fields))
                .await
                .map_err(explain)?;
            print_json_or(
                json,
                serde_json::json!({"challenge": id, "question": question}),
                || println!("challenge id: {id}\nquestion: {question}"),
            );
        }
        TokenCommand::CheckSignature {
            challenge,
            signature,
            fields,
        } => {
            let (ok, reason) = tokens
                .verify_signature(&challenge, &pairs(&fields), &signature)
                .await
                .map_err(explain)?;
            print_verdict(json, ok, &reason)?;
        }
        TokenCommand::Resync {
            serial,
            code1,
            code2,
        } => {
            let (ok, reason) = tokens
                .resync(&serial, &code1, &code2)
                .await
                .map_err(explain)?;
            print_verdict(json, ok, &reason)?;
        }
        TokenCommand::Unlock { serial } => {
            tokens.unlock(&serial).await.map_err(explain)?;
            print_json_or(json, serde_json::json!({"unlocked": serial}), || {
                println!("{serial} unlocked")
            });
        }
        TokenCommand::UnlockUser { user } => {
            tokens.unlock_user(&user).await.map_err(explain)?;
            print_json_or(json, serde_json::json!({"unlocked_user": user}), || {
                println!("user {user} unlocked")
            });
        }
        TokenCommand::UnlockCode { serial, challenge } => {
            let code = tokens
                .soft_unlock_code(&serial, &challenge)
                .await
                .map_err(explain)?;
            print_json_or(json, serde_json::json!({"unlock_code": code}), || {
                println!("{code}")
            });
        }
        TokenCommand::Audit {
            serial,
            user,
            limit,
        } => {
            let records = tokens
                .audit_log(&serial, &user, limit)
                .await
                .map_err(explain)?;
            let parsed: serde_json::Value = serde_json::from_str(&records)?;
            print_json_or(json, parsed.clone(), || {
                for r in parsed.as_array().into_iter().flatten() {
                    let field = |name: &str| r[name].as_str().unwrap_or("-").to_owned();
                    let at = r["at"]
                        .as_i64()
                        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                        .and_then(|t| {
                            t.format(&time::format_description::well_known::Rfc3339)
                                .ok()
                        })
                        .unwrap_or_else(|| r["at"].to_string());
                    println!(
                        "{at}  {:<18} {:<8} {:<16} serial={} user={} by {}",
                        field("operation"),
                        field("result"),
                        field("reason"),
                        field("serial"),
                        field("user"),
                        field("caller"),
                    );
                }
            });
        }
        TokenCommand::Delete { serial } => {
            tokens.delete(&serial).await.map_err(explain)?;
            print_json_or(json, serde_json::json!({"deleted": serial}), || {
                println!("{serial} deleted")
            });
        }
        TokenCommand::Panic { user } => {
            let (revoked, other) = tokens.revoke_user(&user).await.map_err(explain)?;
            print_json_or(
                json,
                serde_json::json!({"user": user, "tokens": revoked, "other_factors": other}),
                || println!("PANIC {user}: {revoked} token(s), {other} other factor(s) revoked"),
            );
        }
        TokenCommand::SoftList => {
            let list = tokens.soft_list().await.map_err(explain)?;
            print_list(json, &list);
        }
        TokenCommand::Code { serial, pin } => {
            let pin = prompt::pin_from(pin, "Token PIN: ")?;
            let code = tokens.soft_code(&serial, &pin).await.map_err(explain)?;
            print_json_or(json, serde_json::json!({"code": code}), || {
                println!("{code}")
            });
        }
        TokenCommand::Respond {
            serial,
            question,
            pin,
        } => {
            let pin = prompt::pin_from(pin, "Token PIN: ")?;
            let response = tokens
                .soft_respond(&serial, &pin, &question)
                .await
                .map_err(explain)?;
            print_json_or(json, serde_json::json!({"response": response}), || {
                println!("{response}")
            });
        }
        TokenCommand::ChangePin { serial, pin } => {
            let pin = prompt::pin_from(pin, "Current token PIN: ")?;
            let new_pin = prompt::read_new_pin()?;
            tokens
                .soft_change_pin(&serial, &pin, &new_pin)
                .await
                .map_err(explain)?;
            print_json_or(json, serde_json::json!({"pin_changed": serial}), || {
                println!("PIN of {serial} changed")
            });
        }
        TokenCommand::UnlockChallenge { serial } => {
            let challenge = tokens
                .soft_unlock_challenge(&serial)
                .await
                .map_err(explain)?;
            print_json_or(json, serde_json::json!({"challenge": challenge}), || {
                println!(
                    "unlock challenge: {challenge}\nRead it to your helpdesk; they answer with an unlock code."
                )
            });
        }
        TokenCommand::SoftUnlock {
            serial,
            unlock_code,
        } => {
            let new_pin = prompt::read_new_pin()?;
            tokens
                .soft_unlock(&serial, &unlock_code, &new_pin)
                .await
                .map_err(explain)?;
            print_json_or(json, serde_json::json!({"unlocked": serial}), || {
                println!("{serial} unlocked with its new PIN")
            });
        }
        TokenCommand::Sign {
            serial,
            fields,
            pin,
        } => {
            let pin = prompt::pin_from(pin, "Token PIN: ")?;
            let signature = tokens
                .soft_sign(&serial, &pin, &pairs(&fields))
                .await
                .map_err(explain)?;
            print_json_or(json, serde_json::json!({"signature": signature}), || {
                println!("{signature}")
            });
        }
    }
    Ok(())
}

fn print_list(json: bool, list: &str) {
    if json {
        println!("{list}");
        return;
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(list)
    else {
        println!("{list}");
        return;
    };
    if items.is_empty() {
        println!("no tokens");
    }
    for item in items {
        let field = |name: &str| {
            item.get(name)
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default()
        };
        println!(
            "{:<14} {:<10} {:<12} {}{}",
            field("serial"),
            field("kind"),
            field("user"),
            if field("locked") == "true" {
                "LOCKED "
            } else {
                ""
            },
            if field("revoked") == "true" {
                "REVOKED"
            } else {
                ""
            },
        );
    }
}
