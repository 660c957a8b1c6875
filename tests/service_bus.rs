//! keygated on a private dbus-daemon: Manager, Tokens, bad input, restart, introspection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;

use std::process::Command;

use bus::{Bus, Daemon};
use keygate::service::client::{ManagerProxy, error_name};

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
