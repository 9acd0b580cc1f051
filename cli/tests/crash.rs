//! `berth serve` killed (SIGKILL) in the middle of an upload, then restarted on the same data: nothing half-written
//! is visible, the upload resumes from its last saved byte, and everything stored before is intact.

mod common;

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[tokio::test]
async fn a_kill_during_an_upload_loses_nothing_and_shows_nothing_half_written() {
    let data = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let data_dir = data.path().to_str().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = common::serve(port, &["--data-dir", data_dir], &[]).await;
    let http = common::owner_client(&base, data.path(), "crash/app", reqwest::Client::builder()).await;

    // Something stored before the crash.
    let kept = vec![7u8; 1 << 20];
    let stored = http.post(format!("{base}/v2/crash/app/blobs/uploads/?digest={}", digest(&kept))).body(kept.clone()).send().await.unwrap();
    assert_eq!(stored.status(), 201);

    // An upload with one saved chunk, then a second chunk the server is killed in the middle of.
    let content: Vec<u8> = (0..(24 << 20)).map(|index: u32| (index % 253) as u8).collect();
    let started = http.post(format!("{base}/v2/crash/app/blobs/uploads/")).send().await.unwrap();
    let location = format!("{base}{}", started.headers()["location"].to_str().unwrap());
    let first = http
        .patch(&location)
        .header("content-range", format!("0-{}", (8 << 20) - 1))
        .body(content[..8 << 20].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(first.headers()["range"], format!("0-{}", (8 << 20) - 1));
    let rest = content[8 << 20..].to_vec();
    let slow = futures_util::stream::unfold(0usize, move |offset| {
        let rest = rest.clone();
        async move {
            if offset >= rest.len() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let end = (offset + (256 << 10)).min(rest.len());
            Some((Ok::<_, std::io::Error>(Bytes::copy_from_slice(&rest[offset..end])), end))
        }
    });
    let interrupted = tokio::spawn(http.patch(&location).body(reqwest::Body::wrap_stream(slow)).send());
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(interrupted.await.unwrap().is_err(), "the request died with the server");

    let mut server = common::serve(port, &["--data-dir", data_dir], &[]).await;
    let status = http.get(&location).send().await.unwrap();
    assert_eq!((status.status().as_u16(), status.headers()["range"].to_str().unwrap()), (204, format!("0-{}", (8 << 20) - 1).as_str()));
    let whole = digest(&content);
    assert_eq!(http.head(format!("{base}/v2/crash/app/blobs/{whole}")).send().await.unwrap().status(), 404, "no partial blob is visible");
    let before = http.get(format!("{base}/v2/crash/app/blobs/{}", digest(&kept))).send().await.unwrap();
    assert_eq!(before.bytes().await.unwrap().as_ref(), kept.as_slice(), "what was stored before the crash is intact");

    // The upload resumes where its last saved chunk ended.
    let resumed = http
        .put(format!("{location}?digest={whole}"))
        .header("content-range", format!("{}-{}", 8 << 20, content.len() - 1))
        .body(content[8 << 20..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 201);
    let fetched = http.get(format!("{base}/v2/crash/app/blobs/{whole}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(digest(&fetched), whole);
    server.kill().unwrap();
    server.wait().unwrap();
}
