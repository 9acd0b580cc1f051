//! `berth`: runs the registry (`berth serve`) and manages a running one, the counterpart of `az acr`.

mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "Berth, a private OCI container registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole registry on one machine over the embedded store.
    Serve(serve::ServeArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
