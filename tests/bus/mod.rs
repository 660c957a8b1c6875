//! Test harness: a private dbus-daemon (session-like, or system-like enforcing the shipped policy
//! file) and keygated on a temporary state dir. Everything is killed and removed on drop.
//!
//! Recipe: ../shared/tools/dbus-test-bus (our own copy of what we use).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod webauthn;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Well-known name of the daemon.
pub const BUS_NAME: &str = "org.keygate.Keygate1";
/// Root object.
pub const ROOT: &str = "/org/keygate/Keygate1";

/// The system-like bus configuration (stock system default policy; the project's policy file
/// is copied into the include dir).
const SYSTEM_LIKE_CONF: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=@SOCKET@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <includedir>@POLICY_DIR@</includedir>
</busconfig>
"#;

/// Path of the project's source tree.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether a tool is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Skip (or fail under KEYGATE_REQUIRE_INTEROP=1) when a tool is missing. Returns true to skip.
pub fn skip_without(tool: &str) -> bool {
    if have(tool) {
        return false;
    }
    if std::env::var("KEYGATE_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("{tool} not found and KEYGATE_REQUIRE_INTEROP=1");
    }
    eprintln!("skipped: {tool} not found");
    true
}

/// A private dbus-daemon.
pub struct Bus {
    /// Its address.
    pub address: String,
    pid: i32,
    /// Temp dir holding its config and socket.
    pub dir: tempfile::TempDir,
}

impl Bus {
    /// A session-like bus: everything allowed between everybody.
    pub fn session() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("dbus-daemon")
            .args([
                "--session",
                "--fork",
                "--nopidfile",
                "--print-address=1",
                "--print-pid=1",
            ])
            .stderr(Stdio::null())
            .output()
            .expect("dbus-daemon");
        Self::from_output(&out, dir)
    }

    /// A system-like bus enforcing `dbus/org.keygate.Keygate1.conf`; its socket is reachable
    /// by every uid.
    pub fn system_like() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let policy_dir = dir.path().join("system.d");
        std::fs::create_dir(&policy_dir).unwrap();
        std::fs::copy(
            project_dir().join("dbus/org.keygate.Keygate1.conf"),
            policy_dir.join("org.keygate.Keygate1.conf"),
        )
        .unwrap();
        let socket = dir.path().join("system_bus_socket");
        let conf = SYSTEM_LIKE_CONF
            .replace("@SOCKET@", socket.to_str().unwrap())
            .replace("@POLICY_DIR@", policy_dir.to_str().unwrap());
        let conf_path = dir.path().join("system-like.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let out = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .args([
                "--fork",
                "--nopidfile",
                "--print-address=1",
                "--print-pid=1",
            ])
            .stderr(Stdio::null())
            .output()
            .expect("dbus-daemon");
        Self::from_output(&out, dir)
    }

    fn from_output(out: &Output, dir: tempfile::TempDir) -> Self {
        assert!(out.status.success(), "dbus-daemon failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let address = lines.next().unwrap().trim().to_owned();
        let pid: i32 = lines.next().unwrap().trim().parse().unwrap();
        Self { address, pid, dir }
    }

    /// A zbus connection to this bus (as the test's own uid).
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .build()
            .await
            .unwrap()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // SAFETY-free: kill(2) through the nix crate.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// keygated running on a [`Bus`] with a temporary state dir.
pub struct Daemon {
    child: Option<Child>,
    /// State dir (kept across restarts when reused).
    pub state_dir: PathBuf,
    /// Log file of the daemon (stderr).
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
    /// Time from spawn until the name was owned.
    pub ready_after: Duration,
}

impl Daemon {
    /// Starts keygated with `config` (TOML) on a fresh temp state dir and waits for its name.
    pub fn start(bus: &Bus, config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let mut daemon = Self::start_in(bus, config, &state_dir);
        daemon._dir = Some(dir);
        daemon
    }

    /// Starts keygated with `config` on `state_dir` (which may hold earlier state).
    pub fn start_in(bus: &Bus, config: &str, state_dir: &Path) -> Self {
        let parent = state_dir.parent().unwrap().to_path_buf();
        std::fs::create_dir_all(&parent).unwrap();
        let config_path = parent.join("keygated.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = parent.join(format!("keygated-{}.log", std::process::id()));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let started = Instant::now();
        let child = Command::new(env!("CARGO_BIN_EXE_keygated"))
            .arg("--bus-address")
            .arg(&bus.address)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--config")
            .arg(&config_path)
            .env("KEYGATE_LOG", "info")
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUNTIME_DIRECTORY")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn keygated");
        let mut daemon = Self {
            child: Some(child),
            state_dir: state_dir.to_path_buf(),
            log,
            _dir: None,
            ready_after: Duration::ZERO,
        };
        daemon.wait_for_name(bus, started);
        daemon
    }

    fn wait_for_name(&mut self, bus: &Bus, started: Instant) {
        let deadline = started + Duration::from_secs(20);
        loop {
            let out = Command::new("busctl")
                .arg(format!("--address={}", bus.address))
                .args([
                    "call",
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "NameHasOwner",
                    "s",
                    BUS_NAME,
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).trim() == "b true" {
                self.ready_after = started.elapsed();
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("keygated exited early ({status}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "keygated did not take its name: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends SIGTERM and waits (up to 10 s) for a clean exit; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// An identity to run a command as (through `setpriv`).
#[derive(Debug, Clone)]
pub struct As {
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl As {
    /// uid/gid 65534 (nobody), no supplementary groups.
    pub fn nobody() -> Self {
        Self {
            uid: 65534,
            gid: 65534,
            groups: vec![],
        }
    }

    /// The setpriv prefix.
    pub fn setpriv(&self) -> Vec<String> {
        let mut args = vec![
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
        ];
        if self.groups.is_empty() {
            args.push("--clear-groups".into());
        } else {
            let list: Vec<String> = self.groups.iter().map(u32::to_string).collect();
            args.push(format!("--groups={}", list.join(",")));
        }
        args
    }
}

/// Result of a busctl call.
#[derive(Debug)]
pub struct Call {
    /// Exit success.
    pub ok: bool,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// `busctl --address=ADDR call org.keygate.Keygate1 PATH IFACE METHOD [SIG ARGS...]`, optionally
/// as another identity.
pub fn busctl(bus: &Bus, who: Option<&As>, path: &str, iface: &str, args: &[&str]) -> Call {
    let mut cmd = match who {
        Some(who) => {
            let mut c = Command::new("setpriv");
            c.args(who.setpriv()).arg("busctl");
            c
        }
        None => Command::new("busctl"),
    };
    cmd.arg(format!("--address={}", bus.address))
        .args(["--json=short", "call", BUS_NAME, path, iface])
        .args(args);
    let out = cmd.output().expect("busctl");
    Call {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A group created for a test (`groupadd -f`), removed on drop when the test created it.
pub struct TempGroup {
    /// Name.
    pub name: String,
    /// gid.
    pub gid: u32,
    created: bool,
}

impl TempGroup {
    /// Creates (or reuses) `name`.
    pub fn new(name: &str) -> Self {
        let existed = nix::unistd::Group::from_name(name).unwrap().is_some();
        if !existed {
            let status = Command::new("groupadd")
                .args(["-f", name])
                .status()
                .unwrap();
            assert!(status.success(), "groupadd {name}");
        }
        let gid = nix::unistd::Group::from_name(name)
            .unwrap()
            .expect("group exists")
            .gid
            .as_raw();
        Self {
            name: name.into(),
            gid,
            created: !existed,
        }
    }
}

impl Drop for TempGroup {
    fn drop(&mut self) {
        if self.created {
            let _ = Command::new("groupdel").arg(&self.name).status();
        }
    }
}

/// Writes `text` to a new file in `dir`.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}
