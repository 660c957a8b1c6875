//! The credential model: stored (discoverable or injected) credentials, and non-resident
//! credentials whose private key travels inside the credential ID.
//!
//! A non-resident credential ID is `0x01 || nonce(12) || AES-256-GCM(k, nonce, payload, aad = rpIdHash)`
//! with `k = HKDF-SHA-256(master secret, "keygate credential id v1")`. The tag binds the ID to the
//! key's master secret and to the relying party: an ID forged, altered, or presented for another
//! rpId fails authentication and is treated as unknown (CTAP2_ERR_NO_CREDENTIALS).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::authenticator::AuthnError;
use crate::authenticator::keys::{self, RandomSource, bytes_serde};
use crate::secret::Secret;

/// First byte of a wrapped (non-resident) credential ID.
pub const WRAPPED_ID_VERSION: u8 = 0x01;
const WRAP_INFO: &[u8] = b"keygate credential id v1";
const CRED_RANDOM_INFO: &[u8] = b"keygate hmac-secret CredRandom v1";

/// credProtect levels (CTAP 2.1 §12.1).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum CredProtect {
    /// userVerificationOptional (0x01).
    UvOptional = 1,
    /// userVerificationOptionalWithCredentialIDList (0x02).
    UvOptionalWithCredentialIdList = 2,
    /// userVerificationRequired (0x03).
    UvRequired = 3,
}

impl CredProtect {
    /// The level from its wire value.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::UvOptional),
            2 => Some(Self::UvOptionalWithCredentialIdList),
            3 => Some(Self::UvRequired),
            _ => None,
        }
    }

    /// Whether a credential at this level may be used in GetAssertion (CTAP 2.1 §12.1, step 7 of
    /// §6.2.2): level 3 needs UV; level 2 needs UV unless the credential came through the allowList.
    pub fn allows(self, uv: bool, via_allow_list: bool) -> bool {
        match self {
            Self::UvOptional => true,
            Self::UvOptionalWithCredentialIdList => uv || via_allow_list,
            Self::UvRequired => uv,
        }
    }
}

/// The user entity of a discoverable credential.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserInfo {
    /// User handle.
    #[serde(with = "bytes_serde")]
    pub id: Vec<u8>,
    /// User name.
    pub name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
}

/// A credential known to the key.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    /// Credential ID.
    #[serde(with = "bytes_serde")]
    pub id: Vec<u8>,
    /// Relying party ID.
    pub rp_id: String,
    /// Relying party name, as given at creation.
    pub rp_name: Option<String>,
    /// User entity (discoverable credentials).
    pub user: Option<UserInfo>,
    /// Discoverable (resident): found without an allowList, listed by credential management,
    /// counted against the resident maximum.
    pub discoverable: bool,
    /// P-256 private scalar.
    #[serde(with = "bytes_serde::secret")]
    pub private_key: Secret<Vec<u8>>,
    /// credProtect level.
    pub cred_protect: CredProtect,
    /// hmac-secret requested at creation.
    pub hmac_secret: bool,
    /// CredRandom used with UV (hmac-secret, CTAP 2.1 §12.5).
    #[serde(with = "bytes_serde::secret")]
    pub cred_random_uv: Secret<Vec<u8>>,
    /// CredRandom used without UV.
    #[serde(with = "bytes_serde::secret")]
    pub cred_random_no_uv: Secret<Vec<u8>>,
    /// credBlob (at most 32 bytes).
    #[serde(with = "bytes_serde::opt")]
    pub cred_blob: Option<Vec<u8>>,
    /// largeBlobKey (32 bytes), discoverable credentials only.
    #[serde(with = "bytes_serde::opt_secret")]
    pub large_blob_key: Option<Secret<Vec<u8>>>,
    /// Per-credential signature counter (used with `CounterMode::PerCredential`).
    pub sign_count: u32,
    /// Creation order (higher = newer); assertions list newest first.
    pub created: u64,
}

/// What a wrapped credential ID carries.
#[derive(Debug)]
pub struct WrappedPayload {
    /// The private scalar.
    pub private_key: Secret<[u8; 32]>,
    /// credProtect level.
    pub cred_protect: CredProtect,
    /// hmac-secret requested.
    pub hmac_secret: bool,
    /// credBlob.
    pub cred_blob: Option<Vec<u8>>,
}

/// The keys a software key derives from its master secret with HKDF-SHA-256: the credential-ID
/// wrapping key `k` and the key of the CredRandoms of non-resident credentials. Derived once per
/// master secret (when the state is loaded or replaced), not on every request; held in
/// [`Secret`]s like the master secret itself.
#[derive(Debug)]
pub(crate) struct MasterKeys {
    wrap: Secret<[u8; 32]>,
    cred_random: Secret<[u8; 32]>,
}

impl MasterKeys {
    /// The keys of `master`.
    pub(crate) fn derive(master: &[u8; 32]) -> Self {
        Self {
            wrap: keys::hkdf_sha256(master, b"", WRAP_INFO),
            cred_random: keys::hkdf_sha256(master, b"", CRED_RANDOM_INFO),
        }
    }

    fn wrap_cipher(&self) -> Option<Aes256Gcm> {
        Aes256Gcm::new_from_slice(self.wrap.expose_secret()).ok()
    }
}

/// Wraps a non-resident credential into its ID, bound to `rp_id_hash`.
pub(crate) fn wrap_credential_id(
    master: &MasterKeys,
    rp_id_hash: &[u8; 32],
    payload: &WrappedPayload,
    rng: &mut dyn RandomSource,
) -> Result<Vec<u8>, AuthnError> {
    let cipher = master.wrap_cipher().ok_or(AuthnError::Random)?;
    let nonce_bytes = keys::random_array::<12>(rng)?;
    let mut plain = Secret::new(Vec::with_capacity(68));
    let buf = plain.expose_secret_mut();
    buf.extend_from_slice(payload.private_key.expose_secret());
    buf.push(payload.cred_protect as u8);
    buf.push(u8::from(payload.hmac_secret));
    match &payload.cred_blob {
        Some(blob) if blob.len() <= 32 => {
            buf.push(blob.len() as u8);
            buf.extend_from_slice(blob);
        }
        Some(_) => {
            return Err(AuthnError::BadCredential(
                "credBlob longer than 32 bytes".into(),
            ));
        }
        None => buf.push(0xff),
    }
    let nonce = Nonce::from(nonce_bytes);
    let sealed = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plain.expose_secret(),
                aad: rp_id_hash,
            },
        )
        .map_err(|_| AuthnError::Random)?;
    let mut id = Vec::with_capacity(1 + 12 + sealed.len());
    id.push(WRAPPED_ID_VERSION);
    id.extend_from_slice(&nonce_bytes);
    id.extend_from_slice(&sealed);
    Ok(id)
}

/// Opens a wrapped credential ID; `None` if it was not made by this key for this rpIdHash.
pub(crate) fn unwrap_credential_id(
    master: &MasterKeys,
    rp_id_hash: &[u8; 32],
    id: &[u8],
) -> Option<WrappedPayload> {
    if id.len() < 1 + 12 + 16 + 35 || id[0] != WRAPPED_ID_VERSION {
        return None;
    }
    let cipher = master.wrap_cipher()?;
    let nonce_bytes: [u8; 12] = id[1..13].try_into().ok()?;
    let nonce = Nonce::from(nonce_bytes);
    let plain = Secret::new(
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &id[13..],
                    aad: rp_id_hash,
                },
            )
            .ok()?,
    );
    let p = plain.expose_secret();
    if p.len() < 35 {
        return None;
    }
    let mut private_key = Secret::new([0u8; 32]);
    private_key.expose_secret_mut().copy_from_slice(&p[..32]);
    let cred_protect = CredProtect::from_u8(p[32])?;
    let hmac_secret = p[33] == 1;
    let cred_blob = match p[34] {
        0xff if p.len() == 35 => None,
        n if usize::from(n) <= 32 && p.len() == 35 + usize::from(n) => Some(p[35..].to_vec()),
        _ => return None,
    };
    Some(WrappedPayload {
        private_key,
        cred_protect,
        hmac_secret,
        cred_blob,
    })
}

/// The CredRandom pair of a non-resident credential, derived from the master secret and its key.
pub(crate) fn derived_cred_randoms(
    master: &MasterKeys,
    private_key: &[u8],
) -> (Secret<Vec<u8>>, Secret<Vec<u8>>) {
    let k = master.cred_random.expose_secret();
    let with_uv = keys::hmac_sha256(k, &[b"uv", private_key]);
    let without_uv = keys::hmac_sha256(k, &[b"no-uv", private_key]);
    (
        Secret::new(with_uv.to_vec()),
        Secret::new(without_uv.to_vec()),
    )
}

impl Credential {
    /// The credential a wrapped ID stands for.
    pub(crate) fn from_wrapped(
        master: &MasterKeys,
        rp_id: &str,
        id: &[u8],
        payload: WrappedPayload,
    ) -> Self {
        let (cred_random_uv, cred_random_no_uv) =
            derived_cred_randoms(master, payload.private_key.expose_secret());
        Self {
            id: id.to_vec(),
            rp_id: rp_id.to_owned(),
            rp_name: None,
            user: None,
            discoverable: false,
            private_key: Secret::new(payload.private_key.expose_secret().to_vec()),
            cred_protect: payload.cred_protect,
            hmac_secret: payload.hmac_secret,
            cred_random_uv,
            cred_random_no_uv,
            cred_blob: payload.cred_blob,
            large_blob_key: None,
            sign_count: 0,
            created: 0,
        }
    }

    /// The signing key.
    pub fn signing_key(&self) -> Result<p256::ecdsa::SigningKey, AuthnError> {
        keys::signing_key(self.private_key.expose_secret())
    }

    /// The private key for signing (checked, without computing the public key).
    pub fn secret_key(&self) -> Result<p256::SecretKey, AuthnError> {
        keys::secret_key(self.private_key.expose_secret())
    }

    /// SHA-256 of the rpId.
    pub fn rp_id_hash(&self) -> [u8; 32] {
        keys::sha256(self.rp_id.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authenticator::keys::SeededRandomForTests;

    fn payload(rng: &mut dyn RandomSource) -> WrappedPayload {
        WrappedPayload {
            private_key: keys::new_private_key(rng).unwrap(),
            cred_protect: CredProtect::UvOptionalWithCredentialIdList,
            hmac_secret: true,
            cred_blob: Some(b"blob".to_vec()),
        }
    }

    #[test]
    fn wrapped_id_round_trips_and_rejects_forgeries() {
        let mut rng = SeededRandomForTests::new(7);
        let master = MasterKeys::derive(&[0x42u8; 32]);
        let rp = keys::sha256(b"example.com");
        let p = payload(&mut rng);
        let id = wrap_credential_id(&master, &rp, &p, &mut rng).unwrap();
        let back = unwrap_credential_id(&master, &rp, &id).unwrap();
        assert_eq!(
            back.private_key.expose_secret(),
            p.private_key.expose_secret()
        );
        assert_eq!(
            back.cred_protect,
            CredProtect::UvOptionalWithCredentialIdList
        );
        assert!(back.hmac_secret);
        assert_eq!(back.cred_blob.as_deref(), Some(&b"blob"[..]));

        // Another RP, another key's master, any flipped bit, truncation: all rejected.
        assert!(unwrap_credential_id(&master, &keys::sha256(b"evil.com"), &id).is_none());
        assert!(unwrap_credential_id(&MasterKeys::derive(&[0x43u8; 32]), &rp, &id).is_none());
        for i in 0..id.len() {
            let mut forged = id.clone();
            forged[i] ^= 0x01;
            assert!(
                unwrap_credential_id(&master, &rp, &forged).is_none(),
                "bit flip at {i} accepted"
            );
        }
        assert!(unwrap_credential_id(&master, &rp, &id[..id.len() - 1]).is_none());
        assert!(unwrap_credential_id(&master, &rp, &[]).is_none());
        assert!(unwrap_credential_id(&master, &rp, &[0u8; 200]).is_none());
    }

    #[test]
    fn cred_protect_rules() {
        use CredProtect::*;
        assert!(UvOptional.allows(false, false));
        assert!(!UvOptionalWithCredentialIdList.allows(false, false));
        assert!(UvOptionalWithCredentialIdList.allows(false, true));
        assert!(UvOptionalWithCredentialIdList.allows(true, false));
        assert!(!UvRequired.allows(false, true));
        assert!(UvRequired.allows(true, false));
        assert_eq!(CredProtect::from_u8(0), None);
        assert_eq!(CredProtect::from_u8(4), None);
    }

    /// The derivations are those of the stored credentials (IDs and CredRandoms must survive an
    /// upgrade): HKDF-SHA-256 / HMAC-SHA-256 values from Python's hmac and hashlib.
    #[test]
    fn master_key_derivations_match_an_outside_hkdf() {
        let hex = |s: &str| data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap();
        assert_eq!(
            MasterKeys::derive(&[0x42u8; 32])
                .wrap
                .expose_secret()
                .to_vec(),
            hex("ba5fced43dbc22912c4937ebacb1a3898956db9bae204461da958b0ae0830c7c")
        );
        let (uv, no_uv) = derived_cred_randoms(&MasterKeys::derive(&[1u8; 32]), &[2u8; 32]);
        assert_eq!(
            uv.expose_secret(),
            &hex("7a25c458d26b9899aedb6c179d8bcd937833377d1bbf9bae71cb922952b2cd11")
        );
        assert_eq!(
            no_uv.expose_secret(),
            &hex("b049a2d68ce3afd416d57be009e72a2482bf66dce833682dfed017f2ae27e2e6")
        );
    }

    #[test]
    fn derived_cred_randoms_differ_per_uv_and_key() {
        let master = MasterKeys::derive(&[1u8; 32]);
        let (a, b) = derived_cred_randoms(&master, &[2u8; 32]);
        let (c, _) = derived_cred_randoms(&master, &[3u8; 32]);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), c.expose_secret());
        assert_eq!(a.expose_secret().len(), 32);
    }
}
