//! Registering owned file descriptors with the tokio reactor.
//!
//! tokio 1.54 made `AsyncFd::new` deprecated in favour of the `unsafe` `AsyncFd::register`,
//! whose contract is that the descriptor stays open and unchanged while registered. The only
//! types registered here own their descriptor outright, which makes the contract hold by
//! construction; this is the single `unsafe` block of the HID layer.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use socket2::Socket;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A type that exclusively owns one open file descriptor and never swaps it.
pub(crate) trait OwnsFd: AsRawFd {}
impl OwnsFd for Socket {}
impl OwnsFd for File {}

/// Register `inner` with the current tokio reactor (must be called inside a runtime).
#[allow(unsafe_code)]
pub(crate) fn register<T: OwnsFd>(inner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `T: OwnsFd` (a `socket2::Socket` or a `std::fs::File`) owns its descriptor: it is
    // open (the constructor succeeded), it is moved into the `AsyncFd` so nothing else can close
    // or replace it, and `as_raw_fd` returns that same descriptor until the `AsyncFd` drops.
    let registered = unsafe { AsyncFd::register_with_interest(inner, interest) };
    registered.map_err(io::Error::from)
}
