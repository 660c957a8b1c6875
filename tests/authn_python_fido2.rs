//! Outside client: python-fido2 (pinned 2.2.1, `$KEYGATE_PYTHON`) drives `keygatectl virtual
//! serve --socket` through tests/interop/fido2_softkey.py. If the venv python or its `fido2`
//! package is missing, the test prints `skipped: ...` and passes, unless
//! `KEYGATE_REQUIRE_INTEROP=1` (CI), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod interop;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `keygatectl virtual serve`, stopped with SIGTERM on drop.
struct Served {
    child: Child,
    socket: PathBuf,
    status: serde_json::Value,
}

impl Served {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let socket = dir.join("key.sock");
        let mut child = Command::new(env!("CARGO_BIN_EXE_keygatectl"))
            .args(["--json", "virtual", "serve", "--socket"])
            .arg(&socket)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn keygatectl");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("status line");
        let status: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("status {line:?}: {e}"));
        assert_eq!(status["status"], "ready");
        assert_eq!(status["socket"], socket.display().to_string());
        assert!(socket.exists());
        Self {
            child,
            socket,
            status,
        }
    }

    fn run_python(&self, python: &Path, scenario: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/fido2_softkey.py");
        let out = Command::new(python)
            .arg(&script)
            .env("KEYGATE_SOCKET", &self.socket)
            .env("KEYGATE_SERVE_PID", self.child.id().to_string())
            .env("KEYGATE_AAGUID", self.status["aaguid"].as_str().unwrap())
            .env(
                "KEYGATE_ATTESTATION_CA",
                self.status["attestation_ca"].as_str().unwrap(),
            )
            .env("KEYGATE_SCENARIO", scenario)
            .output()
            .expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}");
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "python-fido2 scenario {scenario} failed"
        );
        assert!(stdout.contains("all ok"));
    }

    /// SIGTERM, then the process must exit 0 and remove its socket.
    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "keygatectl did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "exit status {status:?}");
        assert!(!self.socket.exists(), "socket not removed");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_fido2_drives_ctap21_soft_key() {
    let Some(python) = interop::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &["--attestation", "packed"]);
    assert_eq!(served.status["ctap"], "2.1");
    served.run_python(&python, "ctap2");
    served.stop();
}

#[test]
fn python_fido2_u2f_only_key_falls_back_to_ctap1() {
    let Some(python) = interop::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &["--ctap", "u2f"]);
    served.run_python(&python, "u2f");
    served.stop();
}

#[test]
fn python_fido2_manages_credentials_on_a_2_1_prototype_key() {
    let Some(python) = interop::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path(), &["--ctap", "2.1-pre"]);
    served.run_python(&python, "pre");
    served.stop();
}

#[test]
fn python_fido2_sees_upneeded_and_a_virtual_touch_approves() {
    let Some(python) = interop::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        dir.path(),
        &["--presence", "wait", "--presence-timeout", "20"],
    );
    served.run_python(&python, "touch");
    served.stop();
}
