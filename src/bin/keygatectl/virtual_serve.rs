//! `keygatectl virtual serve`: one software key in the foreground, on a SOCK_SEQPACKET socket
//! or as a uhid device, until SIGTERM/SIGINT. SIGUSR1 is a virtual power cycle, SIGUSR2 a touch
//! (approves a presence request under `--presence wait`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use keygate::authenticator::{
    self, AttestationKind, CounterMode, CredentialVault, CtapVersion, FileVault, MemoryVault,
    PresencePolicy, SharedSoftKey, SoftKey, SoftKeyOptions,
};
use keygate::secret::Secret;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Options of `keygatectl virtual serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    inner: ServeOptions,
}

/// The options themselves.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("transport").required(true).args(["socket", "uhid"])))]
pub struct ServeOptions {
    /// Path of the SOCK_SEQPACKET socket to listen on (removed again at exit).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Appear to the kernel as a USB HID security key through /dev/uhid.
    #[arg(long)]
    uhid: bool,
    /// User presence: approve automatically, deny, or wait for an approval (SIGUSR2 approves
    /// the waiting request, like a touch).
    #[arg(long, default_value = "auto", value_parser = ["auto", "deny", "wait"])]
    presence: String,
    /// Seconds `--presence wait` waits before answering "timeout".
    #[arg(long, default_value_t = 30)]
    presence_timeout: u64,
    /// CTAP versions: u2f (CTAP1 only), 2.0, 2.1-pre (FIDO_2_1_PRE), 2.1.
    #[arg(long, default_value = "2.1")]
    ctap: String,
    /// Preset this PIN (a new key only; a --state file keeps its own).
    #[arg(long)]
    pin: Option<String>,
    /// No discoverable (resident) credentials.
    #[arg(long)]
    no_resident_keys: bool,
    /// No clientPin (so no user verification at all).
    #[arg(long)]
    no_client_pin: bool,
    /// Attestation: none, self, packed.
    #[arg(long, default_value = "packed")]
    attestation: String,
    /// AAGUID (UUID form).
    #[arg(long)]
    aaguid: Option<String>,
    /// Maximum number of discoverable credentials.
    #[arg(long, default_value_t = 25)]
    max_resident: usize,
    /// Start with alwaysUv on.
    #[arg(long)]
    always_uv: bool,
    /// Signature counter: global or per-credential.
    #[arg(long, default_value = "global", value_parser = ["global", "per-credential"])]
    counter: String,
    /// Minimum PIN length (code points).
    #[arg(long, default_value_t = 4)]
    min_pin_length: u8,
    /// maxCredentialCountInList (CTAP 2.1 §6.4, GetInfo 0x07): the key refuses a longer
    /// allowList or excludeList with CTAP2_ERR_LIMIT_EXCEEDED. At least 1.
    #[arg(long, value_name = "N", default_value_t = SoftKeyOptions::default().max_credential_count_in_list)]
    max_credential_count_in_list: usize,
    /// maxCredentialIdLength (CTAP 2.1 §6.4, GetInfo 0x08): the key refuses a listed credential
    /// ID longer than this with CTAP2_ERR_LIMIT_EXCEEDED. At least the key's own longest ID.
    #[arg(long, value_name = "N", default_value_t = SoftKeyOptions::default().max_credential_id_length)]
    max_credential_id_length: usize,
    /// Enterprise attestation capable (CTAP 2.1 §7.1); enabled with authenticatorConfig.
    #[arg(long)]
    enterprise_attestation: bool,
    /// An RP ID that gets vendor-facilitated enterprise attestation (repeatable; implies
    /// --enterprise-attestation).
    #[arg(long, value_name = "RP_ID")]
    enterprise_rp_id: Vec<String>,
    /// Keep the key's state in this file, sealed with the key in --state-key.
    #[arg(long)]
    state: Option<PathBuf>,
    /// 32-byte key file sealing --state (created 0600 if missing; default: STATE.key).
    #[arg(long, requires = "state")]
    state_key: Option<PathBuf>,
}

impl ServeOptions {
    fn options(&self) -> anyhow::Result<SoftKeyOptions> {
        let mut options = SoftKeyOptions {
            ctap: self.ctap.parse::<CtapVersion>()?,
            resident_keys: !self.no_resident_keys,
            client_pin: !self.no_client_pin,
            initial_pin: self.pin.clone(),
            attestation: self.attestation.parse::<AttestationKind>()?,
            max_resident: self.max_resident,
            always_uv: self.always_uv,
            counter: if self.counter == "per-credential" {
                CounterMode::PerCredential
            } else {
                CounterMode::Global
            },
            min_pin_length: self.min_pin_length,
            max_credential_count_in_list: self.max_credential_count_in_list,
            max_credential_id_length: self.max_credential_id_length,
            enterprise_attestation: (self.enterprise_attestation
                || !self.enterprise_rp_id.is_empty())
            .then(|| self.enterprise_rp_id.clone()),
            ..SoftKeyOptions::default()
        };
        if let Some(aaguid) = &self.aaguid {
            options.aaguid = SoftKeyOptions::parse_aaguid(aaguid)?;
        }
        options
            .validate()
            .context("invalid `virtual serve` options")?;
        Ok(options)
    }

    fn policy(&self) -> PresencePolicy {
        match self.presence.as_str() {
            "deny" => PresencePolicy::Deny,
            "wait" => PresencePolicy::WaitForApproval {
                timeout: Duration::from_secs(self.presence_timeout),
            },
            _ => PresencePolicy::AutoApprove,
        }
    }
}

/// Reads the 32-byte vault key, creating it (0600, atomic) if it does not exist.
fn load_or_create_key(path: &Path) -> anyhow::Result<Secret<[u8; 32]>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display()))?;
            Ok(Secret::new(key))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = Secret::new([0u8; 32]);
            getrandom::fill(key.expose_secret_mut())
                .map_err(|_| anyhow::anyhow!("random source failed"))?;
            authenticator::atomic_write(path, key.expose_secret())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn status_json(args: &ServeOptions, key: &SoftKey, pid: u32) -> serde_json::Value {
    let options = key.options();
    serde_json::json!({
        "status": "ready",
        "pid": pid,
        "socket": args.socket.as_ref().map(|p| p.display().to_string()),
        "uhid": args.uhid,
        "aaguid": authenticator::format_aaguid(&options.aaguid),
        "ctap": args.ctap,
        "resident_keys": options.resident_keys,
        "client_pin": options.client_pin,
        "pin_set": key.pin_is_set(),
        "attestation": args.attestation,
        "max_resident": options.max_resident,
        "presence": args.presence,
        "always_uv": options.always_uv,
        "max_credential_count_in_list": options.max_credential_count_in_list,
        "max_credential_id_length": options.max_credential_id_length,
        "enterprise_attestation": options.enterprise_attestation,
        "state": args.state.as_ref().map(|p| p.display().to_string()),
        "attestation_ca": data_encoding::BASE64.encode(key.attestation_ca_der()),
    })
}

/// Runs the key until SIGTERM/SIGINT.
pub fn run(args: ServeArgs, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(serve_main(args.inner, json))
}

async fn serve_main(args: ServeOptions, json: bool) -> anyhow::Result<()> {
    let options = args.options()?;
    let vault: Box<dyn CredentialVault> = match &args.state {
        Some(state) => {
            let key_path = args.state_key.clone().unwrap_or_else(|| {
                let mut p = state.clone().into_os_string();
                p.push(".key");
                PathBuf::from(p)
            });
            Box::new(FileVault::new(state, load_or_create_key(&key_path)?))
        }
        None => Box::new(MemoryVault::new()),
    };
    let key = SoftKey::with_vault(
        options,
        vault,
        Box::new(authenticator::keys::OsRandom),
        std::time::Instant::now(),
    )
    .context("creating the software key")?;
    let shared = SharedSoftKey::new(key, args.policy());
    let shutdown = CancellationToken::new();
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut power = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
    let mut touch = signal(SignalKind::user_defined2()).context("SIGUSR2 handler")?;

    let mut tasks = tokio::task::JoinSet::new();
    let listener = if let Some(path) = &args.socket {
        Some(
            keygate::hid::socket::SeqpacketListener::bind(path)
                .with_context(|| format!("binding {}", path.display()))?,
        )
    } else {
        let device =
            keygate::hid::uhid::UhidDevice::create(keygate::hid::uhid::UhidConfig::default())
                .context("creating the uhid device (needs write access to /dev/uhid)")?;
        tasks.spawn(authenticator::serve(
            device,
            shared.clone(),
            shutdown.child_token(),
        ));
        None
    };

    let status = shared
        .with(|k| status_json(&args, k, std::process::id()))
        .ok_or_else(|| anyhow::anyhow!("key lock poisoned"))?;
    if json {
        println!("{status}");
    } else {
        println!(
            "keygate virtual key ready on {} (aaguid {}, ctap {}, attestation {}, presence {})",
            args.socket
                .as_ref()
                .map_or_else(|| "uhid".to_owned(), |p| p.display().to_string()),
            status["aaguid"].as_str().unwrap_or_default(),
            args.ctap,
            args.attestation,
            args.presence,
        );
    }

    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = terminate.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
            _ = power.recv() => {
                // The key may be busy waiting for a touch: cycle it off the signal loop.
                let key = shared.clone();
                tokio::task::spawn_blocking(move || {
                    key.power_cycle();
                    eprintln!("virtual power cycle");
                });
            }
            _ = touch.recv() => {
                shared.presence().handle().approve();
                eprintln!("virtual touch");
            }
            accepted = async {
                match &listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => {
                match accepted {
                    Ok(pipe) => {
                        tasks.spawn(authenticator::serve(pipe, shared.clone(), shutdown.child_token()));
                    }
                    Err(e) => eprintln!("accept failed: {e}"),
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok(Err(e)) => eprintln!("connection ended: {e}"),
                    Err(e) => eprintln!("connection task failed: {e}"),
                    Ok(Ok(())) => {}
                }
                if listener.is_none() && tasks.is_empty() {
                    break Err(anyhow::anyhow!("the uhid device went away"));
                }
            }
        }
    };
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    if let Some(path) = &args.socket {
        drop(listener);
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("removing {}: {e}", path.display()),
        }
    }
    outcome
}
