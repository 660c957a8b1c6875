//! Key material helpers: randomness, ES256 keys, HMAC/HKDF, and serde for secret bytes.

use hmac::{KeyInit, Mac};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use sha2::{Digest, Sha256};

use crate::authenticator::AuthnError;
use crate::secret::Secret;

/// A source of random bytes (injected so tests can be deterministic).
pub trait RandomSource: Send + std::fmt::Debug {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), AuthnError>;
}

/// The operating system's random source (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), AuthnError> {
        getrandom::fill(buf).map_err(|_| AuthnError::Random)
    }
}

/// A deterministic source for tests: SHA-256 in counter mode over a seed. Not for real keys.
#[derive(Debug, Clone)]
pub struct SeededRandomForTests {
    seed: [u8; 32],
    counter: u64,
}

impl SeededRandomForTests {
    /// A source determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed: Sha256::digest(seed.to_be_bytes()).into(),
            counter: 0,
        }
    }
}

impl RandomSource for SeededRandomForTests {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), AuthnError> {
        for chunk in buf.chunks_mut(32) {
            let mut h = Sha256::new();
            h.update(self.seed);
            h.update(self.counter.to_be_bytes());
            self.counter += 1;
            let block = h.finalize();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

/// Random bytes as an array.
pub fn random_array<const N: usize>(rng: &mut dyn RandomSource) -> Result<[u8; N], AuthnError> {
    let mut out = [0u8; N];
    rng.fill(&mut out)?;
    Ok(out)
}

/// A new P-256 private scalar (retries the negligible out-of-range case).
///
/// Checked as a scalar only ([`secret_key`]): the public key is not computed here.
pub fn new_private_key(rng: &mut dyn RandomSource) -> Result<Secret<[u8; 32]>, AuthnError> {
    for _ in 0..16 {
        let bytes = Secret::new(random_array::<32>(rng)?);
        if secret_key(bytes.expose_secret()).is_ok() {
            return Ok(bytes);
        }
    }
    Err(AuthnError::Random)
}

/// The ECDSA signing key of a stored scalar. This computes the public key (a scalar
/// multiplication); to sign, [`secret_key`] and [`sign_der_parts`] do without it.
pub fn signing_key(private_key: &[u8]) -> Result<SigningKey, AuthnError> {
    SigningKey::from_slice(private_key).map_err(|_| not_a_scalar())
}

fn not_a_scalar() -> AuthnError {
    AuthnError::BadCredential("private key is not a P-256 scalar".into())
}

/// A stored scalar as a P-256 secret key (zeroized on drop), checked (non-zero, below the group
/// order) exactly as [`signing_key`] checks it, but without computing the public key.
pub fn secret_key(private_key: &[u8]) -> Result<p256::SecretKey, AuthnError> {
    p256::SecretKey::from_slice(private_key).map_err(|_| not_a_scalar())
}

/// ES256 signature over the concatenation of `parts`, DER-encoded: the same bytes as
/// [`sign_der`] with the [`signing_key`] of `key` over `parts.concat()` (SHA-256, RFC 6979
/// nonce, FIPS 186-4 §6.4), without the public-key multiplication [`SigningKey`] does when built
/// and without copying the message.
pub fn sign_der_parts(key: &p256::SecretKey, parts: &[&[u8]]) -> Vec<u8> {
    use zeroize::Zeroize;
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part);
    }
    let prehash = digest.finalize();
    let mut scalar = key.to_nonzero_scalar();
    let (signature, _) =
        ecdsa::hazmat::sign_prehashed_rfc6979::<p256::NistP256, Sha256>(&scalar, &prehash, &[]);
    scalar.zeroize();
    signature.to_der().as_bytes().to_vec()
}

/// Uncompressed public point (x, y) of a signing key.
pub fn public_xy(key: &SigningKey) -> ([u8; 32], [u8; 32]) {
    let point = key.verifying_key().to_sec1_bytes();
    let mut x = [0u8; 32];
    let mut y = [0u8; 32];
    if point.len() == 65 {
        x.copy_from_slice(&point[1..33]);
        y.copy_from_slice(&point[33..65]);
    }
    (x, y)
}

/// The 65-byte uncompressed SEC1 public key.
pub fn public_sec1(key: &SigningKey) -> Vec<u8> {
    key.verifying_key().to_sec1_bytes().to_vec()
}

/// ES256 signature over `message` (SHA-256, RFC 6979 nonce), DER-encoded as WebAuthn wants.
pub fn sign_der(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let sig: Signature = key.sign(message);
    sig.to_der().as_bytes().to_vec()
}

/// HMAC-SHA-256 over the concatenation of `parts`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut mac) = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be reached.
        return [0u8; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HKDF-SHA-256 with a 32-byte output.
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> Secret<[u8; 32]> {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    let mut okm = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA-256 output length.
    let _ = hk.expand(info, &mut okm);
    Secret::new(okm)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Serde for byte fields: CBOR byte strings, also read back from sequences.
pub(crate) mod bytes_serde {
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    struct BytesVisitor;

    impl<'de> de::Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    /// The same for `Secret<Vec<u8>>`.
    pub mod secret {
        use serde::{Deserializer, Serializer};

        use crate::secret::Secret;

        pub fn serialize<S: Serializer>(bytes: &Secret<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(bytes.expose_secret())
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret<Vec<u8>>, D::Error> {
            super::deserialize(d).map(Secret::new)
        }
    }

    /// The same for `Option<Secret<Vec<u8>>>`.
    pub mod opt_secret {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        use crate::secret::Secret;

        #[derive(Serialize, Deserialize)]
        struct Wrap(#[serde(with = "super")] Vec<u8>);

        pub fn serialize<S: Serializer>(
            bytes: &Option<Secret<Vec<u8>>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            bytes
                .as_ref()
                .map(|b| Wrap(b.expose_secret().clone()))
                .serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Secret<Vec<u8>>>, D::Error> {
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| Secret::new(w.0)))
        }
    }

    /// The same for `Option<Vec<u8>>`.
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Serialize, Deserialize)]
        struct Wrap(#[serde(with = "super")] Vec<u8>);

        pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            bytes.as_ref().map(|b| Wrap(b.clone())).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{VerifyingKey, signature::Verifier};

    #[test]
    fn sign_der_parts_is_sign_der_over_the_concatenation() {
        let mut rng = SeededRandomForTests::new(11);
        for round in 0..8u8 {
            let scalar = new_private_key(&mut rng).unwrap();
            let parts: [&[u8]; 3] = [b"authenticator data", &[round; 32], b""];
            let fast = sign_der_parts(&secret_key(scalar.expose_secret()).unwrap(), &parts);
            let reference = signing_key(scalar.expose_secret()).unwrap();
            assert_eq!(fast, sign_der(&reference, &parts.concat()));
            let signature = Signature::from_der(&fast).unwrap();
            VerifyingKey::from(&reference)
                .verify(&parts.concat(), &signature)
                .unwrap();
        }
    }

    #[test]
    fn secret_key_checks_the_scalar_as_signing_key_does() {
        let order = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51,
        ];
        let mut below = order;
        below[31] -= 1;
        for bytes in [[0u8; 32], order, [0xff; 32], below, [1u8; 32]] {
            assert_eq!(
                secret_key(&bytes).is_ok(),
                signing_key(&bytes).is_ok(),
                "{bytes:02x?}"
            );
        }
        assert!(secret_key(&below).is_ok());
        assert!(secret_key(&order).is_err());
        assert!(secret_key(&[0u8; 32]).is_err());
    }
}
