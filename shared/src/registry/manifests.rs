//! Manifests, tags, referrers and the catalog: validation on push, resolution on pull, and listings.

use std::sync::Arc;

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{EventSink, RegistryEvent, unix_millis};
use crate::{
    error::Error,
    oci::{Descriptor, Digest, ParsedManifest, Reference, RepositoryName, Tag},
    store::{BlobIndex, BlobStore, ManifestIndex, ManifestRecord, PageRequest, TaggedManifest},
};

/// The largest annotations (as JSON) kept in the index for the referrers API.
const MAX_INDEXED_ANNOTATIONS: usize = 16 << 10;

/// A manifest found by reference, with its bytes.
pub struct StoredManifest {
    pub record: ManifestRecord,
    pub bytes: Bytes,
}

pub struct Manifests {
    store: Arc<dyn BlobStore>,
    blobs: Arc<dyn BlobIndex>,
    index: Arc<dyn ManifestIndex>,
    events: Arc<dyn EventSink>,
    max_manifest_bytes: u64,
}

impl Manifests {
    pub fn new(
        store: Arc<dyn BlobStore>,
        blobs: Arc<dyn BlobIndex>,
        index: Arc<dyn ManifestIndex>,
        events: Arc<dyn EventSink>,
        max_manifest_bytes: u64,
    ) -> Self {
        Self { store, blobs, index, events, max_manifest_bytes }
    }

    pub fn max_manifest_bytes(&self) -> u64 {
        self.max_manifest_bytes
    }

    /// Validates and stores a manifest, then points the tag at it. Returns its digest and subject.
    pub async fn put(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<(Digest, Option<Digest>), Error> {
        if bytes.len() as u64 > self.max_manifest_bytes {
            return Err(Error::TooLarge { what: "manifest", size: bytes.len() as u64, limit: self.max_manifest_bytes });
        }
        let parsed = ParsedManifest::parse(&bytes, content_type)?;
        let (digest, tag) = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if &actual != expected {
                    return Err(Error::DigestMismatch { expected: expected.to_string(), actual: actual.to_string() });
                }
                (actual, None)
            }
            Reference::Tag(tag) => (Digest::of(crate::oci::Algorithm::Sha256, &bytes), Some(tag)),
        };
        if let Some(blob) = self.blobs.missing_blobs(repository, &parsed.blobs).await?.first() {
            return Err(Error::ManifestBlobUnknown { kind: "blob", digest: blob.to_string() });
        }
        if let Some(child) = self.index.missing_manifests(repository, &parsed.manifests).await?.first() {
            return Err(Error::ManifestBlobUnknown { kind: "manifest", digest: child.to_string() });
        }
        // Only referrers (manifests with a subject) have their annotations listed, and only small ones ride along.
        let annotations = parsed.annotations.filter(|_| parsed.subject.is_some());
        let indexable = annotations
            .as_ref()
            .is_none_or(|annotations| serde_json::to_vec(annotations).map_or(0, |json| json.len()) <= MAX_INDEXED_ANNOTATIONS);
        let record = ManifestRecord {
            digest: digest.clone(),
            media_type: parsed.media_type,
            size: bytes.len() as u64,
            artifact_type: parsed.artifact_type,
            subject: parsed.subject.map(|subject| subject.digest),
            annotations_not_indexed: !indexable,
            annotations: annotations.filter(|_| indexable),
            pushed_at: unix_millis(),
        };
        self.store.put(&digest, bytes.clone()).await?;
        self.index.put_manifest(repository, &record, tag, &bytes).await?;
        self.events
            .publish(RegistryEvent::ManifestPushed {
                repository: repository.clone(),
                digest: digest.clone(),
                media_type: record.media_type,
                artifact_type: record.artifact_type,
                tag: tag.cloned(),
            })
            .await;
        Ok((digest, record.subject))
    }

    /// The manifest's record, without its bytes (for HEAD).
    pub async fn record(&self, repository: &RepositoryName, reference: &Reference) -> Result<ManifestRecord, Error> {
        let found = match reference {
            Reference::Digest(digest) => self.index.manifest(repository, digest).await?,
            Reference::Tag(tag) => self.index.tagged_manifest(repository, tag).await?,
        };
        found.ok_or_else(|| Error::ManifestUnknown(reference.to_string()))
    }

    /// The manifest and its bytes: from the index alone when it keeps them inline, else from the blob store.
    pub async fn get(&self, repository: &RepositoryName, reference: &Reference) -> Result<StoredManifest, Error> {
        let (record, inline) =
            self.index.manifest_content(repository, reference).await?.ok_or_else(|| Error::ManifestUnknown(reference.to_string()))?;
        let bytes = match inline {
            Some(bytes) => bytes,
            None => self.store.get(&record.digest).await?,
        };
        Ok(StoredManifest { record, bytes })
    }

    /// By tag, removes only the tag; by digest, the manifest and every tag pointing at it.
    pub async fn delete(&self, repository: &RepositoryName, reference: &Reference) -> Result<(), Error> {
        let (deleted, event) = match reference {
            Reference::Tag(tag) => (
                self.index.delete_tag(repository, tag).await?,
                RegistryEvent::TagDeleted { repository: repository.clone(), tag: tag.clone() },
            ),
            Reference::Digest(digest) => (
                self.index.delete_manifest(repository, digest).await?,
                RegistryEvent::ManifestDeleted { repository: repository.clone(), digest: digest.clone() },
            ),
        };
        if !deleted {
            return Err(Error::ManifestUnknown(reference.to_string()));
        }
        self.events.publish(event).await;
        Ok(())
    }

    /// One page of tags, in lexical order.
    pub async fn tags(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<Tag>, Error> {
        let tags = self.index.list_tags(repository, page).await?;
        // Tags prove the repository exists; only an empty page needs the extra lookup.
        if tags.is_empty() {
            self.require_repository(repository).await?;
        }
        Ok(tags)
    }

    pub async fn catalog(&self, page: &PageRequest) -> Result<Vec<RepositoryName>, Error> {
        Ok(self.index.catalog(page).await?)
    }

    /// One page, in digest order, of descriptors of the manifests whose subject is `subject`, optionally only those
    /// of one artifact type.
    pub async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        page: &PageRequest,
    ) -> Result<Vec<Descriptor>, Error> {
        let mut descriptors = Vec::new();
        for record in self.index.referrers(repository, subject, artifact_type, page).await? {
            let mut descriptor = record.descriptor();
            if record.annotations_not_indexed {
                descriptor.annotations = self.read_annotations(&record).await?;
            }
            descriptors.push(descriptor);
        }
        Ok(descriptors)
    }

    /// One page of the repository's manifests, in digest order, with their tags.
    pub async fn list_manifests(&self, repository: &RepositoryName, page: &PageRequest) -> Result<Vec<TaggedManifest>, Error> {
        let listed = self.index.list_manifests(repository, page).await?;
        // As for tags: manifests prove the repository exists, and only an empty page needs the lookup.
        if listed.is_empty() {
            self.require_repository(repository).await?;
        }
        Ok(listed)
    }

    pub async fn delete_repository(&self, repository: &RepositoryName) -> Result<(), Error> {
        if !self.index.delete_repository(repository).await? {
            return Err(Error::NameUnknown(repository.to_string()));
        }
        self.events.publish(RegistryEvent::RepositoryDeleted { repository: repository.clone() }).await;
        Ok(())
    }

    /// A stored manifest's annotations, read from its bytes.
    async fn read_annotations(&self, record: &ManifestRecord) -> Result<Option<BTreeMap<String, String>>, Error> {
        let bytes = self.store.get(&record.digest).await?;
        Ok(ParsedManifest::parse(&bytes, Some(&record.media_type))?.annotations)
    }

    async fn require_repository(&self, repository: &RepositoryName) -> Result<(), Error> {
        if self.index.repository_exists(repository).await? { Ok(()) } else { Err(Error::NameUnknown(repository.to_string())) }
    }
}
