//! The outside clients the interop tests run: the venv python with python-fido2, and the
//! scripts in this directory.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The python of `$KEYGATE_PYTHON` with python-fido2 2.2.1 and cryptography importable, or
/// None (after printing why) when the test must skip; with `KEYGATE_REQUIRE_INTEROP=1` a missing
/// python-fido2 fails the test instead.
pub fn python() -> Option<PathBuf> {
    let required = std::env::var("KEYGATE_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let skip = |why: &str| {
        assert!(!required, "KEYGATE_REQUIRE_INTEROP=1 but {why}");
        println!("skipped: {why}");
        None
    };
    let Some(python) = std::env::var_os("KEYGATE_PYTHON").map(PathBuf::from) else {
        return skip("python-fido2 not found (KEYGATE_PYTHON unset)");
    };
    let probe = Command::new(&python)
        .args(["-c", "import importlib.metadata as m, cryptography, fido2; v = m.version('fido2'); assert v == '2.2.1', v"])
        .output();
    match probe {
        Ok(out) if out.status.success() => Some(python),
        Ok(out) => skip(&format!(
            "python-fido2 2.2.1 not found: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => skip(&format!(
            "python-fido2 not found ({}: {e})",
            python.display()
        )),
    }
}

/// Runs `tests/interop/SCRIPT ARGS...` with `input` as JSON on stdin; its JSON answer.
pub fn run_json(python: &Path, script: &str, args: &[&str], input: &Value) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let mut child = Command::new(python)
        .arg(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `tests/interop/webauthn_oracle.py COMMAND` with `request` as JSON on stdin; its JSON
/// answer.
pub fn webauthn_oracle(python: &Path, command: &str, request: &Value) -> Value {
    run_json(python, "webauthn_oracle.py", &[command], request)
}
