//! `berth serve`: the registry on one port, over the embedded store.

use std::{net::SocketAddr, path::PathBuf};

use berth::{
    registry::DEFAULT_MAX_MANIFEST_BYTES,
    server::{EmbeddedOptions, serve_embedded},
};
use tracing_subscriber::EnvFilter;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BERTH_ADDR", default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// Directory holding blobs and the metadata database; created if missing.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = "berth-data")]
    data_dir: PathBuf,
    /// Largest manifest accepted, in bytes; larger ones get 413.
    #[arg(long, env = "BERTH_MAX_MANIFEST_BYTES", default_value_t = DEFAULT_MAX_MANIFEST_BYTES)]
    max_manifest_bytes: u64,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "BERTH_LOG_JSON")]
    log_json: bool,
}

pub async fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    serve_embedded(EmbeddedOptions { addr: args.addr, data_dir: args.data_dir, max_manifest_bytes: args.max_manifest_bytes }).await?;
    Ok(())
}
