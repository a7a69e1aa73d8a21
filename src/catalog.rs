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

use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::{self, FeedConfig};
use crate::store::{FeedState, FeedView, Store, StoreError};

/// Where a feed was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The config file.
    Config,
    /// Added at run time (API or CLI).
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

/// What the store keeps for a feed added at run time.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    interval_seconds: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    added: DateTime<Utc>,
}

impl Entry {
    fn config(&self) -> FeedConfig {
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

/// The feed list, over the config's feeds and the store.
pub struct Catalog {
    /// The config file's feeds; replaced on reload.
    config: RwLock<Vec<FeedConfig>>,
    store: Store,
    changes: Option<mpsc::UnboundedSender<Change>>,
    /// Serializes add, update and remove (each is a read followed by a write).
    writing: Mutex<()>,
}

impl Catalog {
    /// The catalog of `config`'s feeds and the runtime feeds in `store`.
    pub fn new(config: Vec<FeedConfig>, store: Store) -> Catalog {
        Catalog {
            config: RwLock::new(config),
            store,
            changes: None,
            writing: Mutex::new(()),
        }
    }

    /// Sends every change to `changes` (the scheduler's inbox).
    pub fn with_changes(mut self, changes: mpsc::UnboundedSender<Change>) -> Catalog {
        self.changes = Some(changes);
        self
    }

    fn runtime(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries: Vec<Entry> = self
            .store
            .catalog_entries()?
            .iter()
            .filter_map(|v| serde_json::from_slice(v).ok())
            .collect();
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
                    source: Source::Api,
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
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = feeds;
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
            added: Utc::now(),
        };
        self.store
            .put_catalog_entry(&url, &serde_json::to_vec(&entry).unwrap_or_default())?;
        self.notify(Change::Added(entry.config()));
        Ok(Feed {
            id: feed_id(&url),
            source: Source::Api,
            config: entry.config(),
        })
    }

    /// The feed with this id or URL, which must have been added at run time (the config file's
    /// feeds are changed in the file).
    fn runtime_feed(&self, id_or_url: &str) -> Result<Feed, CatalogError> {
        let feed = self
            .get(id_or_url)?
            .ok_or_else(|| CatalogError::NotFound(id_or_url.into()))?;
        if feed.source == Source::Config {
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
        self.store
            .put_catalog_entry(&entry.url, &serde_json::to_vec(&entry).unwrap_or_default())?;
        self.notify(Change::Updated(entry.config()));
        Ok(Feed {
            id: feed.id,
            source: Source::Api,
            config: entry.config(),
        })
    }

    /// Removes a feed added at run time. Its articles stay.
    pub fn remove(&self, id_or_url: &str) -> Result<Feed, CatalogError> {
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let feed = self.runtime_feed(id_or_url)?;
        self.store.remove_catalog_entry(&feed.config.url)?;
        self.notify(Change::Removed(feed.config.url.clone()));
        Ok(feed)
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
