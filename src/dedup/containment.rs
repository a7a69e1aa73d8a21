//! Containment: how much of one text appears word for word in another, for splices, mash-ups and
//! lede-only copies that move a simhash too far.
//!
//! A body is cut into *shingles*, the hashes of its overlapping word 5-grams, and sketched twice:
//!
//! - **Marks**, for counting: the shingles kept by winnowing (Schleimer, Wilkerson and Aiken,
//!   "Winnowing: local algorithms for document fingerprinting", SIGMOD 2003). Of every window of
//!   [`WINDOW`] consecutive shingles the smallest is kept, about 2/(WINDOW+1) of them, and any run
//!   of at least `WINDOW + SHINGLE - 1` shared words yields a shared mark, wherever it sits. For a
//!   candidate A and a stored article B sharing `s` marks, `s/|A|` is how much of the candidate is
//!   old text and `s/|B|` how much of the stored article is repeated ([`Overlap`]).
//! - **Anchors**, for finding B at all: the shingles whose hash is 0 modulo [`ANCHOR_MOD`], plus
//!   the [`LEDE_ANCHORS`] smallest shingles of the first [`LEDE_WORDS`] words. Only anchors are
//!   indexed. The modulo sample is *consistent*: a shingle that is an anchor in one text is an
//!   anchor in every text that contains it, so a lookup probes only the candidate's own anchors
//!   (about 14 for a 400-word text) and still finds B in both directions: B inside A (a mash-up
//!   carrying a stored story) and A inside B (a copy cut short). A copy of 30% of a 400-word
//!   story carries about four anchors and is missed 2% of the time; a copy cut to the lede is
//!   always found through the lede anchors, which a text and its lede share.
//!
//! Marks of the candidates found are then counted exactly against the stored article's marks.

/// Words per shingle.
pub const SHINGLE: usize = 5;
/// Shingles per winnowing window.
pub const WINDOW: usize = 6;
/// A shingle is an anchor when its hash is 0 modulo this.
pub const ANCHOR_MOD: u64 = 32;
/// Smallest shingles of the lede that are anchors too.
pub const LEDE_ANCHORS: usize = 2;
/// Words that make up the lede.
pub const LEDE_WORDS: usize = 60;
#[cfg(test)]
const GOLDEN_FIRST_SHINGLE: u64 = 0x235c_98c0_4052_d62f;

/// Seed of the shingle hash. Changing it changes every stored mark and anchor.
const SHINGLE_SEED: u64 = 0x7368_696e_676c_6573; // "shingles"

/// The containment sketch of a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    /// Winnowed shingles, sorted, without repeats.
    pub marks: Vec<u64>,
    /// Shingles the text is indexed and looked up under, sorted, without repeats.
    pub anchors: Vec<u64>,
}

/// Multiplier of the rolling shingle hash (odd, so multiplication is invertible mod 2^64).
const ROLL: u64 = 0x9E37_79B9_7F4A_7C15;

/// The hashes of every shingle: a polynomial over the words' stable hashes, rolled along the
/// text (one multiply per word), then mixed by the 64-bit finalizer of MurmurHash3 so that the
/// values are uniform for winnowing and for the modulo sample.
fn shingle_hashes(words: &[u64]) -> Vec<u64> {
    let top = (0..SHINGLE - 1).fold(1u64, |p, _| p.wrapping_mul(ROLL)); // ROLL^(SHINGLE-1)
    let mut out = Vec::with_capacity(words.len().saturating_sub(SHINGLE - 1));
    let mut acc = 0u64;
    for (i, &w) in words.iter().enumerate() {
        if i >= SHINGLE {
            acc = acc.wrapping_sub(words[i - SHINGLE].wrapping_mul(top));
        }
        acc = acc.wrapping_mul(ROLL).wrapping_add(w);
        if i + 1 >= SHINGLE {
            out.push(fmix64(acc ^ SHINGLE_SEED));
        }
    }
    out
}

/// MurmurHash3's 64-bit finalizer.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The sketch of a text, from the stable hashes of its words in order.
pub fn sketch(word_hashes: &[u64]) -> Sketch {
    if word_hashes.len() < SHINGLE {
        return Sketch::default();
    }
    let shingles = shingle_hashes(word_hashes);
    let mut marks = Vec::with_capacity(shingles.len() * 2 / (WINDOW + 1) + 1);
    if shingles.len() <= WINDOW {
        marks.extend(shingles.iter().min());
    } else {
        let mut last: Option<usize> = None;
        for start in 0..=shingles.len() - WINDOW {
            // The rightmost minimum of the window, as in the paper.
            let (off, _) = shingles[start..start + WINDOW].iter().enumerate().fold(
                (0, u64::MAX),
                |best, (i, &h)| if h <= best.1 { (i, h) } else { best },
            );
            let pos = start + off;
            if last != Some(pos) {
                marks.push(shingles[pos]);
                last = Some(pos);
            }
        }
    }
    marks.sort_unstable();
    marks.dedup();

    let lede_shingles = LEDE_WORDS.saturating_sub(SHINGLE - 1).min(shingles.len());
    let mut lede: Vec<u64> = shingles[..lede_shingles].to_vec();
    lede.sort_unstable();
    lede.dedup();
    let mut anchors: Vec<u64> = shingles
        .iter()
        .copied()
        .filter(|h| h % ANCHOR_MOD == 0)
        .collect();
    anchors.extend(lede.iter().take(LEDE_ANCHORS));
    anchors.sort_unstable();
    anchors.dedup();
    Sketch { marks, anchors }
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

/// How many marks a candidate shares with one stored article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// The stored article.
    pub seq: u64,
    /// Marks the two share.
    pub shared: u32,
    /// Marks of the stored article.
    pub stored: u32,
}

impl Overlap {
    /// Share of the candidate's marks found in the stored article.
    pub fn of_candidate(&self, candidate_marks: u32) -> f64 {
        f64::from(self.shared) / f64::from(candidate_marks.max(1))
    }

    /// Share of the stored article's marks found in the candidate.
    pub fn of_stored(&self) -> f64 {
        f64::from(self.shared) / f64::from(self.stored.max(1))
    }

    /// The containment reported for a match: the larger of the two shares, that is how much of
    /// the smaller text is inside the larger.
    pub fn containment(&self, candidate_marks: u32) -> f64 {
        self.of_candidate(candidate_marks).max(self.of_stored())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_spliced_paragraph_always_shares_a_mark() {
        let host = text(1, 400);
        for (seed, offset) in [(2u64, 0usize), (3, 117), (4, 399)] {
            let para = text(seed, WINDOW + SHINGLE - 1);
            let words: Vec<&str> = host.split(' ').collect();
            let spliced = [&words[..offset], &[para.as_str()], &words[offset..]]
                .concat()
                .join(" ");
            let a = sketch(&hashes(&para));
            let b = sketch(&hashes(&spliced));
            assert!(shared(&a.marks, &b.marks) > 0, "offset {offset}");
        }
    }

    #[test]
    fn anchors_are_consistent_between_a_text_and_its_parts() {
        let whole = text(5, 400);
        let words: Vec<&str> = whole.split(' ').collect();
        let w = sketch(&hashes(&whole));
        assert!((8..=24).contains(&w.anchors.len()), "{}", w.anchors.len());
        // A middle excerpt: its modulo anchors are anchors of the whole.
        let middle = sketch(&hashes(&words[150..300].join(" ")));
        let modular: Vec<u64> = middle
            .anchors
            .iter()
            .copied()
            .filter(|a| a % ANCHOR_MOD == 0)
            .collect();
        assert!(!modular.is_empty());
        assert!(modular.iter().all(|a| w.anchors.binary_search(a).is_ok()));
        // The lede: it shares the lede anchors.
        let lede = sketch(&hashes(&words[..70].join(" ")));
        assert!(shared(&lede.anchors, &w.anchors) >= LEDE_ANCHORS as u32);
    }

    #[test]
    fn density_and_short_texts() {
        let s = sketch(&hashes(&text(9, 1000)));
        let density = s.marks.len() as f64 / 996.0;
        assert!((0.2..0.4).contains(&density), "{density}");
        assert_eq!(sketch(&hashes("four words only here")), Sketch::default());
        let five = sketch(&hashes("exactly five words right here"));
        assert_eq!((five.marks.len(), five.anchors.len()), (1, 1));
    }

    #[test]
    fn rolling_shingles_equal_shingles_hashed_one_by_one() {
        let words: Vec<u64> = (0..40u64)
            .map(|i| i.wrapping_mul(0x1234_5678_9abc_def1))
            .collect();
        let rolled = shingle_hashes(&words);
        let direct: Vec<u64> = words
            .windows(SHINGLE)
            .map(|w| {
                fmix64(
                    w.iter()
                        .fold(0u64, |a, &x| a.wrapping_mul(ROLL).wrapping_add(x))
                        ^ SHINGLE_SEED,
                )
            })
            .collect();
        assert_eq!(rolled, direct);
        // Golden: shingle values are stored; they must not change.
        assert_eq!(rolled[0], GOLDEN_FIRST_SHINGLE);
    }

    #[test]
    fn overlap_shares() {
        let o = Overlap {
            seq: 1,
            shared: 30,
            stored: 40,
        };
        assert_eq!(o.of_candidate(100), 0.3);
        assert_eq!(o.of_stored(), 0.75);
        assert_eq!(o.containment(100), 0.75);
        assert_eq!(shared(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), 2);
    }
}
