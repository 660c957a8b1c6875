//! A FIDO HID device created through `/dev/uhid`, so a software key appears to the kernel (and
//! to every hidraw client: browsers, libfido2, our own hidapi enumeration) as a USB security
//! key. The pipe returned is the *device end*: `recv` yields output reports the host wrote to
//! `/dev/hidrawN`, `send` injects input reports.
//!
//! Events are built and parsed as byte arrays following `struct uhid_event` of
//! `<linux/uhid.h>` (packed, native endian): no `unsafe` and no ioctls are involved.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::fd::register;
use super::{BoxFuture, HidError, REPORT_LEN, Report, ReportPipe};

/// The FIDO HID report descriptor (CTAP 2.1 §11.2.8.1): usage page 0xF1D0, usage 0x01
/// (CTAPHID), one 64-byte input report (usage 0x20) and one 64-byte output report (usage 0x21),
/// no report ids.
pub const FIDO_REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance 0xF1D0)
    0x09, 0x01, // Usage (CTAPHID)
    0xa1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Var, Abs)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Var, Abs)
    0xc0, // End Collection
];

/// `BUS_USB` from `<linux/input.h>`.
pub const BUS_USB: u16 = 0x03;

// `enum uhid_event_type` (<linux/uhid.h>).
const UHID_DESTROY: u32 = 1;
const UHID_START: u32 = 2;
const UHID_STOP: u32 = 3;
const UHID_OPEN: u32 = 4;
const UHID_CLOSE: u32 = 5;
const UHID_OUTPUT: u32 = 6;
const UHID_GET_REPORT: u32 = 9;
const UHID_GET_REPORT_REPLY: u32 = 10;
const UHID_CREATE2: u32 = 11;
const UHID_INPUT2: u32 = 12;
const UHID_SET_REPORT: u32 = 13;
const UHID_SET_REPORT_REPLY: u32 = 14;
/// `enum uhid_report_type`: UHID_OUTPUT_REPORT.
const UHID_OUTPUT_REPORT: u8 = 1;
/// `UHID_DATA_MAX` and `HID_MAX_DESCRIPTOR_SIZE`.
const UHID_DATA_MAX: usize = 4096;
/// `sizeof(struct uhid_event)`: type (4) + the largest member, `uhid_create2_req`
/// (128 + 64 + 64 + 2 + 2 + 4 × 4 + 4096 = 4372).
pub const UHID_EVENT_SIZE: usize = 4 + 4372;

// Offsets inside `struct uhid_event` (all members packed).
const CREATE2_NAME: usize = 4;
const CREATE2_PHYS: usize = CREATE2_NAME + 128;
const CREATE2_UNIQ: usize = CREATE2_PHYS + 64;
const CREATE2_RD_SIZE: usize = CREATE2_UNIQ + 64;
const CREATE2_BUS: usize = CREATE2_RD_SIZE + 2;
const CREATE2_VENDOR: usize = CREATE2_BUS + 2;
const CREATE2_PRODUCT: usize = CREATE2_VENDOR + 4;
const CREATE2_VERSION: usize = CREATE2_PRODUCT + 4;
const CREATE2_COUNTRY: usize = CREATE2_VERSION + 4;
const CREATE2_RD_DATA: usize = CREATE2_COUNTRY + 4;
const OUTPUT_DATA: usize = 4;
const OUTPUT_SIZE: usize = OUTPUT_DATA + UHID_DATA_MAX;
const OUTPUT_RTYPE: usize = OUTPUT_SIZE + 2;
const INPUT2_SIZE: usize = 4;
const INPUT2_DATA: usize = 6;

/// `HID_PHYS` of the uhid devices keygated creates for its own software keys (their `HID_UNIQ`
/// is the owner's numeric uid). `udev/72-keygate-virtual.rules` matches this string to give the
/// hidraw node to the owner alone, and keygated's hidraw scan skips devices carrying it
/// ([`super::hidraw::HidrawInfo::is_keygate_virtual`]). Only writers of `/dev/uhid` (root and
/// keygated) choose `phys`; for real USB devices the kernel sets it from the port.
pub const KEYGATE_VIRTUAL_PHYS: &str = "keygate-virtual";

/// `HID_PHYS` of other uhid devices made by keygate (`keygatectl virtual serve --uhid`).
pub const DEFAULT_PHYS: &str = "keygate-uhid";

/// How the virtual device presents itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UhidConfig {
    /// Product name (HID_NAME; at most 127 bytes are kept).
    pub name: String,
    /// Physical location (HID_PHYS; at most 63 bytes).
    pub phys: String,
    /// USB vendor id.
    pub vendor: u16,
    /// USB product id.
    pub product: u16,
    /// Serial number / unique id (HID_UNIQ; at most 63 bytes).
    pub serial: String,
    /// Device version (bcdDevice-like).
    pub version: u32,
}

impl Default for UhidConfig {
    /// `keygate virtual key`, pid.codes test VID 0x1209, PID 0xf1d0.
    fn default() -> Self {
        Self {
            name: "keygate virtual key".to_owned(),
            phys: DEFAULT_PHYS.to_owned(),
            vendor: 0x1209,
            product: 0xf1d0,
            serial: String::new(),
            version: 0x0100,
        }
    }
}

impl UhidConfig {
    /// A software key that keygated serves for the user `owner`: `phys` is
    /// [`KEYGATE_VIRTUAL_PHYS`] and `uniq` the owner's decimal uid, which udev turns into the
    /// hidraw node's owner.
    pub fn keygate_virtual(name: &str, owner: u32) -> Self {
        Self {
            name: name.to_owned(),
            phys: KEYGATE_VIRTUAL_PHYS.to_owned(),
            serial: owner.to_string(),
            ..Self::default()
        }
    }
}

/// A uhid event parsed from the kernel, as far as this module cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UhidEvent {
    /// The kernel bound a HID driver (START) or unbound it (STOP).
    Start,
    Stop,
    /// A hidraw (or other) client opened / closed the device.
    Open,
    Close,
    /// An output report (64 bytes after stripping the leading report id 0).
    Output(Report),
    /// A GET_REPORT / SET_REPORT request that must be answered (with an error: FIDO devices
    /// have no feature reports).
    GetReport {
        id: u32,
    },
    SetReport {
        id: u32,
    },
    /// Something else (ignored), or an output report that is not 64 bytes.
    Other(u32),
    BadOutput(usize),
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn put_str(buf: &mut [u8], at: usize, max: usize, text: &str) {
    // NUL-terminated, truncated to fit.
    let bytes = text.as_bytes();
    let len = bytes.len().min(max - 1);
    put(buf, at, &bytes[..len]);
}

/// The UHID_CREATE2 event for `config`.
pub(crate) fn create2_event(config: &UhidConfig) -> Vec<u8> {
    let mut ev = vec![0u8; UHID_EVENT_SIZE];
    put(&mut ev, 0, &UHID_CREATE2.to_ne_bytes());
    put_str(&mut ev, CREATE2_NAME, 128, &config.name);
    put_str(&mut ev, CREATE2_PHYS, 64, &config.phys);
    put_str(&mut ev, CREATE2_UNIQ, 64, &config.serial);
    put(
        &mut ev,
        CREATE2_RD_SIZE,
        &(FIDO_REPORT_DESCRIPTOR.len() as u16).to_ne_bytes(),
    );
    put(&mut ev, CREATE2_BUS, &BUS_USB.to_ne_bytes());
    put(
        &mut ev,
        CREATE2_VENDOR,
        &u32::from(config.vendor).to_ne_bytes(),
    );
    put(
        &mut ev,
        CREATE2_PRODUCT,
        &u32::from(config.product).to_ne_bytes(),
    );
    put(&mut ev, CREATE2_VERSION, &config.version.to_ne_bytes());
    put(&mut ev, CREATE2_COUNTRY, &0u32.to_ne_bytes());
    put(&mut ev, CREATE2_RD_DATA, &FIDO_REPORT_DESCRIPTOR);
    ev
}

/// The UHID_INPUT2 event carrying one input report (only the used prefix of the struct).
pub(crate) fn input2_event(report: &Report) -> [u8; INPUT2_DATA + REPORT_LEN] {
    let mut ev = [0u8; INPUT2_DATA + REPORT_LEN];
    put(&mut ev, 0, &UHID_INPUT2.to_ne_bytes());
    put(&mut ev, INPUT2_SIZE, &(REPORT_LEN as u16).to_ne_bytes());
    put(&mut ev, INPUT2_DATA, report);
    ev
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    buf.get(at..at + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_ne_bytes)
}

/// Parse an event read from `/dev/uhid`.
pub(crate) fn parse_event(buf: &[u8]) -> Result<UhidEvent, HidError> {
    let kind = u32_at(buf, 0)
        .ok_or_else(|| HidError::Uhid(format!("short event ({} bytes)", buf.len())))?;
    Ok(match kind {
        UHID_START => UhidEvent::Start,
        UHID_STOP => UhidEvent::Stop,
        UHID_OPEN => UhidEvent::Open,
        UHID_CLOSE => UhidEvent::Close,
        UHID_OUTPUT => {
            let size = usize::from(
                u16_at(buf, OUTPUT_SIZE)
                    .ok_or_else(|| HidError::Uhid("short OUTPUT event".into()))?,
            );
            let rtype = buf.get(OUTPUT_RTYPE).copied().unwrap_or(UHID_OUTPUT_REPORT);
            let data = buf
                .get(OUTPUT_DATA..OUTPUT_DATA + size.min(UHID_DATA_MAX))
                .unwrap_or(&[]);
            // Without report ids, hidraw passes the report-id byte 0 in front of the report.
            let report = match data {
                [0, rest @ ..] if rest.len() == REPORT_LEN => rest,
                exact if exact.len() == REPORT_LEN => exact,
                other => return Ok(UhidEvent::BadOutput(other.len())),
            };
            if rtype != UHID_OUTPUT_REPORT {
                return Ok(UhidEvent::Other(kind));
            }
            UhidEvent::Output(super::report_from_slice(report)?)
        }
        UHID_GET_REPORT => UhidEvent::GetReport {
            id: u32_at(buf, 4).unwrap_or(0),
        },
        UHID_SET_REPORT => UhidEvent::SetReport {
            id: u32_at(buf, 4).unwrap_or(0),
        },
        other => UhidEvent::Other(other),
    })
}

/// A GET_REPORT_REPLY or SET_REPORT_REPLY with `err` = EIO.
fn report_reply_event(kind: u32, id: u32) -> [u8; 12] {
    let mut ev = [0u8; 12];
    put(&mut ev, 0, &kind.to_ne_bytes());
    put(&mut ev, 4, &id.to_ne_bytes());
    put(&mut ev, 8, &(libc::EIO as u16).to_ne_bytes());
    ev
}

/// A virtual FIDO HID device on `/dev/uhid`; the device end of a report pipe. Dropping it
/// removes the device (closing `/dev/uhid` destroys it).
#[derive(Debug)]
pub struct UhidDevice {
    fd: AsyncFd<File>,
    config: UhidConfig,
    opened: bool,
}

impl UhidDevice {
    /// The default uhid control node.
    pub const PATH: &'static str = "/dev/uhid";

    /// Create the device through `/dev/uhid` (must be called inside a tokio runtime; needs
    /// write access to /dev/uhid, normally root).
    pub fn create(config: UhidConfig) -> Result<Self, HidError> {
        Self::create_at(Path::new(Self::PATH), config)
    }

    /// Like [`Self::create`] with another control node path.
    pub fn create_at(uhid: &Path, config: UhidConfig) -> Result<Self, HidError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(uhid)
            .map_err(|err| match err.kind() {
                io::ErrorKind::NotFound => HidError::NotFound(uhid.display().to_string()),
                _ => HidError::Io(err),
            })?;
        (&file).write_all(&create2_event(&config))?;
        let fd = register(file, Interest::READABLE | Interest::WRITABLE)?;
        Ok(Self {
            fd,
            config,
            opened: false,
        })
    }

    /// How the device presents itself.
    pub fn config(&self) -> &UhidConfig {
        &self.config
    }

    /// Whether a host currently has the hidraw node open (UHID_OPEN seen, no UHID_CLOSE yet).
    pub fn is_opened(&self) -> bool {
        self.opened
    }

    /// Remove the device from the kernel (UHID_DESTROY) and close the control node.
    pub fn destroy(self) -> Result<(), HidError> {
        let mut ev = [0u8; 4];
        put(&mut ev, 0, &UHID_DESTROY.to_ne_bytes());
        self.write_event(&ev)?;
        Ok(())
    }

    fn write_event(&self, ev: &[u8]) -> Result<(), HidError> {
        // uhid writes never block for long: the kernel queues input reports itself.
        let written = (&mut self.fd.get_ref()).write(ev)?;
        if written != ev.len() {
            return Err(HidError::Uhid(format!(
                "short write {written} of {}",
                ev.len()
            )));
        }
        Ok(())
    }

    async fn send_report(&self, report: &Report) -> Result<(), HidError> {
        let ev = input2_event(report);
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| (&mut fd.get_ref()).write(&ev)) {
                Ok(Ok(n)) if n == ev.len() => return Ok(()),
                Ok(Ok(n)) => return Err(HidError::Uhid(format!("short INPUT2 write {n}"))),
                Ok(Err(err)) => return Err(err.into()),
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv_report(&mut self) -> Result<Report, HidError> {
        let mut buf = vec![0u8; UHID_EVENT_SIZE];
        loop {
            let mut guard = self.fd.readable().await?;
            // One read returns one whole event: cancel-safe.
            let n = match guard.try_io(|fd| (&mut fd.get_ref()).read(&mut buf)) {
                Ok(Ok(0)) => return Err(HidError::Closed),
                Ok(Ok(n)) => n,
                Ok(Err(err)) => return Err(err.into()),
                Err(_would_block) => continue,
            };
            drop(guard);
            match parse_event(buf.get(..n).unwrap_or(&[]))? {
                UhidEvent::Output(report) => return Ok(report),
                UhidEvent::Open => self.opened = true,
                UhidEvent::Close => self.opened = false,
                UhidEvent::GetReport { id } => {
                    self.write_event(&report_reply_event(UHID_GET_REPORT_REPLY, id))?
                }
                UhidEvent::SetReport { id } => {
                    self.write_event(&report_reply_event(UHID_SET_REPORT_REPLY, id))?
                }
                UhidEvent::Start | UhidEvent::Stop | UhidEvent::Other(_) => {}
                UhidEvent::BadOutput(len) => {
                    tracing::debug!(len, "uhid: ignoring output report of unexpected size");
                }
            }
        }
    }
}

impl ReportPipe for UhidDevice {
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
    fn descriptor_matches_the_hidvm_reference() {
        // ../shared/tools/hidvm/uhid-selftest.c
        let reference = [
            0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00,
            0x75, 0x08, 0x95, 0x40, 0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75,
            0x08, 0x95, 0x40, 0x91, 0x02, 0xC0,
        ];
        assert_eq!(FIDO_REPORT_DESCRIPTOR, reference);
    }

    #[test]
    fn create2_layout() {
        let ev = create2_event(&UhidConfig {
            name: "x".repeat(200),
            ..UhidConfig::default()
        });
        assert_eq!(ev.len(), 4376);
        assert_eq!(&ev[..4], &11u32.to_ne_bytes());
        // Name truncated to 127 bytes + NUL.
        assert_eq!(ev[4 + 126], b'x');
        assert_eq!(ev[4 + 127], 0);
        assert_eq!(&ev[260..262], &34u16.to_ne_bytes());
        assert_eq!(&ev[262..264], &3u16.to_ne_bytes());
        assert_eq!(&ev[264..268], &0x1209u32.to_ne_bytes());
        assert_eq!(&ev[268..272], &0xf1d0u32.to_ne_bytes());
        assert_eq!(&ev[280..314], &FIDO_REPORT_DESCRIPTOR);
    }

    #[test]
    fn keygate_virtual_keys_carry_the_marker_and_the_owner() {
        let ev = create2_event(&UhidConfig::keygate_virtual("my key", 1000));
        let field = |at: usize, len: usize| {
            let bytes = &ev[at..at + len];
            let end = bytes.iter().position(|b| *b == 0).unwrap();
            std::str::from_utf8(&bytes[..end]).unwrap().to_owned()
        };
        assert_eq!(field(4, 128), "my key");
        assert_eq!(field(132, 64), "keygate-virtual");
        assert_eq!(field(196, 64), "1000");
        let plain = create2_event(&UhidConfig::default());
        assert_eq!(&plain[132..145], b"keygate-uhid\0");
    }

    #[test]
    fn input2_layout() {
        let ev = input2_event(&[0xab; 64]);
        assert_eq!(&ev[..4], &12u32.to_ne_bytes());
        assert_eq!(&ev[4..6], &64u16.to_ne_bytes());
        assert!(ev[6..].iter().all(|b| *b == 0xab));
    }

    fn output_event(data: &[u8], rtype: u8) -> Vec<u8> {
        let mut ev = vec![0u8; UHID_EVENT_SIZE];
        ev[..4].copy_from_slice(&6u32.to_ne_bytes());
        ev[4..4 + data.len()].copy_from_slice(data);
        ev[4100..4102].copy_from_slice(&(data.len() as u16).to_ne_bytes());
        ev[4102] = rtype;
        ev
    }

    #[test]
    fn output_events_strip_the_report_id() {
        let mut with_id = vec![0u8];
        with_id.extend_from_slice(&[0x11; 64]);
        assert_eq!(
            parse_event(&output_event(&with_id, 1)).unwrap(),
            UhidEvent::Output([0x11; 64])
        );
        assert_eq!(
            parse_event(&output_event(&[0x22; 64], 1)).unwrap(),
            UhidEvent::Output([0x22; 64])
        );
        assert_eq!(
            parse_event(&output_event(&[0x22; 10], 1)).unwrap(),
            UhidEvent::BadOutput(10)
        );
        assert_eq!(
            parse_event(&output_event(&[0x22; 64], 0)).unwrap(),
            UhidEvent::Other(6)
        );
        assert!(parse_event(&[1, 0]).is_err());
        assert_eq!(parse_event(&4u32.to_ne_bytes()).unwrap(), UhidEvent::Open);
        let mut get = vec![0u8; 12];
        get[..4].copy_from_slice(&9u32.to_ne_bytes());
        get[4..8].copy_from_slice(&77u32.to_ne_bytes());
        assert_eq!(parse_event(&get).unwrap(), UhidEvent::GetReport { id: 77 });
    }

    #[tokio::test]
    async fn create_without_uhid_is_not_found() {
        let err = UhidDevice::create_at(Path::new("/nonexistent/uhid"), UhidConfig::default())
            .unwrap_err();
        assert!(matches!(err, HidError::NotFound(_)), "{err:?}");
    }
}
