//! The OCI domain: repository names, tags, digests, references, manifests and upload ids. Pure types, no I/O.

/// Serializes a validated text type as its string and deserializes it through its `parse`, so stored records can
/// never hold an invalid name, tag or digest.
macro_rules! serde_as_text {
    ($type:ty) => {
        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
use serde_as_text;

mod digest;
mod manifest;
mod name;
#[cfg(test)]
pub(crate) mod strategies;

pub use digest::{Algorithm, Digest, DigestHasher};
pub use manifest::{Descriptor, ParsedManifest, media_types};
pub use name::{Reference, RepositoryName, Tag};

/// Whether `id` is an upload session id as Berth mints them, a canonical UUID; anything else (a `..`, a slash) is
/// refused before it can reach a path or a key.
pub fn is_upload_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|parsed| parsed.hyphenated().to_string() == id)
}
