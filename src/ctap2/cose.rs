//! COSE keys as CTAP2 carries them (RFC 9052 §7, RFC 9053 §7.1; CTAP 2.1 §6.5.6 for the
//! key-agreement key, WebAuthn §6.5.1.1 for credential public keys).

use ciborium::Value;
use p256::elliptic_curve::sec1::ToSec1Point;

use super::cbor::{self, MapReader};
use super::error::{Ctap2Error, DecodeError};

/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const ES256: i64 = -7;
/// COSE algorithm EdDSA.
pub const EDDSA: i64 = -8;
/// COSE algorithm ECDH-ES + HKDF-256, the alg of the CTAP PIN key-agreement key (CTAP 2.1 §6.5.6).
pub const ECDH_ES_HKDF_256: i64 = -25;
/// COSE algorithm RS256.
pub const RS256: i64 = -257;
/// COSE key type OKP.
pub const KTY_OKP: i64 = 1;
/// COSE key type EC2.
pub const KTY_EC2: i64 = 2;
/// COSE curve P-256.
pub const CRV_P256: i64 = 1;
/// COSE curve Ed25519.
pub const CRV_ED25519: i64 = 6;

/// A COSE_Key public key.
#[derive(Debug, Clone, PartialEq)]
pub enum CoseKey {
    /// kty 2 (EC2), crv 1 (P-256): `{1: 2, 3: alg, -1: 1, -2: x, -3: y}`. `alg` is -7 (ES256)
    /// for credential keys and -25 (ECDH-ES+HKDF-256) for the PIN key-agreement key.
    P256 {
        /// COSE algorithm.
        alg: i64,
        /// Affine x coordinate, big-endian.
        x: [u8; 32],
        /// Affine y coordinate, big-endian.
        y: [u8; 32],
    },
    /// kty 1 (OKP), e.g. Ed25519: `{1: 1, 3: alg, -1: crv, -2: x}`.
    Okp {
        /// COSE algorithm.
        alg: i64,
        /// COSE curve.
        crv: i64,
        /// Public key bytes.
        x: Vec<u8>,
    },
    /// Any other COSE key, kept as its map entries (written back in canonical order).
    Other(Vec<(Value, Value)>),
}

impl CoseKey {
    /// An ES256 credential public key from a P-256 point.
    pub fn es256(public_key: &p256::PublicKey) -> Self {
        Self::from_p256(public_key, ES256)
    }

    /// A PIN key-agreement key (alg -25) from a P-256 point.
    pub fn key_agreement(public_key: &p256::PublicKey) -> Self {
        Self::from_p256(public_key, ECDH_ES_HKDF_256)
    }

    /// A P-256 COSE key with the given alg.
    pub fn from_p256(public_key: &p256::PublicKey, alg: i64) -> Self {
        let point = public_key.to_sec1_point(false);
        let bytes = point.as_bytes();
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        // An uncompressed SEC1 point is 0x04 || x || y (65 bytes).
        if bytes.len() == 65 {
            x.copy_from_slice(&bytes[1..33]);
            y.copy_from_slice(&bytes[33..65]);
        }
        Self::P256 { alg, x, y }
    }

    /// The P-256 point of an EC2 P-256 key; the point must be on the curve.
    pub fn to_p256(&self) -> Result<p256::PublicKey, Ctap2Error> {
        match self {
            Self::P256 { x, y, .. } => {
                let mut sec1 = [0u8; 65];
                sec1[0] = 0x04;
                sec1[1..33].copy_from_slice(x);
                sec1[33..].copy_from_slice(y);
                p256::PublicKey::from_sec1_bytes(&sec1)
                    .map_err(|_| Ctap2Error::InvalidPublicKey("point not on P-256"))
            }
            _ => Err(Ctap2Error::InvalidPublicKey("not an EC2 P-256 key")),
        }
    }

    /// The COSE algorithm, when the key names one.
    pub fn alg(&self) -> Option<i64> {
        match self {
            Self::P256 { alg, .. } | Self::Okp { alg, .. } => Some(*alg),
            Self::Other(entries) => entries
                .iter()
                .find(|(key, _)| *key == Value::from(3))
                .and_then(|(_, value)| value.as_integer())
                .and_then(|alg| i64::try_from(alg).ok()),
        }
    }

    /// The COSE_Key map.
    pub fn to_value(&self) -> Value {
        match self {
            Self::P256 { alg, x, y } => Value::Map(vec![
                (Value::from(1), Value::from(KTY_EC2)),
                (Value::from(3), Value::from(*alg)),
                (Value::from(-1), Value::from(CRV_P256)),
                (Value::from(-2), cbor::bytes(x)),
                (Value::from(-3), cbor::bytes(y)),
            ]),
            Self::Okp { alg, crv, x } => Value::Map(vec![
                (Value::from(1), Value::from(KTY_OKP)),
                (Value::from(3), Value::from(*alg)),
                (Value::from(-1), Value::from(*crv)),
                (Value::from(-2), cbor::bytes(x)),
            ]),
            Self::Other(entries) => Value::Map(entries.clone()),
        }
    }

    /// Canonical CBOR bytes of the COSE_Key map.
    pub fn to_bytes(&self) -> Vec<u8> {
        cbor::to_vec(&self.to_value())
    }

    /// Decodes a COSE_Key map. A non-map is 0x11; a map without `kty` is 0x14. EC2 P-256 and OKP keys
    /// with the expected members become [`CoseKey::P256`] / [`CoseKey::Okp`], anything else
    /// [`CoseKey::Other`].
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let entries = cbor::into_map(value, "COSE_Key")?;
        let mut map = MapReader::new(Value::Map(entries.clone()), "COSE_Key")?;
        let kty = map.req_as(1, "COSE_Key kty", cbor::into_i64)?;
        let alg = map.opt_as(3, "COSE_Key alg", cbor::into_i64)?;
        let crv = map.opt_as(-1, "COSE_Key crv", cbor::into_i64)?;
        let x = map.opt(-2);
        let y = map.opt(-3);
        let only_known = map.into_rest().is_empty();
        match (kty, alg, crv, x, y) {
            (KTY_EC2, Some(alg), Some(CRV_P256), Some(Value::Bytes(x)), Some(Value::Bytes(y)))
                if only_known =>
            {
                match (
                    <[u8; 32]>::try_from(x.as_slice()),
                    <[u8; 32]>::try_from(y.as_slice()),
                ) {
                    (Ok(x), Ok(y)) => Ok(Self::P256 { alg, x, y }),
                    _ => Err(DecodeError::invalid_length("COSE_Key coordinates")),
                }
            }
            (KTY_OKP, Some(alg), Some(crv), Some(Value::Bytes(x)), None) if only_known => {
                Ok(Self::Okp { alg, crv, x })
            }
            _ => Ok(Self::Other(entries)),
        }
    }

    /// Decodes the canonical bytes of a COSE_Key map.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_value(cbor::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_key_golden_bytes() {
        let key = CoseKey::P256 {
            alg: ES256,
            x: [0x11; 32],
            y: [0x22; 32],
        };
        let bytes = key.to_bytes();
        let mut want = vec![0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        want.extend_from_slice(&[0x11; 32]);
        want.extend_from_slice(&[0x22, 0x58, 0x20]);
        want.extend_from_slice(&[0x22; 32]);
        assert_eq!(bytes, want);
        assert_eq!(CoseKey::from_bytes(&bytes).unwrap(), key);
        assert!(key.to_p256().is_err(), "0x11.. is not on the curve");
    }

    #[test]
    fn p256_round_trip_through_point() {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let key = CoseKey::key_agreement(&secret.public_key());
        assert_eq!(key.alg(), Some(ECDH_ES_HKDF_256));
        assert_eq!(key.to_p256().unwrap(), secret.public_key());
        let other = CoseKey::from_bytes(&[0xA2, 0x01, 0x03, 0x03, 0x39, 0x01, 0x00]).unwrap();
        assert_eq!(other.alg(), Some(RS256));
        assert!(matches!(other, CoseKey::Other(_)));
        assert_eq!(
            CoseKey::from_bytes(&[0xA1, 0x03, 0x26])
                .unwrap_err()
                .status
                .0,
            0x14
        );
        assert_eq!(CoseKey::from_bytes(&[0x01]).unwrap_err().status.0, 0x11);
    }
}
