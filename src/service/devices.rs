//! The daemon's list of authenticators: USB keys, software keys (owned by a uid), later the TPM key.
//! Each has an object path under `/org/keygate/Keygate1/devices/`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use zbus::OwnedObjectPath;

use super::caller::Caller;
use super::manager::DeviceEntry;
use super::names::DEVICES_PATH;

/// `owner` value in `ListDevices` for a device shared by everybody.
pub const SHARED_OWNER: u32 = u32::MAX;

/// Kind of an authenticator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A USB security key found by hidraw enumeration.
    Usb,
    /// A keygate software security key.
    Virtual,
    /// The TPM platform authenticator.
    Tpm,
}

impl DeviceKind {
    /// The string used on the bus.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Usb => "usb",
            DeviceKind::Virtual => "virtual",
            DeviceKind::Tpm => "tpm",
        }
    }
}

/// One registered device.
#[derive(Debug, Clone)]
pub struct DeviceRecord {
    /// Object path.
    pub path: OwnedObjectPath,
    /// Kind.
    pub kind: DeviceKind,
    /// Product name.
    pub name: String,
    /// Owning uid (software keys); `None` for shared devices.
    pub owner: Option<u32>,
}

impl DeviceRecord {
    /// Whether `caller` may see and use this device.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        caller.uid == 0 || self.owner.is_none_or(|owner| owner == caller.uid)
    }

    fn entry(&self) -> DeviceEntry {
        (
            self.path.clone(),
            self.kind.as_str().to_owned(),
            self.name.clone(),
            self.owner.unwrap_or(SHARED_OWNER),
        )
    }
}

/// The registry.
#[derive(Debug, Default)]
pub struct DeviceRegistry {
    records: Mutex<Vec<DeviceRecord>>,
    next_id: AtomicU64,
}

impl DeviceRegistry {
    /// A fresh object path for a new device.
    pub fn allocate_path(&self, kind: DeviceKind) -> OwnedObjectPath {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = format!("{DEVICES_PATH}/{}{id}", kind.as_str());
        // The path is built from a constant prefix, an ASCII word and digits: always valid.
        OwnedObjectPath::try_from(path)
            .unwrap_or_else(|_| OwnedObjectPath::try_from(DEVICES_PATH).unwrap_or_default())
    }

    /// Adds a device.
    pub fn insert(&self, record: DeviceRecord) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }

    /// Removes a device by path, returning it.
    pub fn remove(&self, path: &str) -> Option<DeviceRecord> {
        let mut records = self.records.lock().ok()?;
        let index = records.iter().position(|r| r.path.as_str() == path)?;
        Some(records.remove(index))
    }

    /// The device at `path`.
    pub fn get(&self, path: &str) -> Option<DeviceRecord> {
        let records = self.records.lock().ok()?;
        records.iter().find(|r| r.path.as_str() == path).cloned()
    }

    /// Devices visible to `caller`.
    pub fn list_for(&self, caller: &Caller) -> Vec<DeviceEntry> {
        match self.records.lock() {
            Ok(records) => records
                .iter()
                .filter(|r| r.visible_to(caller))
                .map(DeviceRecord::entry)
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// All devices (for shutdown and tests).
    pub fn all(&self) -> Vec<DeviceRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_filter() {
        let reg = DeviceRegistry::default();
        let p1 = reg.allocate_path(DeviceKind::Virtual);
        let p2 = reg.allocate_path(DeviceKind::Usb);
        assert_ne!(p1, p2);
        assert!(
            p1.as_str()
                .starts_with("/org/keygate/Keygate1/devices/virtual")
        );
        reg.insert(DeviceRecord {
            path: p1.clone(),
            kind: DeviceKind::Virtual,
            name: "soft".into(),
            owner: Some(1000),
        });
        reg.insert(DeviceRecord {
            path: p2,
            kind: DeviceKind::Usb,
            name: "usb".into(),
            owner: None,
        });
        let c = |uid| Caller {
            unique_name: ":1.2".into(),
            uid,
            gids: vec![],
        };
        assert_eq!(reg.list_for(&c(1000)).len(), 2);
        assert_eq!(reg.list_for(&c(1001)).len(), 1);
        assert_eq!(reg.list_for(&c(0)).len(), 2);
        assert!(reg.remove(p1.as_str()).is_some());
        assert_eq!(reg.list_for(&c(1000)).len(), 1);
    }
}
