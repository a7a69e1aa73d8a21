//! Explain: why an item was kept or suppressed, and which stored articles came closest.
//!
//! In: an item id (of an article or of a suppressed copy) or a URL. Out: an [`Explanation`]: the
//! item, its verdict (kept, or the reason and the article it repeats), its fingerprint, and the
//! stored articles nearest to it, each with its simhash distance and containment. Candidates come
//! from the same indexes dedup uses (the near-duplicate blocks, the containment anchors, the
//! exact keys) and are scored exactly, so an operator sees the numbers dedup saw.
//!
//! # Format
//! One JSON object: `item` (`kind` `article` or `duplicate`, `seq`, `id`, `feed`, `url`,
//! `title`), `verdict` (`kept` true, or `reason`, `duplicate_of`, `distance`, `containment`),
//! `words`, `simhash` (16 hex digits), `candidates` (at most five: `seq`, `id`, `feed`, `url`,
//! `title`, `distance`, `containment`, `shared_marks` (8-word passages), `shared_short_marks`
//! (3-word phrases), `stored_before` (true when it was stored
//! before the item), most text in common first).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dedup::containment::Overlap;
use crate::dedup::fingerprint::distance;
use crate::dedup::{Index, Reason};
use crate::parse::normalize::canonical_link;
use crate::store::{ArticleKeys, Store, StoreError};

/// Candidates shown.
pub const SHOWN: usize = 5;

/// Why an item was kept or suppressed.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The item explained.
    pub item: Item,
    /// What dedup decided.
    pub verdict: Decision,
    /// Words in its body.
    pub words: u32,
    /// Its simhash, 16 hex digits.
    pub simhash: String,
    /// The stored articles nearest to it.
    pub candidates: Vec<Candidate>,
}

/// The item explained.
#[derive(Debug, Serialize)]
pub struct Item {
    /// `article` or `duplicate`.
    pub kind: &'static str,
    /// Its seq in its log.
    pub seq: u64,
    /// Its item id.
    pub id: String,
    /// The feed that delivered it.
    pub feed: String,
    /// Its canonical link.
    pub url: Option<String>,
    /// Its title.
    pub title: String,
}

/// What dedup decided.
#[derive(Debug, Serialize)]
pub struct Decision {
    /// Stored as a unique article.
    pub kept: bool,
    /// Why it was suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The id of the article it repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Hamming distance, for `near`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    /// Containment, for `contained`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containment: Option<f64>,
}

/// A stored article near the item.
#[derive(Debug, Serialize)]
pub struct Candidate {
    /// Its seq.
    pub seq: u64,
    /// Its id.
    pub id: String,
    /// Its feed.
    pub feed: String,
    /// Its link.
    pub url: Option<String>,
    /// Its title.
    pub title: String,
    /// Simhash Hamming distance to the item.
    pub distance: u32,
    /// How much of the smaller text is in the larger (0..1).
    pub containment: f64,
    /// Long (8-word) containment marks the two share.
    pub shared_marks: u32,
    /// Short (3-word) containment marks the two share.
    pub shared_short_marks: u32,
    /// Stored before the item was judged.
    pub stored_before: bool,
}

/// Explains the item named by `target` (an item id or a URL); `None` when nothing matches.
pub fn explain(store: &Store, target: &str) -> Result<Option<Explanation>, StoreError> {
    let Some((item, keys, decision)) = resolve(store, target)? else {
        return Ok(None);
    };
    let mut seqs: BTreeMap<u64, ()> = BTreeMap::new();
    for (seq, _) in store.near_candidates(keys.simhash)? {
        seqs.insert(seq, ());
    }
    // Dedup probes only the item's anchors; explain, which is rare, probes its marks as well, so
    // that a short story spliced into the item shows up too.
    let mut probes: Vec<u64> = keys
        .anchors
        .iter()
        .chain(&keys.short_marks)
        .copied()
        .collect();
    probes.sort_unstable();
    probes.dedup();
    let fp = keys.fingerprint();
    for o in store.anchored(&probes, &fp, 2 * SHOWN)? {
        seqs.insert(o.seq, ());
    }
    if let Some(seq) = item
        .url
        .as_deref()
        .map(|u| store.by_url(u))
        .transpose()?
        .flatten()
    {
        seqs.insert(seq, ());
    }
    if let Some(seq) = store.by_content(keys.content)? {
        seqs.insert(seq, ());
    }
    if let Some(of) = &decision.duplicate_of
        && let Some((true, seq)) = store.item(of)?
    {
        seqs.insert(seq, ());
    }
    let own = keys.long_marks.len() as u32;
    let mut candidates = Vec::new();
    for &seq in seqs.keys() {
        if item.kind == "article" && seq == item.seq {
            continue;
        }
        let (Some(article), Some(ck)) = (store.article(seq)?, store.article_keys(seq)?) else {
            continue;
        };
        let overlap = Overlap::between(seq, &fp, ck.simhash, &ck.short_marks, &ck.long_marks);
        candidates.push(Candidate {
            seq,
            id: article.id,
            feed: article.feed,
            url: article.url,
            title: article.title,
            distance: distance(keys.simhash, ck.simhash),
            containment: (overlap.containment(own) * 1000.0).round() / 1000.0,
            shared_marks: overlap.long_shared(),
            shared_short_marks: overlap.short_shared,
            stored_before: if item.kind == "article" {
                seq < item.seq
            } else {
                ck.stored_ms <= keys.stored_ms
            },
        });
    }
    // Most text in common first: the article a copy mostly repeats leads, a short story spliced
    // into it follows.
    candidates.sort_by(|a, b| {
        b.shared_marks
            .cmp(&a.shared_marks)
            .then(a.distance.cmp(&b.distance))
            .then(a.seq.cmp(&b.seq))
    });
    candidates.truncate(SHOWN);
    Ok(Some(Explanation {
        words: keys.words,
        simhash: format!("{:016x}", keys.simhash),
        item,
        verdict: decision,
        candidates,
    }))
}

/// The item behind `target`, its fingerprint and its verdict.
fn resolve(
    store: &Store,
    target: &str,
) -> Result<Option<(Item, ArticleKeys, Decision)>, StoreError> {
    let target = target.trim();
    let found = match store.item(target)? {
        Some(found) => Some(found),
        None => match canonical_link(target, None)
            .map(|u| store.by_url(&u))
            .transpose()?
            .flatten()
        {
            Some(seq) => Some((true, seq)),
            None => duplicate_by_url(store, target)?.map(|seq| (false, seq)),
        },
    };
    match found {
        Some((true, seq)) => {
            let (Some(a), Some(keys)) = (store.article(seq)?, store.article_keys(seq)?) else {
                return Ok(None);
            };
            let item = Item {
                kind: "article",
                seq,
                id: a.id,
                feed: a.feed,
                url: a.url,
                title: a.title,
            };
            let kept = Decision {
                kept: true,
                reason: None,
                duplicate_of: None,
                distance: None,
                containment: None,
            };
            Ok(Some((item, keys, kept)))
        }
        Some((false, seq)) => {
            let Some((d, keys)) = store.duplicate(seq)? else {
                return Ok(None);
            };
            let item = Item {
                kind: "duplicate",
                seq,
                id: d.id,
                feed: d.feed,
                url: d.url,
                title: d.title,
            };
            let decision = Decision {
                kept: false,
                reason: Some(d.reason),
                duplicate_of: Some(d.duplicate_of),
                distance: d.distance,
                containment: d.containment,
            };
            Ok(Some((item, keys, decision)))
        }
        None => Ok(None),
    }
}

/// The newest duplicate whose link is `url` (or its canonical form). A scan: explain is rare.
fn duplicate_by_url(store: &Store, url: &str) -> Result<Option<u64>, StoreError> {
    let canonical = canonical_link(url, None);
    let mut found = None;
    let mut after = 0;
    loop {
        let page = store.duplicates_after(after, 1000)?;
        let Some(&(last, _)) = page.last() else { break };
        for (seq, json) in &page {
            let record: serde_json::Value = serde_json::from_slice(json).unwrap_or_default();
            let link = record["url"].as_str();
            if link.is_some() && (link == Some(url) || link.map(str::to_string) == canonical) {
                found = Some(*seq);
            }
        }
        after = last;
    }
    Ok(found)
}
