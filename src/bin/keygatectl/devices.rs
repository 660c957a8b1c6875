//! `keygatectl devices`: the authenticators keygated knows about.

use keygate::service::client::ManagerProxy;

use crate::conn::{BusArgs, explain};

/// Lists devices.
pub async fn list(bus: &BusArgs, json: bool) -> anyhow::Result<()> {
    let conn = bus.connect().await?;
    let manager = ManagerProxy::new(&conn).await.map_err(explain)?;
    let devices = manager.list_devices().await.map_err(explain)?;
    if json {
        let list: Vec<serde_json::Value> = devices
            .iter()
            .map(|(path, kind, name, owner)| {
                serde_json::json!({
                    "path": path.as_str(),
                    "kind": kind,
                    "name": name,
                    "owner": if *owner == u32::MAX { serde_json::Value::Null } else { (*owner).into() },
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if devices.is_empty() {
        println!("no security keys found");
    } else {
        for (path, kind, name, owner) in &devices {
            let owner = if *owner == u32::MAX {
                String::new()
            } else {
                format!(" (uid {owner})")
            };
            println!("{path}  {kind:<8} {name}{owner}");
        }
    }
    Ok(())
}
