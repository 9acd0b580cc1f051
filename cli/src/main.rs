//! `berth`: runs the registry (`berth serve`) and manages a running one, the counterpart of `az acr`.

mod access;
mod auth;
mod client;
mod output;
mod reference;
mod repository;
mod scan;
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
    /// Log in to a registry and configure docker for it (a login lasts 3 hours).
    Login(access::LoginArgs),
    /// Service principals: automation's identities, with roles.
    Sp(access::SpArgs),
    /// Role assignments of IAM principals, OIDC subjects and service principals.
    Role(access::RoleArgs),
    /// The admin user (off by default).
    Admin(access::AdminArgs),
    /// Scope maps: what repository-scoped tokens may do where.
    ScopeMap(access::ScopeMapArgs),
    /// Repository-scoped tokens.
    Token(access::TokenArgs),
    /// The registry's settings.
    Registry(access::RegistryArgs),
    /// OSV advisories that pushed images are scanned against.
    Advisories(scan::AdvisoriesArgs),
    /// Vulnerability scans of pushed images.
    Scan(scan::ScanArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Repository(args) => repository::run(args).await,
        Command::Login(args) => access::login(args).await,
        Command::Sp(args) => access::sp(args).await,
        Command::Role(args) => access::role(args).await,
        Command::Admin(args) => access::admin(args).await,
        Command::ScopeMap(args) => access::scope_map(args).await,
        Command::Token(args) => access::token(args).await,
        Command::Registry(args) => access::registry(args).await,
        Command::Advisories(args) => scan::advisories(args).await,
        Command::Scan(args) => scan::scan(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
