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
pub fn new_private_key(rng: &mut dyn RandomSource) -> Result<Secret<[u8; 32]>, AuthnError> {
    for _ in 0..16 {
        let bytes = Secret::new(random_array::<32>(rng)?);
        if SigningKey::from_slice(bytes.expose_secret()).is_ok() {
            return Ok(bytes);
        }
    }
    Err(AuthnError::Random)
}

/// The ECDSA signing key of a stored scalar.
pub fn signing_key(private_key: &[u8]) -> Result<SigningKey, AuthnError> {
    SigningKey::from_slice(private_key)
        .map_err(|_| AuthnError::BadCredential("private key is not a P-256 scalar".into()))
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
