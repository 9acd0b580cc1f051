//! The scanning endpoints of the management API: an image's findings, and advisory imports.

use super::routes::Endpoint;
use crate::{
    error::Error,
    oci::{Reference, RepositoryName},
    registry::Manifests,
    scan::{
        Scans,
        report::{ReportView, SnapshotView},
    },
    store::scanning::ScanReport,
};
use axum::{
    Json,
    body::Body,
    response::{IntoResponse, Response},
};

/// The most an advisory import may carry in one request; the public OSV exports of one ecosystem fit.
pub const MAX_IMPORT_BYTES: usize = 256 << 20;

pub(super) async fn handle(scans: &Scans, manifests: &Manifests, endpoint: Endpoint, body: Body) -> Result<Response, Error> {
    match endpoint {
        Endpoint::ScanReport { name, reference } => scan_report(scans, manifests, &name, &reference).await,
        Endpoint::ImportAdvisories => import_advisories(scans, body).await,
        other => Err(Error::EndpointUnknown(format!("{other:?}"))),
    }
}

/// `GET /berth/v1/repositories/<name>/scans/<reference>` — the findings of the image `reference` names, with a
/// summary by severity; `pending` until its first scan is done.
async fn scan_report(scans: &Scans, manifests: &Manifests, name: &RepositoryName, reference: &Reference) -> Result<Response, Error> {
    let record = manifests.record(name, reference).await?;
    let report: ScanReport = scans
        .report(&record.digest)
        .await?
        .ok_or_else(|| Error::ManifestUnknown(format!("{name}@{} has no scan report yet: it is scanned after its push", record.digest)))?;
    let view = ReportView::of(&report, name, &record.digest);
    Ok(Json(view).into_response())
}

/// `POST /berth/v1/advisories` — a JSON array of OSV records: stored as a new advisory snapshot, and every scanned
/// image re-evaluated against it before the answer.
async fn import_advisories(scans: &Scans, body: Body) -> Result<Response, Error> {
    let bytes = axum::body::to_bytes(body, MAX_IMPORT_BYTES).await.map_err(|_| Error::TooLarge {
        what: "advisory import",
        size: MAX_IMPORT_BYTES as u64 + 1,
        limit: MAX_IMPORT_BYTES as u64,
    })?;
    let documents: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|error| Error::InvalidRequest(format!("the body must be a JSON array of OSV records: {error}")))?;
    let summary = scans.import(&documents).await?;
    let snapshot = SnapshotView::from(&summary.snapshot);
    Ok(Json(serde_json::json!({ "imported": summary.imported, "snapshot": snapshot, "reevaluated": summary.reevaluated })).into_response())
}
