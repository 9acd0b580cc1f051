//! Semantic versions (SemVer 2.0: `MAJOR.MINOR.PATCH[-prerelease][+build]`), the order of npm, crates.io and Go
//! modules. Leniencies real data needs: a leading `v` (Go's `v1.2.3`), a missing minor or patch read as 0 (`1.0`),
//! and leading zeros in numbers.

use std::cmp::Ordering;

use crate::digits::Number;
use crate::parsed::compare_parsed;

/// Compares two semantic versions; build metadata is ignored. Strings that are not versions sort before every valid
/// one.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_parsed(a, b, SemanticVersion::parse, SemanticVersion::compare)
}

struct SemanticVersion<'a> {
    core: [Number<'a>; 3],
    /// Dot-separated identifiers after `-`; empty for a release.
    prerelease: Vec<Identifier<'a>>,
}

/// A prerelease identifier. Numeric identifiers sort before alphanumeric ones and compare as numbers; alphanumeric
/// ones compare in ASCII order. Lists of them compare in turn, and a list that goes on is the greater
/// (`1.0.0-alpha` < `1.0.0-alpha.1`).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Identifier<'a> {
    Numeric(Number<'a>),
    Alphanumeric(&'a [u8]),
}

impl<'a> Identifier<'a> {
    fn new(text: &'a [u8]) -> Self {
        if text.iter().all(u8::is_ascii_digit) { Identifier::Numeric(Number::new(text)) } else { Identifier::Alphanumeric(text) }
    }
}

impl<'a> SemanticVersion<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let (text, build) = match text.split_once('+') {
            Some((text, build)) => (text, Some(build)),
            None => (text, None),
        };
        if build.is_some_and(|build| identifiers(build).is_none()) {
            return None;
        }
        let (core_text, prerelease) = match text.split_once('-') {
            Some((core, prerelease)) => (core, identifiers(prerelease)?.into_iter().map(Identifier::new).collect()),
            None => (text, Vec::new()),
        };
        let mut core = [Number::ZERO; 3];
        let mut parts = core_text.split('.');
        for slot in &mut core {
            match parts.next() {
                Some(part) if !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit()) => *slot = Number::new(part.as_bytes()),
                Some(_) => return None,
                None => break,
            }
        }
        if parts.next().is_some() {
            return None;
        }
        Some(SemanticVersion { core, prerelease })
    }

    /// A release sorts after its prereleases; prereleases compare identifier by identifier.
    fn compare(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core).then_with(|| match (self.prerelease.is_empty(), other.prerelease.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => self.prerelease.cmp(&other.prerelease),
        })
    }
}

/// Splits dot-separated identifiers of `[0-9A-Za-z-]`, none of them empty.
fn identifiers(text: &str) -> Option<Vec<&[u8]>> {
    let identifiers: Vec<&[u8]> = text.split('.').map(str::as_bytes).collect();
    let well_formed = identifiers
        .iter()
        .all(|identifier| !identifier.is_empty() && identifier.iter().all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-'));
    well_formed.then_some(identifiers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ordering_tests::{assert_ascending, assert_compares};
    use Ordering::{Equal, Greater, Less};

    /// semver.org's example of precedence, every version strictly before the next.
    #[test]
    fn prerelease_precedence() {
        let ascending =
            ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"];
        assert_ascending(compare, &ascending);
    }

    #[test]
    fn numbers_compare_numerically() {
        assert_compares(compare, "1.10.0", Greater, "1.9.0");
        assert_compares(compare, "0.101.4", Greater, "0.99.9");
        assert_compares(compare, "2.0.0", Greater, "1.99.99");
        assert_compares(compare, "1.0.0-2", Less, "1.0.0-10");
        assert_compares(compare, "1.0.0-alpha10", Less, "1.0.0-alpha9");
    }

    #[test]
    fn prerelease_zero_is_the_lowest_version_of_its_core() {
        assert_compares(compare, "0.5.12-0", Less, "0.5.12");
        assert_compares(compare, "0.5.12-0", Greater, "0.5.11");
        assert_compares(compare, "1.22.0-0", Less, "1.22.0");
        assert_compares(compare, "0.5.12-0", Less, "0.5.12-alpha");
    }

    #[test]
    fn build_metadata_is_ignored() {
        assert_compares(compare, "1.0.0+build.1", Equal, "1.0.0+build.2");
        assert_compares(compare, "1.0.0-rc.1+build", Equal, "1.0.0-rc.1");
    }

    #[test]
    fn leniencies() {
        assert_compares(compare, "v1.2.3", Equal, "1.2.3");
        assert_compares(compare, "1.0", Equal, "1.0.0");
        assert_compares(compare, "1", Equal, "1.0.0");
        assert_compares(compare, "01.2.3", Equal, "1.2.3");
        assert_compares(compare, "1.0-rc.1", Equal, "1.0.0-rc.1");
    }

    #[test]
    fn invalid_versions_sort_first() {
        for invalid in ["", "v", "1.2.3.4", "1..3", "1.2.x", "1.2.3-", "1.2.3-a..b", "1.2.3+", "a.b.c", "1.2.3-ü"] {
            assert_compares(compare, invalid, Less, "0.0.0-0");
        }
    }
}
