//! oras (Python client) against the registry: artifacts with their own artifactType, pulled back byte for byte, and
//! the OCI 1.1 referrers API listing artifacts whose `subject` points at another, with the artifactType filter.

use std::fs;
use std::path::Path;

use berth_tests::clients::oras;
use berth_tests::digest::{random_bytes, sha256_digest};
use berth_tests::{Registry, RegistryKind, stdout_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REPO: &str = "oras/artifacts";
const BUNDLE_TYPE: &str = "application/vnd.berth.test.bundle.v1";
const SBOM_TYPE: &str = "application/vnd.berth.test.sbom.v1";
const SIGNATURE_CONFIG_TYPE: &str = "application/vnd.berth.test.signature.config.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// Pushes `file` as `REPO:tag` and returns the manifest the registry serves for it.
fn push(registry: &Registry, tag: &str, file: &Path, extra: &[&str]) -> berth_tests::Manifest {
    let target = format!("{REPO}:{tag}");
    let mut args = vec!["push", registry.host(), &target, file.to_str().expect("UTF-8 path")];
    args.extend_from_slice(extra);
    let pushed = oras(registry, &args);
    assert_eq!(pushed["status"], 201, "manifest PUT status: {pushed}");
    let manifest = registry.manifest(REPO, tag);
    if let Some(digest) = pushed["digest"].as_str() {
        assert_eq!(digest, manifest.digest, "digest announced on PUT");
    }
    manifest
}

fn referrers(registry: &Registry, digest: &str, artifact_type: Option<&str>) -> (Value, Option<String>) {
    let mut path = format!("/v2/{REPO}/referrers/{digest}");
    if let Some(t) = artifact_type {
        path.push_str(&format!("?artifactType={t}"));
    }
    let resp = registry.get(&path);
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with(INDEX_TYPE), "GET {path}: Content-Type {content_type}");
    let filters = resp.headers().get("oci-filters-applied").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = resp.json().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(body["schemaVersion"], 2, "GET {path}: {body}");
    assert_eq!(body["mediaType"], INDEX_TYPE, "GET {path}: {body}");
    (body, filters)
}

/// The referrers descriptor the spec requires for `manifest`: its media type, digest and size, its artifactType
/// (the config's media type when the manifest has none), and its annotations.
fn expected_descriptor(manifest: &berth_tests::Manifest, artifact_type: &str) -> Value {
    let mut descriptor = json!({
        "mediaType": MANIFEST_TYPE,
        "digest": manifest.digest,
        "size": manifest.bytes.len(),
        "artifactType": artifact_type,
    });
    if let Some(annotations) = manifest.json.get("annotations") {
        descriptor["annotations"] = annotations.clone();
    }
    descriptor
}

/// Descriptors in digest order, without empty annotation maps, which the image spec treats as absent.
fn sorted_by_digest(descriptors: &Value) -> Vec<Value> {
    let mut list = descriptors.as_array().cloned().unwrap_or_default();
    for descriptor in &mut list {
        if descriptor["annotations"].as_object().is_some_and(|a| a.is_empty())
            && let Some(fields) = descriptor.as_object_mut()
        {
            fields.remove("annotations");
        }
    }
    list.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    list
}

fn push_pull_and_referrers(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let work = tempfile::tempdir().expect("work dir");
    let write = |name: &str, contents: &[u8]| {
        let path = work.path().join(name);
        fs::write(&path, contents).expect("write artifact file");
        path
    };

    let payload = random_bytes(4096);
    let bundle = push(&registry, "bundle", &write("bundle.bin", &payload), &["--artifact-type", BUNDLE_TYPE]);
    assert_eq!(bundle.json["artifactType"], BUNDLE_TYPE);
    let layer = &bundle.json["layers"][0];
    assert_eq!(layer["digest"], sha256_digest(&payload).as_str());
    assert_eq!(registry.blob(REPO, &sha256_digest(&payload)), payload);

    let out = work.path().join("pulled");
    fs::create_dir(&out).expect("create pull dir");
    oras(&registry, &["pull", registry.host(), &format!("{REPO}:bundle"), out.to_str().expect("UTF-8 path")]);
    assert_eq!(fs::read(out.join("bundle.bin")).expect("pulled file"), payload, "pulled bytes");
    registry.assert_blob_downloads_redirected("python-requests/", REPO, &[sha256_digest(&payload)]);

    // Nothing refers to the bundle yet: the referrers API answers an empty index, not 404.
    let (empty, _) = referrers(&registry, &bundle.digest, None);
    assert_eq!(empty["manifests"], json!([]), "referrers before any referrer exists");

    let subject = [
        "--subject-digest",
        bundle.digest.as_str(),
        "--subject-size",
        &bundle.bytes.len().to_string(),
        "--subject-media-type",
        MANIFEST_TYPE,
    ];
    // One referrer declares its artifactType; the other has none, so the registry must report its config media type.
    let sbom_args = [&["--artifact-type", SBOM_TYPE, "--annotation", "org.example.kind=sbom"][..], &subject].concat();
    let sbom = push(&registry, "sbom", &write("sbom.json", br#"{"packages":[]}"#), &sbom_args);
    assert_eq!(sbom.json["subject"]["digest"], bundle.digest.as_str());
    let signature_config = write("signature-config.json", br#"{"signer":"berth-tests"}"#);
    let signature_args =
        [&["--config", signature_config.to_str().expect("UTF-8 path"), "--config-media-type", SIGNATURE_CONFIG_TYPE][..], &subject]
            .concat();
    let signature = push(&registry, "signature", &write("signature.bin", &random_bytes(64)), &signature_args);
    assert!(signature.json.get("artifactType").is_none(), "{}", signature.json);

    let (all, _) = referrers(&registry, &bundle.digest, None);
    let expected = [expected_descriptor(&sbom, SBOM_TYPE), expected_descriptor(&signature, SIGNATURE_CONFIG_TYPE)];
    let expected: Value = sorted_by_digest(&Value::Array(expected.to_vec())).into();
    let listed: Value = sorted_by_digest(&all["manifests"]).into();
    assert_eq!(listed, expected, "referrers of the bundle");

    let (filtered, applied) = referrers(&registry, &bundle.digest, Some(SBOM_TYPE));
    assert_eq!(applied.as_deref(), Some("artifactType"), "OCI-Filters-Applied header");
    assert_eq!(Value::from(sorted_by_digest(&filtered["manifests"])), json!([expected_descriptor(&sbom, SBOM_TYPE)]), "filtered referrers");

    // The referrers themselves have no referrers.
    let (none, _) = referrers(&registry, &sbom.digest, None);
    assert_eq!(none["manifests"], json!([]));
}

berth_tests::registry_tests!(push_pull_and_referrers,);
