//! authenticatorGetInfo (0x04), CTAP 2.1 §6.4.

use std::collections::BTreeMap;

use ciborium::Value;

use crate::ctap2::cbor::{self, MapBuilder, MapReader};
use crate::ctap2::error::{Ctap2Error, DecodeError};
use crate::ctap2::status::StatusCode;
use crate::ctap2::types::PublicKeyCredentialParameters;

/// authenticatorGetInfo request: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request;

impl Request {
    /// The command byte alone.
    pub fn encode(&self) -> Vec<u8> {
        vec![super::CMD_GET_INFO]
    }

    /// Accepts only empty parameters (anything else is 0x03 CTAP1_ERR_INVALID_LENGTH).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        super::no_params(params).map(|()| Self)
    }
}

/// authenticatorGetInfo response (CTAP 2.1 §6.4). Member numbers are the CBOR map keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// 0x01 versions, e.g. "U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1". Required.
    pub versions: Vec<String>,
    /// 0x02 supported extension identifiers.
    pub extensions: Option<Vec<String>>,
    /// 0x03 the AAGUID. Required.
    pub aaguid: [u8; 16],
    /// 0x04 options ("plat", "rk", "clientPin", "up", "uv", "pinUvAuthToken", "credMgmt", ...).
    pub options: Option<BTreeMap<String, bool>>,
    /// 0x05 maxMsgSize.
    pub max_msg_size: Option<u64>,
    /// 0x06 pinUvAuthProtocols, in order of preference.
    pub pin_uv_auth_protocols: Option<Vec<u64>>,
    /// 0x07 maxCredentialCountInList.
    pub max_credential_count_in_list: Option<u64>,
    /// 0x08 maxCredentialIdLength.
    pub max_credential_id_length: Option<u64>,
    /// 0x09 transports.
    pub transports: Option<Vec<String>>,
    /// 0x0A algorithms.
    pub algorithms: Option<Vec<PublicKeyCredentialParameters>>,
    /// 0x0B maxSerializedLargeBlobArray.
    pub max_serialized_large_blob_array: Option<u64>,
    /// 0x0C forcePINChange.
    pub force_pin_change: Option<bool>,
    /// 0x0D minPINLength.
    pub min_pin_length: Option<u64>,
    /// 0x0E firmwareVersion.
    pub firmware_version: Option<u64>,
    /// 0x0F maxCredBlobLength.
    pub max_cred_blob_length: Option<u64>,
    /// 0x10 maxRPIDsForSetMinPINLength.
    pub max_rp_ids_for_set_min_pin_length: Option<u64>,
    /// 0x11 preferredPlatformUvAttempts.
    pub preferred_platform_uv_attempts: Option<u64>,
    /// 0x12 uvModality.
    pub uv_modality: Option<u64>,
    /// 0x13 certifications.
    pub certifications: Option<BTreeMap<String, u64>>,
    /// 0x14 remainingDiscoverableCredentials.
    pub remaining_discoverable_credentials: Option<u64>,
    /// 0x15 vendorPrototypeConfigCommands.
    pub vendor_prototype_config_commands: Option<Vec<u64>>,
}

fn uint_vec(items: &[u64]) -> Value {
    Value::Array(items.iter().map(|n| Value::from(*n)).collect())
}

fn into_uint_vec(value: Value, context: &'static str) -> Result<Vec<u64>, DecodeError> {
    cbor::into_vec(value, context)?
        .into_iter()
        .map(|item| cbor::into_u64(item, context))
        .collect()
}

impl Response {
    /// True when `options[name]` is present and true.
    pub fn option(&self, name: &str) -> bool {
        self.option_value(name) == Some(true)
    }

    /// `options[name]`, if present.
    pub fn option_value(&self, name: &str) -> Option<bool> {
        cbor::flag(self.options.as_ref(), name)
    }

    /// The CBOR map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(0x01, cbor::text_vec(&self.versions))
            .opt(0x02, self.extensions.as_deref().map(cbor::text_vec))
            .put(0x03, cbor::bytes(&self.aaguid))
            .opt(0x04, self.options.as_ref().map(cbor::bool_map))
            .opt(0x05, self.max_msg_size)
            .opt(0x06, self.pin_uv_auth_protocols.as_deref().map(uint_vec))
            .opt(0x07, self.max_credential_count_in_list)
            .opt(0x08, self.max_credential_id_length)
            .opt(0x09, self.transports.as_deref().map(cbor::text_vec))
            .opt(
                0x0A,
                self.algorithms
                    .as_deref()
                    .map(PublicKeyCredentialParameters::list_to_value),
            )
            .opt(0x0B, self.max_serialized_large_blob_array)
            .opt(0x0C, self.force_pin_change)
            .opt(0x0D, self.min_pin_length)
            .opt(0x0E, self.firmware_version)
            .opt(0x0F, self.max_cred_blob_length)
            .opt(0x10, self.max_rp_ids_for_set_min_pin_length)
            .opt(0x11, self.preferred_platform_uv_attempts)
            .opt(0x12, self.uv_modality)
            .opt(
                0x13,
                self.certifications.as_ref().map(|map| {
                    Value::Map(
                        map.iter()
                            .map(|(k, v)| (Value::Text(k.clone()), Value::from(*v)))
                            .collect(),
                    )
                }),
            )
            .opt(0x14, self.remaining_discoverable_credentials)
            .opt(
                0x15,
                self.vendor_prototype_config_commands
                    .as_deref()
                    .map(uint_vec),
            )
            .build()
    }

    /// Canonical CBOR (no status byte).
    pub fn encode(&self) -> Vec<u8> {
        cbor::to_vec(&self.to_value())
    }

    /// Decodes the CBOR map (no status byte).
    pub fn decode(bytes: &[u8]) -> Result<Self, Ctap2Error> {
        Ok(Self::from_map(MapReader::from_bytes(
            bytes,
            "getInfo response",
        )?)?)
    }

    fn from_map(mut map: MapReader) -> Result<Self, DecodeError> {
        Ok(Self {
            versions: map.req_as(0x01, "versions", cbor::into_text_vec)?,
            extensions: map.opt_as(0x02, "extensions", cbor::into_text_vec)?,
            aaguid: map.req_as(0x03, "aaguid", cbor::into_array)?,
            options: map.opt_as(0x04, "options", cbor::into_bool_map)?,
            max_msg_size: map.opt_as(0x05, "maxMsgSize", cbor::into_u64)?,
            pin_uv_auth_protocols: map
                .opt(0x06)
                .map(|v| into_uint_vec(v, "pinUvAuthProtocols"))
                .transpose()?,
            max_credential_count_in_list: map.opt_as(
                0x07,
                "maxCredentialCountInList",
                cbor::into_u64,
            )?,
            max_credential_id_length: map.opt_as(0x08, "maxCredentialIdLength", cbor::into_u64)?,
            transports: map.opt_as(0x09, "transports", cbor::into_text_vec)?,
            algorithms: map
                .opt(0x0A)
                .map(|v| PublicKeyCredentialParameters::list_from_value(v, "algorithms"))
                .transpose()?,
            max_serialized_large_blob_array: map.opt_as(
                0x0B,
                "maxSerializedLargeBlobArray",
                cbor::into_u64,
            )?,
            force_pin_change: map.opt_as(0x0C, "forcePINChange", cbor::into_bool)?,
            min_pin_length: map.opt_as(0x0D, "minPINLength", cbor::into_u64)?,
            firmware_version: map.opt_as(0x0E, "firmwareVersion", cbor::into_u64)?,
            max_cred_blob_length: map.opt_as(0x0F, "maxCredBlobLength", cbor::into_u64)?,
            max_rp_ids_for_set_min_pin_length: map.opt_as(
                0x10,
                "maxRPIDsForSetMinPINLength",
                cbor::into_u64,
            )?,
            preferred_platform_uv_attempts: map.opt_as(
                0x11,
                "preferredPlatformUvAttempts",
                cbor::into_u64,
            )?,
            uv_modality: map.opt_as(0x12, "uvModality", cbor::into_u64)?,
            certifications: map
                .opt(0x13)
                .map(|v| {
                    MapReader::new(v, "certifications")?
                        .into_rest()
                        .into_iter()
                        .map(|(k, v)| {
                            Ok((
                                cbor::into_text(k, "certifications")?,
                                cbor::into_u64(v, "certifications")?,
                            ))
                        })
                        .collect::<Result<BTreeMap<_, _>, DecodeError>>()
                })
                .transpose()?,
            remaining_discoverable_credentials: map.opt_as(
                0x14,
                "remainingDiscoverableCredentials",
                cbor::into_u64,
            )?,
            vendor_prototype_config_commands: map
                .opt(0x15)
                .map(|v| into_uint_vec(v, "vendorPrototypeConfigCommands"))
                .transpose()?,
        })
    }
}

super::command!(Request, Response, super::CMD_GET_INFO);
