//! The virtual HID socket of DESIGN.md: a Unix `SOCK_SEQPACKET` socket where every message is
//! exactly one 64-byte HID report without a report-id byte. Host → device = output report,
//! device → host = input report.
//!
//! The device side (a software key) binds a [`SeqpacketListener`] and accepts host connections;
//! a host connects with [`SeqpacketPipe::connect`]. Both ends are [`ReportPipe`]s.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::fd::register;
use super::{BoxFuture, HidError, REPORT_LEN, Report, ReportPipe};

/// Read buffer: one byte more than a report, so an oversized message is detected rather than
/// silently truncated (SOCK_SEQPACKET truncates to the buffer).
const RECV_BUF: usize = REPORT_LEN + 1;

fn seqpacket_socket() -> io::Result<Socket> {
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A listening `SOCK_SEQPACKET` socket (the device side).
#[derive(Debug)]
pub struct SeqpacketListener {
    inner: AsyncFd<Socket>,
    path: PathBuf,
}

impl SeqpacketListener {
    /// Bind and listen on `path`. Fails if the path exists (remove a stale socket first).
    /// Must be called inside a tokio runtime.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self, HidError> {
        let path = path.as_ref().to_path_buf();
        let socket = seqpacket_socket()?;
        socket.bind(&SockAddr::unix(&path)?)?;
        socket.listen(16)?;
        Ok(Self {
            inner: register(socket, Interest::READABLE | Interest::WRITABLE)?,
            path,
        })
    }

    /// The path this listener is bound to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept the next host connection (cancel-safe).
    pub async fn accept(&self) -> Result<SeqpacketPipe, HidError> {
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(|fd| fd.get_ref().accept()) {
                Ok(Ok((socket, _addr))) => {
                    socket.set_nonblocking(true)?;
                    socket.set_cloexec(true)?;
                    return Ok(SeqpacketPipe {
                        inner: register(socket, Interest::READABLE | Interest::WRITABLE)?,
                    });
                }
                Ok(Err(err)) => return Err(err.into()),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsFd for SeqpacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

/// One connected end of the virtual HID socket (host or device side).
#[derive(Debug)]
pub struct SeqpacketPipe {
    inner: AsyncFd<Socket>,
}

impl SeqpacketPipe {
    /// Connect to a listening socket at `path` (the host side). Must be called inside a tokio
    /// runtime.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, HidError> {
        let socket = seqpacket_socket()?;
        let addr = SockAddr::unix(path.as_ref())?;
        match socket.connect(&addr) {
            Ok(()) => {}
            // A non-blocking Unix connect may report EINPROGRESS/EAGAIN when the backlog is
            // full; wait until the socket turns writable and check SO_ERROR.
            Err(err)
                if err.raw_os_error() == Some(libc::EINPROGRESS)
                    || err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err.into()),
        }
        let inner = register(socket, Interest::READABLE | Interest::WRITABLE)?;
        let mut guard = inner.writable().await?;
        guard.retain_ready();
        if let Some(err) = inner.get_ref().take_error()? {
            return Err(err.into());
        }
        drop(guard);
        Ok(Self { inner })
    }

    /// A connected pair of pipes `(host end, device end)` without a file system path.
    pub fn pair() -> Result<(Self, Self), HidError> {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        let both = Interest::READABLE | Interest::WRITABLE;
        Ok((
            Self {
                inner: register(a, both)?,
            },
            Self {
                inner: register(b, both)?,
            },
        ))
    }

    async fn send_report(&self, report: &Report) -> Result<(), HidError> {
        loop {
            let mut guard = self.inner.writable().await?;
            match guard.try_io(|fd| fd.get_ref().send(report)) {
                Ok(Ok(n)) if n == REPORT_LEN => return Ok(()),
                Ok(Ok(n)) => return Err(HidError::BadReportLength(n)),
                Ok(Err(err)) if is_closed(&err) => return Err(HidError::Closed),
                Ok(Err(err)) => return Err(err.into()),
                Err(_would_block) => continue,
            }
        }
    }

    async fn recv_report(&self) -> Result<Report, HidError> {
        loop {
            let mut guard = self.inner.readable().await?;
            let mut buf = [0u8; RECV_BUF];
            // `try_io` either consumes one whole datagram or none: cancel-safe.
            match guard.try_io(|fd| (&mut fd.get_ref()).read(&mut buf)) {
                // A zero-length read on SOCK_SEQPACKET means the peer closed.
                Ok(Ok(0)) => return Err(HidError::Closed),
                Ok(Ok(n)) => return super::report_from_slice(buf.get(..n).unwrap_or(&[])),
                Ok(Err(err)) if is_closed(&err) => return Err(HidError::Closed),
                Ok(Err(err)) => return Err(err.into()),
                Err(_would_block) => continue,
            }
        }
    }
}

fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

impl ReportPipe for SeqpacketPipe {
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

    #[tokio::test]
    async fn listener_accept_connect_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hid.sock");
        let listener = SeqpacketListener::bind(&path).unwrap();
        let (device, host) = tokio::join!(listener.accept(), SeqpacketPipe::connect(&path));
        let (mut device, mut host) = (device.unwrap(), host.unwrap());
        let mut out = [0u8; 64];
        out[..5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x86]);
        host.send(&out).await.unwrap();
        assert_eq!(device.recv().await.unwrap(), out);
        device.send(&[0xabu8; 64]).await.unwrap();
        assert_eq!(host.recv().await.unwrap(), [0xabu8; 64]);
        drop(device);
        assert!(matches!(host.recv().await, Err(HidError::Closed)));
    }

    #[tokio::test]
    async fn wrong_sized_message_is_an_error_not_a_panic() {
        let (host, mut device) = SeqpacketPipe::pair().unwrap();
        host.inner.get_ref().send(&[1u8; 10]).unwrap();
        assert!(matches!(
            device.recv().await,
            Err(HidError::BadReportLength(10))
        ));
        host.inner.get_ref().send(&[1u8; 100]).unwrap();
        assert!(matches!(
            device.recv().await,
            Err(HidError::BadReportLength(65))
        ));
        // The pipe still works afterwards.
        host.inner.get_ref().send(&[2u8; 64]).unwrap();
        assert_eq!(device.recv().await.unwrap(), [2u8; 64]);
    }

    #[tokio::test]
    async fn connect_to_missing_socket_fails() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            SeqpacketPipe::connect(dir.path().join("nope"))
                .await
                .is_err()
        );
    }
}
