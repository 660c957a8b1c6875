//! `clientDataJSON` exactly as browsers build it (WebAuthn L3 §5.8.1.1 "Serialization"):
//! `{"type":..,"challenge":..,"origin":..,"crossOrigin":false}` in that order, no
//! whitespace, strings through `CCDToString`. `topOrigin` is absent because the client
//! never runs in a cross-origin frame.

use sha2::{Digest, Sha256};

use super::b64;

/// `CollectedClientData.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyType {
    /// `webauthn.create` (registration).
    Create,
    /// `webauthn.get` (authentication).
    Get,
}

impl CeremonyType {
    /// The string value of `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "webauthn.create",
            Self::Get => "webauthn.get",
        }
    }
}

/// Builds the bytes of `clientDataJSON` (§5.8.1.1 steps 1-7, `crossOrigin` false).
pub fn client_data_json(kind: CeremonyType, challenge: &[u8], origin: &str) -> Vec<u8> {
    let mut out = String::with_capacity(128 + origin.len() + challenge.len() * 2);
    out.push_str("{\"type\":");
    ccd_to_string(&mut out, kind.as_str());
    out.push_str(",\"challenge\":");
    ccd_to_string(&mut out, &b64::encode(challenge));
    out.push_str(",\"origin\":");
    ccd_to_string(&mut out, origin);
    out.push_str(",\"crossOrigin\":false}");
    out.into_bytes()
}

/// SHA-256 of `clientDataJSON`: the `clientDataHash` sent to the authenticator.
pub fn client_data_hash(client_data_json: &[u8]) -> [u8; 32] {
    Sha256::digest(client_data_json).into()
}

/// `CCDToString` (§5.8.1.2): quote, escape `"` and `\`, and `\u00xx` (lower-case hex)
/// for every code point below U+0020; everything else as is.
fn ccd_to_string(out: &mut String, value: &str) {
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_browser_bytes() {
        // The form Chrome and Firefox produce (challenge "AAECAw" = 00 01 02 03).
        let json = client_data_json(CeremonyType::Get, &[0, 1, 2, 3], "https://example.com");
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"type":"webauthn.get","challenge":"AAECAw","origin":"https://example.com","crossOrigin":false}"#
        );
        let json = client_data_json(CeremonyType::Create, b"\xfb\xff", "http://localhost:8080");
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"type":"webauthn.create","challenge":"-_8","origin":"http://localhost:8080","crossOrigin":false}"#
        );
    }

    #[test]
    fn parses_as_json_with_same_values() {
        let json = client_data_json(CeremonyType::Create, &[7; 32], "https://a.example");
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["type"], "webauthn.create");
        assert_eq!(value["origin"], "https://a.example");
        assert_eq!(value["crossOrigin"], false);
        assert_eq!(
            b64::decode(value["challenge"].as_str().unwrap()).unwrap(),
            [7; 32]
        );
    }

    #[test]
    fn ccd_escapes() {
        let mut out = String::new();
        ccd_to_string(&mut out, "a\"b\\c\u{1}\u{7f}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\u0001\u{7f}é\"");
    }

    #[test]
    fn hash_is_sha256() {
        let hash = client_data_hash(b"abc");
        assert_eq!(
            hex::encode(hash),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
