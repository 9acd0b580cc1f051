//! `berth serve --tls-cert --tls-key`: HTTPS with a certificate from a test CA. skopeo and podman verify it against
//! the CA (and refuse it without), docker logs in and pushes over TLS, and the token realm is `https://`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::clients::{Storage, skopeo};
use berth_tests::credentials::{self, Credentials};
use berth_tests::dockerd::Dockerd;
use berth_tests::service::Service;
use berth_tests::{OciLayout, berth_bin, run, run_failing, run_with_stdin, stdout_of};

const REPO: &str = "tls/app";

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost, in `dir` (ca.crt, server.crt, server.key).
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    openssl(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Berth test CA"]);
    openssl(&["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext"]);
}

#[test]
fn https_with_a_trusted_test_ca() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(dir.path().join("ca.crt"), certs.join("ca.crt")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host = format!("127.0.0.1:{port}");
    let data = dir.path().join("data");
    let mut command = Command::new(berth_bin());
    command.args(["serve", "--addr", &host, "--name", "berth-tls"]).arg("--data-dir").arg(&data);
    command.arg("--tls-cert").arg(dir.path().join("server.crt")).arg("--tls-key").arg(dir.path().join("server.key"));
    let mut server = Service::spawn("berth serve (TLS)", &mut command, dir.path().join("serve.log")).unwrap();

    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.crt")).unwrap()).unwrap();
    let https = reqwest::blocking::Client::builder().add_root_certificate(ca).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let challenge = loop {
        if let Ok(resp) = https.get(format!("https://{host}/v2/")).send() {
            break resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        }
        assert!(server.died().is_none() && Instant::now() < deadline, "berth serve did not answer over HTTPS\n{}", server.log_tail(50));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(challenge.starts_with(&format!(r#"Bearer realm="https://{host}/token""#)), "{challenge}");
    let plain = reqwest::blocking::get(format!("http://{host}/v2/"));
    assert!(plain.is_err() || !plain.unwrap().status().is_success(), "plain HTTP must not be served");

    let owner = Credentials::from_file(&data.join("initial-owner.json")).unwrap();
    credentials::store(&host, &owner);
    let layout = OciLayout::new();
    let image = layout.add_image("v1", "amd64", true);
    let target = format!("docker://{host}/{REPO}:v1");

    // Without the CA the certificate is refused: verification is on.
    let refused = run_failing(skopeo().arg("copy").arg(image.oci_ref()).arg(&target));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "skopeo should refuse an unknown CA: {stderr}");
    run(skopeo().arg("copy").arg("--dest-cert-dir").arg(&certs).arg(image.oci_ref()).arg(&target));
    let inspected: serde_json::Value = serde_json::from_str(&stdout_of(skopeo().arg("inspect").arg("--cert-dir").arg(&certs).arg(&target))).unwrap();
    assert_eq!(inspected["Digest"], image.manifest_digest.as_str());

    let storage = Storage::new();
    run(storage.podman().args(["pull", "-q", "--cert-dir"]).arg(&certs).arg(format!("{host}/{REPO}:v1")));
    let pulled = stdout_of(storage.podman().args(["image", "inspect", "--format", "{{.Digest}}"]).arg(format!("{host}/{REPO}:v1")));
    assert_eq!(pulled.trim(), image.manifest_digest);

    // docker counts loopback registries as insecure and so does not check the CA, but the registry speaks only TLS:
    // the login and the pull below went over HTTPS.
    let dockerd = Dockerd::start();
    run_with_stdin(dockerd.docker().args(["login", &host, "-u", &owner.username, "--password-stdin"]), owner.password.as_bytes());
    run(dockerd.docker().args(["pull", &format!("{host}/{REPO}:v1")]));
    server.stop(Duration::from_secs(10));
}
