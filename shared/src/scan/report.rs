//! A scan report as users read it: from the API, from `berth scan show`, and in the report artifact attached to the
//! image. One shape everywhere, with times in RFC 3339 and the image by name and digest.

use serde::Serialize;

use crate::{
    oci::{Digest, RepositoryName},
    store::scanning::{AdvisorySnapshot, Finding, ScanReport, ScanStatus, SeverityCounts},
};

#[derive(Serialize)]
pub struct ReportView<'a> {
    image: String,
    status: ScanStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    scanned_at: Option<String>,
    snapshot: Option<SnapshotView<'a>>,
    summary: SummaryView,
    findings: &'a [Finding],
}

impl<'a> ReportView<'a> {
    /// `report` of the image `name@digest`.
    pub fn of(report: &'a ScanReport, name: &RepositoryName, digest: &Digest) -> ReportView<'a> {
        let counts = report.summary;
        ReportView {
            image: format!("{name}@{digest}"),
            status: report.status,
            error: report.error.as_deref(),
            scanned_at: report.scanned_at.map(rfc3339),
            snapshot: report.snapshot.as_ref().map(SnapshotView::from),
            summary: SummaryView { total: counts.critical + counts.high + counts.medium + counts.low + counts.unknown, counts },
            findings: &report.findings,
        }
    }
}

#[derive(Serialize)]
pub struct SnapshotView<'a> {
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

pub fn rfc3339(unix_millis: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_millis)).to_string()
}
