//! Installed Python distributions: the core metadata of `*.dist-info/METADATA` (wheels, pip) and of
//! `*.egg-info/PKG-INFO` or a single-file `*.egg-info` (setuptools, distutils).

use std::sync::LazyLock;

use super::{PackageFormat, PackageRecord};
use crate::Ecosystem;

static PYPI: LazyLock<Ecosystem> = LazyLock::new(|| "PyPI".parse().expect("PyPI is an OSV ecosystem"));

pub(super) fn is_metadata(path: &str) -> bool {
    path.ends_with(".dist-info/METADATA") || path.ends_with(".egg-info/PKG-INFO") || path.ends_with(".egg-info")
}

/// `Name` and `Version` from the metadata's header block (it ends at the first blank line, where the description
/// starts); the name in its PEP 503 form, the one PyPI advisories use.
pub(super) fn parse_metadata(text: &str) -> Option<PackageRecord> {
    let headers = text.lines().take_while(|line| !line.trim().is_empty());
    let (mut name, mut version) = (None, None);
    for line in headers {
        match line.split_once(':') {
            Some(("Name", value)) => name = Some(value.trim()),
            Some(("Version", value)) => version = Some(value.trim()),
            _ => {}
        }
    }
    Some(PackageRecord::new(PackageFormat::Python, PYPI.normalize_name(name?), version?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_name_and_version_from_the_header_block() {
        let metadata = "Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3\nSummary: YAML\n\nName: not-a-header\n";
        assert_eq!(parse_metadata(metadata), Some(PackageRecord::new(PackageFormat::Python, "pyyaml", "5.3")));
        assert_eq!(parse_metadata("Metadata-Version: 2.1\nName: zope.interface\nVersion: 6.0\n").unwrap().name, "zope-interface");
        assert_eq!(parse_metadata("Metadata-Version: 2.1\nName: nameless-version\n"), None);
    }

    #[test]
    fn metadata_paths() {
        assert!(is_metadata("usr/lib/python3/dist-packages/Jinja2-2.11.2.dist-info/METADATA"));
        assert!(is_metadata("usr/lib/python3.11/site-packages/requests.egg-info/PKG-INFO"));
        assert!(is_metadata("usr/lib/python3/dist-packages/distro-1.8.0.egg-info"));
        assert!(!is_metadata("usr/lib/python3/dist-packages/Jinja2-2.11.2.dist-info/RECORD"));
    }
}
