//! Starts a registry for one test and reads back what it stores over the OCI Distribution API.
//!
//! Three kinds of registry ([`RegistryKind`]):
//! - `embedded`: `berth serve` on the embedded store (binary found next to the test executable, or `BERTH_BIN`);
//! - `aws-functions`: Berth as deployed on AWS: the three function binaries `token`, `manifests` and `blobs` (next to
//!   `berth`), each its own process on its own port, over a fresh bucket and table on the AWS emulator
//!   (`BERTH_TEST_AWS_ENDPOINT`, which tests/run sets), behind nginx routing paths as CloudFront does
//!   ([`crate::router`]). Blob downloads are answered with a 307 to a presigned URL of the emulator;
//! - `distribution`: the CNCF reference registry (`docker-registry`), which tells whether a failure is Berth's or the
//!   test's; distribution 2.8 has no referrers API, so the oras test fails there.
//!
//! Tests declared with [`crate::registry_tests!`] run once against `embedded` and once against `aws-functions`.
//! `BERTH_TEST_REGISTRY` narrows that: `embedded` or `aws-functions` runs only that kind, `distribution` runs the
//! reference registry in place of `embedded` (and skips `aws-functions`).

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use tempfile::TempDir;

use crate::credentials::{self, Credentials};
use crate::digest::{random_token, sha256_digest};
use crate::router::{RoutedRequest, RoutingTable, UploadService};
use crate::service::{Service, stop_all, tail};

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Every manifest type a client of this suite pushes, so content negotiation never converts what we read back.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
/// The User-Agent of the harness's own requests, to tell them from the clients' in the router's log.
pub const HARNESS_USER_AGENT: &str = "berth-tests";
/// What Lambda lets through per request (6 MB payload, base64): the functions run with Lambda's cap, as deployed.
const LAMBDA_MAX_REQUEST_BYTES: &str = "4500000";
/// S3's smallest part size, so that multipart uploads start as early as the store allows.
const PART_SIZE_BYTES: &str = "5242880";
/// The variable through which tests/run hands over the AWS emulator (moto server, or LocalStack).
const AWS_ENDPOINT_VARIABLE: &str = "BERTH_TEST_AWS_ENDPOINT";

/// What serves a test's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    /// `berth serve` on the embedded store.
    Embedded,
    /// The token, manifests and blobs functions over S3 + DynamoDB on the emulator, behind a CloudFront-like router.
    AwsFunctions,
    /// The CNCF reference registry.
    Distribution,
}

impl RegistryKind {
    /// The name `BERTH_TEST_REGISTRY` uses.
    pub fn name(self) -> &'static str {
        match self {
            RegistryKind::Embedded => "embedded",
            RegistryKind::AwsFunctions => "aws-functions",
            RegistryKind::Distribution => "distribution",
        }
    }

    /// The kind a test written for `self` runs against under `BERTH_TEST_REGISTRY`, or `None` to skip it.
    pub fn selected(self) -> Option<RegistryKind> {
        let wanted = std::env::var("BERTH_TEST_REGISTRY").unwrap_or_default();
        match wanted.as_str() {
            "" => Some(self),
            "distribution" => (self == RegistryKind::Embedded).then_some(RegistryKind::Distribution),
            name if name == self.name() => Some(self),
            "embedded" | "aws-functions" => None,
            other => panic!("BERTH_TEST_REGISTRY={other}: expected embedded, aws-functions or distribution"),
        }
    }

    /// Runs `test` against this kind, or against what `BERTH_TEST_REGISTRY` puts in its place; skips it when that
    /// variable selects another kind.
    pub fn run(self, test: fn(RegistryKind)) {
        match self.selected() {
            Some(kind) => test(kind),
            None => eprintln!(
                "skipped: BERTH_TEST_REGISTRY={} does not select {}",
                std::env::var("BERTH_TEST_REGISTRY").unwrap_or_default(),
                self.name()
            ),
        }
    }
}

/// A running registry owned by one test; all its processes are stopped with SIGTERM when dropped.
pub struct Registry {
    kind: RegistryKind,
    host: String,
    http: Client,
    /// Every process serving the registry; on `aws-functions` nginx first, then the functions.
    services: Vec<Service>,
    /// nginx's access log (`aws-functions`).
    access_log: Option<PathBuf>,
    /// Where presigned blob URLs point: `<emulator endpoint>/<bucket>/` (`aws-functions`).
    presigned_prefix: Option<String>,
    /// The owner `berth serve` made on first start (Berth's kinds; the reference registry runs without auth).
    owner: Option<Credentials>,
    /// Where each function listens behind nginx (`aws-functions`), to check that nothing gets around it.
    function_ports: HashMap<String, u16>,
    /// Access tokens the harness got for its own requests, by scope.
    tokens: Mutex<HashMap<String, String>>,
    /// Settings given to every process of the registry (`berth serve` and the functions read the same variables).
    environment: Vec<(String, String)>,
    /// The variables every function of `aws-functions` runs with besides its own port and limits: the settings
    /// above, the emulator's endpoint and credentials, the bucket, table and registry name (empty for the other kinds).
    function_environment: Vec<(String, String)>,
    /// What takes uploads on `aws-functions` (the template's `UploadService`).
    uploads: UploadService,
    // Held for its Drop: the data directory lives exactly as long as the servers.
    _dir: TempDir,
}

/// A manifest as served, with the digest the registry announced for it.
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    pub json: serde_json::Value,
}

/// What must answer before a registry counts as started, besides `GET /v2/` on its host.
#[derive(Default)]
struct Startup {
    /// Ports that must accept connections (the functions behind the router).
    ports: Vec<u16>,
}

impl Registry {
    /// Starts a registry of `kind` on a free loopback port and waits until `GET /v2/` answers 200. Berth's kinds
    /// check AWS IAM logins with the emulator's STS.
    pub fn start(kind: RegistryKind) -> Registry {
        Self::start_with(kind, &[])
    }

    /// [`Registry::start`] with more settings (`BERTH_*` variables) for every process of the registry.
    pub fn start_with(kind: RegistryKind, settings: &[(&str, &str)]) -> Registry {
        Self::start_deployed(kind, UploadService::Container, settings)
    }

    /// [`Registry::start_with`], with `aws-functions` deployed with `uploads` as the template's `UploadService`.
    pub fn start_deployed(kind: RegistryKind, uploads: UploadService, settings: &[(&str, &str)]) -> Registry {
        let mut environment: Vec<(String, String)> = settings.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        if let Ok(endpoint) = std::env::var(AWS_ENDPOINT_VARIABLE) {
            environment.push(("BERTH_STS_ENDPOINT".into(), endpoint));
        }
        // A port is free when we look but may be taken before the server binds it; a retry covers that race.
        let mut last_failure = String::new();
        for _ in 0..3 {
            match Self::try_start(kind, uploads, &environment) {
                Ok(registry) => return registry,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("{} registry did not start:\n{last_failure}", kind.name());
    }

    fn try_start(kind: RegistryKind, uploads: UploadService, environment: &[(String, String)]) -> Result<Registry, String> {
        let dir = tempfile::Builder::new().prefix("berth-test-").tempdir().map_err(|e| e.to_string())?;
        let host = format!("127.0.0.1:{}", free_port()?);
        let http = Client::builder().timeout(Duration::from_secs(60)).user_agent(HARNESS_USER_AGENT).build().map_err(|e| e.to_string())?;
        let mut registry = Registry {
            kind,
            host,
            http,
            services: Vec::new(),
            access_log: None,
            presigned_prefix: None,
            owner: None,
            function_ports: HashMap::new(),
            tokens: Mutex::new(HashMap::new()),
            environment: environment.to_vec(),
            function_environment: Vec::new(),
            uploads,
            _dir: dir,
        };
        let startup = registry.spawn()?;
        registry.wait_ready(startup)?;
        if kind != RegistryKind::Distribution {
            let owner = Credentials::from_file(&registry._dir.path().join("data").join("initial-owner.json"))?;
            credentials::store(&registry.host, &owner);
            registry.owner = Some(owner);
        }
        Ok(registry)
    }

    fn spawn(&mut self) -> Result<Startup, String> {
        let dir = self._dir.path().to_owned();
        match self.kind {
            RegistryKind::Embedded => {
                let data = dir.join("data");
                let mut command = Command::new(existing(berth_bin()));
                command.arg("serve").arg("--addr").arg(&self.host).arg("--data-dir").arg(&data).args(["--name", REGISTRY_NAME]);
                command.envs(self.environment.iter().cloned());
                self.add_service("berth serve", &mut command)?;
                Ok(Startup::default())
            }
            RegistryKind::Distribution => {
                let mut command = distribution_command(&dir, &self.host, &dir.join("data"))?;
                self.add_service("docker-registry", &mut command)?;
                Ok(Startup::default())
            }
            RegistryKind::AwsFunctions => self.spawn_aws_functions(&dir),
        }
    }

    /// nginx on the registry's port in front of the three functions, and a short-lived `berth serve` that creates
    /// the bucket and table meanwhile (the functions need them only when the first request arrives).
    fn spawn_aws_functions(&mut self, dir: &Path) -> Result<Startup, String> {
        let endpoint = std::env::var(AWS_ENDPOINT_VARIABLE)
            .map_err(|_| format!("{AWS_ENDPOINT_VARIABLE} is not set: run the tests with tests/run, which starts the AWS emulator"))?;
        // Bucket names: 3-63 characters of lowercase letters, digits and hyphens; one bucket and table per test.
        let name = format!("berth-e2e-{}", random_token());
        self.presigned_prefix = Some(format!("{}/{name}/", endpoint.trim_end_matches('/')));
        let mut function_environment = self.environment.clone();
        function_environment.extend(
            [
                ("AWS_ENDPOINT_URL", endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_EC2_METADATA_DISABLED", "true"),
                ("BERTH_BUCKET", &name),
                ("BERTH_TABLE", &name),
                ("BERTH_REGISTRY_NAME", REGISTRY_NAME),
            ]
            .map(|(variable, value)| (variable.to_owned(), value.to_owned())),
        );
        let aws_env = |command: &mut Command| {
            command
                .envs(function_environment.iter().cloned())
                .env("BERTH_SIGNING_KEY_SECRET", format!("{name}-signing-key"))
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_LAMBDA_RUNTIME_API")
                .env_remove("BERTH_LOG_JSON");
        };

        self.create_resources(&aws_env, &name)?;
        let table = RoutingTable::from_template(self.uploads);
        let nginx_dir = dir.join("nginx");
        fs::create_dir(&nginx_dir).map_err(|e| e.to_string())?;
        // nginx's workers run as nobody when nginx starts as root and must reach their temp directories.
        for d in [dir, nginx_dir.as_path()] {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        }
        let mut ports = HashMap::new();
        for function in table.functions() {
            ports.insert(function, free_port()?);
        }
        let listen: u16 = self.host.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or("host without port")?;
        let config = nginx_dir.join("nginx.conf");
        let origin_secret = random_token();
        fs::write(&config, table.nginx_config(&nginx_dir, listen, &ports, &origin_secret)).map_err(|e| e.to_string())?;
        self.access_log = Some(nginx_dir.join("access.log"));
        let mut nginx = Command::new("nginx");
        nginx.arg("-p").arg(&nginx_dir).arg("-c").arg(&config).args(["-e", "stderr", "-g", "daemon off;"]);
        self.add_service("nginx", &mut nginx)?;

        let mut function_ports = Vec::new();
        for (function, port) in &ports {
            // The upload service is the blobs binary in a container: the same process without Lambda's cap.
            let on_container = function == "uploads";
            let mut command = Command::new(existing(function_bin(if on_container { "blobs" } else { function })));
            aws_env(&mut command);
            command
                .env("PORT", port.to_string())
                .env("BERTH_HOST", "127.0.0.1")
                .env("BERTH_PART_SIZE_BYTES", PART_SIZE_BYTES)
                .env("BERTH_ORIGIN_SECRET", &origin_secret);
            if !on_container {
                command.env("BERTH_MAX_REQUEST_BYTES", LAMBDA_MAX_REQUEST_BYTES);
            }
            // As in the template: only the token function reads the signing key, and it reads no blob.
            if function == "token" {
                command.env_remove("BERTH_BUCKET");
            } else {
                command.env_remove("BERTH_SIGNING_KEY_SECRET");
            }
            let what = if on_container { "upload service" } else { "function" };
            self.add_service(&format!("{function} {what} (port {port})"), &mut command)?;
            function_ports.push(*port);
        }

        self.function_ports = ports;
        self.function_environment = function_environment;
        Ok(Startup { ports: function_ports })
    }

    /// Runs `berth serve --create-resources` until it answers, then stops it: by then the bucket, the table and the
    /// signing key's secret exist, the key is published and the first owner's credentials are in `data/`.
    fn create_resources(&mut self, aws_env: &impl Fn(&mut Command), name: &str) -> Result<(), String> {
        let creator_host = format!("127.0.0.1:{}", free_port()?);
        let mut creator = Command::new(existing(berth_bin()));
        aws_env(&mut creator);
        creator
            .args(["serve", "--store", "aws", "--bucket", name, "--table", name, "--create-resources", "--data-dir"])
            .arg(self._dir.path().join("data"))
            .arg("--addr")
            .arg(&creator_host);
        self.add_service(&format!("berth serve --create-resources (bucket and table {name})"), &mut creator)?;
        let index = self.services.len() - 1;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.services[index].died() {
                return Err(format!("{} exited with {status}\n{}", self.services[index].name, self.log_text()));
            }
            if let Ok(resp) = self.http.get(format!("http://{creator_host}/v2/")).send()
                && answers(&resp)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("the resources were not created within {READY_TIMEOUT:?}\n{}", self.log_text()));
            }
            thread::sleep(Duration::from_millis(25));
        }
        if !self.services[index].stop(STOP_TIMEOUT) {
            return Err(format!("{} ignored SIGTERM\n{}", self.services[index].name, self.log_text()));
        }
        Ok(())
    }

    fn add_service(&mut self, name: &str, command: &mut Command) -> Result<(), String> {
        let log = self._dir.path().join(format!("{}.log", self.services.len()));
        self.services.push(Service::spawn(name, command, log)?);
        Ok(())
    }

    fn wait_ready(&mut self, startup: Startup) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let died = self.services.iter_mut().find_map(|s| s.died().map(|status| format!("{} exited with {status}", s.name)));
            if let Some(died) = died {
                return Err(format!("{died} before the registry was ready\n{}", self.log_text()));
            }
            let listening =
                |port: &u16| TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], *port)), Duration::from_millis(200)).is_ok();
            if startup.ports.iter().all(listening)
                && let Ok(resp) = self.http.get(self.url("/v2/")).send()
                && answers(&resp)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the registry was not ready within {READY_TIMEOUT:?}\n{}", self.log_text()));
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn kind(&self) -> RegistryKind {
        self.kind
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `127.0.0.1:PORT/<repo>:<tag>` for clients that take a plain reference.
    pub fn image_ref(&self, repo: &str, tag: &str) -> String {
        format!("{}/{repo}:{tag}", self.host)
    }

    /// `docker://127.0.0.1:PORT/<repo>:<tag>` for the containers/image transports.
    pub fn docker_ref(&self, repo: &str, tag: &str) -> String {
        format!("docker://{}", self.image_ref(repo, tag))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// The blocking HTTP client, for requests the helpers below do not cover.
    pub fn http(&self) -> &Client {
        &self.http
    }

    /// The function URLs behind the router (`aws-functions`): `http://127.0.0.1:PORT` by function.
    pub fn function_urls(&self) -> HashMap<String, String> {
        self.function_ports.iter().map(|(function, port)| (function.clone(), format!("http://127.0.0.1:{port}"))).collect()
    }

    /// What the functions of `aws-functions` are started with besides their port and limits (empty for the other
    /// kinds): the whole environment of a function run outside the router, such as the scan function fed one stream
    /// event on stdin.
    pub fn function_environment(&self) -> &[(String, String)] {
        &self.function_environment
    }

    /// The owner's credentials (none for the reference registry, which runs without authentication).
    pub fn owner(&self) -> Option<&Credentials> {
        self.owner.as_ref()
    }

    /// A request of the owner's: with an access token for every action on what `path` names (repository, mount
    /// source, catalog, management), from the registry's token endpoint.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let request = self.http.request(method, self.url(path));
        match &self.owner {
            Some(owner) => request.bearer_auth(self.token(owner, &scopes_for(path))),
            None => request,
        }
    }

    fn token(&self, owner: &Credentials, scopes: &[String]) -> String {
        let key = scopes.join(" ");
        if let Some(token) = self.tokens.lock().expect("no holder panics").get(&key) {
            return token.clone();
        }
        let mut query: Vec<(&str, &str)> = vec![("service", REGISTRY_NAME)];
        query.extend(scopes.iter().map(|scope| ("scope", scope.as_str())));
        let resp = self
            .http
            .get(self.url("/token"))
            .query(&query)
            .basic_auth(&owner.username, Some(&owner.password))
            .send()
            .unwrap_or_else(|e| panic!("GET /token: {e}"));
        assert_eq!(resp.status(), StatusCode::OK, "the owner's login failed");
        let body: serde_json::Value = resp.json().expect("token JSON");
        let token = body["token"].as_str().expect("a token").to_owned();
        self.tokens.lock().expect("no holder panics").insert(key, token.clone());
        token
    }

    pub fn get(&self, path: &str) -> Response {
        self.request(reqwest::Method::GET, path).send().unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET a manifest and check the registry's `Docker-Content-Digest` is the digest of the bytes it sent.
    pub fn manifest(&self, repo: &str, reference: &str) -> Manifest {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self
            .request(reqwest::Method::GET, &path)
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status();
        let digest = header(&resp, "docker-content-digest");
        let media_type = header(&resp, "content-type");
        let bytes = resp.bytes().unwrap_or_else(|e| panic!("GET {path}: {e}")).to_vec();
        assert_eq!(status, StatusCode::OK, "GET {path}: {}", String::from_utf8_lossy(&bytes));
        assert_eq!(digest, sha256_digest(&bytes), "GET {path}: Docker-Content-Digest is not the body's digest");
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("GET {path}: body is not JSON: {e}"));
        Manifest { bytes, digest, media_type, json }
    }

    /// Status of a manifest GET, for checks that a manifest is (or is no longer) there.
    pub fn manifest_status(&self, repo: &str, reference: &str) -> StatusCode {
        self.request(reqwest::Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .unwrap_or_else(|e| panic!("GET manifest {repo}:{reference}: {e}"))
            .status()
    }

    /// GET a blob and check its bytes hash to the digest it was asked by.
    pub fn blob(&self, repo: &str, digest: &str) -> Vec<u8> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self.get(&path);
        let status = resp.status();
        let bytes = resp.bytes().unwrap_or_else(|e| panic!("GET {path}: {e}")).to_vec();
        assert_eq!(status, StatusCode::OK, "GET {path}: {}", String::from_utf8_lossy(&bytes));
        assert_eq!(sha256_digest(&bytes), digest, "GET {path} returned other content");
        bytes
    }

    /// GET a big blob, hashing it as it arrives, and check it hashes to `digest`; returns its size.
    pub fn blob_size(&self, repo: &str, digest: &str) -> u64 {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self.get(&path);
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        let (size, got) = crate::digest::sha256_digest_of(resp);
        assert_eq!(got, digest, "GET {path} returned other content");
        size
    }

    /// Tags of `repo` per `GET /v2/<name>/tags/list`; a repository the registry does not know has none.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let path = format!("/v2/{repo}/tags/list");
        let resp = self.get(&path);
        if resp.status() == StatusCode::NOT_FOUND {
            return Vec::new();
        }
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        let body: serde_json::Value = resp.json().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let mut tags: Vec<String> =
            body["tags"].as_array().map(|tags| tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default();
        tags.sort();
        tags
    }

    /// Every process serving the registry: its name, process id and the file its output goes to.
    pub fn processes(&self) -> Vec<(String, u32, PathBuf)> {
        self.services
            .iter()
            .filter(|service| !service.stopped)
            .map(|service| (service.name.clone(), service.child.id(), service.log.clone()))
            .collect()
    }

    /// The requests the router passed to the functions so far (`aws-functions`; empty for the other kinds).
    pub fn routed_requests(&self) -> Vec<RoutedRequest> {
        let Some(log) = &self.access_log else {
            return Vec::new();
        };
        fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(|line| RoutedRequest::parse(line).unwrap_or_else(|| panic!("unexpected access log line: {line}")))
            .collect()
    }

    /// On `aws-functions`, asserts that the client whose User-Agent contains `client` downloaded each blob of
    /// `digests` from `repo` by following a 307 of the blobs function to a presigned URL of the test's bucket on the
    /// emulator (so the bytes the client got came from S3), and that no blob download was ever answered with the
    /// bytes by a function. The other kinds serve blobs themselves, so there is nothing to check.
    pub fn assert_blob_downloads_redirected(&self, client: &str, repo: &str, digests: &[String]) {
        let Some(prefix) = &self.presigned_prefix else {
            return;
        };
        let presigned = |r: &RoutedRequest| {
            r.function == "blobs" && r.status == 307 && r.location.starts_with(prefix.as_str()) && r.location.contains("X-Amz-Signature=")
        };
        // nginx writes a request's log line right after the response, which the client may have read before.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let requests = self.routed_requests();
            let blob_gets: Vec<&RoutedRequest> = requests.iter().filter(|r| r.method == "GET" && is_blob_path(&r.path)).collect();
            let mut problems: Vec<String> = blob_gets
                .iter()
                .filter(|r| !presigned(r) && (r.status < 400 || r.function != "blobs"))
                .map(|r| format!("a blob GET was not redirected to a presigned URL under {prefix}: {r}"))
                .collect();
            for digest in digests {
                let path = format!("/v2/{repo}/blobs/{digest}");
                let redirected = blob_gets.iter().any(|r| r.path == path && r.user_agent.contains(client) && presigned(r));
                if !redirected {
                    problems.push(format!("{client} did not GET {path} through a 307 to a presigned URL"));
                }
            }
            if problems.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let log: Vec<String> = requests.iter().map(ToString::to_string).collect();
                panic!("{}\n--- routed requests ---\n{}", problems.join("\n"), log.join("\n"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// On `aws-functions`, asserts that every request reached the function CloudFront would have sent it to, per the
    /// template's path patterns (so nginx's regexes and CloudFront's globs agree on every path the clients used).
    /// Also checked when the registry is dropped.
    pub fn assert_routed_like_cloudfront(&self) {
        if self.access_log.is_none() {
            return;
        }
        let table = RoutingTable::from_template(self.uploads);
        let misrouted: Vec<String> = self
            .routed_requests()
            .iter()
            // Requests nginx answered itself (a TLS handshake on the plain HTTP port, which clients try first).
            .filter(|r| !r.function.is_empty() && r.function != "-")
            .filter(|r| r.function != table.function_for(&r.path))
            .map(|r| format!("{r}: CloudFront sends it to {}", table.function_for(&r.path)))
            .collect();
        assert!(misrouted.is_empty(), "requests routed unlike CloudFront:\n{}", misrouted.join("\n"));
    }

    /// The output of every process of the registry so far (and the router's access log), shown when a test fails so
    /// the server's side of the story is in the report.
    pub fn log_text(&self) -> String {
        self.logs(200)
    }

    /// Everything every process of the registry logged so far, and the router's whole access log.
    pub fn full_logs(&self) -> String {
        self.logs(usize::MAX)
    }

    fn logs(&self, lines: usize) -> String {
        let mut text = format!("=== {} registry at {} ===", self.kind.name(), self.host);
        for service in &self.services {
            text.push('\n');
            text.push_str(&service.log_tail(lines));
        }
        if let Some(log) = &self.access_log {
            let requests = fs::read_to_string(log).unwrap_or_default();
            text.push_str(&format!("\n--- nginx access log (function, method, URI, status, user agent) ---\n{}", tail(&requests, lines)));
        }
        text
    }
}

/// Whether a `GET /v2/` answer comes from a started registry: 200, or 401 asking for a token.
fn answers(resp: &Response) -> bool {
    resp.status() == StatusCode::OK || resp.status() == StatusCode::UNAUTHORIZED
}

/// `GET /v2/<name>/blobs/<digest>` (not an upload path).
fn is_blob_path(path: &str) -> bool {
    path.rsplit_once("/blobs/").is_some_and(|(repo, rest)| repo.starts_with("/v2/") && rest.starts_with("sha256:") && !rest.contains('/'))
}

impl Drop for Registry {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_text());
        }
        // Every client of the test has finished by now, so nothing legitimate can hold a server up.
        let killed = stop_all(&mut self.services, STOP_TIMEOUT);
        if thread::panicking() {
            return;
        }
        if !killed.is_empty() {
            panic!("{} ignored SIGTERM for {STOP_TIMEOUT:?} and were killed\n{}", killed.join(", "), self.log_text());
        }
        self.assert_routed_like_cloudfront();
    }
}

/// The name every Berth registry of the suite runs under.
pub const REGISTRY_NAME: &str = "berth-e2e";

/// The scopes an owner's request for `path` needs: every action on the repository it names and on a mount's
/// `from`, the catalog and management.
fn scopes_for(path: &str) -> Vec<String> {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let mut scopes = vec!["registry:catalog:*".to_owned(), "registry:manage:*".to_owned()];
    let rest = route.strip_prefix("/v2/").or_else(|| route.strip_prefix("/berth/v1/repositories/"));
    let repository = rest.map(|rest| {
        // The rightmost keyword ends the name, which may itself hold `blobs` or `manifests` segments.
        let end = ["/blobs/", "/manifests/", "/tags/", "/referrers/"].iter().filter_map(|keyword| rest.rfind(keyword)).max();
        let end = end.or_else(|| rest.strip_suffix("/manifests").map(str::len));
        end.map_or(rest, |at| &rest[..at])
    });
    scopes.extend(repository.filter(|name| !name.is_empty() && *name != "_catalog").map(|name| format!("repository:{name}:*")));
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    scopes.extend(pairs.iter().filter(|(key, _)| key == "from").map(|(_, from)| format!("repository:{from}:pull")));
    scopes
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).map_err(|e| e.to_string())
}

/// `bin`, which the suite cannot do without: a missing one fails the test at once, with how to build it.
fn existing(bin: PathBuf) -> PathBuf {
    assert!(
        bin.exists(),
        "{} does not exist: build it with `cargo build -p berth-cli -p berth-token -p berth-manifests -p berth-blobs` \
         (tests/run does) or set BERTH_BIN",
        bin.display()
    );
    bin
}

fn header(resp: &Response, name: &str) -> String {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// `BERTH_BIN`, else `target/<profile>/berth` beside the `deps/` directory that holds the test executable.
pub fn berth_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("BERTH_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current test executable");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("berth"))
        .expect("test executable lives in target/<profile>/deps")
}

/// A function binary (`token`, `manifests`, `blobs`) from the directory of [`berth_bin`].
pub fn function_bin(name: &str) -> PathBuf {
    berth_bin().with_file_name(name)
}

fn distribution_command(dir: &Path, host: &str, data: &Path) -> Result<Command, String> {
    let config = dir.join("distribution.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {host}\n",
            data.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut c = Command::new("docker-registry");
    c.arg("serve").arg(config);
    Ok(c)
}
