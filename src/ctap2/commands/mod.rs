//! One module per CTAP2 command (CTAP 2.1 §6), each with a `Request` and a `Response`.
//!
//! Wire forms:
//! - `Request::encode` → command byte followed by the canonical CBOR parameter map
//!   (just the command byte when there are no parameters);
//! - `Request::decode(params)` → the bytes after the command byte; errors are CTAP status codes;
//! - `Response::encode` → the canonical CBOR map without the status byte (empty when the
//!   command has no response data);
//! - `Response::decode(body)` → the bytes after the status byte.
//!
//! [`CtapRequest::decode`] dispatches a whole request (command byte included) for the
//! authenticator; [`decode_response`] splits off the status byte for the host.

pub mod client_pin;
pub mod config;
pub mod credential_management;
pub mod get_assertion;
pub mod get_info;
pub mod get_next_assertion;
pub mod large_blobs;
pub mod make_credential;
pub mod reset;
pub mod selection;

use super::error::Ctap2Error;
use super::status::StatusCode;

/// authenticatorMakeCredential.
pub const CMD_MAKE_CREDENTIAL: u8 = 0x01;
/// authenticatorGetAssertion.
pub const CMD_GET_ASSERTION: u8 = 0x02;
/// authenticatorGetInfo.
pub const CMD_GET_INFO: u8 = 0x04;
/// authenticatorClientPIN.
pub const CMD_CLIENT_PIN: u8 = 0x06;
/// authenticatorReset.
pub const CMD_RESET: u8 = 0x07;
/// authenticatorGetNextAssertion.
pub const CMD_GET_NEXT_ASSERTION: u8 = 0x08;
/// authenticatorBioEnrollment (not implemented here).
pub const CMD_BIO_ENROLLMENT: u8 = 0x09;
/// authenticatorCredentialManagement.
pub const CMD_CREDENTIAL_MANAGEMENT: u8 = 0x0A;
/// authenticatorSelection.
pub const CMD_SELECTION: u8 = 0x0B;
/// authenticatorLargeBlobs.
pub const CMD_LARGE_BLOBS: u8 = 0x0C;
/// authenticatorConfig.
pub const CMD_CONFIG: u8 = 0x0D;
/// authenticatorBioEnrollment prototype (FIDO_2_1_PRE).
pub const CMD_BIO_ENROLLMENT_PROTOTYPE: u8 = 0x40;
/// authenticatorCredentialManagement prototype (FIDO_2_1_PRE).
pub const CMD_CREDENTIAL_MANAGEMENT_PROTOTYPE: u8 = 0x41;

/// A CTAP2 command: binds the request type to its command byte and response type
/// (STYLE.md convention 2). The methods forward to the inherent ones of each module.
pub trait Command: Sized {
    /// The command byte.
    const CMD: u8;
    /// The response type.
    type Response;
    /// Command byte + canonical CBOR parameters.
    fn encode(&self) -> Vec<u8>;
    /// Decodes the parameters (after the command byte).
    fn decode(params: &[u8]) -> Result<Self, StatusCode>;
    /// Canonical CBOR response body (no status byte).
    fn encode_response(response: &Self::Response) -> Vec<u8>;
    /// Decodes a response body (no status byte).
    fn decode_response(body: &[u8]) -> Result<Self::Response, Ctap2Error>;
}

/// A request whose pinUvAuthParam authenticates a message built from its own parameters:
/// authenticatorConfig (§6.11) and authenticatorCredentialManagement (§6.8).
pub trait PinUvAuthenticated {
    /// The message pinUvAuthParam authenticates.
    fn auth_message(&self) -> Vec<u8>;
    /// Sets pinUvAuthProtocol and pinUvAuthParam.
    fn set_pin_uv_auth(&mut self, protocol: u64, param: Vec<u8>);
}

/// Implements [`PinUvAuthenticated`] for a request with an inherent `auth_message` and
/// `pin_uv_auth_protocol` / `pin_uv_auth_param` fields.
macro_rules! pin_uv_authenticated {
    ($request:ty) => {
        impl $crate::ctap2::commands::PinUvAuthenticated for $request {
            fn auth_message(&self) -> Vec<u8> {
                <$request>::auth_message(self)
            }
            fn set_pin_uv_auth(&mut self, protocol: u64, param: Vec<u8>) {
                self.pin_uv_auth_protocol = Some(protocol);
                self.pin_uv_auth_param = Some(param);
            }
        }
    };
}
pub(crate) use pin_uv_authenticated;

macro_rules! command {
    ($request:ty, $response:ty, $cmd:expr) => {
        impl $crate::ctap2::commands::Command for $request {
            const CMD: u8 = $cmd;
            type Response = $response;
            fn encode(&self) -> Vec<u8> {
                <$request>::encode(self)
            }
            fn decode(params: &[u8]) -> Result<Self, $crate::ctap2::status::StatusCode> {
                <$request>::decode(params)
            }
            fn encode_response(response: &Self::Response) -> Vec<u8> {
                response.encode()
            }
            fn decode_response(
                body: &[u8],
            ) -> Result<Self::Response, $crate::ctap2::error::Ctap2Error> {
                <$response>::decode(body)
            }
        }
    };
}
pub(crate) use command;

/// Parameters of a command that takes none: must be empty (else 0x03 CTAP1_ERR_INVALID_LENGTH).
pub(crate) fn no_params(params: &[u8]) -> Result<(), StatusCode> {
    if params.is_empty() {
        Ok(())
    } else {
        Err(StatusCode::CTAP1_ERR_INVALID_LENGTH)
    }
}

/// Response body of a command that returns none: must be empty.
pub(crate) fn no_body(body: &[u8]) -> Result<(), Ctap2Error> {
    if body.is_empty() {
        Ok(())
    } else {
        Err(Ctap2Error::InvalidResponse(
            super::error::DecodeError::invalid_length("unexpected response data"),
        ))
    }
}

/// Splits a whole response (status byte + body): a non-zero status is [`Ctap2Error::Status`].
pub fn split_status(response: &[u8]) -> Result<&[u8], Ctap2Error> {
    match response.split_first() {
        None => Err(Ctap2Error::EmptyResponse),
        Some((&0, body)) => Ok(body),
        Some((&status, _)) => Err(Ctap2Error::Status(StatusCode(status))),
    }
}

/// Decodes a whole response (status byte + body) to command `C`.
pub fn decode_response<C: Command>(response: &[u8]) -> Result<C::Response, Ctap2Error> {
    C::decode_response(split_status(response)?)
}

/// A whole successful response: 0x00 followed by the encoded response body.
pub fn encode_ok_response<C: Command>(response: &C::Response) -> Vec<u8> {
    let mut out = vec![StatusCode::CTAP2_OK.0];
    out.extend_from_slice(&C::encode_response(response));
    out
}

/// Any CTAP2 request, as an authenticator receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum CtapRequest {
    /// 0x01.
    MakeCredential(make_credential::Request),
    /// 0x02.
    GetAssertion(get_assertion::Request),
    /// 0x04.
    GetInfo(get_info::Request),
    /// 0x06.
    ClientPin(client_pin::Request),
    /// 0x07.
    Reset(reset::Request),
    /// 0x08.
    GetNextAssertion(get_next_assertion::Request),
    /// 0x0A, or 0x41 when `prototype` is true.
    CredentialManagement {
        /// The request.
        request: credential_management::Request,
        /// Sent as the FIDO_2_1_PRE prototype command 0x41.
        prototype: bool,
    },
    /// 0x0B.
    Selection(selection::Request),
    /// 0x0C.
    LargeBlobs(large_blobs::Request),
    /// 0x0D.
    Config(config::Request),
}

impl CtapRequest {
    /// Decodes a whole request (command byte + parameters). An empty message is
    /// 0x03 CTAP1_ERR_INVALID_LENGTH; an unknown command byte 0x01 CTAP1_ERR_INVALID_COMMAND.
    pub fn decode(message: &[u8]) -> Result<Self, StatusCode> {
        let (&cmd, params) = message
            .split_first()
            .ok_or(StatusCode::CTAP1_ERR_INVALID_LENGTH)?;
        Ok(match cmd {
            CMD_MAKE_CREDENTIAL => Self::MakeCredential(make_credential::Request::decode(params)?),
            CMD_GET_ASSERTION => Self::GetAssertion(get_assertion::Request::decode(params)?),
            CMD_GET_INFO => Self::GetInfo(get_info::Request::decode(params)?),
            CMD_CLIENT_PIN => Self::ClientPin(client_pin::Request::decode(params)?),
            CMD_RESET => Self::Reset(reset::Request::decode(params)?),
            CMD_GET_NEXT_ASSERTION => {
                Self::GetNextAssertion(get_next_assertion::Request::decode(params)?)
            }
            CMD_CREDENTIAL_MANAGEMENT | CMD_CREDENTIAL_MANAGEMENT_PROTOTYPE => {
                Self::CredentialManagement {
                    request: credential_management::Request::decode(params)?,
                    prototype: cmd == CMD_CREDENTIAL_MANAGEMENT_PROTOTYPE,
                }
            }
            CMD_SELECTION => Self::Selection(selection::Request::decode(params)?),
            CMD_LARGE_BLOBS => Self::LargeBlobs(large_blobs::Request::decode(params)?),
            CMD_CONFIG => Self::Config(config::Request::decode(params)?),
            _ => return Err(StatusCode::CTAP1_ERR_INVALID_COMMAND),
        })
    }

    /// Encodes the request (command byte + parameters).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::MakeCredential(request) => request.encode(),
            Self::GetAssertion(request) => request.encode(),
            Self::GetInfo(request) => request.encode(),
            Self::ClientPin(request) => request.encode(),
            Self::Reset(request) => request.encode(),
            Self::GetNextAssertion(request) => request.encode(),
            Self::CredentialManagement {
                request,
                prototype: false,
            } => request.encode(),
            Self::CredentialManagement {
                request,
                prototype: true,
            } => request.encode_prototype(),
            Self::Selection(request) => request.encode(),
            Self::LargeBlobs(request) => request.encode(),
            Self::Config(request) => request.encode(),
        }
    }
}

/// The parameter map of authenticatorConfig (§6.11) and authenticatorCredentialManagement
/// (§6.8): 0x01 subCommand, 0x02 subCommandParams, 0x03 pinUvAuthProtocol, 0x04 pinUvAuthParam.
pub(crate) fn subcommand_map(
    sub_command: u8,
    params: Option<ciborium::Value>,
    pin_uv_auth_protocol: Option<u64>,
    pin_uv_auth_param: Option<&[u8]>,
) -> ciborium::Value {
    super::cbor::MapBuilder::new()
        .put(0x01, sub_command)
        .opt(0x02, params)
        .opt(0x03, pin_uv_auth_protocol)
        .opt(0x04, pin_uv_auth_param.map(super::cbor::bytes))
        .build()
}

/// The message the pinUvAuthParam of those two commands authenticates:
/// `prefix ‖ subCommand ‖ canonical CBOR(subCommandParams)` (subCommandParams only when present).
/// The prefix is `32 × 0xFF ‖ 0x0D` for authenticatorConfig (§6.11) and empty for
/// authenticatorCredentialManagement (§6.8).
pub(crate) fn subcommand_auth_message(
    prefix: &[u8],
    sub_command: u8,
    params: Option<&ciborium::Value>,
) -> Vec<u8> {
    let mut message = prefix.to_vec();
    message.push(sub_command);
    if let Some(params) = params {
        super::cbor::write(params, &mut message);
    }
    message
}

/// Encodes a request parameter map after its command byte.
pub(crate) fn encode_with_cmd(cmd: u8, params: &ciborium::Value) -> Vec<u8> {
    let mut out = vec![cmd];
    super::cbor::write(params, &mut out);
    out
}
