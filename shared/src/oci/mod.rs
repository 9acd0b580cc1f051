//! The OCI domain: repository names, tags, digests, references and manifests. Pure types, no I/O.

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
