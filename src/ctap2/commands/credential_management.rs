//! authenticatorCredentialManagement (0x0A), CTAP 2.1 §6.8, and its FIDO_2_1_PRE prototype
//! command 0x41 (same parameters and subcommands, [`Request::encode_prototype`]).
//!
//! pinUvAuthParam = authenticate(pinUvAuthToken, [`Request::auth_message`]), where the message is
//! the subcommand byte followed by the canonical CBOR of subCommandParams (when present).

use ciborium::Value;

use crate::ctap2::cbor::{self, MapBuilder, MapReader};
use crate::ctap2::cose::CoseKey;
use crate::ctap2::error::{Ctap2Error, DecodeError};
use crate::ctap2::extensions::CredProtect;
use crate::ctap2::status::StatusCode;
use crate::ctap2::types::{
    PublicKeyCredentialDescriptor, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
};

/// A credential management subcommand. Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubCommand(pub u8);

impl SubCommand {
    /// 0x01 getCredsMetadata.
    pub const GET_CREDS_METADATA: Self = Self(0x01);
    /// 0x02 enumerateRPsBegin.
    pub const ENUMERATE_RPS_BEGIN: Self = Self(0x02);
    /// 0x03 enumerateRPsGetNextRP.
    pub const ENUMERATE_RPS_GET_NEXT_RP: Self = Self(0x03);
    /// 0x04 enumerateCredentialsBegin.
    pub const ENUMERATE_CREDENTIALS_BEGIN: Self = Self(0x04);
    /// 0x05 enumerateCredentialsGetNextCredential.
    pub const ENUMERATE_CREDENTIALS_GET_NEXT_CREDENTIAL: Self = Self(0x05);
    /// 0x06 deleteCredential.
    pub const DELETE_CREDENTIAL: Self = Self(0x06);
    /// 0x07 updateUserInformation.
    pub const UPDATE_USER_INFORMATION: Self = Self(0x07);
}

/// subCommandParams (CTAP 2.1 §6.8.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubCommandParams {
    /// 0x01 rpIDHash.
    pub rp_id_hash: Option<[u8; 32]>,
    /// 0x02 credentialID.
    pub credential_id: Option<PublicKeyCredentialDescriptor>,
    /// 0x03 user.
    pub user: Option<PublicKeyCredentialUserEntity>,
}

impl SubCommandParams {
    /// The subCommandParams map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .opt(0x01, self.rp_id_hash.as_ref().map(|hash| cbor::bytes(hash)))
            .opt(
                0x02,
                self.credential_id
                    .as_ref()
                    .map(PublicKeyCredentialDescriptor::to_value),
            )
            .opt(
                0x03,
                self.user
                    .as_ref()
                    .map(PublicKeyCredentialUserEntity::to_value),
            )
            .build()
    }

    /// Decodes the subCommandParams map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "subCommandParams")?;
        Ok(Self {
            rp_id_hash: map.opt_as(0x01, "rpIDHash", cbor::into_array)?,
            credential_id: map
                .opt(0x02)
                .map(PublicKeyCredentialDescriptor::from_value)
                .transpose()?,
            user: map
                .opt(0x03)
                .map(PublicKeyCredentialUserEntity::from_value)
                .transpose()?,
        })
    }
}

/// authenticatorCredentialManagement parameters (CTAP 2.1 §6.8).
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The message that pinUvAuthParam authenticates: subCommand || canonical CBOR(subCommandParams).
    pub fn auth_message(&self) -> Vec<u8> {
        let params = self
            .sub_command_params
            .as_ref()
            .map(SubCommandParams::to_value);
        super::subcommand_auth_message(&[], self.sub_command.0, params.as_ref())
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

    /// Command byte 0x0A + canonical CBOR.
    pub fn encode(&self) -> Vec<u8> {
        super::encode_with_cmd(super::CMD_CREDENTIAL_MANAGEMENT, &self.to_value())
    }

    /// Command byte 0x41 (FIDO_2_1_PRE prototype) + canonical CBOR.
    pub fn encode_prototype(&self) -> Vec<u8> {
        super::encode_with_cmd(super::CMD_CREDENTIAL_MANAGEMENT_PROTOTYPE, &self.to_value())
    }

    /// Decodes the parameters (after the command byte, 0x0A or 0x41). The subCommandParams
    /// members that a subcommand needs are checked (0x14 when missing).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        let mut map = MapReader::from_request(params, "credentialManagement")?;
        let request = Self {
            sub_command: SubCommand(map.req_as(0x01, "subCommand", cbor::into_uint)?),
            sub_command_params: map
                .opt(0x02)
                .map(SubCommandParams::from_value)
                .transpose()?,
            pin_uv_auth_protocol: map.opt_as(0x03, "pinUvAuthProtocol", cbor::into_u64)?,
            pin_uv_auth_param: map.opt_as(0x04, "pinUvAuthParam", cbor::into_bytes)?,
        };
        let params = request.sub_command_params.as_ref();
        let ok = match request.sub_command {
            SubCommand::ENUMERATE_CREDENTIALS_BEGIN => {
                params.is_some_and(|p| p.rp_id_hash.is_some())
            }
            SubCommand::DELETE_CREDENTIAL => params.is_some_and(|p| p.credential_id.is_some()),
            SubCommand::UPDATE_USER_INFORMATION => {
                params.is_some_and(|p| p.credential_id.is_some() && p.user.is_some())
            }
            _ => true,
        };
        if !ok {
            return Err(StatusCode::CTAP2_ERR_MISSING_PARAMETER);
        }
        Ok(request)
    }
}

/// authenticatorCredentialManagement response (CTAP 2.1 §6.8); members depend on the subcommand.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// 0x01 existingResidentCredentialsCount.
    pub existing_resident_credentials_count: Option<u64>,
    /// 0x02 maxPossibleRemainingResidentCredentialsCount.
    pub max_possible_remaining_resident_credentials_count: Option<u64>,
    /// 0x03 rp.
    pub rp: Option<PublicKeyCredentialRpEntity>,
    /// 0x04 rpIDHash.
    pub rp_id_hash: Option<[u8; 32]>,
    /// 0x05 totalRPs.
    pub total_rps: Option<u64>,
    /// 0x06 user.
    pub user: Option<PublicKeyCredentialUserEntity>,
    /// 0x07 credentialID.
    pub credential_id: Option<PublicKeyCredentialDescriptor>,
    /// 0x08 publicKey.
    pub public_key: Option<CoseKey>,
    /// 0x09 totalCredentials.
    pub total_credentials: Option<u64>,
    /// 0x0A credProtect.
    pub cred_protect: Option<CredProtect>,
    /// 0x0B largeBlobKey.
    pub large_blob_key: Option<Vec<u8>>,
}

impl Response {
    /// The response map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .opt(0x01, self.existing_resident_credentials_count)
            .opt(0x02, self.max_possible_remaining_resident_credentials_count)
            .opt(
                0x03,
                self.rp.as_ref().map(PublicKeyCredentialRpEntity::to_value),
            )
            .opt(0x04, self.rp_id_hash.as_ref().map(|hash| cbor::bytes(hash)))
            .opt(0x05, self.total_rps)
            .opt(
                0x06,
                self.user
                    .as_ref()
                    .map(PublicKeyCredentialUserEntity::to_value),
            )
            .opt(
                0x07,
                self.credential_id
                    .as_ref()
                    .map(PublicKeyCredentialDescriptor::to_value),
            )
            .opt(0x08, self.public_key.as_ref().map(CoseKey::to_value))
            .opt(0x09, self.total_credentials)
            .opt(0x0A, self.cred_protect.map(|p| p.0))
            .opt(0x0B, self.large_blob_key.as_deref().map(cbor::bytes))
            .build()
    }

    /// Canonical CBOR (no status byte); empty when no member is present (deleteCredential,
    /// updateUserInformation, and enumerateRPsBegin with no RPs).
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
        let mut map = MapReader::from_bytes(body, "credentialManagement response")?;
        Ok(Self {
            existing_resident_credentials_count: map.opt_as(
                0x01,
                "existingResidentCredentialsCount",
                cbor::into_u64,
            )?,
            max_possible_remaining_resident_credentials_count: map.opt_as(
                0x02,
                "maxPossibleRemainingResidentCredentialsCount",
                cbor::into_u64,
            )?,
            rp: map
                .opt(0x03)
                .map(PublicKeyCredentialRpEntity::from_value)
                .transpose()?,
            rp_id_hash: map.opt_as(0x04, "rpIDHash", cbor::into_array)?,
            total_rps: map.opt_as(0x05, "totalRPs", cbor::into_u64)?,
            user: map
                .opt(0x06)
                .map(PublicKeyCredentialUserEntity::from_value)
                .transpose()?,
            credential_id: map
                .opt(0x07)
                .map(PublicKeyCredentialDescriptor::from_value)
                .transpose()?,
            public_key: map.opt(0x08).map(CoseKey::from_value).transpose()?,
            total_credentials: map.opt_as(0x09, "totalCredentials", cbor::into_u64)?,
            cred_protect: map
                .opt_as(0x0A, "credProtect", cbor::into_uint::<u8>)?
                .map(CredProtect),
            large_blob_key: map.opt_as(0x0B, "largeBlobKey", cbor::into_bytes)?,
        })
    }
}

super::command!(Request, Response, super::CMD_CREDENTIAL_MANAGEMENT);

super::pin_uv_authenticated!(Request);
