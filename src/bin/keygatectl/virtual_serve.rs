//! `keygatectl virtual serve`: one software key in the foreground.

/// Options of `keygatectl virtual serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Path of the SOCK_SEQPACKET socket to listen on.
    #[arg(long)]
    socket: Option<std::path::PathBuf>,
}

/// Runs the key until SIGTERM/SIGINT.
pub fn run(args: ServeArgs, json: bool) -> anyhow::Result<()> {
    anyhow::bail!("virtual serve is not built yet ({args:?}, json={json})")
}
