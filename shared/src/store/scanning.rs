//! Storage ports of vulnerability scanning, and the records they hold: advisories, layer inventories, scan reports
//! and the queue of manifests waiting for a scan. `crate::scan` gives them meaning; adapters keep them as documents.

use async_trait::async_trait;
use scanner::{Severity, inventory::LayerInventory};
use serde::{Deserialize, Serialize};

use super::{PageRequest, StoreError};
use crate::oci::{Digest, RepositoryName};

/// One import of advisories: reports name the snapshot they were matched against, and a new one on every import
/// tells which reports are out of date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvisorySnapshot {
    pub id: String,
    /// Unix milliseconds.
    pub imported_at: u64,
}

/// An OSV record as imported: its id, its JSON kept byte for byte, and the keys of the packages it affects
/// (`crate::scan::package_key`), which a scan looks it up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAdvisory {
    pub id: String,
    pub json: Vec<u8>,
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    /// Queued, not scanned yet.
    Pending,
    Done,
    /// The scan could not finish (a layer that is not a tar stream, say); `error` says why.
    Failed,
}

/// One image a scan composed: the manifest's own for an image manifest, each platform's for an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedImage {
    pub digest: Digest,
    /// `os/architecture[/variant]` of an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Layer digests, bottom first: what re-evaluation composes again from stored inventories.
    pub layers: Vec<Digest>,
}

/// A known vulnerability of an installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The advisory's id (`DLA-4783-1`, `GHSA-…`, `RUSTSEC-…`).
    pub id: String,
    /// Other ids of the same vulnerability, CVEs among them.
    pub aliases: Vec<String>,
    /// The package as its advisories name it (a Debian source package, a PyPI project).
    pub package: String,
    pub ecosystem: String,
    pub installed: String,
    /// The first version without the vulnerability; `None` when there is no fix yet.
    pub fixed: Option<String>,
    pub severity: Severity,
    pub summary: Option<String>,
    pub remediation: String,
    /// Where the package was found (its database or lockfile).
    pub path: String,
    /// The platform of the index entry it was found in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// How many findings of each severity a report holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub unknown: u64,
}

impl SeverityCounts {
    pub fn of(findings: &[Finding]) -> SeverityCounts {
        let mut counts = SeverityCounts::default();
        for finding in findings {
            *match finding.severity {
                Severity::Critical => &mut counts.critical,
                Severity::High => &mut counts.high,
                Severity::Medium => &mut counts.medium,
                Severity::Low => &mut counts.low,
                Severity::Unknown => &mut counts.unknown,
            } += 1;
        }
        counts
    }
}

/// What a scan found for one manifest (by digest: the same image pushed to two repositories is scanned once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub manifest: Digest,
    /// The repository the manifest was last pushed to: where its layers are read from.
    pub repository: RepositoryName,
    pub status: ScanStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Unix milliseconds of the last evaluation.
    #[serde(default)]
    pub scanned_at: Option<u64>,
    /// The advisories the findings were matched against.
    #[serde(default)]
    pub snapshot: Option<AdvisorySnapshot>,
    #[serde(default)]
    pub images: Vec<ScannedImage>,
    #[serde(default)]
    pub summary: SeverityCounts,
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// A manifest waiting for its scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedScan {
    pub repository: RepositoryName,
    pub manifest: Digest,
    /// Unix milliseconds.
    pub enqueued_at: u64,
}

/// OSV advisories, replaced by id on import.
#[async_trait]
pub trait AdvisoryStore: Send + Sync {
    /// Stores `advisories`, replacing those of the same ids, each findable by the packages it affects (a package
    /// an earlier version of a record named keeps finding it: matching reads the record itself). An import writes
    /// its records in batches of these, then the snapshot.
    async fn put_advisories(&self, advisories: &[StoredAdvisory]) -> Result<(), StoreError>;
    /// Makes `snapshot` the current one: reports matched against another are out of date.
    async fn put_advisory_snapshot(&self, snapshot: &AdvisorySnapshot) -> Result<(), StoreError>;
    /// Stores `advisories`, then makes `snapshot` the current one.
    async fn import_advisories(&self, advisories: &[StoredAdvisory], snapshot: &AdvisorySnapshot) -> Result<(), StoreError> {
        self.put_advisories(advisories).await?;
        self.put_advisory_snapshot(snapshot).await
    }
    async fn advisory(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The JSON of every stored advisory affecting one of `packages` (package keys), each once: what a scan of an
    /// image holding those packages matches against, never the whole database.
    async fn advisories_of(&self, packages: &[String]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The snapshot of the last import; `None` before the first.
    async fn advisory_snapshot(&self) -> Result<Option<AdvisorySnapshot>, StoreError>;
}

/// Layer inventories by layer digest: a layer's packages depend on its bytes alone, so they are computed once and
/// shared by every image holding the layer.
#[async_trait]
pub trait LayerInventories: Send + Sync {
    async fn layer_inventory(&self, layer: &Digest) -> Result<Option<LayerInventory>, StoreError>;
    async fn put_layer_inventory(&self, layer: &Digest, inventory: &LayerInventory) -> Result<(), StoreError>;
}

/// Scan reports by manifest digest.
#[async_trait]
pub trait ScanReports: Send + Sync {
    async fn scan_report(&self, manifest: &Digest) -> Result<Option<ScanReport>, StoreError>;
    /// Stores a report, replacing the manifest's previous one.
    async fn put_scan_report(&self, report: &ScanReport) -> Result<(), StoreError>;
    /// One page, in digest order after the digest `page.after`, of the manifests that have a report.
    async fn reported_manifests(&self, page: &PageRequest) -> Result<Vec<Digest>, StoreError>;
}

/// Manifests waiting for a scan, kept until their scan finishes, so a restarted process scans them still.
#[async_trait]
pub trait ScanQueue: Send + Sync {
    /// Queues a scan; queuing a manifest already queued in the repository keeps one entry.
    async fn enqueue_scan(&self, scan: &QueuedScan) -> Result<(), StoreError>;
    /// At most `limit` queued scans, in no promised order.
    async fn queued_scans(&self, limit: usize) -> Result<Vec<QueuedScan>, StoreError>;
    /// Removes a finished scan from the queue.
    async fn finish_scan(&self, repository: &RepositoryName, manifest: &Digest) -> Result<(), StoreError>;
}

/// Everything scanning stores; one adapter implements all roles.
pub trait ScanStore: AdvisoryStore + LayerInventories + ScanReports + ScanQueue {}
impl<T: AdvisoryStore + LayerInventories + ScanReports + ScanQueue> ScanStore for T {}
