//! `keygatectl demo`: the whole job end to end on a private instance, as a non-root newcomer.
//!
//! Starts a private dbus-daemon and keygated (the sibling binary of this executable) on a
//! temporary state dir whose config grants the invoking uid the admin and verifier roles, walks
//! through every feature over the bus, prints what happens, and cleans up. The exit status is 0
//! only if every step that ran behaved as expected; a step whose library is not in this build is
//! reported as "not available yet" and does not count either way.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use keygate::service::client::{ManagerProxy, TokensProxy, error_name};

/// Options of `keygatectl demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// keygated binary (default: next to keygatectl, then /usr/libexec/keygated, then PATH).
    #[arg(long, value_name = "PATH", env = "KEYGATE_DAEMON")]
    daemon: Option<PathBuf>,
    /// Keep the temporary directory (state, config, logs) and print its path.
    #[arg(long)]
    keep: bool,
}

/// What a step found.
#[derive(Debug)]
pub enum Outcome {
    /// Behaved as expected.
    Passed,
    /// Did not behave as expected (the reason).
    Failed(String),
    /// Its interface or library is not in this build.
    Unavailable(String),
}

/// A child process killed (by its pid) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private temporary directory (0700), removed on drop unless kept.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let base = std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        let path = nix::unistd::mkdtemp(&base.join("keygate-demo.XXXXXX")).with_context(|| {
            format!("cannot create a temporary directory in {}", base.display())
        })?;
        Ok(Self { path, keep: false })
    }

    fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn find_daemon(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        let sibling = dir.join("keygated");
        if sibling.is_file() {
            return Ok(sibling);
        }
    }
    for candidate in ["/usr/libexec/keygated", "/usr/local/libexec/keygated"] {
        if Path::new(candidate).is_file() {
            return Ok(candidate.into());
        }
    }
    Ok(PathBuf::from("keygated"))
}

/// The private bus: a session-like dbus-daemon on a socket in `dir`.
fn start_bus(dir: &Path) -> anyhow::Result<(Reaped, String)> {
    let socket = dir.join("bus");
    let config = format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    );
    let config_path = dir.join("bus.conf");
    std::fs::write(&config_path, config)?;
    let mut child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config_path.display()))
        .args(["--nofork", "--nopidfile", "--print-address=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start dbus-daemon (install the dbus-daemon package)")?;
    let stdout = child.stdout.take().context("dbus-daemon stdout")?;
    let reaped = Reaped(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line.trim().to_owned();
    if address.is_empty() {
        bail!("dbus-daemon did not print its address");
    }
    Ok((reaped, address))
}

fn demo_config(uid: u32) -> String {
    format!(
        "# keygatectl demo: the invoking uid administers and verifies\n\
         admin_uids = [{uid}]\nverifier_uids = [{uid}]\n\n\
         # a throw-away instance: light Argon2id for the software tokens' PINs\n\
         [soft_tokens]\nkdf_memory_kib = 1024\nkdf_passes = 1\n\n\
         [[relying_party]]\nid = \"example.org\"\nname = \"Example Org\"\n\
         origins = [\"https://example.org\", \"https://login.example.org\"]\n"
    )
}

/// Runs the demo. Exit status: Ok(true) if every step that ran passed.
pub fn run(args: DemoArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let tmp = TempDir::new()?;
    let dir = tmp.path.clone();
    let daemon_path = find_daemon(args.daemon)?;
    println!("keygate demo: a private D-Bus and keygated on a temporary state directory");
    let (bus, address) = start_bus(&dir)?;

    let uid = nix::unistd::getuid().as_raw();
    let config_path = dir.join("keygated.toml");
    std::fs::write(&config_path, demo_config(uid))?;
    let log_path = dir.join("keygated.log");
    let log = std::fs::File::create(&log_path)?;
    let spawn_at = Instant::now();
    let daemon = Command::new(&daemon_path)
        .arg("--bus-address")
        .arg(&address)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--runtime-dir")
        .arg(dir.join("run"))
        .arg("--config")
        .arg(&config_path)
        .env("KEYGATE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", daemon_path.display()))?;
    let daemon = Reaped(daemon);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let conn = zbus::connection::Builder::address(address.as_str())
            .build()
            .await
            .context("connect to the private bus")?;
        wait_for_name(&conn, Duration::from_secs(15)).await?;
        println!(
            "  bus {address}\n  keygated {} ready in {} ms (uid {uid} has the admin and verifier roles)\n",
            daemon_path.display(),
            spawn_at.elapsed().as_millis()
        );
        Ok::<_, anyhow::Error>(steps(&conn).await)
    });
    drop(runtime);
    drop(daemon);
    drop(bus);
    let outcomes = match result {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("demo could not start: {e:#}");
            eprintln!(
                "keygated log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            return Ok(false);
        }
    };
    let passed = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Passed))
        .count();
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .collect();
    let unavailable: Vec<_> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Unavailable(_)))
        .collect();
    println!();
    println!(
        "summary: {passed} passed, {} failed, {} not available yet ({} ms)",
        failed.len(),
        unavailable.len(),
        started.elapsed().as_millis()
    );
    for (name, _) in &unavailable {
        println!("  not available yet: {name}");
    }
    for (name, outcome) in &failed {
        if let Outcome::Failed(reason) = outcome {
            println!("  FAILED: {name}: {reason}");
        }
    }
    if !failed.is_empty() {
        eprintln!(
            "keygated log:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
    }
    if args.keep {
        println!("kept {}", tmp.keep().display());
    }
    Ok(failed.is_empty())
}

async fn wait_for_name(conn: &zbus::Connection, timeout: Duration) -> anyhow::Result<()> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let deadline = Instant::now() + timeout;
    let name = zbus::names::BusName::try_from(keygate::service::names::BUS_NAME)?;
    loop {
        if dbus.name_has_owner(name.clone()).await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("keygated did not take its bus name within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Maps an error of a call into an outcome: missing interfaces are "not available yet".
pub fn classify(err: &zbus::Error, what: &str) -> Outcome {
    match error_name(err).as_deref() {
        Some("org.freedesktop.DBus.Error.UnknownInterface")
        | Some("org.freedesktop.DBus.Error.UnknownMethod")
        | Some("org.freedesktop.DBus.Error.UnknownObject")
        | Some("org.keygate.Keygate1.Error.NotAvailable") => {
            Outcome::Unavailable(format!("{what}: {err}"))
        }
        _ => Outcome::Failed(format!("{what}: {err}")),
    }
}

fn print_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Passed => println!("   => ok\n"),
        Outcome::Failed(reason) => println!("   => FAILED: {reason}\n"),
        Outcome::Unavailable(reason) => println!("   => not available yet ({reason})\n"),
    }
}

async fn steps(conn: &zbus::Connection) -> Vec<(&'static str, Outcome)> {
    let mut outcomes = Vec::new();
    let mut record = |name: &'static str, outcome: Outcome| {
        print_outcome(&outcome);
        outcomes.push((name, outcome));
    };

    println!("0. keygated answers on the bus");
    record("manager", manager_step(conn).await);

    println!(
        "1-2. A software security key with a PIN; {} registered and authenticated at example.org",
        super::demo_steps::USER
    );
    record("webauthn", super::demo_steps::webauthn(conn).await);

    let tokens = match TokensProxy::new(conn).await {
        Ok(t) => Some(t),
        Err(e) => {
            record("tokens", Outcome::Failed(e.to_string()));
            None
        }
    };
    if let Some(tokens) = &tokens {
        println!("3. A Digipass-style token: serial, PIN, 8-digit code; replay rejected");
        record("digipass token", super::demo_steps::digipass(tokens).await);
        println!("4. CRAM: a challenge answered by the token");
        record("cram challenge", super::demo_steps::cram(tokens).await);
        println!("5. A transaction signed, and a tampered one rejected");
        record(
            "transaction signature",
            super::demo_steps::signature(tokens).await,
        );
        println!("6. Five wrong codes lock the token; an administrator unlocks it");
        record("lockout", super::demo_steps::lockout(tokens).await);
        println!("7. PANIC: every factor of the user revoked");
        record("panic", super::demo_steps::panic_button(conn, tokens).await);
    }
    outcomes
}

async fn manager_step(conn: &zbus::Connection) -> Outcome {
    let manager = match ManagerProxy::new(conn).await {
        Ok(m) => m,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    match manager.version().await {
        Ok(version) => println!("   keygated version {version}"),
        Err(e) => return classify(&e, "Manager.Version"),
    }
    match manager.list_devices().await {
        Ok(devices) => {
            println!("   {} device(s) visible to you", devices.len());
            Outcome::Passed
        }
        Err(e) => classify(&e, "Manager.ListDevices"),
    }
}
