//! authenticatorClientPIN (0x06), CTAP 2.1 §6.5.5.
//!
//! [`Request::decode`] checks the parameters each known subcommand requires (0x14 when one is
//! missing, CTAP 2.1 §6.5.5.1); an unknown subcommand decodes, and the authenticator answers
//! 0x3E CTAP2_ERR_INVALID_SUBCOMMAND. The cryptography is in [`crate::ctap2::pin_protocol`].

use ciborium::Value;

use crate::ctap2::cbor::{self, MapBuilder, MapReader};
use crate::ctap2::cose::CoseKey;
use crate::ctap2::error::{Ctap2Error, DecodeError};
use crate::ctap2::pin_protocol::Permissions;
use crate::ctap2::status::StatusCode;

/// A ClientPIN subcommand. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubCommand(pub u8);

impl SubCommand {
    /// 0x01 getPINRetries.
    pub const GET_PIN_RETRIES: Self = Self(0x01);
    /// 0x02 getKeyAgreement.
    pub const GET_KEY_AGREEMENT: Self = Self(0x02);
    /// 0x03 setPIN.
    pub const SET_PIN: Self = Self(0x03);
    /// 0x04 changePIN.
    pub const CHANGE_PIN: Self = Self(0x04);
    /// 0x05 getPinToken (superseded by the permission variants; no permissions, mc+ga implied).
    pub const GET_PIN_TOKEN: Self = Self(0x05);
    /// 0x06 getPinUvAuthTokenUsingUvWithPermissions.
    pub const GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS: Self = Self(0x06);
    /// 0x07 getUVRetries.
    pub const GET_UV_RETRIES: Self = Self(0x07);
    /// 0x09 getPinUvAuthTokenUsingPinWithPermissions.
    pub const GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS: Self = Self(0x09);
}

/// authenticatorClientPIN parameters (CTAP 2.1 §6.5.5.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// 0x01 pinUvAuthProtocol (optional only for getPINRetries / getUVRetries).
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x02 subCommand. Required.
    pub sub_command: SubCommand,
    /// 0x03 keyAgreement: the platform's key-agreement public key.
    pub key_agreement: Option<CoseKey>,
    /// 0x04 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x05 newPinEnc: encrypt(sharedSecret, paddedNewPin).
    pub new_pin_enc: Option<Vec<u8>>,
    /// 0x06 pinHashEnc: encrypt(sharedSecret, LEFT(SHA-256(curPin), 16)).
    pub pin_hash_enc: Option<Vec<u8>>,
    /// 0x09 permissions.
    pub permissions: Option<Permissions>,
    /// 0x0A rpId (permissions RP ID).
    pub rp_id: Option<String>,
}

impl Request {
    fn bare(sub_command: SubCommand, pin_uv_auth_protocol: Option<u64>) -> Self {
        Self {
            pin_uv_auth_protocol,
            sub_command,
            key_agreement: None,
            pin_uv_auth_param: None,
            new_pin_enc: None,
            pin_hash_enc: None,
            permissions: None,
            rp_id: None,
        }
    }

    /// getPINRetries (protocol optional).
    pub fn get_pin_retries(pin_uv_auth_protocol: Option<u64>) -> Self {
        Self::bare(SubCommand::GET_PIN_RETRIES, pin_uv_auth_protocol)
    }

    /// getUVRetries (protocol optional).
    pub fn get_uv_retries(pin_uv_auth_protocol: Option<u64>) -> Self {
        Self::bare(SubCommand::GET_UV_RETRIES, pin_uv_auth_protocol)
    }

    /// getKeyAgreement.
    pub fn get_key_agreement(pin_uv_auth_protocol: u64) -> Self {
        Self::bare(SubCommand::GET_KEY_AGREEMENT, Some(pin_uv_auth_protocol))
    }

    /// setPIN: `pin_uv_auth_param` = authenticate(sharedSecret, newPinEnc).
    pub fn set_pin(
        protocol: u64,
        key_agreement: CoseKey,
        new_pin_enc: Vec<u8>,
        pin_uv_auth_param: Vec<u8>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            new_pin_enc: Some(new_pin_enc),
            pin_uv_auth_param: Some(pin_uv_auth_param),
            ..Self::bare(SubCommand::SET_PIN, Some(protocol))
        }
    }

    /// changePIN: `pin_uv_auth_param` = authenticate(sharedSecret, newPinEnc || pinHashEnc).
    pub fn change_pin(
        protocol: u64,
        key_agreement: CoseKey,
        pin_hash_enc: Vec<u8>,
        new_pin_enc: Vec<u8>,
        pin_uv_auth_param: Vec<u8>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            new_pin_enc: Some(new_pin_enc),
            pin_uv_auth_param: Some(pin_uv_auth_param),
            ..Self::bare(SubCommand::CHANGE_PIN, Some(protocol))
        }
    }

    /// getPinToken (no permissions).
    pub fn get_pin_token(protocol: u64, key_agreement: CoseKey, pin_hash_enc: Vec<u8>) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            ..Self::bare(SubCommand::GET_PIN_TOKEN, Some(protocol))
        }
    }

    /// getPinUvAuthTokenUsingPinWithPermissions.
    pub fn get_pin_uv_auth_token_using_pin_with_permissions(
        protocol: u64,
        key_agreement: CoseKey,
        pin_hash_enc: Vec<u8>,
        permissions: Permissions,
        rp_id: Option<String>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            pin_hash_enc: Some(pin_hash_enc),
            permissions: Some(permissions),
            rp_id,
            ..Self::bare(
                SubCommand::GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS,
                Some(protocol),
            )
        }
    }

    /// getPinUvAuthTokenUsingUvWithPermissions.
    pub fn get_pin_uv_auth_token_using_uv_with_permissions(
        protocol: u64,
        key_agreement: CoseKey,
        permissions: Permissions,
        rp_id: Option<String>,
    ) -> Self {
        Self {
            key_agreement: Some(key_agreement),
            permissions: Some(permissions),
            rp_id,
            ..Self::bare(
                SubCommand::GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS,
                Some(protocol),
            )
        }
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .opt(0x01, self.pin_uv_auth_protocol)
            .put(0x02, self.sub_command.0)
            .opt(0x03, self.key_agreement.as_ref().map(CoseKey::to_value))
            .opt(0x04, self.pin_uv_auth_param.as_deref().map(cbor::bytes))
            .opt(0x05, self.new_pin_enc.as_deref().map(cbor::bytes))
            .opt(0x06, self.pin_hash_enc.as_deref().map(cbor::bytes))
            .opt(0x09, self.permissions.map(|p| p.0))
            .opt(0x0A, self.rp_id.as_deref().map(cbor::text))
            .build()
    }

    /// Command byte + canonical CBOR.
    pub fn encode(&self) -> Vec<u8> {
        super::encode_with_cmd(super::CMD_CLIENT_PIN, &self.to_value())
    }

    /// Decodes the parameters (after the command byte) and checks the members the
    /// subcommand requires.
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        let request = Self::from_map(MapReader::from_request(params, "clientPIN")?)?;
        request.check_required()?;
        Ok(request)
    }

    fn from_map(mut map: MapReader) -> Result<Self, DecodeError> {
        Ok(Self {
            pin_uv_auth_protocol: map.opt_as(0x01, "pinUvAuthProtocol", cbor::into_u64)?,
            sub_command: SubCommand(map.req_as(0x02, "subCommand", cbor::into_uint)?),
            key_agreement: map.opt(0x03).map(CoseKey::from_value).transpose()?,
            pin_uv_auth_param: map.opt_as(0x04, "pinUvAuthParam", cbor::into_bytes)?,
            new_pin_enc: map.opt_as(0x05, "newPinEnc", cbor::into_bytes)?,
            pin_hash_enc: map.opt_as(0x06, "pinHashEnc", cbor::into_bytes)?,
            permissions: map
                .opt_as(0x09, "permissions", cbor::into_uint::<u8>)?
                .map(Permissions),
            rp_id: map.opt_as(0x0A, "rpId", cbor::into_text)?,
        })
    }

    /// The members each subcommand needs (CTAP 2.1 §6.5.5.4 - §6.5.5.8); 0x14 when one is missing.
    fn check_required(&self) -> Result<(), DecodeError> {
        let protocol = self.pin_uv_auth_protocol.is_some();
        let key = self.key_agreement.is_some();
        let auth = self.pin_uv_auth_param.is_some();
        let new_pin = self.new_pin_enc.is_some();
        let pin_hash = self.pin_hash_enc.is_some();
        let permissions = self.permissions.is_some();
        let ok = match self.sub_command {
            SubCommand::GET_KEY_AGREEMENT => protocol,
            SubCommand::SET_PIN => protocol && key && auth && new_pin,
            SubCommand::CHANGE_PIN => protocol && key && auth && new_pin && pin_hash,
            SubCommand::GET_PIN_TOKEN => protocol && key && pin_hash,
            SubCommand::GET_PIN_UV_AUTH_TOKEN_USING_PIN_WITH_PERMISSIONS => {
                protocol && key && pin_hash && permissions
            }
            SubCommand::GET_PIN_UV_AUTH_TOKEN_USING_UV_WITH_PERMISSIONS => {
                protocol && key && permissions
            }
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(DecodeError::missing("clientPIN subcommand parameter"))
        }
    }
}

/// authenticatorClientPIN response (CTAP 2.1 §6.5.5.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// 0x01 keyAgreement: the authenticator's key-agreement public key.
    pub key_agreement: Option<CoseKey>,
    /// 0x02 pinUvAuthToken, encrypted with the shared secret.
    pub pin_uv_auth_token: Option<Vec<u8>>,
    /// 0x03 pinRetries.
    pub pin_retries: Option<u64>,
    /// 0x04 powerCycleState: a power cycle is needed before the next PIN attempt.
    pub power_cycle_state: Option<bool>,
    /// 0x05 uvRetries.
    pub uv_retries: Option<u64>,
}

impl Response {
    /// The response map (empty for setPIN / changePIN).
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .opt(0x01, self.key_agreement.as_ref().map(CoseKey::to_value))
            .opt(0x02, self.pin_uv_auth_token.as_deref().map(cbor::bytes))
            .opt(0x03, self.pin_retries)
            .opt(0x04, self.power_cycle_state)
            .opt(0x05, self.uv_retries)
            .build()
    }

    /// Canonical CBOR (no status byte); empty when no member is present (setPIN, changePIN).
    pub fn encode(&self) -> Vec<u8> {
        if *self == Self::default() {
            return Vec::new();
        }
        cbor::to_vec(&self.to_value())
    }

    /// Decodes the CBOR map (no status byte); an empty body is an empty response.
    pub fn decode(body: &[u8]) -> Result<Self, Ctap2Error> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        let mut map = MapReader::from_bytes(body, "clientPIN response")?;
        Ok(Self {
            key_agreement: map.opt(0x01).map(CoseKey::from_value).transpose()?,
            pin_uv_auth_token: map.opt_as(0x02, "pinUvAuthToken", cbor::into_bytes)?,
            pin_retries: map.opt_as(0x03, "pinRetries", cbor::into_u64)?,
            power_cycle_state: map.opt_as(0x04, "powerCycleState", cbor::into_bool)?,
            uv_retries: map.opt_as(0x05, "uvRetries", cbor::into_u64)?,
        })
    }
}

super::command!(Request, Response, super::CMD_CLIENT_PIN);
