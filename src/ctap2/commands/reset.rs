//! authenticatorReset (0x07), CTAP 2.1 §6.6. No parameters, no response data.

use crate::ctap2::error::Ctap2Error;
use crate::ctap2::status::StatusCode;

/// authenticatorReset request: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request;

impl Request {
    /// The command byte alone.
    pub fn encode(&self) -> Vec<u8> {
        vec![super::CMD_RESET]
    }

    /// Accepts only empty parameters (anything else is 0x03 CTAP1_ERR_INVALID_LENGTH).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        super::no_params(params).map(|()| Self)
    }
}

/// authenticatorReset response: a bare status byte, no data.
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

super::command!(Request, Response, super::CMD_RESET);
