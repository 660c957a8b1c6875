//! CTAP2 extensions (CTAP 2.1 §12): credProtect, hmac-secret, credBlob, minPinLength, largeBlobKey.
//!
//! Inputs travel in the `extensions` parameter of MakeCredential / GetAssertion; outputs in the
//! extensions map of the authenticator data (largeBlobKey's output is response member 0x05 / 0x07).
//! Unknown extensions are kept in `other` so that they survive a round trip.

use ciborium::Value;

use super::cbor::{self, MapBuilder, MapReader};
use super::cose::CoseKey;
use super::error::DecodeError;

/// Extension identifier "credProtect" (CTAP 2.1 §12.1).
pub const CRED_PROTECT: &str = "credProtect";
/// Extension identifier "hmac-secret" (CTAP 2.1 §12.5).
pub const HMAC_SECRET: &str = "hmac-secret";
/// Extension identifier "credBlob" (CTAP 2.1 §12.2).
pub const CRED_BLOB: &str = "credBlob";
/// Extension identifier "minPinLength" (CTAP 2.1 §12.4).
pub const MIN_PIN_LENGTH: &str = "minPinLength";
/// Extension identifier "largeBlobKey" (CTAP 2.1 §12.3).
pub const LARGE_BLOB_KEY: &str = "largeBlobKey";

/// A credProtect policy value (CTAP 2.1 §12.1). Open newtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CredProtect(pub u8);

impl CredProtect {
    /// 0x01 userVerificationOptional.
    pub const USER_VERIFICATION_OPTIONAL: Self = Self(0x01);
    /// 0x02 userVerificationOptionalWithCredentialIDList.
    pub const USER_VERIFICATION_OPTIONAL_WITH_CREDENTIAL_ID_LIST: Self = Self(0x02);
    /// 0x03 userVerificationRequired.
    pub const USER_VERIFICATION_REQUIRED: Self = Self(0x03);
}

fn other_entries(map: MapReader) -> Vec<(String, Value)> {
    map.into_rest()
        .into_iter()
        .filter_map(|(key, value)| match key {
            Value::Text(key) => Some((key, value)),
            _ => None,
        })
        .collect()
}

fn put_other(mut builder: MapBuilder, other: &[(String, Value)]) -> MapBuilder {
    for (key, value) in other {
        builder = builder.put(cbor::text(key), value.clone());
    }
    builder
}

/// Extension inputs of authenticatorMakeCredential.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MakeCredentialExtensions {
    /// "credProtect": the requested policy.
    pub cred_protect: Option<CredProtect>,
    /// "hmac-secret": true to create the credential's CredRandom.
    pub hmac_secret: Option<bool>,
    /// "credBlob": a small blob to store with the credential.
    pub cred_blob: Option<Vec<u8>>,
    /// "minPinLength": true to ask for the minimum PIN length in the output.
    pub min_pin_length: Option<bool>,
    /// "largeBlobKey": true to ask for a large-blob key.
    pub large_blob_key: Option<bool>,
    /// Other extensions, unchanged.
    pub other: Vec<(String, Value)>,
}

impl MakeCredentialExtensions {
    /// The extensions map.
    pub fn to_value(&self) -> Value {
        let builder = MapBuilder::new()
            .opt(CRED_PROTECT, self.cred_protect.map(|p| p.0))
            .opt(HMAC_SECRET, self.hmac_secret)
            .opt(CRED_BLOB, self.cred_blob.as_deref().map(cbor::bytes))
            .opt(MIN_PIN_LENGTH, self.min_pin_length)
            .opt(LARGE_BLOB_KEY, self.large_blob_key);
        put_other(builder, &self.other).build()
    }

    /// Decodes the extensions map; a known extension with the wrong type is 0x11.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "extensions")?;
        Ok(Self {
            cred_protect: map
                .opt_text_as(CRED_PROTECT, "credProtect", cbor::into_uint::<u8>)?
                .map(CredProtect),
            hmac_secret: map.opt_text_as(HMAC_SECRET, "hmac-secret", cbor::into_bool)?,
            cred_blob: map.opt_text_as(CRED_BLOB, "credBlob", cbor::into_bytes)?,
            min_pin_length: map.opt_text_as(MIN_PIN_LENGTH, "minPinLength", cbor::into_bool)?,
            large_blob_key: map.opt_text_as(LARGE_BLOB_KEY, "largeBlobKey", cbor::into_bool)?,
            other: other_entries(map),
        })
    }
}

/// The hmac-secret input of authenticatorGetAssertion (CTAP 2.1 §12.5).
#[derive(Debug, Clone, PartialEq)]
pub struct HmacSecretInput {
    /// 0x01 keyAgreement: the platform's key-agreement public key.
    pub key_agreement: CoseKey,
    /// 0x02 saltEnc: encrypt(sharedSecret, salt1 (32 bytes) || salt2 (32 bytes, optional)).
    pub salt_enc: Vec<u8>,
    /// 0x03 saltAuth: authenticate(sharedSecret, saltEnc).
    pub salt_auth: Vec<u8>,
    /// 0x04 pinUvAuthProtocol (absent means protocol 1).
    pub pin_uv_auth_protocol: Option<u8>,
}

impl HmacSecretInput {
    /// The hmac-secret input map.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put(1, self.key_agreement.to_value())
            .put(2, cbor::bytes(&self.salt_enc))
            .put(3, cbor::bytes(&self.salt_auth))
            .opt(4, self.pin_uv_auth_protocol)
            .build()
    }

    /// Decodes the hmac-secret input map; keys 1..3 are required.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "hmac-secret")?;
        Ok(Self {
            key_agreement: CoseKey::from_value(map.req(1, "hmac-secret keyAgreement")?)?,
            salt_enc: map.req_as(2, "hmac-secret saltEnc", cbor::into_bytes)?,
            salt_auth: map.req_as(3, "hmac-secret saltAuth", cbor::into_bytes)?,
            pin_uv_auth_protocol: map.opt_as(
                4,
                "hmac-secret pinUvAuthProtocol",
                cbor::into_uint::<u8>,
            )?,
        })
    }
}

/// Extension inputs of authenticatorGetAssertion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GetAssertionExtensions {
    /// "hmac-secret": the encrypted salts.
    pub hmac_secret: Option<HmacSecretInput>,
    /// "credBlob": true to read the credential's blob.
    pub cred_blob: Option<bool>,
    /// "largeBlobKey": true to ask for the large-blob key.
    pub large_blob_key: Option<bool>,
    /// Other extensions, unchanged.
    pub other: Vec<(String, Value)>,
}

impl GetAssertionExtensions {
    /// The extensions map.
    pub fn to_value(&self) -> Value {
        let builder = MapBuilder::new()
            .opt(
                HMAC_SECRET,
                self.hmac_secret.as_ref().map(HmacSecretInput::to_value),
            )
            .opt(CRED_BLOB, self.cred_blob)
            .opt(LARGE_BLOB_KEY, self.large_blob_key);
        put_other(builder, &self.other).build()
    }

    /// Decodes the extensions map; a known extension with the wrong type is 0x11.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "extensions")?;
        Ok(Self {
            hmac_secret: map
                .opt_text(HMAC_SECRET)
                .map(HmacSecretInput::from_value)
                .transpose()?,
            cred_blob: map.opt_text_as(CRED_BLOB, "credBlob", cbor::into_bool)?,
            large_blob_key: map.opt_text_as(LARGE_BLOB_KEY, "largeBlobKey", cbor::into_bool)?,
            other: other_entries(map),
        })
    }
}

/// The "hmac-secret" authenticator output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HmacSecretOutput {
    /// MakeCredential: whether CredRandom was created.
    Created(bool),
    /// GetAssertion: encrypt(sharedSecret, output1 || output2).
    Output(Vec<u8>),
}

/// The "credBlob" authenticator output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredBlobOutput {
    /// MakeCredential: whether the blob was stored.
    Stored(bool),
    /// GetAssertion: the stored blob (empty if none).
    Blob(Vec<u8>),
}

/// Extension outputs in the authenticator data (CTAP 2.1 §12; WebAuthn §6.1 "extensions").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtensionOutputs {
    /// "credProtect": the policy applied.
    pub cred_protect: Option<CredProtect>,
    /// "hmac-secret".
    pub hmac_secret: Option<HmacSecretOutput>,
    /// "credBlob".
    pub cred_blob: Option<CredBlobOutput>,
    /// "minPinLength": the current minimum PIN length.
    pub min_pin_length: Option<u64>,
    /// Other outputs, unchanged.
    pub other: Vec<(String, Value)>,
}

impl ExtensionOutputs {
    /// True when no output is present.
    pub fn is_empty(&self) -> bool {
        self.cred_protect.is_none()
            && self.hmac_secret.is_none()
            && self.cred_blob.is_none()
            && self.min_pin_length.is_none()
            && self.other.is_empty()
    }

    /// The outputs map.
    pub fn to_value(&self) -> Value {
        let builder = MapBuilder::new()
            .opt(CRED_PROTECT, self.cred_protect.map(|p| p.0))
            .opt(
                HMAC_SECRET,
                self.hmac_secret.as_ref().map(|output| match output {
                    HmacSecretOutput::Created(flag) => Value::Bool(*flag),
                    HmacSecretOutput::Output(bytes) => cbor::bytes(bytes),
                }),
            )
            .opt(
                CRED_BLOB,
                self.cred_blob.as_ref().map(|output| match output {
                    CredBlobOutput::Stored(flag) => Value::Bool(*flag),
                    CredBlobOutput::Blob(bytes) => cbor::bytes(bytes),
                }),
            )
            .opt(MIN_PIN_LENGTH, self.min_pin_length);
        put_other(builder, &self.other).build()
    }

    /// Decodes the outputs map.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "extension outputs")?;
        Ok(Self {
            cred_protect: map
                .opt_text_as(CRED_PROTECT, "credProtect", cbor::into_uint::<u8>)?
                .map(CredProtect),
            hmac_secret: map
                .opt_text(HMAC_SECRET)
                .map(|v| match v {
                    Value::Bool(flag) => Ok(HmacSecretOutput::Created(flag)),
                    Value::Bytes(bytes) => Ok(HmacSecretOutput::Output(bytes)),
                    _ => Err(DecodeError::unexpected_type("hmac-secret output")),
                })
                .transpose()?,
            cred_blob: map
                .opt_text(CRED_BLOB)
                .map(|v| match v {
                    Value::Bool(flag) => Ok(CredBlobOutput::Stored(flag)),
                    Value::Bytes(bytes) => Ok(CredBlobOutput::Blob(bytes)),
                    _ => Err(DecodeError::unexpected_type("credBlob output")),
                })
                .transpose()?,
            min_pin_length: map.opt_text_as(
                MIN_PIN_LENGTH,
                "minPinLength output",
                cbor::into_u64,
            )?,
            other: other_entries(map),
        })
    }
}
