//! keygated's configuration: `/etc/keygate/keygated.toml` (optional; no file is needed to start).
//!
//! The TOML is read into [`RawConfig`] (`deny_unknown_fields`: an unknown key is an error naming
//! the key), then turned into the typed [`Config`] at startup. The config never holds secrets.
//!
//! ```toml
//! admin_group = "keygate-admin"        # members administer tokens and relying parties
//! verifier_group = "keygate-verifier"  # members call RelyingParty and token-check methods
//! admin_uids = [1000]                  # extra uids with the admin role (root always has it)
//! verifier_uids = [1000]
//!
//! [policy]
//! hotp_window = 10
//! totp_window_steps = 1
//! resync_limit = 1000
//! challenge_ttl_secs = 120
//! max_failures = 5
//!
//! [soft_tokens]
//! kdf_memory_kib = 65536               # Argon2id cost of a software token's PIN
//! kdf_passes = 2
//! pin_digits = 5
//! max_pin_failures = 5
//!
//! [[relying_party]]
//! id = "example.org"
//! name = "Example"
//! origins = ["https://example.org", "https://login.example.org"]
//! ```

use std::path::Path;

use serde::Deserialize;

use super::error::ServiceError;

/// Default system config path.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/keygate/keygated.toml";
/// Default name of the admin group (also used by the shipped D-Bus policy).
pub const DEFAULT_ADMIN_GROUP: &str = "keygate-admin";
/// Default name of the verifier group (also used by the shipped D-Bus policy).
pub const DEFAULT_VERIFIER_GROUP: &str = "keygate-verifier";

/// The file as written (every key optional, unknown keys rejected).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Group whose members have the admin role.
    pub admin_group: Option<String>,
    /// Group whose members have the verifier role.
    pub verifier_group: Option<String>,
    /// Extra uids with the admin role.
    #[serde(default)]
    pub admin_uids: Vec<u32>,
    /// Extra uids with the verifier role.
    #[serde(default)]
    pub verifier_uids: Vec<u32>,
    /// Verification policy numbers.
    pub policy: Option<RawPolicy>,
    /// Relying parties served by the RelyingParty interface.
    #[serde(default)]
    pub relying_party: Vec<RawRelyingParty>,
    /// Largest argument (bytes) accepted on the bus for a single string (PSKC, JSON); default 1 MiB.
    pub max_argument_bytes: Option<usize>,
    /// Software tokens kept for local users.
    pub soft_tokens: Option<RawSoftTokens>,
    /// RP IDs for which the WebAuthn client asks keys for platform-managed enterprise
    /// attestation when a registration says `attestation: "enterprise"`.
    #[serde(default)]
    pub enterprise_attestation_rp_ids: Vec<String>,
}

/// `[soft_tokens]`: the PIN protection of software tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSoftTokens {
    /// Argon2id memory in KiB (default 65536).
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id passes (default 2).
    pub kdf_passes: Option<u32>,
    /// PIN length in digits (default 5).
    pub pin_digits: Option<usize>,
    /// Wrong PINs in a row that lock a software token (default 5).
    pub max_pin_failures: Option<u32>,
}

/// Software-token settings with defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftTokenSettings {
    /// Argon2id memory in KiB.
    pub kdf_memory_kib: u32,
    /// Argon2id passes.
    pub kdf_passes: u32,
    /// PIN digits.
    pub pin_digits: usize,
    /// Wrong PINs that lock.
    pub max_pin_failures: u32,
}

impl Default for SoftTokenSettings {
    fn default() -> Self {
        Self {
            kdf_memory_kib: 64 * 1024,
            kdf_passes: 2,
            pin_digits: 5,
            max_pin_failures: 5,
        }
    }
}

/// `[policy]`: verification numbers (DESIGN.md "Verification semantics").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// HOTP look-ahead window.
    pub hotp_window: Option<u64>,
    /// TOTP steps accepted either side of the stored drift.
    pub totp_window_steps: Option<u64>,
    /// HOTP resync search limit.
    pub resync_limit: Option<u64>,
    /// OCRA challenge lifetime.
    pub challenge_ttl_secs: Option<u64>,
    /// Failures that lock a token / user.
    pub max_failures: Option<u32>,
}

/// `[[relying_party]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelyingParty {
    /// rp.id (a registrable domain or a host).
    pub id: String,
    /// Human-readable name.
    pub name: Option<String>,
    /// Allowed origins (`https://host[:port]`).
    pub origins: Vec<String>,
    /// "required" or "preferred" (default "preferred").
    pub user_verification: Option<String>,
}

/// Verification policy, with DESIGN.md defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfig {
    /// HOTP look-ahead window (10).
    pub hotp_window: u64,
    /// TOTP window in steps (1).
    pub totp_window_steps: u64,
    /// HOTP resync limit (1000).
    pub resync_limit: u64,
    /// OCRA challenge TTL (120 s).
    pub challenge_ttl_secs: u64,
    /// Failures that lock (5).
    pub max_failures: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            hotp_window: 10,
            totp_window_steps: 1,
            resync_limit: 1000,
            challenge_ttl_secs: 120,
            max_failures: 5,
        }
    }
}

/// A relying party as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingPartyConfig {
    /// rp.id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Allowed origins.
    pub origins: Vec<String>,
    /// Whether user verification is required (else preferred).
    pub uv_required: bool,
}

/// The typed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Admin group name.
    pub admin_group: String,
    /// Verifier group name.
    pub verifier_group: String,
    /// Extra admin uids.
    pub admin_uids: Vec<u32>,
    /// Extra verifier uids.
    pub verifier_uids: Vec<u32>,
    /// Policy numbers.
    pub policy: PolicyConfig,
    /// Relying parties.
    pub relying_parties: Vec<RelyingPartyConfig>,
    /// Largest string argument accepted on the bus.
    pub max_argument_bytes: usize,
    /// Software tokens.
    pub soft_tokens: SoftTokenSettings,
    /// RP IDs approved for platform-managed enterprise attestation.
    pub enterprise_attestation_rp_ids: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            admin_group: DEFAULT_ADMIN_GROUP.into(),
            verifier_group: DEFAULT_VERIFIER_GROUP.into(),
            admin_uids: Vec::new(),
            verifier_uids: Vec::new(),
            policy: PolicyConfig::default(),
            relying_parties: Vec::new(),
            max_argument_bytes: 1 << 20,
            soft_tokens: SoftTokenSettings::default(),
            enterprise_attestation_rp_ids: Vec::new(),
        }
    }
}

impl Config {
    /// Parses TOML text. Unknown keys are rejected with their name.
    pub fn from_toml(text: &str) -> Result<Self, ServiceError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ServiceError::Config(e.message().to_string()))?;
        Self::from_raw(raw)
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, ServiceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServiceError::Config(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| ServiceError::Config(format!("{}: {e}", path.display())))
    }

    /// Validates a [`RawConfig`].
    pub fn from_raw(raw: RawConfig) -> Result<Self, ServiceError> {
        let defaults = PolicyConfig::default();
        let policy = match raw.policy {
            None => defaults,
            Some(p) => PolicyConfig {
                hotp_window: p.hotp_window.unwrap_or(defaults.hotp_window),
                totp_window_steps: p.totp_window_steps.unwrap_or(defaults.totp_window_steps),
                resync_limit: p.resync_limit.unwrap_or(defaults.resync_limit),
                challenge_ttl_secs: p.challenge_ttl_secs.unwrap_or(defaults.challenge_ttl_secs),
                max_failures: p.max_failures.unwrap_or(defaults.max_failures),
            },
        };
        if policy.max_failures == 0 || policy.hotp_window == 0 || policy.challenge_ttl_secs == 0 {
            return Err(ServiceError::Config(
                "policy: max_failures, hotp_window and challenge_ttl_secs must be > 0".into(),
            ));
        }
        let soft_defaults = SoftTokenSettings::default();
        let soft_tokens = match raw.soft_tokens {
            None => soft_defaults,
            Some(s) => SoftTokenSettings {
                kdf_memory_kib: s.kdf_memory_kib.unwrap_or(soft_defaults.kdf_memory_kib),
                kdf_passes: s.kdf_passes.unwrap_or(soft_defaults.kdf_passes),
                pin_digits: s.pin_digits.unwrap_or(soft_defaults.pin_digits),
                max_pin_failures: s.max_pin_failures.unwrap_or(soft_defaults.max_pin_failures),
            },
        };
        if soft_tokens.kdf_memory_kib < 8
            || soft_tokens.kdf_passes == 0
            || !(4..=16).contains(&soft_tokens.pin_digits)
            || soft_tokens.max_pin_failures == 0
        {
            return Err(ServiceError::Config(
                "soft_tokens: kdf_memory_kib >= 8, kdf_passes >= 1, pin_digits 4..=16, max_pin_failures >= 1".into(),
            ));
        }
        let mut relying_parties = Vec::new();
        for rp in raw.relying_party {
            if rp.id.is_empty() || rp.origins.is_empty() {
                return Err(ServiceError::Config(format!(
                    "relying_party {:?}: id and origins are required",
                    rp.id
                )));
            }
            for origin in &rp.origins {
                let url = url::Url::parse(origin).map_err(|e| {
                    ServiceError::Config(format!("relying_party {}: origin {origin:?}: {e}", rp.id))
                })?;
                if url.host_str().is_none() {
                    return Err(ServiceError::Config(format!(
                        "relying_party {}: origin {origin:?} has no host",
                        rp.id
                    )));
                }
            }
            let uv_required = match rp.user_verification.as_deref() {
                None | Some("preferred") => false,
                Some("required") => true,
                Some(other) => {
                    return Err(ServiceError::Config(format!(
                        "relying_party {}: user_verification {other:?} is not \"required\" or \"preferred\"",
                        rp.id
                    )));
                }
            };
            relying_parties.push(RelyingPartyConfig {
                name: rp.name.unwrap_or_else(|| rp.id.clone()),
                id: rp.id,
                origins: rp.origins,
                uv_required,
            });
        }
        Ok(Self {
            admin_group: raw
                .admin_group
                .unwrap_or_else(|| DEFAULT_ADMIN_GROUP.into()),
            verifier_group: raw
                .verifier_group
                .unwrap_or_else(|| DEFAULT_VERIFIER_GROUP.into()),
            admin_uids: raw.admin_uids,
            verifier_uids: raw.verifier_uids,
            policy,
            relying_parties,
            max_argument_bytes: raw.max_argument_bytes.unwrap_or(1 << 20),
            soft_tokens,
            enterprise_attestation_rp_ids: raw.enterprise_attestation_rp_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("admin_group = \"a\"\nadmin_gruop = \"b\"\n").unwrap_err();
        assert!(err.to_string().contains("admin_gruop"), "{err}");
        let err = Config::from_toml("[policy]\nmax_failure = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_failure"), "{err}");
    }

    #[test]
    fn full_config_parses() {
        let cfg = Config::from_toml(
            "admin_group = \"wheel\"\nverifier_uids = [1000]\n\
             enterprise_attestation_rp_ids = [\"corp.example\"]\n[policy]\nmax_failures = 3\n\
             [[relying_party]]\nid = \"example.org\"\norigins = [\"https://example.org\"]\n\
             user_verification = \"required\"\n",
        )
        .unwrap();
        assert_eq!(cfg.admin_group, "wheel");
        assert_eq!(cfg.verifier_group, DEFAULT_VERIFIER_GROUP);
        assert_eq!(cfg.verifier_uids, vec![1000]);
        assert_eq!(cfg.policy.max_failures, 3);
        assert_eq!(cfg.policy.hotp_window, 10);
        assert_eq!(cfg.relying_parties[0].name, "example.org");
        assert!(cfg.relying_parties[0].uv_required);
        assert_eq!(cfg.enterprise_attestation_rp_ids, vec!["corp.example"]);
    }

    #[test]
    fn bad_values_rejected() {
        assert!(Config::from_toml("[policy]\nmax_failures = 0\n").is_err());
        assert!(
            Config::from_toml("[[relying_party]]\nid = \"x\"\norigins = [\"not a url\"]\n")
                .is_err()
        );
        assert!(Config::from_toml("admin_uids = \"root\"\n").is_err());
    }
}
