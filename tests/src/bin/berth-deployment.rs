//! `berth-deployment`: Berth's AWS deployment as the end-to-end tests run it (the token, manifests and blobs functions
//! with Lambda's request cap and the upload service, behind the CloudFront-like router, over the AWS emulator at
//! `BERTH_TEST_AWS_ENDPOINT`), for tests/bench to measure side by side with `berth serve` and the reference registry.
//!
//! Prints one JSON line once the registry answers — its host, the owner's credentials, every process with its pid
//! and log file, and the environment the functions get (to run the scan function on a stream event beside them) —
//! then serves until its stdin closes, and stops everything on the way out.

use berth_tests::{Registry, RegistryKind};

fn main() {
    let registry = Registry::start(RegistryKind::AwsFunctions);
    let owner = registry.owner().expect("Berth makes an owner");
    let processes: Vec<serde_json::Value> =
        registry.processes().into_iter().map(|(name, pid, log)| serde_json::json!({"name": name, "pid": pid, "log": log})).collect();
    let environment: serde_json::Map<String, serde_json::Value> =
        registry.function_environment().iter().map(|(name, value)| (name.clone(), value.clone().into())).collect();
    println!(
        "{}",
        serde_json::json!({"host": registry.host(), "username": owner.username, "password": owner.password, "processes": processes,
            "environment": environment})
    );
    // The bench closes our stdin to stop us; dropping the registry then stops its processes.
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}
