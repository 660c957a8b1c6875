//! keygatectl: the keygate command-line client.
//!
//! Each subcommand lives in its own module; `main` only parses and dispatches.

mod conn;
mod demo;
mod demo_steps;
mod device_cmds;
mod devices;
mod prompt;
mod rp;
mod token;
mod virtual_cmds;
mod virtual_serve;
mod webauthn_cmds;

use std::io::Write;

use clap::{CommandFactory, Parser, Subcommand};

/// keygate's command-line client.
#[derive(Debug, Parser)]
#[command(name = "keygatectl", version, about)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    bus: conn::BusArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk through keygate on a private bus and a temporary state dir (start here).
    Demo(demo::DemoArgs),
    /// List the security keys keygated can use (USB keys and your software keys).
    Devices,
    /// Show a security key's capabilities (authenticatorGetInfo).
    Info(device_cmds::DeviceArg),
    /// Register a credential as a browser would (navigator.credentials.create).
    Register(webauthn_cmds::CeremonyArgs),
    /// Sign in with a credential as a browser would (navigator.credentials.get).
    Assert(webauthn_cmds::CeremonyArgs),
    /// A security key's PIN: retries, set, change.
    Pin {
        #[command(flatten)]
        device: device_cmds::DeviceArg,
        #[command(subcommand)]
        command: device_cmds::PinCommand,
    },
    /// Reset a security key (deletes every credential and the PIN).
    Reset {
        #[command(flatten)]
        device: device_cmds::DeviceArg,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Turn on enterprise attestation on a key that has it ("ep"; PIN prompted if one is set).
    EnterpriseAttestation {
        #[command(flatten)]
        device: device_cmds::DeviceArg,
    },
    /// A security key's discoverable credentials: list, delete.
    Creds {
        #[command(flatten)]
        device: device_cmds::DeviceArg,
        #[command(subcommand)]
        command: device_cmds::CredsCommand,
    },
    /// Relying parties and their ceremonies (login servers).
    #[command(subcommand)]
    Rp(rp::RpCommand),
    /// Digipass-style tokens: create, import, check, software tokens, PANIC.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Software security keys.
    #[command(subcommand)]
    Virtual(VirtualCommand),
    /// Print shell completions generated from the CLI definition.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) generated from the CLI definition.
    Man,
}

#[derive(Debug, Subcommand)]
enum VirtualCommand {
    /// Run one software security key in the foreground on a socket or as a uhid device.
    Serve(Box<virtual_serve::ServeArgs>),
    #[command(flatten)]
    Daemon(virtual_cmds::VirtualDaemonCommand),
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Virtual(VirtualCommand::Serve(args)) => virtual_serve::run(*args, cli.json),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "keygatectl", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            std::io::stdout().write_all(&out)?;
            Ok(())
        }
        Command::Demo(args) => {
            if demo::run(args)? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Token(command) => runtime()?.block_on(token::run(&cli.bus, cli.json, command)),
        Command::Virtual(VirtualCommand::Daemon(command)) => {
            runtime()?.block_on(virtual_cmds::run(&cli.bus, cli.json, command))
        }
        Command::Info(device) => runtime()?.block_on(device_cmds::info(&cli.bus, cli.json, device)),
        Command::Register(args) => runtime()?.block_on(webauthn_cmds::run(&cli.bus, true, args)),
        Command::Assert(args) => runtime()?.block_on(webauthn_cmds::run(&cli.bus, false, args)),
        Command::Pin { device, command } => {
            runtime()?.block_on(device_cmds::pin(&cli.bus, cli.json, device, command))
        }
        Command::Reset { device, yes } => {
            runtime()?.block_on(device_cmds::reset(&cli.bus, cli.json, device, yes))
        }
        Command::EnterpriseAttestation { device } => runtime()?.block_on(
            device_cmds::enable_enterprise_attestation(&cli.bus, cli.json, device),
        ),
        Command::Creds { device, command } => {
            runtime()?.block_on(device_cmds::creds(&cli.bus, cli.json, device, command))
        }
        Command::Rp(command) => runtime()?.block_on(rp::run(&cli.bus, cli.json, command)),
        Command::Devices => runtime()?.block_on(devices::list(&cli.bus, cli.json)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random IDs (base64url credential IDs, ceremonies issued before they became hex)
    /// may begin with '-': they must reach keygated as values, not fail as unknown options.
    #[test]
    fn ids_beginning_with_a_dash_are_values() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|cli| cli.command);
        match parse(&[
            "keygatectl",
            "rp",
            "finish-registration",
            "-MUpb6Y",
            "f.json",
        ]) {
            Ok(Command::Rp(rp::RpCommand::FinishRegistration { ceremony, .. })) => {
                assert_eq!(ceremony, "-MUpb6Y")
            }
            other => panic!("{other:?}"),
        }
        match parse(&["keygatectl", "rp", "finish-authentication", "-x", "-"]) {
            Ok(Command::Rp(rp::RpCommand::FinishAuthentication { ceremony, file })) => {
                assert_eq!((ceremony.as_str(), file.to_str()), ("-x", Some("-")))
            }
            other => panic!("{other:?}"),
        }
        match parse(&[
            "keygatectl",
            "rp",
            "delete-credential",
            "example.org",
            "-Ab_c",
        ]) {
            Ok(Command::Rp(rp::RpCommand::DeleteCredential { credential_id, .. })) => {
                assert_eq!(credential_id, "-Ab_c")
            }
            other => panic!("{other:?}"),
        }
        match parse(&["keygatectl", "creds", "delete", "-Ab_c"]) {
            Ok(Command::Creds {
                command: device_cmds::CredsCommand::Delete { credential_id },
                ..
            }) => assert_eq!(credential_id, "-Ab_c"),
            other => panic!("{other:?}"),
        }
        // Real options are still options.
        assert!(parse(&["keygatectl", "rp", "finish-registration", "--nope"]).is_err());
    }
}
