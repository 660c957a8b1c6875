//! keygatectl: the keygate command-line client.
//!
//! Each subcommand lives in its own module; `main` only parses and dispatches.

mod virtual_serve;

use clap::{Parser, Subcommand};

/// keygate's command-line client.
#[derive(Debug, Parser)]
#[command(name = "keygatectl", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Software security keys.
    #[command(subcommand)]
    Virtual(VirtualCommand),
}

#[derive(Debug, Subcommand)]
enum VirtualCommand {
    /// Run one software security key in the foreground on a socket or as a uhid device.
    Serve(virtual_serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Virtual(VirtualCommand::Serve(args)) => virtual_serve::run(args, cli.json),
    }
}
