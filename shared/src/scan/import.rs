//! Advisory imports: OSV records stored a batch at a time as they arrive, then a new snapshot made current, then
//! every scanned image re-evaluated against it. The API's import and the advisories function's downloads both go
//! through here, so neither holds more than a batch of records in the store's hands at once.

use scanner::Record;

use super::Scans;
use crate::{
    error::Error,
    registry::unix_millis,
    store::{
        StoreError,
        scanning::{AdvisorySnapshot, StoredAdvisory},
    },
};

/// How many records an import writes at a time.
const IMPORT_BATCH: usize = 500;

/// An OSV record checked for import: it parses as one, and has an id.
pub fn checked_advisory(json: Vec<u8>) -> Result<StoredAdvisory, String> {
    let record = Record::from_json(&json).map_err(|error| format!("not an OSV record: {error}"))?;
    if record.id.is_empty() {
        return Err("the record has no id".to_owned());
    }
    let packages = super::record_package_keys(&record);
    Ok(StoredAdvisory { id: record.id, json, packages })
}

/// What a finished import did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    pub snapshot: AdvisorySnapshot,
    pub imported: usize,
    /// How many scanned images were matched against the new snapshot.
    pub reevaluated: usize,
}

/// An import under way: records stored as they are added, and matched by the scans that run from then on. Only
/// [`AdvisoryImport::finish`] makes a new snapshot current and re-evaluates the reports, so an import cut off midway
/// changes no stored report; the records it stored stay (an import replaces records by id, never removes any).
pub struct AdvisoryImport<'s> {
    scans: &'s Scans,
    batch: Vec<StoredAdvisory>,
    imported: usize,
}

impl AdvisoryImport<'_> {
    /// Adds a record; a later one of the same id replaces it (one write per id and batch, as DynamoDB takes them).
    pub async fn add(&mut self, advisory: StoredAdvisory) -> Result<(), StoreError> {
        if let Some(earlier) = self.batch.iter_mut().find(|earlier| earlier.id == advisory.id) {
            *earlier = advisory;
            return Ok(());
        }
        self.batch.push(advisory);
        if self.batch.len() == IMPORT_BATCH {
            self.store_batch().await?;
        }
        Ok(())
    }

    async fn store_batch(&mut self) -> Result<(), StoreError> {
        if !self.batch.is_empty() {
            self.scans.store.put_advisories(&self.batch).await?;
            self.imported += self.batch.len();
            self.batch.clear();
        }
        Ok(())
    }

    /// Stores what is left, makes a new snapshot current and re-evaluates every scanned image against it.
    pub async fn finish(mut self) -> Result<ImportSummary, StoreError> {
        self.store_batch().await?;
        let snapshot = AdvisorySnapshot { id: uuid::Uuid::new_v4().to_string(), imported_at: unix_millis() };
        self.scans.store.put_advisory_snapshot(&snapshot).await?;
        let reevaluated = self.scans.reevaluate_stale().await?;
        Ok(ImportSummary { snapshot, imported: self.imported, reevaluated })
    }
}

impl Scans {
    pub fn start_import(&self) -> AdvisoryImport<'_> {
        AdvisoryImport { scans: self, batch: Vec::with_capacity(IMPORT_BATCH), imported: 0 }
    }

    /// Imports OSV records (each a JSON document) as a new snapshot, all of them or, when one is no OSV record,
    /// none; every scanned image is re-evaluated against it.
    pub async fn import(&self, documents: &[serde_json::Value]) -> Result<ImportSummary, Error> {
        let mut checked = Vec::with_capacity(documents.len());
        for (position, document) in documents.iter().enumerate() {
            let json = serde_json::to_vec(document).expect("JSON values serialize");
            checked.push(checked_advisory(json).map_err(|error| Error::InvalidRequest(format!("advisory {position}: {error}")))?);
        }
        let mut import = self.start_import();
        for advisory in checked {
            import.add(advisory).await?;
        }
        Ok(import.finish().await?)
    }
}
