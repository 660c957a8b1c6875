//! Client extensions mapped onto CTAP 2.1 authenticator extensions
//! (WebAuthn L3 §10.1, CTAP 2.1 §12):
//!
//! | WebAuthn (client)              | CTAP (authenticator)                              |
//! |--------------------------------|---------------------------------------------------|
//! | `credProps`                    | none: the client reports whether it asked for rk  |
//! | `prf`                          | `hmac-secret`, salts = SHA-256("WebAuthn PRF" ‖ 0x00 ‖ input) (§10.1.4) |
//! | `largeBlob`                    | `largeBlobKey` + `authenticatorLargeBlobs` (§12.3) |
//! | `credentialProtectionPolicy`   | `credProtect` 1/2/3 (§12.1)                       |
//! | `minPinLength`                 | `minPinLength` (§12.4)                            |
//! | `hmacCreateSecret`             | `hmac-secret` (§12.5)                             |

use ciborium::Value;
use sha2::{Digest, Sha256};

use super::error::WebAuthnError;
use super::json::{CredProtectPolicy, LargeBlobSupport, RegistrationExtensions};

/// The PRF salt for one input (WebAuthn L3 §10.1.4):
/// `SHA-256(UTF8Encode("WebAuthn PRF") || 0x00 || input)`.
pub fn prf_salt(input: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"WebAuthn PRF");
    hasher.update([0x00]);
    hasher.update(input);
    hasher.finalize().into()
}

/// What an authenticator announced in `authenticatorGetInfo` that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthenticatorSupport {
    /// `extensions` of getInfo (`credProtect`, `hmac-secret`, `largeBlobKey`, `minPinLength`, ...).
    pub extensions: Vec<String>,
    /// getInfo option `largeBlobs`.
    pub large_blobs: bool,
    /// The authenticator can verify the user now (built-in UV, or a PIN that is set).
    pub uv_configured: bool,
}

impl AuthenticatorSupport {
    /// True when getInfo lists the extension.
    pub fn has(&self, name: &str) -> bool {
        self.extensions.iter().any(|e| e == name)
    }
}

/// The `extensions` map of authenticatorMakeCredential for the client inputs, in
/// canonical key order (shorter keys first, then bytewise).
pub fn make_credential_extensions(
    inputs: &RegistrationExtensions,
    support: &AuthenticatorSupport,
) -> Result<Vec<(String, Value)>, WebAuthnError> {
    let mut out = Vec::new();
    if let Some(mut policy) = inputs.cred_protect {
        // As Chromium does: a key that cannot verify the user would make a
        // userVerificationRequired credential unusable; unless the RP enforces the policy,
        // ask for userVerificationOptionalWithCredentialIDList instead.
        if policy == CredProtectPolicy::UserVerificationRequired
            && !support.uv_configured
            && !inputs.enforce_cred_protect
        {
            policy = CredProtectPolicy::UserVerificationOptionalWithCredentialIdList;
        }
        if support.has("credProtect") {
            out.push(("credProtect".to_owned(), Value::from(policy as u8)));
        } else if inputs.enforce_cred_protect
            && policy != CredProtectPolicy::UserVerificationOptional
        {
            return Err(WebAuthnError::NotAllowed(
                "the authenticator does not support credProtect, which the RP enforces".into(),
            ));
        }
    }
    if (inputs.prf.is_some() || inputs.hmac_create_secret) && support.has("hmac-secret") {
        out.push(("hmac-secret".to_owned(), Value::Bool(true)));
    }
    if let Some(large_blob) = inputs.large_blob {
        let capable = support.large_blobs && support.has("largeBlobKey");
        if capable {
            out.push(("largeBlobKey".to_owned(), Value::Bool(true)));
        } else if large_blob == LargeBlobSupport::Required {
            return Err(WebAuthnError::NotAllowed(
                "largeBlob support is required and the authenticator has no large-blob storage"
                    .into(),
            ));
        }
    }
    if inputs.min_pin_length && support.has("minPinLength") {
        out.push(("minPinLength".to_owned(), Value::Bool(true)));
    }
    out.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webauthn::json::PrfValues;

    #[test]
    fn prf_salt_matches_spec_construction() {
        // Oracle: python3 -c "import hashlib; print(hashlib.sha256(b'WebAuthn PRF\\x00' + b'\\x01\\x02').hexdigest())"
        assert_eq!(
            hex::encode(prf_salt(&[1, 2])),
            "9fc7ff80a00fd6f34c3681d5e19ca8e9ecf39a6ac397917c10e580dd6af2db8d"
        );
        assert_ne!(prf_salt(&[1, 2]), prf_salt(&[2, 1]));
    }

    #[test]
    fn mapping_to_ctap_extensions() {
        let support = AuthenticatorSupport {
            extensions: ["credProtect", "hmac-secret", "largeBlobKey", "minPinLength"]
                .map(String::from)
                .to_vec(),
            large_blobs: true,
            uv_configured: true,
        };
        let inputs = RegistrationExtensions {
            cred_props: true,
            prf: Some(Some(PrfValues {
                first: vec![1],
                second: None,
            })),
            large_blob: Some(LargeBlobSupport::Preferred),
            cred_protect: Some(CredProtectPolicy::UserVerificationOptionalWithCredentialIdList),
            enforce_cred_protect: true,
            min_pin_length: true,
            hmac_create_secret: false,
        };
        let ext = make_credential_extensions(&inputs, &support).unwrap();
        let names: Vec<&str> = ext.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["credProtect", "hmac-secret", "largeBlobKey", "minPinLength"]
        );
        assert_eq!(ext[0].1, Value::from(2u8));

        let bare = AuthenticatorSupport::default();
        let err = make_credential_extensions(&inputs, &bare).unwrap_err();
        assert_eq!(err.name(), "NotAllowedError");
        let relaxed = RegistrationExtensions {
            enforce_cred_protect: false,
            ..inputs.clone()
        };
        assert!(
            make_credential_extensions(&relaxed, &bare)
                .unwrap()
                .is_empty()
        );
        let required = RegistrationExtensions {
            large_blob: Some(LargeBlobSupport::Required),
            ..relaxed
        };
        assert_eq!(
            make_credential_extensions(&required, &bare)
                .unwrap_err()
                .name(),
            "NotAllowedError"
        );
    }
}
