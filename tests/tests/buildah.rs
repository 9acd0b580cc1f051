//! buildah against the registry: build an image from scratch with busybox, push it, and read every piece back over
//! HTTP to check it is the image buildah built.

use std::fs;

use berth_tests::clients::Storage;
use berth_tests::digest::{diff_id, file_in_layer, random_bytes, random_token};
use berth_tests::{HARNESS_USER_AGENT, Registry, RegistryKind, run, stdout_of};

fn build_from_scratch_and_push(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let storage = Storage::new();
    let work = tempfile::tempdir().expect("work dir");

    // Two commits give two layers: busybox plus a random file, then a second random file on top.
    let files: Vec<(String, Vec<u8>)> = (0..2).map(|_| (format!("berth-test-{}", random_token()), random_bytes(256))).collect();
    for (name, contents) in &files {
        fs::write(work.path().join(name), contents).expect("write unique file");
    }
    let base = "localhost/berth-test-base";
    let image = "localhost/berth-test-app";
    let container = stdout_of(storage.buildah().args(["from", "scratch"]));
    run(storage.buildah().args(["copy", "--chmod", "0755", &container, "/bin/busybox", "/bin/busybox"]));
    run(storage.buildah().args(["copy", &container]).arg(work.path().join(&files[0].0)).arg(format!("/{}", files[0].0)));
    run(storage.buildah().args(["config", "--cmd", r#"["/bin/busybox", "sh"]"#, "--os", "linux", "--arch", "amd64", &container]));
    run(storage.buildah().args(["commit", "-q", &container, base]));
    let container = stdout_of(storage.buildah().args(["from", base]));
    run(storage.buildah().args(["copy", &container]).arg(work.path().join(&files[1].0)).arg(format!("/{}", files[1].0)));
    run(storage.buildah().args(["commit", "-q", &container, image]));
    let image_id = stdout_of(storage.buildah().args(["inspect", "--type", "image", "--format", "{{.FromImageID}}", image]));

    let digest_file = work.path().join("digest");
    run(storage
        .buildah()
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .arg(image)
        .arg(registry.docker_ref("buildah/app", "1")));
    let pushed_digest = fs::read_to_string(&digest_file).expect("read digest file");

    let manifest = registry.manifest("buildah/app", "1");
    assert_eq!(manifest.digest, pushed_digest.trim(), "registry serves the manifest buildah pushed");
    let config_digest = manifest.json["config"]["digest"].as_str().expect("config digest");
    assert_eq!(config_digest, format!("sha256:{image_id}"), "config is the image buildah built");
    let config: serde_json::Value = serde_json::from_slice(&registry.blob("buildah/app", config_digest)).expect("config JSON");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/busybox", "sh"]));

    let layers = manifest.json["layers"].as_array().expect("layers");
    let diff_ids = config["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    assert_eq!(layers.len(), 2, "{}", manifest.json);
    let blobs: Vec<Vec<u8>> = layers.iter().map(|l| registry.blob("buildah/app", l["digest"].as_str().expect("digest"))).collect();
    for ((blob, layer), expected) in blobs.iter().zip(layers).zip(diff_ids) {
        assert_eq!(layer["size"], blob.len(), "descriptor size of {}", layer["digest"]);
        assert_eq!(diff_id(blob), expected.as_str().expect("diff_id"));
    }
    assert_eq!(file_in_layer(&blobs[0], "bin/busybox"), fs::read("/bin/busybox").expect("read /bin/busybox"));
    for ((name, contents), blob) in files.iter().zip(&blobs) {
        assert_eq!(&file_in_layer(blob, name), contents, "{name}");
    }
    // buildah itself only pushes; the downloads above were the harness's, redirected like any client's.
    let downloaded: Vec<String> =
        std::iter::once(config_digest.to_owned()).chain(layers.iter().map(|l| l["digest"].as_str().expect("digest").to_owned())).collect();
    registry.assert_blob_downloads_redirected(HARNESS_USER_AGENT, "buildah/app", &downloaded);
}

berth_tests::registry_tests!(build_from_scratch_and_push,);
