//! Running the registry over plain HTTP: `berth serve` on the embedded store, and any router until SIGTERM or ctrl-c.

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::Router;
use tokio::net::TcpListener;

use crate::{
    http::{self, Functions, PublicUrl},
    registry::{Blobs, EventBus, Manifests},
    store::{BlobStore, StoreError, UPLOAD_IDLE_SECS, UploadSessions, embedded::EmbeddedMetadata, filesystem::FilesystemBlobStore, layout},
};

/// Options of `berth serve` on the embedded store.
pub struct EmbeddedOptions {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub max_manifest_bytes: u64,
    pub public_url: Option<PublicUrl>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("server failed: {0}")]
    Serve(io::Error),
}

/// The embedded store: blobs on the filesystem and metadata in redb, under one data directory.
pub struct EmbeddedStore {
    blobs: Arc<FilesystemBlobStore>,
    metadata: Arc<EmbeddedMetadata>,
}

/// How often `berth serve` looks for abandoned uploads.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

impl EmbeddedStore {
    /// Opens the store in `data_dir`, creating what is missing.
    pub async fn open(data_dir: &std::path::Path) -> Result<Self, StoreError> {
        tokio::fs::create_dir_all(data_dir).await?;
        let blobs = Arc::new(FilesystemBlobStore::open(data_dir).await?);
        let metadata = Arc::new(EmbeddedMetadata::open(&data_dir.join(layout::METADATA_FILE))?);
        Ok(Self { blobs, metadata })
    }

    /// Every function over this store.
    pub fn functions(&self, max_manifest_bytes: u64, max_request_bytes: Option<u64>, events: Arc<EventBus>) -> Functions {
        let (blobs, metadata) = (self.blobs.clone(), self.metadata.clone());
        Functions {
            manifests: Some(Arc::new(Manifests::new(blobs.clone(), metadata.clone(), metadata.clone(), events, max_manifest_bytes))),
            blobs: Some(Arc::new(Blobs::new(blobs, metadata.clone(), metadata, max_request_bytes))),
            public_url: None,
        }
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
}

/// Every function over the embedded store in `data_dir` (created if missing).
pub async fn embedded_functions(
    data_dir: &std::path::Path,
    max_manifest_bytes: u64,
    max_request_bytes: Option<u64>,
    events: Arc<EventBus>,
) -> Result<Functions, StoreError> {
    Ok(EmbeddedStore::open(data_dir).await?.functions(max_manifest_bytes, max_request_bytes, events))
}

/// `berth serve`: the whole registry on one port over the embedded store.
pub async fn serve_embedded(options: EmbeddedOptions) -> Result<(), ServeError> {
    let store = EmbeddedStore::open(&options.data_dir).await?;
    let functions =
        Functions { public_url: options.public_url, ..store.functions(options.max_manifest_bytes, None, Arc::new(EventBus::new(1024))) };
    tokio::spawn(async move {
        loop {
            match store.sweep_abandoned_uploads().await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "removed abandoned uploads"),
                Err(error) => tracing::warn!(%error, "cannot sweep abandoned uploads"),
            }
            tokio::time::sleep(SWEEP_INTERVAL).await;
        }
    });
    let listener = TcpListener::bind(options.addr).await.map_err(|source| ServeError::Bind { addr: options.addr, source })?;
    tracing::info!(addr = %options.addr, data_dir = %options.data_dir.display(), "berth registry listening");
    serve(listener, http::router(functions)).await.map_err(ServeError::Serve)
}

/// Logs to stderr with `BERTH_LOG` (or `RUST_LOG`) as the filter, `info` by default; JSON lines where logs are
/// collected (Lambda, `--log-json`).
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("BERTH_LOG").or_else(|_| EnvFilter::try_from_default_env()).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files and log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}

/// How long a client may take to send a request's head (and an idle keep-alive connection may stay open): slow or
/// idle connections must not pile up. Bodies have their own idle timeout (`http::body`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `app` until SIGTERM or ctrl-c, then gives requests in flight [`DRAIN_TIMEOUT`] to finish. A request cut
/// off then loses nothing stored: uploads only ever count bytes already written.
pub async fn serve(listener: TcpListener, app: Router) -> io::Result<()> {
    serve_until(listener, app, shutdown_signal()).await
}

/// [`serve`], stopping when `stop` completes.
pub async fn serve_until(listener: TcpListener, app: Router, stop: impl Future<Output = ()>) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, or a connection reset before it was accepted: the listener itself is fine.
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // Small answers (manifests, configs) go out as headers and body in two writes; without TCP_NODELAY the
        // second waits for the client's delayed ACK, about 40 ms on a reused connection.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!(timeout = ?DRAIN_TIMEOUT, "requests still in flight at shutdown were cut off"),
    }
    tracing::info!("berth registry stopped");
    Ok(())
}

/// How long a stopping server waits for requests in flight; a stalled client must not keep it alive.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
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
