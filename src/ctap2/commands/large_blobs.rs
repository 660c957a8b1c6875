//! authenticatorLargeBlobs (0x0C), CTAP 2.1 §6.10, and the large-blob array format
//! (§6.10.3 serialized array with a 16-byte truncated SHA-256 trailer; §6.10.4 encrypted
//! entries: AES-256-GCM under the credential's largeBlobKey, DEFLATE-compressed plaintext).

use ciborium::Value;
use sha2::{Digest, Sha256};

use crate::ctap2::cbor::{self, MapBuilder, MapReader};
use crate::ctap2::error::{Ctap2Error, DecodeError};
use crate::ctap2::status::StatusCode;
use crate::secret::Secret;

/// Length of the truncated SHA-256 trailer of a serialized large-blob array.
pub const TRAILER_LEN: usize = 16;

/// The largest origSize [`LargeBlobEntry::open`] inflates to (1 MiB): a bound on what a hostile
/// entry can make us allocate. Real blobs are limited by maxSerializedLargeBlobArray (a few KiB).
pub const MAX_ORIG_SIZE: u64 = 1 << 20;

/// authenticatorLargeBlobs parameters (CTAP 2.1 §6.10.2). Exactly one of `get` / `set` is sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// 0x01 get: number of bytes to read.
    pub get: Option<u64>,
    /// 0x02 set: a fragment to write.
    pub set: Option<Vec<u8>>,
    /// 0x03 offset. Required.
    pub offset: u64,
    /// 0x04 length: total length of the array (only with `set` at offset 0).
    pub length: Option<u64>,
    /// 0x05 pinUvAuthParam (for `set`).
    pub pin_uv_auth_param: Option<Vec<u8>>,
    /// 0x06 pinUvAuthProtocol.
    pub pin_uv_auth_protocol: Option<u64>,
}

impl Request {
    /// A read of `get` bytes at `offset`.
    pub fn read(offset: u64, get: u64) -> Self {
        Self {
            get: Some(get),
            offset,
            ..Self::default()
        }
    }

    /// The message the pinUvAuthParam of a `set` authenticates (CTAP 2.1 §6.10.2):
    /// 32 × 0xFF || 0x0C 0x00 || uint32LE(offset) || SHA-256(set).
    pub fn set_auth_message(offset: u32, set: &[u8]) -> Vec<u8> {
        let mut message = vec![0xFF; 32];
        message.extend_from_slice(&[super::CMD_LARGE_BLOBS, 0x00]);
        message.extend_from_slice(&offset.to_le_bytes());
        message.extend_from_slice(&Sha256::digest(set));
        message
    }

    /// The parameter map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .opt(0x01, self.get)
            .opt(0x02, self.set.as_deref().map(cbor::bytes))
            .put(0x03, self.offset)
            .opt(0x04, self.length)
            .opt(0x05, self.pin_uv_auth_param.as_deref().map(cbor::bytes))
            .opt(0x06, self.pin_uv_auth_protocol)
            .build()
    }

    /// Command byte + canonical CBOR.
    pub fn encode(&self) -> Vec<u8> {
        super::encode_with_cmd(super::CMD_LARGE_BLOBS, &self.to_value())
    }

    /// Decodes the parameters (after the command byte).
    pub fn decode(params: &[u8]) -> Result<Self, StatusCode> {
        let mut map = MapReader::from_request(params, "largeBlobs")?;
        Ok(Self {
            get: map.opt_as(0x01, "get", cbor::into_u64)?,
            set: map.opt_as(0x02, "set", cbor::into_bytes)?,
            offset: map.req_as(0x03, "offset", cbor::into_u64)?,
            length: map.opt_as(0x04, "length", cbor::into_u64)?,
            pin_uv_auth_param: map.opt_as(0x05, "pinUvAuthParam", cbor::into_bytes)?,
            pin_uv_auth_protocol: map.opt_as(0x06, "pinUvAuthProtocol", cbor::into_u64)?,
        })
    }
}

/// authenticatorLargeBlobs response: `config` for a get, nothing for a set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// 0x01 config: the fragment read.
    pub config: Option<Vec<u8>>,
}

impl Response {
    /// Canonical CBOR (no status byte); empty for a set.
    pub fn encode(&self) -> Vec<u8> {
        match &self.config {
            Some(config) => cbor::to_vec(&MapBuilder::new().put(0x01, cbor::bytes(config)).build()),
            None => Vec::new(),
        }
    }

    /// Decodes the body (no status byte).
    pub fn decode(body: &[u8]) -> Result<Self, Ctap2Error> {
        if body.is_empty() {
            return Ok(Self::default());
        }
        let mut map = MapReader::from_bytes(body, "largeBlobs response")?;
        Ok(Self {
            config: map.opt_as(0x01, "config", cbor::into_bytes)?,
        })
    }
}

super::command!(Request, Response, super::CMD_LARGE_BLOBS);

/// Serializes a large-blob array: canonical CBOR array || LEFT(SHA-256(array), 16) (§6.10.3).
pub fn encode_array(elements: &[Value]) -> Vec<u8> {
    let mut out = cbor::to_vec(&Value::Array(elements.to_vec()));
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest[..TRAILER_LEN]);
    out
}

/// The initial (empty) serialized array: 0x80 || LEFT(SHA-256(0x80), 16).
pub fn empty_array() -> Vec<u8> {
    encode_array(&[])
}

/// Checks the trailer of a serialized large-blob array and returns its elements.
pub fn decode_array(serialized: &[u8]) -> Result<Vec<Value>, Ctap2Error> {
    if serialized.len() < 1 + TRAILER_LEN {
        return Err(Ctap2Error::LargeBlob("serialized array too short"));
    }
    let (array, trailer) = serialized.split_at(serialized.len() - TRAILER_LEN);
    let digest = Sha256::digest(array);
    if !crate::secret::ct_eq(&digest[..TRAILER_LEN], trailer) {
        return Err(Ctap2Error::LargeBlob("array checksum mismatch"));
    }
    Ok(cbor::into_vec(
        cbor::from_slice(array)?,
        "large-blob array",
    )?)
}

/// One encrypted large-blob entry (§6.10.4): `{1: ciphertext, 2: nonce, 3: origSize}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeBlobEntry {
    /// 0x01 ciphertext: AES-256-GCM of the DEFLATE-compressed blob, tag included.
    pub ciphertext: Vec<u8>,
    /// 0x02 nonce (12 bytes).
    pub nonce: [u8; 12],
    /// 0x03 origSize: length of the uncompressed blob.
    pub orig_size: u64,
}

fn associated_data(orig_size: u64) -> Vec<u8> {
    let mut aad = b"blob".to_vec();
    aad.extend_from_slice(&orig_size.to_le_bytes());
    aad
}

impl LargeBlobEntry {
    /// Compresses (raw DEFLATE, RFC 1951) and encrypts `blob` under `large_blob_key`
    /// with the caller's random `nonce`.
    pub fn seal(
        large_blob_key: &[u8; 32],
        blob: &[u8],
        nonce: [u8; 12],
    ) -> Result<Self, Ctap2Error> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let compressed = miniz_oxide::deflate::compress_to_vec(blob, 6);
        let orig_size = blob.len() as u64;
        let cipher = aes_gcm::Aes256Gcm::new(large_blob_key.into());
        let aad = associated_data(orig_size);
        let ciphertext = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &compressed,
                    aad: &aad,
                },
            )
            .map_err(|_| Ctap2Error::LargeBlob("encryption failed"))?;
        Ok(Self {
            ciphertext,
            nonce,
            orig_size,
        })
    }

    /// Decrypts and decompresses the entry; fails when the key does not fit (wrong credential),
    /// the data was altered, the decompressed size differs from `orig_size`, or `orig_size` is
    /// above [`MAX_ORIG_SIZE`].
    pub fn open(&self, large_blob_key: &[u8; 32]) -> Result<Secret<Vec<u8>>, Ctap2Error> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        let cipher = aes_gcm::Aes256Gcm::new(large_blob_key.into());
        let aad = associated_data(self.orig_size);
        let compressed = Secret::new(
            cipher
                .decrypt(
                    &self.nonce.into(),
                    Payload {
                        msg: &self.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| Ctap2Error::LargeBlob("entry does not decrypt with this key"))?,
        );
        if self.orig_size > MAX_ORIG_SIZE {
            return Err(Ctap2Error::LargeBlob("origSize above MAX_ORIG_SIZE"));
        }
        let limit = usize::try_from(self.orig_size)
            .map_err(|_| Ctap2Error::LargeBlob("origSize too large"))?;
        let blob =
            miniz_oxide::inflate::decompress_to_vec_with_limit(compressed.expose_secret(), limit)
                .map_err(|_| Ctap2Error::LargeBlob("entry does not decompress to origSize"))?;
        if blob.len() != limit {
            return Err(Ctap2Error::LargeBlob(
                "entry does not decompress to origSize",
            ));
        }
        Ok(Secret::new(blob))
    }

    /// The entry map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(0x01, cbor::bytes(&self.ciphertext))
            .put(0x02, cbor::bytes(&self.nonce))
            .put(0x03, self.orig_size)
            .build()
    }

    /// Decodes an entry map; other elements of the array (not for us) fail here.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "large-blob entry")?;
        Ok(Self {
            ciphertext: map.req_as(0x01, "ciphertext", cbor::into_bytes)?,
            nonce: map.req_as(0x02, "nonce", cbor::into_array)?,
            orig_size: map.req_as(0x03, "origSize", cbor::into_u64)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_array_is_the_spec_initial_value() {
        // CTAP 2.1 §6.10.3: the initial serialized large-blob array.
        let want = hex::decode("8076be8b528d0075f7aae98d6fa57a6d3c").unwrap();
        assert_eq!(empty_array(), want);
        assert!(decode_array(&want).unwrap().is_empty());
        let mut bad = want.clone();
        bad[5] ^= 1;
        assert!(decode_array(&bad).is_err());
    }

    #[test]
    fn entry_seal_open_round_trip() {
        let key = [9u8; 32];
        let blob = b"hello large blob hello large blob".repeat(4);
        let entry = LargeBlobEntry::seal(&key, &blob, [1; 12]).unwrap();
        assert_eq!(entry.orig_size, blob.len() as u64);
        let array = encode_array(&[entry.to_value()]);
        let elements = decode_array(&array).unwrap();
        let back = LargeBlobEntry::from_value(elements[0].clone()).unwrap();
        assert_eq!(back.open(&key).unwrap().expose_secret(), &blob);
        assert!(back.open(&[8u8; 32]).is_err());
        let mut tampered = back.clone();
        tampered.orig_size += 1;
        assert!(tampered.open(&key).is_err());
    }

    #[test]
    fn set_auth_message_layout() {
        let message = Request::set_auth_message(0x0102_0304, b"abc");
        assert_eq!(&message[..32], &[0xFF; 32]);
        assert_eq!(&message[32..38], &[0x0C, 0x00, 0x04, 0x03, 0x02, 0x01]);
        assert_eq!(
            hex::encode(&message[38..]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
