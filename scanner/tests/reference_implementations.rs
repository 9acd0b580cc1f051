//! Orderings and CVSS scores against reference implementations, replayed from recordings in `data/` so the tests
//! run offline and without those tools installed:
//!
//! - `pep440_packaging_order.json`: Python's `packaging` (PEP 440's reference implementation) on every PyPI version of
//!   the shared vulnerability data plus hand-picked spellings, and the strings it refuses.
//! - `rpm_vercmp_order.json`: rpm's own `rpm.vercmp` on versions put together from real RHEL, Fedora and SUSE
//!   versions and releases, with tildes and carets.
//! - `cvss_reference_scores.json`: Red Hat's Python `cvss` on every CVSS vector of the shared vulnerability data and
//!   on random v3.0, v3.1 and v4.0 base vectors.
//!
//! The order recordings list versions as classes of equal versions in ascending order; every pair must compare as
//! its classes do.

use std::cmp::Ordering;
use std::fs;

use scanner::{cvss, pep440, rpm};
use serde::Deserialize;

#[derive(Deserialize)]
struct ReferenceOrder {
    ascending_classes: Vec<Vec<String>>,
    /// Strings the reference implementation refuses as versions.
    #[serde(default)]
    invalid: Vec<String>,
}

fn reference_order(file: &str) -> ReferenceOrder {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// Asserts `compare` orders every pair of the recording's versions as their classes are ordered; returns the number
/// of versions.
fn assert_agrees(compare: fn(&str, &str) -> Ordering, order: &ReferenceOrder) -> usize {
    let ranked: Vec<(usize, &str)> = order
        .ascending_classes
        .iter()
        .enumerate()
        .flat_map(|(rank, class)| class.iter().map(move |version| (rank, version.as_str())))
        .collect();
    for &(a_rank, a) in &ranked {
        for &(b_rank, b) in &ranked {
            assert_eq!(compare(a, b), a_rank.cmp(&b_rank), "{a:?} vs {b:?}");
        }
    }
    ranked.len()
}

#[test]
fn pep440_agrees_with_packaging_on_every_pair_of_valid_versions() {
    assert_eq!(assert_agrees(pep440::compare, &reference_order("pep440_packaging_order.json")), 691);
}

#[test]
fn what_packaging_refuses_sorts_before_every_valid_version() {
    let order = reference_order("pep440_packaging_order.json");
    assert_eq!(order.invalid.len(), 12);
    for invalid in &order.invalid {
        for valid in order.ascending_classes.iter().flatten() {
            assert!(pep440::compare(invalid, valid).is_lt(), "{invalid:?} vs {valid:?}");
        }
    }
}

#[test]
fn rpm_agrees_with_rpm_vercmp_on_every_pair() {
    assert_eq!(assert_agrees(rpm::compare, &reference_order("rpm_vercmp_order.json")), 364);
}

#[derive(Deserialize)]
struct ReferenceScores {
    scores: Vec<(String, f64)>,
}

#[test]
fn cvss_scores_agree_with_red_hats_cvss() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cvss_reference_scores.json");
    let reference: ReferenceScores = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    assert_eq!(reference.scores.len(), 830);
    for (vector, score) in &reference.scores {
        let ours = if vector.starts_with("CVSS:4.0/") { cvss::v4_score(vector) } else { cvss::v3_base_score(vector) };
        assert_eq!(ours, Some(*score), "{vector}");
    }
}
