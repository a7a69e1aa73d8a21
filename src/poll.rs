//! One poll of one feed, top to bottom: read the validators saved last time, fetch
//! conditionally, stop on "not modified", parse the body and fingerprint its entries off the async
//! threads, and hand the result to the sieve as a [`PollOutcome`]. Fingerprinting here rather than
//! in the sieve spreads that CPU work over every core; the sieve, the one writer, only looks up and
//! writes.
//!
//! Nothing here writes: the sieve stores the entries and then the new validators, in that order.
//! Every failure becomes [`PollOutcome::Failed`] with one sentence, so a broken feed costs its own
//! poll and nothing else.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::FeedConfig;
use crate::dedup::fingerprint::fingerprint;
use crate::fetch::{Fetched, Fetcher, Validators};
use crate::parse::parse_feed;
use crate::sieve::PollOutcome;
use crate::store::Store;

/// What every poll needs, shared by all poll tasks.
#[derive(Clone)]
pub struct Poller {
    fetcher: Fetcher,
    store: Store,
}

impl Poller {
    /// A poller fetching with `fetcher` and reading validators from `store`.
    pub fn new(fetcher: Fetcher, store: Store) -> Poller {
        Poller { fetcher, store }
    }

    /// Fetches and parses `feed` (the sieve stores the result). `host`, when given, is the
    /// feed's per-host limit: a permit is held for the request only.
    pub async fn poll(&self, feed: &FeedConfig, host: Option<Arc<Semaphore>>) -> PollOutcome {
        let validators = match self.store.feed_state(&feed.url) {
            Ok(Some(state)) => Validators {
                etag: state.etag,
                last_modified: state.last_modified,
            },
            Ok(None) => Validators::default(),
            Err(e) => {
                return PollOutcome::Failed {
                    status: None,
                    error: e.to_string(),
                };
            }
        };
        let host_permit = match host {
            Some(h) => h.acquire_owned().await.ok(),
            None => None,
        };
        let fetched = self.fetcher.fetch(&feed.url, &validators).await;
        drop(host_permit);
        let (status, body, validators) = match fetched {
            Ok(Fetched::NotModified { status }) => return PollOutcome::NotModified { status },
            Ok(Fetched::Body {
                status,
                body,
                validators,
            }) => (status, body, validators),
            Err(e) => {
                return PollOutcome::Failed {
                    status: e.status(),
                    error: e.to_string(),
                };
            }
        };
        Self::parse(feed, status, body, validators).await
    }

    /// Parses a fetched body on the blocking pool: parsing is CPU work and must not stall the
    /// fetches sharing the async threads.
    async fn parse(
        feed: &FeedConfig,
        status: u16,
        body: bytes::Bytes,
        validators: Validators,
    ) -> PollOutcome {
        let url: Arc<str> = Arc::from(feed.url.as_str());
        let bytes = body.len();
        let parsed = tokio::task::spawn_blocking(move || {
            parse_feed(&body, &url).map(|feed| {
                feed.entries
                    .into_iter()
                    .map(|c| {
                        let fp = fingerprint(&c.text);
                        (c, fp)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .await;
        match parsed {
            Ok(Ok(entries)) => PollOutcome::Fetched {
                status,
                bytes,
                validators,
                entries,
            },
            Ok(Err(e)) => PollOutcome::Failed {
                status: (status != 0).then_some(status),
                error: e.to_string(),
            },
            Err(e) => PollOutcome::Failed {
                status: (status != 0).then_some(status),
                error: format!("parse: the parser crashed: {e}"),
            },
        }
    }
}
