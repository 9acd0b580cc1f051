//! `berth repository ...` against a running `berth serve`: every command in table and JSON output, what it prints
//! checked against the digests and tags pushed, and what the registry serves after untag and delete.
//!
//! Berth's own management API is part of what is tested, so these tests do not run against the reference registry.

use std::net::TcpListener;
use std::process::{Command, Output};

use berth_tests::{Registry, RegistryKind, berth_bin, push_tiny_image, run_failing, stdout_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `berth repository <args>` pointed at `registry` by `--registry`, whatever BERTH_REGISTRY the environment holds.
fn berth(registry: &Registry, args: &[&str]) -> Command {
    let mut command = Command::new(berth_bin());
    command.env("DOCKER_CONFIG", berth_tests::credentials::docker_config_dir());
    command.env_remove("BERTH_REGISTRY").arg("repository").arg("--registry").arg(registry.url("")).args(args);
    command
}

/// Runs a command with `--output json` and parses what it prints.
fn json_of(registry: &Registry, args: &[&str]) -> Value {
    let out = stdout_of(berth(registry, args).args(["--output", "json"]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("berth {args:?} printed no JSON ({e}):\n{out}"))
}

/// Runs a command in table output and splits what it prints into header and rows, cutting each line where the
/// dashes under the header start, which also checks that the columns are aligned.
fn table_of(registry: &Registry, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let out = stdout_of(berth(registry, args).args(["--output", "table"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 2, "berth {args:?}: no header and rule:\n{out}");
    let starts: Vec<usize> =
        lines[1].char_indices().filter(|&(i, c)| c == '-' && (i == 0 || lines[1][..i].ends_with(' '))).map(|(i, _)| i).collect();
    let cells = |line: &str| -> Vec<String> {
        assert!(line.is_ascii(), "berth {args:?}: {line}");
        let mut ends: Vec<usize> = starts[1..].iter().map(|&s| s.min(line.len())).collect();
        ends.push(line.len());
        starts.iter().zip(ends).map(|(&start, end)| line.get(start.min(end)..end).unwrap_or_default().trim().to_owned()).collect()
    };
    let header = cells(lines[0]);
    let rows = lines[2..].iter().map(|line| cells(line)).collect();
    (header, rows)
}

/// Runs a command that must fail and returns its exit code and stderr, checking it printed nothing on stdout.
fn failure_of(command: &mut Command) -> (Option<i32>, String) {
    let Output { status, stdout, stderr } = run_failing(command);
    assert!(stdout.is_empty(), "{command:?} printed on stdout: {}", String::from_utf8_lossy(&stdout));
    (status.code(), String::from_utf8_lossy(&stderr).into_owned())
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

fn lists_repositories_tags_and_manifests_in_both_formats(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let shared = push_tiny_image(&registry, "team/app", "v1", "shared");
    assert_eq!(push_tiny_image(&registry, "team/app", "v2", "shared"), shared);
    let single = push_tiny_image(&registry, "team/app", "v3", "single");
    push_tiny_image(&registry, "base", "latest", "base");
    push_tiny_image(&registry, "team/tools/lint", "1.0", "lint");
    let repositories = ["base", "team/app", "team/tools/lint"];

    // One repository per page makes the client follow the catalog's Link header to the end.
    assert_eq!(json_of(&registry, &["list", "--page-size", "1"]), json!(repositories));
    assert_eq!(json_of(&registry, &["list"]), json!(repositories));
    let (header, rows) = table_of(&registry, &["list"]);
    assert_eq!(header, ["REPOSITORY"]);
    assert_eq!(rows, repositories.map(|name| strings(&[name])));
    // The registry's address from the environment instead of --registry.
    let listed = stdout_of(
        Command::new(berth_bin())
            .env("DOCKER_CONFIG", berth_tests::credentials::docker_config_dir())
            .env("BERTH_REGISTRY", registry.url(""))
            .args(["repository", "list", "-o", "json"]),
    );
    assert_eq!(serde_json::from_str::<Value>(&listed).expect("JSON"), json!(repositories));

    assert_eq!(json_of(&registry, &["show-tags", "team/app", "--page-size", "2"]), json!(["v1", "v2", "v3"]));
    assert_eq!(json_of(&registry, &["show-tags", "team/tools/lint"]), json!(["1.0"]));
    let (header, rows) = table_of(&registry, &["show-tags", "team/app", "--page-size", "1"]);
    assert_eq!(header, ["TAG"]);
    assert_eq!(rows, [["v1"], ["v2"], ["v3"]]);

    let manifests = json_of(&registry, &["show-manifests", "team/app"]);
    let manifests = manifests.as_array().unwrap_or_else(|| panic!("not an array: {manifests}"));
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    // One manifest per page makes the client follow the listing's Link header, to the same list (but for the scans,
    // which `berth serve` may finish in between).
    let unscanned = |listing: &[Value]| -> Vec<Value> {
        listing
            .iter()
            .cloned()
            .map(|mut entry| {
                entry.as_object_mut().unwrap().remove("scan");
                entry
            })
            .collect()
    };
    let paged = json_of(&registry, &["show-manifests", "team/app", "--page-size", "1"]);
    assert_eq!(unscanned(paged.as_array().unwrap()), unscanned(manifests));
    let (header, rows) = table_of(&registry, &["show-manifests", "team/app"]);
    assert_eq!(header, ["DIGEST", "MEDIA TYPE", "SIZE", "PUSHED", "TAGS", "VULNERABILITIES"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (digest, tags) in [(&shared, json!(["v1", "v2"])), (&single, json!(["v3"]))] {
        let listed =
            manifests.iter().find(|m| m["digest"] == json!(digest)).unwrap_or_else(|| panic!("{digest} not listed: {manifests:?}"));
        let served = registry.manifest("team/app", digest);
        assert_eq!(listed["mediaType"], OCI_MANIFEST);
        assert_eq!(listed["size"], json!(served.bytes.len()));
        assert_eq!(listed["tags"], tags);
        let pushed = listed["pushedAt"].as_str().unwrap_or_else(|| panic!("pushedAt: {listed}"));
        assert!(is_rfc3339_millis(pushed), "pushedAt {pushed}");

        let row = rows.iter().find(|row| &row[0] == digest).unwrap_or_else(|| panic!("{digest} not in {rows:?}"));
        let tags: Vec<&str> = tags.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        assert_eq!(row[1..5], [OCI_MANIFEST.to_owned(), served.bytes.len().to_string(), pushed.to_owned(), tags.join(", ")]);
        // The AWS deployment does not scan yet; berth serve scans every push, and these layers are no tar streams.
        let scans = if registry.kind() == RegistryKind::AwsFunctions { &["-"][..] } else { &["pending", "failed"][..] };
        assert!(scans.contains(&row[5].as_str()), "{row:?}");
    }
}

/// `2024-05-01T12:34:56.789Z`
fn is_rfc3339_millis(text: &str) -> bool {
    let pattern = "dddd-dd-ddTdd:dd:dd.dddZ";
    text.len() == pattern.len() && text.chars().zip(pattern.chars()).all(|(c, p)| if p == 'd' { c.is_ascii_digit() } else { c == p })
}

fn untag_and_delete_change_what_the_registry_serves(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let shared = push_tiny_image(&registry, "team/app", "v1", "shared");
    push_tiny_image(&registry, "team/app", "v2", "shared");
    let single = push_tiny_image(&registry, "team/app", "v3", "single");
    let loose = push_tiny_image(&registry, "team/app", "v4", "loose");
    push_tiny_image(&registry, "other/repo", "latest", "other");

    // Untag removes the tag alone; the manifest stays, also when it loses its last tag.
    let removed = json_of(&registry, &["untag", "team/app:v2"]);
    assert_eq!(removed, json!({"removed": "tag", "repository": "team/app", "tag": "v2"}));
    assert_eq!(registry.tags("team/app"), ["v1", "v3", "v4"]);
    assert_eq!(registry.manifest_status("team/app", &shared), StatusCode::OK);
    assert_eq!(stdout_of(&mut berth(&registry, &["untag", "team/app:v4"])), "Untagged team/app:v4");
    assert_eq!(registry.tags("team/app"), ["v1", "v3"]);
    assert_eq!(registry.manifest_status("team/app", &loose), StatusCode::OK);
    let manifests = json_of(&registry, &["show-manifests", "team/app"]);
    let untagged = manifests.as_array().into_iter().flatten().find(|m| m["digest"] == json!(loose));
    assert_eq!(untagged.map(|m| &m["tags"]), Some(&json!([])), "{manifests}");

    // Delete by tag removes the manifest the tag points at, with its tags.
    let removed = json_of(&registry, &["delete", "team/app:v1"]);
    assert_eq!(removed, json!({"removed": "manifest", "repository": "team/app", "tag": "v1", "digest": shared}));
    assert_eq!(registry.manifest_status("team/app", &shared), StatusCode::NOT_FOUND);
    assert_eq!(registry.tags("team/app"), ["v3"]);

    // Delete by digest, in both formats.
    let out = stdout_of(&mut berth(&registry, &["delete", &format!("team/app@{single}")]));
    assert!(out.contains(&single), "{out}");
    assert_eq!(registry.manifest_status("team/app", &single), StatusCode::NOT_FOUND);
    assert!(registry.tags("team/app").is_empty());
    let removed = json_of(&registry, &["delete", &format!("team/app@{loose}")]);
    assert_eq!(removed, json!({"removed": "manifest", "repository": "team/app", "digest": loose}));
    assert_eq!(json_of(&registry, &["show-manifests", "team/app"]), json!([]));

    // Delete a whole repository, in both formats.
    assert_eq!(stdout_of(&mut berth(&registry, &["delete", "other/repo"])), "Deleted repository other/repo");
    assert_eq!(registry.get("/v2/other/repo/tags/list").status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(&registry, &["list"]), json!(["team/app"]));
    let removed = json_of(&registry, &["delete", "team/app"]);
    assert_eq!(removed, json!({"removed": "repository", "repository": "team/app"}));
    assert_eq!(json_of(&registry, &["list"]), json!([]));
    let (_, rows) = table_of(&registry, &["list"]);
    assert!(rows.is_empty(), "{rows:?}");
}

fn reports_registry_errors_unreachable_registries_and_bad_references(kind: RegistryKind) {
    let registry = Registry::start(kind);
    push_tiny_image(&registry, "team/app", "v1", "errors");
    let unknown_digest = format!("team/app@sha256:{}", "0".repeat(64));

    let cases: [(&[&str], &str); 6] = [
        (&["show-tags", "missing"], "error: NAME_UNKNOWN: "),
        (&["show-manifests", "missing"], "error: NAME_UNKNOWN: "),
        (&["untag", "team/app:nope"], "error: MANIFEST_UNKNOWN: "),
        (&["delete", "team/app:nope"], "error: MANIFEST_UNKNOWN: "),
        (&["delete", &unknown_digest], "error: MANIFEST_UNKNOWN: "),
        (&["delete", "missing"], "error: NAME_UNKNOWN: "),
    ];
    for (args, expected) in cases {
        for output in ["table", "json"] {
            let (code, stderr) = failure_of(berth(&registry, args).args(["--output", output]));
            assert_eq!(code, Some(1), "berth {args:?}: {stderr}");
            assert!(stderr.starts_with(expected), "berth {args:?} --output {output}: {stderr}");
        }
    }
    // Nothing was removed by the failed commands.
    assert_eq!(registry.tags("team/app"), ["v1"]);

    // A port nobody listens on once the listener is dropped.
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let (code, stderr) =
        failure_of(Command::new(berth_bin()).args(["repository", "list", "--registry", &format!("http://127.0.0.1:{port}")]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach http://127.0.0.1:{port}/v2/_catalog")), "{stderr}");

    // References are checked before any request: a registry host, a missing tag, a tag and a digest together.
    let with_host = format!("{}/team/app:v1", registry.host());
    for (args, expected) in [
        (["untag", with_host.as_str()], "registry host"),
        (["untag", "team/app"], "expected NAME:TAG"),
        (["delete", &format!("team/app:v1@sha256:{}", "0".repeat(64))], "not both"),
        (["show-tags", "team/app:v1"], "without :TAG"),
    ] {
        let (code, stderr) = failure_of(&mut berth(&registry, &args));
        assert_eq!(code, Some(2), "berth {args:?}: {stderr}");
        assert!(stderr.contains(expected), "berth {args:?}: {stderr}");
    }
    assert_eq!(registry.tags("team/app"), ["v1"]);
}

berth_tests::registry_tests!(
    lists_repositories_tags_and_manifests_in_both_formats,
    untag_and_delete_change_what_the_registry_serves,
    reports_registry_errors_unreachable_registries_and_bad_references,
);
