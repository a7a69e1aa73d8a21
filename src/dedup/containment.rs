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

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Words per shingle.
pub const SHINGLE: usize = 5;
/// Shingles per winnowing window.
pub const WINDOW: usize = 6;
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
