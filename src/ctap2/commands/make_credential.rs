//! authenticatorMakeCredential (0x01), CTAP 2.1 §6.1.

use std::collections::BTreeMap;

use ciborium::Value;

use crate::ctap2::attestation::AttestationStatement;
use crate::ctap2::auth_data::AuthenticatorData;
use crate::ctap2::cbor::{self, MapBuilder, MapReader};
use crate::ctap2::error::{Ctap2Error, DecodeError};
use crate::ctap2::extensions::MakeCredentialExtensions;
use crate::ctap2::status::StatusCode;
use crate::ctap2::types::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialParameters, PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
};

/// authenticatorMakeCredential parameters (CTAP 2.1 §6.1.1).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// 0x01 clientDataHash. Required.
    pub client_data_hash: Vec<u8>,
    /// 0x02 rp. Required.
    pub rp: PublicKeyCredentialRpEntity,
    /// 0x03 user. Required.
    pub user: PublicKeyCredentialUserEntity,
    /// 0x04 pubKeyCredParams. Required.
    pub pub_key_cred_params: Vec<PublicKeyCredentialParameters>,
    /// 0x05 excludeList.
    pub exclude_list: Option<Vec<PublicKeyCredentialDescriptor>>,
    /// 0x06 extensions.
    pub extensions: Option<MakeCredentialExtensions>,
    /// 0x07 options: "rk", "up", "uv".
    pub options: Option<BTreeMap<String, bool>>,
    /// 0x08 pinUvAuthParam: authenticate(pinUvAuthToken, clientDataHash).
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x09 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
    /// 0x0A enterpriseAttestation (1 or 2).
    pub enterprise_attestation: Option<u64>,
}

impl Request {
    /// `options[name]`, if present.
    pub fn option(&self, name: &str) -> Option<bool> {
        cbor::flag(self.options.as_ref(), name)
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(0x01, cbor::bytes(&self.client_data_hash))
            .put(0x02, self.rp.to_value())
            .put(0x03, self.user.to_value())
            .put(
                0x04,
                PublicKeyCredentialParameters::list_to_value(&self.pub_key_cred_params),
            )
            .opt(
                0x05,
                self.exclude_list
                    .as_deref()
                    .map(PublicKeyCredentialDescriptor::list_to_value),
            )
            .opt(
                0x06,
                self.extensions
                    .as_ref()
                    .map(MakeCredentialExtensions::to_value),
            )
            .opt(0x07, self.options.as_ref().map(cbor::bool_map))
            .opt(0x08, self.pin_uv_auth_param.as_deref().map(cbor::bytes))
            .opt(0x09, self.pin_uv_auth_protocol)
            .opt(0x0A, self.enterprise_attestation)
            .build()
    }

    /// Command byte + canonical CBOR.
    pub fn encode(&self) -> Vec<u8> {
        super::encode_with_cmd(super::CMD_MAKE_CREDENTIAL, &self.to_value())
    }

    /// Decodes the parameters (after the command byte).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        Ok(Self::from_map(MapReader::from_request(
            params,
            "makeCredential",
        )?)?)
    }

    fn from_map(mut map: MapReader) -> Result<Self, DecodeError> {
        Ok(Self {
            client_data_hash: map.req_as(0x01, "clientDataHash", cbor::into_bytes)?,
            rp: PublicKeyCredentialRpEntity::from_value(map.req(0x02, "rp")?)?,
            user: PublicKeyCredentialUserEntity::from_value(map.req(0x03, "user")?)?,
            pub_key_cred_params: PublicKeyCredentialParameters::list_from_value(
                map.req(0x04, "pubKeyCredParams")?,
                "pubKeyCredParams",
            )?,
            exclude_list: map
                .opt(0x05)
                .map(|v| PublicKeyCredentialDescriptor::list_from_value(v, "excludeList"))
                .transpose()?,
            extensions: map
                .opt(0x06)
                .map(MakeCredentialExtensions::from_value)
                .transpose()?,
            options: map.opt_as(0x07, "options", cbor::into_bool_map)?,
            pin_uv_auth_param: map.opt_as(0x08, "pinUvAuthParam", cbor::into_bytes)?,
            pin_uv_auth_protocol: map.opt_as(0x09, "pinUvAuthProtocol", cbor::into_u64)?,
            enterprise_attestation: map.opt_as(0x0A, "enterpriseAttestation", cbor::into_u64)?,
        })
    }
}

/// authenticatorMakeCredential response (CTAP 2.1 §6.1.2). `fmt` (0x01) is
/// `att_stmt.fmt()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// 0x02 authData, as signed (parse with [`Response::auth_data`]).
    pub auth_data: Vec<u8>,
    /// 0x01 fmt and 0x03 attStmt.
    pub att_stmt: AttestationStatement,
    /// 0x04 epAtt: enterprise attestation returned.
    pub ep_att: Option<bool>,
    /// 0x05 largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl Response {
    /// 0x01 fmt.
    pub fn fmt(&self) -> &str {
        self.att_stmt.fmt()
    }

    /// The parsed authenticator data.
    pub fn auth_data(&self) -> Result<AuthenticatorData, DecodeError> {
        AuthenticatorData::parse(&self.auth_data)
    }

    /// The response map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(0x01, cbor::text(self.att_stmt.fmt()))
            .put(0x02, cbor::bytes(&self.auth_data))
            .put(0x03, self.att_stmt.to_value())
            .opt(0x04, self.ep_att)
            .opt(0x05, self.large_blob_key.as_deref().map(cbor::bytes))
            .build()
    }

    /// Canonical CBOR (no status byte).
    pub fn encode(&self) -> Vec<u8> {
        cbor::to_vec(&self.to_value())
    }

    /// Decodes the CBOR map (no status byte).
    pub fn decode(body: &[u8]) -> Result<Self, Ctap2Error> {
        let mut map = MapReader::from_bytes(body, "makeCredential response")?;
        let fmt = map.req_as(0x01, "fmt", cbor::into_text)?;
        Ok(Self {
            auth_data: map.req_as(0x02, "authData", cbor::into_bytes)?,
            att_stmt: AttestationStatement::from_value(&fmt, map.req(0x03, "attStmt")?)?,
            ep_att: map.opt_as(0x04, "epAtt", cbor::into_bool)?,
            large_blob_key: map.opt_as(0x05, "largeBlobKey", cbor::into_bytes)?,
        })
    }
}

super::command!(Request, Response, super::CMD_MAKE_CREDENTIAL);
