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
    // Debian's `daemon` (1), `bin` (2) and `sys` (3) exist on every machine; dbus-daemon refuses
    // uids without a user-database entry.
    let admin = As {
        uid: 1,
        gid: 1,
        groups: vec![admin_group.gid],
    };
    let verifier = As {
        uid: 2,
        gid: 2,
        groups: vec![verifier_group.gid],
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
    virtual_rules(&bus, &nobody);

    assert!(daemon.is_running(), "{}", daemon.log_text());
    let status = daemon.stop();
    assert!(status.success());
    // Nothing secret in the log.
    let log = daemon.log_text();
    assert!(!log.contains("12345678"), "{log}");
}

/// Token rules inside keygated (the bus lets admin and verifier groups through to Tokens).
fn tokens_rules(bus: &Bus, nobody: &As, admin: &As, verifier: &As) {
    const KG_DENIED: &str = "org.keygate.Keygate1.Error.AccessDenied";
    let other = As {
        uid: 3,
        gid: 3,
        groups: vec![],
    };
    // Admin creates; verifier may not.
    let spec = r#"{"user":"erin","kind":"hotp","digits":8,"seed_hex":"3132333435363738393031323334353637383930","serial":"ACL-1"}"#;
    let call = busctl(
        bus,
        Some(verifier),
        bus::ROOT,
        TOKENS,
        &["Create", "s", spec],
    );
    assert!(
        !call.ok && call.stderr.contains("does not have the admin role"),
        "{call:?}"
    );
    let call = busctl(bus, Some(admin), bus::ROOT, TOKENS, &["Create", "s", spec]);
    assert!(call.ok, "admin Create: {call:?}");
    assert!(call.stdout.contains("ACL-1"), "{call:?}");
    // Verifier checks (RFC 4226 counter 0, 8 digits); admin may not check.
    let call = busctl(
        bus,
        Some(admin),
        bus::ROOT,
        TOKENS,
        &["VerifyCode", "ss", "ACL-1", "84755224"],
    );
    assert!(
        !call.ok && call.stderr.contains("does not have the verifier role"),
        "{call:?}"
    );
    let call = busctl(
        bus,
        Some(verifier),
        bus::ROOT,
        TOKENS,
        &["VerifyCode", "ss", "ACL-1", "84755224"],
    );
    assert!(
        call.ok && call.stdout.contains("true"),
        "verifier VerifyCode: {call:?}"
    );
    let call = busctl(
        bus,
        Some(verifier),
        bus::ROOT,
        TOKENS,
        &["Unlock", "s", "ACL-1"],
    );
    assert!(!call.ok && call.stderr.contains("admin role"), "{call:?}");
    let call = busctl(
        bus,
        Some(admin),
        bus::ROOT,
        TOKENS,
        &["Unlock", "s", "ACL-1"],
    );
    assert!(call.ok, "{call:?}");
    // The daemon's denial is a named D-Bus error (dbus-send prints the name).
    if !bus::skip_without("dbus-send") {
        let out = std::process::Command::new("setpriv")
            .args(verifier.setpriv())
            .args(["dbus-send", "--print-reply"])
            .arg(format!("--bus={}", bus.address))
            .args([
                &format!("--dest={}", bus::BUS_NAME),
                bus::ROOT,
                "org.keygate.Keygate1.Tokens.Delete",
                "string:ACL-1",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(KG_DENIED), "{text}");
    }

    // A software token for nobody: only nobody sees and uses it.
    let spec = r#"{"user":"nobody","kind":"totp","digits":8,"software":{"pin":"11223","owner_uid":65534}}"#;
    let call = busctl(bus, None, bus::ROOT, TOKENS, &["Create", "s", spec]);
    assert!(call.ok, "{call:?}");
    let serial = serde_json::from_str::<serde_json::Value>(&call.stdout).unwrap()["data"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let call = busctl(bus, Some(nobody), bus::ROOT, TOKENS, &["SoftList"]);
    assert!(call.ok && call.stdout.contains(&serial), "{call:?}");
    let call = busctl(
        bus,
        Some(nobody),
        bus::ROOT,
        TOKENS,
        &["SoftCode", "ss", &serial, "11223"],
    );
    assert!(call.ok, "{call:?}");
    let code: String = serde_json::from_str::<serde_json::Value>(&call.stdout).unwrap()["data"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(code.len(), 8);
    for who in [&other, admin, verifier] {
        let call = busctl(bus, Some(who), bus::ROOT, TOKENS, &["SoftList"]);
        assert!(
            call.ok && !call.stdout.contains(&serial),
            "{who:?} sees {serial}: {call:?}"
        );
        let call = busctl(
            bus,
            Some(who),
            bus::ROOT,
            TOKENS,
            &["SoftCode", "ss", &serial, "11223"],
        );
        assert!(
            !call.ok && call.stderr.contains("no software token"),
            "{who:?}: {call:?}"
        );
    }
    // Root (verifier) checks nobody's code.
    let call = busctl(
        bus,
        None,
        bus::ROOT,
        TOKENS,
        &["VerifyCode", "ss", &serial, &code],
    );
    assert!(call.ok && call.stdout.contains("true"), "{call:?}");

    // The unlock procedure: the owner asks for the challenge, only an admin computes codes.
    let call = busctl(
        bus,
        Some(nobody),
        bus::ROOT,
        TOKENS,
        &["SoftUnlockChallenge", "s", &serial],
    );
    assert!(
        !call.ok && call.stderr.contains("not locked"),
        "an unlocked token has no unlock challenge: {call:?}"
    );
    let call = busctl(
        bus,
        Some(&other),
        bus::ROOT,
        TOKENS,
        &["SoftUnlockChallenge", "s", &serial],
    );
    assert!(
        !call.ok && call.stderr.contains("no software token"),
        "{call:?}"
    );
    let unlock_code = ["SoftUnlockCode", "ss", serial.as_str(), "12345678"];
    let call = busctl(bus, Some(nobody), bus::ROOT, TOKENS, &unlock_code);
    assert!(!call.ok && call.stderr.contains(BUS_DENIED), "{call:?}");
    let call = busctl(bus, Some(verifier), bus::ROOT, TOKENS, &unlock_code);
    assert!(!call.ok && call.stderr.contains("admin role"), "{call:?}");
    let call = busctl(bus, Some(admin), bus::ROOT, TOKENS, &unlock_code);
    assert!(call.ok && call.stdout.contains("\"data\""), "{call:?}");
    // The audit trail is the administrators'.
    let audit = ["AuditLog", "ssu", "", "", "5"];
    let call = busctl(bus, Some(nobody), bus::ROOT, TOKENS, &audit);
    assert!(!call.ok && call.stderr.contains(BUS_DENIED), "{call:?}");
    let call = busctl(bus, Some(verifier), bus::ROOT, TOKENS, &audit);
    assert!(!call.ok && call.stderr.contains("admin role"), "{call:?}");
    let call = busctl(bus, Some(admin), bus::ROOT, TOKENS, &audit);
    assert!(
        call.ok && call.stdout.contains("soft-unlock-code"),
        "{call:?}"
    );

    // Nobody reads seeds: the list carries none, and a plain user cannot list at all.
    let call = busctl(bus, Some(admin), bus::ROOT, TOKENS, &["List", "s", ""]);
    assert!(call.ok && !call.stdout.contains("3132333435"), "{call:?}");
    let call = busctl(bus, Some(nobody), bus::ROOT, TOKENS, &["List", "s", ""]);
    assert!(!call.ok && call.stderr.contains(BUS_DENIED), "{call:?}");

    // RelyingParty: verifier reaches keygated (unknown RP is NotFound), admin configures.
    let call = busctl(
        bus,
        Some(verifier),
        bus::ROOT,
        RP,
        &["StartAuthentication", "ss", "nope.example", "erin"],
    );
    assert!(!call.ok && call.stderr.contains("nope.example"), "{call:?}");
    let rp = r#"{"id":"example.org","name":"Example","origins":["https://example.org"],"attestation":{"kind":"none"},"user_verification":"preferred"}"#;
    let call = busctl(bus, Some(verifier), bus::ROOT, RP, &["Configure", "s", rp]);
    assert!(!call.ok && call.stderr.contains("admin role"), "{call:?}");
    let call = busctl(bus, Some(admin), bus::ROOT, RP, &["Configure", "s", rp]);
    assert!(call.ok, "{call:?}");

    // PANIC by a verifier.
    let call = busctl(
        bus,
        Some(verifier),
        bus::ROOT,
        TOKENS,
        &["RevokeUser", "s", "erin"],
    );
    assert!(call.ok, "{call:?}");
}

/// Software keys belong to their creator: nobody else lists, reads, controls or removes them.
fn virtual_rules(bus: &Bus, owner: &As) {
    const VIRTUAL: &str = "org.keygate.Keygate1.Virtual";
    let other = As {
        uid: 3,
        gid: 3,
        groups: vec![],
    };
    let call = busctl(
        bus,
        Some(owner),
        bus::ROOT,
        VIRTUAL,
        &["Create", "s", r#"{"name":"mine"}"#],
    );
    assert!(call.ok, "{call:?}");
    let path = serde_json::from_str::<serde_json::Value>(&call.stdout).unwrap()["data"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let call = busctl(bus, Some(owner), bus::ROOT, MANAGER, &["ListDevices"]);
    assert!(call.ok && call.stdout.contains(&path), "{call:?}");
    let call = busctl(
        bus,
        Some(owner),
        &path,
        "org.freedesktop.DBus.Properties",
        &["Get", "ss", "org.keygate.Keygate1.Device", "Name"],
    );
    assert!(call.ok && call.stdout.contains("mine"), "{call:?}");

    let call = busctl(bus, Some(&other), bus::ROOT, MANAGER, &["ListDevices"]);
    assert!(call.ok && !call.stdout.contains(&path), "{call:?}");
    // Introspection of the devices node would enumerate every user's keys: the policy refuses it
    // to plain users, root still sees the node.
    let introspect = ["Introspect"];
    let devices_node = "/org/keygate/Keygate1/devices";
    let introspectable = "org.freedesktop.DBus.Introspectable";
    let call = busctl(bus, Some(&other), devices_node, introspectable, &introspect);
    assert!(!call.ok && call.stderr.contains(BUS_DENIED), "{call:?}");
    let call = busctl(bus, None, devices_node, introspectable, &introspect);
    let leaf = path.rsplit('/').next().unwrap();
    assert!(call.ok && call.stdout.contains(leaf), "{call:?}");
    let call = busctl(bus, Some(&other), bus::ROOT, VIRTUAL, &["List"]);
    assert!(call.ok && !call.stdout.contains(&path), "{call:?}");
    for method in ["Remove", "Approve", "PowerCycle"] {
        let call = busctl(bus, Some(&other), bus::ROOT, VIRTUAL, &[method, "o", &path]);
        assert!(
            !call.ok && call.stderr.contains("no software key"),
            "{method}: {call:?}"
        );
    }
    let call = busctl(
        bus,
        Some(&other),
        &path,
        "org.freedesktop.DBus.Properties",
        &["Get", "ss", "org.keygate.Keygate1.Device", "Name"],
    );
    assert!(
        !call.ok,
        "another uid read a software key's property: {call:?}"
    );
    let call = busctl(
        bus,
        Some(&other),
        &path,
        "org.keygate.Keygate1.Device",
        &["PinRetries"],
    );
    assert!(!call.ok && call.stderr.contains("no device"), "{call:?}");
    // Root sees every device (administration), the owner removes their key.
    let call = busctl(bus, None, bus::ROOT, MANAGER, &["ListDevices"]);
    assert!(call.ok && call.stdout.contains(&path), "{call:?}");
    let call = busctl(
        bus,
        Some(owner),
        bus::ROOT,
        VIRTUAL,
        &["Remove", "o", &path],
    );
    assert!(call.ok, "{call:?}");
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
