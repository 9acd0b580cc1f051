//! `berth advisories import` and `berth scan show` against a running `berth serve`: an image holding Debian 12's
//! minimal dpkg database, built with umoci and pushed with skopeo, is scanned on push, and the command reports the
//! findings `shared/vulndata/expected.json` lists for its packages, in JSON and as a table.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::{
    OciLayout, Registry, RegistryKind, berth_bin,
    clients::{oras, skopeo},
    run, run_failing, stdout_of,
};
use serde_json::Value;

/// In CI the repository is cloned beside `shared/`, as the worktree is here.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vulndata");
const DEBIAN_12: &[u8] = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

/// `berth <args> --registry <registry>` with the harness's login.
fn berth(registry: &Registry, args: &[&str]) -> Command {
    let mut command = Command::new(berth_bin());
    command.env("DOCKER_CONFIG", berth_tests::credentials::docker_config_dir());
    command.env_remove("BERTH_REGISTRY").args(args).arg("--registry").arg(registry.url(""));
    command
}

fn json_of(registry: &Registry, args: &[&str]) -> Value {
    let out = stdout_of(berth(registry, args).args(["--output", "json"]));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("berth {args:?} printed no JSON ({e}):\n{out}"))
}

/// The advisory ids `expected.json` lists for the Debian packages of the minimal base image.
fn expected_minbase_ids() -> BTreeSet<String> {
    let expected: Vec<Value> = serde_json::from_slice(&std::fs::read(format!("{DATA}/expected.json")).unwrap()).unwrap();
    expected
        .iter()
        .filter(|entry| entry["note"].as_str().unwrap_or_default().contains("debian12-minbase.status"))
        .flat_map(|entry| entry["advisory_ids_expected"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()))
        .collect()
}

fn scan_show_reports_the_findings_of_a_pushed_image(kind: RegistryKind) {
    let registry = Registry::start(kind);
    let imported = json_of(&registry, &["advisories", "import", &format!("{DATA}/osv")]);
    assert_eq!(imported["imported"], 211);

    let layout = OciLayout::new();
    let status = std::fs::read(format!("{DATA}/inventories/debian12-minbase.status")).unwrap();
    let image = layout.add_image_of_files("v1", &[("etc/os-release", DEBIAN_12), ("var/lib/dpkg/status", &status)]);
    run(skopeo().args(["copy", "--dest-tls-verify=false"]).arg(&image).arg(registry.docker_ref("scan/debian", "v1")));
    let digest = registry.manifest("scan/debian", "v1").digest;

    let started = Instant::now();
    let report = loop {
        let report = json_of(&registry, &["scan", "show", "scan/debian:v1"]);
        if report["status"] != "pending" || started.elapsed() > Duration::from_secs(30) {
            break report;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(report["status"], "done", "{report}");
    assert_eq!(report["image"], format!("scan/debian@{digest}"));
    assert_eq!(report["snapshot"]["id"], imported["snapshot"]["id"]);
    let ids: BTreeSet<String> =
        report["findings"].as_array().unwrap().iter().map(|finding| finding["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, expected_minbase_ids());
    assert_eq!(ids, BTreeSet::from(["DLA-4772-1", "DLA-4783-1", "DLA-4792-1", "DLA-4816-1"].map(str::to_owned)));
    assert_eq!(report["summary"]["total"], 4);
    let xz = report["findings"].as_array().unwrap().iter().find(|finding| finding["id"] == "DLA-4783-1").unwrap();
    assert_eq!(
        (&xz["package"], &xz["ecosystem"], &xz["installed"]),
        (&Value::from("xz-utils"), &Value::from("Debian:12"), &Value::from("5.4.1-1+deb12u1"))
    );
    assert_eq!(xz["remediation"], format!("upgrade xz-utils from 5.4.1-1+deb12u1 to {} or later", xz["fixed"].as_str().unwrap()));

    // The report is attached to the image as an OCI referrer, which oras pulls as the file the API's report is.
    let referrers: Value = registry.get(&format!("/v2/scan/debian/referrers/{digest}")).json().unwrap();
    let attached = referrers["manifests"].as_array().unwrap();
    assert_eq!(attached.len(), 1, "{referrers}");
    assert_eq!(attached[0]["artifactType"], "application/vnd.berth.vulnerability-report.v1+json");
    let pulled = tempfile::tempdir().unwrap();
    let target = format!("scan/debian@{}", attached[0]["digest"].as_str().unwrap());
    let files = oras(&registry, &["pull", registry.host(), &target, pulled.path().to_str().unwrap()]);
    assert_eq!(files["files"].as_array().unwrap().len(), 1, "{files}");
    let file: Value = serde_json::from_slice(&std::fs::read(pulled.path().join("vulnerability-report.json")).unwrap()).unwrap();
    assert_eq!(file, report);

    // By digest, the same findings; --severity keeps those at least that severe (the Debian records rate none).
    let by_digest = json_of(&registry, &["scan", "show", &format!("scan/debian@{digest}")]);
    assert_eq!(by_digest["findings"], report["findings"]);
    assert_eq!(json_of(&registry, &["scan", "show", "scan/debian:v1", "--severity", "low"])["findings"], Value::Array(Vec::new()));
    let table = stdout_of(berth(&registry, &["scan", "show", "scan/debian:v1", "--severity", "unknown"]).args(["--output", "table"]));
    assert!(table.contains("4 findings: 0 critical, 0 high, 0 medium, 0 low, 4 unknown"), "{table}");
    assert!(table.lines().any(|line| line.starts_with("Unknown") && line.contains("DLA-4783-1") && line.contains("xz-utils")), "{table}");

    // The same records as a zip (OSV's exports are zips) make a new snapshot, which the image is re-evaluated against.
    let zipped = tempfile::tempdir().unwrap();
    let archive = zipped.path().join("osv.zip");
    run(Command::new("python3").args(["-m", "zipfile", "-c"]).arg(&archive).arg(format!("{DATA}/osv")));
    let reimported = json_of(&registry, &["advisories", "import", archive.to_str().unwrap()]);
    assert_eq!(reimported["imported"], 211);
    assert_ne!(reimported["snapshot"]["id"], imported["snapshot"]["id"]);
    let reevaluated = json_of(&registry, &["scan", "show", "scan/debian:v1"]);
    assert_eq!(reevaluated["snapshot"]["id"], reimported["snapshot"]["id"]);
    assert_eq!(reevaluated["findings"], report["findings"]);

    // The repository's manifest listing carries the scan: the same counts, and a column in the table.
    let listed = json_of(&registry, &["repository", "show-manifests", "scan/debian"]);
    let entry = listed.as_array().unwrap().iter().find(|entry| entry["digest"] == digest.as_str()).unwrap();
    assert_eq!(entry["scan"], serde_json::json!({"status": "done", "critical": 0, "high": 0, "medium": 0, "low": 0, "unknown": 4}));
    let table = stdout_of(berth(&registry, &["repository", "show-manifests", "scan/debian"]).args(["--output", "table"]));
    assert!(table.lines().next().unwrap().contains("VULNERABILITIES"), "{table}");
    assert!(table.lines().any(|line| line.starts_with(&digest) && line.trim_end().ends_with("4 unknown")), "{table}");

    // The pull policy, set with the CLI and met by a real client: blocked at any severity, then every finding allowed.
    let shown = json_of(&registry, &["registry", "update", "--block-severity", "unknown"]);
    assert_eq!(shown["blockSeverity"], "Unknown");
    let image = registry.docker_ref("scan/debian", "v1");
    let refused = run_failing(skopeo().args(["inspect", "--tls-verify=false"]).arg(&image));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("denied") && said.contains("DLA-4772-1 (Unknown, pcre2 10.42-1)"), "{said}");
    let mut allow = vec!["registry", "update"];
    for id in &ids {
        allow.extend(["--allow-advisory", id.as_str()]);
    }
    let shown = json_of(&registry, &allow);
    assert_eq!(shown["allowedAdvisories"].as_array().unwrap().len(), 4, "{shown}");
    run(skopeo().args(["inspect", "--tls-verify=false"]).arg(&image));
    let table = stdout_of(
        berth(&registry, &["registry", "update", "--block-severity", "none", "--allow-advisory", ""]).args(["--output", "table"]),
    );
    assert!(table.contains("BLOCK SEVERITY") && table.lines().any(|row| row.starts_with("berth-e2e") && row.contains("none")), "{table}");

    // The tier, in any case; anonymous pull needs Standard.
    assert_eq!(json_of(&registry, &["registry", "update", "--sku", "Basic"])["sku"], "basic");
    let refused = run_failing(&mut berth(&registry, &["registry", "update", "--anonymous-pull", "true"]));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("anonymous pull needs the standard tier; this registry is basic"), "{said}");
    let table = stdout_of(berth(&registry, &["registry", "show"]).args(["--output", "table"]));
    assert!(table.lines().next().unwrap().contains("SKU") && table.contains("basic"), "{table}");
}

/// Only `berth serve` scans what is pushed to it so far: the AWS deployment's scan function is not built yet.
#[test]
fn scan_show_reports_the_findings_of_a_pushed_image_on_berth_serve() {
    RegistryKind::Embedded.run(scan_show_reports_the_findings_of_a_pushed_image);
}
