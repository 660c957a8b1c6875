//! Real FIDO security keys through `/dev/hidraw*`: enumeration by the FIDO usage page 0xF1D0
//! through hidapi (`linux-native-basic-udev` backend, pure Rust), and a host-end
//! [`ReportPipe`] on a device.
//!
//! hidapi opens the node, checks it is a hidraw device and reads its report descriptor (which
//! must declare the FIDO usage page); the pipe then opens the node non-blocking and registers it
//! with tokio, so no thread blocks in hidapi and `recv` is cancel-safe (one `read` returns one
//! whole report).
//!
//! hidapi does not report `HID_PHYS`, so [`enumerate`] reads it from the HID device's `uevent`
//! in sysfs ([`hid_properties`]): keygated recognises its own uhid keys by it
//! ([`HidrawInfo::is_keygate_virtual`]).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::fd::register;
use super::{BoxFuture, HidError, REPORT_LEN, Report, ReportPipe};

/// The FIDO Alliance HID usage page (CTAP 2.1 §11.2.8.1).
pub const FIDO_USAGE_PAGE: u16 = 0xf1d0;
/// The CTAPHID usage inside the FIDO usage page.
pub const FIDO_USAGE_CTAPHID: u16 = 0x01;

/// A FIDO HID device found by [`enumerate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HidrawInfo {
    /// Device node, e.g. `/dev/hidraw3`.
    pub path: PathBuf,
    /// Vendor id.
    pub vendor: u16,
    /// Product id.
    pub product: u16,
    /// Product name, if the device has one.
    pub product_string: Option<String>,
    /// Manufacturer name, if the device has one.
    pub manufacturer_string: Option<String>,
    /// Serial number, if the device has one.
    pub serial_number: Option<String>,
    /// Release number (bcdDevice).
    pub release_number: u16,
    /// Usage page (always 0xF1D0 here).
    pub usage_page: u16,
    /// Usage (0x01 CTAPHID).
    pub usage: u16,
    /// The HID device's physical location (`HID_PHYS` in sysfs), if readable.
    pub phys: Option<String>,
}

impl HidrawInfo {
    /// Whether this node is one of keygated's own uhid software keys
    /// ([`super::uhid::KEYGATE_VIRTUAL_PHYS`]); keygated already lists those as virtual
    /// devices.
    pub fn is_keygate_virtual(&self) -> bool {
        self.phys.as_deref() == Some(super::uhid::KEYGATE_VIRTUAL_PHYS)
    }
}

/// Where the kernel lists hidraw nodes (`/sys/class/hidraw/hidrawN/device` is the HID device).
pub const SYSFS_CLASS_HIDRAW: &str = "/sys/class/hidraw";

/// The properties of the HID device behind hidraw node `node` (`HID_NAME`, `HID_PHYS`,
/// `HID_UNIQ`, `HID_ID`, ...), read from `<sysfs_class_hidraw>/<node name>/device/uevent`.
pub fn hid_properties(
    sysfs_class_hidraw: &Path,
    node: &Path,
) -> Result<HashMap<String, String>, HidError> {
    let name = node
        .file_name()
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .ok_or_else(|| HidError::NotFound(node.display().to_string()))?;
    let uevent = sysfs_class_hidraw.join(name).join("device").join("uevent");
    let text = std::fs::read_to_string(&uevent).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => HidError::NotFound(uevent.display().to_string()),
        _ => HidError::Io(err),
    })?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect())
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Every hidraw device whose report descriptor declares the FIDO usage page and the CTAPHID
/// usage, one entry per device node, sorted by path.
pub fn enumerate() -> Result<Vec<HidrawInfo>, HidError> {
    let api = hidapi::HidApi::new()?;
    let mut found: Vec<HidrawInfo> = api
        .device_list()
        .filter(|d| d.usage_page() == FIDO_USAGE_PAGE && d.usage() == FIDO_USAGE_CTAPHID)
        .map(|d| HidrawInfo {
            path: PathBuf::from(d.path().to_string_lossy().into_owned()),
            vendor: d.vendor_id(),
            product: d.product_id(),
            product_string: non_empty(d.product_string()),
            manufacturer_string: non_empty(d.manufacturer_string()),
            serial_number: non_empty(d.serial_number()),
            release_number: d.release_number(),
            usage_page: d.usage_page(),
            usage: d.usage(),
            phys: None,
        })
        .collect();
    for info in &mut found {
        info.phys = hid_properties(Path::new(SYSFS_CLASS_HIDRAW), &info.path)
            .ok()
            .and_then(|mut props| props.remove("HID_PHYS"));
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    Ok(found)
}

/// [`enumerate`] on a blocking thread, for async callers (sysfs scanning can block).
pub async fn enumerate_async() -> Result<Vec<HidrawInfo>, HidError> {
    tokio::task::spawn_blocking(enumerate)
        .await
        .map_err(|err| HidError::Hidapi(format!("enumeration task failed: {err}")))?
}

/// Open a hidraw node as the host end of a report pipe (must be called inside a tokio
/// runtime).
pub fn open(path: impl AsRef<Path>) -> Result<HidrawPipe, HidError> {
    let path = path.as_ref();
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| HidError::NotFound(path.display().to_string()))?;
    let api = hidapi::HidApi::new()?;
    let device = api.open_path(&c_path)?;
    let mut descriptor = [0u8; 4096];
    let len = device.get_report_descriptor(&mut descriptor)?;
    if !declares_fido_usage_page(descriptor.get(..len).unwrap_or(&[])) {
        return Err(HidError::NotFound(format!(
            "{} is not a FIDO HID device",
            path.display()
        )));
    }
    drop(device);
    // hidapi's handle does not expose its descriptor, so the pipe opens the node itself.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    let fd = register(file, Interest::READABLE | Interest::WRITABLE)?;
    Ok(HidrawPipe {
        fd,
        path: path.to_path_buf(),
    })
}

/// Whether a report descriptor opens with the FIDO usage page item (`06 d0 f1`) anywhere in its
/// main items: a cheap check that the node is a FIDO interface before talking CTAPHID to it.
fn declares_fido_usage_page(descriptor: &[u8]) -> bool {
    descriptor.windows(3).any(|w| w == [0x06, 0xd0, 0xf1])
}

/// The host end of a report pipe on a hidraw node.
#[derive(Debug)]
pub struct HidrawPipe {
    fd: AsyncFd<File>,
    path: PathBuf,
}

impl HidrawPipe {
    /// The device node.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn send_report(&self, report: &Report) -> Result<(), HidError> {
        // hidraw wants the report number first: 0 for devices without report ids.
        let mut out = [0u8; REPORT_LEN + 1];
        out[1..].copy_from_slice(report);
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| (&mut fd.get_ref()).write(&out)) {
                Ok(Ok(n)) if n == out.len() => return Ok(()),
                Ok(Ok(n)) => return Err(HidError::BadReportLength(n)),
                Ok(Err(err)) => return Err(map_gone(err)),
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv_report(&self) -> Result<Report, HidError> {
        let mut buf = [0u8; REPORT_LEN + 1];
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| (&mut fd.get_ref()).read(&mut buf)) {
                Ok(Ok(0)) => return Err(HidError::Closed),
                Ok(Ok(n)) => return super::report_from_slice(buf.get(..n).unwrap_or(&[])),
                Ok(Err(err)) => return Err(map_gone(err)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// A removed device shows up as EIO / ENODEV: report it as closed.
fn map_gone(err: io::Error) -> HidError {
    match err.raw_os_error() {
        Some(libc::EIO) | Some(libc::ENODEV) => HidError::Closed,
        _ => HidError::Io(err),
    }
}

impl ReportPipe for HidrawPipe {
    fn send<'a>(&'a mut self, report: &'a Report) -> BoxFuture<'a, Result<(), HidError>> {
        Box::pin(self.send_report(report))
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Report, HidError>> {
        Box::pin(self.recv_report())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerate_never_fails_on_a_machine_without_keys() {
        // The build machine has hidraw but no FIDO keys; whatever is there must not be
        // mistaken for one.
        let found = enumerate().unwrap();
        assert!(found.iter().all(|d| d.usage_page == FIDO_USAGE_PAGE));
    }

    #[test]
    fn fido_descriptor_is_recognised() {
        assert!(declares_fido_usage_page(
            &crate::hid::uhid::FIDO_REPORT_DESCRIPTOR
        ));
        // A boot keyboard: usage page 0x01.
        assert!(!declares_fido_usage_page(&[
            0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0xc0
        ]));
    }

    /// A fake sysfs: `class/hidraw/<node>/device/uevent` as the kernel lays it out.
    fn fake_sysfs(nodes: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (node, uevent) in nodes {
            let device = root.path().join(node).join("device");
            std::fs::create_dir_all(&device).unwrap();
            std::fs::write(device.join("uevent"), uevent).unwrap();
        }
        root
    }

    fn info(path: &str, phys: Option<String>) -> HidrawInfo {
        HidrawInfo {
            path: PathBuf::from(path),
            vendor: 0x1209,
            product: 0xf1d0,
            product_string: None,
            manufacturer_string: None,
            serial_number: None,
            release_number: 0,
            usage_page: FIDO_USAGE_PAGE,
            usage: FIDO_USAGE_CTAPHID,
            phys,
        }
    }

    #[test]
    fn keygate_virtual_keys_are_recognised_by_their_phys() {
        let sysfs = fake_sysfs(&[
            (
                "hidraw0",
                "DRIVER=hid-generic\nHID_ID=0003:00001209:0000F1D0\nHID_NAME=my key\n\
                 HID_PHYS=keygate-virtual\nHID_UNIQ=1000\nMODALIAS=hid:b0003g0001v00001209p0000F1D0\n",
            ),
            (
                "hidraw1",
                "HID_ID=0003:00001050:00000407\nHID_NAME=Yubico YubiKey OTP+FIDO+CCID\n\
                 HID_PHYS=usb-0000:00:14.0-2/input1\nHID_UNIQ=\n",
            ),
            (
                "hidraw2",
                "HID_NAME=keygate-virtual\nHID_UNIQ=keygate-virtual\n",
            ),
        ]);
        let phys = |node: &str| {
            hid_properties(sysfs.path(), Path::new(node))
                .ok()
                .and_then(|mut p| p.remove("HID_PHYS"))
        };
        let ours = phys("/dev/hidraw0");
        assert_eq!(
            ours.as_deref(),
            Some(crate::hid::uhid::KEYGATE_VIRTUAL_PHYS)
        );
        let props = hid_properties(sysfs.path(), Path::new("/dev/hidraw0")).unwrap();
        assert_eq!(props["HID_UNIQ"], "1000");
        assert_eq!(props["HID_NAME"], "my key");
        assert!(info("/dev/hidraw0", ours).is_keygate_virtual());
        // A real key, a device that only names itself like us, an unreadable node.
        assert!(!info("/dev/hidraw1", phys("/dev/hidraw1")).is_keygate_virtual());
        assert!(!info("/dev/hidraw2", phys("/dev/hidraw2")).is_keygate_virtual());
        assert!(!info("/dev/hidraw9", phys("/dev/hidraw9")).is_keygate_virtual());
        assert!(matches!(
            hid_properties(sysfs.path(), Path::new("/dev/hidraw9")),
            Err(HidError::NotFound(_))
        ));
        assert!(hid_properties(sysfs.path(), Path::new("/")).is_err());
        assert!(hid_properties(sysfs.path(), Path::new("/dev/..")).is_err());
    }

    #[tokio::test]
    async fn async_enumeration_agrees() {
        assert_eq!(enumerate_async().await.unwrap(), enumerate().unwrap());
    }

    #[tokio::test]
    async fn open_missing_node_fails_cleanly() {
        assert!(open("/dev/hidraw-does-not-exist").is_err());
    }
}
