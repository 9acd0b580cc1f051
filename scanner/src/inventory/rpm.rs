//! rpm's package database, `rpmdb.sqlite` (rpm 4.16 and later: RHEL 9, Rocky, AlmaLinux, Fedora, openSUSE): one
//! header blob per package in table `Packages`.
//!
//! A header blob (the rpm file format's header structure, without its leading magic): a big-endian `u32` count of
//! index entries and a `u32` size of the data store, then the entries (16 bytes each: tag, type, offset into the store,
//! count), then the store. Strings are NUL-terminated, integers big-endian.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{PackageFormat, PackageRecord, SourcePackage};

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_SOURCERPM: u32 = 1044;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const INDEX_ENTRY_BYTES: usize = 16;

/// The packages of the database at `database` (a private copy: SQLite may write its journal files beside it).
pub(super) fn parse_database(database: &Path) -> Result<Vec<PackageRecord>, String> {
    let unreadable = |error: rusqlite::Error| format!("not an rpm SQLite database: {error}");
    let connection =
        Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(unreadable)?;
    let mut statement = connection.prepare("SELECT blob FROM Packages ORDER BY hnum").map_err(unreadable)?;
    let blobs = statement.query_map([], |row| row.get::<_, Vec<u8>>(0)).map_err(unreadable)?;
    let mut packages = Vec::new();
    for blob in blobs {
        let blob = blob.map_err(unreadable)?;
        let header = Header::parse(&blob).ok_or("a package header blob is truncated")?;
        // The imported signing keys are headers too, but no package.
        if let Some(package) = header.package().filter(|package| package.name != "gpg-pubkey") {
            packages.push(package);
        }
    }
    Ok(packages)
}

struct Header<'b> {
    index: &'b [u8],
    store: &'b [u8],
}

impl<'b> Header<'b> {
    fn parse(blob: &'b [u8]) -> Option<Header<'b>> {
        let entries = usize::try_from(be_u32(blob, 0)?).ok()?;
        let store_bytes = usize::try_from(be_u32(blob, 4)?).ok()?;
        let index_end = 8 + entries.checked_mul(INDEX_ENTRY_BYTES)?;
        let index = blob.get(8..index_end)?;
        let store = blob.get(index_end..index_end.checked_add(store_bytes)?)?;
        Some(Header { index, store })
    }

    /// `[epoch:]version-release`, with the source package its `SOURCERPM` names (`name-version-release.src.rpm`),
    /// at the same epoch, which belongs to the spec file both came from.
    fn package(&self) -> Option<PackageRecord> {
        let (name, version, release) = (self.string(TAG_NAME)?, self.string(TAG_VERSION)?, self.string(TAG_RELEASE)?);
        let epoch = self.int32(TAG_EPOCH).map(|epoch| format!("{epoch}:")).unwrap_or_default();
        let source = self.string(TAG_SOURCERPM).and_then(|source_rpm| {
            let stem = source_rpm.strip_suffix(".src.rpm").or(source_rpm.strip_suffix(".nosrc.rpm"))?;
            let mut parts = stem.rsplitn(3, '-');
            let (source_release, source_version, source_name) = (parts.next()?, parts.next()?, parts.next()?);
            Some(SourcePackage { name: source_name.to_owned(), version: format!("{epoch}{source_version}-{source_release}") })
        });
        Some(PackageRecord { source, ..PackageRecord::new(PackageFormat::Rpm, name, format!("{epoch}{version}-{release}")) })
    }

    /// The entry of `tag`, if it has type `kind`: its offset in the store.
    fn offset(&self, tag: u32, kind: u32) -> Option<usize> {
        self.index.chunks_exact(INDEX_ENTRY_BYTES).find_map(|entry| {
            let matches = be_u32(entry, 0)? == tag && be_u32(entry, 4)? == kind;
            matches.then(|| usize::try_from(be_u32(entry, 8)?).ok()).flatten()
        })
    }

    fn string(&self, tag: u32) -> Option<&'b str> {
        let start = self.store.get(self.offset(tag, TYPE_STRING)?..)?;
        let end = start.iter().position(|&byte| byte == 0)?;
        std::str::from_utf8(&start[..end]).ok()
    }

    fn int32(&self, tag: u32) -> Option<u32> {
        be_u32(self.store, self.offset(tag, TYPE_INT32)?)
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by real rpm tooling: tests/data/rpmdb/make.sh.
    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rpmdb/rpmdb.sqlite");

    #[test]
    fn reads_the_packages_rpm_recorded() {
        let copy = tempfile::tempdir().unwrap();
        let database = copy.path().join("rpmdb.sqlite");
        std::fs::copy(FIXTURE, &database).unwrap();
        let packages: Vec<(String, String, String, String)> = parse_database(&database)
            .unwrap()
            .into_iter()
            .map(|package| {
                let source = package.source.unwrap();
                (package.name, package.version, source.name, source.version)
            })
            .collect();
        let expected = [
            ("berth-plain", "0.9-1", "berth-plain", "0.9-1"),
            ("berth-tool", "2:1.2.3-4.el9", "berth-tool", "2:1.2.3-4.el9"),
            ("berth-tool-libs", "2:1.2.3-4.el9", "berth-tool", "2:1.2.3-4.el9"),
        ];
        let mut sorted = packages.clone();
        sorted.sort();
        assert_eq!(sorted, expected.map(|(a, b, c, d)| (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned())));
    }

    #[test]
    fn truncated_blobs_and_other_files_are_refused() {
        assert!(Header::parse(&[0, 0, 0, 9, 0, 0, 0, 0]).is_none());
        let not_sqlite = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_sqlite.path(), b"not a database").unwrap();
        assert!(parse_database(not_sqlite.path()).is_err());
    }
}
