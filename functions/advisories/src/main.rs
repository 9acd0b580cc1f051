//! The advisories function: a daily schedule invokes it to download OSV's advisory exports and import them as the
//! registry's new snapshot. Outside Lambda it runs once and prints what it imported.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    berth::function::run_advisories().await
}
