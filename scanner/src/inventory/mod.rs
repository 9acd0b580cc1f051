//! What an image holds: the packages of its final filesystem, found by streaming each layer once.
//!
//! - [`read_layer`] streams one layer blob (gzip, zstd or plain tar) and keeps only what package databases, lockfiles,
//!   Go binaries and `os-release` say, as a [`LayerInventory`]. It depends on that layer alone, so it can be stored per
//!   layer digest and reused by every image that shares the layer.
//! - [`ImageInventory::compose`] stacks layer inventories bottom to top, applying replacements and whiteouts the way
//!   the image's filesystem does, and names each package's OSV ecosystem from the distribution.

mod apk;
mod cargo;
mod compose;
mod dpkg;
mod go_binary;
mod go_mod;
mod layer;
mod npm;
mod os_release;
mod python;
mod rpm;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use compose::{ImageInventory, Package};
pub use layer::{Compression, LayerError, MAX_FILE_BYTES, MAX_RPM_DATABASE_BYTES, read_layer};
pub use os_release::Distro;

/// What one layer contributes to an image's filesystem, as far as packages go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInventory {
    /// Every file this layer writes that could hold packages (paths relative to the root, without `./`), with the
    /// packages read from it; files that hold none are kept too, since they replace what a lower layer had there.
    pub files: BTreeMap<String, FileContents>,
    /// Paths this layer deletes (`.wh.NAME` entries), with everything under them.
    pub whiteouts: Vec<String>,
    /// Directories whose lower-layer contents this layer hides (`.wh..wh..opq` entries).
    pub opaque_directories: Vec<String>,
    /// Files that could hold packages but were not read, and why.
    pub skipped: Vec<SkippedFile>,
}

/// What a file of interest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FileContents {
    Packages { packages: Vec<PackageRecord> },
    OsRelease { distro: Distro },
}

/// A package as its database or lockfile records it; the ecosystem is named when the image is composed, because a
/// dpkg database's ecosystem (`Debian:12`) depends on the `os-release` of the final filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRecord {
    pub format: PackageFormat,
    pub name: String,
    pub version: String,
    /// The package advisories are keyed on when it is not this one: a dpkg binary's source package, an apk
    /// package's origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourcePackage>,
    /// Where the package is installed when that is not the file it was read from: an npm lockfile entry's
    /// `node_modules` directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SourcePackage {
    pub name: String,
    pub version: String,
}

/// Where a package record comes from, which decides its ecosystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageFormat {
    Dpkg,
    Apk,
    Rpm,
    Python,
    Npm,
    Cargo,
    /// A `go.mod` requirement, or a module compiled into a Go binary (with `stdlib` for the toolchain).
    Go,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

impl PackageRecord {
    fn new(format: PackageFormat, name: impl Into<String>, version: impl Into<String>) -> PackageRecord {
        PackageRecord { format, name: name.into(), version: version.into(), source: None, location: None }
    }
}
