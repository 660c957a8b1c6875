//! The virtual HID socket of DESIGN.md: a Unix `SOCK_SEQPACKET` socket where every message is
//! exactly one 64-byte HID report without a report-id byte. Host → device = output report,
//! device → host = input report.
//!
//! The device side (a software key) binds a [`SeqpacketListener`] and accepts host connections;
//! a host connects with [`SeqpacketPipe::connect`]. Both ends are [`ReportPipe`]s. A device that
//! admits only some users checks [`SeqpacketPipe::peer_credentials`] (`SO_PEERCRED`, the
//! connecting process's ids as the kernel saw them at `connect(2)`); a device handed to another
//! process as a file descriptor uses [`SeqpacketPipe::pair_with_fd`], and that process wraps the
//! descriptor with [`SeqpacketPipe::from_fd`].

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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

/// The credentials of the process at the other end of a connected socket (`SO_PEERCRED`,
/// unix(7)): fixed when it called `connect(2)` (or `socketpair(2)`), not forgeable by the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Process id.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
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
                Ok(Ok((socket, _addr))) => return SeqpacketPipe::from_socket(socket),
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
        Ok((Self::from_socket(a)?, Self::from_socket(b)?))
    }

    /// A connected pair whose host end is a bare descriptor, to hand to another process (over
    /// D-Bus as a `h`, or as its stdin): `(device end, host descriptor)`. The descriptor is in
    /// blocking mode, as a client library expects.
    pub fn pair_with_fd() -> Result<(Self, OwnedFd), HidError> {
        let (device, host) = Socket::pair(Domain::UNIX, Type::SEQPACKET.cloexec(), None)?;
        Ok((Self::from_socket(device)?, OwnedFd::from(host)))
    }

    /// Wraps a descriptor received from elsewhere (e.g. keygated's `Virtual.Connect`). Fails
    /// unless it is a connected Unix `SOCK_SEQPACKET` socket. Must be called inside a tokio
    /// runtime.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, HidError> {
        let socket = Socket::from(fd);
        let kind = socket.r#type()?;
        if kind != Type::SEQPACKET || socket.domain()? != Domain::UNIX {
            return Err(HidError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a Unix SOCK_SEQPACKET socket",
            )));
        }
        if socket.peer_addr().is_err() {
            return Err(HidError::Closed);
        }
        Self::from_socket(socket)
    }

    fn from_socket(socket: Socket) -> Result<Self, HidError> {
        socket.set_nonblocking(true)?;
        socket.set_cloexec(true)?;
        Ok(Self {
            inner: register(socket, Interest::READABLE | Interest::WRITABLE)?,
        })
    }

    /// The credentials of the process at the other end (`SO_PEERCRED`).
    pub fn peer_credentials(&self) -> Result<PeerCredentials, HidError> {
        let creds = nix::sys::socket::getsockopt(
            self.inner.get_ref(),
            nix::sys::socket::sockopt::PeerCredentials,
        )?;
        Ok(PeerCredentials {
            pid: creds.pid(),
            uid: creds.uid(),
            gid: creds.gid(),
        })
    }

    /// The uid of the process at the other end (`SO_PEERCRED`).
    pub fn peer_uid(&self) -> Result<u32, HidError> {
        Ok(self.peer_credentials()?.uid)
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
    async fn peer_credentials_name_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hid.sock");
        let listener = SeqpacketListener::bind(&path).unwrap();
        let (device, host) = tokio::join!(listener.accept(), SeqpacketPipe::connect(&path));
        let (device, host) = (device.unwrap(), host.unwrap());
        let me = PeerCredentials {
            pid: i32::try_from(std::process::id()).unwrap(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        };
        assert_eq!(device.peer_credentials().unwrap(), me);
        assert_eq!(host.peer_uid().unwrap(), me.uid);
    }

    #[tokio::test]
    async fn a_handed_out_descriptor_is_a_working_host_end() {
        let (mut device, fd) = SeqpacketPipe::pair_with_fd().unwrap();
        let mut host = SeqpacketPipe::from_fd(fd).unwrap();
        host.send(&[7u8; 64]).await.unwrap();
        assert_eq!(device.recv().await.unwrap(), [7u8; 64]);
        device.send(&[8u8; 64]).await.unwrap();
        assert_eq!(host.recv().await.unwrap(), [8u8; 64]);
    }

    #[tokio::test]
    async fn from_fd_rejects_other_sockets() {
        let (stream, _other) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        let err = SeqpacketPipe::from_fd(OwnedFd::from(stream)).unwrap_err();
        assert!(
            matches!(&err, HidError::Io(e) if e.kind() == io::ErrorKind::InvalidInput),
            "{err:?}"
        );
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(SeqpacketPipe::from_fd(OwnedFd::from(file)).is_err());
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
