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
