//! `berth login` and the identity commands against a running registry, with real clients using what they create:
//! a login stored in docker's config.json that skopeo pushes with, `--expose-token`, a pull-only service principal
//! whose push skopeo reports as denied, and the admin user; `berth login --aws` (the emulator's STS) and
//! `--oidc-token-file` (a test issuer) with docker pushing and pulling on those logins alone.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use base64::Engine;
use berth_tests::clients::skopeo;
use berth_tests::{OciLayout, Registry, RegistryKind, berth_bin, run_failing, run_with_stdin, stdout_of};
use serde_json::Value;

const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// `berth <args>` with docker's configuration in `config_dir`.
fn berth(config_dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(berth_bin());
    command.env("DOCKER_CONFIG", config_dir).env_remove("BERTH_REGISTRY").args(args);
    command
}

fn json_of(command: &mut Command) -> Value {
    let out = stdout_of(command);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON ({e}): {out}"))
}

fn login_then_push_with_what_it_stored(kind: RegistryKind) {
    let registry = Registry::start(kind);
    // The reference registry (BERTH_TEST_REGISTRY=distribution) has no identities to log in with.
    let Some(owner) = registry.owner().cloned() else {
        return;
    };
    let url = registry.url("");
    let config = tempfile::tempdir().unwrap();
    let login = ["login", url.as_str(), "--username", owner.username.as_str(), "--password-stdin"];
    let out = run_with_stdin(&mut berth(config.path(), &login), owner.password.as_bytes());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));

    // docker's format: the null GUID with the 3-hour refresh token, in a file only its owner reads.
    let file = config.path().join("config.json");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let auth = stored["auths"][registry.host()]["auth"].as_str().expect("an auth entry for the registry");
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(auth).unwrap()).unwrap();
    let (user, refresh) = decoded.split_once(':').unwrap();
    assert_eq!(user, NULL_GUID);
    assert!(!decoded.contains(&owner.password), "the password itself is never stored");

    // skopeo pushes with that login alone, and the management commands use it too.
    let layout = OciLayout::new();
    let image = layout.add_image("v1", "amd64", false);
    let target = registry.docker_ref("login/app", "v1");
    let mut push = skopeo();
    push.env("REGISTRY_AUTH_FILE", &file).args(["copy", "--dest-tls-verify=false"]).arg(image.oci_ref()).arg(&target);
    berth_tests::run(&mut push);
    assert_eq!(registry.manifest("login/app", "v1").digest, image.manifest_digest);
    let listed = json_of(&mut berth(config.path(), &["repository", "list", "--registry", &url, "-o", "json"]));
    assert_eq!(listed, serde_json::json!(["login/app"]));

    // --expose-token prints the login for CI instead of storing it.
    let exposed = tempfile::tempdir().unwrap();
    let mut expose = berth(exposed.path(), &login);
    expose.arg("--expose-token");
    let shown: Value = serde_json::from_slice(&run_with_stdin(&mut expose, owner.password.as_bytes()).stdout).unwrap();
    assert_eq!((shown["username"].as_str(), shown["loginServer"].as_str()), (Some(NULL_GUID), Some(registry.host())));
    assert!(shown["refreshToken"].as_str().is_some_and(|token| token != refresh && token.split('.').count() == 3));
    assert!(!exposed.path().join("config.json").exists());

    // A wrong password: the registry's refusal, and nothing stored.
    let mut wrong = berth(exposed.path(), &login);
    let failed = wrong.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = failed.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"not-the-password\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("UNAUTHORIZED"), "{}", String::from_utf8_lossy(&output.stderr));

    // A pull-only service principal made with the CLI: skopeo pulls with --creds, and its push is denied.
    let manage = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--registry", url.as_str(), "-o", "json"]);
        json_of(&mut berth(config.path(), &all))
    };
    let puller = manage(&["sp", "create", "--name", "puller", "--role", "acrpull"]);
    let creds = format!("{}:{}", puller["id"].as_str().unwrap(), puller["password"].as_str().unwrap());
    let inspected = stdout_of(skopeo().args(["inspect", "--tls-verify=false", "--creds", &creds]).arg(&target));
    assert!(inspected.contains(&image.manifest_digest));
    let denied = run_failing(
        skopeo()
            .args(["copy", "--dest-tls-verify=false", "--dest-creds", &creds])
            .arg(image.oci_ref())
            .arg(registry.docker_ref("login/app", "v2")),
    );
    let stderr = String::from_utf8_lossy(&denied.stderr).to_lowercase();
    assert!(stderr.contains("denied") || stderr.contains("unauthorized"), "skopeo should report the refusal: {stderr}");
    assert_eq!(manage(&["sp", "list"])[1]["name"], "puller");
    let reset = manage(&["sp", "credential", "reset", "--name", "puller"]);
    assert_eq!(reset["id"], puller["id"]);
    let refused = run_failing(skopeo().args(["inspect", "--tls-verify=false", "--creds", &creds]).arg(&target));
    assert!(String::from_utf8_lossy(&refused.stderr).to_lowercase().contains("unauthorized"));

    // The admin user: off until enabled, then a login like any other.
    assert_eq!(manage(&["admin", "credential", "show"])["enabled"], false);
    let renewed = manage(&["admin", "credential", "renew", "--password", "1"]);
    manage(&["admin", "enable"]);
    let admin = format!("{}:{}", renewed["username"].as_str().unwrap(), renewed["password"].as_str().unwrap());
    assert!(stdout_of(skopeo().args(["inspect", "--tls-verify=false", "--creds", &admin]).arg(&target)).contains(&image.manifest_digest));

    // Not one secret of this run reached a log line of the registry's processes (or the router's access log).
    let logs = registry.full_logs();
    let secrets = [
        &owner.password,
        refresh,
        shown["refreshToken"].as_str().unwrap(),
        puller["password"].as_str().unwrap(),
        reset["password"].as_str().unwrap(),
        renewed["password"].as_str().unwrap(),
    ];
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret appears in the logs");
    }
    assert!(logs.contains("berth::audit") && logs.contains("outcome"), "the audit lines are there to search:\n{logs}");
}

berth_tests::registry_tests!(login_then_push_with_what_it_stored);

/// Temporary credentials of a session of `role` from the emulator's STS, as `aws sts assume-role` gives them.
fn assume_role(role: &str) -> [(String, String); 3] {
    let endpoint = std::env::var("BERTH_TEST_AWS_ENDPOINT").expect("tests/run starts the AWS emulator");
    let form = [("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", role), ("RoleSessionName", "e2e")];
    // The emulator routes by the credential scope of the Authorization header and checks no signature.
    let routing = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261201/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00";
    let answer =
        reqwest::blocking::Client::new().post(&endpoint).header("authorization", routing).form(&form).send().unwrap().text().unwrap();
    let element = |name: &str| {
        let start = answer.find(&format!("<{name}>")).unwrap_or_else(|| panic!("no {name} in {answer}")) + name.len() + 2;
        answer[start..start + answer[start..].find('<').unwrap()].to_owned()
    };
    [
        ("AWS_ACCESS_KEY_ID".into(), element("AccessKeyId")),
        ("AWS_SECRET_ACCESS_KEY".into(), element("SecretAccessKey")),
        ("AWS_SESSION_TOKEN".into(), element("SessionToken")),
    ]
}

/// `berth login --aws` as an assumed role with acrpush, then docker pushes and pulls with that login alone; `berth
/// login --oidc-token-file` as a CI job with acrpull, then docker pulls and its push is denied; a role with no
/// assignment is told so; then `docker login` as the admin user pulls and pushes.
fn iam_and_oidc_logins_then_docker_pushes_and_pulls(kind: RegistryKind) {
    let issuer = berth_tests::oidc::OidcIssuer::start();
    let registry = Registry::start_with(kind, &[("BERTH_OIDC_ISSUER", &issuer.url), ("BERTH_OIDC_AUDIENCE", "berth-e2e")]);
    if registry.owner().is_none() {
        return;
    }
    let url = registry.url("");
    let owner_config = berth_tests::credentials::docker_config_dir();
    let role = format!("arn:aws:iam::123456789012:role/pusher-{}", berth_tests::digest::random_token());
    let ci_job = "repo:org/app:ref:refs/heads/main";
    for (assignee, role_name) in [(role.as_str(), "acrpush"), (ci_job, "acrpull")] {
        stdout_of(&mut berth(
            &owner_config,
            &["role", "assignment", "create", "--assignee", assignee, "--role", role_name, "--registry", &url],
        ));
    }
    let aws_login = |config: &std::path::Path, role: &str| {
        let mut login = berth(config, &["login", url.as_str(), "--aws"]);
        login.envs(assume_role(role)).env("AWS_REGION", "us-east-1").env("AWS_EC2_METADATA_DISABLED", "true");
        login.env_remove("AWS_PROFILE").env_remove("AWS_ENDPOINT_URL");
        login
    };
    let unassigned = tempfile::tempdir().unwrap();
    let refused = run_failing(&mut aws_login(unassigned.path(), "arn:aws:iam::123456789012:role/nobody"));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("arn:aws:iam::123456789012:role/nobody has no role"), "{stderr}");

    let iam = tempfile::tempdir().unwrap();
    assert!(stdout_of(&mut aws_login(iam.path(), &role)).contains("Login Succeeded"));
    let layout = OciLayout::new();
    let image = layout.add_image("v1", "amd64", true);
    let dockerd = berth_tests::dockerd::Dockerd::start();
    dockerd.load(&image, "berth-test/app:v1");
    let reference = registry.image_ref("iam/app", "v1");
    berth_tests::run(dockerd.docker().args(["tag", "berth-test/app:v1", &reference]));
    berth_tests::run(dockerd.docker().env("DOCKER_CONFIG", iam.path()).args(["push", &reference]));
    assert_eq!(registry.manifest("iam/app", "v1").json["config"]["digest"], image.config_digest);

    let oidc = tempfile::tempdir().unwrap();
    let token_file = oidc.path().join("id-token");
    std::fs::write(&token_file, issuer.id_token(ci_job, "berth-e2e")).unwrap();
    let mut login = berth(oidc.path(), &["login", url.as_str(), "--oidc-token-file"]);
    assert!(stdout_of(login.arg(&token_file)).contains("Login Succeeded"));
    berth_tests::run(dockerd.docker().args(["rmi", &reference]));
    berth_tests::run(dockerd.docker().env("DOCKER_CONFIG", oidc.path()).args(["pull", &reference]));
    let pulled = stdout_of(dockerd.docker().args(["image", "inspect", "--format", "{{.Id}}", &reference]));
    assert_eq!(pulled, image.config_digest);
    let other = registry.image_ref("iam/app", "v2");
    berth_tests::run(dockerd.docker().args(["tag", "berth-test/app:v1", &other]));
    let denied = run_failing(dockerd.docker().env("DOCKER_CONFIG", oidc.path()).args(["push", &other]));
    let output = String::from_utf8_lossy(&denied.stderr).to_lowercase() + &String::from_utf8_lossy(&denied.stdout).to_lowercase();
    assert!(output.contains("denied") || output.contains("unauthorized"), "docker should report the refusal: {output}");

    // The admin user, once enabled, is a `docker login` like any other.
    let renewed = json_of(&mut berth(&owner_config, &["admin", "credential", "renew", "--password", "2", "--registry", &url, "-o", "json"]));
    stdout_of(&mut berth(&owner_config, &["admin", "enable", "--registry", &url]));
    let admin = tempfile::tempdir().unwrap();
    let username = renewed["username"].as_str().unwrap();
    let mut login = dockerd.docker();
    login.env("DOCKER_CONFIG", admin.path()).args(["login", registry.host(), "-u", username, "--password-stdin"]);
    run_with_stdin(&mut login, renewed["password"].as_str().unwrap().as_bytes());
    berth_tests::run(dockerd.docker().args(["rmi", &reference]));
    berth_tests::run(dockerd.docker().env("DOCKER_CONFIG", admin.path()).args(["pull", &reference]));
    berth_tests::run(dockerd.docker().env("DOCKER_CONFIG", admin.path()).args(["push", &other]));
    assert_eq!(registry.manifest("iam/app", "v2").json["config"]["digest"], image.config_digest);
}

berth_tests::registry_tests!(iam_and_oidc_logins_then_docker_pushes_and_pulls);
