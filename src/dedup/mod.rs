//! Dedup: decides whether a [`Candidate`] is new, a re-listing, or a duplicate of a stored article.
//!
//! In: a candidate, its [`Fingerprint`], and an [`Index`] over what is stored (the store
//! implements it). Out: a [`Verdict`]. A duplicate is an expected outcome, not an error, so it is a
//! value: the stored article it repeats, the [`Reason`], and the Hamming distance for `near`.
//!
//! The checks run cheapest first and stop at the first hit:
//! 1. the same feed listed the same guid before: [`Verdict::Relisted`], skipped without a record;
//! 2. `guid`: the same globally unique item id was stored from another feed;
//! 3. `url`: the same canonical link;
//! 4. `content`: the same words in the same order (hash of the normalized body);
//! 5. `near`: a stored simhash within `max_distance` bits, found through the block tables of
//!    [`blocks`], never by a scan;
//! 6. `contained`: the text repeats stored text word for word: passages reused (a splice, a copy
//!    cut to the lede, a syndicated copy), words edited throughout (a spun copy), or two stored
//!    stories spliced together (a mash-up); see [`containment`] for the three rules and their
//!    thresholds, tuned on the evaluation.
//!
//! Short bodies are not fingerprint evidence: a one-line summary shares too much with unrelated
//! one-liners, or is quoted from the story it summarizes, so `content` needs
//! [`MIN_CONTENT_WORDS`], `near` needs [`MIN_NEAR_WORDS`] on both sides, and `contained` needs
//! [`MIN_CONTAINED_WORDS`].

/// Defines a function that runs `$generic` compiled for AVX2 when the CPU has it (checked at
/// run time: the binary targets baseline x86-64) and as compiled otherwise. `$generic` should be
/// `#[inline(always)]`, so that each copy is compiled for its own target.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* fn $name:ident($arg:ident: $ty:ty) -> $ret:ty = $generic:ident) => {
        $(#[$doc])*
        fn $name($arg: $ty) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($arg: $ty) -> $ret {
                    $generic($arg)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2, checked just above.
                    return unsafe { avx2($arg) };
                }
            }
            $generic($arg)
        }
    };
}

pub mod blocks;
pub mod clean;
pub mod containment;
pub mod fingerprint;

use serde::{Deserialize, Serialize};

use crate::parse::Candidate;
use containment::Overlap;
use fingerprint::Fingerprint;

/// Bodies shorter than this are never `content` duplicates.
pub const MIN_CONTENT_WORDS: u32 = 8;
/// Bodies shorter than this are never `near` duplicates, nor indexed for it.
pub const MIN_NEAR_WORDS: u32 = 30;
/// Bodies shorter than this are never `contained` duplicates: a one-sentence summary quoted from
/// a story is not a copy of it. (First sentences of news stories run to 32 words at the 99th
/// percentile of the evaluation corpus; copies cut to the lede are longer.)
pub const MIN_CONTAINED_WORDS: u32 = 40;
/// Stored articles a containment lookup considers, by marks shared.
pub const OVERLAP_CANDIDATES: usize = 4;

/// Why an item was suppressed; serialized as in SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The same globally unique item id was already stored from another feed.
    Guid,
    /// The same canonical link.
    Url,
    /// The same normalized text.
    Content,
    /// A simhash within the configured distance.
    Near,
    /// Most of one text is contained in the other.
    Contained,
}

impl Reason {
    /// The name used in records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Guid => "guid",
            Reason::Url => "url",
            Reason::Content => "content",
            Reason::Near => "near",
            Reason::Contained => "contained",
        }
    }
}

/// A stored article that a candidate repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Sequence number of the stored article.
    pub seq: u64,
    /// Why it matches.
    pub reason: Reason,
    /// Hamming distance, for `near`.
    pub distance: Option<u32>,
    /// Share of the text contained, for `contained`.
    pub containment: Option<f64>,
}

/// What to do with a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Store it.
    New,
    /// Its feed listed it before: skip it, record nothing.
    Relisted,
    /// It repeats a stored article: record it as a duplicate.
    Duplicate(Match),
}

/// What dedup needs to know about the stored articles.
pub trait Index {
    /// The store's error type.
    type Error;
    /// Did `feed` already deliver an item with this guid (stored or suppressed)?
    fn seen_in_feed(&self, feed: &str, guid: &str) -> Result<bool, Self::Error>;
    /// The article stored under this globally unique guid.
    fn by_guid(&self, guid: &str) -> Result<Option<u64>, Self::Error>;
    /// The article stored under this canonical link.
    fn by_url(&self, url: &str) -> Result<Option<u64>, Self::Error>;
    /// The article with this content hash.
    fn by_content(&self, hash: u64) -> Result<Option<u64>, Self::Error>;
    /// The stored article whose simhash is nearest to `simhash`, if within `max_distance`;
    /// ties go to the oldest.
    fn nearest(&self, simhash: u64, max_distance: u32) -> Result<Option<(u64, u32)>, Self::Error>;
    /// The stored articles indexed under any of `anchors`, at most `limit` (those hit by the most
    /// anchors), each compared with the candidate's fingerprint.
    fn overlaps(
        &self,
        anchors: &[u64],
        candidate: &Fingerprint,
        limit: usize,
    ) -> Result<Vec<Overlap>, Self::Error>;
}

/// Dedup settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Largest Hamming distance for `near`.
    pub max_distance: u32,
    /// Smallest containment (0..1) for `contained`.
    pub containment: f64,
}

/// True when a guid is meant to be unique beyond its feed (a URL, URN or tag URI, or a long
/// opaque id), so that seeing it in another feed means the same item. Short ids such as `"42"`
/// are only unique within their feed.
pub fn is_global_guid(guid: &str) -> bool {
    !guid.starts_with("feedsieve:") && (guid.contains(':') || guid.len() >= 24)
}

/// Judges a candidate against the stored articles, cheapest check first.
pub fn judge<I: Index>(
    c: &Candidate,
    fp: &Fingerprint,
    index: &I,
    settings: Settings,
) -> Result<Verdict, I::Error> {
    if index.seen_in_feed(&c.feed, &c.guid)? {
        return Ok(Verdict::Relisted);
    }
    let exact = |seq, reason| {
        Verdict::Duplicate(Match {
            seq,
            reason,
            distance: None,
            containment: None,
        })
    };
    if is_global_guid(&c.guid)
        && let Some(seq) = index.by_guid(&c.guid)?
    {
        return Ok(exact(seq, Reason::Guid));
    }
    if let Some(url) = &c.url
        && let Some(seq) = index.by_url(url)?
    {
        return Ok(exact(seq, Reason::Url));
    }
    if fp.words >= MIN_CONTENT_WORDS
        && let Some(seq) = index.by_content(fp.content)?
    {
        return Ok(exact(seq, Reason::Content));
    }
    if fp.words >= MIN_NEAR_WORDS
        && let Some((seq, distance)) = index.nearest(fp.simhash, settings.max_distance)?
    {
        return Ok(Verdict::Duplicate(Match {
            seq,
            reason: Reason::Near,
            distance: Some(distance),
            containment: None,
        }));
    }
    if fp.words >= MIN_CONTAINED_WORDS {
        let overlaps = index.overlaps(&fp.anchors, fp, OVERLAP_CANDIDATES)?;
        if let Some(c) = containment::decide(fp, &overlaps, settings.containment) {
            return Ok(Verdict::Duplicate(Match {
                seq: c.seq,
                reason: Reason::Contained,
                distance: None,
                containment: Some(c.containment),
            }));
        }
    }
    Ok(Verdict::New)
}
