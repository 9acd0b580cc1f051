//! The embedded metadata store of `berth serve`: every port's records in one redb database, each change one
//! ACID transaction.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    BlobIndex, IdentityRecords, LinkedBlob, ManifestIndex, ManifestPage, ManifestRecord, PageRequest, RecordCondition, StoreError,
    TaggedManifest, UploadSession, UploadSessions,
    layout::{
        ADVISORIES, ADVISORY_PACKAGES, BLOB_KEYS, BLOB_LINKS, IDENTITY, INVENTORIES, MANIFESTS, REFERRERS, REPOSITORIES, SCAN_QUEUE,
        SCAN_REPORTS, SCAN_STATE, SNAPSHOT_KEY, TAGS, UPLOADS,
    },
    scanning::{AdvisorySnapshot, AdvisoryStore, LayerInventories, QueuedScan, ScanQueue, ScanReport, ScanReports, StoredAdvisory},
};
use crate::oci::{Digest, RepositoryName, Tag};

pub struct EmbeddedMetadata {
    db: Arc<Database>,
    /// Shared counters by name: (count, expires_at).
    counters: Arc<std::sync::Mutex<std::collections::HashMap<String, (u64, u64)>>>,
}

fn db_error(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(error.into().to_string())
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records serialize")
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn parse_stored<T>(text: &str, parse: impl FnOnce(&str) -> Result<T, crate::error::Error>) -> Result<T, StoreError> {
    parse(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

impl EmbeddedMetadata {
    /// Opens or creates the database file and every table, so readers never meet a missing table.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(db_error)?;
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(REPOSITORIES).map_err(db_error)?;
        txn.open_table(BLOB_LINKS).map_err(db_error)?;
        txn.open_table(BLOB_KEYS).map_err(db_error)?;
        txn.open_table(MANIFESTS).map_err(db_error)?;
        txn.open_table(TAGS).map_err(db_error)?;
        txn.open_table(REFERRERS).map_err(db_error)?;
        txn.open_table(UPLOADS).map_err(db_error)?;
        txn.open_table(IDENTITY).map_err(db_error)?;
        for table in [ADVISORIES, SCAN_STATE, INVENTORIES, SCAN_REPORTS] {
            txn.open_table(table).map_err(db_error)?;
        }
        txn.open_table(SCAN_QUEUE).map_err(db_error)?;
        txn.open_table(ADVISORY_PACKAGES).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        Ok(Self { db: Arc::new(db), counters: Arc::default() })
    }

    /// Runs `change` in one write transaction on a blocking thread; it commits only if `change` succeeds, durably.
    async fn write<T: Send + 'static>(
        &self,
        change: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(db_error)?;
            let result = change(&txn)?;
            txn.commit().map_err(db_error)?;
            Ok(result)
        })
        .await
        .map_err(|error| StoreError::Database(format!("write task failed: {error}")))?
    }

    /// Upload sessions expired by `now` (unix seconds): abandoned, for the sweeper to remove.
    pub fn uploads_expired_by(&self, now: u64) -> Result<Vec<UploadSession>, StoreError> {
        self.read(|txn| {
            let mut old = Vec::new();
            for entry in txn.open_table(UPLOADS).map_err(db_error)?.iter().map_err(db_error)? {
                let session: UploadSession = decode(entry.map_err(db_error)?.1.value())?;
                if session.expires_at() <= now {
                    old.push(session);
                }
            }
            Ok(old)
        })
    }

    /// Removes `(repository, key)` from `table`; `true` when it was there.
    async fn remove<V: redb::Value + Send + 'static>(
        &self,
        table: TableDefinition<'static, (&'static str, &'static str), V>,
        repository: &RepositoryName,
        key: String,
    ) -> Result<bool, StoreError> {
        let repository = repository.to_string();
        self.write(move |txn| {
            Ok(txn.open_table(table).map_err(db_error)?.remove((repository.as_str(), key.as_str())).map_err(db_error)?.is_some())
        })
        .await
    }

    /// The document stored under `key` in `table`.
    fn document<T: DeserializeOwned>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.read(|txn| txn.open_table(table).map_err(db_error)?.get(key).map_err(db_error)?.map(|value| decode(value.value())).transpose())
    }

    /// Stores `document` under `key` in `table`, replacing what was there.
    async fn put_document(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        key: String,
        document: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.write(move |txn| {
            txn.open_table(table).map_err(db_error)?.insert(key.as_str(), document.as_slice()).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    /// Reads a snapshot. Reads are short and served from redb's cache, so they run inline.
    fn read<T>(&self, query: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        query(&self.db.begin_read().map_err(db_error)?)
    }
}

/// Visits the entries `(repository, key)` of `table` with `key` strictly after `after`, in order, while `visit`
/// returns `true`.
fn scan<V: redb::Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    repository: &str,
    after: &str,
    mut visit: impl FnMut(&str, V::SelfType<'_>) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    for entry in table.range((repository, after)..).map_err(db_error)? {
        let (key, value) = entry.map_err(db_error)?;
        let (owner, second) = key.value();
        if owner != repository {
            break;
        }
        if second != after && !visit(second, value.value())? {
            break;
        }
    }
    Ok(())
}

/// The entries `(repository, key)` of `table` with `key` strictly after `after`, in order, each made into a `T` by
/// `entry`, at most `limit`.
fn page_after<V: redb::Value + 'static, T>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    repository: &str,
    after: &str,
    limit: usize,
    mut entry: impl FnMut(&str, V::SelfType<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut page = Vec::new();
    if limit > 0 {
        scan(table, repository, after, |key, value| {
            page.push(entry(key, value)?);
            Ok(page.len() < limit)
        })?;
    }
    Ok(page)
}

/// Which of `digests` have no `(repository, digest)` key in `table`.
fn missing<V: redb::Value + 'static>(
    table: &impl ReadableTable<(&'static str, &'static str), V>,
    repository: &RepositoryName,
    digests: &[Digest],
) -> Result<Vec<Digest>, StoreError> {
    let mut absent = Vec::new();
    for digest in digests {
        if table.get((repository.as_str(), digest.to_string().as_str())).map_err(db_error)?.is_none() {
            absent.push(digest.clone());
        }
    }
    Ok(absent)
}

#[async_trait]
impl IdentityRecords for EmbeddedMetadata {
    async fn record(&self, kind: &'static str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(IDENTITY).map_err(db_error)?;
            Ok(table.get((kind, key)).map_err(db_error)?.map(|value| value.value().to_vec()))
        })
    }

    async fn put_record(&self, kind: &'static str, key: &str, value: Vec<u8>, condition: RecordCondition) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(IDENTITY).map_err(db_error)?;
            let stored = table.get((kind, key.as_str())).map_err(db_error)?.map(|value| value.value().to_vec());
            let holds = match (&condition, &stored) {
                (RecordCondition::None, _) | (RecordCondition::Absent, None) => true,
                (RecordCondition::Equals(old), Some(stored)) => old == stored,
                _ => false,
            };
            if !holds {
                return Err(StoreError::Conflict);
            }
            table.insert((kind, key.as_str()), value.as_slice()).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn delete_record(&self, kind: &'static str, key: &str) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write(move |txn| Ok(txn.open_table(IDENTITY).map_err(db_error)?.remove((kind, key.as_str())).map_err(db_error)?.is_some()))
            .await
    }

    async fn records(&self, kind: &'static str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(IDENTITY).map_err(db_error)?;
            let mut records = Vec::new();
            scan(&table, kind, "", |key, value| {
                records.push((key.to_owned(), value.to_vec()));
                Ok(true)
            })?;
            Ok(records)
        })
    }

    async fn increment_counter(&self, counter: &str, expires_at: u64) -> Result<u64, StoreError> {
        let mut counters = self.counters.lock().expect("lock is not poisoned");
        // Expired counters go as new ones come, so the map holds only live windows.
        let now = crate::identity::tokens::now_seconds();
        counters.retain(|_, (_, expires)| *expires > now);
        let entry = counters.entry(counter.to_owned()).or_insert((0, expires_at));
        entry.0 += 1;
        Ok(entry.0)
    }

    async fn counter(&self, counter: &str) -> Result<u64, StoreError> {
        Ok(self.counters.lock().expect("lock is not poisoned").get(counter).map_or(0, |(count, _)| *count))
    }
}

#[async_trait]
impl UploadSessions for EmbeddedMetadata {
    async fn create_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        let (id, record) = (session.id.clone(), encode(session));
        self.write(move |txn| {
            txn.open_table(UPLOADS).map_err(db_error)?.insert(id.as_str(), record.as_slice()).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(UPLOADS).map_err(db_error)?;
            table.get(id).map_err(db_error)?.map(|record| decode(record.value())).transpose()
        })
    }

    async fn save_upload(&self, session: &UploadSession, previous_size: u64) -> Result<(), StoreError> {
        let (id, record) = (session.id.clone(), encode(session));
        self.write(move |txn| {
            let mut table = txn.open_table(UPLOADS).map_err(db_error)?;
            let current: Option<UploadSession> =
                table.get(id.as_str()).map_err(db_error)?.map(|stored| decode(stored.value())).transpose()?;
            if current.is_none_or(|current| current.size != previous_size) {
                return Err(StoreError::Conflict);
            }
            table.insert(id.as_str(), record.as_slice()).map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn delete_upload(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |txn| {
            txn.open_table(UPLOADS).map_err(db_error)?.remove(id.as_str()).map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl BlobIndex for EmbeddedMetadata {
    async fn linked_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<LinkedBlob>, StoreError> {
        self.read(|txn| {
            let link = (repository.as_str(), digest.to_string());
            let Some(size) =
                txn.open_table(BLOB_LINKS).map_err(db_error)?.get((link.0, link.1.as_str())).map_err(db_error)?.map(|size| size.value())
            else {
                return Ok(None);
            };
            let key =
                txn.open_table(BLOB_KEYS).map_err(db_error)?.get(link.1.as_str()).map_err(db_error)?.map(|key| key.value().to_owned());
            Ok(Some(LinkedBlob { size, key }))
        })
    }

    async fn missing_blobs(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<Digest>, StoreError> {
        self.read(|txn| missing(&txn.open_table(BLOB_LINKS).map_err(db_error)?, repository, digests))
    }

    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        key: Option<&str>,
        finished_upload: Option<&str>,
    ) -> Result<(), StoreError> {
        let (repository, digest, finished_upload) = (repository.to_string(), digest.to_string(), finished_upload.map(str::to_owned));
        let key = key.map(str::to_owned);
        self.write(move |txn| {
            if let Some(key) = &key {
                let mut keys = txn.open_table(BLOB_KEYS).map_err(db_error)?;
                let recorded = keys.get(digest.as_str()).map_err(db_error)?.map(|recorded| recorded.value().to_owned());
                match recorded {
                    Some(recorded) if &recorded != key => return Err(StoreError::StoredAt(recorded)),
                    Some(_) => {}
                    None => {
                        keys.insert(digest.as_str(), key.as_str()).map_err(db_error)?;
                    }
                }
            }
            txn.open_table(BLOB_LINKS).map_err(db_error)?.insert((repository.as_str(), digest.as_str()), size).map_err(db_error)?;
            txn.open_table(REPOSITORIES).map_err(db_error)?.insert(repository.as_str(), ()).map_err(db_error)?;
            if let Some(id) = finished_upload {
                txn.open_table(UPLOADS).map_err(db_error)?.remove(id.as_str()).map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, StoreError> {
        self.remove(BLOB_LINKS, repository, digest.to_string()).await
    }
}

#[async_trait]
impl ManifestIndex for EmbeddedMetadata {
    /// The bytes are on the local filesystem, as cheap to read as the database: nothing is kept inline.
    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        _content: &[u8],
    ) -> Result<(), StoreError> {
        let (repository, digest, encoded) = (repository.to_string(), record.digest.to_string(), encode(record));
        let (tag, subject) = (tag.map(Tag::to_string), record.subject.as_ref().map(Digest::to_string));
        self.write(move |txn| {
            txn.open_table(MANIFESTS)
                .map_err(db_error)?
                .insert((repository.as_str(), digest.as_str()), encoded.as_slice())
                .map_err(db_error)?;
            txn.open_table(REPOSITORIES).map_err(db_error)?.insert(repository.as_str(), ()).map_err(db_error)?;
            if let Some(tag) = tag {
                txn.open_table(TAGS).map_err(db_error)?.insert((repository.as_str(), tag.as_str()), digest.as_str()).map_err(db_error)?;
            }
            if let Some(subject) = subject {
                txn.open_table(REFERRERS)
                    .map_err(db_error)?
                    .insert((repository.as_str(), subject.as_str(), digest.as_str()), ())
                    .map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(MANIFESTS).map_err(db_error)?;
            table
                .get((repository.as_str(), digest.to_string().as_str()))
                .map_err(db_error)?
                .map(|record| decode(record.value()))
                .transpose()
        })
    }

    async fn tagged_manifest(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>, StoreError> {
        self.read(|txn| {
            let Some(digest) = txn
                .open_table(TAGS)
                .map_err(db_error)?
                .get((repository.as_str(), tag.as_str()))
                .map_err(db_error)?
                .map(|digest| digest.value().to_owned())
            else {
                return Ok(None);
            };
            let manifests = txn.open_table(MANIFESTS).map_err(db_error)?;
            manifests.get((repository.as_str(), digest.as_str())).map_err(db_error)?.map(|record| decode(record.value())).transpose()
        })
    }

    async fn missing_manifests(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<Digest>, StoreError> {
        self.read(|txn| missing(&txn.open_table(MANIFESTS).map_err(db_error)?, repository, digests))
    }

    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, StoreError> {
        let (repository, digest) = (repository.to_string(), digest.to_string());
        self.write(move |txn| {
            let Some(removed) = txn
                .open_table(MANIFESTS)
                .map_err(db_error)?
                .remove((repository.as_str(), digest.as_str()))
                .map_err(db_error)?
                .map(|record| record.value().to_vec())
            else {
                return Ok(false);
            };
            let record: ManifestRecord = decode(&removed)?;
            let mut tags = txn.open_table(TAGS).map_err(db_error)?;
            let mut pointing = Vec::new();
            scan(&tags, &repository, "", |tag, target| {
                if target == digest {
                    pointing.push(tag.to_owned());
                }
                Ok(true)
            })?;
            for tag in pointing {
                tags.remove((repository.as_str(), tag.as_str())).map_err(db_error)?;
            }
            if let Some(subject) = record.subject {
                txn.open_table(REFERRERS)
                    .map_err(db_error)?
                    .remove((repository.as_str(), subject.to_string().as_str(), digest.as_str()))
                    .map_err(db_error)?;
            }
            Ok(true)
        })
        .await
    }

    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<bool, StoreError> {
        self.remove(TAGS, repository, tag.to_string()).await
    }

    async fn list_tags(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<Tag>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(TAGS).map_err(db_error)?;
            page_after(&table, repository.as_str(), page.after.as_deref().unwrap_or(""), page.limit, |tag, _| parse_stored(tag, Tag::parse))
        })
    }

    async fn list_manifests(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<TaggedManifest>, StoreError> {
        self.read(|txn| {
            let manifests = txn.open_table(MANIFESTS).map_err(db_error)?;
            let after = page.after.as_deref().unwrap_or("");
            let mut listed = ManifestPage::new(page_after(&manifests, repository.as_str(), after, page.limit, |_, record| decode(record))?);
            if !listed.is_empty() {
                scan(&txn.open_table(TAGS).map_err(db_error)?, repository.as_str(), "", |tag, digest| {
                    listed.offer(digest, parse_stored(tag, Tag::parse)?);
                    Ok(true)
                })?;
            }
            Ok(listed.into_listing())
        })
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<ManifestRecord>, StoreError> {
        let subject = subject.to_string();
        let after = page.after.as_deref().unwrap_or("");
        self.read(|txn| {
            let referrers = txn.open_table(REFERRERS).map_err(db_error)?;
            let manifests = txn.open_table(MANIFESTS).map_err(db_error)?;
            let mut found = Vec::new();
            for entry in referrers.range((repository.as_str(), subject.as_str(), after)..).map_err(db_error)? {
                if found.len() == page.limit {
                    break;
                }
                let (key, _) = entry.map_err(db_error)?;
                let (owner, referred, digest) = key.value();
                if owner != repository.as_str() || referred != subject {
                    break;
                }
                if digest == after {
                    continue;
                }
                if let Some(record) = manifests.get((owner, digest)).map_err(db_error)? {
                    let record: ManifestRecord = decode(record.value())?;
                    if artifact_type.is_none_or(|wanted| record.artifact_type.as_deref() == Some(wanted)) {
                        found.push(record);
                    }
                }
            }
            Ok(found)
        })
    }

    async fn catalog(&self, page: &PageRequest) -> Result<Vec<RepositoryName>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(REPOSITORIES).map_err(db_error)?;
            let after = page.after.as_deref().unwrap_or("");
            let mut names = Vec::new();
            for entry in table.range(after..).map_err(db_error)? {
                let (name, _) = entry.map_err(db_error)?;
                if names.len() == page.limit {
                    break;
                }
                if name.value() != after {
                    names.push(parse_stored(name.value(), RepositoryName::parse)?);
                }
            }
            Ok(names)
        })
    }

    async fn repository_exists(&self, repository: &RepositoryName) -> Result<bool, StoreError> {
        self.read(|txn| Ok(txn.open_table(REPOSITORIES).map_err(db_error)?.get(repository.as_str()).map_err(db_error)?.is_some()))
    }

    async fn delete_repository(&self, repository: &RepositoryName) -> Result<bool, StoreError> {
        let repository = repository.to_string();
        self.write(move |txn| {
            if txn.open_table(REPOSITORIES).map_err(db_error)?.remove(repository.as_str()).map_err(db_error)?.is_none() {
                return Ok(false);
            }
            let owned_by = |owner: &str| owner == repository.as_str();
            txn.open_table(BLOB_LINKS).map_err(db_error)?.retain(|(owner, _), _| !owned_by(owner)).map_err(db_error)?;
            txn.open_table(MANIFESTS).map_err(db_error)?.retain(|(owner, _), _| !owned_by(owner)).map_err(db_error)?;
            txn.open_table(TAGS).map_err(db_error)?.retain(|(owner, _), _| !owned_by(owner)).map_err(db_error)?;
            txn.open_table(REFERRERS).map_err(db_error)?.retain(|(owner, _, _), _| !owned_by(owner)).map_err(db_error)?;
            Ok(true)
        })
        .await
    }
}

#[async_trait]
impl AdvisoryStore for EmbeddedMetadata {
    async fn put_advisories(&self, advisories: &[StoredAdvisory]) -> Result<(), StoreError> {
        let advisories = advisories.to_vec();
        self.write(move |txn| {
            let mut table = txn.open_table(ADVISORIES).map_err(db_error)?;
            let mut packages = txn.open_table(ADVISORY_PACKAGES).map_err(db_error)?;
            for advisory in &advisories {
                table.insert(advisory.id.as_str(), advisory.json.as_slice()).map_err(db_error)?;
                for package in &advisory.packages {
                    packages.insert((package.as_str(), advisory.id.as_str()), ()).map_err(db_error)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn put_advisory_snapshot(&self, snapshot: &AdvisorySnapshot) -> Result<(), StoreError> {
        self.put_document(SCAN_STATE, SNAPSHOT_KEY.to_owned(), encode(snapshot)).await
    }

    async fn advisory(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| Ok(txn.open_table(ADVISORIES).map_err(db_error)?.get(id).map_err(db_error)?.map(|value| value.value().to_vec())))
    }

    async fn advisories_of(&self, packages: &[String]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let (table, index) = (txn.open_table(ADVISORIES).map_err(db_error)?, txn.open_table(ADVISORY_PACKAGES).map_err(db_error)?);
            let mut ids = std::collections::BTreeSet::new();
            for package in packages {
                for entry in index.range((package.as_str(), "")..).map_err(db_error)? {
                    let (key, _) = entry.map_err(db_error)?;
                    let (affected, id) = key.value();
                    if affected != package {
                        break;
                    }
                    ids.insert(id.to_owned());
                }
            }
            let mut found = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(json) = table.get(id.as_str()).map_err(db_error)? {
                    found.push(json.value().to_vec());
                }
            }
            Ok(found)
        })
    }

    async fn advisory_snapshot(&self) -> Result<Option<AdvisorySnapshot>, StoreError> {
        self.document(SCAN_STATE, SNAPSHOT_KEY)
    }
}

#[async_trait]
impl LayerInventories for EmbeddedMetadata {
    async fn layer_inventory(&self, layer: &Digest) -> Result<Option<scanner::inventory::LayerInventory>, StoreError> {
        self.document(INVENTORIES, &layer.to_string())
    }

    async fn put_layer_inventory(&self, layer: &Digest, inventory: &scanner::inventory::LayerInventory) -> Result<(), StoreError> {
        self.put_document(INVENTORIES, layer.to_string(), encode(inventory)).await
    }
}

#[async_trait]
impl ScanReports for EmbeddedMetadata {
    async fn scan_report(&self, manifest: &Digest) -> Result<Option<ScanReport>, StoreError> {
        self.document(SCAN_REPORTS, &manifest.to_string())
    }

    async fn put_scan_report(&self, report: &ScanReport) -> Result<(), StoreError> {
        self.put_document(SCAN_REPORTS, report.manifest.to_string(), encode(report)).await
    }

    async fn reported_manifests(&self, page: &PageRequest) -> Result<Vec<Digest>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(SCAN_REPORTS).map_err(db_error)?;
            let after = page.after.as_deref().unwrap_or("");
            let mut digests = Vec::new();
            for entry in table.range(after..).map_err(db_error)? {
                let key = entry.map_err(db_error)?.0;
                if digests.len() == page.limit {
                    break;
                }
                if key.value() != after {
                    digests.push(parse_stored(key.value(), Digest::parse)?);
                }
            }
            Ok(digests)
        })
    }
}

#[async_trait]
impl ScanQueue for EmbeddedMetadata {
    async fn enqueue_scan(&self, scan: &QueuedScan) -> Result<(), StoreError> {
        let (repository, manifest, record) = (scan.repository.to_string(), scan.manifest.to_string(), encode(scan));
        self.write(move |txn| {
            txn.open_table(SCAN_QUEUE)
                .map_err(db_error)?
                .insert((repository.as_str(), manifest.as_str()), record.as_slice())
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn queued_scans(&self, limit: usize) -> Result<Vec<QueuedScan>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(SCAN_QUEUE).map_err(db_error)?;
            table.iter().map_err(db_error)?.take(limit).map(|entry| decode(entry.map_err(db_error)?.1.value())).collect()
        })
    }

    async fn finish_scan(&self, repository: &RepositoryName, manifest: &Digest) -> Result<(), StoreError> {
        self.remove(SCAN_QUEUE, repository, manifest.to_string()).await.map(drop)
    }
}
