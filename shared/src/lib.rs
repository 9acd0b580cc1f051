//! Berth's registry library (stub while the core is written).
pub mod server {
    //! Runs the registry over plain HTTP.
    use std::{net::SocketAddr, path::PathBuf};
    /// Options of `berth serve` on the embedded store.
    pub struct EmbeddedOptions {
        pub addr: SocketAddr,
        pub data_dir: PathBuf,
    }
    #[derive(Debug, thiserror::Error)]
    #[error("cannot serve: {0}")]
    pub struct ServeError(String);
    pub async fn serve_embedded(_options: EmbeddedOptions) -> Result<(), ServeError> {
        Err(ServeError("not yet".into()))
    }
}
