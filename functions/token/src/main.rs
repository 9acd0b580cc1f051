//! The token function: the token endpoint and the version check every client starts with. Runs under Lambda, or over plain HTTP on `PORT`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    berth::function::run(&[berth::http::routes::Function::Token]).await
}
