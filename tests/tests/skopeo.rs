//! skopeo against the registry: copy in, inspect, list-tags, copy out and delete, each checked digest for digest.

use berth_tests::clients::skopeo;
use berth_tests::fixture::read_image;
use berth_tests::{OciLayout, Registry, RegistryKind, run, run_failing, stdout_of};
use reqwest::StatusCode;

const REPO: &str = "skopeo/app";

fn copy_inspect_list_copy_out_and_delete(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let layout = OciLayout::new();
    let image = layout.add_image("v1", "amd64", true);
    let other = layout.add_image("other", "arm64", false);

    // Copy in. skopeo keeps an OCI manifest and its compressed blobs unchanged when the registry accepts them, so
    // the registry must serve exactly the layout's bytes back.
    for (img, tag) in [(&image, "v1"), (&other, "other")] {
        run(skopeo().args(["copy", "--dest-tls-verify=false"]).arg(img.oci_ref()).arg(registry.docker_ref(REPO, tag)));
    }
    let served = registry.manifest(REPO, "v1");
    assert_eq!(served.digest, image.manifest_digest);
    assert_eq!(served.bytes, image.manifest);
    assert_eq!(served.media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(registry.manifest(REPO, &image.manifest_digest).bytes, image.manifest, "GET by digest");
    for digest in image.blob_digests() {
        assert_eq!(registry.blob(REPO, &digest), image.blob(&digest), "blob {digest}");
    }

    // Inspect: the digest skopeo reports is the one we pushed, and so are the layers and the raw manifest.
    let inspect: serde_json::Value =
        serde_json::from_str(&stdout_of(skopeo().args(["inspect", "--tls-verify=false"]).arg(registry.docker_ref(REPO, "v1"))))
            .expect("inspect JSON");
    assert_eq!(inspect["Digest"], image.manifest_digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Layers"], serde_json::json!(image.layers));
    let raw = run(skopeo().args(["inspect", "--raw", "--tls-verify=false"]).arg(registry.docker_ref(REPO, "v1")));
    assert_eq!(raw.stdout, image.manifest, "inspect --raw");

    // A registry-to-registry copy under a second tag: the blobs already exist, only the manifest is put again.
    run(skopeo()
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(registry.docker_ref(REPO, "v1"))
        .arg(registry.docker_ref(REPO, "v2")));
    assert_eq!(registry.manifest(REPO, "v2").digest, image.manifest_digest);

    // Into another repository of the same registry: skopeo knows the blobs live in REPO and asks the registry to
    // mount them from there (falling back to an upload if refused); either way the mirror must serve them.
    let mirror = "mirror/app";
    run(skopeo()
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(registry.docker_ref(REPO, "v1"))
        .arg(registry.docker_ref(mirror, "v1")));
    assert_eq!(registry.manifest(mirror, "v1").bytes, image.manifest);
    for digest in image.blob_digests() {
        assert_eq!(registry.blob(mirror, &digest), image.blob(&digest), "mirrored blob {digest}");
    }

    let tags: serde_json::Value = serde_json::from_str(&stdout_of(
        skopeo().args(["list-tags", "--tls-verify=false"]).arg(format!("docker://{}/{REPO}", registry.host())),
    ))
    .expect("list-tags JSON");
    let mut listed: Vec<&str> = tags["Tags"].as_array().expect("Tags").iter().filter_map(|t| t.as_str()).collect();
    listed.sort_unstable();
    assert_eq!(listed, ["other", "v1", "v2"]);

    // Copy out into a fresh layout: same manifest digest and the very same blobs.
    let out = tempfile::tempdir().expect("out dir");
    let out_layout = out.path().join("layout");
    run(skopeo()
        .args(["copy", "--src-tls-verify=false"])
        .arg(registry.docker_ref(REPO, "v1"))
        .arg(format!("oci:{}:copied", out_layout.display())));
    let copied = read_image(&out_layout, "copied");
    assert_eq!(copied.manifest_digest, image.manifest_digest);
    assert_eq!(copied.manifest, image.manifest);
    for digest in image.blob_digests() {
        assert_eq!(copied.blob(&digest), image.blob(&digest), "copied blob {digest}");
    }
    // On the AWS functions skopeo got those bytes from S3, through the blobs function's presigned redirect.
    registry.assert_blob_downloads_redirected("skopeo/", REPO, &image.blob_digests());

    // Delete by tag resolves to the manifest digest and deletes the manifest, so both tags that point at it go
    // while the other image stays.
    run(skopeo().args(["delete", "--tls-verify=false"]).arg(registry.docker_ref(REPO, "v1")));
    run_failing(skopeo().args(["inspect", "--tls-verify=false"]).arg(registry.docker_ref(REPO, "v1")));
    assert_eq!(registry.manifest_status(REPO, &image.manifest_digest), StatusCode::NOT_FOUND);
    assert_eq!(registry.manifest_status(REPO, "v1"), StatusCode::NOT_FOUND);
    assert_eq!(registry.manifest_status(REPO, "v2"), StatusCode::NOT_FOUND);
    assert_eq!(registry.tags(REPO), ["other"]);
    assert_eq!(registry.manifest(REPO, "other").bytes, other.manifest);
}

berth_tests::registry_tests!(copy_inspect_list_copy_out_and_delete,);
