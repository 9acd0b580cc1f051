//! Request bodies as handlers see them: every body fails once its client sends nothing for [`BODY_IDLE_TIMEOUT`] (a
//! stalled client must not hold a request), and what a handler left unread is read before its reply goes out: a reply
//! sent while the client still sends makes the kernel reset the connection once it is closed with bytes unread, and the
//! client would see a broken pipe instead of the error (an out-of-order chunk's 416, an unknown session's 404).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderValue, header},
    response::Response,
};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body::{Frame, SizeHint};

/// How long a request body may send nothing before the request fails.
pub(super) const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The most a reply reads of what is left. Some clients send a whole blob before they authenticate (oras-py PUTs
/// it, gets the 401, then sends it again with a token): a reply that closes the connection mid-body reaches them as
/// a proxy's 502 (nginx, CloudFront) instead of the 401, so the upload service reads on, within [`DRAIN_TIMEOUT`],
/// which is what bounds a caller that sends and sends.
const DRAIN_LIMIT: usize = 1 << 30;
/// How long a reply waits for the rest of a body, so a stalled or endless client cannot hold it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a request body the handler dropped unfinished comes back to.
pub(super) struct Leftover(Arc<Mutex<Option<Body>>>);

/// The body handed to the handler, and where it returns if the handler drops it before its end.
pub(super) fn watch(body: Body) -> (Body, Leftover) {
    let slot = Arc::new(Mutex::new(None));
    let idle = Box::pin(tokio::time::sleep(BODY_IDLE_TIMEOUT));
    (Body::new(Watched { inner: Some(body), slot: slot.clone(), idle }), Leftover(slot))
}

struct Watched {
    inner: Option<Body>,
    slot: Arc<Mutex<Option<Body>>>,
    /// Fires when the client has sent nothing for [`BODY_IDLE_TIMEOUT`]; pushed back by every frame.
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(context) {
            Poll::Ready(frame) => {
                self.idle.as_mut().reset(tokio::time::Instant::now() + BODY_IDLE_TIMEOUT);
                Poll::Ready(frame)
            }
            Poll::Pending if self.idle.as_mut().poll(context).is_ready() => {
                // Dropped, not kept for draining: the connection closes with the stalled client.
                self.inner = None;
                let stalled = io::Error::new(io::ErrorKind::TimedOut, format!("the client sent nothing for {BODY_IDLE_TIMEOUT:?}"));
                Poll::Ready(Some(Err(axum::Error::new(stalled))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take().filter(|inner| !http_body::Body::is_end_stream(inner)) {
            *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(inner);
        }
    }
}

impl Leftover {
    /// Reads and discards what the handler left, up to [`DRAIN_LIMIT`] within [`DRAIN_TIMEOUT`]; when more is left,
    /// the reply closes the connection, which is then all that can be done.
    pub(super) async fn drain(self, response: &mut Response) {
        let Some(body) = self.0.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        let read_to_end = tokio::time::timeout(DRAIN_TIMEOUT, async {
            let (mut data, mut read) = (body.into_data_stream(), 0);
            while let Some(chunk) = data.next().await {
                read += chunk.map_err(drop)?.len();
                if read > DRAIN_LIMIT {
                    return Err(());
                }
            }
            Ok(())
        })
        .await;
        if !matches!(read_to_end, Ok(Ok(()))) {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}
