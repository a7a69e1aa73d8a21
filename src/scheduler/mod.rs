//! Scheduler: decides when each feed is polled and how many polls run at once.
//!
//! In: the feed list and `[poll]`. Out: poll tasks, each of which polls one feed and sends a
//! [`PollReport`] (with the plan for its next poll) to the sieve.
//!
//! One loop owns all timing state, so the limits need no locks:
//! - a timer heap of feeds by due time;
//! - [`hosts::Hosts`]: due feeds queue on their host, which releases them round robin within
//!   `poll.per_host` requests in flight, `poll.host_gap` apart, and never while a `Retry-After`
//!   blocks it;
//! - `poll.concurrency` polls in flight in all (fetch, parse and hand-off to the sieve, so a slow
//!   sieve slows fetching instead of letting bodies pile up in memory). Polls start in due order,
//!   so with `concurrency = 1` a `--once` pass hands feeds to the sieve in config order.
//!
//! After each poll, [`policy::Policy`] plans the next one: interval (own, learned or default) with
//! the publisher's floor and ±10% jitter, exponential backoff after failures, `Retry-After`, or no
//! next poll at all for a feed that is gone. A feed is never polled twice at once: it goes back on
//! the heap only when its poll task has finished.
//!
//! On start, a feed whose stored `next_fetch` lies in the future waits for it (restarting the
//! daemon does not hammer publishers), feeds marked `gone` are not polled, and a host whose feed
//! was rate limited stays blocked until that feed's next poll. The others start within a few
//! seconds, spread at random.
//!
//! [`Mode::Once`] polls every feed once and returns when all are done; feeds on a host that asks
//! to wait past the pass are reported as deferred rather than waited for. [`Mode::Forever`] runs
//! until the shutdown token fires.

pub mod hosts;
pub mod policy;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::catalog::Change;
use crate::config::{FeedConfig, PollConfig};
use crate::fetch::{Fetcher, Reuse};
use crate::poll::{PollOutcome, PollReport, Poller};
use crate::service::Heartbeat;
use crate::store::FeedStatus;
use crate::telemetry::Metrics;
use hosts::{Hosts, host_of};
use policy::Policy;

/// Whether to poll once or keep polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Poll each feed once, then return.
    Once,
    /// Poll until shut down.
    Forever,
}

/// What the loop hears from its poll tasks.
enum Event {
    /// A request to `host` is over; `blocked_until` is a `Retry-After`.
    RequestDone {
        host: String,
        blocked_until: Option<Instant>,
    },
    /// Feed `feed`'s poll is over; poll it again at `next` (never if `None`).
    PollDone { feed: usize, next: Option<Instant> },
}

/// The polling loop's configuration and limits.
pub struct Scheduler {
    /// Feed slots; a removed feed leaves `None` (its queued poll is skipped).
    feeds: Vec<Option<FeedConfig>>,
    /// Slot of each feed by URL.
    slots: HashMap<String, usize>,
    /// Catalog changes to apply while running.
    changes: Option<mpsc::UnboundedReceiver<Change>>,
    /// New `[poll]` settings to apply while running (a config reload).
    settings: Option<watch::Receiver<PollConfig>>,
    /// When each queued feed was due (for the lag metric).
    due: HashMap<usize, Instant>,
    /// The loop's heartbeat and how often it must beat at least.
    heartbeat: Option<(Heartbeat, Duration)>,
    metrics: Arc<Metrics>,
    poller: Poller,
    policy: Policy,
    concurrency: usize,
    hosts: Hosts,
}

/// What a finished loop reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopStats {
    /// Most requests in flight to one host at once.
    pub peak_per_host: usize,
}

impl Scheduler {
    /// A scheduler for `feeds` with the limits of `poll`, polling through `poller`.
    pub fn new(feeds: Vec<FeedConfig>, poll: &PollConfig, poller: Poller) -> Scheduler {
        Scheduler {
            slots: feeds
                .iter()
                .enumerate()
                .map(|(i, f)| (f.url.clone(), i))
                .collect(),
            feeds: feeds.into_iter().map(Some).collect(),
            changes: None,
            settings: None,
            due: HashMap::new(),
            heartbeat: None,
            metrics: Arc::new(Metrics::default()),
            poller,
            policy: Policy::new(poll),
            concurrency: poll.concurrency,
            hosts: Hosts::new(poll.per_host, poll.host_gap),
        }
    }

    /// Applies the catalog's changes (feeds added, changed, removed at run time) as they come.
    pub fn with_changes(mut self, changes: mpsc::UnboundedReceiver<Change>) -> Scheduler {
        self.changes = Some(changes);
        self
    }

    /// Applies new `[poll]` settings as they are sent: limits, intervals, timeouts, user agent.
    pub fn with_settings(mut self, settings: watch::Receiver<PollConfig>) -> Scheduler {
        self.settings = Some(settings);
        self
    }

    /// Beats `heartbeat` on every turn of the loop, and turns at least `every`.
    pub fn with_heartbeat(mut self, heartbeat: Heartbeat, every: Duration) -> Scheduler {
        self.heartbeat = Some((heartbeat, every));
        self
    }

    /// Records how late polls start in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Scheduler {
        self.metrics = metrics;
        self
    }

    /// Applies new `[poll]` settings. The fetcher is rebuilt; polls in flight finish with the
    /// old one.
    fn reconfigure(&mut self, poll: &PollConfig) {
        match Fetcher::new(poll) {
            Ok(fetcher) => self.poller = Poller::new(fetcher, self.poller.store().clone()),
            Err(e) => {
                warn!(error = %e, "Could not apply the new [poll] settings; keeping the old ones.");
                return;
            }
        }
        self.policy = Policy::new(poll);
        self.concurrency = poll.concurrency;
        self.hosts.set_limits(poll.per_host, poll.host_gap);
        info!(
            concurrency = poll.concurrency,
            per_host = poll.per_host,
            "Poll settings reloaded."
        );
    }

    /// Feed `i`'s settings, unless it was removed.
    fn feed(&self, i: usize) -> Option<&FeedConfig> {
        self.feeds.get(i).and_then(Option::as_ref)
    }

    /// Applies one catalog change; returns a slot to poll soon, for a new feed.
    fn apply(&mut self, change: Change) -> Option<usize> {
        match change {
            Change::Added(feed) | Change::Updated(feed) => match self.slots.get(&feed.url) {
                Some(&i) => {
                    // The new interval applies from the feed's next poll on.
                    info!(feed = %feed.url, "Feed settings changed.");
                    self.feeds[i] = Some(feed);
                    None
                }
                None => {
                    info!(feed = %feed.url, "Feed added; polling it now.");
                    self.slots.insert(feed.url.clone(), self.feeds.len());
                    self.feeds.push(Some(feed));
                    Some(self.feeds.len() - 1)
                }
            },
            Change::Removed(url) => {
                // The slot is retired, not reused: a poll of it still queued or in flight is
                // dropped when it comes up, and a feed added again later gets a fresh slot.
                if let Some(i) = self.slots.remove(&url) {
                    info!(feed = %url, "Feed removed; polling stops.");
                    self.feeds[i] = None;
                }
                None
            }
        }
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
    ) -> LoopStats {
        let start = Instant::now();
        let mut queue: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
        for i in 0..self.feeds.len() {
            if let Some(due) = self.first_due(i, mode, start) {
                queue.push(Reverse((due, i)));
            }
        }
        let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
        let mut changes = self.changes.take();
        let mut settings = self.settings.take();
        let mut in_flight = 0usize;
        loop {
            let now = Instant::now();
            if let Some((h, _)) = &self.heartbeat {
                h.beat();
            }
            // Due feeds join their host's queue; in a single pass, a blocked host defers them.
            while let Some(&Reverse((at, i))) = queue.peek() {
                if at > now {
                    break;
                }
                queue.pop();
                if self.feed(i).is_none() {
                    continue;
                }
                let host = host_of(&self.current_url(i));
                match self.hosts.blocked_until(&host, now) {
                    Some(until) if mode == Mode::Once => self.defer(i, until, &reports).await,
                    _ => {
                        self.due.insert(i, at);
                        self.hosts.push(&host, i, now);
                    }
                }
            }
            while in_flight < self.concurrency {
                let Some((host, i)) = self.hosts.next(now) else {
                    break;
                };
                let due = self.due.remove(&i);
                if self.feed(i).is_none() {
                    // Removed while it waited for its host.
                    self.hosts.request_done(&host, now);
                    continue;
                }
                in_flight += 1;
                if let Some(due) = due {
                    self.metrics
                        .lag(now.saturating_duration_since(due).as_secs_f64());
                }
                // The connection is kept only for a feed already waiting on the same host.
                let reuse = if self.hosts.has_waiting(&host) {
                    Reuse::Keep
                } else {
                    Reuse::Close
                };
                self.spawn_poll(i, host, reuse, &reports, &events_tx, &abort, tracker);
            }
            if mode == Mode::Once && queue.is_empty() && in_flight == 0 && self.hosts.is_empty() {
                break;
            }
            let wake = [
                queue.peek().map(|Reverse((at, _))| *at),
                self.hosts.wake_at(),
                self.heartbeat.as_ref().map(|(_, every)| now + *every),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(event) = events.recv() => match event {
                    Event::RequestDone { host, blocked_until } => {
                        let now = Instant::now();
                        self.hosts.request_done(&host, now);
                        if let Some(until) = blocked_until {
                            self.hosts.block(&host, until, now);
                            if mode == Mode::Once {
                                for i in self.hosts.take_waiting(&host) {
                                    self.defer(i, until, &reports).await;
                                }
                            }
                        }
                    }
                    Event::PollDone { feed, next } => {
                        in_flight -= 1;
                        if let (Mode::Forever, Some(next), Some(_)) = (mode, next, self.feed(feed)) {
                            queue.push(Reverse((next, feed)));
                        }
                    }
                },
                Some(change) = next_change(&mut changes) => {
                    if let Some(i) = self.apply(change) {
                        queue.push(Reverse((Instant::now(), i)));
                    }
                }
                Some(poll) = next_settings(&mut settings) => self.reconfigure(&poll),
                () = sleep_until(wake) => {}
            }
        }
        debug!(in_flight, "Scheduler stopped.");
        LoopStats {
            peak_per_host: self.hosts.peak_per_host(),
        }
    }

    /// When feed `i` is first due, or `None` when it is gone. Also restores a host block left by
    /// a rate-limited feed.
    fn first_due(&mut self, i: usize, mode: Mode, now: Instant) -> Option<Instant> {
        let feed = self.feed(i)?.clone();
        let state = self.poller.store().feed_state(&feed.url).ok().flatten();
        if state.as_ref().is_some_and(|s| s.status == FeedStatus::Gone) {
            return None;
        }
        let waiting = state
            .as_ref()
            .and_then(|s| s.next_fetch)
            .and_then(|t| (t - Utc::now()).to_std().ok());
        if let (Some(s), Some(wait)) = (&state, waiting)
            && s.status == FeedStatus::Error
            && matches!(s.http_status, Some(429 | 503))
        {
            let host = host_of(s.location.as_deref().unwrap_or(&s.url));
            self.hosts.block(&host, now + wait, now);
        }
        match mode {
            Mode::Once => Some(now),
            Mode::Forever => {
                let base = self.policy.interval(&feed, None);
                let spread = (base / 20).min(Duration::from_secs(5));
                Some(now + waiting.unwrap_or_else(|| spread.mul_f64(fastrand::f64())))
            }
        }
    }

    /// The URL feed `i` is fetched from (its permanent new home, if it moved).
    fn current_url(&self, i: usize) -> String {
        let Some(feed) = self.feed(i) else {
            return String::new();
        };
        match self.poller.store().feed_state(&feed.url) {
            Ok(Some(state)) => state.location.unwrap_or_else(|| feed.url.clone()),
            _ => feed.url.clone(),
        }
    }

    /// Reports feed `i` as not polled in this pass because its host is blocked until `until`.
    async fn defer(&self, i: usize, until: Instant, reports: &mpsc::Sender<PollReport>) {
        let Some(feed) = self.feed(i).cloned() else {
            return;
        };
        let wait = until.saturating_duration_since(Instant::now());
        let report = PollReport {
            interval: self.policy.interval(&feed, None),
            feed,
            started: now_millis(),
            elapsed: Duration::ZERO,
            outcome: PollOutcome::Deferred {
                reason: format!(
                    "not polled: its host asked to wait {} s (Retry-After)",
                    wait.as_secs()
                ),
            },
            next_fetch: Some(now_millis() + chrono::Duration::from_std(wait).unwrap_or_default()),
            backoff: Some(wait),
            moved_to: None,
        };
        let _ = reports.send(report).await;
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_poll(
        &self,
        i: usize,
        host: String,
        reuse: Reuse,
        reports: &mpsc::Sender<PollReport>,
        events: &mpsc::UnboundedSender<Event>,
        abort: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        let Some(feed) = self.feed(i).cloned() else {
            return;
        };
        let poller = self.poller.clone();
        let policy = self.policy.clone();
        let reports = reports.clone();
        let events = events.clone();
        let abort = abort.clone();
        let span = info_span!("poll", feed = %feed.url);
        tracker.spawn(
            async move {
                let prev = poller.store().feed_state(&feed.url).ok().flatten();
                let started = now_millis();
                let clock = Instant::now();
                let slot = HostSlot {
                    events: events.clone(),
                    host: Some(host),
                };
                let polled = tokio::select! {
                    polled = poller.poll(&feed, prev.as_ref(), reuse, move |retry| slot.release(retry)) => Some(polled),
                    () = abort.cancelled() => None,
                };
                let elapsed = clock.elapsed();
                let Some(polled) = polled else {
                    // Cancelled at shutdown: nothing to report, the feed keeps its state.
                    let _ = events.send(Event::PollDone { feed: i, next: None });
                    return;
                };

                let result = match &polled.outcome {
                    PollOutcome::Gone { .. } => policy::Result::Gone,
                    PollOutcome::Failed { .. } => match polled.retry_after {
                        Some(wait) => policy::Result::RetryAfter(wait),
                        None => policy::Result::Failed {
                            failures: prev.as_ref().map_or(0, |s| s.failures) + 1,
                        },
                    },
                    _ => policy::Result::Ok,
                };
                let learned = policy.learn(&polled.dates).or_else(|| {
                    // Keep what was learned before (a 304 teaches nothing).
                    prev.as_ref()
                        .and_then(|s| s.interval_seconds)
                        .map(Duration::from_secs)
                });
                let base = policy.interval(&feed, learned);
                let floor = polled.fresh_for.max(polled.feed_hint);
                let plan = policy.plan(base, floor, result);
                let report = PollReport {
                    feed,
                    started,
                    elapsed,
                    outcome: polled.outcome,
                    next_fetch: plan
                        .delay
                        .map(|d| now_millis() + chrono::Duration::from_std(d).unwrap_or_default()),
                    interval: plan.interval,
                    backoff: plan.backoff,
                    moved_to: polled.moved_to,
                };
                // The sieve outlives every poll task; if it is gone the process is stopping.
                let _ = reports.send(report).await;
                let _ = events.send(Event::PollDone {
                    feed: i,
                    next: plan.delay.map(|d| Instant::now() + d),
                });
            }
            .instrument(span),
        );
    }
}

/// A poll task's hold on its host: released when the request is over, or when the task is
/// dropped without finishing (shutdown), so the host's count never leaks.
struct HostSlot {
    events: mpsc::UnboundedSender<Event>,
    host: Option<String>,
}

impl HostSlot {
    fn release(mut self, retry_after: Option<Duration>) {
        if let Some(host) = self.host.take() {
            let _ = self.events.send(Event::RequestDone {
                host,
                blocked_until: retry_after.map(|d| Instant::now() + d),
            });
        }
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            let _ = self.events.send(Event::RequestDone {
                host,
                blocked_until: None,
            });
        }
    }
}

/// The wall clock to the millisecond: the precision of every timestamp feedsieve records.
pub fn now_millis() -> chrono::DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The next catalog change, or never when there is no catalog to listen to.
async fn next_change(changes: &mut Option<mpsc::UnboundedReceiver<Change>>) -> Option<Change> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next `[poll]` settings sent, or never when nobody sends any.
async fn next_settings(settings: &mut Option<watch::Receiver<PollConfig>>) -> Option<PollConfig> {
    match settings {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => {
                // The sender is gone (the daemon is stopping): stop listening.
                *settings = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
