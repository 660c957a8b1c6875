//! An in-process pair of report pipes (tests, benches, the software key inside the daemon).

use tokio::sync::mpsc;

use super::{BoxFuture, HidError, Report, ReportPipe};

/// Reports that may be queued in one direction before `send` waits (a real HID stack buffers
/// a few dozen; keep it generous so a device writing keepalives never deadlocks a test).
const QUEUE: usize = 256;

/// One end of an in-process report pipe made by [`pair`].
#[derive(Debug)]
pub struct PairEnd {
    tx: mpsc::Sender<Report>,
    rx: mpsc::Receiver<Report>,
}

/// Make an in-process pipe: `(host end, device end)`.
///
/// What the host end sends, the device end receives, and vice versa. When one end is
/// dropped, the other end's `recv` and `send` fail with [`HidError::Closed`].
pub fn pair() -> (PairEnd, PairEnd) {
    let (to_device, from_host) = mpsc::channel(QUEUE);
    let (to_host, from_device) = mpsc::channel(QUEUE);
    (
        PairEnd {
            tx: to_device,
            rx: from_device,
        },
        PairEnd {
            tx: to_host,
            rx: from_host,
        },
    )
}

impl ReportPipe for PairEnd {
    fn send<'a>(&'a mut self, report: &'a Report) -> BoxFuture<'a, Result<(), HidError>> {
        Box::pin(async move { self.tx.send(*report).await.map_err(|_| HidError::Closed) })
    }

    fn recv(&mut self) -> BoxFuture<'_, Result<Report, HidError>> {
        // `mpsc::Receiver::recv` is cancel-safe.
        Box::pin(async move { self.rx.recv().await.ok_or(HidError::Closed) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pair_carries_reports_both_ways_and_reports_close() {
        let (mut host, mut device) = pair();
        let mut out = [0u8; 64];
        out[0] = 0xff;
        out[63] = 0x42;
        host.send(&out).await.unwrap();
        assert_eq!(device.recv().await.unwrap(), out);
        let back = [0x11u8; 64];
        device.send(&back).await.unwrap();
        assert_eq!(host.recv().await.unwrap(), back);
        drop(device);
        assert!(matches!(host.recv().await, Err(HidError::Closed)));
        assert!(matches!(host.send(&out).await, Err(HidError::Closed)));
    }

    #[tokio::test]
    async fn recv_is_cancel_safe() {
        let (mut host, mut device) = pair();
        // A recv that times out must not lose the report that arrives afterwards.
        let timed_out =
            tokio::time::timeout(std::time::Duration::from_millis(5), host.recv()).await;
        assert!(timed_out.is_err());
        device.send(&[7u8; 64]).await.unwrap();
        assert_eq!(host.recv().await.unwrap(), [7u8; 64]);
    }
}
