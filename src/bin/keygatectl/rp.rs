//! `keygatectl rp ...`: the RelyingParty interface, for login servers and administrators.

use std::path::PathBuf;

use anyhow::Context;
use keygate::service::client::RelyingPartyProxy;

use crate::conn::{BusArgs, explain};

/// `keygatectl rp ...`.
#[derive(Debug, clap::Subcommand)]
pub enum RpCommand {
    /// The configured relying parties.
    List,
    /// Add or replace a relying party from an RpConfig JSON file (admin).
    Configure {
        /// JSON file: {"id", "name", "origins", "attestation": {"kind": "none"}, "user_verification"}.
        file: PathBuf,
    },
    /// Remove a relying party with its credentials (admin).
    Remove {
        /// RP ID.
        rp_id: String,
    },
    /// Start a registration (verifier); prints the ceremony id and the creation options.
    StartRegistration {
        /// RP ID.
        rp_id: String,
        /// Login name.
        user: String,
        /// Display name.
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// Finish a registration with a RegistrationResponseJSON file (verifier).
    FinishRegistration {
        /// Ceremony id.
        #[arg(allow_hyphen_values = true)]
        ceremony: String,
        /// Response JSON file ("-" for stdin).
        file: PathBuf,
    },
    /// Start an authentication (verifier); prints the ceremony id and the request options.
    StartAuthentication {
        /// RP ID.
        rp_id: String,
        /// Login name.
        user: String,
    },
    /// Finish an authentication with an AuthenticationResponseJSON file (verifier).
    FinishAuthentication {
        /// Ceremony id.
        #[arg(allow_hyphen_values = true)]
        ceremony: String,
        /// Response JSON file ("-" for stdin).
        file: PathBuf,
    },
    /// A user's credentials at an RP.
    Credentials {
        /// RP ID.
        rp_id: String,
        /// Login name.
        user: String,
    },
    /// Delete one credential (admin).
    DeleteCredential {
        /// RP ID.
        rp_id: String,
        /// Credential id (base64url; it may begin with '-').
        #[arg(allow_hyphen_values = true)]
        credential_id: String,
    },
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn started(json: bool, ceremony: &str, options: &str) {
    if json {
        let options: serde_json::Value =
            serde_json::from_str(options).unwrap_or_else(|_| options.into());
        println!(
            "{}",
            serde_json::json!({"ceremony": ceremony, "options": options})
        );
    } else {
        println!("ceremony: {ceremony}\n{options}");
    }
}

/// Runs an `rp` subcommand.
pub async fn run(bus: &BusArgs, json: bool, command: RpCommand) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let rp = RelyingPartyProxy::new(&conn).await.map_err(explain)?;
    match command {
        RpCommand::List => println!("{}", rp.list_relying_parties().await.map_err(explain)?),
        RpCommand::Configure { file } => {
            rp.configure(&read(&file)?).await.map_err(explain)?;
            println!("{}", if json { r#"{"ok":true}"# } else { "configured" });
        }
        RpCommand::Remove { rp_id } => {
            rp.remove(&rp_id).await.map_err(explain)?;
            println!("{}", if json { r#"{"ok":true}"# } else { "removed" });
        }
        RpCommand::StartRegistration {
            rp_id,
            user,
            display_name,
        } => {
            let (ceremony, options) = rp
                .start_registration(&rp_id, &user, &display_name)
                .await
                .map_err(explain)?;
            started(json, &ceremony, &options);
        }
        RpCommand::FinishRegistration { ceremony, file } => {
            let id = rp
                .finish_registration(&ceremony, &read(&file)?)
                .await
                .map_err(explain)?;
            if json {
                println!("{}", serde_json::json!({ "credential_id": id }));
            } else {
                println!("registered credential {id}");
            }
        }
        RpCommand::StartAuthentication { rp_id, user } => {
            let (ceremony, options) = rp
                .start_authentication(&rp_id, &user)
                .await
                .map_err(explain)?;
            started(json, &ceremony, &options);
        }
        RpCommand::FinishAuthentication { ceremony, file } => {
            let result = rp
                .finish_authentication(&ceremony, &read(&file)?)
                .await
                .map_err(explain)?;
            println!("{result}");
        }
        RpCommand::Credentials { rp_id, user } => {
            println!("{}", rp.credentials(&rp_id, &user).await.map_err(explain)?);
        }
        RpCommand::DeleteCredential {
            rp_id,
            credential_id,
        } => {
            rp.delete_credential(&rp_id, &credential_id)
                .await
                .map_err(explain)?;
            println!("{}", if json { r#"{"ok":true}"# } else { "deleted" });
        }
    }
    Ok(())
}
