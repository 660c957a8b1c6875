//! The WebAuthn Level 3 JSON types (§5.1.8, §5.1.9, §5.1.10):
//! `PublicKeyCredentialCreationOptionsJSON` / `PublicKeyCredentialRequestOptionsJSON`
//! parsed into typed options (as `parseCreationOptionsFromJSON()` /
//! `parseRequestOptionsFromJSON()` do), and `RegistrationResponseJSON` /
//! `AuthenticationResponseJSON` as `PublicKeyCredential.toJSON()` produces them.
//!
//! Parsing happens in two steps so that errors get the browser's names: structure
//! (missing member, wrong JSON type, syntax) is a `TypeError`; a member that is not
//! base64url is an `EncodingError`. Unknown members are ignored and unknown enum
//! strings fall back to their defaults, as WebIDL does for `DOMString` members.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::b64;
use super::error::WebAuthnError;

/// Largest accepted options document (bytes); a browser's IPC limits are similar.
pub const MAX_OPTIONS_LEN: usize = 256 * 1024;

/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const COSE_ES256: i64 = -7;
/// COSE algorithm EdDSA.
pub const COSE_EDDSA: i64 = -8;
/// COSE algorithm RS256.
pub const COSE_RS256: i64 = -257;

// ---------------------------------------------------------------------------
// Raw (serde) shapes of the option dictionaries.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCreationOptions {
    rp: RawRpEntity,
    user: RawUserEntity,
    challenge: String,
    pub_key_cred_params: Vec<RawCredParam>,
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    exclude_credentials: Vec<RawDescriptor>,
    #[serde(default)]
    authenticator_selection: Option<RawAuthenticatorSelection>,
    #[serde(default)]
    hints: Vec<String>,
    #[serde(default)]
    attestation: Option<String>,
    #[serde(default)]
    extensions: Option<RawRegistrationExtensions>,
}

#[derive(Debug, Deserialize)]
struct RawRpEntity {
    #[serde(default)]
    id: Option<String>,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUserEntity {
    id: String,
    name: String,
    display_name: String,
}

#[derive(Debug, Deserialize)]
struct RawCredParam {
    #[serde(rename = "type")]
    type_: String,
    alg: i64,
}

#[derive(Debug, Deserialize)]
struct RawDescriptor {
    #[serde(rename = "type")]
    type_: String,
    id: String,
    #[serde(default)]
    transports: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthenticatorSelection {
    #[serde(default)]
    authenticator_attachment: Option<String>,
    #[serde(default)]
    resident_key: Option<String>,
    #[serde(default)]
    require_resident_key: bool,
    #[serde(default)]
    user_verification: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRegistrationExtensions {
    #[serde(default)]
    cred_props: Option<bool>,
    #[serde(default)]
    prf: Option<RawPrfInputs>,
    #[serde(default)]
    large_blob: Option<RawLargeBlobInputs>,
    #[serde(default)]
    credential_protection_policy: Option<String>,
    #[serde(default)]
    enforce_credential_protection_policy: Option<bool>,
    #[serde(default)]
    min_pin_length: Option<bool>,
    #[serde(default)]
    hmac_create_secret: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPrfInputs {
    #[serde(default)]
    eval: Option<RawPrfValues>,
    #[serde(default)]
    eval_by_credential: Option<BTreeMap<String, RawPrfValues>>,
}

#[derive(Debug, Deserialize)]
struct RawPrfValues {
    first: String,
    #[serde(default)]
    second: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawLargeBlobInputs {
    #[serde(default)]
    support: Option<String>,
    #[serde(default)]
    read: Option<bool>,
    #[serde(default)]
    write: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequestOptions {
    challenge: String,
    #[serde(default)]
    timeout: Option<u64>,
    #[serde(default)]
    rp_id: Option<String>,
    #[serde(default)]
    allow_credentials: Vec<RawDescriptor>,
    #[serde(default)]
    user_verification: Option<String>,
    #[serde(default)]
    hints: Vec<String>,
    #[serde(default)]
    extensions: Option<RawAuthenticationExtensions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthenticationExtensions {
    #[serde(default)]
    prf: Option<RawPrfInputs>,
    #[serde(default)]
    large_blob: Option<RawLargeBlobInputs>,
}

// ---------------------------------------------------------------------------
// Typed options.

/// `PublicKeyCredentialRpEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpEntity {
    /// `rp.id`; `None` means the caller origin's effective domain.
    pub id: Option<String>,
    /// `rp.name`.
    pub name: String,
}

/// `PublicKeyCredentialUserEntity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntity {
    /// The user handle, 1 to 64 bytes (§5.4.3).
    pub id: Vec<u8>,
    /// `user.name`.
    pub name: String,
    /// `user.displayName`.
    pub display_name: String,
}

/// `PublicKeyCredentialDescriptor` (only `type: "public-key"` ones are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialDescriptor {
    /// The credential ID.
    pub id: Vec<u8>,
    /// Transport hints as given (`usb`, `nfc`, `ble`, `hybrid`, `internal`).
    pub transports: Vec<String>,
}

/// `ResidentKeyRequirement` (§5.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResidentKeyRequirement {
    /// `discouraged` (the default).
    Discouraged,
    /// `preferred`.
    Preferred,
    /// `required`.
    Required,
}

/// `UserVerificationRequirement` (§5.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerificationRequirement {
    /// `required`.
    Required,
    /// `preferred` (the default).
    Preferred,
    /// `discouraged`.
    Discouraged,
}

impl UserVerificationRequirement {
    fn parse(value: Option<&str>) -> Self {
        match value {
            Some("required") => Self::Required,
            Some("discouraged") => Self::Discouraged,
            _ => Self::Preferred,
        }
    }
}

/// `AttestationConveyancePreference` (§5.4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationConveyance {
    /// `none` (the default): the client replaces the statement by `none`.
    None,
    /// `indirect`.
    Indirect,
    /// `direct`.
    Direct,
    /// `enterprise`.
    Enterprise,
}

/// `credProtect` policy (CTAP 2.1 §12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredProtectPolicy {
    /// `userVerificationOptional` (1).
    UserVerificationOptional = 1,
    /// `userVerificationOptionalWithCredentialIDList` (2).
    UserVerificationOptionalWithCredentialIdList = 2,
    /// `userVerificationRequired` (3).
    UserVerificationRequired = 3,
}

impl CredProtectPolicy {
    /// Parses the WebAuthn string form.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "userVerificationOptional" => Some(Self::UserVerificationOptional),
            "userVerificationOptionalWithCredentialIDList" => {
                Some(Self::UserVerificationOptionalWithCredentialIdList)
            }
            "userVerificationRequired" => Some(Self::UserVerificationRequired),
            _ => None,
        }
    }
}

/// One PRF evaluation (`AuthenticationExtensionsPRFValues`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrfValues {
    /// `first`.
    pub first: Vec<u8>,
    /// `second`.
    pub second: Option<Vec<u8>>,
}

/// `largeBlob.support` at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LargeBlobSupport {
    /// `required`: fail if the authenticator has no large-blob storage.
    Required,
    /// `preferred` (the default).
    Preferred,
}

/// Client extension inputs of a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationExtensions {
    /// `credProps: true`.
    pub cred_props: bool,
    /// `prf` present (with an optional `eval` to evaluate at creation).
    pub prf: Option<Option<PrfValues>>,
    /// `largeBlob.support`.
    pub large_blob: Option<LargeBlobSupport>,
    /// `credentialProtectionPolicy`.
    pub cred_protect: Option<CredProtectPolicy>,
    /// `enforceCredentialProtectionPolicy`.
    pub enforce_cred_protect: bool,
    /// `minPinLength: true`.
    pub min_pin_length: bool,
    /// `hmacCreateSecret: true` (Chrome's pre-PRF extension).
    pub hmac_create_secret: bool,
}

/// Client extension inputs of an authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthenticationExtensions {
    /// `prf.eval`.
    pub prf_eval: Option<PrfValues>,
    /// `prf.evalByCredential`, keys decoded.
    pub prf_eval_by_credential: Vec<(Vec<u8>, PrfValues)>,
    /// `largeBlob.read: true`.
    pub large_blob_read: bool,
    /// `largeBlob.write`.
    pub large_blob_write: Option<Vec<u8>>,
}

/// `PublicKeyCredentialCreationOptions` after JSON parsing (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationOptions {
    /// `rp`.
    pub rp: RpEntity,
    /// `user`.
    pub user: UserEntity,
    /// `challenge`.
    pub challenge: Vec<u8>,
    /// COSE algorithms of the `public-key` entries of `pubKeyCredParams`, in order
    /// (ES256 and RS256 when the list is empty, §5.1.3 step 10).
    pub algorithms: Vec<i64>,
    /// `timeout` in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `excludeCredentials`.
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// `authenticatorSelection.authenticatorAttachment`.
    pub authenticator_attachment: Option<String>,
    /// Resolved resident-key requirement.
    pub resident_key: ResidentKeyRequirement,
    /// `authenticatorSelection.userVerification`.
    pub user_verification: UserVerificationRequirement,
    /// `hints`.
    pub hints: Vec<String>,
    /// `attestation`.
    pub attestation: AttestationConveyance,
    /// Client extension inputs.
    pub extensions: RegistrationExtensions,
}

/// `PublicKeyCredentialRequestOptions` after JSON parsing (§5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOptions {
    /// `challenge`.
    pub challenge: Vec<u8>,
    /// `timeout` in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `rpId`; `None` means the caller origin's effective domain.
    pub rp_id: Option<String>,
    /// `allowCredentials` (empty: discoverable credentials).
    pub allow_credentials: Vec<CredentialDescriptor>,
    /// `userVerification`.
    pub user_verification: UserVerificationRequirement,
    /// `hints`.
    pub hints: Vec<String>,
    /// Client extension inputs.
    pub extensions: AuthenticationExtensions,
}

fn type_error(what: &str, err: serde_json::Error) -> WebAuthnError {
    WebAuthnError::Type(format!("{what}: {err}"))
}

fn bytes(member: &str, text: &str) -> Result<Vec<u8>, WebAuthnError> {
    b64::decode(text)
        .map_err(|err| WebAuthnError::Encoding(format!("{member} is not base64url: {err}")))
}

fn descriptors(
    member: &str,
    raw: Vec<RawDescriptor>,
) -> Result<Vec<CredentialDescriptor>, WebAuthnError> {
    let mut out = Vec::with_capacity(raw.len());
    for descriptor in raw {
        let id = bytes(&format!("{member}[].id"), &descriptor.id)?;
        if descriptor.type_ != "public-key" {
            continue;
        }
        out.push(CredentialDescriptor {
            id,
            transports: descriptor.transports,
        });
    }
    Ok(out)
}

fn prf_values(member: &str, raw: RawPrfValues) -> Result<PrfValues, WebAuthnError> {
    Ok(PrfValues {
        first: bytes(&format!("{member}.first"), &raw.first)?,
        second: raw
            .second
            .map(|second| bytes(&format!("{member}.second"), &second))
            .transpose()?,
    })
}

fn check_len(json: &str) -> Result<(), WebAuthnError> {
    if json.len() > MAX_OPTIONS_LEN {
        return Err(WebAuthnError::Type(format!(
            "options are {} bytes, more than {MAX_OPTIONS_LEN}",
            json.len()
        )));
    }
    Ok(())
}

impl CreationOptions {
    /// Parses `PublicKeyCredentialCreationOptionsJSON` (§5.1.9
    /// `parseCreationOptionsFromJSON`). Also accepts the object wrapped as
    /// `{"publicKey": {...}}`, the shape many servers send.
    pub fn from_json(json: &str) -> Result<Self, WebAuthnError> {
        check_len(json)?;
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|err| type_error("creation options", err))?;
        let value = unwrap_public_key(value);
        let raw: RawCreationOptions =
            serde_json::from_value(value).map_err(|err| type_error("creation options", err))?;

        let user_id = bytes("user.id", &raw.user.id)?;
        if user_id.is_empty() || user_id.len() > 64 {
            return Err(WebAuthnError::Type(format!(
                "user.id must be 1 to 64 bytes, not {}",
                user_id.len()
            )));
        }
        let challenge = bytes("challenge", &raw.challenge)?;
        let mut algorithms: Vec<i64> = raw
            .pub_key_cred_params
            .iter()
            .filter(|param| param.type_ == "public-key")
            .map(|param| param.alg)
            .collect();
        if raw.pub_key_cred_params.is_empty() {
            algorithms = vec![COSE_ES256, COSE_RS256];
        } else if algorithms.is_empty() {
            return Err(WebAuthnError::NotSupported(
                "no pubKeyCredParams entry of type public-key".into(),
            ));
        }
        let selection = raw.authenticator_selection;
        let resident_key = match selection.as_ref().and_then(|s| s.resident_key.as_deref()) {
            Some("required") => ResidentKeyRequirement::Required,
            Some("preferred") => ResidentKeyRequirement::Preferred,
            Some("discouraged") => ResidentKeyRequirement::Discouraged,
            _ if selection.as_ref().is_some_and(|s| s.require_resident_key) => {
                ResidentKeyRequirement::Required
            }
            _ => ResidentKeyRequirement::Discouraged,
        };
        let user_verification = UserVerificationRequirement::parse(
            selection
                .as_ref()
                .and_then(|s| s.user_verification.as_deref()),
        );
        let attestation = match raw.attestation.as_deref() {
            Some("direct") => AttestationConveyance::Direct,
            Some("indirect") => AttestationConveyance::Indirect,
            Some("enterprise") => AttestationConveyance::Enterprise,
            _ => AttestationConveyance::None,
        };
        let ext = raw.extensions.unwrap_or_default();
        let prf = match ext.prf {
            None => None,
            Some(prf) => {
                if prf.eval_by_credential.is_some_and(|map| !map.is_empty()) {
                    return Err(WebAuthnError::NotSupported(
                        "prf.evalByCredential is not allowed at registration".into(),
                    ));
                }
                Some(prf.eval.map(|e| prf_values("prf.eval", e)).transpose()?)
            }
        };
        let large_blob = match ext.large_blob {
            None => None,
            Some(lb) => {
                if lb.read.is_some() || lb.write.is_some() {
                    return Err(WebAuthnError::NotSupported(
                        "largeBlob.read / write are not allowed at registration".into(),
                    ));
                }
                Some(match lb.support.as_deref() {
                    Some("required") => LargeBlobSupport::Required,
                    _ => LargeBlobSupport::Preferred,
                })
            }
        };
        let extensions = RegistrationExtensions {
            cred_props: ext.cred_props.unwrap_or(false),
            prf,
            large_blob,
            cred_protect: ext
                .credential_protection_policy
                .as_deref()
                .and_then(CredProtectPolicy::from_name),
            enforce_cred_protect: ext.enforce_credential_protection_policy.unwrap_or(false),
            min_pin_length: ext.min_pin_length.unwrap_or(false),
            hmac_create_secret: ext.hmac_create_secret.unwrap_or(false),
        };
        Ok(Self {
            rp: RpEntity {
                id: raw.rp.id,
                name: raw.rp.name,
            },
            user: UserEntity {
                id: user_id,
                name: raw.user.name,
                display_name: raw.user.display_name,
            },
            challenge,
            algorithms,
            timeout_ms: raw.timeout,
            exclude_credentials: descriptors("excludeCredentials", raw.exclude_credentials)?,
            authenticator_attachment: selection.and_then(|s| s.authenticator_attachment),
            resident_key,
            user_verification,
            hints: raw.hints,
            attestation,
            extensions,
        })
    }
}

impl RequestOptions {
    /// Parses `PublicKeyCredentialRequestOptionsJSON` (§5.1.10
    /// `parseRequestOptionsFromJSON`); `{"publicKey": {...}}` is accepted too.
    pub fn from_json(json: &str) -> Result<Self, WebAuthnError> {
        check_len(json)?;
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|err| type_error("request options", err))?;
        let value = unwrap_public_key(value);
        let raw: RawRequestOptions =
            serde_json::from_value(value).map_err(|err| type_error("request options", err))?;
        let challenge = bytes("challenge", &raw.challenge)?;
        let allow_credentials = descriptors("allowCredentials", raw.allow_credentials)?;
        let ext = raw.extensions.unwrap_or_default();
        let mut extensions = AuthenticationExtensions::default();
        if let Some(prf) = ext.prf {
            extensions.prf_eval = prf.eval.map(|e| prf_values("prf.eval", e)).transpose()?;
            for (key, values) in prf.eval_by_credential.unwrap_or_default() {
                if allow_credentials.is_empty() {
                    return Err(WebAuthnError::NotSupported(
                        "prf.evalByCredential needs allowCredentials".into(),
                    ));
                }
                // Every fault of a key is a SyntaxError (L3 §10.1.4 step 2), as in browsers.
                let id = bytes("prf.evalByCredential key", &key)
                    .map_err(|err| WebAuthnError::Syntax(err.message().to_owned()))?;
                if id.is_empty() || !allow_credentials.iter().any(|d| d.id == id) {
                    return Err(WebAuthnError::Syntax(format!(
                        "prf.evalByCredential key {key:?} is not in allowCredentials"
                    )));
                }
                let values = prf_values("prf.evalByCredential", values)?;
                extensions.prf_eval_by_credential.push((id, values));
            }
        }
        if let Some(lb) = ext.large_blob {
            if lb.support.is_some() {
                return Err(WebAuthnError::NotSupported(
                    "largeBlob.support is only for registration".into(),
                ));
            }
            if lb.read == Some(true) && lb.write.is_some() {
                return Err(WebAuthnError::NotSupported(
                    "largeBlob.read and largeBlob.write together".into(),
                ));
            }
            extensions.large_blob_read = lb.read.unwrap_or(false);
            if let Some(write) = lb.write {
                if allow_credentials.len() != 1 {
                    return Err(WebAuthnError::NotSupported(
                        "largeBlob.write needs exactly one allowCredentials entry".into(),
                    ));
                }
                extensions.large_blob_write = Some(bytes("largeBlob.write", &write)?);
            }
        }
        Ok(Self {
            challenge,
            timeout_ms: raw.timeout,
            rp_id: raw.rp_id,
            allow_credentials,
            user_verification: UserVerificationRequirement::parse(raw.user_verification.as_deref()),
            hints: raw.hints,
            extensions,
        })
    }
}

/// `{"publicKey": {...}}` → `{...}` (webauthn-rs, python-fido2 and others wrap it).
fn unwrap_public_key(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(mut map) if map.len() == 1 && map.contains_key("publicKey") => {
            map.remove("publicKey").unwrap_or(serde_json::Value::Null)
        }
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Responses, as `PublicKeyCredential.toJSON()` gives them (§5.1.8).

/// `RegistrationResponseJSON`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponseJson {
    /// Credential ID, base64url.
    pub id: String,
    /// Credential ID, base64url (same as `id`).
    pub raw_id: String,
    /// `AuthenticatorAttestationResponseJSON`.
    pub response: AttestationResponseJson,
    /// `platform` or `cross-platform`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authenticator_attachment: Option<String>,
    /// `AuthenticationExtensionsClientOutputsJSON`.
    pub client_extension_results: ClientExtensionOutputs,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub type_: String,
}

/// `AuthenticatorAttestationResponseJSON`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AttestationResponseJson {
    /// `clientDataJSON`, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// Authenticator data, base64url.
    pub authenticator_data: String,
    /// Transports of the authenticator (`usb`, ...).
    pub transports: Vec<String>,
    /// SubjectPublicKeyInfo DER of the credential key, base64url; absent when the
    /// client does not know the algorithm.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub public_key: Option<String>,
    /// COSE algorithm of the credential key.
    pub public_key_algorithm: i64,
    /// CBOR attestation object, base64url.
    pub attestation_object: String,
}

/// `AuthenticationResponseJSON`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponseJson {
    /// Credential ID, base64url.
    pub id: String,
    /// Credential ID, base64url.
    pub raw_id: String,
    /// `AuthenticatorAssertionResponseJSON`.
    pub response: AssertionResponseJson,
    /// `platform` or `cross-platform`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authenticator_attachment: Option<String>,
    /// `AuthenticationExtensionsClientOutputsJSON`.
    pub client_extension_results: ClientExtensionOutputs,
    /// Always `public-key`.
    #[serde(rename = "type")]
    pub type_: String,
}

/// `AuthenticatorAssertionResponseJSON`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponseJson {
    /// `clientDataJSON`, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// Authenticator data, base64url.
    pub authenticator_data: String,
    /// Signature, base64url.
    pub signature: String,
    /// User handle, base64url (absent for non-discoverable credentials).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub user_handle: Option<String>,
}

/// `AuthenticationExtensionsClientOutputsJSON`: only the extensions that were requested.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientExtensionOutputs {
    /// `credProps`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cred_props: Option<CredPropsOutput>,
    /// `prf`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub prf: Option<PrfOutput>,
    /// `largeBlob`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub large_blob: Option<LargeBlobOutput>,
    /// `hmacCreateSecret`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub hmac_create_secret: Option<bool>,
}

/// `CredentialPropertiesOutput`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredPropsOutput {
    /// Whether the credential is discoverable (client-side).
    pub rk: bool,
}

/// `AuthenticationExtensionsPRFOutputsJSON`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrfOutput {
    /// Registration only: whether the credential supports PRF.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub enabled: Option<bool>,
    /// The PRF results.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub results: Option<PrfResultsJson>,
}

/// `AuthenticationExtensionsPRFValuesJSON`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrfResultsJson {
    /// base64url.
    pub first: String,
    /// base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub second: Option<String>,
}

/// `AuthenticationExtensionsLargeBlobOutputsJSON`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LargeBlobOutput {
    /// Registration: whether the credential can store a large blob.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub supported: Option<bool>,
    /// Authentication with `read`: the blob, base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blob: Option<String>,
    /// Authentication with `write`: whether it was written.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub written: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = r#"{
        "rp": {"name": "Example", "id": "example.com"},
        "user": {"id": "dXNlcg", "name": "alice", "displayName": "Alice"},
        "challenge": "AAECAwQFBgcICQoLDA0ODw",
        "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "x", "alg": -8}],
        "timeout": 60000,
        "excludeCredentials": [{"type": "public-key", "id": "AQID", "transports": ["usb"]}],
        "authenticatorSelection": {"residentKey": "preferred", "userVerification": "required"},
        "attestation": "direct",
        "unknownMember": 1,
        "extensions": {"credProps": true, "prf": {"eval": {"first": "AA"}},
                       "largeBlob": {"support": "required"},
                       "credentialProtectionPolicy": "userVerificationRequired",
                       "enforceCredentialProtectionPolicy": true, "minPinLength": true,
                       "uvm": true}
    }"#;

    #[test]
    fn creation_options_parse() {
        let options = CreationOptions::from_json(CREATE).unwrap();
        assert_eq!(options.rp.id.as_deref(), Some("example.com"));
        assert_eq!(options.user.id, b"user");
        assert_eq!(options.challenge, (0u8..16).collect::<Vec<_>>());
        assert_eq!(options.algorithms, [COSE_ES256]);
        assert_eq!(options.exclude_credentials[0].id, [1, 2, 3]);
        assert_eq!(options.resident_key, ResidentKeyRequirement::Preferred);
        assert_eq!(
            options.user_verification,
            UserVerificationRequirement::Required
        );
        assert_eq!(options.attestation, AttestationConveyance::Direct);
        let ext = &options.extensions;
        assert!(ext.cred_props && ext.min_pin_length && ext.enforce_cred_protect);
        assert_eq!(
            ext.prf,
            Some(Some(PrfValues {
                first: vec![0],
                second: None
            }))
        );
        assert_eq!(ext.large_blob, Some(LargeBlobSupport::Required));
        assert_eq!(
            ext.cred_protect,
            Some(CredProtectPolicy::UserVerificationRequired)
        );
        let wrapped = format!("{{\"publicKey\": {CREATE}}}");
        assert_eq!(CreationOptions::from_json(&wrapped).unwrap(), options);
    }

    #[test]
    fn defaults_follow_the_spec() {
        let json = r#"{"rp":{"name":"x"},"user":{"id":"AA","name":"a","displayName":"A"},
                       "challenge":"AAAA","pubKeyCredParams":[],
                       "authenticatorSelection":{"requireResidentKey":true,"userVerification":"bogus"},
                       "attestation":"bogus"}"#;
        let options = CreationOptions::from_json(json).unwrap();
        assert_eq!(options.algorithms, [COSE_ES256, COSE_RS256]);
        assert_eq!(options.resident_key, ResidentKeyRequirement::Required);
        assert_eq!(
            options.user_verification,
            UserVerificationRequirement::Preferred
        );
        assert_eq!(options.attestation, AttestationConveyance::None);
        assert_eq!(options.rp.id, None);
    }

    #[test]
    fn malformed_creation_options_are_named_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "TypeError"),
            ("{", "TypeError"),
            ("[]", "TypeError"),
            ("null", "TypeError"),
            (r#"{"rp":{"name":"x"}}"#, "TypeError"),
            (
                &CREATE.replace(
                    "\"challenge\": \"AAECAwQFBgcICQoLDA0ODw\"",
                    "\"challenge\": 5",
                ),
                "TypeError",
            ),
            (
                &CREATE.replace("AAECAwQFBgcICQoLDA0ODw", "AA+/"),
                "EncodingError",
            ),
            (&CREATE.replace("dXNlcg", "***"), "EncodingError"),
            (&CREATE.replace("\"dXNlcg\"", "\"\""), "TypeError"),
            (&CREATE.replace("dXNlcg", &"A".repeat(100)), "TypeError"),
            (&CREATE.replace("\"AQID\"", "\"A\""), "EncodingError"),
            (
                &CREATE.replace("{\"type\": \"public-key\", \"alg\": -7}, ", ""),
                "NotSupportedError",
            ),
            (
                &CREATE.replace("\"support\": \"required\"", "\"read\": true"),
                "NotSupportedError",
            ),
            (
                &CREATE.replace("\"pubKeyCredParams\"", "\"x\""),
                "TypeError",
            ),
            (
                &CREATE.replace("\"alg\": -7", "\"alg\": \"es256\""),
                "TypeError",
            ),
            (&"x".repeat(MAX_OPTIONS_LEN + 1), "TypeError"),
        ];
        for (json, name) in cases {
            let err = CreationOptions::from_json(json).unwrap_err();
            assert_eq!(err.name(), *name, "{json}: {err}");
        }
    }

    #[test]
    fn request_options_parse_and_errors() {
        let json = r#"{"challenge":"AAAA","rpId":"example.com","userVerification":"discouraged",
            "allowCredentials":[{"type":"public-key","id":"AQID"}],
            "extensions":{"prf":{"evalByCredential":{"AQID":{"first":"AA","second":"AQ"}}},
                          "largeBlob":{"read":true}}}"#;
        let options = RequestOptions::from_json(json).unwrap();
        assert_eq!(options.rp_id.as_deref(), Some("example.com"));
        assert_eq!(
            options.user_verification,
            UserVerificationRequirement::Discouraged
        );
        assert_eq!(options.allow_credentials.len(), 1);
        assert!(options.extensions.large_blob_read);
        assert_eq!(
            options.extensions.prf_eval_by_credential,
            [(
                vec![1, 2, 3],
                PrfValues {
                    first: vec![0],
                    second: Some(vec![1])
                }
            )]
        );
        let cases: &[(&str, &str)] = &[
            ("{}", "TypeError"),
            (r#"{"challenge":"!!"}"#, "EncodingError"),
            (r#"{"challenge":"AA","allowCredentials":{}}"#, "TypeError"),
            (
                r#"{"challenge":"AA","extensions":{"prf":{"evalByCredential":{"AQID":{"first":"AA"}}}}}"#,
                "NotSupportedError",
            ),
            (
                r#"{"challenge":"AA","allowCredentials":[{"type":"public-key","id":"AQID"}],
                    "extensions":{"prf":{"evalByCredential":{"AQIE":{"first":"AA"}}}}}"#,
                "SyntaxError",
            ),
            (
                r#"{"challenge":"AA","allowCredentials":[{"type":"public-key","id":"AQID"}],
                    "extensions":{"prf":{"evalByCredential":{"***":{"first":"AA"}}}}}"#,
                "SyntaxError",
            ),
            (
                r#"{"challenge":"AA","extensions":{"largeBlob":{"write":"AA"}}}"#,
                "NotSupportedError",
            ),
            (
                r#"{"challenge":"AA","extensions":{"largeBlob":{"support":"required"}}}"#,
                "NotSupportedError",
            ),
        ];
        for (json, name) in cases {
            let err = RequestOptions::from_json(json).unwrap_err();
            assert_eq!(err.name(), *name, "{json}: {err}");
        }
    }

    #[test]
    fn response_json_member_names() {
        let response = AuthenticationResponseJson {
            id: "AQID".into(),
            raw_id: "AQID".into(),
            response: AssertionResponseJson {
                client_data_json: "e30".into(),
                authenticator_data: "AA".into(),
                signature: "AA".into(),
                user_handle: None,
            },
            authenticator_attachment: Some("cross-platform".into()),
            client_extension_results: ClientExtensionOutputs::default(),
            type_: "public-key".into(),
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"id":"AQID","rawId":"AQID","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA"},"authenticatorAttachment":"cross-platform","clientExtensionResults":{},"type":"public-key"}"#
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_is_an_error_not_a_panic(text in "\\PC{0,300}") {
            let _ = CreationOptions::from_json(&text);
            let _ = RequestOptions::from_json(&text);
            let _ = crate::webauthn::origin::CallerOrigin::parse(&text);
        }

        #[test]
        fn mutated_options_are_an_error_not_a_panic(
            at in 0usize..CREATE.len(),
            cut in 0usize..12,
            insert in "\\PC{0,12}",
        ) {
            let end = (at + cut).min(CREATE.len());
            let mutated = format!("{}{}{}", &CREATE[..at], insert, &CREATE[end..]);
            if let Err(err) = CreationOptions::from_json(&mutated) {
                let name = err.name();
                proptest::prop_assert!(
                    matches!(name, "TypeError" | "EncodingError" | "NotSupportedError"),
                    "{}", name
                );
            }
        }
    }
}
