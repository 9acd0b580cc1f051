//! Blob downloads, deletes, cross-repository mounts and the upload protocol (monolithic, chunked, resumable).

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;

use crate::{
    error::Error,
    oci::{Algorithm, Digest, DigestHasher, RepositoryName},
    store::{BlobIndex, BlobStore, ByteRange, ByteStream, LinkedBlob, StoreError, UploadLease, UploadSession, UploadSessions},
};

/// How a client gets a blob's bytes.
pub enum BlobDownload {
    /// From a short-lived URL of the backend (answered with a redirect).
    Redirect(String),
    Stream(ByteStream),
}

/// A chunk of an upload as a request carries it.
pub struct Chunk {
    /// Where the client says the chunk starts (`Content-Range`), when it says.
    pub start: Option<u64>,
    /// How many bytes the client announced (`Content-Length`, or the `Content-Range` span), when it did.
    pub length: Option<u64>,
    pub data: ByteStream,
}

/// What [`Error::TooLarge`] names when one request carries more than the deployment takes.
pub const REQUEST_BODY: &str = "request body";

pub struct Blobs {
    store: Arc<dyn BlobStore>,
    index: Arc<dyn BlobIndex>,
    sessions: Arc<dyn UploadSessions>,
    max_request_bytes: Option<u64>,
}

/// What the bytes of one request did to an upload: hashed as they pass, counted, and any client-side fault.
struct Intake {
    hasher: DigestHasher,
    received: u64,
    fault: Option<Error>,
}

impl Blobs {
    /// `max_request_bytes` caps the bytes one request may carry, where the runtime caps them (Lambda).
    pub fn new(
        store: Arc<dyn BlobStore>,
        index: Arc<dyn BlobIndex>,
        sessions: Arc<dyn UploadSessions>,
        max_request_bytes: Option<u64>,
    ) -> Self {
        Self { store, index, sessions, max_request_bytes }
    }

    /// The most bytes one request may carry, advertised to clients that read it.
    pub fn max_request_bytes(&self) -> Option<u64> {
        self.max_request_bytes
    }

    pub fn chunk_min_length(&self) -> Option<u64> {
        self.store.chunk_min_length()
    }

    /// A blob `repository` may read: its size and where its bytes are.
    pub async fn linked(&self, repository: &RepositoryName, digest: &Digest) -> Result<LinkedBlob, Error> {
        self.index.linked_blob(repository, digest).await?.ok_or_else(|| Error::BlobUnknown(digest.to_string()))
    }

    /// The blob's bytes (or a range of them), by redirect where the backend offers one: the client sends its `Range`
    /// there too (S3 honours it), so no blob byte passes through the registry.
    pub async fn download(&self, digest: &Digest, blob: &LinkedBlob, range: Option<ByteRange>) -> Result<BlobDownload, Error> {
        let key = blob.key.as_deref();
        if let Some(url) = self.store.download_url(digest, key).await? {
            return Ok(BlobDownload::Redirect(url));
        }
        Ok(BlobDownload::Stream(self.store.read(digest, key, range).await?))
    }

    /// Removes the blob from `repository`. The bytes stay while any repository links them.
    pub async fn delete(&self, repository: &RepositoryName, digest: &Digest) -> Result<(), Error> {
        if self.index.unlink_blob(repository, digest).await? { Ok(()) } else { Err(Error::BlobUnknown(digest.to_string())) }
    }

    /// Links a blob `from` holds into `repository`; `false` when `from` does not hold it (the client then uploads).
    pub async fn mount(&self, repository: &RepositoryName, digest: &Digest, from: &RepositoryName) -> Result<bool, Error> {
        let Some(blob) = self.index.linked_blob(from, digest).await? else {
            return Ok(false);
        };
        self.index.link_blob(repository, digest, blob.size, blob.key.as_deref(), None).await?;
        Ok(true)
    }

    pub async fn start_upload(&self, repository: &RepositoryName) -> Result<UploadSession, Error> {
        let session = new_session(repository);
        self.sessions.create_upload(&session).await?;
        Ok(session)
    }

    /// The session, if it exists, belongs to `repository` and has not expired.
    pub async fn upload(&self, repository: &RepositoryName, id: &str) -> Result<UploadSession, Error> {
        match self.sessions.upload(id).await? {
            Some(session) if &session.repository == repository && session.expires_at() > super::unix_seconds() => Ok(session),
            _ => Err(Error::BlobUploadUnknown),
        }
    }

    /// Takes the upload's lease, then reads its session: under the lease the session read is the one the request's
    /// bytes continue. A request finding the upload held by another is told where it stood (416).
    async fn hold(&self, repository: &RepositoryName, id: &str) -> Result<(UploadLease, UploadSession), Error> {
        let lease = match self.store.lease_upload(id).await {
            Err(StoreError::Conflict) => {
                let session = self.upload(repository, id).await?;
                return Err(Error::ChunkOutOfOrder { uploaded: session.size, start: session.size });
            }
            lease => lease?,
        };
        Ok((lease, self.upload(repository, id).await?))
    }

    /// Appends one chunk and saves the session; the chunk counts only once saved.
    pub async fn append(&self, repository: &RepositoryName, id: &str, chunk: Chunk) -> Result<UploadSession, Error> {
        let (_lease, mut session) = self.hold(repository, id).await?;
        self.advance(&mut session, chunk).await?;
        Ok(session)
    }

    /// Closes an upload: appends the last chunk if any, checks the digest, stores the blob and links it.
    pub async fn finish(&self, repository: &RepositoryName, id: &str, digest: &Digest, last_chunk: Option<Chunk>) -> Result<(), Error> {
        let (_lease, mut session) = self.hold(repository, id).await?;
        if let Some(chunk) = last_chunk {
            self.advance(&mut session, chunk).await?;
        }
        let key = self.verify_and_store(&mut session, digest).await?;
        self.link(repository, digest, session.size, key, Some(id)).await
    }

    /// A whole blob in one request (`POST ...?digest=`); nothing is recorded unless it verifies.
    pub async fn upload_whole(&self, repository: &RepositoryName, digest: &Digest, chunk: Chunk) -> Result<(), Error> {
        let mut session = new_session(repository);
        if let Err(error) = self.write_chunk(&mut session, chunk).await {
            self.store.abort_upload(&session).await?;
            return Err(error);
        }
        let key = self.verify_and_store(&mut session, digest).await?;
        self.link(repository, digest, session.size, key, None).await
    }

    /// Links a stored blob. When another upload of the same digest recorded its own key first, this upload's bytes
    /// go and the link names that key: one digest, one object.
    async fn link(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        size: u64,
        key: Option<String>,
        upload: Option<&str>,
    ) -> Result<(), Error> {
        match self.index.link_blob(repository, digest, size, key.as_deref(), upload).await {
            Err(StoreError::StoredAt(recorded)) => {
                if let Some(own) = &key {
                    self.store.discard(own).await?;
                }
                Ok(self.index.link_blob(repository, digest, size, Some(&recorded), upload).await?)
            }
            linked => Ok(linked?),
        }
    }

    pub async fn cancel(&self, repository: &RepositoryName, id: &str) -> Result<(), Error> {
        let (_lease, session) = self.hold(repository, id).await?;
        self.discard(&session).await
    }

    async fn discard(&self, session: &UploadSession) -> Result<(), Error> {
        self.store.abort_upload(session).await?;
        self.sessions.delete_upload(&session.id).await?;
        Ok(())
    }

    /// Writes a chunk and saves the session, unless a concurrent request moved the upload on meanwhile.
    async fn advance(&self, session: &mut UploadSession, chunk: Chunk) -> Result<(), Error> {
        let previous_size = session.size;
        self.write_chunk(session, chunk).await?;
        session.updated_at = super::unix_seconds();
        self.sessions.save_upload(session, previous_size).await.map_err(|error| concurrent_write(error, previous_size))
    }

    /// Streams a chunk into the backend at the session's end, hashing as it goes. On success `session` holds the new
    /// size and hash state; the caller saves it.
    async fn write_chunk(&self, session: &mut UploadSession, chunk: Chunk) -> Result<(), Error> {
        if let Some(start) = chunk.start
            && start != session.size
        {
            return Err(Error::ChunkOutOfOrder { uploaded: session.size, start });
        }
        if let Some(too_large) = chunk.length.and_then(|length| request_too_large(length, self.max_request_bytes)) {
            return Err(too_large);
        }
        let hasher = DigestHasher::restore(Algorithm::Sha256, &session.hash_state)
            .ok_or_else(|| StoreError::Corrupt(format!("hash state of upload {}", session.id)))?;
        let intake = Arc::new(Mutex::new(Intake { hasher, received: 0, fault: None }));
        let (limit, max_request_bytes) = (chunk.length, self.max_request_bytes);
        let counted = {
            let intake = intake.clone();
            chunk.data.map(move |item| {
                let mut intake = intake.lock().unwrap_or_else(PoisonError::into_inner);
                let result = match item {
                    Ok(bytes) => {
                        let total = intake.received + bytes.len() as u64;
                        if limit.is_some_and(|limit| total > limit) {
                            Err(Error::BlobUploadInvalid("the body is longer than its Content-Length".into()))
                        } else if let Some(too_large) = request_too_large(total, max_request_bytes) {
                            Err(too_large)
                        } else {
                            Ok(bytes)
                        }
                    }
                    Err(error) => Err(Error::BlobUploadInvalid(format!("the request body broke off: {error}"))),
                };
                match result {
                    Ok(bytes) => {
                        intake.hasher.update(&bytes);
                        intake.received += bytes.len() as u64;
                        Ok(bytes)
                    }
                    Err(fault) => {
                        let message = fault.to_string();
                        intake.fault = Some(fault);
                        Err(std::io::Error::other(message))
                    }
                }
            })
        };
        let written = self.store.append_upload(session, Box::pin(counted)).await;
        let (hasher, received, fault) = {
            let mut intake = intake.lock().unwrap_or_else(PoisonError::into_inner);
            (intake.hasher.clone(), intake.received, intake.fault.take())
        };
        if let Some(fault) = fault {
            return Err(fault);
        }
        let written = written.map_err(|error| concurrent_write(error, session.size))?;
        if limit.is_some_and(|limit| limit != received) || written != received {
            return Err(Error::BlobUploadInvalid(format!("received {received} bytes of the {} announced", limit.unwrap_or(received))));
        }
        session.size += written;
        session.hash_state = hasher.save();
        Ok(())
    }

    /// Checks the uploaded bytes against `digest` and stores them (at their content address, or where they are: the
    /// key returned); a mismatch discards the upload entirely.
    async fn verify_and_store(&self, session: &mut UploadSession, digest: &Digest) -> Result<Option<String>, Error> {
        let actual = match digest.algorithm() {
            Algorithm::Sha256 => DigestHasher::restore(Algorithm::Sha256, &session.hash_state)
                .ok_or_else(|| StoreError::Corrupt(format!("hash state of upload {}", session.id)))?
                .finish(),
            // Sessions hash SHA-256 as bytes arrive; another algorithm is only known now, so read the bytes once more.
            other => {
                let mut hasher = DigestHasher::new(other);
                let mut bytes = self.store.read_upload(session).await?;
                while let Some(chunk) = bytes.next().await {
                    hasher.update(&chunk.map_err(StoreError::from)?);
                }
                hasher.finish()
            }
        };
        if &actual != digest {
            self.discard(session).await?;
            return Err(Error::DigestMismatch { expected: digest.to_string(), actual: actual.to_string() });
        }
        self.store.commit_upload(session, digest).await.map_err(|error| concurrent_write(error, session.size))
    }
}

fn request_too_large(size: u64, limit: Option<u64>) -> Option<Error> {
    let limit = limit?;
    (size > limit).then_some(Error::TooLarge { what: REQUEST_BODY, size, limit })
}

fn new_session(repository: &RepositoryName) -> UploadSession {
    let now = super::unix_seconds();
    UploadSession {
        id: uuid::Uuid::new_v4().to_string(),
        repository: repository.clone(),
        size: 0,
        hash_state: DigestHasher::new(Algorithm::Sha256).save(),
        backend_state: String::new(),
        started_at: now,
        updated_at: now,
    }
}

/// A conditional write that lost means another request moved the upload on: the client's chunk no longer fits. An
/// upload the store cannot hold is the client's too big blob.
fn concurrent_write(error: StoreError, size: u64) -> Error {
    match error {
        StoreError::Conflict => Error::ChunkOutOfOrder { uploaded: size, start: size },
        StoreError::BlobTooLarge { limit } => Error::TooLarge { what: "blob", size: limit + 1, limit },
        other => Error::Store(other),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::stream;

    use super::*;
    use crate::store::{MetadataStore, UPLOAD_IDLE_SECS, contract::session};

    fn chunk(bytes: &'static [u8]) -> Chunk {
        Chunk { start: None, length: None, data: Box::pin(stream::iter([Ok(Bytes::from_static(bytes))])) }
    }

    /// An upload idle for longer than its lifetime is unknown to every request, before any of them reaches its bytes
    /// (on S3 they may be gone with the multipart upload); one in use stays open however old it is.
    async fn expired_uploads_are_unknown(store: Arc<dyn BlobStore>, metadata: Arc<dyn MetadataStore>) {
        let blobs = Blobs::new(store, metadata.clone(), metadata.clone(), None);
        let now = super::super::unix_seconds();
        let idle =
            UploadSession { started_at: now - UPLOAD_IDLE_SECS - 60, updated_at: now - UPLOAD_IDLE_SECS - 60, ..session("expiry/idle") };
        let busy = UploadSession { started_at: now - 3 * UPLOAD_IDLE_SECS, updated_at: now - 60, ..session("expiry/busy") };
        for upload in [&idle, &busy] {
            metadata.create_upload(upload).await.unwrap();
        }
        let (name, digest) = (&idle.repository, Digest::of(Algorithm::Sha256, b""));
        assert!(matches!(blobs.upload(name, &idle.id).await, Err(Error::BlobUploadUnknown)));
        assert!(matches!(blobs.append(name, &idle.id, chunk(b"late")).await, Err(Error::BlobUploadUnknown)));
        assert!(matches!(blobs.finish(name, &idle.id, &digest, None).await, Err(Error::BlobUploadUnknown)));
        assert!(matches!(blobs.cancel(name, &idle.id).await, Err(Error::BlobUploadUnknown)));
        let appended = blobs.append(&busy.repository, &busy.id, chunk(b"on time")).await.unwrap();
        assert!(appended.updated_at >= now, "a request moves the expiry on");
        assert_eq!(appended.size, 7);
    }

    #[tokio::test]
    async fn expired_uploads_are_unknown_on_the_embedded_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::store::filesystem::FilesystemBlobStore::open(dir.path()).await.unwrap());
        let metadata = Arc::new(crate::store::embedded::EmbeddedMetadata::open(&dir.path().join("metadata.redb")).unwrap());
        expired_uploads_are_unknown(store, metadata).await;
    }

    #[tokio::test]
    async fn expired_uploads_are_unknown_on_aws() {
        let (store, metadata) = crate::testing::fresh_aws_stores().await;
        expired_uploads_are_unknown(Arc::new(store), Arc::new(metadata)).await;
    }
}
