//! Serving a router over plain HTTP (`berth serve`, the functions outside Lambda): HTTP/1.1 with a header-read
//! timeout, TCP_NODELAY, and a graceful stop on SIGTERM or ctrl-c.

use std::{io, time::Duration};

use axum::Router;
use tokio::net::TcpListener;

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
