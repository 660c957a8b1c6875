//! Attestation statements (WebAuthn §8: "none" §8.7, "packed" §8.2, "fido-u2f" §8.6).

use ciborium::Value;

use super::cbor::{self, MapBuilder, MapReader};
use super::error::DecodeError;

/// An attestation statement together with its format identifier.
#[derive(Debug, Clone, PartialEq)]
pub enum AttestationStatement {
    /// fmt "none": `{}`.
    None,
    /// fmt "packed": `{"alg", "sig", "x5c"?}`; without x5c it is self attestation.
    Packed {
        /// COSE algorithm of the signature.
        alg: i64,
        /// The signature over authenticatorData || clientDataHash.
        sig: Vec<u8>,
        /// The attestation certificate (DER) followed by its chain; `None` for self attestation.
        x5c: Option<Vec<Vec<u8>>>,
    },
    /// fmt "fido-u2f": `{"sig", "x5c"}`.
    FidoU2f {
        /// The U2F registration signature.
        sig: Vec<u8>,
        /// The attestation certificate (exactly one).
        x5c: Vec<Vec<u8>>,
    },
    /// Any other format, kept as it came.
    Other {
        /// The format identifier.
        fmt: String,
        /// The attestation statement map.
        att_stmt: Value,
    },
}

fn certificates(list: &[Vec<u8>]) -> Value {
    Value::Array(list.iter().map(|cert| cbor::bytes(cert)).collect())
}

fn into_certificates(value: Value) -> Result<Vec<Vec<u8>>, DecodeError> {
    cbor::into_vec(value, "x5c")?
        .into_iter()
        .map(|cert| cbor::into_bytes(cert, "x5c"))
        .collect()
}

impl AttestationStatement {
    /// The attestation statement format identifier ("none", "packed", ...).
    pub fn fmt(&self) -> &str {
        match self {
            Self::None => "none",
            Self::Packed { .. } => "packed",
            Self::FidoU2f { .. } => "fido-u2f",
            Self::Other { fmt, .. } => fmt,
        }
    }

    /// The attStmt map.
    pub fn to_value(&self) -> Value {
        match self {
            Self::None => Value::Map(Vec::new()),
            Self::Packed { alg, sig, x5c } => MapBuilder::new()
                .put("alg", *alg)
                .put("sig", cbor::bytes(sig))
                .opt("x5c", x5c.as_deref().map(certificates))
                .build(),
            Self::FidoU2f { sig, x5c } => MapBuilder::new()
                .put("sig", cbor::bytes(sig))
                .put("x5c", certificates(x5c))
                .build(),
            Self::Other { att_stmt, .. } => att_stmt.clone(),
        }
    }

    /// Decodes the attStmt map of format `fmt`.
    pub fn from_value(fmt: &str, value: Value) -> Result<Self, DecodeError> {
        match fmt {
            "none" => {
                MapReader::new(value, "attStmt")?;
                Ok(Self::None)
            }
            "packed" => {
                let mut map = MapReader::new(value, "attStmt")?;
                Ok(Self::Packed {
                    alg: map.req_text_as("alg", "attStmt.alg", cbor::into_i64)?,
                    sig: map.req_text_as("sig", "attStmt.sig", cbor::into_bytes)?,
                    x5c: map.opt_text("x5c").map(into_certificates).transpose()?,
                })
            }
            "fido-u2f" => {
                let mut map = MapReader::new(value, "attStmt")?;
                Ok(Self::FidoU2f {
                    sig: map.req_text_as("sig", "attStmt.sig", cbor::into_bytes)?,
                    x5c: into_certificates(map.req_text("x5c", "attStmt.x5c")?)?,
                })
            }
            _ => {
                cbor::into_map(value.clone(), "attStmt")?;
                Ok(Self::Other {
                    fmt: fmt.to_owned(),
                    att_stmt: value,
                })
            }
        }
    }
}
