//! The CTAP2 canonical CBOR encoding (CTAP 2.1 §8 "Message Encoding", "CTAP2 canonical CBOR
//! encoding form") and strict decoding helpers.
//!
//! Parsing uses [`ciborium::Value`] with a nesting limit of [`MAX_DEPTH`]; writing uses our own
//! canonical writer, because ciborium writes map entries in insertion order (and a
//! `BTreeMap<i64, _>` would sort -2, -1, 1, 2, 3 instead of CTAP's 1, 2, 3, -1, -2).
//!
//! The canonical writer:
//! - integers in the shortest form (major types 0 and 1);
//! - definite lengths for strings, arrays and maps;
//! - map keys sorted by their encoding: lower major type first, then shorter encoding first,
//!   then bytewise (CTAP 2.1 §8 — for integer and text keys this is length-first then bytewise,
//!   so integer keys come out as 1, 2, 3, -1, -2 and text keys as "id", "name", "displayName");
//! - floats (unused by CTAP) as float32 when exact, float64 otherwise.

use ciborium::Value;

use super::error::DecodeError;

/// Deepest nesting of arrays, maps and tags that decoding accepts (the top-level map is depth 1).
///
/// CTAP itself needs 4 (request map → extensions map → hmac-secret map → COSE key map;
/// request map → allowList array → descriptor map → transports array). We accept 8.
pub const MAX_DEPTH: usize = 8;

/// Encodes `value` in CTAP2 canonical form.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, &mut out);
    out
}

/// Appends the canonical encoding of `value` to `out`. Map entries are sorted; duplicate keys are
/// written as given (callers build maps with distinct keys).
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Integer(integer) => {
            let n = i128::from(*integer);
            if n >= 0 {
                write_header(out, 0, n as u64);
            } else {
                write_header(out, 1, (-1 - n) as u64);
            }
        }
        Value::Bytes(bytes) => {
            write_header(out, 2, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        Value::Text(text) => {
            write_header(out, 3, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        Value::Array(items) => {
            write_header(out, 4, items.len() as u64);
            for item in items {
                write(item, out);
            }
        }
        Value::Map(entries) => {
            let mut encoded: Vec<(Vec<u8>, Vec<u8>)> = entries
                .iter()
                .map(|(key, value)| (to_vec(key), to_vec(value)))
                .collect();
            encoded.sort_by(|(a, _), (b, _)| canonical_key_order(a, b));
            write_header(out, 5, encoded.len() as u64);
            for (key, value) in encoded {
                out.extend_from_slice(&key);
                out.extend_from_slice(&value);
            }
        }
        Value::Tag(tag, inner) => {
            write_header(out, 6, *tag);
            write(inner, out);
        }
        Value::Bool(false) => out.push(0xF4),
        Value::Bool(true) => out.push(0xF5),
        Value::Null => out.push(0xF6),
        Value::Float(float) => {
            let narrow = *float as f32;
            if f64::from(narrow) == *float || float.is_nan() {
                out.push(0xFA);
                out.extend_from_slice(&narrow.to_be_bytes());
            } else {
                out.push(0xFB);
                out.extend_from_slice(&float.to_be_bytes());
            }
        }
        // `Value` is non-exhaustive; every variant of ciborium 0.2 is handled above.
        _ => out.push(0xF7),
    }
}

/// CTAP 2.1 §8 map key order on encoded keys: major type, then length, then bytes.
pub fn canonical_key_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let major = |k: &[u8]| k.first().map(|byte| byte >> 5);
    major(a)
        .cmp(&major(b))
        .then(a.len().cmp(&b.len()))
        .then_with(|| a.cmp(b))
}

fn write_header(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    if n < 24 {
        out.push(major | n as u8);
    } else if n <= u64::from(u8::MAX) {
        out.push(major | 24);
        out.push(n as u8);
    } else if n <= u64::from(u16::MAX) {
        out.push(major | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u64::from(u32::MAX) {
        out.push(major | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Decodes exactly one CBOR data item that fills `bytes`.
///
/// Malformed input, trailing bytes and nesting deeper than [`MAX_DEPTH`] give
/// 0x12 CTAP2_ERR_INVALID_CBOR.
pub fn from_slice(bytes: &[u8]) -> Result<Value, DecodeError> {
    let (value, used) = from_slice_prefix(bytes)?;
    if used != bytes.len() {
        return Err(DecodeError::invalid_cbor("trailing bytes after CBOR item"));
    }
    Ok(value)
}

/// Decodes exactly one CBOR data item that fills `bytes` and is in CTAP2 canonical form
/// (CTAP 2.1 §8): `bytes` must be exactly what [`to_vec`] writes for the decoded value, so
/// integers and lengths in their shortest form, definite lengths only, and map keys in
/// canonical order. A message that is well-formed but not canonical is
/// 0x12 CTAP2_ERR_INVALID_CBOR, like malformed input.
///
/// Authenticators decode requests with this. python-fido2 (`cbor.py`: shortest heads,
/// `_sort_keys` by major type, length, bytes), libfido2 and browsers send canonical CBOR, and
/// OpenSK rejects anything else, so no real client is refused.
pub fn from_slice_canonical(bytes: &[u8]) -> Result<Value, DecodeError> {
    let value = from_slice(bytes)?;
    if !is_plainly_canonical(bytes) && to_vec(&value) != bytes {
        return Err(DecodeError::invalid_cbor(
            "CBOR not in CTAP2 canonical form",
        ));
    }
    Ok(value)
}

/// Whether the well-formed item `bytes` is certainly what [`to_vec`] writes for it, found by
/// walking the bytes without re-encoding: every item is an integer, a byte or text string, an
/// array, a map, false, true or null, with definite lengths and every head in its shortest form,
/// and the keys of every map in [`canonical_key_order`] (equal keys kept in place, as the stable
/// sort of [`write`] keeps them). `false` means "not known" (tags, floats, other simple values,
/// anything else): [`from_slice_canonical`] then compares with the re-encoding, so both paths
/// accept exactly the same messages.
fn is_plainly_canonical(bytes: &[u8]) -> bool {
    let mut pos = 0;
    skip_plain_item(bytes, &mut pos).is_some() && pos == bytes.len()
}

/// Steps over one item of the plain canonical subset at `*pos` (`None`: outside it). Only
/// called on input that decoded within [`MAX_DEPTH`], so the recursion is bounded.
fn skip_plain_item(bytes: &[u8], pos: &mut usize) -> Option<()> {
    let initial = *bytes.get(*pos)?;
    *pos += 1;
    let (major, info) = (initial >> 5, initial & 0x1f);
    if major == 7 {
        // false, true, null.
        return matches!(info, 20..=22).then_some(());
    }
    let mut argument = |len: usize, shortest_above: u64| -> Option<u64> {
        let field = bytes.get(*pos..pos.checked_add(len)?)?;
        *pos += len;
        let n = field.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        (n > shortest_above).then_some(n)
    };
    let n = match info {
        0..=23 => u64::from(info),
        24 => argument(1, 23)?,
        25 => argument(2, 0xff)?,
        26 => argument(4, 0xffff)?,
        27 => argument(8, 0xffff_ffff)?,
        _ => return None,
    };
    match major {
        0 | 1 => Some(()),
        2 | 3 => {
            let end = pos.checked_add(usize::try_from(n).ok()?)?;
            (end <= bytes.len()).then(|| *pos = end)
        }
        4 => (0..n).try_for_each(|_| skip_plain_item(bytes, pos)),
        5 => {
            let mut previous: Option<std::ops::Range<usize>> = None;
            for _ in 0..n {
                let start = *pos;
                skip_plain_item(bytes, pos)?;
                let key = start..*pos;
                if let Some(previous) = previous
                    && canonical_key_order(&bytes[previous], &bytes[key.clone()])
                        == std::cmp::Ordering::Greater
                {
                    return None;
                }
                previous = Some(key);
                skip_plain_item(bytes, pos)?;
            }
            Some(())
        }
        _ => None,
    }
}

/// Decodes one CBOR data item at the start of `bytes`; returns it and the number of bytes used.
pub fn from_slice_prefix(bytes: &[u8]) -> Result<(Value, usize), DecodeError> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|_| DecodeError::invalid_cbor("malformed or too deeply nested CBOR"))?;
    Ok((value, bytes.len() - rest.len()))
}

/// Builds a CBOR map; entries are sorted when written.
#[derive(Debug, Default)]
pub(crate) struct MapBuilder {
    entries: Vec<(Value, Value)>,
}

impl MapBuilder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds an entry.
    pub(crate) fn put(mut self, key: impl Into<Value>, value: impl Into<Value>) -> Self {
        self.entries.push((key.into(), value.into()));
        self
    }

    /// Adds an entry when `value` is present.
    pub(crate) fn opt(self, key: impl Into<Value>, value: Option<impl Into<Value>>) -> Self {
        match value {
            Some(value) => self.put(key, value),
            None => self,
        }
    }

    pub(crate) fn build(self) -> Value {
        Value::Map(self.entries)
    }
}

/// Encodes raw bytes as a CBOR byte string value.
pub(crate) fn bytes(value: &[u8]) -> Value {
    Value::Bytes(value.to_vec())
}

/// Encodes a text value.
pub(crate) fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// A decoded CBOR map whose entries are taken out by key. Duplicate keys are rejected
/// (0x12); keys nobody asks for are ignored (forward compatibility).
#[derive(Debug)]
pub(crate) struct MapReader {
    entries: Vec<(Value, Value)>,
}

impl MapReader {
    /// Takes a map value; any other type is 0x11.
    pub(crate) fn new(value: Value, context: &'static str) -> Result<Self, DecodeError> {
        let entries = into_map(value, context)?;
        // Duplicate keys: compare canonical encodings, sorted (O(n log n) on hostile input).
        let mut keys: Vec<Vec<u8>> = entries.iter().map(|(key, _)| to_vec(key)).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(DecodeError::invalid_cbor("duplicate map key"));
        }
        Ok(Self { entries })
    }

    /// Decodes a whole message that must be one CBOR map (responses: non-canonical accepted).
    pub(crate) fn from_bytes(bytes: &[u8], context: &'static str) -> Result<Self, DecodeError> {
        Self::new(from_slice(bytes)?, context)
    }

    /// Decodes the parameters of a request to an authenticator: one CBOR map in canonical
    /// form ([`from_slice_canonical`]).
    pub(crate) fn from_request(bytes: &[u8], context: &'static str) -> Result<Self, DecodeError> {
        Self::new(from_slice_canonical(bytes)?, context)
    }

    fn take(&mut self, key: &Value) -> Option<Value> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(index).1)
    }

    /// The value at integer key `key`, if present.
    pub(crate) fn opt(&mut self, key: i64) -> Option<Value> {
        self.take(&Value::from(key))
    }

    /// The value at integer key `key`; missing is 0x14.
    pub(crate) fn req(&mut self, key: i64, context: &'static str) -> Result<Value, DecodeError> {
        self.opt(key).ok_or(DecodeError::missing(context))
    }

    /// The value at text key `key`, if present.
    pub(crate) fn opt_text(&mut self, key: &str) -> Option<Value> {
        self.take(&Value::Text(key.to_owned()))
    }

    /// The value at text key `key`; missing is 0x14.
    pub(crate) fn req_text(
        &mut self,
        key: &str,
        context: &'static str,
    ) -> Result<Value, DecodeError> {
        self.opt_text(key).ok_or(DecodeError::missing(context))
    }

    /// The value at integer key `key` converted by `convert` (e.g. [`into_bytes`]), if present;
    /// conversion errors name `context`.
    pub(crate) fn opt_as<T>(
        &mut self,
        key: i64,
        context: &'static str,
        convert: impl FnOnce(Value, &'static str) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        self.opt(key).map(|v| convert(v, context)).transpose()
    }

    /// The value at integer key `key` converted by `convert`; missing is 0x14.
    pub(crate) fn req_as<T>(
        &mut self,
        key: i64,
        context: &'static str,
        convert: impl FnOnce(Value, &'static str) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        convert(self.req(key, context)?, context)
    }

    /// The value at text key `key` converted by `convert`, if present.
    pub(crate) fn opt_text_as<T>(
        &mut self,
        key: &str,
        context: &'static str,
        convert: impl FnOnce(Value, &'static str) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        self.opt_text(key).map(|v| convert(v, context)).transpose()
    }

    /// The value at text key `key` converted by `convert`; missing is 0x14.
    pub(crate) fn req_text_as<T>(
        &mut self,
        key: &str,
        context: &'static str,
        convert: impl FnOnce(Value, &'static str) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        convert(self.req_text(key, context)?, context)
    }

    /// The entries nobody took.
    pub(crate) fn into_rest(self) -> Vec<(Value, Value)> {
        self.entries
    }
}

/// A map's entries; other types are 0x11.
pub(crate) fn into_map(
    value: Value,
    context: &'static str,
) -> Result<Vec<(Value, Value)>, DecodeError> {
    match value {
        Value::Map(entries) => Ok(entries),
        _ => Err(DecodeError::unexpected_type(context)),
    }
}

/// A byte string; other types are 0x11.
pub(crate) fn into_bytes(value: Value, context: &'static str) -> Result<Vec<u8>, DecodeError> {
    match value {
        Value::Bytes(bytes) => Ok(bytes),
        _ => Err(DecodeError::unexpected_type(context)),
    }
}

/// A byte string of exactly `N` bytes; other types are 0x11, other lengths 0x03.
pub(crate) fn into_array<const N: usize>(
    value: Value,
    context: &'static str,
) -> Result<[u8; N], DecodeError> {
    into_bytes(value, context)?
        .try_into()
        .map_err(|_| DecodeError::invalid_length(context))
}

/// A text string; other types are 0x11.
pub(crate) fn into_text(value: Value, context: &'static str) -> Result<String, DecodeError> {
    match value {
        Value::Text(text) => Ok(text),
        _ => Err(DecodeError::unexpected_type(context)),
    }
}

/// A boolean; other types are 0x11.
pub(crate) fn into_bool(value: Value, context: &'static str) -> Result<bool, DecodeError> {
    match value {
        Value::Bool(flag) => Ok(flag),
        _ => Err(DecodeError::unexpected_type(context)),
    }
}

/// An array; other types are 0x11.
pub(crate) fn into_vec(value: Value, context: &'static str) -> Result<Vec<Value>, DecodeError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(DecodeError::unexpected_type(context)),
    }
}

/// An integer in `i64`; other types are 0x11, out of range 0x02.
pub(crate) fn into_i64(value: Value, context: &'static str) -> Result<i64, DecodeError> {
    match value {
        Value::Integer(integer) => {
            i64::try_from(integer).map_err(|_| DecodeError::invalid_parameter(context))
        }
        _ => Err(DecodeError::unexpected_type(context)),
    }
}

/// An unsigned integer; other types (and negative integers) are 0x11, out of range 0x02.
pub(crate) fn into_u64(value: Value, context: &'static str) -> Result<u64, DecodeError> {
    match value {
        Value::Integer(integer) => {
            let n = i128::from(integer);
            if n < 0 {
                Err(DecodeError::unexpected_type(context))
            } else {
                u64::try_from(n).map_err(|_| DecodeError::invalid_parameter(context))
            }
        }
        _ => Err(DecodeError::unexpected_type(context)),
    }
}

/// An unsigned integer that fits `T` (u8, u16, u32); larger values are 0x02.
pub(crate) fn into_uint<T: TryFrom<u64>>(
    value: Value,
    context: &'static str,
) -> Result<T, DecodeError> {
    T::try_from(into_u64(value, context)?).map_err(|_| DecodeError::invalid_parameter(context))
}

/// An array of text strings.
pub(crate) fn into_text_vec(
    value: Value,
    context: &'static str,
) -> Result<Vec<String>, DecodeError> {
    into_vec(value, context)?
        .into_iter()
        .map(|item| into_text(item, context))
        .collect()
}

/// A map of text keys to booleans (the `options` parameters).
pub(crate) fn into_bool_map(
    value: Value,
    context: &'static str,
) -> Result<std::collections::BTreeMap<String, bool>, DecodeError> {
    let mut out = std::collections::BTreeMap::new();
    for (key, value) in MapReader::new(value, context)?.into_rest() {
        out.insert(into_text(key, context)?, into_bool(value, context)?);
    }
    Ok(out)
}

/// `options[name]` of an options map (MakeCredential / GetAssertion parameter, GetInfo member).
pub(crate) fn flag(
    options: Option<&std::collections::BTreeMap<String, bool>>,
    name: &str,
) -> Option<bool> {
    options.and_then(|options| options.get(name).copied())
}

/// Encodes a map of text keys to booleans.
pub(crate) fn bool_map(map: &std::collections::BTreeMap<String, bool>) -> Value {
    Value::Map(
        map.iter()
            .map(|(key, flag)| (Value::Text(key.clone()), Value::Bool(*flag)))
            .collect(),
    )
}

/// Encodes a list of texts.
pub(crate) fn text_vec(items: &[String]) -> Value {
    Value::Array(items.iter().map(|item| Value::Text(item.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_sort_1_2_3_minus1_minus2() {
        let map = Value::Map(vec![
            (Value::from(-2), Value::from(0)),
            (Value::from(3), Value::from(0)),
            (Value::from(-1), Value::from(0)),
            (Value::from(1), Value::from(0)),
            (Value::from(2), Value::from(0)),
        ]);
        assert_eq!(
            to_vec(&map),
            [
                0xA5, 0x01, 0x00, 0x02, 0x00, 0x03, 0x00, 0x20, 0x00, 0x21, 0x00
            ]
        );
    }

    #[test]
    fn text_keys_sort_length_first() {
        let map = Value::Map(vec![
            (Value::from("displayName"), Value::from(1)),
            (Value::from("name"), Value::from(2)),
            (Value::from("id"), Value::from(3)),
            (Value::from(24), Value::from(4)),
            (Value::from(-25), Value::from(5)),
        ]);
        // 24 (0x18 0x18) before -25 (0x38 0x18): lower major type first; texts after integers.
        let want = [
            &[0xA5, 0x18, 0x18, 0x04, 0x38, 0x18, 0x05][..],
            &[0x62, b'i', b'd', 0x03],
            &[0x64, b'n', b'a', b'm', b'e', 0x02],
            &[0x6B],
            b"displayName",
            &[0x01],
        ]
        .concat();
        assert_eq!(to_vec(&map), want);
    }

    #[test]
    fn shortest_integers() {
        for (n, want) in [
            (0i64, &[0x00][..]),
            (23, &[0x17]),
            (24, &[0x18, 0x18]),
            (255, &[0x18, 0xFF]),
            (256, &[0x19, 0x01, 0x00]),
            (65_536, &[0x1A, 0x00, 0x01, 0x00, 0x00]),
            (1 << 32, &[0x1B, 0, 0, 0, 1, 0, 0, 0, 0]),
            (-1, &[0x20]),
            (-24, &[0x37]),
            (-25, &[0x38, 0x18]),
            (-257, &[0x39, 0x01, 0x00]),
        ] {
            assert_eq!(to_vec(&Value::from(n)), want, "{n}");
        }
        assert_eq!(
            to_vec(&Value::Integer(u64::MAX.into())),
            [0x1B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn canonical_form_is_checked_on_request() {
        let canonical = [0xA2, 0x01, 0x18, 0x18, 0x20, 0x62, b'i', b'd'];
        assert!(from_slice_canonical(&canonical).is_ok());
        for non_canonical in [
            &[0xA2, 0x20, 0x62, b'i', b'd', 0x01, 0x18, 0x18][..], // keys -1 before 1
            &[0xA2, 0x01, 0x19, 0x00, 0x18, 0x20, 0x62, b'i', b'd'], // 24 in 3 bytes
            &[0xA2, 0x01, 0x18, 0x18, 0x20, 0x78, 0x02, b'i', b'd'], // length 2 in 2 bytes
            &[0xBF, 0x01, 0x18, 0x18, 0x20, 0x62, b'i', b'd', 0xFF], // indefinite map
            &[0x9F, 0x01, 0xFF],                                   // indefinite array
            &[0xF9, 0x3C, 0x00],                                   // float 1.0 as half
        ] {
            assert_eq!(
                from_slice_canonical(non_canonical).unwrap_err().status.0,
                0x12,
                "{non_canonical:02x?}"
            );
            // Well-formed: the lenient reader takes it.
            assert!(from_slice(non_canonical).is_ok(), "{non_canonical:02x?}");
        }
    }

    /// The walk that skips the re-encoding never calls canonical what the re-encoding would
    /// not reproduce, and takes the requests real clients send: every one-byte change and
    /// truncation of a GetAssertion and a MakeCredential request is checked against `to_vec`.
    #[test]
    fn plain_canonical_walk_agrees_with_the_re_encoding() {
        use crate::ctap2::commands::{get_assertion, make_credential};
        use crate::ctap2::{
            PublicKeyCredentialDescriptor, PublicKeyCredentialParameters,
            PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity,
        };
        let ga = get_assertion::Request {
            rp_id: "example.com".into(),
            client_data_hash: vec![0x42; 32],
            allow_list: Some(vec![PublicKeyCredentialDescriptor::public_key(vec![7; 80])]),
            ..Default::default()
        }
        .encode();
        let mc = make_credential::Request {
            client_data_hash: vec![0x42; 32],
            rp: PublicKeyCredentialRpEntity {
                id: "example.com".into(),
                name: Some("Example".into()),
            },
            user: PublicKeyCredentialUserEntity {
                id: b"user".to_vec(),
                name: Some("user".into()),
                display_name: Some("User".into()),
            },
            pub_key_cred_params: vec![PublicKeyCredentialParameters {
                type_: "public-key".into(),
                alg: -7,
            }],
            ..Default::default()
        }
        .encode();
        let mut walked = 0;
        for request in [&ga[1..], &mc[1..]] {
            assert!(is_plainly_canonical(request));
            let mut variants = vec![request.to_vec()];
            for i in 0..request.len() {
                variants.push(request[..i].to_vec());
                for value in [
                    0x00, 0x17, 0x18, 0x19, 0x20, 0x5f, 0x7f, 0xa0, 0xf5, 0xf9, 0xff,
                ] {
                    let mut changed = request.to_vec();
                    changed[i] = value;
                    variants.push(changed);
                }
                let mut bumped = request.to_vec();
                bumped[i] = bumped[i].wrapping_add(1);
                variants.push(bumped);
            }
            for bytes in variants {
                let Ok(value) = from_slice(&bytes) else {
                    continue;
                };
                if is_plainly_canonical(&bytes) {
                    walked += 1;
                    assert_eq!(to_vec(&value), bytes, "{bytes:02x?}");
                }
            }
        }
        assert!(walked > 100, "only {walked} variants took the walk");
    }

    #[test]
    fn strict_decoding() {
        assert_eq!(
            from_slice(&[0x01, 0x02]).unwrap_err().status,
            crate::ctap2::StatusCode::CTAP2_ERR_INVALID_CBOR
        );
        assert_eq!(from_slice(&[0x5F]).unwrap_err().status.0, 0x12);
        assert_eq!(from_slice(&[0x78, 0x05, b'a']).unwrap_err().status.0, 0x12);
        // 8 nested arrays are accepted, 9 are not.
        let mut ok = vec![0x81; MAX_DEPTH - 1];
        ok.push(0x80);
        assert!(from_slice(&ok).is_ok());
        let mut deep = vec![0x81; MAX_DEPTH];
        deep.push(0x80);
        assert_eq!(from_slice(&deep).unwrap_err().status.0, 0x12);
        // Huge declared lengths fail cleanly.
        assert!(from_slice(&[0x5B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(from_slice(&[0x9B, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        let duplicate = [0xA2, 0x01, 0x00, 0x01, 0x00];
        assert_eq!(
            MapReader::from_bytes(&duplicate, "m").unwrap_err().status.0,
            0x12
        );
    }
}
