//! zbus adapters only: names, paths, interfaces, errors, caller checks. Thin: each method
//! authorises the caller and calls one service method of a lower layer (`tokens`, `rp`,
//! `webauthn`, `authenticator`, `device`). No SQL and no protocol code here.
//!
//! [`run`] serves every object first and only then claims `org.keygate.Keygate1`, so that no
//! call can reach the name before its object exists (zbus book, "service.md"); it tells systemd
//! READY=1 after the name is acquired, and on cancellation waits for calls in flight before
//! releasing the name, so that no accepted call is lost. Persistent software keys
//! ([`virtual_restore`]) are started again and served at their stored paths before the name
//! is claimed.

mod call;
pub mod caller;
pub mod client;
pub mod config;
pub mod device_object;
pub mod devices;
pub mod error;
pub mod manager;
pub mod names;
pub(crate) mod pskc_export;
pub mod qr;
pub mod relying_party;
pub mod soft;
pub mod tokens;
pub mod usb;
pub mod virtual_keys;
pub mod virtual_restore;
pub mod virtual_transport;
pub mod webauthn_iface;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{RwLock, RwLockReadGuard};
use tokio_util::sync::CancellationToken;

pub use caller::{Access, Caller, Role};
pub use config::Config;
pub use error::{BusError, BusResult, ServiceError};

/// Which bus keygated serves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTarget {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS` or the default socket).
    System,
    /// The session bus (`DBUS_SESSION_BUS_ADDRESS`).
    Session,
    /// An explicit address (`unix:path=...`).
    Address(String),
}

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bus to serve on.
    pub bus: BusTarget,
    /// Durable state directory (created 0700 if missing).
    pub state_dir: PathBuf,
    /// Runtime directory for sockets of software keys (created 0700 if missing).
    pub runtime_dir: PathBuf,
    /// Configuration.
    pub config: Config,
}

/// Admission gate: calls enter it; shutdown closes it and waits for the calls in flight.
#[derive(Debug)]
pub struct Gate {
    open: RwLock<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            open: RwLock::new(true),
        }
    }
}

impl Gate {
    /// Admits one call, or fails with `ShuttingDown`.
    pub async fn enter(&self) -> Result<RwLockReadGuard<'_, bool>, BusError> {
        let guard = self.open.read().await;
        if *guard {
            Ok(guard)
        } else {
            Err(BusError::ShuttingDown("keygated is stopping".into()))
        }
    }

    /// Refuses new calls and waits until the admitted ones have answered.
    pub async fn close(&self) {
        *self.open.write().await = false;
    }
}

/// State shared by every interface.
#[derive(Debug)]
pub struct Shared {
    /// Configuration.
    pub config: Config,
    /// Role decisions.
    pub access: Access,
    /// Authenticators.
    pub devices: devices::DeviceRegistry,
    /// Call admission.
    pub gate: Gate,
    /// Shutdown signal for long-running calls.
    pub cancel: CancellationToken,
    /// State directory.
    pub state_dir: PathBuf,
    /// Runtime directory.
    pub runtime_dir: PathBuf,
    /// Software keys kept in the store across restarts.
    pub persistent: virtual_restore::PersistentKeys,
}

impl Shared {
    /// Fails with `InvalidArgs` when a string argument is larger than the configured maximum.
    pub fn check_size(&self, what: &str, value: &str) -> Result<(), BusError> {
        if value.len() > self.config.max_argument_bytes {
            Err(BusError::InvalidArgs(format!(
                "{what} is {} bytes, more than the {} allowed",
                value.len(),
                self.config.max_argument_bytes
            )))
        } else {
            Ok(())
        }
    }
}

fn create_private_dir(path: &std::path::Path) -> Result<(), ServiceError> {
    use std::os::unix::fs::DirBuilderExt;
    if !path.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
    }
    Ok(())
}

/// Runs keygated until `cancel` fires. Returns after a clean shutdown.
pub async fn run(options: Options, cancel: CancellationToken) -> Result<(), ServiceError> {
    create_private_dir(&options.state_dir)?;
    create_private_dir(&options.runtime_dir)?;
    let store = {
        let dir = options.state_dir.clone();
        tokio::task::spawn_blocking(move || crate::store::SqliteStore::open_state_dir(&dir))
            .await
            .map_err(|e| ServiceError::Failed(format!("store task: {e}")))?
            .map_err(|e| ServiceError::Failed(format!("store: {e}")))?
    };
    let store = Arc::new(store);
    let shared = Arc::new(Shared {
        access: Access::new(&options.config),
        config: options.config,
        devices: devices::DeviceRegistry::default(),
        gate: Gate::default(),
        cancel: cancel.clone(),
        state_dir: options.state_dir,
        runtime_dir: options.runtime_dir,
        persistent: virtual_restore::PersistentKeys::new(
            Arc::clone(&store) as Arc<dyn crate::store::VirtualKeyStore>
        ),
    });
    let token_service = crate::tokens::TokenService::new(
        Arc::clone(&store) as Arc<dyn crate::store::TokenStore>,
        token_policy(&shared.config),
        Arc::new(crate::tokens::SystemClock),
    );
    let soft = Arc::new(soft::SoftTokens::open(
        &shared.state_dir,
        &shared.config.soft_tokens,
    )?);
    let rps = Arc::new(
        crate::rp::RelyingParties::open(Arc::clone(&store))
            .map_err(|e| ServiceError::Failed(format!("relying parties: {e}")))?,
    );
    for rp in &shared.config.relying_parties {
        rps.configure(crate::rp::RpConfig {
            id: rp.id.clone(),
            name: rp.name.clone(),
            origins: rp.origins.clone(),
            attestation: crate::rp::AttestationPolicy::None,
            user_verification: if rp.uv_required {
                crate::rp::UserVerificationPolicy::Required
            } else {
                crate::rp::UserVerificationPolicy::Preferred
            },
        })
        .map_err(|e| ServiceError::Config(format!("relying_party {}: {e}", rp.id)))?;
    }

    let builder = match &options.bus {
        BusTarget::System => zbus::connection::Builder::system(),
        BusTarget::Session => zbus::connection::Builder::session(),
        BusTarget::Address(addr) => zbus::connection::Builder::address(addr.as_str()),
    };
    // Persistent software keys come back at their paths before anybody can call.
    let virt = virtual_keys::Virtual::new(Arc::clone(&shared));
    let mut builder = builder;
    for restored in virtual_restore::restore(&shared).await? {
        let handle = restored.handle;
        if let Err(e) = virt.attach_transports(&handle, restored.transports) {
            // The key stays usable as a Device; only the transport that failed is missing.
            tracing::warn!(path = %handle.record.path, error = %e, "restored software key: transport not started");
        }
        builder = builder.serve_at(
            handle.record.path.clone(),
            device_object::DeviceObject::new(Arc::clone(&shared), Arc::clone(&handle)),
        );
        shared.devices.insert(handle);
    }
    // Objects first, then the name: a call to the name always finds its object.
    let connection = builder
        .serve_at(names::ROOT_PATH, manager::Manager::new(Arc::clone(&shared)))
        .serve_at(
            names::ROOT_PATH,
            tokens::Tokens::new(Arc::clone(&shared), token_service, soft),
        )
        .serve_at(
            names::ROOT_PATH,
            relying_party::RelyingParty::new(Arc::clone(&shared), Arc::clone(&rps)),
        )
        .serve_at(names::ROOT_PATH, virt)
        .serve_at(
            names::ROOT_PATH,
            webauthn_iface::WebAuthn::new(Arc::clone(&shared)),
        )
        .name(names::BUS_NAME)
        .build()
        .await?;
    tracing::info!(
        bus = ?options.bus,
        name = names::BUS_NAME,
        state_dir = %shared.state_dir.display(),
        "keygated ready"
    );
    // USB security keys: first scan and hotplug polling, in the background.
    let watcher = tokio::spawn(usb::watch(Arc::clone(&shared), connection.clone()));
    // READY=1 after the name (Type=notify units); a no-op without NOTIFY_SOCKET.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::debug!(error = %e, "sd_notify failed");
    }

    cancel.cancelled().await;
    tracing::info!("stopping: waiting for calls in flight");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    // Long requests (waiting for a touch or a PIN) end now with AbortError.
    shared.gate.close().await;
    virtual_keys::stop_all(&shared);
    watcher.abort();
    let _ = watcher.await;
    if let Err(e) = connection.release_name(names::BUS_NAME).await {
        tracing::debug!(error = %e, "release_name failed");
    }
    if tokio::time::timeout(
        std::time::Duration::from_secs(3),
        connection.graceful_shutdown(),
    )
    .await
    .is_err()
    {
        tracing::warn!("bus connection did not close within 3 s");
    }
    // Every admitted call has answered; the store's writer flushes and closes on drop.
    drop(rps);
    drop(store);
    tracing::info!("stopped");
    Ok(())
}

/// The token layer's policy from the configuration.
fn token_policy(config: &Config) -> crate::tokens::TokenPolicy {
    let mut policy = crate::tokens::TokenPolicy::default();
    policy.verify.hotp_window = config.policy.hotp_window;
    policy.verify.totp_window_steps = config.policy.totp_window_steps;
    policy.verify.resync_limit = config.policy.resync_limit;
    policy.verify.challenge_ttl_secs = config.policy.challenge_ttl_secs;
    policy.verify.max_failures = config.policy.max_failures;
    policy
}
