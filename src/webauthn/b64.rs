//! base64url without padding, the encoding of every binary member of the WebAuthn
//! JSON types (WebAuthn L3 §5.1.8 `Base64URLString`).

use data_encoding::BASE64URL_NOPAD;

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

/// Decodes base64url; trailing `=` padding is tolerated (browsers accept it), the
/// standard alphabet's `+` and `/` are not.
pub fn decode(text: &str) -> Result<Vec<u8>, data_encoding::DecodeError> {
    BASE64URL_NOPAD.decode(text.trim_end_matches('=').as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_padding() {
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("-_8=").unwrap(), [0xfb, 0xff]);
        assert!(decode("+/8").is_err());
        assert!(decode("a").is_err());
    }
}
