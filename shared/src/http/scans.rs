//! The scanning endpoints of the management API: an image's findings, and advisory imports.

use axum::{
    Json,
    body::Body,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

use super::routes::Endpoint;
use crate::{
    error::Error,
    oci::{Reference, RepositoryName},
    registry::Manifests,
    scan::{
        Scans,
        import::{ImportSummary, checked_advisory},
        report::{ReportView, SnapshotView},
    },
    store::scanning::ScanReport,
};

/// The most an advisory import may carry in one request; the public OSV exports of one ecosystem fit.
pub const MAX_IMPORT_BYTES: usize = 256 << 20;

/// The media type of a streamed import: one OSV record per line.
pub const NDJSON: &str = "application/x-ndjson";
/// The longest line (one OSV record) a streamed import takes.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

pub(super) async fn handle(
    scans: &Scans,
    manifests: &Manifests,
    endpoint: Endpoint,
    call: &super::Call<'_>,
    body: Body,
) -> Result<Response, Error> {
    match endpoint {
        Endpoint::ScanReport { name, reference } => scan_report(scans, manifests, &name, &reference).await,
        Endpoint::ImportAdvisories => {
            let content_type = call.parts.headers.get(axum::http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
            if content_type.is_some_and(|content_type| content_type.starts_with(NDJSON)) {
                stream_advisories(scans, body).await
            } else {
                import_advisories(scans, body).await
            }
        }
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
    imported(scans.import(&documents).await?)
}

/// `POST /berth/v1/advisories` with `Content-Type: application/x-ndjson` — OSV records one per line, of any number:
/// stored a batch at a time as they arrive, the new snapshot made current after the last. A line that is no OSV
/// record refuses the import (400 naming the line): no stored report changes, though the records before it stay
/// stored (see [`crate::scan::import::AdvisoryImport`]).
async fn stream_advisories(scans: &Scans, body: Body) -> Result<Response, Error> {
    let mut import = scans.start_import();
    let mut lines = LineSplitter::default();
    let mut stream = body.into_data_stream();
    let mut number = 0;
    loop {
        let chunk = match stream.next().await {
            Some(chunk) => Some(chunk.map_err(|error| Error::InvalidRequest(format!("the import broke off: {error}")))?),
            None => None,
        };
        let finished = chunk.is_none();
        for line in lines.push(chunk.as_deref().unwrap_or_default(), finished)? {
            number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let advisory = checked_advisory(line).map_err(|error| Error::InvalidRequest(format!("line {number}: {error}")))?;
            import.add(advisory).await?;
        }
        if finished {
            return imported(import.finish().await?);
        }
    }
}

fn imported(summary: ImportSummary) -> Result<Response, Error> {
    let snapshot = SnapshotView::from(&summary.snapshot);
    Ok(Json(serde_json::json!({ "imported": summary.imported, "snapshot": snapshot, "reevaluated": summary.reevaluated })).into_response())
}

/// Cuts a byte stream into lines, holding at most one unfinished line of [`MAX_RECORD_BYTES`]: each byte is
/// searched once, and the buffer is compacted once per chunk.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
    /// How far `pending` is known to hold no newline.
    searched: usize,
}

impl LineSplitter {
    /// The lines `chunk` finishes; with `finished`, the last line too, whether or not a newline ends it.
    fn push(&mut self, chunk: &[u8], finished: bool) -> Result<Vec<Vec<u8>>, Error> {
        self.pending.extend_from_slice(chunk);
        let (mut lines, mut start) = (Vec::new(), 0);
        while let Some(offset) = self.pending[self.searched..].iter().position(|&byte| byte == b'\n') {
            let end = self.searched + offset;
            lines.push(self.checked(&self.pending[start..end])?.to_vec());
            (start, self.searched) = (end + 1, end + 1);
        }
        self.pending.drain(..start);
        self.searched = self.pending.len();
        self.checked(&self.pending)?;
        if finished && !self.pending.is_empty() {
            lines.push(std::mem::take(&mut self.pending));
            self.searched = 0;
        }
        Ok(lines)
    }

    fn checked<'l>(&self, line: &'l [u8]) -> Result<&'l [u8], Error> {
        if line.len() > MAX_RECORD_BYTES {
            return Err(Error::TooLarge { what: "advisory record", size: line.len() as u64, limit: MAX_RECORD_BYTES as u64 });
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_across_chunks_and_the_last_needs_no_newline() {
        let mut lines = LineSplitter::default();
        assert_eq!(lines.push(b"{\"id\": 1}\n{\"id\"", false).unwrap(), [b"{\"id\": 1}".to_vec()]);
        assert_eq!(lines.push(b": 2}\n\n{\"id\": 3}", false).unwrap(), [b"{\"id\": 2}".to_vec(), Vec::new()]);
        assert_eq!(lines.push(b"", true).unwrap(), [b"{\"id\": 3}".to_vec()]);
        assert!(lines.push(&vec![b'x'; MAX_RECORD_BYTES + 1], false).is_err(), "a record past the limit");
        let mut whole = vec![b'y'; MAX_RECORD_BYTES + 1];
        whole.extend_from_slice(b"\n{}\n");
        assert!(LineSplitter::default().push(&whole, true).is_err(), "a finished line past the limit, inside one chunk");
        let mut split = LineSplitter::default();
        let parts: Vec<Vec<u8>> = b"{\"a\": 1}\n{\"b\": 2}".chunks(3).map(<[u8]>::to_vec).collect();
        let mut seen = Vec::new();
        for part in &parts {
            seen.extend(split.push(part, false).unwrap());
        }
        seen.extend(split.push(b"", true).unwrap());
        assert_eq!(seen, [b"{\"a\": 1}".to_vec(), b"{\"b\": 2}".to_vec()]);
    }
}
