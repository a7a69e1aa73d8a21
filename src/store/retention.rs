//! Retention: deleting old articles (`retention.max_age`, `retention.max_articles`) with every
//! entry that points at them, a bounded step at a time so that ingestion never waits long.
//!
//! What goes, oldest first (seq follows storage time, so what is deleted is always a prefix of
//! the article log and a reader paging forward never meets a hole):
//! - an article past either limit loses its record. If it is still inside `dedup.window`, a
//!   **tombstone** takes its place (`t` + seq: the record without its text, and its fingerprint),
//!   its item id, guid, link and similarity entries stay, and a copy arriving later is still a
//!   duplicate of it (`duplicate_of` names the deleted article). Outside the window it goes
//!   whole: record, item id, and its guid and link in the lookup tables, with the duplicate
//!   records that repeat it (its `also_seen`) and their item ids;
//! - a tombstone goes the same way once the window has passed it.
//!
//! So a duplicate record lives as long as the article it repeats, or that article's tombstone:
//! `duplicates` may list copies of an article deleted a moment ago, never of one long gone.
//!
//! Each deletion is one sled batch, so a crash leaves an article either whole, a tombstone, or
//! gone. An item a feed keeps listing after its article was deleted and left the window is
//! stored again as new (its id is forgotten with it; keeping every id forever would make the
//! database grow without bound).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::seqlog::{self, SeqLog};
use super::{Article, ArticleKeys, IdAndUrl, StoreError, Writer, corrupt, keys, records, to_json};
use crate::config::RetentionConfig;
use crate::dedup;

/// What one [`Writer::retain`] step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    /// Articles deleted.
    pub articles: usize,
    /// Of those, how many left a tombstone (they were inside the dedup window).
    pub tombstones: usize,
    /// Tombstones removed because the window passed them.
    pub expired_tombstones: usize,
    /// Duplicate records deleted (with the articles or tombstones they repeat).
    pub duplicates: usize,
    /// The step's budget ran out with work left: call again.
    pub more: bool,
    /// Segments of the body log deleted because no record points into them any more.
    pub segments: usize,
}

impl Retained {
    /// Whether anything was deleted.
    pub fn any(&self) -> bool {
        self.articles + self.expired_tombstones + self.duplicates > 0
    }
}

impl Writer {
    /// Deletes at most `budget` records that `limits` no longer keep (see the module
    /// documentation); `window` is `dedup.window`, inside which deleted articles leave
    /// tombstones. Call it after [`Writer::expire_before`] with the same `now`.
    pub fn retain(
        &mut self,
        limits: &RetentionConfig,
        window: Duration,
        now: DateTime<Utc>,
        budget: usize,
    ) -> Result<Retained, StoreError> {
        let now_ms = now.timestamp_millis();
        let age_cutoff = limits.max_age.map(|a| now_ms - millis(a));
        let window_cutoff = now_ms - millis(window);
        let last = self.store.last_article_seq()?;
        // Seqs below this are past `max_articles` (seqs are dense: only retention deletes).
        let count_cut = limits
            .max_articles
            .map(|n| last.saturating_sub(n).saturating_add(1));
        let mut done = Retained::default();
        if limits.max_age.is_none() && limits.max_articles.is_none() {
            return Ok(done);
        }
        let mut budget = budget;

        // Articles, oldest first, until the first one both limits keep.
        let mut doomed = Vec::new();
        let h = self.store.h()?;
        for entry in seqlog::ARTICLES.forward(&h.main, 0, u64::MAX) {
            let (seq, v) = entry?;
            let v = self.store.resolve(seq, v)?;
            let ak = records::article_keys(&v).ok_or_else(|| corrupt(seq, "article keys"))?;
            let old = age_cutoff.is_some_and(|c| ak.stored_ms < c);
            let many = count_cut.is_some_and(|c| seq < c);
            if !old && !many {
                break;
            }
            if doomed.len() == budget {
                done.more = true;
                break;
            }
            doomed.push((seq, v, ak));
        }
        budget -= doomed.len();
        for (seq, value, ak) in doomed {
            let tombstone = ak.stored_ms >= window_cutoff;
            done.duplicates += self.delete_article(seq, &value, &ak, tombstone)?;
            done.articles += 1;
            done.tombstones += usize::from(tombstone);
        }

        // Tombstones the window has passed.
        let mut expired = Vec::new();
        for entry in seqlog::TOMBSTONES.forward(&h.main, 0, u64::MAX) {
            let (seq, v) = entry?;
            let ak = records::article_keys(&v).ok_or_else(|| corrupt(seq, "tombstone keys"))?;
            if ak.stored_ms >= window_cutoff {
                break;
            }
            if expired.len() == budget {
                done.more = true;
                break;
            }
            expired.push((seq, v, ak));
        }
        for (seq, value, ak) in expired {
            done.duplicates += self.forget_article(seqlog::TOMBSTONES, seq, &value, &ak)?;
            done.expired_tombstones += 1;
        }
        if done.any() && !done.more {
            done.segments = self.store.remove_dead_bodies()?;
        }

        Ok(done)
    }

    /// Deletes article `seq`, leaving a tombstone or forgetting it whole; returns how many
    /// duplicate records went with it.
    fn delete_article(
        &mut self,
        seq: u64,
        value: &[u8],
        ak: &ArticleKeys,
        tombstone: bool,
    ) -> Result<usize, StoreError> {
        if !tombstone {
            return self.forget_article(seqlog::ARTICLES, seq, value, ak);
        }
        let json = records::article_json(value).ok_or_else(|| corrupt(seq, "article record"))?;
        let article: Article =
            serde_json::from_slice(json).map_err(|e| corrupt(seq, &e.to_string()))?;
        let stub = to_json(&Article {
            text: String::new(),
            ..article
        });
        let mut batch = sled::Batch::default();
        let h = self.store.h()?;
        seqlog::ARTICLES.remove(&h.main, &mut batch, [seq])?;
        batch.insert(
            &keys::logged(keys::TOMBSTONE, seq)[..],
            records::encode_article(&stub, ak),
        );
        h.main.apply_batch(batch)?;
        self.store.note_unsynced();
        Ok(0)
    }

    /// Removes record `seq` of `log` (an article or a tombstone) with its item id,
    /// and the duplicate records that repeat it with theirs, and forgets its guid and link in
    /// the lookup tables. Returns how many duplicate records went.
    fn forget_article(
        &mut self,
        log: SeqLog,
        seq: u64,
        value: &[u8],
        ak: &ArticleKeys,
    ) -> Result<usize, StoreError> {
        let store = &self.store;
        let json = records::article_json(value).ok_or_else(|| corrupt(seq, "article record"))?;
        let a: IdAndUrl = serde_json::from_slice(json).map_err(|e| corrupt(seq, &e.to_string()))?;
        let h = store.h()?;
        let mut batch = sled::Batch::default();
        log.remove(&h.main, &mut batch, [seq])?;
        let item = keys::item(&a.id);
        if store.h()?.main.get(&item)?.as_deref() == Some(&keys::became_article(seq)[..]) {
            batch.remove(item);
        }
        let mut copies = Vec::new();
        let mut gone = Vec::new();
        for key in h.main.scan_prefix(keys::also_prefix(seq)).keys() {
            let key = key?;
            let dup = keys::read_u64(&key[9..]).unwrap_or(0);
            batch.remove(key);
            if let Some(v) = seqlog::DUPLICATES.get(&h.main, dup)? {
                let v = store.resolve(dup, v)?;
                let json =
                    records::article_json(&v).ok_or_else(|| corrupt(dup, "duplicate record"))?;
                let d: IdAndUrl =
                    serde_json::from_slice(json).map_err(|e| corrupt(dup, &e.to_string()))?;
                gone.push(dup);
                let item = keys::item(&d.id);
                if store.h()?.main.get(&item)?.as_deref() == Some(&keys::became_duplicate(dup)[..])
                {
                    batch.remove(item);
                }
                copies.push(d.id);
            }
        }
        seqlog::DUPLICATES.remove(&h.main, &mut batch, gone)?;
        h.main.apply_batch(batch)?;
        store.note_unsynced();
        let global_guid = dedup::is_global_guid(&ak.guid).then_some(ak.guid.as_str());
        let mut lookup = store.lookup()?.write().unwrap_or_else(|p| p.into_inner());
        lookup.forget_article(seq, &a.id, global_guid, a.url.as_deref());
        for id in &copies {
            lookup.forget_item(id);
        }
        Ok(copies.len())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
