//! What a registry needs before its first login: the signing key seed `berth serve` keeps in its data directory,
//! and the first owner, a service principal whose credentials go to `<data-dir>/initial-owner.json`.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
};

use super::{
    access::{RepositoryPattern, Role},
    directory::{Directory, DirectoryError},
    keys::MIN_SEED_BYTES,
    secrets,
};

pub const SIGNING_KEY_FILE: &str = "signing-key";
pub const INITIAL_OWNER_FILE: &str = "initial-owner.json";
const INITIAL_OWNER_NAME: &str = "initial-owner";

/// Creates `path` readable and writable only by this user, failing when it exists.
fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The seed in `<data_dir>/signing-key`, made (random, owner-only) on first use.
pub fn local_signing_seed(data_dir: &Path) -> io::Result<Vec<u8>> {
    let path = data_dir.join(SIGNING_KEY_FILE);
    match create_private(&path, secrets::generate(0).0.as_bytes()) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let seed = std::fs::read(&path)?;
    let seed = seed.trim_ascii().to_vec();
    if seed.len() < MIN_SEED_BYTES {
        return Err(io::Error::other(format!("{} holds fewer than {MIN_SEED_BYTES} bytes", path.display())));
    }
    Ok(seed)
}

/// Makes the first owner when the registry has no service principal yet, writing `{"username", "password"}` to
/// `<data_dir>/initial-owner.json` (owner-only). Returns the file's path when it made one.
pub async fn initial_owner(directory: &Directory, data_dir: &Path) -> Result<Option<(String, PathBuf)>, DirectoryError> {
    if directory.has_principals().await? {
        return Ok(None);
    }
    let (principal, password) = match directory.create_principal(INITIAL_OWNER_NAME, vec![Role::Owner], RepositoryPattern::everything(), None).await {
        // Another process bootstrapping the same store got there first.
        Err(DirectoryError::Exists(_)) => return Ok(None),
        other => other?,
    };
    let path = data_dir.join(INITIAL_OWNER_FILE);
    let contents = serde_json::to_vec_pretty(&serde_json::json!({"username": principal.id, "password": password})).expect("JSON serializes");
    // A file left by an earlier store in this directory would hold stale credentials: it is replaced.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(DirectoryError::Invalid(format!("cannot replace {}: {error}", path.display()))),
    }
    create_private(&path, &contents).map_err(|error| DirectoryError::Invalid(format!("cannot write {}: {error}", path.display())))?;
    Ok(Some((principal.id, path)))
}
