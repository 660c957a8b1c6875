//! authenticatorConfig (0x0D), CTAP 2.1 §6.11.
//!
//! pinUvAuthParam = authenticate(pinUvAuthToken, [`Request::auth_message`]):
//! 32 × 0xFF || 0x0D || uint8(subCommand) || canonical CBOR(subCommandParams).

use ciborium::Value;

use crate::ctap2::cbor::{self, MapBuilder, MapReader};
use crate::ctap2::error::{Ctap2Error, DecodeError};
use crate::ctap2::status::StatusCode;

/// An authenticatorConfig subcommand. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubCommand(pub u8);

impl SubCommand {
    /// 0x01 enableEnterpriseAttestation.
    pub const ENABLE_ENTERPRISE_ATTESTATION: Self = Self(0x01);
    /// 0x02 toggleAlwaysUv.
    pub const TOGGLE_ALWAYS_UV: Self = Self(0x02);
    /// 0x03 setMinPINLength.
    pub const SET_MIN_PIN_LENGTH: Self = Self(0x03);
    /// 0xFF vendorPrototype.
    pub const VENDOR_PROTOTYPE: Self = Self(0xFF);
}

/// setMinPINLength subCommandParams (CTAP 2.1 §6.11.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetMinPinLengthParams {
    /// 0x01 newMinPINLength.
    pub new_min_pin_length: Option<u64>,
    /// 0x02 minPinLengthRPIDs.
    pub min_pin_length_rp_ids: Option<Vec<String>>,
    /// 0x03 forceChangePin.
    pub force_change_pin: Option<bool>,
}

/// subCommandParams of authenticatorConfig.
#[derive(Debug, Clone, PartialEq)]
pub enum SubCommandParams {
    /// For setMinPINLength.
    SetMinPinLength(SetMinPinLengthParams),
    /// For any other subcommand (vendorPrototype: `{1: vendorCommandId}`), as sent.
    Other(Value),
}

impl SubCommandParams {
    /// The subCommandParams map.
    pub fn to_value(&self) -> Value {
        match self {
            Self::SetMinPinLength(params) => MapBuilder::new()
                .opt(0x01, params.new_min_pin_length)
                .opt(
                    0x02,
                    params.min_pin_length_rp_ids.as_deref().map(cbor::text_vec),
                )
                .opt(0x03, params.force_change_pin)
                .build(),
            Self::Other(value) => value.clone(),
        }
    }

    fn from_value(sub_command: SubCommand, value: Value) -> Result<Self, DecodeError> {
        if sub_command != SubCommand::SET_MIN_PIN_LENGTH {
            cbor::into_map(value.clone(), "subCommandParams")?;
            return Ok(Self::Other(value));
        }
        let mut map = MapReader::new(value, "subCommandParams")?;
        Ok(Self::SetMinPinLength(SetMinPinLengthParams {
            new_min_pin_length: map.opt_as(0x01, "newMinPINLength", cbor::into_u64)?,
            min_pin_length_rp_ids: map.opt_as(0x02, "minPinLengthRPIDs", cbor::into_text_vec)?,
            force_change_pin: map.opt_as(0x03, "forceChangePin", cbor::into_bool)?,
        }))
    }
}

/// authenticatorConfig parameters (CTAP 2.1 §6.11).
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// 0x01 subCommand. Required.
    pub sub_command: SubCommand,
    /// 0x02 subCommandParams.
    pub sub_command_params: Option<SubCommandParams>,
    /// 0x03 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x04 pinUvAuthParam.
    pub pin_uv_auth_param: Option<Vec<u8>>,
}

impl Request {
    /// A request without authentication (fill in `pin_uv_auth_*` with [`Request::auth_message`]).
    pub fn new(sub_command: SubCommand, sub_command_params: Option<SubCommandParams>) -> Self {
        Self {
            sub_command,
            sub_command_params,
            pin_uv_auth_protocol: None,
            pin_uv_auth_param: None,
        }
    }

    /// The message pinUvAuthParam authenticates: 32 × 0xFF || 0x0D || subCommand || subCommandParams.
    pub fn auth_message(&self) -> Vec<u8> {
        let mut prefix = [0xFF; 33];
        prefix[32] = super::CMD_CONFIG;
        let params = self
            .sub_command_params
            .as_ref()
            .map(SubCommandParams::to_value);
        super::subcommand_auth_message(&prefix, self.sub_command.0, params.as_ref())
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        super::subcommand_map(
            self.sub_command.0,
            self.sub_command_params
                .as_ref()
                .map(SubCommandParams::to_value),
            self.pin_uv_auth_protocol,
            self.pin_uv_auth_param.as_deref(),
        )
    }

    /// Command byte + canonical CBOR.
    pub fn encode(&self) -> Vec<u8> {
        super::encode_with_cmd(super::CMD_CONFIG, &self.to_value())
    }

    /// Decodes the parameters (after the command byte).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        let mut map = MapReader::from_request(params, "authenticatorConfig")?;
        let sub_command = SubCommand(map.req_as(0x01, "subCommand", cbor::into_uint)?);
        Ok(Self {
            sub_command,
            sub_command_params: map
                .opt(0x02)
                .map(|v| SubCommandParams::from_value(sub_command, v))
                .transpose()?,
            pin_uv_auth_protocol: map.opt_as(0x03, "pinUvAuthProtocol", cbor::into_u64)?,
            pin_uv_auth_param: map.opt_as(0x04, "pinUvAuthParam", cbor::into_bytes)?,
        })
    }
}

/// authenticatorConfig response: no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Response;

impl Response {
    /// Empty.
    pub fn encode(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Accepts only an empty body.
    pub fn decode(body: &[u8]) -> Result<Self, Ctap2Error> {
        super::no_body(body).map(|()| Self)
    }
}

super::command!(Request, Response, super::CMD_CONFIG);

super::pin_uv_authenticated!(Request);
