//! Rust dependencies from `Cargo.lock`: its `[[package]]` tables that come from a registry.

use super::{PackageFormat, PackageRecord};

/// Registry packages only: path and git dependencies (no `source`, or `git+…`) are not what crates.io advisories
/// describe. Cargo writes the file itself, one `key = "value"` per line, so a line reader is enough.
pub(super) fn parse_lockfile(text: &str) -> Vec<PackageRecord> {
    let mut packages = Vec::new();
    let tables = text.split("\n[").filter_map(|table| table.strip_prefix("[package]]").or(table.strip_prefix("[[package]]")));
    for table in tables {
        let value = |key: &str| {
            table.lines().find_map(|line| {
                let (field, value) = line.split_once('=')?;
                (field.trim() == key).then(|| value.trim().trim_matches('"'))
            })
        };
        let from_registry = value("source").is_some_and(|source| source.starts_with("registry+") || source.starts_with("sparse+"));
        if let (true, Some(name), Some(version)) = (from_registry, value("name"), value("version")) {
            packages.push(PackageRecord::new(PackageFormat::Cargo, name, version));
        }
    }
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(packages: Vec<PackageRecord>) -> Vec<(String, String)> {
        packages.into_iter().map(|package| (package.name, package.version)).collect()
    }

    #[test]
    fn the_fixture_lockfile_lists_its_15_crates() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata/inventories/Cargo.lock")).unwrap();
        let packages = names(parse_lockfile(&text));
        assert_eq!(packages.len(), 15);
        assert_eq!(packages[0], ("chrono".to_owned(), "0.4.19".to_owned()));
        assert!(packages.contains(&("crossbeam-channel".to_owned(), "0.5.11".to_owned())));
        assert!(packages.contains(&("crossbeam-channel".to_owned(), "0.5.12".to_owned())));
    }

    #[test]
    fn path_and_git_packages_are_left_out() {
        let text = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"serde\",\n]\n\n\
                    [[package]]\nname = \"forked\"\nversion = \"1.0.0\"\nsource = \"git+https://example.org/forked#abc\"\n\n\
                    [[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"sparse+https://index.crates.io/\"\n\
                    checksum = \"abc\"\n\n[metadata]\nname = \"not-a-package\"\n";
        assert_eq!(names(parse_lockfile(text)), [("serde".to_owned(), "1.0.200".to_owned())]);
    }
}
