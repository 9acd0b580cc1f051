//! OSV ecosystems (`Debian:12`, `Alpine:v3.20`, `PyPI`, …): which version ordering each uses and how it spells
//! package names.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{apk, dpkg, pep440, rpm, semver};

/// A version ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionScheme {
    Dpkg,
    Apk,
    Rpm,
    Pep440,
    SemVer,
}

impl VersionScheme {
    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            VersionScheme::Dpkg => dpkg::compare(a, b),
            VersionScheme::Apk => apk::compare(a, b),
            VersionScheme::Rpm => rpm::compare(a, b),
            VersionScheme::Pep440 => pep440::compare(a, b),
            VersionScheme::SemVer => semver::compare(a, b),
        }
    }
}

/// How an ecosystem's package names compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameRule {
    /// Byte for byte: npm's `Axios` is not `axios`.
    Exact,
    /// PEP 503: case-insensitive, and runs of `-`, `_` and `.` are one `-` (`Jinja2` is `jinja2`, `zope.interface`
    /// is `zope-interface`).
    Pep503,
}

/// An OSV ecosystem string, with the release part that distributions add (`Debian:12`). Two ecosystems are the same
/// only when their strings are: `Debian:12` is not `Debian:11`, nor `Debian`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ecosystem {
    name: String,
    scheme: VersionScheme,
    names: NameRule,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported OSV ecosystem {0:?}")]
pub struct UnknownEcosystem(pub String);

impl FromStr for Ecosystem {
    type Err = UnknownEcosystem;

    fn from_str(name: &str) -> Result<Self, UnknownEcosystem> {
        let family = name.split_once(':').map_or(name, |(family, _release)| family);
        let (scheme, names) = match family {
            "Debian" | "Ubuntu" => (VersionScheme::Dpkg, NameRule::Exact),
            "Alpine" | "Wolfi" | "Chainguard" => (VersionScheme::Apk, NameRule::Exact),
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia" | "openEuler" | "Azure Linux" => {
                (VersionScheme::Rpm, NameRule::Exact)
            }
            "PyPI" => (VersionScheme::Pep440, NameRule::Pep503),
            "npm" | "crates.io" | "Go" => (VersionScheme::SemVer, NameRule::Exact),
            _ => return Err(UnknownEcosystem(name.to_owned())),
        };
        Ok(Ecosystem { name: name.to_owned(), scheme, names })
    }
}

impl Ecosystem {
    /// The OSV string, as given.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    pub fn version_scheme(&self) -> VersionScheme {
        self.scheme
    }

    pub fn compare_versions(&self, a: &str, b: &str) -> Ordering {
        self.scheme.compare(a, b)
    }

    /// The name in the form two spellings of the same package share.
    pub fn normalize_name<'a>(&self, name: &'a str) -> Cow<'a, str> {
        match self.names {
            NameRule::Exact => Cow::Borrowed(name),
            NameRule::Pep503 => Cow::Owned(pep503_normalize(name)),
        }
    }

    pub fn same_package(&self, a: &str, b: &str) -> bool {
        self.normalize_name(a) == self.normalize_name(b)
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.name)
    }
}

fn pep503_normalize(name: &str) -> String {
    let mut normalized = String::with_capacity(name.len());
    let mut in_separator_run = false;
    for character in name.chars() {
        if matches!(character, '-' | '_' | '.') {
            if !in_separator_run {
                normalized.push('-');
            }
            in_separator_run = true;
        } else {
            normalized.push(character.to_ascii_lowercase());
            in_separator_run = false;
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ecosystem(name: &str) -> Ecosystem {
        name.parse().unwrap()
    }

    #[test]
    fn each_family_gets_its_ordering() {
        let cases = [
            ("Debian:12", VersionScheme::Dpkg),
            ("Debian", VersionScheme::Dpkg),
            ("Ubuntu:22.04:LTS", VersionScheme::Dpkg),
            ("Alpine:v3.20", VersionScheme::Apk),
            ("Red Hat", VersionScheme::Rpm),
            ("Red Hat:enterprise_linux:9::appstream", VersionScheme::Rpm),
            ("Rocky Linux:9", VersionScheme::Rpm),
            ("AlmaLinux:9", VersionScheme::Rpm),
            ("openSUSE", VersionScheme::Rpm),
            ("SUSE:Linux Enterprise Server 15 SP5", VersionScheme::Rpm),
            ("PyPI", VersionScheme::Pep440),
            ("npm", VersionScheme::SemVer),
            ("crates.io", VersionScheme::SemVer),
            ("Go", VersionScheme::SemVer),
        ];
        for (name, scheme) in cases {
            assert_eq!(ecosystem(name).version_scheme(), scheme, "{name}");
            assert_eq!(ecosystem(name).as_str(), name);
        }
    }

    #[test]
    fn unknown_and_misspelt_ecosystems_are_refused() {
        for name in ["Maven", "pypi", "debian:12", "", ":12", "Crates.io"] {
            assert_eq!(name.parse::<Ecosystem>(), Err(UnknownEcosystem(name.to_owned())));
        }
    }

    #[test]
    fn releases_are_part_of_the_ecosystem() {
        assert_ne!(ecosystem("Debian:12"), ecosystem("Debian:11"));
        assert_ne!(ecosystem("Alpine:v3.20"), ecosystem("Alpine:v3.19"));
        assert_eq!(ecosystem("Debian:12"), ecosystem("Debian:12"));
    }

    #[test]
    fn pypi_names_follow_pep_503() {
        let pypi = ecosystem("PyPI");
        assert_eq!(pypi.normalize_name("Jinja2"), "jinja2");
        assert_eq!(pypi.normalize_name("zope.interface"), "zope-interface");
        assert_eq!(pypi.normalize_name("Foo__Bar-.baz"), "foo-bar-baz");
        assert!(pypi.same_package("PyYAML", "pyyaml"));
        assert!(!pypi.same_package("pyyaml", "py-yaml"));
    }

    #[test]
    fn other_names_are_exact() {
        assert!(!ecosystem("npm").same_package("Axios", "axios"));
        assert!(ecosystem("npm").same_package("axios", "axios"));
        assert!(!ecosystem("crates.io").same_package("rustls_webpki", "rustls-webpki"));
        assert!(!ecosystem("Debian:12").same_package("OpenSSL", "openssl"));
    }
}
