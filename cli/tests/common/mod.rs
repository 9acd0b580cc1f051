//! Starting the real `berth` binary for the tests of this crate.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `berth serve --addr 127.0.0.1:<port> <args>` with `envs`, once `GET /v2/` answers.
pub async fn serve(port: u16, args: &[&str], envs: &[(&str, &str)]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while reqwest::get(format!("http://127.0.0.1:{port}/v2/")).await.is_err() {
        assert!(Instant::now() < deadline, "berth serve did not answer within 15 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// A client sending the owner's token (for every action on `repository`) with each request: the owner `berth serve`
/// made in `data_dir` on first start logs in at `base`.
pub async fn owner_client(base: &str, data_dir: &std::path::Path, repository: &str, builder: reqwest::ClientBuilder) -> reqwest::Client {
    let owner: serde_json::Value = serde_json::from_slice(&std::fs::read(data_dir.join("initial-owner.json")).unwrap()).unwrap();
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/token"))
        .query(&[("scope", format!("repository:{repository}:*"))])
        .basic_auth(owner["username"].as_str().unwrap(), owner["password"].as_str())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {}", answer["token"].as_str().unwrap()).parse().unwrap());
    builder.default_headers(headers).build().unwrap()
}
