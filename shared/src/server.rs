//! Running the registry over plain HTTP: `berth serve` on the embedded store, and any router until SIGTERM or ctrl-c.

use std::{io, net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{Router, serve::ListenerExt};
use tokio::net::TcpListener;

use crate::{
    http::{self, Functions, PublicUrl},
    registry::{Blobs, EventBus, Manifests},
    store::{StoreError, embedded::EmbeddedMetadata, filesystem::FilesystemBlobStore, layout},
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

/// Every function over the embedded store in `data_dir` (created if missing): blobs on disk, metadata in redb.
pub async fn embedded_functions(
    data_dir: &std::path::Path,
    max_manifest_bytes: u64,
    max_request_bytes: Option<u64>,
    events: Arc<EventBus>,
) -> Result<Functions, StoreError> {
    tokio::fs::create_dir_all(data_dir).await?;
    let blob_store = Arc::new(FilesystemBlobStore::open(data_dir).await?);
    let metadata = Arc::new(EmbeddedMetadata::open(&data_dir.join(layout::METADATA_FILE))?);
    Ok(Functions {
        manifests: Some(Arc::new(Manifests::new(blob_store.clone(), metadata.clone(), metadata.clone(), events, max_manifest_bytes))),
        blobs: Some(Arc::new(Blobs::new(blob_store, metadata.clone(), metadata, max_request_bytes))),
        public_url: None,
    })
}

/// `berth serve`: the whole registry on one port over the embedded store.
pub async fn serve_embedded(options: EmbeddedOptions) -> Result<(), ServeError> {
    let mut functions = embedded_functions(&options.data_dir, options.max_manifest_bytes, None, Arc::new(EventBus::new(1024))).await?;
    functions.public_url = options.public_url;
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

/// Serves `app` until SIGTERM or ctrl-c, then gives requests in flight [`DRAIN_TIMEOUT`] to finish. A request cut
/// off then loses nothing stored: uploads only ever count bytes already written.
pub async fn serve(listener: TcpListener, app: Router) -> io::Result<()> {
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signalled = stopping.clone();
    // Small answers (manifests, configs) go out as headers and body in two writes; without TCP_NODELAY the second waits
    // for the client's delayed ACK, about 40 ms on a reused connection.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        signalled.notify_one();
    });
    let drained = async {
        stopping.notified().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        served = server => served?,
        () = drained => tracing::warn!(timeout = ?DRAIN_TIMEOUT, "requests still in flight at shutdown were cut off"),
    }
    tracing::info!("berth registry stopped");
    Ok(())
}

/// How long a stopping server waits for requests in flight; a stalled client must not keep it alive.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
