//! Whether an OSV record affects one installed package version, by the OSV schema's evaluation rules, and which
//! version fixes it.

use std::cmp::Ordering;

use crate::ecosystem::{Ecosystem, VersionScheme};
use crate::osv::{Affected, Event, Range, RangeKind, Record};

/// An installed package: what a scan asks about.
#[derive(Debug, Clone, Copy)]
pub struct InstalledPackage<'a> {
    pub ecosystem: &'a Ecosystem,
    pub name: &'a str,
    pub version: &'a str,
}

/// The version that fixes a finding; `None` is "no fix".
pub type FixedVersion<'r> = Option<&'r str>;

/// A record affects a package: the entry that says so and the version that fixes it.
#[derive(Debug, Clone, Copy)]
pub struct Match<'r> {
    pub affected: &'r Affected,
    /// The first version that leaves every range the installed version is in; `None` when the record names no such
    /// fix ("no fix").
    pub fixed: FixedVersion<'r>,
}

impl Record {
    /// Whether this record affects `package`: an `affected` entry of exactly the package's ecosystem and the same
    /// package name lists the version, or one of its `ECOSYSTEM` or `SEMVER` ranges contains it. GIT ranges and
    /// withdrawn records affect nothing. When several entries match, the first one is reported with the fix that
    /// leaves them all.
    pub fn matches(&self, package: &InstalledPackage) -> Option<Match<'_>> {
        if self.withdrawn.is_some() {
            return None;
        }
        let mut matches = self.affected.iter().filter_map(|affected| affected.matches(package));
        let first = matches.next()?;
        Some(
            matches.fold(first, |found, later| Match {
                fixed: latest_fix(package.ecosystem.version_scheme(), found.fixed, later.fixed),
                ..found
            }),
        )
    }
}

impl Affected {
    fn matches(&self, installed: &InstalledPackage) -> Option<Match<'_>> {
        let package = self.package.as_ref()?;
        if package.ecosystem != installed.ecosystem.as_str() || !installed.ecosystem.same_package(&package.name, installed.name) {
            return None;
        }
        let ecosystem_scheme = installed.ecosystem.version_scheme();
        let mut in_ranges = self.ranges.iter().filter_map(|range| {
            let scheme = range_scheme(range.kind, ecosystem_scheme)?;
            range.contains(scheme, installed.version).map(|fixed| (scheme, fixed))
        });
        if let Some((scheme, fixed)) = in_ranges.next() {
            let fixed = in_ranges.fold(fixed, |found, (_, later)| latest_fix(scheme, found, later));
            return Some(Match { affected: self, fixed });
        }
        let listed = self.versions.iter().any(|version| ecosystem_scheme.compare(version, installed.version).is_eq());
        listed.then(|| Match { affected: self, fixed: self.first_fix_above(ecosystem_scheme, installed.version) })
    }

    /// For a version matched through the `versions` list alone: the smallest `fixed` above it in any range.
    fn first_fix_above(&self, ecosystem_scheme: VersionScheme, version: &str) -> FixedVersion<'_> {
        let fixes = self.ranges.iter().filter_map(|range| Some((range_scheme(range.kind, ecosystem_scheme)?, range))).flat_map(
            |(scheme, range)| {
                range.events.iter().filter_map(move |event| match event {
                    Event::Fixed(fixed) if scheme.compare(fixed, version).is_gt() => Some(fixed.as_str()),
                    _ => None,
                })
            },
        );
        fixes.min_by(|a, b| ecosystem_scheme.compare(a, b))
    }
}

/// The ordering a range's versions follow; `None` for ranges that do not hold package versions.
fn range_scheme(kind: RangeKind, ecosystem_scheme: VersionScheme) -> Option<VersionScheme> {
    match kind {
        RangeKind::Ecosystem => Some(ecosystem_scheme),
        RangeKind::Semver => Some(VersionScheme::SemVer),
        RangeKind::Git | RangeKind::Unknown => None,
    }
}

/// Of two fixes for the same installed version, the one that leaves both ranges; no fix in either means no fix.
fn latest_fix<'r>(scheme: VersionScheme, a: FixedVersion<'r>, b: FixedVersion<'r>) -> FixedVersion<'r> {
    Some(std::cmp::max_by(a?, b?, |a, b| scheme.compare(a, b)))
}

impl Range {
    /// Whether `version` is affected by this range, and if so the fix that ends the affected stretch it is in.
    ///
    /// Events apply in version order: the version is affected after an `introduced` at or below it, until a `fixed`
    /// at or below it or a `last_affected` below it. A range with `limit` events only covers versions below one limit.
    fn contains<'r>(&'r self, scheme: VersionScheme, version: &str) -> Option<FixedVersion<'r>> {
        let limits: Vec<&str> =
            self.events.iter().filter_map(|event| if let Event::Limit(limit) = event { Some(limit.as_str()) } else { None }).collect();
        if !limits.is_empty() && !limits.iter().any(|&limit| limit == "*" || scheme.compare(version, limit).is_lt()) {
            return None;
        }
        let mut events: Vec<&Event> = self.events.iter().collect();
        events.sort_by(|a, b| compare_events(scheme, a, b));
        let mut affected = false;
        for event in &events {
            match event {
                Event::Introduced(introduced) if introduced == "0" || scheme.compare(version, introduced).is_ge() => affected = true,
                Event::Fixed(fixed) if scheme.compare(version, fixed).is_ge() => affected = false,
                Event::LastAffected(last) if scheme.compare(version, last).is_gt() => affected = false,
                _ => {}
            }
        }
        if !affected {
            return None;
        }
        // The stretch the version is in ends at the first `fixed` or `last_affected` event above it.
        let end = events.iter().find(|event| match event {
            Event::Fixed(fixed) => scheme.compare(fixed, version).is_gt(),
            Event::LastAffected(last) => scheme.compare(last, version).is_ge(),
            Event::Introduced(_) | Event::Limit(_) => false,
        });
        Some(match end {
            Some(Event::Fixed(fixed)) => Some(fixed.as_str()),
            _ => None,
        })
    }
}

/// Events in version order; events at the same version keep the record's order.
fn compare_events(scheme: VersionScheme, a: &Event, b: &Event) -> Ordering {
    match (Position::of(a), Position::of(b)) {
        (Position::At(a), Position::At(b)) => scheme.compare(a, b),
        (Position::BeforeAll, Position::BeforeAll) | (Position::AfterAll, Position::AfterAll) => Ordering::Equal,
        (Position::BeforeAll, _) | (_, Position::AfterAll) => Ordering::Less,
        (_, Position::BeforeAll) | (Position::AfterAll, _) => Ordering::Greater,
    }
}

/// Where an event sorts: `introduced: "0"` before every version, `limit: "*"` after every version.
enum Position<'e> {
    BeforeAll,
    At(&'e str),
    AfterAll,
}

impl<'e> Position<'e> {
    fn of(event: &'e Event) -> Self {
        match event {
            Event::Introduced(version) if version == "0" => Position::BeforeAll,
            Event::Limit(version) if version == "*" => Position::AfterAll,
            other => Position::At(other.version()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(affected: &str) -> Record {
        Record::from_json(format!(r#"{{"id": "TEST-1", "modified": "2024-01-01T00:00:00Z", "affected": [{affected}]}}"#).as_bytes())
            .unwrap()
    }

    fn check<'r>(record: &'r Record, ecosystem: &str, name: &str, version: &str) -> Option<Option<&'r str>> {
        let ecosystem: Ecosystem = ecosystem.parse().unwrap();
        record.matches(&InstalledPackage { ecosystem: &ecosystem, name, version }).map(|found| found.fixed)
    }

    const PYPI_OUT_OF_ORDER: &str = r#"{"package": {"ecosystem": "PyPI", "name": "Django"},
        "ranges": [{"type": "ECOSYSTEM", "events": [
            {"introduced": "4.2"}, {"fixed": "4.2.3"}, {"introduced": "0"}, {"fixed": "4.1.10"}
        ]}]}"#;

    #[test]
    fn events_apply_in_version_order_not_record_order() {
        let record = record(PYPI_OUT_OF_ORDER);
        assert_eq!(check(&record, "PyPI", "django", "4.2.1"), Some(Some("4.2.3")));
        assert_eq!(check(&record, "PyPI", "django", "4.1.9"), Some(Some("4.1.10")));
        assert_eq!(check(&record, "PyPI", "django", "4.1.10"), None);
        assert_eq!(check(&record, "PyPI", "django", "4.1.12"), None);
        assert_eq!(check(&record, "PyPI", "django", "4.2.3"), None);
        assert_eq!(check(&record, "PyPI", "django", "4.2rc1"), None);
        assert_eq!(check(&record, "PyPI", "django", "4.2"), Some(Some("4.2.3")));
    }

    #[test]
    fn names_follow_the_ecosystem_and_ecosystems_match_exactly() {
        let record = record(PYPI_OUT_OF_ORDER);
        assert!(check(&record, "PyPI", "DJANGO", "4.2.1").is_some());
        let debian = self::record(
            r#"{"package": {"ecosystem": "Debian:12", "name": "zip"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0-13+deb12u1"}]}]}"#,
        );
        assert_eq!(check(&debian, "Debian:12", "zip", "3.0-13"), Some(Some("3.0-13+deb12u1")));
        assert_eq!(check(&debian, "Debian:11", "zip", "3.0-13"), None);
        assert_eq!(check(&debian, "Debian", "zip", "3.0-13"), None);
        assert_eq!(check(&debian, "Debian:12", "Zip", "3.0-13"), None);
    }

    #[test]
    fn last_affected_includes_its_version_and_has_no_fix() {
        let record = record(
            r#"{"package": {"ecosystem": "npm", "name": "x"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"last_affected": "1.4.2"}]}]}"#,
        );
        assert_eq!(check(&record, "npm", "x", "1.4.2"), Some(None));
        assert_eq!(check(&record, "npm", "x", "1.0.0"), Some(None));
        assert_eq!(check(&record, "npm", "x", "1.4.3"), None);
        assert_eq!(check(&record, "npm", "x", "0.9.9"), None);
    }

    #[test]
    fn introduced_zero_covers_prereleases_below_every_version() {
        let record = record(
            r#"{"package": {"ecosystem": "crates.io", "name": "x"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.1.0"}]}]}"#,
        );
        assert_eq!(check(&record, "crates.io", "x", "0.0.0-alpha"), Some(Some("0.1.0")));
        assert_eq!(check(&record, "crates.io", "x", "0.1.0-rc.1"), Some(Some("0.1.0")));
        assert_eq!(check(&record, "crates.io", "x", "0.1.0"), None);
    }

    #[test]
    fn several_stretches_report_the_fix_of_the_one_the_version_is_in() {
        let record = record(
            r#"{"package": {"ecosystem": "Go", "name": "stdlib"},
            "ranges": [{"type": "SEMVER", "events": [
                {"introduced": "0"}, {"fixed": "1.22.12"}, {"introduced": "1.23.0-0"}, {"fixed": "1.23.6"}, {"introduced": "1.24.0-0"}
            ]}]}"#,
        );
        assert_eq!(check(&record, "Go", "stdlib", "1.23.5"), Some(Some("1.23.6")));
        assert_eq!(check(&record, "Go", "stdlib", "1.21.0"), Some(Some("1.22.12")));
        assert_eq!(check(&record, "Go", "stdlib", "1.22.12"), None);
        assert_eq!(check(&record, "Go", "stdlib", "1.23.6"), None);
        assert_eq!(check(&record, "Go", "stdlib", "1.24.1"), Some(None));
    }

    #[test]
    fn limits_bound_the_range() {
        let record = record(
            r#"{"package": {"ecosystem": "npm", "name": "x"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"limit": "2.0.0"}]}]}"#,
        );
        assert_eq!(check(&record, "npm", "x", "1.9.9"), Some(None));
        assert_eq!(check(&record, "npm", "x", "2.0.0"), None);
        let unlimited = self::record(
            r#"{"package": {"ecosystem": "npm", "name": "x"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"limit": "*"}]}]}"#,
        );
        assert_eq!(check(&unlimited, "npm", "x", "99.0.0"), Some(None));
    }

    #[test]
    fn the_versions_list_matches_by_version_equality_and_git_ranges_are_ignored() {
        let record = record(
            r#"{"package": {"ecosystem": "PyPI", "name": "x"},
            "ranges": [
                {"type": "GIT", "repo": "https://example.org/x", "events": [{"introduced": "0"}, {"fixed": "abcdef"}]},
                {"type": "ECOSYSTEM", "events": [{"introduced": "3.0"}, {"fixed": "3.2"}]}
            ],
            "versions": ["1.0", "2.0.1"]}"#,
        );
        assert_eq!(check(&record, "PyPI", "x", "1.0.0"), Some(Some("3.2")));
        assert_eq!(check(&record, "PyPI", "x", "2.0.1"), Some(Some("3.2")));
        assert_eq!(check(&record, "PyPI", "x", "1.5"), None);
        assert_eq!(check(&record, "PyPI", "x", "3.1"), Some(Some("3.2")));
        assert_eq!(check(&record, "PyPI", "x", "3.2"), None);
    }

    #[test]
    fn several_matching_entries_report_the_fix_that_leaves_them_all() {
        let record = record(
            r#"{"package": {"ecosystem": "npm", "name": "x"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.0"}]}]},
            {"package": {"ecosystem": "npm", "name": "x"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"fixed": "1.3.0"}]}]},
            {"package": {"ecosystem": "npm", "name": "y"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}"#,
        );
        assert_eq!(check(&record, "npm", "x", "1.1.0"), Some(Some("1.3.0")));
        assert_eq!(check(&record, "npm", "x", "0.1.0"), Some(Some("1.2.0")));
        assert_eq!(check(&record, "npm", "x", "1.2.5"), Some(Some("1.3.0")));
        assert_eq!(check(&record, "npm", "y", "5.0.0"), Some(None));
    }

    #[test]
    fn withdrawn_records_affect_nothing() {
        let mut record = record(PYPI_OUT_OF_ORDER);
        record.withdrawn = Some("2024-02-01T00:00:00Z".into());
        assert_eq!(check(&record, "PyPI", "django", "4.2.1"), None);
    }
}
