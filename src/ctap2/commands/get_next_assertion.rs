//! authenticatorGetNextAssertion (0x08), CTAP 2.1 §6.3. No parameters; the response is an
//! authenticatorGetAssertion response.

use crate::ctap2::status::StatusCode;

/// authenticatorGetNextAssertion response: the same members as GetAssertion.
pub type Response = super::get_assertion::Response;

/// authenticatorGetNextAssertion request: no parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Request;

impl Request {
    /// The command byte alone.
    pub fn encode(&self) -> Vec<u8> {
        vec![super::CMD_GET_NEXT_ASSERTION]
    }

    /// Accepts only empty parameters (anything else is 0x03 CTAP1_ERR_INVALID_LENGTH).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        super::no_params(params).map(|()| Self)
    }
}

super::command!(Request, Response, super::CMD_GET_NEXT_ASSERTION);
