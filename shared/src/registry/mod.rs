//! The registry's operations over the storage ports: what each endpoint means, with no HTTP in sight.
//!
//! [`Blobs`] serves the blobs function (downloads and uploads), [`Manifests`] the manifests function (manifests, tags,
//! referrers, catalog); each holds only the ports it needs. Changes are announced on an [`EventSink`].

mod blobs;
mod events;
mod manifests;

pub use blobs::{BlobDownload, Blobs, Chunk, REQUEST_BODY};
pub use events::{EventBus, EventSink, EventSinks, RegistryEvent};
pub use manifests::{Manifests, StoredManifest};

use std::time::{SystemTime, UNIX_EPOCH};

/// The default ceiling on a manifest's size: the spec asks registries to accept at least 4 MiB.
pub const DEFAULT_MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Unix seconds, as upload sessions keep time.
fn unix_seconds() -> u64 {
    unix_millis() / 1000
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}
