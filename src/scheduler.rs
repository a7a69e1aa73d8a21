//! Scheduler: decides when each feed is polled and how many polls run at once.
//!
//! In: the feed list and `[poll]`. Out: poll tasks, each of which fetches one feed and sends a
//! [`PollReport`] to the sieve.
//!
//! Each feed is polled at its own interval (else `poll.interval`), stretched or shrunk by up to
//! 10% at random so that feeds added together drift apart.
//!
//! Two semaphores bound the work. `poll.concurrency` permits bound the polls in flight: the loop
//! takes a permit *before* it spawns a poll task, and the task holds it through fetch, parse and
//! the hand-off to the sieve, so a slow sieve slows fetching instead of letting fetched bodies
//! pile up in memory, and polls start in due order (with `concurrency = 1`, a `--once` pass hands
//! feeds to the sieve in config order). `poll.per_host` permits per host bound the requests to
//! one host; a task holds one for its request only. A feed is never polled twice at once: it is
//! back in the queue only when its poll task has finished.
//!
//! On start, a feed whose stored `next_fetch` lies in the future waits for it (restarting the
//! daemon does not hammer publishers); the others start within a few seconds, spread at random.
//!
//! [`Mode::Once`] polls every feed once and returns when all are done; [`Mode::Forever`] runs
//! until the shutdown token fires.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info_span};

use crate::config::{FeedConfig, PollConfig};
use crate::poll::Poller;
use crate::sieve::{PollOutcome, PollReport};
use crate::store::Store;

/// Whether to poll once or keep polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Poll each feed once, then return.
    Once,
    /// Poll until shut down.
    Forever,
}

/// The polling loop's configuration and limits.
pub struct Scheduler {
    feeds: Vec<FeedConfig>,
    poller: Poller,
    store: Store,
    default_interval: Duration,
    concurrency: Arc<Semaphore>,
    per_host: usize,
    hosts: HashMap<String, Arc<Semaphore>>,
}

/// Sent by a finished poll task back to the loop.
struct Done {
    feed: usize,
    next: Instant,
}

impl Scheduler {
    /// A scheduler for `feeds` with the limits of `poll`, polling through `poller` and reading
    /// each feed's stored `next_fetch` from `store`.
    pub fn new(
        feeds: Vec<FeedConfig>,
        poll: &PollConfig,
        poller: Poller,
        store: Store,
    ) -> Scheduler {
        Scheduler {
            feeds,
            poller,
            store,
            default_interval: poll.interval,
            concurrency: Arc::new(Semaphore::new(poll.concurrency)),
            per_host: poll.per_host,
            hosts: HashMap::new(),
        }
    }

    /// The interval of one feed, with up to ±10% jitter.
    fn next_interval(&self, feed: &FeedConfig) -> Duration {
        let base = feed.interval.unwrap_or(self.default_interval);
        base.mul_f64(0.9 + fastrand::f64() * 0.2)
    }

    /// The per-host semaphore for a URL (`None` for local files).
    fn host_limit(&mut self, url: &str) -> Option<Arc<Semaphore>> {
        let host = url::Url::parse(url).ok()?.host_str()?.to_ascii_lowercase();
        let per_host = self.per_host;
        Some(
            self.hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Semaphore::new(per_host)))
                .clone(),
        )
    }

    /// Runs the loop. Poll tasks are spawned on `tracker`; `abort` cancels fetches still running
    /// when the shutdown grace period is over.
    pub async fn run(
        mut self,
        mode: Mode,
        reports: mpsc::Sender<PollReport>,
        shutdown: CancellationToken,
        abort: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let now = Instant::now();
        let mut queue: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
        for (i, feed) in self.feeds.iter().enumerate() {
            let due = match mode {
                Mode::Once => now,
                Mode::Forever => {
                    let stored = self
                        .store
                        .feed_state(&feed.url)
                        .ok()
                        .flatten()
                        .and_then(|s| s.next_fetch)
                        .and_then(|t| (t - Utc::now()).to_std().ok());
                    let base = feed.interval.unwrap_or(self.default_interval);
                    let spread = (base / 20).min(Duration::from_secs(5));
                    now + stored.unwrap_or_else(|| spread.mul_f64(fastrand::f64()))
                }
            };
            queue.push(Reverse((due, i)));
        }
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut in_flight = 0usize;
        loop {
            if mode == Mode::Once && queue.is_empty() && in_flight == 0 {
                break;
            }
            let next_due = queue.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = done_rx.recv() => {
                    in_flight -= 1;
                    if mode == Mode::Forever {
                        queue.push(Reverse((done.next, done.feed)));
                    }
                }
                () = sleep_until(next_due) => {
                    while let Some(Reverse((at, i))) = queue.peek().copied() {
                        if at > Instant::now() {
                            break;
                        }
                        let permit = tokio::select! {
                            biased;
                            () = shutdown.cancelled() => break,
                            permit = self.concurrency.clone().acquire_owned() => permit,
                        };
                        let Ok(permit) = permit else { break };
                        queue.pop();
                        in_flight += 1;
                        self.spawn_poll(i, permit, &reports, &done_tx, &abort, tracker);
                    }
                }
            }
        }
        debug!(in_flight, "Scheduler stopped.");
    }

    fn spawn_poll(
        &mut self,
        i: usize,
        permit: OwnedSemaphorePermit,
        reports: &mpsc::Sender<PollReport>,
        done: &mpsc::UnboundedSender<Done>,
        abort: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        let feed = self.feeds[i].clone();
        let interval = self.next_interval(&feed);
        let host = self.host_limit(&feed.url);
        let poller = self.poller.clone();
        let reports = reports.clone();
        let done = done.clone();
        let abort = abort.clone();
        let span = info_span!("poll", feed = %feed.url);
        tracker.spawn(
            async move {
                let work = async {
                    let started = now_millis();
                    let clock = Instant::now();
                    let outcome = poller.poll(&feed, host).await;
                    (started, clock.elapsed(), outcome)
                };
                let (started, elapsed, outcome) = tokio::select! {
                    r = work => r,
                    () = abort.cancelled() => (now_millis(), Duration::ZERO, PollOutcome::Failed {
                        status: None,
                        error: "fetch: cancelled at shutdown".into(),
                    }),
                };
                let next = Instant::now() + interval;
                let next_fetch =
                    now_millis() + chrono::Duration::from_std(interval).unwrap_or_default();
                let report = PollReport {
                    feed,
                    started,
                    elapsed,
                    next_fetch,
                    outcome,
                };
                // The sieve outlives every poll task; if it is gone the process is stopping.
                let _ = reports.send(report).await;
                drop(permit);
                let _ = done.send(Done { feed: i, next });
            }
            .instrument(span),
        );
    }
}

/// The wall clock to the millisecond: the precision of every timestamp feedsieve records.
pub fn now_millis() -> chrono::DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
