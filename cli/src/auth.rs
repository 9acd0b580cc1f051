//! Credentials and tokens for the CLI: docker's `config.json` (honouring `DOCKER_CONFIG`), where `berth login`
//! stores a registry's login and every other command finds it, and docker's token flow (challenge, realm, bearer).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::Url;
use serde_json::{Value, json};

/// ACR's docker user name for a refresh token given as the password: what `berth login` stores.
pub const REFRESH_TOKEN_USERNAME: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// docker's client configuration file.
pub fn docker_config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".docker"));
    dir.join("config.json")
}

/// The key docker files a registry's credentials under: its host and port.
pub fn config_key(registry: &Url) -> String {
    match registry.port() {
        Some(port) => format!("{}:{port}", registry.host_str().unwrap_or_default()),
        None => registry.host_str().unwrap_or_default().to_owned(),
    }
}

/// The credentials docker's configuration holds for `registry` (an `auth` entry; an `identitytoken` counts as a refresh
/// token under the null user name, as docker itself keeps ACR's).
pub fn stored(registry: &Url) -> Option<Credentials> {
    let text = std::fs::read_to_string(docker_config_path()).ok()?;
    let config: Value = serde_json::from_str(&text).ok()?;
    let key = config_key(registry);
    let entry = [key.clone(), format!("https://{key}"), format!("http://{key}")].iter().find_map(|key| config["auths"].get(key).cloned())?;
    if let Some(token) = entry["identitytoken"].as_str().filter(|token| !token.is_empty()) {
        return Some(Credentials { username: REFRESH_TOKEN_USERNAME.to_owned(), password: token.to_owned() });
    }
    let decoded = String::from_utf8(STANDARD.decode(entry["auth"].as_str()?).ok()?).ok()?;
    let (username, password) = decoded.split_once(':')?;
    Some(Credentials { username: username.to_owned(), password: password.to_owned() })
}

/// Stores `credentials` for `registry` in docker's configuration, keeping everything else in it; the file is
/// replaced whole and readable only by its owner.
pub fn store(registry: &Url, credentials: &Credentials) -> Result<PathBuf, String> {
    let path = docker_config_path();
    let mut config: Value = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if !config["auths"].is_object() {
        config["auths"] = json!({});
    }
    let auth = STANDARD.encode(format!("{}:{}", credentials.username, credentials.password));
    config["auths"][config_key(registry)] = json!({ "auth": auth });
    let dir = path.parent().expect("the config file is in a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let partial = dir.join("config.json.berth-partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        use std::io::Write;
        let mut file = options.open(&partial)?;
        file.write_all(serde_json::to_string_pretty(&config).expect("JSON serializes").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, &path)
    };
    write(&options).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// A `WWW-Authenticate: Bearer` challenge: where to get a token, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

impl Challenge {
    pub fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut values = HashMap::new();
        let mut rest = params.trim();
        while let Some((key, after)) = rest.split_once('=') {
            let after = after.trim_start();
            let (value, remainder) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"')?;
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => after.split_once(',').map_or((after, ""), |(value, remainder)| (value, remainder)),
            };
            values.insert(key.trim().to_ascii_lowercase(), value.to_owned());
            rest = remainder.trim_start_matches([',', ' ']);
        }
        Some(Challenge { realm: values.remove("realm")?, service: values.remove("service"), scope: values.remove("scope") })
    }
}

/// What a token endpoint answers.
#[derive(Debug, serde::Deserialize)]
pub struct TokenAnswer {
    pub token: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
}

impl TokenAnswer {
    pub fn access(&self) -> Option<&str> {
        self.token.as_deref().or(self.access_token.as_deref())
    }
}

/// Access tokens the process got, by the challenge they answer.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<String, String>>);

impl TokenCache {
    pub fn get(&self, challenge: &Challenge) -> Option<String> {
        self.0.lock().expect("no holder panics").get(&format!("{challenge:?}")).cloned()
    }

    pub fn put(&self, challenge: &Challenge, token: String) {
        self.0.lock().expect("no holder panics").insert(format!("{challenge:?}"), token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_quoted_and_bare_values() {
        let challenge = Challenge::parse(r#"Bearer realm="https://r.example/token",service="reg",scope="repository:a/b:pull,push",error="insufficient_scope""#).unwrap();
        assert_eq!(challenge.realm, "https://r.example/token");
        assert_eq!(challenge.service.as_deref(), Some("reg"));
        assert_eq!(challenge.scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(Challenge::parse(r#"Basic realm="x""#), None);
        assert_eq!(Challenge::parse("Bearer service=reg").map(|c| c.realm), None);
    }

    #[test]
    fn config_keys_are_host_and_port() {
        assert_eq!(config_key(&Url::parse("http://127.0.0.1:5000").unwrap()), "127.0.0.1:5000");
        assert_eq!(config_key(&Url::parse("https://registry.example").unwrap()), "registry.example");
    }
}
