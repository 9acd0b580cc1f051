//! How severe an advisory is: from a CVSS vector when the record carries one (v3 first, then v4), else from the
//! rating its source gives (GHSA's `database_specific.severity`, Debian's `urgency`, …), else Unknown.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cvss;
use crate::osv::Record;

/// Ordered from least to most severe, so `>=` answers "at least this severe". Serialized by name (`"High"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The CVSS qualitative rating of a base score; a score of 0.0 (CVSS "None") rates Unknown.
    pub fn from_cvss_score(score: f64) -> Severity {
        match score {
            9.0.. => Severity::Critical,
            7.0.. => Severity::High,
            4.0.. => Severity::Medium,
            0.1.. => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// A rating word as advisory databases write it, in any case: GHSA `MODERATE`, Debian `unimportant`, Red Hat
    /// `Important`. Words that rate nothing ("not yet assigned") give `None`.
    pub fn from_source_rating(rating: &str) -> Option<Severity> {
        match rating.trim().to_ascii_lowercase().as_str() {
            "critical" => Some(Severity::Critical),
            "high" | "important" => Some(Severity::High),
            "medium" | "moderate" => Some(Severity::Medium),
            "low" | "negligible" | "unimportant" => Some(Severity::Low),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "Unknown",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected Critical, High, Medium, Low or Unknown)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;

    fn from_str(text: &str) -> Result<Self, UnknownSeverity> {
        [Severity::Unknown, Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
            .into_iter()
            .find(|severity| severity.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownSeverity(text.to_owned()))
    }
}

/// A record's severity and, when it came from CVSS, the vector and score behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating<'r> {
    pub severity: Severity,
    pub cvss: Option<CvssScore<'r>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CvssScore<'r> {
    pub vector: &'r str,
    /// The base score (v3), or the score of the metrics the vector gives (v4: CVSS-B for base metrics alone).
    pub score: f64,
}

impl Record {
    /// The record's severity: the highest-scoring CVSS v3 vector among the record's and its packages' `severity`
    /// (and RustSec's `affected[].database_specific.cvss`); without one, the highest-scoring CVSS v4 vector; else the
    /// most severe rating its source wrote; else Unknown. v3 goes first because records that carry both were rated
    /// by their sources on the v3 scale (GHSA's `MODERATE` for a v3 5.0 that v4 scores 2.3).
    pub fn rating(&self) -> Rating<'_> {
        let highest = |score_of: fn(&str) -> Option<f64>| {
            let scored = self.cvss_vectors().filter_map(move |vector| Some(CvssScore { vector, score: score_of(vector)? }));
            scored.max_by(|a, b| a.score.total_cmp(&b.score))
        };
        if let Some(cvss) = highest(cvss::v3_base_score).or_else(|| highest(cvss::v4_score)) {
            return Rating { severity: Severity::from_cvss_score(cvss.score), cvss: Some(cvss) };
        }
        let severity = self.source_ratings().filter_map(Severity::from_source_rating).max().unwrap_or(Severity::Unknown);
        Rating { severity, cvss: None }
    }

    /// Every vector the record carries; each scorer picks the versions it knows by the vector's `CVSS:x.y/` prefix.
    fn cvss_vectors(&self) -> impl Iterator<Item = &str> {
        let listed = self.severity.iter().chain(self.affected.iter().flat_map(|affected| &affected.severity));
        let rustsec = self.affected.iter().filter_map(|affected| string_field(affected.database_specific.as_ref(), "cvss"));
        listed.map(|score| score.score.as_str()).chain(rustsec)
    }

    fn source_ratings(&self) -> impl Iterator<Item = &str> {
        let record = string_field(self.database_specific.as_ref(), "severity");
        let per_package = self.affected.iter().flat_map(|affected| {
            [
                string_field(affected.database_specific.as_ref(), "severity"),
                string_field(affected.ecosystem_specific.as_ref(), "severity"),
                string_field(affected.ecosystem_specific.as_ref(), "urgency"),
            ]
        });
        record.into_iter().chain(per_package.flatten())
    }
}

fn string_field<'r>(object: Option<&'r Value>, field: &str) -> Option<&'r str> {
    object?.get(field)?.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating_of(json: &str) -> (Severity, Option<f64>) {
        let record = Record::from_json(json.as_bytes()).unwrap();
        let rating = record.rating();
        (rating.severity, rating.cvss.map(|cvss| cvss.score))
    }

    #[test]
    fn score_bands() {
        assert_eq!(Severity::from_cvss_score(10.0), Severity::Critical);
        assert_eq!(Severity::from_cvss_score(9.0), Severity::Critical);
        assert_eq!(Severity::from_cvss_score(8.9), Severity::High);
        assert_eq!(Severity::from_cvss_score(7.0), Severity::High);
        assert_eq!(Severity::from_cvss_score(6.9), Severity::Medium);
        assert_eq!(Severity::from_cvss_score(4.0), Severity::Medium);
        assert_eq!(Severity::from_cvss_score(3.9), Severity::Low);
        assert_eq!(Severity::from_cvss_score(0.1), Severity::Low);
        assert_eq!(Severity::from_cvss_score(0.0), Severity::Unknown);
    }

    #[test]
    fn cvss_v3_wins_over_the_source_rating() {
        let json = r#"{"id": "GHSA-x", "modified": "", "database_specific": {"severity": "LOW"},
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"},
                         {"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N"}]}"#;
        assert_eq!(rating_of(json), (Severity::High, Some(7.5)));
    }

    #[test]
    fn the_highest_v3_score_counts() {
        let json = r#"{"id": "X", "modified": "",
            "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:L"}],
            "affected": [{"severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}]}"#;
        assert_eq!(rating_of(json), (Severity::Critical, Some(9.8)));
    }

    #[test]
    fn rustsec_vectors_in_database_specific_count() {
        let json = r#"{"id": "RUSTSEC-x", "modified": "",
            "affected": [{"database_specific": {"cvss": "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}}]}"#;
        assert_eq!(rating_of(json), (Severity::High, Some(7.5)));
    }

    #[test]
    fn cvss_v4_counts_when_there_is_no_v3() {
        let v4 = r#""severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]"#;
        assert_eq!(rating_of(&format!(r#"{{"id": "X", "modified": "", {v4}}}"#)), (Severity::Critical, Some(9.3)));
        let with_rating = format!(r#"{{"id": "X", "modified": "", {v4}, "database_specific": {{"severity": "LOW"}}}}"#);
        assert_eq!(rating_of(&with_rating), (Severity::Critical, Some(9.3)));
    }

    #[test]
    fn unscorable_vectors_fall_back_to_the_source_rating() {
        let json = r#"{"id": "X", "modified": "", "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"},
            {"type": "Ubuntu", "score": "high"}], "database_specific": {"severity": "MODERATE"}}"#;
        assert_eq!(rating_of(json), (Severity::Medium, None));
    }

    #[test]
    fn source_ratings_the_most_severe_wins() {
        let json = r#"{"id": "DSA-x", "modified": "", "affected": [
            {"ecosystem_specific": {"urgency": "low"}},
            {"ecosystem_specific": {"urgency": "high"}},
            {"ecosystem_specific": {"urgency": "not yet assigned"}}]}"#;
        assert_eq!(rating_of(json), (Severity::High, None));
        let json = r#"{"id": "X", "modified": "", "affected": [{"ecosystem_specific": {"severity": "Important"}}]}"#;
        assert_eq!(rating_of(json), (Severity::High, None));
    }

    #[test]
    fn nothing_to_go_on_is_unknown() {
        assert_eq!(rating_of(r#"{"id": "ALPINE-CVE-x", "modified": ""}"#), (Severity::Unknown, None));
        let null_cvss = r#"{"id": "X", "modified": "", "affected": [{"database_specific": {"cvss": null}}]}"#;
        assert_eq!(rating_of(null_cvss), (Severity::Unknown, None));
    }

    #[test]
    fn severities_parse_by_name_in_any_case() {
        assert_eq!("critical".parse(), Ok(Severity::Critical));
        assert_eq!("HIGH".parse(), Ok(Severity::High));
        assert_eq!("Unknown".parse(), Ok(Severity::Unknown));
        assert_eq!("severe".parse::<Severity>(), Err(UnknownSeverity("severe".into())));
    }
}
