//! The credentials of the registries a test process starts, where the clients look for them: one docker-style
//! `config.json` per process (`auths` by host, Basic credentials), which skopeo, podman and buildah read through
//! `REGISTRY_AUTH_FILE` and `berth` through `DOCKER_CONFIG`. docker logs in itself, with `docker login`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tempfile::TempDir;

/// A user name and password to log in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    /// `user:password`, as `--creds` and `ctr --user` take them.
    pub fn pair(&self) -> String {
        format!("{}:{}", self.username, self.password)
    }

    /// Reads `{"username", "password"}` (what `berth serve` writes to initial-owner.json).
    pub fn from_file(path: &Path) -> Result<Credentials, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let field = |name: &str| json[name].as_str().map(str::to_owned).ok_or_else(|| format!("{} has no {name}", path.display()));
        Ok(Credentials { username: field("username")?, password: field("password")? })
    }
}

struct ConfigDir {
    dir: TempDir,
    auths: Mutex<HashMap<String, String>>,
}

fn config_dir() -> &'static ConfigDir {
    static DIR: OnceLock<ConfigDir> = OnceLock::new();
    DIR.get_or_init(|| ConfigDir {
        dir: tempfile::Builder::new().prefix("berth-auth-").tempdir().expect("create the credentials directory"),
        auths: Mutex::new(HashMap::new()),
    })
}

/// The directory holding the process's `config.json` (for `DOCKER_CONFIG`).
pub fn docker_config_dir() -> PathBuf {
    config_dir().dir.path().to_owned()
}

/// The process's `config.json` (for `REGISTRY_AUTH_FILE`).
pub fn auth_file() -> PathBuf {
    docker_config_dir().join("config.json")
}

/// Records `credentials` for `host` in the process's `config.json`, replaced whole so readers never see half a file.
pub fn store(host: &str, credentials: &Credentials) {
    let config = config_dir();
    let mut auths = config.auths.lock().expect("no writer panics");
    auths.insert(host.to_owned(), STANDARD.encode(credentials.pair()));
    let json = serde_json::json!({
        "auths": auths.iter().map(|(host, auth)| (host.clone(), serde_json::json!({"auth": auth}))).collect::<serde_json::Map<_, _>>()
    });
    let partial = config.dir.path().join("config.json.partial");
    std::fs::write(&partial, json.to_string()).expect("write the credentials file");
    std::fs::rename(&partial, auth_file()).expect("replace the credentials file");
}
