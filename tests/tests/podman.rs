//! podman against the registry: push and pull an image, and push a two-platform manifest list built with
//! `podman manifest`, checked against the registry's own view of manifests, configs and layers.

use std::fs;

use berth_tests::clients::Storage;
use berth_tests::digest::{diff_id, file_in_layer};
use berth_tests::{OciImage, OciLayout, Registry, RegistryKind, run, stdout_of};

/// Checks the image the registry serves under `repo:tag` is `image` as podman stores it: the same config (so the
/// same image ID) and layers that decompress to the image's diff_ids and hold its files. The compressed layer
/// digests may differ because podman compresses again on push. Returns the manifest digest and the digests of the
/// blobs a pull downloads (config and layers).
fn assert_serves_image(registry: &Registry, repo: &str, tag: &str, image: &OciImage) -> (String, Vec<String>) {
    let manifest = registry.manifest(repo, tag);
    assert_eq!(manifest.json["config"]["digest"], image.config_digest.as_str(), "config of {repo}:{tag}");
    assert_eq!(registry.blob(repo, &image.config_digest), image.config);
    let layers = manifest.json["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), image.diff_ids.len(), "layer count of {repo}:{tag}");
    for ((layer, expected_diff_id), (name, contents)) in layers.iter().zip(&image.diff_ids).zip(&image.unique_files) {
        let blob = registry.blob(repo, layer["digest"].as_str().expect("layer digest"));
        assert_eq!(&diff_id(&blob), expected_diff_id);
        assert_eq!(&file_in_layer(&blob, name), contents, "{name} in layer {}", layer["digest"]);
    }
    let blobs = std::iter::once(image.config_digest.clone())
        .chain(layers.iter().map(|l| l["digest"].as_str().expect("layer digest").to_owned()))
        .collect();
    (manifest.digest, blobs)
}

fn inspect(storage: &Storage, reference: &str, format: &str) -> String {
    stdout_of(storage.podman().args(["image", "inspect", "--format", format, reference]))
}

fn push_then_pull_into_fresh_storage(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let layout = OciLayout::new();
    let image = layout.add_image("v1", "amd64", true);
    let reference = registry.image_ref("podman/app", "1");

    let storage = Storage::new();
    run(storage.podman().args(["pull", "-q"]).arg(image.oci_ref()));
    let image_id = image.config_digest.trim_start_matches("sha256:");
    assert_eq!(inspect(&storage, image_id, "{{.Id}}"), image_id, "podman keeps the config, so the ID is its digest");
    run(storage.podman().args(["tag", image_id, &reference]));
    let digest_file = tempfile::NamedTempFile::new().expect("digest file");
    run(storage.podman().args(["push", "--tls-verify=false", "--digestfile"]).arg(digest_file.path()).arg(&reference));
    let pushed_digest = fs::read_to_string(digest_file.path()).expect("read digest file");

    let (served_digest, served_blobs) = assert_serves_image(&registry, "podman/app", "1", &image);
    assert_eq!(served_digest, pushed_digest.trim(), "registry serves the manifest podman pushed");

    // Pull into an empty storage: same image ID, and podman records the registry's manifest digest.
    let fresh = Storage::new();
    run(fresh.podman().args(["pull", "-q", "--tls-verify=false"]).arg(&reference));
    assert_eq!(inspect(&fresh, &reference, "{{.Id}}"), image_id);
    assert_eq!(inspect(&fresh, &reference, "{{.Digest}}"), served_digest);
    registry.assert_blob_downloads_redirected("containers/", "podman/app", &served_blobs);
}

fn manifest_list_with_two_platforms(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let layout = OciLayout::new();
    let amd64 = layout.add_image("amd64", "amd64", true);
    let arm64 = layout.add_image("arm64", "arm64", false);
    let storage = Storage::new();
    let list = "localhost/berth-test-list";

    run(storage.podman().args(["manifest", "create", list]));
    for image in [&amd64, &arm64] {
        run(storage.podman().args(["manifest", "add", list]).arg(image.oci_ref()));
    }
    let digest_file = tempfile::NamedTempFile::new().expect("digest file");
    run(storage
        .podman()
        .args(["manifest", "push", "--all", "--tls-verify=false", "--digestfile"])
        .arg(digest_file.path())
        .arg(list)
        .arg(registry.docker_ref("podman/multi", "1")));
    let pushed_digest = fs::read_to_string(digest_file.path()).expect("read digest file");

    let index = registry.manifest("podman/multi", "1");
    assert_eq!(index.digest, pushed_digest.trim(), "registry serves the index podman pushed");
    assert!(
        matches!(
            index.media_type.as_str(),
            "application/vnd.oci.image.index.v1+json" | "application/vnd.docker.distribution.manifest.list.v2+json"
        ),
        "index served as {}",
        index.media_type
    );
    let entries = index.json["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 2, "{}", index.json);
    for image in [&amd64, &arm64] {
        let entry = entries
            .iter()
            .find(|e| e["platform"]["architecture"] == image.architecture.as_str())
            .unwrap_or_else(|| panic!("no {} entry in {}", image.architecture, index.json));
        assert_eq!(entry["platform"]["os"], "linux");
        // The instances are OCI manifests the registry accepts as they are, so podman copies them unchanged and the
        // index names the layout's manifest digests.
        assert_eq!(entry["digest"], image.manifest_digest.as_str(), "{} entry", image.architecture);
        let instance = registry.manifest("podman/multi", &image.manifest_digest);
        assert_eq!(instance.bytes, image.manifest);
        assert_eq!(entry["size"], instance.bytes.len());
        for digest in image.blob_digests() {
            assert_eq!(registry.blob("podman/multi", &digest), image.blob(&digest), "blob {digest}");
        }
    }

    // A client on an arm64 node resolves the index to the arm64 instance: pulling with --arch must give that image.
    let reference = registry.image_ref("podman/multi", "1");
    let fresh = Storage::new();
    run(fresh.podman().args(["pull", "-q", "--tls-verify=false", "--arch", "arm64"]).arg(&reference));
    assert_eq!(inspect(&fresh, &reference, "{{.Id}}"), arm64.config_digest.trim_start_matches("sha256:"));
    registry.assert_blob_downloads_redirected("containers/", "podman/multi", &arm64.blob_digests());
}

berth_tests::registry_tests!(push_then_pull_into_fresh_storage, manifest_list_with_two_platforms,);
