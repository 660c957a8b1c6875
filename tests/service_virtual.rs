//! keygated's software keys on their other transports, on a real private dbus-daemon: the
//! socket under the runtime directory (our `Device` driver, python-fido2 and the SO_PEERCRED
//! gate against other uids), the descriptor from `Virtual.Connect`, uhid (on a host where
//! /dev/uhid is usable; elsewhere the named error), and `keygatectl virtual create --socket`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;
mod hidvm;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bus::{As, Bus, Daemon, busctl};
use keygate::ctap2::commands::{get_assertion, make_credential};
use keygate::ctap2::{
    AuthenticatorData, CoseKey, PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
    PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};
use keygate::device::{Device, DeviceOptions};
use keygate::hid::ReportPipe;
use keygate::hid::socket::SeqpacketPipe;
use keygate::service::client::{ManagerProxy, VirtualProxy, error_name};
use tokio_util::sync::CancellationToken;

const VIRTUAL: &str = "org.keygate.Keygate1.Virtual";
const RP: &str = "virtual.keygate.test";
/// The system python (stdlib only), which every uid may run (a pyenv shim may not be).
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

fn skip() -> bool {
    bus::skip_without("dbus-daemon") || bus::skip_without("busctl")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

fn verify(key: &CoseKey, message: &[u8], der_signature: &[u8]) {
    use p256::ecdsa::signature::Verifier;
    let key = p256::ecdsa::VerifyingKey::from(key.to_p256().unwrap());
    let signature = p256::ecdsa::Signature::from_der(der_signature).unwrap();
    key.verify(message, &signature)
        .expect("assertion signature verifies");
}

/// Our host driver on `pipe`: MakeCredential (discoverable), then GetAssertion with that credential, its
/// signature verified with the attested public key. Returns the credential id.
/// `user` names the user (a discoverable credential replaces one of the same user).
async fn drive(pipe: impl ReportPipe, user: &str) -> Vec<u8> {
    let pipe: Box<dyn ReportPipe> = Box::new(pipe);
    let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    assert!(device.is_ctap2());
    let none = CancellationToken::new();
    let request = make_credential::Request {
        client_data_hash: sha256(b"virtual make credential").to_vec(),
        rp: PublicKeyCredentialRpEntity {
            id: RP.into(),
            name: None,
        },
        user: PublicKeyCredentialUserEntity {
            id: user.as_bytes().to_vec(),
            name: Some(user.into()),
            display_name: None,
        },
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".into(),
            alg: -7,
        }],
        exclude_list: None,
        extensions: None,
        // Discoverable, so that the key keeps it and StoredCredentials shows it.
        options: Some([("rk".to_owned(), true)].into()),
        ..Default::default()
    };
    let reply = device
        .make_credential(&request, &none, &mut |_| {})
        .await
        .unwrap();
    let attested = AuthenticatorData::parse(&reply.auth_data)
        .unwrap()
        .attested_credential_data
        .expect("attested credential data");
    let cdh = sha256(b"virtual get assertion");
    let request = get_assertion::Request {
        rp_id: RP.into(),
        client_data_hash: cdh.to_vec(),
        allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(
            attested.credential_id.clone(),
        )]),
        ..Default::default()
    };
    let reply = device
        .get_assertion(&request, &none, &mut |_| {})
        .await
        .unwrap();
    verify(
        &attested.credential_public_key,
        &[reply.auth_data.as_slice(), &cdh].concat(),
        &reply.signature,
    );
    attested.credential_id
}

fn b64url(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// The venv python with python-fido2 2.2.1 (`$KEYGATE_PYTHON`), or None when the test must
/// skip that part (failing instead under KEYGATE_REQUIRE_INTEROP=1).
fn fido2_python() -> Option<PathBuf> {
    let required = std::env::var("KEYGATE_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
    let python = std::env::var_os("KEYGATE_PYTHON").map(PathBuf::from);
    let ok = python.as_ref().is_some_and(|p| {
        Command::new(p)
            .args([
                "-c",
                "import importlib.metadata as m; assert m.version('fido2') == '2.2.1'",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if ok {
        return python;
    }
    assert!(
        !required,
        "KEYGATE_REQUIRE_INTEROP=1 but python-fido2 2.2.1 not found"
    );
    println!("skipped: python-fido2 not found (KEYGATE_PYTHON)");
    None
}

/// python-fido2 registers (a discoverable credential) and signs in through
/// `tests/interop/fido2_virtual.py`; returns the credential id it made (base64url).
fn python_fido2(python: &Path, args: &[&str], stdin: Stdio) -> String {
    let script = bus::project_dir().join("tests/interop/fido2_virtual.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .stdin(stdin)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "fido2_virtual.py {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("ok register") && text.contains("ok authenticate"),
        "{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("credential "))
        .unwrap()
        .trim()
        .to_owned()
}

async fn stored_ids(virt: &VirtualProxy<'_>, path: &zbus::ObjectPath<'_>) -> Vec<String> {
    let json = virt.stored_credentials(path).await.unwrap();
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["credential_id"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_and_descriptor_serve_one_key() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let mut daemon = Daemon::start(&bus, "");
    let conn = bus.connect().await;
    let virt = VirtualProxy::new(&conn).await.unwrap();

    // A socket left behind by an earlier keygated killed with SIGKILL.
    let dir = daemon.state_dir.join("run").join("virtual");
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("virtual42.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());

    // keygatectl creates the key and prints its socket.
    let out = Command::new(env!("CARGO_BIN_EXE_keygatectl"))
        .arg(format!("--bus-address={}", bus.address))
        .args([
            "--json",
            "virtual",
            "create",
            "--socket",
            "--name",
            "socket key",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = zbus::ObjectPath::try_from(created["path"].as_str().unwrap().to_owned()).unwrap();
    let socket = PathBuf::from(created["socket"].as_str().unwrap());
    assert_eq!(virt.socket(&path).await.unwrap(), socket.to_str().unwrap());
    let id = path.as_str().rsplit('/').next().unwrap();
    assert_eq!(socket, dir.join(format!("{id}.sock")));
    assert!(!stale.exists(), "stale socket not swept");
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    assert_eq!(mode(&socket), 0o666, "SO_PEERCRED is the gate");
    assert_eq!(mode(&dir), 0o711);
    let text = Command::new(env!("CARGO_BIN_EXE_keygatectl"))
        .arg(format!("--bus-address={}", bus.address))
        .args(["virtual", "create", "--socket"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("socket: /"), "{text}");

    // Our driver through the socket, then through a descriptor from Connect: one key.
    let by_socket = drive(SeqpacketPipe::connect(&socket).await.unwrap(), "by socket").await;
    let fd = virt.connect(&path).await.unwrap();
    let by_fd = drive(
        SeqpacketPipe::from_fd(std::os::fd::OwnedFd::from(fd)).unwrap(),
        "by fd",
    )
    .await;
    assert_ne!(by_socket, by_fd);
    let stored = stored_ids(&virt, &path).await;
    for made in [&by_socket, &by_fd] {
        assert!(stored.contains(&b64url(made)), "{stored:?}");
    }

    // python-fido2 through the socket and through a Connect descriptor as its stdin.
    if let Some(python) = fido2_python() {
        let via_socket = python_fido2(
            &python,
            &["socket", socket.to_str().unwrap()],
            Stdio::null(),
        );
        let fd = virt.connect(&path).await.unwrap();
        let via_fd = python_fido2(
            &python,
            &["stdin"],
            Stdio::from(std::os::fd::OwnedFd::from(fd)),
        );
        let stored = stored_ids(&virt, &path).await;
        assert!(
            stored.contains(&via_socket) && stored.contains(&via_fd),
            "{stored:?}"
        );
    }

    // A key without a socket has none to show; Connect still works for it.
    let plain = virt.create(r#"{"name":"plain"}"#).await.unwrap();
    let err = virt.socket(&plain).await.unwrap_err();
    assert_eq!(
        error_name(&err).as_deref(),
        Some("org.keygate.Keygate1.Error.NotAvailable"),
        "{err:?}"
    );
    let fd = virt.connect(&plain).await.unwrap();
    drive(
        SeqpacketPipe::from_fd(std::os::fd::OwnedFd::from(fd)).unwrap(),
        "plain",
    )
    .await;

    // Remove unlinks the socket; the key is gone for Connect and Socket.
    virt.remove(&path).await.unwrap();
    assert!(!socket.exists(), "socket left behind after Remove");
    for err in [
        virt.connect(&path).await.map(|_| ()).unwrap_err(),
        virt.socket(&path).await.map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(
            error_name(&err).as_deref(),
            Some("org.keygate.Keygate1.Error.NotFound"),
            "{err:?}"
        );
    }

    // Stopping keygated unlinks the sockets of the keys it still holds.
    let still = virt.create(r#"{"socket":true}"#).await.unwrap();
    let still_socket = PathBuf::from(virt.socket(&still).await.unwrap());
    assert!(still_socket.exists());
    let status = daemon.stop();
    assert!(status.success(), "{}", daemon.log_text());
    assert!(!still_socket.exists(), "socket left behind after SIGTERM");
}

/// Runs `tests/interop/seqpacket_probe.py` with the system python, as `who` (root if None).
fn probe(who: Option<&As>, socket: &Path) -> String {
    let source = include_str!("interop/seqpacket_probe.py");
    let mut cmd = match who {
        Some(who) => {
            let mut c = Command::new("setpriv");
            c.args(who.setpriv()).arg(SYSTEM_PYTHON);
            c
        }
        None => Command::new(SYSTEM_PYTHON),
    };
    let out = cmd.arg("-c").arg(source).arg(socket).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The text of a log without its terminal colours.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

fn busctl_data(call: &bus::Call) -> String {
    assert!(call.ok, "{call:?}");
    serde_json::from_str::<serde_json::Value>(&call.stdout).unwrap()["data"][0]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The socket admits its owner and root only (SO_PEERCRED), and Connect its owner and root.
#[test]
fn other_uids_are_refused() {
    if skip() || bus::skip_without("setpriv") || bus::skip_without(SYSTEM_PYTHON) {
        return;
    }
    if !nix::unistd::getuid().is_root() {
        assert!(
            std::env::var("KEYGATE_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "the other-uid tests need root (setpriv to other uids)"
        );
        eprintln!("skipped: not root");
        return;
    }
    let bus = Bus::system_like();
    let daemon = Daemon::start(&bus, "");
    // Debian's `bin` (2) and `sys` (3): dbus-daemon refuses uids without a user entry.
    let owner = As {
        uid: 2,
        gid: 2,
        groups: vec![],
    };
    let other = As {
        uid: 3,
        gid: 3,
        groups: vec![],
    };
    // Let other uids walk to the socket, so that the SO_PEERCRED check is what stops them.
    for dir in [daemon.state_dir.parent().unwrap(), &daemon.state_dir] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let path = busctl_data(&busctl(
        &bus,
        Some(&owner),
        bus::ROOT,
        VIRTUAL,
        &["Create", "s", r#"{"socket":true}"#],
    ));
    let socket = PathBuf::from(busctl_data(&busctl(
        &bus,
        Some(&owner),
        bus::ROOT,
        VIRTUAL,
        &["Socket", "o", &path],
    )));

    assert_eq!(probe(Some(&owner), &socket), "answered");
    assert_eq!(probe(Some(&other), &socket), "closed");
    assert_eq!(probe(Some(&As::nobody()), &socket), "closed");
    assert_eq!(probe(None, &socket), "answered", "root may connect");
    assert_eq!(probe(Some(&owner), &socket), "answered", "still serving");
    let log = strip_ansi(&daemon.log_text());
    assert!(
        log.contains("refused a connection") && log.contains("peer_uid=3"),
        "{log}"
    );

    for method in ["Socket", "Connect"] {
        let call = busctl(
            &bus,
            Some(&other),
            bus::ROOT,
            VIRTUAL,
            &[method, "o", &path],
        );
        assert!(
            !call.ok && call.stderr.contains("no software key"),
            "{method} as another uid: {call:?}"
        );
    }
    let call = busctl(
        &bus,
        Some(&owner),
        bus::ROOT,
        VIRTUAL,
        &["Connect", "o", &path],
    );
    assert!(call.ok, "{call:?}");
    assert!(call.stdout.contains("\"h\""), "{call:?}");

    let call = busctl(
        &bus,
        Some(&owner),
        bus::ROOT,
        VIRTUAL,
        &["Remove", "o", &path],
    );
    assert!(call.ok, "{call:?}");
    assert!(!socket.exists());
}

/// Set in the hidvm guest: there /dev/uhid must work.
const REQUIRE_UHID_ENV: &str = "KEYGATE_REQUIRE_UHID";

/// The hidraw node of a uhid device marked as ours for `uid`, from sysfs.
fn marked_hidraw(uid: u32) -> Option<PathBuf> {
    let sysfs = Path::new(keygate::hid::hidraw::SYSFS_CLASS_HIDRAW);
    std::fs::read_dir(sysfs).ok()?.flatten().find_map(|entry| {
        let node = Path::new("/dev").join(entry.file_name());
        let props = keygate::hid::hidraw::hid_properties(sysfs, &node).ok()?;
        (props.get("HID_PHYS").map(String::as_str)
            == Some(keygate::hid::uhid::KEYGATE_VIRTUAL_PHYS)
            && props.get("HID_UNIQ") == Some(&uid.to_string()))
        .then_some(node)
    })
}

/// `"uhid": true`: on a host where keygated may write /dev/uhid, the key appears to the kernel
/// marked with its owner, is not listed a second time by the hidraw scan, works through hidraw
/// and goes away with Remove. Elsewhere Create fails with NotAvailable and leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uhid_keys_are_marked_and_listed_once() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let daemon = Daemon::start(&bus, "");
    let conn = bus.connect().await;
    let virt = VirtualProxy::new(&conn).await.unwrap();
    let manager = ManagerProxy::new(&conn).await.unwrap();
    let uid = nix::unistd::getuid().as_raw();
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/uhid")
        .is_ok();
    let created = virt.create(r#"{"uhid":true,"name":"uhid key"}"#).await;
    assert!(
        usable || std::env::var_os(REQUIRE_UHID_ENV).is_none(),
        "/dev/uhid is not usable but {REQUIRE_UHID_ENV} is set"
    );
    if !usable {
        let err = created.unwrap_err();
        assert_eq!(
            error_name(&err).as_deref(),
            Some("org.keygate.Keygate1.Error.NotAvailable"),
            "{err:?}"
        );
        assert!(err.to_string().contains("uhid"), "{err}");
        assert!(virt.list().await.unwrap().is_empty(), "nothing left behind");
        println!("skipped: /dev/uhid not usable here; checked the NotAvailable error");
        return;
    }
    let path = created.unwrap();
    let mut node = None;
    wait_until("the marked hidraw node", || {
        node = marked_hidraw(uid);
        node.is_some()
    });
    let node = node.unwrap();
    // Two scans later, the key is listed once, as the virtual device.
    tokio::time::sleep(keygate::service::usb::SCAN_INTERVAL * 2 + Duration::from_millis(500)).await;
    let devices = manager.list_devices().await.unwrap();
    let named: Vec<_> = devices.iter().filter(|d| d.2 == "uhid key").collect();
    assert_eq!(named.len(), 1, "{devices:?}");
    assert_eq!(named[0].0.as_str(), path.as_str());
    if node.exists() {
        let pipe = keygate::hid::hidraw::open(&node).unwrap();
        drive(pipe, "by hidraw").await;
    }
    virt.remove(&path).await.unwrap();
    wait_until("the uhid device to go away", || {
        marked_hidraw(uid).is_none()
    });
    drop(daemon);
}

/// `uhid_keys_are_marked_and_listed_once` again under a real kernel where /dev/uhid works (the
/// hidvm guest, as root): keygated and a dbus-daemon run in the guest; the key's hidraw node
/// carries the marker and the owner, keygated's scan does not list it twice, our driver works
/// through /dev/hidraw, and Remove destroys the device.
#[test]
fn uhid_under_a_real_kernel() {
    if std::env::var_os(REQUIRE_UHID_ENV).is_some() || skip() {
        return; // inside the guest only the uhid test runs
    }
    let Some(run) = hidvm::runner() else {
        assert!(
            std::env::var("KEYGATE_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "KEYGATE_REQUIRE_INTEROP=1 but the hidvm runner could not be built"
        );
        println!("skipped: the hidvm runner could not be built");
        return;
    };
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let work = tempfile::Builder::new()
        .prefix("hidvm-virtual")
        .tempdir_in(&target)
        .unwrap();
    let work_dir = work.path().display().to_string();
    assert!(
        !work_dir.contains(' '),
        "hidvm work dir must not contain spaces"
    );
    // The guest sees the host root read-only with a fresh /tmp: the binaries run from the shared
    // work dir, and keygated is put back where the harness looks for it if that is under /tmp.
    let exe = work.path().join("service_virtual");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let keygated = Path::new(env!("CARGO_BIN_EXE_keygated"));
    std::fs::copy(keygated, work.path().join("keygated")).unwrap();
    let script = work.path().join("guest.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport PATH=/usr/sbin:/usr/bin:/sbin:/bin RUST_BACKTRACE=1 {REQUIRE_UHID_ENV}=1\n\
             [ -x {keygated} ] || {{ mkdir -p {keygated_dir} && cp {work_dir}/keygated {keygated}; }}\n\
             cd {work_dir}\n\
             {exe} --exact uhid_keys_are_marked_and_listed_once --nocapture --test-threads=1 \
             > {work_dir}/guest.log 2>&1\nrc=$?\ncat {work_dir}/guest.log\nexit $rc\n",
            keygated = keygated.display(),
            keygated_dir = keygated.parent().unwrap().display(),
            exe = exe.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&run)
        .arg(&work_dir)
        .arg(&script)
        .env("TMO", "240")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("guest output:\n{stdout}");
    assert!(
        stdout.contains("test uhid_keys_are_marked_and_listed_once ... ok"),
        "guest: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("skipped"), "{stdout}");
    assert!(stdout.contains("GUEST_RC=0"), "{stdout}");
}
