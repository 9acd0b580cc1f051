//! Vulnerability scanning: a manifest's layers to a stored inventory per layer, the image's packages to findings
//! against the stored OSV advisories, and re-evaluation of every report when advisories change.
//!
//! Depends on the store's ports only ([`BlobStore`], [`BlobIndex`], [`ManifestIndex`], [`ScanStore`]): `berth serve` drives it from its
//! in-process [`worker`], and the scan function on AWS from the table's stream ([`crate::stream`]).

pub mod download;
mod findings;
pub mod import;
pub mod policy;
mod referrer;
pub mod report;
pub mod worker;

use std::sync::Arc;

use scanner::{
    Record,
    inventory::{Compression, ImageInventory, LayerInventory, read_layer},
};
use serde::Deserialize;
use tokio_util::io::{StreamReader, SyncIoBridge};

pub use findings::{AdvisoryIndex, inventory_package_keys, package_key, record_package_keys};
pub use referrer::{REPORT_ARTIFACT_TYPE, REPORT_FILE, SNAPSHOT_ANNOTATION};
pub use scanner::{Severity, UnknownSeverity};

use crate::{
    oci::{Descriptor, Digest, RepositoryName},
    registry::{DEFAULT_MAX_MANIFEST_BYTES, EventSinks, Manifests, unix_millis},
    store::{
        BlobIndex, BlobStore, ManifestIndex, PageRequest, StoreError,
        scanning::{QueuedScan, ScanReport, ScanStatus, ScanStore, ScannedImage, SeverityCounts},
    },
};

/// How many reports re-evaluation reads per page.
const REEVALUATION_PAGE: usize = 100;

/// Why a scan could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest or a child of it is not what the registry validated on push (deleted since, say).
    #[error("{0}")]
    Unreadable(String),
    #[error("layer {digest}: {source}")]
    Layer { digest: Digest, source: scanner::inventory::LayerError },
}

/// The fields of an image manifest or index a scan follows.
#[derive(Deserialize)]
struct ScannedManifest {
    #[serde(default, rename = "artifactType")]
    artifact_type: Option<String>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The scanning service over the store's ports.
pub struct Scans {
    blobs: Arc<dyn BlobStore>,
    links: Arc<dyn BlobIndex>,
    manifests: Arc<dyn ManifestIndex>,
    store: Arc<dyn ScanStore>,
    /// Where report artifacts are pushed: the registry's own manifest service, announcing nothing (a report's push
    /// is no push for scans or webhooks to act on).
    registry: Manifests,
}

impl Scans {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        links: Arc<dyn BlobIndex>,
        manifests: Arc<dyn ManifestIndex>,
        store: Arc<dyn ScanStore>,
    ) -> Scans {
        let registry =
            Manifests::new(blobs.clone(), links.clone(), manifests.clone(), Arc::new(EventSinks(Vec::new())), DEFAULT_MAX_MANIFEST_BYTES);
        Scans { blobs, links, manifests, store, registry }
    }

    /// The service over one blob store and the metadata store that plays every other part.
    pub fn over(blobs: Arc<dyn BlobStore>, metadata: Arc<impl BlobIndex + ManifestIndex + ScanStore + 'static>) -> Scans {
        Scans::new(blobs, metadata.clone(), metadata.clone(), metadata)
    }

    pub fn store(&self) -> &Arc<dyn ScanStore> {
        &self.store
    }

    /// Queues a scan of `manifest` durably, with a pending report unless the manifest already has one (the same
    /// image pushed again keeps its findings until the new scan replaces them).
    pub async fn enqueue(&self, repository: &RepositoryName, manifest: &Digest) -> Result<(), StoreError> {
        self.store
            .enqueue_scan(&QueuedScan { repository: repository.clone(), manifest: manifest.clone(), enqueued_at: unix_millis() })
            .await?;
        if self.store.scan_report(manifest).await?.is_none() {
            self.store.put_scan_report(&pending(repository, manifest)).await?;
        }
        Ok(())
    }

    /// Scans a queued manifest, stores its report and takes it off the queue. Only storage failures are returned: the
    /// scan stays queued for a later attempt.
    pub async fn run(&self, queued: &QueuedScan) -> Result<Option<ScanReport>, StoreError> {
        let report = self.scan_and_store(&queued.repository, &queued.manifest).await?;
        self.store.finish_scan(&queued.repository, &queued.manifest).await?;
        Ok(report)
    }

    /// Scans `manifest` of `repository`, stores its report and attaches it to the image as a referrer; a report
    /// artifact itself is left alone (`None`). A scan that cannot finish is reported failed, with the reason (its
    /// layers will not read better next time). Only storage failures are returned, for the caller to retry.
    pub async fn scan_and_store(&self, repository: &RepositoryName, manifest: &Digest) -> Result<Option<ScanReport>, StoreError> {
        let report = match self.scan(repository, manifest).await {
            Ok(Some(report)) => report,
            Ok(None) => return Ok(None),
            Err(ScanError::Store(error)) => return Err(error),
            Err(error) => {
                tracing::warn!(%manifest, %error, "scan failed");
                ScanReport {
                    status: ScanStatus::Failed,
                    error: Some(error.to_string()),
                    scanned_at: Some(unix_millis()),
                    ..pending(repository, manifest)
                }
            }
        };
        // Attached first: once a report is served, its artifact is there too.
        self.attach(&report).await?;
        self.store.put_scan_report(&report).await?;
        Ok(Some(report))
    }

    /// Scans `manifest` of `repository`: every image it names, each layer's inventory read only when not stored yet.
    /// `None` for a report artifact, which holds no filesystem to scan.
    pub async fn scan(&self, repository: &RepositoryName, manifest: &Digest) -> Result<Option<ScanReport>, ScanError> {
        let parsed = self.read_manifest(repository, manifest).await?;
        if parsed.is_report() {
            return Ok(None);
        }
        let mut images = Vec::new();
        if parsed.manifests.is_empty() {
            images.push(ScannedImage {
                digest: manifest.clone(),
                platform: None,
                layers: self.inventory_layers(repository, &parsed.layers).await?,
            });
        }
        for child in &parsed.manifests {
            let platform = platform_name(child.platform.as_ref());
            // BuildKit's attestations are index entries of platform unknown/unknown: documents, not filesystems.
            if platform.as_deref() == Some("unknown/unknown") {
                continue;
            }
            let layers = self.read_manifest(repository, &child.digest).await?.layers;
            images.push(ScannedImage { digest: child.digest.clone(), platform, layers: self.inventory_layers(repository, &layers).await? });
        }
        let report = ScanReport { status: ScanStatus::Done, images, ..pending(repository, manifest) };
        Ok(Some(self.evaluate(report).await?))
    }

    /// A manifest of `repository`; one deleted since its push fails the scan rather than leaving it queued.
    async fn read_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<ScannedManifest, ScanError> {
        if self.manifests.manifest(repository, digest).await?.is_none() {
            return Err(ScanError::Unreadable(format!("manifest {digest} is no longer in {repository}")));
        }
        let bytes = self.blobs.get(digest).await?;
        serde_json::from_slice(&bytes).map_err(|error| ScanError::Unreadable(format!("manifest {digest}: {error}")))
    }

    /// The digests of the filesystem layers among `layers`, each with its inventory stored. Layers of other media
    /// types (an artifact's files) hold no filesystem and are left out.
    async fn inventory_layers(&self, repository: &RepositoryName, layers: &[Descriptor]) -> Result<Vec<Digest>, ScanError> {
        let mut digests = Vec::new();
        for layer in layers.iter().filter(|layer| Compression::from_media_type(&layer.media_type).is_ok()) {
            if self.store.layer_inventory(&layer.digest).await?.is_none() {
                let inventory = self.read_layer(repository, layer).await?;
                self.store.put_layer_inventory(&layer.digest, &inventory).await?;
            }
            digests.push(layer.digest.clone());
        }
        Ok(digests)
    }

    /// Streams one layer through the inventory reader on a blocking thread; only the reader's buffers are held.
    async fn read_layer(&self, repository: &RepositoryName, layer: &Descriptor) -> Result<LayerInventory, ScanError> {
        let link = self
            .links
            .linked_blob(repository, &layer.digest)
            .await?
            .ok_or_else(|| ScanError::Unreadable(format!("layer {} is no longer in {repository}", layer.digest)))?;
        let bytes = self.blobs.read(&layer.digest, link.key.as_deref(), None).await?;
        let reader = SyncIoBridge::new(StreamReader::new(bytes));
        let media_type = layer.media_type.clone();
        let read = tokio::task::spawn_blocking(move || read_layer(&media_type, reader))
            .await
            .map_err(|error| ScanError::Unreadable(format!("layer {}: the reader stopped: {error}", layer.digest)))?;
        read.map_err(|source| ScanError::Layer { digest: layer.digest.clone(), source })
    }

    /// Matches `report`'s images, composed from their stored inventories, against the current advisories: only the
    /// records stored for the packages the images hold are read.
    async fn evaluate(&self, mut report: ScanReport) -> Result<ScanReport, StoreError> {
        let snapshot = self.store.advisory_snapshot().await?;
        let mut images = Vec::with_capacity(report.images.len());
        for image in &report.images {
            let mut layers = Vec::with_capacity(image.layers.len());
            for digest in &image.layers {
                let inventory = self.store.layer_inventory(digest).await?;
                layers.push(inventory.ok_or_else(|| StoreError::Corrupt(format!("no stored inventory of layer {digest}")))?);
            }
            images.push(ImageInventory::compose(&layers));
        }
        let mut packages: Vec<String> = images.iter().flat_map(findings::inventory_package_keys).collect();
        packages.sort();
        packages.dedup();
        let mut records = Vec::new();
        for json in self.store.advisories_of(&packages).await? {
            // Stored advisories were parsed on import; one that no longer parses is skipped, not fatal to every scan.
            match Record::from_json(&json) {
                Ok(record) => records.push(record),
                Err(error) => tracing::warn!(%error, "a stored advisory does not parse"),
            }
        }
        let advisories = AdvisoryIndex::new(records);
        let mut findings = Vec::new();
        for (image, inventory) in report.images.iter().zip(&images) {
            findings.extend(advisories.findings(inventory, image.platform.as_deref()));
        }
        report.summary = SeverityCounts::of(&findings);
        report.findings = findings;
        report.snapshot = snapshot;
        report.scanned_at = Some(unix_millis());
        Ok(report)
    }

    /// Recomputes, from stored layer inventories alone, the findings of every scanned manifest matched against
    /// another snapshot than the current one, and attaches the new reports; returns how many. An import calls it,
    /// and so does the worker at start, so a re-evaluation cut off by a stop is finished then.
    pub async fn reevaluate_stale(&self) -> Result<usize, StoreError> {
        let current = self.store.advisory_snapshot().await?;
        let mut page = PageRequest { limit: REEVALUATION_PAGE, after: None };
        let mut reevaluated = 0;
        loop {
            let manifests = self.store.reported_manifests(&page).await?;
            for manifest in &manifests {
                let report = self.store.scan_report(manifest).await?;
                if let Some(report) = report.filter(|report| report.status == ScanStatus::Done && report.snapshot != current) {
                    let report = self.evaluate(report).await?;
                    self.attach(&report).await?;
                    self.store.put_scan_report(&report).await?;
                    reevaluated += 1;
                }
            }
            if manifests.len() < page.limit {
                return Ok(reevaluated);
            }
            page.after = manifests.last().map(ToString::to_string);
        }
    }

    pub async fn report(&self, manifest: &Digest) -> Result<Option<ScanReport>, StoreError> {
        self.store.scan_report(manifest).await
    }
}

/// A report of a scan not done yet.
fn pending(repository: &RepositoryName, manifest: &Digest) -> ScanReport {
    ScanReport {
        manifest: manifest.clone(),
        repository: repository.clone(),
        status: ScanStatus::Pending,
        error: None,
        scanned_at: None,
        snapshot: None,
        images: Vec::new(),
        summary: SeverityCounts::default(),
        findings: Vec::new(),
    }
}

/// `os/architecture[/variant]` of an index entry's platform.
fn platform_name(platform: Option<&serde_json::Value>) -> Option<String> {
    let platform = platform?;
    let field = |name: &str| platform.get(name).and_then(serde_json::Value::as_str);
    let mut name = format!("{}/{}", field("os")?, field("architecture")?);
    if let Some(variant) = field("variant") {
        name.push('/');
        name.push_str(variant);
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_named_os_architecture_and_variant() {
        let named = |platform: serde_json::Value| platform_name(Some(&platform));
        assert_eq!(named(serde_json::json!({"os": "linux", "architecture": "amd64"})).as_deref(), Some("linux/amd64"));
        assert_eq!(named(serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"})).as_deref(), Some("linux/arm/v7"));
        assert_eq!(named(serde_json::json!({"os": "linux"})), None);
        assert_eq!(platform_name(None), None);
    }
}
