//! Go module requirements from `go.mod`: `require` lines and blocks, indirect ones included, since they are
//! compiled in as well.

use super::{PackageFormat, PackageRecord};

pub(super) fn parse(text: &str) -> Vec<PackageRecord> {
    let mut packages = Vec::new();
    let mut in_require_block = false;
    for line in text.lines() {
        let line = line.split_once("//").map_or(line, |(code, _comment)| code).trim();
        let requirement = if in_require_block {
            in_require_block = line != ")";
            Some(line)
        } else if let Some(rest) = line.strip_prefix("require") {
            let rest = rest.trim();
            in_require_block = rest == "(";
            (!in_require_block).then_some(rest)
        } else {
            None
        };
        let mut words = requirement.unwrap_or_default().split_whitespace();
        if let (Some(module), Some(version), None) = (words.next(), words.next(), words.next()) {
            packages.push(module_version(module, version));
        }
    }
    packages
}

/// A module at a version, spelt as Go's OSV advisories do: without the `v`.
pub(super) fn module_version(module: &str, version: &str) -> PackageRecord {
    PackageRecord::new(PackageFormat::Go, module, version.strip_prefix('v').unwrap_or(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(text: &str) -> Vec<(String, String)> {
        parse(text).into_iter().map(|package| (package.name, package.version)).collect()
    }

    #[test]
    fn the_fixture_go_mod_requires_four_modules() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata/inventories/go.mod")).unwrap();
        let expected = [
            ("golang.org/x/net", "0.17.0"),
            ("golang.org/x/text", "0.3.7"),
            ("github.com/gin-gonic/gin", "1.9.0"),
            ("google.golang.org/protobuf", "1.31.0"),
        ]
        .map(|(module, version)| (module.to_owned(), version.to_owned()));
        assert_eq!(modules(&text), expected);
    }

    #[test]
    fn single_lines_blocks_and_indirect_requirements() {
        let text = "module m\n\ngo 1.22\n\nrequire github.com/a/b v1.2.3\nrequire (\n\tgithub.com/c/d v0.0.0-20240101-abcdef // indirect\n\n)\n\
                    replace github.com/a/b => ../b\nexclude github.com/e/f v1.0.0\n";
        let expected = [("github.com/a/b", "1.2.3"), ("github.com/c/d", "0.0.0-20240101-abcdef")]
            .map(|(module, version)| (module.to_owned(), version.to_owned()));
        assert_eq!(modules(text), expected);
    }
}
