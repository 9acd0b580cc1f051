//! The embedded store of `berth serve`: blobs on the filesystem and metadata in redb under one data directory, and
//! the sweeper that removes abandoned uploads (what DynamoDB's TTL and the bucket's lifecycle rules do on AWS).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{BlobStore, StoreError, UPLOAD_IDLE_SECS, UploadSessions, embedded::EmbeddedMetadata, filesystem::FilesystemBlobStore, layout};

/// The embedded store: blobs on the filesystem and metadata in redb, under one data directory.
pub struct EmbeddedStore {
    pub blobs: Arc<FilesystemBlobStore>,
    pub metadata: Arc<EmbeddedMetadata>,
}

/// How often `berth serve` looks for abandoned uploads.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

impl EmbeddedStore {
    /// Opens the store in `data_dir`, creating what is missing.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        tokio::fs::create_dir_all(data_dir).await?;
        let blobs = Arc::new(FilesystemBlobStore::open(data_dir).await?);
        let metadata = Arc::new(EmbeddedMetadata::open(&data_dir.join(layout::METADATA_FILE))?);
        Ok(Self { blobs, metadata })
    }

    /// Removes expired upload sessions with their bytes, and upload files idle for [`UPLOAD_IDLE_SECS`] that no session
    /// owns any more; what DynamoDB's TTL and the bucket's lifecycle rules do on AWS. Returns how many it removed.
    pub async fn sweep_abandoned_uploads(&self) -> Result<usize, StoreError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        let mut removed = 0;
        for session in self.metadata.uploads_expired_by(now)? {
            self.blobs.abort_upload(&session).await?;
            self.metadata.delete_upload(&session.id).await?;
            removed += 1;
        }
        for id in self.blobs.upload_files_older_than(Duration::from_secs(UPLOAD_IDLE_SECS)).await? {
            if self.metadata.upload(&id).await?.is_none() {
                self.blobs.remove_upload_file(&id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Sweeps now and then every [`SWEEP_INTERVAL`], in the background, for as long as the process runs.
    pub fn sweep_in_background(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                match self.sweep_abandoned_uploads().await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "removed abandoned uploads"),
                    Err(error) => tracing::warn!(%error, "cannot sweep abandoned uploads"),
                }
                tokio::time::sleep(SWEEP_INTERVAL).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::stream;

    use super::*;
    use crate::store::{UploadSession, contract::session};

    #[tokio::test]
    async fn the_sweeper_removes_abandoned_uploads_and_keeps_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let mut uploads = Vec::new();
        for (name, started_at) in [("sweep/old", 0), ("sweep/live", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs())] {
            let mut upload = UploadSession { started_at, updated_at: started_at, ..session(name) };
            store.metadata.create_upload(&upload).await.unwrap();
            upload.size +=
                store.blobs.append_upload(&mut upload, Box::pin(stream::iter([Ok(Bytes::from_static(b"bytes"))]))).await.unwrap();
            uploads.push(upload);
        }
        // A file whose session is gone (a late request wrote after its upload ended), last touched two days ago.
        let orphan = uuid::Uuid::new_v4().to_string();
        let orphan_path = dir.path().join(layout::upload_path(&orphan));
        std::fs::write(&orphan_path, b"leftover").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&orphan_path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(2 * 86_400))
            .unwrap();

        assert_eq!(store.sweep_abandoned_uploads().await.unwrap(), 2);
        assert_eq!(store.metadata.upload(&uploads[0].id).await.unwrap(), None);
        assert!(!dir.path().join(layout::upload_path(&uploads[0].id)).exists());
        assert!(!orphan_path.exists());
        assert!(store.metadata.upload(&uploads[1].id).await.unwrap().is_some(), "a live session stays");
        assert!(dir.path().join(layout::upload_path(&uploads[1].id)).exists());
        assert_eq!(store.sweep_abandoned_uploads().await.unwrap(), 0);
    }
}
