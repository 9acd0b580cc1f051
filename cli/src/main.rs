//! `berth`: runs the registry (`berth serve`) and manages a running one, the counterpart of `az acr`.

mod client;
mod output;
mod reference;
mod repository;
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
    /// Manage the repositories of a running registry: list, show tags and manifests, untag, delete.
    Repository(repository::RepositoryArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Repository(args) => repository::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
