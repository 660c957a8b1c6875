//! CTAP2 command handlers of the software key (CTAP 2.1 §6).

use crate::authenticator::keys::{self, RandomSource};
use crate::secret::Secret;

/// Volatile protocol state, lost at a power cycle.
#[derive(Debug)]
pub(crate) struct Session {
    /// The key-agreement private scalar shared by PIN/UV auth protocols 1 and 2 (§6.5.6).
    pub key_agreement: Secret<[u8; 32]>,
}

impl Session {
    pub fn new(rng: &mut dyn RandomSource) -> Self {
        let key_agreement = keys::new_private_key(rng).unwrap_or_else(|_| Secret::new([1u8; 32]));
        Self { key_agreement }
    }
}
