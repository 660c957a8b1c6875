//! PSKC, the Portable Symmetric Key Container (RFC 6030): parsing, import policy and writing.
//!
//! Parsing and policy are separate steps:
//! 1. [`parse`] reads a `KeyContainer` into [`PskcFile`] with every value that can be decrypted
//!    decrypted (secret, counter, time, time interval, time drift; §6) and every `ValueMAC`
//!    checked before decryption (§6.1.1: HMAC over the base64-decoded `CipherValue`, i.e. IV ||
//!    ciphertext, keyed with the `MACKey`, itself encrypted under the container key; without a
//!    `MACKey` the encryption key is the MAC key). Values under an asymmetric algorithm
//!    (`rsa_1_5`, figure 8) are recorded as undecrypted, not refused.
//! 2. [`import_policy`] turns a parsed file into importable tokens, all or nothing: the first
//!    refused package refuses the whole batch with [`OtpError::ImportRefused`] naming it.
//!
//! Supported protection: none, pre-shared key (`aes128-cbc`, `aes192-cbc`, `aes256-cbc`, §6.1),
//! PBKDF2 password-based (§6.2; PRF HMAC-SHA1 by default, SHA-256/512 accepted). MAC algorithms
//! HMAC-SHA1/224/256/384/512. Key wrap (`kw-aes*`), GCM and 3DES are refused with a clear error.
//!
//! [`write()`] produces PSKC 1.0 that python-pskc and privacyIDEA read: plain, or the secret
//! AES-CBC encrypted under a pre-shared key or a PBKDF2 password key, with an encrypted HMAC-SHA1
//! `MACKey` (20 bytes) and a `ValueMAC`. Counter, time, interval and drift are not secret and
//! are written in plain, as most importers read them only so.

use aes::cipher::{
    BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit,
    block_padding::Pkcs7,
};
use hmac::{Hmac, KeyInit, Mac};
use roxmltree::{Document, Node};

use super::error::OtpError;
use super::hotp::HashAlg;
use super::ocra::OcraSuite;
use super::token::{FillRandom, Serial, TokenKind, TokenParams};
use crate::secret::{Secret, ct_eq};

const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
const XENC11: &str = "http://www.w3.org/2009/xmlenc11#";
const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const PKCS5: &str = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#";
const ALG_HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
const ALG_TOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:totp";
const ALG_OCRA: &str = "urn:ietf:params:xml:ns:keyprov:pskc#OCRA-1";
const ALG_PIN: &str = "urn:ietf:params:xml:ns:keyprov:pskc:pin";
/// The MAC that [`write()`] uses. HMAC-SHA1 is still a sound MAC, RFC 6030's examples use it,
/// and privacyIDEA 3.14 checks every `ValueMAC` with HMAC-SHA1 whatever `MACMethod` names, so an
/// export under HMAC-SHA256 could not be imported there.
const MAC_WRITTEN: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";

/// Largest PSKC document accepted (bytes).
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024 * 1024;
/// Largest PBKDF2 iteration count accepted from a file (denial-of-service bound).
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

/// How to decrypt an encrypted PSKC file.
#[derive(Debug, Clone, Default)]
pub enum PskcDecryption {
    /// No key: encrypted symmetric values are an error ([`OtpError::PskcKeyNeeded`]).
    #[default]
    None,
    /// The pre-shared key (§6.1).
    PreSharedKey(Secret<Vec<u8>>),
    /// The password for PBKDF2 key derivation (§6.2).
    Password(Secret<String>),
}

/// How the container says its values are protected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PskcEncryption {
    /// No `EncryptionKey` element.
    #[default]
    None,
    /// Pre-shared key, with its `ds:KeyName`s.
    PreSharedKey {
        /// Key names.
        key_names: Vec<String>,
    },
    /// PBKDF2 (§6.2).
    Pbkdf2 {
        /// Salt.
        salt: Vec<u8>,
        /// Iterations.
        iterations: u32,
        /// Derived key length in bytes.
        key_length: usize,
        /// PRF URI, `None` = HMAC-SHA1.
        prf: Option<String>,
        /// `xenc11:MasterKeyName`s.
        key_names: Vec<String>,
    },
    /// Asymmetric (X.509 certificate given, §6.3); not decryptable here.
    Asymmetric,
}

/// `DeviceInfo` (§4.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PskcDevice {
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Issue number.
    pub issue_no: Option<String>,
    /// Device binding.
    pub device_binding: Option<String>,
    /// Start of validity (xs:dateTime text).
    pub start_date: Option<String>,
    /// End of validity (xs:dateTime text).
    pub expiry_date: Option<String>,
    /// Device `UserId`.
    pub user_id: Option<String>,
}

/// `ChallengeFormat` / `ResponseFormat` (§4.3.4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PskcFormat {
    /// `Encoding` (DECIMAL, HEXADECIMAL, ALPHANUMERIC, BASE64, BINARY).
    pub encoding: Option<String>,
    /// `Length` (response) .
    pub length: Option<u32>,
    /// `Min` (challenge).
    pub min: Option<u32>,
    /// `Max` (challenge).
    pub max: Option<u32>,
    /// `CheckDigits`.
    pub check_digits: Option<bool>,
}

/// `PINPolicy` (§5.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PskcPinPolicy {
    /// `MinLength`.
    pub min_length: Option<u32>,
    /// `MaxLength`.
    pub max_length: Option<u32>,
    /// `PINKeyId`: the key package that holds the PIN.
    pub pin_key_id: Option<String>,
    /// `PINEncoding`.
    pub encoding: Option<String>,
    /// `PINUsageMode`.
    pub usage_mode: Option<String>,
    /// `MaxFailedAttempts`.
    pub max_failed_attempts: Option<u32>,
}

/// `Policy` (§5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PskcPolicy {
    /// Start date.
    pub start_date: Option<String>,
    /// Expiry date.
    pub expiry_date: Option<String>,
    /// PIN policy.
    pub pin_policy: Option<PskcPinPolicy>,
    /// `KeyUsage` values.
    pub key_usage: Vec<String>,
    /// `NumberOfTransactions`.
    pub number_of_transactions: Option<u64>,
}

/// A `Key` (§4.3.2) with its data decrypted where possible.
#[derive(Debug, Clone, Default)]
pub struct PskcKey {
    /// `Id` attribute.
    pub id: Option<String>,
    /// `Algorithm` attribute (URI).
    pub algorithm: Option<String>,
    /// `Issuer`.
    pub issuer: Option<String>,
    /// `AlgorithmParameters/Suite`.
    pub suite: Option<String>,
    /// `AlgorithmParameters/ChallengeFormat`.
    pub challenge_format: Option<PskcFormat>,
    /// `AlgorithmParameters/ResponseFormat`.
    pub response_format: Option<PskcFormat>,
    /// `KeyProfileId`.
    pub key_profile: Option<String>,
    /// `KeyReference`.
    pub key_reference: Option<String>,
    /// `FriendlyName`.
    pub friendly_name: Option<String>,
    /// Key `UserId`.
    pub user_id: Option<String>,
    /// `Data/Secret`.
    pub secret: Option<Secret<Vec<u8>>>,
    /// `Data/Counter`.
    pub counter: Option<u64>,
    /// `Data/Time`.
    pub time: Option<u64>,
    /// `Data/TimeInterval`.
    pub time_interval: Option<u64>,
    /// `Data/TimeDrift`.
    pub time_drift: Option<i64>,
    /// Values that could not be decrypted here: (element name, algorithm URI).
    pub undecrypted: Vec<(String, String)>,
    /// `Policy`.
    pub policy: PskcPolicy,
}

/// A `KeyPackage` (§4.3).
#[derive(Debug, Clone, Default)]
pub struct PskcPackage {
    /// 1-based position in the file.
    pub index: usize,
    /// `DeviceInfo`.
    pub device: PskcDevice,
    /// `CryptoModuleInfo/Id`.
    pub crypto_module: Option<String>,
    /// The key, if the package has one.
    pub key: Option<PskcKey>,
}

/// A parsed `KeyContainer`.
#[derive(Debug, Clone, Default)]
pub struct PskcFile {
    /// `Version` attribute.
    pub version: String,
    /// `Id` attribute.
    pub id: Option<String>,
    /// Protection declared by the container.
    pub encryption: PskcEncryption,
    /// `MACMethod/@Algorithm`.
    pub mac_algorithm: Option<String>,
    /// Whether the container carries an XML-DSig `Signature` (§7; not verified here).
    pub signed: bool,
    /// Key packages in document order.
    pub packages: Vec<PskcPackage>,
}

// ---------------------------------------------------------------- XML helpers

// Element and attribute names are matched without regard to case: privacyIDEA 3.14 writes its
// PSKC exports through an HTML serializer that lower-cases every name, and no two PSKC names
// differ only in case.

/// Whether `node` is an element named `name`.
fn is_element(node: Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name().eq_ignore_ascii_case(name)
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children().find(|c| is_element(*c, name))
}

fn children<'a, 'input: 'a>(
    node: Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'input>> + 'a {
    node.children().filter(move |c| is_element(*c, name))
}

/// The attribute `name` of `node`.
fn attr<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attributes()
        .find(|a| a.name().eq_ignore_ascii_case(name))
        .map(|a| a.value())
}

fn text(node: Node<'_, '_>) -> String {
    node.children()
        .filter_map(|c| c.text())
        .collect::<String>()
        .trim()
        .to_owned()
}

fn child_text(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(text)
}

fn b64(what: &str, value: &str) -> Result<Vec<u8>, OtpError> {
    let cleaned: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    data_encoding::BASE64
        .decode(cleaned.as_bytes())
        .map_err(|e| OtpError::Pskc(format!("{what}: bad base64: {e}")))
}

fn parse_num<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, OtpError> {
    value
        .trim()
        .parse()
        .map_err(|_| OtpError::Pskc(format!("{what}: {value:?} is not a valid number")))
}

fn attr_num(node: Node<'_, '_>, name: &str) -> Result<Option<u32>, OtpError> {
    attr(node, name).map(|v| parse_num(name, v)).transpose()
}

fn attr_bool(node: Node<'_, '_>, name: &str) -> Option<bool> {
    attr(node, name).map(|v| matches!(v.trim(), "true" | "1"))
}

// ---------------------------------------------------------------- crypto helpers

fn algorithm_name(uri: &str) -> &str {
    uri.rsplit_once('#').map_or(uri, |(_, name)| name)
}

fn cbc_key_len(algorithm: &str) -> Option<usize> {
    match algorithm_name(algorithm) {
        "aes128-cbc" => Some(16),
        "aes192-cbc" => Some(24),
        "aes256-cbc" => Some(32),
        _ => None,
    }
}

fn is_asymmetric(algorithm: &str) -> bool {
    matches!(
        algorithm_name(algorithm),
        "rsa_1_5" | "rsa-1_5" | "rsa-oaep-mgf1p" | "rsa-oaep"
    )
}

fn cbc_decrypt(algorithm: &str, key: &[u8], data: &[u8], what: &str) -> Result<Vec<u8>, OtpError> {
    let Some(key_len) = cbc_key_len(algorithm) else {
        return Err(OtpError::Pskc(format!(
            "{what}: unsupported encryption algorithm {algorithm}"
        )));
    };
    if key.len() != key_len {
        return Err(OtpError::PskcDecrypt(format!(
            "{what} ({} needs a {key_len}-byte key, got {} bytes)",
            algorithm_name(algorithm),
            key.len()
        )));
    }
    if data.len() < 32 || !data.len().is_multiple_of(16) {
        return Err(OtpError::Pskc(format!(
            "{what}: CipherValue must be IV + whole AES blocks"
        )));
    }
    let (iv, ciphertext) = data.split_at(16);
    let plaintext = match key_len {
        16 => cbc_decrypt_as::<aes::Aes128>(key, iv, ciphertext),
        24 => cbc_decrypt_as::<aes::Aes192>(key, iv, ciphertext),
        _ => cbc_decrypt_as::<aes::Aes256>(key, iv, ciphertext),
    };
    plaintext.ok_or_else(|| OtpError::PskcDecrypt(what.to_owned()))
}

/// AES-CBC with PKCS#7 padding under the cipher `C`; `None` on a wrong key or IV length or bad
/// padding.
fn cbc_decrypt_as<C>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>>
where
    C: BlockCipherDecrypt,
    cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
{
    cbc::Decryptor::<C>::new_from_slices(key, iv)
        .ok()?
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .ok()
}

/// AES-CBC with PKCS#7 padding under the cipher `C`; `None` on a wrong key length.
fn cbc_encrypt_as<C>(key: &[u8], iv: &[u8; 16], plaintext: &[u8]) -> Option<Vec<u8>>
where
    C: BlockCipherEncrypt,
    cbc::Encryptor<C>: KeyIvInit + BlockModeEncrypt,
{
    let encryptor = cbc::Encryptor::<C>::new_from_slices(key, iv).ok()?;
    Some(encryptor.encrypt_padded_vec::<Pkcs7>(plaintext))
}

/// IV ‖ AES-CBC ciphertext (the `CipherValue` of RFC 6030 §6.1).
fn cbc_encrypt(key: &[u8], iv: &[u8; 16], plaintext: &[u8]) -> Result<Vec<u8>, OtpError> {
    let ciphertext = match key.len() {
        16 => cbc_encrypt_as::<aes::Aes128>(key, iv, plaintext),
        24 => cbc_encrypt_as::<aes::Aes192>(key, iv, plaintext),
        32 => cbc_encrypt_as::<aes::Aes256>(key, iv, plaintext),
        _ => None,
    }
    .ok_or_else(|| OtpError::Pskc("encryption key must be 16, 24 or 32 bytes".into()))?;
    Ok([iv.as_slice(), &ciphertext].concat())
}

fn hmac_by_uri(algorithm: &str, key: &[u8], data: &[u8]) -> Result<Vec<u8>, OtpError> {
    fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Result<Vec<u8>, OtpError> {
        let mut mac = <M as KeyInit>::new_from_slice(key)
            .map_err(|_| OtpError::Pskc("bad MAC key".into()))?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }
    match algorithm_name(algorithm) {
        "hmac-sha1" => run::<Hmac<sha1::Sha1>>(key, data),
        "hmac-sha224" => run::<Hmac<sha2::Sha224>>(key, data),
        "hmac-sha256" => run::<Hmac<sha2::Sha256>>(key, data),
        "hmac-sha384" => run::<Hmac<sha2::Sha384>>(key, data),
        "hmac-sha512" => run::<Hmac<sha2::Sha512>>(key, data),
        other => Err(OtpError::Pskc(format!("unsupported MAC algorithm {other}"))),
    }
}

fn pbkdf2_derive(
    prf: Option<&str>,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    out: &mut [u8],
) -> Result<(), OtpError> {
    match prf.map(algorithm_name) {
        None | Some("") | Some("hmac-sha1") => {
            pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, out)
        }
        Some("hmac-sha256") => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, out),
        Some("hmac-sha384") => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, iterations, out),
        Some("hmac-sha512") => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, out),
        Some(other) => return Err(OtpError::Pskc(format!("unsupported PBKDF2 PRF {other}"))),
    }
    Ok(())
}

// ---------------------------------------------------------------- parsing

struct Keys {
    encryption: Option<Secret<Vec<u8>>>,
    mac: Option<Secret<Vec<u8>>>,
    mac_algorithm: Option<String>,
    declared: PskcEncryption,
}

/// A value read from `Data/*`: plain text, or decrypted bytes, or not decryptable here.
enum RawValue {
    Plain(String),
    Decrypted(Secret<Vec<u8>>),
    Undecrypted(String),
}

/// An `xenc:EncryptedDataType` element (`EncryptedValue`, `MACKey`): its
/// `EncryptionMethod/@Algorithm` and the base64 text of `CipherData/CipherValue`.
fn encrypted_parts<'a>(element: Node<'a, '_>) -> (Option<&'a str>, Option<String>) {
    let algorithm = child(element, "EncryptionMethod").and_then(|m| attr(m, "Algorithm"));
    let cipher = child(element, "CipherData")
        .and_then(|d| child(d, "CipherValue"))
        .map(text);
    (algorithm, cipher)
}

fn read_value(
    element: Node<'_, '_>,
    keys: &Keys,
    what: &str,
) -> Result<Option<RawValue>, OtpError> {
    if let Some(plain) = child(element, "PlainValue") {
        return Ok(Some(RawValue::Plain(text(plain))));
    }
    let Some(encrypted) = child(element, "EncryptedValue") else {
        return Ok(None);
    };
    let (algorithm, cipher) = encrypted_parts(encrypted);
    let algorithm = algorithm
        .ok_or_else(|| OtpError::Pskc(format!("{what}: EncryptedValue without EncryptionMethod")))?
        .to_owned();
    let cipher = cipher.ok_or_else(|| {
        OtpError::Pskc(format!(
            "{what}: EncryptedValue without CipherData/CipherValue"
        ))
    })?;
    if is_asymmetric(&algorithm) || matches!(keys.declared, PskcEncryption::Asymmetric) {
        return Ok(Some(RawValue::Undecrypted(algorithm)));
    }
    let data = b64(what, &cipher)?;
    let key = keys
        .encryption
        .as_ref()
        .ok_or_else(|| OtpError::PskcKeyNeeded(describe(&keys.declared)))?;
    if cbc_key_len(&algorithm).is_some() {
        // CBC has no integrity: RFC 6030 §6.1.1 requires the ValueMAC; check it before decrypting.
        let mac_text = child(element, "ValueMAC").map(text).ok_or_else(|| {
            OtpError::Pskc(format!("{what}: CBC-encrypted value without ValueMAC"))
        })?;
        let given = b64(what, &mac_text)?;
        let mac_key = keys.mac.as_ref().unwrap_or(key);
        let mac_algorithm = keys
            .mac_algorithm
            .as_deref()
            .unwrap_or("http://www.w3.org/2000/09/xmldsig#hmac-sha1");
        let expected = hmac_by_uri(mac_algorithm, mac_key.expose_secret(), &data)?;
        if !ct_eq(&expected, &given) {
            return Err(OtpError::PskcMac(what.to_owned()));
        }
    }
    Ok(Some(RawValue::Decrypted(Secret::new(cbc_decrypt(
        &algorithm,
        key.expose_secret(),
        &data,
        what,
    )?))))
}

fn describe(encryption: &PskcEncryption) -> String {
    match encryption {
        PskcEncryption::None => "no EncryptionKey declared".into(),
        PskcEncryption::PreSharedKey { key_names } => format!("pre-shared key {key_names:?}"),
        PskcEncryption::Pbkdf2 { key_names, .. } => format!("PBKDF2 password {key_names:?}"),
        PskcEncryption::Asymmetric => "asymmetric key".into(),
    }
}

/// Decodes an integer from decrypted bytes the way python-pskc does: ASCII decimal if all bytes
/// are digits, otherwise big-endian binary (at most 8 bytes).
fn decrypted_int(bytes: &[u8], what: &str) -> Result<u64, OtpError> {
    if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
        return parse_num(what, &String::from_utf8_lossy(bytes));
    }
    let significant: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if significant.len() > 8 {
        return Err(OtpError::Pskc(format!(
            "{what}: encrypted integer longer than 8 bytes"
        )));
    }
    Ok(significant
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Decodes a signed integer from decrypted bytes: ASCII decimal (with a sign) if it reads as
/// one, otherwise big-endian two's complement of at most 8 bytes.
fn decrypted_signed(bytes: &[u8], what: &str) -> Result<i64, OtpError> {
    if !bytes.is_empty() && bytes.iter().all(|c| c.is_ascii_digit() || *c == b'-') {
        return parse_num(what, &String::from_utf8_lossy(bytes));
    }
    if bytes.is_empty() || bytes.len() > 8 {
        return Err(OtpError::Pskc(format!("{what}: bad encrypted integer")));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut full = [fill; 8];
    full[8 - bytes.len()..].copy_from_slice(bytes);
    Ok(i64::from_be_bytes(full))
}

/// `Data/<name>` of a key, decoded by `plain` (from its text) or `decrypted` (from its bytes);
/// both are given `"<where_> <name>"` for their errors. `None` when absent, or when the value
/// cannot be decrypted here: then it is recorded in `key.undecrypted`.
fn data_value<T>(
    (data, keys, where_): (Node<'_, '_>, &Keys, &str),
    key: &mut PskcKey,
    name: &str,
    plain: impl FnOnce(&str, &str) -> Result<T, OtpError>,
    decrypted: impl FnOnce(&[u8], &str) -> Result<T, OtpError>,
) -> Result<Option<T>, OtpError> {
    let Some(element) = child(data, name) else {
        return Ok(None);
    };
    let what = format!("{where_} {name}");
    match read_value(element, keys, &what)? {
        None => Ok(None),
        Some(RawValue::Plain(t)) => plain(&what, &t).map(Some),
        Some(RawValue::Decrypted(bytes)) => decrypted(bytes.expose_secret(), &what).map(Some),
        Some(RawValue::Undecrypted(alg)) => {
            key.undecrypted.push((name.to_owned(), alg));
            Ok(None)
        }
    }
}

fn parse_format(node: Node<'_, '_>) -> Result<PskcFormat, OtpError> {
    Ok(PskcFormat {
        encoding: attr(node, "Encoding").map(str::to_owned),
        length: attr_num(node, "Length")?,
        min: attr_num(node, "Min")?,
        max: attr_num(node, "Max")?,
        check_digits: attr_bool(node, "CheckDigits"),
    })
}

fn parse_key(node: Node<'_, '_>, keys: &Keys, where_: &str) -> Result<PskcKey, OtpError> {
    let mut key = PskcKey {
        id: attr(node, "Id").map(str::to_owned),
        algorithm: attr(node, "Algorithm").map(str::to_owned),
        issuer: child_text(node, "Issuer"),
        key_profile: child_text(node, "KeyProfileId"),
        key_reference: child_text(node, "KeyReference"),
        friendly_name: child_text(node, "FriendlyName"),
        user_id: child_text(node, "UserId"),
        ..PskcKey::default()
    };
    if let Some(params) = child(node, "AlgorithmParameters") {
        key.suite = child(params, "Suite").and_then(|suite| {
            let named = text(suite);
            // privacyIDEA names the hash in an attribute instead: <Suite hashalgo="sha256"/>.
            if named.is_empty() {
                attr(suite, "hashalgo").map(str::to_owned)
            } else {
                Some(named)
            }
        });
        key.challenge_format = child(params, "ChallengeFormat")
            .map(parse_format)
            .transpose()?;
        key.response_format = child(params, "ResponseFormat")
            .map(parse_format)
            .transpose()?;
    }
    if let Some(data) = child(node, "Data") {
        let source = (data, keys, where_);
        let secret_text = |what: &str, t: &str| b64(what, t).map(Secret::new);
        let secret_bytes = |b: &[u8], _: &str| Ok(Secret::new(b.to_vec()));
        key.secret = data_value(source, &mut key, "Secret", secret_text, secret_bytes)?;
        key.counter = data_value(source, &mut key, "Counter", parse_num, decrypted_int)?;
        key.time = data_value(source, &mut key, "Time", parse_num, decrypted_int)?;
        let interval = data_value(source, &mut key, "TimeInterval", parse_num, decrypted_int)?;
        key.time_interval = interval;
        key.time_drift = data_value(source, &mut key, "TimeDrift", parse_num, decrypted_signed)?;
    }
    if let Some(policy) = child(node, "Policy") {
        key.policy = PskcPolicy {
            start_date: child_text(policy, "StartDate"),
            expiry_date: child_text(policy, "ExpiryDate"),
            pin_policy: child(policy, "PINPolicy")
                .map(|p| -> Result<PskcPinPolicy, OtpError> {
                    Ok(PskcPinPolicy {
                        min_length: attr_num(p, "MinLength")?,
                        max_length: attr_num(p, "MaxLength")?,
                        pin_key_id: attr(p, "PINKeyId").map(str::to_owned),
                        encoding: attr(p, "PINEncoding").map(str::to_owned),
                        usage_mode: attr(p, "PINUsageMode").map(str::to_owned),
                        max_failed_attempts: attr_num(p, "MaxFailedAttempts")?,
                    })
                })
                .transpose()?,
            key_usage: children(policy, "KeyUsage").map(text).collect(),
            number_of_transactions: child_text(policy, "NumberOfTransactions")
                .map(|t| parse_num("NumberOfTransactions", &t))
                .transpose()?,
        };
    }
    Ok(key)
}

fn parse_encryption(root: Node<'_, '_>) -> Result<PskcEncryption, OtpError> {
    let Some(enc) = child(root, "EncryptionKey") else {
        return Ok(PskcEncryption::None);
    };
    if let Some(derived) = child(enc, "DerivedKey") {
        let method = child(derived, "KeyDerivationMethod")
            .ok_or_else(|| OtpError::Pskc("DerivedKey without KeyDerivationMethod".into()))?;
        let algorithm = attr(method, "Algorithm").unwrap_or_default();
        if algorithm_name(algorithm) != "pbkdf2" {
            return Err(OtpError::Pskc(format!(
                "unsupported key derivation {algorithm}"
            )));
        }
        let params = child(method, "PBKDF2-params")
            .ok_or_else(|| OtpError::Pskc("missing PBKDF2-params".into()))?;
        let salt = child(params, "Salt")
            .and_then(|s| child(s, "Specified"))
            .map(text)
            .ok_or_else(|| OtpError::Pskc("PBKDF2: missing Salt/Specified".into()))?;
        let iterations: u32 = parse_num(
            "PBKDF2 IterationCount",
            &child_text(params, "IterationCount")
                .ok_or_else(|| OtpError::Pskc("PBKDF2: missing IterationCount".into()))?,
        )?;
        if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
            return Err(OtpError::Pskc(format!(
                "PBKDF2: iteration count {iterations} out of range"
            )));
        }
        let key_length: usize = match child_text(params, "KeyLength") {
            Some(t) => parse_num("PBKDF2 KeyLength", &t)?,
            None => 16,
        };
        if !matches!(key_length, 16 | 24 | 32) {
            return Err(OtpError::Pskc(format!(
                "PBKDF2: key length {key_length} is not an AES key length"
            )));
        }
        let prf = child(params, "PRF")
            .and_then(|p| attr(p, "Algorithm"))
            .map(str::to_owned);
        return Ok(PskcEncryption::Pbkdf2 {
            salt: b64("PBKDF2 Salt", &salt)?,
            iterations,
            key_length,
            prf,
            key_names: children(derived, "MasterKeyName").map(text).collect(),
        });
    }
    if child(enc, "X509Data").is_some() {
        return Ok(PskcEncryption::Asymmetric);
    }
    Ok(PskcEncryption::PreSharedKey {
        key_names: children(enc, "KeyName").map(text).collect(),
    })
}

/// Parses a PSKC document, decrypting every value it can with `decryption`.
pub fn parse(xml: &str, decryption: &PskcDecryption) -> Result<PskcFile, OtpError> {
    if xml.len() > MAX_DOCUMENT_LEN {
        return Err(OtpError::Pskc(format!(
            "document larger than {MAX_DOCUMENT_LEN} bytes"
        )));
    }
    let doc = Document::parse(xml).map_err(|e| OtpError::Pskc(format!("malformed XML: {e}")))?;
    let root = doc.root_element();
    if !is_element(root, "KeyContainer") || root.tag_name().namespace() != Some(NS_PSKC) {
        return Err(OtpError::Pskc(format!(
            "root element must be {{{NS_PSKC}}}KeyContainer"
        )));
    }
    let version = attr(root, "Version").unwrap_or_default().to_owned();
    if version != "1.0" {
        return Err(OtpError::Pskc(format!(
            "unsupported PSKC version {version:?} (1.0 expected)"
        )));
    }
    let declared = parse_encryption(root)?;
    let encryption = match (decryption, &declared) {
        (PskcDecryption::None, _) => None,
        (PskcDecryption::PreSharedKey(key), _) => Some(key.clone()),
        (
            PskcDecryption::Password(password),
            PskcEncryption::Pbkdf2 {
                salt,
                iterations,
                key_length,
                prf,
                ..
            },
        ) => {
            let mut key = vec![0u8; *key_length];
            pbkdf2_derive(
                prf.as_deref(),
                password.expose_secret().as_bytes(),
                salt,
                *iterations,
                &mut key,
            )?;
            Some(Secret::new(key))
        }
        (PskcDecryption::Password(_), _) => {
            return Err(OtpError::Pskc(
                "a password was given but the file does not use PBKDF2".into(),
            ));
        }
    };
    let mac_method = child(root, "MACMethod");
    let mac_algorithm = mac_method
        .and_then(|m| attr(m, "Algorithm"))
        .map(str::to_owned);
    let mut keys = Keys {
        encryption,
        mac: None,
        mac_algorithm: mac_algorithm.clone(),
        declared: declared.clone(),
    };
    if let Some(mac_key) = mac_method.and_then(|m| child(m, "MACKey")) {
        let (algorithm, cipher) = encrypted_parts(mac_key);
        let algorithm = algorithm.unwrap_or_default();
        let cipher = cipher.ok_or_else(|| OtpError::Pskc("MACKey without CipherValue".into()))?;
        if let Some(key) = &keys.encryption {
            let data = b64("MACKey", &cipher)?;
            let decrypted = cbc_decrypt(algorithm, key.expose_secret(), &data, "MACKey")?;
            keys.mac = Some(Secret::new(decrypted));
        }
    }
    let signed = children(root, "Signature").any(|s| s.tag_name().namespace() == Some(DS));
    let mut packages = Vec::new();
    for (i, package) in children(root, "KeyPackage").enumerate() {
        let index = i + 1;
        let device =
            child(package, "DeviceInfo").map_or_else(PskcDevice::default, |d| PskcDevice {
                manufacturer: child_text(d, "Manufacturer"),
                serial: child_text(d, "SerialNo"),
                model: child_text(d, "Model"),
                issue_no: child_text(d, "IssueNo"),
                device_binding: child_text(d, "DeviceBinding"),
                start_date: child_text(d, "StartDate"),
                expiry_date: child_text(d, "ExpiryDate"),
                user_id: child_text(d, "UserId"),
            });
        let crypto_module = child(package, "CryptoModuleInfo").and_then(|c| child_text(c, "Id"));
        let key = child(package, "Key")
            .map(|k| parse_key(k, &keys, &format!("KeyPackage #{index}")))
            .transpose()?;
        packages.push(PskcPackage {
            index,
            device,
            crypto_module,
            key,
        });
    }
    Ok(PskcFile {
        version,
        id: attr(root, "Id").map(str::to_owned),
        encryption: declared,
        mac_algorithm,
        signed,
        packages,
    })
}

// ---------------------------------------------------------------- import policy

/// Import options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportOptions {
    /// Minimum secret length in bits (default 128, RFC 4226 §4 R6).
    pub min_secret_bits: usize,
    /// Administrator override: accept shorter secrets.
    pub allow_short_secrets: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            min_secret_bits: 128,
            allow_short_secrets: false,
        }
    }
}

/// A token ready to be stored (import) or written (export).
#[derive(Debug, Clone)]
pub struct PskcToken {
    /// 1-based KeyPackage index in the source file (0 for tokens not from a file).
    pub package_index: usize,
    /// `Key/@Id`.
    pub key_id: Option<String>,
    /// Serial, kind, digits, hash, step, T0, issuer, label (FriendlyName).
    pub params: TokenParams,
    /// The seed.
    pub secret: Secret<Vec<u8>>,
    /// HOTP counter / OCRA counter (0 if absent).
    pub counter: u64,
    /// TOTP drift in steps.
    pub drift_steps: i64,
    /// Token PIN from a referenced PIN key package (figure 5).
    pub pin: Option<Secret<String>>,
    /// `UserId` of the key or device.
    pub user_id: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Validity start (policy or device StartDate).
    pub valid_from: Option<String>,
    /// Validity end (policy or device ExpiryDate).
    pub valid_to: Option<String>,
}

fn algorithm_kind(algorithm: &str) -> Option<&'static str> {
    let lower = algorithm.to_ascii_lowercase();
    let name = lower.rsplit(['#', ':']).next().unwrap_or_default();
    match name {
        "hotp" => Some("hotp"),
        "totp" => Some("totp"),
        "pin" => Some("pin"),
        _ if lower.contains("ocra") => Some("ocra"),
        _ => None,
    }
}

fn suite_hash(suite: Option<&str>) -> HashAlg {
    let upper = suite
        .unwrap_or_default()
        .to_ascii_uppercase()
        .replace('-', "");
    if upper.contains("SHA512") {
        HashAlg::Sha512
    } else if upper.contains("SHA256") {
        HashAlg::Sha256
    } else {
        HashAlg::Sha1
    }
}

/// Applies the import policy to a parsed file: either every key package becomes a token, or the
/// first refused package refuses the whole batch (an error naming the package and its key id).
///
/// Refused: a signed file (XML-DSig is not verified here), asymmetrically encrypted values,
/// packages without a key or without a secret (key references, figure 4), secrets shorter than
/// `min_secret_bits` unless overridden, unknown algorithms or unusable parameters, and a serial
/// that appears twice. PIN key packages (algorithm `...:pin`) referenced from another key's
/// `PINPolicy/@PINKeyId` become that token's PIN instead of tokens.
pub fn import_policy(file: &PskcFile, options: &ImportOptions) -> Result<Vec<PskcToken>, OtpError> {
    let refuse = |package: &PskcPackage, reason: String| OtpError::ImportRefused {
        index: package.index,
        key_id: package.key.as_ref().and_then(|k| k.id.clone()),
        reason,
    };
    if file.packages.is_empty() {
        return Err(OtpError::Pskc("the file has no KeyPackage".into()));
    }
    let mut tokens: Vec<PskcToken> = Vec::new();
    for package in &file.packages {
        if file.signed {
            return Err(refuse(
                package,
                "the file is signed (XML-DSig); signature verification is not supported".into(),
            ));
        }
        let Some(key) = &package.key else {
            return Err(refuse(package, "the package has no Key".into()));
        };
        if let Some((field, alg)) = key.undecrypted.first() {
            return Err(refuse(
                package,
                format!(
                    "{field} is encrypted with {} (asymmetric keys are not supported)",
                    algorithm_name(alg)
                ),
            ));
        }
        let kind_name = key.algorithm.as_deref().and_then(algorithm_kind);
        if kind_name == Some("pin") {
            continue;
        }
        let Some(secret) = &key.secret else {
            return Err(refuse(
                package,
                "no secret (key references and derived keys are not supported)".into(),
            ));
        };
        let bits = secret.expose_secret().len() * 8;
        if bits < options.min_secret_bits && !options.allow_short_secrets {
            return Err(refuse(
                package,
                format!(
                    "secret of {bits} bits is shorter than {} bits (administrator override needed)",
                    options.min_secret_bits
                ),
            ));
        }
        if secret.expose_secret().is_empty() {
            return Err(refuse(package, "empty secret".into()));
        }
        let serial_text = package
            .device
            .serial
            .clone()
            .or_else(|| key.id.clone())
            .ok_or_else(|| refuse(package, "neither a SerialNo nor a Key Id".into()))?;
        let serial: Serial = serial_text
            .parse()
            .map_err(|e: OtpError| refuse(package, e.to_string()))?;
        if tokens.iter().any(|t| t.params.serial == serial) {
            return Err(refuse(
                package,
                format!("serial {serial} appears twice in the file"),
            ));
        }
        let response = key.response_format.clone().unwrap_or_default();
        if let Some(enc) = &response.encoding
            && kind_name != Some("ocra")
            && !enc.eq_ignore_ascii_case("DECIMAL")
        {
            return Err(refuse(
                package,
                format!("response encoding {enc} is not supported (DECIMAL only)"),
            ));
        }
        let kind = match kind_name {
            Some("hotp") => TokenKind::ResponseOnlyHotp,
            Some("totp") => TokenKind::ResponseOnlyTotp,
            Some("ocra") => {
                let text = key
                    .suite
                    .as_deref()
                    .ok_or_else(|| refuse(package, "OCRA key without Suite".into()))?;
                let suite: OcraSuite = text
                    .parse()
                    .map_err(|e: OtpError| refuse(package, e.to_string()))?;
                // KeyUsage "Integrity" marks a signature key (keygate writes it; RFC 6030 §5).
                if key.policy.key_usage.iter().any(|u| u == "Integrity") {
                    TokenKind::Signature { suite }
                } else {
                    TokenKind::ChallengeResponse { suite }
                }
            }
            _ => {
                return Err(refuse(
                    package,
                    format!(
                        "unsupported algorithm {:?}",
                        key.algorithm.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
        };
        let mut params = TokenParams::new(serial, kind);
        params.digits = response.length.unwrap_or(6);
        params.alg = suite_hash(key.suite.as_deref());
        // Time fields belong to TOTP; some writers (privacyIDEA) put a TimeInterval of 0 in
        // every HOTP key.
        if matches!(params.kind, TokenKind::ResponseOnlyTotp) {
            params.step = key.time_interval.unwrap_or(30);
            params.t0 = key.time.unwrap_or(0);
        }
        params.issuer = key.issuer.clone();
        params.label = key.friendly_name.clone();
        if let TokenKind::ChallengeResponse { suite } = &params.kind {
            params.digits = suite.digits;
            params.alg = suite.hash;
        }
        params
            .validate()
            .map_err(|e| refuse(package, e.to_string()))?;
        let pin = match key
            .policy
            .pin_policy
            .as_ref()
            .and_then(|p| p.pin_key_id.as_deref())
        {
            Some(pin_id) => {
                let pin_key = file
                    .packages
                    .iter()
                    .filter_map(|p| p.key.as_ref())
                    .find(|k| k.id.as_deref() == Some(pin_id))
                    .ok_or_else(|| {
                        refuse(
                            package,
                            format!("PINKeyId {pin_id} names no key in the file"),
                        )
                    })?;
                let value = pin_key
                    .secret
                    .as_ref()
                    .ok_or_else(|| refuse(package, format!("PIN key {pin_id} has no value")))?;
                let text = String::from_utf8(value.expose_secret().clone())
                    .map_err(|_| refuse(package, "PIN is not UTF-8".into()))?;
                Some(Secret::new(text))
            }
            None => None,
        };
        tokens.push(PskcToken {
            package_index: package.index,
            key_id: key.id.clone(),
            params,
            secret: secret.clone(),
            counter: key.counter.unwrap_or(0),
            drift_steps: key.time_drift.unwrap_or(0),
            pin,
            user_id: key
                .user_id
                .clone()
                .or_else(|| package.device.user_id.clone()),
            manufacturer: package.device.manufacturer.clone(),
            valid_from: key
                .policy
                .start_date
                .clone()
                .or_else(|| package.device.start_date.clone()),
            valid_to: key
                .policy
                .expiry_date
                .clone()
                .or_else(|| package.device.expiry_date.clone()),
        });
    }
    if tokens.is_empty() {
        return Err(OtpError::Pskc(
            "the file has no importable key (only PIN keys)".into(),
        ));
    }
    Ok(tokens)
}

// ---------------------------------------------------------------- writing

/// Protection of a written PSKC file.
#[derive(Debug, Clone)]
pub enum PskcProtection {
    /// No encryption.
    Plain,
    /// AES-CBC under a pre-shared key of 16, 24 or 32 bytes (aes128/192/256-cbc).
    PreSharedKey {
        /// The key.
        key: Secret<Vec<u8>>,
        /// Its `ds:KeyName`.
        key_name: String,
    },
    /// AES-128-CBC under a PBKDF2-HMAC-SHA1 key derived from a password (random 16-byte salt).
    Password {
        /// The password.
        password: Secret<String>,
        /// PBKDF2 iterations (python-pskc writes 100 000 by default).
        iterations: u32,
        /// Its `xenc11:MasterKeyName`.
        key_name: String,
    },
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

struct Writer<'a, 'r> {
    key: Option<Secret<Vec<u8>>>,
    mac_key: Option<Secret<Vec<u8>>>,
    algorithm: String,
    fill: FillRandom<'r>,
    out: &'a mut String,
}

impl Writer<'_, '_> {
    /// `<pskc:{tag}>` in a key's `Data`: encrypted with a `ValueMAC` when the file is protected
    /// and `encrypt` is set, otherwise `plain`.
    fn value(
        &mut self,
        tag: &str,
        plain: &str,
        bytes: &[u8],
        encrypt: bool,
    ) -> Result<(), OtpError> {
        let indent = "        ";
        self.out.push_str(&format!("{indent}<pskc:{tag}>\n"));
        match (&self.key, &self.mac_key, encrypt) {
            (Some(key), Some(mac_key), true) => {
                let mut iv = [0u8; 16];
                (self.fill)(&mut iv);
                let cipher = cbc_encrypt(key.expose_secret(), &iv, bytes)?;
                let mac = hmac_by_uri(MAC_WRITTEN, mac_key.expose_secret(), &cipher)?;
                self.out.push_str(&format!(
                    "{indent}  <pskc:EncryptedValue>\n{indent}    <xenc:EncryptionMethod Algorithm=\"{}\"/>\n{indent}    <xenc:CipherData>\n{indent}      <xenc:CipherValue>{}</xenc:CipherValue>\n{indent}    </xenc:CipherData>\n{indent}  </pskc:EncryptedValue>\n{indent}  <pskc:ValueMAC>{}</pskc:ValueMAC>\n",
                    self.algorithm,
                    data_encoding::BASE64.encode(&cipher),
                    data_encoding::BASE64.encode(&mac)
                ));
            }
            _ => self.out.push_str(&format!(
                "{indent}  <pskc:PlainValue>{}</pskc:PlainValue>\n",
                escape(plain)
            )),
        }
        self.out.push_str(&format!("{indent}</pskc:{tag}>\n"));
        Ok(())
    }

    /// `Data/Secret`: base64 in plain.
    fn secret(&mut self, bytes: &[u8]) -> Result<(), OtpError> {
        self.value("Secret", &data_encoding::BASE64.encode(bytes), bytes, true)
    }

    /// An unsigned `Data` integer, always in plain: counters and times are not secret, and
    /// importers such as privacyIDEA 3.14 read only a `PlainValue` there.
    fn int(&mut self, tag: &str, value: u64) -> Result<(), OtpError> {
        self.value(tag, &value.to_string(), &[], false)
    }

    /// `<KeyPackage><DeviceInfo>..</DeviceInfo>` of `token` (its key and its PIN key share it).
    fn open_package(&mut self, token: &PskcToken) {
        self.out
            .push_str("  <pskc:KeyPackage>\n    <pskc:DeviceInfo>\n");
        let manufacturer = token.manufacturer.as_deref();
        opt_elem(self.out, "      ", "Manufacturer", manufacturer);
        opt_elem(
            self.out,
            "      ",
            "SerialNo",
            Some(token.params.serial.as_str()),
        );
        self.out.push_str("    </pskc:DeviceInfo>\n");
    }
}

fn opt_elem(out: &mut String, indent: &str, tag: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.push_str(&format!("{indent}<pskc:{tag}>{}</pskc:{tag}>\n", escape(v)));
    }
}

/// Writes tokens as a PSKC 1.0 document (python-pskc reads it back). `fill` supplies the IVs,
/// the MAC key and the PBKDF2 salt.
pub fn write(
    tokens: &[PskcToken],
    protection: &PskcProtection,
    fill: FillRandom<'_>,
) -> Result<String, OtpError> {
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<pskc:KeyContainer xmlns:pskc=\"{NS_PSKC}\" xmlns:ds=\"{DS}\" xmlns:xenc=\"{XENC}\" xmlns:xenc11=\"{XENC11}\" xmlns:pkcs5=\"{PKCS5}\" Version=\"1.0\">\n"
    ));
    let key: Option<Secret<Vec<u8>>> = match protection {
        PskcProtection::Plain => None,
        PskcProtection::PreSharedKey { key, key_name } => {
            if !matches!(key.expose_secret().len(), 16 | 24 | 32) {
                return Err(OtpError::Pskc(
                    "pre-shared key must be 16, 24 or 32 bytes".into(),
                ));
            }
            out.push_str(&format!("  <pskc:EncryptionKey>\n    <ds:KeyName>{}</ds:KeyName>\n  </pskc:EncryptionKey>\n", escape(key_name)));
            Some(key.clone())
        }
        PskcProtection::Password {
            password,
            iterations,
            key_name,
        } => {
            if *iterations == 0 || *iterations > MAX_PBKDF2_ITERATIONS {
                return Err(OtpError::Pskc("PBKDF2 iterations out of range".into()));
            }
            let mut salt = [0u8; 16];
            fill(&mut salt);
            let mut derived = vec![0u8; 16];
            pbkdf2_derive(
                None,
                password.expose_secret().as_bytes(),
                &salt,
                *iterations,
                &mut derived,
            )?;
            out.push_str(&format!(
                "  <pskc:EncryptionKey>\n    <xenc11:DerivedKey>\n      <xenc11:KeyDerivationMethod Algorithm=\"{PKCS5}pbkdf2\">\n        <xenc11:PBKDF2-params>\n          <Salt>\n            <Specified>{}</Specified>\n          </Salt>\n          <IterationCount>{iterations}</IterationCount>\n          <KeyLength>16</KeyLength>\n        </xenc11:PBKDF2-params>\n      </xenc11:KeyDerivationMethod>\n      <xenc11:MasterKeyName>{}</xenc11:MasterKeyName>\n    </xenc11:DerivedKey>\n  </pskc:EncryptionKey>\n",
                data_encoding::BASE64.encode(&salt),
                escape(key_name)
            ));
            Some(Secret::new(derived))
        }
    };
    let algorithm = match key.as_ref().map(|k| k.expose_secret().len()) {
        Some(24) => format!("{XENC}aes192-cbc"),
        Some(32) => format!("{XENC}aes256-cbc"),
        _ => format!("{XENC}aes128-cbc"),
    };
    let mac_key = match &key {
        Some(key) => {
            let mut mac_key = vec![0u8; 20];
            fill(&mut mac_key);
            let mut iv = [0u8; 16];
            fill(&mut iv);
            let cipher = cbc_encrypt(key.expose_secret(), &iv, &mac_key)?;
            out.push_str(&format!(
                "  <pskc:MACMethod Algorithm=\"{MAC_WRITTEN}\">\n    <pskc:MACKey>\n      <xenc:EncryptionMethod Algorithm=\"{algorithm}\"/>\n      <xenc:CipherData>\n        <xenc:CipherValue>{}</xenc:CipherValue>\n      </xenc:CipherData>\n    </pskc:MACKey>\n  </pskc:MACMethod>\n",
                data_encoding::BASE64.encode(&cipher)
            ));
            Some(Secret::new(mac_key))
        }
        None => None,
    };
    let mut writer = Writer {
        key,
        mac_key,
        algorithm,
        fill,
        out: &mut out,
    };
    for token in tokens {
        let p = &token.params;
        p.validate()?;
        let w = &mut writer;
        w.open_package(token);
        let (algorithm, suite) = match &p.kind {
            TokenKind::ResponseOnlyHotp => (
                ALG_HOTP,
                (p.alg != HashAlg::Sha1).then(|| format!("HMAC-{}", p.alg.name())),
            ),
            TokenKind::ResponseOnlyTotp => (
                ALG_TOTP,
                (p.alg != HashAlg::Sha1).then(|| format!("HMAC-{}", p.alg.name())),
            ),
            TokenKind::ChallengeResponse { suite } | TokenKind::Signature { suite } => {
                (ALG_OCRA, Some(suite.to_string()))
            }
        };
        let id = token.key_id.clone().unwrap_or_else(|| p.serial.to_string());
        w.out.push_str(&format!(
            "    <pskc:Key Id=\"{}\" Algorithm=\"{algorithm}\">\n",
            escape(&id)
        ));
        opt_elem(w.out, "      ", "Issuer", p.issuer.as_deref());
        w.out.push_str("      <pskc:AlgorithmParameters>\n");
        opt_elem(w.out, "        ", "Suite", suite.as_deref());
        let digits = match &p.kind {
            TokenKind::ChallengeResponse { suite } | TokenKind::Signature { suite } => suite.digits,
            _ => p.digits,
        };
        let encoding = if digits == 0 {
            "HEXADECIMAL"
        } else {
            "DECIMAL"
        };
        w.out.push_str(&format!(
            "        <pskc:ResponseFormat Encoding=\"{encoding}\" Length=\"{digits}\"/>\n"
        ));
        w.out.push_str("      </pskc:AlgorithmParameters>\n");
        opt_elem(w.out, "      ", "FriendlyName", p.label.as_deref());
        w.out.push_str("      <pskc:Data>\n");
        w.secret(token.secret.expose_secret())?;
        if matches!(p.kind, TokenKind::ResponseOnlyTotp) {
            w.int("Time", p.t0)?;
            w.int("TimeInterval", p.step)?;
            if token.drift_steps != 0 {
                w.value("TimeDrift", &token.drift_steps.to_string(), &[], false)?;
            }
        } else {
            w.int("Counter", token.counter)?;
        }
        w.out.push_str("      </pskc:Data>\n");
        opt_elem(w.out, "      ", "UserId", token.user_id.as_deref());
        let pin_id = format!("{id}-pin");
        {
            w.out.push_str("      <pskc:Policy>\n");
            opt_elem(w.out, "        ", "StartDate", token.valid_from.as_deref());
            opt_elem(w.out, "        ", "ExpiryDate", token.valid_to.as_deref());
            if let Some(pin) = &token.pin {
                w.out.push_str(&format!(
                    "        <pskc:PINPolicy PINKeyId=\"{}\" PINUsageMode=\"Local\" MinLength=\"{len}\" MaxLength=\"{len}\" PINEncoding=\"DECIMAL\"/>\n",
                    escape(&pin_id),
                    len = pin.expose_secret().len()
                ));
            }
            // KeyUsage (RFC 6030 §5): OTP, CR, or Integrity for transaction signatures.
            let usage = match p.kind {
                TokenKind::ResponseOnlyHotp | TokenKind::ResponseOnlyTotp => "OTP",
                TokenKind::ChallengeResponse { .. } => "CR",
                TokenKind::Signature { .. } => "Integrity",
            };
            w.out
                .push_str(&format!("        <pskc:KeyUsage>{usage}</pskc:KeyUsage>\n"));
            w.out.push_str("      </pskc:Policy>\n");
        }
        w.out.push_str("    </pskc:Key>\n  </pskc:KeyPackage>\n");
        if let Some(pin) = &token.pin {
            // The PIN travels as its own key package (RFC 6030 figure 5).
            w.open_package(token);
            w.out.push_str(&format!(
                "    <pskc:Key Id=\"{}\" Algorithm=\"{ALG_PIN}\">\n",
                escape(&pin_id)
            ));
            w.out.push_str(&format!(
                "      <pskc:AlgorithmParameters>\n        <pskc:ResponseFormat Encoding=\"DECIMAL\" Length=\"{}\"/>\n      </pskc:AlgorithmParameters>\n      <pskc:Data>\n",
                pin.expose_secret().len()
            ));
            w.secret(pin.expose_secret().as_bytes())?;
            w.out
                .push_str("      </pskc:Data>\n    </pskc:Key>\n  </pskc:KeyPackage>\n");
        }
    }
    out.push_str("</pskc:KeyContainer>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_like_python_pskc() {
        assert_eq!(decrypted_int(b"12", "x").unwrap(), 12);
        assert_eq!(decrypted_int(&[0, 0, 0, 0, 0, 0, 1, 0], "x").unwrap(), 256);
        assert!(decrypted_int(&[1; 9], "x").is_err());
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(
            algorithm_kind("urn:ietf:params:xml:ns:keyprov:pskc:hotp"),
            Some("hotp")
        );
        assert_eq!(
            algorithm_kind("urn:ietf:params:xml:ns:keyprov:pskc#totp"),
            Some("totp")
        );
        assert_eq!(algorithm_kind(ALG_OCRA), Some("ocra"));
        assert_eq!(algorithm_kind(ALG_PIN), Some("pin"));
        assert_eq!(algorithm_kind("urn:x:securid"), None);
    }
}
