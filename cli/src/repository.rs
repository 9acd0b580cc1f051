//! `berth repository ...`: lists and removes a running registry's repositories, tags and manifests over HTTP, the
//! counterpart of `az acr repository`.

use std::error::Error;
use std::num::NonZeroUsize;

use berth::oci::{Reference, RepositoryName};
use clap::{Args, Subcommand};
use reqwest::Url;
use serde::Serialize;

use crate::client::{ManifestSummary, RegistryClient, parse_registry_url};
use crate::output::{OutputFormat, Table, emit, rfc3339};
use crate::reference::{ImageRef, TaggedImage, parse_image, parse_name, parse_tagged};

#[derive(Args)]
pub struct RepositoryArgs {
    /// Base URL of the registry.
    #[arg(long, global = true, env = "BERTH_REGISTRY", default_value = "http://127.0.0.1:5000", value_parser = parse_registry_url)]
    registry: Url,
    /// How to print results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
    #[command(subcommand)]
    command: RepositoryCommand,
}

#[derive(Subcommand)]
enum RepositoryCommand {
    /// List all repositories.
    List(Paging),
    /// List the tags of a repository.
    ShowTags {
        /// The repository, e.g. team/app.
        #[arg(value_name = "NAME", value_parser = parse_name)]
        name: RepositoryName,
        #[command(flatten)]
        paging: Paging,
    },
    /// List the manifests of a repository with their media type, size, tags and push time.
    ShowManifests {
        /// The repository, e.g. team/app.
        #[arg(value_name = "NAME", value_parser = parse_name)]
        name: RepositoryName,
        #[command(flatten)]
        paging: Paging,
    },
    /// Remove a tag; the manifest it points at stays.
    Untag {
        /// The repository and tag, e.g. team/app:v1.
        #[arg(value_name = "NAME:TAG", value_parser = parse_tagged)]
        image: TaggedImage,
    },
    /// Delete a whole repository (NAME), or a manifest with all its tags (NAME:TAG or NAME@DIGEST).
    Delete {
        /// The repository (team/app), a tag in it (team/app:v1) or a manifest by digest (team/app@sha256:...).
        #[arg(value_name = "NAME[:TAG|@DIGEST]", value_parser = parse_image)]
        image: ImageRef,
    },
}

#[derive(Args)]
struct Paging {
    /// Entries to ask for per request (the registry may send fewer); every page is fetched either way.
    #[arg(long, value_name = "N")]
    page_size: Option<NonZeroUsize>,
}

/// What `untag` and `delete` removed, printed so that scripts learn the digest a tag resolved to.
#[derive(Serialize)]
struct Removed {
    removed: Removal,
    repository: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Removal {
    Repository,
    Manifest,
    Tag,
}

pub async fn run(args: RepositoryArgs) -> Result<(), Box<dyn Error>> {
    let client = RegistryClient::new(args.registry);
    let format = args.output;
    match args.command {
        RepositoryCommand::List(paging) => {
            let repositories = client.repositories(paging.page_size).await?;
            emit(format, &repositories, |names| column("REPOSITORY", names))?;
        }
        RepositoryCommand::ShowTags { name, paging } => {
            let tags = client.tags(&name, paging.page_size).await?;
            emit(format, &tags, |tags| column("TAG", tags))?;
        }
        RepositoryCommand::ShowManifests { name, paging } => {
            let manifests = client.manifests(&name, paging.page_size).await?;
            emit(format, &manifests, |manifests| manifest_table(manifests))?;
        }
        RepositoryCommand::Untag { image: TaggedImage { name, tag } } => {
            client.delete_manifest(&name, &Reference::Tag(tag.clone())).await?;
            let removed = Removed { removed: Removal::Tag, repository: name.to_string(), tag: Some(tag.to_string()), digest: None };
            emit(format, &removed, |_| format!("Untagged {name}:{tag}"))?;
        }
        RepositoryCommand::Delete { image: ImageRef { name, reference: None } } => {
            client.delete_repository(&name).await?;
            let removed = Removed { removed: Removal::Repository, repository: name.to_string(), tag: None, digest: None };
            emit(format, &removed, |_| format!("Deleted repository {name}"))?;
        }
        RepositoryCommand::Delete { image: ImageRef { name, reference: Some(reference) } } => {
            // Deleting by tag removes the manifest, as `az acr repository delete --image` does; the tag endpoint would
            // only untag. The tag is resolved first because the manifest DELETE takes the digest.
            let (tag, digest) = match reference {
                Reference::Tag(tag) => (Some(tag.to_string()), client.resolve_tag(&name, &tag).await?),
                Reference::Digest(digest) => (None, digest),
            };
            client.delete_manifest(&name, &Reference::Digest(digest.clone())).await?;
            let removed = Removed { removed: Removal::Manifest, repository: name.to_string(), tag, digest: Some(digest.to_string()) };
            emit(format, &removed, |_| format!("Deleted manifest {name}@{digest} and its tags"))?;
        }
    }
    Ok(())
}

fn column(title: &'static str, values: &[String]) -> String {
    let mut table = Table::new(vec![title]);
    for value in values {
        table.row(vec![value.clone()]);
    }
    table.render()
}

fn manifest_table(manifests: &[ManifestSummary]) -> String {
    let mut table = Table::new(vec!["DIGEST", "MEDIA TYPE", "SIZE", "PUSHED", "TAGS", "VULNERABILITIES"]);
    for manifest in manifests {
        table.row(vec![
            manifest.digest.clone(),
            manifest.media_type.clone(),
            manifest.size.to_string(),
            rfc3339(manifest.pushed_at),
            manifest.tags.join(", "),
            // A registry that does not scan says nothing about it.
            manifest.scan.as_ref().map_or_else(|| "-".to_owned(), |scan| scan.describe()),
        ]);
    }
    table.render()
}
