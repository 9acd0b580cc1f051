//! Serving a router over HTTP or HTTPS (`berth serve`, the functions outside Lambda): HTTP/1.1 with a header-read
//! timeout, TCP_NODELAY, and a graceful stop on SIGTERM or ctrl-c. Each request carries its [`Connection`].

use std::{io, path::Path, sync::Arc, time::Duration};

use axum::{Router, http::Request};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::http::Connection;

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS server configuration from a PEM certificate chain and private key, HTTP/1.1 only.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|error| format!("cannot read certificates from {}: {error}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|error| format!("cannot read a private key from {}: {error}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| format!("the certificate and key do not make a TLS configuration: {error}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client may take to send a request's head (and an idle keep-alive connection may stay open): slow or
/// idle connections must not pile up. Bodies have their own idle timeout (`http::body`).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `app` until SIGTERM or ctrl-c, then gives requests in flight `drain` to finish ([`DRAIN_TIMEOUT`] unless
/// a process has longer, as the upload service does). A request cut off then loses nothing stored: uploads only
/// ever count bytes already written.
pub async fn serve(listener: TcpListener, app: Router, tls: Option<Arc<rustls::ServerConfig>>, drain: Duration) -> io::Result<()> {
    serve_until(listener, app, tls, shutdown_signal(), drain).await
}

/// [`serve`], stopping when `stop` completes.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: impl Future<Output = ()>,
    drain: Duration,
) -> io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
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
        let connection = Connection { peer, tls: acceptor.is_some() };
        let app = app.clone().map_request(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(connection);
            request
        });
        let service = hyper_util::service::TowerToHyperService::new(app);
        match &acceptor {
            None => {
                let served = connections.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(error) = served.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                // The handshake runs on the connection's own task, so a slow client holds up nobody else.
                let (acceptor, http, watcher) = (acceptor.clone(), http.clone(), connections.watcher());
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => return tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    if let Err(error) = watcher.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)).await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tracing::info!(drain = ?drain, "stopping: no new connections, waiting for requests in flight");
    tokio::select! {
        () = connections.shutdown() => {}
        () = tokio::time::sleep(drain) => tracing::warn!(timeout = ?drain, "requests still in flight at shutdown were cut off"),
    }
    tracing::info!("berth registry stopped");
    Ok(())
}

/// How long a stopping server waits for requests in flight by default; a stalled client must not keep it alive.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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
