//! `scanner::dpkg::compare` against the real `dpkg --compare-versions`, over every Debian version of the shared
//! vulnerability data (advisory fixes, expected versions, the inventories' installed and source versions) and
//! hand-picked tricky ones. CI runs on Debian, where dpkg is always there.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use scanner::{Record, dpkg};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata");

/// Versions whose order turns on one rule each: `~` before the end, letters before other characters, digit runs as
/// numbers, leading zeros, epochs, the last hyphen, binNMUs, backports and security suffixes. dpkg warns about the
/// last few (no leading digit, odd characters) but still orders them.
const TRICKY: &[&str] = &[
    "0",
    "0~",
    "0~~",
    "0.0",
    "00",
    "1",
    "1.0",
    "1.00",
    "1.0~",
    "1.0~~",
    "1.0~~a",
    "1.0~rc1",
    "1.0~rc1-1",
    "1.0~rc10",
    "1.0~rc2",
    "1.0a",
    "1.0A",
    "1.0z",
    "1.0+",
    "1.0.",
    "1.0-0",
    "1.0-1",
    "1.0-1~bpo12+1",
    "1.0-1+b1",
    "1.0-1+deb12u1",
    "1.0-1.1",
    "1.0-1ubuntu1",
    "1.0-10",
    "1.0-2",
    "1.0+dfsg-1",
    "1.0+dfsg1-1",
    "1.0.1",
    "1.01",
    "1.1",
    "1.10",
    "1.9",
    "1:0",
    "1:1.0",
    "2:0.1",
    "2147483647:1",
    "0:1.0-1",
    "1.0-1-1",
    "1.0-a-1",
    "1:2:3-4",
    "9.2p1-2+deb12u3",
    "1:9.2p1-2+deb12u3",
    "2.1.12-stable-8",
    "20260101",
    "2026a-0+deb12u1",
    "2026b-0+deb12u1",
    "a",
    "abc",
    "1.0-abc",
    "1.0-~",
    "1.0-+",
    "1.0!",
    "1.0=1",
    "1.0_1",
];

/// Every Debian version in the shared data, plus [`TRICKY`].
fn corpus() -> Vec<String> {
    let mut versions: BTreeSet<String> = TRICKY.iter().map(|version| version.to_string()).collect();
    for entry in fs::read_dir(format!("{DATA}/osv")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "json") {
            continue;
        }
        let record = Record::from_json(&fs::read(path).unwrap()).unwrap();
        let debian = record
            .affected
            .iter()
            .filter(|affected| affected.package.as_ref().is_some_and(|package| package.ecosystem.starts_with("Debian")));
        for affected in debian {
            versions.extend(affected.ranges.iter().flat_map(|range| &range.events).map(|event| event.version().to_owned()));
            versions.extend(affected.versions.iter().cloned());
        }
    }
    let expected: Vec<serde_json::Value> = serde_json::from_slice(&fs::read(format!("{DATA}/expected.json")).unwrap()).unwrap();
    versions.extend(
        expected
            .iter()
            .filter(|entry| entry["ecosystem"].as_str().unwrap().starts_with("Debian"))
            .map(|entry| entry["version"].as_str().unwrap().to_owned()),
    );
    for inventory in ["debian12-minbase.status", "debian12-selected.status"] {
        let status = fs::read_to_string(format!("{DATA}/inventories/{inventory}")).unwrap();
        for line in status.lines() {
            if let Some(version) = line.strip_prefix("Version: ") {
                versions.insert(version.to_owned());
            }
            // `Source: name (version)` names the source version when it differs from the binary's.
            if let Some((_, version)) = line.strip_prefix("Source: ").and_then(|source| source.split_once(" (")) {
                versions.insert(version.trim_end_matches(')').to_owned());
            }
        }
    }
    versions.into_iter().collect()
}

/// Whether `dpkg --compare-versions a relation b` holds.
fn dpkg_says(a: &str, relation: &str, b: &str) -> bool {
    let status = Command::new("dpkg").args(["--compare-versions", a, relation, b]).stderr(std::process::Stdio::null()).status();
    match status.expect("dpkg must be installed to run this test").code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!("dpkg --compare-versions {a:?} {relation} {b:?} failed with {other:?}"),
    }
}

fn dpkg_order(a: &str, b: &str) -> Ordering {
    if dpkg_says(a, "lt", b) {
        Ordering::Less
    } else if dpkg_says(a, "eq", b) {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

/// Sorting the corpus by our order and having dpkg confirm each step (`lt` where we step up, `eq` where we do not)
/// proves agreement on every pair: dpkg's order is transitive, and so is ours on this corpus, which the all-pairs
/// check against the sorted positions shows. A direct sample of pairs checks the same from another side.
#[test]
fn agrees_with_dpkg_on_every_pair_of_the_corpus() {
    let mut versions = corpus();
    assert!(versions.len() > 150, "corpus of {} versions", versions.len());
    versions.sort_by(|a, b| dpkg::compare(a, b));

    // Our order, all pairs, against the classes of equal versions in sorted order.
    let mut class = vec![0usize; versions.len()];
    for index in 1..versions.len() {
        class[index] = class[index - 1] + usize::from(dpkg::compare(&versions[index - 1], &versions[index]).is_lt());
    }
    for (i, a) in versions.iter().enumerate() {
        for (j, b) in versions.iter().enumerate() {
            assert_eq!(dpkg::compare(a, b), class[i].cmp(&class[j]), "our order is not transitive at {a} vs {b}");
        }
    }

    for pair in versions.windows(2) {
        let (lower, upper) = (&pair[0], &pair[1]);
        let relation = if dpkg::compare(lower, upper).is_lt() { "lt" } else { "eq" };
        assert!(dpkg_says(lower, relation, upper), "we order {lower} {relation} {upper}; dpkg does not");
    }

    let pairs = versions.len() * (versions.len() - 1) / 2;
    let sample: Vec<(usize, usize)> =
        (0..versions.len()).flat_map(|i| (i + 1..versions.len()).map(move |j| (i, j))).step_by((pairs / 400).max(1)).collect();
    for &(i, j) in &sample {
        let (a, b) = (&versions[i], &versions[j]);
        assert_eq!(dpkg::compare(a, b), dpkg_order(a, b), "{a} vs {b}");
        assert_eq!(dpkg::compare(b, a), dpkg_order(b, a), "{b} vs {a}");
    }
    println!(
        "{} versions, {pairs} pairs, {} adjacent steps and {} sampled pairs confirmed by dpkg",
        versions.len(),
        versions.len() - 1,
        sample.len()
    );
}
