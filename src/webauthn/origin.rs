//! The caller's origin and the RP ID, checked as a browser checks them
//! (WebAuthn L3 §5.1.3 steps 5-8 and §5.1.4.1 steps 5-8; HTML "is a registrable
//! domain suffix of or is equal to"; Secure Contexts "potentially trustworthy origin").
//! Related origins (§5.11) are out of scope.

use url::{Host, Url};

use super::error::WebAuthnError;
use super::psl::PublicSuffixList;

/// A caller origin that passed the secure-context and valid-domain checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerOrigin {
    /// ASCII serialization (`https://login.example.com`, `http://localhost:8080`),
    /// the value that goes into `clientDataJSON.origin`.
    serialization: String,
    /// The origin's effective domain: lower-case ASCII host.
    effective_domain: String,
}

impl CallerOrigin {
    /// Parses an origin as a page would have it: a scheme, a host and an optional port;
    /// a trailing `/` is tolerated, nothing else (no path, query, fragment or user info).
    ///
    /// Errors: `NotAllowedError` for something that is not a tuple origin (opaque);
    /// `SecurityError` for an origin that is not potentially trustworthy (only `https`,
    /// or `http` on `localhost` / `*.localhost`) or whose host is an IP address
    /// (WebAuthn requires a valid domain as effective domain).
    pub fn parse(origin: &str) -> Result<Self, WebAuthnError> {
        let url = Url::parse(origin)
            .map_err(|err| WebAuthnError::NotAllowed(format!("origin {origin:?}: {err}")))?;
        if url.cannot_be_a_base()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(WebAuthnError::NotAllowed(format!(
                "{origin:?} is not an origin (scheme://host[:port])"
            )));
        }
        let host = match url.host() {
            Some(Host::Domain(domain)) => domain.to_ascii_lowercase(),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => {
                return Err(WebAuthnError::Security(format!(
                    "origin {origin}: an IP address is not a valid domain for WebAuthn"
                )));
            }
            None => {
                return Err(WebAuthnError::NotAllowed(format!(
                    "origin {origin:?} has no host (opaque origin)"
                )));
            }
        };
        let is_localhost = host == "localhost" || host.ends_with(".localhost");
        match url.scheme() {
            "https" => {}
            "http" if is_localhost => {}
            scheme => {
                return Err(WebAuthnError::Security(format!(
                    "origin {origin}: scheme {scheme} is not a secure context"
                )));
            }
        }
        Ok(Self {
            serialization: url.origin().ascii_serialization(),
            effective_domain: host,
        })
    }

    /// The ASCII serialization used in `clientDataJSON`.
    pub fn as_str(&self) -> &str {
        &self.serialization
    }

    /// The effective domain (host).
    pub fn effective_domain(&self) -> &str {
        &self.effective_domain
    }

    /// Resolves the RP ID for a ceremony: the options' `rp.id` / `rpId` when present,
    /// else the effective domain. The RP ID must equal the effective domain or be a
    /// registrable domain suffix of it, and not a public suffix. Returns the RP ID in
    /// canonical (lower-case ASCII) form.
    pub fn resolve_rp_id(
        &self,
        rp_id: Option<&str>,
        psl: &PublicSuffixList,
    ) -> Result<String, WebAuthnError> {
        let Some(requested) = rp_id else {
            return Ok(self.effective_domain.clone());
        };
        let host = parse_host(requested).ok_or_else(|| {
            WebAuthnError::Security(format!("RP ID {requested:?} is not a valid domain"))
        })?;
        if is_registrable_suffix_or_equal(&host, &self.effective_domain, psl) {
            Ok(host)
        } else {
            Err(WebAuthnError::Security(format!(
                "RP ID {requested:?} is not a registrable domain suffix of nor equal to the origin {}",
                self.serialization
            )))
        }
    }
}

/// Parses an RP ID as the HTML host parser would, requiring a domain (not an IP).
fn parse_host(input: &str) -> Option<String> {
    if input.is_empty() {
        return None;
    }
    match Host::parse(input).ok()? {
        Host::Domain(domain) => {
            let domain = domain.to_ascii_lowercase();
            if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') {
                None
            } else {
                Some(domain)
            }
        }
        Host::Ipv4(_) | Host::Ipv6(_) => None,
    }
}

/// HTML §7.1.3.1 "is a registrable domain suffix of or is equal to", for two
/// lower-case ASCII domains.
pub fn is_registrable_suffix_or_equal(
    host_suffix: &str,
    original_host: &str,
    psl: &PublicSuffixList,
) -> bool {
    if host_suffix.is_empty() {
        return false;
    }
    if host_suffix == original_host {
        return true;
    }
    // originalHost must end with "." + hostSuffix.
    let Some(head) = original_host.strip_suffix(host_suffix) else {
        return false;
    };
    if !head.ends_with('.') {
        return false;
    }
    // hostSuffix must not be a public suffix ...
    if psl.is_public_suffix(host_suffix) {
        return false;
    }
    // ... nor a suffix of originalHost's public suffix.
    let original_suffix = psl.public_suffix(original_host);
    if original_suffix == host_suffix || original_suffix.ends_with(&format!(".{host_suffix}")) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psl() -> PublicSuffixList {
        PublicSuffixList::parse("com\nuk\nco.uk\nio\ngithub.io\n*.ck\n!www.ck\n")
    }

    #[test]
    fn origin_and_rp_id_table() {
        let psl = psl();
        // (origin, rp id, Ok(rp id) or Err(DOMException name))
        let cases: &[(&str, Option<&str>, Result<&str, &str>)] = &[
            ("https://example.com", None, Ok("example.com")),
            (
                "https://example.com",
                Some("example.com"),
                Ok("example.com"),
            ),
            (
                "https://login.example.com",
                Some("example.com"),
                Ok("example.com"),
            ),
            ("https://login.example.com", None, Ok("login.example.com")),
            (
                "https://a.b.example.com:8443",
                Some("b.example.com"),
                Ok("b.example.com"),
            ),
            (
                "https://example.com",
                Some("login.example.com"),
                Err("SecurityError"),
            ),
            (
                "https://example.com",
                Some("evil.com"),
                Err("SecurityError"),
            ),
            (
                "https://evil.com",
                Some("example.com"),
                Err("SecurityError"),
            ),
            (
                "https://notexample.com",
                Some("example.com"),
                Err("SecurityError"),
            ),
            ("https://example.com", Some("com"), Err("SecurityError")),
            ("https://example.co.uk", Some("co.uk"), Err("SecurityError")),
            (
                "https://example.co.uk",
                Some("example.co.uk"),
                Ok("example.co.uk"),
            ),
            (
                "https://www.example.co.uk",
                Some("example.co.uk"),
                Ok("example.co.uk"),
            ),
            (
                "https://user.github.io",
                Some("github.io"),
                Err("SecurityError"),
            ),
            ("https://a.foo.ck", Some("foo.ck"), Err("SecurityError")),
            ("https://a.www.ck", Some("www.ck"), Ok("www.ck")),
            (
                "https://Example.COM",
                Some("EXAMPLE.com"),
                Ok("example.com"),
            ),
            ("http://example.com", None, Err("SecurityError")),
            ("http://localhost:8080", None, Ok("localhost")),
            ("http://localhost", Some("localhost"), Ok("localhost")),
            (
                "http://app.localhost",
                Some("app.localhost"),
                Ok("app.localhost"),
            ),
            ("https://127.0.0.1", None, Err("SecurityError")),
            ("https://[::1]:443", None, Err("SecurityError")),
            ("http://127.0.0.1", None, Err("SecurityError")),
            (
                "https://example.com",
                Some("127.0.0.1"),
                Err("SecurityError"),
            ),
            ("https://example.com", Some(""), Err("SecurityError")),
            (
                "https://example.com",
                Some(".example.com"),
                Err("SecurityError"),
            ),
            ("ftp://example.com", None, Err("SecurityError")),
            ("null", None, Err("NotAllowedError")),
            ("https://example.com/path", None, Err("NotAllowedError")),
            ("https://user@example.com", None, Err("NotAllowedError")),
            ("data:text/html,hi", None, Err("NotAllowedError")),
        ];
        for (origin, rp_id, want) in cases {
            let got = CallerOrigin::parse(origin).and_then(|o| o.resolve_rp_id(*rp_id, &psl));
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{origin} {rp_id:?}"),
                (Err(err), Err(name)) => assert_eq!(err.name(), *name, "{origin} {rp_id:?}: {err}"),
                (got, want) => panic!("{origin} {rp_id:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn serialization_drops_default_port_and_slash() {
        let origin = CallerOrigin::parse("https://Login.Example.com:443/").unwrap();
        assert_eq!(origin.as_str(), "https://login.example.com");
        let origin = CallerOrigin::parse("http://localhost:8080").unwrap();
        assert_eq!(origin.as_str(), "http://localhost:8080");
    }

    #[test]
    fn idn_origin_is_punycode() {
        let origin = CallerOrigin::parse("https://bücher.example").unwrap();
        assert_eq!(origin.effective_domain(), "xn--bcher-kva.example");
        let rp = origin
            .resolve_rp_id(Some("bücher.example"), &psl())
            .unwrap();
        assert_eq!(rp, "xn--bcher-kva.example");
    }
}
