//! The vulnerability report attached to its image as an OCI referrer: an artifact whose `subject` is the image and
//! whose one layer is the report as the API shows it, so `oras discover`-style tooling finds it beside the image.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::json;

use scanner::inventory::Compression;

use super::{ScannedManifest, Scans, report::ReportView, report::rfc3339};
use crate::{
    error::Error,
    oci::{Algorithm, Digest, Reference, RepositoryName, media_types::OCI_MANIFEST},
    store::{
        PageRequest, StoreError,
        scanning::{ScanReport, ScanStatus},
    },
};

/// The artifact type of a report, and the media type of its one layer.
pub const REPORT_ARTIFACT_TYPE: &str = "application/vnd.berth.vulnerability-report.v1+json";
/// The file name oras and its kin give the report layer when they pull the artifact.
pub const REPORT_FILE: &str = "vulnerability-report.json";
/// The annotation naming the advisory snapshot the findings were matched against.
pub const SNAPSHOT_ANNOTATION: &str = "io.berth.advisory-snapshot";
/// When the report's scan ran (RFC 3339, milliseconds: it orders reports of one image).
const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
/// The OCI empty descriptor's media type and content: an artifact without a config of its own.
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";
/// How many older reports of one image are looked up per page when they are replaced.
const REPLACED_PAGE: usize = 100;

impl Scans {
    /// Attaches `report` to its image: the new artifact is stored first and older reports of the image go after, so
    /// a reader always finds one (see [`Scans::keep_newest_report`]). Only finished scans of a filesystem get one;
    /// an image deleted since gets none.
    pub(super) async fn attach(&self, report: &ScanReport) -> Result<(), StoreError> {
        if report.status != ScanStatus::Done || report.images.iter().all(|image| image.layers.is_empty()) {
            return Ok(());
        }
        let (repository, image) = (&report.repository, &report.manifest);
        let Some(subject) = self.manifests.manifest(repository, image).await? else { return Ok(()) };
        let view = serde_json::to_vec_pretty(&ReportView::of(report, repository, image)).expect("reports serialize");
        let (layer_size, layer) = (view.len(), self.store_blob(repository, Bytes::from(view)).await?);
        let config = self.store_blob(repository, Bytes::from_static(EMPTY_CONFIG)).await?;
        let created = rfc3339(report.scanned_at.unwrap_or_default());
        let mut annotations = BTreeMap::from([(CREATED_ANNOTATION, created.clone())]);
        if let Some(snapshot) = &report.snapshot {
            annotations.insert(SNAPSHOT_ANNOTATION, snapshot.id.clone());
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": REPORT_ARTIFACT_TYPE,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": EMPTY_CONFIG.len()},
            "layers": [{"mediaType": REPORT_ARTIFACT_TYPE, "digest": layer, "size": layer_size,
                "annotations": {"org.opencontainers.image.title": REPORT_FILE}}],
            "subject": {"mediaType": subject.media_type, "digest": image, "size": subject.size},
            "annotations": annotations,
        });
        let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("JSON values serialize"));
        let digest = Digest::of(Algorithm::Sha256, &bytes);
        self.registry.put(repository, &Reference::Digest(digest.clone()), Some(OCI_MANIFEST), bytes).await.map_err(refused)?;
        self.keep_newest_report(repository, image, &digest, &created).await
    }

    /// Leaves one report artifact of `image`, the newest (by its creation time, then digest): older ones are
    /// deleted, and `ours` too when a newer one is there. Two re-evaluations racing on one image so agree on the
    /// one to keep, and never delete each other's.
    async fn keep_newest_report(
        &self,
        repository: &RepositoryName,
        image: &Digest,
        ours: &Digest,
        created: &str,
    ) -> Result<(), StoreError> {
        let mut page = PageRequest { limit: REPLACED_PAGE, after: None };
        let mut attached = Vec::new();
        loop {
            let listed = self.registry.referrers(repository, image, Some(REPORT_ARTIFACT_TYPE), &page).await.map_err(refused)?;
            attached.extend(listed.iter().map(|descriptor| {
                let created = descriptor.annotations.as_ref().and_then(|annotations| annotations.get(CREATED_ANNOTATION)).cloned();
                (created.unwrap_or_default(), descriptor.digest.clone())
            }));
            if listed.len() < page.limit {
                break;
            }
            page.after = listed.last().map(|descriptor| descriptor.digest.to_string());
        }
        let newest = attached.iter().max().cloned().unwrap_or_else(|| (created.to_owned(), ours.clone()));
        for (_, digest) in attached.into_iter().filter(|entry| *entry != newest) {
            match self.registry.delete(repository, &Reference::Digest(digest)).await {
                // Another scan of the same image deleted it first.
                Ok(()) | Err(Error::ManifestUnknown(_)) => {}
                Err(error) => return Err(refused(error)),
            }
        }
        Ok(())
    }

    /// Stores `bytes` as a blob linked into `repository`, unless it links them already; returns their digest.
    async fn store_blob(&self, repository: &RepositoryName, bytes: Bytes) -> Result<Digest, StoreError> {
        let digest = Digest::of(Algorithm::Sha256, &bytes);
        if self.links.linked_blob(repository, &digest).await?.is_none() {
            let size = bytes.len() as u64;
            self.blobs.put(&digest, bytes).await?;
            self.links.link_blob(repository, &digest, size, None, None).await?;
        }
        Ok(digest)
    }
}

impl ScannedManifest {
    /// Whether this is a report artifact as Berth attaches them: of the report type and with no filesystem to scan.
    /// The type alone exempts nothing: an image that claims it is scanned like any other.
    pub(super) fn is_report(&self) -> bool {
        let holds_a_filesystem = self.layers.iter().any(|layer| Compression::from_media_type(&layer.media_type).is_ok());
        self.artifact_type.as_deref() == Some(REPORT_ARTIFACT_TYPE) && self.manifests.is_empty() && !holds_a_filesystem
    }
}

/// The registry's refusal of a report artifact the scanner built, as a storage failure: the scan is retried, and the
/// message says what was refused.
fn refused(error: Error) -> StoreError {
    match error {
        Error::Store(error) => error,
        other => StoreError::Corrupt(format!("the vulnerability report artifact was refused: {other}")),
    }
}
