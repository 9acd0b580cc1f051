//! The upload service's container image (`infra/upload-service/Containerfile`), built from the workspace's blobs
//! binary and run by docker: it runs as the unprivileged user 65532, answers the load balancer's health check, logs
//! JSON lines, and stops cleanly on the SIGTERM that ECS sends. Its base, distroless/cc, cannot be pulled here (no
//! registry is reachable), so a Debian 12 rootfs (debootstrap) with the machine's CA certificates (what distroless/cc
//! adds to glibc) stands in under the same name; this machine is amd64, so the image is built for amd64, not the arm64
//! the template deploys.

use std::time::{Duration, Instant};

use berth_tests::dockerd::Dockerd;
use berth_tests::{function_bin, run, stdout_of};

/// The base image the Containerfile names.
const BASE: &str = "gcr.io/distroless/cc-debian12:nonroot";

#[test]
fn the_upload_service_image_runs_unprivileged_answers_health_checks_and_stops_on_sigterm() {
    let dockerd = Dockerd::start();
    dockerd.import(&berth_tests::fixture::debian_rootfs_tar(), "berth-test/debian:12");
    let base = tempfile::tempdir().unwrap();
    std::fs::copy("/etc/ssl/certs/ca-certificates.crt", base.path().join("ca-certificates.crt"))
        .expect("the CA certificates (package ca-certificates)");
    std::fs::write(base.path().join("Containerfile"), "FROM berth-test/debian:12\nCOPY ca-certificates.crt /etc/ssl/certs/\n").unwrap();
    run(dockerd.docker().args(["build", "-q", "-t", BASE]).arg(base.path()).arg("-f").arg(base.path().join("Containerfile")));
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(function_bin("blobs"), context.path().join("bootstrap")).expect("the blobs binary (cargo build -p berth-blobs)");
    let containerfile = berth_tests::router::template_path().with_file_name("upload-service").join("Containerfile");
    run(dockerd.docker().args(["build", "-q", "-t", "berth-uploads-test", "-f"]).arg(&containerfile).arg(context.path()));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = [
        ("PORT", port.to_string()),
        ("BERTH_BUCKET", "berth-image-test".into()),
        ("BERTH_TABLE", "berth-image-test".into()),
        ("BERTH_REGISTRY_NAME", "berth-image-test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_ENDPOINT_URL", std::env::var("BERTH_TEST_AWS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9".into())),
    ];
    let mut start = dockerd.docker();
    start.args(["run", "-d", "--network", "host"]);
    for (name, value) in &settings {
        start.arg("-e").arg(format!("{name}={value}"));
    }
    let container = stdout_of(start.arg("berth-uploads-test"));
    assert_eq!(stdout_of(dockerd.docker().args(["inspect", "-f", "{{.Config.User}}", &container])), "65532:65532");

    let health = format!("http://127.0.0.1:{port}/berth/health");
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match reqwest::blocking::get(&health) {
            Ok(answer) => break answer,
            Err(error) if Instant::now() > deadline => {
                let logs = run(dockerd.docker().args(["logs", &container]));
                panic!("GET {health}: {error}\n{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    assert_eq!(answer.json::<serde_json::Value>().unwrap(), serde_json::json!({"status": "ok"}));
    let processes = stdout_of(dockerd.docker().args(["top", &container, "-o", "uid,pid,cmd"]));
    assert!(processes.lines().skip(1).all(|line| line.trim_start().starts_with("65532 ")), "{processes}");

    run(dockerd.docker().args(["stop", "-t", "30", &container]));
    assert_eq!(stdout_of(dockerd.docker().args(["inspect", "-f", "{{.State.ExitCode}}", &container])), "0", "SIGTERM stops it cleanly");
    let logs = run(dockerd.docker().args(["logs", &container]));
    let lines = String::from_utf8_lossy(&logs.stderr).into_owned() + &String::from_utf8_lossy(&logs.stdout);
    let messages: Vec<String> = lines
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|error| panic!("not a JSON log line ({error}): {line}")))
        .map(|entry| entry["fields"]["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(messages.iter().any(|message| message == "serving over HTTP"), "{messages:?}");
    assert!(messages.iter().any(|message| message.starts_with("stopping: no new connections")), "{messages:?}");
}
