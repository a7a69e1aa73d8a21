//! The wiring of `feedsieve run`: open the store, start the API, the sieve and the scheduler, and
//! stop them in order.
//!
//! ```text
//!  scheduler ──spawns──▶ poll tasks ──PollReport (bounded mpsc)──▶ sieve (one blocking thread)
//!                          fetch, parse                               dedup, store
//!  API (axum) ◀──────────────── reads ───────────────────────────────── store
//! ```
//!
//! Start-up, in this order: sled opens; the API listens; systemd hears READY=1; polling starts.
//! The sieve's first job, on its own thread, is loading the dedup indexes (`lookup.bin`, or a
//! rebuild from the log); polls that finish before it is done wait for it in the queue. So a
//! large store is readable at once, and what waits for the indexes is only ingestion.
//!
//! Shutdown (SIGTERM, SIGINT, or the end of a `--once` pass), in this order: the scheduler stops
//! starting polls; polls in flight get [`SHUTDOWN_GRACE`] to finish, then their fetches are
//! cancelled; the sieve drains what was sent to it; sled is flushed; the API stops. Once every
//! handle on the store is gone, [`checkpoint`] lets sled write its recovery snapshot, so that the
//! next start does not replay this run's log. The daemon then exits 0. SIGHUP reloads the config
//! (see `Live::reload`).
//!
//! With `[cluster]`, the poll reports go through NATS JetStream instead (`crate::cluster::roles`):
//! a fetcher publishes them and keeps only its feeds' states, a sieve takes them in from the
//! stream in order and publishes what it stores; `all` does both, through the stream.
//!
//! While it runs, the daemon writes `daemon.json` (its pid and the API's bound address) into the
//! data directory, so that CLI commands find the API when the database is locked.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::api;
use crate::catalog::Catalog;
use crate::config::{Config, FeedConfig};
use crate::fetch::Fetcher;
use crate::poll::Poller;
use crate::scheduler::{LoopStats, Mode, Scheduler};
use crate::service::{self, Heartbeat};
use crate::sieve::{Sieve, SieveSettings, Summary};
use crate::store::{self, Store};
use crate::telemetry::Metrics;

/// How long polls in flight may run on after a shutdown request before they are cancelled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Reports waiting for the sieve before poll tasks have to wait their turn. The sieve takes
/// what is waiting in one commit (up to `sieve::MAX_GROUP`, 8), so 8 waiting keep it busy and
/// hold, with the group being stored, as many reports as 16 did before groups; 64 held 6 MB
/// more at the peak of a 10,000-feed cycle for no speed (README, "One polling cycle over
/// 10,000 feeds").
const SIEVE_QUEUE: usize = 8;

/// What a running daemon tells CLI commands about itself (`daemon.json` in the data directory).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Process id.
    pub pid: u32,
    /// The address the API is bound to.
    pub listen: SocketAddr,
}

/// Where a running daemon's [`DaemonInfo`] lives.
pub fn daemon_info_path(data_dir: &Path) -> PathBuf {
    data_dir.join("daemon.json")
}

/// Reads the running daemon's info, if it left any.
pub fn read_daemon_info(data_dir: &Path) -> Option<DaemonInfo> {
    let bytes = std::fs::read(daemon_info_path(data_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Opens the store for `config`. Its dedup indexes are loaded later, by the sieve (see [`run`]).
pub fn open_store(config: &Config) -> anyhow::Result<Store> {
    Ok(Store::open(&config.data_dir, &store_options(config))?)
}

/// The store options `config` asks for.
fn store_options(config: &Config) -> store::Options {
    store::Options {
        max_distance: config.dedup.max_distance,
        ..store::Options::default()
    }
}

/// Writes sled's recovery snapshot once the daemon has let go of the store (see
/// [`Store::checkpoint`]), so that the next start does not replay this run's writes. A failure
/// only costs the next start time, so it is logged, not returned.
pub fn checkpoint(config: &Config) {
    match Store::checkpoint(&config.data_dir, &store_options(config)) {
        Ok(took) => info!(
            elapsed_ms = took.as_millis() as u64,
            "Database checkpointed for a fast next start."
        ),
        Err(e) => {
            warn!(error = %e, "Could not checkpoint the database; the next start replays its log.")
        }
    }
}

/// Reads the API token when the config names a token file.
pub fn read_token(config: &Config) -> anyhow::Result<Option<String>> {
    match &config.api.token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the API token file {}", path.display()))?;
            let token = token.trim().to_string();
            anyhow::ensure!(
                !token.is_empty(),
                "the API token file {} is empty",
                path.display()
            );
            Ok(Some(token))
        }
        None => Ok(None),
    }
}

/// Reads the API token, first writing a new random one (mode 0600) when the config names a
/// token file that does not exist yet, so that a fresh install has a working token at once.
pub fn ensure_token(config: &Config) -> anyhow::Result<Option<String>> {
    let Some(path) = &config.api.token_file else {
        return Ok(None);
    };
    if !path.exists() {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let mut random = [0u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut random))
            .context("cannot read /dev/urandom to make an API token")?;
        let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create the API token file {}", path.display()))?;
        writeln!(file, "{token}")
            .with_context(|| format!("cannot write the API token file {}", path.display()))?;
        info!(file = %path.display(), "Wrote a new API token (api.token_file did not exist).");
    }
    read_token(config)
}

/// How long `run` waits for a database held by a short-lived command (a CLI read) to be free.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Opens the store for the daemon, waiting a little when a CLI command holds it for a moment.
async fn open_store_waiting(config: &Config) -> anyhow::Result<Store> {
    let started = std::time::Instant::now();
    loop {
        match open_store(config) {
            Err(e)
                if started.elapsed() < LOCK_WAIT
                    && matches!(
                        e.downcast_ref::<store::StoreError>(),
                        Some(store::StoreError::Locked { .. })
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Runs the daemon (or one pass with [`Mode::Once`]) until `shutdown` completes; each signal
/// from `hangups` reloads the config file.
pub async fn run(
    config: &Config,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
    hangups: Option<Signal>,
) -> anyhow::Result<Summary> {
    let store = open_store_waiting(config).await?;
    let metrics = Arc::new(Metrics::default());

    // The feed list: the config file's feeds and those added at run time; changes made through
    // the API reach the scheduler at once.
    let (changes, changes_inbox) = mpsc::unbounded_channel();
    // In a cluster, the list's changes go to the lease keeper instead, which passes on those
    // of the hosts it holds, and sends the feeds of hosts it gains or loses
    // (`cluster::roles::keep_leases`); a sieve polls nothing.
    let lease_changes = changes.clone();
    let (listed, listed_inbox) = mpsc::unbounded_channel();
    let catalog = Catalog::new(config.feeds.clone(), store.clone());
    let catalog = Arc::new(match &config.cluster {
        None => catalog.with_changes(changes),
        Some(_) => catalog.with_changes(listed),
    });

    // The API: changes need the token; off loopback, everything does (the config ensures there
    // is one).
    let token = ensure_token(config)?;
    let loopback = config.api.listen.ip().is_loopback();
    let api_stop = CancellationToken::new();
    let api = match tokio::net::TcpListener::bind(config.api.listen).await {
        Ok(listener) => {
            let bound = listener
                .local_addr()
                .context("cannot read the API's bound address")?;
            let state = api::ApiState::new(store.clone(), catalog.clone(), token, !loopback)
                .with_metrics(metrics.clone())
                .with_shutdown(api_stop.clone());
            let stop = api_stop.clone();
            let server = axum::serve(listener, api::router(state))
                .with_graceful_shutdown(stop.cancelled_owned());
            info!(listen = %bound, "API listening.");
            let info = DaemonInfo {
                pid: std::process::id(),
                listen: bound,
            };
            // Written aside and renamed into place: a command (or a test) that sees the file
            // never reads it half written.
            let path = daemon_info_path(&config.data_dir);
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&info)?)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(tokio::spawn(async move { server.await }))
        }
        Err(e) if mode == Mode::Once => {
            warn!(listen = %config.api.listen, error = %e, "API not started; reading commands wait until this pass ends.");
            None
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot listen on {} (api.listen)", config.api.listen));
        }
    };

    // In a cluster (`[cluster]`): the shared streams and feed list, and which feeds this
    // process polls. The API answers while this waits for NATS; a feed added meanwhile is
    // kept in the store and moves into the shared list as the catalog joins it.
    let cluster = match &config.cluster {
        None => None,
        Some(c) => {
            match crate::cluster::roles::Part::join(c, &catalog, &store, &config.data_dir).await {
                Ok(part) => Some(part),
                Err(e) => {
                    // No daemon after all: the API stops and says so.
                    api_stop.cancel();
                    if let Some(api) = api {
                        let _ = api.await;
                        let _ = std::fs::remove_file(daemon_info_path(&config.data_dir));
                    }
                    return Err(e);
                }
            }
        }
    };
    let feeds: Vec<FeedConfig> = match &cluster {
        Some(part) => part.feeds.clone(),
        None => catalog.list()?.into_iter().map(|f| f.config).collect(),
    };

    // The sieve: the one writer, on its own thread.
    let (reports, inbox) = mpsc::channel(SIEVE_QUEUE);
    let (sieve_settings, sieve_updates) = watch::channel(SieveSettings::from_config(config));
    let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut sieve = {
        let store = store.clone();
        let handled = handled.clone();
        let settings = SieveSettings::from_config(config);
        let metrics = metrics.clone();
        // The dedup indexes load (or, the first time, build) here, in the background: the API
        // answers and systemd hears READY while they do, and polls queue for the sieve.
        tokio::task::spawn_blocking(move || -> anyhow::Result<Summary> {
            let started = std::time::Instant::now();
            let writer = store.writer()?;
            info!(
                articles = store.prepare_lookup()?,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Dedup indexes ready."
            );
            Ok(Sieve::new(writer, settings)
                .with_metrics(metrics)
                .with_updates(sieve_updates)
                .with_progress(handled)
                .run_blocking(inbox))
        })
    };
    let mut sieve_ended = None;

    // Group commit: articles become visible to readers once they are on disk (Store::sync).
    let syncer_stop = CancellationToken::new();
    let syncer = tokio::spawn(sync_loop(store.clone(), syncer_stop.clone()));

    // The scheduler and its poll tasks.
    let fetcher = Fetcher::new(&config.poll)?;
    let (poll_settings, poll_updates) = watch::channel(config.poll.clone());
    let heartbeat = Heartbeat::default();
    let scheduler = Scheduler::new(
        feeds.clone(),
        &config.poll,
        Poller::new(fetcher, store.clone()),
    )
    .with_changes(changes_inbox)
    .with_settings(poll_updates)
    .with_metrics(metrics.clone());
    let watchdog_stop = CancellationToken::new();
    let scheduler = match service::watchdog_interval() {
        Some(interval) if mode == Mode::Forever => {
            service::spawn_watchdog(interval, heartbeat.clone(), watchdog_stop.clone());
            // Beats at a quarter of the interval (at most every second): the watchdog pings at
            // half of it, when the last beat is no older than that.
            let every = (interval / 4).min(Duration::from_secs(1));
            scheduler.with_heartbeat(heartbeat, every)
        }
        _ => scheduler,
    };
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let tracker = TaskTracker::new();
    info!(feeds = feeds.len(), mode = ?mode, "Polling.");
    service::notify("READY=1");
    let mut stats = LoopStats::default();
    let mut live = Live {
        config: config.clone(),
        catalog: catalog.clone(),
        poll: poll_settings,
        sieve: sieve_settings,
    };
    let mut hangups = hangups;
    let (polled, cluster_tasks) = match &cluster {
        None => {
            drop((lease_changes, listed_inbox));
            (reports, None)
        }
        Some(part) => {
            let (polled, published) = mpsc::channel(SIEVE_QUEUE);
            let wiring = crate::cluster::roles::Wiring {
                polled: published,
                reports,
                handled,
                store: store.clone(),
                changes: lease_changes,
                listed: Some(listed_inbox),
                catalog: catalog.clone(),
            };
            let tasks = part.start(mode, wiring, &stop);
            (polled, Some(tasks))
        }
    };
    let polling = scheduler.run(mode, polled, stop.clone(), abort.clone(), &tracker);
    tokio::pin!(polling);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            s = &mut polling => {
                stats = s;
                break;
            }
            () = &mut shutdown => {
                info!("Shutting down: finishing polls in flight.");
                service::notify("STOPPING=1");
                stop.cancel();
                break;
            }
            ended = &mut sieve => {
                // The sieve only ends early when it failed (it could not load its indexes):
                // stop, and report why.
                error!("The sieve stopped; shutting down.");
                stop.cancel();
                abort.cancel();
                sieve_ended = Some(ended);
                break;
            }
            Some(()) = next_hangup(&mut hangups) => {
                service::notify("RELOADING=1");
                live.reload();
                service::notify("READY=1");
            }
        }
    }
    watchdog_stop.cancel();
    // The scheduler returns promptly once stopped; its stats are the peak per host.
    if stop.is_cancelled() {
        stats = polling.await;
    }

    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!(grace = ?SHUTDOWN_GRACE, "Polls still running after the grace period; cancelling them.");
        abort.cancel();
        tracker.wait().await;
    }
    if let (Some(part), Some(tasks)) = (&cluster, cluster_tasks) {
        part.finish(tasks, &stop).await?;
    }
    let ended = match sieve_ended {
        Some(ended) => ended,
        None => sieve.await,
    };
    let sieved = ended.context("the sieve thread failed").and_then(|r| r);
    syncer_stop.cancel();
    let _ = syncer.await;
    let flushed = store.flush();
    if let Ok(bytes) = &flushed {
        info!(bytes, "Database flushed.");
    }
    api_stop.cancel();
    if let Some(api) = api {
        match api.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "API server stopped with an error."),
            Err(e) => warn!(error = %e, "API server task failed."),
        }
        let _ = std::fs::remove_file(daemon_info_path(&config.data_dir));
    }
    let mut summary = sieved?;
    flushed?;
    summary.peak_per_host = stats.peak_per_host;
    Ok(summary)
}

/// How often new articles are written to disk and made visible to readers: the most a reader
/// waits for an article, and what the group commit batches. Each sled flush seals a write
/// buffer, and flushing often costs memory: on the 1,000-feed peer workload pass 1 peaked at
/// 223 MB with 50 ms, 158 MB with 200 ms and 148 MB with 500 ms, in the same time; at 10,000
/// feeds, 431 MB with 200 ms and 343 MB with 500 ms (280 MB with sled's own 500 ms flush and
/// no group commit, which could take back what readers saw).
const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Syncs the store every [`SYNC_EVERY`] while articles arrive, until `stop`.
async fn sync_loop(store: Store, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.sync()).await {
            Ok(Ok(())) => {}
            // The store is marked unwritable: the sieve stops and reopens it once it can.
            Ok(Err(e)) if e.is_io() => {
                error!(error = %e, "The disk refused a write: ingestion stops until it takes writes again; reads go on.")
            }
            Ok(Err(e)) => {
                warn!(error = %e, "Could not write new articles to disk; will try again.")
            }
            Err(e) => warn!(error = %e, "The sync task failed; will try again."),
        }
    }
}

/// What a reload can change while the daemon runs, and where each part goes.
struct Live {
    config: Config,
    catalog: Arc<Catalog>,
    poll: watch::Sender<crate::config::PollConfig>,
    sieve: watch::Sender<SieveSettings>,
}

impl Live {
    /// Reads the config file again and applies it: feeds added, removed and changed, `[poll]`,
    /// `[dedup]` thresholds and `[retention]`. A config with errors changes nothing. Keys that
    /// only take effect at start (`data_dir`, `[api]`, `dedup.max_distance`) keep their running
    /// values, with a warning.
    fn reload(&mut self) {
        let path = self.config.path.clone();
        info!(config = %path.display(), "Got SIGHUP: reloading the config.");
        let mut new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "Reload refused: the config has an error; the running config stays.");
                return;
            }
        };
        let old = &self.config;
        let mut restart_only = Vec::new();
        if new.data_dir != old.data_dir {
            restart_only.push("data_dir");
            new.data_dir = old.data_dir.clone();
        }
        if new.api.listen != old.api.listen || new.api.token_file != old.api.token_file {
            restart_only.push("[api]");
            new.api = old.api.clone();
        }
        if new.dedup.max_distance != old.dedup.max_distance {
            restart_only.push("dedup.max_distance");
            new.dedup.max_distance = old.dedup.max_distance;
        }
        if !restart_only.is_empty() {
            warn!(keys = %restart_only.join(", "), "These settings take effect at the next restart; the running values stay.");
        }
        let (added, removed, changed) = match self.catalog.replace_config(new.feeds.clone()) {
            Ok(counts) => counts,
            Err(e) => {
                error!(error = %e, "Reload failed reading the feed list; the running config stays.");
                return;
            }
        };
        self.poll.send_if_modified(|poll| {
            let differs = *poll != new.poll;
            if differs {
                *poll = new.poll.clone();
            }
            differs
        });
        let sieve = SieveSettings::from_config(&new);
        self.sieve.send_if_modified(|s| {
            let differs = *s != sieve;
            if differs {
                *s = sieve;
            }
            differs
        });
        info!(
            feeds = new.feeds.len(),
            added, removed, changed, "Config reloaded."
        );
        self.config = new;
    }
}

/// The next SIGHUP, or never when none is listened for.
async fn next_hangup(hangups: &mut Option<Signal>) -> Option<()> {
    match hangups {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Registers the SIGHUP handler now (before start-up, so that a reload request during start-up
/// does not kill the process, SIGHUP's default action). `None`, with a warning, if it cannot.
pub fn hangup_signal() -> Option<Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            warn!(error = %e, "Cannot install a SIGHUP handler; reload by restarting.");
            None
        }
    }
}

/// Registers SIGTERM and SIGINT handlers now, and returns a future that completes (logging which)
/// when either arrives. Registering before anything else starts means a signal during start-up
/// is a clean stop, not the default action of killing the process.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => info!("Got SIGTERM."),
                    _ = int.recv() => info!("Got SIGINT."),
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "Cannot install signal handlers; stop with Ctrl-C.");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
