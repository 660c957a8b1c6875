//! Where a software key keeps its state: in memory, or sealed with a caller-given key in a file,
//! or in a caller-given store (keygated's persistent virtual keys implement [`CredentialVault`]
//! over a database row: `service::virtual_restore::StoreVault`).
//!
//! The state is one opaque blob (the serialized `SoftKeyState`); a vault only keeps it. The key
//! calls [`CredentialVault::store`] after every change of its persistent state and before it
//! answers the host; an error there fails the command (CTAP1_ERR_OTHER), so a vault that
//! cannot write never loses an update silently.
//! The file vault seals with AES-256-GCM (`"KGSK1" || nonce(12) || ciphertext+tag`, AAD = the
//! magic) and writes atomically: a 0600 temp file, `sync_all`, `rename`, then fsync of the directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::authenticator::AuthnError;
use crate::secret::Secret;

const MAGIC: &[u8; 5] = b"KGSK1";

/// Keeps a software key's serialized state.
pub trait CredentialVault: Send + std::fmt::Debug {
    /// The last stored state, if any.
    fn load(&mut self) -> Result<Option<Secret<Vec<u8>>>, AuthnError>;
    /// Replaces the stored state; durable when this returns.
    fn store(&mut self, state: &[u8]) -> Result<(), AuthnError>;

    /// Whether `store` only touches memory (no I/O), so a request may run on an async task.
    fn in_memory(&self) -> bool {
        false
    }
}

/// State held only in memory (lost at exit).
#[derive(Debug, Default)]
pub struct MemoryVault {
    state: Option<Secret<Vec<u8>>>,
    writes: u64,
}

impl MemoryVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of stores so far (tests).
    pub fn writes(&self) -> u64 {
        self.writes
    }
}

impl CredentialVault for MemoryVault {
    fn load(&mut self) -> Result<Option<Secret<Vec<u8>>>, AuthnError> {
        Ok(self.state.clone())
    }

    fn store(&mut self, state: &[u8]) -> Result<(), AuthnError> {
        self.state = Some(Secret::new(state.to_vec()));
        self.writes += 1;
        Ok(())
    }

    fn in_memory(&self) -> bool {
        true
    }
}

/// State sealed under a caller-provided 32-byte key in one file.
#[derive(Debug)]
pub struct FileVault {
    path: PathBuf,
    key: Secret<[u8; 32]>,
}

impl FileVault {
    /// A vault at `path` sealed with `key` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>, key: Secret<[u8; 32]>) -> Self {
        Self {
            path: path.into(),
            key,
        }
    }

    fn io(&self, source: std::io::Error) -> AuthnError {
        AuthnError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn cipher(&self) -> Result<Aes256Gcm, AuthnError> {
        Aes256Gcm::new_from_slice(self.key.expose_secret()).map_err(|_| AuthnError::Unseal)
    }
}

/// Writes `bytes` to `path` atomically: 0600 temp file in the same directory, `sync_all`,
/// `rename`, fsync of the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).map_err(|_| std::io::Error::other("random source failed"))?;
    let tmp = dir.join(format!(
        ".{file_name}.{}.tmp",
        data_encoding::HEXLOWER.encode(&suffix)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl CredentialVault for FileVault {
    fn load(&mut self) -> Result<Option<Secret<Vec<u8>>>, AuthnError> {
        let sealed = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        if sealed.len() < MAGIC.len() + 12 + 16 || &sealed[..MAGIC.len()] != MAGIC {
            return Err(AuthnError::Unseal);
        }
        let nonce_bytes: [u8; 12] = sealed[5..17].try_into().map_err(|_| AuthnError::Unseal)?;
        let plain = self
            .cipher()?
            .decrypt(
                &Nonce::from(nonce_bytes),
                Payload {
                    msg: &sealed[17..],
                    aad: MAGIC,
                },
            )
            .map_err(|_| AuthnError::Unseal)?;
        Ok(Some(Secret::new(plain)))
    }

    fn store(&mut self, state: &[u8]) -> Result<(), AuthnError> {
        let mut nonce_bytes = [0u8; 12];
        getrandom::fill(&mut nonce_bytes).map_err(|_| AuthnError::Random)?;
        let ct = self
            .cipher()?
            .encrypt(
                &Nonce::from(nonce_bytes),
                Payload {
                    msg: state,
                    aad: MAGIC,
                },
            )
            .map_err(|_| AuthnError::Unseal)?;
        let mut out = Vec::with_capacity(17 + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        atomic_write(&self.path, &out).map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_vault_seals_round_trips_and_rejects_wrong_key_or_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.state");
        let mut vault = FileVault::new(&path, Secret::new([9u8; 32]));
        assert!(vault.load().unwrap().is_none());
        vault.store(b"secret state one").unwrap();
        vault.store(b"secret state two").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            vault.load().unwrap().unwrap().expose_secret(),
            b"secret state two"
        );
        // No temp files left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let mut other = FileVault::new(&path, Secret::new([8u8; 32]));
        assert!(matches!(other.load(), Err(AuthnError::Unseal)));
        let mut tampered = raw.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        std::fs::write(&path, &tampered).unwrap();
        assert!(matches!(vault.load(), Err(AuthnError::Unseal)));
        std::fs::write(&path, b"KGSK1").unwrap();
        assert!(matches!(vault.load(), Err(AuthnError::Unseal)));
    }

    #[test]
    fn memory_vault_keeps_last_state() {
        let mut v = MemoryVault::new();
        assert!(v.load().unwrap().is_none());
        v.store(b"a").unwrap();
        v.store(b"b").unwrap();
        assert_eq!(v.load().unwrap().unwrap().expose_secret(), b"b");
        assert_eq!(v.writes(), 2);
    }
}
