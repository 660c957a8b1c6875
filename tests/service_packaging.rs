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
        ("usr/lib/udev/rules.d/72-keygate-virtual.rules", 0o644),
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

/// One `KEY{attr}OP"value"` of a udev rule line (udev(7), "Rules Files").
#[derive(Debug, Clone, PartialEq, Eq)]
struct UdevToken {
    key: String,
    attr: Option<String>,
    op: String,
    value: String,
}

/// Keys udev knows, with whether they match (`==`, `!=`) or assign (`=`, `+=`, `-=`, `:=`).
/// IMPORT and PROGRAM match but are written with `=` (udev treats it as `==`).
const MATCH_KEYS: &[&str] = &[
    "ACTION",
    "DEVPATH",
    "KERNEL",
    "KERNELS",
    "SUBSYSTEM",
    "SUBSYSTEMS",
    "DRIVER",
    "DRIVERS",
    "ATTRS",
    "TAGS",
    "RESULT",
    "CONST",
    "TEST",
];
const ASSIGN_KEYS: &[&str] = &[
    "OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "OPTIONS", "SYMLINK", "NAME",
];
const EITHER_KEYS: &[&str] = &["ENV", "TAG", "ATTR", "SYSCTL", "IMPORT", "PROGRAM"];

/// Parses one rule line into tokens, or explains why udev would reject it.
fn parse_udev_line(line: &str) -> Result<Vec<UdevToken>, String> {
    let mut tokens = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .ok_or_else(|| format!("no operator after {rest:?}"))?;
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let attr = if let Some(after) = rest.strip_prefix('{') {
            let close = after.find('}').ok_or("unclosed {")?;
            let attr = after[..close].to_owned();
            rest = &after[close + 1..];
            Some(attr)
        } else {
            None
        };
        let op = ["==", "!=", "+=", "-=", ":=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or_else(|| format!("{key}: no operator at {rest:?}"))?;
        rest = rest[op.len()..]
            .strip_prefix('"')
            .ok_or("value not quoted")?;
        let close = rest.find('"').ok_or("unterminated value")?;
        let value = rest[..close].to_owned();
        rest = rest[close + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
            if rest.is_empty() {
                return Err("trailing comma".into());
            }
        } else if !rest.is_empty() {
            return Err(format!("expected ',' before {rest:?}"));
        }
        let matching = op == "==" || op == "!=";
        let valid = if MATCH_KEYS.contains(&key) {
            matching
        } else if ASSIGN_KEYS.contains(&key) {
            !matching
        } else {
            EITHER_KEYS.contains(&key)
        };
        if !valid {
            return Err(format!("{key} cannot take {op}"));
        }
        let needs_attr = ["ENV", "ATTR", "ATTRS", "IMPORT", "SYSCTL"].contains(&key);
        if needs_attr != attr.is_some() && key != "IMPORT" {
            return Err(format!("{key}: attribute {attr:?}"));
        }
        tokens.push(UdevToken {
            key: key.to_owned(),
            attr,
            op: op.to_owned(),
            value,
        });
    }
    Ok(tokens)
}

/// Every rule of a rules file (comments and blank lines dropped), each line checked, and every
/// GOTO pointing at a LABEL of the same file.
fn parse_udev_file(path: &Path) -> Vec<Vec<UdevToken>> {
    let text = std::fs::read_to_string(path).unwrap();
    let rules: Vec<Vec<UdevToken>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_udev_line(l).unwrap_or_else(|e| panic!("{}: {l}: {e}", path.display())))
        .collect();
    let labels: Vec<&str> = rules
        .iter()
        .flatten()
        .filter(|t| t.key == "LABEL")
        .map(|t| t.value.as_str())
        .collect();
    for goto in rules.iter().flatten().filter(|t| t.key == "GOTO") {
        assert!(
            labels.contains(&goto.value.as_str()),
            "GOTO {goto:?} without LABEL"
        );
    }
    rules
}

/// fnmatch(3) as udev uses it: `*`, `?`, `[a-z]`, `[!0-9]`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some((&c, text_rest)) = text.split_first() else {
                return false;
            };
            let (negate, class) = match rest.split_first() {
                Some((b'!', class)) => (true, class),
                _ => (false, rest),
            };
            let close = class.iter().position(|b| *b == b']').unwrap();
            let (set, after) = (&class[..close], &class[close + 1..]);
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(after, text_rest)
        }
        Some((&p, rest)) => text.first() == Some(&p) && glob(rest, &text[1..]),
    }
}

/// What the rules decided for one hidraw node.
#[derive(Debug, Default, PartialEq, Eq)]
struct NodeAccess {
    owner: Option<String>,
    group: Option<String>,
    mode: Option<String>,
    tags: std::collections::BTreeSet<String>,
}

/// A small udev: runs `rules` over an "add" event of a device with `env` (its own properties,
/// DEVPATH and SUBSYSTEM included) whose parent has `parent`. Covers the keys our rules use.
fn run_udev(
    rules: &[Vec<UdevToken>],
    env: &mut std::collections::HashMap<String, String>,
    parent: &std::collections::HashMap<String, String>,
    access: &mut NodeAccess,
) {
    let substitute = |value: &str, env: &std::collections::HashMap<String, String>| {
        let mut out = value.to_owned();
        while let Some(start) = out.find("$env{") {
            let end = start + out[start..].find('}').unwrap();
            let name = out[start + 5..end].to_owned();
            out.replace_range(start..=end, env.get(&name).map_or("", String::as_str));
        }
        out
    };
    let is_match = |t: &UdevToken| t.op == "==" || t.op == "!=" || t.key == "IMPORT";
    let mut index = 0;
    while index < rules.len() {
        let rule = &rules[index];
        index += 1;
        // udev checks every match of a rule before it applies any assignment.
        let mut matched = true;
        for token in rule.iter().filter(|t| is_match(t)) {
            let current = match (token.key.as_str(), &token.attr) {
                ("ACTION", _) => "add".to_owned(),
                ("DEVPATH" | "SUBSYSTEM" | "KERNEL", _) => {
                    env.get(&token.key).cloned().unwrap_or_default()
                }
                ("ENV", Some(name)) => env.get(name).cloned().unwrap_or_default(),
                ("IMPORT", Some(kind)) => {
                    assert_eq!(kind, "parent", "only IMPORT{{parent}} is simulated");
                    let imported: Vec<_> = parent
                        .iter()
                        .filter(|(key, _)| glob(token.value.as_bytes(), key.as_bytes()))
                        .collect();
                    for (key, value) in &imported {
                        env.insert((*key).clone(), (*value).clone());
                    }
                    matched &= !imported.is_empty();
                    continue;
                }
                (key, _) => panic!("{key} is not simulated"),
            };
            matched &= glob(token.value.as_bytes(), current.as_bytes()) == (token.op == "==");
            if !matched {
                break;
            }
        }
        if !matched {
            continue;
        }
        for token in rule.iter().filter(|t| !is_match(t)) {
            let value = substitute(&token.value, env);
            match (token.key.as_str(), &token.attr) {
                ("LABEL", _) => {}
                ("GOTO", _) => {
                    index = rules
                        .iter()
                        .position(|r| r.iter().any(|t| t.key == "LABEL" && t.value == value))
                        .unwrap();
                }
                ("ENV", Some(name)) => {
                    env.insert(name.clone(), value);
                }
                ("OWNER", _) => access.owner = Some(value),
                ("GROUP", _) => access.group = Some(value),
                ("MODE", _) => access.mode = Some(value),
                ("TAG", _) if token.op == "-=" => {
                    access.tags.remove(&value);
                }
                ("TAG", _) => {
                    access.tags.insert(value);
                }
                (key, _) => panic!("{key} is not simulated"),
            }
        }
    }
}

/// The hidraw node's access after 70-keygate.rules, systemd's 70-uaccess.rules (which tags
/// every ID_SECURITY_TOKEN node "uaccess") and 72-keygate-virtual.rules.
fn hidraw_access(devpath: &str, parent: &[(&str, &str)]) -> NodeAccess {
    let udev = bus::project_dir().join("udev");
    let mut env: std::collections::HashMap<String, String> = [
        ("DEVPATH", devpath),
        ("SUBSYSTEM", "hidraw"),
        ("KERNEL", "hidraw0"),
        ("ID_SECURITY_TOKEN", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let parent = parent
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut access = NodeAccess::default();
    run_udev(
        &parse_udev_file(&udev.join("70-keygate.rules")),
        &mut env,
        &parent,
        &mut access,
    );
    access.tags.insert("uaccess".into());
    run_udev(
        &parse_udev_file(&udev.join("72-keygate-virtual.rules")),
        &mut env,
        &parent,
        &mut access,
    );
    access
}

#[test]
fn udev_rules_parse_and_give_virtual_keys_to_their_owner() {
    let udev = bus::project_dir().join("udev");
    let mut names: Vec<String> = std::fs::read_dir(&udev)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rules"))
        .collect();
    names.sort();
    assert_eq!(names, ["70-keygate.rules", "72-keygate-virtual.rules"]);
    for name in &names {
        parse_udev_file(&udev.join(name));
    }
    // After systemd's 70-uaccess.rules adds "uaccess", before 73-seat-late.rules applies it.
    let virtual_rules = "72-keygate-virtual.rules";
    assert!("70-uaccess.rules" < virtual_rules && virtual_rules < "73-seat-late.rules");
    // One marker: the string in the rule is the constant keygated writes into HID_PHYS.
    let text = std::fs::read_to_string(udev.join(virtual_rules)).unwrap();
    let marker = keygate::hid::uhid::KEYGATE_VIRTUAL_PHYS;
    assert!(
        text.contains(&format!("ENV{{HID_PHYS}}!=\"{marker}\"")),
        "{virtual_rules} does not match HID_PHYS {marker:?}"
    );

    let uhid = "/devices/virtual/misc/uhid/0003:1209:F1D0.0001/hidraw/hidraw0";
    let ours = hidraw_access(uhid, &[("HID_PHYS", marker), ("HID_UNIQ", "1000")]);
    assert_eq!(ours.owner.as_deref(), Some("1000"));
    assert_eq!(ours.group.as_deref(), Some("root"));
    assert_eq!(ours.mode.as_deref(), Some("0600"));
    assert!(!ours.tags.contains("uaccess"), "{ours:?}");

    // Not ours: a real key, a uhid device of someone else, a USB device claiming the marker,
    // a marker with a uniq that is not a uid. They keep the keygate group and the seat's ACL.
    let shared = NodeAccess {
        owner: None,
        group: Some("keygate".into()),
        mode: Some("0660".into()),
        tags: ["uaccess".to_owned()].into(),
    };
    let usb =
        "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.1/0003:1050:0407.0002/hidraw/hidraw0";
    for (devpath, phys, uniq) in [
        (usb, "usb-0000:00:14.0-2/input1", ""),
        (uhid, "keygate-uhid", "1000"),
        (usb, marker, "1000"),
        (uhid, marker, "1000,root"),
        (uhid, marker, "0,1000"),
        (uhid, marker, ""),
    ] {
        assert_eq!(
            hidraw_access(devpath, &[("HID_PHYS", phys), ("HID_UNIQ", uniq)]),
            shared,
            "{devpath} {phys} {uniq:?}"
        );
    }

    // The real parser, where this machine's udev has one (`udevadm verify`, systemd >= 253).
    if bus::have("udevadm") {
        let out = Command::new("udevadm")
            .arg("verify")
            .args(names.iter().map(|n| udev.join(n)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("Unknown command") || stderr.contains("unknown command") {
            eprintln!("udevadm has no verify here; checked with the structural parser only");
        } else {
            assert!(out.status.success(), "udevadm verify: {stderr}");
        }
    }
}

#[test]
fn glob_is_fnmatch() {
    assert!(glob(b"*[!0-9]*", b"10a0"));
    assert!(!glob(b"*[!0-9]*", b"1000"));
    assert!(glob(
        b"/devices/virtual/misc/uhid/*",
        b"/devices/virtual/misc/uhid/x/hidraw/hidraw0"
    ));
    assert!(!glob(b"keygate-virtual", b"keygate-virtual2"));
    assert!(glob(b"HID_*", b"HID_PHYS") && glob(b"h?d", b"hid") && !glob(b"", b"x"));
}
