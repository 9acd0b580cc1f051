//! `berth serve`'s scanning: every pushed manifest is queued durably before its push is answered, and a worker in
//! the process drains the queue a few scans at a time, starting with what a previous run left queued (or left to
//! re-evaluate).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::{Notify, Semaphore};

use super::Scans;
use crate::registry::{EventSink, RegistryEvent};

/// How many scans run at once: each holds one layer stream and its inventory, and they share the cores with requests.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// How many queued scans the worker takes from the store at a time.
const BATCH: usize = 32;
/// How long the worker waits after the store failed before it looks at the queue again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Queues a scan of every pushed manifest and wakes the worker; an [`EventSink`] beside the registry's others.
pub struct ScanTrigger {
    scans: Arc<Scans>,
    wake: Arc<Notify>,
}

impl ScanTrigger {
    pub fn new(scans: Arc<Scans>) -> ScanTrigger {
        ScanTrigger { scans, wake: Arc::new(Notify::new()) }
    }

    /// Starts the worker that drains the queue with at most `concurrency` scans at a time, for as long as the
    /// process runs.
    pub fn spawn_worker(&self, concurrency: usize) -> tokio::task::JoinHandle<()> {
        let (scans, wake) = (self.scans.clone(), self.wake.clone());
        tokio::spawn(drain_forever(scans, wake, concurrency.max(1)))
    }
}

#[async_trait]
impl EventSink for ScanTrigger {
    async fn publish(&self, event: RegistryEvent) {
        let RegistryEvent::ManifestPushed { repository, digest, .. } = event else { return };
        // A push is answered only after this: the queue entry survives a crash right after the answer.
        if let Err(error) = self.scans.enqueue(&repository, &digest).await {
            tracing::error!(%repository, %digest, %error, "cannot queue a scan of the pushed manifest");
        }
        self.wake.notify_one();
    }
}

/// Finishes a re-evaluation a stop cut off, then scans what is queued and waits to be woken, forever; a store
/// failure pauses it for [`RETRY_AFTER`].
async fn drain_forever(scans: Arc<Scans>, wake: Arc<Notify>, concurrency: usize) {
    match scans.reevaluate_stale().await {
        Ok(0) => {}
        Ok(reevaluated) => tracing::info!(reevaluated, "re-evaluated scans against the current advisories"),
        Err(error) => tracing::warn!(%error, "cannot re-evaluate scans against the current advisories"),
    }
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        // Woken while draining: the permit Notify keeps makes the next wait return at once.
        match drain(&scans, &slots).await {
            Ok(()) => wake.notified().await,
            Err(error) => {
                tracing::warn!(%error, "cannot read the scan queue");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Runs queued scans until the queue is empty, at most as many at once as `slots` has permits.
async fn drain(scans: &Arc<Scans>, slots: &Arc<Semaphore>) -> Result<(), crate::store::StoreError> {
    loop {
        let queued = scans.store().queued_scans(BATCH).await?;
        if queued.is_empty() {
            return Ok(());
        }
        let mut running = tokio::task::JoinSet::new();
        for scan in queued {
            let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
            let scans = scans.clone();
            running.spawn(async move {
                let _permit = permit;
                scans.run(&scan).await.map(drop)
            });
        }
        // A scan the store failed stays queued; the worker stops this round rather than retrying it at once.
        while let Some(finished) = running.join_next().await {
            finished.map_err(|error| crate::store::StoreError::Database(format!("a scan task failed: {error}")))??;
        }
    }
}
