//! Registry events: what changed, for subscribers such as the vulnerability scanner.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::oci::{Digest, RepositoryName, Tag};

#[derive(Debug, Clone, PartialEq)]
pub enum RegistryEvent {
    ManifestPushed { repository: RepositoryName, digest: Digest, media_type: String, artifact_type: Option<String>, tag: Option<Tag> },
    ManifestDeleted { repository: RepositoryName, digest: Digest },
    TagDeleted { repository: RepositoryName, tag: Tag },
    RepositoryDeleted { repository: RepositoryName },
}

/// Where events go. Publishing never fails the request that caused the event.
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn publish(&self, event: RegistryEvent);
}

/// In-process fan-out of events to any number of subscribers; events nobody listens to are dropped.
pub struct EventBus {
    sender: broadcast::Sender<RegistryEvent>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        Self { sender: broadcast::Sender::new(capacity) }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.sender.subscribe()
    }
}

#[async_trait]
impl EventSink for EventBus {
    async fn publish(&self, event: RegistryEvent) {
        tracing::info!(?event, "registry event");
        // An error only means there is no subscriber right now.
        let _ = self.sender.send(event);
    }
}

/// Several sinks as one: each gets every event, in order (`berth serve`'s bus and its scan trigger).
pub struct EventSinks(pub Vec<Arc<dyn EventSink>>);

#[async_trait]
impl EventSink for EventSinks {
    async fn publish(&self, event: RegistryEvent) {
        for sink in &self.0 {
            sink.publish(event.clone()).await;
        }
    }
}
