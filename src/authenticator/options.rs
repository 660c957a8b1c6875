//! Creation options of a software key, in the spirit of Chrome's virtual authenticator
//! (`VirtualAuthenticatorOptions`) with the CTAP 2.1 knobs it lacks.

use std::time::Duration;

use crate::authenticator::AuthnError;

/// The protocol versions a software key speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CtapVersion {
    /// CTAP1 / U2F only: CTAPHID_MSG, no CTAPHID_CBOR (capability NMSG clear, CBOR clear).
    U2fOnly,
    /// CTAP 2.0 (`FIDO_2_0` and `U2F_V2`): no credential management, config, large blobs.
    Fido20,
    /// The CTAP 2.1 prototype (`FIDO_2_1_PRE`, as early 2.1 keys report it): credential
    /// management only as command 0x41 (`credentialMgmtPreview`), PIN protocol 1, tokens
    /// from getPinToken carry the cm permission; no config, large blobs or permissions.
    Fido21Pre,
    /// CTAP 2.1 (`FIDO_2_1`, `FIDO_2_0`, `U2F_V2`).
    Fido21,
}

impl std::str::FromStr for CtapVersion {
    type Err = AuthnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "u2f" | "U2F" | "ctap1" => Ok(Self::U2fOnly),
            "2.0" | "ctap2.0" | "FIDO_2_0" => Ok(Self::Fido20),
            "2.1-pre" | "FIDO_2_1_PRE" => Ok(Self::Fido21Pre),
            "2.1" | "ctap2.1" | "FIDO_2_1" => Ok(Self::Fido21),
            other => Err(AuthnError::BadOption(format!(
                "unknown CTAP version {other:?} (u2f, 2.0, 2.1-pre, 2.1)"
            ))),
        }
    }
}

/// Attestation a software key produces at MakeCredential / U2F REGISTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttestationKind {
    /// `fmt = "none"`, empty statement, AAGUID zero (WebAuthn §8.7).
    None,
    /// `fmt = "packed"` self attestation: signed by the credential key, no `x5c` (WebAuthn §8.2).
    SelfAttestation,
    /// `fmt = "packed"` with a batch certificate issued by a generated CA (`x5c = [batch]`).
    Packed,
}

impl std::str::FromStr for AttestationKind {
    type Err = AuthnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "self" => Ok(Self::SelfAttestation),
            "packed" | "basic" => Ok(Self::Packed),
            other => Err(AuthnError::BadOption(format!(
                "unknown attestation {other:?} (none, self, packed)"
            ))),
        }
    }
}

/// Where the signature counter lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CounterMode {
    /// One counter for the whole key (many real keys).
    Global,
    /// One counter per stored credential. Credentials that exist only as a wrapped credential ID
    /// (non-resident, not injected) have nowhere to keep a counter and use the global one.
    PerCredential,
}

/// The user-presence policy a key is created with (the `UserPresence` the server side builds from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresencePolicy {
    /// Every presence request is approved at once (virtual keys and tests only).
    AutoApprove,
    /// Every presence request is denied (virtual keys and tests only).
    Deny,
    /// Wait for an explicit approval through an [`crate::authenticator::ApprovalHandle`],
    /// answering "timeout" after `timeout`.
    WaitForApproval {
        /// How long to wait for the approval.
        timeout: Duration,
    },
}

/// Options fixed when a software key is created.
#[derive(Debug, Clone)]
pub struct SoftKeyOptions {
    /// Protocol versions.
    pub ctap: CtapVersion,
    /// Discoverable (resident) credentials supported (`rk` option).
    pub resident_keys: bool,
    /// ClientPIN supported (user verification through a PIN; this key has no built-in UV).
    pub client_pin: bool,
    /// A PIN set at creation (needs `client_pin`).
    pub initial_pin: Option<String>,
    /// AAGUID reported in GetInfo and attested credential data.
    pub aaguid: [u8; 16],
    /// Attestation kind.
    pub attestation: AttestationKind,
    /// Maximum number of discoverable credentials.
    pub max_resident: usize,
    /// alwaysUv at creation (CTAP 2.1 §7.2.2).
    pub always_uv: bool,
    /// Signature counter placement.
    pub counter: CounterMode,
    /// Minimum PIN length in code points at creation and after reset (CTAP 2.1: at least 4).
    pub min_pin_length: u8,
    /// Support for the largeBlobKey extension + authenticatorLargeBlobs (CTAP 2.1 only).
    pub large_blobs: bool,
    /// Maximum size of the serialized large-blob array (CTAP 2.1 §6.10: at least 1024).
    pub max_large_blob: usize,
    /// maxCredentialCountInList (GetInfo 0x07, CTAP 2.1 §6.4): a longer allowList or
    /// excludeList is refused with CTAP2_ERR_LIMIT_EXCEEDED. At least 1.
    pub max_credential_count_in_list: usize,
    /// maxCredentialIdLength (GetInfo 0x08): a listed credential ID longer than this is refused
    /// with CTAP2_ERR_LIMIT_EXCEEDED. At least `LONGEST_OWN_CREDENTIAL_ID` (96).
    pub max_credential_id_length: usize,
    /// Enterprise attestation (CTAP 2.1 §7.1; 2.1 keys only). `None`: not capable. `Some(ids)`:
    /// capable, disabled ("ep": false) until authenticatorConfig enables it; then
    /// `enterpriseAttestation` = 2 (platform-managed) is honoured for any RP and = 1
    /// (vendor-facilitated) only for the RP IDs in `ids`, the list a vendor burns in.
    pub enterprise_attestation: Option<Vec<String>>,
}

/// Most RP IDs in a key's vendor-facilitated enterprise attestation list.
pub const MAX_ENTERPRISE_RP_IDS: usize = 32;

/// The longest credential ID this key creates: a wrapped (non-resident) ID is version byte ‖
/// 12-byte nonce ‖ AES-GCM(private key 32 ‖ credProtect ‖ hmac-secret ‖ credBlob length ‖
/// credBlob ≤ 32) ‖ 16-byte tag (`credential.rs`); stored IDs are 32 bytes.
pub const LONGEST_OWN_CREDENTIAL_ID: usize = 1 + 12 + (32 + 3 + 32) + 16;

/// Default maxCredentialCountInList.
pub const DEFAULT_MAX_CREDENTIAL_COUNT_IN_LIST: usize = 8;

/// Default maxCredentialIdLength.
pub const DEFAULT_MAX_CREDENTIAL_ID_LENGTH: usize = 128;

/// The AAGUID keygate's software key reports unless told otherwise: "keygate-softkey-1" in UUID form.
pub const DEFAULT_AAGUID: [u8; 16] = [
    0x6b, 0x65, 0x79, 0x67, 0x61, 0x74, 0x65, 0x2d, 0x73, 0x6f, 0x66, 0x74, 0x6b, 0x65, 0x79, 0x31,
];

impl Default for SoftKeyOptions {
    fn default() -> Self {
        Self {
            ctap: CtapVersion::Fido21,
            resident_keys: true,
            client_pin: true,
            initial_pin: None,
            aaguid: DEFAULT_AAGUID,
            attestation: AttestationKind::Packed,
            max_resident: 25,
            always_uv: false,
            counter: CounterMode::Global,
            min_pin_length: 4,
            large_blobs: true,
            max_large_blob: 4096,
            max_credential_count_in_list: DEFAULT_MAX_CREDENTIAL_COUNT_IN_LIST,
            max_credential_id_length: DEFAULT_MAX_CREDENTIAL_ID_LENGTH,
            enterprise_attestation: None,
        }
    }
}

impl SoftKeyOptions {
    /// Checks option combinations that cannot work.
    pub fn validate(&self) -> Result<(), AuthnError> {
        if self.min_pin_length < 4 || self.min_pin_length > 63 {
            return Err(AuthnError::BadOption(
                "min PIN length must be 4..=63".into(),
            ));
        }
        if self.initial_pin.is_some() && !self.client_pin {
            return Err(AuthnError::BadOption(
                "a PIN needs clientPin support".into(),
            ));
        }
        if let Some(pin) = &self.initial_pin {
            let len = pin.chars().count();
            if len < usize::from(self.min_pin_length) || pin.len() > 63 {
                return Err(AuthnError::BadOption(
                    "initial PIN length out of range".into(),
                ));
            }
        }
        if self.always_uv && !self.client_pin {
            return Err(AuthnError::BadOption(
                "alwaysUv needs clientPin (the only UV method)".into(),
            ));
        }
        if let Some(rp_ids) = &self.enterprise_attestation {
            if self.ctap != CtapVersion::Fido21 {
                return Err(AuthnError::BadOption(
                    "enterprise attestation needs CTAP 2.1".into(),
                ));
            }
            if rp_ids.len() > MAX_ENTERPRISE_RP_IDS
                || rp_ids.iter().any(|id| id.is_empty() || id.len() > 253)
            {
                return Err(AuthnError::BadOption(format!(
                    "at most {MAX_ENTERPRISE_RP_IDS} enterprise RP IDs of 1 to 253 characters"
                )));
            }
        }
        if self.max_large_blob < 1024 {
            return Err(AuthnError::BadOption(
                "max large blob size must be at least 1024".into(),
            ));
        }
        if self.max_credential_count_in_list == 0 {
            return Err(AuthnError::BadOption(
                "maxCredentialCountInList must be at least 1".into(),
            ));
        }
        if self.max_credential_id_length < LONGEST_OWN_CREDENTIAL_ID {
            return Err(AuthnError::BadOption(format!(
                "maxCredentialIdLength must be at least {LONGEST_OWN_CREDENTIAL_ID} (this key's own IDs)"
            )));
        }
        Ok(())
    }

    /// Parses an AAGUID in UUID (8-4-4-4-12) or plain 32-hex-digit form.
    pub fn parse_aaguid(text: &str) -> Result<[u8; 16], AuthnError> {
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| AuthnError::BadOption(format!("AAGUID {text:?} is not hex")))?;
        bytes
            .try_into()
            .map_err(|_| AuthnError::BadOption(format!("AAGUID {text:?} is not 16 bytes")))
    }
}

/// Formats an AAGUID as a UUID string.
pub fn format_aaguid(aaguid: &[u8; 16]) -> String {
    let hex = data_encoding::HEXLOWER.encode(aaguid);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
