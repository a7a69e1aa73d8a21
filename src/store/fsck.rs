//! `fsck`: checks that the database keeps its promises, and rebuilds what can be rebuilt.
//!
//! The records (articles, tombstones, duplicates) are the truth; everything else is derived from
//! them and can be made again: the `also_seen` links (`x`), the sequence counters, the dedup
//! indexes in memory (`lookup.bin`, which since format 5 also map item ids to their records),
//! and the item id keys (`i`) of databases from before format 5. [`Store::fsck`] checks, in one
//! pass over each kind of key:
//! - every record decodes (its JSON and its stored fingerprint);
//! - seq is sane: the counters are at least every seq handed out (so none is reused), and
//!   tombstones come before every live article (retention deletes a prefix);
//! - every record is indexed: its item id finds it (in the dedup indexes, or by its `i` key);
//! - every index entry points at a record: each item id key at the record with that id, each
//!   `also_seen` link at an article (or tombstone) and at a duplicate that names it;
//! - every duplicate has its `also_seen` link.
//!
//! [`Store::repair`] removes the item id keys, rewrites the links from the records, raises the
//! counters, and removes `lookup.bin` so that the dedup indexes are rebuilt from the log at the
//! next open.
//! A record that does not decode is reported and left alone: repairing never deletes data.

use std::collections::HashMap;

use super::{LOOKUP_FILE, SEQ_ARTICLES, SEQ_DUPLICATES, Store, StoreError, keys, records, seqlog};

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Live articles.
    pub articles: u64,
    /// Tombstones (articles deleted inside the dedup window).
    pub tombstones: u64,
    /// Duplicate records.
    pub duplicates: u64,
    /// Each problem, in a sentence.
    pub problems: Vec<String>,
}

/// What one record says about itself.
struct Seen {
    id: String,
    /// For duplicates: the id of the article they repeat.
    of: Option<String>,
}

#[derive(serde::Deserialize)]
struct Ids {
    id: String,
    #[serde(default)]
    duplicate_of: Option<String>,
}

/// Problems are listed up to this many; the count goes on.
const MAX_LISTED: usize = 1000;

impl Report {
    fn problem(&mut self, text: String) {
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text);
        }
    }
}

impl Store {
    /// Checks the database; see the module documentation.
    pub fn fsck(&self) -> Result<Report, StoreError> {
        let mut report = Report::default();
        let (articles, tombstones, duplicates) = self.read_records(&mut report)?;
        report.articles = articles.len() as u64;
        report.tombstones = tombstones.len() as u64;
        report.duplicates = duplicates.len() as u64;

        // Seq: the counters cover every seq, and tombstones come first.
        let last_article = self.meta(SEQ_ARTICLES)?.unwrap_or(0);
        let last_duplicate = self.meta(SEQ_DUPLICATES)?.unwrap_or(0);
        let top = |m: &HashMap<u64, Seen>| m.keys().max().copied().unwrap_or(0);
        let top_article = top(&articles).max(top(&tombstones));
        if top_article > last_article {
            report.problem(format!(
                "the article counter is {last_article} but article {top_article} exists: a seq could be handed out twice"
            ));
        }
        if top(&duplicates) > last_duplicate {
            report.problem(format!(
                "the duplicate counter is {last_duplicate} but duplicate {} exists",
                top(&duplicates)
            ));
        }
        if let (Some(t), Some(a)) = (tombstones.keys().max(), articles.keys().min())
            && t > a
        {
            report.problem(format!(
                "tombstone {t} comes after live article {a}: retention deletes only the oldest"
            ));
        }

        // Every record is found by its item id: in the dedup indexes since format 5 (`lookup`,
        // loaded from `lookup.bin` or rebuilt from the records), by its `i` key before.
        let by_id: HashMap<&str, [u8; 9]> = articles
            .iter()
            .chain(&tombstones)
            .map(|(&seq, s)| (s.id.as_str(), keys::became_article(seq)))
            .chain(
                duplicates
                    .iter()
                    .map(|(&seq, s)| (s.id.as_str(), keys::became_duplicate(seq))),
            )
            .collect();
        for (id, want) in &by_id {
            let wanted = (want[0] == keys::ARTICLE, keys::read_u64(&want[1..]));
            match self.item(id)? {
                Some((article, seq)) if (article, Some(seq)) == wanted => {}
                Some(_) => report.problem(format!("item {id} is indexed as another record")),
                None => report.problem(format!("item {id} is not indexed")),
            }
        }
        // An `i` key (from before format 5) points at the record that has its id.
        for kv in self.h()?.main.scan_prefix(b"i") {
            let (k, v) = kv?;
            let id = String::from_utf8_lossy(&k[1..]);
            match by_id.get(id.as_ref()) {
                Some(want) if v.as_ref() == want.as_slice() => {}
                Some(_) => report.problem(format!("item {id} points at another record")),
                None => {
                    let target = v
                        .first()
                        .map(|&p| p as char)
                        .zip(keys::read_u64(v.get(1..).unwrap_or_default()));
                    report.problem(format!(
                        "item {id} points at {target:?}, which holds no record with that id"
                    ));
                }
            }
        }
        // Every link joins an article (or tombstone) and a duplicate that names it.
        let mut linked = std::collections::HashSet::new();
        for key in self.h()?.main.scan_prefix(b"x").keys() {
            let key = key?;
            let (Some(article), Some(dup)) = (keys::read_u64(&key[1..]), keys::read_u64(&key[9..]))
            else {
                report.problem("a malformed also_seen key".into());
                continue;
            };
            let named = articles.get(&article).or_else(|| tombstones.get(&article));
            match (named, duplicates.get(&dup)) {
                (Some(a), Some(d)) if d.of.as_deref() == Some(a.id.as_str()) => {
                    linked.insert(dup);
                }
                (Some(_), Some(_)) => report.problem(format!(
                    "duplicate {dup} is linked to article {article} but names another"
                )),
                _ => report.problem(format!(
                    "the also_seen link {article} -> {dup} points at a missing record"
                )),
            }
        }
        for seq in duplicates.keys() {
            if !linked.contains(seq) {
                report.problem(format!(
                    "duplicate {seq} is not linked to the article it repeats"
                ));
            }
        }
        Ok(report)
    }

    /// Rebuilds the `also_seen` links and the counters from the records, removes the item id
    /// keys and `lookup.bin` (the next open indexes the ids from the records); then checks
    /// again and returns that report.
    pub fn repair(&self) -> Result<Report, StoreError> {
        let mut ignored = Report::default();
        let (articles, tombstones, duplicates) = self.read_records(&mut ignored)?;
        // Drop every derived key, then write the links again from the records.
        for prefix in [b'i', b'x'] {
            self.remove_prefix(prefix)?;
        }
        let mut batch = sled::Batch::default();
        let mut article_of: HashMap<&str, u64> = HashMap::new();
        // Item ids need no `i` key since format 5: the lookup, rebuilt at the next open, indexes
        // them.
        for (&seq, s) in articles.iter().chain(&tombstones) {
            article_of.insert(s.id.as_str(), seq);
        }
        for (&seq, s) in &duplicates {
            if let Some(&article) = s.of.as_deref().and_then(|of| article_of.get(of)) {
                batch.insert(&keys::also(article, seq)[..], &[][..]);
            }
        }
        let top = |m: &HashMap<u64, Seen>| m.keys().max().copied().unwrap_or(0);
        let last_article = self
            .meta(SEQ_ARTICLES)?
            .unwrap_or(0)
            .max(top(&articles))
            .max(top(&tombstones));
        let last_duplicate = self
            .meta(SEQ_DUPLICATES)?
            .unwrap_or(0)
            .max(top(&duplicates));
        batch.insert(keys::meta(SEQ_ARTICLES), &last_article.to_be_bytes()[..]);
        batch.insert(
            keys::meta(SEQ_DUPLICATES),
            &last_duplicate.to_be_bytes()[..],
        );
        self.h()?.main.apply_batch(batch)?;
        self.h()?.db.flush()?;
        let lookup = self.shared.path.join(LOOKUP_FILE);
        match std::fs::remove_file(&lookup) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: lookup,
                    source,
                });
            }
        }
        // Indexes already in memory are rebuilt now, from the records as they stand.
        self.reload_lookup()?;
        self.fsck()
    }

    /// Every article, tombstone and duplicate record by seq; records that do not decode are
    /// reported and left out.
    #[allow(clippy::type_complexity)]
    fn read_records(
        &self,
        report: &mut Report,
    ) -> Result<(HashMap<u64, Seen>, HashMap<u64, Seen>, HashMap<u64, Seen>), StoreError> {
        let mut out = [HashMap::new(), HashMap::new(), HashMap::new()];
        let h = self.h()?;
        for (i, (log, what)) in [
            (seqlog::ARTICLES, "article"),
            (seqlog::TOMBSTONES, "tombstone"),
            (seqlog::DUPLICATES, "duplicate"),
        ]
        .into_iter()
        .enumerate()
        {
            for entry in log.forward(&h.main, 0, u64::MAX) {
                let (seq, v) = match entry {
                    Ok(entry) => entry,
                    // A malformed key or group: reported, and the scan goes on.
                    Err(e @ StoreError::Corrupt { .. }) => {
                        report.problem(e.to_string());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let v = match self.resolve(seq, v) {
                    Ok(v) => v,
                    Err(e) => {
                        report.problem(format!("{what} {seq}: {e}"));
                        continue;
                    }
                };
                let ids = records::article_json(&v)
                    .and_then(|json| serde_json::from_slice::<Ids>(json).ok());
                match (ids, records::article_keys(&v)) {
                    (Some(ids), Some(_)) => {
                        out[i].insert(
                            seq,
                            Seen {
                                id: ids.id,
                                of: ids.duplicate_of,
                            },
                        );
                    }
                    _ => report.problem(format!("{what} {seq} does not decode")),
                }
            }
        }
        let [articles, tombstones, duplicates] = out;
        Ok((articles, tombstones, duplicates))
    }
}
