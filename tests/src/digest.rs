//! Content digests, and the uncompressed view of gzip layers that clients re-compress on push.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::cmd::run_with_stdin;

/// `sha256:<hex>` of `bytes`, the form OCI descriptors and `Docker-Content-Digest` use.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Size and `sha256:<hex>` of everything `reader` yields, read in pieces: for blobs too big to hold in memory.
pub fn sha256_digest_of(mut reader: impl std::io::Read) -> (u64, String) {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    let mut size = 0;
    loop {
        let read = reader.read(&mut buffer).expect("read the bytes to hash");
        if read == 0 {
            return (size, format!("sha256:{}", hex::encode(hasher.finalize())));
        }
        hasher.update(&buffer[..read]);
        size += read as u64;
    }
}

/// Digest of a gzip layer's uncompressed tar: the layer's `diff_id`, which survives the re-compression that
/// podman, buildah and docker apply when they push, so it is what ties a pushed layer to the image it came from.
pub fn diff_id(gzip_layer: &[u8]) -> String {
    sha256_digest(&gunzip(gzip_layer))
}

/// Decompresses with the system's gzip rather than a crate: the suite needs it only for verification.
pub fn gunzip(gzip: &[u8]) -> Vec<u8> {
    run_with_stdin(Command::new("gzip").arg("-dc"), gzip).stdout
}

/// Contents of the member whose path ends in `name` inside a gzip layer tar.
pub fn file_in_layer(gzip_layer: &[u8], name: &str) -> Vec<u8> {
    run_with_stdin(Command::new("tar").args(["-xzO", "-f", "-", "--wildcards"]).arg(format!("*{name}")), gzip_layer).stdout
}

/// Unpredictable bytes, so each test's images have blobs no other test or earlier run can have pushed.
pub fn random_bytes(len: usize) -> Vec<u8> {
    use std::io::Read;
    let mut buf = vec![0; len];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).expect("read /dev/urandom");
    buf
}

/// A random lowercase hex token for unique file and tag names.
pub fn random_token() -> String {
    hex::encode(random_bytes(6))
}
