//! The registry's pull policy: an image whose scan found vulnerabilities at or above the registry's
//! `block_severity` is not served (`403 DENIED`, naming the findings), unless every such finding is allowed by id or
//! alias. Off by default; an image not scanned yet (pending, failed, or pushed before scanning) is served, as ACR does.

use super::Scans;
use crate::{
    error::Error,
    identity::directory::{Directory, DirectoryError},
    oci::Digest,
    store::{StoreError, scanning::ScanStatus},
};

/// How many blocking findings a refusal names; the rest are counted.
const NAMED_FINDINGS: usize = 5;

/// What a pull of a manifest is checked against, where the registry scans.
pub struct PullPolicy<'a> {
    pub scans: &'a Scans,
    pub directory: &'a Directory,
}

impl PullPolicy<'_> {
    /// `Ok` when the manifest `digest` may be pulled.
    pub async fn check(&self, digest: &Digest) -> Result<(), Error> {
        // At most one settings read per process every few seconds, not one per pull. Reading them fails only in
        // storage: the registry's fault (500), never a refusal of the client's pull.
        let settings = self.directory.recent_settings().await.map_err(|error| match error {
            DirectoryError::Store(error) => Error::Store(error),
            other => Error::Store(StoreError::Corrupt(format!("registry settings: {other}"))),
        })?;
        let Some(threshold) = settings.block_severity else {
            return Ok(());
        };
        let Some(report) = self.scans.report(digest).await? else {
            return Ok(());
        };
        if report.status != ScanStatus::Done {
            return Ok(());
        }
        let allowed = |id: &String| settings.allowed_advisories.contains(id);
        let mut blocking: Vec<String> = report
            .findings
            .iter()
            .filter(|finding| finding.severity >= threshold && !allowed(&finding.id) && !finding.aliases.iter().any(allowed))
            .map(|finding| format!("{} ({}, {} {})", finding.id, finding.severity.as_str(), finding.package, finding.installed))
            .collect();
        if blocking.is_empty() {
            return Ok(());
        }
        blocking.sort();
        blocking.dedup();
        let more = blocking.len().saturating_sub(NAMED_FINDINGS);
        blocking.truncate(NAMED_FINDINGS);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        Err(Error::Denied(format!(
            "{digest} has vulnerabilities at or above {} severity, which this registry's policy blocks: {}{more}",
            threshold.as_str(),
            blocking.join(", ")
        )))
    }
}
