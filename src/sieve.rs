//! The sieve: where dedup and store meet, one poll report at a time.
//!
//! In: [`PollReport`]s from the poll tasks, over a bounded channel (a slow disk slows the fetchers
//! instead of growing a queue). Out: articles and duplicate records in the store, the feed's new
//! state, and one log line per poll.
//!
//! The sieve is the only writer. It runs on one blocking thread and takes reports in the order
//! they arrive, so "check the indexes, then insert" is atomic by construction: two feeds that
//! deliver the same story in the same instant are judged one after the other, and the second is
//! a duplicate of the first. The feed's validators are saved only after its entries are stored,
//! so a crash in between makes the next poll fetch the body again rather than lose it.
//!
//! A store failure while handling one report is logged and written into that feed's state; the
//! sieve goes on with the next report. A write the disk refuses (no space left, an I/O error) is
//! different: sled refuses every write after it until the database is reopened, so the sieve
//! stops taking reports (the bounded channel then holds the fetchers back), and tries, with
//! backoff, to write a probe file and reopen the store; when that works it goes on. Reads are
//! served throughout. The feed whose report failed kept its old validators, so its next poll
//! fetches the items again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::config::RetentionConfig;
use crate::dedup::fingerprint::Fingerprint;
use crate::dedup::{Settings, Verdict, judge};
use crate::parse::Candidate;
use crate::poll::{PollOutcome, PollReport};
use crate::store::{FeedState, FeedStatus, Retained, StoreError, Writer};
use crate::telemetry::Metrics;

/// Counts for one report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Articles stored.
    pub new: u64,
    /// Duplicates recorded.
    pub duplicates: u64,
    /// Entries the feed listed again (skipped silently).
    pub relisted: u64,
}

/// Totals over a run, for the `run --once` summary.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Polls handled.
    pub polls: u64,
    /// Polls that fetched and parsed a body.
    pub fetched: u64,
    /// Polls answered "not modified".
    pub not_modified: u64,
    /// Failed polls: (feed URL, error).
    pub failed: Vec<(String, String)>,
    /// Feeds not polled because their host asked to wait: (feed URL, reason).
    pub deferred: Vec<(String, String)>,
    /// Most requests in flight to one host at once (filled in by the app from the scheduler).
    pub peak_per_host: usize,
    /// Articles stored.
    pub new: u64,
    /// Duplicates recorded.
    pub duplicates: u64,
}

/// A report judged into the writer's pending batch, waiting for the group's commit.
struct Judged {
    /// The feed's state once the report is stored.
    state: FeedState,
    /// The feed's state before this report, kept for when the commit fails.
    before: FeedState,
    tally: Tally,
    /// What each entry stored (`None`) or dropped (the reason), counted once committed.
    counted: Vec<Option<&'static str>>,
    /// For a fetched feed, what its "Polled feed." line says.
    fetched: Option<FetchedLog>,
}

/// The figures of a fetched feed's log line.
struct FetchedLog {
    status: u16,
    bytes: usize,
    elapsed_ms: u64,
    entries: usize,
}

/// Most reports committed in one group: enough to spread sled's cost per batch (CPU of pass 1
/// on the benchmark workload: 2.39 s one by one, 2.0 s in groups of up to 8), few enough that
/// the reports held meanwhile stay a few MB and a failed commit costs little.
const MAX_GROUP: usize = 8;

/// How often the sieve takes articles past `dedup.window` out of the similarity indexes and
/// applies `[retention]`.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Records one retention step may delete; steps repeat until done, with reports handled in
/// between, so deleting a backlog never holds up ingestion for long.
const RETENTION_STEP: usize = 500;
/// Longest a sweep runs before the sieve goes back to its reports.
const SWEEP_BUDGET: Duration = Duration::from_millis(50);
/// First wait before trying the disk again after a write failed; it doubles up to
/// [`RECOVER_MAX_WAIT`].
const RECOVER_FIRST_WAIT: Duration = Duration::from_millis(500);
/// Longest wait between two attempts to write again.
const RECOVER_MAX_WAIT: Duration = Duration::from_secs(30);

/// What the sieve applies, from the config; replaced on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct SieveSettings {
    /// Dedup thresholds.
    pub dedup: Settings,
    /// `dedup.window`.
    pub window: Duration,
    /// `[retention]`.
    pub retention: RetentionConfig,
}

impl SieveSettings {
    /// The sieve's part of `config`.
    pub fn from_config(config: &crate::config::Config) -> SieveSettings {
        SieveSettings {
            dedup: Settings {
                max_distance: config.dedup.max_distance,
                containment: config.dedup.containment,
            },
            window: config.dedup.window,
            retention: config.retention.clone(),
        }
    }
}

/// The single writer task's state.
pub struct Sieve {
    writer: Writer,
    settings: SieveSettings,
    updates: Option<watch::Receiver<SieveSettings>>,
    summary: Summary,
    /// When the next sweep is due.
    next_sweep: Instant,
    metrics: Arc<Metrics>,
    /// What the report being handled stored (`None`) or dropped (the reason), counted in the
    /// metrics once its batch is committed.
    counted: Vec<Option<&'static str>>,
    /// Reports of a group that came after a write failed: handled first once the store takes
    /// writes again, as if they were still waiting in the queue.
    held: std::collections::VecDeque<PollReport>,
    /// Counts the reports handled (committed, or failed): how far a cluster's intake may
    /// acknowledge the stream.
    progress: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Sieve {
    /// A sieve writing through `writer` with `settings`.
    pub fn new(writer: Writer, settings: SieveSettings) -> Sieve {
        Sieve {
            writer,
            settings,
            updates: None,
            summary: Summary::default(),
            next_sweep: Instant::now(),
            metrics: Arc::new(Metrics::default()),
            counted: Vec::new(),
            held: std::collections::VecDeque::new(),
            progress: None,
        }
    }

    /// Counts in `progress` every report handled (committed or failed), in the order received.
    pub fn with_progress(mut self, progress: Arc<std::sync::atomic::AtomicU64>) -> Sieve {
        self.progress = Some(progress);
        self
    }

    /// Records polls, stored articles and duplicates in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Sieve {
        self.metrics = metrics;
        self
    }

    /// Applies new settings as they are sent (a config reload).
    pub fn with_updates(mut self, updates: watch::Receiver<SieveSettings>) -> Sieve {
        self.updates = Some(updates);
        self
    }

    /// Takes reports until every sender is gone, then returns the totals. Sweeps (window and
    /// retention) run between reports and, when no report comes, on their own schedule.
    pub fn run_blocking(mut self, mut reports: mpsc::Receiver<PollReport>) -> Summary {
        // Inside the runtime (the daemon), wait with a timeout so that sweeps run while idle.
        let runtime = tokio::runtime::Handle::try_current().ok();
        loop {
            self.take_updates();
            // A write failed (here, or in the group commit): nothing is written until the store
            // is reopened.
            if self.writer.store().is_failed() && !self.recover(&reports) {
                return self.summary;
            }
            if Instant::now() >= self.next_sweep {
                self.sweep();
            }
            let next = match &runtime {
                _ if !self.held.is_empty() => self.held.pop_front(),
                Some(rt) => {
                    let wait = self.next_sweep.saturating_duration_since(Instant::now());
                    match rt.block_on(tokio::time::timeout(wait, reports.recv())) {
                        Ok(next) => next,
                        Err(_) => continue,
                    }
                }
                None => reports.blocking_recv(),
            };
            let Some(report) = next else { break };
            if !self.wait_for_space(&reports) {
                return self.summary;
            }
            // The reports already waiting go in the same commit.
            let mut group = vec![report];
            while group.len() < MAX_GROUP
                && let Some(more) = self.held.pop_front().or_else(|| reports.try_recv().ok())
            {
                group.push(more);
            }
            self.handle_group(group);
        }
        // A last sweep, so that `run --once` applies retention to what it stored.
        self.sweep();
        self.summary
    }

    fn take_updates(&mut self) {
        if let Some(updates) = &mut self.updates
            && updates.has_changed().unwrap_or(false)
        {
            self.settings = updates.borrow_and_update().clone();
            info!(window = ?self.settings.window, retention = ?self.settings.retention, "Dedup and retention settings reloaded.");
            self.next_sweep = Instant::now();
        }
    }

    /// Forgets, in the similarity indexes, articles older than the window, then deletes what
    /// `[retention]` no longer keeps, for at most `SWEEP_BUDGET` (the next sweep comes at
    /// once when work is left).
    pub fn sweep(&mut self) {
        let started = Instant::now();
        self.next_sweep = started + SWEEP_EVERY;
        let now = Utc::now();
        let Ok(window) = chrono::Duration::from_std(self.settings.window) else {
            return;
        };
        match self.writer.expire_before(now - window) {
            Ok(0) => {}
            Ok(n) => {
                info!(articles = n, window = ?self.settings.window, "Older articles left the dedup indexes.")
            }
            Err(e) => warn!(error = %e, "Could not expire old fingerprints; will try again."),
        }
        let mut total = Retained::default();
        loop {
            match self.writer.retain(
                &self.settings.retention,
                self.settings.window,
                now,
                RETENTION_STEP,
            ) {
                Ok(step) => {
                    total.articles += step.articles;
                    total.tombstones += step.tombstones;
                    total.expired_tombstones += step.expired_tombstones;
                    total.duplicates += step.duplicates;
                    total.segments += step.segments;
                    if !step.more {
                        break;
                    }
                    if started.elapsed() >= SWEEP_BUDGET {
                        self.next_sweep = Instant::now();
                        break;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "Retention could not delete old articles; will try again.");
                    break;
                }
            }
        }
        if total.any() {
            self.metrics
                .deleted(total.articles as u64, total.duplicates as u64);
            info!(
                articles = total.articles,
                tombstones = total.tombstones,
                expired_tombstones = total.expired_tombstones,
                duplicates = total.duplicates,
                body_segments = total.segments,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Retention deleted old records."
            );
        }
    }

    /// Handles one report: stores, records, updates the feed's state, logs the poll.
    pub fn handle(&mut self, report: PollReport) -> Tally {
        self.handle_group(vec![report]).pop().unwrap_or_default()
    }

    /// Handles reports that arrived together with one commit for all of them (those after a
    /// write failure are held until the store takes writes again): every report's
    /// entries go into one sled batch, committed before any of their feed states is saved (so
    /// a crash keeps a poll's articles and its new validators together, or neither). Each sled
    /// batch costs two log-buffer writes, two `sync_file_range` calls and a wake-up of every
    /// idle sled I/O thread, whatever its size; one batch per report cost 14% of a pass's CPU.
    /// Returns the tallies of the reports handled, in order.
    pub fn handle_group(&mut self, reports: Vec<PollReport>) -> Vec<Tally> {
        let held_before = self.held.len();
        let count = reports.len();
        let tallies = self.handle_group_inner(reports);
        if let Some(p) = &self.progress {
            let handled = count - (self.held.len() - held_before).min(count);
            p.fetch_add(handled as u64, std::sync::atomic::Ordering::SeqCst);
        }
        tallies
    }

    fn handle_group_inner(&mut self, reports: Vec<PollReport>) -> Vec<Tally> {
        let mut tallies = Vec::with_capacity(reports.len());
        let mut judged: Vec<Judged> = Vec::with_capacity(reports.len());
        for report in reports {
            if self.writer.store().is_failed() {
                // Nothing is written until the store is reopened (`run_blocking`).
                self.held.push_back(report);
                continue;
            }
            let url = report.feed.url.clone();
            self.summary.polls += 1;
            match self.judge_report(report) {
                Ok(j) => judged.push(j),
                Err((state, e)) => {
                    // What was judged before the failure is kept: commit it first.
                    tallies.extend(self.commit_group(std::mem::take(&mut judged)));
                    self.failed(&url, state, &e);
                    tallies.push(Tally::default());
                }
            }
        }
        tallies.extend(self.commit_group(judged));
        tallies
    }

    /// Commits the pending batch, then finishes each judged report: counts, logs, saves its
    /// state. When the commit fails, every report of the group fails.
    fn commit_group(&mut self, judged: Vec<Judged>) -> Vec<Tally> {
        // (A no-op when nothing is pending.)
        if let Err(e) = self.writer.commit() {
            let tallies = vec![Tally::default(); judged.len()];
            for j in judged {
                self.failed(&j.state.url.clone(), Some(j.before), &e);
            }
            return tallies;
        }
        let mut tallies = Vec::with_capacity(judged.len());
        for j in judged {
            if let Some(f) = &j.fetched {
                for reason in &j.counted {
                    match reason {
                        None => self.metrics.stored(),
                        Some(reason) => self.metrics.duplicate(reason),
                    }
                }
                self.summary.fetched += 1;
                self.summary.new += j.tally.new;
                self.summary.duplicates += j.tally.duplicates;
                info!(
                    feed = %j.state.url,
                    status = f.status,
                    bytes = f.bytes,
                    elapsed_ms = f.elapsed_ms,
                    entries = f.entries,
                    new = j.tally.new,
                    duplicates = j.tally.duplicates,
                    "Polled feed."
                );
            }
            if let Err(e) = self.writer.put_feed_state(&j.state) {
                self.failed(&j.state.url.clone(), Some(j.state), &e);
                tallies.push(Tally::default());
                continue;
            }
            tallies.push(j.tally);
        }
        tallies
    }

    /// Records a report that could not be stored.
    fn failed(&mut self, url: &str, state: Option<FeedState>, e: &StoreError) {
        if e.is_io() {
            self.writer.store().mark_unwritable();
            error!(feed = %url, error = %e, "The disk refused a write: ingestion stops until it takes writes again; reads go on.");
            self.summary.failed.push((url.to_string(), e.to_string()));
            return;
        }
        warn!(feed = %url, error = %e, "Could not store a poll's results.");
        self.summary.failed.push((url.to_string(), e.to_string()));
        if let Some(mut state) = state {
            state.status = FeedStatus::Error;
            state.error = Some(e.to_string());
            state.failures += 1;
            if let Err(e) = self.writer.put_feed_state(&state) {
                warn!(feed = %state.url, error = %e, "Could not save the feed's state.");
            }
        }
    }

    /// Judges a report's entries into the writer's pending batch and works out the feed's new
    /// state; nothing is committed or saved here (see [`Sieve::commit_group`]).
    #[allow(clippy::result_large_err)]
    fn judge_report(
        &mut self,
        report: PollReport,
    ) -> Result<Judged, (Option<FeedState>, StoreError)> {
        let PollReport {
            feed,
            started,
            elapsed,
            outcome,
            next_fetch,
            interval,
            backoff,
            moved_to,
        } = report;
        let name = feed.name.clone().unwrap_or_else(|| feed.url.clone());
        let mut state = self
            .writer
            .store()
            .feed_state(&feed.url)
            .map_err(|e| (None, e))?
            .unwrap_or_else(|| FeedState::pending(&feed.url, &name));
        state.name = name;
        state.next_fetch = next_fetch;
        state.interval_seconds = Some(interval.as_secs());
        state.backoff_seconds = backoff.map(|b| b.as_secs());
        if let Some(to) = moved_to
            && state.location.as_deref() != Some(to.as_str())
        {
            info!(feed = %feed.url, to = %to, "Feed moved permanently; polling the new URL from now on.");
            state.location = Some(to);
        }
        if !matches!(outcome, PollOutcome::Deferred { .. }) {
            state.last_fetch = Some(started);
        }
        let elapsed_ms = elapsed.as_millis() as u64;
        let mut tally = Tally::default();
        let before = state.clone();
        let mut fetched = None;
        match outcome {
            PollOutcome::NotModified { status } => {
                self.metrics
                    .poll("not_modified", Some(status), 0, elapsed.as_secs_f64());
                self.summary.not_modified += 1;
                state.status = FeedStatus::NotModified;
                state.http_status = (status != 0).then_some(status);
                state.error = None;
                state.failures = 0;
                info!(feed = %feed.url, status, bytes = 0, elapsed_ms, new = 0, duplicates = 0, "Polled feed: not modified.");
            }
            PollOutcome::Fetched {
                status,
                bytes,
                validators,
                mut entries,
                boilerplate,
            } => {
                self.metrics
                    .poll("ok", Some(status), bytes, elapsed.as_secs_f64());
                // Feeds list newest first; store oldest first so seq follows publication.
                entries.reverse();
                entries.sort_by_key(|(c, _)| c.published);
                let listed = entries.len();
                let judged = entries
                    .into_iter()
                    .try_for_each(|(c, fp)| self.sieve_one(&c, fp, started, &mut tally));
                if let Err(e) = judged {
                    self.counted.clear();
                    return Err((Some(before), e));
                }
                state.status = FeedStatus::Ok;
                state.http_status = (status != 0).then_some(status);
                state.error = None;
                state.failures = 0;
                state.articles += tally.new;
                state.duplicates += tally.duplicates;
                state.boilerplate = boilerplate;
                state.etag = validators.etag;
                state.last_modified = validators.last_modified;
                fetched = Some(FetchedLog {
                    status,
                    bytes,
                    elapsed_ms,
                    entries: listed,
                });
            }
            PollOutcome::Failed { status, error } => {
                self.metrics.poll("error", status, 0, elapsed.as_secs_f64());
                state.status = FeedStatus::Error;
                state.http_status = status;
                state.error = Some(error.clone());
                state.failures += 1;
                self.summary.failed.push((feed.url.clone(), error.clone()));
                warn!(feed = %feed.url, status = status.unwrap_or(0), elapsed_ms, failures = state.failures, error = %error, "Poll failed.");
            }
            PollOutcome::Gone { error } => {
                self.metrics
                    .poll("gone", Some(410), 0, elapsed.as_secs_f64());
                state.status = FeedStatus::Gone;
                state.http_status = Some(410);
                state.error = Some(error.clone());
                self.summary.failed.push((feed.url.clone(), error.clone()));
                warn!(feed = %feed.url, status = 410, elapsed_ms, "Feed is gone (410); polling stops.");
            }
            PollOutcome::Deferred { reason } => {
                self.metrics.poll("deferred", None, 0, 0.0);
                self.summary
                    .deferred
                    .push((feed.url.clone(), reason.clone()));
                info!(feed = %feed.url, reason = %reason, "Poll deferred.");
            }
        }
        Ok(Judged {
            state,
            before,
            tally,
            counted: std::mem::take(&mut self.counted),
            fetched,
        })
    }

    /// Holds ingestion while the data directory's filesystem has less than `retention.min_free`
    /// free, checking again with backoff; reads go on meanwhile. Returns false, without waiting
    /// further, once every report sender is gone.
    fn wait_for_space(&mut self, reports: &mpsc::Receiver<PollReport>) -> bool {
        let store = self.writer.store().clone();
        let low = |min: u64| match store.free_bytes() {
            Ok(free) => (free < min).then_some(free),
            Err(e) => {
                warn!(error = %e, "Could not read the free space of the data directory.");
                None
            }
        };
        let min_free = self.settings.retention.min_free;
        if min_free == 0 {
            return true;
        }
        let Some(free) = low(min_free) else {
            return true;
        };
        let started = Instant::now();
        store.set_waiting_for_space(true);
        error!(
            free_bytes = free,
            min_free,
            "The data directory's disk is nearly full: ingestion pauses until retention.min_free is free again; reads go on."
        );
        let mut wait = RECOVER_FIRST_WAIT;
        loop {
            if !self.sleep_unless_closed(reports, wait) {
                return false;
            }
            self.take_updates();
            let min_free = self.settings.retention.min_free;
            if min_free == 0 || low(min_free).is_none() {
                store.set_waiting_for_space(false);
                info!(
                    paused_ms = started.elapsed().as_millis() as u64,
                    "The disk has room again; ingestion resumes."
                );
                return true;
            }
            wait = (wait * 2).min(RECOVER_MAX_WAIT);
        }
    }

    /// Sleeps for `wait`; false (at once) if every report sender is gone meanwhile.
    fn sleep_unless_closed(&self, reports: &mpsc::Receiver<PollReport>, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            if reports.is_closed() {
                warn!(
                    "Stopping while ingestion waits for the disk; the polls not stored are fetched again at the next start."
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(wait));
        }
        true
    }

    /// Waits until the store takes writes again: with backoff, writes a probe file beside the
    /// database, then reopens it. Returns false, without waiting further, once every report
    /// sender is gone (the daemon is stopping; what was stored is safe, and the reports not
    /// taken are fetched again by the next run).
    fn recover(&mut self, reports: &mpsc::Receiver<PollReport>) -> bool {
        let started = Instant::now();
        let mut wait = RECOVER_FIRST_WAIT;
        let mut attempts = 0u32;
        loop {
            if !self.sleep_unless_closed(reports, wait) {
                return false;
            }
            attempts += 1;
            let tried = self
                .writer
                .store()
                .probe_space()
                .map_err(|e| e.to_string())
                .and_then(|()| self.writer.reopen().map_err(|e| e.to_string()));
            match tried {
                Ok(()) => {
                    info!(
                        attempts,
                        stalled_ms = started.elapsed().as_millis() as u64,
                        "The database takes writes again; ingestion resumes."
                    );
                    return true;
                }
                Err(e) => {
                    wait = (wait * 2).min(RECOVER_MAX_WAIT);
                    warn!(attempts, error = %e, retry_in_ms = wait.as_millis() as u64, "The database still takes no writes.");
                }
            }
        }
    }

    /// Judges one entry and stores or records it.
    fn sieve_one(
        &mut self,
        c: &Candidate,
        fp: Fingerprint,
        fetched: DateTime<Utc>,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        let verdict = judge(c, &fp, &self.writer, self.settings.dedup)?;
        let found = match verdict {
            Verdict::Relisted => {
                tally.relisted += 1;
                return Ok(());
            }
            Verdict::Duplicate(m) => m,
            Verdict::New => match self.writer.taken(c, &fp)? {
                Some(m) => m,
                None => {
                    // The fingerprint's marks move into the store's batch.
                    let (seq, id) =
                        self.writer
                            .store_new(c, std::borrow::Cow::Owned(fp), fetched)?;
                    debug!(feed = %c.feed, seq, id = %id, title = %c.title, "Stored article.");
                    tally.new += 1;
                    self.counted.push(None);
                    return Ok(());
                }
            },
        };
        let seq = self.writer.insert_duplicate(c, &fp, &found, fetched)?;
        debug!(
            feed = %c.feed,
            title = %c.title,
            reason = found.reason.as_str(),
            of = found.seq,
            distance = found.distance,
            seq,
            "Dropped duplicate."
        );
        tally.duplicates += 1;
        self.counted.push(Some(found.reason.as_str()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeedConfig;
    use crate::dedup::clean::Boilerplate;
    use crate::dedup::fingerprint::fingerprint;
    use crate::fetch::Validators;
    use crate::store::{Options, Store};

    /// Feed `i`'s copy of one story: its own feed, guid, link and headline, the same body, and
    /// maybe the outlet's footer.
    fn copy(i: usize, body: &str, footer: bool) -> PollReport {
        let feed = format!("https://outlet{i}.example/rss");
        let text = if footer {
            format!("{body}\n\nCopyright Outlet {i}. All rights reserved.")
        } else {
            body.to_string()
        };
        let candidate = Candidate {
            feed: feed.clone(),
            guid: format!("{i}"),
            url: Some(format!("https://outlet{i}.example/news/{i}")),
            title: format!("Outlet {i}: the story"),
            published: None,
            text,
        };
        let fp = fingerprint(&candidate.text);
        PollReport {
            feed: FeedConfig {
                url: feed,
                name: None,
                interval: None,
                tags: Vec::new(),
            },
            started: Utc::now(),
            elapsed: Duration::ZERO,
            outcome: PollOutcome::Fetched {
                status: 200,
                bytes: candidate.text.len(),
                validators: Validators::default(),
                entries: vec![(candidate, fp)],
                boilerplate: Boilerplate::default(),
            },
            next_fetch: None,
            interval: Duration::from_secs(1800),
            backoff: None,
            moved_to: None,
        }
    }

    /// Settings for the tests: a day's window, no retention.
    fn settings() -> SieveSettings {
        SieveSettings {
            dedup: Settings {
                max_distance: 3,
                containment: 0.7,
            },
            window: Duration::from_secs(86_400),
            retention: RetentionConfig {
                max_age: None,
                max_articles: None,
                min_free: 0,
            },
        }
    }

    /// Reports that arrive together are committed together: each gets its own tally, in order,
    /// and every feed's state is saved (with its new validators) once the group is stored.
    #[test]
    fn a_group_of_reports_is_stored_with_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        let mut sieve = Sieve::new(store.writer().unwrap(), settings());
        let body = (0..200)
            .map(|i| format!("w{}", i * 7 % 1000))
            .collect::<Vec<_>>()
            .join(" ");
        let mut first = copy(0, &body, false);
        if let PollOutcome::Fetched { validators, .. } = &mut first.outcome {
            validators.etag = Some("\"v1\"".into());
        }
        let mut unchanged = copy(2, &body, false);
        unchanged.outcome = PollOutcome::NotModified { status: 304 };
        let other = (0..200)
            .map(|i| format!("x{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let tallies = sieve.handle_group(vec![
            first,
            copy(1, &body, true),
            unchanged,
            copy(3, &other, false),
        ]);
        let counts: Vec<(u64, u64)> = tallies.iter().map(|t| (t.new, t.duplicates)).collect();
        assert_eq!(counts, [(1, 0), (0, 1), (0, 0), (1, 0)]);
        store.sync().unwrap();
        assert_eq!(store.articles_after(0, 10).unwrap().len(), 2);
        assert_eq!(store.duplicates_after(0, 10).unwrap().len(), 1);
        let state = |i: usize| {
            store
                .feed_state(&format!("https://outlet{i}.example/rss"))
                .unwrap()
                .unwrap()
        };
        assert_eq!(state(0).etag.as_deref(), Some("\"v1\""));
        assert_eq!(state(0).articles, 1);
        assert_eq!(state(1).duplicates, 1);
        assert_eq!(state(2).status, FeedStatus::NotModified);
        assert_eq!(state(3).status, FeedStatus::Ok);
    }

    /// Reports of a group that come after a write failed are held, not lost: once the store is
    /// reopened they are handled like reports still waiting in the queue.
    #[test]
    fn reports_after_a_failed_write_are_held_until_the_store_takes_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        let mut sieve = Sieve::new(store.writer().unwrap(), settings());
        let story = |i: usize| {
            (0..200)
                .map(|w| format!("s{i}w{w}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        store.mark_unwritable();
        let tallies =
            sieve.handle_group(vec![copy(0, &story(0), false), copy(1, &story(1), false)]);
        assert!(tallies.is_empty());
        assert_eq!(sieve.held.len(), 2);
        sieve.writer.reopen().unwrap();
        let (tx, rx) = mpsc::channel(1);
        drop(tx);
        let summary = sieve.run_blocking(rx);
        assert_eq!(summary.new, 2);
        store.sync().unwrap();
        assert_eq!(store.articles_after(0, 10).unwrap().len(), 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Many feeds deliver the same story in the same instant, each from its own task: it is
        /// stored once, and every other copy is a duplicate of it.
        #[test]
        fn one_story_from_many_tasks_at_once_is_stored_once(
            tasks in 2usize..24,
            seed in proptest::prelude::any::<u64>(),
            words in 120usize..400,
            footers in proptest::collection::vec(proptest::prelude::any::<bool>(), 24),
        ) {
            let mut rng = fastrand::Rng::with_seed(seed);
            let body = (0..words)
                .map(|_| format!("w{}", rng.u32(0..5000)))
                .collect::<Vec<_>>()
                .join(" ");
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let sieve = Sieve::new(store.writer().unwrap(), settings());
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .enable_all()
                .build()
                .unwrap();
            let summary = rt.block_on(async {
                let (tx, rx) = mpsc::channel(2);
                let sieve = tokio::task::spawn_blocking(move || sieve.run_blocking(rx));
                let start = Arc::new(tokio::sync::Barrier::new(tasks));
                let senders: Vec<_> = (0..tasks)
                    .map(|i| {
                        let (tx, start, report) = (tx.clone(), start.clone(), copy(i, &body, footers[i]));
                        tokio::spawn(async move {
                            start.wait().await;
                            tx.send(report).await.is_ok()
                        })
                    })
                    .collect();
                drop(tx);
                for s in senders {
                    assert!(s.await.unwrap());
                }
                sieve.await.unwrap()
            });
            store.sync().unwrap();
            let articles = store.articles_after(0, 100).unwrap();
            proptest::prop_assert_eq!(articles.len(), 1);
            proptest::prop_assert_eq!(summary.new, 1);
            proptest::prop_assert_eq!(summary.duplicates, tasks as u64 - 1);
            let id = serde_json::from_slice::<crate::store::Article>(&articles[0].1).unwrap().id;
            let duplicates = store.duplicates_after(0, 100).unwrap();
            proptest::prop_assert_eq!(duplicates.len(), tasks - 1);
            for (_, d) in duplicates {
                let d: crate::store::Duplicate = serde_json::from_slice(&d).unwrap();
                proptest::prop_assert_eq!(&d.duplicate_of, &id);
            }
        }
    }
}
