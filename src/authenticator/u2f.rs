//! CTAP1/U2F on the software key (FIDO U2F Raw Message Formats v1.2; CTAP 2.1 §11.2.9.1.1
//! carries them in CTAPHID_MSG): VERSION, REGISTER, AUTHENTICATE with enforce (0x03),
//! check-only (0x07) and dont-enforce (0x08), answered with ISO 7816 status words.
//!
//! Requests are read and responses written by the codec the host side uses too,
//! [`crate::ctap2::u2f`]: short and extended APDUs (ISO 7816-4 §5.1), wrong lengths 0x6700,
//! CLA ≠ 0 0x6E00, unknown INS 0x6D00.

use crate::authenticator::credential::{self, CredProtect, WrappedPayload};
use crate::authenticator::keys;
use crate::authenticator::presence::{PresenceOutcome, UserPresence};
use crate::authenticator::softkey::{LastOperation, SoftKey};
use crate::ctap2::u2f::{
    AuthenticateControl, AuthenticateRequest, AuthenticateResponse, RegisterRequest,
    RegisterResponse, StatusWord, U2fRequest, VERSION, encode_response,
};

/// ISO 7816 status words used by U2F.
pub mod sw {
    /// 0x9000 success.
    pub const NO_ERROR: u16 = 0x9000;
    /// 0x6985 test of user presence required / key handle valid (check-only).
    pub const CONDITIONS_NOT_SATISFIED: u16 = 0x6985;
    /// 0x6A80 bad key handle.
    pub const WRONG_DATA: u16 = 0x6a80;
    /// 0x6700 wrong request length.
    pub const WRONG_LENGTH: u16 = 0x6700;
    /// 0x6E00 CLA not supported.
    pub const CLA_NOT_SUPPORTED: u16 = 0x6e00;
    /// 0x6D00 INS not supported.
    pub const INS_NOT_SUPPORTED: u16 = 0x6d00;
    /// 0x6A86 incorrect P1/P2.
    pub const INCORRECT_P1P2: u16 = 0x6a86;
    /// 0x6F00 no precise diagnosis (internal error).
    pub const UNKNOWN: u16 = 0x6f00;
    /// 0x6986 command not allowed (CTAP1 is off while alwaysUv is on, CTAP 2.1 §7.2.2).
    pub const COMMAND_NOT_ALLOWED: u16 = 0x6986;
}

const UNKNOWN: StatusWord = StatusWord(sw::UNKNOWN);
const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord::CONDITIONS_NOT_SATISFIED;

/// The status word of a request the codec refused. The codec answers an unknown AUTHENTICATE
/// control byte with 0x6A80, which on this side means "not my key handle" (a check-only
/// answer); the key reports it as what it is, ISO 7816-4 0x6A86 (incorrect P1/P2).
fn refused(word: StatusWord) -> StatusWord {
    match word {
        StatusWord::WRONG_DATA => StatusWord(sw::INCORRECT_P1P2),
        other => other,
    }
}

impl SoftKey {
    /// Handles one U2F request APDU; returns the response data followed by the status word.
    pub fn handle_u2f(&mut self, apdu: &[u8], presence: &mut dyn UserPresence) -> Vec<u8> {
        let answer = U2fRequest::decode(apdu)
            .map_err(refused)
            .and_then(|request| self.u2f_request(request, presence));
        match answer {
            Ok(data) => encode_response(&data, StatusWord::NO_ERROR),
            Err(word) => word.to_bytes().to_vec(),
        }
    }

    fn u2f_request(
        &mut self,
        request: U2fRequest,
        presence: &mut dyn UserPresence,
    ) -> Result<Vec<u8>, StatusWord> {
        match request {
            U2fRequest::Version => Ok(VERSION.to_vec()),
            U2fRequest::Register(_) | U2fRequest::Authenticate(_) if self.state.always_uv => {
                Err(StatusWord(sw::COMMAND_NOT_ALLOWED))
            }
            U2fRequest::Register(request) => self.u2f_register(&request, presence),
            U2fRequest::Authenticate(request) => self.u2f_authenticate(&request, presence),
        }
    }

    fn u2f_register(
        &mut self,
        request: &RegisterRequest,
        presence: &mut dyn UserPresence,
    ) -> Result<Vec<u8>, StatusWord> {
        if presence.poll("") != PresenceOutcome::Approved {
            return Err(CONDITIONS_NOT_SATISFIED);
        }
        self.last = LastOperation {
            user_present: true,
            user_verified: false,
        };
        let private_key = keys::new_private_key(self.rng.as_mut()).map_err(|_| UNKNOWN)?;
        let payload = WrappedPayload {
            private_key,
            cred_protect: CredProtect::UvOptional,
            hmac_secret: false,
            cred_blob: None,
        };
        let key_handle = credential::wrap_credential_id(
            &self.master_keys,
            &request.application,
            &payload,
            self.rng.as_mut(),
        )
        .map_err(|_| UNKNOWN)?;
        let (Ok(cred_key), Ok(batch)) = (
            keys::signing_key(payload.private_key.expose_secret()),
            self.state.attestation.batch_secret_key(),
        ) else {
            return Err(UNKNOWN);
        };
        let public_key = keys::public_sec1(&cred_key)
            .try_into()
            .map_err(|_| UNKNOWN)?;
        let mut response = RegisterResponse {
            public_key,
            key_handle,
            attestation_certificate: self.state.attestation.batch_cert.clone(),
            signature: Vec::new(),
        };
        response.signature = self.sign(&batch, &[&response.signed_data(request)]);
        response.encode().map_err(|_| UNKNOWN)
    }

    fn u2f_authenticate(
        &mut self,
        request: &AuthenticateRequest,
        presence: &mut dyn UserPresence,
    ) -> Result<Vec<u8>, StatusWord> {
        let Some(cred) = self.find_credential_by_hash(&request.application, &request.key_handle)
        else {
            return Err(StatusWord::WRONG_DATA);
        };
        let user_present = match request.control {
            AuthenticateControl::CHECK_ONLY => return Err(CONDITIONS_NOT_SATISFIED),
            AuthenticateControl::ENFORCE_USER_PRESENCE_AND_SIGN => {
                if presence.poll(&cred.rp_id) != PresenceOutcome::Approved {
                    return Err(CONDITIONS_NOT_SATISFIED);
                }
                true
            }
            AuthenticateControl::DONT_ENFORCE_USER_PRESENCE_AND_SIGN => false,
            _ => return Err(StatusWord(sw::INCORRECT_P1P2)),
        };
        let signing_key = cred.secret_key().map_err(|_| UNKNOWN)?;
        let counter = self.bump_counter(&cred);
        self.persist().map_err(|_| UNKNOWN)?;
        self.last = LastOperation {
            user_present,
            user_verified: false,
        };
        let mut response = AuthenticateResponse {
            user_presence: u8::from(user_present),
            counter,
            signature: Vec::new(),
        };
        let signed = response.signed_data(&request.application, &request.challenge);
        response.signature = self.sign(&signing_key, &[&signed]);
        Ok(response.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::presence::{AutoApproveForTests, DenyForTests};
    use crate::authenticator::{SoftKeyOptions, keys::SeededRandomForTests};
    use crate::ctap2::u2f::{INS_AUTHENTICATE, INS_REGISTER};
    use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};

    fn key() -> SoftKey {
        SoftKey::with_vault(
            SoftKeyOptions::default(),
            Box::new(crate::authenticator::MemoryVault::new()),
            Box::new(SeededRandomForTests::new(11)),
            std::time::Instant::now(),
        )
        .unwrap()
    }

    const P1_ENFORCE: u8 = AuthenticateControl::ENFORCE_USER_PRESENCE_AND_SIGN.0;
    const P1_CHECK_ONLY: u8 = AuthenticateControl::CHECK_ONLY.0;
    const P1_DONT_ENFORCE: u8 = AuthenticateControl::DONT_ENFORCE_USER_PRESENCE_AND_SIGN.0;

    fn extended(ins: u8, p1: u8, data: &[u8]) -> Vec<u8> {
        let mut apdu = vec![0x00, ins, p1, 0x00, 0x00];
        apdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
        apdu.extend_from_slice(data);
        apdu.extend_from_slice(&[0x00, 0x00]);
        apdu
    }

    /// Every APDU form the key accepted before it used the shared codec still reaches the
    /// command, and every malformed one is still 0x6700.
    #[test]
    fn apdu_forms_short_and_extended() {
        let mut k = key();
        let version = b"U2F_V2\x90\x00".to_vec();
        for apdu in [
            &[0u8, 3, 0, 0][..],
            &[0, 3, 0, 0, 0],
            &[0, 3, 0, 0, 0, 0, 0],
            &[0, 3, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(
                k.handle_u2f(apdu, &mut AutoApproveForTests),
                version,
                "{apdu:02x?}"
            );
        }
        // REGISTER data in each form reaches the presence check (denied: 6985).
        let data = [7u8; 64];
        let short = [&[0, INS_REGISTER, 0, 0, 64][..], &data].concat();
        let extended_no_le = [&[0, INS_REGISTER, 0, 0, 0, 0, 64][..], &data].concat();
        for apdu in [
            short.clone(),
            [&short[..], &[0]].concat(),
            extended_no_le.clone(),
            [&extended_no_le[..], &[0, 0]].concat(),
        ] {
            assert_eq!(
                k.handle_u2f(&apdu, &mut DenyForTests),
                [0x69, 0x85],
                "{apdu:02x?}"
            );
        }
        for bad in [
            &[0u8, 1, 0][..],
            &[0, 1, 0, 0, 3, 9, 9],
            &[0, 1, 0, 0, 0, 0, 5, 9, 9],
            &[0, 3, 0, 0, 1, 9],
        ] {
            assert_eq!(
                k.handle_u2f(bad, &mut AutoApproveForTests),
                [0x67, 0x00],
                "{bad:02x?}"
            );
        }
    }

    /// An unknown AUTHENTICATE control byte is ISO 7816-4 0x6A86, not 0x6A80 (which a platform
    /// reads as "not this key's handle").
    #[test]
    fn unknown_control_byte_is_incorrect_p1p2() {
        let mut k = key();
        let mut up = AutoApproveForTests;
        let app = keys::sha256(b"https://example.com");
        let reg = k.handle_u2f(
            &extended(INS_REGISTER, 0, &[[1u8; 32], app].concat()),
            &mut up,
        );
        let kh = reg[67..67 + usize::from(reg[66])].to_vec();
        let data = [&[1u8; 32][..], &app, &[kh.len() as u8], &kh].concat();
        assert_eq!(
            k.handle_u2f(&extended(INS_AUTHENTICATE, 0x05, &data), &mut up),
            [0x6a, 0x86]
        );
        assert_eq!(
            k.handle_u2f(&extended(INS_AUTHENTICATE, P1_CHECK_ONLY, &data), &mut up),
            [0x69, 0x85]
        );
    }

    #[test]
    fn version_errors_register_authenticate() {
        let mut k = key();
        let mut up = AutoApproveForTests;
        assert_eq!(k.handle_u2f(&[0, 3, 0, 0], &mut up), b"U2F_V2\x90\x00");
        assert_eq!(k.handle_u2f(&[0x80, 3, 0, 0], &mut up), [0x6e, 0x00]);
        assert_eq!(k.handle_u2f(&[0, 0x55, 0, 0], &mut up), [0x6d, 0x00]);
        assert_eq!(
            k.handle_u2f(&extended(INS_REGISTER, 0, &[0; 63]), &mut up),
            [0x67, 0x00]
        );
        assert_eq!(
            k.handle_u2f(&extended(INS_REGISTER, 0, &[0; 64]), &mut DenyForTests),
            [0x69, 0x85]
        );

        let challenge = [1u8; 32];
        let app = keys::sha256(b"https://example.com");
        let reg = k.handle_u2f(
            &extended(INS_REGISTER, 0, &[challenge, app].concat()),
            &mut up,
        );
        assert_eq!(reg[reg.len() - 2..], [0x90, 0x00]);
        assert_eq!(reg[0], 0x05);
        let public = &reg[1..66];
        let kh_len = usize::from(reg[66]);
        let kh = reg[67..67 + kh_len].to_vec();
        let cert_len = k.attestation_cert_der().len();
        let cert = &reg[67 + kh_len..67 + kh_len + cert_len];
        assert_eq!(cert, k.attestation_cert_der());
        let sig = Signature::from_der(&reg[67 + kh_len + cert_len..reg.len() - 2]).unwrap();
        let batch_pub = VerifyingKey::from(&k.state.attestation.batch_signing_key().unwrap());
        let signed = [&[0u8][..], &app, &challenge, &kh, public].concat();
        batch_pub.verify(&signed, &sig).unwrap();

        let auth_data =
            |kh: &[u8], app: &[u8; 32]| [&challenge[..], app, &[kh.len() as u8], kh].concat();
        // check-only: known handle -> 6985, unknown handle or other app -> 6A80.
        assert_eq!(
            k.handle_u2f(
                &extended(INS_AUTHENTICATE, P1_CHECK_ONLY, &auth_data(&kh, &app)),
                &mut up
            ),
            [0x69, 0x85]
        );
        let other = keys::sha256(b"https://evil.example");
        assert_eq!(
            k.handle_u2f(
                &extended(INS_AUTHENTICATE, P1_CHECK_ONLY, &auth_data(&kh, &other)),
                &mut up
            ),
            [0x6a, 0x80]
        );
        let mut forged = kh.clone();
        forged[20] ^= 1;
        assert_eq!(
            k.handle_u2f(
                &extended(INS_AUTHENTICATE, P1_ENFORCE, &auth_data(&forged, &app)),
                &mut up
            ),
            [0x6a, 0x80]
        );
        // enforce without presence -> 6985.
        assert_eq!(
            k.handle_u2f(
                &extended(INS_AUTHENTICATE, P1_ENFORCE, &auth_data(&kh, &app)),
                &mut DenyForTests
            ),
            [0x69, 0x85]
        );
        // enforce with presence: signature verifies with the registered public key.
        let resp = k.handle_u2f(
            &extended(INS_AUTHENTICATE, P1_ENFORCE, &auth_data(&kh, &app)),
            &mut up,
        );
        assert_eq!(resp[resp.len() - 2..], [0x90, 0x00]);
        assert_eq!(resp[0], 0x01);
        let counter = u32::from_be_bytes(resp[1..5].try_into().unwrap());
        assert_eq!(counter, 1);
        let cred_pub = VerifyingKey::from_sec1_bytes(public).unwrap();
        let signed = [&app[..], &resp[..5], &challenge].concat();
        cred_pub
            .verify(
                &signed,
                &Signature::from_der(&resp[5..resp.len() - 2]).unwrap(),
            )
            .unwrap();
        // dont-enforce: UP flag clear, counter moves on.
        let resp = k.handle_u2f(
            &extended(INS_AUTHENTICATE, P1_DONT_ENFORCE, &auth_data(&kh, &app)),
            &mut DenyForTests,
        );
        assert_eq!(resp[0], 0x00);
        assert_eq!(u32::from_be_bytes(resp[1..5].try_into().unwrap()), 2);
        // alwaysUv switches CTAP1 off.
        k.state.always_uv = true;
        assert_eq!(
            k.handle_u2f(
                &extended(INS_AUTHENTICATE, P1_ENFORCE, &auth_data(&kh, &app)),
                &mut up
            ),
            [0x69, 0x86]
        );
        k.state.always_uv = false;
        // forced bad signature does not verify.
        k.set_force_bad_signature(true);
        let resp = k.handle_u2f(
            &extended(INS_AUTHENTICATE, P1_ENFORCE, &auth_data(&kh, &app)),
            &mut up,
        );
        let signed = [&app[..], &resp[..5], &challenge].concat();
        assert!(
            cred_pub
                .verify(
                    &signed,
                    &Signature::from_der(&resp[5..resp.len() - 2]).unwrap()
                )
                .is_err()
        );
    }
}
