//! `keygatectl info | pin | reset | creds`: one authenticator's GetInfo, PIN, reset and
//! discoverable credentials, through its Device object.

use std::collections::HashMap;
use std::io::Write;

use keygate::service::client::ManagerProxy;
use zbus::OwnedObjectPath;

use crate::conn::{BusArgs, explain};
use crate::prompt;

const DEVICE_IFACE: &str = "org.keygate.Keygate1.Device";

/// Which device: an object path, or an index into `keygatectl devices`; the only device if
/// omitted.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArg {
    /// Device object path or index (see `keygatectl devices`); default: the only device.
    #[arg(long, short = 'd')]
    pub device: Option<String>,
}

/// `keygatectl pin ...`.
#[derive(Debug, clap::Subcommand)]
pub enum PinCommand {
    /// PIN retries left.
    Retries,
    /// Set the first PIN (prompted twice without echo).
    Set,
    /// Change the PIN (current and new PIN prompted without echo).
    Change,
}

/// `keygatectl creds ...`.
#[derive(Debug, clap::Subcommand)]
pub enum CredsCommand {
    /// List the discoverable credentials (PIN prompted).
    List,
    /// Delete one discoverable credential (PIN prompted).
    Delete {
        /// Credential id (base64url; it may begin with '-').
        #[arg(allow_hyphen_values = true)]
        credential_id: String,
    },
}

async fn resolve(conn: &zbus::Connection, arg: &DeviceArg) -> anyhow::Result<OwnedObjectPath> {
    let manager = ManagerProxy::new(conn).await.map_err(explain)?;
    let devices = manager.list_devices().await.map_err(explain)?;
    match &arg.device {
        Some(text) if text.starts_with('/') => Ok(OwnedObjectPath::try_from(text.as_str())?),
        Some(text) => {
            let index: usize = text
                .parse()
                .map_err(|_| anyhow::anyhow!("{text:?} is neither a path nor an index"))?;
            devices
                .get(index)
                .map(|d| d.0.clone())
                .ok_or_else(|| anyhow::anyhow!("no device {index} (see keygatectl devices)"))
        }
        None => match devices.as_slice() {
            [one] => Ok(one.0.clone()),
            [] => anyhow::bail!(
                "no security key found (plug one in, or create one: keygatectl virtual create)"
            ),
            _ => {
                anyhow::bail!("several devices: choose one with --device (see keygatectl devices)")
            }
        },
    }
}

async fn device_proxy<'a>(
    conn: &'a zbus::Connection,
    path: &OwnedObjectPath,
) -> anyhow::Result<zbus::Proxy<'a>> {
    Ok(zbus::Proxy::new(
        conn,
        keygate::service::names::BUS_NAME,
        path.to_string(),
        DEVICE_IFACE,
    )
    .await?)
}

/// `keygatectl info`.
pub async fn info(bus: &BusArgs, json: bool, arg: DeviceArg) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let path = resolve(&conn, &arg).await?;
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination(keygate::service::names::BUS_NAME)
        .path(path.clone())
        .build()
        .await?;
    let all: HashMap<String, zbus::OwnedVariant> = props
        .get_all(zbus::names::InterfaceName::try_from(DEVICE_IFACE)?)
        .await
        .map_err(|e| explain(e.into()))?;
    let mut keys: Vec<&String> = all.keys().collect();
    keys.sort();
    if json {
        let mut map = serde_json::Map::new();
        map.insert("path".into(), path.to_string().into());
        for key in keys {
            map.insert(key.clone(), value_json(&all[key]));
        }
        println!("{}", serde_json::Value::Object(map));
    } else {
        println!("{path}");
        for key in keys {
            println!("  {key:<34} {}", value_json(&all[key]));
        }
    }
    Ok(())
}

fn value_json(value: &zbus::Variant<'_>) -> serde_json::Value {
    use zbus::Variant;
    match value {
        Variant::Bool(b) => (*b).into(),
        Variant::U8(n) => (*n).into(),
        Variant::U16(n) => (*n).into(),
        Variant::U32(n) => (*n).into(),
        Variant::U64(n) => (*n).into(),
        Variant::I16(n) => (*n).into(),
        Variant::I32(n) => (*n).into(),
        Variant::I64(n) => (*n).into(),
        Variant::Str(s) => s.as_str().into(),
        Variant::ObjectPath(p) => p.as_str().into(),
        Variant::Variant(inner) => value_json(inner),
        Variant::Array(items) => items.inner().iter().map(value_json).collect(),
        Variant::Dict(dict) => {
            let mut entries: Vec<(String, serde_json::Value)> = dict
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Variant::Str(s) => s.as_str().to_owned(),
                        other => format!("{other:?}"),
                    };
                    (key, value_json(v))
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().collect())
        }
        other => format!("{other:?}").into(),
    }
}

/// `keygatectl pin ...`.
pub async fn pin(
    bus: &BusArgs,
    json: bool,
    arg: DeviceArg,
    command: PinCommand,
) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let path = resolve(&conn, &arg).await?;
    let device = device_proxy(&conn, &path).await?;
    match command {
        PinCommand::Retries => {
            let (retries, power_cycle): (u32, bool) =
                device.call("PinRetries", &()).await.map_err(explain)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"retries": retries, "power_cycle_needed": power_cycle})
                );
            } else {
                println!(
                    "{retries} PIN retries left{}",
                    if power_cycle {
                        " (unplug and replug the key first)"
                    } else {
                        ""
                    }
                );
            }
        }
        PinCommand::Set => {
            let new = prompt::read_new_pin()?;
            let () = device
                .call("SetPin", &(new.as_str(),))
                .await
                .map_err(explain)?;
            done(json, "PIN set");
        }
        PinCommand::Change => {
            let (retries, _): (u32, bool) =
                device.call("PinRetries", &()).await.map_err(explain)?;
            let current = prompt::read_secret(&format!("Current PIN ({retries} retries left): "))?;
            let new = prompt::read_new_pin()?;
            let () = device
                .call("ChangePin", &(current.as_str(), new.as_str()))
                .await
                .map_err(explain)?;
            done(json, "PIN changed");
        }
    }
    Ok(())
}

fn done(json: bool, text: &str) {
    if json {
        println!("{}", serde_json::json!({"ok": true, "message": text}));
    } else {
        println!("{text}");
    }
}

/// `keygatectl reset`.
pub async fn reset(bus: &BusArgs, json: bool, arg: DeviceArg, yes: bool) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let path = resolve(&conn, &arg).await?;
    if !yes {
        eprint!("Reset {path}? Every credential and the PIN will be deleted. Type yes: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        anyhow::ensure!(line.trim() == "yes", "not reset");
    }
    eprintln!("Touch your security key");
    let device = device_proxy(&conn, &path).await?;
    let () = device.call("Reset", &()).await.map_err(explain)?;
    done(json, "authenticator reset");
    Ok(())
}

/// `keygatectl enterprise-attestation`: enableEnterpriseAttestation, with the PIN if one is set.
pub async fn enable_enterprise_attestation(
    bus: &BusArgs,
    json: bool,
    arg: DeviceArg,
) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let path = resolve(&conn, &arg).await?;
    let device = device_proxy(&conn, &path).await?;
    let options: std::collections::HashMap<String, bool> =
        device.get_property("Options").await.map_err(explain)?;
    let pin = if options.get("clientPin") == Some(&true) {
        let (retries, _): (u32, bool) = device.call("PinRetries", &()).await.map_err(explain)?;
        prompt::pin_from(None, &format!("PIN ({retries} retries left): "))?
    } else {
        String::new()
    };
    let () = device
        .call("EnableEnterpriseAttestation", &(pin.as_str(),))
        .await
        .map_err(explain)?;
    done(json, "enterprise attestation enabled");
    Ok(())
}

/// `keygatectl creds ...`.
pub async fn creds(
    bus: &BusArgs,
    json: bool,
    arg: DeviceArg,
    command: CredsCommand,
) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let path = resolve(&conn, &arg).await?;
    let device = device_proxy(&conn, &path).await?;
    let (retries, _): (u32, bool) = device.call("PinRetries", &()).await.map_err(explain)?;
    let pin = prompt::pin_from(None, &format!("PIN ({retries} retries left): "))?;
    match command {
        CredsCommand::List => {
            let list: String = device
                .call("Credentials", &(pin.as_str(),))
                .await
                .map_err(explain)?;
            if json {
                println!("{list}");
            } else {
                let items: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap_or_default();
                if items.is_empty() {
                    println!("no discoverable credentials");
                }
                for item in items {
                    println!(
                        "{}  {}  {}",
                        item["rp_id"].as_str().unwrap_or(""),
                        item["user_name"].as_str().unwrap_or("-"),
                        item["credential_id"].as_str().unwrap_or("")
                    );
                }
            }
        }
        CredsCommand::Delete { credential_id } => {
            let () = device
                .call("DeleteCredential", &(pin.as_str(), credential_id.as_str()))
                .await
                .map_err(explain)?;
            done(json, "credential deleted");
        }
    }
    Ok(())
}
