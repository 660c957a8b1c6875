//! `keygatectl demo`, as README's first command: exit 0, the key lines, nothing left behind;
//! also as a non-root newcomer (uid 65534) when the tests run as root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;

use std::process::Command;

fn run_demo(setpriv: Option<&[&str]>) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    let exe = env!("CARGO_BIN_EXE_keygatectl");
    let mut cmd = match setpriv {
        Some(args) => {
            let mut c = Command::new("setpriv");
            c.args(args).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let out = cmd
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env_remove("KEYGATE_BUS_ADDRESS")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The demo removes its temporary directory and stops its processes.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "demo left {left:?}\n{text}");
    (out.status.success(), text)
}

fn check_lines(text: &str) {
    for line in [
        "keygated answers on the bus",
        "keygated version",
        "summary:",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(text.contains("0 failed"), "{text}");
    // Steps whose library has landed must have run; the daemon names what is missing.
    if !text.contains("not available yet: digipass token") {
        for line in [
            "the same code replayed: rejected",
            "the same challenge answered again: rejected",
            "server check: accepted",
            "the user signed 250.00 EUR: rejected",
            "wrong code 5/5",
            "PANIC for alice",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
    if !text.contains("not available yet: webauthn") {
        for line in [
            "registered credential",
            "alice authenticated at example.org",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }
}

#[test]
fn demo_runs_and_passes() {
    if bus::skip_without("dbus-daemon") {
        return;
    }
    let (ok, text) = run_demo(None);
    assert!(ok, "demo failed:\n{text}");
    check_lines(&text);
}

#[test]
fn demo_runs_as_a_newcomer() {
    if bus::skip_without("dbus-daemon") || bus::skip_without("setpriv") {
        return;
    }
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: not root, the demo test above already runs as a non-root user");
        return;
    }
    let (ok, text) = run_demo(Some(&["--reuid=65534", "--regid=65534", "--clear-groups"]));
    assert!(ok, "demo as uid 65534 failed:\n{text}");
    check_lines(&text);
    assert!(
        text.contains("uid 65534 has the admin and verifier roles"),
        "{text}"
    );
}

fn ctl(bus: &bus::Bus, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygatectl"));
    cmd.env("KEYGATE_BUS_ADDRESS", &bus.address).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(result: (bool, String, String)) -> String {
    assert!(result.0, "keygatectl failed: {}\n{}", result.1, result.2);
    result.1
}

/// Every keygatectl family against a daemon on a private bus, `--json` where it matters.
#[test]
fn keygatectl_commands() {
    if bus::skip_without("dbus-daemon") {
        return;
    }
    let bus = bus::Bus::session();
    let uid = nix::unistd::getuid().as_raw();
    let _daemon = bus::Daemon::start(
        &bus,
        &format!(
            "admin_uids = [{uid}]\nverifier_uids = [{uid}]\n[soft_tokens]\nkdf_memory_kib = 64\nkdf_passes = 1\n\
             [[relying_party]]\nid = \"example.org\"\nname = \"Ex\"\norigins = [\"https://example.org\"]\n"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = ok(ctl(&bus, &["virtual", "create", "--pin", "4711"], &[]));
    let path = path.trim();
    assert!(path.starts_with("/org/keygate/Keygate1/devices/virtual"));
    let devices: serde_json::Value =
        serde_json::from_str(&ok(ctl(&bus, &["--json", "devices"], &[]))).unwrap();
    assert_eq!(devices[0]["kind"], "virtual");
    let info: serde_json::Value =
        serde_json::from_str(&ok(ctl(&bus, &["--json", "info"], &[]))).unwrap();
    assert_eq!(info["Options"]["clientPin"], true);
    let retries: serde_json::Value =
        serde_json::from_str(&ok(ctl(&bus, &["--json", "pin", "retries"], &[]))).unwrap();
    assert_eq!(retries["retries"], 8);

    // Registration and authentication through the CLI, verified by the RelyingParty.
    let start: serde_json::Value = serde_json::from_str(&ok(ctl(
        &bus,
        &["--json", "rp", "start-registration", "example.org", "alice"],
        &[],
    )))
    .unwrap();
    let options = dir.path().join("reg.json");
    std::fs::write(&options, start["options"].to_string()).unwrap();
    let response = ok(ctl(
        &bus,
        &[
            "register",
            "--origin",
            "https://example.org",
            "--options",
            options.to_str().unwrap(),
        ],
        &[("KEYGATE_PIN", "4711")],
    ));
    let response_file = dir.path().join("resp.json");
    std::fs::write(&response_file, &response).unwrap();
    let registered = ok(ctl(
        &bus,
        &[
            "rp",
            "finish-registration",
            start["ceremony"].as_str().unwrap(),
            response_file.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(registered.contains("registered credential"), "{registered}");
    let start: serde_json::Value = serde_json::from_str(&ok(ctl(
        &bus,
        &[
            "--json",
            "rp",
            "start-authentication",
            "example.org",
            "alice",
        ],
        &[],
    )))
    .unwrap();
    std::fs::write(&options, start["options"].to_string()).unwrap();
    let assertion = ok(ctl(
        &bus,
        &[
            "assert",
            "--origin",
            "https://example.org",
            "--options",
            options.to_str().unwrap(),
        ],
        &[("KEYGATE_PIN", "4711")],
    ));
    std::fs::write(&response_file, &assertion).unwrap();
    let result = ok(ctl(
        &bus,
        &[
            "rp",
            "finish-authentication",
            start["ceremony"].as_str().unwrap(),
            response_file.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(result.contains("\"user\":\"alice\""), "{result}");
    // Ceremony IDs are hex, so they never read as an option; an old one that begins
    // with '-' still reaches the relying party instead of clap.
    let ceremony = start["ceremony"].as_str().unwrap();
    assert!(
        ceremony.len() == 32 && ceremony.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ceremony}"
    );
    let (success, _, stderr) = ctl(
        &bus,
        &[
            "rp",
            "finish-authentication",
            "-MUpb6Y0lPsFnZ1b8rA0ZQ",
            response_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        !success && stderr.contains("unknown or already used ceremony"),
        "{stderr}"
    );
    // A wrong origin: the DOMException name reaches the user.
    let (success, _, stderr) = ctl(
        &bus,
        &[
            "assert",
            "--origin",
            "https://example.com",
            "--options",
            options.to_str().unwrap(),
        ],
        &[("KEYGATE_PIN", "4711")],
    );
    assert!(!success && stderr.contains("SecurityError"), "{stderr}");

    // Tokens: create with a software PIN, code, verify, replay, PANIC.
    let created: serde_json::Value = serde_json::from_str(&ok(ctl(
        &bus,
        &[
            "--json",
            "token",
            "create",
            "--user",
            "alice",
            "--software-pin",
            "12345",
        ],
        &[],
    )))
    .unwrap();
    let serial = created["serial"].as_str().unwrap().to_owned();
    let code: serde_json::Value = serde_json::from_str(&ok(ctl(
        &bus,
        &["--json", "token", "code", &serial],
        &[("KEYGATE_PIN", "12345")],
    )))
    .unwrap();
    let code = code["code"].as_str().unwrap().to_owned();
    let verdict = ok(ctl(&bus, &["token", "verify", &serial, &code], &[]));
    assert!(verdict.starts_with("accepted"), "{verdict}");
    let (success, replay, _) = ctl(&bus, &["token", "verify", &serial, &code], &[]);
    assert!(
        !success && replay.starts_with("rejected (replay)"),
        "{replay}"
    );
    // PIN change, the token's own lock, and the helpdesk unlock, through the CLI.
    ok(ctl(
        &bus,
        &["token", "change-pin", &serial],
        &[("KEYGATE_PIN", "12345"), ("KEYGATE_NEW_PIN", "54321")],
    ));
    for _ in 0..5 {
        let (success, _, _) = ctl(
            &bus,
            &["token", "code", &serial],
            &[("KEYGATE_PIN", "12345")],
        );
        assert!(!success);
    }
    let (_, _, locked) = ctl(
        &bus,
        &["token", "code", &serial],
        &[("KEYGATE_PIN", "54321")],
    );
    assert!(locked.contains("unlock challenge"), "{locked}");
    let challenge: serde_json::Value = serde_json::from_str(&ok(ctl(
        &bus,
        &["--json", "token", "unlock-challenge", &serial],
        &[],
    )))
    .unwrap();
    let challenge = challenge["challenge"].as_str().unwrap().to_owned();
    let unlock_code = ok(ctl(
        &bus,
        &["token", "unlock-code", &serial, &challenge],
        &[],
    ));
    let unlocked = ok(ctl(
        &bus,
        &["token", "soft-unlock", &serial, unlock_code.trim()],
        &[("KEYGATE_NEW_PIN", "67890")],
    ));
    assert!(unlocked.contains("unlocked"), "{unlocked}");
    ok(ctl(
        &bus,
        &["token", "code", &serial],
        &[("KEYGATE_PIN", "67890")],
    ));
    let audit = ok(ctl(&bus, &["token", "audit", "--serial", &serial], &[]));
    let unlocked_line = audit
        .lines()
        .find(|l| l.contains("soft-unlock ") && l.contains(" ok "))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        unlocked_line.contains("user=alice") && unlocked_line.contains("Z  "),
        "{audit}"
    );
    assert!(!audit.contains(unlock_code.trim()), "{audit}");
    let qr = ok(ctl(
        &bus,
        &["token", "create", "--user", "bob", "--kind", "hotp"],
        &[],
    ));
    assert!(qr.contains("otpauth://hotp/") && qr.contains('█'), "{qr}");
    let panic = ok(ctl(&bus, &["token", "panic", "alice"], &[]));
    assert!(
        panic.contains("1 token(s), 1 other factor(s) revoked"),
        "{panic}"
    );

    // Enterprise attestation: refused by a key without it, turned on for one that has it.
    let (success, _, stderr) = ctl(
        &bus,
        &["enterprise-attestation", "-d", path],
        &[("KEYGATE_PIN", "4711")],
    );
    assert!(!success && stderr.contains("NotSupported"), "{stderr}");
    let ea_key = ok(ctl(
        &bus,
        &[
            "virtual",
            "create",
            "--pin",
            "4711",
            "--enterprise-rp-id",
            "corp.example",
        ],
        &[],
    ));
    let ea_key = ea_key.trim();
    let ep = |bus: &bus::Bus| {
        let info: serde_json::Value =
            serde_json::from_str(&ok(ctl(bus, &["--json", "info", "-d", ea_key], &[]))).unwrap();
        info["Options"]["ep"].clone()
    };
    assert_eq!(ep(&bus), false);
    ok(ctl(
        &bus,
        &["enterprise-attestation", "-d", ea_key],
        &[("KEYGATE_PIN", "4711")],
    ));
    assert_eq!(ep(&bus), true);
    ok(ctl(&bus, &["virtual", "remove", ea_key], &[]));

    ok(ctl(&bus, &["virtual", "remove", path], &[]));
    assert!(ok(ctl(&bus, &["devices"], &[])).contains("no security keys"));
    // Generated documentation.
    assert!(ok(ctl(&bus, &["man"], &[])).contains(".TH keygatectl"));
    assert!(ok(ctl(&bus, &["completions", "zsh"], &[])).contains("#compdef keygatectl"));
}
