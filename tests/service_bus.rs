//! keygated on a private dbus-daemon: Manager, Tokens, bad input, restart, introspection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;

use std::process::Command;

use bus::webauthn::{answer_pins, err_name, inner_options, tokens_config, webauthn_config};
use bus::{Bus, Daemon};
use keygate::service::client::{
    ManagerProxy, RelyingPartyProxy, TokensProxy, VirtualProxy, WebAuthnProxy, error_name,
};

fn skip() -> bool {
    bus::skip_without("dbus-daemon") || bus::skip_without("busctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_version_and_devices() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let mut daemon = Daemon::start(&bus, "");
    let conn = bus.connect().await;
    let manager = ManagerProxy::new(&conn).await.unwrap();
    assert_eq!(manager.version().await.unwrap(), env!("CARGO_PKG_VERSION"));
    let devices = manager.list_devices().await.unwrap();
    assert!(
        devices.iter().all(|(_, kind, _, _)| kind != "virtual"),
        "{devices:?}"
    );
    // An unknown method is a clean error, and the daemon stays up.
    let err = conn
        .call_method(
            Some(bus::BUS_NAME),
            bus::ROOT,
            Some("org.keygate.Keygate1.Manager"),
            "NoSuchMethod",
            &(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error_name(&err).as_deref(),
        Some("org.freedesktop.DBus.Error.UnknownMethod")
    );
    assert!(daemon.is_running());
    assert_eq!(manager.version().await.unwrap(), env!("CARGO_PKG_VERSION"));
    // SIGTERM: clean exit, name released.
    let status = daemon.stop();
    assert!(status.success(), "exit {status}: {}", daemon.log_text());
    let dbus = zbus::fdo::DBusProxy::new(&conn).await.unwrap();
    assert!(
        !dbus
            .name_has_owner(bus::BUS_NAME.try_into().unwrap())
            .await
            .unwrap()
    );
    assert!(
        daemon.log_text().contains("stopped"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = bus::write_file(
        dir.path(),
        "k.toml",
        "admin_group = \"x\"\nverifier_grop = \"y\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_keygated"))
        .args(["--bus-address", "unix:path=/nonexistent/bus", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("verifier_grop"), "{stderr}");
}

async fn tokens_proxy(conn: &zbus::Connection) -> TokensProxy<'static> {
    TokensProxy::new(conn).await.unwrap()
}

fn hotp8(seed: &[u8], counter: u64) -> String {
    keygate::otp::hotp(seed, counter, 8, keygate::otp::HashAlg::Sha1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_every_method_and_bad_input() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let mut daemon = Daemon::start(&bus, &tokens_config());
    let conn = bus.connect().await;
    let tokens = tokens_proxy(&conn).await;
    let seed = b"12345678901234567890";
    let seed_hex = hex::encode(seed);

    // HOTP with a known seed: RFC 4226 appendix D values (8 digits) are accepted in order.
    let spec = serde_json::json!({"user": "carol", "kind": "hotp", "digits": 8, "seed_hex": seed_hex, "serial": "HOTP-1"});
    let (serial, uri, qr) = tokens.create(&spec.to_string()).await.unwrap();
    assert_eq!(serial, "HOTP-1");
    assert!(uri.starts_with("otpauth://hotp/"), "{uri}");
    assert!(
        uri.contains("counter=0") && uri.contains("digits=8"),
        "{uri}"
    );
    assert!(qr.lines().count() > 10);
    assert_eq!(hotp8(seed, 0), "84755224"); // RFC 4226 appendix D, 8 digits
    assert_eq!(
        tokens.verify_code(&serial, "84755224").await.unwrap(),
        (true, "accepted".into())
    );
    let (ok, reason) = tokens.verify_code(&serial, "84755224").await.unwrap();
    assert!(
        !ok && (reason == "replay" || reason == "no_match"),
        "{reason}"
    );
    // A code within the look-ahead window (counter 5) is accepted; older ones are not.
    assert!(
        tokens
            .verify_code(&serial, &hotp8(seed, 5))
            .await
            .unwrap()
            .0
    );
    assert!(
        !tokens
            .verify_code(&serial, &hotp8(seed, 3))
            .await
            .unwrap()
            .0
    );
    // Resync far ahead with two consecutive codes.
    let (ok, _) = tokens
        .resync(&serial, &hotp8(seed, 500), &hotp8(seed, 501))
        .await
        .unwrap();
    assert!(ok);
    assert!(
        tokens
            .verify_code(&serial, &hotp8(seed, 502))
            .await
            .unwrap()
            .0
    );

    // TOTP against oathtool (outside oracle) when present.
    let spec = serde_json::json!({"user": "carol", "kind": "totp", "digits": 8, "seed_hex": seed_hex, "serial": "TOTP-1"});
    let (totp_serial, uri, _) = tokens.create(&spec.to_string()).await.unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains("period=30"),
        "{uri}"
    );
    if !bus::skip_without("oathtool") {
        let out = Command::new("oathtool")
            .args(["--totp", "-d", "8", &seed_hex])
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let (ok, reason) = tokens.verify_code(&totp_serial, &code).await.unwrap();
        assert!(ok, "oathtool code {code} rejected: {reason}");
    }

    // OCRA challenge-response, answered with keygate's own OCRA (checked against RFC 6287
    // vectors in the otp tests).
    let spec = serde_json::json!({"user": "carol", "kind": "ocra", "suite": "OCRA-1:HOTP-SHA1-8:QN08", "seed_hex": seed_hex, "serial": "OCRA-1"});
    let (ocra_serial, uri, _) = tokens.create(&spec.to_string()).await.unwrap();
    assert!(uri.is_empty());
    let (challenge, question) = tokens.issue_challenge(&ocra_serial).await.unwrap();
    assert_eq!(question.len(), 8);
    let suite: keygate::otp::OcraSuite = "OCRA-1:HOTP-SHA1-8:QN08".parse().unwrap();
    let input = keygate::otp::OcraInput {
        question: question.clone(),
        ..Default::default()
    };
    let response = keygate::otp::ocra(&suite, seed, &input).unwrap();
    assert_eq!(
        tokens.verify_response(&challenge, &response).await.unwrap(),
        (true, "accepted".into())
    );
    assert!(
        !tokens
            .verify_response(&challenge, &response)
            .await
            .unwrap()
            .0
    );
    assert_eq!(
        err_name(tokens.verify_response("nochallenge", &response).await),
        "org.keygate.Keygate1.Error.NotFound"
    );

    // List (JSON, never seeds), Unlock, Delete.
    let list = tokens.list("carol").await.unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 3, "{list}");
    assert!(
        !list.contains(&seed_hex) && !list.contains("seed"),
        "{list}"
    );
    tokens.unlock(&serial).await.unwrap();
    tokens.delete(&ocra_serial).await.unwrap();
    assert_eq!(
        err_name(tokens.delete(&ocra_serial).await),
        "org.keygate.Keygate1.Error.NotFound"
    );

    // Bad input: named errors, and the daemon stays up.
    assert_eq!(
        err_name(tokens.verify_code("no-such-serial", "12345678").await),
        "org.keygate.Keygate1.Error.NotFound"
    );
    assert_eq!(
        err_name(tokens.create("{not json").await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    let err = tokens
        .create(r#"{"kind":"totp","colour":"red"}"#)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
    assert_eq!(
        err_name(tokens.create(&"x".repeat(100_000)).await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    assert_eq!(
        err_name(tokens.verify_code(&serial, &"1".repeat(10_000)).await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    assert_eq!(
        err_name(tokens.create(r#"{"kind":"sms"}"#).await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    assert_eq!(
        err_name(tokens.import_pskc("<KeyContainer", "").await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    assert_eq!(
        err_name(tokens.issue_transaction(&serial, &[]).await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    assert!(daemon.is_running(), "{}", daemon.log_text());

    // PANIC: every token of carol revoked.
    let (revoked, _) = tokens.revoke_user("carol").await.unwrap();
    assert_eq!(revoked, 2);
    let (ok, reason) = tokens
        .verify_code(&serial, &hotp8(seed, 503))
        .await
        .unwrap();
    assert!(!ok && reason == "revoked", "{reason}");

    // The log holds no seed and no code.
    let log = daemon.log_text();
    assert!(
        !log.contains(&seed_hex) && !log.contains("84755224"),
        "{log}"
    );
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pskc_import_export_and_restart_keep_state() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start_in(&bus, &tokens_config(), &state);
    let conn = bus.connect().await;
    let tokens = tokens_proxy(&conn).await;
    let seed = b"12345678901234567890";

    // RFC 6030 figure 6: AES-128-CBC under a pre-shared key, HMAC-SHA1 ValueMAC.
    let xml = std::fs::read_to_string(
        bus::project_dir().join("tests/data/vectors/rfc6030-pskc/figure6.xml"),
    )
    .unwrap();
    assert_eq!(
        err_name(tokens.import_pskc(&xml, "").await),
        "org.keygate.Keygate1.Error.InvalidArgs",
        "an encrypted file without its key is refused"
    );
    let key = serde_json::json!({"key_hex": "12345678901234567890123456789012", "user": "dave"});
    let serials = tokens.import_pskc(&xml, &key.to_string()).await.unwrap();
    assert_eq!(serials, vec!["987654321".to_owned()]);
    assert!(
        tokens
            .verify_code("987654321", &hotp8(seed, 0))
            .await
            .unwrap()
            .0
    );

    // Software token, then a restart: counters and soft-token state survive.
    let spec = serde_json::json!({"user": "dave", "kind": "hotp", "digits": 8, "software": {"pin": "24680"}});
    let (soft_serial, uri, _) = tokens.create(&spec.to_string()).await.unwrap();
    assert!(
        uri.is_empty(),
        "no seed leaves keygated for a software token"
    );
    let code = tokens.soft_code(&soft_serial, "24680").await.unwrap();
    assert!(tokens.verify_code(&soft_serial, &code).await.unwrap().0);
    let err = tokens.soft_code(&soft_serial, "13579").await.unwrap_err();
    assert_eq!(
        error_name(&err).as_deref(),
        Some("org.keygate.Keygate1.Error.Rejected")
    );
    assert!(err.to_string().contains("4 tries left"), "{err}");
    let soft = tokens.soft_list().await.unwrap();
    assert!(
        soft.contains(&soft_serial) && soft.contains("\"failed_pins\":1"),
        "{soft}"
    );

    // Export encrypted under a password, then check python-free: the XML has no plain secret
    // (the counter is not secret and stays readable).
    let export = tokens
        .export_pskc(&["987654321"], r#"{"password":"correct horse"}"#)
        .await
        .unwrap();
    let secret = export
        .split("<pskc:Secret>")
        .nth(1)
        .and_then(|rest| rest.split("</pskc:Secret>").next())
        .unwrap_or_default();
    assert!(
        secret.contains("EncryptedValue") && !secret.contains("PlainValue"),
        "{export}"
    );
    assert!(
        err_name(tokens.export_pskc(&["987654321"], "{}").await).ends_with("InvalidArgs"),
        "an export without a key is refused"
    );

    assert!(daemon.stop().success());
    drop(tokens);
    let mut daemon = Daemon::start_in(&bus, &tokens_config(), &state);
    let tokens = tokens_proxy(&conn).await;
    // HOTP counter moved past 0: the same code is a replay after the restart.
    assert!(
        !tokens
            .verify_code("987654321", &hotp8(seed, 0))
            .await
            .unwrap()
            .0
    );
    assert!(
        tokens
            .verify_code("987654321", &hotp8(seed, 1))
            .await
            .unwrap()
            .0
    );
    // The soft token kept its counter and its wrong-PIN count.
    let soft = tokens.soft_list().await.unwrap();
    assert!(soft.contains("\"failed_pins\":1"), "{soft}");
    let code = tokens.soft_code(&soft_serial, "24680").await.unwrap();
    assert!(tokens.verify_code(&soft_serial, &code).await.unwrap().0);

    // Re-import of the export (after deleting the token) restores the counter.
    tokens.delete("987654321").await.unwrap();
    let serials = tokens
        .import_pskc(&export, r#"{"password":"correct horse"}"#)
        .await
        .unwrap();
    assert_eq!(serials, vec!["987654321".to_owned()]);
    assert!(
        !tokens
            .verify_code("987654321", &hotp8(seed, 0))
            .await
            .unwrap()
            .0
    );
    assert!(
        tokens
            .verify_code("987654321", &hotp8(seed, 2))
            .await
            .unwrap()
            .0
    );
    assert!(daemon.stop().success());
}

/// The canonical shape of every org.keygate interface in an introspection document: one
/// line per method/signal/property with its arguments (names, types, directions).
fn api_shape(xml: &str) -> std::collections::BTreeSet<String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for iface in doc
        .descendants()
        .filter(|n| n.has_tag_name("interface"))
        .filter(|n| {
            n.attribute("name")
                .unwrap_or("")
                .starts_with("org.keygate.")
        })
    {
        let iname = iface.attribute("name").unwrap();
        for member in iface.children().filter(|n| n.is_element()) {
            let kind = member.tag_name().name();
            let name = member.attribute("name").unwrap_or("");
            let mut line = format!("{iname} {kind} {name}");
            if kind == "property" {
                line += &format!(
                    " {} {}",
                    member.attribute("type").unwrap_or(""),
                    member.attribute("access").unwrap_or("")
                );
            }
            for arg in member.children().filter(|n| n.has_tag_name("arg")) {
                line += &format!(
                    " ({} {} {})",
                    arg.attribute("name").unwrap_or("-"),
                    arg.attribute("type").unwrap_or(""),
                    arg.attribute("direction").unwrap_or("")
                );
            }
            out.insert(line);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_matches_the_xml_file() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let _daemon = Daemon::start(&bus, "");
    let conn = bus.connect().await;
    let virt = VirtualProxy::new(&conn).await.unwrap();
    let device = virt.create("{}").await.unwrap();
    let mut live = std::collections::BTreeSet::new();
    for path in [bus::ROOT, device.as_str()] {
        let proxy = zbus::fdo::IntrospectableProxy::builder(&conn)
            .destination(bus::BUS_NAME)
            .path(path)
            .build()
            .await
            .unwrap();
        live.extend(api_shape(&proxy.introspect().await.unwrap()));
    }
    let file =
        std::fs::read_to_string(bus::project_dir().join("dbus/org.keygate.Keygate1.xml")).unwrap();
    let documented = api_shape(&file);
    let missing: Vec<_> = live.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&live).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "dbus/org.keygate.Keygate1.xml differs from the live API\nnot documented: {missing:#?}\nnot served: {stale:#?}"
    );
    for iface in [
        "Manager",
        "Device",
        "WebAuthn",
        "RelyingParty",
        "Tokens",
        "Virtual",
    ] {
        assert!(
            documented
                .iter()
                .any(|l| l.starts_with(&format!("org.keygate.Keygate1.{iface} "))),
            "{iface} missing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webauthn_client_and_relying_party_over_the_bus() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start_in(&bus, &webauthn_config(), &state);
    let conn = bus.connect().await;
    let other_conn = bus.connect().await;
    let virt = VirtualProxy::new(&conn).await.unwrap();
    let client = WebAuthnProxy::new(&conn).await.unwrap();
    let rp = RelyingPartyProxy::new(&conn).await.unwrap();
    let manager = ManagerProxy::new(&conn).await.unwrap();

    // DeviceAdded reaches the creating connection only.
    let mut added = manager.receive_device_added().await.unwrap();
    let other_manager = ManagerProxy::new(&other_conn).await.unwrap();
    let mut other_added = other_manager.receive_device_added().await.unwrap();
    let path = virt
        .create(r#"{"name":"test key","pin":"4711","presence":"auto"}"#)
        .await
        .unwrap();
    {
        use futures_util::StreamExt;
        let signal = tokio::time::timeout(std::time::Duration::from_secs(5), added.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(signal.args().unwrap().path.as_str(), path.as_str());
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(300), other_added.next())
                .await
                .is_err(),
            "another connection saw DeviceAdded of a software key"
        );
    }
    let listed = manager.list_devices().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|(p, kind, _, _)| p == &path && kind == "virtual")
    );
    assert_eq!(virt.list().await.unwrap().len(), 1);

    // Device object: GetInfo properties and PIN retries.
    let dev = zbus::Proxy::new(
        &conn,
        bus::BUS_NAME,
        path.as_str(),
        "org.keygate.Keygate1.Device",
    )
    .await
    .unwrap();
    let versions: Vec<String> = dev.get_property("Versions").await.unwrap();
    assert!(versions.iter().any(|v| v == "FIDO_2_1"), "{versions:?}");
    let options: std::collections::HashMap<String, bool> =
        dev.get_property("Options").await.unwrap();
    assert_eq!(options.get("clientPin"), Some(&true));
    let (retries, _): (u32, bool) = dev.call("PinRetries", &()).await.unwrap();
    assert_eq!(retries, 8);

    // Interaction signals: only this connection gets them, and they carry the PIN request.
    let (pin_task, seen) = answer_pins(
        client.clone(),
        "4711",
        client.receive_interaction().await.unwrap(),
    );
    let other_client = WebAuthnProxy::new(&other_conn).await.unwrap();
    let (other_task, other_seen) = answer_pins(
        other_client.clone(),
        "0000",
        other_client.receive_interaction().await.unwrap(),
    );

    let (ceremony, creation) = rp
        .start_registration("example.org", "alice", "Alice")
        .await
        .unwrap();
    let creation = inner_options(&creation);
    // Wrong origin for rp.id: SecurityError; malformed JSON: TypeError.
    assert_eq!(
        err_name(
            client
                .make_credential("r0", "https://evil.example", &creation)
                .await
        ),
        "org.keygate.Keygate1.Error.SecurityError"
    );
    assert_eq!(
        err_name(
            client
                .make_credential("r0", "https://example.org", "{")
                .await
        ),
        "org.keygate.Keygate1.Error.TypeError"
    );
    let response = client
        .make_credential("r1", "https://example.org", &creation)
        .await
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&response).unwrap();
    assert_eq!(parsed["type"], "public-key");
    let credential_id = rp.finish_registration(&ceremony, &response).await.unwrap();
    assert_eq!(parsed["id"], credential_id.as_str());
    assert!(seen.lock().unwrap().iter().any(|k| k == "pin"));
    assert!(
        other_seen.lock().unwrap().is_empty(),
        "interaction broadcast"
    );

    // Authentication, then restart in the middle of the next ceremony.
    let (ceremony, request) = rp
        .start_authentication("example.org", "alice")
        .await
        .unwrap();
    let assertion = client
        .get_assertion("r2", "https://example.org", &inner_options(&request))
        .await
        .unwrap();
    let result = rp
        .finish_authentication(&ceremony, &assertion)
        .await
        .unwrap();
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    assert_eq!(result["user"], "alice");
    assert_eq!(result["user_verified"], true);
    assert_eq!(
        err_name(rp.finish_authentication(&ceremony, &assertion).await),
        "org.keygate.Keygate1.Error.NotFound",
        "a ceremony is single use"
    );

    let (ceremony, request) = rp
        .start_authentication("example.org", "alice")
        .await
        .unwrap();
    let assertion = client
        .get_assertion("r3", "https://example.org", &inner_options(&request))
        .await
        .unwrap();
    pin_task.abort();
    other_task.abort();
    assert!(daemon.stop().success());
    let mut daemon = Daemon::start_in(&bus, &webauthn_config(), &state);
    let rp = RelyingPartyProxy::new(&conn).await.unwrap();
    let result = rp
        .finish_authentication(&ceremony, &assertion)
        .await
        .unwrap();
    assert!(result.contains("\"user\":\"alice\""), "{result}");
    // Malformed response JSON: a named error, and the daemon stays up.
    let (ceremony, _) = rp
        .start_authentication("example.org", "alice")
        .await
        .unwrap();
    assert_eq!(
        err_name(rp.finish_authentication(&ceremony, "{\"id\":1}").await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    assert!(daemon.is_running());
    assert!(daemon.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_keys_presence_cancel_and_credentials() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let _daemon = Daemon::start(&bus, &webauthn_config());
    let conn = bus.connect().await;
    let virt = VirtualProxy::new(&conn).await.unwrap();
    let client = WebAuthnProxy::new(&conn).await.unwrap();
    let rp = RelyingPartyProxy::new(&conn).await.unwrap();
    let path = virt
        .create(r#"{"pin":"4711","presence":"wait","presence_timeout_ms":20000}"#)
        .await
        .unwrap();
    let (pin_task, seen) = answer_pins(
        client.clone(),
        "4711",
        client.receive_interaction().await.unwrap(),
    );

    // The key waits for a touch: Approve lets the registration through.
    let (ceremony, creation) = rp
        .start_registration("example.org", "bob", "Bob")
        .await
        .unwrap();
    // A discoverable credential, so that the key stores it (credential management lists it).
    let mut creation: serde_json::Value = serde_json::from_str(&inner_options(&creation)).unwrap();
    creation["authenticatorSelection"]["residentKey"] = "required".into();
    creation["authenticatorSelection"]["requireResidentKey"] = true.into();
    let creation = creation.to_string();
    // Approve once the key has asked for a touch (the `touch` interaction).
    let approver = virt.clone();
    let approve_path = path.clone();
    let touches = seen.clone();
    let approve = tokio::spawn(async move {
        for _ in 0..400 {
            if touches.lock().unwrap().iter().any(|k| k == "touch") {
                return approver.approve(&approve_path).await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        false
    });
    let response = client
        .make_credential("p1", "https://example.org", &creation)
        .await
        .unwrap();
    assert!(approve.await.unwrap(), "no presence request was waiting");
    rp.finish_registration(&ceremony, &response).await.unwrap();
    assert!(
        seen.lock().unwrap().iter().any(|k| k == "touch"),
        "{seen:?}"
    );

    // Cancel while the key waits for a touch: AbortError.
    let (_, request) = rp.start_authentication("example.org", "bob").await.unwrap();
    let canceller = client.clone();
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        canceller.cancel("p2").await
    });
    let err = client
        .get_assertion("p2", "https://example.org", &inner_options(&request))
        .await
        .unwrap_err();
    assert_eq!(
        error_name(&err).as_deref(),
        Some("org.keygate.Keygate1.Error.AbortError"),
        "{err}"
    );
    cancel.await.unwrap().unwrap();
    // Presence denied: NotAllowedError.
    virt.set_presence(&path, "deny").await.unwrap();
    let (_, request) = rp.start_authentication("example.org", "bob").await.unwrap();
    assert_eq!(
        err_name(
            client
                .get_assertion("p3", "https://example.org", &inner_options(&request))
                .await
        ),
        "org.keygate.Keygate1.Error.NotAllowedError"
    );
    pin_task.abort();

    // Stored credentials, credential management through the Device object, removal.
    let stored = virt.stored_credentials(&path).await.unwrap();
    assert!(stored.contains("example.org"), "{stored}");
    let dev = zbus::Proxy::new(
        &conn,
        bus::BUS_NAME,
        path.as_str(),
        "org.keygate.Keygate1.Device",
    )
    .await
    .unwrap();
    let creds: String = dev.call("Credentials", &("4711",)).await.unwrap();
    let creds: serde_json::Value = serde_json::from_str(&creds).unwrap();
    let id = creds[0]["credential_id"].as_str().unwrap().to_owned();
    assert_eq!(creds[0]["rp_id"], "example.org");
    let wrong: zbus::Result<String> = dev.call("Credentials", &("0000",)).await;
    assert_eq!(err_name(wrong), "org.keygate.Keygate1.Error.Rejected");
    let () = dev
        .call("DeleteCredential", &("4711", id.as_str()))
        .await
        .unwrap();
    let creds: String = dev.call("Credentials", &("4711",)).await.unwrap();
    assert_eq!(creds, "[]");
    let () = dev.call("ChangePin", &("4711", "123456")).await.unwrap();
    let (retries, _): (u32, bool) = dev.call("PinRetries", &()).await.unwrap();
    assert_eq!(retries, 8);
    virt.power_cycle(&path).await.unwrap();
    virt.remove(&path).await.unwrap();
    assert_eq!(
        err_name(virt.remove(&path).await),
        "org.keygate.Keygate1.Error.NotFound"
    );
    assert!(virt.list().await.unwrap().is_empty());
    // Bad options are named errors.
    assert_eq!(
        err_name(virt.create(r#"{"presence":"sometimes"}"#).await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
    assert_eq!(
        err_name(virt.create("[1,2").await),
        "org.keygate.Keygate1.Error.InvalidArgs"
    );
}

/// A software token that locked itself after wrong PINs: its owner reads the unlock challenge
/// to the helpdesk, the helpdesk's code (from the server's seed) unlocks it with a new PIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_token_pin_change_lock_and_helpdesk_unlock() {
    if skip() {
        return;
    }
    let bus = Bus::session();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut daemon = Daemon::start_in(&bus, &tokens_config(), &state);
    let conn = bus.connect().await;
    let tokens = tokens_proxy(&conn).await;
    let seed = b"12345678901234567890";
    let spec = serde_json::json!({
        "user": "frank", "kind": "hotp", "digits": 8, "serial": "0077000001",
        "seed_hex": "3132333435363738393031323334353637383930",
        "software": {"pin": "24680"},
    });
    let (serial, _, _) = tokens.create(&spec.to_string()).await.unwrap();
    assert_eq!(serial, "0077000001");

    // PIN change; the old PIN then counts as a wrong one.
    tokens
        .soft_change_pin(&serial, "24680", "13579")
        .await
        .unwrap();
    assert!(
        err_name(tokens.soft_change_pin(&serial, "13579", "12").await).ends_with("InvalidArgs"),
        "a malformed new PIN is refused"
    );
    let wrong = tokens.soft_code(&serial, "24680").await.unwrap_err();
    assert!(wrong.to_string().contains("4 tries left"), "{wrong}");
    assert!(
        err_name(tokens.soft_unlock_challenge(&serial).await).ends_with("InvalidArgs"),
        "no unlock challenge before the lock"
    );
    for _ in 0..4 {
        let _ = tokens.soft_code(&serial, "00000").await;
    }
    assert!(err_name(tokens.soft_code(&serial, "13579").await).ends_with("Locked"));

    // The challenge stays the same until answered, across a restart.
    let first = tokens.soft_unlock_challenge(&serial).await.unwrap();
    assert!(
        first.len() == 8 && first.bytes().all(|b| b.is_ascii_digit()),
        "{first}"
    );
    assert!(daemon.stop().success());
    drop(tokens);
    let mut daemon = Daemon::start_in(&bus, &tokens_config(), &state);
    let tokens = tokens_proxy(&conn).await;
    assert_eq!(tokens.soft_unlock_challenge(&serial).await.unwrap(), first);

    // A wrong code is rejected and uses the challenge up.
    let right_for_first = tokens.soft_unlock_code(&serial, &first).await.unwrap();
    let wrong_code = if right_for_first == "0000000000" {
        "1111111111"
    } else {
        "0000000000"
    };
    assert!(err_name(tokens.soft_unlock(&serial, wrong_code, "97531").await).ends_with("Rejected"));
    assert!(
        err_name(tokens.soft_unlock(&serial, &right_for_first, "97531").await)
            .ends_with("InvalidArgs"),
        "the code for a used challenge no longer unlocks"
    );
    let second = tokens.soft_unlock_challenge(&serial).await.unwrap();
    assert_ne!(second, first);

    // The helpdesk's code comes from the server's copy of the seed.
    let code = tokens.soft_unlock_code(&serial, &second).await.unwrap();
    assert_eq!(
        code,
        keygate::otp::soft_unlock::unlock_code(seed, &serial, &second).unwrap()
    );
    assert!(err_name(tokens.soft_unlock_code(&serial, "1234").await).ends_with("InvalidArgs"));
    assert!(err_name(tokens.soft_unlock_code("0077999999", &second).await).ends_with("NotFound"));
    tokens.soft_unlock(&serial, &code, "97531").await.unwrap();
    assert!(err_name(tokens.soft_unlock(&serial, &code, "97531").await).ends_with("InvalidArgs"));

    // Unlocked with the new PIN; the counter went on where it was (codes 0 and 1 unused).
    let soft = tokens.soft_code(&serial, "97531").await.unwrap();
    assert_eq!(soft, hotp8(seed, 0));
    assert!(tokens.verify_code(&serial, &soft).await.unwrap().0);
    assert!(err_name(tokens.soft_code(&serial, "13579").await).ends_with("Rejected"));

    // The audit trail has every step of the procedure, and never the unlock code.
    let audit = tokens.audit_log(&serial, "", 0).await.unwrap();
    let records: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let steps: Vec<(String, String, String)> = records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"].as_str().unwrap().starts_with("soft-unlock"))
        .map(|r| {
            let text = |name: &str| r[name].as_str().unwrap_or("").to_owned();
            (text("operation"), text("result"), text("reason"))
        })
        .collect();
    let step = |op: &str, result: &str, reason: &str| (op.into(), result.into(), reason.into());
    assert_eq!(
        steps,
        vec![
            step("soft-unlock-code", "ok", ""),
            step("soft-unlock", "rejected", "wrong-unlock-code"),
            step("soft-unlock", "rejected", "refused"),
            step("soft-unlock-code", "ok", ""),
            step("soft-unlock", "ok", ""),
            step("soft-unlock", "rejected", "refused"),
        ],
        "{audit}"
    );
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["operation"].as_str().unwrap().starts_with("soft-unlock"))
            .all(|r| r["user"] == "frank" && r["serial"] == "0077000001"),
        "{audit}"
    );
    assert!(!audit.contains(&code) && !audit.contains(&right_for_first));
    let frank = tokens.audit_log("", "frank", 2).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&frank)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(err_name(tokens.audit_log("", "", 10_001).await).ends_with("InvalidArgs"));

    // After PANIC no unlock code is given for the revoked token.
    tokens.revoke_user("frank").await.unwrap();
    assert!(
        err_name(tokens.soft_unlock_code(&serial, &second).await).ends_with("InvalidArgs"),
        "a revoked token gets no unlock code"
    );
    assert!(daemon.stop().success());
}
