//! The store key: 32 random bytes in a 0600 file, and sealing (AES-256-GCM) of secrets at rest.
//!
//! Sealed blob layout: `0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)`. The
//! associated data binds a blob to its row (e.g. the token serial), so a sealed seed copied
//! into another row fails to open. The sealing key is derived from the file key with
//! HKDF-SHA-256 (info `keygate store seal v1`), so the file key can later key other things.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;
use sha2::Sha256;

use super::error::StoreError;
use crate::secret::Secret;

/// Length of the key file.
pub const KEY_LEN: usize = 32;
const BLOB_VERSION: u8 = 0x01;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The store key (32 bytes), held as a [`Secret`].
#[derive(Debug, Clone)]
pub struct StoreKey {
    seal_key: Secret<[u8; KEY_LEN]>,
}

impl StoreKey {
    /// Default key file name inside the state directory.
    pub const FILE_NAME: &'static str = "store.key";

    /// The default key path in a state directory.
    pub fn default_path(state_dir: &Path) -> PathBuf {
        state_dir.join(Self::FILE_NAME)
    }

    /// Builds a key from raw bytes (tests, or a key from another source).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"keygate store"), bytes);
        let mut seal_key = [0u8; KEY_LEN];
        // INVARIANT: 32 bytes is far below HKDF-SHA-256's 8160-byte limit, so expand cannot fail.
        if hkdf
            .expand(b"keygate store seal v1", &mut seal_key)
            .is_err()
        {
            seal_key = *bytes;
        }
        Self {
            seal_key: Secret::new(seal_key),
        }
    }

    /// Loads the key file at `path`, or creates it with 32 random bytes if it does not exist.
    ///
    /// Creation is atomic: a new 0600 temp file in the same directory, `sync_all`, a no-clobber
    /// `link` to the final name (two racing creators agree on one key), then the directory is
    /// fsynced. An existing file must be exactly 32 bytes and not readable by group or others.
    pub fn load_or_create(path: &Path) -> Result<Self, StoreError> {
        match Self::load(path) {
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            }
            other => return other,
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut bytes = Secret::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.expose_secret_mut())
            .map_err(|e| StoreError::Random(e.to_string()))?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| StoreError::Random(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("store.key"),
            u64::from_le_bytes(suffix)
        ));
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| StoreError::io(&tmp, e))?;
            file.write_all(bytes.expose_secret())
                .map_err(|e| StoreError::io(&tmp, e))?;
            file.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(StoreError::io(path, e)),
            }
        })();
        let _ = fs::remove_file(&tmp);
        let created = result?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(&dir, e))?;
        if created {
            Ok(Self::from_bytes(bytes.expose_secret()))
        } else {
            // Another process created it first: use theirs.
            Self::load(path)
        }
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let meta = file.metadata().map_err(|e| StoreError::io(path, e))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(StoreError::KeyFile {
                path: path.to_path_buf(),
                reason: format!(
                    "mode {:04o} lets others read it; it must be 0600",
                    mode & 0o7777
                ),
            });
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(StoreError::KeyFile {
                path: path.to_path_buf(),
                reason: format!("{} bytes, expected {KEY_LEN}", meta.len()),
            });
        }
        let mut bytes = Secret::new([0u8; KEY_LEN]);
        file.read_exact(bytes.expose_secret_mut())
            .map_err(|e| StoreError::io(path, e))?;
        Ok(Self::from_bytes(bytes.expose_secret()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.seal_key.expose_secret().into())
    }

    /// Encrypts `plaintext` bound to `aad`. A fresh random nonce per call.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| StoreError::Random(e.to_string()))?;
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Unseal {
                what: "value to seal (too long)".into(),
            })?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        blob.push(BLOB_VERSION);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(blob)
    }

    /// Decrypts a blob made by [`StoreKey::seal`] with the same `aad`. `what` names the value in errors.
    pub fn open_sealed(
        &self,
        blob: &[u8],
        aad: &[u8],
        what: &str,
    ) -> Result<Secret<Vec<u8>>, StoreError> {
        let fail = || StoreError::Unseal { what: what.into() };
        if blob.len() < 1 + NONCE_LEN + TAG_LEN || blob[0] != BLOB_VERSION {
            return Err(fail());
        }
        let (nonce, ciphertext) = blob[1..].split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
        self.cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Secret::new)
            .map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_aad_binding() {
        let key = StoreKey::from_bytes(&[7u8; 32]);
        let blob = key.seal(b"seed bytes", b"serial 1").unwrap();
        assert_eq!(blob.len(), 1 + 12 + 10 + 16);
        let opened = key.open_sealed(&blob, b"serial 1", "t").unwrap();
        assert_eq!(opened.expose_secret(), b"seed bytes");
        assert!(matches!(
            key.open_sealed(&blob, b"serial 2", "t"),
            Err(StoreError::Unseal { .. })
        ));
        let other = StoreKey::from_bytes(&[8u8; 32]);
        assert!(other.open_sealed(&blob, b"serial 1", "t").is_err());
        let mut flipped = blob.clone();
        flipped[20] ^= 1;
        assert!(key.open_sealed(&flipped, b"serial 1", "t").is_err());
        assert!(key.open_sealed(&blob[..10], b"serial 1", "t").is_err());
    }
}
