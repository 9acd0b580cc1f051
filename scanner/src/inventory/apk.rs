//! apk's database, `lib/apk/db/installed`: one record per package, lines `K:value`, records separated by blank
//! lines.

use super::{PackageFormat, PackageRecord, SourcePackage};

/// Each package (`P`) with its version (`V`) and origin (`o`, the source package Alpine's advisories name).
pub(super) fn parse_installed(text: &str) -> Vec<PackageRecord> {
    text.split("\n\n")
        .filter_map(|record| {
            let field = |key: &str| record.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(':'));
            let (name, version) = (field("P")?, field("V")?);
            let source = field("o").map(|origin| SourcePackage { name: origin.to_owned(), version: version.to_owned() });
            Some(PackageRecord { source, ..PackageRecord::new(PackageFormat::Apk, name, version) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_database_names_each_binary_and_its_origin() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata/inventories/alpine-v3.20.apk-installed"))
                .unwrap();
        let packages: Vec<(String, String, String)> =
            parse_installed(&text).into_iter().map(|package| (package.name, package.version, package.source.unwrap().name)).collect();
        let expected = [
            ("libcrypto3", "3.3.2-r0", "openssl"),
            ("libssl3", "3.3.2-r0", "openssl"),
            ("busybox", "1.36.1-r29", "busybox"),
            ("musl", "1.2.5-r0", "musl"),
            ("libcurl", "8.9.1-r0", "curl"),
            ("curl", "8.9.1-r0", "curl"),
        ]
        .map(|(name, version, origin)| (name.to_owned(), version.to_owned(), origin.to_owned()));
        assert_eq!(packages, expected);
    }

    #[test]
    fn a_record_without_origin_has_no_source_and_one_without_version_is_dropped() {
        let packages = parse_installed("C:Q1abc=\nP:alone\nV:1.0-r0\n\nP:broken\n");
        assert_eq!(packages, [PackageRecord::new(PackageFormat::Apk, "alone", "1.0-r0")]);
    }
}
