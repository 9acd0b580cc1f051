//! The real advisories of `shared/vulndata/osv` against every package version of `shared/vulndata/expected.json`:
//! each version is affected by exactly the advisories listed for it, no more and no fewer, and leaving through the
//! reported fix version clears the advisory. Then the same, from images: the inventories of `shared/vulndata/inventories`
//! as layers, composed and matched.

mod layers;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use layers::{GZIP, Layer, TAR, alpine_layer, debian_os_release, go_binary, inventory_file, read};
use scanner::inventory::{ImageInventory, LayerInventory};
use scanner::{Ecosystem, InstalledPackage, Record, Severity};
use serde::Deserialize;

/// In CI the repository is cloned beside `shared/`, as the worktree is here.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata");

#[derive(Deserialize)]
struct Expectation {
    ecosystem: String,
    package: String,
    version: String,
    advisory_ids_expected: BTreeSet<String>,
}

fn records() -> Vec<Record> {
    let mut records = Vec::new();
    for entry in fs::read_dir(format!("{DATA}/osv")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "json") {
            let record = Record::from_json(&fs::read(&path).unwrap()).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            records.push(record);
        }
    }
    records
}

fn expectations() -> Vec<Expectation> {
    serde_json::from_slice(&fs::read(format!("{DATA}/expected.json")).unwrap()).unwrap()
}

fn matching_ids(records: &[Record], ecosystem: &Ecosystem, name: &str, version: &str) -> BTreeSet<String> {
    let package = InstalledPackage { ecosystem, name, version };
    records.iter().filter(|record| record.matches(&package).is_some()).map(|record| record.id.clone()).collect()
}

fn record<'r>(records: &'r [Record], id: &str) -> &'r Record {
    records.iter().find(|record| record.id == id).unwrap_or_else(|| panic!("no record {id}"))
}

#[test]
fn every_record_loads() {
    assert_eq!(records().len(), 211);
}

#[test]
fn each_version_is_affected_by_exactly_its_expected_advisories() {
    let records = records();
    let expectations = expectations();
    assert_eq!(expectations.len(), 67);
    let mut mismatches = Vec::new();
    for expected in &expectations {
        let ecosystem: Ecosystem = expected.ecosystem.parse().unwrap();
        let found = matching_ids(&records, &ecosystem, &expected.package, &expected.version);
        if found != expected.advisory_ids_expected {
            let missed: Vec<_> = expected.advisory_ids_expected.difference(&found).collect();
            let false_alarms: Vec<_> = found.difference(&expected.advisory_ids_expected).collect();
            mismatches.push(format!(
                "{} {} {}: missed {missed:?}, false alarms {false_alarms:?}",
                expected.ecosystem, expected.package, expected.version
            ));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} entries differ:\n{}", mismatches.len(), expectations.len(), mismatches.join("\n"));
}

/// For every expected finding with a fix: the fixed version is newer than the installed one and no longer affected.
/// All 121 expected findings have one but RUSTSEC-2023-0071 (rsa, the Marvin attack), which has none.
#[test]
fn the_reported_fix_clears_each_advisory() {
    let records = records();
    let mut checked = 0;
    let mut without_fix = Vec::new();
    for expected in expectations() {
        let ecosystem: Ecosystem = expected.ecosystem.parse().unwrap();
        let installed = InstalledPackage { ecosystem: &ecosystem, name: &expected.package, version: &expected.version };
        for id in &expected.advisory_ids_expected {
            let record = record(&records, id);
            let Some(fixed) = record.matches(&installed).unwrap().fixed else {
                without_fix.push(id.clone());
                continue;
            };
            assert!(ecosystem.compare_versions(fixed, &expected.version).is_gt(), "{id}: fix {fixed} is not above {}", expected.version);
            let upgraded = InstalledPackage { version: fixed, ..installed };
            assert!(record.matches(&upgraded).is_none(), "{id} still affects {} {fixed}", expected.package);
            checked += 1;
        }
    }
    assert_eq!(checked, 120);
    assert_eq!(without_fix, ["RUSTSEC-2023-0071"]);
}

/// An expected finding with its fix version and severity, read off the record by hand.
struct Case {
    ecosystem: &'static str,
    name: &'static str,
    version: &'static str,
    id: &'static str,
    fixed: Option<&'static str>,
    severity: Severity,
    score: Option<f64>,
}

#[test]
fn fixes_and_severities_of_chosen_findings() {
    let records = records();
    let cases = [
        // Debian and Alpine records carry no severity; the fix is the security update's version.
        Case {
            ecosystem: "Debian:12",
            name: "pcre2",
            version: "10.42-1",
            id: "DLA-4772-1",
            fixed: Some("10.42-1+deb12u1"),
            severity: Severity::Unknown,
            score: None,
        },
        Case {
            ecosystem: "Debian:12",
            name: "pcre2",
            version: "10.42-1",
            id: "DLA-4816-1",
            fixed: Some("10.42-1+deb12u2"),
            severity: Severity::Unknown,
            score: None,
        },
        Case {
            ecosystem: "Alpine:v3.20",
            name: "openssl",
            version: "3.3.2-r0",
            id: "ALPINE-CVE-2024-9143",
            fixed: Some("3.3.2-r1"),
            severity: Severity::Unknown,
            score: None,
        },
        // GHSA: the CVSS v3.1 vector (A:H only: 7.5) rather than the CVSS v4 one (8.7) or the database's HIGH.
        Case {
            ecosystem: "npm",
            name: "body-parser",
            version: "1.20.1",
            id: "GHSA-qwcr-r2fm-qrc7",
            fixed: Some("1.20.3"),
            severity: Severity::High,
            score: Some(7.5),
        },
        Case {
            ecosystem: "npm",
            name: "lodash",
            version: "4.17.20",
            id: "GHSA-35jh-r3h4-6jhm",
            fixed: Some("4.17.21"),
            severity: Severity::High,
            score: Some(7.2),
        },
        // PyPI: events out of order (2.0.0, 2.0.7, 0, 1.26.18) and a GIT range, which is ignored.
        Case {
            ecosystem: "PyPI",
            name: "urllib3",
            version: "1.26.17",
            id: "PYSEC-2023-212",
            fixed: Some("1.26.18"),
            severity: Severity::Medium,
            score: Some(4.2),
        },
        // Three stretches listed newest first; 4.2.1 sits in the one fixed by 4.2.16.
        Case {
            ecosystem: "PyPI",
            name: "django",
            version: "4.2.1",
            id: "PYSEC-2024-102",
            fixed: Some("4.2.16"),
            severity: Severity::Unknown,
            score: None,
        },
        // RustSec: SEMVER stretches starting at prereleases (0.0.0-0, 0.4.0-0, 0.5.12-0).
        Case {
            ecosystem: "crates.io",
            name: "h2",
            version: "0.3.20",
            id: "RUSTSEC-2024-0003",
            fixed: Some("0.3.24"),
            severity: Severity::Unknown,
            score: None,
        },
        Case {
            ecosystem: "crates.io",
            name: "crossbeam-channel",
            version: "0.5.12",
            id: "RUSTSEC-2025-0024",
            fixed: Some("0.5.15"),
            severity: Severity::Unknown,
            score: None,
        },
        // Only a CVSS v4 vector (6.8, as Red Hat's Python `cvss` scores it too).
        Case {
            ecosystem: "crates.io",
            name: "time",
            version: "0.3.20",
            id: "RUSTSEC-2026-0009",
            fixed: Some("0.3.47"),
            severity: Severity::Medium,
            score: Some(6.8),
        },
        // Go: one record for stdlib and golang.org/x/net, each with its own fix.
        Case {
            ecosystem: "Go",
            name: "stdlib",
            version: "1.23.5",
            id: "GO-2026-5026",
            fixed: Some("1.25.13"),
            severity: Severity::Unknown,
            score: None,
        },
        Case {
            ecosystem: "Go",
            name: "golang.org/x/net",
            version: "0.17.0",
            id: "GO-2026-5026",
            fixed: Some("0.55.0"),
            severity: Severity::Unknown,
            score: None,
        },
    ];
    for case in cases {
        let ecosystem: Ecosystem = case.ecosystem.parse().unwrap();
        let record = record(&records, case.id);
        let found = record.matches(&InstalledPackage { ecosystem: &ecosystem, name: case.name, version: case.version });
        assert_eq!(found.map(|found| found.fixed), Some(case.fixed), "{} {} {}", case.id, case.name, case.version);
        let rating = record.rating();
        assert_eq!((rating.severity, rating.cvss.map(|cvss| cvss.score)), (case.severity, case.score), "{}", case.id);
    }
}

/// Records for other releases of a distribution never match, though the same package and version would match in the
/// release they name.
#[test]
fn other_releases_never_match() {
    let records = records();
    let cases = [("DSA-6400-1", "Debian:13", "exim4", "4.96-15+deb12u1"), ("DLA-4600-1", "Debian:11", "postorius", "1.3.4-2")];
    for (id, release, name, version) in cases {
        let record = record(&records, id);
        for (ecosystem, affected) in [(release, true), ("Debian:12", false), ("Debian", false)] {
            let ecosystem: Ecosystem = ecosystem.parse().unwrap();
            let found = record.matches(&InstalledPackage { ecosystem: &ecosystem, name, version });
            assert_eq!(found.is_some(), affected, "{id} in {ecosystem}");
        }
    }
    let alpine_3_19: Ecosystem = "Alpine:v3.19".parse().unwrap();
    assert!(matching_ids(&records, &alpine_3_19, "openssl", "3.3.2-r0").is_empty());
}

/// The images the inventories make: a Debian base shared by two images (one with applications on top, one whose
/// dpkg database is replaced by the selected stanzas), and an Alpine image.
fn vulndata_images() -> Vec<ImageInventory> {
    let debian_base = read(
        TAR,
        &Layer::new()
            .symlink("etc/os-release", "../usr/lib/os-release")
            .file("usr/lib/os-release", debian_os_release())
            .file("var/lib/dpkg/status", &inventory_file("debian12-minbase.status"))
            .tar(),
    );
    let requirements = String::from_utf8(inventory_file("requirements.txt")).unwrap();
    let mut applications = Layer::new()
        .file("app/package-lock.json", &inventory_file("package-lock.json"))
        .file("app/Cargo.lock", &inventory_file("Cargo.lock"))
        .file("app/go.mod", &inventory_file("go.mod"))
        // The go.mod's comment: its stdlib advisories apply to binaries built with go1.23.5.
        .executable("app/server", &go_binary(4096, "go1.23.5", "path\texample.com/vulndata-fixture\n"));
    for requirement in requirements.lines() {
        let (name, version) = requirement.split_once("==").unwrap();
        let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nA description.\n");
        applications =
            applications.file(&format!("usr/local/lib/python3.11/site-packages/{name}-{version}.dist-info/METADATA"), metadata.as_bytes());
    }
    let applications = read(GZIP, &applications.gzip());
    let selected = read(GZIP, &Layer::new().file("var/lib/dpkg/status", &inventory_file("debian12-selected.status")).gzip());
    let alpine = alpine_layer();
    let images: [&[LayerInventory]; 3] = [&[debian_base.clone(), applications], &[debian_base, selected], &[alpine]];
    images.into_iter().map(ImageInventory::compose).collect()
}

/// Every record against every package of the composed images: the expected entries the images hold get exactly
/// their advisories, and no other package of the images gets any.
#[test]
fn composed_images_are_affected_by_exactly_the_expected_advisories() {
    let records = records();
    // (ecosystem, advisory name, version) → advisory ids, over every package of every image.
    let mut findings: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    let mut packages = 0;
    for image in vulndata_images() {
        for package in &image.packages {
            let ecosystem = package.ecosystem().unwrap();
            let installed = package.installed(&ecosystem);
            let key = (ecosystem.as_str().to_owned(), installed.name.to_owned(), installed.version.to_owned());
            let ids = matching_ids(&records, &ecosystem, installed.name, installed.version);
            findings.entry(key).or_default().extend(ids);
            packages += 1;
        }
    }
    // Applications image: 88 dpkg, 16 npm, 15 crates, 4 go.mod modules, stdlib and 11 Python distributions; the
    // selected image: its 12 stanzas replace the base's 88; Alpine: 6.
    assert_eq!(packages, 135 + 12 + 6);
    let mut missing = Vec::new();
    let mut mismatches = Vec::new();
    for expected in expectations() {
        let key = (expected.ecosystem.clone(), expected.package.clone(), expected.version.clone());
        match findings.remove(&key) {
            None => missing.push(format!("{} {} {}", key.0, key.1, key.2)),
            Some(found) if found != expected.advisory_ids_expected => {
                mismatches.push(format!("{key:?}: found {found:?}, expected {:?}", expected.advisory_ids_expected))
            }
            Some(_) => {}
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The Alpine fixture keeps the first version of each origin, so curl's fixed version (a negative control) is not in it.
    assert_eq!(missing, ["Alpine:v3.20 curl 8.14.1-r2"]);
    let unexpected: Vec<_> = findings.iter().filter(|(_, ids)| !ids.is_empty()).collect();
    assert!(unexpected.is_empty(), "packages outside expected.json with findings: {unexpected:?}");
}
