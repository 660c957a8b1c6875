//! `keygatectl virtual create | list | remove | approve | power-cycle | presence`: software
//! security keys held by keygated for the calling user (`virtual serve`, a key in the
//! foreground, is in `virtual_serve.rs`).

use keygate::service::client::VirtualProxy;

use crate::conn::{BusArgs, explain};

/// Options of `virtual create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name shown in `keygatectl devices`.
    #[arg(long)]
    name: Option<String>,
    /// PIN set at creation.
    #[arg(long)]
    pin: Option<String>,
    /// User presence: auto (approve at once), deny, or wait (for `keygatectl virtual approve`).
    #[arg(long, default_value = "auto")]
    presence: String,
    /// Attestation: none, self, packed.
    #[arg(long)]
    attestation: Option<String>,
    /// CTAP version: 2.1, 2.0 or u2f.
    #[arg(long)]
    ctap: Option<String>,
    /// No discoverable (resident) credentials.
    #[arg(long)]
    no_resident_keys: bool,
    /// alwaysUv.
    #[arg(long)]
    always_uv: bool,
    /// Also serve the key on a SOCK_SEQPACKET socket under keygated's runtime directory (its
    /// path is printed; only you and root may connect).
    #[arg(long)]
    socket: bool,
    /// Also make the key a kernel HID device through /dev/uhid (its hidraw node is yours).
    #[arg(long)]
    uhid: bool,
    /// Keep the key (credentials, counter, PIN, transports) across restarts of keygated, sealed
    /// in its store; without it the key lives as long as keygated runs.
    #[arg(long)]
    persist: bool,
    /// Enterprise attestation capable (CTAP 2.1 §7.1); a PIN holder enables it with
    /// authenticatorConfig.
    #[arg(long)]
    enterprise_attestation: bool,
    /// An RP ID that gets vendor-facilitated enterprise attestation (repeatable; implies
    /// --enterprise-attestation).
    #[arg(long, value_name = "RP_ID")]
    enterprise_rp_id: Vec<String>,
}

/// `keygatectl virtual ...` (except `serve`).
#[derive(Debug, clap::Subcommand)]
pub enum VirtualDaemonCommand {
    /// Create a software security key in keygated, owned by you.
    Create(CreateArgs),
    /// Your software keys.
    List,
    /// Remove one of your software keys.
    Remove {
        /// Device path.
        path: String,
    },
    /// Approve the pending touch request of a key created with --presence wait.
    Approve {
        /// Device path.
        path: String,
    },
    /// Unplug and replug a key (virtually).
    PowerCycle {
        /// Device path.
        path: String,
    },
    /// Change a key's presence behaviour: auto, deny, wait.
    Presence {
        /// Device path.
        path: String,
        /// auto, deny or wait.
        policy: String,
    },
}

fn path_arg(text: &str) -> anyhow::Result<zbus::ObjectPath<'_>> {
    zbus::ObjectPath::try_from(text)
        .map_err(|e| anyhow::anyhow!("{text:?} is not a device path: {e}"))
}

/// Runs a `virtual` subcommand through keygated.
pub async fn run(bus: &BusArgs, json: bool, command: VirtualDaemonCommand) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let virt = VirtualProxy::new(&conn).await.map_err(explain)?;
    match command {
        VirtualDaemonCommand::Create(args) => {
            let mut options = serde_json::json!({
                "presence": args.presence,
                "resident_keys": !args.no_resident_keys,
                "always_uv": args.always_uv,
                "socket": args.socket,
                "uhid": args.uhid,
                "persist": args.persist,
            });
            for (key, value) in [
                ("name", args.name),
                ("pin", args.pin),
                ("attestation", args.attestation),
                ("ctap", args.ctap),
            ] {
                if let Some(value) = value {
                    options[key] = value.into();
                }
            }
            if args.enterprise_attestation || !args.enterprise_rp_id.is_empty() {
                options["enterprise_attestation"] = true.into();
                options["enterprise_rp_ids"] = args.enterprise_rp_id.into();
            }
            let path = virt.create(&options.to_string()).await.map_err(explain)?;
            let socket = if args.socket {
                Some(virt.socket(&path).await.map_err(explain)?)
            } else {
                None
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "path": path.as_str(), "socket": socket })
                );
            } else {
                println!("{path}");
                if let Some(socket) = socket {
                    println!("socket: {socket}");
                }
            }
        }
        VirtualDaemonCommand::List => {
            let keys = virt.list().await.map_err(explain)?;
            if json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|(p, n)| serde_json::json!({"path": p.as_str(), "name": n}))
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else if keys.is_empty() {
                println!("no software keys (keygatectl virtual create)");
            } else {
                for (path, name) in keys {
                    println!("{path}  {name}");
                }
            }
        }
        VirtualDaemonCommand::Remove { path } => {
            virt.remove(&path_arg(&path)?).await.map_err(explain)?;
            report(json, "removed", &path);
        }
        VirtualDaemonCommand::Approve { path } => {
            let waiting = virt.approve(&path_arg(&path)?).await.map_err(explain)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"approved": path, "was_waiting": waiting})
                );
            } else if waiting {
                println!("approved the pending touch request");
            } else {
                println!("no request was waiting; the next one is approved");
            }
        }
        VirtualDaemonCommand::PowerCycle { path } => {
            virt.power_cycle(&path_arg(&path)?).await.map_err(explain)?;
            report(json, "power-cycled", &path);
        }
        VirtualDaemonCommand::Presence { path, policy } => {
            virt.set_presence(&path_arg(&path)?, &policy)
                .await
                .map_err(explain)?;
            report(json, "presence set", &path);
        }
    }
    Ok(())
}

fn report(json: bool, what: &str, path: &str) {
    if json {
        println!("{}", serde_json::json!({ "ok": what, "path": path }));
    } else {
        println!("{what}: {path}");
    }
}
