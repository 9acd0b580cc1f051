//! `berth login` and the identity commands against a running registry, with real clients using what they create:
//! a login stored in docker's config.json that skopeo pushes with, `--expose-token`, a pull-only service principal
//! whose push skopeo reports as denied, and the admin user.

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
    let denied = run_failing(skopeo().args(["copy", "--dest-tls-verify=false", "--dest-creds", &creds]).arg(image.oci_ref()).arg(registry.docker_ref("login/app", "v2")));
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
    let secrets = [&owner.password, refresh, shown["refreshToken"].as_str().unwrap(), puller["password"].as_str().unwrap(), reset["password"].as_str().unwrap(), renewed["password"].as_str().unwrap()];
    for secret in secrets {
        assert!(!logs.contains(secret), "a secret appears in the logs");
    }
    assert!(logs.contains("berth::audit") && logs.contains("outcome"), "the audit lines are there to search:\n{logs}");
}

berth_tests::registry_tests!(login_then_push_with_what_it_stored);
