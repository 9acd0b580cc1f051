//! The registry's domain errors. Each names the OCI error code it is reported as; the HTTP layer maps them to the wire.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("invalid tag: {0}")]
    TagInvalid(String),
    #[error("invalid digest: {0}")]
    DigestInvalid(String),
    #[error("provided digest did not match uploaded content: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("manifest references unknown {kind} {digest}")]
    ManifestBlobUnknown { kind: &'static str, digest: String },
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(String),
    #[error("blob upload unknown to registry")]
    BlobUploadUnknown,
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    /// A chunk that does not start where the upload stands.
    #[error("chunk out of order: the upload holds {uploaded} bytes, the chunk starts at {start}")]
    ChunkOutOfOrder { uploaded: u64, start: u64 },
    #[error("requested range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { what: &'static str, size: u64, limit: u64 },
    #[error("invalid pagination: {0}")]
    PaginationInvalid(String),
    #[error("no such endpoint: {0}")]
    EndpointUnknown(String),
    #[error("requested access to the resource is denied: {0}")]
    Denied(String),
    #[error("the operation is unsupported: {0}")]
    Unsupported(String),
    /// A management request the registry cannot carry out as sent (an advisory that is not OSV JSON, say).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
}
