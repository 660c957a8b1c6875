//! WebAuthn entities as CTAP2 encodes them (CTAP 2.1 §6.1.2, WebAuthn L2 §5.4).
//!
//! Unknown members (such as the deprecated `icon`) are ignored when decoding.

use ciborium::Value;

use super::cbor::{self, MapBuilder, MapReader};
use super::error::DecodeError;

/// `PublicKeyCredentialRpEntity` (WebAuthn §5.4.2): the relying party.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKeyCredentialRpEntity {
    /// The RP ID (a domain).
    pub id: String,
    /// Human-palatable name.
    pub name: Option<String>,
}

impl PublicKeyCredentialRpEntity {
    /// An RP entity with only an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
        }
    }

    /// CBOR map `{"id", "name"}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("id", cbor::text(&self.id))
            .opt("name", self.name.as_deref().map(cbor::text))
            .build()
    }

    /// Decodes the map form; `id` is required.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "rp")?;
        Ok(Self {
            id: map.req_text_as("id", "rp.id", cbor::into_text)?,
            name: map.opt_text_as("name", "rp.name", cbor::into_text)?,
        })
    }
}

/// `PublicKeyCredentialUserEntity` (WebAuthn §5.4.3): the user account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKeyCredentialUserEntity {
    /// The user handle (at most 64 bytes).
    pub id: Vec<u8>,
    /// Account name, e.g. an e-mail address.
    pub name: Option<String>,
    /// Name for display.
    pub display_name: Option<String>,
}

impl PublicKeyCredentialUserEntity {
    /// A user entity with only an id.
    pub fn new(id: impl Into<Vec<u8>>) -> Self {
        Self {
            id: id.into(),
            name: None,
            display_name: None,
        }
    }

    /// CBOR map `{"id", "name", "displayName"}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("id", cbor::bytes(&self.id))
            .opt("name", self.name.as_deref().map(cbor::text))
            .opt("displayName", self.display_name.as_deref().map(cbor::text))
            .build()
    }

    /// Decodes the map form; `id` is required.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "user")?;
        Ok(Self {
            id: map.req_text_as("id", "user.id", cbor::into_bytes)?,
            name: map.opt_text_as("name", "user.name", cbor::into_text)?,
            display_name: map.opt_text_as("displayName", "user.displayName", cbor::into_text)?,
        })
    }
}

/// `PublicKeyCredentialDescriptor` (WebAuthn §5.8.3): names a credential.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicKeyCredentialDescriptor {
    /// Credential type, "public-key".
    pub type_: String,
    /// Credential ID.
    pub id: Vec<u8>,
    /// Transport hints ("usb", "nfc", "ble", "internal", "hybrid").
    pub transports: Option<Vec<String>>,
}

impl PublicKeyCredentialDescriptor {
    /// A "public-key" descriptor for `id`.
    pub fn public_key(id: impl Into<Vec<u8>>) -> Self {
        Self {
            type_: "public-key".to_owned(),
            id: id.into(),
            transports: None,
        }
    }

    /// CBOR map `{"id", "type", "transports"}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("id", cbor::bytes(&self.id))
            .put("type", cbor::text(&self.type_))
            .opt("transports", self.transports.as_deref().map(cbor::text_vec))
            .build()
    }

    /// Decodes the map form; `type` and `id` are required.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "credential descriptor")?;
        Ok(Self {
            id: map.req_text_as("id", "descriptor.id", cbor::into_bytes)?,
            type_: map.req_text_as("type", "descriptor.type", cbor::into_text)?,
            transports: map.opt_text_as(
                "transports",
                "descriptor.transports",
                cbor::into_text_vec,
            )?,
        })
    }

    /// Encodes a list of descriptors.
    pub(crate) fn list_to_value(list: &[Self]) -> Value {
        Value::Array(list.iter().map(Self::to_value).collect())
    }

    /// Decodes a list of descriptors.
    pub(crate) fn list_from_value(
        value: Value,
        context: &'static str,
    ) -> Result<Vec<Self>, DecodeError> {
        cbor::into_vec(value, context)?
            .into_iter()
            .map(Self::from_value)
            .collect()
    }
}

/// `PublicKeyCredentialParameters` (WebAuthn §5.3): an acceptable credential type and algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyCredentialParameters {
    /// Credential type, "public-key".
    pub type_: String,
    /// COSE algorithm identifier (-7 ES256, -8 EdDSA, -257 RS256).
    pub alg: i64,
}

impl PublicKeyCredentialParameters {
    /// `{"alg": -7, "type": "public-key"}`.
    pub fn es256() -> Self {
        Self {
            type_: "public-key".to_owned(),
            alg: super::cose::ES256,
        }
    }

    /// CBOR map `{"alg", "type"}`.
    pub fn to_value(&self) -> Value {
        MapBuilder::new()
            .put("alg", self.alg)
            .put("type", cbor::text(&self.type_))
            .build()
    }

    /// Decodes the map form; both members are required.
    pub fn from_value(value: Value) -> Result<Self, DecodeError> {
        let mut map = MapReader::new(value, "pubKeyCredParams")?;
        Ok(Self {
            alg: map.req_text_as("alg", "pubKeyCredParams.alg", cbor::into_i64)?,
            type_: map.req_text_as("type", "pubKeyCredParams.type", cbor::into_text)?,
        })
    }

    pub(crate) fn list_to_value(list: &[Self]) -> Value {
        Value::Array(list.iter().map(Self::to_value).collect())
    }

    pub(crate) fn list_from_value(
        value: Value,
        context: &'static str,
    ) -> Result<Vec<Self>, DecodeError> {
        cbor::into_vec(value, context)?
            .into_iter()
            .map(Self::from_value)
            .collect()
    }
}
