//! Containment: how much of one text appears word for word in another, for splices, mash-ups and
//! lede-only copies that move a simhash too far.
//!
//! Each body becomes a set of *marks*: hashes of its word 5-grams (shingles), thinned by
//! winnowing (Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document
//! fingerprinting", SIGMOD 2003): of every window of [`WINDOW`] consecutive shingles, the one
//! with the smallest hash is kept. Winnowing keeps about 2/(WINDOW+1) of the shingles and
//! guarantees that any run of at least `WINDOW + SHINGLE - 1` shared words yields a shared mark,
//! so a spliced paragraph is always seen, whatever its offset.
//!
//! For a candidate A and a stored article B sharing `s` marks, `s/|A|` is how much of the
//! candidate is old text and `s/|B|` how much of the stored article is repeated. See
//! [`Overlap::containment`].
//!
//! # Finding B without indexing every mark
//! Writing one index key per mark costs a 400-word article over a hundred sled writes. Instead each
//! stored article is found through a few *anchors*: its [`ANCHORS`] smallest marks (a min-hash
//! sample, so the same marks are anchors in every text that contains them) and the
//! [`LEDE_ANCHORS`] smallest marks of its first [`LEDE_WORDS`] words. A lookup probes every mark
//! of the candidate against the anchors, then counts the shared marks exactly on the few articles
//! found. Every direction the product needs is covered:
//! - B inside A (a mash-up that carries a stored story): all of B's anchors are among A's marks;
//! - A is B's lede: B's lede anchors are among A's marks;
//! - A is another large part of B (a copy with its end cut): each of B's anchors is in A with
//!   the probability of the share, so a copy of half of B is found 98% of the time.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Words per shingle.
pub const SHINGLE: usize = 5;
/// Shingles per winnowing window.
pub const WINDOW: usize = 6;
/// Smallest marks of a text that index it.
pub const ANCHORS: usize = 6;
/// Smallest marks of a text's lede that index it too.
pub const LEDE_ANCHORS: usize = 2;
/// Words that make up the lede.
pub const LEDE_WORDS: usize = 60;

/// Seed of the shingle hash. Changing it changes every stored mark.
const SHINGLE_SEED: u64 = 0x7368_696e_676c_6573; // "shingles"

/// The marks of a text, from the stable hashes of its words in order: sorted, without repeats.
pub fn marks(word_hashes: &[u64]) -> Vec<u64> {
    if word_hashes.len() < SHINGLE {
        return Vec::new();
    }
    let shingles: Vec<u64> = word_hashes
        .windows(SHINGLE)
        .map(|w| {
            let mut bytes = [0u8; SHINGLE * 8];
            for (i, h) in w.iter().enumerate() {
                bytes[i * 8..i * 8 + 8].copy_from_slice(&h.to_le_bytes());
            }
            xxh3_64_with_seed(&bytes, SHINGLE_SEED)
        })
        .collect();
    let mut out = Vec::with_capacity(shingles.len() * 2 / (WINDOW + 1) + 1);
    if shingles.len() <= WINDOW {
        out.extend(shingles.iter().min());
    } else {
        let mut last: Option<usize> = None;
        for start in 0..=shingles.len() - WINDOW {
            // The rightmost minimum of the window, as in the paper.
            let window = &shingles[start..start + WINDOW];
            let (off, _) = window
                .iter()
                .enumerate()
                .fold(
                    (0, u64::MAX),
                    |best, (i, &h)| if h <= best.1 { (i, h) } else { best },
                );
            let pos = start + off;
            if last != Some(pos) {
                out.push(shingles[pos]);
                last = Some(pos);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The anchors of a text from its marks and the marks of its lede (both sorted): sorted, without
/// repeats.
pub fn anchors(marks: &[u64], lede_marks: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = marks
        .iter()
        .take(ANCHORS)
        .chain(lede_marks.iter().take(LEDE_ANCHORS))
        .copied()
        .collect();
    out.sort_unstable();
    out.dedup();
    out
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
    fn a_spliced_paragraph_is_always_found() {
        let host = text(1, 400);
        for (seed, offset) in [(2u64, 0usize), (3, 117), (4, 399)] {
            let para = text(seed, WINDOW + SHINGLE - 1);
            let words: Vec<&str> = host.split(' ').collect();
            let spliced = [&words[..offset], &[para.as_str()], &words[offset..]]
                .concat()
                .join(" ");
            let a = marks(&hashes(&para));
            let b = marks(&hashes(&spliced));
            assert!(
                a.iter().any(|m| b.binary_search(m).is_ok()),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn density_and_short_texts() {
        let m = marks(&hashes(&text(9, 1000)));
        let density = m.len() as f64 / 996.0;
        assert!((0.2..0.4).contains(&density), "{density}");
        assert_eq!(marks(&hashes("four words only here")).len(), 0);
        assert_eq!(marks(&hashes("exactly five words right here")).len(), 1);
    }

    #[test]
    fn anchors_and_shared() {
        assert_eq!(
            anchors(&[1, 2, 3, 4, 5, 6, 7, 8], &[2, 9]),
            vec![1, 2, 3, 4, 5, 6, 9]
        );
        assert_eq!(shared(&[1, 3, 5, 7], &[2, 3, 4, 7, 9]), 2);
        assert_eq!(shared(&[], &[1]), 0);
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
    }
}
