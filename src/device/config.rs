//! Typed authenticatorConfig helpers of the host driver (CTAP 2.1 §6.11):
//! enableEnterpriseAttestation, toggleAlwaysUv and setMinPINLength. vendorPrototype can still be
//! sent with [`Device::config`].
//!
//! A key with a PIN set (or alwaysUv on) needs a pinUvAuthToken with the `acfg` permission
//! ([`crate::ctap2::pin_protocol::Permissions::AUTHENTICATOR_CONFIGURATION`]); one without any
//! user verification configured takes the commands unauthenticated (§6.11.1 step 4).

use tokio_util::sync::CancellationToken;

use super::{Device, DeviceError, PinUvAuthToken};
use crate::ctap2::commands::config::{self, SetMinPinLengthParams, SubCommand, SubCommandParams};
use crate::hid::ReportPipe;

impl<P: ReportPipe> Device<P> {
    /// Whether the key supports authenticatorConfig (`authnrCfg` option, §6.4).
    pub fn supports_config(&self) -> bool {
        self.info
            .as_ref()
            .is_some_and(|info| info.option_value("authnrCfg") == Some(true))
    }

    /// One authenticatorConfig subcommand, authenticated with `token` when given
    /// (pinUvAuthParam over `32 × 0xFF ‖ 0x0D ‖ subCommand ‖ subCommandParams`). GetInfo is
    /// read again afterwards, since the subcommands change what it reports.
    pub async fn config(
        &mut self,
        token: Option<&PinUvAuthToken>,
        sub_command: SubCommand,
        params: Option<SubCommandParams>,
    ) -> Result<(), DeviceError> {
        if !self.supports_config() {
            return Err(DeviceError::Unsupported("authenticatorConfig"));
        }
        let mut request = config::Request::new(sub_command, params);
        if let Some(token) = token {
            token.sign(&mut request);
        }
        self.command(&request, &CancellationToken::new(), &mut |_| {})
            .await?;
        self.refresh_info().await?;
        Ok(())
    }

    /// Whether the key can give enterprise attestation (`ep` present), and whether it is on.
    pub fn enterprise_attestation(&self) -> Option<bool> {
        self.info.as_ref().and_then(|info| info.option_value("ep"))
    }

    /// enableEnterpriseAttestation (§6.11.1): only a key that reports `ep` has it.
    pub async fn enable_enterprise_attestation(
        &mut self,
        token: Option<&PinUvAuthToken>,
    ) -> Result<(), DeviceError> {
        if self.enterprise_attestation().is_none() {
            return Err(DeviceError::Unsupported("enterprise attestation"));
        }
        self.config(token, SubCommand::ENABLE_ENTERPRISE_ATTESTATION, None)
            .await
    }

    /// toggleAlwaysUv (§6.11.2). Returns the new `alwaysUv` state as GetInfo reports it.
    pub async fn toggle_always_uv(
        &mut self,
        token: Option<&PinUvAuthToken>,
    ) -> Result<bool, DeviceError> {
        self.config(token, SubCommand::TOGGLE_ALWAYS_UV, None)
            .await?;
        Ok(self
            .info
            .as_ref()
            .is_some_and(|info| info.option_value("alwaysUv") == Some(true)))
    }

    /// setMinPINLength (§6.11.4): raise the minimum PIN length (`newMinPINLength`, never
    /// lower than the current one), name the RP IDs that may read it through the minPinLength
    /// extension (`minPinLengthRPIDs`), and/or force a PIN change (`forceChangePin`).
    pub async fn set_min_pin_length(
        &mut self,
        token: Option<&PinUvAuthToken>,
        params: SetMinPinLengthParams,
    ) -> Result<(), DeviceError> {
        self.config(
            token,
            SubCommand::SET_MIN_PIN_LENGTH,
            Some(SubCommandParams::SetMinPinLength(params)),
        )
        .await
    }
}
