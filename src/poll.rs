//! One poll of one feed, top to bottom: fetch conditionally from where the feed lives now, tell
//! the scheduler the request is over (so the host's next request may start), stop on "not
//! modified", parse the body and fingerprint its entries off the async threads, and return a
//! [`Polled`] for the scheduler (timing hints) and the sieve (the outcome).
//!
//! Fingerprinting here rather than in the sieve spreads that CPU work over every core; the sieve,
//! the one writer, only looks up and writes. Nothing here writes: the sieve stores the entries and
//! then the feed's new state, in that order. Every failure becomes [`PollOutcome::Failed`] with one
//! sentence, so a broken feed costs its own poll and nothing else.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::FeedConfig;
use crate::dedup::clean::Boilerplate;
use crate::dedup::fingerprint::Fingerprint;
use crate::dedup::fingerprint::{Words, fingerprint_words};
use crate::fetch::{FetchError, Fetched, Fetcher, Reuse, Validators};
use crate::parse::Candidate;
use crate::parse::parse_feed;
use crate::store::{FeedState, Store};

/// What one poll of one feed produced, with the scheduler's plan for the next one: handed from
/// the poll task to the sieve.
#[derive(Debug)]
pub struct PollReport {
    /// The feed polled.
    pub feed: FeedConfig,
    /// When the poll started.
    pub started: DateTime<Utc>,
    /// How long fetch and parse took.
    pub elapsed: Duration,
    /// What happened.
    pub outcome: PollOutcome,
    /// When the feed is polled next (`None`: never, it is gone).
    pub next_fetch: Option<DateTime<Utc>>,
    /// The feed's interval now.
    pub interval: Duration,
    /// The backoff in force.
    pub backoff: Option<Duration>,
    /// Where the feed permanently moved, if it did on this poll.
    pub moved_to: Option<String>,
}

/// The result of one poll.
#[derive(Debug)]
pub enum PollOutcome {
    /// 304 or an unchanged file: nothing to do.
    NotModified {
        /// HTTP status (0 for files).
        status: u16,
    },
    /// Fetched and parsed.
    Fetched {
        /// HTTP status (0 for files).
        status: u16,
        /// Body size.
        bytes: usize,
        /// Validators to save once the entries are stored.
        validators: Validators,
        /// The feed's entries with their fingerprints.
        entries: Vec<(Candidate, Fingerprint)>,
        /// What the feed repeats in every item, learned up to this poll.
        boilerplate: Boilerplate,
    },
    /// Fetch or parse failed.
    Failed {
        /// HTTP status, when the server answered.
        status: Option<u16>,
        /// One sentence naming the stage and the cause.
        error: String,
    },
    /// 410: the feed was removed; polling stops.
    Gone {
        /// The sentence for the feed's state.
        error: String,
    },
    /// Not polled in a `--once` pass: its host asked to wait (`Retry-After`) past the pass.
    Deferred {
        /// Why, in a sentence.
        reason: String,
    },
}

/// What one poll found.
#[derive(Debug)]
pub struct Polled {
    /// For the sieve.
    pub outcome: PollOutcome,
    /// How long the server said the answer stays fresh.
    pub fresh_for: Option<Duration>,
    /// The feed's own hint (`<ttl>`, `sy:updatePeriod`).
    pub feed_hint: Option<Duration>,
    /// `Retry-After` of a 429 or 503.
    pub retry_after: Option<Duration>,
    /// Where the feed permanently moved.
    pub moved_to: Option<String>,
    /// Publication dates of the entries (adaptive mode learns from them).
    pub dates: Vec<DateTime<Utc>>,
}

/// What every poll needs, shared by all poll tasks.
#[derive(Clone)]
pub struct Poller {
    fetcher: Fetcher,
    store: Store,
    /// One permit per core: parsing and fingerprinting are pure CPU, so running more of them
    /// at once than there are cores only adds thread switches.
    compute: Arc<tokio::sync::Semaphore>,
}

impl Poller {
    /// A poller fetching with `fetcher` and reading feed states from `store`.
    pub fn new(fetcher: Fetcher, store: Store) -> Poller {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Poller {
            fetcher,
            store,
            compute: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// The store feed states are read from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Polls `feed`, whose stored state is `prev`, keeping its connection when `reuse` says so.
    /// `request_done` is called once the HTTP exchange is over, with the `Retry-After` the
    /// server asked for, if any.
    pub async fn poll(
        &self,
        feed: &FeedConfig,
        prev: Option<&FeedState>,
        reuse: Reuse,
        request_done: impl FnOnce(Option<Duration>),
    ) -> Polled {
        let url = prev
            .and_then(|s| s.location.as_deref())
            .unwrap_or(&feed.url);
        let validators = Validators {
            etag: prev.and_then(|s| s.etag.clone()),
            last_modified: prev.and_then(|s| s.last_modified.clone()),
        };
        let fetched = self.fetcher.fetch(url, &validators, reuse).await;
        let retry_after = match &fetched {
            Err(FetchError::RateLimited { retry_after, .. }) => *retry_after,
            _ => None,
        };
        request_done(retry_after);

        let mut polled = Polled {
            outcome: PollOutcome::NotModified { status: 0 },
            fresh_for: None,
            feed_hint: None,
            retry_after,
            moved_to: None,
            dates: Vec::new(),
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(FetchError::Gone) => {
                polled.outcome = PollOutcome::Gone {
                    error: FetchError::Gone.to_string(),
                };
                return polled;
            }
            Err(e) => {
                polled.outcome = PollOutcome::Failed {
                    status: e.status(),
                    error: e.to_string(),
                };
                return polled;
            }
        };
        polled.fresh_for = fetched.meta().fresh_for;
        polled.moved_to = fetched.meta().moved_to.clone();
        let (meta, body, validators, content_type) = match fetched {
            Fetched::NotModified(meta) => {
                polled.outcome = PollOutcome::NotModified {
                    status: meta.status,
                };
                return polled;
            }
            Fetched::Body {
                meta,
                body,
                validators,
                content_type,
            } => (meta, body, validators, content_type),
        };

        // Parsing and fingerprinting are CPU work: off the async threads.
        let feed_url: Arc<str> = Arc::from(feed.url.as_str());
        let bytes = body.len();
        let mut boilerplate = prev.map(|s| s.boilerplate.clone()).unwrap_or_default();
        // Closed never: the semaphore lives as long as the poller.
        let permit = self.compute.clone().acquire_owned().await.ok();
        let parsed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let parsed = parse_feed(&body, &feed_url, content_type.as_deref())?;
            // Each body is scanned for words once. Learn what this feed repeats in every item
            // before fingerprinting its items.
            let words: Vec<Words<'_>> = parsed.entries.iter().map(|c| Words::of(&c.text)).collect();
            boilerplate.learn_words(words.iter());
            let fingerprints: Vec<_> = words
                .iter()
                .map(|w| fingerprint_words(w, &boilerplate))
                .collect();
            drop(words);
            let entries: Vec<_> = parsed.entries.into_iter().zip(fingerprints).collect();
            Ok::<_, crate::parse::ParseError>((entries, parsed.min_interval, boilerplate))
        })
        .await;
        let status = (meta.status != 0).then_some(meta.status);
        polled.outcome = match parsed {
            Ok(Ok((entries, hint, boilerplate))) => {
                polled.feed_hint = hint;
                polled.dates = entries.iter().filter_map(|(c, _)| c.published).collect();
                PollOutcome::Fetched {
                    status: meta.status,
                    bytes,
                    validators,
                    entries,
                    boilerplate,
                }
            }
            Ok(Err(e)) => PollOutcome::Failed {
                status,
                error: e.to_string(),
            },
            Err(e) => PollOutcome::Failed {
                status,
                error: format!("parse: the parser crashed: {e}"),
            },
        };
        polled
    }
}
