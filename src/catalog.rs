//! Catalog: the list of feeds the daemon polls, the config file's and those added at run time.
//!
//! In: the config's `[[feeds]]` and the feeds added through the API or `feedsieve feeds add`
//! (kept in the store's `catalog` tree, so they survive restarts). Out: one list, each feed with
//! a stable `id` (a hash of its URL) and its `source`, and [`Change`]s for the scheduler, which
//! picks them up at once.
//!
//! How the two combine: config feeds come first, in file order, and belong to the file: the API
//! cannot change or remove them (edit the file and reload). Feeds added at run time follow, oldest
//! first, and can be changed and removed through the API or the CLI. A URL in both is listed once,
//! as a config feed. Only `http` and `https` feeds can be added at run time: a `file://` feed
//! would let an API client make the daemon read local files.
//!
//! In a cluster, the list is shared ([`Catalog::share`]): the feeds added at run time and every
//! process's config feeds live in a NATS key-value bucket (`crate::cluster::feeds`), which this
//! catalog mirrors in memory. Its own changes apply here at once and are queued as
//! [`SharedWrite`]s for the bucket; the other processes' changes come back through
//! [`Catalog::apply_shared`].

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{self, FeedConfig};
use crate::store::{FeedState, FeedView, Store, StoreError};

/// Where a feed was defined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The config file (in a cluster: some process's config file).
    Config,
    /// Added at run time (API or CLI).
    #[default]
    Api,
}

/// A feed of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// Stable id: a hash of the URL, 16 hex digits.
    pub id: String,
    /// Where it was defined.
    pub source: Source,
    /// Its settings.
    pub config: FeedConfig,
}

/// A change the scheduler must apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Poll this new feed.
    Added(FeedConfig),
    /// This feed's settings changed.
    Updated(FeedConfig),
    /// Stop polling the feed with this URL.
    Removed(String),
}

/// A feed to add at run time.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFeed {
    /// Its URL (http or https).
    pub url: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its own interval, as in the config (`"15m"`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Changes to a feed added at run time; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedPatch {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New interval (`"15m"`), or `""` for the default.
    #[serde(default)]
    pub interval: Option<String>,
    /// New tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// Why a catalog change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The feed is already listed.
    #[error("{url} is already listed (id {id})")]
    Exists {
        /// Its URL.
        url: String,
        /// Its id.
        id: String,
    },
    /// No such feed.
    #[error("no feed with id or URL {0:?}")]
    NotFound(String),
    /// The feed belongs to the config file.
    #[error("{0} comes from the config file; change or remove it there, then reload")]
    FromConfig(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A feed as it is kept outside the config file: in the store for a feed added at run time, and
/// in a cluster's shared list (as JSON) for every feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its URL.
    pub url: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Its own interval.
    #[serde(default)]
    pub interval_seconds: Option<u64>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where it was defined (the store holds only `api` entries).
    #[serde(default)]
    pub source: Source,
    /// When it was added.
    pub added: DateTime<Utc>,
}

impl Entry {
    /// The entry of a config file's feed.
    fn of_config(c: &FeedConfig, added: DateTime<Utc>) -> Entry {
        Entry {
            url: c.url.clone(),
            name: c.name.clone(),
            interval_seconds: c.interval.map(|i| i.as_secs()),
            tags: c.tags.clone(),
            source: Source::Config,
            added,
        }
    }

    /// Its settings, as the scheduler takes them.
    pub fn config(&self) -> FeedConfig {
        FeedConfig {
            url: self.url.clone(),
            name: self.name.clone(),
            interval: self.interval_seconds.map(Duration::from_secs),
            tags: self.tags.clone(),
        }
    }
}

/// A feed as readers see it (`feedsieve feeds`, `/v1/feeds`): its polling state, then its `id`,
/// where it came from (`source`: `config` or `api`), its `tags` and its configured `interval`.
#[derive(Debug, Serialize)]
pub struct FeedRecord<'a> {
    /// The polling state.
    #[serde(flatten)]
    pub state: FeedView<'a>,
    /// See [`Feed::id`].
    pub id: &'a str,
    /// See [`Feed::source`].
    pub source: Source,
    /// The feed's tags.
    pub tags: &'a [String],
    /// The feed's own interval as configured (`"15m"`), or null for the default.
    pub interval: Option<String>,
}

impl Feed {
    /// This feed's record, with its stored `state`.
    pub fn record<'a>(&'a self, state: &'a FeedState) -> FeedRecord<'a> {
        let mut view = state.public();
        // The catalog's name is current; the state's is as of the last poll.
        view.name = self.config.name.as_deref().unwrap_or(&self.config.url);
        FeedRecord {
            state: view,
            id: &self.id,
            source: self.source,
            tags: &self.config.tags,
            interval: self.config.interval.map(config::format_duration),
        }
    }
}

/// The stable id of a feed: a hash of its URL, 16 hex digits.
pub fn feed_id(url: &str) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64_with_seed(url.as_bytes(), 0x6665_6564)
    )
}

/// The feed list, over the config's feeds and the store (or, in a cluster, the shared list).
pub struct Catalog {
    /// The config file's feeds; replaced on reload.
    config: RwLock<Vec<FeedConfig>>,
    store: Store,
    changes: Option<mpsc::UnboundedSender<Change>>,
    /// Serializes add, update and remove (each is a read followed by a write).
    writing: Mutex<()>,
    /// The cluster's shared list, once [`Catalog::share`]d.
    shared: std::sync::OnceLock<Shared>,
}

/// A change for a cluster's shared feed list, keyed by feed id ([`feed_id`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SharedWrite {
    /// List (or replace) this feed.
    Put(String, Entry),
    /// Drop the feed with this id.
    Delete(String),
}

/// The shared list as this process knows it, and the queue of its own changes to it.
struct Shared {
    feeds: RwLock<BTreeMap<String, Entry>>,
    writes: mpsc::UnboundedSender<SharedWrite>,
}

impl Catalog {
    /// The catalog of `config`'s feeds and the runtime feeds in `store`.
    pub fn new(config: Vec<FeedConfig>, store: Store) -> Catalog {
        Catalog {
            config: RwLock::new(config),
            store,
            changes: None,
            writing: Mutex::new(()),
            shared: std::sync::OnceLock::new(),
        }
    }

    /// Moves the feed list into a cluster's shared list: `listed` is the shared list now (by
    /// feed id), and this catalog's own changes go to `writes` from here on. The feeds this
    /// store kept from before it joined are added to the shared list (and leave the store), and
    /// so are the config file's feeds that the list lacks or lists differently. Returns the
    /// writes queued.
    pub fn share(
        &self,
        listed: BTreeMap<String, Entry>,
        writes: mpsc::UnboundedSender<SharedWrite>,
    ) -> Result<usize, StoreError> {
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let local = self.runtime()?;
        let shared = Shared {
            feeds: RwLock::new(listed),
            writes,
        };
        let mut queued = 0;
        for e in local {
            let id = feed_id(&e.url);
            if !shared.read().contains_key(&id) {
                shared.put(id, e.clone());
                queued += 1;
            }
            self.store.remove_catalog_entry(&e.url)?;
        }
        let config = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        queued += shared.publish_config(&[], &config);
        // Set once: `run` shares a catalog right after making it.
        let _ = self.shared.set(shared);
        Ok(queued)
    }

    /// A change to the shared list seen in the cluster (`entry` is `None` for a removal): kept,
    /// and passed on as a [`Change`] unless it changes nothing here (this process's own change
    /// coming back, or a feed of its config file, which the file decides).
    pub fn apply_shared(&self, id: &str, entry: Option<Entry>) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        let in_config = |url: &str| {
            self.config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|c| c.url == url)
        };
        let mut feeds = shared.feeds.write().unwrap_or_else(|p| p.into_inner());
        let change = match entry {
            Some(e) => {
                let config = e.config();
                match feeds.insert(id.to_string(), e) {
                    None => Some(Change::Added(config)),
                    Some(old) if old.config() != config => Some(Change::Updated(config)),
                    Some(_) => None,
                }
            }
            None => feeds.remove(id).map(|old| Change::Removed(old.url)),
        };
        drop(feeds);
        if let Some(change) = change {
            let url = match &change {
                Change::Added(c) | Change::Updated(c) => c.url.as_str(),
                Change::Removed(u) => u.as_str(),
            };
            if !in_config(url) {
                self.notify(change);
            }
        }
    }

    /// Sends every change to `changes` (the scheduler's inbox).
    pub fn with_changes(mut self, changes: mpsc::UnboundedSender<Change>) -> Catalog {
        self.changes = Some(changes);
        self
    }

    /// The feeds kept outside the config file, oldest first: the store's, or in a cluster the
    /// shared list's.
    fn runtime(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries: Vec<Entry> = match self.shared.get() {
            Some(shared) => shared.read().values().cloned().collect(),
            None => self
                .store
                .catalog_entries()?
                .iter()
                .filter_map(|v| serde_json::from_slice(v).ok())
                .collect(),
        };
        entries.sort_by(|a, b| a.added.cmp(&b.added).then_with(|| a.url.cmp(&b.url)));
        Ok(entries)
    }

    /// Every feed: the config's first, in file order, then those added at run time, oldest first.
    pub fn list(&self) -> Result<Vec<Feed>, StoreError> {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Feed> = config
            .iter()
            .map(|c| Feed {
                id: feed_id(&c.url),
                source: Source::Config,
                config: c.clone(),
            })
            .collect();
        for e in self.runtime()? {
            if !config.iter().any(|c| c.url == e.url) {
                out.push(Feed {
                    id: feed_id(&e.url),
                    source: e.source,
                    config: e.config(),
                });
            }
        }
        Ok(out)
    }

    /// The feed with this id or URL.
    pub fn get(&self, id_or_url: &str) -> Result<Option<Feed>, StoreError> {
        Ok(self
            .list()?
            .into_iter()
            .find(|f| f.id == id_or_url || f.config.url == id_or_url))
    }

    /// Every feed with its stored state (`pending` when never polled).
    pub fn states(&self) -> Result<Vec<(Feed, FeedState)>, StoreError> {
        let feeds = self.list()?;
        let configs: Vec<FeedConfig> = feeds.iter().map(|f| f.config.clone()).collect();
        let states = self.store.feed_list(&configs)?;
        Ok(feeds.into_iter().zip(states).collect())
    }

    /// The feed with this id or URL, with its stored state.
    pub fn state(&self, id_or_url: &str) -> Result<Option<(Feed, FeedState)>, StoreError> {
        let Some(feed) = self.get(id_or_url)? else {
            return Ok(None);
        };
        let state = self.store.feed_list(std::slice::from_ref(&feed.config))?;
        Ok(state.into_iter().next().map(|s| (feed, s)))
    }

    fn notify(&self, change: Change) {
        if let Some(tx) = &self.changes {
            // The scheduler is gone only when the process is stopping.
            let _ = tx.send(change);
        }
    }

    /// Replaces the config file's feeds (a reload) and tells the scheduler what changed: feeds
    /// new to the list start, feeds gone from it stop, feeds whose settings changed take them
    /// from their next poll. Returns (added, removed, changed) counts.
    pub fn replace_config(
        &self,
        feeds: Vec<FeedConfig>,
    ) -> Result<(usize, usize, usize), StoreError> {
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.list()?;
        let old = std::mem::replace(
            &mut *self.config.write().unwrap_or_else(|p| p.into_inner()),
            feeds.clone(),
        );
        if let Some(shared) = self.shared.get() {
            shared.publish_config(&old, &feeds);
        }
        let after = self.list()?;
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for feed in &after {
            match before.iter().find(|b| b.config.url == feed.config.url) {
                None => {
                    added += 1;
                    self.notify(Change::Added(feed.config.clone()));
                }
                Some(old) if old.config != feed.config => {
                    changed += 1;
                    self.notify(Change::Updated(feed.config.clone()));
                }
                Some(_) => {}
            }
        }
        for old in &before {
            if !after.iter().any(|f| f.config.url == old.config.url) {
                removed += 1;
                self.notify(Change::Removed(old.config.url.clone()));
            }
        }
        Ok((added, removed, changed))
    }

    /// Adds a feed at run time.
    pub fn add(&self, new: NewFeed) -> Result<Feed, CatalogError> {
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let url =
            config::feed_url(&new.url, std::path::Path::new("/")).map_err(CatalogError::Invalid)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CatalogError::Invalid(format!(
                "{url}: only http and https feeds can be added at run time (file feeds belong in the config)"
            )));
        }
        if let Some(f) = self.get(&url)? {
            return Err(CatalogError::Exists { url, id: f.id });
        }
        let entry = Entry {
            url: url.clone(),
            name: new.name.filter(|n| !n.trim().is_empty()),
            interval_seconds: parse_interval(new.interval.as_deref())?,
            tags: new.tags,
            source: Source::Api,
            added: Utc::now(),
        };
        self.save(&entry)?;
        self.notify(Change::Added(entry.config()));
        Ok(Feed {
            id: feed_id(&url),
            source: Source::Api,
            config: entry.config(),
        })
    }

    /// Keeps a feed added at run time: in the store, or in a cluster in the shared list.
    fn save(&self, entry: &Entry) -> Result<(), StoreError> {
        match self.shared.get() {
            Some(shared) => {
                shared.put(feed_id(&entry.url), entry.clone());
                Ok(())
            }
            None => self
                .store
                .put_catalog_entry(&entry.url, &serde_json::to_vec(entry).unwrap_or_default()),
        }
    }

    /// The feed with this id or URL, which must not be one of this process's config file (the
    /// file's feeds are changed in the file). In a cluster, a feed another process's config
    /// file listed can be changed or removed here; that process lists it again when it starts
    /// or reloads with it still in its file.
    fn runtime_feed(&self, id_or_url: &str) -> Result<Feed, CatalogError> {
        let feed = self
            .get(id_or_url)?
            .ok_or_else(|| CatalogError::NotFound(id_or_url.into()))?;
        let in_config = self
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|c| c.url == feed.config.url);
        if in_config {
            return Err(CatalogError::FromConfig(feed.config.url));
        }
        Ok(feed)
    }

    /// Changes a feed added at run time.
    pub fn update(&self, id_or_url: &str, patch: FeedPatch) -> Result<Feed, CatalogError> {
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let feed = self.runtime_feed(id_or_url)?;
        let mut entry = self
            .runtime()?
            .into_iter()
            .find(|e| e.url == feed.config.url)
            .ok_or_else(|| CatalogError::NotFound(id_or_url.into()))?;
        if let Some(name) = patch.name {
            entry.name = (!name.trim().is_empty()).then_some(name);
        }
        if let Some(interval) = patch.interval {
            entry.interval_seconds = parse_interval(
                Some(&interval)
                    .filter(|i| !i.is_empty())
                    .map(String::as_str),
            )?;
        }
        if let Some(tags) = patch.tags {
            entry.tags = tags;
        }
        self.save(&entry)?;
        self.notify(Change::Updated(entry.config()));
        Ok(Feed {
            id: feed.id,
            source: entry.source,
            config: entry.config(),
        })
    }

    /// Removes a feed added at run time. Its articles stay.
    pub fn remove(&self, id_or_url: &str) -> Result<Feed, CatalogError> {
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let feed = self.runtime_feed(id_or_url)?;
        match self.shared.get() {
            Some(shared) => shared.delete(&feed.id),
            None => {
                self.store.remove_catalog_entry(&feed.config.url)?;
            }
        }
        self.notify(Change::Removed(feed.config.url.clone()));
        Ok(feed)
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.feeds.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists `entry` here and queues it for the bucket.
    fn put(&self, id: String, entry: Entry) {
        let mut feeds = self.feeds.write().unwrap_or_else(|p| p.into_inner());
        feeds.insert(id.clone(), entry.clone());
        // The writer is gone only when the process is stopping.
        let _ = self.writes.send(SharedWrite::Put(id, entry));
    }

    /// Drops the feed `id` here and queues its removal for the bucket.
    fn delete(&self, id: &str) {
        self.feeds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let _ = self.writes.send(SharedWrite::Delete(id.to_string()));
    }

    /// Brings the shared list in line with a config file that listed `old` and now lists `new`:
    /// puts the feeds it lacks or lists differently, drops the config feeds `new` no longer has.
    /// Returns the writes queued.
    fn publish_config(&self, old: &[FeedConfig], new: &[FeedConfig]) -> usize {
        let mut queued = 0;
        for c in new {
            let id = feed_id(&c.url);
            let listed = self.read().get(&id).cloned();
            if listed
                .as_ref()
                .is_some_and(|e| e.source == Source::Config && e.config() == *c)
            {
                continue;
            }
            let added = listed.map(|e| e.added).unwrap_or_else(Utc::now);
            self.put(id, Entry::of_config(c, added));
            queued += 1;
        }
        for c in old.iter().filter(|o| !new.iter().any(|n| n.url == o.url)) {
            let id = feed_id(&c.url);
            if self
                .read()
                .get(&id)
                .is_some_and(|e| e.source == Source::Config)
            {
                self.delete(&id);
                queued += 1;
            }
        }
        queued
    }
}

/// An interval from the API (`"15m"`), checked like the config's.
fn parse_interval(raw: Option<&str>) -> Result<Option<u64>, CatalogError> {
    raw.map(|i| {
        config::parse_duration(i)
            .map(|d| d.as_secs().max(1))
            .map_err(CatalogError::Invalid)
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(dir: &std::path::Path) -> (Catalog, mpsc::UnboundedReceiver<Change>) {
        let store = Store::open(dir, &crate::store::Options::default()).unwrap();
        let config = vec![FeedConfig {
            url: "https://config.example/rss".into(),
            name: Some("From the file".into()),
            interval: None,
            tags: vec![],
        }];
        let (tx, rx) = mpsc::unbounded_channel();
        (Catalog::new(config, store).with_changes(tx), rx)
    }

    #[test]
    fn runtime_feeds_are_added_changed_removed_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (c, mut rx) = catalog(dir.path());
            let added = c
                .add(NewFeed {
                    url: "HTTPS://Runtime.example/feed".into(),
                    name: Some("Runtime".into()),
                    interval: Some("15m".into()),
                    tags: vec!["world".into()],
                })
                .unwrap();
            assert_eq!(added.config.url, "https://runtime.example/feed");
            assert_eq!(added.config.interval, Some(Duration::from_secs(900)));
            assert!(matches!(rx.try_recv(), Ok(Change::Added(f)) if f.url == added.config.url));
            let list = c.list().unwrap();
            assert_eq!(
                list.iter().map(|f| f.source).collect::<Vec<_>>(),
                [Source::Config, Source::Api]
            );
            let patch = FeedPatch {
                interval: Some(String::new()),
                tags: Some(vec!["europe".into()]),
                ..FeedPatch::default()
            };
            let updated = c.update(&added.id, patch).unwrap();
            assert_eq!(
                (updated.config.interval, updated.config.tags.clone()),
                (None, vec!["europe".to_string()])
            );
            assert!(matches!(rx.try_recv(), Ok(Change::Updated(_))));
        }
        // After a restart: still there, with its changes.
        let (c, mut rx) = catalog(dir.path());
        let list = c.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].config.tags, vec!["europe".to_string()]);
        let removed = c.remove("https://runtime.example/feed").unwrap();
        assert!(matches!(rx.try_recv(), Ok(Change::Removed(u)) if u == removed.config.url));
        assert_eq!(c.list().unwrap().len(), 1);
    }

    #[test]
    fn a_shared_list_takes_the_stores_feeds_and_the_config_and_passes_on_what_others_change() {
        let dir = tempfile::tempdir().unwrap();
        let (c, mut rx) = catalog(dir.path());
        c.add(NewFeed {
            url: "https://before.example/feed".into(),
            ..NewFeed::default()
        })
        .unwrap();
        let _ = rx.try_recv();
        let (tx, mut writes) = mpsc::unbounded_channel();
        let other = Entry {
            url: "https://other.example/feed".into(),
            name: None,
            interval_seconds: None,
            tags: vec![],
            source: Source::Config,
            added: Utc::now(),
        };
        let listed = BTreeMap::from([(feed_id(&other.url), other.clone())]);
        // The store's feed and the config's feed are queued for the list; the store's leaves it.
        assert_eq!(c.share(listed, tx).unwrap(), 2);
        let queued: Vec<String> = std::iter::from_fn(|| writes.try_recv().ok())
            .map(|w| match w {
                SharedWrite::Put(_, e) => e.url,
                SharedWrite::Delete(id) => id,
            })
            .collect();
        assert_eq!(
            queued,
            ["https://before.example/feed", "https://config.example/rss"]
        );
        assert!(c.store.catalog_entries().unwrap().is_empty());
        let sources: Vec<(String, Source)> = c
            .list()
            .unwrap()
            .into_iter()
            .map(|f| (f.config.url, f.source))
            .collect();
        assert_eq!(sources.len(), 3);
        assert!(sources.contains(&("https://other.example/feed".into(), Source::Config)));
        // Another process's config feed can be removed here (its file lists it again later).
        c.remove("https://other.example/feed").unwrap();
        assert!(matches!(rx.try_recv(), Ok(Change::Removed(_))));
        assert!(matches!(writes.try_recv(), Ok(SharedWrite::Delete(_))));

        // Changes from elsewhere: passed on once; an echo of the same entry changes nothing.
        let new = Entry {
            url: "https://new.example/feed".into(),
            source: Source::Api,
            ..other.clone()
        };
        let id = feed_id(&new.url);
        c.apply_shared(&id, Some(new.clone()));
        assert!(matches!(rx.try_recv(), Ok(Change::Added(f)) if f.url == new.url));
        c.apply_shared(&id, Some(new.clone()));
        assert!(rx.try_recv().is_err());
        let renamed = Entry {
            name: Some("New".into()),
            ..new.clone()
        };
        c.apply_shared(&id, Some(renamed));
        assert!(
            matches!(rx.try_recv(), Ok(Change::Updated(f)) if f.name.as_deref() == Some("New"))
        );
        c.apply_shared(&id, None);
        assert!(matches!(rx.try_recv(), Ok(Change::Removed(u)) if u == new.url));
        // This process's config feed is the file's: a change to it from elsewhere is kept in
        // the list but not passed on.
        let config_id = feed_id("https://config.example/rss");
        c.apply_shared(&config_id, None);
        assert!(rx.try_recv().is_err());
        assert_eq!(c.list().unwrap().len(), 2);
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _rx) = catalog(dir.path());
        let add = |url: &str| {
            c.add(NewFeed {
                url: url.into(),
                ..NewFeed::default()
            })
        };
        assert!(matches!(
            add("https://config.example/rss"),
            Err(CatalogError::Exists { .. })
        ));
        assert!(matches!(
            add("file:///etc/passwd"),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            add("relative/path.xml"),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(add("gopher://x/"), Err(CatalogError::Invalid(_))));
        let bad_interval = c.add(NewFeed {
            url: "https://ok.example/".into(),
            interval: Some("soon".into()),
            ..NewFeed::default()
        });
        assert!(
            matches!(bad_interval, Err(CatalogError::Invalid(m)) if m.contains("invalid duration"))
        );
        let id = feed_id("https://config.example/rss");
        assert!(matches!(c.remove(&id), Err(CatalogError::FromConfig(_))));
        assert!(matches!(
            c.update(&id, FeedPatch::default()),
            Err(CatalogError::FromConfig(_))
        ));
        assert!(matches!(c.remove("nope"), Err(CatalogError::NotFound(_))));
    }
}
