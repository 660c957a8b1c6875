//! HID report transports: a pipe of 64-byte reports (in-process pair, SOCK_SEQPACKET socket, hidraw, uhid).
//!
//! Layer rule: knows nothing of CTAPHID; may not import `ctaphid`, `ctap2` or anything above.
//!
//! Every transport exposes one end of a [`ReportPipe`]. On the *host end*, `send` writes an
//! output report (host → device) and `recv` reads an input report (device → host); on the
//! *device end* it is the reverse. Reports are always exactly [`REPORT_LEN`] bytes without a
//! report-id byte (the FIDO HID report descriptor declares no report ids).

pub mod error;
mod fd;
pub mod hidraw;
pub mod pair;
pub mod socket;
pub mod uhid;

pub use error::HidError;
pub use pair::{PairEnd, pair};

/// Size of a FIDO HID report (CTAP 2.1 §11.2.4: 64-byte input and output reports).
pub const REPORT_LEN: usize = 64;

/// One HID report.
pub type Report = [u8; REPORT_LEN];

/// A boxed, `Send` future (the trait stays object safe: `Box<dyn ReportPipe>` works).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A pipe of 64-byte reports.
///
/// Host end: `send` = output report, `recv` = input report. Device end: the reverse.
/// `recv` is cancel-safe: dropping its future before it completes loses no report, so it can
/// be used inside `tokio::select!` with timeouts.
pub trait ReportPipe: Send + 'static {
    /// Send one report to the other end.
    fn send<'a>(&'a mut self, report: &'a Report) -> BoxFuture<'a, Result<(), HidError>>;
    /// Receive the next report from the other end (cancel-safe).
    fn recv(&mut self) -> BoxFuture<'_, Result<Report, HidError>>;
}

impl<P: ReportPipe + ?Sized> ReportPipe for Box<P> {
    fn send<'a>(&'a mut self, report: &'a Report) -> BoxFuture<'a, Result<(), HidError>> {
        (**self).send(report)
    }
    fn recv(&mut self) -> BoxFuture<'_, Result<Report, HidError>> {
        (**self).recv()
    }
}

/// Copy a received buffer into a [`Report`], rejecting any other length.
pub(crate) fn report_from_slice(bytes: &[u8]) -> Result<Report, HidError> {
    Report::try_from(bytes).map_err(|_| HidError::BadReportLength(bytes.len()))
}
