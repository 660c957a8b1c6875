//! Relying-party configuration: RP ID, name, allowed origins and the credential policy,
//! mapped onto the credential classes that webauthn-rs 0.6 offers.

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{AttestationCaList, Url, Webauthn, WebauthnBuilder};

use super::error::RpError;

/// How credentials are admitted (the classes webauthn-rs 0.6 supports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttestationPolicy {
    /// Passkeys / keys of any make: attestation is not requested.
    None,
    /// Security keys whose attestation chains to one of these CA certificates (PEM).
    CaList {
        /// PEM CA certificates; each one is trusted for every AAGUID it signs.
        ca_pems: Vec<String>,
    },
}

/// User verification requirement of the RP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserVerificationPolicy {
    /// UV must be performed (PIN or biometrics) at registration and at every authentication.
    Required,
    /// UV is asked for; a key without UV is accepted (security key as a second factor).
    Preferred,
}

/// One relying party as an administrator configures it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpConfig {
    /// The RP ID (a domain: `example.com`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Origins allowed in `clientDataJSON` (`https://login.example.com`); each must be the
    /// RP ID or a subdomain of it.
    pub origins: Vec<String>,
    /// Attestation policy.
    pub attestation: AttestationPolicy,
    /// User verification policy.
    pub user_verification: UserVerificationPolicy,
}

/// The webauthn-rs credential class a policy maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialClass {
    /// `Passkey`: no attestation, UV required.
    Passkey,
    /// `SecurityKey`: optional CA list, UV preferred.
    SecurityKey,
    /// `AttestedPasskey`: CA list, UV required.
    AttestedPasskey,
}

impl CredentialClass {
    /// Name stored with each credential.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::SecurityKey => "security_key",
            Self::AttestedPasskey => "attested_passkey",
        }
    }
}

/// A configured RP ready for ceremonies.
#[derive(Debug, Clone)]
pub struct Rp {
    /// The configuration it was built from.
    pub config: RpConfig,
    /// The webauthn-rs instance (RP ID, origins).
    pub(crate) webauthn: Webauthn,
    /// Credential class for new registrations.
    pub(crate) class: CredentialClass,
    /// Attestation CAs (for `SecurityKey` with a list and `AttestedPasskey`).
    pub(crate) ca_list: Option<AttestationCaList>,
}

/// Longest RP ID accepted (a DNS name).
const MAX_RP_ID_LEN: usize = 253;

impl Rp {
    /// Validates a configuration and builds the webauthn-rs instance.
    pub fn new(config: RpConfig) -> Result<Self, RpError> {
        if config.id.is_empty()
            || config.id.len() > MAX_RP_ID_LEN
            || config.id != config.id.to_ascii_lowercase()
        {
            return Err(RpError::InvalidConfig(format!(
                "RP ID {:?} must be a lower-case domain",
                config.id
            )));
        }
        if config.name.is_empty() {
            return Err(RpError::InvalidConfig("the RP name is empty".into()));
        }
        let mut origins = Vec::with_capacity(config.origins.len());
        for origin in &config.origins {
            let url = Url::parse(origin)
                .map_err(|err| RpError::InvalidConfig(format!("origin {origin:?}: {err}")))?;
            // The secure contexts browsers grant to plain http: `localhost` and its subdomains
            // (as the WebAuthn client's origin rules do).
            let local = url
                .host_str()
                .is_some_and(|h| h == "localhost" || h.ends_with(".localhost"));
            let secure = url.scheme() == "https" || (url.scheme() == "http" && local);
            if !secure {
                return Err(RpError::InvalidConfig(format!(
                    "origin {origin} is neither https nor http on localhost"
                )));
            }
            origins.push(url);
        }
        let Some((first, rest)) = origins.split_first() else {
            return Err(RpError::InvalidConfig("no allowed origin".into()));
        };
        let mut builder = WebauthnBuilder::new(&config.id, first).map_err(|_| {
            RpError::InvalidConfig(format!(
                "RP ID {} is not the host of origin {first} nor a parent domain of it",
                config.id
            ))
        })?;
        for origin in rest {
            // WebauthnBuilder checks only the first origin against the RP ID.
            WebauthnBuilder::new(&config.id, origin).map_err(|_| {
                RpError::InvalidConfig(format!(
                    "RP ID {} is not the host of origin {origin} nor a parent domain of it",
                    config.id
                ))
            })?;
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .rp_name(&config.name)
            .build()
            .map_err(|err| RpError::InvalidConfig(err.to_string()))?;
        let ca_list = match &config.attestation {
            AttestationPolicy::None => None,
            AttestationPolicy::CaList { ca_pems } => {
                let mut list = AttestationCaList::default();
                for pem in ca_pems {
                    let one = AttestationCaList::try_from(pem.as_bytes()).map_err(|err| {
                        RpError::InvalidConfig(format!("attestation CA certificate: {err}"))
                    })?;
                    list.union(&one);
                }
                if list.is_empty() {
                    return Err(RpError::InvalidConfig(
                        "attestation policy ca_list has no certificate".into(),
                    ));
                }
                Some(list)
            }
        };
        let class = match (&ca_list, config.user_verification) {
            (None, UserVerificationPolicy::Required) => CredentialClass::Passkey,
            (_, UserVerificationPolicy::Preferred) => CredentialClass::SecurityKey,
            (Some(_), UserVerificationPolicy::Required) => CredentialClass::AttestedPasskey,
        };
        Ok(Self {
            config,
            webauthn,
            class,
            ca_list,
        })
    }

    /// The credential class new registrations get.
    pub fn class(&self) -> CredentialClass {
        self.class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: &str, origins: &[&str]) -> RpConfig {
        RpConfig {
            id: id.into(),
            name: "Example".into(),
            origins: origins.iter().map(|o| o.to_string()).collect(),
            attestation: AttestationPolicy::None,
            user_verification: UserVerificationPolicy::Required,
        }
    }

    #[test]
    fn origins_must_belong_to_the_rp_id() {
        assert!(Rp::new(config("example.com", &["https://example.com"])).is_ok());
        assert!(
            Rp::new(config(
                "example.com",
                &["https://login.example.com", "https://example.com:8443"]
            ))
            .is_ok()
        );
        for bad in [
            config("example.com", &["https://evil.com"]),
            config(
                "example.com",
                &["https://example.com", "https://notexample.com"],
            ),
            config("example.com", &["http://example.com"]),
            config("example.com", &[]),
            config("Example.com", &["https://example.com"]),
            config("", &["https://example.com"]),
        ] {
            let err = Rp::new(bad.clone()).unwrap_err();
            assert_eq!(err.name(), "InvalidConfig", "{bad:?}");
        }
    }

    #[test]
    fn policy_maps_to_class() {
        let sub = config("app.localhost", &["http://app.localhost:8080"]);
        assert!(
            Rp::new(sub).is_ok(),
            "a localhost subdomain is a secure context"
        );
        let mut cfg = config("localhost", &["http://localhost:8080"]);
        assert_eq!(
            Rp::new(cfg.clone()).unwrap().class(),
            CredentialClass::Passkey
        );
        cfg.user_verification = UserVerificationPolicy::Preferred;
        assert_eq!(
            Rp::new(cfg.clone()).unwrap().class(),
            CredentialClass::SecurityKey
        );
        cfg.attestation = AttestationPolicy::CaList {
            ca_pems: vec!["not a pem".into()],
        };
        assert_eq!(Rp::new(cfg.clone()).unwrap_err().name(), "InvalidConfig");
        cfg.attestation = AttestationPolicy::CaList { ca_pems: vec![] };
        assert_eq!(Rp::new(cfg).unwrap_err().name(), "InvalidConfig");
    }

    #[test]
    fn config_json_rejects_unknown_keys() {
        let json = r#"{"id":"example.com","name":"E","origins":["https://example.com"],
            "attestation":{"kind":"none"},"user_verification":"preferred"}"#;
        let cfg: RpConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.user_verification, UserVerificationPolicy::Preferred);
        let bad = json.replace("\"name\"", "\"nme\"");
        assert!(serde_json::from_str::<RpConfig>(&bad).is_err());
    }
}
