//! The daemon's authenticators: USB keys, software keys (owned by a uid), later the TPM key.
//! Each has an object path under `/org/keygate/Keygate1/devices/` and a host-side
//! [`Device`] driver behind an async mutex: one request at a time per device, as on the wire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use zbus::OwnedObjectPath;

use super::caller::Caller;
use super::manager::DeviceEntry;
use super::names::DEVICES_PATH;
use crate::authenticator::SharedSoftKey;
use crate::ctap2::commands::get_info;
use crate::device::Device;

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

/// What the bus shows of a device.
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
    /// hidraw node of a USB key (to notice unplugging).
    pub node: Option<std::path::PathBuf>,
}

impl DeviceRecord {
    /// Whether `caller` may see this device (root sees every device).
    pub fn visible_to(&self, caller: &Caller) -> bool {
        caller.uid == 0 || self.usable_by(caller)
    }

    /// Whether `caller` may use this device in a WebAuthn request: shared devices and the
    /// caller's own software keys (also for root: nobody uses another user's software key).
    pub fn usable_by(&self, caller: &Caller) -> bool {
        self.owner.is_none_or(|owner| owner == caller.uid)
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

/// One device: its record, its driver, and for software keys the key itself.
pub struct DeviceHandle {
    /// Bus-visible description.
    pub record: DeviceRecord,
    /// The host-side driver; one request at a time.
    pub device: tokio::sync::Mutex<Device>,
    /// authenticatorGetInfo as last read (updated after PIN changes and resets).
    pub info: Mutex<get_info::Response>,
    /// The software key behind a virtual device.
    pub soft: Option<SharedSoftKey>,
    /// Stops the device's tasks (serve loop of a software key).
    pub stop: CancellationToken,
}

impl std::fmt::Debug for DeviceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceHandle")
            .field("record", &self.record)
            .field("soft", &self.soft.is_some())
            .finish_non_exhaustive()
    }
}

impl DeviceHandle {
    /// A snapshot of GetInfo.
    pub fn info(&self) -> get_info::Response {
        self.info.lock().map(|i| i.clone()).unwrap_or_default()
    }

    /// Replaces the GetInfo snapshot.
    pub fn set_info(&self, info: get_info::Response) {
        if let Ok(mut slot) = self.info.lock() {
            *slot = info;
        }
    }
}

/// The registry.
#[derive(Debug, Default)]
pub struct DeviceRegistry {
    handles: Mutex<Vec<Arc<DeviceHandle>>>,
    next_id: AtomicU64,
}

impl DeviceRegistry {
    /// A fresh object path for a new device.
    pub fn allocate_path(&self, kind: DeviceKind) -> OwnedObjectPath {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = format!("{DEVICES_PATH}/{}{id}", kind.as_str());
        // Built from a constant prefix, an ASCII word and digits: always a valid path.
        OwnedObjectPath::try_from(path)
            .unwrap_or_else(|_| OwnedObjectPath::try_from(DEVICES_PATH).unwrap_or_default())
    }

    /// Keeps counter value `index` (and every one below it) from being allocated again: after
    /// this, [`Self::allocate_path`] hands out `index + 1` or higher. Used at start for the paths
    /// of stored software keys (`virtual_restore`), which must stay theirs. Never moves the
    /// counter back, also when paths are being allocated at the same time.
    pub fn reserve(&self, index: u64) {
        self.next_id
            .fetch_max(index.saturating_add(1), Ordering::Relaxed);
    }

    /// Adds a device.
    pub fn insert(&self, handle: Arc<DeviceHandle>) {
        if let Ok(mut handles) = self.handles.lock() {
            handles.push(handle);
        }
    }

    /// Removes a device by path, returning it.
    pub fn remove(&self, path: &str) -> Option<Arc<DeviceHandle>> {
        let mut handles = self.handles.lock().ok()?;
        let index = handles
            .iter()
            .position(|h| h.record.path.as_str() == path)?;
        Some(handles.remove(index))
    }

    /// The device at `path`.
    pub fn get(&self, path: &str) -> Option<Arc<DeviceHandle>> {
        let handles = self.handles.lock().ok()?;
        handles
            .iter()
            .find(|h| h.record.path.as_str() == path)
            .cloned()
    }

    /// Devices visible to `caller`, as `ListDevices` entries.
    pub fn list_for(&self, caller: &Caller) -> Vec<DeviceEntry> {
        self.all()
            .iter()
            .filter(|h| h.record.visible_to(caller))
            .map(|h| h.record.entry())
            .collect()
    }

    /// Devices `caller` may use for WebAuthn.
    pub fn usable_by(&self, caller: &Caller) -> Vec<Arc<DeviceHandle>> {
        self.all()
            .into_iter()
            .filter(|h| h.record.usable_by(caller))
            .collect()
    }

    /// Number of software keys owned by `uid`.
    pub fn count_owned(&self, uid: u32) -> usize {
        self.all()
            .iter()
            .filter(|h| h.record.owner == Some(uid))
            .count()
    }

    /// All devices.
    pub fn all(&self) -> Vec<Arc<DeviceHandle>> {
        self.handles.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility() {
        let reg = DeviceRegistry::default();
        let p1 = reg.allocate_path(DeviceKind::Virtual);
        let p2 = reg.allocate_path(DeviceKind::Usb);
        assert_ne!(p1, p2);
        assert!(
            p1.as_str()
                .starts_with("/org/keygate/Keygate1/devices/virtual")
        );
        let own = DeviceRecord {
            path: p1,
            kind: DeviceKind::Virtual,
            name: "soft".into(),
            owner: Some(1000),
            node: None,
        };
        let shared = DeviceRecord {
            path: p2,
            kind: DeviceKind::Usb,
            name: "usb".into(),
            owner: None,
            node: None,
        };
        let c = |uid| Caller {
            unique_name: ":1.2".into(),
            uid,
            gids: vec![],
        };
        assert!(own.visible_to(&c(1000)) && own.usable_by(&c(1000)));
        assert!(!own.visible_to(&c(1001)) && !own.usable_by(&c(1001)));
        assert!(own.visible_to(&c(0)) && !own.usable_by(&c(0)));
        assert!(shared.visible_to(&c(1001)) && shared.usable_by(&c(1001)));
        assert_eq!(own.entry().3, 1000);
        assert_eq!(shared.entry().3, SHARED_OWNER);
    }

    fn index_of(path: &OwnedObjectPath) -> u64 {
        let (_, name) = path.as_str().rsplit_once('/').unwrap();
        name.trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap()
    }

    #[test]
    fn reserve_moves_the_counter_past_an_index_and_never_back() {
        let reg = DeviceRegistry::default();
        assert_eq!(index_of(&reg.allocate_path(DeviceKind::Virtual)), 0);
        reg.reserve(7);
        assert_eq!(
            reg.allocate_path(DeviceKind::Virtual).as_str(),
            format!("{DEVICES_PATH}/virtual8")
        );
        // A lower index, or one already allocated, leaves the counter where it is.
        reg.reserve(3);
        reg.reserve(8);
        assert_eq!(index_of(&reg.allocate_path(DeviceKind::Usb)), 9);
        // At the top of the range: saturates instead of wrapping to 0.
        reg.reserve(u64::MAX);
        assert_eq!(index_of(&reg.allocate_path(DeviceKind::Virtual)), u64::MAX);

        // Reserving while other threads allocate: no allocated index is at or below a
        // reservation made before it was handed out, and no index is handed out twice.
        let reg = Arc::new(DeviceRegistry::default());
        let workers: Vec<_> = (0..4u64)
            .map(|n| {
                let reg = Arc::clone(&reg);
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    for i in 0..200u64 {
                        if i % 50 == 0 {
                            let index = n * 1000 + i;
                            reg.reserve(index);
                            let next = index_of(&reg.allocate_path(DeviceKind::Virtual));
                            assert!(next > index, "{next} after reserving {index}");
                            seen.push(next);
                        } else {
                            seen.push(index_of(&reg.allocate_path(DeviceKind::Virtual)));
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all: Vec<u64> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "an index was handed out twice");
    }
}
