//! docker against the registry: load an image, push it, remove it, pull it back, and check the image ID, manifest
//! digest and layers survive the round trip; then containerd, which Kubernetes nodes pull with, pulls and pushes the
//! same image. Starts its own dockerd.

use berth_tests::digest::diff_id;
use berth_tests::dockerd::Dockerd;
use berth_tests::{OciLayout, Registry, RegistryKind, run, run_with_stdin, stdout_of};

const REPO: &str = "docker/app";

fn docker_round_trip_then_containerd(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let layout = OciLayout::new();
    let image = layout.add_image("v1", "amd64", true);
    let dockerd = Dockerd::start();

    dockerd.load(&image, "berth-test/app:v1");
    let inspect_id = |reference: &str| stdout_of(dockerd.docker().args(["image", "inspect", "--format", "{{.Id}}", reference]));
    assert_eq!(inspect_id("berth-test/app:v1"), image.config_digest);

    // docker logs in as a service principal (the owner `berth serve` made), with the token flow: the engine asks the
    // realm for a refresh token and keeps it.
    if let Some(owner) = registry.owner() {
        run_with_stdin(dockerd.docker().args(["login", registry.host(), "-u", &owner.username, "--password-stdin"]), owner.password.as_bytes());
    }
    let reference = registry.image_ref(REPO, "1");
    run(dockerd.docker().args(["tag", "berth-test/app:v1", &reference]));
    let push = stdout_of(dockerd.docker().args(["push", &reference]));
    // The last line is "1: digest: sha256:... size: N".
    let pushed_digest = push
        .split_whitespace()
        .skip_while(|word| *word != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{push}"))
        .to_owned();

    let manifest = registry.manifest(REPO, "1");
    assert_eq!(manifest.digest, pushed_digest, "registry serves the manifest docker pushed");
    assert_eq!(manifest.media_type, "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(manifest.json["config"]["digest"], image.config_digest.as_str());
    assert_eq!(registry.blob(REPO, &image.config_digest), image.config);
    let layers = manifest.json["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), image.diff_ids.len());
    for (layer, expected) in layers.iter().zip(&image.diff_ids) {
        let blob = registry.blob(REPO, layer["digest"].as_str().expect("layer digest"));
        assert_eq!(&diff_id(&blob), expected, "layer {}", layer["digest"]);
    }
    // What a pull downloads: the config, then the layers as pushed (docker compressed them again).
    let pulled_blobs: Vec<String> = std::iter::once(image.config_digest.clone())
        .chain(layers.iter().map(|l| l["digest"].as_str().expect("layer digest").to_owned()))
        .collect();

    // Remove every local name so the pull must fetch everything from the registry.
    run(dockerd.docker().args(["rmi", &reference, "berth-test/app:v1"]));
    assert!(stdout_of(dockerd.docker().args(["images", "-q"])).is_empty(), "images left after rmi");
    run(dockerd.docker().args(["pull", &reference]));
    assert_eq!(inspect_id(&reference), image.config_digest);
    registry.assert_blob_downloads_redirected("docker/", REPO, &pulled_blobs);
    let repo_digests = stdout_of(dockerd.docker().args(["image", "inspect", "--format", "{{json .RepoDigests}}", &reference]));
    let repo_digests: Vec<String> = serde_json::from_str(&repo_digests).expect("RepoDigests JSON");
    assert_eq!(repo_digests, [format!("{}/{REPO}@{}", registry.host(), manifest.digest)]);

    // containerd pulls what docker pushed and pushes it back under another tag without changing a byte, so the
    // registry must serve the same manifest digest for both tags.
    let user: Vec<String> = registry.owner().map(|owner| vec!["--user".to_owned(), owner.pair()]).unwrap_or_default();
    run(dockerd.ctr().args(["images", "pull", "--plain-http"]).args(&user).arg(&reference));
    let listed = stdout_of(dockerd.ctr().args(["images", "ls"]));
    assert!(listed.contains(&manifest.digest), "ctr images ls does not show {}:\n{listed}", manifest.digest);
    registry.assert_blob_downloads_redirected("containerd/", REPO, &pulled_blobs);
    let copy = registry.image_ref(REPO, "from-containerd");
    run(dockerd.ctr().args(["images", "tag", &reference, &copy]));
    run(dockerd.ctr().args(["images", "push", "--plain-http"]).args(&user).arg(&copy));
    assert_eq!(registry.manifest(REPO, "from-containerd").bytes, manifest.bytes);
    assert_eq!(registry.tags(REPO), ["1", "from-containerd"]);
}

berth_tests::registry_tests!(docker_round_trip_then_containerd,);
