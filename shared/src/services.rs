//! Assembling the registry's services (tokens, blobs, manifests) over a store: what each process that serves them (a
//! Lambda function, a container, `berth serve`) puts behind the router.

use std::sync::Arc;

use crate::{
    http::{PublicUrl, Services, routes::Function},
    identity::{Gate, TokenService},
    registry::{Blobs, EventSink, EventSinks, Manifests},
    scan::{Scans, worker::ScanTrigger},
    store::{BlobStore, MetadataStore, aws::AwsSettings, local::EmbeddedStore, scanning::ScanStore},
};

/// What a deployment limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_manifest_bytes: u64,
    /// The most bytes one request may carry, where the runtime caps them (Lambda).
    pub max_request_bytes: Option<u64>,
}

/// How a process checks access: the gate every process has, and the token service where tokens are issued.
#[derive(Clone)]
pub struct AccessControl {
    pub gate: Arc<Gate>,
    pub tokens: Option<Arc<TokenService>>,
}

impl AccessControl {
    /// A process that issues tokens and verifies them with its own key (`berth serve`, the token function).
    pub fn issuing(tokens: TokenService) -> Self {
        let gate = Gate::fixed(tokens.directory().clone(), std::slice::from_ref(tokens.public_key()))
            .expect("the token service's own key verifies");
        Self { gate: Arc::new(gate), tokens: Some(Arc::new(tokens)) }
    }
}

/// The services among `serve` over one blob store and metadata store.
fn over(
    store: Arc<dyn BlobStore>,
    metadata: Arc<dyn MetadataStore>,
    serve: &[Function],
    limits: Limits,
    events: Arc<dyn EventSink>,
    public_url: Option<PublicUrl>,
    access: AccessControl,
) -> Services {
    let manifests = serve
        .contains(&Function::Manifests)
        .then(|| Arc::new(Manifests::new(store.clone(), metadata.clone(), metadata.clone(), events, limits.max_manifest_bytes)));
    let blobs = serve.contains(&Function::Blobs).then(|| Arc::new(Blobs::new(store, metadata.clone(), metadata, limits.max_request_bytes)));
    Services { gate: access.gate, tokens: access.tokens, manifests, blobs, scans: None, public_url, origin_secrets: Vec::new() }
}

/// Every service over the embedded store (`berth serve`).
pub fn over_embedded(
    store: &EmbeddedStore,
    limits: Limits,
    events: Arc<dyn EventSink>,
    public_url: Option<PublicUrl>,
    access: AccessControl,
) -> Services {
    over(store.blobs.clone(), store.metadata.clone(), &[Function::Manifests, Function::Blobs], limits, events, public_url, access)
}

/// The services among `serve` over S3 and DynamoDB.
#[allow(clippy::too_many_arguments)]
pub fn over_aws(
    settings: &AwsSettings,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    serve: &[Function],
    limits: Limits,
    events: Arc<dyn EventSink>,
    public_url: Option<PublicUrl>,
    access: AccessControl,
) -> Services {
    let (store, metadata) = crate::store::aws::stores(s3, dynamodb, settings);
    over(Arc::new(store), Arc::new(metadata), serve, limits, events, public_url, access)
}

/// Scanning over one store, for a process that scans what is pushed to it (`berth serve`): the service, and the
/// events to hand the registry so that every push is queued (`events` get them too). The caller starts the worker
/// with [`ScanTrigger::spawn_worker`].
pub fn scanning(
    blobs: Arc<dyn BlobStore>,
    metadata: Arc<impl MetadataStore + ScanStore + 'static>,
    events: Arc<dyn EventSink>,
) -> (Arc<Scans>, Arc<ScanTrigger>, Arc<dyn EventSink>) {
    let scans = Arc::new(Scans::over(blobs, metadata));
    let trigger = Arc::new(ScanTrigger::new(scans.clone()));
    let events: Arc<dyn EventSink> = Arc::new(EventSinks(vec![events, trigger.clone()]));
    (scans, trigger, events)
}
