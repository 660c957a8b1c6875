//! The Public Suffix List (<https://publicsuffix.org/list/>): parsing and the
//! "public suffix" / "registrable domain" algorithm, with wildcard (`*.ck`) and
//! exception (`!www.ck`) rules. Both the ICANN and the PRIVATE sections are used,
//! as browsers do for the HTML "is a registrable domain suffix of or is equal to"
//! check that WebAuthn relies on (WebAuthn L3 §5.1.3 step 8, HTML §7.1.3.1).
//!
//! Rules are stored in their ASCII (punycode, `xn--`) form, the form in which
//! hosts come out of URL parsing, so a lookup is a few hash probes.

use std::collections::HashSet;
use std::path::Path;

use super::error::WebAuthnError;

/// Where Debian's `publicsuffix` package installs the list.
pub const DEBIAN_PSL_PATH: &str = "/usr/share/publicsuffix/public_suffix_list.dat";

/// A parsed Public Suffix List.
#[derive(Debug, Clone, Default)]
pub struct PublicSuffixList {
    /// Normal rules (`co.uk`), ASCII form.
    rules: HashSet<String>,
    /// Wildcard rules without their `*.` (`*.ck` is stored as `ck`).
    wildcards: HashSet<String>,
    /// Exception rules without their `!` (`!www.ck` is stored as `www.ck`).
    exceptions: HashSet<String>,
}

impl PublicSuffixList {
    /// Parses the list's text format: one rule per line, first whitespace-delimited
    /// token, `//` comments and blank lines ignored. Unicode rules are converted to
    /// their ASCII form; rules that IDNA rejects are skipped.
    pub fn parse(text: &str) -> Self {
        let mut list = Self::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("//") {
                continue;
            }
            let Some(rule) = line.split_whitespace().next() else {
                continue;
            };
            if let Some(rest) = rule.strip_prefix('!') {
                if let Some(ascii) = to_ascii(rest) {
                    list.exceptions.insert(ascii);
                }
            } else if let Some(rest) = rule.strip_prefix("*.") {
                if let Some(ascii) = to_ascii(rest) {
                    list.wildcards.insert(ascii);
                }
            } else if rule == "*" {
                // The implicit default rule; nothing to store.
            } else if let Some(ascii) = to_ascii(rule) {
                list.rules.insert(ascii);
            }
        }
        list
    }

    /// Reads and parses a list file.
    pub fn load(path: &Path) -> Result<Self, WebAuthnError> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            WebAuthnError::NotSupported(format!(
                "cannot read the public suffix list {}: {err}",
                path.display()
            ))
        })?;
        Ok(Self::parse(&text))
    }

    /// Reads Debian's list from [`DEBIAN_PSL_PATH`].
    pub fn load_system() -> Result<Self, WebAuthnError> {
        Self::load(Path::new(DEBIAN_PSL_PATH))
    }

    /// Number of rules of every kind.
    pub fn len(&self) -> usize {
        self.rules.len() + self.wildcards.len() + self.exceptions.len()
    }

    /// True when no rule was parsed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The public suffix of an ASCII, lower-case domain (PSL algorithm):
    /// the matching exception rule minus its leftmost label, else the longest
    /// matching normal or wildcard rule, else the last label (the implicit `*`).
    pub fn public_suffix<'a>(&self, domain: &'a str) -> &'a str {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        // Byte offsets where each suffix starts: 0, after first '.', ...
        let mut starts = vec![0usize];
        starts.extend(domain.match_indices('.').map(|(i, _)| i + 1));
        // Exceptions prevail over everything.
        for &start in &starts {
            if self.exceptions.contains(&domain[start..]) {
                return match domain[start..].find('.') {
                    Some(dot) => &domain[start + dot + 1..],
                    None => &domain[start..],
                };
            }
        }
        // Otherwise the longest match: the first one from the left.
        for (index, &start) in starts.iter().enumerate() {
            let suffix = &domain[start..];
            if self.rules.contains(suffix) {
                return suffix;
            }
            if let Some(&next) = starts.get(index + 1)
                && self.wildcards.contains(&domain[next..])
            {
                return suffix;
            }
        }
        // Implicit "*" rule: the last label.
        match starts.last() {
            Some(&start) => &domain[start..],
            None => domain,
        }
    }

    /// The registrable domain (public suffix plus one label), or `None` when the
    /// domain is itself a public suffix.
    pub fn registrable_domain<'a>(&self, domain: &'a str) -> Option<&'a str> {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let suffix = self.public_suffix(domain);
        if suffix.len() >= domain.len() {
            return None;
        }
        let head = &domain[..domain.len() - suffix.len() - 1];
        let start = head.rfind('.').map_or(0, |dot| dot + 1);
        Some(&domain[start..])
    }

    /// True when `domain` is exactly a public suffix (e.g. `co.uk`, `github.io`).
    pub fn is_public_suffix(&self, domain: &str) -> bool {
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        self.public_suffix(domain) == domain
    }
}

/// IDNA ToASCII of one rule (labels may be Unicode), lower-cased.
fn to_ascii(rule: &str) -> Option<String> {
    if rule.is_ascii() {
        return Some(rule.to_ascii_lowercase());
    }
    idna::domain_to_ascii(rule).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules that the PSL project's test file (`tests/test_psl.txt`) relies on.
    const SAMPLE: &str = "// comment\n\
        com\nbiz\njp\nac.jp\nkyoto.jp\nide.kyoto.jp\n*.kobe.jp\n!city.kobe.jp\n\
        *.ck\n!www.ck\nus\nak.us\nk12.ak.us\n\
        // ===BEGIN PRIVATE DOMAINS===\ngithub.io\n公司.cn\ncn\nuk\nco.uk\n";

    fn registrable(list: &PublicSuffixList, domain: &str) -> Option<String> {
        list.registrable_domain(domain).map(str::to_owned)
    }

    #[test]
    fn psl_test_vectors() {
        let list = PublicSuffixList::parse(SAMPLE);
        // Vectors from publicsuffix.org's test_psl.txt (checkPublicSuffix).
        let cases: &[(&str, Option<&str>)] = &[
            ("com", None),
            ("example.com", Some("example.com")),
            ("b.example.com", Some("example.com")),
            ("a.b.example.com", Some("example.com")),
            ("biz", None),
            ("domain.biz", Some("domain.biz")),
            ("b.domain.biz", Some("domain.biz")),
            ("jp", None),
            ("test.jp", Some("test.jp")),
            ("www.test.jp", Some("test.jp")),
            ("ac.jp", None),
            ("test.ac.jp", Some("test.ac.jp")),
            ("www.test.ac.jp", Some("test.ac.jp")),
            ("kyoto.jp", None),
            ("test.kyoto.jp", Some("test.kyoto.jp")),
            ("ide.kyoto.jp", None),
            ("b.ide.kyoto.jp", Some("b.ide.kyoto.jp")),
            ("a.b.ide.kyoto.jp", Some("b.ide.kyoto.jp")),
            ("c.kobe.jp", None),
            ("b.c.kobe.jp", Some("b.c.kobe.jp")),
            ("city.kobe.jp", Some("city.kobe.jp")),
            ("www.city.kobe.jp", Some("city.kobe.jp")),
            ("ck", None),
            ("test.ck", None),
            ("b.test.ck", Some("b.test.ck")),
            ("a.b.test.ck", Some("b.test.ck")),
            ("www.ck", Some("www.ck")),
            ("www.www.ck", Some("www.ck")),
            ("us", None),
            ("test.us", Some("test.us")),
            ("www.test.us", Some("test.us")),
            ("ak.us", None),
            ("test.ak.us", Some("test.ak.us")),
            ("k12.ak.us", None),
            ("test.k12.ak.us", Some("test.k12.ak.us")),
            ("www.test.k12.ak.us", Some("test.k12.ak.us")),
            // Unlisted TLD: the implicit "*" rule.
            ("example.example", Some("example.example")),
            ("b.example.example", Some("example.example")),
            ("example", None),
            // IDN rules are matched in their punycode form.
            ("xn--55qx5d.cn", None),
            (
                "xn--85x722f.xn--55qx5d.cn",
                Some("xn--85x722f.xn--55qx5d.cn"),
            ),
            ("shishi.xn--55qx5d.cn", Some("shishi.xn--55qx5d.cn")),
            ("github.io", None),
            ("user.github.io", Some("user.github.io")),
        ];
        for (domain, want) in cases {
            assert_eq!(
                registrable(&list, domain).as_deref(),
                *want,
                "registrable domain of {domain}"
            );
        }
    }

    #[test]
    fn system_list_parses_with_wildcards_and_exceptions() {
        let Ok(list) = PublicSuffixList::load_system() else {
            assert_ne!(
                std::env::var("KEYGATE_REQUIRE_INTEROP").as_deref(),
                Ok("1"),
                "{DEBIAN_PSL_PATH} not found and KEYGATE_REQUIRE_INTEROP=1"
            );
            eprintln!("skipped: publicsuffix ({DEBIAN_PSL_PATH}) not found");
            return;
        };
        assert!(list.len() > 5000, "only {} rules", list.len());
        assert!(list.is_public_suffix("co.uk"));
        assert!(list.is_public_suffix("github.io"));
        assert!(!list.is_public_suffix("example.com"));
        assert_eq!(list.public_suffix("a.b.example.co.uk"), "co.uk");
        assert_eq!(list.registrable_domain("www.ck"), Some("www.ck"));
        assert!(list.is_public_suffix("foo.ck"));
        assert!(list.is_public_suffix("xn--55qx5d.cn"));
    }
}
