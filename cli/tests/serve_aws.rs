//! `berth serve --store aws --create-resources` on the AWS emulator: the whole registry over S3 and DynamoDB, blobs
//! downloaded through presigned redirects.

mod common;

use sha2::{Digest, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[tokio::test]
async fn serves_the_registry_over_s3_and_dynamodb() {
    let endpoint = std::env::var("BERTH_TEST_AWS_ENDPOINT").expect("BERTH_TEST_AWS_ENDPOINT is set: run the tests with tests/run");
    let port = common::free_port();
    // Bucket names allow 3-63 lowercase letters, digits and hyphens; the port keeps parallel runs apart.
    let name = format!("berth-cli-{port}-{}", std::process::id());
    let environment = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("BERTH_BUCKET", name.as_str()),
    ];
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let mut server = common::serve(port, &["--store", "aws", "--table", &name, "--create-resources", "--data-dir", data_dir], &environment).await;
    let base = format!("http://127.0.0.1:{port}");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    let http = common::owner_client(&base, data.path(), "cli/aws", no_redirects).await;

    let layer: Vec<u8> = (0..300_000u32).map(|index| (index % 251) as u8).collect();
    for blob in [&b"{}"[..], &layer] {
        let pushed =
            http.post(format!("{base}/v2/cli/aws/blobs/uploads/?digest={}", digest(blob))).body(blob.to_vec()).send().await.unwrap();
        assert_eq!(pushed.status(), 201);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}]}))
    .unwrap();
    let put = http
        .put(format!("{base}/v2/cli/aws/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let got = http.get(format!("{base}/v2/cli/aws/manifests/v1")).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), manifest.as_slice());

    let redirected = http.get(format!("{base}/v2/cli/aws/blobs/{}", digest(&layer))).send().await.unwrap();
    assert_eq!(redirected.status(), 307);
    let location = redirected.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{endpoint}/{name}/blobs/sha256/")), "{location}");
    let fetched = reqwest::get(&location).await.unwrap().bytes().await.unwrap();
    assert_eq!(digest(&fetched), digest(&layer));
    server.kill().unwrap();
    server.wait().unwrap();
}
