//! Matching an image's packages against advisories: the findings, each with its severity and what to do about it.

use std::collections::{BTreeMap, HashMap};

use scanner::{Ecosystem, Record, inventory::ImageInventory};

use crate::store::scanning::Finding;

/// The key advisories are stored and looked up under: an OSV ecosystem string (exact: `Debian:12` is not `Debian:11`)
/// and a package name in the form its ecosystem compares names in (PEP 503 for PyPI). A tab is in neither.
pub fn package_key(ecosystem: &Ecosystem, name: &str) -> String {
    let key = format!("{}\t{}", ecosystem.as_str(), ecosystem.normalize_name(name));
    // An image or a record may name a package at any length, and DynamoDB's keys hold 1024 bytes: long keys are
    // their hash, the same on import and on lookup.
    if key.len() <= MAX_PLAIN_KEY_BYTES { key } else { format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(key))) }
}

/// The longest package key kept as it is.
const MAX_PLAIN_KEY_BYTES: usize = 512;

/// The keys of the packages `record` affects; records of ecosystems Berth cannot order have none (they match nothing).
pub fn record_package_keys(record: &Record) -> Vec<String> {
    let mut keys: Vec<String> = record
        .affected
        .iter()
        .filter_map(|affected| affected.package.as_ref())
        .filter_map(|package| package.ecosystem.parse::<Ecosystem>().ok().map(|ecosystem| package_key(&ecosystem, &package.name)))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The keys of the packages `inventory` holds: what the advisories that may affect it are stored under.
pub fn inventory_package_keys(inventory: &ImageInventory) -> impl Iterator<Item = String> + '_ {
    inventory.packages.iter().filter_map(|package| {
        let ecosystem = package.ecosystem().ok()?;
        Some(package_key(&ecosystem, package.installed(&ecosystem).name))
    })
}

/// Advisories by the package keys they affect, so a package meets only the records naming it.
pub struct AdvisoryIndex {
    records: Vec<Record>,
    by_package: HashMap<String, Vec<usize>>,
}

impl AdvisoryIndex {
    pub fn new(records: Vec<Record>) -> AdvisoryIndex {
        let mut by_package: HashMap<String, Vec<usize>> = HashMap::new();
        for (position, record) in records.iter().enumerate() {
            for key in record_package_keys(record) {
                by_package.entry(key).or_default().push(position);
            }
        }
        AdvisoryIndex { records, by_package }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every finding of `inventory`, one per advisory and affected package version (two binaries of one Debian source
    /// package make one finding), ordered by package, then advisory id.
    pub fn findings(&self, inventory: &ImageInventory, platform: Option<&str>) -> Vec<Finding> {
        let mut findings = BTreeMap::new();
        for package in &inventory.packages {
            let Ok(ecosystem) = package.ecosystem() else { continue };
            let installed = package.installed(&ecosystem);
            for &position in self.by_package.get(&package_key(&ecosystem, installed.name)).into_iter().flatten() {
                let record = &self.records[position];
                let Some(found) = record.matches(&installed) else { continue };
                let fixed = found.fixed.map(str::to_owned);
                findings.entry((installed.name.to_owned(), record.id.clone(), installed.version.to_owned())).or_insert_with(|| Finding {
                    id: record.id.clone(),
                    aliases: record.aliases.clone(),
                    package: installed.name.to_owned(),
                    ecosystem: ecosystem.as_str().to_owned(),
                    installed: installed.version.to_owned(),
                    remediation: remediation(record, installed.name, installed.version, fixed.as_deref()),
                    fixed,
                    severity: record.rating().severity,
                    summary: record.summary.clone(),
                    path: package.path.clone(),
                    platform: platform.map(str::to_owned),
                });
            }
        }
        findings.into_values().collect()
    }
}

/// What to do: upgrade to the fix, or, without one, the workaround the advisory's details give when they give one.
fn remediation(record: &Record, package: &str, installed: &str, fixed: Option<&str>) -> String {
    match (fixed, record.details.as_deref().and_then(workaround)) {
        (Some(fixed), _) => format!("upgrade {package} from {installed} to {fixed} or later"),
        (None, Some(workaround)) => format!("no fix available yet; {workaround}"),
        (None, None) => "no fix available yet".to_owned(),
    }
}

/// The text under a "Workarounds" heading of an advisory's Markdown details (GHSA and RustSec write one).
fn workaround(details: &str) -> Option<String> {
    let mut lines = details.lines().skip_while(|line| !(line.starts_with('#') && line.to_ascii_lowercase().contains("workaround")));
    lines.next()?;
    let text: Vec<&str> = lines.take_while(|line| !line.starts_with('#')).map(str::trim).filter(|line| !line.is_empty()).collect();
    (!text.is_empty()).then(|| text.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_package_keys_are_hashed_alike() {
        let ecosystem: Ecosystem = "npm".parse().unwrap();
        assert_eq!(package_key(&ecosystem, "left-pad"), "npm\tleft-pad");
        let long = "x".repeat(2000);
        let key = package_key(&ecosystem, &long);
        assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        assert_eq!(key, package_key(&ecosystem, &long));
        assert_ne!(key, package_key(&ecosystem, &"x".repeat(1999)));
    }

    #[test]
    fn the_workaround_section_is_the_guidance() {
        let details = "### Impact\nLeaks.\n\n### Patches\nNone yet.\n\n### Workarounds\nAvoid the crate\nwhere timing is observable.\n\n### References\nx";
        assert_eq!(workaround(details).as_deref(), Some("Avoid the crate where timing is observable."));
        assert_eq!(workaround("### Impact\nLeaks."), None);
        assert_eq!(workaround("## Workarounds\n\n## Next"), None);
    }
}
