//! Store: the sled database that holds every unique article, the duplicate records and each
//! feed's polling state, the body log beside it that holds the records' values ([`bodies`]),
//! and the dedup indexes over them, kept in memory ([`lookup`]).
//!
//! In: verdicts from the sieve. Out: ordered, resumable reads for the CLI and the API.
//!
//! # Promises
//! - **Order.** Articles and duplicates each get a sequence number from a counter kept in the
//!   database and written in the same batch as the record, so seq is strictly increasing and
//!   never reused for a record a reader was shown, even across crashes.
//! - **Atomicity.** A commit's articles (their group in the seq log, [`seqlog`]), its
//!   duplicates with their `also_seen` links, and the counters are one sled batch on one tree
//!   ([`keys`] shows the layout): after a crash an article is either stored or absent. Its
//!   value is appended to the body log before that batch is applied, and synced before sled is
//!   flushed; a record whose value a power loss took anyway is removed whole when the store
//!   opens (no reader saw it). The dedup indexes are derived from the records and rebuilt from
//!   them when in doubt.
//! - **One writer.** All writes go through the single [`Writer`], owned by the sieve, so a dedup
//!   check and the insert that follows it cannot interleave with another insert. The exact keys
//!   (guid, url, content) are checked again just before the write as a second line.
//! - **Durability.** Readers see an article only once it is on disk: [`Store::sync`] (the
//!   daemon's group commit, every 500 ms while articles arrive) and [`Store::flush`] write sled's
//!   buffers out and only then raise the visible seq. So a crash, even `kill -9`, never takes
//!   back an article that a reader was shown; it can only lose what nobody saw yet, which the
//!   next poll fetches again. The indexes file only ever holds articles already on disk, and
//!   opening indexes what came after it.
//! - **One process.** A lock file in the data directory admits one process at a time; a second
//!   one gets [`StoreError::Locked`] and the CLI goes through the running daemon's API instead.
//!
//! # Costs
//! Measured on sled 0.34 (see README): a point read is 0.2 µs when the key is absent and about
//! 1 µs when present while the database fits sled's cache, but tens of microseconds once it
//! does not, and every key written costs 4 to 8 µs. So sled holds only what must be durable:
//! since format 6 one key per commit for the articles it stores, holding 16-byte pointers into
//! the body log (values of kilobytes made sled copy them again at every node split and
//! consolidation), and every dedup check is answered from memory; sled is read only to confirm
//! a hit.

pub mod bodies;
pub mod fsck;
pub mod keys;
pub mod lookup;
pub mod records;
pub mod retention;
pub mod seqlog;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use chrono::{DateTime, Utc};

use crate::config::FeedConfig;
use crate::dedup::containment::Overlap;
use crate::dedup::fingerprint::Fingerprint;
use crate::dedup::{self, Match};
use crate::parse::Candidate;
use lookup::{Indexed, Lookup};
pub use records::{Article, ArticleKeys, Duplicate, FeedState, FeedStatus, FeedView};

/// Bumped when the on-disk layout changes incompatibly. 2: containment keeps short and long marks.
/// 3: the dedup indexes moved out of sled into [`lookup`] (a format-2 database is migrated by
/// deleting its index keys). 4: article and duplicate values move to the body log ([`bodies`]),
/// sled keeping a pointer (a format-3 database is read as it is: its inline values stay valid,
/// new ones go to the log; an older feedsieve must not open it, as it would not follow the
/// pointers). 5: an item's id gets no `i` key in sled any more; the dedup indexes map it to its
/// article or duplicate ([`lookup`], rebuilt from the records like the rest of them), so a
/// stored article costs one sled key instead of two (a format-3 or 4 database is read as it is:
/// its `i` keys stay valid; an older feedsieve must not open it, as it would not find new items
/// by id). 6: the records one commit stores share one sled key per seq log, a group of body-log
/// pointers ([`seqlog`]), so a stored article no longer costs a sled key of its own (a database
/// of format 3 to 5 is read as it is: its records keep their own keys; an older feedsieve must
/// not open it, as it would not see the groups).
const FORMAT: u64 = 6;
/// Default size of sled's page cache. sled's own default (1 GiB) is far more than a feed daemon
/// needs: since the values moved to the body log, sled holds only small keys, and dedup reads
/// nothing from it on the hot path. At 10,000 feeds a 4 MiB cache costs no measurable time
/// against 32 MiB and saves 40 MB of peak memory (README, "One polling cycle over 10,000 feeds").
pub const DEFAULT_CACHE_BYTES: u64 = 4 << 20;
pub use lookup::MAX_ANCHOR_POSTINGS;
pub use retention::Retained;

const SEQ_ARTICLES: &str = "seq.articles";
const SEQ_DUPLICATES: &str = "seq.duplicates";
const FORMAT_KEY: &str = "format";
const DB_ID: &str = "db.id";
/// Where the body log was last made durable (segment and length), written before each sled flush:
/// only records pointing past it can have lost their bodies in a power loss.
const BODIES_SYNCED: &str = "bodies.synced";
/// The body log's directory in the data directory.
const BODIES_DIR: &str = "bodies";
/// The lookup tables' file in the data directory.
const LOOKUP_FILE: &str = "lookup.bin";

/// A store failure. Expected outcomes (a duplicate, a re-listed item) are never errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error("store: the database in {} is in use by another feedsieve process", path.display())]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory or lock file could not be created or opened.
    #[error("store: cannot open {}: {source}", path.display())]
    Io {
        /// What we tried to open.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// sled could not open the database.
    #[error("store: cannot open the database in {}: {source}", path.display())]
    Open {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// The database was written by another version of feedsieve, in another layout.
    #[error(
        "store: the database in {} has format {found}, this feedsieve reads format {FORMAT} (no migration exists yet between these formats: move the data directory aside, or run the feedsieve that wrote it)",
        path.display()
    )]
    Format {
        /// The data directory.
        path: PathBuf,
        /// The format found on disk.
        found: u64,
    },
    /// A read or write failed.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record could not be decoded.
    #[error("store: corrupt {what}: {message}")]
    Corrupt {
        /// Which record.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The body log could not be written or read.
    #[error("store: body log: {0}")]
    Bodies(std::io::Error),
    /// A second writer was requested.
    #[error("store: a writer already exists for this database")]
    WriterTaken,
    /// The database is closed because reopening it after a write failure failed; the writer
    /// tries again.
    #[error("store: the database is being reopened after a write failure: {0}")]
    Reopening(String),
}

impl StoreError {
    /// Whether this is the disk refusing a write or a read (no space, an I/O error): sled then
    /// refuses every later write until the database is reopened, so the writer stops ingesting
    /// and reopens it ([`Store::reopen`]) instead of failing report after report.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Sled(sled::Error::Io(_)) | StoreError::Bodies(_)
        )
    }
}

/// Records read from a seq log: (seq, NDJSON record) pairs.
pub type Records = Vec<(u64, Vec<u8>)>;

/// A handle on the database: cheap to clone, safe to share between tasks for reading.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// The open sled database and its trees. They sit behind a lock so that the store can be
/// reopened in place after a write failure ([`Store::reopen`]): sled 0.34 refuses every write
/// after one failed (a full disk, say) until the database is opened again.
struct Handles {
    db: sled::Db,
    main: sled::Tree,
    feeds: sled::Tree,
    consumers: sled::Tree,
    catalog: sled::Tree,
}

/// Free space [`Store::probe_space`] must be able to write, beside sled's snapshots, before the
/// store is reopened (sled writes a snapshot as it opens, and log segments of 512 KiB).
const PROBE_BYTES: u64 = 2 << 20;

/// How long opening waits for sled's own file lock. Whoever calls [`Handles::open`] holds the
/// data directory's lock, so another holder can only be this process's previous handle, whose
/// background threads finish after it was dropped (seen as a rare failure of a test that
/// reopens at once).
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Handles {
    fn open(db_path: &Path, options: &Options) -> Result<Handles, StoreError> {
        let started = std::time::Instant::now();
        let db = loop {
            match sled::Config::new()
                .path(db_path)
                .cache_capacity(options.cache_bytes)
                .flush_every_ms(None)
                .open()
            {
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < SLED_LOCK_WAIT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => {
                    break other.map_err(|source| StoreError::Open {
                        path: db_path.to_path_buf(),
                        source,
                    })?;
                }
            }
        };
        Ok(Handles {
            main: db.open_tree("main")?,
            feeds: db.open_tree("feeds")?,
            consumers: db.open_tree("consumers")?,
            catalog: db.open_tree("catalog")?,
            db,
        })
    }
}

/// What all clones share: the lock file (held open while any clone lives) and whether the one
/// writer was handed out.
struct Shared {
    /// The body log: article and duplicate values.
    bodies: bodies::Bodies,
    /// The open database; `None` only while a reopen failed (the next attempt fills it).
    handles: RwLock<Option<Arc<Handles>>>,
    /// What it was opened with, for reopening.
    options: Options,
    /// False while ingestion waits for the disk: free space below `retention.min_free`, or a
    /// write failed and the store was not reopened yet. What `/healthz` reports.
    writable: AtomicBool,
    /// True from a write failure until the store was reopened: the group commit waits.
    failed: AtomicBool,
    /// Something other than articles and duplicates (feed states, retention's deletions) was
    /// written since the last flush: the next [`Store::sync`] flushes even with no new articles.
    unsynced: AtomicBool,
    writer_taken: AtomicBool,
    path: PathBuf,
    /// The newest article seq on disk, the last one readers see: an article becomes visible
    /// only once it is flushed, so nothing a reader saw can be lost in a crash. Readers wait on
    /// it for new articles.
    stored: tokio::sync::watch::Sender<u64>,
    /// The newest duplicate seq on disk: duplicate records (and `also_seen` entries) become
    /// visible with the same group commit as articles.
    visible_duplicate: AtomicU64,
    /// The dedup indexes, built on first use (reading commands never need them).
    lookup: OnceLock<RwLock<Lookup>>,
    /// Held while the lookup tables are built, so they are built once.
    building: Mutex<()>,
    /// The distance the near tables answer for.
    max_distance: u32,
    /// This database's random id, which the lookup file must carry.
    db_id: AtomicU64,
    /// The lock file, held while the database is open. Last, because fields drop in order:
    /// it must outlive sled's handles, or another process could take the lock and then find
    /// sled's own files still locked.
    _lock: File,
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest simhash distance the near index must answer for (its table layout).
    pub max_distance: u32,
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
    /// Size at which the body log starts a new segment ([`bodies::SEGMENT_BYTES`]; smaller in
    /// tests).
    pub segment_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_distance: 3,
            cache_bytes: DEFAULT_CACHE_BYTES,
            segment_bytes: bodies::SEGMENT_BYTES,
        }
    }
}

/// What [`Writer::insert_article`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// Stored under this seq and id.
    Stored {
        /// Its sequence number.
        seq: u64,
        /// Its id.
        id: String,
    },
    /// An exact key was already taken (a race the single writer should prevent): it repeats
    /// this article.
    Taken(Match),
}

/// The stable id of an item: a hash of its feed and guid, 16 hex digits.
pub fn article_id(feed: &str, guid: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(feed.as_bytes());
    h.update(&[0]);
    h.update(guid.as_bytes());
    format!("{:016x}", h.digest())
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir`.
    pub fn open(data_dir: &Path, options: &Options) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let lock_path = data_dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::Io {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: data_dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StoreError::Io {
                    path: lock_path,
                    source,
                });
            }
        }
        let options = options.clone();
        let bodies_dir = data_dir.join(BODIES_DIR);
        let bodies =
            bodies::Bodies::open(&bodies_dir, options.segment_bytes).map_err(|source| {
                StoreError::Io {
                    path: bodies_dir,
                    source,
                }
            })?;
        let handles = Handles::open(&data_dir.join("db"), &options)?;
        let store = Store {
            shared: Arc::new(Shared {
                _lock: lock,
                bodies,
                handles: RwLock::new(Some(Arc::new(handles))),
                writable: AtomicBool::new(true),
                failed: AtomicBool::new(false),
                unsynced: AtomicBool::new(false),
                writer_taken: AtomicBool::new(false),
                path: data_dir.to_path_buf(),
                stored: tokio::sync::watch::Sender::new(0),
                lookup: OnceLock::new(),
                building: Mutex::new(()),
                max_distance: options.max_distance.min(63),
                db_id: AtomicU64::new(0),
                visible_duplicate: AtomicU64::new(0),
                options,
            }),
        };
        store.check_format()?;
        store.recover_bodies()?;
        let db_id = match store.meta(DB_ID)? {
            Some(id) => id,
            None => {
                let id = fastrand::u64(1..);
                store
                    .h()?
                    .main
                    .insert(keys::meta(DB_ID), &id.to_be_bytes())?;
                id
            }
        };
        store.shared.db_id.store(db_id, Ordering::Relaxed);
        store.shared.stored.send_replace(store.last_article_seq()?);
        store
            .shared
            .visible_duplicate
            .store(store.meta(SEQ_DUPLICATES)?.unwrap_or(0), Ordering::SeqCst);
        Ok(store)
    }

    /// Opens and closes the database in `data_dir`, so that the next open is fast: sled 0.34
    /// writes its recovery snapshot only while opening, after replaying every log entry written
    /// since the last one. The daemon calls this as it stops, paying for its own writes once,
    /// instead of the next start paying for them (10 s for a million articles, against 0.4 s
    /// from a fresh snapshot). Returns how long it took.
    pub fn checkpoint(
        data_dir: &Path,
        options: &Options,
    ) -> Result<std::time::Duration, StoreError> {
        let started = std::time::Instant::now();
        drop(Store::open(data_dir, options)?);
        Ok(started.elapsed())
    }

    /// Refuses a database in another layout; stamps a new one; migrates format 2.
    fn check_format(&self) -> Result<(), StoreError> {
        match self.meta(FORMAT_KEY)? {
            Some(2) => self.migrate_from_2(),
            // Inline values stay readable; new ones go to the body log. `i` keys stay valid; new
            // items get none. Records with keys of their own stay; new ones go into groups.
            Some(3..=5) => {
                self.h()?
                    .main
                    .insert(keys::meta(FORMAT_KEY), &FORMAT.to_be_bytes())?;
                Ok(())
            }
            Some(found) if found != FORMAT => Err(StoreError::Format {
                path: self.shared.path.clone(),
                found,
            }),
            Some(_) => Ok(()),
            None => {
                self.h()?
                    .main
                    .insert(keys::meta(FORMAT_KEY), &FORMAT.to_be_bytes())?;
                Ok(())
            }
        }
    }

    /// Removes every key of `main` under the one-byte `prefix`, 10,000 to a batch; returns how
    /// many.
    fn remove_prefix(&self, prefix: u8) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for key in self.h()?.main.scan_prefix([prefix]).keys().take(10_000) {
                batch.remove(key?);
                n += 1;
            }
            if n == 0 {
                return Ok(removed);
            }
            self.h()?.main.apply_batch(batch)?;
            removed += n;
        }
    }

    /// Format 2 kept the dedup indexes in sled; they are rebuilt in memory now, so their keys
    /// go (near postings, anchors, guid, link and content keys, and two layout counters).
    fn migrate_from_2(&self) -> Result<(), StoreError> {
        let mut removed = 0u64;
        for prefix in [b's', b'w', b'g', b'u', b'c'] {
            removed += self.remove_prefix(prefix)?;
        }
        for name in ["near.max_distance", "window.cursor"] {
            self.h()?.main.remove(keys::meta(name))?;
        }
        self.h()?
            .main
            .insert(keys::meta(FORMAT_KEY), &FORMAT.to_be_bytes())?;
        self.h()?.db.flush()?;
        tracing::info!(
            keys = removed,
            "Database migrated from format 2 to 3: the dedup indexes now live in memory."
        );
        Ok(())
    }

    /// The dedup indexes, loaded or built on first use: from `lookup.bin` when it matches this
    /// database, plus the articles stored after it; else from the whole log, logging progress.
    fn lookup(&self) -> Result<&RwLock<Lookup>, StoreError> {
        if let Some(l) = self.shared.lookup.get() {
            return Ok(l);
        }
        let _building = self
            .shared
            .building
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(l) = self.shared.lookup.get() {
            return Ok(l);
        }
        let built = self.build_lookup()?;
        Ok(self.shared.lookup.get_or_init(|| RwLock::new(built)))
    }

    fn build_lookup(&self) -> Result<Lookup, StoreError> {
        let started = std::time::Instant::now();
        let path = self.shared.path.join(LOOKUP_FILE);
        let db_id = self.shared.db_id.load(Ordering::Relaxed);
        let last_article = self.last_article_seq()?;
        let last_duplicate = self.meta(SEQ_DUPLICATES)?.unwrap_or(0);
        let (mut l, from) = match Lookup::load(&path, db_id, self.shared.max_distance) {
            // A file ahead of the database (a database restored from an older copy) is no use.
            Some(l) if l.last_article <= last_article && l.last_duplicate <= last_duplicate => {
                let from = "lookup.bin";
                (l, from)
            }
            _ => (Lookup::new(self.shared.max_distance), "the article log"),
        };
        let behind = last_article - l.last_article;
        if behind > 100_000 {
            tracing::info!(
                articles = behind,
                "Indexing stored articles for dedup (once; later starts read lookup.bin)."
            );
        }
        let mut done = 0u64;
        // Tombstones first: retention deletes a prefix of the log, so their seqs come before
        // every live article's.
        let start = l.last_article.saturating_add(1);
        let h = self.h()?;
        let records = seqlog::TOMBSTONES
            .forward(&h.main, start, u64::MAX)
            .chain(seqlog::ARTICLES.forward(&h.main, start, u64::MAX));
        for entry in records {
            let (seq, v) = entry?;
            let v = self.resolve(seq, v)?;
            let ak = records::article_keys(&v).ok_or_else(|| corrupt(seq, "article keys"))?;
            let json = records::article_json(&v).ok_or_else(|| corrupt(seq, "article record"))?;
            let a: IdAndUrl =
                serde_json::from_slice(json).map_err(|e| corrupt(seq, &e.to_string()))?;
            l.add_article(&Indexed {
                seq,
                id: &a.id,
                global_guid: dedup::is_global_guid(&ak.guid).then_some(ak.guid.as_str()),
                url: a.url.as_deref(),
                stored_ms: ak.stored_ms,
                simhash: ak.simhash,
                content: ak.content,
                words: ak.words,
                anchors: &ak.anchors,
                long_marks: &ak.long_marks,
            });
            done += 1;
            if done.is_multiple_of(100_000) {
                tracing::info!(articles = done, of = behind, "Indexing for dedup.");
            }
        }
        let first_duplicate = l.last_duplicate.saturating_add(1);
        for entry in seqlog::DUPLICATES.forward(&h.main, first_duplicate, u64::MAX) {
            let (seq, v) = entry?;
            let v = self.resolve(seq, v)?;
            let json = records::article_json(&v).ok_or_else(|| corrupt(seq, "duplicate record"))?;
            let d: IdAndUrl =
                serde_json::from_slice(json).map_err(|e| corrupt(seq, &e.to_string()))?;
            l.add_duplicate(seq, &d.id);
        }
        l.last_article = l.last_article.max(last_article);
        l.last_duplicate = l.last_duplicate.max(last_duplicate);
        tracing::debug!(
            from,
            indexed = done,
            window = l.window_len(),
            memory_bytes = l.memory_bytes(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Dedup indexes ready."
        );
        Ok(l)
    }

    /// Reads the dedup indexes.
    fn read_lookup(&self) -> Result<std::sync::RwLockReadGuard<'_, Lookup>, StoreError> {
        Ok(self.lookup()?.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Loads or builds the dedup indexes now (the daemon does it before it polls, so the first
    /// poll does not wait for it). Returns how many articles are in the dedup window.
    pub fn prepare_lookup(&self) -> Result<usize, StoreError> {
        Ok(self.read_lookup()?.window_len())
    }

    fn meta(&self, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .h()?
            .main
            .get(keys::meta(name))?
            .and_then(|v| keys::read_u64(&v)))
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The single writer for this database (the sieve owns it). A second call fails.
    pub fn writer(&self) -> Result<Writer, StoreError> {
        if self.shared.writer_taken.swap(true, Ordering::SeqCst) {
            return Err(StoreError::WriterTaken);
        }
        self.lookup()?;
        let mut w = Writer {
            next_article: 0,
            next_duplicate: 0,
            since_save: 0,
            pending: Pending::default(),
            store: self.clone(),
        };
        w.read_counters()?;
        Ok(w)
    }

    /// Writes everything buffered to disk, then the dedup indexes (when they were built) to
    /// `lookup.bin`, in that order, so that the file never holds an article the database could
    /// still lose. Returns the bytes sled flushed.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let upto = self.last_article_seq()?;
        let upto_duplicate = self.meta(SEQ_DUPLICATES)?.unwrap_or(0);
        self.sync_bodies()?;
        let flushed = self.h()?.db.flush()?;
        release_garbage();
        self.publish(upto, upto_duplicate);
        if let Some(l) = self.shared.lookup.get() {
            let path = self.shared.path.join(LOOKUP_FILE);
            l.read()
                .unwrap_or_else(|p| p.into_inner())
                .save(&path, self.shared.db_id.load(Ordering::Relaxed))
                .map_err(|source| StoreError::Io { path, source })?;
        }
        Ok(flushed)
    }

    /// Writes what sled buffers to disk and makes the articles stored so far visible to readers
    /// (the daemon calls it twice a second: a group commit; it writes nothing
    /// when nothing changed). Cheaper than [`Store::flush`], which also saves the dedup indexes.
    pub fn sync(&self) -> Result<(), StoreError> {
        if self.shared.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let upto = self.last_article_seq()?;
        let upto_duplicate = self.meta(SEQ_DUPLICATES)?.unwrap_or(0);
        let unsynced = self.shared.unsynced.swap(false, Ordering::SeqCst);
        if unsynced || upto > self.visible_seq() || upto_duplicate > self.visible_duplicate() {
            let flushed = self.sync_bodies().and_then(|()| Ok(self.h()?.db.flush()?));
            release_garbage();
            if let Err(e) = flushed {
                self.shared.unsynced.store(true, Ordering::SeqCst);
                if e.is_io() {
                    self.mark_unwritable();
                }
                return Err(e);
            }
            self.publish(upto, upto_duplicate);
        }
        Ok(())
    }

    /// Notes a write that [`Store::sync`] must flush although it adds no article.
    fn note_unsynced(&self) {
        self.shared.unsynced.store(true, Ordering::SeqCst);
    }

    /// Makes the body log durable and records up to where, before sled is flushed (so that
    /// sled never holds a durable pointer to bodies that are not).
    fn sync_bodies(&self) -> Result<(), StoreError> {
        let (segment, len) = self.shared.bodies.sync().map_err(StoreError::Bodies)?;
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&segment.to_be_bytes());
        v[4..].copy_from_slice(&len.to_be_bytes());
        self.h()?.main.insert(keys::meta(BODIES_SYNCED), &v[..])?;
        Ok(())
    }

    /// The value stored for record `seq`: as sled holds it, or read from the body log when sled
    /// holds a pointer.
    fn resolve(&self, seq: u64, v: sled::IVec) -> Result<sled::IVec, StoreError> {
        match bodies::Pointer::decode(&v) {
            None => Ok(v),
            Some(p) => match self.shared.bodies.read(p) {
                Ok(value) => Ok(value.into()),
                Err(bodies::ReadError::Io { source, .. }) => Err(StoreError::Bodies(source)),
                Err(e @ bodies::ReadError::Damaged { .. }) => Err(corrupt(seq, &e.to_string())),
            },
        }
    }

    /// Removes the records whose bodies a power loss took (see [`bodies`]): sled had made their
    /// pointers durable, the log had not made their bytes. No reader saw them (records become
    /// visible only after the log is synced), so they go as if never written: with their item
    /// ids and `also_seen` links, the duplicates that repeat them, and the seq counters set back.
    fn recover_bodies(&self) -> Result<(), StoreError> {
        let synced = match self.h()?.main.get(keys::meta(BODIES_SYNCED))? {
            Some(v) if v.len() == 12 => (
                u32::from_be_bytes(v[..4].try_into().unwrap_or_default()),
                u64::from_be_bytes(v[4..].try_into().unwrap_or_default()),
            ),
            _ => (0, 0),
        };
        let mut lost = [None::<u64>; 2];
        let h = self.h()?;
        for (i, log) in [seqlog::ARTICLES, seqlog::DUPLICATES]
            .into_iter()
            .enumerate()
        {
            for entry in log.backward(&h.main, 0, u64::MAX)? {
                let (seq, v) = entry?;
                let Some(p) = bodies::Pointer::decode(&v) else {
                    break;
                };
                if (p.segment, p.offset) < synced {
                    break;
                }
                match self.shared.bodies.read(p) {
                    Ok(_) => {}
                    Err(bodies::ReadError::Damaged { .. }) => {
                        lost[i] = Some(seq);
                    }
                    Err(bodies::ReadError::Io { source, .. }) => {
                        return Err(StoreError::Bodies(source));
                    }
                }
            }
        }
        let [from_article, from_duplicate] = lost;
        if from_article.is_none() && from_duplicate.is_none() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut dups = std::collections::BTreeSet::new();
        let lost_articles = match from_article {
            Some(from) => seqlog::ARTICLES
                .forward(&h.main, from, u64::MAX)
                .map(|e| e.map(|(seq, _)| seq))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let articles = lost_articles.len();
        seqlog::ARTICLES.remove(&h.main, &mut batch, lost_articles)?;
        if let Some(from) = from_duplicate {
            for entry in seqlog::DUPLICATES.forward(&h.main, from, u64::MAX) {
                dups.insert(entry?.0);
            }
        }
        // `also_seen` links: those of lost articles take their duplicates with them.
        for k in h.main.scan_prefix([b'x']).keys() {
            let k = k?;
            let (Some(article), Some(dup)) = (keys::read_u64(&k[1..]), keys::read_u64(&k[9..]))
            else {
                continue;
            };
            if from_article.is_some_and(|f| article >= f) {
                dups.insert(dup);
            }
            if from_article.is_some_and(|f| article >= f) || dups.contains(&dup) {
                batch.remove(k);
            }
        }
        seqlog::DUPLICATES.remove(&h.main, &mut batch, dups.iter().copied())?;
        for kv in h.main.scan_prefix([b'i']) {
            let (k, v) = kv?;
            let seq = keys::read_u64(&v[1..]).unwrap_or(0);
            let gone = match v.first() {
                Some(&keys::ARTICLE) => from_article.is_some_and(|f| seq >= f),
                Some(&keys::DUPLICATE) => dups.contains(&seq),
                _ => false,
            };
            if gone {
                batch.remove(k);
            }
        }
        if let Some(from) = from_article {
            batch.insert(keys::meta(SEQ_ARTICLES), &(from - 1).to_be_bytes()[..]);
        }
        if let Some(from) = from_duplicate {
            batch.insert(keys::meta(SEQ_DUPLICATES), &(from - 1).to_be_bytes()[..]);
        }
        h.main.apply_batch(batch)?;
        h.db.flush()?;
        let lookup = self.shared.path.join(LOOKUP_FILE);
        match std::fs::remove_file(&lookup) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    path: lookup,
                    source: e,
                });
            }
            _ => {}
        }
        tracing::warn!(
            articles,
            duplicates = dups.len(),
            "Removed the records whose bodies were lost before they were made durable (a crash of the machine); no reader saw them, and their feeds deliver them again."
        );
        Ok(())
    }

    /// Deletes the body log's segments that no live record points into (after retention):
    /// those before the first article's and the first duplicate's. sled is flushed first, so a
    /// crash cannot bring back a deleted record whose body is gone.
    pub(crate) fn remove_dead_bodies(&self) -> Result<usize, StoreError> {
        let h = self.h()?;
        let mut first = u32::MAX;
        for log in [seqlog::ARTICLES, seqlog::DUPLICATES] {
            if let Some(entry) = log.forward(&h.main, 0, u64::MAX).next() {
                let (_, v) = entry?;
                match bodies::Pointer::decode(&v) {
                    Some(p) => first = first.min(p.segment),
                    // Records from before the body log come first; the log waits for them.
                    None => return Ok(0),
                }
            }
        }
        h.db.flush()?;
        self.shared
            .bodies
            .remove_before(first)
            .map_err(StoreError::Bodies)
    }

    /// The open database, or why there is none.
    fn h(&self) -> Result<Arc<Handles>, StoreError> {
        match &*self
            .shared
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
        {
            Some(h) => Ok(h.clone()),
            None => Err(StoreError::Reopening(
                "the last attempt to open it failed".into(),
            )),
        }
    }

    /// Whether a write failed and the store was not reopened since.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// Whether ingestion is writing: false while it waits for free space, and from a write
    /// failure until [`Store::reopen`] succeeds.
    pub fn is_writable(&self) -> bool {
        self.shared.writable.load(Ordering::SeqCst)
    }

    /// Records that a write failed: the group commit pauses until the store is reopened.
    pub fn mark_unwritable(&self) {
        self.shared.failed.store(true, Ordering::SeqCst);
        self.shared.writable.store(false, Ordering::SeqCst);
    }

    /// Records that ingestion waits for free space (or goes on again), for `/healthz`.
    pub fn set_waiting_for_space(&self, waiting: bool) {
        self.shared.writable.store(!waiting, Ordering::SeqCst);
    }

    /// Bytes free for an unprivileged writer on the data directory's filesystem.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::ffi::CString::new(self.shared.path.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        // SAFETY: statvfs(3) reads a NUL-terminated path we own and fills a struct we own; it
        // keeps neither.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Both are 32-bit on some targets.
        #[allow(clippy::useless_conversion)]
        Ok(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
    }

    /// Closes and reopens the database in place, then proves it writable with a small durable
    /// write. sled 0.34 refuses every write after one failed until it is reopened; what it had
    /// made durable before the failure is all there after, and what it had not is dropped,
    /// which no reader ever saw (they read up to [`Store::visible_seq`] only). The dedup
    /// indexes are reloaded to match what is on disk. Readers wait while it runs (waiting up
    /// to a few seconds for the reads in flight to finish) and get
    /// [`StoreError::Reopening`] if the database could not be opened again.
    pub fn reopen(&self) -> Result<(), StoreError> {
        {
            let mut slot = self
                .shared
                .handles
                .write()
                .unwrap_or_else(|p| p.into_inner());
            // sled holds an exclusive lock on its files until the last handle is gone, so the
            // reads still holding one must finish first.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while slot.as_ref().is_some_and(|h| Arc::strong_count(h) > 1)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            *slot = None;
            *slot = Some(Arc::new(Handles::open(
                &self.shared.path.join("db"),
                &self.shared.options,
            )?));
        }
        let h = self.h()?;
        h.main.insert(keys::meta("probe"), &[][..])?;
        h.db.flush()?;
        self.reload_lookup()?;
        self.shared.failed.store(false, Ordering::SeqCst);
        self.shared.writable.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Whether there is room to reopen the database and write again: writes, syncs and removes
    /// a file of `PROBE_BYTES` plus the size of sled's snapshots (sled writes one as it
    /// opens) in the data directory.
    pub fn probe_space(&self) -> std::io::Result<()> {
        use std::io::Write;
        let data_dir = &self.shared.path;
        let snapshots: u64 = std::fs::read_dir(data_dir.join("db"))
            .map(|dir| {
                dir.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("snap."))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        let path = data_dir.join("space.probe");
        let result = (|| {
            let mut file = File::create(&path)?;
            let block = vec![0u8; 64 << 10];
            let mut left = PROBE_BYTES + snapshots;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                file.write_all(&block[..n])?;
                left -= n as u64;
            }
            file.sync_all()
        })();
        let _ = std::fs::remove_file(&path);
        result.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("probe write in {}: {e}", data_dir.display()),
            )
        })
    }

    /// Rebuilds the dedup indexes (when they were built) from what the database holds: after a
    /// batch they had taken in was not written.
    fn reload_lookup(&self) -> Result<(), StoreError> {
        if let Some(l) = self.shared.lookup.get() {
            let fresh = self.build_lookup()?;
            *l.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        }
        Ok(())
    }

    /// Makes articles up to `seq` and duplicates up to `duplicate` visible, and wakes the
    /// readers waiting for articles.
    fn publish(&self, seq: u64, duplicate: u64) {
        self.shared
            .visible_duplicate
            .fetch_max(duplicate, Ordering::SeqCst);
        self.shared.stored.send_if_modified(|v| {
            let newer = seq > *v;
            if newer {
                *v = seq;
            }
            newer
        });
    }

    /// The newest duplicate record readers may see: everything up to it is on disk.
    pub fn visible_duplicate(&self) -> u64 {
        self.shared.visible_duplicate.load(Ordering::SeqCst)
    }

    /// The newest article readers may see: everything up to it is on disk.
    pub fn visible_seq(&self) -> u64 {
        *self.shared.stored.borrow()
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        let bodies = self
            .shared
            .bodies
            .size_on_disk()
            .map_err(StoreError::Bodies)?;
        Ok(self.h()?.db.size_on_disk()? + bodies)
    }

    /// Bytes the dedup indexes take in memory (approximate), for benchmarks and diagnostics.
    pub fn index_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.read_lookup()?.memory_bytes() as u64)
    }

    /// [`Store::index_bytes`] table by table: (name, bytes).
    pub fn index_parts(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        Ok(self
            .read_lookup()?
            .memory_parts()
            .iter()
            .map(|&(n, b)| (n, b as u64))
            .collect())
    }

    /// Up to `limit` article records with seq greater than `after`, as stored (without
    /// `also_seen`; see [`Store::article_records_after`]): (seq, NDJSON record).
    pub fn articles_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        let visible = self.visible_seq();
        let mut rows = self.log_after(seqlog::ARTICLES, after, limit, json_part)?;
        rows.retain(|(seq, _)| *seq <= visible);
        Ok(rows)
    }

    /// Up to `limit` article records with seq greater than `after`, as consumers see them: the
    /// stored NDJSON record with its `also_seen` added.
    pub fn article_records_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = self.articles_after(after, limit)?;
        let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) else {
            return Ok(Vec::new());
        };
        // One scan of the page's `also` keys instead of one per article.
        let mut seen: HashMap<u64, Vec<u64>> = HashMap::new();
        let end = keys::also_prefix(last.saturating_add(1));
        for key in self.h()?.main.range(keys::also_prefix(*first)..end).keys() {
            let key = key?;
            if let (Some(article), Some(dup)) =
                (keys::read_u64(&key[1..]), keys::read_u64(&key[9..]))
            {
                seen.entry(article).or_default().push(dup);
            }
        }
        rows.into_iter()
            .map(|(seq, json)| {
                let dups = seen.remove(&seq).unwrap_or_default();
                Ok((seq, self.record_with(&json, &dups)?))
            })
            .collect()
    }

    /// An article record with its `also_seen` appended.
    fn with_also_seen(&self, seq: u64, json: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut dups = Vec::new();
        for key in self.h()?.main.scan_prefix(keys::also_prefix(seq)).keys() {
            if let Some(dup) = keys::read_u64(&key?[9..]) {
                dups.push(dup);
            }
        }
        self.record_with(json, &dups)
    }

    /// An article record with the duplicates `dups` as its `also_seen`.
    fn record_with(&self, json: &[u8], dups: &[u64]) -> Result<Vec<u8>, StoreError> {
        let mut seen = Vec::with_capacity(dups.len());
        let visible = self.visible_duplicate();
        for &dup in dups.iter().filter(|&&d| d <= visible) {
            if let Some(v) = seqlog::DUPLICATES.get(&self.h()?.main, dup)? {
                let record = json_part(dup, self.resolve(dup, v)?)?;
                let mut value: serde_json::Value =
                    serde_json::from_slice(&record).map_err(|e| corrupt(dup, &e.to_string()))?;
                if let Some(o) = value.as_object_mut() {
                    o.remove("duplicate_of");
                }
                seen.push(value);
            }
        }
        let mut out = Vec::with_capacity(json.len() + 16 + seen.len() * 200);
        out.extend_from_slice(json.strip_suffix(b"}").unwrap_or(json));
        out.extend_from_slice(b",\"also_seen\":");
        out.extend_from_slice(&to_json(&seen));
        out.push(b'}');
        Ok(out)
    }

    /// Article records as consumers see them (with `also_seen`), scanning the log from `from`
    /// (inclusive) forward or backward, keeping those whose stored record passes `keep`, until
    /// `limit` are kept or `budget` records were looked at. Returns the kept (seq, record) pairs,
    /// in scan order, and the last seq looked at (`None` when the scan found nothing), so that a
    /// filtered page over a long log stays cheap and the caller can resume where it stopped.
    pub fn scan_articles(
        &self,
        from: u64,
        backward: bool,
        limit: usize,
        budget: usize,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<(Records, Option<u64>), StoreError> {
        let visible = self.visible_seq();
        if !backward && from > visible {
            return Ok((Vec::new(), None));
        }
        let h = self.h()?;
        let mut iter: Box<dyn Iterator<Item = Result<seqlog::Entry, StoreError>>> = if backward {
            Box::new(seqlog::ARTICLES.backward(&h.main, 0, from.min(visible))?)
        } else {
            Box::new(seqlog::ARTICLES.forward(&h.main, from, visible))
        };
        let mut kept = Vec::new();
        let mut last = None;
        for _ in 0..budget {
            let Some(entry) = iter.next() else { break };
            let (seq, v) = entry?;
            last = Some(seq);
            let json = json_part(seq, self.resolve(seq, v)?)?;
            if keep(&json) {
                kept.push((seq, self.with_also_seen(seq, &json)?));
                if kept.len() >= limit {
                    break;
                }
            }
        }
        Ok((kept, last))
    }

    /// The duplicate record `seq` (NDJSON bytes) and the fingerprint the copy had.
    pub fn duplicate(&self, seq: u64) -> Result<Option<(Duplicate, ArticleKeys)>, StoreError> {
        let Some(v) = seqlog::DUPLICATES.get(&self.h()?.main, seq)? else {
            return Ok(None);
        };
        let v = self.resolve(seq, v)?;
        let json = json_part(seq, v.clone())?;
        let record: Duplicate =
            serde_json::from_slice(&json).map_err(|e| corrupt(seq, &e.to_string()))?;
        let keys = records::article_keys(&v).ok_or_else(|| corrupt(seq, "duplicate keys"))?;
        Ok(Some((record, keys)))
    }

    /// What became of the item with this id: `Ok(Some((true, seq)))` for an article,
    /// `Ok(Some((false, seq)))` for a duplicate. An item stored since format 5 is found in the
    /// dedup indexes; one stored before, by its `i` key.
    pub fn item(&self, id: &str) -> Result<Option<(bool, u64)>, StoreError> {
        if let Some(found) = self.read_lookup()?.item(id) {
            return Ok(Some(found));
        }
        // An id that collided with an earlier one names its own article: `<16 digits>-<seq>`.
        if let Some(seq) = id
            .get(16..)
            .and_then(|s| s.strip_prefix('-'))
            .and_then(|s| s.parse::<u64>().ok())
            && self.article_id(seq)?.as_deref() == Some(id)
        {
            return Ok(Some((true, seq)));
        }
        Ok(self
            .h()?
            .main
            .get(keys::item(id))?
            .and_then(|v| Some((v.first() == Some(&keys::ARTICLE), keys::read_u64(&v[1..])?))))
    }

    /// Every article in the dedup window sharing a near-duplicate block with `simhash`, with its
    /// distance.
    pub fn near_candidates(&self, simhash: u64) -> Result<Vec<(u64, u32)>, StoreError> {
        Ok(self.read_lookup()?.near_candidates(simhash))
    }

    /// Up to `limit` duplicate records with seq greater than `after`: (seq, NDJSON record).
    pub fn duplicates_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        let visible = self.visible_duplicate();
        let mut rows = self.log_after(seqlog::DUPLICATES, after, limit, json_part)?;
        rows.retain(|(seq, _)| *seq <= visible);
        Ok(rows)
    }

    fn log_after(
        &self,
        log: seqlog::SeqLog,
        after: u64,
        limit: usize,
        record: impl Fn(u64, sled::IVec) -> Result<sled::IVec, StoreError>,
    ) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let h = self.h()?;
        log.forward(&h.main, start, u64::MAX)
            .take(limit)
            .map(|entry| {
                let (seq, v) = entry?;
                Ok((seq, record(seq, self.resolve(seq, v)?)?))
            })
            .collect()
    }

    /// The article record stored under `id`, as consumers see it (with `also_seen`).
    pub fn article_by_id(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((true, seq)) = self.item(id)?.filter(|&(_, seq)| seq <= self.visible_seq()) else {
            return Ok(None);
        };
        match seqlog::ARTICLES.get(&self.h()?.main, seq)? {
            Some(v) => Ok(Some(
                self.with_also_seen(seq, &json_part(seq, self.resolve(seq, v)?)?)?,
            )),
            None => Ok(None),
        }
    }

    /// Article `seq`'s stored value, or its tombstone when retention deleted it inside the dedup
    /// window (dedup and `explain` still compare against it; readers never see it).
    fn article_value(&self, seq: u64) -> Result<Option<sled::IVec>, StoreError> {
        let h = self.h()?;
        match seqlog::ARTICLES.get(&h.main, seq)? {
            Some(v) => Ok(Some(self.resolve(seq, v)?)),
            None => seqlog::TOMBSTONES.get(&h.main, seq),
        }
    }

    /// The id of article `seq` (of its tombstone when retention deleted it inside the dedup
    /// window), read from the head of its record when it can be.
    pub fn article_id(&self, seq: u64) -> Result<Option<String>, StoreError> {
        let Some(v) = self.article_value(seq)? else {
            return Ok(None);
        };
        match records::article_id(&v) {
            Some(id) => Ok(Some(id.to_string())),
            None => Ok(self.article(seq)?.map(|a| a.id)),
        }
    }

    /// The decoded article with sequence number `seq` (a tombstone's record, without text, when
    /// retention deleted it inside the dedup window).
    pub fn article(&self, seq: u64) -> Result<Option<Article>, StoreError> {
        let Some(v) = self.article_value(seq)? else {
            return Ok(None);
        };
        let json = records::article_json(&v).ok_or_else(|| corrupt(seq, "article record"))?;
        serde_json::from_slice(json)
            .map(Some)
            .map_err(|e| corrupt(seq, &e.to_string()))
    }

    /// The keys article `seq` was indexed under.
    pub fn article_keys(&self, seq: u64) -> Result<Option<ArticleKeys>, StoreError> {
        match self.article_value(seq)? {
            Some(v) => records::article_keys(&v)
                .map(Some)
                .ok_or_else(|| corrupt(seq, "article keys")),
            None => Ok(None),
        }
    }

    /// Hears the seq of every article stored from now on (the latest one: a reader that wakes up
    /// late reads everything after its own cursor from the store, so nothing is lost).
    pub fn watch_articles(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.stored.subscribe()
    }

    /// The last article seq handed out (0 when none).
    pub fn last_article_seq(&self) -> Result<u64, StoreError> {
        Ok(self.meta(SEQ_ARTICLES)?.unwrap_or(0))
    }

    /// The stored state of one feed.
    pub fn feed_state(&self, url: &str) -> Result<Option<FeedState>, StoreError> {
        self.h()?
            .feeds
            .get(url)?
            .map(|v| {
                serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    what: format!("feed state of {url}"),
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// The committed offset of a named consumer (0 when it never acknowledged anything).
    pub fn consumer_offset(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self
            .h()?
            .consumers
            .get(name)?
            .and_then(|v| keys::read_u64(&v))
            .unwrap_or(0))
    }

    /// Commits a named consumer's offset and flushes it: an acknowledged offset survives a crash.
    /// Consumers are independent of the article log, so any holder of the store may write them.
    pub fn set_consumer_offset(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        self.h()?.consumers.insert(name, &seq.to_be_bytes())?;
        self.h()?.consumers.flush()?;
        Ok(())
    }

    /// Every named consumer and its committed offset.
    pub fn consumer_offsets(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.h()?
            .consumers
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    keys::read_u64(&v).unwrap_or(0),
                ))
            })
            .collect()
    }

    /// The feeds added at run time, as stored (JSON values by URL).
    pub fn catalog_entries(&self) -> Result<Vec<sled::IVec>, StoreError> {
        self.h()?.catalog.iter().values().map(|v| Ok(v?)).collect()
    }

    /// Changes the stored state of the feed at `url` (a `pending` one named `name` when it has
    /// none) with `change`: how a cluster fetcher takes over the validators of a feed whose host
    /// another fetcher polled (`crate::cluster::handover`). The sieve writes feed states only
    /// for feeds this process polls, and a host is adopted before its feeds are polled, so the
    /// two never write one feed's state at once.
    pub fn adopt_feed_state(
        &self,
        url: &str,
        name: &str,
        change: impl FnOnce(&mut FeedState),
    ) -> Result<(), StoreError> {
        let mut state = self
            .feed_state(url)?
            .unwrap_or_else(|| FeedState::pending(url, name));
        change(&mut state);
        self.h()?.feeds.insert(url.as_bytes(), to_json(&state))?;
        self.note_unsynced();
        Ok(())
    }

    /// Saves (or replaces) a feed added at run time.
    pub fn put_catalog_entry(&self, url: &str, json: &[u8]) -> Result<(), StoreError> {
        self.h()?.catalog.insert(url, json)?;
        self.h()?.catalog.flush()?;
        Ok(())
    }

    /// Forgets a feed added at run time; true when it was there.
    pub fn remove_catalog_entry(&self, url: &str) -> Result<bool, StoreError> {
        let was = self.h()?.catalog.remove(url)?.is_some();
        self.h()?.catalog.flush()?;
        Ok(was)
    }

    /// The given feeds, in the given order, each with its stored state (or `pending` when never
    /// polled).
    pub fn feed_list(&self, feeds: &[FeedConfig]) -> Result<Vec<FeedState>, StoreError> {
        feeds
            .iter()
            .map(|f| {
                let name = f.name.clone().unwrap_or_else(|| f.url.clone());
                Ok(self
                    .feed_state(&f.url)?
                    .unwrap_or_else(|| FeedState::pending(&f.url, &name)))
            })
            .collect()
    }

    /// The article stored under this globally unique guid, confirmed against its record.
    fn guid_seq(&self, guid: &str, pending: &[PendingArticle]) -> Result<Option<u64>, StoreError> {
        let Some(seq) = self.read_lookup()?.by_guid(guid) else {
            return Ok(None);
        };
        if let Some(p) = pending.iter().find(|p| p.seq == seq) {
            return Ok((p.keys.guid == guid).then_some(seq));
        }
        Ok(self
            .article_keys(seq)?
            .filter(|k| k.guid == guid)
            .map(|_| seq))
    }

    /// The article stored under this canonical link, confirmed against its record.
    fn url_seq(&self, url: &str, pending: &[PendingArticle]) -> Result<Option<u64>, StoreError> {
        let Some(seq) = self.read_lookup()?.by_url(url) else {
            return Ok(None);
        };
        if let Some(p) = pending.iter().find(|p| p.seq == seq) {
            return Ok((p.url.as_deref() == Some(url)).then_some(seq));
        }
        Ok(self
            .article(seq)?
            .filter(|a| a.url.as_deref() == Some(url))
            .map(|_| seq))
    }
}

/// The two fields the lookup tables read from a stored record.
#[derive(serde::Deserialize)]
struct IdAndUrl {
    id: String,
    #[serde(default)]
    url: Option<String>,
}

/// Hands the calling thread's deferred frees to sled's epoch collector, and collects.
///
/// sled 0.34 retires a sealed 512 KiB log buffer through crossbeam-epoch: the thread that seals
/// it (whoever flushes or fills it) defers the free into its own bag of 64 items, which goes to
/// the collector only when full. A thread that seals a few buffers and then idles (the blocking
/// pool's threads doing the group commit) held up to 32 MB each: 30 MB of the daemon's 73 MB of
/// heap after 7 minutes of the soak bench, growing, and 44 MB at the peak of a 10,000-feed cycle.
fn release_garbage() {
    crossbeam_epoch::pin().flush();
}

/// The NDJSON record inside a stored article or duplicate value.
fn json_part(seq: u64, v: sled::IVec) -> Result<sled::IVec, StoreError> {
    let json = records::article_json(&v).ok_or_else(|| corrupt(seq, "record"))?;
    let offset = json.as_ptr() as usize - v.as_ptr() as usize;
    Ok(v.subslice(offset, json.len()))
}

fn corrupt(seq: u64, what: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("article {seq}"),
        message: what.to_string(),
    }
}

/// Encodes one of our records as JSON. They are plain structs of strings, numbers and dates with
/// derived `Serialize`, for which serde_json cannot fail.
fn to_json<T: serde::Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records of plain fields always serialize")
}

impl dedup::Index for Store {
    type Error = StoreError;

    fn seen_in_feed(&self, feed: &str, guid: &str) -> Result<bool, StoreError> {
        Ok(self.read_lookup()?.seen(&article_id(feed, guid)))
    }

    fn by_guid(&self, guid: &str) -> Result<Option<u64>, StoreError> {
        self.guid_seq(guid, &[])
    }

    fn by_url(&self, url: &str) -> Result<Option<u64>, StoreError> {
        self.url_seq(url, &[])
    }

    fn by_content(&self, hash: u64) -> Result<Option<u64>, StoreError> {
        Ok(self.read_lookup()?.by_content(hash))
    }

    fn nearest(&self, simhash: u64, max_distance: u32) -> Result<Option<(u64, u32)>, StoreError> {
        Ok(self.read_lookup()?.nearest(simhash, max_distance))
    }

    fn overlaps(
        &self,
        anchors: &[u64],
        candidate: &Fingerprint,
        limit: usize,
    ) -> Result<Vec<Overlap>, StoreError> {
        self.overlaps_with(anchors, candidate, limit, &[])
    }
}

impl Store {
    /// [`dedup::Index::overlaps`], reading the marks of the articles in `pending` (written but
    /// not yet committed) from there.
    fn overlaps_with(
        &self,
        anchors: &[u64],
        candidate: &Fingerprint,
        limit: usize,
        pending: &[PendingArticle],
    ) -> Result<Vec<Overlap>, StoreError> {
        // Articles sharing an anchor with the candidate. Only the marks of those that could
        // take part in a `contained` verdict are read: one that cannot (see
        // `containment::may_matter`) changes no rule's outcome, and reading the marks of every
        // article found cost 11% of a polling pass.
        let found: Vec<(u64, u32)> = {
            let lookup = self.read_lookup()?;
            let mut found = lookup.anchor_hits(anchors, limit);
            for &(seq, _) in &found {
                lookup.prefetch_entry(seq);
            }
            found.retain(|&(seq, _)| {
                lookup.may_matter(seq, &candidate.long_marks, candidate.simhash)
            });
            found
        };
        if found.is_empty() {
            return Ok(Vec::new());
        }
        self.compare_with(found, candidate, pending)
    }
}

impl Store {
    /// The stored articles indexed under any of `anchors` (at most `limit`, those sharing the
    /// most first), each compared with `candidate` on its stored marks: what `explain` shows.
    pub fn anchored(
        &self,
        anchors: &[u64],
        candidate: &Fingerprint,
        limit: usize,
    ) -> Result<Vec<Overlap>, StoreError> {
        let found = self.read_lookup()?.anchor_hits(anchors, limit);
        self.compare(found, candidate)
    }

    fn compare(
        &self,
        found: Vec<(u64, u32)>,
        candidate: &Fingerprint,
    ) -> Result<Vec<Overlap>, StoreError> {
        self.compare_with(found, candidate, &[])
    }

    fn compare_with(
        &self,
        found: Vec<(u64, u32)>,
        candidate: &Fingerprint,
        pending: &[PendingArticle],
    ) -> Result<Vec<Overlap>, StoreError> {
        // Their marks, compared exactly.
        let mut out = Vec::with_capacity(found.len());
        for (seq, _) in found {
            let stored;
            let keys = match pending.iter().find(|p| p.seq == seq) {
                Some(p) => Some(&p.keys),
                None => {
                    stored = self.article_keys(seq)?;
                    stored.as_ref()
                }
            };
            if let Some(k) = keys {
                out.push(Overlap::between(
                    seq,
                    candidate,
                    k.simhash,
                    &k.short_marks,
                    &k.long_marks,
                ));
            }
        }
        out.sort_unstable_by(|a, b| {
            b.long_shared()
                .cmp(&a.long_shared())
                .then(a.seq.cmp(&b.seq))
        });
        Ok(out)
    }
}

/// The one writer of a database; see the module's promises.
///
/// Writes are gathered into one sled batch until [`Writer::commit`]: the sieve commits once per
/// poll report (about 20 items), which costs a third of the time of a batch per item (sled's
/// cost is mostly per batch). The dedup indexes see each insert at once, and so does the writer's
/// own [`dedup::Index`], so items of one report are judged against each other as before.
pub struct Writer {
    store: Store,
    next_article: u64,
    next_duplicate: u64,
    /// Articles stored since `lookup.bin` was last written.
    since_save: u64,
    /// What was written since the last commit.
    pending: Pending,
}

/// Writes not yet committed, and what readers of the writer need from them before they are.
#[derive(Default)]
struct Pending {
    batch: sled::Batch,
    articles: Vec<PendingArticle>,
    /// Where the bodies of the batch's articles and duplicates went, in seq order: each becomes
    /// one group in its seq log at commit ([`seqlog`]).
    article_bodies: Vec<bodies::Pointer>,
    duplicate_bodies: Vec<bodies::Pointer>,
    last_article: Option<u64>,
    last_duplicate: Option<u64>,
}

/// An article in the uncommitted batch.
struct PendingArticle {
    seq: u64,
    id: String,
    url: Option<String>,
    keys: ArticleKeys,
}

/// The writer judges against the store and its own uncommitted batch.
impl dedup::Index for Writer {
    type Error = StoreError;

    fn seen_in_feed(&self, feed: &str, guid: &str) -> Result<bool, StoreError> {
        self.store.seen_in_feed(feed, guid)
    }

    fn by_guid(&self, guid: &str) -> Result<Option<u64>, StoreError> {
        self.store.guid_seq(guid, &self.pending.articles)
    }

    fn by_url(&self, url: &str) -> Result<Option<u64>, StoreError> {
        self.store.url_seq(url, &self.pending.articles)
    }

    fn by_content(&self, hash: u64) -> Result<Option<u64>, StoreError> {
        self.store.by_content(hash)
    }

    fn nearest(&self, simhash: u64, max_distance: u32) -> Result<Option<(u64, u32)>, StoreError> {
        self.store.nearest(simhash, max_distance)
    }

    fn overlaps(
        &self,
        anchors: &[u64],
        candidate: &Fingerprint,
        limit: usize,
    ) -> Result<Vec<Overlap>, StoreError> {
        self.store
            .overlaps_with(anchors, candidate, limit, &self.pending.articles)
    }
}

impl Writer {
    /// The store this writer writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reopens the store after a write failure ([`Store::reopen`]) and takes the seq counters
    /// from what is on disk: seqs that were handed out but never made durable are handed out
    /// again (no reader saw them).
    pub fn reopen(&mut self) -> Result<(), StoreError> {
        self.store.reopen()?;
        self.since_save = 0;
        self.pending = Pending::default();
        self.store.shared.bodies.discard_pending();
        self.read_counters()
    }

    /// Takes the next seqs from the counters on disk.
    fn read_counters(&mut self) -> Result<(), StoreError> {
        self.next_article = self.store.meta(SEQ_ARTICLES)?.unwrap_or(0) + 1;
        self.next_duplicate = self.store.meta(SEQ_DUPLICATES)?.unwrap_or(0) + 1;
        Ok(())
    }

    /// Applies everything written since the last commit in one sled batch (atomic: all or
    /// none), with the seq counters. If it fails, the dedup indexes, which already hold the
    /// batch's articles, are reloaded from disk, and the seqs are handed out again.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        let mut pending = std::mem::take(&mut self.pending);
        if pending.last_article.is_none() && pending.last_duplicate.is_none() {
            return Ok(());
        }
        if let Some(seq) = pending.last_article {
            seqlog::ARTICLES.insert_group(&mut pending.batch, seq, &pending.article_bodies);
            pending
                .batch
                .insert(keys::meta(SEQ_ARTICLES), &seq.to_be_bytes()[..]);
        }
        if let Some(seq) = pending.last_duplicate {
            seqlog::DUPLICATES.insert_group(&mut pending.batch, seq, &pending.duplicate_bodies);
            pending
                .batch
                .insert(keys::meta(SEQ_DUPLICATES), &seq.to_be_bytes()[..]);
        }
        // The bodies first: sled must never hold a pointer to bytes not written.
        let applied = self
            .store
            .shared
            .bodies
            .write_pending()
            .map_err(StoreError::Bodies)
            .and_then(|()| self.store.h())
            .and_then(|h| Ok(h.main.apply_batch(pending.batch)?));
        release_garbage();
        if let Err(e) = applied {
            if e.is_io() {
                // The sieve reopens the store, which rereads both.
                self.store.mark_unwritable();
            } else {
                self.read_counters()?;
                self.store.reload_lookup()?;
            }
            return Err(e);
        }
        if self.since_save >= lookup::SAVE_EVERY {
            // Bounds what a restart after a crash re-indexes.
            self.since_save = 0;
            match self.store.flush() {
                // `lookup.bin` only saves time at the next start; the articles are stored.
                Err(e @ StoreError::Io { .. }) => {
                    tracing::warn!(error = %e, "Could not save the dedup indexes; the next start rebuilds what is missing.")
                }
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    /// Stores a new article with all its index entries in one batch.
    pub fn insert_article(
        &mut self,
        c: &Candidate,
        fp: &Fingerprint,
        fetched: DateTime<Utc>,
    ) -> Result<Inserted, StoreError> {
        if let Some(m) = self.taken(c, fp)? {
            return Ok(Inserted::Taken(m));
        }
        let (seq, id) = self.store_new(c, std::borrow::Cow::Borrowed(fp), fetched)?;
        Ok(Inserted::Stored { seq, id })
    }

    /// The article that already holds `c`'s global guid, its URL or (for a body long enough)
    /// its exact content, if any: what [`Writer::insert_article`] checks before storing.
    pub fn taken(&self, c: &Candidate, fp: &Fingerprint) -> Result<Option<Match>, StoreError> {
        let store = &self.store;
        let global_guid = dedup::is_global_guid(&c.guid).then_some(c.guid.as_str());
        let taken = [
            (
                global_guid
                    .map(|g| store.guid_seq(g, &self.pending.articles))
                    .transpose()?
                    .flatten(),
                dedup::Reason::Guid,
            ),
            (
                c.url
                    .as_deref()
                    .map(|u| store.url_seq(u, &self.pending.articles))
                    .transpose()?
                    .flatten(),
                dedup::Reason::Url,
            ),
            (
                (fp.words >= dedup::MIN_CONTENT_WORDS)
                    .then(|| store.read_lookup().map(|l| l.by_content(fp.content)))
                    .transpose()?
                    .flatten(),
                dedup::Reason::Content,
            ),
        ];
        Ok(taken
            .into_iter()
            .find_map(|(seq, reason)| seq.map(|seq| (seq, reason)))
            .map(|(seq, reason)| Match {
                seq,
                reason,
                distance: None,
                containment: None,
            }))
    }

    /// Stores `c` as a new article (its guid, URL and content checked by [`Writer::taken`]):
    /// its seq and id. An owned fingerprint's marks move into the pending batch; a borrowed
    /// one's are copied.
    pub fn store_new(
        &mut self,
        c: &Candidate,
        fp: std::borrow::Cow<'_, Fingerprint>,
        fetched: DateTime<Utc>,
    ) -> Result<(u64, String), StoreError> {
        let store = &self.store;
        let global_guid = dedup::is_global_guid(&c.guid).then_some(c.guid.as_str());
        let seq = self.next_article;
        let base_id = article_id(&c.feed, &c.guid);
        // Two items whose ids collide (a 64-bit hash) keep distinct ids.
        let id = if store.read_lookup()?.seen(&base_id) {
            format!("{base_id}-{seq}")
        } else {
            base_id
        };
        let out = records::ArticleOut {
            seq,
            id: &id,
            feed: &c.feed,
            url: c.url.as_deref(),
            title: &c.title,
            published: c.published,
            fetched,
            text: &c.text,
        };
        let fp = fp.into_owned();
        let stored = ArticleKeys {
            guid: c.guid.clone(),
            simhash: fp.simhash,
            content: fp.content,
            words: fp.words,
            stored_ms: fetched.timestamp_millis(),
            short_marks: fp.short_marks,
            long_marks: fp.long_marks,
            anchors: fp.anchors,
        };
        // The article, its id and (at commit) the counter: one batch, so a crash keeps all or
        // none.
        let body = store
            .shared
            .bodies
            .append(&records::encode_record(&out, &stored))
            .map_err(StoreError::Bodies)?;
        // The article's id is indexed in memory only (`add_article` below), and its seq log key
        // is its commit's group: see `FORMAT`.
        self.pending.article_bodies.push(body);
        self.pending.last_article = Some(seq);
        store
            .lookup()?
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add_article(&Indexed {
                seq,
                id: &id,
                global_guid,
                url: c.url.as_deref(),
                stored_ms: stored.stored_ms,
                simhash: stored.simhash,
                content: stored.content,
                words: stored.words,
                anchors: &stored.anchors,
                long_marks: &stored.long_marks,
            });
        self.pending.articles.push(PendingArticle {
            seq,
            id: id.clone(),
            url: c.url.clone(),
            keys: stored,
        });
        self.next_article += 1;
        self.since_save += 1;
        Ok((seq, id))
    }

    /// Records a suppressed item; returns its duplicate seq.
    pub fn insert_duplicate(
        &mut self,
        c: &Candidate,
        fp: &Fingerprint,
        m: &Match,
        fetched: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let of = match self.pending.articles.iter().find(|p| p.seq == m.seq) {
            Some(p) => p.id.clone(),
            None => self.store.article_id(m.seq)?.unwrap_or_default(),
        };
        let seq = self.next_duplicate;
        let id = article_id(&c.feed, &c.guid);
        let json = to_json(&Duplicate {
            seq,
            id: id.clone(),
            feed: c.feed.clone(),
            url: c.url.clone(),
            title: c.title.clone(),
            duplicate_of: of,
            reason: m.reason,
            distance: m.distance,
            containment: m.containment,
            fetched,
        });
        // The copy's fingerprint rides along, so `explain` can say later how close it came.
        let kept = ArticleKeys {
            guid: c.guid.clone(),
            simhash: fp.simhash,
            content: fp.content,
            words: fp.words,
            stored_ms: fetched.timestamp_millis(),
            short_marks: fp.short_marks.clone(),
            long_marks: fp.long_marks.clone(),
            anchors: fp.anchors.clone(),
        };
        let body = self
            .store
            .shared
            .bodies
            .append(&records::encode_article(&json, &kept))
            .map_err(StoreError::Bodies)?;
        // The copy's id is indexed in memory only (`add_duplicate` below), and its seq log key is
        // its commit's group: see `FORMAT`.
        self.pending.duplicate_bodies.push(body);
        self.pending
            .batch
            .insert(&keys::also(m.seq, seq)[..], &[][..]);
        self.pending.last_duplicate = Some(seq);
        self.store
            .lookup()?
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add_duplicate(seq, &id);
        self.next_duplicate += 1;
        Ok(seq)
    }

    /// Takes articles stored before `cutoff` out of the similarity indexes (the simhash tables,
    /// the containment anchors and the content hash); returns how many. Their records, item ids,
    /// guids and links stay, so a feed that lists them again is still recognized; only a
    /// *similar* story is no longer matched against them. Seq follows storage time, so the sweep
    /// stops at the first article inside the window.
    pub fn expire_before(&mut self, cutoff: DateTime<Utc>) -> Result<usize, StoreError> {
        Ok(self
            .store
            .lookup()?
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .expire_before(cutoff.timestamp_millis()))
    }

    /// Saves a feed's polling state (durable at the next [`Store::sync`]).
    pub fn put_feed_state(&mut self, state: &FeedState) -> Result<(), StoreError> {
        self.store
            .h()?
            .feeds
            .insert(state.url.as_bytes(), to_json(state))?;
        self.store.note_unsynced();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores stories 0 to n-1 from one feed, each committed on its own.
    fn store_stories(w: &mut Writer, n: u64, now: DateTime<Utc>) {
        for i in 0..n {
            let c = candidate("http://f/", &format!("g{i}"), None, &story(i));
            w.insert_article_committed(&c, &fingerprint(&c.text), now)
                .unwrap();
        }
    }

    /// The item ids of the stories [`store_stories`] stores.
    fn story_ids(n: u64) -> Vec<String> {
        (0..n)
            .map(|i| article_id("http://f/", &format!("g{i}")))
            .collect()
    }

    /// A new database in a temp dir, and its writer.
    fn fresh() -> (tempfile::TempDir, Store, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        let w = store.writer().unwrap();
        (dir, store, w)
    }

    impl Writer {
        /// Inserts and commits at once, as if each article were its own report.
        fn insert_article_committed(
            &mut self,
            c: &Candidate,
            fp: &Fingerprint,
            fetched: DateTime<Utc>,
        ) -> Result<Inserted, StoreError> {
            let inserted = self.insert_article(c, fp, fetched)?;
            self.commit()?;
            Ok(inserted)
        }

        fn insert_duplicate_committed(
            &mut self,
            c: &Candidate,
            fp: &Fingerprint,
            m: &Match,
            fetched: DateTime<Utc>,
        ) -> Result<u64, StoreError> {
            let seq = self.insert_duplicate(c, fp, m, fetched)?;
            self.commit()?;
            Ok(seq)
        }
    }
    use crate::dedup::fingerprint::fingerprint;
    use crate::dedup::{Index, Reason, Settings, Verdict, judge};

    fn candidate(feed: &str, guid: &str, url: Option<&str>, text: &str) -> Candidate {
        Candidate {
            feed: feed.into(),
            guid: guid.into(),
            url: url.map(Into::into),
            title: format!("title {guid}"),
            published: None,
            text: text.into(),
        }
    }

    /// A `content` match of stored article `seq`, as the sieve would record a copy of it.
    fn content_copy(seq: u64) -> Match {
        Match {
            seq,
            reason: Reason::Content,
            distance: None,
            containment: None,
        }
    }

    fn story(n: u64) -> String {
        let mut rng = fastrand::Rng::with_seed(n);
        (0..120)
            .map(|_| format!("w{}", rng.u32(0..5000)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn seq_is_ordered_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            assert!(matches!(store.writer(), Err(StoreError::WriterTaken)));
            for i in 0..300u64 {
                let c = candidate("http://f/", &format!("g{i}"), None, &story(i));
                let r = w
                    .insert_article_committed(&c, &fingerprint(&c.text), now)
                    .unwrap();
                assert!(matches!(r, Inserted::Stored { seq, .. } if seq == i + 1));
            }
            store.flush().unwrap();
            assert!(matches!(
                Store::open(dir.path(), &Options::default()),
                Err(StoreError::Locked { .. })
            ));
        }
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        let page = store.articles_after(255, 10).unwrap();
        assert_eq!(
            page.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (256..=265).collect::<Vec<_>>()
        );
        assert_eq!(store.last_article_seq().unwrap(), 300);
        let a: Article = serde_json::from_slice(&page[0].1).unwrap();
        assert_eq!(a.seq, 256);
        let records = store.article_records_after(255, 1).unwrap();
        assert_eq!(
            store.article_by_id(&a.id).unwrap(),
            Some(records[0].1.clone())
        );
        assert!(records[0].1.ends_with(b",\"also_seen\":[]}"));
        // The writer of the reopened store continues the sequence.
        let mut w = store.writer().unwrap();
        let c = candidate("http://f/", "after-reopen", None, &story(999));
        assert!(matches!(
            w.insert_article_committed(&c, &fingerprint(&c.text), now)
                .unwrap(),
            Inserted::Stored { seq: 301, .. }
        ));
    }

    /// The body log's segment files, by name.
    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(BODIES_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    }

    /// Cuts the body log's first segment to `len` bytes, as a power loss can.
    fn cut_first_segment(dir: &Path, len: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&segments(dir)[0])
            .unwrap()
            .set_len(len)
            .unwrap();
    }

    /// Stores stories `range` from feed `feed` in one commit (one group in the article log).
    fn store_in_one_commit(
        w: &mut Writer,
        feed: &str,
        range: std::ops::Range<u64>,
        now: DateTime<Utc>,
    ) {
        for i in range {
            let c = candidate(feed, &format!("g{i}"), None, &story(i));
            w.insert_article(&c, &fingerprint(&c.text), now).unwrap();
        }
        w.commit().unwrap();
    }

    /// The seqs of a page of records.
    fn seqs_of<T>(rows: &[(u64, T)]) -> Vec<u64> {
        rows.iter().map(|(seq, _)| *seq).collect()
    }

    /// Articles and duplicates stored many to a commit share a sled key per commit, and read,
    /// page, scan back, expire and check as records with keys of their own did.
    #[test]
    fn records_grouped_per_commit_behave_as_single_records() {
        let (dir, store, mut w) = fresh();
        let now = Utc::now();
        store_in_one_commit(&mut w, "http://f/", 0..10, now);
        store_in_one_commit(&mut w, "http://f/", 10..20, now);
        for (copy_of, guid) in [(3, "copy-of-3"), (12, "copy-of-12")] {
            let c = candidate("http://g/", guid, None, &story(copy_of - 1));
            w.insert_duplicate(&c, &fingerprint(&c.text), &content_copy(copy_of), now)
                .unwrap();
        }
        w.commit().unwrap();
        store.sync().unwrap();
        {
            let h = store.h().unwrap();
            let prefixes: Vec<u8> = h.main.iter().keys().map(|k| k.unwrap()[0]).collect();
            let count = |p: u8| prefixes.iter().filter(|&&x| x == p).count();
            assert_eq!(
                (count(b'A'), count(b'D'), count(b'a'), count(b'd')),
                (2, 1, 0, 0)
            );
        }
        for seq in 1..=20 {
            assert_eq!(store.article(seq).unwrap().unwrap().text, story(seq - 1));
        }
        assert_eq!(
            seqs_of(&store.articles_after(5, 7).unwrap()),
            (6..=12).collect::<Vec<_>>()
        );
        let (back, last) = store.scan_articles(15, true, 100, 100, |_| true).unwrap();
        assert_eq!(seqs_of(&back), (1..=15).rev().collect::<Vec<_>>());
        assert_eq!(last, Some(1));
        let (page, _) = store.scan_articles(9, false, 3, 100, |_| true).unwrap();
        assert_eq!(seqs_of(&page), [9, 10, 11]);
        assert_eq!(seqs_of(&store.duplicates_after(0, 10).unwrap()), [1, 2]);
        let (_, twelve) = &store.article_records_after(11, 1).unwrap()[0];
        assert!(String::from_utf8_lossy(twelve).contains("copy-of-12"));

        // Retention takes the five oldest, article 3 with its copy (the first of its group).
        let limits = crate::config::RetentionConfig {
            max_age: None,
            max_articles: Some(15),
            min_free: 0,
        };
        let later = now + chrono::Duration::seconds(10);
        let done = w
            .retain(&limits, std::time::Duration::from_secs(1), later, 1000)
            .unwrap();
        assert_eq!((done.articles, done.duplicates), (5, 1));
        assert_eq!(
            seqs_of(&store.articles_after(0, 100).unwrap()),
            (6..=20).collect::<Vec<_>>()
        );
        assert_eq!(seqs_of(&store.duplicates_after(0, 10).unwrap()), [2]);
        assert!(store.duplicate(1).unwrap().is_none());
        assert!(store.article(3).unwrap().is_none());
        assert_eq!(store.article(6).unwrap().unwrap().text, story(5));
        let report = store.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!((report.articles, report.duplicates), (15, 1));

        // Indexes rebuilt from the groups know the same articles.
        store.flush().unwrap();
        drop((w, store));
        std::fs::remove_file(dir.path().join(LOOKUP_FILE)).unwrap();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(
            store.item(&article_id("http://f/", "g11")).unwrap(),
            Some((true, 12))
        );
        assert_eq!(
            store.item(&article_id("http://g/", "copy-of-12")).unwrap(),
            Some((false, 2))
        );
        let c = candidate("http://other/", "x", None, &story(14));
        let settings = Settings {
            max_distance: 3,
            containment: 0.7,
        };
        assert!(matches!(
            judge(&c, &fingerprint(&c.text), &store, settings).unwrap(),
            Verdict::Duplicate(Match { seq: 15, .. })
        ));
    }

    /// A format-5 database: each record has a key of its own. It opens as it is, is stamped
    /// format 6, and its records read, page and expire beside the groups written after them.
    #[test]
    fn a_format_5_database_reads_its_records_beside_new_groups() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            store_in_one_commit(&mut w, "http://f/", 0..3, now);
            let c = candidate("http://g/", "copy-of-2", None, &story(1));
            w.insert_duplicate_committed(&c, &fingerprint(&c.text), &content_copy(2), now)
                .unwrap();
            // As format 5 stored them: a key per record.
            let h = store.h().unwrap();
            let mut batch = sled::Batch::default();
            for (log, single, group) in [
                (seqlog::ARTICLES, keys::ARTICLE, keys::ARTICLE_GROUP),
                (seqlog::DUPLICATES, keys::DUPLICATE, keys::DUPLICATE_GROUP),
            ] {
                for entry in log.forward(&h.main, 0, u64::MAX) {
                    let (seq, v) = entry.unwrap();
                    batch.insert(&keys::logged(single, seq)[..], v);
                }
                for k in h.main.scan_prefix([group]).keys() {
                    batch.remove(k.unwrap());
                }
            }
            h.main.apply_batch(batch).unwrap();
            h.main
                .insert(keys::meta(FORMAT_KEY), &5u64.to_be_bytes())
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(store.meta(FORMAT_KEY).unwrap(), Some(FORMAT));
        assert_eq!(store.article(2).unwrap().unwrap().text, story(1));
        let mut w = store.writer().unwrap();
        store_in_one_commit(&mut w, "http://f/", 3..6, now);
        store.sync().unwrap();
        assert_eq!(
            seqs_of(&store.articles_after(0, 100).unwrap()),
            (1..=6).collect::<Vec<_>>()
        );
        let (back, _) = store.scan_articles(5, true, 100, 100, |_| true).unwrap();
        assert_eq!(seqs_of(&back), [5, 4, 3, 2, 1]);
        let (_, two) = &store.article_records_after(1, 1).unwrap()[0];
        assert!(String::from_utf8_lossy(two).contains("copy-of-2"));
        let limits = crate::config::RetentionConfig {
            max_age: None,
            max_articles: Some(2),
            min_free: 0,
        };
        let later = now + chrono::Duration::seconds(10);
        let done = w
            .retain(&limits, std::time::Duration::from_secs(1), later, 1000)
            .unwrap();
        assert_eq!((done.articles, done.duplicates), (4, 1));
        assert_eq!(seqs_of(&store.articles_after(0, 100).unwrap()), [5, 6]);
        let h = store.h().unwrap();
        assert_eq!(h.main.scan_prefix([keys::ARTICLE]).count(), 0);
        assert_eq!(h.main.scan_prefix([keys::DUPLICATE]).count(), 0);
        let report = store.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// A power loss that took the end of one commit's bodies: the commit's first article stays,
    /// the rest of its group goes, and the seqs handed out again start a new group that does
    /// not hide the article that stayed.
    #[test]
    fn a_group_cut_by_a_power_loss_keeps_its_first_records() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let cut;
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            store_stories(&mut w, 5, now);
            store.sync().unwrap();
            store_in_one_commit(&mut w, "http://f/", 5..8, now);
            let h = store.h().unwrap();
            h.db.flush().unwrap();
            let six = seqlog::ARTICLES.get(&h.main, 6).unwrap().unwrap();
            cut = bodies::Pointer::decode(&six).unwrap().end().1;
        }
        cut_first_segment(dir.path(), cut);
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(store.last_article_seq().unwrap(), 6);
        let mut w = store.writer().unwrap();
        let c = candidate("http://f/", "g6", None, &story(6));
        assert!(matches!(
            w.insert_article_committed(&c, &fingerprint(&c.text), now)
                .unwrap(),
            Inserted::Stored { seq: 7, .. }
        ));
        store.sync().unwrap();
        assert_eq!(store.article(6).unwrap().unwrap().text, story(5));
        assert_eq!(store.article(7).unwrap().unwrap().text, story(6));
        assert_eq!(
            seqs_of(&store.articles_after(0, 100).unwrap()),
            (1..=7).collect::<Vec<_>>()
        );
        let report = store.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// A power loss after sled made pointers durable but before the body log was: the records
    /// whose bodies are gone are removed whole (with their item ids, their copies and the
    /// counters), which no reader could have seen; everything made visible stays.
    #[test]
    fn records_whose_bodies_were_lost_go_whole() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let synced_len;
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            store_stories(&mut w, 5, now);
            store.sync().unwrap();
            assert_eq!(store.visible_seq(), 5);
            synced_len = std::fs::metadata(&segments(dir.path())[0]).unwrap().len();
            // Three more articles, a copy of an old one and a copy of a new one, written but
            // never synced; then sled flushes on its own, as its background thread does.
            for i in 5..8 {
                let c = candidate("http://f/", &format!("g{i}"), None, &story(i));
                w.insert_article(&c, &fingerprint(&c.text), now).unwrap();
            }
            for (copy_of, guid) in [(2, "copy-of-2"), (7, "copy-of-7")] {
                let c = candidate("http://g/", guid, None, &story(copy_of - 1));
                let m = content_copy(copy_of);
                w.insert_duplicate(&c, &fingerprint(&c.text), &m, now)
                    .unwrap();
            }
            w.commit().unwrap();
            store.h().unwrap().db.flush().unwrap();
            assert_eq!(store.last_article_seq().unwrap(), 8);
        }
        // The machine went down before the log's last bytes reached the disk.
        cut_first_segment(dir.path(), synced_len);
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(store.last_article_seq().unwrap(), 5);
        assert_eq!(store.articles_after(0, 100).unwrap().len(), 5);
        assert!(store.duplicates_after(0, 100).unwrap().is_empty());
        for guid in ["g5", "g7"] {
            assert_eq!(store.item(&article_id("http://f/", guid)).unwrap(), None);
        }
        assert_eq!(
            store.item(&article_id("http://g/", "copy-of-2")).unwrap(),
            None
        );
        let report = store.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.articles, 5);
        // The sequence goes on from what is there; the lost items are new again.
        let mut w = store.writer().unwrap();
        let c = candidate("http://f/", "g5", None, &story(5));
        assert!(matches!(
            w.insert_article_committed(&c, &fingerprint(&c.text), now)
                .unwrap(),
            Inserted::Stored { seq: 6, .. }
        ));
        let c = candidate("http://g/", "copy-of-2", None, &story(1));
        let m = content_copy(2);
        assert_eq!(
            w.insert_duplicate_committed(&c, &fingerprint(&c.text), &m, now)
                .unwrap(),
            1
        );
    }

    /// A format-3 database kept its values inline in sled: they stay readable beside new ones
    /// in the body log, and the database is stamped format 4.
    #[test]
    fn inline_values_from_format_3_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            store_stories(&mut w, 3, now);
            // Article 1 as format 3 stored it: the value itself under a key of its own (each
            // story was its own commit, so its group held it alone).
            let h = store.h().unwrap();
            let pointer = seqlog::ARTICLES.get(&h.main, 1).unwrap().unwrap();
            let value = store.resolve(1, pointer).unwrap();
            h.main
                .remove(keys::logged(keys::ARTICLE_GROUP, 1))
                .unwrap()
                .unwrap();
            h.main
                .insert(keys::logged(keys::ARTICLE, 1), value)
                .unwrap();
            h.main
                .insert(keys::meta(FORMAT_KEY), &3u64.to_be_bytes())
                .unwrap();
            store.flush().unwrap();
            std::fs::remove_file(dir.path().join(LOOKUP_FILE)).unwrap();
        }
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(store.meta(FORMAT_KEY).unwrap(), Some(FORMAT));
        let a = store.article(1).unwrap().unwrap();
        assert_eq!(a.text, story(0));
        assert_eq!(store.articles_after(0, 10).unwrap().len(), 3);
        assert!(store.fsck().unwrap().problems.is_empty());
        // The inline article is first: no segment can go yet.
        assert_eq!(store.remove_dead_bodies().unwrap(), 0);
        // Dedup knows it (the indexes were rebuilt from the records).
        let c = candidate("http://other/", "x", None, &story(0));
        let settings = Settings {
            max_distance: 3,
            containment: 0.7,
        };
        assert!(matches!(
            judge(&c, &fingerprint(&c.text), &store, settings).unwrap(),
            Verdict::Duplicate(Match { seq: 1, .. })
        ));
    }

    /// Retention deletes the oldest records, and with them the segments nothing points into.
    #[test]
    fn retention_deletes_dead_segments() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            segment_bytes: 8_000,
            ..Options::default()
        };
        let store = Store::open(dir.path(), &options).unwrap();
        let mut w = store.writer().unwrap();
        let now = Utc::now();
        store_stories(&mut w, 100, now);
        let before = segments(dir.path()).len();
        assert!(before > 10, "{before} segments");
        let limits = crate::config::RetentionConfig {
            max_age: None,
            max_articles: Some(10),
            min_free: 0,
        };
        let window = std::time::Duration::from_secs(1);
        let later = now + chrono::Duration::seconds(10);
        let mut removed = 0;
        loop {
            let done = w.retain(&limits, window, later, 1000).unwrap();
            removed += done.segments;
            if !done.more {
                break;
            }
        }
        store.sync().unwrap();
        let after = segments(dir.path()).len();
        assert_eq!(before - after, removed);
        assert!(after <= 3, "{after} segments left");
        let left = store.articles_after(0, 1000).unwrap();
        assert_eq!(left.len(), 10);
        assert_eq!(left[0].0, 91);
        let report = store.fsck().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    #[test]
    fn index_answers_each_reason() {
        let (_dir, store, mut w) = fresh();
        let now = Utc::now();
        let text = story(1);
        let c = candidate(
            "http://f/",
            "https://ex.org/guid/1",
            Some("https://ex.org/1"),
            &text,
        );
        w.insert_article_committed(&c, &fingerprint(&text), now)
            .unwrap();
        let settings = Settings {
            max_distance: 3,
            containment: 0.7,
        };
        let verdict = |c: &Candidate| judge(c, &fingerprint(&c.text), &store, settings).unwrap();
        assert_eq!(verdict(&c), Verdict::Relisted);
        let reason = |v: Verdict| match v {
            Verdict::Duplicate(m) => Some((m.reason, m.seq, m.distance)),
            _ => None,
        };
        assert_eq!(
            reason(verdict(&candidate(
                "http://g/",
                "https://ex.org/guid/1",
                None,
                "x"
            ))),
            Some((Reason::Guid, 1, None))
        );
        assert_eq!(
            reason(verdict(&candidate(
                "http://g/",
                "2",
                Some("https://ex.org/1"),
                "x"
            ))),
            Some((Reason::Url, 1, None))
        );
        assert_eq!(
            reason(verdict(&candidate("http://g/", "3", None, &text))),
            Some((Reason::Content, 1, None))
        );
        let edited = text.replacen("w", "edited w", 1);
        let v = reason(verdict(&candidate("http://g/", "4", None, &edited)));
        assert!(
            matches!(v, Some((Reason::Near, 1, Some(d))) if d <= 3),
            "{v:?}"
        );
        // Most of the story with a new ending: contained.
        let lede: String = text.split(' ').take(100).collect::<Vec<_>>().join(" ");
        let tail: String = story(7).split(' ').take(20).collect::<Vec<_>>().join(" ");
        let v = reason(verdict(&candidate(
            "http://g/",
            "5",
            None,
            &format!("{lede} {tail}"),
        )));
        assert!(matches!(v, Some((Reason::Contained, 1, None))), "{v:?}");
        assert_eq!(
            verdict(&candidate("http://g/", "6", None, &story(2))),
            Verdict::New
        );
        // An exact key taken just before the write is reported, not stored twice.
        let again = candidate("http://h/", "9", Some("https://ex.org/1"), &story(3));
        assert!(matches!(
            w.insert_article_committed(&again, &fingerprint(&again.text), now).unwrap(),
            Inserted::Taken(m) if m.reason == Reason::Url
        ));
        assert!(
            store
                .nearest(fingerprint(&story(3)).simhash, 3)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_database_in_another_format_is_refused_with_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            store
                .h()
                .unwrap()
                .main
                .insert(keys::meta(FORMAT_KEY), &1u64.to_be_bytes())
                .unwrap();
            store.flush().unwrap();
        }
        let e = Store::open(dir.path(), &Options::default())
            .err()
            .expect("refused");
        assert!(matches!(e, StoreError::Format { found: 1, .. }));
        assert!(
            e.to_string().contains("move the data directory aside"),
            "{e}"
        );
    }

    #[test]
    fn the_window_forgets_similar_stories_but_keeps_articles() {
        let (_dir, store, mut w) = fresh();
        let now = Utc::now();
        let old = now - chrono::Duration::days(40);
        let (a, b) = (story(21), story(22));
        w.insert_article_committed(
            &candidate("http://f/", "old", Some("https://e/old"), &a),
            &fingerprint(&a),
            old,
        )
        .unwrap();
        w.insert_article_committed(
            &candidate("http://f/", "new", Some("https://e/new"), &b),
            &fingerprint(&b),
            now,
        )
        .unwrap();
        let cutoff = now - chrono::Duration::days(30);
        assert_eq!(w.expire_before(cutoff).unwrap(), 1);
        assert_eq!(w.expire_before(cutoff).unwrap(), 0, "already forgotten");
        let settings = Settings {
            max_distance: 3,
            containment: 0.7,
        };
        let verdict = |c: &Candidate| judge(c, &fingerprint(&c.text), &store, settings).unwrap();
        // The old story: its text is no longer matched...
        assert_eq!(
            verdict(&candidate("http://g/", "copy-a", None, &a)),
            Verdict::New
        );
        // ...but its feed listing it again is still recognized, and its link still matches.
        assert_eq!(
            verdict(&candidate("http://f/", "old", None, &a)),
            Verdict::Relisted
        );
        assert!(
            matches!(verdict(&candidate("http://g/", "x", Some("https://e/old"), "x")), Verdict::Duplicate(m) if m.reason == Reason::Url)
        );
        // The new one is matched as before, and both articles are still stored.
        assert!(
            matches!(verdict(&candidate("http://g/", "copy-b", None, &b)), Verdict::Duplicate(m) if m.reason == Reason::Content)
        );
        store.sync().unwrap();
        assert_eq!(store.articles_after(0, 10).unwrap().len(), 2);
    }

    #[test]
    fn the_lookup_file_is_used_when_it_matches_and_rebuilt_when_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let text = story(5);
        let now = Utc::now();
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            w.insert_article_committed(
                &candidate("http://f/", "1", None, &text),
                &fingerprint(&text),
                now,
            )
            .unwrap();
            store.flush().unwrap();
            // Stored after the file was written: indexed at the next open.
            let t2 = story(6);
            w.insert_article_committed(
                &candidate("http://f/", "2", None, &t2),
                &fingerprint(&t2),
                now,
            )
            .unwrap();
            store.h().unwrap().db.flush().unwrap();
        }
        assert!(dir.path().join(LOOKUP_FILE).exists());
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(store.prepare_lookup().unwrap(), 2);
        assert_eq!(
            store.nearest(fingerprint(&story(6)).simhash, 0).unwrap(),
            Some((2, 0))
        );
        drop(store);
        // Another distance: the file does not fit, the tables are built from the log.
        let options = Options {
            max_distance: 6,
            ..Options::default()
        };
        let store = Store::open(dir.path(), &options).unwrap();
        let fp = fingerprint(&text).simhash ^ 0b11_1111;
        assert_eq!(store.nearest(fp, 6).unwrap(), Some((1, 6)));
        assert!(store.seen_in_feed("http://f/", "2").unwrap());
        drop(store);
        // A damaged file is ignored, not trusted.
        std::fs::write(dir.path().join(LOOKUP_FILE), b"FSLOOKUP garbage").unwrap();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(
            store.nearest(fingerprint(&text).simhash, 0).unwrap(),
            Some((1, 0))
        );
    }

    /// sled's background threads can hold its file lock for a moment after the last handle is
    /// dropped; reopening at once (a checkpoint, a reopen after a write failure) waits for them.
    #[test]
    fn a_store_reopens_at_once_after_it_was_dropped() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..40u64 {
            let store = Store::open(dir.path(), &Options::default())
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            let mut w = store.writer().unwrap();
            for i in 0..20 {
                let n = round * 100 + i;
                let c = candidate("http://f/", &format!("g{n}"), None, &story(n));
                w.insert_article(&c, &fingerprint(&c.text), Utc::now())
                    .unwrap();
            }
            w.commit().unwrap();
        }
    }

    #[test]
    fn a_format_2_database_is_migrated_keeping_its_articles() {
        let dir = tempfile::tempdir().unwrap();
        let text = story(8);
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            w.insert_article_committed(
                &candidate("http://f/", "1", Some("https://e/1"), &text),
                &fingerprint(&text),
                Utc::now(),
            )
            .unwrap();
            // What format 2 also kept: index keys in sled.
            for key in [
                &b"s\x00abc"[..],
                b"wxyz",
                b"gguid",
                b"uhttps://e/1",
                b"c12345678",
            ] {
                store.h().unwrap().main.insert(key, &[0u8; 8][..]).unwrap();
            }
            store
                .h()
                .unwrap()
                .main
                .insert(keys::meta(FORMAT_KEY), &2u64.to_be_bytes())
                .unwrap();
            store.h().unwrap().db.flush().unwrap();
        }
        std::fs::remove_file(dir.path().join(LOOKUP_FILE)).ok();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(store.meta(FORMAT_KEY).unwrap(), Some(FORMAT));
        for prefix in [b's', b'w', b'g', b'u', b'c'] {
            assert_eq!(
                store.h().unwrap().main.scan_prefix([prefix]).count(),
                0,
                "{}",
                prefix as char
            );
        }
        assert_eq!(store.articles_after(0, 10).unwrap().len(), 1);
        assert_eq!(store.by_url("https://e/1").unwrap(), Some(1));
        assert_eq!(
            store.by_content(fingerprint(&text).content).unwrap(),
            Some(1)
        );
    }

    #[test]
    fn retention_deletes_the_oldest_and_tombstones_hold_inside_the_window() {
        use crate::config::RetentionConfig;
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let days = chrono::Duration::days;
        let window = std::time::Duration::from_secs(30 * 86_400);
        let settings = Settings {
            max_distance: 3,
            containment: 0.7,
        };
        let limits = RetentionConfig {
            max_age: Some(std::time::Duration::from_secs(5 * 86_400)),
            max_articles: None,
            min_free: 0,
        };
        let url = |i: u64| format!("https://e/{i}");
        let ids: Vec<String>;
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            // 1 and 2 are 40 days old (past the window), 3 and 4 ten days, 5 and 6 new.
            let mut stored = Vec::new();
            for i in 1..=6u64 {
                let at = match i {
                    1 | 2 => now - days(40),
                    3 | 4 => now - days(10),
                    _ => now,
                };
                let c = candidate("http://f/", &format!("g{i}"), Some(&url(i)), &story(i));
                match w
                    .insert_article_committed(&c, &fingerprint(&c.text), at)
                    .unwrap()
                {
                    Inserted::Stored { id, .. } => stored.push(id),
                    other => panic!("{other:?}"),
                }
            }
            ids = stored;
            // A copy of 1 recorded back then, and one of 3.
            for (of, at) in [(1u64, now - days(40)), (3, now - days(10))] {
                let c = candidate("http://g/", &format!("copy{of}"), None, &story(of));
                let m = content_copy(of);
                w.insert_duplicate_committed(&c, &fingerprint(&c.text), &m, at)
                    .unwrap();
            }
            w.expire_before(now - days(30)).unwrap();
            let done = w.retain(&limits, window, now, 500).unwrap();
            assert_eq!(
                done,
                Retained {
                    articles: 4,
                    tombstones: 2,
                    expired_tombstones: 0,
                    duplicates: 1,
                    more: false,
                    segments: 0,
                }
            );
            assert_eq!(
                w.retain(&limits, window, now, 500).unwrap(),
                Retained::default()
            );
            store.flush().unwrap();
        }
        // With the saved tables and, after that, rebuilt from the log: the same answers.
        for rebuilt in [false, true] {
            if rebuilt {
                std::fs::remove_file(dir.path().join(LOOKUP_FILE)).unwrap();
            }
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let seqs: Vec<u64> = store
                .articles_after(0, 10)
                .unwrap()
                .iter()
                .map(|r| r.0)
                .collect();
            assert_eq!(seqs, vec![5, 6], "readers see only what is kept");
            assert_eq!(store.article_by_id(&ids[2]).unwrap(), None);
            // The copy of 1 went with it; the copy of 3 stays while 3 is a tombstone.
            let dups: Vec<u64> = store
                .duplicates_after(0, 10)
                .unwrap()
                .iter()
                .map(|r| r.0)
                .collect();
            assert_eq!(dups, vec![2]);
            let verdict =
                |c: &Candidate| judge(c, &fingerprint(&c.text), &store, settings).unwrap();
            // Inside the window, the deleted story still catches its copies and its link...
            assert!(
                matches!(verdict(&candidate("http://h/", "x3", None, &story(3))), Verdict::Duplicate(m) if m.seq == 3 && m.reason == Reason::Content),
                "rebuilt: {rebuilt}"
            );
            assert!(
                matches!(verdict(&candidate("http://h/", "y3", Some(&url(3)), "other")), Verdict::Duplicate(m) if m.seq == 3 && m.reason == Reason::Url)
            );
            assert_eq!(
                verdict(&candidate("http://f/", "g3", None, &story(3))),
                Verdict::Relisted
            );
            // ...and outside it, the deleted story is forgotten whole.
            assert_eq!(
                verdict(&candidate("http://h/", "x1", Some(&url(1)), &story(1))),
                Verdict::New
            );
            assert_eq!(
                verdict(&candidate("http://f/", "g1", None, &story(1))),
                Verdict::New
            );
            if rebuilt {
                // A copy of a tombstone names the deleted article.
                let mut w = store.writer().unwrap();
                let c = candidate("http://h/", "x3", None, &story(3));
                let m = content_copy(3);
                let d = w
                    .insert_duplicate_committed(&c, &fingerprint(&c.text), &m, now)
                    .unwrap();
                let (dup, _) = store.duplicate(d).unwrap().unwrap();
                assert_eq!(dup.duplicate_of, ids[2]);
                // 25 days on, the window has passed the tombstones: they go too.
                let later = now + days(25);
                w.expire_before(later - days(30)).unwrap();
                let done = w.retain(&limits, window, later, 500).unwrap();
                assert_eq!(done.expired_tombstones, 2);
                assert_eq!(done.duplicates, 2, "the copies of 3 go with its tombstone");
                assert!(store.duplicates_after(0, 10).unwrap().is_empty());
                assert_eq!(done.articles, 2, "5 and 6 are past max_age by then");
                let tombstones: Vec<u64> = store
                    .h()
                    .unwrap()
                    .main
                    .scan_prefix([keys::TOMBSTONE])
                    .keys()
                    .map(|k| keys::read_u64(&k.unwrap()[1..]).unwrap())
                    .collect();
                assert_eq!(
                    tombstones,
                    vec![5, 6],
                    "3 and 4 gone, 5 and 6 inside the window"
                );
                assert!(
                    store
                        .h()
                        .unwrap()
                        .main
                        .scan_prefix(keys::also_prefix(3))
                        .next()
                        .is_none()
                );
                assert_eq!(store.item(&ids[2]).unwrap(), None);
            }
        }
    }

    #[test]
    fn retention_by_count_works_in_bounded_steps() {
        use crate::config::RetentionConfig;
        let (_dir, store, mut w) = fresh();
        let now = Utc::now();
        store_stories(&mut w, 10, now);
        let limits = RetentionConfig {
            max_age: None,
            max_articles: Some(3),
            min_free: 0,
        };
        let window = std::time::Duration::from_secs(86_400);
        let first = w.retain(&limits, window, now, 4).unwrap();
        assert_eq!((first.articles, first.tombstones, first.more), (4, 4, true));
        let second = w.retain(&limits, window, now, 4).unwrap();
        assert_eq!((second.articles, second.more), (3, false));
        store.sync().unwrap();
        let seqs: Vec<u64> = store
            .articles_after(0, 20)
            .unwrap()
            .iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(seqs, vec![8, 9, 10]);
        // Seq is never reused after deletions.
        let c = candidate("http://f/", "g10", None, &story(10));
        assert!(matches!(
            w.insert_article_committed(&c, &fingerprint(&c.text), now)
                .unwrap(),
            Inserted::Stored { seq: 11, .. }
        ));
    }

    /// The items of one report are judged against each other before their batch is committed,
    /// and readers see none of them until it is.
    #[test]
    fn one_batch_judges_its_items_against_each_other() {
        use crate::dedup::{Reason, Settings, Verdict, judge};
        let (_dir, store, mut w) = fresh();
        let now = Utc::now();
        let settings = Settings {
            max_distance: 3,
            containment: 0.7,
        };
        let long = format!("{}\n\n{}\n\n{}", story(1), story(2), story(3));
        let a = candidate(
            "http://a/",
            "https://wire.example/1",
            Some("https://a/1"),
            &long,
        );
        let fa = fingerprint(&a.text);
        assert_eq!(judge(&a, &fa, &w, settings).unwrap(), Verdict::New);
        let Inserted::Stored { seq, id } = w.insert_article(&a, &fa, now).unwrap() else {
            panic!("not stored");
        };
        // The same global guid, the same link, and a copy cut to its first two thirds.
        let copies = [
            (
                candidate("http://b/", "https://wire.example/1", None, &story(9)),
                Reason::Guid,
            ),
            (
                candidate("http://c/", "c1", Some("https://a/1"), &story(8)),
                Reason::Url,
            ),
            (
                candidate(
                    "http://d/",
                    "d1",
                    None,
                    &format!("{}\n\n{}", story(1), story(2)),
                ),
                Reason::Contained,
            ),
        ];
        for (c, reason) in &copies {
            let fp = fingerprint(&c.text);
            let Verdict::Duplicate(m) = judge(c, &fp, &w, settings).unwrap() else {
                panic!("{reason:?} copy not caught");
            };
            assert_eq!((m.reason, m.seq), (*reason, seq));
            w.insert_duplicate(c, &fp, &m, now).unwrap();
        }
        store.sync().unwrap();
        assert!(store.articles_after(0, 10).unwrap().is_empty());
        assert!(store.duplicates_after(0, 10).unwrap().is_empty());
        w.commit().unwrap();
        store.sync().unwrap();
        assert_eq!(store.articles_after(0, 10).unwrap().len(), 1);
        let dups = store.duplicates_after(0, 10).unwrap();
        assert_eq!(dups.len(), 3);
        for (_, d) in dups {
            let d: Duplicate = serde_json::from_slice(&d).unwrap();
            assert_eq!(d.duplicate_of, id);
        }
        let record = store.article_by_id(&id).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(v["also_seen"].as_array().unwrap().len(), 3);
    }

    /// Readers paging articles (with `also_seen`), duplicates and ids while retention deletes
    /// the oldest articles, leaves tombstones, then expires them: every record they get is whole
    /// and in order; what they miss was deleted.
    #[test]
    fn readers_never_see_a_broken_record_while_retention_deletes() {
        use crate::config::RetentionConfig;
        use std::sync::atomic::AtomicBool;
        let (_dir, store, mut w) = fresh();
        let now = Utc::now();
        let mut ids = Vec::new();
        for i in 0..1500u64 {
            let c = candidate("http://f/", &format!("g{i}"), None, &story(i));
            let fp = fingerprint(&c.text);
            if let Inserted::Stored { id, .. } = w.insert_article_committed(&c, &fp, now).unwrap() {
                ids.push(id);
            }
            // Every tenth story is seen again twice, elsewhere.
            for copy in 0..2 * u64::from(i % 10 == 0) {
                let c = candidate(
                    &format!("http://copy{copy}/"),
                    &format!("g{i}"),
                    None,
                    &story(i),
                );
                let Inserted::Taken(m) = w.insert_article_committed(&c, &fp, now).unwrap() else {
                    panic!("a copy was stored");
                };
                w.insert_duplicate_committed(&c, &fp, &m, now).unwrap();
            }
        }
        store.sync().unwrap();
        assert_eq!(ids.len(), 1500);

        let deleting = AtomicBool::new(true);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2)
                .map(|r| {
                    let (store, ids, deleting) = (store.clone(), &ids, &deleting);
                    scope.spawn(move || {
                        let mut rounds = 0;
                        while deleting.load(Ordering::Relaxed) || rounds < 2 {
                            rounds += 1;
                            let mut after = 0;
                            loop {
                                let page = store.article_records_after(after, 37).unwrap();
                                let Some(&(last, _)) = page.last() else { break };
                                for (seq, record) in &page {
                                    assert!(*seq > after, "in order");
                                    after = *seq;
                                    let v: serde_json::Value = serde_json::from_slice(record)
                                        .unwrap_or_else(|e| panic!("article {seq}: {e}"));
                                    assert_eq!(v["seq"], *seq);
                                    assert!(v["text"].as_str().is_some_and(|t| !t.is_empty()));
                                    for seen in v["also_seen"].as_array().unwrap() {
                                        assert_eq!(seen["reason"], "content", "{seen}");
                                    }
                                }
                                after = last;
                            }
                            let mut after = 0;
                            while let Some(&(last, _)) =
                                store.duplicates_after(after, 11).unwrap().last()
                            {
                                for (seq, record) in store.duplicates_after(after, 11).unwrap() {
                                    let d: Duplicate = serde_json::from_slice(&record)
                                        .unwrap_or_else(|e| panic!("duplicate {seq}: {e}"));
                                    assert_eq!(d.seq, seq);
                                }
                                after = last;
                            }
                            for id in ids.iter().skip(r).step_by(13) {
                                if let Some(record) = store.article_by_id(id).unwrap() {
                                    let v: serde_json::Value =
                                        serde_json::from_slice(&record).unwrap();
                                    assert_eq!(v["id"], id.as_str());
                                }
                            }
                        }
                        rounds
                    })
                })
                .collect();
            // Down to 100 articles, tombstones inside the window; then the window passes.
            let keep = RetentionConfig {
                max_age: None,
                max_articles: Some(100),
                min_free: 0,
            };
            let window = std::time::Duration::from_secs(86_400);
            while w.retain(&keep, window, now, 25).unwrap().more {}
            let later = now + chrono::Duration::days(2);
            while w.retain(&keep, window, later, 25).unwrap().more {}
            store.sync().unwrap();
            deleting.store(false, Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() >= 2);
            }
        });
        let left = store.articles_after(0, 2000).unwrap();
        assert_eq!(left.first().map(|r| r.0), Some(1401));
        assert_eq!(left.len(), 100);
    }

    #[test]
    fn fsck_finds_broken_indexes_and_repair_rebuilds_them_from_the_records() {
        use crate::config::RetentionConfig;
        let (dir, store, mut w) = fresh();
        let now = Utc::now();
        store_stories(&mut w, 6, now);
        for of in [3u64, 5] {
            let c = candidate("http://g/", &format!("copy{of}"), None, &story(of - 1));
            let m = content_copy(of);
            w.insert_duplicate_committed(&c, &fingerprint(&c.text), &m, now)
                .unwrap();
        }
        // Two articles deleted inside the window: tombstones.
        let limits = RetentionConfig {
            max_age: None,
            max_articles: Some(4),
            min_free: 0,
        };
        w.retain(&limits, std::time::Duration::from_secs(3600), now, 100)
            .unwrap();
        let clean = store.fsck().unwrap();
        assert_eq!(
            (clean.articles, clean.tombstones, clean.duplicates),
            (4, 2, 2)
        );
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        store.sync().unwrap();
        let before = store.articles_after(0, 100).unwrap();

        // Break it: an item id pointing at another record, a stray item id, a lost link, a
        // counter behind.
        let a4: Article = serde_json::from_slice(&before[1].1).unwrap();
        let d1: Duplicate =
            serde_json::from_slice(&store.duplicates_after(0, 1).unwrap()[0].1).unwrap();
        store
            .h()
            .unwrap()
            .main
            .insert(keys::item(&d1.id), &keys::became_duplicate(99)[..])
            .unwrap();
        store
            .h()
            .unwrap()
            .main
            .insert(
                keys::item("ffffffffffffffff"),
                &keys::became_article(99)[..],
            )
            .unwrap();
        store
            .h()
            .unwrap()
            .main
            .remove(&keys::also(5, 2)[..])
            .unwrap();
        store
            .h()
            .unwrap()
            .main
            .insert(keys::meta(SEQ_ARTICLES), &3u64.to_be_bytes()[..])
            .unwrap();
        let broken = store.fsck().unwrap();
        assert_eq!(broken.problems.len(), 4, "{:#?}", broken.problems);
        // And the dedup indexes losing an article's id: it can no longer be found by it.
        store.lookup().unwrap().write().unwrap().forget_item(&a4.id);
        let unindexed = store.fsck().unwrap();
        assert_eq!(unindexed.problems.len(), 5, "{:#?}", unindexed.problems);
        assert!(
            unindexed
                .problems
                .contains(&format!("item {} is not indexed", a4.id)),
            "{:#?}",
            unindexed.problems
        );

        let repaired = store.repair().unwrap();
        assert!(repaired.problems.is_empty(), "{:?}", repaired.problems);
        assert_eq!(store.articles_after(0, 100).unwrap(), before);
        assert_eq!(store.last_article_seq().unwrap(), 6);
        assert!(!dir.path().join(LOOKUP_FILE).exists());
    }

    /// Since format 5 an item's id has no `i` key in sled: the dedup indexes find its article or
    /// duplicate, after a reopen (from `lookup.bin`) and after a rebuild from the records alike.
    #[test]
    fn items_are_found_by_id_without_a_sled_key() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let ids = story_ids(3);
        let copy = candidate("http://g/", "copy-of-2", None, &story(1));
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            store_stories(&mut w, 3, now);
            w.insert_duplicate_committed(&copy, &fingerprint(&copy.text), &content_copy(2), now)
                .unwrap();
            let h = store.h().unwrap();
            assert_eq!(h.main.scan_prefix(b"i").count(), 0);
            assert_eq!(store.item(&ids[1]).unwrap(), Some((true, 2)));
            store.flush().unwrap();
        }
        let copy_id = article_id(&copy.feed, &copy.guid);
        for rebuilt in [false, true] {
            if rebuilt {
                std::fs::remove_file(dir.path().join(LOOKUP_FILE)).unwrap();
            }
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            for (seq, id) in (1..).zip(&ids) {
                assert_eq!(
                    store.item(id).unwrap(),
                    Some((true, seq)),
                    "rebuilt: {rebuilt}"
                );
            }
            assert_eq!(store.item(&copy_id).unwrap(), Some((false, 1)));
            assert!(store.article_by_id(&ids[2]).unwrap().is_some());
            assert!(store.fsck().unwrap().problems.is_empty());
        }
    }

    /// A database from format 4: its articles' ids have `i` keys, and its `lookup.bin` (version
    /// 4) holds the ids without their seqs. It opens without a rebuild, is stamped format 5,
    /// finds its articles by their keys, and new articles get none.
    #[test]
    fn a_format_4_database_keeps_finding_its_articles_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let ids = story_ids(3);
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            let mut w = store.writer().unwrap();
            store_stories(&mut w, 2, now);
            let h = store.h().unwrap();
            for (seq, id) in (1..).zip(&ids[..2]) {
                h.main
                    .insert(keys::item(id), &keys::became_article(seq)[..])
                    .unwrap();
            }
            h.main
                .insert(keys::meta(FORMAT_KEY), &4u64.to_be_bytes())
                .unwrap();
            store.flush().unwrap();
        }
        let path = dir.path().join(LOOKUP_FILE);
        std::fs::write(&path, lookup::as_version_4(&std::fs::read(&path).unwrap())).unwrap();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        assert_eq!(store.meta(FORMAT_KEY).unwrap(), Some(FORMAT));
        // Loaded from the file, not rebuilt: the ids are known, their seqs are not.
        assert!(store.read_lookup().unwrap().seen(&ids[0]));
        assert_eq!(store.read_lookup().unwrap().item(&ids[0]), None);
        assert_eq!(store.item(&ids[0]).unwrap(), Some((true, 1)));
        assert_eq!(store.item(&ids[1]).unwrap(), Some((true, 2)));
        let mut w = store.writer().unwrap();
        let c = candidate("http://f/", "g2", None, &story(2));
        w.insert_article_committed(&c, &fingerprint(&c.text), now)
            .unwrap();
        assert!(
            !store
                .h()
                .unwrap()
                .main
                .contains_key(keys::item(&ids[2]))
                .unwrap()
        );
        assert_eq!(store.item(&ids[2]).unwrap(), Some((true, 3)));
        assert!(store.fsck().unwrap().problems.is_empty());
    }

    /// Two items whose ids collide: the second is stored as `<id>-<seq>`, and each id finds
    /// its own article.
    #[test]
    fn colliding_ids_each_find_their_article() {
        let (_dir, store, mut w) = fresh();
        let now = Utc::now();
        let a = candidate("http://f/", "g", None, &story(1));
        let b = candidate("http://f/", "g", None, &story(2));
        w.insert_article_committed(&a, &fingerprint(&a.text), now)
            .unwrap();
        let Inserted::Stored { seq, id } = w
            .insert_article_committed(&b, &fingerprint(&b.text), now)
            .unwrap()
        else {
            panic!("not stored");
        };
        let base = article_id("http://f/", "g");
        assert_eq!(id, format!("{base}-{seq}"));
        assert_eq!(store.item(&base).unwrap(), Some((true, 1)));
        assert_eq!(store.item(&id).unwrap(), Some((true, seq)));
        assert_eq!(store.item(&format!("{base}-1")).unwrap(), None);
    }

    #[test]
    fn readers_see_an_article_only_once_it_is_on_disk() {
        let (_dir, store, mut w) = fresh();
        let watch = store.watch_articles();
        let c = candidate("http://f/", "g1", None, &story(1));
        let Inserted::Stored { id, .. } = w
            .insert_article_committed(&c, &fingerprint(&c.text), Utc::now())
            .unwrap()
        else {
            panic!("not stored");
        };
        assert_eq!(store.last_article_seq().unwrap(), 1);
        assert!(store.articles_after(0, 10).unwrap().is_empty());
        assert_eq!(store.article_by_id(&id).unwrap(), None);
        assert!(!watch.has_changed().unwrap());
        store.sync().unwrap();
        assert!(watch.has_changed().unwrap());
        assert_eq!(store.visible_seq(), 1);
        assert_eq!(store.articles_after(0, 10).unwrap().len(), 1);
        assert!(store.article_by_id(&id).unwrap().is_some());
    }
}
