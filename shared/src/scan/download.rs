//! The advisories function's work: the OSV exports at the configured URLs downloaded, each to a temporary file (they
//! are zips, read from their end), and their records imported as one new snapshot.

use std::io::BufReader;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::{io::AsyncWriteExt, sync::mpsc};

use super::{
    Scans,
    import::{AdvisoryImport, ImportSummary, checked_advisory},
};
use crate::store::StoreError;

/// The variable naming the exports to download: URLs separated by commas or whitespace.
pub const SOURCES_VARIABLE: &str = "BERTH_ADVISORY_SOURCES";

/// OSV's daily exports of the ecosystems the scanner finds packages of (dpkg, apk and rpm distributions, PyPI, npm,
/// crates.io, Go).
pub const DEFAULT_SOURCES: &[&str] = &[
    "https://osv-vulnerabilities.storage.googleapis.com/Debian/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Alpine/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Red%20Hat/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Rocky%20Linux/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/AlmaLinux/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/npm/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/crates.io/all.zip",
    "https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip",
];

/// How many records the zip reader may run ahead of the import.
const READ_AHEAD: usize = 64;

/// The sources `BERTH_ADVISORY_SOURCES` names (`value`), or the defaults when it is unset or empty.
pub fn sources(value: Option<&str>) -> Vec<String> {
    let named: Vec<String> =
        value.unwrap_or_default().split(|c: char| c == ',' || c.is_whitespace()).filter(|url| !url.is_empty()).map(str::to_owned).collect();
    if named.is_empty() { DEFAULT_SOURCES.iter().map(|url| (*url).to_owned()).collect() } else { named }
}

/// What one source gave.
#[derive(Debug, Clone, Serialize)]
pub struct SourceResult {
    pub url: String,
    /// Records imported from it.
    pub records: usize,
    /// Files of the export that were no OSV record, left out.
    pub skipped: usize,
    /// Why the source gave nothing (or less than all): it could not be downloaded or read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A whole run: every source, then the import of what they gave.
#[derive(Debug, Clone, Serialize)]
pub struct DownloadSummary {
    pub sources: Vec<SourceResult>,
    /// `None` when no source gave a record: the advisories stay as they were.
    #[serde(flatten)]
    pub import: Option<ImportSummary>,
}

impl DownloadSummary {
    /// The sources that failed, as one message; `None` when every one was read.
    pub fn failures(&self) -> Option<String> {
        let failed: Vec<String> =
            self.sources.iter().filter_map(|source| source.error.as_ref().map(|error| format!("{}: {error}", source.url))).collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }
}

/// The advisories function's run: [`download_and_import`], logged as one line with the backend calls made, as a
/// request is; an error names the store's failure or, once the others are imported, the sources that failed.
pub async fn scheduled_import(scans: &Scans, http: &reqwest::Client, sources: &[String]) -> Result<DownloadSummary, String> {
    let started = std::time::Instant::now();
    let (summary, calls) = crate::telemetry::count_backend_calls(download_and_import(scans, http, sources)).await;
    #[cfg(feature = "test-support")]
    crate::telemetry::signed::add(crate::http::routes::Function::Advisories, calls.signed);
    let calls = calls.sent;
    let backend_calls: u32 = calls.values().sum();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let summary = summary.map_err(|error| format!("the advisory import failed: {error}"))?;
    let Some(import) = &summary.import else {
        let failures = summary.failures().unwrap_or_else(|| "they hold no records".to_owned());
        return Err(format!("no source gave an advisory, so the advisories stay as they were: {failures}"));
    };
    let (imported, reevaluated) = (import.imported, import.reevaluated);
    tracing::info!(imported, reevaluated, snapshot = import.snapshot.id, elapsed_ms, backend_calls, ?calls, "advisories imported");
    match summary.failures() {
        Some(failures) => Err(format!("imported {imported} advisories, but some sources failed: {failures}")),
        None => Ok(summary),
    }
}

/// Downloads every source in turn and imports their records as one snapshot. A source that cannot be read is
/// reported in its [`SourceResult`] and the others still count: one export missing for a day must not keep the
/// rest out of date. Only the store's failures stop the run.
pub async fn download_and_import(scans: &Scans, http: &reqwest::Client, sources: &[String]) -> Result<DownloadSummary, StoreError> {
    let mut import = scans.start_import();
    let mut results = Vec::with_capacity(sources.len());
    for url in sources {
        let mut result = SourceResult { url: url.clone(), records: 0, skipped: 0, error: None };
        if let Err(failure) = import_source(&mut import, http, &mut result).await {
            match failure {
                SourceFailure::Store(error) => return Err(error),
                SourceFailure::Source(error) => {
                    tracing::warn!(url, %error, "advisory source not imported");
                    result.error = Some(error);
                }
            }
        }
        tracing::info!(url, records = result.records, skipped = result.skipped, "advisory source read");
        results.push(result);
    }
    // Nothing read at all (every source down): no new snapshot, no re-evaluation of every report for nothing.
    if results.iter().all(|source| source.records == 0) {
        return Ok(DownloadSummary { sources: results, import: None });
    }
    Ok(DownloadSummary { sources: results, import: Some(import.finish().await?) })
}

enum SourceFailure {
    /// The source's fault: unreachable, an HTTP error, not a zip.
    Source(String),
    Store(StoreError),
}

impl From<StoreError> for SourceFailure {
    fn from(error: StoreError) -> Self {
        SourceFailure::Store(error)
    }
}

/// Downloads `result.url` to a temporary file, then feeds its records to `import` as a blocking thread reads them
/// from the zip.
async fn import_source(import: &mut AdvisoryImport<'_>, http: &reqwest::Client, result: &mut SourceResult) -> Result<(), SourceFailure> {
    let file = download(http, &result.url).await.map_err(SourceFailure::Source)?;
    let (records, mut received) = mpsc::channel::<(String, Vec<u8>)>(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        scanner::osv_archive::each_json_file(BufReader::new(file), |name, bytes| {
            // The import stopped (a store failure): nothing more to read.
            records.blocking_send((name.to_owned(), bytes)).map_err(|_| scanner::osv_archive::ArchiveError::Read {
                name: name.to_owned(),
                source: std::io::Error::other("the import stopped"),
            })
        })
    });
    while let Some((name, json)) = received.recv().await {
        match checked_advisory(json) {
            Ok(advisory) => {
                import.add(advisory).await?;
                result.records += 1;
            }
            Err(error) => {
                tracing::warn!(url = result.url, name, %error, "left out of the import");
                result.skipped += 1;
            }
        }
    }
    match reader.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(SourceFailure::Source(error.to_string())),
        Err(error) => Err(SourceFailure::Source(format!("the zip reader stopped: {error}"))),
    }
}

/// The body of `url`, streamed into an anonymous temporary file.
async fn download(http: &reqwest::Client, url: &str) -> Result<std::fs::File, String> {
    let response = http.get(url).send().await.map_err(|error| format!("cannot download: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("the download answered {}", response.status()));
    }
    let file = tempfile::tempfile().map_err(|error| format!("cannot make a temporary file: {error}"))?;
    let mut writer = tokio::fs::File::from_std(file.try_clone().map_err(|error| format!("cannot reopen the temporary file: {error}"))?);
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| format!("the download broke off: {error}"))?;
        writer.write_all(&chunk).await.map_err(|error| format!("cannot write the temporary file: {error}"))?;
    }
    writer.flush().await.map_err(|error| format!("cannot write the temporary file: {error}"))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_the_named_urls_or_the_defaults() {
        assert_eq!(sources(Some("http://a/x.zip, http://b/y.zip\nhttp://c/z.zip")), ["http://a/x.zip", "http://b/y.zip", "http://c/z.zip"]);
        assert_eq!(sources(Some(" ")).len(), DEFAULT_SOURCES.len());
        assert_eq!(sources(None)[0], DEFAULT_SOURCES[0]);
    }
}
