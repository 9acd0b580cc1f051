//! Real-sized layers through the AWS deployment's routing. With the upload service (the template's default
//! `UploadService=Container`), docker pushes an image with a 1 GiB random layer and a Debian rootfs (debootstrap), each
//! layer as its one streamed PATCH, every upload request went to the upload service, and the pulls get the same images
//! back through presigned redirects; skopeo, podman and buildah (one PATCH, 201 required) and containerd (`ctr`, one
//! PUT) push two-layer images with a layer over 100 MB the same way, and oras a 200 MB artifact.
//! With `UploadService=Lambda`, docker's push fails with the registry's 413 naming the limit, while a client that
//! uploads in chunks no larger than `OCI-Chunk-Max-Length` succeeds.
use berth_tests::clients::{Storage, python, skopeo, support_file};
use berth_tests::dockerd::Dockerd;
use berth_tests::router::UploadService;
use berth_tests::{OciImage, OciLayout, Registry, RegistryKind, run, run_failing, run_with_stdin, sha256_digest, stdout_of};
use reqwest::{Method, StatusCode};

/// Over 100 MB, as the issue asks of these clients: far over Lambda's 4.5 MB a request, and many S3 parts.
const BIG_LAYER_BYTES: usize = 110 << 20;
/// The artifact oras pushes: 200 MB.
const ORAS_ARTIFACT_BYTES: usize = 200_000_000;

/// An image with a big layer, loaded into a fresh dockerd logged in to `registry` as its owner and tagged
/// `<registry>/<repo>:v1` (also `berth-test/big:v1`); the layout lives as long as the test holds it.
fn docker_with_big_image(registry: &Registry, repo: &str) -> (OciLayout, OciImage, Dockerd, String) {
    let layout = OciLayout::new();
    let image = layout.add_big_image("big", BIG_LAYER_BYTES);
    let dockerd = Dockerd::start();
    dockerd.load(&image, "berth-test/big:v1");
    let owner = registry.owner().expect("Berth makes an owner");
    run_with_stdin(dockerd.docker().args(["login", registry.host(), "-u", &owner.username, "--password-stdin"]), owner.password.as_bytes());
    let reference = registry.image_ref(repo, "v1");
    run(dockerd.docker().args(["tag", "berth-test/big:v1", &reference]));
    (layout, image, dockerd, reference)
}

/// The real-sized images docker pushes: a 1 GiB random layer, and a Debian 12 root filesystem as its base image.
const DOCKER_LAYER_BYTES: u64 = 1 << 30;

fn docker_pushes_real_images_through_the_upload_service(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let dockerd = Dockerd::start();
    let owner = registry.owner().expect("Berth makes an owner");
    run_with_stdin(dockerd.docker().args(["login", registry.host(), "-u", &owner.username, "--password-stdin"]), owner.password.as_bytes());
    let work = tempfile::tempdir().unwrap();
    let random = berth_tests::fixture::random_file_tar(work.path(), DOCKER_LAYER_BYTES);
    let images = [("uploads/big", random), ("uploads/debian", berth_tests::fixture::debian_rootfs_tar())];
    let mut pushed = Vec::new();
    for (repo, tar) in &images {
        let reference = registry.image_ref(repo, "v1");
        let id = dockerd.import(tar, &reference);
        run(dockerd.docker().args(["push", &reference]));
        pushed.push((*repo, reference, id));
    }

    for (repo, reference, id) in &pushed {
        let stored = registry.manifest(repo, "v1");
        assert_eq!(&stored.json["config"]["digest"], id, "{repo}");
        let layers: Vec<String> =
            stored.json["layers"].as_array().unwrap().iter().map(|layer| layer["digest"].as_str().unwrap().to_owned()).collect();
        for (layer, described) in layers.iter().zip(stored.json["layers"].as_array().unwrap()) {
            assert_eq!(
                registry.blob_size(repo, layer),
                described["size"].as_u64().unwrap(),
                "{repo}: the registry holds exactly the bytes docker sent"
            );
        }
        // The image goes, so the pull downloads every layer and rebuilds the same image.
        run(dockerd.docker().args(["rmi", reference]));
        run(dockerd.docker().args(["pull", reference]));
        assert_eq!(&stdout_of(dockerd.docker().args(["image", "inspect", "--format", "{{.Id}}", reference])), id, "{repo}");
        registry.assert_blob_downloads_redirected("docker", repo, &layers);
    }
    let big = registry.manifest("uploads/big", "v1");
    assert!(big.json["layers"][0]["size"].as_u64().unwrap() > DOCKER_LAYER_BYTES, "the layer is the random file: {}", big.json);
    let container = stdout_of(dockerd.docker().args(["create", &pushed[1].1, "/bin/true"]));
    run(dockerd.docker().arg("cp").arg(format!("{container}:/etc/debian_version")).arg(work.path()));
    let debian = std::fs::read_to_string(work.path().join("debian_version")).unwrap();
    assert!(debian.starts_with("12."), "the pulled rootfs is Debian 12: {debian}");

    // Every upload request went to the upload service, none to a function; docker's PATCH carried each whole layer.
    let uploads: Vec<_> = registry.routed_requests().into_iter().filter(|request| request.path.contains("/blobs/uploads")).collect();
    for (repo, _, _) in &pushed {
        assert!(
            uploads.iter().any(|request| request.method == "PATCH"
                && request.path.starts_with(&format!("/v2/{repo}/"))
                && request.user_agent.starts_with("docker")),
            "{uploads:?}"
        );
    }
    for request in &uploads {
        assert_eq!(request.function, "uploads", "{request}");
        assert!(request.status < 400, "{request}");
    }
}

#[test]
fn docker_pushes_a_1_gib_layer_and_a_debian_rootfs_through_the_upload_service() {
    RegistryKind::AwsFunctions.run(docker_pushes_real_images_through_the_upload_service);
}

/// `repo:v1` is `image` (its config) with a layer over [`BIG_LAYER_BYTES`], held byte for byte under its digest
/// (podman recompresses layers, so their digests are the registry's to check, not the layout's).
fn assert_holds_big_layer(registry: &Registry, repo: &str, image: &OciImage) {
    let stored = registry.manifest(repo, "v1");
    assert_eq!(stored.json["config"]["digest"], image.config_digest, "{repo}");
    let layers = stored.json["layers"].as_array().unwrap();
    let biggest = layers.iter().max_by_key(|layer| layer["size"].as_u64().unwrap()).unwrap();
    let digest = biggest["digest"].as_str().unwrap();
    let bytes = registry.blob(repo, digest);
    assert!(bytes.len() > BIG_LAYER_BYTES, "{repo}: {} bytes", bytes.len());
    assert_eq!(sha256_digest(&bytes), digest, "{repo}");
}

fn every_client_pushes_big_layers_through_the_upload_service(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let layout = OciLayout::new();
    let clients = ["skopeo", "podman", "containerd", "buildah"];
    let images: Vec<OciImage> = clients.iter().map(|client| layout.add_big_image(client, BIG_LAYER_BYTES)).collect();

    run(skopeo().args(["copy", "--dest-tls-verify=false"]).arg(images[0].oci_ref()).arg(registry.docker_ref("uploads/skopeo", "v1")));
    assert_holds_big_layer(&registry, "uploads/skopeo", &images[0]);

    let storage = Storage::new();
    run(storage.podman().args(["pull", "-q"]).arg(images[1].oci_ref()));
    let podman_ref = registry.image_ref("uploads/podman", "v1");
    run(storage.podman().args(["tag", images[1].config_digest.trim_start_matches("sha256:"), &podman_ref]));
    run(storage.podman().args(["push", "--tls-verify=false", &podman_ref]));
    assert_holds_big_layer(&registry, "uploads/podman", &images[1]);

    let storage = Storage::new();
    run(storage.buildah().args(["pull", "-q"]).arg(images[3].oci_ref()));
    let buildah_id = images[3].config_digest.trim_start_matches("sha256:");
    run(storage.buildah().args(["push", "--tls-verify=false", buildah_id]).arg(registry.docker_ref("uploads/buildah", "v1")));
    assert_holds_big_layer(&registry, "uploads/buildah", &images[3]);

    // containerd imports an OCI archive (no source registry to mount from) and pushes each blob as one PUT.
    let dockerd = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("image.tar");
    let containerd_ref = registry.image_ref("uploads/containerd", "v1");
    run(skopeo().arg("copy").arg(images[2].oci_ref()).arg(format!("oci-archive:{}:{containerd_ref}", archive.display())));
    run(dockerd.ctr().args(["images", "import"]).arg(&archive));
    let user = registry.owner().expect("an owner").pair();
    run(dockerd.ctr().args(["images", "push", "--plain-http", "--user", &user, &containerd_ref]));
    assert_holds_big_layer(&registry, "uploads/containerd", &images[2]);

    let file = work.path().join("big.bin");
    let contents = berth_tests::digest::random_bytes(ORAS_ARTIFACT_BYTES);
    std::fs::write(&file, &contents).unwrap();
    let owner = registry.owner().unwrap();
    let mut oras = python();
    oras.env("ORAS_USERNAME", &owner.username).env("ORAS_PASSWORD", &owner.password);
    run(oras.arg(support_file("oras_client.py")).args(["push", registry.host(), "uploads/oras:v1", file.to_str().unwrap()]));
    let pushed = registry.manifest("uploads/oras", "v1");
    assert_eq!(pushed.json["layers"][0]["digest"], sha256_digest(&contents));
    assert_eq!(registry.blob("uploads/oras", &sha256_digest(&contents)), contents);

    let uploads: Vec<_> = registry.routed_requests().into_iter().filter(|request| request.path.contains("/blobs/uploads")).collect();
    for agent in ["skopeo", "containers/", "containerd/", "python"] {
        assert!(uploads.iter().any(|request| request.user_agent.contains(agent)), "no upload by {agent}: {uploads:?}");
    }
    for request in &uploads {
        assert_eq!(request.function, "uploads", "{request}");
        // oras-py sends each request without a token first: the challenge is part of its flow.
        assert!(request.status < 400 || request.status == 401, "{request}");
    }
}

#[test]
fn skopeo_podman_buildah_containerd_and_oras_push_big_layers_through_the_upload_service() {
    RegistryKind::AwsFunctions.run(every_client_pushes_big_layers_through_the_upload_service);
}

fn uploads_on_lambda_take_chunks_only(kind: RegistryKind) {
    let registry = Registry::start_deployed(kind, UploadService::Lambda, &[]);
    let (_layout, image, dockerd, reference) = docker_with_big_image(&registry, "lambda/big");
    let refused = run_failing(dockerd.docker().args(["push", &reference]));
    let said = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr)).to_lowercase();
    assert!(
        said.contains("size invalid") && said.contains("exceeds the limit of 4500000 bytes"),
        "docker shows the registry's refusal: {said}"
    );
    assert_eq!(registry.manifest_status("lambda/big", "v1"), StatusCode::NOT_FOUND, "nothing half-pushed is visible");

    // A chunking client: PATCHes of at most OCI-Chunk-Max-Length with Content-Range, then the closing PUT.
    let layer = image.layers.iter().map(|digest| image.blob(digest)).max_by_key(Vec::len).unwrap();
    let digest = sha256_digest(&layer);
    let started = registry.request(Method::POST, "/v2/lambda/chunked/blobs/uploads/").send().unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let most: usize = started.headers()["oci-chunk-max-length"].to_str().unwrap().parse().unwrap();
    assert!(most < layer.len(), "the layer needs several chunks ({most} a chunk)");
    let mut location = started.headers()["location"].to_str().unwrap().to_owned();
    for (index, chunk) in layer.chunks(most).enumerate() {
        let first = index * most;
        let range = format!("{first}-{}", first + chunk.len() - 1);
        let patched = registry
            .request(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .header("content-range", &range)
            .body(chunk.to_vec())
            .send()
            .unwrap();
        assert_eq!(patched.status(), StatusCode::ACCEPTED, "chunk {range}");
        location = patched.headers()["location"].to_str().unwrap().to_owned();
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let closed = registry.request(Method::PUT, &format!("{location}{separator}digest={digest}")).send().unwrap();
    assert_eq!(closed.status(), StatusCode::CREATED);
    assert_eq!(registry.blob("lambda/chunked", &digest), layer);
    for request in registry.routed_requests().iter().filter(|request| request.path.contains("/blobs/uploads")) {
        assert_eq!(request.function, "blobs", "with UploadService=Lambda uploads go to the blobs function: {request}");
    }
}

#[test]
fn uploads_on_lambda_refuse_docker_clearly_and_take_chunks() {
    RegistryKind::AwsFunctions.run(uploads_on_lambda_take_chunks_only);
}

/// A client that disconnects halfway through a layer's PATCH (through the router, to the upload service) leaves a
/// resumable session and no visible blob: the status says how much counts, the client sends the rest from there,
/// and the closed upload holds exactly the layer.
fn a_disconnected_upload_resumes(kind: RegistryKind) {
    use std::io::Write;
    let registry = Registry::start(kind);
    let layer = berth_tests::digest::random_bytes(BIG_LAYER_BYTES);
    let digest = sha256_digest(&layer);
    let started = registry.request(Method::POST, "/v2/uploads/resumed/blobs/uploads/").send().unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let authorization = registry.request(Method::PATCH, &location).build().unwrap().headers()["authorization"].to_str().unwrap().to_owned();

    // Headers announce the whole layer; two thirds of it go out, then the connection drops.
    let mut socket = std::net::TcpStream::connect(registry.host()).unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nhost: {}\r\nauthorization: {authorization}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        registry.host(),
        layer.len()
    );
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(&layer[..layer.len() * 2 / 3]).unwrap();
    drop(socket);
    std::thread::sleep(std::time::Duration::from_secs(1));

    assert_eq!(
        registry.request(Method::HEAD, &format!("/v2/uploads/resumed/blobs/{digest}")).send().unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let status = registry.request(Method::GET, &location).send().unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT, "the session is still there");
    let range = status.headers()["range"].to_str().unwrap();
    let counted: usize = range.split('-').nth(1).unwrap().parse::<usize>().unwrap() + usize::from(range != "0-0");
    assert!(counted < layer.len(), "a cut-off request is not complete ({range})");

    let rest = registry
        .request(Method::PATCH, &location)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{counted}-{}", layer.len() - 1))
        .body(layer[counted..].to_vec())
        .send()
        .unwrap();
    assert_eq!(rest.status(), StatusCode::ACCEPTED, "the upload resumes where it stood");
    let location = rest.headers()["location"].to_str().unwrap().to_owned();
    let separator = if location.contains('?') { '&' } else { '?' };
    assert_eq!(
        registry.request(Method::PUT, &format!("{location}{separator}digest={digest}")).send().unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(registry.blob("uploads/resumed", &digest), layer);
}

#[test]
fn a_disconnected_upload_through_the_upload_service_resumes() {
    RegistryKind::AwsFunctions.run(a_disconnected_upload_resumes);
}
