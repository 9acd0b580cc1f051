//! Starts a registry for one test and reads back what it stores over the OCI Distribution API.
//!
//! The registry is `berth serve` (binary found next to the test executable, or `BERTH_BIN`). With
//! `BERTH_TEST_REGISTRY=distribution` the same tests run against the CNCF reference registry (`docker-registry`), which
//! tells whether a failure is Berth's or the test's; distribution 2.8 has no referrers API, so the oras test fails there.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use tempfile::TempDir;

use crate::digest::sha256_digest;

const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Every manifest type a client of this suite pushes, so content negotiation never converts what we read back.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// A running registry owned by one test; stopped with SIGTERM when dropped.
pub struct Registry {
    child: Child,
    host: String,
    http: Client,
    log: PathBuf,
    // Held for its Drop: the data directory lives exactly as long as the server.
    _dir: TempDir,
}

/// A manifest as served, with the digest the registry announced for it.
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    pub json: serde_json::Value,
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until `GET /v2/` answers 200.
    pub fn start() -> Registry {
        // The port is free when we look but may be taken before the server binds it; a retry covers that race.
        let mut last_failure = String::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(registry) => return registry,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("registry did not start:\n{last_failure}");
    }

    fn try_start() -> Result<Registry, String> {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let host = format!("127.0.0.1:{port}");
        let data = dir.path().join("data");
        fs::create_dir(&data).map_err(|e| e.to_string())?;
        let log = dir.path().join("server.log");
        let log_file = File::create(&log).map_err(|e| e.to_string())?;

        let mut command = match std::env::var("BERTH_TEST_REGISTRY").as_deref() {
            Ok("distribution") => distribution_command(&dir, &host, &data)?,
            _ => {
                let bin = berth_bin();
                if !bin.exists() {
                    panic!(
                        "{} does not exist: build it with `cargo build -p berth-cli` (tests/run does) or set BERTH_BIN",
                        bin.display()
                    );
                }
                let mut c = Command::new(bin);
                c.arg("serve")
                    .arg("--addr")
                    .arg(&host)
                    .arg("--data-dir")
                    .arg(&data);
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        let mut registry = Registry {
            child,
            host,
            http,
            log,
            _dir: dir,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "server exited with {status} before it was ready\n{}",
                    self.log_text()
                ));
            }
            if let Ok(resp) = self.http.get(self.url("/v2/")).send()
                && resp.status() == StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "GET /v2/ did not answer 200 within {READY_TIMEOUT:?}\n{}",
                    self.log_text()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
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

    pub fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET a manifest and check the registry's `Docker-Content-Digest` is the digest of the bytes it sent.
    pub fn manifest(&self, repo: &str, reference: &str) -> Manifest {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self
            .http
            .get(self.url(&path))
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status();
        let digest = header(&resp, "docker-content-digest");
        let media_type = header(&resp, "content-type");
        let bytes = resp
            .bytes()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .to_vec();
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            digest,
            sha256_digest(&bytes),
            "GET {path}: Docker-Content-Digest is not the body's digest"
        );
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON: {e}"));
        Manifest {
            bytes,
            digest,
            media_type,
            json,
        }
    }

    /// Status of a manifest GET, for checks that a manifest is (or is no longer) there.
    pub fn manifest_status(&self, repo: &str, reference: &str) -> StatusCode {
        self.http
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
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
        let bytes = resp
            .bytes()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .to_vec();
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "GET {path} returned other content"
        );
        bytes
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
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|tags| {
                tags.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// The server's output so far, shown when a test fails so the server's side of the story is in the report.
    pub fn log_text(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(200)..].join("\n");
        format!("--- registry log ({}) ---\n{tail}", self.host)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_text());
        }
        // Every client of the test has finished by now, so nothing legitimate can hold the server up.
        let stopped = terminate(&mut self.child, STOP_TIMEOUT);
        if !stopped && !thread::panicking() {
            panic!(
                "registry ignored SIGTERM for {STOP_TIMEOUT:?} and was killed\n{}",
                self.log_text()
            );
        }
    }
}

/// SIGTERM, then SIGKILL if the process has not exited within `grace`: a graceful stop is what users do, and a
/// process that ignores it must not outlive the test. Returns whether it stopped on SIGTERM.
pub(crate) fn terminate(child: &mut Child, grace: Duration) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return true;
    }
    // The shell's builtin `kill`: procps' /bin/kill is not on every machine, and std cannot send SIGTERM.
    let sent = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh"])
        .arg(child.id().to_string())
        .status();
    if !sent.as_ref().is_ok_and(|s| s.success()) {
        eprintln!("could not send SIGTERM to process {}: {sent:?}", child.id());
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn header(resp: &Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
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

fn distribution_command(
    dir: &TempDir,
    host: &str,
    data: &std::path::Path,
) -> Result<Command, String> {
    let config = dir.path().join("distribution.yml");
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
