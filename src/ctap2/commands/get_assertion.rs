//! authenticatorGetAssertion (0x02), CTAP 2.1 §6.2; its response is also the
//! authenticatorGetNextAssertion (0x08) response.

use std::collections::BTreeMap;

use ciborium::Value;

use crate::ctap2::auth_data::AuthenticatorData;
use crate::ctap2::cbor::{self, MapBuilder, MapReader};
use crate::ctap2::error::{Ctap2Error, DecodeError};
use crate::ctap2::extensions::GetAssertionExtensions;
use crate::ctap2::status::StatusCode;
use crate::ctap2::types::{PublicKeyCredentialDescriptor, PublicKeyCredentialUserEntity};

/// authenticatorGetAssertion parameters (CTAP 2.1 §6.2.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// 0x01 rpId. Required.
    pub rp_id: String,
    /// 0x02 clientDataHash. Required.
    pub client_data_hash: Vec<u8>,
    /// 0x03 allowList.
    pub allow_list: Option<Vec<PublicKeyCredentialDescriptor>>,
    /// 0x04 extensions.
    pub extensions: Option<GetAssertionExtensions>,
    /// 0x05 options: "up", "uv".
    pub options: Option<BTreeMap<String, bool>>,
    /// 0x06 pinUvAuthParam: authenticate(pinUvAuthToken, clientDataHash).
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x07 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
}

impl Request {
    /// `options[name]`, if present.
    pub fn option(&self, name: &str) -> Option<bool> {
        cbor::flag(self.options.as_ref(), name)
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(0x01, cbor::text(&self.rp_id))
            .put(0x02, cbor::bytes(&self.client_data_hash))
            .opt(
                0x03,
                self.allow_list
                    .as_deref()
                    .map(PublicKeyCredentialDescriptor::list_to_value),
            )
            .opt(
                0x04,
                self.extensions
                    .as_ref()
                    .map(GetAssertionExtensions::to_value),
            )
            .opt(0x05, self.options.as_ref().map(cbor::bool_map))
            .opt(0x06, self.pin_uv_auth_param.as_deref().map(cbor::bytes))
            .opt(0x07, self.pin_uv_auth_protocol)
            .build()
    }

    /// Command byte + canonical CBOR.
    pub fn encode(&self) -> Vec<u8> {
        super::encode_with_cmd(super::CMD_GET_ASSERTION, &self.to_value())
    }

    /// Decodes the parameters (after the command byte).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        Ok(Self::from_map(MapReader::from_request(
            params,
            "getAssertion",
        )?)?)
    }

    fn from_map(mut map: MapReader) -> Result<Self, DecodeError> {
        Ok(Self {
            rp_id: map.req_as(0x01, "rpId", cbor::into_text)?,
            client_data_hash: map.req_as(0x02, "clientDataHash", cbor::into_bytes)?,
            allow_list: map
                .opt(0x03)
                .map(|v| PublicKeyCredentialDescriptor::list_from_value(v, "allowList"))
                .transpose()?,
            extensions: map
                .opt(0x04)
                .map(GetAssertionExtensions::from_value)
                .transpose()?,
            options: map.opt_as(0x05, "options", cbor::into_bool_map)?,
            pin_uv_auth_param: map.opt_as(0x06, "pinUvAuthParam", cbor::into_bytes)?,
            pin_uv_auth_protocol: map.opt_as(0x07, "pinUvAuthProtocol", cbor::into_u64)?,
        })
    }
}

/// authenticatorGetAssertion / authenticatorGetNextAssertion response (CTAP 2.1 §6.2.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// 0x01 credential.
    pub credential: Option<PublicKeyCredentialDescriptor>,
    /// 0x02 authData, as signed. Required.
    pub auth_data: Vec<u8>,
    /// 0x03 signature over authData || clientDataHash. Required.
    pub signature: Vec<u8>,
    /// 0x04 user (discoverable credentials).
    pub user: Option<PublicKeyCredentialUserEntity>,
    /// 0x05 numberOfCredentials.
    pub number_of_credentials: Option<u64>,
    /// 0x06 userSelected.
    pub user_selected: Option<bool>,
    /// 0x07 largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl Response {
    /// The parsed authenticator data.
    pub fn auth_data(&self) -> Result<AuthenticatorData, DecodeError> {
        AuthenticatorData::parse(&self.auth_data)
    }

    /// The response map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .opt(
                0x01,
                self.credential
                    .as_ref()
                    .map(PublicKeyCredentialDescriptor::to_value),
            )
            .put(0x02, cbor::bytes(&self.auth_data))
            .put(0x03, cbor::bytes(&self.signature))
            .opt(
                0x04,
                self.user
                    .as_ref()
                    .map(PublicKeyCredentialUserEntity::to_value),
            )
            .opt(0x05, self.number_of_credentials)
            .opt(0x06, self.user_selected)
            .opt(0x07, self.large_blob_key.as_deref().map(cbor::bytes))
            .build()
    }

    /// Canonical CBOR (no status byte).
    pub fn encode(&self) -> Vec<u8> {
        cbor::to_vec(&self.to_value())
    }

    /// Decodes the CBOR map (no status byte).
    pub fn decode(body: &[u8]) -> Result<Self, Ctap2Error> {
        let mut map = MapReader::from_bytes(body, "getAssertion response")?;
        Ok(Self {
            credential: map
                .opt(0x01)
                .map(PublicKeyCredentialDescriptor::from_value)
                .transpose()?,
            auth_data: map.req_as(0x02, "authData", cbor::into_bytes)?,
            signature: map.req_as(0x03, "signature", cbor::into_bytes)?,
            user: map
                .opt(0x04)
                .map(PublicKeyCredentialUserEntity::from_value)
                .transpose()?,
            number_of_credentials: map.opt_as(0x05, "numberOfCredentials", cbor::into_u64)?,
            user_selected: map.opt_as(0x06, "userSelected", cbor::into_bool)?,
            large_blob_key: map.opt_as(0x07, "largeBlobKey", cbor::into_bytes)?,
        })
    }
}

super::command!(Request, Response, super::CMD_GET_ASSERTION);
