//! The scanning endpoints of the management API: an image's findings, and advisory imports.

use axum::{
    Json,
    body::Body,
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::routes::Endpoint;
use crate::{
    error::Error,
    oci::{Reference, RepositoryName},
    registry::Manifests,
    scan::Scans,
    store::scanning::{AdvisorySnapshot, Finding, ScanReport, ScanStatus, SeverityCounts},
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

/// A report as the API shows it: times in RFC 3339, the image by name and digest.
#[derive(Serialize)]
struct ReportView<'a> {
    image: String,
    status: ScanStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    scanned_at: Option<String>,
    snapshot: Option<SnapshotView<'a>>,
    summary: SummaryView,
    findings: &'a [Finding],
}

#[derive(Serialize)]
struct SnapshotView<'a> {
    id: &'a str,
    imported_at: String,
}

impl<'a> From<&'a AdvisorySnapshot> for SnapshotView<'a> {
    fn from(snapshot: &'a AdvisorySnapshot) -> Self {
        SnapshotView { id: &snapshot.id, imported_at: rfc3339(snapshot.imported_at) }
    }
}

#[derive(Serialize)]
struct SummaryView {
    total: u64,
    #[serde(flatten)]
    counts: SeverityCounts,
}

fn rfc3339(unix_millis: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_millis)).to_string()
}

/// `GET /berth/v1/repositories/<name>/scans/<reference>` — the findings of the image `reference` names, with a
/// summary by severity; `pending` until its first scan is done.
async fn scan_report(scans: &Scans, manifests: &Manifests, name: &RepositoryName, reference: &Reference) -> Result<Response, Error> {
    let record = manifests.record(name, reference).await?;
    let report: ScanReport = scans
        .report(&record.digest)
        .await?
        .ok_or_else(|| Error::ManifestUnknown(format!("{name}@{} has no scan report yet: it is scanned after its push", record.digest)))?;
    let counts = report.summary;
    let view = ReportView {
        image: format!("{name}@{}", record.digest),
        status: report.status,
        error: report.error.as_deref(),
        scanned_at: report.scanned_at.map(rfc3339),
        snapshot: report.snapshot.as_ref().map(SnapshotView::from),
        summary: SummaryView { total: counts.critical + counts.high + counts.medium + counts.low + counts.unknown, counts },
        findings: &report.findings,
    };
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
    let (snapshot, imported) = scans.import(&documents).await?;
    Ok(Json(serde_json::json!({ "imported": imported, "snapshot": SnapshotView::from(&snapshot) })).into_response())
}
