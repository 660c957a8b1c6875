//! CTAP1/U2F raw messages (FIDO U2F Raw Message Formats v1.2) in ISO 7816-4 APDUs, both sides.
//! CTAP 2.1 §11.2 describes how a CTAP2 platform talks to a CTAP1 authenticator with them.
//!
//! APDUs are accepted in short and extended length form (ISO 7816-4 §5.1, cases 1, 2S, 3S, 4S,
//! 2E, 3E, 4E, plus the form python-fido2 and libfido2 send for VERSION: extended with Lc = 0
//! and Le, `00 00 00 00 00`); a short Lc of 0 (`CLA INS P1 P2 00 Le`) matches no case and is
//! 0x6700. [`Apdu::encode`] writes the extended form that the U2F HID binding requires.
//!
//! | message | data | response |
//! |---|---|---|
//! | VERSION (INS 0x03) | none | "U2F_V2" |
//! | REGISTER (INS 0x01) | challenge (32) ‖ application (32) | 0x05 ‖ public key (65) ‖ L ‖ key handle ‖ certificate ‖ signature |
//! | AUTHENTICATE (INS 0x02, P1 0x03 / 0x07 / 0x08) | challenge (32) ‖ application (32) ‖ L ‖ key handle | user presence ‖ counter (4) ‖ signature |

use sha2::{Digest, Sha256};

use super::attestation::AttestationStatement;
use super::auth_data::{AttestedCredentialData, AuthenticatorData, AuthenticatorDataFlags};
use super::commands::{get_assertion, make_credential};
use super::cose::{self, CoseKey};
use super::error::Ctap2Error;
use super::types::PublicKeyCredentialDescriptor;

/// An ISO 7816 status word (SW1 SW2). Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// 0x9000 SW_NO_ERROR.
    pub const NO_ERROR: Self = Self(0x9000);
    /// 0x6985 SW_CONDITIONS_NOT_SATISFIED: user presence needed (or check-only with a valid key handle).
    pub const CONDITIONS_NOT_SATISFIED: Self = Self(0x6985);
    /// 0x6A80 SW_WRONG_DATA: e.g. a key handle that is not ours.
    pub const WRONG_DATA: Self = Self(0x6A80);
    /// 0x6700 SW_WRONG_LENGTH.
    pub const WRONG_LENGTH: Self = Self(0x6700);
    /// 0x6D00 SW_INS_NOT_SUPPORTED.
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    /// 0x6E00 SW_CLA_NOT_SUPPORTED.
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);

    /// Big-endian bytes.
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
}

/// INS of U2F_REGISTER.
pub const INS_REGISTER: u8 = 0x01;
/// INS of U2F_AUTHENTICATE.
pub const INS_AUTHENTICATE: u8 = 0x02;
/// INS of U2F_VERSION.
pub const INS_VERSION: u8 = 0x03;
/// The only version string of U2F raw messages 1.2.
pub const VERSION: &[u8] = b"U2F_V2";
/// The reserved first byte of a registration response.
pub const REGISTER_RESERVED: u8 = 0x05;

/// An ISO 7816-4 command APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu {
    /// Class byte (0x00 for U2F).
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Lc bytes).
    pub data: Vec<u8>,
    /// Expected response length Ne (1..=65536), if Le was present.
    pub le: Option<u32>,
}

impl Apdu {
    /// An APDU with CLA 0 and Le = 65536 (the largest, as U2F clients send).
    pub fn new(ins: u8, p1: u8, p2: u8, data: Vec<u8>) -> Self {
        Self {
            cla: 0,
            ins,
            p1,
            p2,
            data,
            le: Some(65_536),
        }
    }

    /// Parses short or extended APDUs. Lengths that match no ISO 7816-4 case are 0x6700.
    pub fn parse(bytes: &[u8]) -> Result<Self, StatusWord> {
        if bytes.len() < 4 {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let (cla, ins, p1, p2) = (bytes[0], bytes[1], bytes[2], bytes[3]);
        let body = &bytes[4..];
        let build = |data: &[u8], le: Option<u32>| Self {
            cla,
            ins,
            p1,
            p2,
            data: data.to_vec(),
            le,
        };
        let short_le = |byte: u8| if byte == 0 { 256 } else { u32::from(byte) };
        let extended_le = |hi: u8, lo: u8| match u32::from(u16::from_be_bytes([hi, lo])) {
            0 => 65_536,
            n => n,
        };
        match body {
            // Case 1.
            [] => Ok(build(&[], None)),
            // Case 2S.
            [le] => Ok(build(&[], Some(short_le(*le)))),
            // Case 2E.
            [0, hi, lo] => Ok(build(&[], Some(extended_le(*hi, *lo)))),
            // Extended: 00 Lc1 Lc2 data [Le1 Le2].
            [0, hi, lo, rest @ ..] => {
                let lc = usize::from(u16::from_be_bytes([*hi, *lo]));
                if rest.len() == lc {
                    Ok(build(rest, None))
                } else if rest.len() == lc + 2 {
                    Ok(build(
                        &rest[..lc],
                        Some(extended_le(rest[lc], rest[lc + 1])),
                    ))
                } else {
                    Err(StatusWord::WRONG_LENGTH)
                }
            }
            // Short Lc = 0 followed by Le (`00 XX`): ISO 7816-4 §5.1 has no such case. A short Lc
            // is 1..=255, and a 00 after the header opens an extended length, which needs at
            // least two more bytes.
            [0, _] => Err(StatusWord::WRONG_LENGTH),
            // Short: Lc (1..=255) data [Le].
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                if rest.len() == lc {
                    Ok(build(rest, None))
                } else if rest.len() == lc + 1 {
                    Ok(build(&rest[..lc], Some(short_le(rest[lc]))))
                } else {
                    Err(StatusWord::WRONG_LENGTH)
                }
            }
        }
    }

    /// The extended-length encoding (U2F HID binding): `CLA INS P1 P2 00 Lc1 Lc2 data Le1 Le2`,
    /// or `CLA INS P1 P2 00 Le1 Le2` without data. Data longer than 65535 bytes is an error.
    pub fn encode(&self) -> Result<Vec<u8>, Ctap2Error> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        let lc = u16::try_from(self.data.len())
            .map_err(|_| Ctap2Error::U2fMalformed("APDU data too long"))?;
        if !self.data.is_empty() || self.le.is_some() {
            out.push(0);
        }
        if !self.data.is_empty() {
            out.extend_from_slice(&lc.to_be_bytes());
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            let le = match le {
                65_536 => 0,
                n => u16::try_from(n).map_err(|_| Ctap2Error::U2fMalformed("Le too large"))?,
            };
            out.extend_from_slice(&le.to_be_bytes());
        }
        Ok(out)
    }

    /// The short-length encoding `CLA INS P1 P2 [Lc data] [Le]`; data must be at most 255 bytes;
    /// Le above 255 is written as 0x00 (256).
    pub fn encode_short(&self) -> Result<Vec<u8>, Ctap2Error> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        if !self.data.is_empty() {
            let lc = u8::try_from(self.data.len())
                .map_err(|_| Ctap2Error::U2fMalformed("data too long for a short APDU"))?;
            out.push(lc);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            // Le = 0x00 asks for the most a short APDU can return (256 bytes).
            out.push(u8::try_from(le).ok().filter(|&n| n != 0).unwrap_or(0));
        }
        Ok(out)
    }
}

/// The AUTHENTICATE control byte (P1). Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthenticateControl(pub u8);

impl AuthenticateControl {
    /// 0x03 enforce-user-presence-and-sign.
    pub const ENFORCE_USER_PRESENCE_AND_SIGN: Self = Self(0x03);
    /// 0x07 check-only: 0x6985 if the key handle is ours, 0x6A80 if not.
    pub const CHECK_ONLY: Self = Self(0x07);
    /// 0x08 dont-enforce-user-presence-and-sign.
    pub const DONT_ENFORCE_USER_PRESENCE_AND_SIGN: Self = Self(0x08);
}

/// U2F_REGISTER request data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterRequest {
    /// Challenge parameter: SHA-256 of the client data.
    pub challenge: [u8; 32],
    /// Application parameter: SHA-256 of the application identity (RP ID).
    pub application: [u8; 32],
}

/// U2F_AUTHENTICATE request data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateRequest {
    /// P1.
    pub control: AuthenticateControl,
    /// Challenge parameter.
    pub challenge: [u8; 32],
    /// Application parameter.
    pub application: [u8; 32],
    /// Key handle (at most 255 bytes).
    pub key_handle: Vec<u8>,
}

/// A U2F request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum U2fRequest {
    /// U2F_VERSION.
    Version,
    /// U2F_REGISTER.
    Register(RegisterRequest),
    /// U2F_AUTHENTICATE.
    Authenticate(AuthenticateRequest),
}

impl U2fRequest {
    /// Authenticator side: decodes a request APDU. CLA ≠ 0 → 0x6E00; unknown INS → 0x6D00;
    /// bad lengths → 0x6700; an unknown AUTHENTICATE control byte → 0x6A80.
    pub fn decode(apdu: &[u8]) -> Result<Self, StatusWord> {
        let apdu = Apdu::parse(apdu)?;
        if apdu.cla != 0 {
            return Err(StatusWord::CLA_NOT_SUPPORTED);
        }
        let param = |range: std::ops::Range<usize>| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(&apdu.data[range]);
            out
        };
        match apdu.ins {
            INS_VERSION => {
                if apdu.data.is_empty() {
                    Ok(Self::Version)
                } else {
                    Err(StatusWord::WRONG_LENGTH)
                }
            }
            INS_REGISTER => {
                if apdu.data.len() != 64 {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                Ok(Self::Register(RegisterRequest {
                    challenge: param(0..32),
                    application: param(32..64),
                }))
            }
            INS_AUTHENTICATE => {
                let control = AuthenticateControl(apdu.p1);
                if ![
                    AuthenticateControl::ENFORCE_USER_PRESENCE_AND_SIGN,
                    AuthenticateControl::CHECK_ONLY,
                    AuthenticateControl::DONT_ENFORCE_USER_PRESENCE_AND_SIGN,
                ]
                .contains(&control)
                {
                    return Err(StatusWord::WRONG_DATA);
                }
                if apdu.data.len() < 65 || apdu.data.len() != 65 + usize::from(apdu.data[64]) {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                Ok(Self::Authenticate(AuthenticateRequest {
                    control,
                    challenge: param(0..32),
                    application: param(32..64),
                    key_handle: apdu.data[65..].to_vec(),
                }))
            }
            _ => Err(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    /// Host side: the request as an APDU.
    pub fn to_apdu(&self) -> Result<Apdu, Ctap2Error> {
        Ok(match self {
            Self::Version => Apdu::new(INS_VERSION, 0, 0, Vec::new()),
            Self::Register(request) => Apdu::new(
                INS_REGISTER,
                0,
                0,
                [request.challenge.as_slice(), &request.application].concat(),
            ),
            Self::Authenticate(request) => {
                let len = u8::try_from(request.key_handle.len())
                    .map_err(|_| Ctap2Error::U2fMalformed("key handle longer than 255 bytes"))?;
                let mut data = Vec::with_capacity(65 + request.key_handle.len());
                data.extend_from_slice(&request.challenge);
                data.extend_from_slice(&request.application);
                data.push(len);
                data.extend_from_slice(&request.key_handle);
                Apdu::new(INS_AUTHENTICATE, request.control.0, 0, data)
            }
        })
    }

    /// Host side: the extended-length APDU bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Ctap2Error> {
        self.to_apdu()?.encode()
    }
}

/// U2F_REGISTER response data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterResponse {
    /// The user public key, uncompressed P-256 point (0x04 ‖ x ‖ y).
    pub public_key: [u8; 65],
    /// Key handle (at most 255 bytes).
    pub key_handle: Vec<u8>,
    /// The attestation certificate, DER.
    pub attestation_certificate: Vec<u8>,
    /// ECDSA signature (DER) over [`RegisterResponse::signed_data`].
    pub signature: Vec<u8>,
}

/// Length of the DER element at the start of `bytes` (tag, length, contents), if well formed.
fn der_element_len(bytes: &[u8]) -> Option<usize> {
    let first = *bytes.get(1)?;
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 3 {
            return None;
        }
        let len_bytes = bytes.get(2..2 + count)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (2 + count, len)
    };
    let total = header.checked_add(len)?;
    (total <= bytes.len()).then_some(total)
}

impl RegisterResponse {
    /// The bytes the attestation key signs: 0x00 ‖ application ‖ challenge ‖ key handle ‖ public key.
    pub fn signed_data(&self, request: &RegisterRequest) -> Vec<u8> {
        let mut data = vec![0x00];
        data.extend_from_slice(&request.application);
        data.extend_from_slice(&request.challenge);
        data.extend_from_slice(&self.key_handle);
        data.extend_from_slice(&self.public_key);
        data
    }

    /// Response data (without the status word).
    pub fn encode(&self) -> Result<Vec<u8>, Ctap2Error> {
        let len = u8::try_from(self.key_handle.len())
            .map_err(|_| Ctap2Error::U2fMalformed("key handle longer than 255 bytes"))?;
        let mut out = vec![REGISTER_RESERVED];
        out.extend_from_slice(&self.public_key);
        out.push(len);
        out.extend_from_slice(&self.key_handle);
        out.extend_from_slice(&self.attestation_certificate);
        out.extend_from_slice(&self.signature);
        Ok(out)
    }

    /// Decodes response data (without the status word). The certificate length comes from its
    /// DER header; the rest must be exactly one DER SEQUENCE, the signature.
    pub fn decode(data: &[u8]) -> Result<Self, Ctap2Error> {
        let malformed = Ctap2Error::U2fMalformed;
        if data.first() != Some(&REGISTER_RESERVED) {
            return Err(malformed("registration response does not start with 0x05"));
        }
        let public_key: [u8; 65] = data
            .get(1..66)
            .and_then(|key| key.try_into().ok())
            .ok_or(malformed("registration response truncated"))?;
        if public_key[0] != 0x04 {
            return Err(malformed("public key is not an uncompressed point"));
        }
        let handle_len = usize::from(
            *data
                .get(66)
                .ok_or(malformed("registration response truncated"))?,
        );
        let key_handle = data
            .get(67..67 + handle_len)
            .ok_or(malformed("key handle truncated"))?
            .to_vec();
        let rest = &data[67 + handle_len..];
        if rest.first() != Some(&0x30) {
            return Err(malformed("attestation certificate is not a DER SEQUENCE"));
        }
        let cert_len =
            der_element_len(rest).ok_or(malformed("attestation certificate truncated"))?;
        let (certificate, signature) = rest.split_at(cert_len);
        if signature.first() != Some(&0x30) || der_element_len(signature) != Some(signature.len()) {
            return Err(malformed("registration signature is not one DER SEQUENCE"));
        }
        Ok(Self {
            public_key,
            key_handle,
            attestation_certificate: certificate.to_vec(),
            signature: signature.to_vec(),
        })
    }
}

/// U2F_AUTHENTICATE response data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateResponse {
    /// User presence byte (bit 0 set when the user was present).
    pub user_presence: u8,
    /// Counter.
    pub counter: u32,
    /// ECDSA signature (DER) over [`AuthenticateResponse::signed_data`].
    pub signature: Vec<u8>,
}

impl AuthenticateResponse {
    /// The bytes the credential key signs: application ‖ user presence ‖ counter ‖ challenge.
    pub fn signed_data(&self, application: &[u8; 32], challenge: &[u8; 32]) -> Vec<u8> {
        let mut data = application.to_vec();
        data.push(self.user_presence);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data.extend_from_slice(challenge);
        data
    }

    /// Response data (without the status word).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.user_presence];
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes response data (without the status word).
    pub fn decode(data: &[u8]) -> Result<Self, Ctap2Error> {
        if data.len() < 6 {
            return Err(Ctap2Error::U2fMalformed(
                "authentication response truncated",
            ));
        }
        Ok(Self {
            user_presence: data[0],
            counter: u32::from_be_bytes([data[1], data[2], data[3], data[4]]),
            signature: data[5..].to_vec(),
        })
    }
}

/// Authenticator side: response data followed by the status word.
pub fn encode_response(data: &[u8], status: StatusWord) -> Vec<u8> {
    let mut out = data.to_vec();
    out.extend_from_slice(&status.to_bytes());
    out
}

/// Host side: splits a response APDU into data and status word.
pub fn split_response(response: &[u8]) -> Result<(&[u8], StatusWord), Ctap2Error> {
    if response.len() < 2 {
        return Err(Ctap2Error::U2fMalformed(
            "response shorter than a status word",
        ));
    }
    let (data, sw) = response.split_at(response.len() - 2);
    Ok((data, StatusWord(u16::from_be_bytes([sw[0], sw[1]]))))
}

/// Host side: the data of a 0x9000 response; other status words are [`Ctap2Error::U2fStatus`].
pub fn response_data(response: &[u8]) -> Result<&[u8], Ctap2Error> {
    match split_response(response)? {
        (data, StatusWord::NO_ERROR) => Ok(data),
        (_, status) => Err(Ctap2Error::U2fStatus(status.0)),
    }
}

// ---------------------------------------------------------------------------------------------
// CTAP 2.1 §11.2 "Interoperating with CTAP1/U2F authenticators": a platform that speaks CTAP2 to
// its callers maps MakeCredential / GetAssertion onto U2F_REGISTER / U2F_AUTHENTICATE.

impl RegisterRequest {
    /// §11.2.1 step 3: challenge = clientDataHash, application = SHA-256(rp.id). A clientDataHash
    /// that is not 32 bytes cannot be carried (U2F parameters are fixed size).
    pub fn from_make_credential(request: &make_credential::Request) -> Result<Self, Ctap2Error> {
        Ok(Self {
            challenge: request
                .client_data_hash
                .as_slice()
                .try_into()
                .map_err(|_| Ctap2Error::U2fMalformed("clientDataHash is not 32 bytes"))?,
            application: Sha256::digest(request.rp.id.as_bytes()).into(),
        })
    }
}

impl AuthenticateRequest {
    /// §11.2.2: challenge = clientDataHash, application = SHA-256(rpId), one allowList key handle.
    pub fn from_get_assertion(
        request: &get_assertion::Request,
        key_handle: &[u8],
        control: AuthenticateControl,
    ) -> Result<Self, Ctap2Error> {
        Ok(Self {
            control,
            challenge: request
                .client_data_hash
                .as_slice()
                .try_into()
                .map_err(|_| Ctap2Error::U2fMalformed("clientDataHash is not 32 bytes"))?,
            application: Sha256::digest(request.rp_id.as_bytes()).into(),
            key_handle: key_handle.to_vec(),
        })
    }
}

impl RegisterResponse {
    /// The user public key as an ES256 COSE key.
    pub fn credential_public_key(&self) -> CoseKey {
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        x.copy_from_slice(&self.public_key[1..33]);
        y.copy_from_slice(&self.public_key[33..65]);
        CoseKey::P256 {
            alg: cose::ES256,
            x,
            y,
        }
    }

    /// §11.2.1 step 4-5: the authenticatorMakeCredential response for this registration:
    /// authData = application ‖ flags 0x41 (UP|AT) ‖ signCount 0 ‖ AAGUID 0 ‖ key handle ‖ COSE key,
    /// attestation "fido-u2f" with the registration signature and certificate. The U2F signature
    /// covers exactly what WebAuthn's fido-u2f verification procedure rebuilds from this.
    pub fn to_make_credential_response(
        &self,
        request: &RegisterRequest,
    ) -> make_credential::Response {
        let auth_data = AuthenticatorData {
            rp_id_hash: request.application,
            flags: AuthenticatorDataFlags(AuthenticatorDataFlags::UP | AuthenticatorDataFlags::AT),
            sign_count: 0,
            attested_credential_data: Some(AttestedCredentialData {
                aaguid: [0; 16],
                credential_id: self.key_handle.clone(),
                credential_public_key: self.credential_public_key(),
            }),
            extensions: None,
        };
        make_credential::Response {
            auth_data: auth_data.to_bytes(),
            att_stmt: AttestationStatement::FidoU2f {
                sig: self.signature.clone(),
                x5c: vec![self.attestation_certificate.clone()],
            },
            ep_att: None,
            large_blob_key: None,
        }
    }
}

impl AuthenticateResponse {
    /// §11.2.2 step 4: the authenticatorGetAssertion response: authData = application ‖ flags
    /// (bit 0 of the user presence byte) ‖ counter, so that authData ‖ clientDataHash is exactly
    /// the U2F signed data and the U2F signature verifies as a CTAP2 assertion signature.
    pub fn to_get_assertion_response(
        &self,
        request: &AuthenticateRequest,
    ) -> get_assertion::Response {
        let auth_data = AuthenticatorData {
            rp_id_hash: request.application,
            flags: AuthenticatorDataFlags(self.user_presence & AuthenticatorDataFlags::UP),
            sign_count: self.counter,
            attested_credential_data: None,
            extensions: None,
        };
        get_assertion::Response {
            credential: Some(PublicKeyCredentialDescriptor::public_key(
                request.key_handle.clone(),
            )),
            auth_data: auth_data.to_bytes(),
            signature: self.signature.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apdu_cases_short_and_extended() {
        /// An ISO 7816-4 case: its name, the APDU, and the data and Ne it carries.
        type Case = (&'static str, &'static [u8], &'static [u8], Option<u32>);
        // ISO 7816-4 §5.1: every case, short and extended.
        let cases: [Case; 10] = [
            ("1", &[0, 3, 0, 0], &[], None),
            ("2S, Le 00 = 256", &[0, 3, 0, 0, 0], &[], Some(256)),
            ("2S", &[0, 3, 0, 0, 0x10], &[], Some(16)),
            (
                "2E, Le 0000 = 65536",
                &[0, 3, 0, 0, 0, 0, 0],
                &[],
                Some(65_536),
            ),
            ("2E", &[0, 3, 0, 0, 0, 0x01, 0x00], &[], Some(256)),
            ("3S", &[0, 1, 0, 0, 2, 0xAA, 0xBB], &[0xAA, 0xBB], None),
            (
                "4S",
                &[0, 1, 0, 0, 2, 0xAA, 0xBB, 0x10],
                &[0xAA, 0xBB],
                Some(16),
            ),
            (
                "3E",
                &[0, 1, 0, 0, 0, 0, 2, 0xAA, 0xBB],
                &[0xAA, 0xBB],
                None,
            ),
            (
                "4E",
                &[0, 1, 0, 0, 0, 0, 2, 0xAA, 0xBB, 0, 0],
                &[0xAA, 0xBB],
                Some(65_536),
            ),
            // python-fido2's and libfido2's VERSION: extended, Lc = 0000, Le = 0000.
            (
                "extended Lc 0",
                &[0, 3, 0, 0, 0, 0, 0, 0, 0],
                &[],
                Some(65_536),
            ),
        ];
        for (case, bytes, data, le) in cases {
            let apdu = Apdu::parse(bytes).unwrap();
            assert_eq!((apdu.data.as_slice(), apdu.le), (data, le), "case {case}");
            assert_eq!((apdu.cla, apdu.ins), (bytes[0], bytes[1]), "case {case}");
        }
        for (why, bad) in [
            ("header cut short", &[0u8, 1, 0][..]),
            ("short Lc 0 then Le", &[0, 3, 0, 0, 0, 0x10]),
            ("short Lc 0 then Le 00", &[0, 3, 0, 0, 0, 0]),
            ("short Lc 0 then Le, REGISTER", &[0, 1, 0, 0, 0, 0xFF]),
            ("short Lc 3 with 1 byte", &[0, 1, 0, 0, 3, 1]),
            ("extended Lc 3 with 1 byte", &[0, 1, 0, 0, 0, 0, 3, 1]),
            ("short Lc 2 with 4 bytes", &[0, 1, 0, 0, 2, 1, 2, 3, 4]),
            (
                "extended Le cut short",
                &[0, 1, 0, 0, 0, 0, 2, 0xAA, 0xBB, 0],
            ),
        ] {
            assert_eq!(
                Apdu::parse(bad).unwrap_err(),
                StatusWord::WRONG_LENGTH,
                "{why}: {bad:02x?}"
            );
        }
    }

    #[test]
    fn every_accepted_form_decodes_the_same_request() {
        let register = U2fRequest::Register(RegisterRequest {
            challenge: [1; 32],
            application: [2; 32],
        });
        let apdu = register.to_apdu().unwrap();
        let header = [0, INS_REGISTER, 0, 0];
        let data = apdu.data.as_slice();
        let forms: [(&str, Vec<u8>); 4] = [
            ("3S", [&header[..], &[64], data].concat()),
            ("4S", [&header[..], &[64], data, &[0]].concat()),
            ("3E", [&header[..], &[0, 0, 64], data].concat()),
            ("4E", [&header[..], &[0, 0, 64], data, &[0, 0]].concat()),
        ];
        for (case, bytes) in forms {
            assert_eq!(U2fRequest::decode(&bytes).unwrap(), register, "case {case}");
        }
        let version: [(&str, &[u8]); 5] = [
            ("1", &[0, INS_VERSION, 0, 0]),
            ("2S", &[0, INS_VERSION, 0, 0, 0]),
            ("2E", &[0, INS_VERSION, 0, 0, 0, 0, 0]),
            ("extended Lc 0", &[0, INS_VERSION, 0, 0, 0, 0, 0, 0, 0]),
            ("our encode", &U2fRequest::Version.encode().unwrap()),
        ];
        for (case, bytes) in version {
            assert_eq!(
                U2fRequest::decode(bytes).unwrap(),
                U2fRequest::Version,
                "case {case}"
            );
        }
        assert_eq!(
            U2fRequest::decode(&[0, INS_VERSION, 0, 0, 0, 0x06]).unwrap_err(),
            StatusWord::WRONG_LENGTH
        );
    }

    #[test]
    fn request_round_trips_and_errors() {
        let version = U2fRequest::Version.encode().unwrap();
        assert_eq!(version, [0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(U2fRequest::decode(&version).unwrap(), U2fRequest::Version);
        let register = U2fRequest::Register(RegisterRequest {
            challenge: [1; 32],
            application: [2; 32],
        });
        let bytes = register.encode().unwrap();
        assert_eq!(&bytes[..7], &[0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x40]);
        assert_eq!(bytes.len(), 7 + 64 + 2);
        assert_eq!(U2fRequest::decode(&bytes).unwrap(), register);
        let short = register.to_apdu().unwrap().encode_short().unwrap();
        assert_eq!(U2fRequest::decode(&short).unwrap(), register);
        let authenticate = U2fRequest::Authenticate(AuthenticateRequest {
            control: AuthenticateControl::CHECK_ONLY,
            challenge: [3; 32],
            application: [4; 32],
            key_handle: vec![5; 64],
        });
        let bytes = authenticate.encode().unwrap();
        assert_eq!(bytes[2], 0x07);
        assert_eq!(U2fRequest::decode(&bytes).unwrap(), authenticate);

        assert_eq!(
            U2fRequest::decode(&[0x80, 3, 0, 0]).unwrap_err(),
            StatusWord::CLA_NOT_SUPPORTED
        );
        assert_eq!(
            U2fRequest::decode(&[0, 0x55, 0, 0]).unwrap_err(),
            StatusWord::INS_NOT_SUPPORTED
        );
        assert_eq!(
            U2fRequest::decode(&[0, 1, 0, 0, 1, 0]).unwrap_err(),
            StatusWord::WRONG_LENGTH
        );
        let mut bad_p1 = bytes.clone();
        bad_p1[2] = 0x05;
        assert_eq!(
            U2fRequest::decode(&bad_p1).unwrap_err(),
            StatusWord::WRONG_DATA
        );
        let mut bad_len = bytes.clone();
        bad_len[7 + 64] = 63;
        assert_eq!(
            U2fRequest::decode(&bad_len).unwrap_err(),
            StatusWord::WRONG_LENGTH
        );
    }

    #[test]
    fn responses_round_trip() {
        let mut public_key = [7u8; 65];
        public_key[0] = 4;
        let certificate = [&[0x30, 0x81, 0x03][..], &[1, 2, 3]].concat();
        let register = RegisterResponse {
            public_key,
            key_handle: vec![9; 40],
            attestation_certificate: certificate,
            signature: vec![0x30, 0x02, 0x01, 0x00],
        };
        let data = register.encode().unwrap();
        assert_eq!(RegisterResponse::decode(&data).unwrap(), register);
        for len in 0..data.len() {
            assert!(RegisterResponse::decode(&data[..len]).is_err(), "{len}");
        }
        let response = encode_response(&data, StatusWord::NO_ERROR);
        assert_eq!(response_data(&response).unwrap(), data.as_slice());
        assert!(matches!(
            response_data(&[0x69, 0x85]),
            Err(Ctap2Error::U2fStatus(0x6985))
        ));
        let authenticate = AuthenticateResponse {
            user_presence: 1,
            counter: 0x0102_0304,
            signature: vec![0x30, 0],
        };
        let data = authenticate.encode();
        assert_eq!(&data[..5], &[1, 1, 2, 3, 4]);
        assert_eq!(AuthenticateResponse::decode(&data).unwrap(), authenticate);
        let signed = authenticate.signed_data(&[0xAA; 32], &[0xBB; 32]);
        assert_eq!(signed.len(), 32 + 1 + 4 + 32);
    }

    #[test]
    fn ctap2_mapping_signatures_verify() {
        use p256::ecdsa::signature::{Signer, Verifier};
        use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};

        let mc = make_credential::Request {
            client_data_hash: vec![0x42; 32],
            rp: crate::ctap2::PublicKeyCredentialRpEntity::new("example.com"),
            ..Default::default()
        };
        let register = RegisterRequest::from_make_credential(&mc).unwrap();
        assert_eq!(register.challenge, [0x42; 32]);
        assert_eq!(
            hex::encode(register.application),
            "a379a6f6eeafb9a55e378c118034e2751e682fab9f2d30ab13d2125586ce1947"
        );
        let credential = SigningKey::from_slice(&[0x31; 32]).unwrap();
        let attestation = SigningKey::from_slice(&[0x32; 32]).unwrap();
        let point = VerifyingKey::from(&credential).to_sec1_point(false);
        let mut registration = RegisterResponse {
            public_key: point.as_bytes().try_into().unwrap(),
            key_handle: vec![0x4B; 48],
            attestation_certificate: vec![0x30, 0x00],
            signature: Vec::new(),
        };
        let signature: DerSignature = attestation.sign(&registration.signed_data(&register));
        registration.signature = signature.as_bytes().to_vec();
        let response = registration.to_make_credential_response(&register);
        let auth_data = response.auth_data().unwrap();
        assert_eq!(auth_data.flags.0, 0x41);
        assert_eq!(auth_data.sign_count, 0);
        let attested = auth_data.attested_credential_data.unwrap();
        assert_eq!(attested.aaguid, [0; 16]);
        assert_eq!(attested.credential_id, vec![0x4B; 48]);
        assert_eq!(
            attested.credential_public_key.to_p256().unwrap(),
            credential.verifying_key().into()
        );
        // WebAuthn §8.6 fido-u2f verification rebuilds the U2F signed data from authData.
        let rebuilt = [
            &[0x00][..],
            &auth_data.rp_id_hash,
            &mc.client_data_hash,
            &attested.credential_id,
            point.as_bytes(),
        ]
        .concat();
        let AttestationStatement::FidoU2f { sig, x5c } = &response.att_stmt else {
            panic!()
        };
        assert_eq!(x5c.len(), 1);
        let sig = DerSignature::try_from(sig.as_slice()).unwrap();
        VerifyingKey::from(&attestation)
            .verify(&rebuilt, &sig)
            .unwrap();

        let ga = get_assertion::Request {
            rp_id: "example.com".into(),
            client_data_hash: vec![0x43; 32],
            ..Default::default()
        };
        let authenticate = AuthenticateRequest::from_get_assertion(
            &ga,
            &[0x4B; 48],
            AuthenticateControl::ENFORCE_USER_PRESENCE_AND_SIGN,
        )
        .unwrap();
        let mut assertion = AuthenticateResponse {
            user_presence: 0x01,
            counter: 9,
            signature: Vec::new(),
        };
        let signature: DerSignature = credential
            .sign(&assertion.signed_data(&authenticate.application, &authenticate.challenge));
        assertion.signature = signature.as_bytes().to_vec();
        let response = assertion.to_get_assertion_response(&authenticate);
        assert_eq!(response.credential.as_ref().unwrap().id, vec![0x4B; 48]);
        // A CTAP2 assertion signature is over authData || clientDataHash: the U2F one verifies.
        let signed = [response.auth_data.as_slice(), &ga.client_data_hash].concat();
        let sig = DerSignature::try_from(response.signature.as_slice()).unwrap();
        VerifyingKey::from(&credential)
            .verify(&signed, &sig)
            .unwrap();
        assert_eq!(response.auth_data().unwrap().sign_count, 9);
        assert!(
            RegisterRequest::from_make_credential(&make_credential::Request::default()).is_err()
        );
    }
}
