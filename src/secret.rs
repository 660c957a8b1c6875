//! `Secret<T>`: a value that is zeroized on drop, redacted in `Debug`, and read
//! only through [`Secret::expose_secret`], so every read of a secret is easy to grep.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A secret value (seed, PIN, PIN token, private key). Zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value; the caller's copy should not outlive this one.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Reads the secret. Named so that every read is visible in review.
    pub fn expose_secret(&self) -> &T {
        &self.0
    }

    /// Mutable access to the secret, for in-place decryption.
    pub fn expose_secret_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> ZeroizeOnDrop for Secret<T> {}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

/// Secret bytes.
pub type SecretBytes = Secret<Vec<u8>>;

impl Secret<Vec<u8>> {
    /// Constant-time comparison with other bytes (length is not secret).
    pub fn ct_eq_bytes(&self, other: &[u8]) -> bool {
        self.0.as_slice().ct_eq(other).into()
    }
}

/// Constant-time equality of two byte strings; lengths are not secret.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{secret:?}"), "Secret([REDACTED])");
        assert!(secret.ct_eq_bytes(b"hunter2"));
        assert!(!secret.ct_eq_bytes(b"hunter3"));
        assert!(!ct_eq(b"ab", b"abc"));
    }
}
