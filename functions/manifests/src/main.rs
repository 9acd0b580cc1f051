//! The manifests function: manifests, tags, referrers, the catalog and repository management. Runs under Lambda, or over plain HTTP on `PORT`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    berth::function::run(&[berth::http::routes::Function::Manifests]).await
}
