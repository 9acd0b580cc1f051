//! OSV advisory records (ossf.github.io/osv-schema): the fields matching, severity and findings need. Unknown fields
//! are ignored and `null` reads as absent, so records of any schema version and any database load.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub modified: String,
    pub published: Option<String>,
    /// Set when the database took the advisory back; a withdrawn record affects nothing.
    pub withdrawn: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub aliases: Vec<String>,
    /// Ids this record was derived from (a DSA's CVEs), OSV 1.6.
    #[serde(default, deserialize_with = "null_as_default")]
    pub upstream: Vec<String>,
    pub summary: Option<String>,
    pub details: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub severity: Vec<SeverityScore>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub affected: Vec<Affected>,
    pub database_specific: Option<Value>,
}

/// A scored severity: `type` `CVSS_V3` with a vector such as `CVSS:3.1/AV:N/AC:L/…` as `score`.
#[derive(Debug, Clone, Deserialize)]
pub struct SeverityScore {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

/// One package's affected versions.
#[derive(Debug, Clone, Deserialize)]
pub struct Affected {
    /// Absent only in records that affect a repository rather than a package (GIT ranges alone).
    pub package: Option<Package>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub versions: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub severity: Vec<SeverityScore>,
    pub ecosystem_specific: Option<Value>,
    pub database_specific: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub ecosystem: String,
    pub name: String,
    pub purl: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: RangeKind,
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<Event>,
    /// The repository of a GIT range.
    pub repo: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RangeKind {
    /// Versions in SemVer 2.0 order, whatever the ecosystem.
    Semver,
    /// Versions in the ecosystem's own order.
    Ecosystem,
    /// Commit hashes; matching installed versions ignores these.
    Git,
    /// A range type this crate does not know; ignored like GIT.
    #[serde(other)]
    Unknown,
}

/// A point where a range's state changes. `introduced: "0"` means "from the first version on".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Introduced(String),
    Fixed(String),
    LastAffected(String),
    /// An upper bound on the whole range (`"*"`: none).
    Limit(String),
}

impl Event {
    pub fn version(&self) -> &str {
        match self {
            Event::Introduced(version) | Event::Fixed(version) | Event::LastAffected(version) | Event::Limit(version) => version,
        }
    }
}

impl Record {
    /// Parses one OSV JSON document.
    pub fn from_json(json: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_that_matter_and_ignores_the_rest() {
        let record = Record::from_json(
            br#"{
                "schema_version": "1.7.4", "id": "DLA-4816-1", "modified": "2026-10-03T00:00:00Z", "aliases": null,
                "upstream": ["CVE-2026-103111"], "summary": "pcre2 - security update", "severity": [],
                "affected": [{
                    "package": {"ecosystem": "Debian:12", "name": "pcre2", "purl": "pkg:deb/debian/pcre2?arch=source"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "10.42-1+deb12u2"}]},
                        {"type": "GIT", "repo": "https://example.org/pcre2.git", "events": [{"introduced": "abc"}]},
                        {"type": "SOMETHING_NEW", "events": [{"limit": "*"}, {"last_affected": "1"}]}
                    ],
                    "ecosystem_specific": {"urgency": "medium"},
                    "some_future_field": 1
                }],
                "references": [{"type": "ADVISORY", "url": "https://security-tracker.debian.org/tracker/DLA-4816-1"}]
            }"#,
        )
        .unwrap();
        assert_eq!(record.id, "DLA-4816-1");
        assert!(record.aliases.is_empty());
        assert_eq!(record.upstream, ["CVE-2026-103111"]);
        assert_eq!(record.published, None);
        let affected = &record.affected[0];
        let package = affected.package.as_ref().unwrap();
        assert_eq!((package.ecosystem.as_str(), package.name.as_str()), ("Debian:12", "pcre2"));
        let kinds: Vec<RangeKind> = affected.ranges.iter().map(|range| range.kind).collect();
        assert_eq!(kinds, [RangeKind::Ecosystem, RangeKind::Git, RangeKind::Unknown]);
        assert_eq!(affected.ranges[0].events, [Event::Introduced("0".into()), Event::Fixed("10.42-1+deb12u2".into())]);
        assert_eq!(affected.ranges[2].events, [Event::Limit("*".into()), Event::LastAffected("1".into())]);
        assert_eq!(affected.ecosystem_specific.as_ref().unwrap()["urgency"], "medium");
    }

    #[test]
    fn a_record_without_an_id_is_refused() {
        assert!(Record::from_json(br#"{"modified": "2024-01-01T00:00:00Z"}"#).is_err());
    }
}
