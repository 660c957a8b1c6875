//! Which bus keygatectl talks to, and the connection.

use anyhow::Context;

/// Bus selection, shared by every subcommand that talks to keygated.
#[derive(Debug, Clone, clap::Args)]
pub struct BusArgs {
    /// Talk to keygated on the session bus instead of the system bus.
    #[arg(long, global = true, conflicts_with = "bus_address")]
    pub session: bool,
    /// Talk to keygated on the bus at this address.
    #[arg(long, global = true, value_name = "ADDR", env = "KEYGATE_BUS_ADDRESS")]
    pub bus_address: Option<String>,
}

impl BusArgs {
    /// Connects to the selected bus.
    pub async fn connect(&self) -> anyhow::Result<zbus::Connection> {
        let builder = if self.session {
            zbus::connection::Builder::session()
        } else if let Some(addr) = &self.bus_address {
            zbus::connection::Builder::address(addr.as_str())
        } else {
            zbus::connection::Builder::system()
        };
        builder
            .build()
            .await
            .context("cannot connect to the D-Bus bus (is keygated's bus running?)")
    }
}

/// Turns a D-Bus error into a message a user reads: the short error name and its text.
pub fn explain(err: zbus::Error) -> anyhow::Error {
    match &err {
        zbus::Error::MethodError(name, text, _) => {
            let short = name
                .as_str()
                .rsplit('.')
                .next()
                .unwrap_or(name.as_str())
                .to_owned();
            anyhow::anyhow!("{short}: {}", text.clone().unwrap_or_default())
        }
        zbus::Error::FDO(fdo) => anyhow::anyhow!("{fdo}"),
        _ => anyhow::Error::new(err),
    }
}
