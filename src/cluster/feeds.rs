//! The cluster's feed list: a key-value bucket ([`FEEDS`]) with one key per feed (its id,
//! [`crate::catalog::feed_id`]) holding its [`Entry`] as JSON.
//!
//! Every process mirrors the bucket into its catalog ([`crate::catalog::Catalog::share`]): it
//! reads the whole list when it joins ([`FeedBucket::snapshot`]), then follows the bucket's
//! changes ([`mirror`]) and writes its own ([`write()`]): the feeds added, changed or removed
//! through its API, and its config file's feeds. So a feed added through any process is polled
//! by exactly one fetcher (the one holding its host's lease), and a fetcher whose config lists
//! no feeds polls its share of the cluster's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ClusterError;
use crate::catalog::{Catalog, Entry, SharedWrite};

/// Bucket of the cluster's feeds.
pub const FEEDS: &str = "feedsieve_feeds";

/// How long joining waits for the bucket's next entry while reading the list.
const SNAPSHOT_PATIENCE: Duration = Duration::from_secs(30);

/// Longest wait between two tries of a write NATS refused.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The feed list bucket.
#[derive(Clone)]
pub struct FeedBucket {
    kv: kv::Store,
}

fn setup(message: impl ToString) -> ClusterError {
    ClusterError::Setup {
        what: "bucket",
        name: FEEDS,
        message: message.to_string(),
    }
}

impl FeedBucket {
    /// Opens the bucket, creating it (with `replicas` copies, one revision per key, kept
    /// forever) when it is missing.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<FeedBucket, ClusterError> {
        let kv = super::open_bucket(js, FEEDS, replicas, std::time::Duration::ZERO).await?;
        Ok(FeedBucket { kv })
    }

    /// Every feed listed (by id), and a watch of the changes made after them.
    pub async fn snapshot(&self) -> Result<(BTreeMap<String, Entry>, kv::Watch), ClusterError> {
        // The bucket's last revision when it was opened: the list is read once the watch,
        // which starts with each key's latest revision, has reached it.
        let last = self
            .kv
            .status()
            .await
            .map_err(setup)?
            .info
            .state
            .last_sequence;
        let mut watch = self.kv.watch_with_history(">").await.map_err(setup)?;
        let mut feeds = BTreeMap::new();
        let mut seen = 0;
        while seen < last {
            let entry = match tokio::time::timeout(SNAPSHOT_PATIENCE, watch.next()).await {
                Ok(Some(Ok(entry))) => entry,
                Ok(Some(Err(e))) => return Err(setup(e)),
                Ok(None) => return Err(setup("the watch ended while reading the feed list")),
                Err(_) => return Err(setup("no answer while reading the feed list")),
            };
            seen = entry.revision;
            let (id, listed) = read(&entry);
            match listed {
                Some(e) => feeds.insert(id, e),
                None => feeds.remove(&id),
            };
        }
        Ok((feeds, watch))
    }

    async fn apply(&self, write: &SharedWrite) -> Result<(), String> {
        match write {
            SharedWrite::Put(id, entry) => {
                let json = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
                self.kv
                    .put(id, Bytes::from(json))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            SharedWrite::Delete(id) => self.kv.delete(id).await.map_err(|e| e.to_string()),
        }
    }
}

/// A bucket entry as (feed id, entry), the entry `None` for a removal or a value that is not
/// a feed (which is logged).
fn read(entry: &kv::Entry) -> (String, Option<Entry>) {
    let listed = match entry.operation {
        kv::Operation::Put => match serde_json::from_slice::<Entry>(&entry.value) {
            Ok(e) => Some(e),
            Err(e) => {
                warn!(key = %entry.key, error = %e, "Skipped an entry of the feed list that is not a feed.");
                None
            }
        },
        kv::Operation::Delete | kv::Operation::Purge => None,
    };
    (entry.key.clone(), listed)
}

/// Follows the feed list's changes into `catalog` until `stop`, from `watch` (as
/// [`FeedBucket::snapshot`] left it). When the watch breaks (NATS went away), it starts again
/// after the last revision seen.
pub async fn mirror(
    bucket: FeedBucket,
    mut watch: kv::Watch,
    catalog: Arc<Catalog>,
    stop: CancellationToken,
) {
    let mut last = 0;
    let mut delay = Duration::from_millis(200);
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = watch.next() => next,
        };
        match next {
            Some(Ok(entry)) => {
                last = entry.revision;
                let (id, listed) = read(&entry);
                catalog.apply_shared(&id, listed);
                delay = Duration::from_millis(200);
            }
            broken => {
                if let Some(Err(e)) = broken {
                    warn!(error = %e, "Lost the feed list's changes; following them again.");
                }
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                    match bucket.kv.watch_all_from_revision(last + 1).await {
                        Ok(w) => {
                            watch = w;
                            break;
                        }
                        Err(e) => {
                            warn!(error = %e, "Cannot follow the feed list yet; trying again.")
                        }
                    }
                }
            }
        }
    }
}

/// Writes this process's changes to the feed list, in order, each tried again until NATS takes
/// it. At `stop` it still writes what is queued, for up to `grace`.
pub async fn write(
    bucket: FeedBucket,
    mut writes: mpsc::UnboundedReceiver<SharedWrite>,
    stop: CancellationToken,
    grace: Duration,
) {
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::pin!(deadline);
    loop {
        let w = tokio::select! {
            w = writes.recv() => w,
            () = stop.cancelled(), if writes.is_empty() => return,
        };
        let Some(w) = w else { return };
        let mut delay = Duration::from_millis(200);
        loop {
            match bucket.apply(&w).await {
                Ok(()) => {
                    if let SharedWrite::Put(_, e) = &w {
                        info!(feed = %e.url, "Listed a feed for the cluster.");
                    }
                    break;
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Cannot write to the cluster's feed list; trying again.");
                    tokio::select! {
                        () = &mut deadline => {
                            warn!(pending = writes.len() + 1, "Stopping with changes to the feed list not written.");
                            return;
                        }
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }
}
