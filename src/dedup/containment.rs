//! Containment: how much of one text appears word for word in another, for splices, mash-ups,
//! copies cut to the lede and spun copies, which move a simhash too far.
//!
//! A body is cut into *shingles*, hashes of overlapping word n-grams, at two lengths, and
//! sketched three ways:
//!
//! - **Long marks** ([`LONG`]-word shingles, winnowed): reuse of whole passages. Winnowing
//!   (Schleimer, Wilkerson and Aiken, SIGMOD 2003) keeps the smallest of every [`WINDOW`]
//!   consecutive shingles, about 2/(WINDOW+1) of them, and guarantees a shared mark for any shared
//!   run of at least `WINDOW + n - 1` words, wherever it sits.
//! - **Short marks** ([`SHORT`]-word shingles, winnowed): overlap that survives scattered edits.
//!   Replacing one word in ten leaves 73% of 3-word shingles intact but only 43% of 8-word ones.
//! - **Anchors**: the short shingles whose hash is 0 modulo [`ANCHOR_MOD`], plus the
//!   [`LEDE_ANCHORS`] smallest short shingles of the first [`LEDE_WORDS`] words. Only anchors are
//!   indexed. The modulo sample is consistent: a shingle that is an anchor in one text is an
//!   anchor in every text containing it, so a lookup probes only the candidate's own anchors
//!   (about 14 for a 400-word text) and finds its source in every direction; a copy cut to the
//!   lede always shares the lede anchors.
//!
//! [`decide`] then judges the stored articles found, on their marks. A candidate of at least
//! [`super::MIN_CONTAINED_WORDS`] words is a `contained` duplicate when one of these holds
//! (thresholds from the evaluation on the news corpus, `examples/dedup-eval.rs`):
//!
//! 1. **Passages reused** (splices, ledes, syndicated copies): the larger long-mark share reaches
//!    `dedup.containment`, and at least [`MIN_OWN_SHARE`] of the candidate is old text.
//! 2. **Words edited throughout** (spun copies): at least [`SPREAD_SHARE`] of the short marks are
//!    shared in *both* directions (same text, same length), the simhashes are within
//!    [`SPREAD_DISTANCE`], and either the long-mark share is at most [`SPREAD_RATIO`] of the
//!    short one (the signature of scattered edits) or the short share reaches [`SAME_TEXT_SHARE`].
//!    A follow-up story that reuses background paragraphs shares long runs as much as short ones,
//!    and its simhash is further away.
//! 3. **Composed of stored stories** (two-story mash-ups): two stored articles together cover at
//!    least [`COMPOSED_COVER`] of the candidate's long marks, each at least [`COMPOSED_PART`].
//!    Mash-ups in the evaluation are covered at 0.96 and more; distinct follow-up stories at most
//!    0.66.

use super::fingerprint::Fingerprint;

/// Words per short shingle.
pub const SHORT: usize = 3;
/// Words per long shingle.
pub const LONG: usize = 8;
/// Shingles per winnowing window.
pub const WINDOW: usize = 6;
/// A short shingle is an anchor when its hash is 0 modulo this.
pub const ANCHOR_MOD: u64 = 32;
/// Smallest short shingles of the lede that are anchors too.
pub const LEDE_ANCHORS: usize = 2;
/// Words that make up the lede.
pub const LEDE_WORDS: usize = 60;
/// Rule 1: at least this share of the candidate's long marks must be old text.
pub const MIN_OWN_SHARE: f64 = 0.4;
/// Rule 1: at least this many long marks in common.
pub const MIN_SHARED_MARKS: u32 = 4;
/// Rule 2: short-mark share needed in both directions.
pub const SPREAD_SHARE: f64 = 0.55;
/// Rule 2: the long-mark share may be at most this fraction of the short-mark share...
pub const SPREAD_RATIO: f64 = 0.8;
/// Rule 2: ...unless the short-mark share reaches this.
pub const SAME_TEXT_SHARE: f64 = 0.7;
/// Rule 2: simhash distance allowed.
pub const SPREAD_DISTANCE: u32 = 14;
/// Rule 3: long marks the best two sources must cover together.
pub const COMPOSED_COVER: f64 = 0.85;
/// Rule 3: long marks each of the two must cover.
pub const COMPOSED_PART: f64 = 0.2;
/// Seed of the shingle hashes. Changing it changes every stored mark and anchor.
const SHINGLE_SEED: u64 = 0x7368_696e_676c_6573; // "shingles"
/// Multiplier of the rolling shingle hash (odd, so multiplication is invertible mod 2^64).
const ROLL: u64 = 0x9E37_79B9_7F4A_7C15;

#[cfg(test)]
const GOLDEN_FIRST_SHINGLE: u64 = 0x5ccd_004e_7a5a_6f54;

/// The containment sketch of a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    /// Winnowed short shingles, sorted, without repeats.
    pub short: Vec<u64>,
    /// Winnowed long shingles, sorted, without repeats.
    pub long: Vec<u64>,
    /// Short shingles the text is indexed and looked up under, sorted, without repeats.
    pub anchors: Vec<u64>,
}

/// The hashes of every `n`-word shingle: a polynomial over the words' stable hashes, rolled
/// along the text (one multiply per word), then mixed by MurmurHash3's 64-bit finalizer so that
/// the values are uniform for winnowing and for the modulo sample.
#[cfg(test)]
fn shingle_hashes(words: &[u64], n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    shingle_hashes_into(words, n, &mut out);
    out
}

/// [`shingle_hashes`] into `out` (cleared first), so that a thread reuses one buffer.
fn shingle_hashes_into(words: &[u64], n: usize, out: &mut Vec<u64>) {
    let top = (0..n - 1).fold(1u64, |p, _| p.wrapping_mul(ROLL)); // ROLL^(n-1)
    let seed = SHINGLE_SEED ^ n as u64;
    out.clear();
    out.reserve(words.len().saturating_sub(n - 1));
    let mut acc = 0u64;
    for (i, &w) in words.iter().enumerate() {
        if i >= n {
            acc = acc.wrapping_sub(words[i - n].wrapping_mul(top));
        }
        acc = acc.wrapping_mul(ROLL).wrapping_add(w);
        if i + 1 >= n {
            out.push(fmix64(acc ^ seed));
        }
    }
}

/// MurmurHash3's 64-bit finalizer.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The winnowed marks of a shingle sequence: sorted, without repeats.
///
/// The marks are the values of the windows' minima, so which of two equal shingles the paper's
/// rightmost rule would pick cannot change them: each window's minimum is taken without
/// positions and without a branch (a test checks this against the paper's definition).
///
/// `pairs` and `minima` are scratch (one entry per shingle, most of the minima repeats): only
/// the marks kept are copied out, into a vector of their size.
fn winnow(shingles: &[u64], pairs: &mut Vec<u64>, minima: &mut Vec<u64>) -> Vec<u64> {
    if shingles.len() <= WINDOW {
        return shingles.iter().min().copied().into_iter().collect();
    }
    window_minima((shingles, pairs, minima));
    // Consecutive windows mostly share their minimum: each is written, and kept when it is new,
    // without a branch (`Vec::dedup` branches on every element, and mispredicts).
    let mut kept = 1;
    let mut last = minima[0];
    for i in 1..minima.len() {
        let m = minima[i];
        minima[kept] = m;
        kept += usize::from(m != last);
        last = m;
    }
    let mut marks = minima[..kept].to_vec();
    marks.sort_unstable();
    marks.dedup();
    marks
}

with_avx2! {
    /// The minimum of each window of [`WINDOW`] shingles, in order, into the last buffer, from
    /// minima of pairs (in the middle one): each pass is a plain element-wise `min` over slices,
    /// which the compiler turns into vector code (a fold over every window, six loads and five
    /// compares a position, does not vectorize).
    fn window_minima(args: (&[u64], &mut Vec<u64>, &mut Vec<u64>)) -> () = window_minima_of
}

#[inline(always)]
fn window_minima_of((s, pairs, out): (&[u64], &mut Vec<u64>, &mut Vec<u64>)) {
    const _: () = assert!(WINDOW == 6, "window_minima covers windows of six");
    // pairs[i] = min(s[i], s[i+1]); a window [i, i+6) is pairs i, i+2 and i+4.
    pairs.clear();
    pairs.extend(s.iter().zip(&s[1..]).map(|(&a, &b)| a.min(b)));
    let windows = s.len() - WINDOW + 1;
    out.clear();
    out.extend(
        pairs[..windows]
            .iter()
            .zip(&pairs[2..windows + 2])
            .zip(&pairs[4..windows + 4])
            .map(|((&a, &b), &c)| a.min(b).min(c)),
    );
}

/// The sketch of a text, from the stable hashes of its words in order.
pub fn sketch(word_hashes: &[u64]) -> Sketch {
    if word_hashes.len() < SHORT {
        return Sketch::default();
    }
    // The shingles and winnowing's window minima are scratch: one set of buffers per thread,
    // not five allocations of a few KB per item.
    thread_local! {
        static SCRATCH: std::cell::RefCell<[Vec<u64>; 5]> = const {
            std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new()])
        };
    }
    SCRATCH.with_borrow_mut(|[short, long, lede, pairs, minima]| {
        shingle_hashes_into(word_hashes, SHORT, short);
        if word_hashes.len() >= LONG {
            shingle_hashes_into(word_hashes, LONG, long);
        } else {
            long.clear();
        }
        let lede_len = LEDE_WORDS.saturating_sub(SHORT - 1).min(short.len());
        lede.clear();
        lede.extend_from_slice(&short[..lede_len]);
        lede.sort_unstable();
        lede.dedup();
        let mut anchors: Vec<u64> = short
            .iter()
            .copied()
            .filter(|h| h % ANCHOR_MOD == 0)
            .collect();
        anchors.extend(lede.iter().take(LEDE_ANCHORS));
        anchors.sort_unstable();
        anchors.dedup();
        Sketch {
            short: winnow(short, pairs, minima),
            long: winnow(long, pairs, minima),
            anchors,
        }
    })
}

/// Number of values two sorted slices share.
pub fn shared(a: &[u64], b: &[u64]) -> u32 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Positions in `a` of the values `b` also has (both sorted).
fn hits(a: &[u64], b: &[u64]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(i as u32);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// What a candidate shares with one stored article.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The stored article.
    pub seq: u64,
    /// Short marks in common, and the stored article's count.
    pub short_shared: u32,
    /// Short marks of the stored article.
    pub short_stored: u32,
    /// Positions in the candidate's long marks that the stored article has too.
    pub long_hits: Vec<u32>,
    /// Long marks of the stored article.
    pub long_stored: u32,
    /// Hamming distance between the two simhashes.
    pub distance: u32,
}

impl Overlap {
    /// Compares a candidate's fingerprint with a stored article's simhash and marks.
    pub fn between(
        seq: u64,
        candidate: &Fingerprint,
        simhash: u64,
        short: &[u64],
        long: &[u64],
    ) -> Overlap {
        Overlap {
            seq,
            short_shared: shared(&candidate.short_marks, short),
            short_stored: short.len() as u32,
            long_hits: hits(&candidate.long_marks, long),
            long_stored: long.len() as u32,
            distance: super::fingerprint::distance(candidate.simhash, simhash),
        }
    }

    /// Long marks in common.
    pub fn long_shared(&self) -> u32 {
        self.long_hits.len() as u32
    }

    /// Shares of long marks: (of the candidate, of the stored article).
    pub fn long_shares(&self, candidate_long: u32) -> (f64, f64) {
        let s = f64::from(self.long_shared());
        (
            s / f64::from(candidate_long.max(1)),
            s / f64::from(self.long_stored.max(1)),
        )
    }

    /// Shares of short marks: (of the candidate, of the stored article).
    pub fn short_shares(&self, candidate_short: u32) -> (f64, f64) {
        let s = f64::from(self.short_shared);
        (
            s / f64::from(candidate_short.max(1)),
            s / f64::from(self.short_stored.max(1)),
        )
    }

    /// How much of the smaller text is in the larger, by passages (long marks).
    pub fn containment(&self, candidate_long: u32) -> f64 {
        let (a, b) = self.long_shares(candidate_long);
        a.max(b)
    }
}

/// Whether a stored article could take part in any of [`decide`]'s rules, from bounds cheap to
/// know without its marks: at most `long_shared` long marks in common with the candidate (an
/// upper bound), and the exact simhash `distance`. Rule 1 needs [`MIN_OWN_SHARE`] of the
/// candidate's long marks and rule 3 [`COMPOSED_PART`] (the smaller) from each article it uses;
/// rule 2 needs the simhashes within [`SPREAD_DISTANCE`]. When no article found for a candidate
/// could, [`decide`] cannot say `contained`, so its stored marks need not be read.
pub fn may_matter(long_shared: u32, candidate_long: u32, distance: u32) -> bool {
    distance <= SPREAD_DISTANCE
        || f64::from(long_shared) >= COMPOSED_PART.min(MIN_OWN_SHARE) * f64::from(candidate_long)
}

/// Which rule made a candidate `contained`, and with what share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contained {
    /// The stored article it repeats.
    pub seq: u64,
    /// The share reported as `containment`.
    pub containment: f64,
}

/// Applies the three rules of the module documentation to the stored articles found for a
/// candidate; the best match wins (most long marks shared).
pub fn decide(fp: &Fingerprint, overlaps: &[Overlap], threshold: f64) -> Option<Contained> {
    if fp.words < super::MIN_CONTAINED_WORDS || overlaps.is_empty() {
        return None;
    }
    let long = fp.long_marks.len() as u32;
    let short = fp.short_marks.len() as u32;
    let mut found: Vec<(&Overlap, f64)> = Vec::new();
    for o in overlaps {
        // 1. Passages reused.
        let (own, of) = o.long_shares(long);
        if o.long_shared() >= MIN_SHARED_MARKS && own >= MIN_OWN_SHARE && own.max(of) >= threshold {
            found.push((o, own.max(of)));
            continue;
        }
        // 2. Words edited throughout.
        let (s_own, s_of) = o.short_shares(short);
        let both = s_own.min(s_of);
        let scattered = own.max(of) <= SPREAD_RATIO * s_own.max(s_of) || both >= SAME_TEXT_SHARE;
        if both >= SPREAD_SHARE && o.distance <= SPREAD_DISTANCE && scattered {
            found.push((o, s_own.max(s_of)));
        }
    }
    if found.is_empty() && long > 0 {
        // 3. Composed of two stored articles.
        let mut by_share: Vec<&Overlap> = overlaps.iter().collect();
        by_share.sort_by_key(|o| std::cmp::Reverse(o.long_shared()));
        if let [a, b, ..] = by_share[..] {
            let part = |o: &Overlap| f64::from(o.long_shared()) / f64::from(long);
            let mut union: Vec<u32> = a.long_hits.iter().chain(&b.long_hits).copied().collect();
            union.sort_unstable();
            union.dedup();
            let cover = union.len() as f64 / f64::from(long);
            if cover >= COMPOSED_COVER && part(a) >= COMPOSED_PART && part(b) >= COMPOSED_PART {
                found.push((a, a.containment(long)));
            }
        }
    }
    // The match sharing the most passages wins; the older on a tie.
    let best = found
        .into_iter()
        .max_by_key(|(o, _)| (o.long_shared(), std::cmp::Reverse(o.seq)));
    best.map(|(o, containment)| Contained {
        seq: o.seq,
        containment: (containment * 1000.0).round() / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::fingerprint::fingerprint;

    fn hashes(text: &str) -> Vec<u64> {
        let mut v = Vec::new();
        crate::dedup::fingerprint::for_each_word(text, |w| {
            v.push(crate::dedup::fingerprint::word_hash(w))
        });
        v
    }

    fn text(seed: u64, words: usize) -> String {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..words)
            .map(|_| format!("w{}", rng.u32(0..10_000)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn overlap(seq: u64, a: &Fingerprint, b: &Fingerprint) -> Overlap {
        Overlap::between(seq, a, b.simhash, &b.short_marks, &b.long_marks)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Two texts that share some paragraphs (and may repeat words and paragraphs) get the
        /// same overlap, and the same containment, whichever of them is the candidate.
        #[test]
        fn containment_is_the_same_whichever_text_arrives_first(
            shared in proptest::collection::vec((0u64..1_000_000, 1usize..120), 0..4),
            only_a in proptest::collection::vec((0u64..1_000_000, 1usize..120), 0..4),
            only_b in proptest::collection::vec((0u64..1_000_000, 1usize..120), 0..4),
            vocabulary in 3u32..10_000,
            order in proptest::prelude::any::<u64>(),
        ) {
            let para = |&(seed, words): &(u64, usize)| {
                let mut rng = fastrand::Rng::with_seed(seed);
                (0..words)
                    .map(|_| format!("w{}", rng.u32(0..vocabulary)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut rng = fastrand::Rng::with_seed(order);
            let mut compose = |own: &[(u64, usize)]| {
                let mut paras: Vec<String> = shared.iter().chain(own).map(para).collect();
                rng.shuffle(&mut paras);
                paras.join("\n\n")
            };
            let (a, b) = (compose(&only_a), compose(&only_b));
            let (fa, fb) = (fingerprint(&a), fingerprint(&b));
            let ab = overlap(2, &fa, &fb);
            let ba = overlap(1, &fb, &fa);
            proptest::prop_assert_eq!(ab.long_shared(), ba.long_shared());
            proptest::prop_assert_eq!(ab.short_shared, ba.short_shared);
            proptest::prop_assert_eq!(ab.distance, ba.distance);
            let cab = ab.containment(fa.long_marks.len() as u32);
            let cba = ba.containment(fb.long_marks.len() as u32);
            proptest::prop_assert_eq!(cab, cba);
            proptest::prop_assert!((0.0..=1.0).contains(&cab));
        }
    }

    #[test]
    fn a_spliced_paragraph_always_shares_a_long_mark() {
        let host = text(1, 400);
        for (seed, offset) in [(2u64, 0usize), (3, 117), (4, 399)] {
            let para = text(seed, WINDOW + LONG - 1);
            let words: Vec<&str> = host.split(' ').collect();
            let spliced = [&words[..offset], &[para.as_str()], &words[offset..]]
                .concat()
                .join(" ");
            let a = sketch(&hashes(&para));
            let b = sketch(&hashes(&spliced));
            assert!(shared(&a.long, &b.long) > 0, "offset {offset}");
        }
    }

    #[test]
    fn anchors_are_consistent_between_a_text_and_its_parts() {
        let whole = text(5, 400);
        let words: Vec<&str> = whole.split(' ').collect();
        let w = sketch(&hashes(&whole));
        assert!((8..=24).contains(&w.anchors.len()), "{}", w.anchors.len());
        let middle = sketch(&hashes(&words[150..300].join(" ")));
        let modular: Vec<u64> = middle
            .anchors
            .iter()
            .copied()
            .filter(|a| a % ANCHOR_MOD == 0)
            .collect();
        assert!(!modular.is_empty());
        assert!(modular.iter().all(|a| w.anchors.binary_search(a).is_ok()));
        let lede = sketch(&hashes(&words[..70].join(" ")));
        assert!(shared(&lede.anchors, &w.anchors) >= LEDE_ANCHORS as u32);
    }

    #[test]
    fn density_and_short_texts() {
        let s = sketch(&hashes(&text(9, 1000)));
        for marks in [&s.short, &s.long] {
            let density = marks.len() as f64 / 1000.0;
            assert!((0.2..0.4).contains(&density), "{density}");
        }
        assert_eq!(sketch(&hashes("two words")), Sketch::default());
        let three = sketch(&hashes("exactly three words"));
        assert_eq!((three.short.len(), three.long.len()), (1, 0));
    }

    #[test]
    fn rolling_shingles_equal_shingles_hashed_one_by_one() {
        let words: Vec<u64> = (0..40u64)
            .map(|i| i.wrapping_mul(0x1234_5678_9abc_def1))
            .collect();
        for n in [SHORT, LONG] {
            let rolled = shingle_hashes(&words, n);
            let direct: Vec<u64> = words
                .windows(n)
                .map(|w| {
                    fmix64(
                        w.iter()
                            .fold(0u64, |a, &x| a.wrapping_mul(ROLL).wrapping_add(x))
                            ^ SHINGLE_SEED
                            ^ n as u64,
                    )
                })
                .collect();
            assert_eq!(rolled, direct);
        }
        // Golden: shingle values are stored; they must not change.
        assert_eq!(shingle_hashes(&words, SHORT)[0], GOLDEN_FIRST_SHINGLE);
    }

    #[test]
    fn the_three_rules() {
        let story = text(11, 400);
        let stored = fingerprint(&story);
        let words: Vec<&str> = story.split(' ').collect();
        // 1. A lede-only copy: passages reused.
        let lede = fingerprint(&words[..120].join(" "));
        let c = decide(&lede, &[overlap(1, &lede, &stored)], 0.7).expect("lede");
        assert_eq!(c.seq, 1);
        assert!(c.containment > 0.95);
        // 2. A spun copy: one word in ten replaced.
        let mut rng = fastrand::Rng::with_seed(12);
        let spun: Vec<String> = words
            .iter()
            .map(|w| {
                if rng.u32(0..10) == 0 {
                    format!("x{}", rng.u32(..))
                } else {
                    w.to_string()
                }
            })
            .collect();
        let spun = fingerprint(&spun.join(" "));
        assert!(decide(&spun, &[overlap(1, &spun, &stored)], 0.7).is_some());
        // 3. A mash-up of two stored stories.
        let other_story = text(13, 400);
        let other = fingerprint(&other_story);
        let others: Vec<&str> = other_story.split(' ').collect();
        let mash = fingerprint(&[&words[..200], &others[200..]].concat().join(" "));
        let found = [overlap(1, &mash, &stored), overlap(2, &mash, &other)];
        assert!(
            decide(&mash, &found[..1], 0.7).is_none(),
            "half of one story is not enough"
        );
        assert!(
            decide(&mash, &found, 0.7).is_some(),
            "two stories that make it up are"
        );
        // A follow-up that reuses half of a story and adds as much new text: kept.
        let follow = fingerprint(
            &[
                &words[..200],
                &text(14, 200).split(' ').collect::<Vec<_>>()[..],
            ]
            .concat()
            .join(" "),
        );
        assert!(decide(&follow, &[overlap(1, &follow, &stored)], 0.7).is_none());
        // A one-sentence summary quoted from the story: too short.
        let summary = fingerprint(&words[..25].join(" "));
        assert!(decide(&summary, &[overlap(1, &summary, &stored)], 0.7).is_none());
    }

    #[test]
    fn decide_never_needs_an_article_that_may_not_matter() {
        // Random overlaps around the thresholds: whenever decide says contained, some overlap
        // passes may_matter with its exact counts (which any upper bound also passes).
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let long = rng.u32(1..120);
            let short = rng.u32(1..120);
            let fp = Fingerprint {
                simhash: 0,
                content: 0,
                words: 400,
                short_marks: (0..u64::from(short)).collect(),
                long_marks: (0..u64::from(long)).collect(),
                anchors: Vec::new(),
            };
            let overlaps: Vec<Overlap> = (0..rng.usize(1..5))
                .map(|i| {
                    let hits: Vec<u32> = (0..long).filter(|_| rng.bool()).collect();
                    Overlap {
                        seq: i as u64 + 1,
                        short_shared: rng.u32(0..=short),
                        short_stored: rng.u32(1..150),
                        long_stored: rng.u32(1..150).max(hits.len() as u32),
                        long_hits: hits
                            .into_iter()
                            .take(rng.usize(0..=long as usize))
                            .collect(),
                        distance: rng.u32(0..40),
                    }
                })
                .collect();
            if decide(&fp, &overlaps, 0.7).is_some() {
                assert!(
                    overlaps
                        .iter()
                        .any(|o| may_matter(o.long_shared(), long, o.distance)),
                    "{overlaps:?}"
                );
            }
        }
    }

    #[test]
    fn winnowing_keeps_the_rightmost_minimum_of_every_window() {
        // The paper's definition, window by window, against the incremental version.
        fn naive(shingles: &[u64]) -> Vec<u64> {
            if shingles.len() <= WINDOW {
                return shingles.iter().min().copied().into_iter().collect();
            }
            let mut marks = Vec::new();
            let mut last = None;
            for start in 0..=shingles.len() - WINDOW {
                let mut pos = start;
                for i in start..start + WINDOW {
                    if shingles[i] <= shingles[pos] {
                        pos = i;
                    }
                }
                if last != Some(pos) {
                    marks.push(shingles[pos]);
                    last = Some(pos);
                }
            }
            marks.sort_unstable();
            marks.dedup();
            marks
        }
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..2000 {
            let len = rng.usize(0..60);
            // Few distinct values, so that ties are common.
            let shingles: Vec<u64> = (0..len).map(|_| rng.u64(0..8)).collect();
            assert_eq!(
                winnow(&shingles, &mut Vec::new(), &mut Vec::new()),
                naive(&shingles),
                "{shingles:?}"
            );
        }
    }
}
