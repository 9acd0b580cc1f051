//! In-process HTTP tests of every endpoint, success and error paths, against the router over the embedded store and
//! over the AWS adapters on the emulator: every test runs on both (see `on_both_stores!` at the end).

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
};
use berth::{
    http::{PublicUrl, router, routes::Function},
    identity::{
        ExternalLogins, TokenService,
        access::{Permissions, Scope},
        directory::{Directory, Login, Subject},
        keys::SigningKey,
    },
    oci::{Algorithm, Digest},
    registry::{DEFAULT_MAX_MANIFEST_BYTES, EventBus, RegistryEvent},
    services::{self, AccessControl, Limits as ServiceLimits},
    store::{IdentityRecords, dynamodb::DynamoMetadata, local::EmbeddedStore},
    testing,
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

mod access;
mod iam;
mod scans;

use access::*;
use scans::*;

/// The name of every registry this suite starts.
const REGISTRY: &str = "berth-test";

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Clone, Copy)]
enum Store {
    Embedded,
    Aws,
}

/// What a deployment limits and how it is reached.
#[derive(Clone)]
struct Limits {
    max_manifest_bytes: u64,
    max_request_bytes: Option<u64>,
    public_url: Option<PublicUrl>,
    /// The OIDC issuer whose ID tokens the token service takes.
    external: ExternalLogins,
    scanning: Scanning,
    /// The deployment's tier (`BERTH_SKU`).
    sku: Option<berth::tier::Sku>,
}

/// Whether the registry scans what is pushed to it, as `berth serve` does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scanning {
    Off,
    /// Pushes are queued for a scan, but no worker runs: the queue keeps them.
    QueueOnly,
    /// Pushes are queued and the worker scans them.
    Worker,
    /// Pushes start nothing: the table's stream does, as on AWS, where the test hands its records to the scan
    /// function's handler.
    Stream,
}

const DEFAULT_LIMITS: Limits = Limits {
    max_manifest_bytes: DEFAULT_MAX_MANIFEST_BYTES,
    max_request_bytes: None,
    public_url: None,
    external: ExternalLogins { oidc: None, sts_endpoint: None },
    scanning: Scanning::Off,
    sku: None,
};

struct Api {
    router: Router,
    /// The registry's token service, for tests that log in or mint tokens of their own.
    tokens: Arc<TokenService>,
    /// The emulator's bucket behind the AWS store, to read what it holds directly.
    bucket: Option<(aws_sdk_s3::Client, String)>,
    /// The emulator's table behind the AWS store, whose stream the scan function reads.
    table: Option<String>,
    events: Arc<EventBus>,
    /// For blob downloads redirected to the emulator.
    redirects: reqwest::Client,
    /// The scanning service, when the registry scans (`Limits::scanning`), and how many blob reads it made.
    scans: Option<(Arc<berth::scan::Scans>, Arc<scans::CountingBlobs>)>,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Whether the registry answered with a redirect (followed to the backend).
    redirected: bool,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers)).to_str().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an OCI error reply: status, code, and the spec's body shape.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", String::from_utf8_lossy(&self.body));
        let body = self.json();
        assert_eq!(body["errors"][0]["code"], code, "body: {body}");
        assert!(body["errors"][0]["message"].is_string());
    }
}

impl Api {
    async fn new(store: Store) -> Self {
        Self::with_limits(store, DEFAULT_LIMITS).await
    }

    async fn with_limits(store: Store, limits: Limits) -> Self {
        Self::in_dir(store, limits, tempfile::tempdir().unwrap()).await
    }

    /// A registry keeping its embedded store in `dir` (which may hold one from before: a restart).
    async fn in_dir(store: Store, limits: Limits, dir: tempfile::TempDir) -> Self {
        let events = Arc::new(EventBus::new(64));
        let mut scans = None;
        let (mut bucket, mut table) = (None, None);
        let service_limits = ServiceLimits { max_manifest_bytes: limits.max_manifest_bytes, max_request_bytes: limits.max_request_bytes };
        let public_url = limits.public_url.clone();
        let access = |records: Arc<dyn IdentityRecords>| {
            let key = SigningKey::from_seed(uuid::Uuid::new_v4().as_bytes().repeat(2).as_slice()).unwrap();
            let directory = Directory::new(records, REGISTRY.to_owned(), None).with_default_sku(limits.sku);
            AccessControl::issuing(TokenService::new(directory, key, &limits.external))
        };
        let services = match store {
            Store::Embedded => {
                let store = EmbeddedStore::open(dir.path()).await.unwrap();
                let sink = scans::sink(limits.scanning, &mut scans, store.blobs.clone(), store.metadata.clone(), events.clone());
                services::over_embedded(&store, service_limits, sink, public_url, access(store.metadata.clone()))
            }
            Store::Aws => {
                let stream = if limits.scanning == Scanning::Stream {
                    berth::store::resources::TableStream::FromTemplate
                } else {
                    berth::store::resources::TableStream::Off
                };
                let settings = testing::fresh_aws_resources_with(stream).await;
                let (s3, dynamodb) = berth::store::aws::clients_from(&testing::emulator_config());
                bucket = Some((s3.clone(), settings.bucket.clone()));
                table = Some(settings.table.clone());
                let serve = [Function::Manifests, Function::Blobs];
                let access = access(Arc::new(DynamoMetadata::new(dynamodb.clone(), &settings.table)));
                let (blobs, metadata) = berth::store::aws::stores(s3.clone(), dynamodb.clone(), &settings);
                let sink = scans::sink(limits.scanning, &mut scans, Arc::new(blobs), Arc::new(metadata), events.clone());
                services::over_aws(&settings, s3, dynamodb, &serve, service_limits, sink, public_url, access)
            }
        };
        let mut services = services;
        services.scans = scans.as_ref().map(|(scans, _)| scans.clone());
        let tokens = services.tokens.clone().expect("the suite's registry issues tokens");
        Self { router: router(services), tokens, bucket, table, events, redirects: reqwest::Client::new(), scans, _dir: dir }
    }

    /// A token for every action on the repositories `path` (and a mount's `from=`) names, the catalog and management:
    /// what an owner's client would have asked for.
    fn owner_token(&self, path: &str) -> String {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let mut scopes = vec!["registry:catalog:*".to_owned(), "registry:manage:*".to_owned()];
        let repository = route.strip_prefix("/v2/").or_else(|| route.strip_prefix("/berth/v1/repositories/")).map(|rest| {
            // The rightmost keyword ends the name, which may itself hold `blobs` or `manifests` segments.
            let end = ["/blobs/", "/manifests/", "/tags/", "/referrers/", "/scans/"].iter().filter_map(|keyword| rest.rfind(keyword)).max();
            end.or_else(|| rest.strip_suffix("/manifests").map(str::len)).map_or(rest, |at| &rest[..at])
        });
        scopes.extend(repository.map(|name| format!("repository:{name}:*")));
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        scopes.extend(pairs.iter().filter(|(key, _)| key == "from").map(|(_, from)| format!("repository:{from}:pull")));
        let owner = Login { subject: Subject::Admin, permissions: Permissions::everything(), credential: None };
        self.tokens.grant(&owner, &Scope::parse_all(scopes.iter().map(String::as_str)), false).access.token
    }

    /// Sends a request as the registry's owner would (with a token for everything it touches), unless `headers`
    /// carry an `Authorization` of their own.
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
        if headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("authorization")) || path.starts_with("/token") {
            return self.send_raw(method, path, headers, body).await;
        }
        let authorization = format!("Bearer {}", self.owner_token(path));
        let mut with_token = headers.to_vec();
        with_token.push(("authorization", &authorization));
        self.send_raw(method, path, &with_token, body).await
    }

    /// Sends a request with exactly `headers`.
    async fn send_raw(&self, method: Method, path: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.router.clone().oneshot(request.body(body.into()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        assert!(!parts.status.is_server_error(), "{path} answered {}: {}", parts.status, String::from_utf8_lossy(&body));
        assert_eq!(parts.headers["docker-distribution-api-version"], "registry/2.0");
        if parts.status == StatusCode::TEMPORARY_REDIRECT {
            let range = headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("range")).map(|(_, value)| *value);
            return self.follow(&parts.headers, range).await;
        }
        Reply { status: parts.status, headers: parts.headers, body, redirected: false }
    }

    /// Follows a blob download's redirect to the backend with the request's `Range`, as every client does. The reply
    /// keeps the registry's headers, but for the backend's `Content-Range`.
    async fn follow(&self, headers: &HeaderMap, range: Option<&str>) -> Reply {
        let location = headers["location"].to_str().unwrap();
        let mut request = self.redirects.get(location);
        if let Some(range) = range {
            request = request.header("range", range);
        }
        let fetched = request.send().await.unwrap();
        let status = StatusCode::from_u16(fetched.status().as_u16()).unwrap();
        let mut headers = headers.clone();
        if let Some(content_range) = fetched.headers().get("content-range") {
            headers.insert("content-range", content_range.to_str().unwrap().parse().unwrap());
        }
        Reply { status, headers, body: fetched.bytes().await.unwrap().to_vec(), redirected: true }
    }

    /// Every blob the store holds, read straight from the backend: the digest its key names, and its bytes.
    async fn stored_blobs(&self) -> Vec<(String, Vec<u8>)> {
        let Some((s3, bucket)) = &self.bucket else {
            let mut found = Vec::new();
            for algorithm in std::fs::read_dir(self._dir.path().join("blobs")).unwrap() {
                let algorithm = algorithm.unwrap();
                for fan_out in std::fs::read_dir(algorithm.path()).unwrap() {
                    for blob in std::fs::read_dir(fan_out.unwrap().path()).unwrap() {
                        let blob = blob.unwrap();
                        let name = format!("{}:{}", algorithm.file_name().to_string_lossy(), blob.file_name().to_string_lossy());
                        found.push((name, std::fs::read(blob.path()).unwrap()));
                    }
                }
            }
            return found;
        };
        let mut found = Vec::new();
        let mut pages = s3.list_objects_v2().bucket(bucket).prefix("blobs/").into_paginator().send();
        while let Some(page) = pages.next().await {
            for object in page.unwrap().contents.unwrap_or_default() {
                let key = object.key.unwrap();
                let parts: Vec<&str> = key.split('/').collect();
                let bytes = s3.get_object().bucket(bucket).key(&key).send().await.unwrap().body.collect().await.unwrap();
                found.push((format!("{}:{}", parts[1], parts[3]), bytes.into_bytes().to_vec()));
            }
        }
        found
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], Body::empty()).await
    }

    /// Pushes a blob in one request and returns its digest.
    async fn push_blob(&self, name: &str, content: &[u8]) -> Digest {
        let digest = sha256(content);
        let reply = self.send(Method::POST, &format!("/v2/{name}/blobs/uploads/?digest={digest}"), &[], content.to_vec()).await;
        assert_eq!(reply.status, StatusCode::CREATED);
        digest
    }

    async fn put_manifest(&self, name: &str, reference: &str, media_type: &str, manifest: &[u8]) -> Reply {
        self.send(Method::PUT, &format!("/v2/{name}/manifests/{reference}"), &[("content-type", media_type)], manifest.to_vec()).await
    }

    /// Pushes config and layer blobs and an OCI manifest referencing them under `tag`; returns the manifest's bytes.
    async fn push_image(&self, name: &str, tag: &str, layer: &[u8]) -> Vec<u8> {
        let manifest = image_manifest(&self.push_blob(name, b"{}").await, &self.push_blob(name, layer).await, layer.len());
        let reply = self.put_manifest(name, tag, OCI_MANIFEST, &manifest).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&reply.body));
        manifest
    }

    /// Pushes, by digest, an artifact of `artifact_type` whose subject is the manifest `subject`; `note` tells artifacts
    /// apart. Returns its digest.
    async fn push_referrer(&self, name: &str, subject: &[u8], artifact_type: &str, note: &str) -> Digest {
        let (config, layer) = (self.push_blob(name, b"{}").await, self.push_blob(name, note.as_bytes()).await);
        let artifact = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config.to_string(), "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": layer.to_string(), "size": note.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(subject).to_string(), "size": subject.len()}}))
        .unwrap();
        let digest = sha256(&artifact);
        assert_eq!(self.put_manifest(name, &digest.to_string(), OCI_MANIFEST, &artifact).await.status, StatusCode::CREATED);
        digest
    }

    /// Gets `first` and each page its `Link: <...>; rel="next"` leads to, to the end; every reply, in order.
    async fn pages(&self, first: &str) -> Vec<Reply> {
        let mut pages: Vec<Reply> = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(path) = next {
            assert!(pages.len() < 100, "the Link chain from {first} does not end");
            let page = self.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&page.body));
            next = page.headers.get("link").map(|link| {
                let link = link.to_str().unwrap();
                link.strip_prefix('<')
                    .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
                    .unwrap_or_else(|| panic!("Link: {link}"))
                    .to_owned()
            });
            pages.push(page);
        }
        pages
    }

    /// Opens an upload session and returns its `Location`.
    async fn start_upload(&self, name: &str) -> String {
        let reply = self.send(Method::POST, &format!("/v2/{name}/blobs/uploads/"), &[], Body::empty()).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.header("range"), "0-0");
        assert!(!reply.header("docker-upload-uuid").is_empty());
        reply.header("location").to_owned()
    }

    /// Stops this registry, keeping its data directory for another to open.
    fn into_dir(self) -> tempfile::TempDir {
        self._dir
    }

    /// Serves the router on a real socket of loopback, as `berth serve` and the containers do.
    async fn listen(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(berth::server::serve_until(listener, self.router.clone(), None, std::future::pending(), berth::server::DRAIN_TIMEOUT));
        addr
    }
}

fn sha256(content: &[u8]) -> Digest {
    Digest::of(Algorithm::Sha256, content)
}

fn image_manifest(config: &Digest, layer: &Digest, layer_size: usize) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": layer_size}]
    }))
    .unwrap()
}

async fn version_check_answers_200(store: Store) {
    let api = Api::new(store).await;
    let reply = api.get("/v2/").await;
    assert_eq!(reply.status, StatusCode::OK);
}

async fn locations_use_the_public_url_when_configured(store: Store) {
    let public_url = Some(PublicUrl::parse("https://registry.example.com").unwrap());
    let api = Api::with_limits(store, Limits { public_url, ..DEFAULT_LIMITS }).await;
    let started = api.send(Method::POST, "/v2/public/blobs/uploads/", &[], Body::empty()).await;
    let location = started.header("location").to_owned();
    assert!(location.starts_with("https://registry.example.com/v2/public/blobs/uploads/"), "{location}");
    let path = location.trim_start_matches("https://registry.example.com");
    let digest = sha256(b"public");
    let closed = api.send(Method::PUT, &format!("{path}?digest={digest}"), &[], &b"public"[..]).await;
    assert_eq!(closed.header("location"), format!("https://registry.example.com/v2/public/blobs/{digest}"));
    api.push_image("public", "a", b"layer").await;
    api.push_image("public", "b", b"layer").await;
    assert_eq!(
        api.get("/v2/public/tags/list?n=1").await.header("link"),
        "<https://registry.example.com/v2/public/tags/list?n=1&last=a>; rel=\"next\""
    );
}

async fn monolithic_upload_then_download_with_ranges(store: Store) {
    let api = Api::new(store).await;
    let content = b"0123456789abcdef";
    let digest = sha256(content);
    let reply = api.send(Method::POST, &format!("/v2/lib/app/blobs/uploads/?digest={digest}"), &[], content.to_vec()).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("location"), format!("/v2/lib/app/blobs/{digest}"));
    assert_eq!(reply.header("docker-content-digest"), digest.to_string());

    let whole = api.get(&format!("/v2/lib/app/blobs/{digest}")).await;
    assert_eq!((whole.status, whole.body.as_slice()), (StatusCode::OK, &content[..]));
    assert_eq!(whole.header("docker-content-digest"), digest.to_string());

    let head = api.send(Method::HEAD, &format!("/v2/lib/app/blobs/{digest}"), &[], Body::empty()).await;
    assert_eq!((head.status, head.header("content-length"), head.body.len()), (StatusCode::OK, "16", 0));

    let part = api.send(Method::GET, &format!("/v2/lib/app/blobs/{digest}"), &[("range", "bytes=4-9")], Body::empty()).await;
    assert_eq!((part.status, part.body.as_slice()), (StatusCode::PARTIAL_CONTENT, &b"456789"[..]));
    assert_eq!(part.header("content-range"), "bytes 4-9/16");
    // Where the backend serves downloads itself, ranged ones go there too: no blob byte passes through the registry.
    assert_eq!((whole.redirected, part.redirected), (matches!(store, Store::Aws), matches!(store, Store::Aws)));

    let beyond = api.send(Method::GET, &format!("/v2/lib/app/blobs/{digest}"), &[("range", "bytes=16-")], Body::empty()).await;
    beyond.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "UNSUPPORTED");
    assert_eq!(beyond.header("content-range"), "bytes */16");
}

async fn chunked_upload_in_order_with_status_and_final_chunk(store: Store) {
    let api = Api::new(store).await;
    let location = api.start_upload("chunked").await;

    let first = api.send(Method::PATCH, &location, &[("content-range", "0-4"), ("content-length", "5")], &b"hello"[..]).await;
    assert_eq!((first.status, first.header("range")), (StatusCode::ACCEPTED, "0-4"));
    let location = first.header("location").to_owned();

    let out_of_order = api.send(Method::PATCH, &location, &[("content-range", "7-9"), ("content-length", "3")], &b"xyz"[..]).await;
    out_of_order.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID");
    assert_eq!(out_of_order.header("range"), "0-4");

    let status = api.get(&location).await;
    assert_eq!((status.status, status.header("range")), (StatusCode::NO_CONTENT, "0-4"));

    let digest = sha256(b"hello world");
    let closed = api
        .send(Method::PUT, &format!("{location}?digest={digest}"), &[("content-range", "5-10"), ("content-length", "6")], &b" world"[..])
        .await;
    assert_eq!(closed.status, StatusCode::CREATED);
    assert_eq!(closed.header("docker-content-digest"), digest.to_string());
    assert_eq!(api.get(&format!("/v2/chunked/blobs/{digest}")).await.body, b"hello world");
    api.get(&location).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

async fn streamed_patch_without_content_range_then_empty_put(store: Store) {
    let api = Api::new(store).await;
    let location = api.start_upload("streamed").await;
    let content = vec![7u8; 3 << 20];
    let patched = api.send(Method::PATCH, &location, &[], content.clone()).await;
    assert_eq!((patched.status, patched.header("range")), (StatusCode::ACCEPTED, "0-3145727"));
    let digest = sha256(&content);
    let closed = api.send(Method::PUT, &format!("{location}?digest={digest}"), &[("content-length", "0")], Body::empty()).await;
    assert_eq!(closed.status, StatusCode::CREATED);
    assert_eq!(api.get(&format!("/v2/streamed/blobs/{digest}")).await.body, content);
}

async fn sha512_digests_work_for_blobs_and_manifests(store: Store) {
    let api = Api::new(store).await;
    let content = b"sha512 content";
    let digest = Digest::of(Algorithm::Sha512, content);
    let whole = api.send(Method::POST, &format!("/v2/five12/blobs/uploads/?digest={digest}"), &[], content.to_vec()).await;
    assert_eq!(whole.status, StatusCode::CREATED);
    assert_eq!(api.get(&format!("/v2/five12/blobs/{digest}")).await.body, content);

    let location = api.start_upload("five12").await;
    let other = b"chunked sha512";
    let other_digest = Digest::of(Algorithm::Sha512, other);
    assert_eq!(api.send(Method::PATCH, &location, &[], other.to_vec()).await.status, StatusCode::ACCEPTED);
    let closed = api.send(Method::PUT, &format!("{location}?digest={other_digest}"), &[("content-length", "0")], Body::empty()).await;
    assert_eq!(closed.status, StatusCode::CREATED);
    assert_eq!(api.get(&format!("/v2/five12/blobs/{other_digest}")).await.body, other);

    let manifest = image_manifest(&api.push_blob("five12", b"{}").await, &digest, content.len());
    let manifest_digest = Digest::of(Algorithm::Sha512, &manifest);
    let pushed = api.put_manifest("five12", &manifest_digest.to_string(), OCI_MANIFEST, &manifest).await;
    assert_eq!((pushed.status, pushed.header("docker-content-digest")), (StatusCode::CREATED, manifest_digest.to_string().as_str()));
    assert_eq!(api.get(&format!("/v2/five12/manifests/{manifest_digest}")).await.body, manifest);
}

async fn wrong_digest_keeps_nothing(store: Store) {
    let api = Api::new(store).await;
    let claimed = sha256(b"what the client claims");
    let whole = api.send(Method::POST, &format!("/v2/wrong/blobs/uploads/?digest={claimed}"), &[], &b"other bytes"[..]).await;
    whole.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    api.get(&format!("/v2/wrong/blobs/{claimed}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    api.get(&format!("/v2/wrong/blobs/{}", sha256(b"other bytes"))).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    let location = api.start_upload("wrong").await;
    api.send(Method::PATCH, &location, &[], &b"other bytes"[..]).await;
    let closed = api.send(Method::PUT, &format!("{location}?digest={claimed}"), &[("content-length", "0")], Body::empty()).await;
    closed.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    api.get(&location).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    api.get(&format!("/v2/wrong/blobs/{claimed}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    let location = api.start_upload("wrong").await;
    let no_digest = api.send(Method::PUT, &location, &[("content-length", "0")], Body::empty()).await;
    no_digest.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    let bad_digest = api.send(Method::PUT, &format!("{location}?digest=sha256:abc"), &[("content-length", "0")], Body::empty()).await;
    bad_digest.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

async fn content_length_that_lies_changes_nothing(store: Store) {
    let api = Api::new(store).await;
    let location = api.start_upload("liar").await;
    let short = api.send(Method::PATCH, &location, &[("content-length", "100")], &b"only twenty bytes!!!"[..]).await;
    short.assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    let range_mismatch = api.send(Method::PATCH, &location, &[("content-range", "0-9"), ("content-length", "5")], &b"12345"[..]).await;
    range_mismatch.assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    let status = api.get(&location).await;
    assert_eq!(status.header("range"), "0-0", "no byte of a rejected chunk counts");

    let patched = api.send(Method::PATCH, &location, &[("content-length", "4")], &b"real"[..]).await;
    assert_eq!(patched.header("range"), "0-3");
    let digest = sha256(b"real");
    assert_eq!(api.send(Method::PUT, &format!("{location}?digest={digest}"), &[], Body::empty()).await.status, StatusCode::CREATED);
    assert_eq!(api.get(&format!("/v2/liar/blobs/{digest}")).await.body, b"real");

    let digest = sha256(b"abc");
    let whole = api.send(Method::POST, &format!("/v2/liar/blobs/uploads/?digest={digest}"), &[("content-length", "9")], &b"abc"[..]).await;
    whole.assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    api.get(&format!("/v2/liar/blobs/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

async fn unknown_and_foreign_upload_sessions(store: Store) {
    let api = Api::new(store).await;
    let unknown = format!("/v2/a/blobs/uploads/{}", uuid_like());
    api.send(Method::PATCH, &unknown, &[], &b"x"[..]).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    api.get(&unknown).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    api.send(Method::PUT, &format!("{unknown}?digest={}", sha256(b"x")), &[], &b"x"[..])
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    api.send(Method::PATCH, "/v2/a/blobs/uploads/garbage", &[], &b"x"[..]).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");

    let location = api.start_upload("owner").await;
    let foreign = location.replace("/v2/owner/", "/v2/intruder/");
    api.send(Method::PATCH, &foreign, &[], &b"x"[..]).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");

    assert_eq!(api.send(Method::DELETE, &location, &[], Body::empty()).await.status, StatusCode::NO_CONTENT);
    api.get(&location).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    api.send(Method::DELETE, &location, &[], Body::empty()).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

/// An upload cancelled with parts in the backend (over the emulator's 5 MiB part size) is gone, and so is one whose
/// bytes turned out to have another digest.
async fn uploads_with_parts_can_be_cancelled_or_fail(store: Store) {
    let api = Api::new(store).await;
    let content = vec![3u8; 6 << 20];
    let location = api.start_upload("parts").await;
    let patched = api.send(Method::PATCH, &location, &[], content.clone()).await;
    assert_eq!(patched.header("range"), format!("0-{}", content.len() - 1));
    assert_eq!(api.send(Method::DELETE, &location, &[], Body::empty()).await.status, StatusCode::NO_CONTENT);
    api.get(&location).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");

    let claimed = sha256(b"not these bytes");
    let whole = api.send(Method::POST, &format!("/v2/parts/blobs/uploads/?digest={claimed}"), &[], content).await;
    whole.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    api.get(&format!("/v2/parts/blobs/{claimed}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

fn uuid_like() -> String {
    "0b8a1c2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d".to_owned()
}

async fn blobs_are_per_repository_and_mountable(store: Store) {
    let api = Api::new(store).await;
    let digest = api.push_blob("team/a", b"shared layer").await;
    api.get(&format!("/v2/team/b/blobs/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    let mounted = api.send(Method::POST, &format!("/v2/team/b/blobs/uploads/?mount={digest}&from=team/a"), &[], Body::empty()).await;
    assert_eq!((mounted.status, mounted.header("location")), (StatusCode::CREATED, format!("/v2/team/b/blobs/{digest}").as_str()));
    assert_eq!(api.get(&format!("/v2/team/b/blobs/{digest}")).await.body, b"shared layer");

    // A mount from a repository without the blob falls back to an ordinary upload.
    let fallback = api.send(Method::POST, &format!("/v2/team/c/blobs/uploads/?mount={digest}&from=team/none"), &[], Body::empty()).await;
    assert_eq!(fallback.status, StatusCode::ACCEPTED);
    assert!(fallback.header("location").starts_with("/v2/team/c/blobs/uploads/"));
    api.get(&format!("/v2/team/c/blobs/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    assert_eq!(api.send(Method::DELETE, &format!("/v2/team/b/blobs/{digest}"), &[], Body::empty()).await.status, StatusCode::ACCEPTED);
    api.get(&format!("/v2/team/b/blobs/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    assert_eq!(api.get(&format!("/v2/team/a/blobs/{digest}")).await.body, b"shared layer", "other repositories keep the blob");
    api.send(Method::DELETE, &format!("/v2/team/b/blobs/{digest}"), &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

async fn manifests_by_tag_and_digest(store: Store) {
    let api = Api::new(store).await;
    let manifest = api.push_image("web", "v1", b"layer one").await;
    let digest = sha256(&manifest);

    let by_tag = api.get("/v2/web/manifests/v1").await;
    assert_eq!((by_tag.status, by_tag.body.as_slice()), (StatusCode::OK, manifest.as_slice()));
    assert_eq!(by_tag.header("content-type"), OCI_MANIFEST);
    assert_eq!(by_tag.header("docker-content-digest"), digest.to_string());
    assert_eq!(api.get(&format!("/v2/web/manifests/{digest}")).await.body, manifest);

    let head = api.send(Method::HEAD, "/v2/web/manifests/v1", &[], Body::empty()).await;
    assert_eq!((head.status, head.header("content-length"), head.body.len()), (StatusCode::OK, manifest.len().to_string().as_str(), 0));
    assert_eq!(head.header("docker-content-digest"), digest.to_string());

    let by_digest = api.put_manifest("web", &digest.to_string(), OCI_MANIFEST, &manifest).await;
    assert_eq!(by_digest.status, StatusCode::CREATED);
    let wrong = api.put_manifest("web", &sha256(b"else").to_string(), OCI_MANIFEST, &manifest).await;
    wrong.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");

    api.get("/v2/web/manifests/v2").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get("/v2/other/manifests/v1").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get(&format!("/v2/other/manifests/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

async fn manifest_validation_rejects_bad_manifests_and_stores_nothing(store: Store) {
    let api = Api::new(store).await;
    let config = api.push_blob("strict", b"{}").await;
    let missing = sha256(b"never pushed");
    let dangling = image_manifest(&config, &missing, 12);
    api.put_manifest("strict", "v1", OCI_MANIFEST, &dangling).await.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    api.put_manifest("strict", "v1", OCI_MANIFEST, b"not json").await.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    let schema1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
    api.put_manifest("strict", "v1", "application/vnd.docker.distribution.manifest.v1+prettyjws", schema1)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing.to_string(), "size": 10}]})).unwrap();
    api.put_manifest("strict", "list", OCI_INDEX, &index).await.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    api.put_manifest("strict", "-bad-tag", OCI_MANIFEST, &dangling).await.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    api.get("/v2/strict/manifests/v1").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get("/v2/strict/manifests/list").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get(&format!("/v2/strict/manifests/{}", sha256(&dangling))).await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

async fn indexes_and_docker_manifest_lists(store: Store) {
    let api = Api::new(store).await;
    let amd64 = api.push_image("multi", "amd64", b"amd64 layer").await;
    let arm64 = api.push_image("multi", "arm64", b"arm64 layer").await;
    let child = |manifest: &[u8], arch: &str| json!({"mediaType": OCI_MANIFEST, "digest": sha256(manifest).to_string(), "size": manifest.len(), "platform": {"os": "linux", "architecture": arch}});
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child(&amd64, "amd64"), child(&arm64, "arm64")]}),
    )
    .unwrap();
    assert_eq!(api.put_manifest("multi", "latest", OCI_INDEX, &index).await.status, StatusCode::CREATED);
    let fetched = api.get("/v2/multi/manifests/latest").await;
    assert_eq!((fetched.body.as_slice(), fetched.header("content-type")), (index.as_slice(), OCI_INDEX));

    let docker_type = "application/vnd.docker.distribution.manifest.v2+json";
    let config = api.push_blob("dock", b"{\"architecture\":\"amd64\"}").await;
    let layer = api.push_blob("dock", b"docker layer").await;
    let docker = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": docker_type,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config.to_string(), "size": 24},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer.to_string(), "size": 12}]}))
    .unwrap();
    assert_eq!(api.put_manifest("dock", "v1", docker_type, &docker).await.status, StatusCode::CREATED);
    let list_type = "application/vnd.docker.distribution.manifest.list.v2+json";
    let list = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": list_type,
        "manifests": [{"mediaType": docker_type, "digest": sha256(&docker).to_string(), "size": docker.len(), "platform": {"os": "linux", "architecture": "amd64"}}]})).unwrap();
    assert_eq!(api.put_manifest("dock", "list", list_type, &list).await.status, StatusCode::CREATED);
    assert_eq!(api.get("/v2/dock/manifests/list").await.header("content-type"), list_type);
}

async fn four_mib_manifests_fit_and_larger_ones_get_413(store: Store) {
    let api = Api::new(store).await;
    let config = api.push_blob("big", b"{}").await;
    let layer = api.push_blob("big", b"l").await;
    let sized = |size: usize| {
        let mut manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 1}],
            "annotations": {"padding": ""}});
        let overhead = serde_json::to_vec(&manifest).unwrap().len();
        manifest["annotations"]["padding"] = json!("x".repeat(size - overhead));
        serde_json::to_vec(&manifest).unwrap()
    };
    let largest = sized(4 << 20);
    assert_eq!(largest.len(), 4 << 20);
    assert_eq!(api.put_manifest("big", "max", OCI_MANIFEST, &largest).await.status, StatusCode::CREATED);
    assert_eq!(api.get("/v2/big/manifests/max").await.body, largest);
    let too_big = sized((4 << 20) + 1);
    api.put_manifest("big", "over", OCI_MANIFEST, &too_big).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
    api.get("/v2/big/manifests/over").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");

    // A configured larger limit takes larger manifests; the limit holds without Content-Length too.
    let roomy = Api::with_limits(store, Limits { max_manifest_bytes: 8 << 20, ..DEFAULT_LIMITS }).await;
    let config = roomy.push_blob("big", b"{}").await;
    assert_eq!(config, sha256(b"{}"));
    roomy.push_blob("big", b"l").await;
    assert_eq!(roomy.put_manifest("big", "over", OCI_MANIFEST, &too_big).await.status, StatusCode::CREATED);
    let tight = Api::with_limits(store, Limits { max_manifest_bytes: 1000, ..DEFAULT_LIMITS }).await;
    let streamed = Body::from_stream(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(too_big))]));
    tight
        .send(Method::PUT, "/v2/big/manifests/x", &[("content-type", OCI_MANIFEST)], streamed)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
}

async fn tags_and_catalog_page_with_link_headers(store: Store) {
    let api = Api::new(store).await;
    for tag in ["c", "a", "b", "d"] {
        api.push_image("paged", tag, b"same layer").await;
    }
    api.push_image("another", "x", b"x").await;
    let all = api.get("/v2/paged/tags/list").await;
    assert_eq!(all.json(), json!({"name": "paged", "tags": ["a", "b", "c", "d"]}));
    assert!(all.headers.get("link").is_none());

    let first = api.get("/v2/paged/tags/list?n=2").await;
    assert_eq!(first.json()["tags"], json!(["a", "b"]));
    assert_eq!(first.header("link"), "</v2/paged/tags/list?n=2&last=b>; rel=\"next\"");
    let second = api.get("/v2/paged/tags/list?n=2&last=b").await;
    assert_eq!(second.json()["tags"], json!(["c", "d"]));
    assert!(second.headers.get("link").is_none());
    assert_eq!(api.get("/v2/paged/tags/list?n=0").await.json()["tags"], json!([]));
    api.get("/v2/paged/tags/list?n=many").await.assert_error(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID");
    api.get("/v2/nothing/here/tags/list").await.assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");

    let catalog = api.get("/v2/_catalog?n=1").await;
    assert_eq!(catalog.json(), json!({"repositories": ["another"]}));
    assert_eq!(catalog.header("link"), "</v2/_catalog?n=1&last=another>; rel=\"next\"");
    assert_eq!(api.get("/v2/_catalog?n=1&last=another").await.json(), json!({"repositories": ["paged"]}));
}

async fn referrers_list_subjects_artifacts_with_filtering(store: Store) {
    let api = Api::new(store).await;
    let image = api.push_image("art", "v1", b"image layer").await;
    let subject = sha256(&image);
    let empty_config = api.push_blob("art", b"{}").await;
    let sbom_layer = api.push_blob("art", b"{\"spdx\":true}").await;
    let artifact = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_config.to_string(), "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom_layer.to_string(), "size": 13}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": image.len()},
        "annotations": {"org.opencontainers.image.created": "2026-11-26T00:00:00Z"}}))
    .unwrap();
    let pushed = api.put_manifest("art", &sha256(&artifact).to_string(), OCI_MANIFEST, &artifact).await;
    assert_eq!((pushed.status, pushed.header("oci-subject")), (StatusCode::CREATED, subject.to_string().as_str()));

    let referrers = api.get(&format!("/v2/art/referrers/{subject}")).await;
    assert_eq!((referrers.status, referrers.header("content-type")), (StatusCode::OK, OCI_INDEX));
    let index = referrers.json();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    let descriptor = &index["manifests"][0];
    assert_eq!(descriptor["digest"], sha256(&artifact).to_string());
    assert_eq!(descriptor["artifactType"], "application/spdx+json");
    assert_eq!(descriptor["size"], artifact.len());
    assert_eq!(descriptor["annotations"]["org.opencontainers.image.created"], "2026-11-26T00:00:00Z");

    let filtered = api.get(&format!("/v2/art/referrers/{subject}?artifactType=application/spdx%2Bjson")).await;
    assert_eq!((filtered.header("oci-filters-applied"), filtered.json()["manifests"].as_array().unwrap().len()), ("artifactType", 1));
    let other = api.get(&format!("/v2/art/referrers/{subject}?artifactType=application/other")).await;
    assert_eq!(other.json()["manifests"], json!([]));
    let none = api.get(&format!("/v2/unknown/referrers/{}", sha256(b"nothing"))).await;
    assert_eq!((none.status, none.json()["manifests"].clone()), (StatusCode::OK, json!([])));
    api.get("/v2/art/referrers/sha256:nope").await.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");

    // Annotations too large for the index are read from the manifest itself.
    let padding = "p".repeat(64 << 10);
    let signature =
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_config.to_string(), "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom_layer.to_string(), "size": 13}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": image.len()},
        "annotations": {"padding": padding}}))
        .unwrap();
    assert_eq!(api.put_manifest("art", "signature", OCI_MANIFEST, &signature).await.status, StatusCode::CREATED);
    let signatures = api.get(&format!("/v2/art/referrers/{subject}?artifactType=application/vnd.example.signature")).await.json();
    assert_eq!(signatures["manifests"][0]["annotations"]["padding"], padding);
    assert_eq!(api.send(Method::DELETE, "/v2/art/manifests/signature", &[], Body::empty()).await.status, StatusCode::ACCEPTED);
    assert_eq!(
        api.send(Method::DELETE, &format!("/v2/art/manifests/{}", sha256(&signature)), &[], Body::empty()).await.status,
        StatusCode::ACCEPTED
    );

    // Deleting the artifact takes it out of the referrers list.
    assert_eq!(
        api.send(Method::DELETE, &format!("/v2/art/manifests/{}", sha256(&artifact)), &[], Body::empty()).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(api.get(&format!("/v2/art/referrers/{subject}")).await.json()["manifests"], json!([]));
}

/// The `field` array of each page, and the `digest` of every entry across them in order.
fn paged_digests(pages: &[Reply], field: &str) -> (Vec<usize>, Vec<String>) {
    let entries: Vec<Vec<Value>> = pages.iter().map(|page| page.json()[field].as_array().unwrap().clone()).collect();
    let digests = entries.iter().flatten().map(|entry| entry["digest"].as_str().unwrap().to_owned()).collect();
    (entries.iter().map(Vec::len).collect(), digests)
}

async fn referrers_page_with_link_headers_that_keep_the_filter(store: Store) {
    let api = Api::new(store).await;
    let image = api.push_image("paged/art", "v1", b"subject layer").await;
    let subject = sha256(&image);
    let (sbom, signature) = ("application/spdx+json", "application/vnd.example.signature");
    let mut pushed = Vec::new();
    for index in 0..7 {
        let artifact_type = if index % 2 == 0 { sbom } else { signature };
        pushed.push((api.push_referrer("paged/art", &image, artifact_type, &format!("artifact {index}")).await.to_string(), artifact_type));
    }
    pushed.sort();
    let of_type = |wanted: &str| -> Vec<String> {
        pushed.iter().filter(|(_, artifact_type)| *artifact_type == wanted).map(|(digest, _)| digest.clone()).collect()
    };

    let pages = api.pages(&format!("/v2/paged/art/referrers/{subject}?n=2")).await;
    let (sizes, listed) = paged_digests(&pages, "manifests");
    assert_eq!(sizes, [2, 2, 2, 1]);
    assert_eq!(listed, pushed.iter().map(|(digest, _)| digest.clone()).collect::<Vec<_>>(), "every referrer once, in digest order");
    assert_eq!(pages[0].header("link"), format!("</v2/paged/art/referrers/{subject}?n=2&last={}>; rel=\"next\"", listed[1]));
    for page in &pages {
        assert_eq!(page.header("content-type"), OCI_INDEX);
        assert!(page.headers.get("oci-filters-applied").is_none());
    }

    // The filter applies before the page is cut, so pages are full, and the Link keeps it (escaped).
    let pages = api.pages(&format!("/v2/paged/art/referrers/{subject}?artifactType=application/spdx%2Bjson&n=3")).await;
    let (sizes, listed) = paged_digests(&pages, "manifests");
    assert_eq!((sizes, listed), (vec![3, 1], of_type(sbom)));
    assert_eq!(
        pages[0].header("link"),
        format!("</v2/paged/art/referrers/{subject}?artifactType=application%2Fspdx%2Bjson&n=3&last={}>; rel=\"next\"", of_type(sbom)[2])
    );
    for page in &pages {
        assert_eq!(page.header("oci-filters-applied"), "artifactType");
        assert!(page.json()["manifests"].as_array().unwrap().iter().all(|descriptor| descriptor["artifactType"] == sbom));
    }
    let (sizes, listed) =
        paged_digests(&api.pages(&format!("/v2/paged/art/referrers/{subject}?artifactType={signature}&n=1")).await, "manifests");
    assert_eq!((sizes, listed), (vec![1, 1, 1], of_type(signature)));
    api.get(&format!("/v2/paged/art/referrers/{subject}?n=some")).await.assert_error(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID");
}

async fn management_listing_pages_with_link_headers(store: Store) {
    let api = Api::new(store).await;
    let mut pushed = Vec::new();
    for index in 0..5 {
        let manifest = api.push_image("paged/app", &format!("v{index}"), format!("layer {index}").as_bytes()).await;
        pushed.push((sha256(&manifest).to_string(), vec![format!("v{index}")]));
    }
    // A second tag on the first manifest (the same layer makes the same manifest); tags list in lexical order.
    api.push_image("paged/app", "latest", b"layer 0").await;
    pushed[0].1.insert(0, "latest".to_owned());
    pushed.sort();

    let pages = api.pages("/berth/v1/repositories/paged/app/manifests?n=2").await;
    let (sizes, listed) = paged_digests(&pages, "manifests");
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(listed, pushed.iter().map(|(digest, _)| digest.clone()).collect::<Vec<_>>(), "every manifest once, in digest order");
    assert_eq!(pages[0].header("link"), format!("</berth/v1/repositories/paged/app/manifests?n=2&last={}>; rel=\"next\"", listed[1]));
    let tags: Vec<Value> =
        pages.iter().flat_map(|page| page.json()["manifests"].as_array().unwrap().clone()).map(|entry| entry["tags"].clone()).collect();
    assert_eq!(tags, pushed.iter().map(|(_, tags)| json!(tags)).collect::<Vec<_>>());
    assert!(pages.iter().all(|page| page.json()["repository"] == "paged/app"));

    let last = listed.last().unwrap();
    assert_eq!(api.get(&format!("/berth/v1/repositories/paged/app/manifests?last={last}")).await.json()["manifests"], json!([]));
    api.get("/berth/v1/repositories/paged/app/manifests?n=-1").await.assert_error(StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID");
    api.get("/berth/v1/repositories/paged/none/manifests").await.assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

async fn deleting_tags_and_manifests(store: Store) {
    let api = Api::new(store).await;
    let manifest = api.push_image("del", "v1", b"layer").await;
    let digest = sha256(&manifest);
    assert_eq!(api.put_manifest("del", "v2", OCI_MANIFEST, &manifest).await.status, StatusCode::CREATED);

    assert_eq!(api.send(Method::DELETE, "/v2/del/manifests/v1", &[], Body::empty()).await.status, StatusCode::ACCEPTED);
    api.get("/v2/del/manifests/v1").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(api.get(&format!("/v2/del/manifests/{digest}")).await.status, StatusCode::OK, "untagging keeps the manifest");

    assert_eq!(api.send(Method::DELETE, &format!("/v2/del/manifests/{digest}"), &[], Body::empty()).await.status, StatusCode::ACCEPTED);
    api.get(&format!("/v2/del/manifests/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get("/v2/del/manifests/v2").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.send(Method::DELETE, &format!("/v2/del/manifests/{digest}"), &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.send(Method::DELETE, "/v2/del/manifests/v9", &[], Body::empty()).await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

async fn management_lists_manifests_and_deletes_repositories(store: Store) {
    let api = Api::new(store).await;
    let manifest = api.push_image("mgmt/app", "v1", b"layer").await;
    let listing = api.get("/berth/v1/repositories/mgmt/app/manifests").await.json();
    assert_eq!(listing["repository"], "mgmt/app");
    let entry = &listing["manifests"][0];
    assert_eq!(
        (entry["digest"].as_str().unwrap(), entry["mediaType"].as_str().unwrap()),
        (sha256(&manifest).to_string().as_str(), OCI_MANIFEST)
    );
    assert_eq!((entry["size"].as_u64().unwrap(), entry["tags"].clone()), (manifest.len() as u64, json!(["v1"])));
    assert!(entry["pushedAt"].as_u64().unwrap() > 1_700_000_000_000);

    assert_eq!(api.send(Method::DELETE, "/berth/v1/repositories/mgmt/app", &[], Body::empty()).await.status, StatusCode::ACCEPTED);
    api.get("/v2/mgmt/app/tags/list").await.assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
    api.get("/v2/mgmt/app/manifests/v1").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(api.get("/v2/_catalog").await.json()["repositories"], json!([]));
    api.send(Method::DELETE, "/berth/v1/repositories/mgmt/app", &[], Body::empty())
        .await
        .assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

async fn invalid_names_tags_digests_and_methods(store: Store) {
    let api = Api::new(store).await;
    let long_name = "a".repeat(256);
    for name in ["Upper", "a//b", "..", "a/../b", "-a", &long_name] {
        api.get(&format!("/v2/{name}/tags/list")).await.assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
        api.send(Method::POST, &format!("/v2/{name}/blobs/uploads/"), &[], Body::empty())
            .await
            .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
    }
    api.get("/v2/ok/manifests/.bad").await.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    api.get("/v2/ok/manifests/sha256:123").await.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    api.get("/v2/ok/blobs/md5:abc").await.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    api.send(Method::POST, "/v2/ok/blobs/uploads/?digest=sha256:short", &[], &b"x"[..])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    // A mount the registry cannot make falls back to an upload session, whatever is wrong with it.
    for query in ["mount=bad&from=a", &format!("mount={}&from=Not..A/Name", sha256(b"x")), &format!("mount={}", sha256(b"x"))] {
        let fallback = api.send(Method::POST, &format!("/v2/ok/blobs/uploads/?{query}"), &[], Body::empty()).await;
        assert_eq!(fallback.status, StatusCode::ACCEPTED, "{query}");
        assert!(fallback.header("location").starts_with("/v2/ok/blobs/uploads/"), "{query}");
    }
    api.send(Method::POST, "/v2/ok/manifests/v1", &[], Body::empty()).await.assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    api.get("/v2/ok/somewhere").await.assert_error(StatusCode::NOT_FOUND, "UNSUPPORTED");
    api.get("/elsewhere").await.assert_error(StatusCode::NOT_FOUND, "UNSUPPORTED");
}

async fn pushes_announce_events(store: Store) {
    let api = Api::new(store).await;
    let mut events = api.events.subscribe();
    let manifest = api.push_image("events", "v1", b"layer").await;
    assert_eq!(
        events.recv().await.unwrap(),
        RegistryEvent::ManifestPushed {
            repository: berth::oci::RepositoryName::parse("events").unwrap(),
            digest: sha256(&manifest),
            media_type: OCI_MANIFEST.into(),
            // An image's artifact type is its config's media type, as the referrers API gives it.
            artifact_type: Some("application/vnd.oci.image.config.v1+json".into()),
            tag: Some(berth::oci::Tag::parse("v1").unwrap()),
        }
    );
}

async fn concurrent_pushes_of_one_blob_and_one_tag_are_safe(store: Store) {
    let api = Arc::new(Api::new(store).await);
    let content = vec![42u8; 1 << 20];
    let pushes = (0..16).map(|_| {
        let (api, content) = (api.clone(), content.clone());
        tokio::spawn(async move {
            let location = api.start_upload("race").await;
            let patched = api.send(Method::PATCH, &location, &[], content.clone()).await;
            let closed =
                api.send(Method::PUT, &format!("{}?digest={}", patched.header("location"), sha256(&content)), &[], Body::empty()).await;
            assert_eq!(closed.status, StatusCode::CREATED);
        })
    });
    for push in pushes.collect::<Vec<_>>() {
        push.await.unwrap();
    }
    assert_eq!(api.get(&format!("/v2/race/blobs/{}", sha256(&content))).await.body, content);

    let tags = (0..16).map(|index| {
        let api = api.clone();
        tokio::spawn(async move { sha256(&api.push_image("race", "latest", format!("layer {index}").as_bytes()).await) })
    });
    let mut pushed = Vec::new();
    for tag in tags.collect::<Vec<_>>() {
        pushed.push(tag.await.unwrap());
    }
    let current = api.send(Method::HEAD, "/v2/race/manifests/latest", &[], Body::empty()).await;
    let current = Digest::parse(current.header("docker-content-digest")).unwrap();
    assert!(pushed.contains(&current), "the tag points at one of the pushed manifests");
    assert_eq!(api.get(&format!("/v2/race/manifests/{current}")).await.status, StatusCode::OK);
}

/// Requests racing on one session (PATCHes of different bytes, each closing under the digest of its own bytes) and on
/// one digest (pushes of its content, and of other bytes claiming it): whatever wins, every blob the store ends up
/// holding hashes to its digest.
async fn racing_requests_never_store_bytes_under_another_digest(store: Store) {
    let api = Arc::new(Api::new(store).await);
    let genuine: Vec<u8> = (0..300_000u32).map(|index| (index % 253) as u8).collect();
    let digest = sha256(&genuine);
    let location = api.start_upload("storm").await;
    let racers: Vec<_> = (0..32u8)
        .map(|index| {
            let (api, location, genuine, digest) = (api.clone(), location.clone(), genuine.clone(), digest.clone());
            tokio::spawn(async move {
                // Staggered starts, so some requests arrive while another is between writing and saving.
                tokio::time::sleep(std::time::Duration::from_micros(u64::from(index) * 250)).await;
                let forged = vec![index; genuine.len() / 3];
                match index % 4 {
                    0 => {
                        api.send(Method::PATCH, &location, &[], forged.clone()).await;
                        let own = sha256(&forged);
                        api.send(Method::PUT, &format!("{location}?digest={own}"), &[], Body::empty()).await;
                    }
                    1 => {
                        let length = genuine.len().to_string();
                        api.send(Method::PUT, &format!("{location}?digest={digest}"), &[("content-length", &length)], genuine).await;
                    }
                    2 => {
                        let pushed = api.send(Method::POST, &format!("/v2/storm/blobs/uploads/?digest={digest}"), &[], genuine).await;
                        assert_eq!(pushed.status, StatusCode::CREATED);
                    }
                    _ => {
                        api.send(Method::POST, &format!("/v2/storm/blobs/uploads/?digest={digest}"), &[], forged)
                            .await
                            .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
                    }
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    let fetched = api.get(&format!("/v2/storm/blobs/{digest}")).await;
    assert_eq!((fetched.status, sha256(&fetched.body)), (StatusCode::OK, digest.clone()));
    let stored = api.stored_blobs().await;
    assert!(stored.iter().any(|(name, _)| *name == digest.to_string()));
    for (name, bytes) in stored {
        let algorithm = if name.starts_with("sha512:") { Algorithm::Sha512 } else { Algorithm::Sha256 };
        assert_eq!(Digest::of(algorithm, &bytes).to_string(), name, "a stored blob does not hash to its digest");
    }
}

/// A reply sent before the client finished sending its body (an out-of-order chunk, an unknown session) reaches the
/// client whole, instead of a connection reset while it still writes.
async fn early_replies_reach_clients_that_are_still_sending(store: Store) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::new(store).await;
    let addr = api.listen().await;
    let location = api.start_upload("early").await;
    let unknown = format!("/v2/early/blobs/uploads/{}", uuid::Uuid::new_v4());
    for (path, range, status) in [(&location, "100-1048675", "416"), (&unknown, "0-1048575", "404")] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let token = api.owner_token(path);
        let head = format!(
            "PATCH {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-range: {range}\r\ncontent-length: 1048576\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        // The registry answers after the head; the body follows slowly, as over a real network.
        for _ in 0..16 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            socket.write_all(&[7u8; 65536]).await.unwrap_or_else(|error| panic!("{path}: the body could not be sent: {error}"));
        }
        let mut reply = Vec::new();
        let mut buffer = [0u8; 4096];
        while !String::from_utf8_lossy(&reply).contains("\r\n\r\n") {
            let read = socket.read(&mut buffer).await.unwrap_or_else(|error| panic!("{path}: the reply was lost: {error}"));
            assert!(read > 0, "{path}: the connection closed without a reply");
            reply.extend_from_slice(&buffer[..read]);
        }
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {reply}");
    }
}

/// OCI artifacts use the empty descriptor as config and as layer; images may repeat a layer. One digest named twice
/// is one blob the manifest needs.
async fn manifests_naming_one_digest_twice(store: Store) {
    let api = Api::new(store).await;
    let empty = api.push_blob("twice", b"{}").await;
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.thing",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2}]
    }))
    .unwrap();
    assert_eq!(api.put_manifest("twice", "artifact", OCI_MANIFEST, &artifact).await.status, StatusCode::CREATED);
    let layer = api.push_blob("twice", b"layer").await;
    let layers: Vec<Value> =
        (0..3).map(|_| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": 5})).collect();
    let image = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": layers
    }))
    .unwrap();
    assert_eq!(api.put_manifest("twice", "image", OCI_MANIFEST, &image).await.status, StatusCode::CREATED);
    assert_eq!(api.get("/v2/twice/manifests/image").await.body, image);
}

/// More tags than one DynamoDB transaction holds all go with their manifest.
async fn deleting_a_manifest_with_many_tags(store: Store) {
    let api = Api::new(store).await;
    let manifest = api.push_image("many", "t0", b"layer").await;
    for index in 1..130 {
        assert_eq!(api.put_manifest("many", &format!("t{index}"), OCI_MANIFEST, &manifest).await.status, StatusCode::CREATED);
    }
    let digest = sha256(&manifest);
    assert_eq!(api.send(Method::DELETE, &format!("/v2/many/manifests/{digest}"), &[], Body::empty()).await.status, StatusCode::ACCEPTED);
    assert_eq!(api.get("/v2/many/tags/list").await.json()["tags"], json!([]));
    api.get("/v2/many/manifests/t129").await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    api.get(&format!("/v2/many/manifests/{digest}")).await.assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
}

async fn requests_over_the_size_cap_get_413_and_change_nothing(store: Store) {
    let api = Api::with_limits(store, Limits { max_request_bytes: Some(1000), ..DEFAULT_LIMITS }).await;
    let started = api.send(Method::POST, "/v2/capped/blobs/uploads/", &[], Body::empty()).await;
    assert_eq!(started.header("oci-chunk-max-length"), "1000");
    let location = started.header("location").to_owned();

    let content = vec![1u8; 1500];
    let announced = api.send(Method::PATCH, &location, &[("content-length", "1500")], content.clone()).await;
    announced.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
    let message = announced.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("1000") && message.contains("Lambda") && message.contains("chunks"), "{message}");
    let streamed = Body::from_stream(futures_util::stream::iter(
        content.chunks(500).map(|piece| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(piece))).collect::<Vec<_>>(),
    ));
    api.send(Method::PATCH, &location, &[], streamed).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
    assert_eq!(api.get(&location).await.header("range"), "0-0");

    // The same bytes in chunks under the cap go through.
    for (index, chunk) in content.chunks(750).enumerate() {
        let range = format!("{}-{}", index * 750, index * 750 + chunk.len() - 1);
        let patched = api
            .send(Method::PATCH, &location, &[("content-range", &range), ("content-length", &chunk.len().to_string())], chunk.to_vec())
            .await;
        assert_eq!(patched.status, StatusCode::ACCEPTED);
    }
    let digest = sha256(&content);
    assert_eq!(api.send(Method::PUT, &format!("{location}?digest={digest}"), &[], Body::empty()).await.status, StatusCode::CREATED);
    assert_eq!(api.get(&format!("/v2/capped/blobs/{digest}")).await.body, content);
    let whole = api.send(Method::POST, &format!("/v2/capped/blobs/uploads/?digest={}", sha256(&[2u8; 1001])), &[], vec![2u8; 1001]).await;
    whole.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
}

/// Blobs over the backend's part size and copy limit (lowered for the emulator), pushed as docker does (one streamed
/// PATCH) and in uneven chunks, come back byte for byte.
async fn large_blobs_in_one_stream_and_in_chunks(store: Store) {
    let api = Api::new(store).await;
    let content: Vec<u8> = (0..(13 << 20) + 3).map(|index: u32| (index.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let digest = sha256(&content);

    let location = api.start_upload("large/stream").await;
    let stream = Body::from_stream(futures_util::stream::iter(
        content.chunks(256 << 10).map(|piece| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(piece))).collect::<Vec<_>>(),
    ));
    let patched = api.send(Method::PATCH, &location, &[], stream).await;
    assert_eq!(patched.header("range"), format!("0-{}", content.len() - 1));
    assert_eq!(
        api.send(Method::PUT, &format!("{}?digest={digest}", patched.header("location")), &[], Body::empty()).await.status,
        StatusCode::CREATED
    );
    let fetched = api.get(&format!("/v2/large/stream/blobs/{digest}")).await;
    assert_eq!((fetched.status, fetched.body.len(), sha256(&fetched.body)), (StatusCode::OK, content.len(), digest.clone()));

    let mut location = api.start_upload("large/chunks").await;
    let mut offset = 0;
    for size in [(2 << 20) + 1, 6 << 20, 1, (3 << 20) + 5] {
        let chunk = &content[offset..offset + size];
        let range = format!("{offset}-{}", offset + size - 1);
        let patched =
            api.send(Method::PATCH, &location, &[("content-range", &range), ("content-length", &size.to_string())], chunk.to_vec()).await;
        assert_eq!(patched.status, StatusCode::ACCEPTED);
        location = patched.header("location").to_owned();
        offset += size;
    }
    let rest = content[offset..].to_vec();
    let range = format!("{offset}-{}", content.len() - 1);
    let closed = api
        .send(
            Method::PUT,
            &format!("{location}?digest={digest}"),
            &[("content-range", &range), ("content-length", &rest.len().to_string())],
            rest,
        )
        .await;
    assert_eq!(closed.status, StatusCode::CREATED);
    let fetched = api.get(&format!("/v2/large/chunks/blobs/{digest}")).await;
    assert_eq!(sha256(&fetched.body), digest);
    let part =
        api.send(Method::GET, &format!("/v2/large/chunks/blobs/{digest}"), &[("range", "bytes=5242870-5242889")], Body::empty()).await;
    assert_eq!((part.status, part.body.as_slice()), (StatusCode::PARTIAL_CONTENT, &content[5_242_870..5_242_890]));
}

/// Hundreds of idle and trickling connections neither stop the registry from serving others nor stay open past the
/// header timeout.
/// A blob of more than one S3 part stays where its multipart upload completed: the closing request copies nothing
/// but its tail (less than a part), the link names the key and downloads are presigned for it. Two uploads of the
/// same digest closed at once (two repositories) leave one object, which both repositories serve.
#[tokio::test]
async fn big_blobs_are_completed_in_place_and_stored_once() {
    let api = Api::new(Store::Aws).await;
    let content: Vec<u8> = (0..(11u32 << 20)).map(|index| (index % 253) as u8).collect();
    let digest = sha256(&content);
    let mut locations = Vec::new();
    for name in ["big/a", "big/b"] {
        let location = api.start_upload(name).await;
        let patched = api.send(Method::PATCH, &location, &[("content-type", "application/octet-stream")], content.clone()).await;
        assert_eq!(patched.status, StatusCode::ACCEPTED);
        locations.push(patched.header("location").to_owned());
    }
    let close = |location: &String| {
        let path = format!("{location}?digest={digest}");
        let api = &api;
        async move { berth::telemetry::count_backend_calls(api.send(Method::PUT, &path, &[], Body::empty())).await }
    };
    let ((first, first_calls), (second, second_calls)) = tokio::join!(close(&locations[0]), close(&locations[1]));
    assert_eq!((first.status, second.status), (StatusCode::CREATED, StatusCode::CREATED));
    for calls in [&first_calls, &second_calls] {
        assert_eq!(calls.sent.get("S3.CopyObject"), None, "no blob is copied: {:?}", calls.sent);
        assert!(calls.sent.get("S3.UploadPartCopy").copied().unwrap_or_default() <= 1, "only the tail goes in as a part: {:?}", calls.sent);
    }
    let (s3, bucket) = api.bucket.as_ref().unwrap();
    let listed = |prefix: &'static str| async move {
        let page = s3.list_objects_v2().bucket(bucket).prefix(prefix).send().await.unwrap();
        page.contents.unwrap_or_default().into_iter().map(|object| object.key.unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(listed("data/").await.len(), 1, "one object for one digest");
    assert!(listed("blobs/").await.is_empty(), "nothing was copied to the content address");
    assert!(listed("uploads/").await.is_empty(), "no tail is left behind: {:?}", listed("uploads/").await);
    for name in ["big/a", "big/b"] {
        let pulled = api.get(&format!("/v2/{name}/blobs/{digest}")).await;
        assert!(pulled.redirected, "{name}: served by a presigned redirect");
        assert_eq!(sha256(&pulled.body), digest, "{name}");
    }
}

/// A client that sends a whole blob before it authenticates (oras-py) gets its 401 and keeps its connection: the
/// refused body is read to its end, so a proxy in front (nginx, CloudFront) passes the 401 on instead of a 502.
#[tokio::test]
async fn a_challenged_upload_body_is_drained_and_the_connection_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::new(Store::Embedded).await;
    let location = api.start_upload("drained/app").await;
    let addr = api.listen().await;
    let body = vec![7u8; 12 << 20];
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("PUT {location}?digest={} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\r\n", sha256(&body), body.len());
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body).await.unwrap();
    socket.write_all(format!("GET /v2/ HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
    let mut answers = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buffer = [0u8; 4096];
        while answers.matches("HTTP/1.1 401").count() < 2 {
            let read = socket.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the connection closed after: {answers}");
            answers.push_str(&String::from_utf8_lossy(&buffer[..read]));
        }
    })
    .await;
    assert!(read.is_ok(), "two answers on one connection: {answers}");
    assert!(!answers.to_ascii_lowercase().contains("connection: close"), "{answers}");
}

/// What pulls cost on AWS: one backend call per request (a manifest by tag or digest from its item, its bytes kept
/// inline; a blob from its link's item and a presign made locally), so a docker pull of an image with N layers costs
/// N + 3 calls besides its token request (the manifest by tag, by digest, the config and the layers).
#[tokio::test]
async fn pulls_cost_one_aws_call_per_request() {
    let api = Api::new(Store::Aws).await;
    let manifest = api.push_image("calls/app", "v1", b"layer bytes").await;
    let digest = sha256(&manifest);
    let layer = sha256(b"layer bytes");
    let requests = [
        (Method::GET, "/v2/calls/app/manifests/v1".to_owned()),
        (Method::HEAD, "/v2/calls/app/manifests/v1".to_owned()),
        (Method::GET, format!("/v2/calls/app/manifests/{digest}")),
        (Method::GET, format!("/v2/calls/app/blobs/{layer}")),
        (Method::HEAD, format!("/v2/calls/app/blobs/{layer}")),
    ];
    let accept = [("accept", OCI_MANIFEST)];
    for (method, path) in requests {
        let (reply, calls) = berth::telemetry::count_backend_calls(api.send(method.clone(), &path, &accept, Body::empty())).await;
        assert!(reply.status.is_success(), "{method} {path}: {}", reply.status);
        if method == Method::GET && path.contains("/manifests/") {
            assert_eq!(reply.body, manifest, "{method} {path}");
        }
        assert_eq!(calls.sent.values().sum::<u32>(), 1, "{method} {path} made {:?}", calls.sent);
    }
}

/// A stopping server (the upload service's task on SIGTERM) takes no new connection but lets an upload in flight
/// finish within its drain time: the client's last bytes arrive after the stop and the upload still answers 202.
#[tokio::test]
async fn a_stopping_server_finishes_uploads_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::new(Store::Embedded).await;
    let location = api.start_upload("drain/app").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(berth::server::serve_until(
        listener,
        api.router.clone(),
        None,
        async move {
            let _ = stopped.await;
        },
        std::time::Duration::from_secs(20),
    ));
    let token = api.owner_token(&location);
    let mut upload = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/octet-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(b"5\r\nfirst\r\n").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "a stopping server takes no new connection");
    upload.write_all(b"6\r\nsecond\r\n0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    upload.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("range: 0-10"), "all 11 bytes were taken: {answer}");
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the server stops once the upload is done")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn failed_logins_count_across_processes() {
    access::failed_logins_count_across_processes().await
}

#[tokio::test]
async fn slow_and_idle_connections_do_not_starve_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::new(Store::Embedded).await;
    let addr = api.listen().await;
    let mut slow = Vec::new();
    for index in 0..500 {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        if index % 2 == 1 {
            socket.write_all(b"GET /v2/ HTTP/1.1\r\nx-slow: ").await.unwrap();
        }
        slow.push(socket);
    }
    let (trickling, idle): (Vec<_>, Vec<_>) = slow.into_iter().enumerate().partition(|(index, _)| index % 2 == 1);
    let trickle = tokio::spawn(async move {
        let mut sockets: Vec<_> = trickling.into_iter().map(|(_, socket)| socket).collect();
        loop {
            for socket in &mut sockets {
                // A server that closed the connection makes this fail: that is the point, carry on with the others.
                let _ = socket.write_all(b"a").await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });

    let client = reqwest::Client::new();
    let content = vec![9u8; 1 << 20];
    let digest = sha256(&content);
    let started = std::time::Instant::now();
    let token = api.owner_token("/v2/busy/blobs/uploads/");
    let pushed = client
        .post(format!("http://{addr}/v2/busy/blobs/uploads/?digest={digest}"))
        .bearer_auth(&token)
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status().as_u16(), 201);
    for _ in 0..20 {
        let pulled = client.get(format!("http://{addr}/v2/busy/blobs/{digest}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(pulled.bytes().await.unwrap().len(), content.len());
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "served others in {:?}", started.elapsed());

    // Past the header timeout every idle or trickling connection has been closed by the registry.
    tokio::time::sleep(berth::server::HEADER_READ_TIMEOUT + std::time::Duration::from_secs(3)).await;
    trickle.abort();
    for (_, mut socket) in idle {
        let mut buffer = [0u8; 1024];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(1), async {
            loop {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "an idle connection is still open past the header timeout");
    }
}

/// Runs each test once per store, so the embedded store and the AWS adapters answer every request alike, and the
/// tests of what only AWS has (the table's stream) on AWS; and every AWS test in turn for the IAM check (`iam`), which
/// needs all of them done.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?; aws only: $($aws_test:ident),* $(,)?) => {
        async fn every_aws_test() {
            $($test(Store::Aws).await;)*
            $($aws_test().await;)*
        }
        mod embedded {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Store::Embedded).await
            })*
        }
        mod aws {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Store::Aws).await
            })*
            $(#[tokio::test]
            async fn $aws_test() {
                super::$aws_test().await
            })*
        }
    };
}

on_both_stores!(
    version_check_answers_200,
    requests_without_a_token_are_challenged,
    the_token_endpoint_takes_basic_get_and_oauth_post,
    granted_access_is_the_intersection_of_asked_and_allowed,
    tokens_that_must_not_work_are_refused,
    revoked_credentials_stop_new_tokens_at_once,
    the_admin_user_is_off_by_default,
    scoped_tokens_reach_only_their_repositories,
    a_mount_needs_pull_on_its_source,
    anonymous_pull_is_off_by_default,
    tiers_gate_features_and_refuse_downgrades,
    failed_logins_are_rate_limited,
    basic_credentials_work_on_the_registry_itself,
    oidc_id_tokens_are_logins_for_assigned_subjects,
    aws_identities_log_in_through_the_emulators_sts,
    aws_proofs_reach_sts_exactly_as_signed,
    locations_use_the_public_url_when_configured,
    monolithic_upload_then_download_with_ranges,
    chunked_upload_in_order_with_status_and_final_chunk,
    streamed_patch_without_content_range_then_empty_put,
    sha512_digests_work_for_blobs_and_manifests,
    wrong_digest_keeps_nothing,
    content_length_that_lies_changes_nothing,
    unknown_and_foreign_upload_sessions,
    uploads_with_parts_can_be_cancelled_or_fail,
    blobs_are_per_repository_and_mountable,
    manifests_by_tag_and_digest,
    manifest_validation_rejects_bad_manifests_and_stores_nothing,
    indexes_and_docker_manifest_lists,
    four_mib_manifests_fit_and_larger_ones_get_413,
    tags_and_catalog_page_with_link_headers,
    referrers_list_subjects_artifacts_with_filtering,
    referrers_page_with_link_headers_that_keep_the_filter,
    management_listing_pages_with_link_headers,
    deleting_tags_and_manifests,
    management_lists_manifests_and_deletes_repositories,
    invalid_names_tags_digests_and_methods,
    pushes_announce_events,
    concurrent_pushes_of_one_blob_and_one_tag_are_safe,
    requests_over_the_size_cap_get_413_and_change_nothing,
    racing_requests_never_store_bytes_under_another_digest,
    early_replies_reach_clients_that_are_still_sending,
    manifests_naming_one_digest_twice,
    deleting_a_manifest_with_many_tags,
    large_blobs_in_one_stream_and_in_chunks,
    pushed_images_have_exactly_the_expected_findings,
    every_platform_of_an_index_is_scanned,
    a_layer_that_is_no_tar_fails_its_scan_only,
    a_manifest_deleted_while_queued_fails_its_scan,
    a_whiteout_removes_a_packages_findings,
    a_shared_base_layer_is_read_once,
    later_advisories_reevaluate_scanned_images,
    reports_are_attached_to_their_images_as_referrers,
    advisories_are_downloaded_from_their_sources,
    advisories_stream_in_one_record_per_line,
    scan_endpoints_check_access_and_input,
    the_pull_policy_blocks_vulnerable_images;
    aws only:
    the_tables_stream_starts_scans,
);
