//! USB security keys: hidraw enumeration (FIDO usage page) at startup and every
//! [`SCAN_INTERVAL`] after (hotplug by polling: no netlink socket, so the unit keeps
//! `RestrictAddressFamilies=AF_UNIX`). Each new key is opened through [`crate::device::Device`],
//! published as a Device object and announced with `DeviceAdded`; a key that disappears is
//! removed with `DeviceRemoved`. keygated's own uhid software keys (HID_PHYS
//! [`crate::hid::uhid::KEYGATE_VIRTUAL_PHYS`]) are skipped: they are already listed as virtual
//! devices.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use zbus::Connection;

use super::Shared;
use super::device_object::DeviceObject;
use super::devices::{DeviceHandle, DeviceKind, DeviceRecord};
use super::names::{MANAGER_IFACE, ROOT_PATH};
use crate::device::{Device, DeviceOptions};
use crate::hid::ReportPipe;
use crate::hid::hidraw::HidrawInfo;

/// How often hidraw is scanned for keys plugged in or out.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(2);

fn label(info: &HidrawInfo) -> String {
    match (&info.manufacturer_string, &info.product_string) {
        (Some(m), Some(p)) if !p.starts_with(m.as_str()) => format!("{m} {p}"),
        (_, Some(p)) => p.clone(),
        (Some(m), None) => m.clone(),
        (None, None) => format!("FIDO key {:04x}:{:04x}", info.vendor, info.product),
    }
}

async fn add(shared: &Arc<Shared>, conn: &Connection, info: &HidrawInfo) {
    let path = info.path.clone();
    let opened = tokio::task::spawn_blocking(move || crate::hid::hidraw::open(&path)).await;
    let pipe = match opened {
        Ok(Ok(pipe)) => pipe,
        Ok(Err(e)) => {
            tracing::debug!(node = %info.path.display(), error = %e, "cannot open security key");
            return;
        }
        Err(_) => return,
    };
    let pipe: Box<dyn ReportPipe> = Box::new(pipe);
    let device = match Device::open(pipe, DeviceOptions::default()).await {
        Ok(device) => device,
        Err(e) => {
            tracing::info!(node = %info.path.display(), error = %e, "security key did not answer CTAPHID_INIT");
            return;
        }
    };
    let handle = Arc::new(DeviceHandle {
        record: DeviceRecord {
            path: shared.devices.allocate_path(DeviceKind::Usb),
            kind: DeviceKind::Usb,
            name: label(info),
            owner: None,
            node: Some(info.path.clone()),
        },
        info: std::sync::Mutex::new(device.info().cloned().unwrap_or_default()),
        device: tokio::sync::Mutex::new(device),
        soft: None,
        stop: shared.cancel.child_token(),
    });
    let object_path = handle.record.path.clone();
    if let Err(e) = conn
        .object_server()
        .at(
            &object_path,
            DeviceObject::new(Arc::clone(shared), Arc::clone(&handle)),
        )
        .await
    {
        tracing::warn!(error = %e, "cannot publish security key");
        return;
    }
    shared.devices.insert(Arc::clone(&handle));
    tracing::info!(node = %info.path.display(), path = %object_path, name = %handle.record.name, "security key added");
    let body = (
        object_path,
        "usb",
        handle.record.name.as_str(),
        super::devices::SHARED_OWNER,
    );
    let _ = conn
        .emit_signal(None::<&str>, ROOT_PATH, MANAGER_IFACE, "DeviceAdded", &body)
        .await;
}

async fn remove(shared: &Arc<Shared>, conn: &Connection, handle: &Arc<DeviceHandle>) {
    let path = handle.record.path.clone();
    handle.stop.cancel();
    shared.devices.remove(path.as_str());
    let _ = conn.object_server().remove::<DeviceObject, _>(&path).await;
    tracing::info!(path = %path, "security key removed");
    let _ = conn
        .emit_signal(
            None::<&str>,
            ROOT_PATH,
            MANAGER_IFACE,
            "DeviceRemoved",
            &(path,),
        )
        .await;
}

/// One scan: adds new keys, removes unplugged ones.
pub async fn scan_once(shared: &Arc<Shared>, conn: &Connection) {
    let found = match crate::hid::hidraw::enumerate_async().await {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, "hidraw enumeration failed");
            return;
        }
    };
    let found: Vec<HidrawInfo> = found
        .into_iter()
        .filter(|i| !i.is_keygate_virtual())
        .collect();
    let present: HashSet<&std::path::Path> = found.iter().map(|i| i.path.as_path()).collect();
    let known = shared.devices.all();
    for handle in &known {
        if let Some(node) = &handle.record.node
            && !present.contains(node.as_path())
        {
            remove(shared, conn, handle).await;
        }
    }
    let known_nodes: HashSet<std::path::PathBuf> =
        known.iter().filter_map(|h| h.record.node.clone()).collect();
    for info in &found {
        if !known_nodes.contains(&info.path) {
            add(shared, conn, info).await;
        }
    }
}

/// Scans until shutdown.
pub async fn watch(shared: Arc<Shared>, conn: Connection) {
    loop {
        scan_once(&shared, &conn).await;
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(SCAN_INTERVAL) => {}
        }
    }
}
