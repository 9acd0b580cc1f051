//! Berth's vulnerability matching: which OSV advisories affect which package versions, with each ecosystem's own
//! version ordering, and how severe they are.
//!
//! - Version orderings, each a total order over any string: [`dpkg`] (Debian), [`apk`] (Alpine), [`rpm`] (Red Hat,
//!   Rocky, AlmaLinux, SUSE…), [`pep440`] (PyPI), [`semver`] (npm, crates.io, Go).
//! - [`Ecosystem`]: an OSV ecosystem string with its ordering and package-name rule.
//! - [`Record`]: an OSV advisory; [`Record::matches`] says whether it affects an [`InstalledPackage`] and which version
//!   fixes it, [`Record::rating`] how severe it is (CVSS v3 and v4 scores, [`cvss`], or the source's own rating).
//! - [`osv_archive`]: the records of an OSV export (a zip), one at a time.
//! - [`inventory`]: the packages an image holds, read from its layers as they stream, each named as its ecosystem's
//!   advisories name it ([`inventory::Package::installed`]).

pub mod apk;
pub mod cvss;
mod digits;
pub mod dpkg;
pub mod ecosystem;
pub mod inventory;
pub mod matching;
#[cfg(test)]
mod ordering_tests;
pub mod osv;
pub mod osv_archive;
mod parsed;
pub mod pep440;
pub mod rpm;
pub mod semver;
pub mod severity;

pub use ecosystem::{Ecosystem, UnknownEcosystem, VersionScheme};
pub use matching::{FixedVersion, InstalledPackage, Match};
pub use osv::Record;
pub use severity::{Rating, Severity, UnknownSeverity};
