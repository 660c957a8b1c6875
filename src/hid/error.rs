//! Errors of the HID transport layer.

/// An error of a HID report pipe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HidError {
    /// The other end has gone away (pipe dropped, socket closed, device removed).
    #[error("HID pipe closed")]
    Closed,
    /// An operating-system I/O error.
    #[error("HID I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A report of the wrong size arrived (FIDO reports are exactly 64 bytes).
    #[error("HID report of {0} bytes, expected 64")]
    BadReportLength(usize),
    /// An error reported by hidapi.
    #[error("hidapi: {0}")]
    Hidapi(String),
    /// A malformed or unexpected uhid event.
    #[error("uhid: {0}")]
    Uhid(String),
    /// The requested device does not exist or is not a FIDO device.
    #[error("no such HID device: {0}")]
    NotFound(String),
}

impl From<nix::Error> for HidError {
    fn from(err: nix::Error) -> Self {
        HidError::Io(std::io::Error::from(err))
    }
}

impl From<hidapi::HidError> for HidError {
    fn from(err: hidapi::HidError) -> Self {
        HidError::Hidapi(err.to_string())
    }
}
