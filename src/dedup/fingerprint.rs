//! Fingerprints of an article body: the exact-content hash and the 64-bit simhash.
//!
//! In: the plain text from `parse`. Out: a [`Fingerprint`]. The content hash covers the whole
//! body; the simhash and the containment marks cover its story part ([`super::clean`]). Words are runs of letters and digits,
//! case folded; text that is not ASCII is NFKC-normalized first (full-width letters, ligatures),
//! while curly quotes, dashes and non-breaking spaces simply separate words. The content hash
//! covers every word in order; the simhash covers the story's words that carry meaning (stop words out),
//! each weighted by `1 + ln(tf)` (in fixed point) so a repeated sentence or an added boilerplate line moves few bits.
//!
//! Stored fingerprints must never change under a toolchain upgrade, so every hash here is
//! XXH3-64 over explicit bytes with a fixed seed (never std's `Hash`), and golden-value tests pin
//! them.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::containment;
use unicode_normalization::UnicodeNormalization;
use xxhash_rust::xxh3::{Xxh3, xxh3_64_with_seed};

/// Seed of the per-word hash inside the simhash. Changing it changes every stored fingerprint.
const WORD_SEED: u64 = 0x6665_6564_7369_6576; // "feedsiev"

/// The fingerprints of one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// 64-bit weighted simhash of the meaningful words.
    pub simhash: u64,
    /// Hash of every word in order (the `content` check).
    pub content: u64,
    /// Number of words in the body.
    pub words: u32,
    /// Winnowed shingle hashes, sorted (the `contained` check; see [`super::containment`]).
    pub marks: Vec<u64>,
    /// The few marks a stored article is indexed under, sorted.
    pub anchors: Vec<u64>,
}

/// Calls `f` with each word of `text`, lowercased (and NFKC-normalized when not ASCII).
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    if text.is_ascii() {
        let mut buf = [0u8; 64];
        for word in text
            .as_bytes()
            .split(|b| !b.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if word.len() <= buf.len() {
                let lower = &mut buf[..word.len()];
                lower.copy_from_slice(word);
                lower.make_ascii_lowercase();
                // ASCII alphanumerics are valid UTF-8.
                f(std::str::from_utf8(lower).unwrap_or_default());
            } else {
                f(&String::from_utf8_lossy(word).to_ascii_lowercase());
            }
        }
    } else {
        let normalized: String = text.nfkc().flat_map(char::to_lowercase).collect();
        for word in normalized
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            f(word);
        }
    }
}

/// Computes the fingerprints of a body.
///
/// ```
/// use feedsieve::dedup::fingerprint::fingerprint;
/// let a = fingerprint("The talks in Geneva ended without a deal, officials said.");
/// let b = fingerprint("the talks in GENEVA ended -- without a deal; officials said");
/// assert_eq!(a.content, b.content);
/// assert_eq!(a.simhash, b.simhash);
/// assert_eq!(a.words, 10);
/// ```
pub fn fingerprint(text: &str) -> Fingerprint {
    let story = super::clean::story_text(text);
    let mut content = Xxh3::with_seed(0);
    let mut words = 0u32;
    let mut hashes: Vec<u64> = Vec::with_capacity(text.len() / 5);
    let mut tf: HashMap<u64, u32> = HashMap::with_capacity(256);
    let mut story_word = |w: &str, h: u64| {
        hashes.push(h);
        if !is_stop_word(w) {
            *tf.entry(h).or_insert(0) += 1;
        }
    };
    let same = matches!(story, std::borrow::Cow::Borrowed(_));
    for_each_word(text, |w| {
        content.update(w.as_bytes());
        content.update(b" ");
        words = words.saturating_add(1);
        if same {
            story_word(w, word_hash(w));
        }
    });
    if !same {
        for_each_word(&story, |w| story_word(w, word_hash(w)));
    }
    let marks = containment::marks(&hashes);
    let lede = containment::marks(&hashes[..hashes.len().min(containment::LEDE_WORDS)]);
    Fingerprint {
        simhash: weighted_simhash(tf.into_iter().map(|(h, n)| (h, tf_weight(n)))),
        content: content.digest(),
        words,
        anchors: containment::anchors(&marks, &lede),
        marks,
    }
}

/// The stable hash of one (already lowercased) word.
pub fn word_hash(word: &str) -> u64 {
    xxh3_64_with_seed(word.as_bytes(), WORD_SEED)
}

/// `1000 * (1 + ln tf)`, rounded, from a fixed table: integer weights make the simhash independent
/// of the order features are summed in and of the platform's `ln`.
pub fn tf_weight(tf: u32) -> i32 {
    const TABLE: [i32; 64] = [
        1000, 1693, 2099, 2386, 2609, 2792, 2946, 3079, 3197, 3303, 3398, 3485, 3565, 3639, 3708,
        3773, 3833, 3890, 3944, 3996, 4045, 4091, 4135, 4178, 4219, 4258, 4296, 4332, 4367, 4401,
        4434, 4466, 4497, 4526, 4555, 4584, 4611, 4638, 4664, 4689, 4714, 4738, 4761, 4784, 4807,
        4829, 4850, 4871, 4892, 4912, 4932, 4951, 4970, 4989, 5007, 5025, 5043, 5060, 5078, 5094,
        5111, 5127, 5143, 5159,
    ];
    match tf {
        0 => 0,
        1..=64 => TABLE[tf as usize - 1],
        // ln 2 = 0.693: one more doubling adds 693.
        _ => 5159 + 693 * (tf.ilog2() as i32 - 6),
    }
}

/// Simhash of weighted features: bit i is set when the features with bit i set outweigh those
/// without it.
pub fn weighted_simhash(features: impl Iterator<Item = (u64, i32)>) -> u64 {
    let mut v = [0i64; 64];
    for (h, w) in features {
        for (i, slot) in v.iter_mut().enumerate() {
            if (h >> i) & 1 == 1 {
                *slot += i64::from(w);
            } else {
                *slot -= i64::from(w);
            }
        }
    }
    v.iter().enumerate().fold(
        0u64,
        |acc, (i, &s)| if s > 0 { acc | (1 << i) } else { acc },
    )
}

/// Hamming distance between two fingerprints.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// True for English function words, which say nothing about which story a text tells.
pub fn is_stop_word(word: &str) -> bool {
    word.len() <= 1 || STOP_WORDS.contains(word)
}

static STOP_WORDS: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    "a about above after again against all am an and any are as at be because been before being below \
     between both but by can could did do does doing down during each few for from further had has have \
     having he her here hers herself him himself his how i if in into is it its itself just me more most \
     my myself no nor not now of off on once only or other our ours ourselves out over own same she \
     should so some such than that the their theirs them themselves then there these they this those \
     through to too under until up very was we were what when where which while who whom why will with \
     would you your yours yourself yourselves also said says say one two new s t ll re ve d m"
        .split_whitespace()
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values: if one of these changes, every stored fingerprint is invalid. Never update
    /// them to make a test pass; bump the store format and re-index instead.
    #[test]
    fn golden_values_are_stable() {
        assert_eq!(word_hash("syria"), 0xdfae_12f5_3b6b_a45f);
        let f =
            fingerprint("Russia and the United States agreed on a ceasefire in south-west Syria.");
        assert_eq!(f.words, 13);
        assert_eq!(f.content, 0x96f0_b677_e92b_39d0);
        assert_eq!(f.simhash, 0x6b9c_2ab4_234a_101d);
    }

    #[test]
    fn words_fold_case_and_unicode() {
        let mut seen = Vec::new();
        for_each_word(
            "Ｆｕｌｌ-width ﬁle Café’s “quotes” — dash\u{a0}nbsp",
            |w| seen.push(w.to_string()),
        );
        assert_eq!(
            seen,
            [
                "full", "width", "file", "café", "s", "quotes", "dash", "nbsp"
            ]
        );
    }

    #[test]
    fn stop_words_do_not_move_the_simhash() {
        let a = fingerprint("ceasefire agreed southern syria monday");
        let b = fingerprint("the ceasefire was agreed for southern syria on monday");
        assert_eq!(a.simhash, b.simhash);
        assert_ne!(a.content, b.content);
    }

    #[test]
    fn empty_text() {
        let f = fingerprint("");
        assert_eq!(f.words, 0);
        assert_eq!(f.simhash, 0);
    }
}
