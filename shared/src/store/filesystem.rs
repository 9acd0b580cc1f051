//! The filesystem blob store of `berth serve`: bytes are fsynced, then renamed into their content address.

use std::{
    io::SeekFrom,
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::{
    fs::{self, File, OpenOptions},
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter},
};
use tokio_util::io::ReaderStream;

use super::{BlobStore, ByteRange, ByteStream, StoreError, UploadSession, layout};
use crate::oci::Digest;

/// Large buffers keep the number of blocking write and read calls per GiB low.
const IO_BUFFER: usize = 1 << 20;

pub struct FilesystemBlobStore {
    root: PathBuf,
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
        Ok(Self { root })
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
            if layout::is_upload_id(&id) && modified.elapsed().is_ok_and(|elapsed| elapsed > age) {
                old.push(id);
            }
        }
        Ok(old)
    }

    pub async fn remove_upload_file(&self, id: &str) -> Result<(), StoreError> {
        remove_if_present(&self.root.join(layout::upload_path(id))).await
    }

    /// Renames a complete, fsynced file to its content address and makes the rename itself durable.
    async fn publish(&self, from: &Path, digest: &Digest) -> Result<(), StoreError> {
        let target = self.blob(digest);
        let parent = target.parent().expect("blob paths have a parent");
        fs::create_dir_all(parent).await?;
        fs::rename(from, &target).await?;
        sync_dir(parent).await
    }
}

async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).await?.sync_all().await?;
    Ok(())
}

/// Takes the upload file's lock, held until the file is closed: two requests on one session (a client retrying while
/// its first attempt still runs) must not interleave their bytes, so the second gets [`StoreError::Conflict`].
async fn lock_exclusively(file: File) -> Result<File, StoreError> {
    let file = file.into_std().await;
    match file.try_lock() {
        Ok(()) => Ok(File::from_std(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Conflict),
        Err(std::fs::TryLockError::Error(error)) => Err(error.into()),
    }
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
    async fn read(&self, digest: &Digest, range: Option<ByteRange>) -> Result<ByteStream, StoreError> {
        let mut file = File::open(self.blob(digest)).await?;
        Ok(match range {
            Some(range) => {
                file.seek(SeekFrom::Start(range.first)).await?;
                stream_file(file.take(range.len()))
            }
            None => stream_file(file),
        })
    }

    async fn download_url(&self, _digest: &Digest) -> Result<Option<String>, StoreError> {
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

    async fn append_upload(&self, session: &mut UploadSession, mut data: ByteStream) -> Result<u64, StoreError> {
        let mut file =
            lock_exclusively(OpenOptions::new().create(true).truncate(false).write(true).open(self.upload(session)).await?).await?;
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
        // tokio closes a file with a write in flight later, on a blocking thread; the lock must be gone before this
        // request answers, or the client's immediate retry would find it still held.
        drop(writer.into_inner().into_std().await);
        appended
    }

    async fn read_upload(&self, session: &mut UploadSession) -> Result<ByteStream, StoreError> {
        let file = File::open(self.upload(session)).await?;
        Ok(stream_file(file.take(session.size)))
    }

    async fn commit_upload(&self, session: &UploadSession, digest: &Digest) -> Result<(), StoreError> {
        let upload = self.upload(session);
        if !fs::try_exists(&upload).await? {
            if fs::try_exists(self.blob(digest)).await? {
                // A concurrent request closed this upload first.
                return Ok(());
            }
            if session.size > 0 {
                return Err(StoreError::Corrupt(format!("upload {} lost its bytes", session.id)));
            }
            // An empty blob never had bytes appended.
            File::create(&upload).await?.sync_all().await?;
        }
        let file = lock_exclusively(OpenOptions::new().write(true).open(&upload).await?).await?;
        // Bytes past the session's size are a failed request's; fewer would mean lost bytes, never to be padded.
        if file.metadata().await?.len() < session.size {
            return Err(StoreError::Corrupt(format!("upload {} holds fewer bytes than its session counts", session.id)));
        }
        file.set_len(session.size).await?;
        file.sync_all().await?;
        self.publish(&upload, digest).await
    }

    async fn abort_upload(&self, session: &UploadSession) -> Result<(), StoreError> {
        self.remove_upload_file(&session.id).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures_util::stream;

    use super::*;
    use crate::store::contract::{collect, session};

    #[tokio::test]
    async fn one_writer_per_upload_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FilesystemBlobStore::open(dir.path()).await.unwrap());
        let mut upload = session("fs/exclusive");
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        // The first request's body stays open until the second request has been refused.
        let held: ByteStream = Box::pin(stream::once(async { Ok(Bytes::from_static(b"first")) }).chain(stream::once(async move {
            let _ = released.await;
            Ok(Bytes::from_static(b"!"))
        })));
        let (first_store, mut first_session) = (store.clone(), upload.clone());
        let first = tokio::spawn(async move { first_store.append_upload(&mut first_session, held).await });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let second = store.append_upload(&mut upload.clone(), Box::pin(stream::iter([Ok(Bytes::from_static(b"second"))]))).await;
        assert!(matches!(second, Err(StoreError::Conflict)), "a second writer must be refused, got {second:?}");
        release.send(()).unwrap();
        upload.size += first.await.unwrap().unwrap();
        assert_eq!(collect(store.read_upload(&mut upload).await.unwrap()).await, b"first!");
    }
}
