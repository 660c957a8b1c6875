//! The transports of keygated's software keys besides the in-process driver that publishes them
//! as Device objects (issue 4, "Virtual"). Each one serves the key's [`SharedSoftKey`] with
//! [`crate::authenticator::serve`], so a credential made through one transport is usable
//! through every other.
//!
//! - **socket** (`Create` option `"socket": true`): a `SOCK_SEQPACKET` listener at
//!   `<runtime dir>/virtual/<key id>.sock` (DESIGN.md, "Virtual HID socket"). Each connection is
//!   admitted only when the peer's `SO_PEERCRED` uid is the key's owner or root; any other is
//!   closed at once and logged. Removing the key, or stopping keygated, unlinks the socket.
//! - **file descriptor** (`Virtual.Connect`): the host end of a fresh socket pair, handed to the
//!   owner over the bus (the bus already told us who is calling).
//! - **uhid** (`Create` option `"uhid": true`): a kernel HID device through `/dev/uhid`, marked
//!   with [`crate::hid::uhid::KEYGATE_VIRTUAL_PHYS`] and the owner's uid (`HID_UNIQ`), so that
//!   `udev/72-keygate-virtual.rules` gives its hidraw node to the owner alone and keygated's own
//!   hidraw scan does not list the key a second time.
//!
//! Layer rule: a service-layer module; talks to `hid` and `authenticator`, never to the bus
//! itself (the Virtual interface calls it).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use zbus::OwnedObjectPath;

use super::devices::DeviceHandle;
use super::error::BusError;
use crate::authenticator::SharedSoftKey;
use crate::hid::socket::{SeqpacketListener, SeqpacketPipe};
use crate::hid::uhid::{UhidConfig, UhidDevice};
use crate::hid::{HidError, ReportPipe};

/// Subdirectory of keygated's runtime directory that holds the keys' sockets.
pub const SOCKET_SUBDIR: &str = "virtual";
/// Most connections (socket and `Connect` together) served at once for one key.
pub const MAX_CONNECTIONS_PER_KEY: usize = 16;
/// Pause after a failed `accept` (e.g. out of descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one refusal line per key in this interval: any local user can connect in a loop, and
/// each attempt must not cost a line in the journal.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Rate limit of the refusal lines of one key.
#[derive(Debug, Default)]
struct RefusalLog {
    /// When the last line was written, and how many refusals were not logged since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    /// `Some(n)` when a refusal at `now` is to be logged (`n` refusals went unlogged before it),
    /// `None` when it is to be counted only.
    fn should_log(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (last, suppressed) = &mut *state;
        match last {
            Some(at) if now.saturating_duration_since(*at) < REFUSAL_LOG_INTERVAL => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(suppressed))
            }
        }
    }
}

/// The transports `Create` asks for (`"socket"`, `"uhid"`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportOptions {
    /// Listen on `<runtime dir>/virtual/<key id>.sock`.
    pub socket: bool,
    /// Appear to the kernel through `/dev/uhid`.
    pub uhid: bool,
}

/// Whether a process running as `peer_uid` may drive a software key owned by `owner`: the
/// owner, and root (who could read keygated's memory anyway).
pub fn may_connect(peer_uid: u32, owner: u32) -> bool {
    peer_uid == owner || peer_uid == 0
}

/// A socket file, unlinked when the key goes away (explicitly, and again on drop).
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    fn unlink(&self) {
        unlink_quietly(&self.path);
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// Removes a file; a missing one is fine, other failures are logged.
fn unlink_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(socket = %path.display(), error = %e, "cannot unlink"),
    }
}

/// Removes the sockets (`*.sock`) that an earlier keygated left in `dir` when it did not stop
/// cleanly: key ids restart with every run, so nothing can reach those keys any more.
fn sweep_stale_sockets(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_socket())
            && path.extension().is_some_and(|e| e == "sock")
        {
            tracing::info!(socket = %path.display(), "removing a stale software-key socket");
            unlink_quietly(&path);
        }
    }
}

/// Serves one key on new connections, within its connection budget.
#[derive(Debug)]
struct KeyServer {
    /// Device object path (for logs).
    device: String,
    key: SharedSoftKey,
    owner: u32,
    /// The key's stop token: removing the key ends every connection.
    stop: CancellationToken,
    connections: Arc<Semaphore>,
    refusals: RefusalLog,
}

impl KeyServer {
    fn for_handle(handle: &DeviceHandle) -> Result<Self, BusError> {
        let device = handle.record.path.to_string();
        let (Some(key), Some(owner)) = (handle.soft.clone(), handle.record.owner) else {
            return Err(BusError::NotFound(format!(
                "{device} is not a software key"
            )));
        };
        Ok(Self {
            device,
            key,
            owner,
            stop: handle.stop.clone(),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_KEY)),
            refusals: RefusalLog::default(),
        })
    }

    /// Serves `pipe` in a task until either side closes or the key is removed. `false` when
    /// the key already serves [`MAX_CONNECTIONS_PER_KEY`] connections (`pipe` is closed).
    fn serve(&self, pipe: impl ReportPipe, via: &'static str) -> bool {
        let Ok(permit) = Arc::clone(&self.connections).try_acquire_owned() else {
            tracing::warn!(device = %self.device, via, "too many connections to a software key");
            return false;
        };
        let (key, stop, device) = (
            self.key.clone(),
            self.stop.child_token(),
            self.device.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = crate::authenticator::serve(pipe, key, stop).await {
                tracing::debug!(device = %device, via, error = %e, "software key connection ended");
            }
        });
        true
    }

    /// Admits a connection accepted on the key's socket if its peer may drive the key.
    fn admit(&self, pipe: SeqpacketPipe) {
        let peer = match pipe.peer_credentials() {
            Ok(peer) => peer,
            Err(e) => {
                tracing::warn!(device = %self.device, error = %e, "socket peer without credentials: closed");
                return;
            }
        };
        if may_connect(peer.uid, self.owner) {
            tracing::debug!(device = %self.device, peer_uid = peer.uid, "socket connection");
            self.serve(pipe, "socket");
        } else if let Some(unlogged) = self.refusals.should_log(Instant::now()) {
            tracing::warn!(
                device = %self.device,
                peer_uid = peer.uid,
                peer_pid = peer.pid,
                owner = self.owner,
                unlogged,
                "refused a connection to a software key's socket: not its owner"
            );
        }
    }
}

/// What one key exposes.
#[derive(Debug)]
struct KeyTransports {
    server: Arc<KeyServer>,
    socket: Option<Arc<SocketFile>>,
}

/// The transports of every software key, by Device object path.
#[derive(Debug)]
pub struct Transports {
    runtime_dir: PathBuf,
    uhid_node: PathBuf,
    keys: Mutex<HashMap<String, KeyTransports>>,
    /// Whether stale sockets of an earlier run were swept (once, before the first bind).
    swept: AtomicBool,
}

impl Transports {
    /// Sockets go under `<runtime_dir>/virtual`; uhid devices through `/dev/uhid`.
    pub fn new(runtime_dir: PathBuf) -> Self {
        Self {
            runtime_dir,
            uhid_node: PathBuf::from(UhidDevice::PATH),
            keys: Mutex::new(HashMap::new()),
            swept: AtomicBool::new(false),
        }
    }

    /// Starts what `options` asks for on a new key (uhid first: the likelier failure). On an
    /// error the caller cancels `handle.stop`, which ends whatever was started (and unlinks the
    /// socket).
    pub fn attach(&self, handle: &DeviceHandle, options: TransportOptions) -> Result<(), BusError> {
        let server = Arc::new(KeyServer::for_handle(handle)?);
        if options.uhid {
            self.start_uhid(handle, &server)?;
        }
        let socket = if options.socket {
            Some(self.listen(handle, &server)?)
        } else {
            None
        };
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(
                handle.record.path.to_string(),
                KeyTransports { server, socket },
            );
        }
        Ok(())
    }

    /// Forgets a removed key and unlinks its socket (its tasks end with `handle.stop`).
    pub fn detach(&self, path: &str) {
        let removed = self.keys.lock().ok().and_then(|mut keys| keys.remove(path));
        if let Some(socket) = removed.and_then(|t| t.socket) {
            socket.unlink();
        }
    }

    /// The socket path of a key created with `"socket": true`.
    pub fn socket_path(&self, path: &OwnedObjectPath) -> Result<String, BusError> {
        self.keys
            .lock()
            .ok()
            .and_then(|keys| keys.get(path.as_str())?.socket.clone())
            .map(|socket| socket.path.display().to_string())
            .ok_or_else(|| {
                BusError::NotAvailable(format!(
                    "{path} has no socket (create it with \"socket\": true)"
                ))
            })
    }

    /// A new connection to the key: serves one end of a socket pair and returns the other.
    pub fn connect(&self, handle: &DeviceHandle) -> Result<zbus::OwnedFd, BusError> {
        let server = self.server_for(handle)?;
        let (device_end, host_end) = SeqpacketPipe::pair_with_fd()
            .map_err(|e| BusError::Failed(format!("socket pair: {e}")))?;
        if !server.serve(device_end, "fd") {
            return Err(BusError::Failed(format!(
                "the key already serves {MAX_CONNECTIONS_PER_KEY} connections"
            )));
        }
        Ok(zbus::OwnedFd::from(host_end))
    }

    /// The key's server (made on first use for keys started without [`Self::attach`]).
    fn server_for(&self, handle: &DeviceHandle) -> Result<Arc<KeyServer>, BusError> {
        let mut keys = self
            .keys
            .lock()
            .map_err(|_| BusError::Failed("transport registry poisoned".into()))?;
        let path = handle.record.path.to_string();
        if let Some(known) = keys.get(&path) {
            return Ok(Arc::clone(&known.server));
        }
        let server = Arc::new(KeyServer::for_handle(handle)?);
        keys.insert(
            path,
            KeyTransports {
                server: Arc::clone(&server),
                socket: None,
            },
        );
        Ok(server)
    }

    fn listen(
        &self,
        handle: &DeviceHandle,
        server: &Arc<KeyServer>,
    ) -> Result<Arc<SocketFile>, BusError> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "software key socket: {what}");
            BusError::Failed(format!("software key socket: {what}: {e}"))
        };
        let dir = socket_dir(&self.runtime_dir).map_err(|e| failed("runtime directory", &e))?;
        if !self.swept.swap(true, Ordering::Relaxed) {
            sweep_stale_sockets(&dir);
        }
        let id = handle
            .record
            .path
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let path = dir.join(format!("{id}.sock"));
        // Key ids restart with keygated: a file of that name is a stale socket of an earlier run
        // in our own directory.
        unlink_quietly(&path);
        let listener = SeqpacketListener::bind(&path).map_err(|e| failed("bind", &e))?;
        let socket = Arc::new(SocketFile { path });
        // connect(2) needs write permission on the socket file, and keygated usually runs as
        // its own user (User=keygate, no CAP_CHOWN), so it cannot hand the file to the key's
        // owner: the socket is open to every local user and the SO_PEERCRED check in
        // `KeyServer::admit` is the gate (the kernel records the peer's uid at connect time;
        // the peer cannot forge it).
        std::fs::set_permissions(&socket.path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| failed("chmod", &e))?;
        tokio::spawn(accept_loop(
            listener,
            Arc::clone(&socket),
            Arc::clone(server),
        ));
        tracing::info!(device = %handle.record.path, socket = %socket.path.display(), "software key listening");
        Ok(socket)
    }

    fn start_uhid(&self, handle: &DeviceHandle, server: &KeyServer) -> Result<(), BusError> {
        let config = UhidConfig::keygate_virtual(&handle.record.name, server.owner);
        let device = UhidDevice::create_at(&self.uhid_node, config)
            .map_err(|e| uhid_error(&self.uhid_node, e))?;
        if !server.serve(device, "uhid") {
            return Err(BusError::Failed("uhid: connection budget exhausted".into()));
        }
        tracing::info!(device = %handle.record.path, owner = server.owner, "software key on uhid");
        Ok(())
    }
}

/// A named error for a uhid device that cannot be made.
fn uhid_error(node: &Path, err: HidError) -> BusError {
    match err {
        HidError::NotFound(_) => BusError::NotAvailable(format!(
            "uhid: {} does not exist (load the uhid kernel module)",
            node.display()
        )),
        HidError::Io(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            BusError::NotAvailable(format!("uhid: keygated may not write {}", node.display()))
        }
        other => BusError::Failed(format!("uhid: {other}")),
    }
}

/// `<runtime_dir>/virtual`, made traversable but not listable by others (0711): a user reaches
/// their socket by its name (returned by `Virtual.Socket`), while the names of other users' keys
/// stay private. The runtime directory holds nothing but sockets, so it gets the same
/// search permission if it lacks it (best effort: it may not be ours to change).
fn socket_dir(runtime_dir: &Path) -> io::Result<PathBuf> {
    let mode = std::fs::metadata(runtime_dir)?.permissions().mode() & 0o7777;
    if mode & 0o011 != 0o011
        && let Err(e) =
            std::fs::set_permissions(runtime_dir, std::fs::Permissions::from_mode(mode | 0o011))
    {
        tracing::warn!(dir = %runtime_dir.display(), error = %e, "runtime directory not searchable by other users");
    }
    let dir = runtime_dir.join(SOCKET_SUBDIR);
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // The umask may have narrowed the mode given to mkdir.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
    Ok(dir)
}

/// Accepts connections until the key is removed, then unlinks the socket.
async fn accept_loop(listener: SeqpacketListener, socket: Arc<SocketFile>, server: Arc<KeyServer>) {
    loop {
        let accepted = tokio::select! {
            () = server.stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(pipe) => server.admit(pipe),
            Err(e) => {
                tracing::warn!(device = %server.device, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    socket.unlink();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_logged_once_per_interval_with_the_count_in_between() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        assert_eq!(log.should_log(t0), Some(0));
        assert_eq!(log.should_log(t0 + Duration::from_secs(1)), None);
        assert_eq!(log.should_log(t0 + Duration::from_secs(9)), None);
        assert_eq!(log.should_log(t0 + REFUSAL_LOG_INTERVAL), Some(2));
        assert_eq!(log.should_log(t0 + REFUSAL_LOG_INTERVAL), None);
    }

    #[test]
    fn only_the_owner_and_root_may_connect() {
        assert!(may_connect(1000, 1000));
        assert!(may_connect(0, 1000));
        assert!(may_connect(0, 0));
        assert!(!may_connect(1001, 1000));
        assert!(!may_connect(1000, 0));
        assert!(!may_connect(65534, 1000));
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn socket_dir_is_searchable_not_listable() {
        let root = tempfile::tempdir().unwrap();
        let runtime = root.path().join("run");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&runtime)
            .unwrap();
        let dir = socket_dir(&runtime).unwrap();
        assert_eq!(dir, runtime.join("virtual"));
        assert_eq!(mode(&dir), 0o711);
        assert_eq!(mode(&runtime), 0o711);
        // Idempotent, and it repairs a narrowed mode.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(socket_dir(&runtime).unwrap(), dir);
        assert_eq!(mode(&dir), 0o711);
        assert!(socket_dir(&root.path().join("missing")).is_err());
    }

    #[test]
    fn stale_sockets_are_swept_other_files_kept() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("virtual3.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let other_socket = dir.path().join("other");
        drop(std::os::unix::net::UnixListener::bind(&other_socket).unwrap());
        let not_a_socket = dir.path().join("notes.sock");
        std::fs::write(&not_a_socket, b"x").unwrap();
        assert!(stale.exists());
        sweep_stale_sockets(dir.path());
        assert!(!stale.exists());
        assert!(other_socket.exists() && not_a_socket.exists());
        sweep_stale_sockets(&dir.path().join("missing"));
    }

    #[test]
    fn uhid_errors_are_named() {
        let node = Path::new("/dev/uhid");
        let missing = uhid_error(node, HidError::NotFound("/dev/uhid".into()));
        assert!(
            matches!(&missing, BusError::NotAvailable(m) if m.contains("does not exist")),
            "{missing:?}"
        );
        let denied = uhid_error(
            node,
            HidError::Io(io::Error::from(io::ErrorKind::PermissionDenied)),
        );
        assert!(
            matches!(&denied, BusError::NotAvailable(m) if m.contains("may not write /dev/uhid")),
            "{denied:?}"
        );
        assert!(matches!(
            uhid_error(node, HidError::Uhid("short write".into())),
            BusError::Failed(_)
        ));
    }
}
