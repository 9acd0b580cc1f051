//! HTTP client for a running registry: the OCI listing and manifest calls and Berth's management API, with paging
//! followed, every response checked, and one error type that says what went wrong where.

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth::oci::{Digest, Reference, RepositoryName, Tag};
use reqwest::header::{ACCEPT, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::auth::{self, Challenge, Credentials, TokenAnswer, TokenCache};

/// Every manifest kind the registry stores, so a HEAD resolves a tag whatever it points at.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
const CONTENT_DIGEST: &str = "docker-content-digest";
/// A registry that accepts the connection answers listings well within this; a hung one must not hang the shell.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Unix milliseconds of 10000-01-01: RFC 3339 has four-digit years, and humantime fails to format later times.
const MAX_PUSHED_AT_MILLIS: u64 = 253_402_300_800_000;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP exchange failed: connection refused, unresolvable host, TLS failure, timeout, a body cut off.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: Url, reason: String },
    /// The registry refused with the spec's error body.
    #[error("{}", describe(.0))]
    Registry(Vec<ApiError>),
    /// The registry answered something this client cannot use: an error status without an error body, a body that
    /// is not the expected JSON, a missing header.
    #[error("unexpected response from {url}: {what}")]
    Unexpected { url: Url, what: String },
}

/// One entry of the `{"errors": [...]}` body registries send with a 4xx/5xx status.
#[derive(Debug, Deserialize)]
pub struct ApiError {
    code: String,
    #[serde(default)]
    message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

fn describe(errors: &[ApiError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ApiError>,
}

/// A manifest as `GET /berth/v1/repositories/<name>/manifests` lists it. It serializes with the API's field names,
/// except that the push time is RFC 3339 rather than Unix milliseconds, for people and scripts alike.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSummary {
    pub digest: String,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub size: u64,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(deserialize_with = "unix_millis", serialize_with = "crate::output::serialize_rfc3339")]
    pub pushed_at: SystemTime,
    /// The vulnerability scan, where the registry scans what is pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanColumn>,
}

/// A manifest's scan in a listing: its status and its findings by severity.
#[derive(Debug, Deserialize, Serialize)]
pub struct ScanColumn {
    pub status: String,
    #[serde(flatten)]
    pub findings: SeverityCounts,
}

/// How many findings of each severity a scan has, as the API counts them.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct SeverityCounts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub unknown: u64,
}

impl ScanColumn {
    /// `pending`, `failed`, `none`, or the non-zero counts, most severe first (`1 critical, 4 unknown`).
    pub fn describe(&self) -> String {
        if self.status != "done" {
            return self.status.clone();
        }
        let SeverityCounts { critical, high, medium, low, unknown } = self.findings;
        let counts = [("critical", critical), ("high", high), ("medium", medium), ("low", low), ("unknown", unknown)];
        let found: Vec<String> =
            counts.iter().filter(|(_, count)| *count > 0).map(|(severity, count)| format!("{count} {severity}")).collect();
        if found.is_empty() { "none".to_owned() } else { found.join(", ") }
    }
}

// Listings are optional because some registries send `null` rather than an empty list.
#[derive(Deserialize)]
struct Catalog {
    repositories: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ManifestListing {
    manifests: Vec<ManifestSummary>,
}

/// Parses `--registry`: an http(s) URL with a host; the API paths are absolute, so any path it has is ignored.
pub fn parse_registry_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{e} (expected e.g. http://127.0.0.1:5000)"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err("expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:5000".to_owned());
    }
    Ok(url)
}

/// `GET /oauth2/exchange`'s answer.
#[derive(Debug, Deserialize)]
pub struct ExchangeOptions {
    pub aws_iam: Option<AwsIamOptions>,
}

/// Where a registry checks AWS logins: proofs are signed for this STS endpoint and region, for this registry.
#[derive(Debug, Deserialize)]
pub struct AwsIamOptions {
    pub sts_endpoint: String,
    pub region: String,
    pub registry: String,
}

pub struct RegistryClient {
    base: Url,
    http: reqwest::Client,
    /// What the client logs in with when the registry asks: the credentials docker's configuration holds for it.
    credentials: Option<Credentials>,
    tokens: TokenCache,
}

impl RegistryClient {
    /// A client for `base` with the credentials `berth login` (or `docker login`) stored for it.
    pub fn new(base: Url) -> Self {
        let credentials = auth::stored(&base);
        Self::with_credentials(base, credentials)
    }

    pub fn with_credentials(base: Url, credentials: Option<Credentials>) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            // Building fails only when the TLS backend cannot start, a broken build rather than a runtime condition
            // (reqwest's own `Client::new` panics on it too).
            .expect("the HTTP client starts");
        Self { base, http, credentials, tokens: TokenCache::default() }
    }

    /// Asks the registry's token endpoint (found through the challenge of `GET /v2/`) for a token with `scopes`,
    /// with a refresh token when `offline`: what a login is.
    pub async fn request_token(&self, scopes: &[&str], offline: bool) -> Result<TokenAnswer, ClientError> {
        let url = self.url("/v2/");
        let response = self.http.get(url.clone()).send().await.map_err(|e| transport_error(&url, e))?;
        let challenge = challenge_of(&response).ok_or_else(|| unexpected(&url, "the registry asks for no token (no Bearer challenge)"))?;
        self.fetch_token(&challenge, scopes, offline).await
    }

    /// Exchanges an identity proof (`form`: an OIDC ID token, a signed sts:GetCallerIdentity) for a refresh token at
    /// the token function's `/oauth2/exchange`.
    pub async fn exchange(&self, form: &[(&str, &str)]) -> Result<String, ClientError> {
        let url = self.url("/oauth2/exchange");
        let response = self.http.post(url.clone()).form(form).send().await.map_err(|e| transport_error(&url, e))?;
        let answer: TokenAnswer = json(url.clone(), check(url.clone(), response).await?).await?;
        answer.refresh_token.ok_or_else(|| unexpected(&url, "no refresh_token in the answer"))
    }

    /// Which identity proofs the registry's exchange takes, and where AWS proofs are signed for.
    pub async fn exchange_options(&self) -> Result<ExchangeOptions, ClientError> {
        let url = self.url("/oauth2/exchange");
        let response = self.http.get(url.clone()).send().await.map_err(|e| transport_error(&url, e))?;
        json(url.clone(), check(url, response).await?).await
    }

    async fn fetch_token(&self, challenge: &Challenge, scopes: &[&str], offline: bool) -> Result<TokenAnswer, ClientError> {
        let realm = Url::parse(&challenge.realm).map_err(|e| unexpected(&self.base, format!("bad realm {}: {e}", challenge.realm)))?;
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(service) = &challenge.service {
            query.push(("service", service));
        }
        query.extend(scopes.iter().map(|scope| ("scope", *scope)));
        if offline {
            query.push(("offline_token", "true"));
        }
        query.push(("client_id", "berth"));
        let mut request = self.http.get(realm.clone()).query(&query);
        if let Some(credentials) = &self.credentials {
            request = request.basic_auth(&credentials.username, Some(&credentials.password));
        }
        let response = check(realm.clone(), request.send().await.map_err(|e| transport_error(&realm, e))?).await?;
        json(realm, response).await
    }

    /// Sends the request `build` makes, and once more with a token when the registry answers with a challenge.
    async fn execute(&self, url: &Url, build: impl Fn() -> reqwest::RequestBuilder) -> Result<Response, ClientError> {
        let response = build().send().await.map_err(|e| transport_error(url, e))?;
        let Some(challenge) = (response.status() == StatusCode::UNAUTHORIZED).then(|| challenge_of(&response)).flatten() else {
            return Ok(response);
        };
        let token = match self.tokens.get(&challenge) {
            Some(token) => token,
            None => {
                let scopes: Vec<&str> = challenge.scope.as_deref().into_iter().collect();
                let answer = self.fetch_token(&challenge, &scopes, false).await?;
                let token = answer.access().ok_or_else(|| unexpected(url, "the token endpoint sent no token"))?.to_owned();
                self.tokens.put(&challenge, token.clone());
                token
            }
        };
        build().bearer_auth(token).send().await.map_err(|e| transport_error(url, e))
    }

    /// A call of the management API: `body` as JSON, the answer's JSON (`null` for none).
    pub async fn manage(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut url = self.url(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let response = self
            .execute(&url, || {
                let request = self.http.request(method.clone(), url.clone());
                match body {
                    Some(body) => request.json(body),
                    None => request,
                }
            })
            .await?;
        let response = check(url.clone(), response).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(serde_json::Value::Null);
        }
        json(url, response).await
    }

    /// A call of the management API whose body is the file at `body`, of `content_type`, streamed from disk (and
    /// read again if the call is repeated with a token); the answer's JSON.
    pub async fn manage_file(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &std::path::Path,
    ) -> Result<serde_json::Value, ClientError> {
        let url = self.url(path);
        let response = self
            .execute(&url, || {
                let stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>> =
                    match std::fs::File::open(body) {
                        Ok(file) => Box::pin(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file))),
                        Err(error) => Box::pin(futures_util::stream::once(async move { Err(error) })),
                    };
                self.http
                    .request(method.clone(), url.clone())
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(reqwest::Body::wrap_stream(stream))
            })
            .await?;
        let response = check(url.clone(), response).await?;
        json(url, response).await
    }

    /// Every repository, following the catalog's pages; `page_size` asks for that many per request.
    pub async fn repositories(&self, page_size: Option<NonZeroUsize>) -> Result<Vec<String>, ClientError> {
        self.paged(self.paged_url("/v2/_catalog", page_size), |page: Catalog| page.repositories.unwrap_or_default()).await
    }

    /// Every tag of `name`, following the tag list's pages.
    pub async fn tags(&self, name: &RepositoryName, page_size: Option<NonZeroUsize>) -> Result<Vec<String>, ClientError> {
        let first = self.paged_url(&format!("/v2/{name}/tags/list"), page_size);
        self.paged(first, |page: TagList| page.tags.unwrap_or_default()).await
    }

    /// Every manifest of `name`, following the listing's pages.
    pub async fn manifests(&self, name: &RepositoryName, page_size: Option<NonZeroUsize>) -> Result<Vec<ManifestSummary>, ClientError> {
        let first = self.paged_url(&format!("/berth/v1/repositories/{name}/manifests"), page_size);
        self.paged(first, |page: ManifestListing| page.manifests).await
    }

    /// The digest `tag` points at, from `Docker-Content-Digest` of a HEAD.
    pub async fn resolve_tag(&self, name: &RepositoryName, tag: &Tag) -> Result<Digest, ClientError> {
        let url = self.url(&format!("/v2/{name}/manifests/{tag}"));
        let response = self.execute(&url, || self.http.head(url.clone()).header(ACCEPT, MANIFEST_ACCEPT)).await?;
        // A HEAD answer has no body to carry the error, so a 404 is reported with the code a GET would bring.
        if response.status() == StatusCode::NOT_FOUND {
            return Err(ClientError::Registry(vec![ApiError {
                code: "MANIFEST_UNKNOWN".to_owned(),
                message: format!("manifest unknown: {name}:{tag}"),
            }]));
        }
        let response = check(url.clone(), response).await?;
        let header = response.headers().get(CONTENT_DIGEST).and_then(|value| value.to_str().ok());
        let header = header.ok_or_else(|| unexpected(&url, "no Docker-Content-Digest header"))?;
        Digest::parse(header).map_err(|e| unexpected(&url, e))
    }

    /// By tag removes only the tag; by digest the manifest and every tag pointing at it.
    pub async fn delete_manifest(&self, name: &RepositoryName, reference: &Reference) -> Result<(), ClientError> {
        self.send(Method::DELETE, self.url(&format!("/v2/{name}/manifests/{reference}"))).await?;
        Ok(())
    }

    pub async fn delete_repository(&self, name: &RepositoryName) -> Result<(), ClientError> {
        self.send(Method::DELETE, self.url(&format!("/berth/v1/repositories/{name}"))).await?;
        Ok(())
    }

    /// `path` on the registry. Callers build paths from validated names, tags and digests, which need no escaping.
    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    fn paged_url(&self, path: &str, page_size: Option<NonZeroUsize>) -> Url {
        let mut url = self.url(path);
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        url
    }

    /// Fetches `first` and every page its `Link: <...>; rel="next"` headers lead to, concatenating their entries.
    async fn paged<P: DeserializeOwned, T>(&self, first: Url, entries: impl Fn(P) -> Vec<T>) -> Result<Vec<T>, ClientError> {
        let mut all = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let response = self.send(Method::GET, url.clone()).await?;
            next = next_page(&url, response.headers())?;
            // A registry that links a page to itself would keep this loop going forever.
            if next.as_ref() == Some(&url) {
                return Err(unexpected(&url, "the Link header points at the same page"));
            }
            all.extend(entries(json(url, response).await?));
        }
        Ok(all)
    }

    async fn send(&self, method: Method, url: Url) -> Result<Response, ClientError> {
        let response = self.execute(&url, || self.http.request(method.clone(), url.clone())).await?;
        check(url, response).await
    }
}

/// The Bearer challenge of a 401.
fn challenge_of(response: &Response) -> Option<Challenge> {
    response.headers().get(WWW_AUTHENTICATE).and_then(|value| value.to_str().ok()).and_then(Challenge::parse)
}

/// Passes a success through; turns an error status into the registry's errors, or into `Unexpected` without them.
async fn check(url: Url, response: Response) -> Result<Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { errors }) if !errors.is_empty() => Err(ClientError::Registry(errors)),
        _ => Err(unexpected(&url, format!("HTTP {status}"))),
    }
}

async fn json<T: DeserializeOwned>(url: Url, response: Response) -> Result<T, ClientError> {
    let body = response.bytes().await.map_err(|e| transport_error(&url, e))?;
    serde_json::from_slice(&body).map_err(|e| unexpected(&url, format!("the body is not the expected JSON: {e}")))
}

/// The `rel="next"` target of a `Link` header, resolved against the page that carried it.
fn next_page(current: &Url, headers: &HeaderMap) -> Result<Option<Url>, ClientError> {
    let Some(header) = headers.get(LINK) else {
        return Ok(None);
    };
    let text = header.to_str().map_err(|_| unexpected(current, "the Link header is not ASCII"))?;
    match next_link(text) {
        Some(target) => current.join(target).map(Some).map_err(|e| unexpected(current, format!("bad Link target {target}: {e}"))),
        None => Ok(None),
    }
}

/// The target of the `rel="next"` link in a `Link` header value (RFC 8288), if there is one.
fn next_link(header: &str) -> Option<&str> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        let is_next = params.split(';').filter_map(|param| param.trim().split_once('=')).any(|(key, value)| {
            key.trim().eq_ignore_ascii_case("rel")
                && value.trim().trim_matches('"').split_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        is_next.then_some(target)
    })
}

/// Connection-level failures name the URL; the root cause ("Connection refused") says more than reqwest's wrapper.
fn transport_error(url: &Url, error: reqwest::Error) -> ClientError {
    ClientError::Unreachable { url: url.clone(), reason: root_cause(&error) }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

fn unexpected(url: &Url, what: impl ToString) -> ClientError {
    ClientError::Unexpected { url: url.clone(), what: what.to_string() }
}

fn unix_millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
    let millis = u64::deserialize(deserializer)?;
    if millis >= MAX_PUSHED_AT_MILLIS {
        return Err(serde::de::Error::custom(format!("pushedAt {millis} is after the year 9999")));
    }
    Ok(UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link() {
        assert_eq!(next_link(r#"</v2/_catalog?n=2&last=b>; rel="next""#), Some("/v2/_catalog?n=2&last=b"));
        assert_eq!(
            next_link(r#"<https://x/prev>; rel="prev", </v2/a/tags/list?n=1&last=v1>;rel=next"#),
            Some("/v2/a/tags/list?n=1&last=v1")
        );
        assert_eq!(next_link(r#"</p>; title="x"; rel="first next""#), Some("/p"));
        assert_eq!(next_link(r#"</p>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn next_page_resolves_against_the_current_url() {
        let current = Url::parse("http://127.0.0.1:5000/v2/_catalog?n=2").unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(next_page(&current, &headers).unwrap(), None);
        headers.insert(LINK, r#"</v2/_catalog?n=2&last=a/b>; rel="next""#.parse().unwrap());
        assert_eq!(next_page(&current, &headers).unwrap().unwrap().as_str(), "http://127.0.0.1:5000/v2/_catalog?n=2&last=a/b");
    }

    #[test]
    fn manifest_summaries_read_unix_millis_and_write_rfc3339() {
        let api = r#"{"digest":"sha256:ab","mediaType":"m","size":3,"tags":["v1"],"pushedAt":1700000000123}"#;
        let summary: ManifestSummary = serde_json::from_str(api).unwrap();
        let printed = serde_json::to_value(&summary).unwrap();
        assert_eq!(printed["pushedAt"], "2023-11-14T22:13:20.123Z");
        assert_eq!(printed["tags"][0], "v1");
        assert!(printed.get("artifactType").is_none());
        let too_late = api.replace("1700000000123", &MAX_PUSHED_AT_MILLIS.to_string());
        assert!(serde_json::from_str::<ManifestSummary>(&too_late).is_err());
    }

    #[test]
    fn registry_urls_must_be_http() {
        assert!(parse_registry_url("http://127.0.0.1:5000").is_ok());
        assert!(parse_registry_url("https://registry.example").is_ok());
        assert!(parse_registry_url("127.0.0.1:5000").is_err());
        assert!(parse_registry_url("localhost:5000").is_err());
        assert!(parse_registry_url("ftp://x").is_err());
    }

    #[test]
    fn registry_errors_print_code_and_message() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository","detail":null}]}"#).unwrap();
        assert_eq!(ClientError::Registry(body.errors).to_string(), "NAME_UNKNOWN: no such repository");
    }
}
