//! `org.keygate.Keygate1.Virtual` at `/org/keygate/Keygate1`: software security keys owned by
//! the calling uid. Each key is an [`crate::authenticator::SoftKey`] served by
//! [`crate::authenticator::serve`] on an in-process HID pipe, driven through a
//! [`crate::device::Device`] like any USB key, and published as a Device object. Only its owner
//! lists, controls, removes or uses it (root may remove any); `DeviceAdded` / `DeviceRemoved`
//! for a software key go to the creating connection only. A key may also be served on a socket,
//! through a handed-out descriptor or as a uhid device: see [`super::virtual_transport`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use zbus::message::Header;
use zbus::{Connection, ObjectServer, OwnedObjectPath, interface};

use super::Shared;
use super::call::{Allowed, Call};
use super::device_object::DeviceObject;
use super::devices::{DeviceHandle, DeviceKind, DeviceRecord};
use super::error::BusError;
use super::names::{MANAGER_IFACE, ROOT_PATH};
use super::virtual_restore::{KeyConfig, KeySlot};
use super::virtual_transport::{TransportOptions, Transports};
use crate::authenticator::{
    AttestationKind, CtapVersion, PresencePolicy, SharedSoftKey, SoftKeyOptions,
};
use crate::device::{Device, DeviceOptions};
use crate::hid::ReportPipe;

/// Most software keys one uid may hold at once.
pub const MAX_KEYS_PER_UID: usize = 16;

/// `Create`'s JSON options (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateOptions {
    name: Option<String>,
    pin: Option<String>,
    resident_keys: Option<bool>,
    client_pin: Option<bool>,
    presence: Option<String>,
    presence_timeout_ms: Option<u64>,
    attestation: Option<String>,
    ctap: Option<String>,
    always_uv: Option<bool>,
    min_pin_length: Option<u8>,
    large_blobs: Option<bool>,
    aaguid: Option<String>,
    /// maxCredentialCountInList the key reports and enforces (CTAP 2.1 §6.4; at least 1).
    max_credential_count_in_list: Option<usize>,
    /// maxCredentialIdLength the key reports and enforces (at least its own longest ID).
    max_credential_id_length: Option<usize>,
    /// Enterprise attestation capable (CTAP 2.1 §7.1), enabled later by authenticatorConfig.
    enterprise_attestation: Option<bool>,
    /// The RP IDs that get vendor-facilitated enterprise attestation (implies capable).
    enterprise_rp_ids: Option<Vec<String>>,
    persist: Option<bool>,
    socket: Option<bool>,
    uhid: Option<bool>,
}

impl CreateOptions {
    fn transports(&self) -> TransportOptions {
        TransportOptions {
            socket: self.socket.unwrap_or(false),
            uhid: self.uhid.unwrap_or(false),
        }
    }
}

fn presence_policy(name: &str, timeout_ms: Option<u64>) -> Result<PresencePolicy, BusError> {
    match name {
        "auto" => Ok(PresencePolicy::AutoApprove),
        "deny" => Ok(PresencePolicy::Deny),
        "wait" => Ok(PresencePolicy::WaitForApproval {
            timeout: Duration::from_millis(timeout_ms.unwrap_or(30_000).clamp(100, 600_000)),
        }),
        other => Err(BusError::InvalidArgs(format!(
            "presence {other:?} is not auto, deny or wait"
        ))),
    }
}

fn build_options(options: &CreateOptions) -> Result<(SoftKeyOptions, PresencePolicy), BusError> {
    let invalid = |e: crate::authenticator::AuthnError| BusError::InvalidArgs(e.to_string());
    let mut soft = SoftKeyOptions::default();
    if let Some(ctap) = &options.ctap {
        soft.ctap = ctap.parse::<CtapVersion>().map_err(invalid)?;
    }
    if let Some(attestation) = &options.attestation {
        soft.attestation = attestation.parse::<AttestationKind>().map_err(invalid)?;
    }
    if let Some(rk) = options.resident_keys {
        soft.resident_keys = rk;
    }
    if let Some(client_pin) = options.client_pin {
        soft.client_pin = client_pin;
    }
    if let Some(always_uv) = options.always_uv {
        soft.always_uv = always_uv;
    }
    if let Some(min) = options.min_pin_length {
        soft.min_pin_length = min;
    }
    if let Some(large_blobs) = options.large_blobs {
        soft.large_blobs = large_blobs;
    }
    if let Some(aaguid) = &options.aaguid {
        soft.aaguid = SoftKeyOptions::parse_aaguid(aaguid).map_err(invalid)?;
    }
    if let Some(count) = options.max_credential_count_in_list {
        soft.max_credential_count_in_list = count;
    }
    if let Some(length) = options.max_credential_id_length {
        soft.max_credential_id_length = length;
    }
    soft.enterprise_attestation = match (options.enterprise_attestation, &options.enterprise_rp_ids)
    {
        (Some(false), Some(_)) => {
            return Err(BusError::InvalidArgs(
                "enterprise_rp_ids needs enterprise_attestation".into(),
            ));
        }
        (_, Some(rp_ids)) => Some(rp_ids.clone()),
        (Some(true), None) => Some(Vec::new()),
        (Some(false) | None, None) => None,
    };
    soft.initial_pin = options.pin.clone();
    soft.validate().map_err(invalid)?;
    let policy = presence_policy(
        options.presence.as_deref().unwrap_or("auto"),
        options.presence_timeout_ms,
    )?;
    Ok((soft, policy))
}

/// The Virtual interface.
#[derive(Debug)]
pub struct Virtual {
    shared: Arc<Shared>,
    transports: Transports,
}

impl Virtual {
    /// The interface over the daemon's shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        let transports = Transports::new(shared.runtime_dir.clone());
        Self { shared, transports }
    }

    /// Starts the transports of a key restored at start (`virtual_restore`).
    pub fn attach_transports(
        &self,
        handle: &DeviceHandle,
        transports: TransportOptions,
    ) -> Result<(), BusError> {
        self.transports.attach(handle, transports)
    }

    /// Admits a call on the caller's software key at `path` (root: any software key): the
    /// admitted call, the key's handle and the key. Another user's key is NotFound, as a missing
    /// one is, so that paths reveal nothing.
    async fn enter_key(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        path: &str,
    ) -> Result<(Call<'_>, Arc<DeviceHandle>, SharedSoftKey), BusError> {
        let call = Call::enter(&self.shared, conn, header, Allowed::Anyone).await?;
        let not_found = || BusError::NotFound(format!("you have no software key {path}"));
        let handle = self.shared.devices.get(path).ok_or_else(not_found)?;
        let uid = call.caller.uid;
        let mine = handle.record.owner == Some(uid)
            || (uid == 0 && handle.record.kind == DeviceKind::Virtual);
        match (&handle.soft, mine) {
            (Some(key), true) => {
                let key = key.clone();
                Ok((call, handle, key))
            }
            _ => Err(not_found()),
        }
    }
}

/// Starts a software key at `slot` (path and state vault) and its driver; returns the handle
/// (not yet registered).
pub async fn start_key(
    shared: &Shared,
    owner: u32,
    name: String,
    options: SoftKeyOptions,
    policy: PresencePolicy,
    slot: KeySlot,
) -> Result<Arc<DeviceHandle>, BusError> {
    let key = super::virtual_restore::open_soft_key(options, slot.vault).await?;
    let key = SharedSoftKey::new(key, policy);
    let (host, device_end) = crate::hid::pair();
    let stop = shared.cancel.child_token();
    let served = key.clone();
    let serve_stop = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::authenticator::serve(device_end, served, serve_stop).await {
            tracing::warn!(error = %e, "software key stopped");
        }
    });
    let pipe: Box<dyn ReportPipe> = Box::new(host);
    let device = match Device::open(pipe, DeviceOptions::default()).await {
        Ok(device) => device,
        Err(e) => {
            stop.cancel();
            return Err(BusError::Failed(format!("software key did not start: {e}")));
        }
    };
    let info = device.info().cloned().unwrap_or_default();
    Ok(Arc::new(DeviceHandle {
        record: DeviceRecord {
            path: slot.path,
            kind: DeviceKind::Virtual,
            name,
            owner: Some(owner),
            node: None,
        },
        device: tokio::sync::Mutex::new(device),
        info: std::sync::Mutex::new(info),
        soft: Some(key),
        stop,
    }))
}

async fn emit_to(
    conn: &Connection,
    destination: &str,
    member: &str,
    body: &(impl serde::Serialize + zbus::DynamicType),
) {
    if let Err(e) = conn
        .emit_signal(Some(destination), ROOT_PATH, MANAGER_IFACE, member, body)
        .await
    {
        tracing::debug!(error = %e, member, "signal not delivered");
    }
}

#[interface(name = "org.keygate.Keygate1.Virtual")]
impl Virtual {
    /// Creates a software security key owned by the caller; returns its Device object path.
    /// `options_json` (all optional): `{"name", "pin", "resident_keys", "client_pin",
    /// "presence": "auto"|"deny"|"wait", "presence_timeout_ms", "attestation":
    /// "none"|"self"|"packed", "ctap": "2.1"|"2.0"|"u2f", "always_uv", "min_pin_length",
    /// "large_blobs", "aaguid", "max_credential_count_in_list", "max_credential_id_length",
    /// "enterprise_attestation", "enterprise_rp_ids",
    /// "socket", "uhid", "persist"}`. `"socket": true` also serves the
    /// key on a SOCK_SEQPACKET socket under keygated's runtime directory (see `Socket`);
    /// `"uhid": true` also makes it a kernel HID device (NotAvailable when keygated may not write
    /// /dev/uhid). `"persist": true` keeps the key (credentials, counter, PIN, transports) in the
    /// store across restarts of keygated at the same path; the default `false` gives an
    /// ephemeral key, as Chrome's virtual authenticators are.
    /// `DeviceAdded` goes to the calling connection only.
    #[zbus(out_args("device"))]
    async fn create(
        &self,
        options_json: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<OwnedObjectPath, BusError> {
        let call = Call::enter(&self.shared, conn, &header, Allowed::Anyone).await?;
        let caller = &call.caller;
        self.shared.check_size("options_json", options_json)?;
        let options: CreateOptions = if options_json.trim().is_empty() {
            CreateOptions::default()
        } else {
            serde_json::from_str(options_json)
                .map_err(|e| BusError::InvalidArgs(format!("options_json: {e}")))?
        };
        if self.shared.devices.count_owned(caller.uid) >= MAX_KEYS_PER_UID {
            return Err(BusError::InvalidArgs(format!(
                "at most {MAX_KEYS_PER_UID} software keys per user"
            )));
        }
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| "keygate software key".into());
        if name.len() > 128 || name.chars().any(char::is_control) {
            return Err(BusError::InvalidArgs(
                "name: 1-128 printable characters".into(),
            ));
        }
        let (soft, policy) = build_options(&options)?;
        let transports = options.transports();
        let handle = super::virtual_restore::start_created(
            &self.shared,
            caller.uid,
            name,
            KeyConfig {
                options: soft,
                policy,
                transports,
            },
            options.persist.unwrap_or(false),
        )
        .await?;
        if let Err(e) = self.transports.attach(&handle, transports) {
            super::virtual_restore::abandon(&self.shared, &handle).await;
            return Err(e);
        }
        let path = handle.record.path.clone();
        server
            .at(
                &path,
                DeviceObject::new(Arc::clone(&self.shared), Arc::clone(&handle)),
            )
            .await?;
        self.shared.devices.insert(Arc::clone(&handle));
        tracing::info!(path = %path, uid = caller.uid, "software key created");
        emit_to(
            conn,
            &caller.unique_name,
            "DeviceAdded",
            &(
                path.clone(),
                "virtual",
                handle.record.name.as_str(),
                caller.uid,
            ),
        )
        .await;
        Ok(path)
    }

    /// The caller's software keys: (path, name).
    #[zbus(out_args("keys"))]
    async fn list(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<Vec<(OwnedObjectPath, String)>, BusError> {
        let call = Call::enter(&self.shared, conn, &header, Allowed::Anyone).await?;
        let uid = call.caller.uid;
        Ok(self
            .shared
            .devices
            .all()
            .iter()
            .filter(|h| h.record.owner == Some(uid) && h.soft.is_some())
            .map(|h| (h.record.path.clone(), h.record.name.clone()))
            .collect())
    }

    /// Removes one of the caller's software keys (root: any); a persistent key's stored state
    /// is deleted first.
    async fn remove(
        &self,
        path: OwnedObjectPath,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> Result<(), BusError> {
        let (call, handle, _) = self.enter_key(conn, &header, path.as_str()).await?;
        let caller = &call.caller;
        self.shared.persistent.forget(path.as_str()).await?;
        handle.stop.cancel();
        self.transports.detach(path.as_str());
        self.shared.devices.remove(path.as_str());
        server.remove::<DeviceObject, _>(&path).await?;
        tracing::info!(path = %path, uid = caller.uid, "software key removed");
        emit_to(conn, &caller.unique_name, "DeviceRemoved", &(path,)).await;
        Ok(())
    }

    /// The path of the SOCK_SEQPACKET socket of one of the caller's keys (created with
    /// `"socket": true`; NotAvailable otherwise). Only the key's owner and root may connect:
    /// other peers are closed at once.
    #[zbus(out_args("socket"))]
    async fn socket(
        &self,
        path: OwnedObjectPath,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let _key = self.enter_key(conn, &header, path.as_str()).await?;
        self.transports.socket_path(&path)
    }

    /// A new connection to one of the caller's keys: the host end of a SOCK_SEQPACKET socket
    /// pair carrying one 64-byte HID report per message, like the key's socket.
    #[zbus(out_args("socket"))]
    async fn connect(
        &self,
        path: OwnedObjectPath,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<zbus::OwnedFd, BusError> {
        let (_call, handle, _) = self.enter_key(conn, &header, path.as_str()).await?;
        self.transports.connect(&handle)
    }

    /// Approves the pending (or the next) user-presence request of a key; returns whether a
    /// request was waiting.
    #[zbus(out_args("was_waiting"))]
    async fn approve(
        &self,
        path: OwnedObjectPath,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, BusError> {
        let (_call, _, key) = self.enter_key(conn, &header, path.as_str()).await?;
        let approvals = key.presence().handle();
        let waiting = approvals.pending().is_some();
        approvals.approve();
        Ok(waiting)
    }

    /// Simulates unplugging and replugging the key (PIN token, reset window, retries).
    async fn power_cycle(
        &self,
        path: OwnedObjectPath,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let (_call, _, key) = self.enter_key(conn, &header, path.as_str()).await?;
        key.power_cycle();
        Ok(())
    }

    /// Sets the user-presence behaviour: `auto`, `deny` or `wait` (approve with `Approve`). A
    /// persistent key keeps it across restarts: it is stored before this answers (on a store
    /// failure the call fails and the key keeps its policy).
    async fn set_presence(
        &self,
        path: OwnedObjectPath,
        policy: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let (_call, _, key) = self.enter_key(conn, &header, path.as_str()).await?;
        let policy = presence_policy(policy, None)?;
        self.shared
            .persistent
            .set_presence(path.as_str(), &key, policy)
            .await
    }

    /// The credentials stored on one of the caller's keys, as JSON (test inspection; no
    /// private keys): `[{"credential_id", "rp_id", "user_name", "discoverable", "sign_count"}]`.
    #[zbus(out_args("credentials_json"))]
    async fn stored_credentials(
        &self,
        path: OwnedObjectPath,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let (_call, _, key) = self.enter_key(conn, &header, path.as_str()).await?;
        let list = key
            .with(|k| {
                k.credentials()
                    .iter()
                    .map(super::device_object::credential_json)
                    .collect::<Vec<_>>()
            })
            .ok_or_else(|| BusError::Failed("software key unavailable".into()))?;
        Ok(serde_json::Value::Array(list).to_string())
    }

    /// Removes one stored credential (base64url id) from one of the caller's keys.
    #[zbus(out_args("removed"))]
    async fn remove_credential(
        &self,
        path: OwnedObjectPath,
        credential_id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<bool, BusError> {
        let (_call, _, key) = self.enter_key(conn, &header, path.as_str()).await?;
        let id = crate::webauthn::b64::decode(credential_id)
            .map_err(|e| BusError::InvalidArgs(format!("credential_id: {e}")))?;
        // A persistent key commits the change to the store before answering: off the async
        // workers.
        tokio::task::spawn_blocking(move || key.with(|k| k.remove_credential(&id)))
            .await
            .map_err(|e| BusError::Failed(format!("software key task: {e}")))?
            .ok_or_else(|| BusError::Failed("software key unavailable".into()))?
            .map_err(|e| BusError::Failed(e.to_string()))
    }
}

/// Stops every device task (at shutdown).
pub fn stop_all(shared: &Shared) {
    for handle in shared.devices.all() {
        handle.stop.cancel();
    }
}
