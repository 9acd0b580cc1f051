//! `berth serve`: the whole registry on one port, over the embedded store or over S3 and DynamoDB.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use berth::{
    http::{self, PublicUrl, routes::Function},
    identity::{
        ExternalLogins, TokenService, bootstrap,
        directory::{Directory, check_registry_name},
        keys::SigningKey,
        oidc::OidcConfig,
    },
    registry::{DEFAULT_MAX_MANIFEST_BYTES, EventBus},
    scan::worker,
    server,
    services::{self, AccessControl, Limits},
    store::{
        IdentityRecords,
        aws::{self, AwsSettings},
        dynamodb::DynamoMetadata,
        local::EmbeddedStore,
        resources,
        s3::S3Limits,
    },
    telemetry,
    tier::Sku,
};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Store {
    /// Blobs on the local filesystem, metadata in an embedded database under --data-dir.
    Embedded,
    /// Blobs in S3, metadata in DynamoDB; endpoint and credentials from the standard AWS environment.
    Aws,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BERTH_ADDR", default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// Where the registry keeps its data.
    #[arg(long, env = "BERTH_STORE", value_enum, default_value = "embedded")]
    store: Store,
    /// The registry's name: the service its tokens are for, and the admin user's name.
    #[arg(long, env = "BERTH_REGISTRY_NAME", default_value = "berth", value_parser = registry_name)]
    name: String,
    /// Directory holding blobs and the metadata database (embedded store), the signing key and the first owner's
    /// credentials (initial-owner.json); created if missing.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = "berth-data")]
    data_dir: PathBuf,
    /// S3 bucket for blobs (aws store).
    #[arg(long, env = "BERTH_BUCKET", required_if_eq("store", "aws"))]
    bucket: Option<String>,
    /// DynamoDB table for metadata (aws store).
    #[arg(long, env = "BERTH_TABLE", required_if_eq("store", "aws"))]
    table: Option<String>,
    /// AWS region (aws store); otherwise the SDK's usual sources (AWS_REGION, profile).
    #[arg(long)]
    region: Option<String>,
    /// Create the bucket and table (and the signing key secret) if missing, with the settings infra/template.yaml
    /// gives them (for emulators).
    #[arg(long)]
    create_resources: bool,
    /// Secrets Manager secret holding the token signing key seed (aws store), as the token function reads it;
    /// without it the seed is kept in --data-dir.
    #[arg(long, env = "BERTH_SIGNING_KEY_SECRET")]
    signing_key_secret: Option<String>,
    /// Lifetime of presigned blob download URLs (aws store), at most 1200.
    #[arg(long, env = "BERTH_PRESIGN_TTL_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=1200))]
    presign_ttl_seconds: u64,
    /// The registry's public base URL (https://registry.example.com), for absolute Location URLs behind a proxy.
    #[arg(long, env = "BERTH_PUBLIC_URL", value_parser = PublicUrl::parse)]
    public_url: Option<PublicUrl>,
    /// Largest manifest accepted, in bytes; larger ones get 413.
    #[arg(long, env = "BERTH_MAX_MANIFEST_BYTES", default_value_t = DEFAULT_MAX_MANIFEST_BYTES)]
    max_manifest_bytes: u64,
    /// Accept OIDC ID tokens of this issuer as logins (`berth login --oidc-token-file`); with --oidc-audience.
    #[arg(long, env = "BERTH_OIDC_ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience those ID tokens must name (the registry's own, never a shared default).
    #[arg(long, env = "BERTH_OIDC_AUDIENCE", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// Accept AWS IAM logins (`berth login --aws`), checking them with the STS at this URL
    /// (https://sts.<region>.amazonaws.com).
    #[arg(long, env = "BERTH_STS_ENDPOINT")]
    sts_endpoint: Option<reqwest::Url>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "BERTH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "BERTH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "BERTH_LOG_JSON")]
    log_json: bool,
    /// The registry's tier (basic, standard or premium, any case) unless `berth registry update --sku` chose one;
    /// without either, nothing is limited.
    #[arg(long, env = "BERTH_SKU", value_parser = parse_sku)]
    sku: Option<Sku>,
}

fn parse_sku(text: &str) -> Result<Sku, String> {
    text.parse().map_err(|error: berth::tier::UnknownSku| error.to_string())
}

/// The token service over `records` with the key `seed` stands for, publishing its public key for other processes
/// on the same store, and the first owner when the registry has none (its credentials go to the data directory).
async fn access_control(
    records: Arc<dyn IdentityRecords>,
    name: &str,
    seed: &[u8],
    data_dir: &std::path::Path,
    external: &ExternalLogins,
    sku: Option<Sku>,
) -> Result<AccessControl, Box<dyn std::error::Error>> {
    let directory = Directory::new(records, name.to_owned(), None).with_default_sku(sku);
    let key = SigningKey::from_seed(seed)?;
    directory.publish_key(key.public_key()).await?;
    if let Some((username, path)) = bootstrap::initial_owner(&directory, data_dir).await? {
        // Printed once, to the terminal only: the password stays in the file.
        eprintln!(
            "Created the registry's first owner, service principal {username}; its credentials are in {} (readable only by you).\n\
             Log in with: berth login <registry URL> --username {username} --password-stdin < <(jq -r .password {})",
            path.display(),
            path.display()
        );
    }
    Ok(AccessControl::issuing(TokenService::new(directory, key, external)))
}

fn external_logins(args: &ServeArgs) -> ExternalLogins {
    ExternalLogins {
        oidc: args.oidc_issuer.clone().zip(args.oidc_audience.clone()).map(|(issuer, audience)| OidcConfig { issuer, audience }),
        sts_endpoint: args.sts_endpoint.clone(),
    }
}

/// Subscribers of registry events (webhooks) will listen here; until then events are logged, and scanning gets them.
const EVENT_BUFFER: usize = 1024;

fn registry_name(text: &str) -> Result<String, String> {
    check_registry_name(text).map(|()| text.to_owned())
}

pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init_tracing(args.log_json);
    // `berth serve` takes requests of any size: nothing in front of it caps them as Lambda does.
    let limits = Limits { max_manifest_bytes: args.max_manifest_bytes, max_request_bytes: None };
    let events = Arc::new(EventBus::new(EVENT_BUFFER));
    let external = external_logins(&args);
    std::fs::create_dir_all(&args.data_dir).map_err(|error| format!("cannot create {}: {error}", args.data_dir.display()))?;
    let services = match args.store {
        Store::Embedded => {
            let store = Arc::new(EmbeddedStore::open(&args.data_dir).await.map_err(|error| format!("cannot open the store: {error}"))?);
            store.clone().sweep_in_background();
            tracing::info!(data_dir = %args.data_dir.display(), "embedded store");
            let seed = bootstrap::local_signing_seed(&args.data_dir)?;
            let access = access_control(store.metadata.clone(), &args.name, &seed, &args.data_dir, &external, args.sku).await?;
            let (scans, trigger, events) = services::scanning(store.blobs.clone(), store.metadata.clone(), events);
            trigger.spawn_worker(worker::DEFAULT_CONCURRENCY);
            let mut services = services::over_embedded(&store, limits, events, args.public_url, access);
            services.scans = Some(scans);
            services
        }
        Store::Aws => {
            let (bucket, table) = (args.bucket.unwrap_or_default(), args.table.unwrap_or_default());
            let presign_ttl = Duration::from_secs(args.presign_ttl_seconds);
            let settings = AwsSettings { bucket, table, presign_ttl, limits: S3Limits::default() };
            let sdk = aws::sdk_config(args.region).await;
            let (s3, dynamodb) = aws::clients_from(&sdk);
            let secrets = aws::secrets_client(&sdk);
            if args.create_resources {
                resources::create_resources(&s3, &dynamodb, &settings).await?;
                if let Some(secret) = &args.signing_key_secret {
                    resources::create_signing_secret(&secrets, secret).await?;
                }
            }
            tracing::info!(bucket = %settings.bucket, table = %settings.table, "AWS store");
            let seed = match &args.signing_key_secret {
                Some(secret) => aws::signing_seed(&secrets, secret).await?,
                None => bootstrap::local_signing_seed(&args.data_dir)?,
            };
            let records = Arc::new(DynamoMetadata::new(dynamodb.clone(), &settings.table));
            let access = access_control(records, &args.name, &seed, &args.data_dir, &external, args.sku).await?;
            let (blobs, metadata) = aws::stores(s3.clone(), dynamodb.clone(), &settings);
            let (scans, trigger, events) = services::scanning(Arc::new(blobs), Arc::new(metadata), events);
            trigger.spawn_worker(worker::DEFAULT_CONCURRENCY);
            let serve = [Function::Manifests, Function::Blobs];
            let mut services = services::over_aws(&settings, s3, dynamodb, &serve, limits, events, args.public_url, access);
            services.scans = Some(scans);
            services
        }
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_config(cert, key)?),
        _ => None,
    };
    if tls.is_none() && !args.addr.ip().is_loopback() {
        tracing::warn!(addr = %args.addr, "serving plain HTTP on a non-loopback address: credentials and tokens travel in clear unless a TLS proxy fronts this registry");
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|error| format!("cannot listen on {}: {error}", args.addr))?;
    tracing::info!(addr = %args.addr, tls = tls.is_some(), "berth registry listening");
    server::serve(listener, http::router(services), tls, server::DRAIN_TIMEOUT).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tier_is_taken_in_any_case() {
        assert_eq!(parse_sku("PREMIUM"), Ok(Sku::Premium));
        assert_eq!(parse_sku("gold").unwrap_err(), "unknown tier \"gold\": basic, standard or premium");
    }
}
