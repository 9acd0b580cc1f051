//! `berth serve`: the whole registry on one port, over the embedded store or over S3 and DynamoDB.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use berth::{
    http::{self, PublicUrl, routes::Function},
    registry::{DEFAULT_MAX_MANIFEST_BYTES, EventBus},
    server,
    services::{self, Limits},
    store::{
        aws::{self, AwsSettings},
        local::EmbeddedStore,
        resources,
        s3::S3Limits,
    },
    telemetry,
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
    /// Directory holding blobs and the metadata database (embedded store); created if missing.
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
    /// Create the bucket and table if missing, with the settings infra/template.yaml gives them (for emulators).
    #[arg(long)]
    create_resources: bool,
    /// Lifetime of presigned blob download URLs (aws store), at most 1200.
    #[arg(long, env = "BERTH_PRESIGN_TTL_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=1200))]
    presign_ttl_seconds: u64,
    /// The registry's public base URL (https://registry.example.com), for absolute Location URLs behind a proxy.
    #[arg(long, env = "BERTH_PUBLIC_URL", value_parser = PublicUrl::parse)]
    public_url: Option<PublicUrl>,
    /// Largest manifest accepted, in bytes; larger ones get 413.
    #[arg(long, env = "BERTH_MAX_MANIFEST_BYTES", default_value_t = DEFAULT_MAX_MANIFEST_BYTES)]
    max_manifest_bytes: u64,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "BERTH_LOG_JSON")]
    log_json: bool,
}

/// Subscribers of registry events (the scanner, webhooks) will listen here; until then events are only logged.
const EVENT_BUFFER: usize = 1024;

pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init_tracing(args.log_json);
    // `berth serve` takes requests of any size: nothing in front of it caps them as Lambda does.
    let limits = Limits { max_manifest_bytes: args.max_manifest_bytes, max_request_bytes: None };
    let events = Arc::new(EventBus::new(EVENT_BUFFER));
    let services = match args.store {
        Store::Embedded => {
            let store = Arc::new(EmbeddedStore::open(&args.data_dir).await.map_err(|error| format!("cannot open the store: {error}"))?);
            store.clone().sweep_in_background();
            tracing::info!(data_dir = %args.data_dir.display(), "embedded store");
            services::over_embedded(&store, limits, events, args.public_url)
        }
        Store::Aws => {
            let (bucket, table) = (args.bucket.unwrap_or_default(), args.table.unwrap_or_default());
            let presign_ttl = Duration::from_secs(args.presign_ttl_seconds);
            let settings = AwsSettings { bucket, table, presign_ttl, limits: S3Limits::default() };
            let (s3, dynamodb) = aws::clients(args.region).await;
            if args.create_resources {
                resources::create_resources(&s3, &dynamodb, &settings).await?;
            }
            tracing::info!(bucket = %settings.bucket, table = %settings.table, "AWS store");
            services::over_aws(&settings, s3, dynamodb, &[Function::Manifests, Function::Blobs], limits, events, args.public_url)
        }
    };
    let listener = tokio::net::TcpListener::bind(args.addr).await.map_err(|error| format!("cannot listen on {}: {error}", args.addr))?;
    tracing::info!(addr = %args.addr, "berth registry listening");
    server::serve(listener, http::router(services)).await?;
    Ok(())
}
