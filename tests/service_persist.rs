//! Persistent software keys (`Virtual.Create` with `"persist": true`) across keygated restarts,
//! on a real private dbus-daemon: the key comes back at its path with its credentials, PIN,
//! retries, large blob and a signature counter that keeps moving forward (also after SIGKILL);
//! its secrets are not in the database in clear; `Remove` deletes it; its presence policy
//! (`SetPresence`) and every `Create` option stay in force; an unreadable row is skipped and
//! logged; a wrong store key stops keygated with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bus::webauthn::{answer_pins, err_name, inner_options, webauthn_config};
use bus::{Bus, Daemon};
use keygate::ctap2::commands::{get_info, make_credential};
use keygate::ctap2::pin_protocol::Permissions;
use keygate::ctap2::{
    AttestationStatement, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};
use keygate::ctaphid::KeepaliveStatus;
use keygate::device::{Device, DeviceOptions};
use keygate::hid::socket::SeqpacketPipe;
use keygate::service::client::{ManagerProxy, RelyingPartyProxy, VirtualProxy, WebAuthnProxy};
use keygate::webauthn::b64;
use serde_json::{Value, json};
use sha2::Digest;
use zbus::OwnedObjectPath;

const PIN: &str = "persist-pin-4711";
const ORIGIN: &str = "https://example.org";
/// Values that only the key's sealed state holds (the relying party never sees them).
const USER_NAME: &str = "persist-user-name-zq81";
const DISPLAY_NAME: &str = "Persist Display Zq81";
const BLOB: &[u8] = b"persist large blob zq81";

fn skip() -> bool {
    bus::skip_without("dbus-daemon") || bus::skip_without("busctl")
}

/// Proxies of one client connection, answering PIN requests with [`PIN`].
struct Client {
    conn: zbus::Connection,
    /// The kinds of `Interaction` signals seen (`pin`, `touch`, ...).
    interactions: Arc<Mutex<Vec<String>>>,
    virt: VirtualProxy<'static>,
    webauthn: WebAuthnProxy<'static>,
    rp: RelyingPartyProxy<'static>,
    manager: ManagerProxy<'static>,
    pins: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn new(bus: &Bus) -> Self {
        let conn = bus.connect().await;
        let webauthn = WebAuthnProxy::new(&conn).await.unwrap();
        let (pins, interactions) = answer_pins(
            webauthn.clone(),
            PIN,
            webauthn.receive_interaction().await.unwrap(),
        );
        Self {
            virt: VirtualProxy::new(&conn).await.unwrap(),
            rp: RelyingPartyProxy::new(&conn).await.unwrap(),
            manager: ManagerProxy::new(&conn).await.unwrap(),
            webauthn,
            conn,
            interactions,
            pins,
        }
    }

    /// Registers `user` at the relying party with a discoverable credential.
    async fn register_at_rp(&self, user: &str) {
        let (ceremony, creation) = self
            .rp
            .start_registration("example.org", user, user)
            .await
            .unwrap();
        let mut creation: Value = serde_json::from_str(&inner_options(&creation)).unwrap();
        creation["authenticatorSelection"]["residentKey"] = "required".into();
        creation["authenticatorSelection"]["requireResidentKey"] = true.into();
        let response = self
            .webauthn
            .make_credential("reg", ORIGIN, &creation.to_string())
            .await
            .unwrap();
        self.rp
            .finish_registration(&ceremony, &response)
            .await
            .unwrap();
    }

    /// Authenticates `user` at the relying party (which verifies the signature with the public
    /// key it registered and checks the counter); returns the key's signature counter.
    async fn authenticate_at_rp(&self, user: &str) -> u32 {
        let (ceremony, request) = self
            .rp
            .start_authentication("example.org", user)
            .await
            .unwrap();
        let assertion = self
            .webauthn
            .get_assertion("auth", ORIGIN, &inner_options(&request))
            .await
            .unwrap();
        let result = self
            .rp
            .finish_authentication(&ceremony, &assertion)
            .await
            .unwrap();
        assert!(result.contains(&format!("\"user\":\"{user}\"")), "{result}");
        sign_count(&assertion)
    }

    /// Like [`Self::authenticate_at_rp`], with the key at `path` waiting for a touch: approves
    /// once the key has asked for one (the `touch` interaction, sent on KEEPALIVE UPNEEDED) and
    /// checks that a request was waiting, i.e. that the key's presence policy is `wait`.
    async fn authenticate_approving(&self, path: &OwnedObjectPath, user: &str) -> u32 {
        self.interactions.lock().unwrap().clear();
        let approve = async {
            let deadline = Instant::now() + Duration::from_secs(15);
            while !self
                .interactions
                .lock()
                .unwrap()
                .iter()
                .any(|k| k == "touch")
            {
                assert!(
                    Instant::now() < deadline,
                    "the key never asked for a touch: its presence policy is not `wait`"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.virt.approve(path).await.unwrap()
        };
        let (count, was_waiting) = tokio::join!(self.authenticate_at_rp(user), approve);
        assert!(was_waiting, "no presence request was waiting");
        count
    }

    /// An assertion of the credential `id` (base64url) with client extensions `extensions`.
    async fn assert_direct(&self, id: &str, extensions: Value) -> Value {
        let request = json!({
            "challenge": b64::encode(&[7; 32]),
            "rpId": "example.org",
            "allowCredentials": [{"type": "public-key", "id": id}],
            "userVerification": "required",
            "extensions": extensions,
        });
        let response = self
            .webauthn
            .get_assertion("direct", ORIGIN, &request.to_string())
            .await
            .unwrap();
        serde_json::from_str(&response).unwrap()
    }

    async fn pin_retries(&self, path: &OwnedObjectPath) -> u32 {
        let device = self.device(path).await;
        let (retries, _): (u32, bool) = device.call("PinRetries", &()).await.unwrap();
        retries
    }

    async fn device(&self, path: &OwnedObjectPath) -> zbus::Proxy<'static> {
        zbus::Proxy::new(
            &self.conn,
            bus::BUS_NAME,
            path.to_string(),
            "org.keygate.Keygate1.Device",
        )
        .await
        .unwrap()
    }

    /// Our own host driver on the key at `path`, through a descriptor from `Virtual.Connect`.
    async fn open(&self, path: &OwnedObjectPath) -> Device<SeqpacketPipe> {
        let fd = self.virt.connect(path).await.unwrap();
        let pipe = SeqpacketPipe::from_fd(std::os::fd::OwnedFd::from(fd)).unwrap();
        Device::open(pipe, DeviceOptions::default()).await.unwrap()
    }

    /// authenticatorGetInfo of the key at `path`, as the key answers it.
    async fn info(&self, path: &OwnedObjectPath) -> get_info::Response {
        self.open(path).await.info().cloned().unwrap()
    }

    /// The option names `Virtual.Create` accepts, as its answer to an unknown one lists them.
    async fn create_option_names(&self) -> BTreeSet<String> {
        let err = self
            .virt
            .create(r#"{"no-such-option": 0}"#)
            .await
            .unwrap_err()
            .to_string();
        let (_, names) = err
            .split_once("expected one of ")
            .unwrap_or_else(|| panic!("no option list in {err:?}"));
        names
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    async fn virtual_paths(&self) -> Vec<String> {
        let devices = self.manager.list_devices().await.unwrap();
        devices
            .into_iter()
            .filter(|(_, kind, _, _)| kind == "virtual")
            .map(|(path, _, _, _)| path.to_string())
            .collect()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.pins.abort();
    }
}

/// The signature counter of an AuthenticationResponseJSON (authenticatorData bytes 33..37,
/// WebAuthn §6.1).
fn sign_count(assertion: &str) -> u32 {
    let value: Value = serde_json::from_str(assertion).unwrap();
    let data = b64::decode(value["response"]["authenticatorData"].as_str().unwrap()).unwrap();
    u32::from_be_bytes(data[33..37].try_into().unwrap())
}

/// The database as it is on disk (main file and write-ahead log).
fn db_bytes(state: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(state.join("keygate.db")).unwrap();
    bytes.extend(std::fs::read(state.join("keygate.db-wal")).unwrap_or_default());
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends SIGKILL (a crash: nothing is flushed on the way out) and reaps the daemon.
fn crash(daemon: &mut Daemon) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(!daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_key_survives_restart_and_crash_and_remove_deletes_it() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let uid = nix::unistd::getuid().as_raw();
    let mut daemon = Daemon::start_in(&bus, &webauthn_config(), &state);
    let client = Client::new(&bus).await;
    let options = json!({"name": "kept key", "pin": PIN, "persist": true}).to_string();
    let path = client.virt.create(&options).await.unwrap();

    // A credential at the relying party, and one only the key knows (with a large blob).
    client.register_at_rp("alice").await;
    let create = json!({
        "rp": {"id": "example.org", "name": "Example"},
        "user": {"id": b64::encode(b"zq81-user-handle"), "name": USER_NAME, "displayName": DISPLAY_NAME},
        "challenge": b64::encode(&[9; 32]),
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        "authenticatorSelection": {"residentKey": "required", "userVerification": "required"},
        "extensions": {"largeBlob": {"support": "required"}},
    });
    let registered = client
        .webauthn
        .make_credential("direct-reg", ORIGIN, &create.to_string())
        .await
        .unwrap();
    let registered: Value = serde_json::from_str(&registered).unwrap();
    let direct_id = registered["id"].as_str().unwrap().to_owned();
    let written = client
        .assert_direct(
            &direct_id,
            json!({"largeBlob": {"write": b64::encode(BLOB)}}),
        )
        .await;
    assert_eq!(
        written["clientExtensionResults"]["largeBlob"]["written"],
        true
    );
    let before = client.authenticate_at_rp("alice").await;
    assert!(before > 0);

    // One wrong PIN: the retries drop, and that is stored too.
    let device = client.device(&path).await;
    let wrong: zbus::Result<String> = device.call("Credentials", &("0000-wrong",)).await;
    assert_eq!(err_name(wrong), "org.keygate.Keygate1.Error.Rejected");
    let retries = client.pin_retries(&path).await;
    assert!(retries < 8, "{retries}");
    let credentials = client.virt.stored_credentials(&path).await.unwrap();
    assert!(credentials.contains(USER_NAME), "{credentials}");
    // SetPresence is stored too: the key comes back waiting for Approve.
    client.virt.set_presence(&path, "wait").await.unwrap();
    // The default is an ephemeral key.
    let ephemeral = client.virt.create(r#"{"name":"ephemeral"}"#).await.unwrap();
    drop(client);
    assert!(daemon.stop().success(), "{}", daemon.log_text());

    // Encrypted at rest: the row is there (its name is public), its secrets are not in clear.
    let bytes = db_bytes(&state);
    assert!(
        contains(&bytes, b"kept key"),
        "no stored key in the database"
    );
    let pin_hash = sha2::Sha256::digest(PIN.as_bytes());
    let raw_id = b64::decode(&direct_id).unwrap();
    for (what, secret) in [
        ("PIN", PIN.as_bytes()),
        ("PIN hash", &pin_hash[..16]),
        ("user name", USER_NAME.as_bytes()),
        ("display name", DISPLAY_NAME.as_bytes()),
        ("credential ID", raw_id.as_slice()),
        ("large blob", BLOB),
    ] {
        assert!(
            !contains(&bytes, secret),
            "{what} is in the database in clear"
        );
    }

    // Restart: the key is back at its path, with its credentials and retries; the ephemeral
    // key is gone.
    let mut daemon = Daemon::start_in(&bus, &webauthn_config(), &state);
    let client = Client::new(&bus).await;
    assert_eq!(client.virtual_paths().await, [path.to_string()]);
    assert_eq!(
        client.virt.list().await.unwrap(),
        [(path.clone(), "kept key".to_owned())]
    );
    let listed = client.manager.list_devices().await.unwrap();
    assert!(listed.contains(&(path.clone(), "virtual".into(), "kept key".into(), uid)));
    assert_eq!(
        client.virt.stored_credentials(&path).await.unwrap(),
        credentials
    );
    assert_eq!(client.pin_retries(&path).await, retries);
    // Same PIN, same private key (the RP verifies it), and the counter went on; the key still
    // waits for Approve. Back to `auto`, which the restart after the crash below keeps.
    let after = client.authenticate_approving(&path, "alice").await;
    client.virt.set_presence(&path, "auto").await.unwrap();
    assert!(
        after > before,
        "counter {after} after restart, {before} before"
    );
    assert_eq!(client.pin_retries(&path).await, 8);
    let read = client
        .assert_direct(&direct_id, json!({"largeBlob": {"read": true}}))
        .await;
    assert_eq!(
        read["clientExtensionResults"]["largeBlob"]["blob"],
        b64::encode(BLOB)
    );
    // A key created now never takes the path of a stored one.
    let fresh = client.virt.create(r#"{"name":"fresh"}"#).await.unwrap();
    assert_ne!(fresh, path);
    client.virt.remove(&fresh).await.unwrap();
    assert!(
        !client
            .virtual_paths()
            .await
            .contains(&ephemeral.to_string())
    );

    // Durable before the reply: a crash right after an assertion loses nothing.
    let last = client.authenticate_at_rp("alice").await;
    assert!(last > after);
    drop(client);
    crash(&mut daemon);
    let mut daemon = Daemon::start_in(&bus, &webauthn_config(), &state);
    let client = Client::new(&bus).await;
    assert!(client.authenticate_at_rp("alice").await > last);

    // keygatectl's --persist asks for the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keygatectl"))
        .arg(format!("--bus-address={}", bus.address))
        .args(["--json", "virtual", "create", "--persist", "--name", "cli"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cli_key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["path"]
        .as_str()
        .unwrap()
        .to_owned();

    // Remove deletes the row: after a restart the key is gone, keygatectl's key is back.
    client.virt.remove(&path).await.unwrap();
    drop(client);
    assert!(daemon.stop().success());
    let mut daemon = Daemon::start_in(&bus, &webauthn_config(), &state);
    let client = Client::new(&bus).await;
    assert_eq!(client.virtual_paths().await, vec![cli_key.clone()]);
    let listed = client.virt.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].0.as_str(), listed[0].1.as_str()),
        (cli_key.as_str(), "cli")
    );
    let rows: i64 = rusqlite::Connection::open(state.join("keygate.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM virtual_keys", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 1);
    drop(client);
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_stored_key_is_skipped_and_a_wrong_store_key_stops_keygated() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start_in(&bus, "", &state);
    let client = Client::new(&bus).await;
    let broken = client
        .virt
        .create(r#"{"name":"broken","persist":true}"#)
        .await
        .unwrap();
    let kept = client
        .virt
        .create(r#"{"name":"kept","persist":true,"socket":true}"#)
        .await
        .unwrap();
    drop(client);
    assert!(daemon.stop().success());

    // Tamper with one key's sealed state.
    {
        let db = rusqlite::Connection::open(state.join("keygate.db")).unwrap();
        let mut sealed: Vec<u8> = db
            .query_row(
                "SELECT sealed_state FROM virtual_keys WHERE path = ?1",
                [broken.as_str()],
                |row| row.get(0),
            )
            .unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        db.execute(
            "UPDATE virtual_keys SET sealed_state = ?1 WHERE path = ?2",
            rusqlite::params![sealed, broken.as_str()],
        )
        .unwrap();
    }

    // keygated starts, serves the good key, logs and skips the broken one (its row is kept,
    // its path stays reserved).
    let mut daemon = Daemon::start_in(&bus, "", &state);
    let client = Client::new(&bus).await;
    assert_eq!(client.virtual_paths().await, [kept.to_string()]);
    // Its socket is back too, serving the restored key.
    let socket = client.virt.socket(&kept).await.unwrap();
    let pipe = SeqpacketPipe::connect(Path::new(&socket)).await.unwrap();
    let device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    assert!(device.info().is_some_and(|info| !info.versions.is_empty()));
    drop(device);
    let log = daemon.log_text();
    assert!(
        log.contains("not restored") && log.contains(broken.as_str()),
        "{log}"
    );
    let fresh = client.virt.create(r#"{"persist":true}"#).await.unwrap();
    assert_ne!(fresh, broken);
    assert_ne!(fresh, kept);
    drop(client);
    assert!(daemon.stop().success());

    // Another store key: keygated refuses to start and says why.
    let key_file = state.join("store.key");
    std::fs::write(&key_file, [5u8; 32]).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keygated"))
        .arg("--bus-address")
        .arg(&bus.address)
        .arg("--state-dir")
        .arg(&state)
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUNTIME_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("keygated kept running with a wrong store key");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("store key does not open this database"),
        "{stderr}"
    );
}

/// Every `Virtual.Create` option of a persistent key is still in force after a restart. The
/// options set here are held against the daemon's own list of Create options: a new option
/// fails this test until it is stored (`StoredOptions` in src/service/virtual_restore.rs) and
/// checked here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_option_survives_a_restart() {
    if skip() {
        return;
    }
    const KEY_PIN: &str = "opt-pin-8800";
    const AAGUID: [u8; 16] = [0x5a; 16];
    // Each option away from its default where the others allow it: a PIN and alwaysUv need
    // clientPin, so that stays on; CTAP 2.0 hides the 2.1 options, so it is a second key.
    let every = json!({
        "name": "every option",
        "pin": KEY_PIN,
        "resident_keys": false,
        "client_pin": true,
        "presence": "wait",
        "presence_timeout_ms": 700,
        "attestation": "self",
        "ctap": "2.1",
        "always_uv": true,
        "min_pin_length": 10,
        "large_blobs": false,
        "aaguid": "5a5a5a5a-5a5a-5a5a-5a5a-5a5a5a5a5a5a",
        "max_credential_count_in_list": 3,
        "max_credential_id_length": 200,
        "enterprise_attestation": true,
        "enterprise_rp_ids": ["corp.example"],
        "persist": true,
        "socket": true,
    });
    let fido20 = json!({"name": "2.0 key", "ctap": "2.0", "persist": true});
    // Needs a writable /dev/uhid; its stored flag is held by the unit test
    // `every_option_survives_its_stored_form`.
    let not_set_here = ["uhid"];

    let bus = Bus::session();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start_in(&bus, "", &state);
    let client = Client::new(&bus).await;
    let tested: BTreeSet<String> = every
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .chain(not_set_here)
        .map(str::to_owned)
        .collect();
    assert_eq!(
        client.create_option_names().await,
        tested,
        "Virtual.Create's options and the options of this test differ: store a new option in \
         StoredOptions (src/service/virtual_restore.rs) and check here that it survives a restart"
    );
    let path = client.virt.create(&every.to_string()).await.unwrap();
    let old_key = client.virt.create(&fido20.to_string()).await.unwrap();
    let before = client.info(&path).await;
    let old_before = client.info(&old_key).await;
    // The options show in GetInfo (so that a restart back to the defaults would show).
    assert_eq!(before.aaguid, AAGUID);
    assert_eq!(before.option_value("rk"), Some(false));
    assert_eq!(before.option_value("clientPin"), Some(true));
    assert_eq!(before.option_value("alwaysUv"), Some(true));
    assert_ne!(before.option_value("largeBlobs"), Some(true));
    assert_eq!(before.min_pin_length, Some(10));
    assert_eq!(before.max_credential_count_in_list, Some(3));
    assert_eq!(before.max_credential_id_length, Some(200));
    assert_eq!(before.option_value("ep"), Some(false));
    assert!(before.versions.iter().any(|v| v == "FIDO_2_1"));
    assert!(!old_before.versions.iter().any(|v| v == "FIDO_2_1"));
    drop(client);
    assert!(daemon.stop().success(), "{}", daemon.log_text());

    let mut daemon = Daemon::start_in(&bus, "", &state);
    let client = Client::new(&bus).await;
    let listed = client.virt.list().await.unwrap();
    assert!(
        listed.contains(&(path.clone(), "every option".into())),
        "{listed:?}"
    );
    assert_eq!(client.info(&path).await, before);
    assert_eq!(client.info(&old_key).await, old_before);

    // Served on its socket again; there it waits for Approve and attests itself (packed
    // without a certificate).
    let socket = client.virt.socket(&path).await.unwrap();
    let pipe = SeqpacketPipe::connect(Path::new(&socket)).await.unwrap();
    let mut device = Device::open(pipe, DeviceOptions::default()).await.unwrap();
    let token = device
        .pin_uv_auth_token(KEY_PIN, Permissions::MAKE_CREDENTIAL, Some("example.org"))
        .await
        .unwrap();
    let mut request = make_credential::Request {
        client_data_hash: vec![5; 32],
        rp: PublicKeyCredentialRpEntity::new("example.org"),
        user: PublicKeyCredentialUserEntity::new(b"every-option-user".to_vec()),
        pub_key_cred_params: vec![PublicKeyCredentialParameters {
            type_: "public-key".into(),
            alg: -7,
        }],
        ..Default::default()
    };
    request.pin_uv_auth_param = Some(token.authenticate(&request.client_data_hash));
    request.pin_uv_auth_protocol = Some(token.protocol().version());
    let touch_needed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&touch_needed);
    let mut on_keepalive = move |status: KeepaliveStatus| {
        if status == KeepaliveStatus::UPNEEDED {
            seen.store(true, Ordering::SeqCst);
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let approve = async {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !touch_needed.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the restored key never waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        client.virt.approve(&path).await.unwrap()
    };
    let (made, was_waiting) = tokio::join!(
        device.make_credential(&request, &cancel, &mut on_keepalive),
        approve
    );
    assert!(was_waiting, "no presence request was waiting");
    assert!(
        matches!(
            made.unwrap().att_stmt,
            AttestationStatement::Packed { x5c: None, .. }
        ),
        "not self attestation"
    );
    // Not approved: the request ends after the stored 700 ms, not the default 30 s.
    let started = Instant::now();
    let unanswered = device.selection(&cancel, &mut |_| {}).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(600) && waited < Duration::from_secs(10),
        "{waited:?}, {unanswered:?}"
    );
    drop(device);
    drop(client);
    assert!(daemon.stop().success(), "{}", daemon.log_text());
}
