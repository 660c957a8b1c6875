//! CTAP1/U2F on the software key (FIDO U2F Raw Message Formats v1.2; CTAP 2.1 §11.2.9.1.1
//! carries them in CTAPHID_MSG): VERSION, REGISTER, AUTHENTICATE with enforce (0x03),
//! check-only (0x07) and dont-enforce (0x08), answered with ISO 7816 status words.

use crate::authenticator::credential::{self, CredProtect, WrappedPayload};
use crate::authenticator::keys;
use crate::authenticator::presence::{PresenceOutcome, UserPresence};
use crate::authenticator::softkey::SoftKey;

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

const INS_REGISTER: u8 = 0x01;
const INS_AUTHENTICATE: u8 = 0x02;
const INS_VERSION: u8 = 0x03;
const P1_ENFORCE: u8 = 0x03;
const P1_CHECK_ONLY: u8 = 0x07;
const P1_DONT_ENFORCE: u8 = 0x08;

/// A parsed command APDU.
#[derive(Debug, PartialEq, Eq)]
struct Apdu<'a> {
    cla: u8,
    ins: u8,
    p1: u8,
    data: &'a [u8],
}

/// Parses short (ISO 7816-4 §5.1) and extended-length APDUs; `None` on a length mismatch.
fn parse_apdu(apdu: &[u8]) -> Option<Apdu<'_>> {
    if apdu.len() < 4 {
        return None;
    }
    let (cla, ins, p1) = (apdu[0], apdu[1], apdu[2]);
    let body = &apdu[4..];
    let data: &[u8] = match body.len() {
        0 => &[],                 // case 1
        1 => &[],                 // case 2 short: Le only
        3 if body[0] == 0 => &[], // case 2 extended: 00 Le Le
        _ if body[0] == 0 && body.len() >= 3 => {
            // Extended: 00 Lc Lc data [Le Le]
            let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
            let rest = body.len() - 3;
            if lc == 0 && rest <= 2 {
                // 00 00 00 [Le Le]: no data (python-fido2 sends VERSION this way).
                return Some(Apdu {
                    cla,
                    ins,
                    p1,
                    data: &[],
                });
            }
            if lc == 0 || !(rest == lc || rest == lc + 2) {
                return None;
            }
            &body[3..3 + lc]
        }
        _ => {
            // Short: Lc data [Le]
            let lc = usize::from(body[0]);
            let rest = body.len() - 1;
            if lc == 0 || !(rest == lc || rest == lc + 1) {
                return None;
            }
            &body[1..1 + lc]
        }
    };
    Some(Apdu { cla, ins, p1, data })
}

fn status(word: u16) -> Vec<u8> {
    word.to_be_bytes().to_vec()
}

fn with_status(mut body: Vec<u8>, word: u16) -> Vec<u8> {
    body.extend_from_slice(&word.to_be_bytes());
    body
}

impl SoftKey {
    /// Handles one U2F request APDU; returns the response data followed by the status word.
    pub fn handle_u2f(&mut self, apdu: &[u8], presence: &mut dyn UserPresence) -> Vec<u8> {
        let Some(apdu) = parse_apdu(apdu) else {
            return status(sw::WRONG_LENGTH);
        };
        if apdu.cla != 0 {
            return status(sw::CLA_NOT_SUPPORTED);
        }
        match apdu.ins {
            INS_VERSION if apdu.data.is_empty() => with_status(b"U2F_V2".to_vec(), sw::NO_ERROR),
            INS_VERSION => status(sw::WRONG_LENGTH),
            INS_REGISTER | INS_AUTHENTICATE if self.state.always_uv => {
                status(sw::COMMAND_NOT_ALLOWED)
            }
            INS_REGISTER => self.u2f_register(apdu.data, presence),
            INS_AUTHENTICATE => self.u2f_authenticate(apdu.p1, apdu.data, presence),
            _ => status(sw::INS_NOT_SUPPORTED),
        }
    }

    fn u2f_register(&mut self, data: &[u8], presence: &mut dyn UserPresence) -> Vec<u8> {
        if data.len() != 64 {
            return status(sw::WRONG_LENGTH);
        }
        let (challenge, application) = data.split_at(32);
        let Ok(app): Result<[u8; 32], _> = application.try_into() else {
            return status(sw::WRONG_LENGTH);
        };
        if presence.poll("") != PresenceOutcome::Approved {
            return status(sw::CONDITIONS_NOT_SATISFIED);
        }
        self.last = crate::authenticator::softkey::LastOperation {
            user_present: true,
            user_verified: false,
        };
        let Ok(private_key) = keys::new_private_key(self.rng.as_mut()) else {
            return status(sw::UNKNOWN);
        };
        let payload = WrappedPayload {
            private_key,
            cred_protect: CredProtect::UvOptional,
            hmac_secret: false,
            cred_blob: None,
        };
        let master = self.master();
        let Ok(key_handle) =
            credential::wrap_credential_id(&master, &app, &payload, self.rng.as_mut())
        else {
            return status(sw::UNKNOWN);
        };
        let (Ok(cred_key), Ok(batch)) = (
            keys::signing_key(payload.private_key.expose_secret()),
            self.state.attestation.batch_signing_key(),
        ) else {
            return status(sw::UNKNOWN);
        };
        let public = keys::public_sec1(&cred_key);
        let mut signed = vec![0x00];
        signed.extend_from_slice(&app);
        signed.extend_from_slice(challenge);
        signed.extend_from_slice(&key_handle);
        signed.extend_from_slice(&public);
        let signature = self.sign(&batch, &signed);
        let mut out = vec![0x05];
        out.extend_from_slice(&public);
        out.push(key_handle.len() as u8);
        out.extend_from_slice(&key_handle);
        out.extend_from_slice(&self.state.attestation.batch_cert);
        out.extend_from_slice(&signature);
        with_status(out, sw::NO_ERROR)
    }

    fn u2f_authenticate(
        &mut self,
        p1: u8,
        data: &[u8],
        presence: &mut dyn UserPresence,
    ) -> Vec<u8> {
        if data.len() < 65 || data.len() != 65 + usize::from(data[64]) {
            return status(sw::WRONG_LENGTH);
        }
        let challenge = &data[..32];
        let Ok(app): Result<[u8; 32], _> = data[32..64].try_into() else {
            return status(sw::WRONG_LENGTH);
        };
        let key_handle = &data[65..];
        let Some(cred) = self.find_credential_by_hash(&app, key_handle) else {
            return status(sw::WRONG_DATA);
        };
        let user_present = match p1 {
            P1_CHECK_ONLY => return status(sw::CONDITIONS_NOT_SATISFIED),
            P1_ENFORCE => {
                if presence.poll(&cred.rp_id) != PresenceOutcome::Approved {
                    return status(sw::CONDITIONS_NOT_SATISFIED);
                }
                true
            }
            P1_DONT_ENFORCE => false,
            _ => return status(sw::INCORRECT_P1P2),
        };
        let Ok(signing_key) = cred.signing_key() else {
            return status(sw::UNKNOWN);
        };
        let counter = self.bump_counter(&cred);
        if self.persist().is_err() {
            return status(sw::UNKNOWN);
        }
        self.last = crate::authenticator::softkey::LastOperation {
            user_present,
            user_verified: false,
        };
        let flags = u8::from(user_present);
        let mut signed = app.to_vec();
        signed.push(flags);
        signed.extend_from_slice(&counter.to_be_bytes());
        signed.extend_from_slice(challenge);
        let signature = self.sign(&signing_key, &signed);
        let mut out = vec![flags];
        out.extend_from_slice(&counter.to_be_bytes());
        out.extend_from_slice(&signature);
        with_status(out, sw::NO_ERROR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::presence::{AutoApproveForTests, DenyForTests};
    use crate::authenticator::{SoftKeyOptions, keys::SeededRandomForTests};
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

    fn extended(ins: u8, p1: u8, data: &[u8]) -> Vec<u8> {
        let mut apdu = vec![0x00, ins, p1, 0x00, 0x00];
        apdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
        apdu.extend_from_slice(data);
        apdu.extend_from_slice(&[0x00, 0x00]);
        apdu
    }

    #[test]
    fn apdu_parsing() {
        assert_eq!(parse_apdu(&[0, 3, 0, 0]).unwrap().data, &[] as &[u8]);
        assert_eq!(
            parse_apdu(&[0, 3, 0, 0, 0, 0, 0]).unwrap().data,
            &[] as &[u8]
        );
        assert_eq!(parse_apdu(&[0, 1, 0, 0, 2, 9, 9]).unwrap().data, &[9, 9]);
        assert_eq!(parse_apdu(&[0, 1, 0, 0, 2, 9, 9, 0]).unwrap().data, &[9, 9]);
        assert_eq!(
            parse_apdu(&[0, 1, 0, 0, 0, 0, 2, 9, 9]).unwrap().data,
            &[9, 9]
        );
        assert_eq!(
            parse_apdu(&[0, 1, 0, 0, 0, 0, 2, 9, 9, 0, 0]).unwrap().data,
            &[9, 9]
        );
        assert_eq!(
            parse_apdu(&[0, 3, 0, 0, 0, 0, 0, 0, 0]).unwrap().data,
            &[] as &[u8]
        );
        assert!(parse_apdu(&[0, 1, 0]).is_none());
        assert!(parse_apdu(&[0, 1, 0, 0, 3, 9, 9]).is_none());
        assert!(parse_apdu(&[0, 1, 0, 0, 0, 0, 5, 9, 9]).is_none());
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
