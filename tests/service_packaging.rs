//! Packaging: install.sh into a temporary root (DESTDIR), the unit verified by systemd-analyze,
//! its hardening score, the D-Bus policy file accepted by dbus-daemon, generated man page and
//! completions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;

use std::path::Path;
use std::process::Command;

fn bin_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_keygated"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn install_into_destdir() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(bus::project_dir().join("packaging/install.sh"))
        .arg("--bin-dir")
        .arg(bin_dir())
        .env("DESTDIR", root.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = root.path();
    for (path, mode) in [
        ("usr/libexec/keygated", 0o755),
        ("usr/bin/keygatectl", 0o755),
        ("usr/lib/systemd/system/keygated.service", 0o644),
        ("usr/share/dbus-1/system.d/org.keygate.Keygate1.conf", 0o644),
        (
            "usr/share/dbus-1/system-services/org.keygate.Keygate1.service",
            0o644,
        ),
        (
            "usr/share/dbus-1/interfaces/org.keygate.Keygate1.xml",
            0o644,
        ),
        ("usr/lib/udev/rules.d/70-keygate.rules", 0o644),
        ("usr/lib/sysusers.d/keygate.conf", 0o644),
        ("usr/lib/modules-load.d/keygate.conf", 0o644),
        ("usr/share/man/man1/keygatectl.1", 0o644),
        ("usr/share/bash-completion/completions/keygatectl", 0o644),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(r.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{path}");
        assert!(meta.len() > 0, "{path} is empty");
    }
    let man = std::fs::read_to_string(r.join("usr/share/man/man1/keygatectl.1")).unwrap();
    assert!(man.contains(".TH keygatectl"), "{man}");
    assert!(man.contains("demo"), "man page lists the demo");
    let bash = std::fs::read_to_string(r.join("usr/share/bash-completion/completions/keygatectl"))
        .unwrap();
    assert!(bash.contains("_keygatectl") && bash.contains("devices"));
    let modules = std::fs::read_to_string(r.join("usr/lib/modules-load.d/keygate.conf")).unwrap();
    assert!(modules.lines().any(|l| l.trim() == "uhid"));
    let udev = std::fs::read_to_string(r.join("usr/lib/udev/rules.d/70-keygate.rules")).unwrap();
    assert!(udev.contains("ENV{ID_SECURITY_TOKEN}==\"1\"") && udev.contains("GROUP=\"keygate\""));
    assert!(udev.contains("KERNEL==\"uhid\""));

    if bus::skip_without("systemd-analyze") {
        return;
    }
    // `verify` needs the unit's binary on the host paths it names: point ExecStart at the
    // staged binary.
    let unit = std::fs::read_to_string(r.join("usr/lib/systemd/system/keygated.service")).unwrap();
    let staged = r.join("usr/libexec/keygated");
    let unit = unit.replace("/usr/libexec/keygated", staged.to_str().unwrap());
    let check_dir = tempfile::tempdir().unwrap();
    let unit_path = check_dir.path().join("keygated.service");
    std::fs::write(&unit_path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=20"])
        .arg(&unit_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line: {text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(score <= 2.0, "exposure {score} > 2.0: {text}");
    assert!(out.status.success(), "{text}");
}

#[test]
fn policy_file_is_accepted_by_dbus_daemon() {
    if bus::skip_without("dbus-daemon") {
        return;
    }
    // A system-like bus with the shipped policy starts (dbus-daemon rejects malformed policy).
    let bus = bus::Bus::system_like();
    assert!(bus.address.starts_with("unix:path="), "{}", bus.address);
}
