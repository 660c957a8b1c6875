//! Client-side proxies of keygate's interfaces, used by keygatectl, the demo, tests and benches.

use zbus::{OwnedObjectPath, proxy};

/// `org.keygate.Keygate1.Manager`.
#[proxy(
    interface = "org.keygate.Keygate1.Manager",
    default_service = "org.keygate.Keygate1",
    default_path = "/org/keygate/Keygate1"
)]
pub trait Manager {
    /// keygate's version.
    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;

    /// (path, kind, name, owner uid) of each device the caller may use.
    fn list_devices(&self) -> zbus::Result<Vec<(OwnedObjectPath, String, String, u32)>>;

    /// A device appeared.
    #[zbus(signal)]
    fn device_added(
        &self,
        path: OwnedObjectPath,
        kind: String,
        name: String,
        owner: u32,
    ) -> zbus::Result<()>;

    /// A device went away.
    #[zbus(signal)]
    fn device_removed(&self, path: OwnedObjectPath) -> zbus::Result<()>;
}

/// The D-Bus error name of a failed call (`org.keygate.Keygate1.Error.NotFound`), if any.
pub fn error_name(err: &zbus::Error) -> Option<String> {
    match err {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_owned()),
        zbus::Error::FDO(fdo) => Some(format!("{}", zbus::DBusError::name(fdo.as_ref()))),
        _ => None,
    }
}
