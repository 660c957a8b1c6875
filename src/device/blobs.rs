//! Typed authenticatorLargeBlobs helpers of the host driver (CTAP 2.1 §6.10): the whole
//! serialized large-blob array read and written in fragments of maxFragmentLength
//! (maxMsgSize − 64), its 16-byte truncated SHA-256 trailer checked on read, and per-credential
//! entries (§6.10.4) sealed under a credential's largeBlobKey.
//!
//! Writing needs a pinUvAuthToken with the `lbw` permission on a key with a PIN set; each
//! fragment's pinUvAuthParam covers `32 × 0xFF ‖ 0x0C 0x00 ‖ uint32LE(offset) ‖
//! SHA-256(fragment)` ([`large_blobs::Request::set_auth_message`]).

use ciborium::Value;
use tokio_util::sync::CancellationToken;

use super::{Device, DeviceError, PinUvAuthToken};
use crate::ctap2::Ctap2Error;
use crate::ctap2::commands::large_blobs::{self, LargeBlobEntry};
use crate::hid::ReportPipe;
use crate::secret::Secret;

/// maxMsgSize when GetInfo reports none (CTAP 2.1 §6.4: the CTAPHID default of 1024).
const DEFAULT_MAX_MSG_SIZE: u64 = 1024;

/// The longest array read when the key reports no maxSerializedLargeBlobArray: a bound on what
/// a device that keeps sending full fragments can make us buffer.
const READ_LIMIT: u64 = 1 << 20;

impl<P: ReportPipe> Device<P> {
    /// Whether the key supports authenticatorLargeBlobs (`largeBlobs` option, §6.4).
    pub fn supports_large_blobs(&self) -> bool {
        self.info
            .as_ref()
            .is_some_and(|info| info.option_value("largeBlobs") == Some(true))
    }

    /// maxFragmentLength: maxMsgSize − 64 (§6.10.2), at least 1.
    pub fn large_blob_fragment_length(&self) -> u64 {
        let max_msg_size = self
            .info
            .as_ref()
            .and_then(|info| info.max_msg_size)
            .unwrap_or(DEFAULT_MAX_MSG_SIZE);
        max_msg_size.saturating_sub(64).max(1)
    }

    /// The serialized large-blob array as stored (array ‖ trailer), read in fragments of
    /// maxFragmentLength until a shorter one arrives (§6.10.2 "reading"). Not checked.
    pub async fn read_large_blob_array_raw(&mut self) -> Result<Vec<u8>, DeviceError> {
        if !self.supports_large_blobs() {
            return Err(DeviceError::Unsupported("authenticatorLargeBlobs"));
        }
        let fragment = self.large_blob_fragment_length();
        let limit = self
            .info
            .as_ref()
            .and_then(|info| info.max_serialized_large_blob_array)
            .unwrap_or(READ_LIMIT);
        let mut serialized = Vec::new();
        loop {
            let request = large_blobs::Request::read(serialized.len() as u64, fragment);
            let reply = self
                .command(&request, &CancellationToken::new(), &mut |_| {})
                .await?;
            let config = reply
                .config
                .ok_or(Ctap2Error::LargeBlob("get reply without config"))?;
            let got = config.len() as u64;
            if got > fragment {
                return Err(Ctap2Error::LargeBlob("fragment longer than asked for").into());
            }
            serialized.extend_from_slice(&config);
            if got < fragment {
                return Ok(serialized);
            }
            if serialized.len() as u64 > limit {
                return Err(
                    Ctap2Error::LargeBlob("array longer than maxSerializedLargeBlobArray").into(),
                );
            }
        }
    }

    /// The elements of the large-blob array; an array whose trailer is not
    /// LEFT(SHA-256(array), 16) is [`Ctap2Error::LargeBlob`] (§6.10.3).
    pub async fn read_large_blob_array(&mut self) -> Result<Vec<Value>, DeviceError> {
        let serialized = self.read_large_blob_array_raw().await?;
        Ok(large_blobs::decode_array(&serialized)?)
    }

    /// Replaces the whole large-blob array with `elements` (§6.10.2 "writing"): the first
    /// fragment carries `length`, every fragment a pinUvAuthParam when `token` is given.
    /// An array above maxSerializedLargeBlobArray is refused by the key
    /// (CTAP2_ERR_LARGE_BLOB_STORAGE_FULL).
    pub async fn write_large_blob_array(
        &mut self,
        elements: &[Value],
        token: Option<&PinUvAuthToken>,
    ) -> Result<(), DeviceError> {
        if !self.supports_large_blobs() {
            return Err(DeviceError::Unsupported("authenticatorLargeBlobs"));
        }
        let serialized = large_blobs::encode_array(elements);
        let fragment = usize::try_from(self.large_blob_fragment_length()).unwrap_or(usize::MAX);
        let mut offset = 0usize;
        for set in serialized.chunks(fragment) {
            let offset32 = u32::try_from(offset)
                .map_err(|_| Ctap2Error::LargeBlob("array longer than 4 GiB"))?;
            let mut request = large_blobs::Request {
                set: Some(set.to_vec()),
                offset: offset as u64,
                length: (offset == 0).then_some(serialized.len() as u64),
                ..large_blobs::Request::default()
            };
            if let Some(token) = token {
                let message = large_blobs::Request::set_auth_message(offset32, set);
                request.pin_uv_auth_param = Some(token.authenticate(&message));
                request.pin_uv_auth_protocol = Some(token.protocol().version());
            }
            self.command(&request, &CancellationToken::new(), &mut |_| {})
                .await?;
            offset += set.len();
        }
        Ok(())
    }

    /// The blob stored for the credential whose largeBlobKey is `key`: the first entry of the
    /// array that decrypts under it (§6.10.4), or `None`.
    pub async fn large_blob(
        &mut self,
        key: &[u8; 32],
    ) -> Result<Option<Secret<Vec<u8>>>, DeviceError> {
        Ok(self
            .read_large_blob_array()
            .await?
            .into_iter()
            .filter_map(|element| LargeBlobEntry::from_value(element).ok())
            .find_map(|entry| entry.open(key).ok()))
    }

    /// Stores `blob` for the credential whose largeBlobKey is `key` (`None` deletes it):
    /// entries of that credential are dropped, the others kept, and the new entry appended.
    /// An array with a bad trailer is treated as the initial empty one (§6.10.3).
    pub async fn put_large_blob(
        &mut self,
        key: &[u8; 32],
        blob: Option<&[u8]>,
        token: Option<&PinUvAuthToken>,
    ) -> Result<(), DeviceError> {
        let serialized = self.read_large_blob_array_raw().await?;
        let elements = large_blobs::decode_array(&serialized).unwrap_or_default();
        let mut kept: Vec<Value> = elements
            .into_iter()
            .filter(|element| {
                !LargeBlobEntry::from_value(element.clone())
                    .is_ok_and(|entry| entry.open(key).is_ok())
            })
            .collect();
        if let Some(blob) = blob {
            let mut nonce = [0u8; 12];
            getrandom::fill(&mut nonce).map_err(|_| DeviceError::Random)?;
            kept.push(LargeBlobEntry::seal(key, blob, nonce)?.to_value());
        }
        self.write_large_blob_array(&kept, token).await
    }
}
