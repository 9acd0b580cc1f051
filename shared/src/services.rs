//! Assembling the registry's services (blobs, manifests) over a store: what each process that serves them (a Lambda
//! function, a container, `berth serve`) puts behind the router.

use std::sync::Arc;

use crate::{
    http::{PublicUrl, Services, routes::Function},
    registry::{Blobs, EventSink, Manifests},
    store::{BlobStore, MetadataStore, aws::AwsSettings, local::EmbeddedStore},
};

/// What a deployment limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_manifest_bytes: u64,
    /// The most bytes one request may carry, where the runtime caps them (Lambda).
    pub max_request_bytes: Option<u64>,
}

/// The services among `serve` over one blob store and metadata store.
fn over(
    store: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    serve: &[Function],
    limits: Limits,
    events: Arc<dyn EventSink>,
    public_url: Option<PublicUrl>,
) -> Services {
    let manifests = serve
        .contains(&Function::Manifests)
        .then(|| Arc::new(Manifests::new(store.clone(), metadata.clone(), metadata.clone(), events, limits.max_manifest_bytes)));
    let blobs = serve.contains(&Function::Blobs).then(|| Arc::new(Blobs::new(store, metadata.clone(), metadata, limits.max_request_bytes)));
    Services { manifests, blobs, public_url }
}

/// Every service over the embedded store (`berth serve`).
pub fn over_embedded(store: &EmbeddedStore, limits: Limits, events: Arc<dyn EventSink>, public_url: Option<PublicUrl>) -> Services {
    over(store.blobs.clone(), store.metadata.clone(), &[Function::Manifests, Function::Blobs], limits, events, public_url)
}

/// The services among `serve` over S3 and DynamoDB.
pub fn over_aws(
    settings: &AwsSettings,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    serve: &[Function],
    limits: Limits,
    events: Arc<dyn EventSink>,
    public_url: Option<PublicUrl>,
) -> Services {
    let (store, metadata) = crate::store::aws::stores(s3, dynamodb, settings);
    over(Arc::new(store), Arc::new(metadata), serve, limits, events, public_url)
}
