//! Store: the sled database that holds every unique article, the dedup indexes, the duplicate
//! records and each feed's polling state.
//!
//! In: verdicts from the sieve. Out: ordered, resumable reads for the CLI and the API.
//!
//! # Promises
//! - **Order.** Articles and duplicates each get a sequence number from a counter kept in the
//!   database and bumped in the same transaction as the record, so seq is strictly increasing and
//!   never reused, even across crashes.
//! - **Atomicity.** An article, its id, its index entries and the counter go in one sled
//!   transaction: after a crash an article is either fully indexed or absent.
//! - **One writer.** All writes go through the single [`Writer`], owned by the sieve task, so a
//!   dedup check and the insert that follows it cannot interleave with another insert. The exact
//!   keys (guid, url, content) are checked again inside the transaction as a second line.
//! - **Durability.** sled writes its log to disk every 500 ms; [`Store::flush`] forces it (the
//!   daemon calls it on shutdown and `run --once` before exiting). A hard crash loses at most the
//!   last half second of writes, never consistency.
//! - **One process.** A lock file in the data directory admits one process at a time; a second
//!   one gets [`StoreError::Locked`] and the CLI goes through the running daemon's API instead.

pub mod keys;
pub mod records;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::config::FeedConfig;
use crate::dedup::blocks::BlockTables;
use crate::dedup::containment::Overlap;
use crate::dedup::fingerprint::{Fingerprint, distance};
use crate::dedup::{self, MIN_NEAR_WORDS, Match};
use crate::parse::Candidate;
pub use records::{Article, ArticleKeys, Duplicate, FeedState, FeedStatus, FeedView};

/// Postings read per containment mark; beyond this a mark is too common to be evidence.
const MAX_POSTINGS: usize = 64;

/// Bumped when the on-disk layout changes incompatibly.
const FORMAT: u64 = 1;
/// Default size of sled's page cache. sled's own default (1 GiB) is far more than a feed daemon
/// needs; the working set is the recent part of the indexes.
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

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
    /// The database was written by a newer feedsieve.
    #[error("store: the database in {} has format {found}, this feedsieve reads format {FORMAT}", path.display())]
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
    /// A second writer was requested.
    #[error("store: a writer already exists for this database")]
    WriterTaken,
}

/// A handle on the database: cheap to clone, safe to share between tasks for reading.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    articles: sled::Tree,
    keys: sled::Tree,
    ids: sled::Tree,
    duplicates: sled::Tree,
    index: sled::Tree,
    feeds: sled::Tree,
    meta: sled::Tree,
    tables: BlockTables,
    shared: Arc<Shared>,
}

/// What all clones share: the lock file (held open while any clone lives) and whether the one
/// writer was handed out.
struct Shared {
    _lock: File,
    writer_taken: AtomicBool,
    path: PathBuf,
}

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest simhash distance the near index must answer for (its table layout).
    pub max_distance: u32,
    /// sled page cache size in bytes.
    pub cache_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_distance: 3,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

const META_ARTICLE_SEQ: &[u8] = b"seq.articles";
const META_DUPLICATE_SEQ: &[u8] = b"seq.duplicates";
const META_FORMAT: &[u8] = b"format";
const META_NEAR_TABLES: &[u8] = b"near.max_distance";

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
        let db_path = data_dir.join("db");
        let db = sled::Config::new()
            .path(&db_path)
            .cache_capacity(options.cache_bytes)
            .open()
            .map_err(|source| StoreError::Open {
                path: db_path,
                source,
            })?;
        let tree = |name: &str| db.open_tree(name);
        let store = Store {
            articles: tree("articles")?,
            keys: tree("keys")?,
            ids: tree("ids")?,
            duplicates: tree("duplicates")?,
            index: tree("index")?,
            feeds: tree("feeds")?,
            meta: tree("meta")?,
            db,
            tables: BlockTables::new(options.max_distance),
            shared: Arc::new(Shared {
                _lock: lock,
                writer_taken: AtomicBool::new(false),
                path: data_dir.to_path_buf(),
            }),
        };
        store.check_format()?;
        Ok(store)
    }

    /// Refuses a database from a newer feedsieve; stamps a new one.
    fn check_format(&self) -> Result<(), StoreError> {
        match self.meta.get(META_FORMAT)?.and_then(|v| keys::read_u64(&v)) {
            Some(found) if found > FORMAT => Err(StoreError::Format {
                path: self.shared.path.clone(),
                found,
            }),
            Some(_) => Ok(()),
            None => {
                self.meta.insert(META_FORMAT, &FORMAT.to_be_bytes())?;
                Ok(())
            }
        }
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
        Ok(Writer {
            store: self.clone(),
        })
    }

    /// Writes everything buffered to disk; returns the bytes flushed.
    pub fn flush(&self) -> Result<usize, StoreError> {
        Ok(self.db.flush()?)
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// Up to `limit` article records with seq greater than `after`, as stored (JSON bytes).
    pub fn articles_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        read_after(&self.articles, after, limit)
    }

    /// Up to `limit` duplicate records with seq greater than `after` (JSON bytes).
    pub fn duplicates_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        read_after(&self.duplicates, after, limit)
    }

    /// The article record stored under `id`, if any (JSON bytes).
    pub fn article_by_id(&self, id: &str) -> Result<Option<sled::IVec>, StoreError> {
        match self.ids.get(id)?.and_then(|v| keys::read_u64(&v)) {
            Some(seq) => Ok(self.articles.get(keys::seq(seq))?),
            None => Ok(None),
        }
    }

    /// The decoded article with sequence number `seq`.
    pub fn article(&self, seq: u64) -> Result<Option<Article>, StoreError> {
        self.articles
            .get(keys::seq(seq))?
            .map(|v| decode(&v, || format!("article {seq}")))
            .transpose()
    }

    /// The last article seq handed out (0 when none).
    pub fn last_article_seq(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(META_ARTICLE_SEQ)?
            .and_then(|v| keys::read_u64(&v))
            .unwrap_or(0))
    }

    /// The stored state of one feed.
    pub fn feed_state(&self, url: &str) -> Result<Option<FeedState>, StoreError> {
        self.feeds
            .get(url)?
            .map(|v| decode(&v, || format!("feed state of {url}")))
            .transpose()
    }

    /// Every stored feed state, by URL.
    pub fn feed_states(&self) -> Result<Vec<FeedState>, StoreError> {
        self.feeds
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                decode(&v, || {
                    format!("feed state of {}", String::from_utf8_lossy(&k))
                })
            })
            .collect()
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

    /// Makes the near index answer for `max_distance`, rebuilding its tables when the layout on
    /// disk was built for another distance. Returns how many articles were re-indexed.
    pub fn ensure_near_layout(&self, mut progress: impl FnMut(u64)) -> Result<u64, StoreError> {
        let want = self.tables.max_distance() as u64;
        let have = self
            .meta
            .get(META_NEAR_TABLES)?
            .and_then(|v| keys::read_u64(&v));
        if have == Some(want) {
            return Ok(0);
        }
        if have.is_none() && self.keys.is_empty() {
            self.meta.insert(META_NEAR_TABLES, &want.to_be_bytes())?;
            return Ok(0);
        }
        // Drop the old tables, then index every article again, a batch at a time.
        let mut batch = sled::Batch::default();
        for key in self.index.scan_prefix(b"s").keys() {
            batch.remove(key?);
        }
        self.index.apply_batch(batch)?;
        let mut done = 0u64;
        let mut batch = sled::Batch::default();
        for kv in self.keys.iter() {
            let (k, v) = kv?;
            let seq = keys::read_u64(&k).unwrap_or(0);
            let ak: ArticleKeys = decode(&v, || format!("keys of article {seq}"))?;
            if ak.words >= MIN_NEAR_WORDS {
                for t in 0..self.tables.count() {
                    batch.insert(
                        &keys::near(t, self.tables.key(t, ak.simhash), seq)[..],
                        &[][..],
                    );
                }
            }
            done += 1;
            if done.is_multiple_of(10_000) {
                self.index.apply_batch(std::mem::take(&mut batch))?;
                progress(done);
            }
        }
        self.index.apply_batch(batch)?;
        self.meta.insert(META_NEAR_TABLES, &want.to_be_bytes())?;
        progress(done);
        Ok(done)
    }

    /// Looks up the seq stored under an index key.
    fn index_seq(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        Ok(self.index.get(key)?.and_then(|v| keys::read_u64(&v)))
    }
}

/// Reads up to `limit` values with seq keys greater than `after`.
fn read_after(
    tree: &sled::Tree,
    after: u64,
    limit: usize,
) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
    let Some(start) = after.checked_add(1) else {
        return Ok(Vec::new());
    };
    tree.range(keys::seq(start)..)
        .take(limit)
        .map(|kv| {
            let (k, v) = kv?;
            Ok((keys::read_u64(&k).unwrap_or(0), v))
        })
        .collect()
}

/// Encodes one of our records as JSON. They are plain structs of strings, numbers and dates with
/// derived `Serialize`, for which serde_json cannot fail.
fn to_json<T: serde::Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records of plain fields always serialize")
}

/// Decodes a JSON record, naming it on failure.
fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: what(),
        message: e.to_string(),
    })
}

impl dedup::Index for Store {
    type Error = StoreError;

    fn seen_in_feed(&self, feed: &str, guid: &str) -> Result<bool, StoreError> {
        Ok(self.index.contains_key(keys::feed_guid(feed, guid))?)
    }

    fn by_guid(&self, guid: &str) -> Result<Option<u64>, StoreError> {
        self.index_seq(&keys::guid(guid))
    }

    fn by_url(&self, url: &str) -> Result<Option<u64>, StoreError> {
        self.index_seq(&keys::url(url))
    }

    fn by_content(&self, hash: u64) -> Result<Option<u64>, StoreError> {
        self.index_seq(&keys::content(hash))
    }

    fn nearest(&self, simhash: u64, max_distance: u32) -> Result<Option<(u64, u32)>, StoreError> {
        // The tables answer for the distance they were built for; a smaller one is a filter.
        let max_distance = max_distance.min(self.tables.max_distance());
        let mut best: Option<(u64, u32)> = None;
        for t in 0..self.tables.count() {
            let (lo, hi) = self.tables.range(t, simhash);
            for key in self
                .index
                .range(keys::near(t, lo, 0)..=keys::near(t, hi, u64::MAX))
                .keys()
            {
                let key = key?;
                let Some((rotated, seq)) = keys::parse_near(&key) else {
                    continue;
                };
                let d = distance(self.tables.fingerprint(t, rotated), simhash);
                if d <= max_distance && best.is_none_or(|(bs, bd)| (d, seq) < (bd, bs)) {
                    best = Some((seq, d));
                }
            }
        }
        Ok(best)
    }

    fn overlaps(&self, marks: &[u64], limit: usize) -> Result<Vec<Overlap>, StoreError> {
        let mut shared: HashMap<u64, u32> = HashMap::new();
        for &m in marks {
            // A mark found in very many articles is boilerplate, not evidence; stop counting it.
            for key in self
                .index
                .scan_prefix(keys::mark_prefix(m))
                .keys()
                .take(MAX_POSTINGS)
            {
                if let Some(seq) = keys::read_u64(&key?[9..]) {
                    *shared.entry(seq).or_insert(0) += 1;
                }
            }
        }
        let mut top: Vec<(u64, u32)> = shared.into_iter().collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(limit);
        top.into_iter()
            .map(|(seq, count)| {
                let stored = match self.keys.get(keys::seq(seq))? {
                    Some(v) => {
                        decode::<ArticleKeys>(&v, || format!("keys of article {seq}"))?.marks
                    }
                    None => count,
                };
                Ok(Overlap {
                    seq,
                    shared: count,
                    stored,
                })
            })
            .collect()
    }
}

/// The one writer of a database; see the module's promises.
pub struct Writer {
    store: Store,
}

/// Turns a transaction result into ours: storage errors out, aborts as the inner `Err`.
fn tx<T, E>(r: Result<T, TransactionError<E>>) -> Result<Result<T, E>, StoreError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(TransactionError::Abort(m)) => Ok(Err(m)),
        Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
    }
}

/// The stable id of an item: a hash of its feed and guid.
pub fn article_id(feed: &str, guid: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(feed.as_bytes());
    h.update(&[0]);
    h.update(guid.as_bytes());
    format!("{:016x}", h.digest())
}

impl Writer {
    /// The store this writer writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stores a new article with all its index entries in one transaction.
    pub fn insert_article(
        &mut self,
        c: &Candidate,
        fp: &Fingerprint,
        fetched: DateTime<Utc>,
    ) -> Result<Inserted, StoreError> {
        let s = &self.store;
        let base_id = article_id(&c.feed, &c.guid);
        let global_guid = dedup::is_global_guid(&c.guid);
        let feed_guid = keys::feed_guid(&c.feed, &c.guid);
        let url_key = c.url.as_deref().map(keys::url);
        let content_key = (fp.words >= dedup::MIN_CONTENT_WORDS).then(|| keys::content(fp.content));
        let guid_key = global_guid.then(|| keys::guid(&c.guid));
        let keys_record = ArticleKeys {
            feed: c.feed.clone(),
            guid: c.guid.clone(),
            url: c.url.clone(),
            simhash: fp.simhash,
            content: fp.content,
            words: fp.words,
            marks: fp.marks.len() as u32,
            stored: fetched,
        };
        let keys_json = to_json(&keys_record);
        let tables = s.tables;

        let result = (&s.articles, &s.keys, &s.ids, &s.index, &s.meta).transaction(
            |(articles, keys_t, ids, index, meta)| {
                let taken = |seq: Option<sled::IVec>,
                             reason|
                 -> Result<(), ConflictableTransactionError<Match>> {
                    match seq.and_then(|v| keys::read_u64(&v)) {
                        Some(seq) => Err(ConflictableTransactionError::Abort(Match {
                            seq,
                            reason,
                            distance: None,
                            containment: None,
                        })),
                        None => Ok(()),
                    }
                };
                if let Some(k) = &guid_key {
                    taken(index.get(k)?, dedup::Reason::Guid)?;
                }
                if let Some(k) = &url_key {
                    taken(index.get(k)?, dedup::Reason::Url)?;
                }
                if let Some(k) = &content_key {
                    taken(index.get(k)?, dedup::Reason::Content)?;
                }
                let seq = meta
                    .get(META_ARTICLE_SEQ)?
                    .and_then(|v| keys::read_u64(&v))
                    .unwrap_or(0)
                    + 1;
                let mut id = base_id.clone();
                if ids.get(id.as_bytes())?.is_some() {
                    id = format!("{base_id}-{seq}");
                }
                let article = Article {
                    seq,
                    id: id.clone(),
                    feed: c.feed.clone(),
                    url: c.url.clone(),
                    title: c.title.clone(),
                    published: c.published,
                    fetched,
                    text: c.text.clone(),
                };
                let json = to_json(&article);
                let seq_key = keys::seq(seq);
                meta.insert(META_ARTICLE_SEQ, &seq_key)?;
                articles.insert(&seq_key, json)?;
                keys_t.insert(&seq_key, keys_json.as_slice())?;
                ids.insert(id.as_bytes(), &seq_key)?;
                index.insert(feed_guid.as_slice(), &keys::seen_article(seq))?;
                for k in [&guid_key, &url_key, &content_key].into_iter().flatten() {
                    index.insert(k.as_slice(), &seq_key)?;
                }
                if fp.words >= MIN_NEAR_WORDS {
                    for t in 0..tables.count() {
                        index
                            .insert(&keys::near(t, tables.key(t, fp.simhash), seq)[..], &[][..])?;
                    }
                }
                for &m in &fp.marks {
                    index.insert(&keys::mark(m, seq)[..], &[][..])?;
                }
                Ok(Inserted::Stored { seq, id })
            },
        );
        Ok(match tx(result)? {
            Ok(inserted) => inserted,
            Err(m) => Inserted::Taken(m),
        })
    }

    /// Records a suppressed item; returns its duplicate seq.
    pub fn insert_duplicate(
        &mut self,
        c: &Candidate,
        m: &Match,
        fetched: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let s = &self.store;
        let of = s.article(m.seq)?.map(|a| a.id).unwrap_or_default();
        let feed_guid = keys::feed_guid(&c.feed, &c.guid);
        let result = (&s.duplicates, &s.index, &s.meta).transaction(|(duplicates, index, meta)| {
            let seq = meta
                .get(META_DUPLICATE_SEQ)?
                .and_then(|v| keys::read_u64(&v))
                .unwrap_or(0)
                + 1;
            let record = Duplicate {
                seq,
                feed: c.feed.clone(),
                url: c.url.clone(),
                title: c.title.clone(),
                duplicate_of: of.clone(),
                reason: m.reason,
                distance: m.distance,
                containment: m.containment,
                fetched,
            };
            let json = to_json(&record);
            let seq_key = keys::seq(seq);
            meta.insert(META_DUPLICATE_SEQ, &seq_key)?;
            duplicates.insert(&seq_key, json)?;
            index.insert(feed_guid.as_slice(), &keys::seen_duplicate(seq))?;
            Ok::<_, ConflictableTransactionError<Infallible>>(seq)
        });
        match tx(result)? {
            Ok(seq) => Ok(seq),
            Err(never) => match never {},
        }
    }

    /// Saves a feed's polling state.
    pub fn put_feed_state(&mut self, state: &FeedState) -> Result<(), StoreError> {
        let json = to_json(state);
        self.store.feeds.insert(state.url.as_bytes(), json)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
                let r = w.insert_article(&c, &fingerprint(&c.text), now).unwrap();
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
        assert_eq!(
            store.article_by_id(&a.id).unwrap().as_deref(),
            Some(&page[0].1[..])
        );
    }

    #[test]
    fn index_answers_each_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        let mut w = store.writer().unwrap();
        let now = Utc::now();
        let text = story(1);
        let c = candidate(
            "http://f/",
            "https://ex.org/guid/1",
            Some("https://ex.org/1"),
            &text,
        );
        w.insert_article(&c, &fingerprint(&text), now).unwrap();
        let settings = Settings {
            max_distance: 3,
            containment: 0.6,
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
        assert_eq!(
            verdict(&candidate("http://g/", "5", None, &story(2))),
            Verdict::New
        );
        // An exact key taken inside the transaction is reported, not stored twice.
        let again = candidate("http://h/", "9", Some("https://ex.org/1"), &story(3));
        assert!(
            matches!(w.insert_article(&again, &fingerprint(&again.text), now).unwrap(), Inserted::Taken(m) if m.reason == Reason::Url)
        );
        assert!(
            store
                .nearest(fingerprint(&story(3)).simhash, 3)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn near_layout_is_rebuilt_for_another_distance() {
        let dir = tempfile::tempdir().unwrap();
        let text = story(5);
        {
            let store = Store::open(dir.path(), &Options::default()).unwrap();
            store.ensure_near_layout(|_| {}).unwrap();
            let mut w = store.writer().unwrap();
            w.insert_article(
                &candidate("http://f/", "1", None, &text),
                &fingerprint(&text),
                Utc::now(),
            )
            .unwrap();
        }
        let options = Options {
            max_distance: 6,
            ..Options::default()
        };
        let store = Store::open(dir.path(), &options).unwrap();
        assert_eq!(store.ensure_near_layout(|_| {}).unwrap(), 1);
        assert_eq!(store.ensure_near_layout(|_| {}).unwrap(), 0);
        let fp = fingerprint(&text).simhash ^ 0b11_1111;
        assert_eq!(store.nearest(fp, 6).unwrap(), Some((1, 6)));
    }
}
