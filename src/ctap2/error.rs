//! Errors of the `ctap2` layer.

use super::status::StatusCode;

/// Why a CBOR message (request or response) could not be decoded: the status code an
/// authenticator answers with (0x11, 0x12, 0x14, ...) and which element was at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{context}: {status}")]
pub struct DecodeError {
    /// The CTAP status code for this failure (see the `ctap2` module docs).
    pub status: StatusCode,
    /// The element that failed (a field name or a short description).
    pub context: &'static str,
}

impl DecodeError {
    /// 0x11 CTAP2_ERR_CBOR_UNEXPECTED_TYPE.
    pub fn unexpected_type(context: &'static str) -> Self {
        Self {
            status: StatusCode::CTAP2_ERR_CBOR_UNEXPECTED_TYPE,
            context,
        }
    }
    /// 0x12 CTAP2_ERR_INVALID_CBOR.
    pub fn invalid_cbor(context: &'static str) -> Self {
        Self {
            status: StatusCode::CTAP2_ERR_INVALID_CBOR,
            context,
        }
    }
    /// 0x14 CTAP2_ERR_MISSING_PARAMETER.
    pub fn missing(context: &'static str) -> Self {
        Self {
            status: StatusCode::CTAP2_ERR_MISSING_PARAMETER,
            context,
        }
    }
    /// 0x03 CTAP1_ERR_INVALID_LENGTH (wrong length of a fixed-size element).
    pub fn invalid_length(context: &'static str) -> Self {
        Self {
            status: StatusCode::CTAP1_ERR_INVALID_LENGTH,
            context,
        }
    }
    /// 0x02 CTAP1_ERR_INVALID_PARAMETER (a value outside its range).
    pub fn invalid_parameter(context: &'static str) -> Self {
        Self {
            status: StatusCode::CTAP1_ERR_INVALID_PARAMETER,
            context,
        }
    }
}

impl From<DecodeError> for StatusCode {
    fn from(error: DecodeError) -> Self {
        error.status
    }
}

/// Errors of the `ctap2` layer (host side decoding, PIN protocols, U2F).
#[derive(Debug, thiserror::Error)]
pub enum Ctap2Error {
    /// The authenticator answered with a non-zero status byte.
    #[error("authenticator returned {0}")]
    Status(StatusCode),
    /// The response was empty (no status byte).
    #[error("empty response")]
    EmptyResponse,
    /// The response body could not be decoded.
    #[error("invalid response: {0}")]
    InvalidResponse(#[from] DecodeError),
    /// A COSE key that is not a P-256 point, or an invalid point.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// A PIN/UV auth protocol operation failed (bad lengths, padding, authentication).
    #[error("pin/uv auth protocol: {0}")]
    PinProtocol(&'static str),
    /// A PIN that does not meet the encoding rules (4..=63 bytes of UTF-8).
    #[error("invalid PIN: {0}")]
    InvalidPin(&'static str),
    /// A malformed CTAP1/U2F message or APDU.
    #[error("u2f: {0}")]
    U2fMalformed(&'static str),
    /// A CTAP1/U2F status word other than 0x9000.
    #[error("u2f status word 0x{0:04X}")]
    U2fStatus(u16),
    /// Large blob array integrity or entry decryption failure.
    #[error("large blob: {0}")]
    LargeBlob(&'static str),
}

impl From<StatusCode> for Ctap2Error {
    fn from(status: StatusCode) -> Self {
        Self::Status(status)
    }
}
