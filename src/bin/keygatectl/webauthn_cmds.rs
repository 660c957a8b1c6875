//! `keygatectl register | assert`: the WebAuthn client as a browser would call it, with the
//! prompts users know ("Touch your security key", PIN without echo and retries left, a choice
//! among several keys or accounts).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use keygate::service::client::WebAuthnProxy;

use crate::conn::{BusArgs, explain};
use crate::prompt;

/// Options of `register` and `assert`.
#[derive(Debug, clap::Args)]
pub struct CeremonyArgs {
    /// The caller's origin (e.g. https://login.example.org).
    #[arg(long)]
    origin: String,
    /// WebAuthn L3 options JSON (PublicKeyCredentialCreationOptionsJSON or
    /// ...RequestOptionsJSON; a `{"publicKey": ...}` wrapper is accepted); "-" reads stdin.
    #[arg(long, value_name = "FILE")]
    options: PathBuf,
    /// PIN to give when the key asks (else $KEYGATE_PIN, else a prompt without echo).
    #[arg(long)]
    pin: Option<String>,
}

fn read_options(path: &PathBuf) -> anyhow::Result<String> {
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    let value: serde_json::Value = serde_json::from_str(&text).context("options are not JSON")?;
    Ok(match value.get("publicKey") {
        Some(inner) => inner.to_string(),
        None => value.to_string(),
    })
}

/// Runs `register` (create) or `assert` (get).
pub async fn run(bus: &BusArgs, create: bool, args: CeremonyArgs) -> anyhow::Result<()> {
    let options = read_options(&args.options)?;
    let conn = bus.connect().await?;
    let client = WebAuthnProxy::new(&conn).await.map_err(explain)?;
    let request_id = format!("keygatectl-{}", std::process::id());
    let mut interactions = client.receive_interaction().await.map_err(explain)?;
    let answerer = client.clone();
    let fixed_pin = args.pin.clone();
    let id = request_id.clone();
    let ui = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(signal) = interactions.next().await {
            let Ok(event) = signal.args() else { continue };
            if event.request_id != id {
                continue;
            }
            let detail: serde_json::Value =
                serde_json::from_str(&event.detail_json).unwrap_or_default();
            match event.kind.as_str() {
                "touch" => eprintln!("Touch your security key"),
                "pin" => {
                    let retries = detail["retries"]
                        .as_u64()
                        .map_or_else(String::new, |r| format!(" ({r} retries left)"));
                    if detail["previous_attempt_failed"] == true {
                        eprintln!("Wrong PIN.");
                    }
                    let answer = match fixed_pin.clone() {
                        Some(pin) if detail["previous_attempt_failed"] != true => Ok(pin),
                        _ => tokio::task::spawn_blocking(move || {
                            prompt::pin_from(
                                None,
                                &format!("Enter the PIN of your security key{retries}: "),
                            )
                        })
                        .await
                        .unwrap_or_else(|e| Err(anyhow::anyhow!("{e}"))),
                    };
                    match answer {
                        Ok(pin) => {
                            let _ = answerer.provide_pin(&event.request_id, &pin).await;
                        }
                        Err(_) => {
                            let _ = answerer.cancel(&event.request_id).await;
                        }
                    }
                }
                "choose-authenticator" | "choose-credential" => {
                    let list = detail["authenticators"]
                        .as_array()
                        .or_else(|| detail["credentials"].as_array())
                        .cloned()
                        .unwrap_or_default();
                    eprintln!("Choose:");
                    for (i, item) in list.iter().enumerate() {
                        let label = item
                            .as_str()
                            .map(str::to_owned)
                            .or_else(|| item["user_name"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| item.to_string());
                        eprintln!("  [{i}] {label}");
                    }
                    let index = tokio::task::spawn_blocking(|| {
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line).ok();
                        line.trim().parse::<u32>().ok()
                    })
                    .await
                    .ok()
                    .flatten();
                    match index {
                        Some(index) => {
                            let _ = answerer.choose(&event.request_id, index).await;
                        }
                        None => {
                            let _ = answerer.cancel(&event.request_id).await;
                        }
                    }
                }
                _ => {}
            }
        }
    });
    let result = if create {
        client
            .make_credential(&request_id, &args.origin, &options)
            .await
    } else {
        client
            .get_assertion(&request_id, &args.origin, &options)
            .await
    };
    ui.abort();
    let response = result.map_err(explain)?;
    println!("{response}");
    Ok(())
}
