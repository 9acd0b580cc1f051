//! Storage ports: the traits the registry needs from a backend, split by role, and the records they hold.
//!
//! Adapters: [`filesystem`] (blob bytes on local disk) and [`embedded`] (metadata in redb) make `berth serve`'s
//! default store. [`layout`] owns every key the adapters write. [`contract`] is the suite each adapter must pass.
//! [`scanning`] holds the ports of vulnerability scanning, which the same adapters implement.

pub mod aws;
pub mod dynamodb;
pub mod embedded;
pub mod filesystem;
pub mod layout;
pub mod local;
pub mod resources;
pub mod s3;
mod s3_parts;
pub mod scanning;

#[cfg(test)]
pub(crate) mod contract;

use std::{
    collections::{BTreeMap, HashMap},
    io,
    pin::Pin,
};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::oci::{Descriptor, Digest, Reference, RepositoryName, Tag};

/// How long an upload session lives after its last request: later requests find it unknown, and each backend removes
/// it and its bytes (DynamoDB's TTL, `berth serve`'s sweeper).
pub const UPLOAD_IDLE_SECS: u64 = 24 * 3600;
/// The longest an upload may stay open however busy it is: the bucket's lifecycle rules abort multipart uploads a
/// fixed time after they start (7 days in the template), and a session must end before its parts can vanish.
pub const UPLOAD_MAX_AGE_SECS: u64 = 6 * 24 * 3600;

/// Exclusive hold on one upload for the length of one request: taken before its session is read, released (dropped)
/// after the new state is saved or the blob committed, so no request ever writes bytes another has already hashed.
pub type UploadLease = Box<dyn Send + Sync>;

/// Bytes flowing in or out of a store, never held whole.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("database: {0}")]
    Database(String),
    /// A conditional write lost to a concurrent one; the caller decides whether that is the client's error.
    #[error("concurrent modification")]
    Conflict,
    /// The backend is too busy for this request now (throttled, or a hot item kept losing races); the client may
    /// retry shortly.
    #[error("{0}: too busy, retry shortly")]
    Busy(&'static str),
    /// A cloud service refused or failed a call.
    #[error("{service}: {message}")]
    Backend { service: &'static str, message: String },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// An upload outgrew what the store can hold in one blob.
    #[error("a blob may hold at most {limit} bytes here")]
    BlobTooLarge { limit: u64 },
    /// The blob is already recorded with its bytes at this key (another upload of the same digest won).
    #[error("the blob is already stored at {0}")]
    StoredAt(String),
}

/// An inclusive byte range of a blob, already checked against its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

impl ByteRange {
    /// The number of bytes in the range; never zero, since both ends are inclusive.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// Where an unfinished upload stands; stored between requests so any process can take the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub repository: RepositoryName,
    /// Bytes received and durably written so far.
    pub size: u64,
    /// SHA-256 state of those bytes ([`crate::oci::DigestHasher::save`]).
    pub hash_state: Vec<u8>,
    /// Adapter-owned progress (an S3 multipart id and its parts, say); opaque to the registry.
    pub backend_state: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Unix seconds of the last request that moved the upload on (its start, before any).
    #[serde(default)]
    pub updated_at: u64,
}

impl UploadSession {
    /// The unix second after which the session is abandoned: [`UPLOAD_IDLE_SECS`] after its last activity, and never
    /// later than [`UPLOAD_MAX_AGE_SECS`] after its start.
    pub fn expires_at(&self) -> u64 {
        (self.updated_at.max(self.started_at) + UPLOAD_IDLE_SECS).min(self.started_at + UPLOAD_MAX_AGE_SECS)
    }
}

/// A stored manifest, as the index keeps it; the bytes live in the blob store under `digest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    /// The annotations the referrers API reports, kept for manifests with a subject when they are small (a
    /// DynamoDB item holds 400 KB); larger ones are read from the manifest itself.
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub annotations_not_indexed: bool,
    /// Unix milliseconds.
    pub pushed_at: u64,
}

impl ManifestRecord {
    /// The descriptor the referrers API lists for this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
            urls: None,
            platform: None,
        }
    }
}

/// A manifest with the tags that point at it, for management listings.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedManifest {
    pub manifest: ManifestRecord,
    pub tags: Vec<Tag>,
}

/// A page of manifests being paired with their tags. No index leads from a digest to its tags, so an adapter offers
/// every tag of the repository and the page keeps those pointing at its manifests: memory stays within the page,
/// though each page reads all the tags.
pub(crate) struct ManifestPage {
    listed: Vec<TaggedManifest>,
    positions: HashMap<String, usize>,
}

impl ManifestPage {
    pub(crate) fn new(manifests: Vec<ManifestRecord>) -> Self {
        let positions = manifests.iter().enumerate().map(|(position, manifest)| (manifest.digest.to_string(), position)).collect();
        Self { listed: manifests.into_iter().map(|manifest| TaggedManifest { manifest, tags: Vec::new() }).collect(), positions }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// Notes that `tag` points at `digest`; ignored unless that is one of the page's manifests. Tags offered in
    /// order stay in order.
    pub(crate) fn offer(&mut self, digest: &str, tag: Tag) {
        if let Some(&position) = self.positions.get(digest) {
            self.listed[position].tags.push(tag);
        }
    }

    pub(crate) fn into_listing(self) -> Vec<TaggedManifest> {
        self.listed
    }
}

/// One page of a lexically ordered listing: at most `limit` entries strictly after `after`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<String>,
}

/// Blob bytes: content-addressed, written once however many repositories link them.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Streams a stored blob, or one range of it, from `key` when its link names one, else its content address.
    async fn read(&self, digest: &Digest, key: Option<&str>, range: Option<ByteRange>) -> Result<ByteStream, StoreError>;
    /// A short-lived URL the client may fetch the blob (at `key`, or its content address) from itself, where the
    /// backend offers one.
    async fn download_url(&self, digest: &Digest, key: Option<&str>) -> Result<Option<String>, StoreError>;
    /// Stores small content (a manifest) under its digest in one durable step.
    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError>;
    /// Reads small content (a manifest, bounded by the manifest limit) whole, in one step.
    async fn get(&self, digest: &Digest) -> Result<Bytes, StoreError>;
    async fn delete(&self, digest: &Digest) -> Result<(), StoreError>;
    /// The smallest chunk the backend takes, advertised as `OCI-Chunk-Min-Length`; `None` when any size will do.
    fn chunk_min_length(&self) -> Option<u64>;

    /// Takes the [`UploadLease`] of upload `id`, or [`StoreError::Conflict`] while another request holds it. Backends
    /// where racing writers cannot touch each other's bytes (S3: fresh keys, ETag-checked parts) need not hold anything.
    async fn lease_upload(&self, id: &str) -> Result<UploadLease, StoreError>;
    /// Appends `data` to an upload holding `session.size` bytes, under its lease, returning how many bytes it wrote; the bytes count only
    /// once the caller saves the session with the new size. Updates `session.backend_state` as needed.
    async fn append_upload(&self, session: &mut UploadSession, data: ByteStream) -> Result<u64, StoreError>;
    /// Streams the bytes of an unfinished upload (to hash them under another algorithm). The backend may assemble
    /// them first, recording that in `session.backend_state` for the commit that follows.
    async fn read_upload(&self, session: &mut UploadSession) -> Result<ByteStream, StoreError>;
    /// Stores a verified upload (under its lease) durably: at its content address, or, where moving it would mean
    /// copying it (a big upload on S3), where it already is, returning that key for the blob's link. A blob already
    /// at its content address is kept as it is, never replaced; the upload's bytes are then dropped.
    async fn commit_upload(&self, session: &UploadSession, digest: &Digest) -> Result<Option<String>, StoreError>;
    async fn abort_upload(&self, session: &UploadSession) -> Result<(), StoreError>;
    /// Deletes the bytes a commit left at `key` when another upload of the same digest was recorded first.
    async fn discard(&self, key: &str) -> Result<(), StoreError>;
}

/// Upload sessions between requests.
#[async_trait]
pub trait UploadSessions: Send + Sync {
    async fn create_upload(&self, session: &UploadSession) -> Result<(), StoreError>;
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>, StoreError>;
    /// Saves progress only if the stored session still holds `previous_size` bytes, so that of two racing chunks one
    /// wins and the other gets [`StoreError::Conflict`].
    async fn save_upload(&self, session: &UploadSession, previous_size: u64) -> Result<(), StoreError>;
    async fn delete_upload(&self, id: &str) -> Result<(), StoreError>;
}

/// Which repositories hold which blobs.
#[async_trait]
pub trait BlobIndex: Send + Sync {
    /// The blob's size and where its bytes are, if `repository` links it.
    async fn linked_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<LinkedBlob>, StoreError>;
    /// Which of `digests` `repository` does not link (a manifest's layers), in one round trip where possible.
    async fn missing_blobs(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<Digest>, StoreError>;
    /// Records a stored, verified blob and links it into `repository`, deleting `finished_upload` in the same
    /// transaction so a crash leaves either the session or the link, never both or neither. A blob kept at its own
    /// `key` is recorded once per registry: when another upload of the same digest recorded its key first, nothing is
    /// written and [`StoreError::StoredAt`] names that key, for the caller to drop its copy and link that one.
    async fn link_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        key: Option<&str>,
        finished_upload: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Removes the link; `false` when there was none.
    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, StoreError>;
}

/// A blob a repository links: its size, and the key holding its bytes when that is not its content address (a big
/// upload's bytes stay where they were written, never copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedBlob {
    pub size: u64,
    pub key: Option<String>,
}

/// Manifests, tags, referrers and the repository catalog.
#[async_trait]
pub trait ManifestIndex: Send + Sync {
    /// Records a manifest (its bytes already stored, and given as `content` for an index that keeps small ones
    /// inline) and points `tag` at it, in one transaction.
    async fn put_manifest(
        &self,
        repository: &RepositoryName,
        record: &ManifestRecord,
        tag: Option<&Tag>,
        content: &[u8],
    ) -> Result<(), StoreError>;
    async fn manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<Option<ManifestRecord>, StoreError>;
    /// The manifest `tag` points at, in one lookup where the backend can (a pull starts here).
    async fn tagged_manifest(&self, repository: &RepositoryName, tag: &Tag) -> Result<Option<ManifestRecord>, StoreError>;
    /// The manifest `reference` names, with its bytes when the index keeps them inline (DynamoDB keeps small
    /// manifests in their items, so a pull reads one item); without them, they are read from the blob store.
    async fn manifest_content(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<(ManifestRecord, Option<Bytes>)>, StoreError> {
        let record = match reference {
            Reference::Digest(digest) => self.manifest(repository, digest).await?,
            Reference::Tag(tag) => self.tagged_manifest(repository, tag).await?,
        };
        Ok(record.map(|record| (record, None)))
    }
    /// Which of `digests` are not manifests of `repository` (an index's children), in one round trip where possible.
    async fn missing_manifests(&self, repository: &RepositoryName, digests: &[Digest]) -> Result<Vec<Digest>, StoreError>;
    /// Removes a manifest, every tag pointing at it and its referrer entry; `false` when it was not there.
    async fn delete_manifest(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool, StoreError>;
    /// Removes one tag, leaving its manifest; `false` when it was not there.
    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag) -> Result<bool, StoreError>;
    async fn list_tags(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<Tag>, StoreError>;
    /// One page of the repository's manifests in digest order, `page.after` a digest, each with the tags pointing at it.
    async fn list_manifests(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<TaggedManifest>, StoreError>;
    /// One page, in digest order after the digest `page.after`, of the manifests in `repository` whose subject is
    /// `subject` and, when `artifact_type` is given, whose artifact type it is: filtered before the page is cut, so
    /// only the last page holds fewer than `page.limit`.
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<ManifestRecord>, StoreError>;
    /// Repositories holding at least one manifest or blob.
    async fn catalog(&self, page: &PageRequest) -> Result<Vec<RepositoryName>, StoreError>;
    async fn repository_exists(&self, repository: &RepositoryName) -> Result<bool, StoreError>;
    /// Removes every manifest, tag and blob link of a repository; `false` when it did not exist.
    async fn delete_repository(&self, repository: &RepositoryName) -> Result<bool, StoreError>;
}

/// How a record write depends on what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordCondition {
    /// Writes whatever is there.
    None,
    /// Writes only a new record; [`StoreError::Conflict`] when one exists.
    Absent,
    /// Writes only over exactly these bytes (read before); [`StoreError::Conflict`] when they changed.
    Equals(Vec<u8>),
}

/// Identity and settings records (`crate::identity::directory` gives them meaning): small JSON documents by kind and
/// key, few enough per kind to list whole.
#[async_trait]
pub trait IdentityRecords: Send + Sync {
    async fn record(&self, kind: &'static str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put_record(&self, kind: &'static str, key: &str, value: Vec<u8>, condition: RecordCondition) -> Result<(), StoreError>;
    /// Removes a record; `false` when there was none.
    async fn delete_record(&self, kind: &'static str, key: &str) -> Result<bool, StoreError>;
    /// Every record of a kind, by key.
    async fn records(&self, kind: &'static str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Adds one to the counter `key` (events in one time window, such as failed logins), shared by every process
    /// of the registry and exact under concurrency; it may be forgotten after `expires_at` (unix seconds). Returns
    /// the new count.
    async fn increment_counter(&self, key: &str, expires_at: u64) -> Result<u64, StoreError>;
    /// The counter's value; 0 when there is none.
    async fn counter(&self, key: &str) -> Result<u64, StoreError>;
}

/// Everything a metadata backend provides; one adapter usually implements all roles.
pub trait MetadataStore: UploadSessions + BlobIndex + ManifestIndex {}
impl<T: UploadSessions + BlobIndex + ManifestIndex> MetadataStore for T {}
