//! keygated: the keygate daemon.
//!
//! Serves `org.keygate.Keygate1` on the system bus (default), the session bus (`--session`) or a
//! given address (`--bus-address`), with durable state in `--state-dir` (default
//! `$STATE_DIRECTORY` or `/var/lib/keygate`) and an optional TOML config (`--config`, default
//! `/etc/keygate/keygated.toml` if it exists). Stops cleanly on SIGTERM / SIGINT.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use keygate::service::{self, BusTarget, Config, Options};
use tokio_util::sync::CancellationToken;

/// keygate daemon: FIDO2 security keys, OATH tokens and WebAuthn over D-Bus.
#[derive(Debug, Parser)]
#[command(name = "keygated", version, about)]
struct Args {
    /// Serve on the session bus instead of the system bus.
    #[arg(long, conflicts_with = "bus_address")]
    session: bool,
    /// Serve on the bus at this D-Bus address (e.g. `unix:path=/run/x/bus`).
    #[arg(long, value_name = "ADDR")]
    bus_address: Option<String>,
    /// Durable state directory.
    #[arg(long, value_name = "DIR", env = "STATE_DIRECTORY")]
    state_dir: Option<PathBuf>,
    /// Runtime directory for software-key sockets.
    #[arg(long, value_name = "DIR", env = "RUNTIME_DIRECTORY")]
    runtime_dir: Option<PathBuf>,
    /// Configuration file (TOML). Without it, /etc/keygate/keygated.toml is read if it exists.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => {
            let default = PathBuf::from(service::config::DEFAULT_CONFIG_PATH);
            if default.exists() {
                Config::load(&default)?
            } else {
                Config::default()
            }
        }
    };
    let bus = if args.session {
        BusTarget::Session
    } else if let Some(addr) = args.bus_address {
        BusTarget::Address(addr)
    } else {
        BusTarget::System
    };
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/keygate"));
    let runtime_dir = args.runtime_dir.unwrap_or_else(|| state_dir.join("run"));
    let options = Options {
        bus,
        state_dir,
        runtime_dir,
        config,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let signals = tokio::spawn(wait_for_signal(cancel.clone()));
        let result = service::run(options, cancel.clone()).await;
        cancel.cancel();
        signals.abort();
        result.context("keygated")
    })
}

/// Cancels `cancel` on SIGTERM or SIGINT.
async fn wait_for_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
        () = cancel.cancelled() => return,
    }
    cancel.cancel();
}
