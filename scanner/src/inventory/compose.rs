//! An image's final filesystem from its layers' inventories: later layers replace files, whiteouts delete them, and
//! each package gets the OSV ecosystem of the distribution the image turns out to be.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Distro, FileContents, LayerInventory, PackageFormat, PackageRecord, SourcePackage};
use crate::{Ecosystem, InstalledPackage, UnknownEcosystem};

/// The packages of an image's final filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInventory {
    /// From `etc/os-release`, or `usr/lib/os-release` when that is missing.
    pub distro: Option<Distro>,
    /// Ordered by path, then name and version; a package listed by two files at the same location (an npm lockfile
    /// and the package's own `package.json`) is listed once.
    pub packages: Vec<Package>,
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    /// Where it was found: its database or lockfile, or for npm its `node_modules` directory.
    pub path: String,
    /// The OSV ecosystem: `Debian:12`, `Alpine:v3.20`, `PyPI`, `npm`, `crates.io`, `Go`.
    pub ecosystem: String,
    pub format: PackageFormat,
    /// As installed: a dpkg or apk binary package, a PyPI name in its PEP 503 form, a Go module path.
    pub name: String,
    pub version: String,
    /// The source package a dpkg or rpm binary was built from, or an apk package's origin.
    pub source: Option<SourcePackage>,
}

impl ImageInventory {
    /// Stacks `layers`, bottom first: in each layer, its whiteouts and opaque directories delete what the layers
    /// below had, then its files replace whatever was at their paths.
    pub fn compose(layers: &[LayerInventory]) -> ImageInventory {
        let mut files: BTreeMap<&str, &FileContents> = BTreeMap::new();
        for layer in layers {
            for directory in &layer.opaque_directories {
                files.retain(|path, _| !is_inside(path, directory));
            }
            for deleted in &layer.whiteouts {
                files.retain(|path, _| path != deleted && !is_inside(path, deleted));
            }
            files.extend(layer.files.iter().map(|(path, contents)| (path.as_str(), contents)));
        }
        let os_release = |path| match files.get(path) {
            Some(FileContents::OsRelease { distro }) => Some(distro.clone()),
            _ => None,
        };
        let distro = os_release("etc/os-release").or_else(|| os_release("usr/lib/os-release"));
        let mut packages: Vec<Package> = files
            .iter()
            .flat_map(|(path, contents)| {
                let records = match contents {
                    FileContents::Packages { packages } => packages.as_slice(),
                    FileContents::OsRelease { .. } => &[],
                };
                records.iter().map(|record| Package::from_record(record, path, distro.as_ref()))
            })
            .collect();
        packages.sort();
        packages.dedup();
        ImageInventory { distro, packages }
    }
}

impl Package {
    fn from_record(record: &PackageRecord, file: &str, distro: Option<&Distro>) -> Package {
        Package {
            path: record.location.clone().unwrap_or_else(|| file.to_owned()),
            ecosystem: ecosystem_name(record.format, distro),
            format: record.format,
            name: record.name.clone(),
            version: record.version.clone(),
            source: record.source.clone(),
        }
    }

    pub fn ecosystem(&self) -> Result<Ecosystem, UnknownEcosystem> {
        self.ecosystem.parse()
    }

    /// The package as its ecosystem's advisories name it: the source package and version for Debian, the origin
    /// for Alpine, the package itself elsewhere (rpm distributions' advisories list binary packages).
    pub fn installed<'a>(&'a self, ecosystem: &'a Ecosystem) -> InstalledPackage<'a> {
        let (name, version) = match (&self.source, self.format) {
            (Some(source), PackageFormat::Dpkg | PackageFormat::Apk) => (source.name.as_str(), source.version.as_str()),
            _ => (self.name.as_str(), self.version.as_str()),
        };
        InstalledPackage { ecosystem, name, version }
    }
}

/// Whether `path` lies below `directory` (the root, `""`, holds everything).
fn is_inside(path: &str, directory: &str) -> bool {
    directory.is_empty() || path.strip_prefix(directory).is_some_and(|rest| rest.starts_with('/'))
}

/// The OSV ecosystem of a package: language ecosystems by format, distribution packages by the distribution's
/// `ID` and release (`Debian:12`, `Alpine:v3.20` from `3.20.3`, `Ubuntu:22.04:LTS`); without a release it is the
/// family alone, which no release-specific advisory matches.
fn ecosystem_name(format: PackageFormat, distro: Option<&Distro>) -> String {
    let id = distro.map_or("", |distro| distro.id.as_str());
    let release = distro.and_then(|distro| distro.version_id.as_deref());
    match (format, id, release) {
        (PackageFormat::Python, ..) => "PyPI".to_owned(),
        (PackageFormat::Npm, ..) => "npm".to_owned(),
        (PackageFormat::Cargo, ..) => "crates.io".to_owned(),
        (PackageFormat::Go, ..) => "Go".to_owned(),
        (PackageFormat::Dpkg, "ubuntu", Some(release)) => ubuntu_ecosystem(release),
        (PackageFormat::Dpkg, "ubuntu", None) => "Ubuntu".to_owned(),
        (PackageFormat::Dpkg, "debian", Some(release)) => format!("Debian:{release}"),
        (PackageFormat::Dpkg, ..) => "Debian".to_owned(),
        (PackageFormat::Apk, "alpine", Some(release)) => format!("Alpine:v{}", major_minor(release)),
        (PackageFormat::Apk, "wolfi", _) => "Wolfi".to_owned(),
        (PackageFormat::Apk, "chainguard", _) => "Chainguard".to_owned(),
        (PackageFormat::Apk, ..) => "Alpine".to_owned(),
        (PackageFormat::Rpm, "rocky", Some(release)) => format!("Rocky Linux:{}", major(release)),
        (PackageFormat::Rpm, "almalinux", Some(release)) => format!("AlmaLinux:{}", major(release)),
        (PackageFormat::Rpm, "mageia", Some(release)) => format!("Mageia:{release}"),
        (PackageFormat::Rpm, ..) => "Red Hat".to_owned(),
    }
}

/// Ubuntu's OSV ecosystems mark long-term releases, those of an even year's April: `Ubuntu:22.04:LTS`, `Ubuntu:23.10`.
fn ubuntu_ecosystem(release: &str) -> String {
    let long_term =
        release.split_once('.').is_some_and(|(year, month)| month == "04" && year.parse::<u32>().is_ok_and(|year| year % 2 == 0));
    if long_term { format!("Ubuntu:{release}:LTS") } else { format!("Ubuntu:{release}") }
}

fn major(release: &str) -> &str {
    release.split('.').next().unwrap_or(release)
}

fn major_minor(release: &str) -> &str {
    match release.match_indices('.').nth(1) {
        Some((second_dot, _)) => &release[..second_dot],
        None => release,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distro(id: &str, release: Option<&str>) -> Distro {
        Distro { id: id.to_owned(), version_id: release.map(str::to_owned), pretty_name: None }
    }

    #[test]
    fn distribution_ecosystems() {
        let cases = [
            (PackageFormat::Dpkg, Some(distro("debian", Some("12"))), "Debian:12"),
            (PackageFormat::Dpkg, Some(distro("debian", None)), "Debian"),
            (PackageFormat::Dpkg, None, "Debian"),
            (PackageFormat::Dpkg, Some(distro("ubuntu", Some("22.04"))), "Ubuntu:22.04:LTS"),
            (PackageFormat::Dpkg, Some(distro("ubuntu", Some("23.10"))), "Ubuntu:23.10"),
            (PackageFormat::Dpkg, Some(distro("ubuntu", Some("23.04"))), "Ubuntu:23.04"),
            (PackageFormat::Apk, Some(distro("alpine", Some("3.20.3"))), "Alpine:v3.20"),
            (PackageFormat::Apk, Some(distro("alpine", Some("3.21"))), "Alpine:v3.21"),
            (PackageFormat::Apk, Some(distro("wolfi", Some("20230201"))), "Wolfi"),
            (PackageFormat::Rpm, Some(distro("rocky", Some("9.4"))), "Rocky Linux:9"),
            (PackageFormat::Rpm, Some(distro("almalinux", Some("9.5"))), "AlmaLinux:9"),
            (PackageFormat::Rpm, Some(distro("fedora", Some("41"))), "Red Hat"),
            (PackageFormat::Python, Some(distro("debian", Some("12"))), "PyPI"),
            (PackageFormat::Cargo, None, "crates.io"),
        ];
        for (format, distro, expected) in cases {
            let name = ecosystem_name(format, distro.as_ref());
            assert_eq!(name, expected);
            assert!(name.parse::<Ecosystem>().is_ok(), "{name} is an ecosystem the matcher knows");
        }
    }

    #[test]
    fn whiteouts_reach_below_their_path_only() {
        assert!(is_inside("usr/lib/x", "usr/lib"));
        assert!(!is_inside("usr/libexec/x", "usr/lib"));
        assert!(!is_inside("usr/lib", "usr/lib"));
        assert!(is_inside("anything", ""));
    }
}
