//! The tasks a cluster role adds to `feedsieve run` (wired in `crate::app`):
//!
//! ```text
//!  fetcher: scheduler ─▶ poll tasks ─▶ publish_reports ─▶ POLLS        (leases: take_hosts)
//!                                            └─▶ own sieve, entries stripped (feed states only)
//!  sieve:   POLLS ─▶ intake ─▶ sieve ─▶ store ─▶ Outbox ─▶ ARTICLES, DUPLICATES
//! ```
//!
//! A report is acknowledged to the broker only once the sieve has committed it and the store
//! is flushed, so a sieve that dies redelivers (from its durable consumer) exactly what it had
//! not made durable; the outbox then publishes nothing twice (see [`super::outbox`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull, kv};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::feeds::FeedBucket;
use super::handover::{self, Handover, StateBucket};
use super::outbox::Outbox;
use super::{ClusterError, Leases, POLLS, wire};
use crate::catalog::{Catalog, Change, SharedWrite};
use crate::config::{ClusterConfig, FeedConfig, Role};
use crate::poll::{PollOutcome, PollReport};
use crate::scheduler::Mode;
use crate::store::Store;

/// Prefix of the sieves' durable consumers: each sieve has its own ([`consumer_name`]) and
/// resumes from its acknowledged position.
pub const SIEVE_CONSUMER: &str = "sieve";
/// Reports fetched from the broker per request.
const INTAKE_BATCH: usize = 64;
/// First wait before a publish or a fetch the broker refused is tried again; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two tries.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long `run` keeps trying to reach NATS and set up the streams at start.
const JOIN_PATIENCE: Duration = Duration::from_secs(120);
/// How long a running fetcher waits after a host new to the feed list before its lease round,
/// for more of the list's changes to come.
const LIST_SETTLE: Duration = Duration::from_millis(250);
/// How long a stopping process keeps trying to write its queued changes to the feed list, and
/// its feeds' handovers.
const LIST_WRITE_GRACE: Duration = Duration::from_secs(5);

/// This machine's host name ("host" when it cannot be read).
fn hostname() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match host.trim() {
        "" => "host".to_string(),
        h => h.to_string(),
    }
}

/// This process's id among the fetchers: its host name and pid.
pub fn member_id() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

/// The host a feed is leased by: the URL's host and port (a `file:` feed is its own host).
pub fn host_of(feed_url: &str) -> String {
    match url::Url::parse(feed_url) {
        Ok(u) => match u.host_str() {
            Some(h) => format!("{h}:{}", u.port_or_known_default().unwrap_or(0)),
            None => feed_url.to_string(),
        },
        Err(_) => feed_url.to_string(),
    }
}

/// A host lease this fetcher holds: the host and the revision to renew or release it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The host.
    pub host: String,
    /// Its lease's revision.
    pub revision: u64,
}

/// `feeds` grouped by the host that leases them, hosts in order.
fn by_host(feeds: &[FeedConfig]) -> std::collections::BTreeMap<String, Vec<FeedConfig>> {
    let mut hosts: std::collections::BTreeMap<String, Vec<FeedConfig>> = Default::default();
    for f in feeds {
        hosts.entry(host_of(&f.url)).or_default().push(f.clone());
    }
    hosts
}

/// Takes every free lease among the hosts of `feeds`: the feeds on the hosts now held, and
/// the leases. A host another fetcher holds is left to it, so each feed is polled by one
/// fetcher.
pub async fn take_hosts(
    leases: &Leases,
    me: &str,
    feeds: &[FeedConfig],
) -> Result<(Vec<FeedConfig>, Vec<Held>), ClusterError> {
    let mut hosts: Vec<(String, Vec<FeedConfig>)> = by_host(feeds).into_iter().collect();
    // Each fetcher tries its rendezvous favourites first, so fetchers starting together split
    // the hosts about evenly instead of the first taking them all.
    hosts.sort_by_key(|(h, _)| std::cmp::Reverse(super::assign::weight(h, me)));
    let mut held = Vec::new();
    let mut mine = Vec::new();
    for (host, feeds) in hosts {
        if let Some(revision) = leases.take(&host, me).await? {
            held.push(Held { host, revision });
            mine.extend(feeds);
        }
    }
    info!(
        hosts = held.len(),
        feeds = mine.len(),
        of = feeds.len(),
        member = me,
        "Took host leases."
    );
    Ok((mine, held))
}

/// A running fetcher's leases, every third of the TTL until `stop`: it says it is alive,
/// reads who else is, and moves towards the rendezvous assignment ([`super::assign`]) over the
/// live fetchers. It renews the leases of its own hosts, releases those that are now another
/// fetcher's (one that joined), and takes the free ones that are its own (a dead fetcher's,
/// once their leases expired, or a released one). Each host it gains or loses becomes
/// `Added` and `Removed` changes for the scheduler (`changes`).
///
/// `feeds` is the feed list when it started; `listed` brings the list's changes (the shared
/// list's, [`super::feeds`]): a feed of a host held goes to the scheduler at once, a feed of a
/// new host brings the next lease round forward (to `LIST_SETTLE` later), and a host left
/// without feeds is released. Returns the leases held at the end.
pub async fn keep_leases(
    cluster: (Leases, super::Members, StateBucket, Store),
    me: String,
    mut held: Vec<Held>,
    feeds: (Vec<FeedConfig>, mpsc::UnboundedReceiver<Change>),
    changes: mpsc::UnboundedSender<Change>,
    ttl: Duration,
    stop: CancellationToken,
) -> Vec<Held> {
    let (leases, members, states, store) = cluster;
    let (feeds, mut listed) = feeds;
    let mut hosts = by_host(&feeds);
    let every = ttl / 3;
    let mut listing = true;
    loop {
        lease_round(
            (&leases, &members, &states, &store),
            &me,
            &mut held,
            &hosts,
            &changes,
        )
        .await;
        let wake = tokio::time::sleep(every);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = stop.cancelled() => return held,
                () = &mut wake => break,
                change = listed.recv(), if listing => match change {
                    Some(change) => {
                        // A host new to the list: a round soon, once the rest of a burst of
                        // additions (an import) is in, not one round per feed.
                        if list_change(change, &mut hosts, &mut held, &leases, &changes).await {
                            let soon = tokio::time::Instant::now() + LIST_SETTLE;
                            if soon < wake.deadline() {
                                wake.as_mut().reset(soon);
                            }
                        }
                    }
                    None => listing = false,
                },
            }
        }
    }
}

/// One round of [`keep_leases`] over `hosts`.
async fn lease_round(
    cluster: (&Leases, &super::Members, &StateBucket, &Store),
    me: &str,
    held: &mut Vec<Held>,
    hosts: &std::collections::BTreeMap<String, Vec<FeedConfig>>,
    changes: &mpsc::UnboundedSender<Change>,
) {
    let (leases, members, states, store) = cluster;
    let feeds_of = |host: &str| hosts.get(host).map(Vec::as_slice).unwrap_or_default();
    if let Err(e) = members.heartbeat(me).await {
        warn!(error = %e, "Could not renew this fetcher's membership; trying again.");
    }
    let live = match members.list().await {
        Ok(mut live) => {
            if !live.iter().any(|m| m == me) {
                live.push(me.to_string());
            }
            Some(live)
        }
        Err(e) => {
            warn!(error = %e, "Could not list the live fetchers; only renewing leases.");
            None
        }
    };
    let mine = |host: &str| {
        live.as_ref()
            .is_none_or(|l| super::assign::owner(host, l) == Some(me))
    };
    tracing::debug!(?live, held = held.len(), "Lease round.");
    let mut kept = Vec::with_capacity(held.len());
    for l in held.drain(..) {
        let lost = if !mine(&l.host) {
            let _ = leases.release(&l.host, l.revision).await;
            info!(host = %l.host, "Handed a host over to the fetcher it belongs to now.");
            true
        } else {
            match leases.renew(&l.host, me, l.revision).await {
                Ok(Some(revision)) => {
                    kept.push(Held {
                        revision,
                        ..l.clone()
                    });
                    false
                }
                Ok(None) => {
                    warn!(host = %l.host, "Lost the lease on a host (it expired and another fetcher took it).");
                    true
                }
                Err(e) => {
                    warn!(host = %l.host, error = %e, "Could not renew a host lease; trying again.");
                    kept.push(l.clone());
                    false
                }
            }
        };
        if lost {
            for f in feeds_of(&l.host) {
                let _ = changes.send(Change::Removed(f.url.clone()));
            }
        }
    }
    *held = kept;
    if live.is_none() {
        return;
    }
    for host in hosts.keys() {
        if held.iter().any(|l| &l.host == host) || !mine(host) {
            continue;
        }
        match leases.take(host, me).await {
            Ok(Some(revision)) => {
                let adopted = handover::adopt(states, store, feeds_of(host)).await;
                info!(host = %host, validators = adopted, "Took over a host.");
                held.push(Held {
                    host: host.clone(),
                    revision,
                });
                for f in feeds_of(host) {
                    let _ = changes.send(Change::Added(f.clone()));
                }
            }
            // Still held by its last fetcher: free once released or expired.
            Ok(None) => {}
            Err(e) => warn!(host = %host, error = %e, "Could not take a host lease."),
        }
    }
}

/// Applies a change of the feed list to `hosts`: passes it to the scheduler when its host is
/// held, and releases a held host left without feeds. True when a lease round should run now
/// (a host new to the list).
async fn list_change(
    change: Change,
    hosts: &mut std::collections::BTreeMap<String, Vec<FeedConfig>>,
    held: &mut Vec<Held>,
    leases: &Leases,
    changes: &mpsc::UnboundedSender<Change>,
) -> bool {
    let url = match &change {
        Change::Added(f) | Change::Updated(f) => f.url.clone(),
        Change::Removed(url) => url.clone(),
    };
    let host = host_of(&url);
    let is_held = held.iter().any(|l| l.host == host);
    let new_host = !hosts.contains_key(&host);
    match &change {
        Change::Added(f) | Change::Updated(f) => {
            let feeds = hosts.entry(host.clone()).or_default();
            feeds.retain(|o| o.url != f.url);
            feeds.push(f.clone());
        }
        Change::Removed(url) => {
            if let Some(feeds) = hosts.get_mut(&host) {
                feeds.retain(|o| &o.url != url);
                if feeds.is_empty() {
                    hosts.remove(&host);
                }
            }
        }
    }
    if is_held {
        let _ = changes.send(change);
        if !hosts.contains_key(&host)
            && let Some(at) = held.iter().position(|l| l.host == host)
        {
            let l = held.swap_remove(at);
            if let Err(e) = leases.release(&l.host, l.revision).await {
                warn!(host = %l.host, error = %e, "Could not release a host lease; it expires on its own.");
            }
            info!(host = %l.host, "Released a host that has no feed left.");
        }
    }
    new_host && hosts.contains_key(&host)
}

/// Gives up the leases in `held`, so that other fetchers need not wait for them to expire.
pub async fn release_hosts(leases: &Leases, held: &[Held]) {
    for l in held {
        if let Err(e) = leases.release(&l.host, l.revision).await {
            warn!(host = %l.host, error = %e, "Could not release a host lease; it expires on its own.");
        }
    }
}

/// Publishes every report from `reports` to the polls stream, waiting for the broker's ack of
/// each (so it is durable before the feed's validators are saved), then hands it, without its
/// entries, to `forward` (the fetcher's own sieve, which keeps its feed states), and the
/// validators and boilerplate of a full fetch to `handovers` ([`handover::write()`]). Returns
/// the number published, when `reports` closes.
pub async fn publish_reports(
    js: jetstream::Context,
    mut reports: mpsc::Receiver<PollReport>,
    forward: Option<mpsc::Sender<PollReport>>,
    handovers: Option<mpsc::UnboundedSender<Handover>>,
) -> Result<u64, ClusterError> {
    let mut published = 0;
    while let Some(mut report) = reports.recv().await {
        let message = wire::encode(&report);
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            wire::message_id(&report).as_str(),
        );
        let subject = wire::subject(&report);
        // The broker may be electing a new stream leader (a node stopped) or be away for a
        // while: the report waits, and is published again until the broker acks it. A repeat
        // it had already stored carries the same Nats-Msg-Id and is dropped.
        let message = bytes::Bytes::from(message);
        let mut delay = RETRY_FIRST;
        loop {
            let acked = match js
                .publish_with_headers(subject.clone(), headers.clone(), message.clone())
                .await
            {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match acked {
                Ok(()) => break,
                Err(e) => {
                    warn!(feed = %report.feed.url, error = %e, retry_in_ms = delay.as_millis() as u64, "Could not publish a poll report; trying again.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
        published += 1;
        if let (
            Some(to),
            PollOutcome::Fetched {
                validators,
                boilerplate,
                ..
            },
        ) = (&handovers, &report.outcome)
        {
            let _ = to.send(Handover {
                url: report.feed.url.clone(),
                etag: validators.etag.clone(),
                last_modified: validators.last_modified.clone(),
                boilerplate: boilerplate.clone(),
            });
        }
        if let Some(forward) = &forward {
            if let PollOutcome::Fetched { entries, .. } = &mut report.outcome {
                entries.clear();
            }
            if forward.send(report).await.is_err() {
                break;
            }
        }
    }
    Ok(published)
}

/// The pseudo-host whose lease makes a sieve the leader.
pub const LEADER: &str = "feedsieve:sieve-leader";

/// Holds or waits for the sieve leadership, every third of `ttl` until `stop`: a sieve that
/// takes the lease leads (publishes), one that finds it held stands by, and one that loses it
/// (it could not renew within the TTL) stops publishing at once. Releases it at the end.
pub async fn lead(
    leases: Leases,
    me: String,
    leader: Arc<std::sync::atomic::AtomicBool>,
    ttl: Duration,
    stop: CancellationToken,
) {
    let mut held: Option<u64> = None;
    loop {
        held = match held {
            None => match leases.take(LEADER, &me).await {
                Ok(Some(revision)) => {
                    info!(member = %me, "This sieve leads: it publishes the articles.");
                    Some(revision)
                }
                Ok(None) => None,
                Err(e) => {
                    warn!(error = %e, "Could not try for the sieve leadership; trying again.");
                    None
                }
            },
            Some(revision) => match leases.renew(LEADER, &me, revision).await {
                Ok(Some(revision)) => Some(revision),
                Ok(None) => {
                    warn!(member = %me, "Lost the sieve leadership; standing by.");
                    None
                }
                Err(e) => {
                    warn!(error = %e, "Could not renew the sieve leadership; trying again.");
                    Some(revision)
                }
            },
        };
        leader.store(held.is_some(), Ordering::SeqCst);
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(ttl / 3) => {}
        }
    }
    leader.store(false, Ordering::SeqCst);
    if let Some(revision) = held {
        let _ = leases.release(LEADER, revision).await;
    }
}

/// The name of this sieve's durable consumer: stable across restarts of the same sieve (its
/// host and data directory), distinct between sieves.
pub fn consumer_name(data_dir: &std::path::Path) -> String {
    let dir = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let key = format!("{}\0{}", hostname(), dir.display());
    format!(
        "{SIEVE_CONSUMER}-{:016x}",
        xxhash_rust::xxh3::xxh3_64(key.as_bytes())
    )
}

/// What the intake did.
#[derive(Debug, Default, Clone, Copy)]
pub struct IntakeStats {
    /// Reports read from the stream and handed to the sieve.
    pub reports: u64,
    /// Messages that were not poll reports (dropped, with a warning each).
    pub unreadable: u64,
}

/// The sieve's intake: what [`intake`] works with.
pub struct Intake {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// This process's sieve.
    pub reports: mpsc::Sender<PollReport>,
    /// The sieve's count of reports committed.
    pub handled: Arc<AtomicU64>,
    /// The store the sieve writes.
    pub store: Store,
    /// This sieve's durable consumer: its own position in the polls stream.
    pub consumer: String,
    /// Whether this sieve leads (publishes the articles); see [`lead`].
    pub leader: Arc<std::sync::atomic::AtomicBool>,
    /// `run --once`: end once the sources are done and the stream is drained.
    pub once: bool,
    /// Cancelled when every local source of reports has finished.
    pub sources_done: CancellationToken,
    /// Cancelled to stop.
    pub stop: CancellationToken,
}

/// Reads poll reports from the sieve's durable consumer in stream order and hands them to the
/// sieve; acknowledges them once the sieve's count of reports committed covers them and the
/// store is flushed; and, while this sieve leads, publishes the new records through the
/// outbox. Every sieve, leader or standby, takes in every report into its own store: the
/// judgement is the same in the same order, so a standby holds the same articles under the
/// same seqs, and when it takes the lead its outbox goes on from the last article the old
/// leader published. Ends when `stop` is cancelled, or, with `once`, when `sources_done` is
/// cancelled and the stream has nothing left for it.
pub async fn intake(i: Intake) -> Result<IntakeStats, ClusterError> {
    let Intake {
        js,
        reports,
        handled,
        store,
        consumer: name,
        leader,
        once,
        sources_done,
        stop,
    } = i;
    let setup = |e: String| ClusterError::Setup {
        what: "consumer",
        name: SIEVE_CONSUMER,
        message: e,
    };
    let stream = js
        .get_stream(POLLS)
        .await
        .map_err(|e| setup(e.to_string()))?;
    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                // Acks wait for the sieve's commit and a flush: seconds, not minutes.
                ack_wait: Duration::from_secs(120),
                max_ack_pending: 4096,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| setup(e.to_string()))?;
    let mut outbox = Publishing {
        js: js.clone(),
        leader,
        outbox: None,
    };
    let mut stats = IntakeStats::default();
    let mut waiting: VecDeque<(u64, jetstream::Message)> = VecDeque::new();
    loop {
        if stop.is_cancelled() {
            break;
        }
        // Whether every source had finished before this fetch: then an empty fetch means the
        // stream is drained.
        let sources_were_done = sources_done.is_cancelled();
        let mut batch = match consumer
            .fetch()
            .max_messages(INTAKE_BATCH)
            .expires(Duration::from_millis(250))
            .messages()
            .await
        {
            Ok(batch) => batch,
            Err(e) => {
                // A node stopped, or a consumer leader is being elected: try again.
                warn!(error = %e, "Could not fetch poll reports; trying again.");
                tokio::time::sleep(RETRY_FIRST * 5).await;
                continue;
            }
        };
        let mut got = 0;
        while let Some(m) = batch.next().await {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "A fetch of poll reports ended early; trying again.");
                    break;
                }
            };
            got += 1;
            match wire::decode(&m.payload) {
                Ok(report) => {
                    if reports.send(report).await.is_err() {
                        return Ok(stats);
                    }
                    stats.reports += 1;
                    waiting.push_back((stats.reports, m));
                }
                Err(e) => {
                    stats.unreadable += 1;
                    warn!(error = %e, "Dropped a message of the polls stream that is not a poll report.");
                    let _ = m.ack_with(AckKind::Term).await;
                }
            }
        }
        settle(&mut waiting, &handled, &store, &mut outbox).await?;
        if once && got == 0 && sources_were_done {
            // Caught up: wait for the sieve to commit what it was given, then settle it.
            while handled.load(Ordering::SeqCst) < stats.reports {
                if store.is_failed() {
                    return Err(failed_store());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            settle(&mut waiting, &handled, &store, &mut outbox).await?;
            break;
        }
    }
    Ok(stats)
}

fn failed_store() -> ClusterError {
    ClusterError::Publish {
        name: POLLS,
        message: "the store refused a write; the reports not acknowledged are delivered again \
                  after a restart"
            .into(),
    }
}

/// The outbox, open while this sieve leads: opened when it takes the lead (reading where the
/// streams end, as the last leader left them), dropped when it loses it.
struct Publishing {
    js: jetstream::Context,
    leader: Arc<std::sync::atomic::AtomicBool>,
    outbox: Option<Outbox>,
}

impl Publishing {
    async fn publish(&mut self, store: &Store) {
        if !self.leader.load(Ordering::SeqCst) {
            self.outbox = None;
            return;
        }
        if self.outbox.is_none() {
            match Outbox::open(self.js.clone()).await {
                Ok(o) => self.outbox = Some(o),
                Err(e) => {
                    warn!(error = %e, "Could not read where the articles stream ends; trying again.");
                    return;
                }
            }
        }
        if let Some(o) = &mut self.outbox
            && let Err(e) = o.publish(store).await
        {
            warn!(error = %e, "Could not publish the new articles; trying again.");
        }
    }
}

/// Flushes the store, acknowledges the reports the sieve has committed, and publishes the new
/// records (also when there is nothing to acknowledge). Nothing is acknowledged once the store
/// has failed: those reports come again.
async fn settle(
    waiting: &mut VecDeque<(u64, jetstream::Message)>,
    handled: &AtomicU64,
    store: &Store,
    outbox: &mut Publishing,
) -> Result<(), ClusterError> {
    let done = handled.load(Ordering::SeqCst);
    if waiting.front().is_none_or(|(n, _)| *n > done) {
        // Nothing to acknowledge, but a sieve that just took the lead may hold articles the
        // last leader did not publish.
        outbox.publish(store).await;
        return Ok(());
    }
    let s = store.clone();
    let synced = tokio::task::spawn_blocking(move || s.sync())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if synced.is_err() || store.is_failed() {
        return Err(failed_store());
    }
    while let Some((n, m)) = waiting.front() {
        if *n > done {
            break;
        }
        // Acknowledged for sure (`double_ack`), or kept to try again at the next settle; a
        // report whose ack was lost comes back and is skipped as already stored.
        if let Err(e) = m.double_ack().await {
            warn!(error = %e, "Could not acknowledge a poll report; trying again.");
            break;
        }
        waiting.pop_front();
    }
    outbox.publish(store).await;
    Ok(())
}

/// This process's part in a cluster, as `feedsieve run` wires it: the connection, the role,
/// the feeds it polls (those of the hosts it holds leases on) and the leases.
pub struct Part {
    js: jetstream::Context,
    leases: Leases,
    members: super::Members,
    /// The cluster's feed list, the changes after the snapshot `join` read, and this process's
    /// writes to it (both taken by `start`).
    feed_list: (FeedBucket, std::sync::Mutex<Option<ListFollow>>),
    /// The feeds' handovers between fetchers.
    states: StateBucket,
    /// This process's store (a fetcher adopts handovers into it).
    store: Store,
    /// Every feed listed when it joined: the hosts a fetcher may come to hold.
    all_feeds: Vec<FeedConfig>,
    role: Role,
    me: String,
    lease_ttl: Duration,
    held: Vec<Held>,
    /// This sieve's durable consumer.
    consumer: String,
    /// Whether this sieve leads now.
    leader: Arc<std::sync::atomic::AtomicBool>,
    /// The feeds this process polls: none for a sieve.
    pub feeds: Vec<FeedConfig>,
}

/// The feed list's changes after the snapshot [`Part::join`] read, and this process's writes
/// to it.
type ListFollow = (kv::Watch, mpsc::UnboundedReceiver<SharedWrite>);

/// What `feedsieve run` hands a cluster part.
pub struct Wiring {
    /// The scheduler's reports.
    pub polled: mpsc::Receiver<PollReport>,
    /// This process's sieve.
    pub reports: mpsc::Sender<PollReport>,
    /// The sieve's progress (reports handled).
    pub handled: Arc<AtomicU64>,
    /// The store.
    pub store: Store,
    /// Feed changes for the scheduler: the feeds of hosts a running fetcher gains or loses.
    pub changes: mpsc::UnboundedSender<Change>,
    /// The changes of the feed list (the catalog's), which a running fetcher's lease keeper
    /// takes; `None` for a sieve.
    pub listed: Option<mpsc::UnboundedReceiver<Change>>,
    /// The catalog, which follows the cluster's feed list.
    pub catalog: Arc<Catalog>,
}

/// The tasks [`Part::start`] spawned, for [`Part::finish`].
pub struct Tasks {
    publisher: Option<tokio::task::JoinHandle<Result<u64, ClusterError>>>,
    intake: Option<tokio::task::JoinHandle<Result<IntakeStats, ClusterError>>>,
    intake_stop: CancellationToken,
    keeper: Option<(tokio::task::JoinHandle<Vec<Held>>, CancellationToken)>,
    leading: Option<(tokio::task::JoinHandle<()>, CancellationToken)>,
    /// The handover writer, which ends once the publisher has.
    handing: Option<tokio::task::JoinHandle<()>>,
    /// The feed list's mirror and writer.
    listing: (
        tokio::task::JoinHandle<()>,
        tokio::task::JoinHandle<()>,
        CancellationToken,
    ),
}

impl Part {
    /// Connects, sets up the shared streams and buckets, moves `catalog` onto the cluster's
    /// feed list ([`Catalog::share`]), and (for a fetcher) takes the leases it can among the
    /// list's hosts.
    pub async fn join(
        c: &ClusterConfig,
        catalog: &Catalog,
        store: &Store,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Part> {
        let layout = super::Layout {
            replicas: c.replicas,
            lease_ttl: c.lease_ttl,
            ..super::Layout::default()
        };
        // NATS may be starting too (a node restarting, a cluster electing its leaders): keep
        // trying for a while, saying why, before giving up.
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(500);
        let setup = || async {
            let cluster = super::connect(&c.nats, layout).await?;
            let bucket = FeedBucket::open(&cluster.js, c.replicas).await?;
            let states = StateBucket::open(&cluster.js, c.replicas).await?;
            let (listed, watch) = bucket.snapshot().await?;
            Ok::<_, ClusterError>((cluster, (bucket, states), listed, watch))
        };
        let (cluster, (bucket, states), listed, watch) = loop {
            match setup().await {
                Ok(joined) => break joined,
                Err(e) if started.elapsed() < JOIN_PATIENCE => {
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "Cannot join the cluster yet; trying again.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
                Err(e) => return Err(e.into()),
            }
        };
        let me = member_id();
        if c.role != Role::Sieve {
            cluster.members.heartbeat(&me).await?;
        }
        let (writes, to_write) = mpsc::unbounded_channel();
        let queued = catalog.share(listed, writes)?;
        let all_feeds: Vec<FeedConfig> = catalog.list()?.into_iter().map(|f| f.config).collect();
        info!(
            feeds = all_feeds.len(),
            writes = queued,
            "Read the cluster's feed list."
        );
        let (feeds, held) = match c.role {
            Role::Sieve => (Vec::new(), Vec::new()),
            Role::Fetcher | Role::All => {
                let (feeds, held) = take_hosts(&cluster.leases, &me, &all_feeds).await?;
                let adopted = handover::adopt(&states, store, &feeds).await;
                info!(
                    feeds = feeds.len(),
                    validators = adopted,
                    "Took over the validators of the feeds on the hosts taken."
                );
                (feeds, held)
            }
        };
        info!(role = ?c.role, member = %me, nats = %c.nats, "Joined the cluster.");
        Ok(Part {
            js: cluster.js,
            leases: cluster.leases,
            members: cluster.members,
            feed_list: (bucket, std::sync::Mutex::new(Some((watch, to_write)))),
            states,
            store: store.clone(),
            all_feeds,
            role: c.role,
            me,
            lease_ttl: c.lease_ttl,
            held,
            consumer: consumer_name(data_dir),
            leader: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            feeds,
        })
    }

    /// Starts the role's tasks on `wiring`.
    pub fn start(&self, mode: Mode, wiring: Wiring, stop: &CancellationToken) -> Tasks {
        let Wiring {
            polled,
            reports,
            handled,
            store,
            changes,
            listed,
            catalog,
        } = wiring;
        let sources_done = CancellationToken::new();
        let intake_stop = stop.child_token();
        // The handovers of what this fetcher fetches, written as the publisher hands them on.
        let (handovers, handed) = mpsc::unbounded_channel();
        let handing = match self.role {
            Role::Sieve => None,
            Role::Fetcher | Role::All => {
                Some(tokio::spawn(handover::write(self.states.clone(), handed)))
            }
        };
        let (publisher, intake) = match self.role {
            Role::Fetcher => (
                Some(tokio::spawn(publish_reports(
                    self.js.clone(),
                    polled,
                    Some(reports),
                    Some(handovers),
                ))),
                None,
            ),
            Role::Sieve => {
                drop(polled);
                sources_done.cancel();
                (None, Some(reports))
            }
            Role::All => {
                let js = self.js.clone();
                let done = sources_done.clone();
                let publisher = tokio::spawn(async move {
                    let published = publish_reports(js, polled, None, Some(handovers)).await;
                    done.cancel();
                    published
                });
                (Some(publisher), Some(reports))
            }
        };
        let leading = intake.as_ref().map(|_| {
            let stop = CancellationToken::new();
            let task = tokio::spawn(lead(
                self.leases.clone(),
                self.me.clone(),
                self.leader.clone(),
                self.lease_ttl,
                stop.clone(),
            ));
            (task, stop)
        });
        let intake = intake.map(|reports| {
            tokio::spawn(self::intake(Intake {
                js: self.js.clone(),
                reports,
                handled,
                store,
                consumer: self.consumer.clone(),
                leader: self.leader.clone(),
                once: mode == Mode::Once,
                sources_done,
                stop: intake_stop.clone(),
            }))
        });
        let keeper = match listed {
            Some(listed) if mode == Mode::Forever && self.role != Role::Sieve => {
                let stop = CancellationToken::new();
                let task = tokio::spawn(keep_leases(
                    (
                        self.leases.clone(),
                        self.members.clone(),
                        self.states.clone(),
                        self.store.clone(),
                    ),
                    self.me.clone(),
                    self.held.clone(),
                    (self.all_feeds.clone(), listed),
                    changes,
                    self.lease_ttl,
                    stop.clone(),
                ));
                Some((task, stop))
            }
            _ => None,
        };
        let listing = {
            let stop = CancellationToken::new();
            let taken = self
                .feed_list
                .1
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            let (watch, to_write) = match taken {
                Some(t) => (Some(t.0), t.1),
                // Started twice: nothing left to follow or write.
                None => (None, mpsc::unbounded_channel().1),
            };
            let bucket = self.feed_list.0.clone();
            let mirror = match watch {
                Some(watch) => tokio::spawn(super::feeds::mirror(
                    bucket.clone(),
                    watch,
                    catalog,
                    stop.clone(),
                )),
                None => tokio::spawn(async {}),
            };
            let writer = tokio::spawn(super::feeds::write(
                bucket,
                to_write,
                stop.clone(),
                LIST_WRITE_GRACE,
            ));
            (mirror, writer, stop)
        };
        Tasks {
            publisher,
            intake,
            intake_stop,
            keeper,
            leading,
            listing,
            handing,
        }
    }

    /// Once polling has ended: waits for the reports to be published and (for a sieve) taken
    /// in, then (a running fetcher) gives up the host leases.
    pub async fn finish(&self, tasks: Tasks, stop: &CancellationToken) -> anyhow::Result<()> {
        let mut result = Ok(());
        if let Some(p) = tasks.publisher {
            match p.await {
                Ok(Ok(n)) => info!(reports = n, "Published the poll reports."),
                Ok(Err(e)) => result = Err(anyhow::Error::from(e)),
                Err(e) => result = Err(anyhow::anyhow!("the publisher task failed: {e}")),
            }
        }
        if let Some(mut h) = tasks.handing {
            // Each handover is written once or given up; while NATS is away that can take a
            // while, and a handover not written only costs one full fetch.
            if tokio::time::timeout(LIST_WRITE_GRACE, &mut h)
                .await
                .is_err()
            {
                warn!(
                    "Stopping with feed handovers not written; their next fetcher fetches them in full once."
                );
                h.abort();
            }
        }
        if stop.is_cancelled() {
            tasks.intake_stop.cancel();
        }
        if let Some(i) = tasks.intake {
            match i.await {
                Ok(Ok(s)) => info!(
                    reports = s.reports,
                    unreadable = s.unreadable,
                    "Took in the poll reports."
                ),
                Ok(Err(e)) => result = result.and(Err(anyhow::Error::from(e))),
                Err(e) => result = result.and(Err(anyhow::anyhow!("the intake task failed: {e}"))),
            }
        }
        if let Some((task, stop)) = tasks.leading {
            stop.cancel();
            let _ = task.await;
        }
        // A running fetcher that stops hands its hosts over at once. The leases of a `--once`
        // pass are left to expire: a pass started a moment later must not poll them again.
        if let Some((task, stop)) = tasks.keeper {
            stop.cancel();
            let held = task.await.unwrap_or_default();
            release_hosts(&self.leases, &held).await;
        }
        let (mirror, writer, stop) = tasks.listing;
        stop.cancel();
        let _ = mirror.await;
        let _ = writer.await;
        result
    }
}
