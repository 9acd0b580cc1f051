//! The HTTP face of the registry: one router whose endpoints are grouped by the Lambda function that serves them.
//!
//! Every request is parsed once into an [`routes::Endpoint`]; the function owning it answers. `berth serve` mounts all
//! functions on one port, a Lambda binary only its own.

mod access;
mod auth;
mod blobs;
mod body;
mod error;
mod manifests;
mod ranges;
pub mod routes;
pub mod scans;
mod token;

use std::{io, net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;

use crate::{
    error::Error,
    identity::{Gate, TokenService, access::Granted},
    registry::{Blobs, Manifests},
    scan::{Scans, policy::PullPolicy},
    store::ByteStream,
    telemetry,
};
use routes::Function;

/// The services one process serves; a service left `None` answers 404 for the endpoints of the function it belongs
/// to. Every process verifies tokens at its [`Gate`]; only the token function's holds the [`TokenService`].
#[derive(Clone)]
pub struct Services {
    pub gate: Arc<Gate>,
    pub tokens: Option<Arc<TokenService>>,
    pub manifests: Option<Arc<Manifests>>,
    pub blobs: Option<Arc<Blobs>>,
    /// Vulnerability scanning, where this process offers its endpoints (`berth serve`).
    pub scans: Option<Arc<Scans>>,
    pub public_url: Option<PublicUrl>,
    /// The values of [`ORIGIN_HEADER`] accepted (the current secret and, during a rotation, the previous one); when
    /// any are set, a request without one did not come through the registry's CloudFront endpoint and is refused.
    pub origin_secrets: Vec<String>,
}

/// The header CloudFront adds to every request it sends the functions (the template's `OriginCustomHeaders`).
pub const ORIGIN_HEADER: &str = "x-berth-origin-secret";

/// Whether `parts` carries one of `secrets` in [`ORIGIN_HEADER`], compared as SHA-256 digests in constant time.
fn from_the_edge(parts: &Parts, secrets: &[String]) -> bool {
    use subtle::ConstantTimeEq;
    let digest = |text: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text);
    let Some(presented) = parts.headers.get(ORIGIN_HEADER).map(|value| digest(value.as_bytes())) else {
        return false;
    };
    secrets.iter().fold(false, |found, secret| found | bool::from(digest(secret.as_bytes()).as_ref().ct_eq(presented.as_ref())))
}

/// How a request reached this process, as the plain-HTTP server records it (absent under Lambda).
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The registry's externally visible base URL (`https://registry.example.com`), for absolute `Location` and `Link`
/// URLs where a proxy hides the host clients use; without it those URLs are relative, which every client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let base = text.trim_end_matches('/');
        let host = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://")).unwrap_or_default();
        let valid = !host.is_empty() && !host.contains(['/', '?', '#']) && HeaderValue::from_str(base).is_ok() && !base.contains(' ');
        if valid { Ok(Self(base.to_owned())) } else { Err(format!("{text} is not an http(s) URL of a host (no path)")) }
    }

    /// The URL of `path` (which starts with `/`) as clients reach it.
    fn url(base: Option<&Self>, path: &str) -> String {
        match base {
            Some(base) => format!("{}{path}", base.0),
            None => path.to_owned(),
        }
    }
}

/// The registry's router, answering every path through [`routes::parse`], each request logged with its cost.
pub fn router(services: Services) -> Router {
    Router::new()
        .route(HEALTH_PATH, axum::routing::get(health))
        .fallback(dispatch)
        .with_state(services)
        .layer(axum::middleware::from_fn(log_request))
}

/// Where a load balancer checks that a process serves (the upload service's target group): answered without
/// credentials or the origin header, and telling nothing but that.
pub const HEALTH_PATH: &str = "/berth/health";

async fn health() -> Response {
    (axum::http::StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response()
}

/// One log line per request, with the function that served it and the backend calls it made; server errors at `warn`,
/// the rest at `debug`.
async fn log_request(request: Request, next: Next) -> Response {
    let (method, path, started) = (request.method().clone(), request.uri().path().to_owned(), Instant::now());
    let (response, calls) = telemetry::count_backend_calls(next.run(request)).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let function = response.extensions().get::<Function>().copied();
    #[cfg(feature = "test-support")]
    if let Some(function) = function {
        telemetry::signed::add(function, calls.signed);
    }
    let calls = calls.sent;
    let backend_calls: u32 = calls.values().sum();
    if response.status().is_server_error() {
        tracing::warn!(%method, %path, ?function, status, elapsed_ms, backend_calls, ?calls, "request failed");
    } else {
        tracing::debug!(%method, %path, ?function, status, elapsed_ms, backend_calls, ?calls, "request");
    }
    response
}

async fn dispatch(State(services): State<Services>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (body, leftover) = body::watch(body);
    let mut call = Call { parts: &parts, public_url: services.public_url.as_ref(), granted: Granted::default(), tls: false };
    call.tls = call.connection().is_some_and(|connection| connection.tls);
    let endpoint = routes::parse(&parts.method, parts.uri.path());
    let function = endpoint.as_ref().ok().map(routes::Endpoint::function);
    let bypassed = !services.origin_secrets.is_empty() && !from_the_edge(&parts, &services.origin_secrets);
    let mut body = Some(body);
    let served = match endpoint {
        _ if bypassed => Err(Error::Denied("requests must come through the registry's endpoint, not the function URL".to_owned())),
        Ok(endpoint) => match auth::authorize(&services.gate, &endpoint, &call).await {
            Ok(granted) => {
                call.granted = granted;
                serve(&services, endpoint, &call, body.take().expect("the body is still here")).await
            }
            Err(challenge) => Ok(challenge),
        },
        Err(error) => Err(error),
    };
    // A refusal before any handler (a challenge, an unknown path) leaves the whole body: it goes to be drained, so
    // a client still sending gets the answer instead of a reset (a 502 from any proxy in front).
    drop(body);
    let mut response = served.unwrap_or_else(IntoResponse::into_response);
    // For the request log, which runs outside the routing.
    if let Some(function) = function {
        response.extensions_mut().insert(function);
    }
    response.headers_mut().insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    leftover.drain(&mut response).await;
    response
}

/// Hands an authorized request to the function that owns its endpoint.
async fn serve(services: &Services, endpoint: routes::Endpoint, call: &Call<'_>, body: Body) -> Result<Response, Error> {
    let path = call.parts.uri.path().to_owned();
    match (endpoint, &services.tokens, &services.manifests, &services.blobs) {
        (routes::Endpoint::Access { method, resource }, Some(tokens), _, _) => access::handle(tokens, method, resource, call, body).await,
        (endpoint @ (routes::Endpoint::ScanReport { .. } | routes::Endpoint::ImportAdvisories), _, Some(manifests), _) => {
            let scans = services.scans.as_deref().ok_or(Error::EndpointUnknown(path))?;
            scans::handle(scans, manifests, endpoint, call, body).await
        }
        (endpoint, tokens, _, _) if endpoint.function() == Function::Token => token::handle(tokens.as_deref(), endpoint, call, body).await,
        (endpoint, _, Some(manifests), _) if endpoint.function() == Function::Manifests => {
            let scans = services.scans.as_deref();
            let policy = scans.map(|scans| PullPolicy { scans, directory: services.gate.directory() });
            manifests::handle(manifests, scans, policy, endpoint, call, body).await
        }
        (endpoint, _, _, Some(blobs)) if endpoint.function() == Function::Blobs => blobs::handle(blobs, endpoint, call, body).await,
        _ => Err(Error::EndpointUnknown(path)),
    }
}

const API_VERSION_HEADER: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");

/// A header value from text Berth built itself (validated names, digests, numbers), which is always visible ASCII.
fn header_value(value: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&value.to_string()).expect("registry-built header values are ASCII")
}

/// The `Range` an upload reports: the inclusive span of bytes received, `0-0` before the first.
pub(crate) fn upload_range(size: u64) -> HeaderValue {
    header_value(format!("0-{}", size.saturating_sub(1)))
}

/// What handlers read of a request besides its endpoint and body: its head, how clients reach the registry, and what
/// the caller's token grants.
struct Call<'a> {
    parts: &'a Parts,
    public_url: Option<&'a PublicUrl>,
    granted: Granted,
    tls: bool,
}

impl Call<'_> {
    fn connection(&self) -> Option<&Connection> {
        self.parts.extensions.get::<Connection>()
    }

    /// The client's address, for rate limits and audit lines: the connection's peer, or behind a proxy (CloudFront
    /// appends the address it saw) the last `X-Forwarded-For` entry.
    fn source(&self) -> String {
        match self.connection() {
            Some(connection) if !connection.peer.ip().is_loopback() || self.header("x-forwarded-for").is_none() => connection.peer.ip().to_string(),
            _ => self.header("x-forwarded-for").and_then(|list| list.rsplit(',').next()).map_or_else(|| "unknown".to_owned(), |last| last.trim().to_owned()),
        }
    }

    fn query(&self, name: &str) -> Option<String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(self.parts.uri.query().unwrap_or_default()).unwrap_or_default();
        pairs.into_iter().find_map(|(key, value)| (key == name).then_some(value))
    }

    fn header(&self, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
        self.parts.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn content_length(&self) -> Result<Option<u64>, Error> {
        self.header(axum::http::header::CONTENT_LENGTH)
            .map(|text| text.parse().map_err(|_| Error::BlobUploadInvalid(format!("bad Content-Length {text}"))))
            .transpose()
    }

    /// The URL of `path` for a `Location` or `Link`.
    fn url(&self, path: &str) -> String {
        PublicUrl::url(self.public_url, path)
    }
}

/// A request body as bytes (failing when the client stalls: see [`body`]).
fn body_stream(body: Body) -> ByteStream {
    Box::pin(body.into_data_stream().map(|chunk| chunk.map_err(io::Error::other)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_bases_of_http_hosts() {
        let base = PublicUrl::parse("https://registry.example.com/").unwrap();
        assert_eq!(PublicUrl::url(Some(&base), "/v2/a/blobs/x"), "https://registry.example.com/v2/a/blobs/x");
        assert_eq!(PublicUrl::url(None, "/v2/a/blobs/x"), "/v2/a/blobs/x");
        assert!(PublicUrl::parse("http://127.0.0.1:5000").is_ok());
        for bad in ["registry.example.com", "ftp://example.com", "https://", "https://example.com/path", "https://exa mple.com"] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}

#[cfg(test)]
mod properties {
    use axum::http::Request;
    use proptest::prelude::*;

    use super::*;

    /// The head of a request for `/v2/_catalog?<query>`, when the query is one a URI may carry.
    fn parts(query: &str) -> Option<Parts> {
        Request::builder().uri(format!("/v2/_catalog?{query}")).body(()).ok().map(|request| request.into_parts().0)
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof!["(n|last|digest|mount|from|artifactType)", "[a-zA-Z_]{1,6}", any::<String>()]
    }

    proptest! {
        /// Whatever a client puts in the query, a parameter reads as its first value, decoded as a form encodes it.
        #[test]
        fn a_parameter_is_its_first_value(pairs in prop::collection::vec((key(), any::<String>()), 0..6), name in key()) {
            let parts = parts(&serde_urlencoded::to_string(&pairs).unwrap()).unwrap();
            let call = Call { parts: &parts, public_url: None, granted: Granted::default(), tls: false };
            let expected = pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| value.clone());
            prop_assert_eq!(call.query(&name), expected);
        }

        /// Malformed escapes, stray `=` and `&`, bytes that decode to no UTF-8: a query never breaks the reading.
        #[test]
        fn any_query_reads_without_panic(query in prop_oneof!["[ -~]{0,40}", "([a-z%=&+;]|%[0-9a-fA-F]{2}|%[fF][0-9a-fA-F]){0,12}"], name in key()) {
            if let Some(parts) = parts(&query) {
                let call = Call { parts: &parts, public_url: None, granted: Granted::default(), tls: false };
                let value = call.query(&name);
                prop_assert!(value.is_none_or(|value| !value.contains('&')) || query.contains("%26"));
            }
        }
    }
}
