//! `org.keygate.Keygate1.Device` at `/org/keygate/Keygate1/devices/<kind><n>`: one
//! authenticator. authenticatorGetInfo as properties; PIN (CTAP 2.1 §6.5), reset (§6.6) and
//! credential management (§6.8) as methods. Only callers who may see the device reach it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use zbus::message::Header;
use zbus::{Connection, interface};

use super::Shared;
use super::call::{Allowed, Call};
use super::devices::DeviceHandle;
use super::error::BusError;
use crate::authenticator::Credential;
use crate::ctap2::PublicKeyCredentialDescriptor;
use crate::ctap2::pin_protocol::Permissions;
use crate::device::{DeviceError, PinUvAuthToken};
use crate::webauthn::b64;

/// Longest PIN accepted (CTAP 2.1: 63 bytes).
const MAX_PIN_LEN: usize = 63;

/// A stored credential of a software key as JSON (public data only).
pub fn credential_json(credential: &Credential) -> serde_json::Value {
    serde_json::json!({
        "credential_id": b64::encode(&credential.id),
        "rp_id": credential.rp_id,
        "user_name": credential.user.as_ref().and_then(|u| u.name.clone()),
        "user_id": credential.user.as_ref().map(|u| b64::encode(&u.id)),
        "discoverable": credential.discoverable,
        "sign_count": credential.sign_count,
    })
}

/// Maps a device failure onto a named D-Bus error; CTAP status names are kept.
pub(crate) fn device_error(err: DeviceError) -> BusError {
    use crate::ctap2::StatusCode;
    match err.status() {
        Some(StatusCode::CTAP2_ERR_PIN_INVALID) => {
            BusError::Rejected("wrong PIN (CTAP2_ERR_PIN_INVALID)".into())
        }
        Some(StatusCode::CTAP2_ERR_PIN_BLOCKED) | Some(StatusCode::CTAP2_ERR_PIN_AUTH_BLOCKED) => {
            BusError::Locked(format!("PIN blocked: {err}"))
        }
        Some(StatusCode::CTAP2_ERR_PIN_POLICY_VIOLATION) => {
            BusError::InvalidArgs(format!("PIN policy: {err}"))
        }
        Some(StatusCode::CTAP2_ERR_NOT_ALLOWED)
        | Some(StatusCode::CTAP2_ERR_OPERATION_DENIED)
        | Some(StatusCode::CTAP2_ERR_USER_ACTION_TIMEOUT) => {
            BusError::NotAllowedError(err.to_string())
        }
        Some(StatusCode::CTAP2_ERR_NO_CREDENTIALS) => BusError::NotFound(err.to_string()),
        _ => match err {
            DeviceError::Pin(m) => BusError::InvalidArgs(m.to_owned()),
            DeviceError::Unsupported(m) => BusError::NotSupportedError(m.to_owned()),
            other => BusError::Failed(format!("device: {other}")),
        },
    }
}

fn check_pin(pin: &str) -> Result<(), BusError> {
    if pin.is_empty() || pin.len() > MAX_PIN_LEN {
        Err(BusError::InvalidArgs(format!(
            "a PIN is 1 to {MAX_PIN_LEN} bytes"
        )))
    } else {
        Ok(())
    }
}

/// The Device interface of one authenticator.
#[derive(Debug)]
pub struct DeviceObject {
    shared: Arc<Shared>,
    handle: Arc<DeviceHandle>,
}

impl DeviceObject {
    /// The object of `handle`.
    pub fn new(shared: Arc<Shared>, handle: Arc<DeviceHandle>) -> Self {
        Self { shared, handle }
    }

    fn not_visible(&self) -> String {
        format!("no device {}", self.handle.record.path)
    }

    /// Admits a method call from a caller who may see the device (others are told it does not
    /// exist), after checking the PINs it carries.
    async fn enter(
        &self,
        conn: &Connection,
        header: &Header<'_>,
        pins: &[&str],
    ) -> Result<Call<'_>, BusError> {
        let call = Call::enter(&self.shared, conn, header, Allowed::Anyone).await?;
        if !self.handle.record.visible_to(&call.caller) {
            return Err(BusError::NotFound(self.not_visible()));
        }
        pins.iter().try_for_each(|pin| check_pin(pin))?;
        Ok(call)
    }

    /// A property read: the same visibility rule as the methods. Reads without a header (the
    /// object server's own, for PropertiesChanged) are not checked.
    async fn visible<T>(
        &self,
        conn: &Connection,
        header: Option<Header<'_>>,
        read: impl FnOnce(&DeviceHandle) -> T,
    ) -> zbus::fdo::Result<T> {
        if let Some(header) = header {
            let caller = self
                .shared
                .access
                .caller(conn, &header)
                .await
                .map_err(|e| zbus::fdo::Error::AccessDenied(format!("{e:?}")))?;
            if !self.handle.record.visible_to(&caller) {
                return Err(zbus::fdo::Error::UnknownObject(self.not_visible()));
            }
        }
        Ok(read(&self.handle))
    }

    async fn refresh(&self, device: &mut crate::device::Device) {
        if let Ok(info) = device.refresh_info().await {
            self.handle.set_info(info.clone());
        }
    }
}

/// A pinUvAuthToken for credential management (CTAP 2.1 §6.8), unlocked by `pin`.
async fn credential_management_token(
    device: &mut crate::device::Device,
    pin: &str,
) -> Result<PinUvAuthToken, BusError> {
    device
        .pin_uv_auth_token(pin, Permissions::CREDENTIAL_MANAGEMENT, None)
        .await
        .map_err(device_error)
}

/// A GetInfo number as a D-Bus `u`, saturated.
fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[interface(name = "org.keygate.Keygate1.Device")]
impl DeviceObject {
    /// Product name.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn name(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<String> {
        self.visible(conn, header, |h| h.record.name.clone()).await
    }

    /// `usb`, `virtual` or `tpm`.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn kind(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<String> {
        self.visible(conn, header, |h| h.record.kind.as_str().to_owned())
            .await
    }

    /// Owner uid of a software key; 0xFFFFFFFF for a shared device.
    #[zbus(property(emits_changed_signal = "const"))]
    async fn owner(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<u32> {
        self.visible(conn, header, |h| {
            h.record.owner.unwrap_or(super::devices::SHARED_OWNER)
        })
        .await
    }

    /// GetInfo `versions` (`FIDO_2_1`, `FIDO_2_0`, `U2F_V2`).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn versions(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<Vec<String>> {
        self.visible(conn, header, |h| h.info().versions).await
    }

    /// GetInfo `extensions`.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn extensions(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<Vec<String>> {
        self.visible(conn, header, |h| h.info().extensions.unwrap_or_default())
            .await
    }

    /// GetInfo `aaguid` in UUID form.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn aaguid(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<String> {
        self.visible(conn, header, |h| {
            crate::authenticator::format_aaguid(&h.info().aaguid)
        })
        .await
    }

    /// GetInfo `options` (`rk`, `up`, `uv`, `clientPin`, `credMgmt`, ...).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn options(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<HashMap<String, bool>> {
        self.visible(conn, header, |h| {
            h.info().options.unwrap_or_default().into_iter().collect()
        })
        .await
    }

    /// GetInfo `pinUvAuthProtocols`.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn pin_protocols(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<Vec<u32>> {
        self.visible(conn, header, |h| {
            let protocols = h.info().pin_uv_auth_protocols.unwrap_or_default();
            protocols.into_iter().map(saturate).collect()
        })
        .await
    }

    /// GetInfo `transports`.
    #[zbus(property(emits_changed_signal = "false"))]
    async fn transports(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<Vec<String>> {
        self.visible(conn, header, |h| h.info().transports.unwrap_or_default())
            .await
    }

    /// GetInfo `minPINLength` (0 when not reported).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn min_pin_length(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<u32> {
        self.visible(conn, header, |h| {
            h.info().min_pin_length.map_or(0, saturate)
        })
        .await
    }

    /// GetInfo `remainingDiscoverableCredentials` (-1 when not reported).
    #[zbus(property(emits_changed_signal = "false"))]
    async fn remaining_discoverable_credentials(
        &self,
        #[zbus(header)] header: Option<Header<'_>>,
        #[zbus(connection)] conn: &Connection,
    ) -> zbus::fdo::Result<i64> {
        self.visible(conn, header, |h| {
            let remaining = h.info().remaining_discoverable_credentials;
            remaining.map_or(-1, |r| i64::try_from(r).unwrap_or(i64::MAX))
        })
        .await
    }

    /// PIN retries left, and whether the key needs a power cycle before the next attempt.
    #[zbus(out_args("retries", "power_cycle_needed"))]
    async fn pin_retries(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(u32, bool), BusError> {
        let _call = self.enter(conn, &header, &[]).await?;
        let mut device = self.handle.device.lock().await;
        let (retries, power_cycle) = device.pin_retries().await.map_err(device_error)?;
        Ok((
            u32::try_from(retries).unwrap_or(u32::MAX),
            power_cycle.unwrap_or(false),
        ))
    }

    /// Sets the first PIN.
    async fn set_pin(
        &self,
        new_pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let _call = self.enter(conn, &header, &[new_pin]).await?;
        let mut device = self.handle.device.lock().await;
        device.set_pin(new_pin).await.map_err(device_error)?;
        self.refresh(&mut device).await;
        Ok(())
    }

    /// Changes the PIN.
    async fn change_pin(
        &self,
        current_pin: &str,
        new_pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let _call = self.enter(conn, &header, &[current_pin, new_pin]).await?;
        let mut device = self.handle.device.lock().await;
        let changed = device.change_pin(current_pin, new_pin).await;
        changed.map_err(device_error)?;
        self.refresh(&mut device).await;
        Ok(())
    }

    /// authenticatorReset: deletes every credential and the PIN. Needs a touch, and most keys
    /// accept it only within seconds of being plugged in.
    async fn reset(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let _call = self.enter(conn, &header, &[]).await?;
        let cancel: CancellationToken = self.shared.cancel.child_token();
        let mut device = self.handle.device.lock().await;
        let reset = device.reset(&cancel, &mut |_| {}).await;
        reset.map_err(device_error)?;
        self.refresh(&mut device).await;
        tracing::info!(path = %self.handle.record.path, "authenticator reset");
        Ok(())
    }

    /// The discoverable credentials on the key, unlocked by its PIN, as JSON:
    /// `[{"rp_id", "credential_id", "user_name", "user_display_name", "user_id"}]`.
    #[zbus(out_args("credentials_json"))]
    async fn credentials(
        &self,
        pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<String, BusError> {
        let _call = self.enter(conn, &header, &[pin]).await?;
        let mut device = self.handle.device.lock().await;
        let token = credential_management_token(&mut device, pin).await?;
        let mut out = Vec::new();
        for rp in device.enumerate_rps(&token).await.map_err(device_error)? {
            let (Some(rp_entity), Some(hash)) = (rp.rp, rp.rp_id_hash) else {
                continue;
            };
            let credentials = device.enumerate_credentials(&token, hash).await;
            for cred in credentials.map_err(device_error)? {
                out.push(serde_json::json!({
                    "rp_id": rp_entity.id,
                    "credential_id": cred.credential_id.as_ref().map(|d| b64::encode(&d.id)),
                    "user_name": cred.user.as_ref().and_then(|u| u.name.clone()),
                    "user_display_name": cred.user.as_ref().and_then(|u| u.display_name.clone()),
                    "user_id": cred.user.as_ref().map(|u| b64::encode(&u.id)),
                }));
            }
        }
        Ok(serde_json::Value::Array(out).to_string())
    }

    /// Deletes one discoverable credential (base64url id), unlocked by the PIN.
    async fn delete_credential(
        &self,
        pin: &str,
        credential_id: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let _call = self.enter(conn, &header, &[pin]).await?;
        let id = b64::decode(credential_id)
            .map_err(|e| BusError::InvalidArgs(format!("credential_id: {e}")))?;
        let mut device = self.handle.device.lock().await;
        let token = credential_management_token(&mut device, pin).await?;
        let descriptor = PublicKeyCredentialDescriptor {
            type_: "public-key".into(),
            id,
            transports: None,
        };
        let deleted = device.delete_credential(&token, descriptor).await;
        deleted.map_err(device_error)?;
        self.refresh(&mut device).await;
        Ok(())
    }

    /// authenticatorConfig enableEnterpriseAttestation (CTAP 2.1 §6.11.1) on a key that reports
    /// the `ep` option; `pin` ("" for a key without one) unlocks a token with the `acfg`
    /// permission. A key without the capability is NotSupportedError.
    async fn enable_enterprise_attestation(
        &self,
        pin: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let pins: &[&str] = if pin.is_empty() { &[] } else { &[pin] };
        let _call = self.enter(conn, &header, pins).await?;
        let mut device = self.handle.device.lock().await;
        let token = match pin {
            "" => None,
            pin => Some(
                device
                    .pin_uv_auth_token(pin, Permissions::AUTHENTICATOR_CONFIGURATION, None)
                    .await
                    .map_err(device_error)?,
            ),
        };
        let enabled = device.enable_enterprise_attestation(token.as_ref()).await;
        enabled.map_err(device_error)?;
        self.refresh(&mut device).await;
        tracing::info!(path = %self.handle.record.path, "enterprise attestation enabled");
        Ok(())
    }

    /// Blinks the key (CTAPHID_WINK), to find it among several.
    async fn wink(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> Result<(), BusError> {
        let _call = self.enter(conn, &header, &[]).await?;
        let mut device = self.handle.device.lock().await;
        device.wink().await.map_err(device_error)
    }
}
