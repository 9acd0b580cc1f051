//! Harness for the end-to-end suite: starts a registry (`berth serve` on the embedded store, or the AWS functions
//! behind a CloudFront-like router on the AWS emulator, see [`registry`]), builds OCI images without any network pull,
//! isolates the real clients (skopeo, podman, buildah, docker, oras) from each other, and checks what the registry
//! serves.
//!
//! Every test starts its own registry on its own ports with its own data directory (or bucket and table) and gives
//! each client its own storage, so the tests of one binary run in parallel without sharing anything but the clients'
//! blob-info cache (see [`clients`]).

pub mod clients;
pub mod cmd;
pub mod credentials;
pub mod digest;
pub mod dockerd;
pub mod fixture;
pub mod oidc;
pub mod registry;
pub mod router;
pub mod service;

pub use cmd::{run, run_failing, run_with_stdin, stdout_of};
pub use digest::sha256_digest;
pub use fixture::{OciImage, OciLayout};
pub use registry::{HARNESS_USER_AGENT, Manifest, Registry, RegistryKind, berth_bin, function_bin};

/// Declares each named test body, a `fn(RegistryKind)` of the calling file, as a module of the same name with one
/// `#[test]` per registry kind: `<name>::embedded` (`berth serve`) and `<name>::aws_functions` (the functions behind
/// the router, on the AWS emulator). `BERTH_TEST_REGISTRY` can narrow what runs (see [`registry`]).
///
/// ```text
/// fn push_and_pull(kind: RegistryKind) {
///     let registry = Registry::start(kind);
///     // ...
/// }
/// berth_tests::registry_tests!(push_and_pull);
/// ```
#[macro_export]
macro_rules! registry_tests {
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[test]
            fn embedded() {
                $crate::RegistryKind::Embedded.run(super::$test)
            }

            #[test]
            fn aws_functions() {
                $crate::RegistryKind::AwsFunctions.run(super::$test)
            }
        }
    )+};
}

// ---- Content pushed over plain HTTP ---------------------------------------------------------------------------------
// For tests of Berth's own tools (`berth repository ...`): they need images in the registry, not a real client's push.

/// Pushes a tiny OCI image to `repo:tag` by HTTP (config and one layer, both derived from `seed`, then the manifest)
/// and returns the manifest digest the registry announced. The same `seed` gives the same manifest, so pushing it
/// again under another tag adds a tag to one manifest.
pub fn push_tiny_image(registry: &Registry, repo: &str, tag: &str, seed: &str) -> String {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Labels": { "berth.test.seed": seed } },
        "rootfs": { "type": "layers", "diff_ids": [] },
    })
    .to_string()
    .into_bytes();
    let layer = format!("layer of {seed}").into_bytes();
    let descriptor = |media_type: &str, bytes: &[u8]| serde_json::json!({ "mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len() });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    })
    .to_string();
    for blob in [&config, &layer] {
        let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha256_digest(blob));
        let resp = registry.request(reqwest::Method::POST, &path).body(blob.clone()).send().unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "POST {path}");
    }
    let path = format!("/v2/{repo}/manifests/{tag}");
    let resp = registry
        .request(reqwest::Method::PUT, &path)
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "PUT {path}");
    let digest = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(digest, sha256_digest(manifest.as_bytes()), "PUT {path}: Docker-Content-Digest");
    digest
}
