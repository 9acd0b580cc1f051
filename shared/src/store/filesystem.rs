//! The filesystem blob store of `berth serve`: bytes are fsynced, then linked into their content address.
//!
//! One process owns a data directory (redb locks the metadata file), so an upload's lease is an in-process claim.

use std::{
    collections::HashSet,
    io::SeekFrom,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::{
    fs::{self, File, OpenOptions},
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter},
};
use tokio_util::io::ReaderStream;

use super::{BlobStore, ByteRange, ByteStream, StoreError, UploadLease, UploadSession, layout};
use crate::oci::Digest;

/// Large buffers keep the number of blocking write and read calls per GiB low.
const IO_BUFFER: usize = 1 << 20;

pub struct FilesystemBlobStore {
    root: PathBuf,
    /// Ids of the uploads a request holds the lease of.
    leased: Arc<Mutex<HashSet<String>>>,
}

/// A held upload lease; dropping it releases the upload.
struct Lease {
    id: String,
    leased: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.leased.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl FilesystemBlobStore {
    /// Opens (creating where missing) the store under `root`; unfinished small writes left by a crash are dropped.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for dir in [layout::BLOBS_DIR, layout::UPLOADS_DIR] {
            fs::create_dir_all(root.join(dir)).await?;
        }
        let tmp = root.join(layout::TMP_DIR);
        if fs::try_exists(&tmp).await? {
            fs::remove_dir_all(&tmp).await?;
        }
        fs::create_dir_all(&tmp).await?;
        Ok(Self { root, leased: Arc::default() })
    }

    fn blob(&self, digest: &Digest) -> PathBuf {
        self.root.join(layout::blob_path(digest))
    }

    fn upload(&self, session: &UploadSession) -> PathBuf {
        self.root.join(layout::upload_path(&session.id))
    }

    /// Ids of upload files untouched for `age`: those of abandoned sessions, and leftovers of sessions that ended
    /// while a late request still wrote.
    pub async fn upload_files_older_than(&self, age: std::time::Duration) -> Result<Vec<String>, StoreError> {
        let mut entries = fs::read_dir(self.root.join(layout::UPLOADS_DIR)).await?;
        let mut old = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let id = entry.file_name().to_string_lossy().into_owned();
            let modified = entry.metadata().await?.modified()?;
            if crate::oci::is_upload_id(&id) && modified.elapsed().is_ok_and(|elapsed| elapsed > age) {
                old.push(id);
            }
        }
        Ok(old)
    }

    pub async fn remove_upload_file(&self, id: &str) -> Result<(), StoreError> {
        remove_if_present(&self.root.join(layout::upload_path(id))).await
    }

    /// Links a complete, fsynced file to its content address, durably, and removes it from where it was. A hard link
    /// never replaces an existing file, so a blob already stored (from bytes verified then) stays as it is.
    async fn publish(&self, from: &Path, digest: &Digest) -> Result<(), StoreError> {
        let target = self.blob(digest);
        let parent = target.parent().expect("blob paths have a parent");
        fs::create_dir_all(parent).await?;
        match fs::hard_link(from, &target).await {
            Ok(()) => sync_dir(parent).await?,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error.into()),
        }
        remove_if_present(from).await
    }
}

async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).await?.sync_all().await?;
    Ok(())
}

async fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path).await {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

fn stream_file(file: impl tokio::io::AsyncRead + Send + 'static) -> ByteStream {
    Box::pin(ReaderStream::with_capacity(file, IO_BUFFER))
}

#[async_trait]
impl BlobStore for FilesystemBlobStore {
    /// Blobs here are always at their content address (a rename commits them), so no link names a key.
    async fn read(&self, digest: &Digest, _key: Option<&str>, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        let mut file = File::open(self.blob(digest)).await?;
        Ok(match range {
            Some(range) => {
                file.seek(SeekFrom::Start(range.first)).await?;
                stream_file(file.take(range.len()))
            }
            None => stream_file(file),
        })
    }

    async fn download_url(&self, _digest: &Digest, _key: Option<&str>) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn put(&self, digest: &Digest, bytes: Bytes) -> Result<(), StoreError> {
        if fs::try_exists(self.blob(digest)).await? {
            return Ok(());
        }
        let staging = self.root.join(layout::TMP_DIR).join(uuid::Uuid::new_v4().to_string());
        let mut file = File::create(&staging).await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        self.publish(&staging, digest).await
    }

    async fn get(&self, digest: &Digest) -> Result<Bytes, StoreError> {
        Ok(fs::read(self.blob(digest)).await?.into())
    }

    async fn delete(&self, digest: &Digest) -> Result<(), StoreError> {
        remove_if_present(&self.blob(digest)).await
    }

    fn chunk_min_length(&self) -> Option<u64> {
        None
    }

    async fn lease_upload(&self, id: &str) -> Result<UploadLease, StoreError> {
        if !self.leased.lock().unwrap_or_else(PoisonError::into_inner).insert(id.to_owned()) {
            return Err(StoreError::Conflict);
        }
        Ok(Box::new(Lease { id: id.to_owned(), leased: self.leased.clone() }))
    }

    async fn append_upload(&self, session: &mut UploadSession, mut data: ByteStream) -> Result<u64, StoreError> {
        let mut file = OpenOptions::new().create(true).truncate(false).write(true).open(self.upload(session)).await?;
        // A second name means the upload was published but the process stopped before unlinking it: writing on
        // would change the stored blob. The session is over; its client starts again.
        if file.metadata().await?.nlink() > 1 {
            return Err(StoreError::Conflict);
        }
        // Bytes past the session's size are from a request that failed before its session was saved: drop them.
        file.set_len(session.size).await?;
        file.seek(SeekFrom::Start(session.size)).await?;
        let mut writer = BufWriter::with_capacity(IO_BUFFER, file);
        let appended = async {
            let mut written = 0;
            while let Some(chunk) = data.next().await {
                let chunk = chunk?;
                writer.write_all(&chunk).await?;
                written += chunk.len() as u64;
            }
            writer.flush().await?;
            writer.get_ref().sync_data().await?;
            Ok(written)
        }
        .await;
        // tokio closes a file with a write in flight later, on a blocking thread; it must be closed before the lease
        // goes, or the next request's writes could race a late one of this request.
        drop(writer.into_inner().into_std().await);
        appended
    }

    async fn read_upload(&self, session: &mut UploadSession) -> Result<ByteStream, StoreError> {
        let file = File::open(self.upload(session)).await?;
        Ok(stream_file(file.take(session.size)))
    }

    async fn commit_upload(&self, session: &UploadSession, digest: &Digest) -> Result<Option<String>, StoreError> {
        let upload = self.upload(session);
        if fs::try_exists(self.blob(digest)).await? {
            // Stored already, by another upload or by an earlier attempt of this close that failed after publishing.
            return remove_if_present(&upload).await.map(|()| None);
        }
        if !fs::try_exists(&upload).await? {
            if session.size > 0 {
                return Err(StoreError::Corrupt(format!("upload {} lost its bytes", session.id)));
            }
            // An empty blob never had bytes appended.
            File::create(&upload).await?.sync_all().await?;
        }
        let file = OpenOptions::new().write(true).open(&upload).await?;
        // Bytes past the session's size are a failed request's; fewer would mean lost bytes, never to be padded.
        if file.metadata().await?.len() < session.size {
            return Err(StoreError::Corrupt(format!("upload {} holds fewer bytes than its session counts", session.id)));
        }
        file.set_len(session.size).await?;
        file.sync_all().await?;
        self.publish(&upload, digest).await.map(|()| None)
    }

    async fn abort_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        self.remove_upload_file(&session.id).await
    }

    /// Commits here never keep bytes at a key of their own, so no key can come back to be discarded.
    async fn discard(&self, key: &str) -> Result<(), StoreError> {
        Err(StoreError::Corrupt(format!("the filesystem store keeps no blob at {key}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_request_holds_an_upload_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemBlobStore::open(dir.path()).await.unwrap();
        let held = store.lease_upload("a").await.unwrap();
        assert!(matches!(store.lease_upload("a").await, Err(StoreError::Conflict)), "a second request must be refused");
        let other = store.lease_upload("b").await.unwrap();
        drop(held);
        drop(store.lease_upload("a").await.unwrap());
        drop(other);
    }

    /// An upload published under a digest that is then written to again (the process stopped between linking and
    /// unlinking it) must not change the stored blob.
    #[tokio::test]
    async fn a_published_upload_is_never_written_again() {
        use crate::{
            oci::Algorithm,
            store::contract::{collect, session},
        };
        use futures_util::stream;
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemBlobStore::open(dir.path()).await.unwrap();
        let mut upload = session("fs/published");
        upload.size += store.append_upload(&mut upload, Box::pin(stream::iter([Ok(Bytes::from_static(b"stored"))]))).await.unwrap();
        let digest = Digest::of(Algorithm::Sha256, b"stored");
        let target = store.blob(&digest);
        fs::create_dir_all(target.parent().unwrap()).await.unwrap();
        fs::hard_link(store.upload(&upload), &target).await.unwrap();
        let more = store.append_upload(&mut upload.clone(), Box::pin(stream::iter([Ok(Bytes::from_static(b"!"))]))).await;
        assert!(matches!(more, Err(StoreError::Conflict)), "got {more:?}");
        store.commit_upload(&upload, &digest).await.unwrap();
        assert_eq!(collect(store.read(&digest, None, None).await.unwrap()).await, b"stored");
        assert!(!fs::try_exists(store.upload(&upload)).await.unwrap(), "the upload's name is gone");
    }
}
