//! dpkg's database: `var/lib/dpkg/status`, and distroless' `var/lib/dpkg/status.d/` (one file per package, without
//! `Status` fields, since only installed packages are written there).

use super::{PackageFormat, PackageRecord, SourcePackage};

/// The packages of a `status` file whose `Status` says they are installed (not removed with their configuration
/// files kept, nor half-installed).
pub(super) fn parse_status(text: &str) -> Vec<PackageRecord> {
    control_stanzas(text).filter(|stanza| stanza.status.is_some_and(is_installed)).filter_map(Stanza::package).collect()
}

/// The packages of a `status.d` file: every stanza is an installed package.
pub(super) fn parse_status_d(text: &str) -> Vec<PackageRecord> {
    control_stanzas(text).filter_map(Stanza::package).collect()
}

/// `Status: want flag status`: the package's files are all there only in state `installed`.
fn is_installed(status: &str) -> bool {
    status.split_whitespace().nth(2) == Some("installed")
}

#[derive(Default)]
struct Stanza<'t> {
    package: Option<&'t str>,
    version: Option<&'t str>,
    status: Option<&'t str>,
    source: Option<&'t str>,
}

impl Stanza<'_> {
    /// The binary package, with its source: `Source: name (version)` when the source version differs, `Source: name`
    /// when only the name does, and the binary itself when the field is absent.
    fn package(self) -> Option<PackageRecord> {
        let (name, version) = (self.package?, self.version?);
        let (source_name, source_version) = match self.source.map(str::trim) {
            None | Some("") => (name, version),
            Some(source) => match source.split_once('(') {
                Some((source_name, rest)) => (source_name.trim(), rest.trim_end_matches(')').trim()),
                None => (source, version),
            },
        };
        let source = SourcePackage { name: source_name.to_owned(), version: source_version.to_owned() };
        Some(PackageRecord { source: Some(source), ..PackageRecord::new(PackageFormat::Dpkg, name, version) })
    }
}

/// The stanzas of a control file: paragraphs separated by blank lines, fields `Name: value` with continuation lines
/// indented (only the fields read here, which are all single-line).
fn control_stanzas(text: &str) -> impl Iterator<Item = Stanza<'_>> {
    text.split("\n\n").filter(|paragraph| !paragraph.trim().is_empty()).map(|paragraph| {
        let mut stanza = Stanza::default();
        for line in paragraph.lines().filter(|line| !line.starts_with([' ', '\t'])) {
            let Some((field, value)) = line.split_once(':') else { continue };
            let value = Some(value.trim());
            match field {
                "Package" => stanza.package = value,
                "Version" => stanza.version = value,
                "Status" => stanza.status = value,
                "Source" => stanza.source = value,
                _ => {}
            }
        }
        stanza
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const INVENTORIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata/inventories");

    fn by_name(packages: &[PackageRecord]) -> BTreeMap<&str, (&str, &str, &str)> {
        packages
            .iter()
            .map(|package| {
                let source = package.source.as_ref().unwrap();
                (package.name.as_str(), (package.version.as_str(), source.name.as_str(), source.version.as_str()))
            })
            .collect()
    }

    #[test]
    fn the_minbase_status_holds_88_installed_packages_with_their_sources() {
        let text = std::fs::read_to_string(format!("{INVENTORIES}/debian12-minbase.status")).unwrap();
        let packages = parse_status(&text);
        assert_eq!(packages.len(), 88);
        let packages = by_name(&packages);
        assert_eq!(packages.len(), 88, "no package is listed twice");
        assert_eq!(packages["libpcre2-8-0"], ("10.42-1", "pcre2", "10.42-1"));
        assert_eq!(packages["liblzma5"], ("5.4.1-1+deb12u1", "xz-utils", "5.4.1-1+deb12u1"));
        assert_eq!(packages["tzdata"], ("2026b-0+deb12u1", "tzdata", "2026b-0+deb12u1"));
        assert_eq!(packages["libc6"], ("2.36-9+deb12u14", "glibc", "2.36-9+deb12u14"));
        // `Source: name (version)`: the source's own version, as written (a binNMU's `+b1` is not the source's; an
        // epoch the source line leaves out stays out).
        assert_eq!(packages["libcap2"], ("1:2.66-4+deb12u3+b1", "libcap2", "1:2.66-4+deb12u3"));
        assert_eq!(packages["bsdutils"], ("1:2.38.1-5+deb12u3", "util-linux", "2.38.1-5+deb12u3"));
    }

    #[test]
    fn the_selected_status_keys_binaries_on_their_sources() {
        let text = std::fs::read_to_string(format!("{INVENTORIES}/debian12-selected.status")).unwrap();
        let packages = parse_status(&text);
        assert_eq!(packages.len(), 12);
        let packages = by_name(&packages);
        assert_eq!(packages["libpcre2-8-0"], ("10.42-1+deb12u1", "pcre2", "10.42-1+deb12u1"));
        assert_eq!(packages["libssh2-1"], ("1.10.0-3+b1", "libssh2", "1.10.0-3"));
        assert_eq!(packages["python3-django"], ("3:3.2.25-0+deb12u3", "python-django", "3:3.2.25-0+deb12u3"));
    }

    #[test]
    fn only_installed_stanzas_count_in_status_but_every_stanza_counts_in_status_d() {
        let text = "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n\
                    Package: half\nStatus: install reinstreq half-installed\nVersion: 1.0\n\n\
                    Package: kept\nStatus: install ok installed\nVersion: 2.0\nDescription: first line\n more: text\n";
        let names: Vec<String> = parse_status(text).into_iter().map(|package| package.name).collect();
        assert_eq!(names, ["kept"]);
        let distroless = "Package: libssl3\nVersion: 3.0.15-1~deb12u1\nSource: openssl\nArchitecture: amd64\n";
        let packages = parse_status_d(distroless);
        assert_eq!(by_name(&packages)["libssl3"], ("3.0.15-1~deb12u1", "openssl", "3.0.15-1~deb12u1"));
    }
}
