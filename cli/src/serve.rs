//! `berth serve`: the whole registry on one port, over the embedded store or over S3 and DynamoDB.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use berth::{
    function::{FunctionConfig, aws_functions},
    http::{self, PublicUrl, routes::Function},
    registry::{DEFAULT_MAX_MANIFEST_BYTES, EventBus},
    server::{self, EmbeddedOptions, serve_embedded},
    store::{
        aws::{self, AwsSettings},
        resources,
        s3::S3Limits,
    },
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

pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    server::init_tracing(args.log_json);
    match args.store {
        Store::Embedded => {
            let options = EmbeddedOptions {
                addr: args.addr,
                data_dir: args.data_dir,
                max_manifest_bytes: args.max_manifest_bytes,
                public_url: args.public_url,
            };
            serve_embedded(options).await?
        }
        Store::Aws => serve_aws(args).await?,
    }
    Ok(())
}

async fn serve_aws(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let (bucket, table) = (args.bucket.unwrap_or_default(), args.table.unwrap_or_default());
    let settings = AwsSettings { bucket, table, presign_ttl: Duration::from_secs(args.presign_ttl_seconds), limits: S3Limits::default() };
    let (s3, dynamodb) = aws::clients(args.region).await;
    if args.create_resources {
        resources::create_resources(&s3, &dynamodb, &settings).await?;
    }
    let config = FunctionConfig {
        aws: settings,
        max_manifest_bytes: args.max_manifest_bytes,
        max_request_bytes: None,
        public_url: args.public_url,
        host: args.addr.ip(),
        port: args.addr.port(),
    };
    let router = http::router(aws_functions(&config, &[Function::Manifests, Function::Blobs], s3, dynamodb, Arc::new(EventBus::new(1024))));
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!(addr = %args.addr, bucket = %config.aws.bucket, table = %config.aws.table, "berth registry listening on AWS storage");
    server::serve(listener, router).await?;
    Ok(())
}
