//! Authenticator data (WebAuthn §6.1, CTAP 2.1 §6.1 "authData").
//!
//! Layout: rpIdHash (32) || flags (1) || signCount (4, big-endian)
//! || [attestedCredentialData: aaguid (16) || credentialIdLength (2, big-endian) || credentialId || COSE key]
//! || [extensions: CBOR map].

use std::fmt;

use super::cbor;
use super::cose::CoseKey;
use super::error::DecodeError;
use super::extensions::ExtensionOutputs;

/// The flags byte of the authenticator data. Open newtype over the raw byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AuthenticatorDataFlags(pub u8);

impl AuthenticatorDataFlags {
    /// Bit 0, User Present.
    pub const UP: u8 = 0x01;
    /// Bit 2, User Verified.
    pub const UV: u8 = 0x04;
    /// Bit 3, Backup Eligibility.
    pub const BE: u8 = 0x08;
    /// Bit 4, Backup State.
    pub const BS: u8 = 0x10;
    /// Bit 6, Attested credential data included.
    pub const AT: u8 = 0x40;
    /// Bit 7, Extension data included.
    pub const ED: u8 = 0x80;

    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u8) -> bool {
        self.0 & bits == bits
    }

    /// User present.
    pub fn up(self) -> bool {
        self.contains(Self::UP)
    }

    /// User verified.
    pub fn uv(self) -> bool {
        self.contains(Self::UV)
    }
}

impl fmt::Debug for AuthenticatorDataFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::UP, "UP"),
            (Self::UV, "UV"),
            (Self::BE, "BE"),
            (Self::BS, "BS"),
            (Self::AT, "AT"),
            (Self::ED, "ED"),
        ];
        let set: Vec<&str> = names
            .iter()
            .filter(|(bit, _)| self.contains(*bit))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "Flags(0x{:02X} {})", self.0, set.join("|"))
    }
}

/// Attested credential data (WebAuthn §6.5.1).
#[derive(Debug, Clone, PartialEq)]
pub struct AttestedCredentialData {
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// The credential ID (at most 65535 bytes).
    pub credential_id: Vec<u8>,
    /// The credential public key.
    pub credential_public_key: CoseKey,
}

/// Authenticator data (WebAuthn §6.1).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// Flags. [`AuthenticatorData::to_bytes`] sets AT and ED from the presence of
    /// `attested_credential_data` and `extensions`; the other bits are written as given.
    pub flags: AuthenticatorDataFlags,
    /// Signature counter.
    pub sign_count: u32,
    /// Present when AT is set.
    pub attested_credential_data: Option<AttestedCredentialData>,
    /// Present when ED is set.
    pub extensions: Option<ExtensionOutputs>,
}

impl AuthenticatorData {
    /// The byte form that authenticators sign. AT / ED follow the optional parts. A credential ID
    /// longer than 65535 bytes is truncated in its length field; callers keep IDs short
    /// (CTAP limits them to `maxCredentialIdLength`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut flags = self.flags.0 & !(AuthenticatorDataFlags::AT | AuthenticatorDataFlags::ED);
        if self.attested_credential_data.is_some() {
            flags |= AuthenticatorDataFlags::AT;
        }
        if self.extensions.is_some() {
            flags |= AuthenticatorDataFlags::ED;
        }
        let mut out = Vec::with_capacity(37 + 200);
        out.extend_from_slice(&self.rp_id_hash);
        out.push(flags);
        out.extend_from_slice(&self.sign_count.to_be_bytes());
        if let Some(attested) = &self.attested_credential_data {
            out.extend_from_slice(&attested.aaguid);
            let len = u16::try_from(attested.credential_id.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&attested.credential_id[..usize::from(len)]);
            out.extend_from_slice(&attested.credential_public_key.to_bytes());
        }
        if let Some(extensions) = &self.extensions {
            out.extend_from_slice(&cbor::to_vec(&extensions.to_value()));
        }
        out
    }

    /// Parses authenticator data; rejects short input (0x03), malformed CBOR and trailing bytes (0x12).
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < 37 {
            return Err(DecodeError::invalid_length(
                "authenticator data shorter than 37 bytes",
            ));
        }
        let mut rp_id_hash = [0u8; 32];
        rp_id_hash.copy_from_slice(&bytes[..32]);
        let flags = AuthenticatorDataFlags(bytes[32]);
        let sign_count = u32::from_be_bytes([bytes[33], bytes[34], bytes[35], bytes[36]]);
        let mut rest = &bytes[37..];
        let attested_credential_data = if flags.contains(AuthenticatorDataFlags::AT) {
            if rest.len() < 18 {
                return Err(DecodeError::invalid_length(
                    "attested credential data truncated",
                ));
            }
            let mut aaguid = [0u8; 16];
            aaguid.copy_from_slice(&rest[..16]);
            let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            rest = &rest[18..];
            if rest.len() < id_len {
                return Err(DecodeError::invalid_length("credential id truncated"));
            }
            let credential_id = rest[..id_len].to_vec();
            rest = &rest[id_len..];
            let (key, used) = cbor::from_slice_prefix(rest)?;
            rest = &rest[used..];
            Some(AttestedCredentialData {
                aaguid,
                credential_id,
                credential_public_key: CoseKey::from_value(key)?,
            })
        } else {
            None
        };
        let extensions = if flags.contains(AuthenticatorDataFlags::ED) {
            let (map, used) = cbor::from_slice_prefix(rest)?;
            rest = &rest[used..];
            Some(ExtensionOutputs::from_value(map)?)
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(DecodeError::invalid_cbor(
                "trailing bytes after authenticator data",
            ));
        }
        Ok(Self {
            rp_id_hash,
            flags,
            sign_count,
            attested_credential_data,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctap2::extensions::{CredProtect, HmacSecretOutput};

    #[test]
    fn minimal_golden_bytes() {
        let data = AuthenticatorData {
            rp_id_hash: [0xAA; 32],
            flags: AuthenticatorDataFlags(AuthenticatorDataFlags::UP | AuthenticatorDataFlags::UV),
            sign_count: 0x0102_0304,
            attested_credential_data: None,
            extensions: None,
        };
        let bytes = data.to_bytes();
        assert_eq!(bytes.len(), 37);
        assert_eq!(&bytes[32..], &[0x05, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(AuthenticatorData::parse(&bytes).unwrap(), data);
    }

    #[test]
    fn attested_and_extensions_round_trip() {
        let data = AuthenticatorData {
            rp_id_hash: [1; 32],
            flags: AuthenticatorDataFlags(0x41 | 0x80),
            sign_count: 7,
            attested_credential_data: Some(AttestedCredentialData {
                aaguid: [2; 16],
                credential_id: vec![3; 70],
                credential_public_key: CoseKey::P256 {
                    alg: -7,
                    x: [4; 32],
                    y: [5; 32],
                },
            }),
            extensions: Some(ExtensionOutputs {
                cred_protect: Some(CredProtect(2)),
                hmac_secret: Some(HmacSecretOutput::Created(true)),
                ..Default::default()
            }),
        };
        let bytes = data.to_bytes();
        assert_eq!(bytes[32], 0xC1);
        assert_eq!(&bytes[53..55], &[0x00, 70]);
        assert_eq!(AuthenticatorData::parse(&bytes).unwrap(), data);
        // truncations never panic and always fail
        for len in 0..bytes.len() {
            assert!(
                AuthenticatorData::parse(&bytes[..len]).is_err(),
                "len {len}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            AuthenticatorData::parse(&trailing).unwrap_err().status.0,
            0x12
        );
    }
}
