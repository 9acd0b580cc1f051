//! Commands for the containers/image clients (skopeo, podman, buildah) and the Python oras client, each set up so
//! that parallel tests do not share state.
//!
//! podman and buildah get a private storage root, run root and libpod tmpdir per test. What they cannot be given
//! per process as root is the blob-info cache in /var/lib/containers/cache, which remembers which blobs a registry
//! location already has and lets a client skip uploading them. Two things keep it harmless: every fixture has random
//! blobs that no earlier run can have recorded, and the cache is deleted once per test binary before its first
//! client runs (cargo runs test binaries one after another, and the `Once` holds back every test of this binary
//! until the deletion is done, so no client has the database open meanwhile).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use tempfile::TempDir;

use crate::credentials;

static CLEAR_BLOB_INFO_CACHE: Once = Once::new();

/// Deletes the containers blob-info cache (root's and the invoking user's) once per test binary.
pub fn clear_blob_info_cache() {
    CLEAR_BLOB_INFO_CACHE.call_once(|| {
        let mut dirs = vec![PathBuf::from("/var/lib/containers/cache")];
        if let Some(home) = std::env::var_os("HOME") {
            dirs.push(Path::new(&home).join(".local/share/containers/cache"));
        }
        for dir in dirs {
            for file in ["blob-info-cache-v1.boltdb", "blob-info-cache-v1.sqlite"] {
                match std::fs::remove_file(dir.join(file)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("cannot delete {}: {e}", dir.join(file).display()),
                }
            }
        }
    });
}

/// `skopeo` talking plain HTTP to the test registry.
pub fn skopeo() -> Command {
    clear_blob_info_cache();
    let mut c = Command::new("skopeo");
    c.env("REGISTRY_AUTH_FILE", credentials::auth_file());
    c
}

/// A private containers-storage for podman and buildah, removed with the test.
pub struct Storage {
    dir: TempDir,
}

impl Storage {
    pub fn new() -> Storage {
        clear_blob_info_cache();
        Storage { dir: tempfile::Builder::new().prefix("berth-storage-").tempdir().expect("create storage dir") }
    }

    /// `podman` on this storage with vfs (works everywhere, no overlay mounts) and no systemd or journald.
    pub fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("REGISTRY_AUTH_FILE", credentials::auth_file());
        c.args(self.storage_args()).arg("--tmpdir").arg(self.dir.path().join("libpod")).args([
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ]);
        c
    }

    /// `buildah` on this storage.
    pub fn buildah(&self) -> Command {
        let mut c = Command::new("buildah");
        c.env("REGISTRY_AUTH_FILE", credentials::auth_file());
        c.args(self.storage_args());
        c
    }

    fn storage_args(&self) -> Vec<String> {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        vec!["--root".into(), path("root"), "--runroot".into(), path("run"), "--storage-driver".into(), "vfs".into()]
    }
}

impl Default for Storage {
    fn default() -> Self {
        Self::new()
    }
}

/// The Python interpreter of the venv that has the `oras` package (`BERTH_TEST_PYTHON`, set by tests/run).
pub fn python() -> Command {
    Command::new(std::env::var_os("BERTH_TEST_PYTHON").unwrap_or_else(|| "python3".into()))
}

/// Path of a helper script shipped in tests/support.
pub fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("support").join(name)
}

/// Runs tests/support/oras_client.py (the Python oras client) with `args` as the registry's owner and returns the JSON
/// it prints.
pub fn oras(registry: &crate::Registry, args: &[&str]) -> serde_json::Value {
    let mut command = python();
    if let Some(owner) = registry.owner() {
        command.env("ORAS_USERNAME", &owner.username).env("ORAS_PASSWORD", &owner.password);
    }
    let out = crate::stdout_of(command.arg(support_file("oras_client.py")).args(args));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("oras_client.py printed no JSON ({e}): {out}"))
}
