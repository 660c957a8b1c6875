//! `org.keygate.Keygate1.Manager` at `/org/keygate/Keygate1`: version and the list of
//! authenticators, with `DeviceAdded` / `DeviceRemoved` signals.

use std::sync::Arc;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::{Connection, OwnedObjectPath, interface};

use super::Shared;
use super::call::{Allowed, Call};
use super::error::BusError;

/// One authenticator as listed by `ListDevices`: (object path, kind, product name, owner uid).
///
/// `kind` is `usb`, `virtual` or `tpm`; `owner uid` is the owning uid of a software key and
/// `0xFFFFFFFF` for shared devices.
pub type DeviceEntry = (OwnedObjectPath, String, String, u32);

/// The Manager interface.
#[derive(Debug)]
pub struct Manager {
    shared: Arc<Shared>,
}

impl Manager {
    /// A Manager over the daemon's shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[interface(name = "org.keygate.Keygate1.Manager")]
impl Manager {
    /// keygate's version (`CARGO_PKG_VERSION`).
    #[zbus(property(emits_changed_signal = "const"))]
    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// The authenticators the caller may use: shared USB keys, and the caller's own software keys
    /// (root sees all).
    #[zbus(out_args("devices"))]
    async fn list_devices(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<DeviceEntry>, BusError> {
        let call = Call::enter(&self.shared, conn, &header, Allowed::Anyone).await?;
        Ok(self.shared.devices.list_for(&call.caller))
    }

    /// A device appeared (hotplug, or a software key was created).
    #[zbus(signal)]
    pub async fn device_added(
        emitter: &SignalEmitter<'_>,
        path: OwnedObjectPath,
        kind: &str,
        name: &str,
        owner: u32,
    ) -> zbus::Result<()>;

    /// A device went away.
    #[zbus(signal)]
    pub async fn device_removed(
        emitter: &SignalEmitter<'_>,
        path: OwnedObjectPath,
    ) -> zbus::Result<()>;
}
