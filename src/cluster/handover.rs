//! What a fetcher taking over a host needs from the one that polled it before: each feed's
//! validators (so its first request is conditional, not a full download) and the boilerplate
//! learned from it (so its items are fingerprinted as before).
//!
//! Kept in a key-value bucket ([`STATES`], one key per feed id, JSON): a fetcher puts a feed's
//! [`Handover`] after each full fetch the broker acknowledged ([`write()`]), and [`adopt`]s the
//! handovers of the feeds of every host it takes, into its own store, before polling them.

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::ClusterError;
use crate::catalog::feed_id;
use crate::config::FeedConfig;
use crate::dedup::clean::Boilerplate;
use crate::store::Store;

/// Bucket of the feeds' handovers.
pub const STATES: &str = "feedsieve_states";

/// Handovers read at once when taking hosts.
const READ_AT_ONCE: usize = 32;

/// A feed's state as the next fetcher needs it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    /// The feed's URL.
    pub url: String,
    /// `ETag` of the last full fetch.
    #[serde(default)]
    pub etag: Option<String>,
    /// `Last-Modified` of the last full fetch.
    #[serde(default)]
    pub last_modified: Option<String>,
    /// The paragraphs learned as the feed's boilerplate.
    #[serde(default)]
    pub boilerplate: Boilerplate,
}

/// The handover bucket.
#[derive(Clone)]
pub struct StateBucket {
    kv: kv::Store,
}

impl StateBucket {
    /// Opens the bucket, creating it (`replicas` copies, one revision per key) when missing.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<StateBucket, ClusterError> {
        let kv = super::open_bucket(js, STATES, replicas, std::time::Duration::ZERO).await?;
        Ok(StateBucket { kv })
    }

    async fn get(&self, url: &str) -> Result<Option<Handover>, String> {
        match self.kv.get(feed_id(url)).await {
            Ok(Some(v)) => Ok(serde_json::from_slice(&v).ok()),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Puts each handover from `handovers` in the bucket, in order, until the channel closes. One
/// that cannot be written is logged and dropped: the next fetch of its feed writes it again,
/// and without it a fetcher taking over fetches the feed in full once.
pub async fn write(bucket: StateBucket, mut handovers: mpsc::UnboundedReceiver<Handover>) {
    while let Some(h) = handovers.recv().await {
        let json = match serde_json::to_vec(&h) {
            Ok(json) => json,
            Err(_) => continue,
        };
        if let Err(e) = bucket.kv.put(feed_id(&h.url), Bytes::from(json)).await {
            warn!(feed = %h.url, error = %e, "Could not hand over a feed's validators; its next fetcher fetches it in full once.");
        }
    }
}

/// Takes into `store` the handovers of `feeds` (the feeds of hosts just taken), before they
/// are polled. Returns how many were found. A handover that cannot be read only costs a full
/// fetch, so it is logged and skipped.
pub async fn adopt(bucket: &StateBucket, store: &Store, feeds: &[FeedConfig]) -> usize {
    let found: Vec<(FeedConfig, Handover)> = futures_util::stream::iter(feeds.iter().cloned())
        .map(|f| async move {
            match bucket.get(&f.url).await {
                Ok(h) => h.map(|h| (f, h)),
                Err(e) => {
                    warn!(feed = %f.url, error = %e, "Could not read a feed's handover; fetching it in full.");
                    None
                }
            }
        })
        .buffer_unordered(READ_AT_ONCE)
        .filter_map(std::future::ready)
        .collect()
        .await;
    let mut adopted = 0;
    for (f, h) in found {
        let name = f.name.clone().unwrap_or_else(|| f.url.clone());
        match store.adopt_feed_state(&f.url, &name, |state| {
            state.etag = h.etag;
            state.last_modified = h.last_modified;
            state.boilerplate = h.boilerplate;
        }) {
            Ok(()) => adopted += 1,
            Err(e) => {
                warn!(feed = %f.url, error = %e, "Could not keep a feed's handover; fetching it in full.")
            }
        }
    }
    debug!(
        feeds = feeds.len(),
        adopted, "Took over the feeds' validators."
    );
    adopted
}
