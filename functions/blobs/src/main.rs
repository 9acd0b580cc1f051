//! The blobs function: blob downloads (presigned S3 redirects) and uploads (S3 multipart across invocations). Runs
//! under Lambda, or over plain HTTP on `PORT`.

use berth::http::routes::Function;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Manifests too: CloudFront sends every path with a `blobs` segment here, and a repository may be named
    // `team/blobs/app`, so its manifest requests arrive here as well (infra/template.yaml).
    berth::function::run(&[Function::Blobs, Function::Manifests]).await
}
