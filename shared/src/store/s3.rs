//! The S3 blob store: blobs under their content address, uploads as multipart uploads that survive across stateless
//! invocations, downloads through presigned GET URLs.
//!
//! An upload's bytes are S3 parts of at least `part_size` plus a tail object holding what does not fill a part yet;
//! the next request re-reads only that tail (under one part). Which parts and which tail count is recorded in the
//! session's `backend_state`, saved conditionally by the registry: a request that loses that race can have
//! uploaded parts or a tail nobody points at, never changed one somebody does: tails get a fresh key each time, and a
//! part overwritten by a loser changes its ETag, which CompleteMultipartUpload then refuses.

use std::{io, time::Duration};

use async_trait::async_trait;
use aws_sdk_s3::{
    Client,
    error::SdkError,
    error::{DisplayErrorContext, ProvideErrorMetadata},
    operation::get_object::GetObjectError,
    presigning::PresigningConfig,
    primitives::ByteStream as S3Body,
    types::{CompletedMultipartUpload, CompletedPart},
};
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use super::s3_parts::Part;
use super::{BlobStore, ByteRange, ByteStream, StoreError, UploadLease, UploadSession, layout};
use crate::oci::Digest;

/// S3's own limits, lowered in tests to exercise the large-blob paths with small blobs.
#[derive(Debug, Clone, Copy)]
pub struct S3Limits {
    /// The size of upload parts; S3 wants at least 5 MiB for all but the last.
    pub part_size: u64,
    /// The largest object one CopyObject may copy (5 GiB); larger ones are copied part by part.
    pub max_single_copy: u64,
    /// The size of the ranges a multipart copy copies.
    pub copy_part_size: u64,
    /// How many parts an upload may have (S3's 10,000); with the part sizes, what a blob may hold.
    pub max_parts: u32,
}

impl Default for S3Limits {
    fn default() -> Self {
        Self { part_size: 8 << 20, max_single_copy: 5 << 30, copy_part_size: 512 << 20, max_parts: MAX_PARTS }
    }
}

/// S3 allows 10,000 parts per upload; parts double in size every this many, up to [`MAX_PART_GROWTH`] times the base,
/// so that layers far beyond ACR's 200 GiB fit while one part (what a request holds in memory) stays small.
const PARTS_PER_SIZE_STEP: u32 = 1000;
/// Three doublings: 64 MiB parts at the default 8 MiB base, and 10,000 parts hold 63,000 × the base (492 GiB).
const MAX_PART_GROWTH: u32 = 3;
const MAX_PARTS: u32 = 10_000;
const MAX_PART_SIZE: u64 = 5 << 30;

pub struct S3BlobStore {
    client: Client,
    bucket: String,
    presign_ttl: Duration,
    limits: S3Limits,
}

/// What an upload has put into S3 so far.
#[derive(Debug, Default, Serialize, Deserialize)]
struct MultipartState {
    /// The multipart upload, once the first part is written.
    upload_id: Option<String>,
    #[serde(with = "super::s3_parts")]
    parts: Vec<Part>,
    /// The tail object's generation and length; its bytes follow the parts.
    tail: Option<Tail>,
    /// Set once the bytes were assembled into the staging object (to be read back before commit).
    staged: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Tail {
    generation: String,
    size: u64,
}

/// The size of part `number`: `base`, doubling every [`PARTS_PER_SIZE_STEP`] parts so that 10,000 of them hold the
/// largest layers while early parts (all most blobs need) stay small in memory.
fn part_size(base: u64, number: u32) -> u64 {
    (base << ((number - 1) / PARTS_PER_SIZE_STEP).min(MAX_PART_GROWTH)).min(MAX_PART_SIZE)
}

/// The most one upload can hold: every part it may have, each of its size.
pub fn blob_capacity(limits: &S3Limits) -> u64 {
    (1..=limits.max_parts).map(|number| part_size(limits.part_size, number)).sum()
}

fn s3_error<E: ProvideErrorMetadata + std::error::Error + 'static>(error: aws_sdk_s3::error::SdkError<E>) -> StoreError {
    StoreError::Backend { service: "S3", message: DisplayErrorContext(&error).to_string() }
}

/// An upload's own objects vanish only when a concurrent request finished or abandoned the upload, and a part changes
/// only when a request that lost the race to save wrote it: either way this request lost a race.
fn upload_error<E: ProvideErrorMetadata + std::error::Error + 'static>(error: SdkError<E>) -> StoreError {
    match error.code() {
        Some("NoSuchKey" | "NoSuchUpload" | "InvalidPart") => StoreError::Conflict,
        _ => s3_error(error),
    }
}

fn s3_stream(body: S3Body) -> ByteStream {
    Box::pin(stream::unfold(body, |mut body| async move { body.next().await.map(|chunk| (chunk.map_err(io::Error::other), body)) }))
}

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>, presign_ttl: Duration, limits: S3Limits) -> Self {
        Self { client, bucket: bucket.into(), presign_ttl, limits }
    }

    fn state(session: &UploadSession) -> Result<MultipartState, StoreError> {
        if session.backend_state.is_empty() {
            return Ok(MultipartState::default());
        }
        serde_json::from_str(&session.backend_state).map_err(|error| StoreError::Corrupt(format!("upload state: {error}")))
    }

    fn save_state(session: &mut UploadSession, state: &MultipartState) {
        session.backend_state = serde_json::to_string(state).expect("upload state serializes");
    }

    async fn get_all(&self, key: &str, on_error: fn(SdkError<GetObjectError>) -> StoreError) -> Result<BytesMut, StoreError> {
        let output = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(on_error)?;
        let bytes = output.body.collect().await.map_err(|error| StoreError::Io(io::Error::other(error)))?;
        Ok(BytesMut::from(bytes.into_bytes()))
    }

    async fn upload_part(&self, session: &UploadSession, state: &mut MultipartState, bytes: Bytes) -> Result<(), StoreError> {
        let upload_id = match &state.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.create_multipart(&layout::s3_upload_data_key(&session.id)).await?;
                state.upload_id = Some(id.clone());
                id
            }
        };
        let number = state.parts.last().map_or(1, |part| part.number + 1);
        if number > self.limits.max_parts {
            return Err(StoreError::BlobTooLarge { limit: blob_capacity(&self.limits) });
        }
        let size = bytes.len() as u64;
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(layout::s3_upload_data_key(&session.id))
            .upload_id(upload_id)
            .part_number(number as i32)
            .content_length(size as i64)
            .body(S3Body::from(bytes))
            .send()
            .await
            .map_err(upload_error)?;
        state.parts.push(Part { number, etag: uploaded.e_tag.unwrap_or_default(), size });
        Ok(())
    }

    /// Puts every byte of the upload into the staging object: completes the multipart upload (the tail copied in as
    /// its last part), or copies a lone tail.
    async fn stage(&self, session: &UploadSession, state: &mut MultipartState) -> Result<(), StoreError> {
        if state.staged {
            return Ok(());
        }
        let staging = layout::s3_upload_data_key(&session.id);
        match (&state.upload_id, &state.tail) {
            (None, None) => {
                self.put_key(&staging, Bytes::new()).await?;
            }
            (None, Some(tail)) => self.copy(&layout::s3_upload_tail_key(&session.id, &tail.generation), &staging, tail.size).await?,
            (Some(upload_id), tail) => {
                let (upload_id, tail) = (upload_id.clone(), tail.as_ref().map(|tail| (tail.generation.clone(), tail.size)));
                let completed = async {
                    if let Some((generation, size)) = tail {
                        let number = state.parts.last().map_or(1, |part| part.number + 1);
                        let tail_key = layout::s3_upload_tail_key(&session.id, &generation);
                        let etag = self.copy_part(&staging, &upload_id, number, &tail_key, None).await?;
                        state.parts.push(Part { number, etag, size });
                    }
                    let parts = state.parts.iter().map(|part| (part.number, part.etag.clone())).collect();
                    self.complete(&staging, &upload_id, parts).await
                }
                .await;
                // An earlier attempt completed it (a retried close whose first attempt failed later on), from this
                // same saved state: nothing else ever completes an upload.
                if let Err(error) = completed {
                    if self.size_of(&staging).await? != Some(session.size) {
                        return Err(error);
                    }
                    tracing::debug!(%error, upload = %session.id, "upload already staged");
                }
            }
        }
        state.staged = true;
        Ok(())
    }

    /// Copies one object to another inside the bucket: in one call up to S3's copy limit, in ranged parts above it.
    async fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), StoreError> {
        if size <= self.limits.max_single_copy {
            let source = format!("{}/{from}", self.bucket);
            self.client.copy_object().bucket(&self.bucket).key(to).copy_source(source).send().await.map_err(upload_error)?;
            return Ok(());
        }
        let upload_id = self.create_multipart(to).await?;
        let part_size = self.limits.copy_part_size.max(size.div_ceil(MAX_PARTS as u64));
        let mut parts = Vec::new();
        for (index, first) in (0..size).step_by(part_size as usize).enumerate() {
            let number = index as u32 + 1;
            let range = ByteRange { first, last: (first + part_size).min(size) - 1 };
            parts.push((number, self.copy_part(to, &upload_id, number, from, Some(range)).await?));
        }
        self.complete(to, &upload_id, parts).await
    }

    async fn create_multipart(&self, key: &str) -> Result<String, StoreError> {
        let created = self.client.create_multipart_upload().bucket(&self.bucket).key(key).send().await.map_err(s3_error)?;
        created
            .upload_id
            .ok_or_else(|| StoreError::Backend { service: "S3", message: "CreateMultipartUpload returned no upload id".into() })
    }

    /// Copies object `from` (or a range of it) in as part `number` of the upload to `key`; returns the part's ETag.
    async fn copy_part(&self, key: &str, upload_id: &str, number: u32, from: &str, range: Option<ByteRange>) -> Result<String, StoreError> {
        let copied = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number as i32)
            .copy_source(format!("{}/{from}", self.bucket))
            .set_copy_source_range(range.map(|range| format!("bytes={}-{}", range.first, range.last)))
            .send()
            .await
            .map_err(upload_error)?;
        Ok(copied.copy_part_result.and_then(|result| result.e_tag).unwrap_or_default())
    }

    /// Completes the upload to `key` from `parts` (number, ETag), in order.
    async fn complete(&self, key: &str, upload_id: &str, parts: Vec<(u32, String)>) -> Result<(), StoreError> {
        let parts =
            parts.into_iter().map(|(number, etag)| CompletedPart::builder().part_number(number as i32).e_tag(etag).build()).collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(upload_error)?;
        Ok(())
    }

    /// The size of the object at `key`, `None` when there is none.
    async fn size_of(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => Ok(Some(head.content_length.unwrap_or_default().max(0) as u64)),
            Err(error) if error.as_service_error().is_some_and(|service| service.is_not_found()) => Ok(None),
            Err(error) => Err(s3_error(error)),
        }
    }

    async fn put_key(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.client.put_object().bucket(&self.bucket).key(key).body(S3Body::from(bytes)).send().await.map_err(s3_error)?;
        Ok(())
    }

    async fn delete_key(&self, key: &str) -> Result<(), StoreError> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(s3_error)?;
        Ok(())
    }

    /// Puts an upload's bytes at `target` and removes what the upload left behind.
    async fn move_to(&self, session: &UploadSession, target: &str) -> Result<(), StoreError> {
        let mut state = Self::state(session)?;
        match (&state.upload_id, &state.tail, state.staged) {
            // A blob smaller than a part is all tail: it goes to its address in one copy.
            (None, Some(tail), false) => self.copy(&layout::s3_upload_tail_key(&session.id, &tail.generation), target, tail.size).await?,
            (None, None, false) => {
                self.put_key(target, Bytes::new()).await?;
            }
            _ => {
                self.stage(session, &mut state).await?;
                self.copy(&layout::s3_upload_data_key(&session.id), target, session.size).await?;
            }
        }
        self.clean_up(session, &state).await
    }

    /// Removes everything an upload left in S3 but its committed blob, calling only for what exists.
    async fn clean_up(&self, session: &UploadSession, state: &MultipartState) -> Result<(), StoreError> {
        if let (Some(upload_id), false) = (&state.upload_id, state.staged) {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(layout::s3_upload_data_key(&session.id))
                .upload_id(upload_id)
                .send()
                .await;
            // An upload already completed or aborted has nothing left to abort.
            if let Err(error) = aborted
                && error.code() != Some("NoSuchUpload")
            {
                return Err(s3_error(error));
            }
        }
        if let Some(tail) = &state.tail {
            self.delete_key(&layout::s3_upload_tail_key(&session.id, &tail.generation)).await?;
        }
        if state.staged {
            self.delete_key(&layout::s3_upload_data_key(&session.id)).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn read(&self, digest: &Digest, key: Option<&str>, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        let key = key.map_or_else(|| layout::s3_blob_key(digest), str::to_owned);
        let request = self.client.get_object().bucket(&self.bucket).key(key);
        let request = match range {
            Some(range) => request.range(format!("bytes={}-{}", range.first, range.last)),
            None => request,
        };
        Ok(s3_stream(request.send().await.map_err(s3_error)?.body))
    }

    async fn download_url(&self, digest: &Digest, key: Option<&str>) -> Result<Option<String>, StoreError> {
        let config = PresigningConfig::expires_in(self.presign_ttl)
            .map_err(|error| StoreError::Backend { service: "S3", message: error.to_string() })?;
        let key = key.map_or_else(|| layout::s3_blob_key(digest), str::to_owned);
        let presigned = self.client.get_object().bucket(&self.bucket).key(key).presigned(config).await.map_err(s3_error)?;
        Ok(Some(presigned.uri().to_owned()))
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError> {
        self.put_key(&layout::s3_blob_key(digest), bytes).await
    }

    async fn get(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        Ok(self.get_all(&layout::s3_blob_key(digest), s3_error).await?.freeze())
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        self.delete_key(&layout::s3_blob_key(digest)).await
    }

    fn chunk_min_length(&self) -> Option<u64> {
        Some(self.limits.part_size)
    }

    /// Racing requests write fresh tail keys and parts whose ETags the completion checks: nothing to hold.
    async fn lease_upload(&self, _id: &str) -> Result<UploadLease, StoreError> {
        Ok(Box::new(()))
    }

    async fn append_upload(&self, session: &mut UploadSession, mut data: ByteStream) -> Result<u64, StoreError> {
        // Nothing to append (a closing PUT without a body): the tail stays as it is, neither read nor written again.
        let first = loop {
            match data.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    if !chunk.is_empty() {
                        break chunk;
                    }
                }
                None => return Ok(0),
            }
        };
        let mut data: ByteStream = Box::pin(stream::once(async move { Ok(first) }).chain(data));
        let mut state = Self::state(session)?;
        let mut buffer = match &state.tail {
            Some(tail) => self.get_all(&layout::s3_upload_tail_key(&session.id, &tail.generation), upload_error).await?,
            None => BytesMut::new(),
        };
        let mut next_part_size = part_size(self.limits.part_size, state.parts.len() as u32 + 1);
        while let Some(chunk) = data.next().await {
            buffer.extend_from_slice(&chunk?);
            while buffer.len() as u64 >= next_part_size {
                let part = buffer.split_to(next_part_size as usize).freeze();
                self.upload_part(session, &mut state, part).await?;
                next_part_size = part_size(self.limits.part_size, state.parts.len() as u32 + 1);
            }
        }
        let previous_tail = state.tail.as_ref().map_or(0, |tail| tail.size);
        let in_parts: u64 = state.parts.iter().map(|part| part.size).sum();
        state.tail = if buffer.is_empty() {
            None
        } else {
            let generation = uuid::Uuid::new_v4().to_string();
            let size = buffer.len() as u64;
            let key = layout::s3_upload_tail_key(&session.id, &generation);
            self.put_key(&key, buffer.freeze()).await?;
            Some(Tail { generation, size })
        };
        let total = in_parts + state.tail.as_ref().map_or(0, |tail| tail.size);
        debug_assert!(total >= session.size.saturating_sub(previous_tail));
        let written = total - session.size;
        Self::save_state(session, &state);
        Ok(written)
    }

    async fn read_upload(&self, session: &mut UploadSession) -> Result<ByteStream, StoreError> {
        let mut state = Self::state(session)?;
        self.stage(session, &mut state).await?;
        Self::save_state(session, &state);
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(layout::s3_upload_data_key(&session.id))
            .send()
            .await
            .map_err(upload_error)?;
        Ok(s3_stream(output.body))
    }

    async fn commit_upload(&self, session: &UploadSession, digest: &Digest) -> Result<Option<String>, StoreError> {
        let target = layout::s3_blob_key(digest);
        // A stored blob is never replaced: the upload's bytes are dropped instead (and no copy is paid for).
        if self.size_of(&target).await?.is_some() {
            return self.clean_up(session, &Self::state(session)?).await.map(|()| None);
        }
        let mut state = Self::state(session)?;
        if state.upload_id.is_some() {
            // At least one part: the blob stays where it was uploaded. Completing it there is one call whatever its
            // size (its tail goes in as the last part); moving it would copy every byte.
            self.stage(session, &mut state).await?;
            if let Some(tail) = &state.tail {
                self.delete_key(&layout::s3_upload_tail_key(&session.id, &tail.generation)).await?;
            }
            return Ok(Some(layout::s3_upload_data_key(&session.id)));
        }
        match self.move_to(session, &target).await {
            // A concurrent request closed this upload first and took its tail with it.
            Err(error) if self.size_of(&target).await?.is_some() => {
                tracing::debug!(%error, upload = %session.id, "upload already committed");
                Ok(None)
            }
            result => result.map(|()| None),
        }
    }

    async fn abort_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        self.clean_up(session, &Self::state(session)?).await
    }

    async fn discard(&self, key: &str) -> Result<(), StoreError> {
        self.delete_key(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{oci::Algorithm, store::contract::session};

    /// Of two requests appending from the same session state, the one whose state was not saved may overwrite a part
    /// the saved state counts; the commit must notice instead of storing bytes that do not match the digest.
    #[tokio::test]
    async fn a_part_overwritten_by_a_losing_request_fails_the_commit() {
        let (store, _) = crate::testing::fresh_aws_stores().await;
        let bytes = |fill: u8| -> ByteStream { Box::pin(stream::iter([Ok(Bytes::from(vec![fill; 5 << 20]))])) };
        // A saved state with a multipart upload under way: both racing requests add its part 2.
        let mut base = session("s3/race");
        base.size += store.append_upload(&mut base, bytes(b'B')).await.unwrap();
        let mut saved = base.clone();
        saved.size += store.append_upload(&mut saved, bytes(b'W')).await.unwrap();
        let mut lost = base.clone();
        store.append_upload(&mut lost, bytes(b'L')).await.unwrap();
        let content: Vec<u8> = [vec![b'B'; 5 << 20], vec![b'W'; 5 << 20]].concat();
        let digest = Digest::of(Algorithm::Sha256, &content);
        assert!(matches!(store.commit_upload(&saved, &digest).await, Err(StoreError::Conflict)));
        assert!(store.read(&digest, None, None).await.is_err(), "nothing is stored under the digest");
    }

    #[test]
    fn parts_grow_so_ten_thousand_hold_the_largest_layers() {
        let limits = S3Limits::default();
        let base = limits.part_size;
        assert_eq!(
            (
                part_size(base, 1),
                part_size(base, 1000),
                part_size(base, 1001),
                part_size(base, 2001),
                part_size(base, 3001),
                part_size(base, MAX_PARTS)
            ),
            (base, base, 2 * base, 4 * base, 8 * base, 8 * base)
        );
        assert_eq!(blob_capacity(&limits), 63_000 * base, "10,000 parts hold 492 GiB, more than ACR's 200 GiB layers");
        assert!(part_size(5 << 30, MAX_PARTS) <= MAX_PART_SIZE, "a large configured base stays within S3's part limit");
    }

    /// An upload that needs more parts than S3 allows is refused as too large, naming what a blob may hold.
    #[tokio::test]
    async fn an_upload_beyond_the_last_part_is_too_large() {
        let (store, _) = crate::testing::fresh_aws_stores().await;
        let limits = S3Limits { max_parts: 2, ..crate::testing::TEST_LIMITS };
        let store = S3BlobStore { limits, ..store };
        let mut upload = session("s3/huge");
        let bytes = || -> ByteStream { Box::pin(stream::iter([Ok(Bytes::from(vec![b'H'; 15 << 20]))])) };
        let refused = store.append_upload(&mut upload, bytes()).await;
        assert!(matches!(refused, Err(StoreError::BlobTooLarge { limit }) if limit == 10 << 20), "{refused:?}");
    }
}
