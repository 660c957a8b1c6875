//! keygated on a private dbus-daemon: Manager, Tokens, bad input, restart, introspection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;

use std::process::Command;

use bus::{Bus, Daemon};
use keygate::service::client::{ManagerProxy, TokensProxy, error_name};

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

const ADMIN_VERIFIER: &str = "admin_uids = [0]\nverifier_uids = [0]\nmax_argument_bytes = 65536\n\
[soft_tokens]\nkdf_memory_kib = 64\nkdf_passes = 1\n";

fn tokens_config() -> String {
    let uid = nix::unistd::getuid().as_raw();
    ADMIN_VERIFIER.replace("[0]", &format!("[{uid}]"))
}

async fn tokens_proxy(conn: &zbus::Connection) -> TokensProxy<'static> {
    TokensProxy::new(conn).await.unwrap()
}

fn err_name<T: std::fmt::Debug>(result: zbus::Result<T>) -> String {
    error_name(&result.expect_err("expected an error")).unwrap_or_default()
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

    // Export encrypted under a password, then check python-free: the XML has no plain secret.
    let export = tokens
        .export_pskc(&["987654321"], r#"{"password":"correct horse"}"#)
        .await
        .unwrap();
    assert!(
        export.contains("EncryptedValue") && !export.contains("PlainValue"),
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
