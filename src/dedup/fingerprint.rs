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

use std::sync::LazyLock;

use super::containment;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};
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
    /// Winnowed 3-word shingles, sorted (the `contained` check; see [`super::containment`]).
    pub short_marks: Vec<u64>,
    /// Winnowed 8-word shingles, sorted.
    pub long_marks: Vec<u64>,
    /// The shingles a stored article is indexed under, sorted.
    pub anchors: Vec<u64>,
}

/// For each byte: its lowercase form when it is an ASCII letter or digit, 0 otherwise (and
/// `0x80` marks the lead byte of a non-ASCII character, to be decoded).
const ASCII_WORD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() || c.is_ascii_lowercase() {
            c
        } else if c.is_ascii_uppercase() {
            c + 32
        } else if c >= 0xC0 {
            0x80
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Calls `f` with each word of `text` (a run of letters and digits), lowercased; text that is not
/// already NFKC is normalized first. One pass over the bytes: ASCII through a table, other
/// characters decoded where they start.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    // Words are lowercase letters, digits and whole lowercased characters: valid UTF-8.
    for_each_word_bytes(text, |w| f(std::str::from_utf8(w).unwrap_or_default()));
}

/// A word being assembled: on the stack, moved to the heap only for a word longer than
/// [`WordBuf::STACK`] bytes (so scanning a paragraph allocates nothing).
struct WordBuf {
    stack: [u8; WordBuf::STACK],
    len: usize,
    heap: Vec<u8>,
}

impl WordBuf {
    const STACK: usize = 64;

    fn new() -> WordBuf {
        WordBuf {
            stack: [0; WordBuf::STACK],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.heap.is_empty() && self.len + bytes.len() <= WordBuf::STACK {
            self.stack[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            if self.heap.is_empty() {
                self.heap.extend_from_slice(&self.stack[..self.len]);
            }
            self.heap.extend_from_slice(bytes);
        }
    }

    /// Pushes ASCII letters and digits, lowercased.
    fn push_lowercase(&mut self, ascii: &[u8]) {
        let mut buf = [0u8; WordBuf::STACK];
        for chunk in ascii.chunks(WordBuf::STACK) {
            for (d, &b) in buf.iter_mut().zip(chunk) {
                *d = b.to_ascii_lowercase();
            }
            self.push(&buf[..chunk.len()]);
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0 && self.heap.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.heap.clear();
    }
}

/// [`for_each_word`], handing out each word's UTF-8 bytes (what the hashes take).
///
/// Plain ASCII (most text) goes 64 bytes at a time ([`AsciiBlock`]): a byte-at-a-time scan spent
/// its time on the branch at each word's end, which no predictor learns. Other text goes one
/// character at a time up to the next block.
fn for_each_word_bytes(text: &str, mut f: impl FnMut(&[u8])) {
    let normalized;
    let text = if text.is_ascii() || is_nfkc_quick(text.chars()) == IsNormalized::Yes {
        text
    } else {
        normalized = text.nfkc().collect::<String>();
        &normalized
    };
    let bytes = text.as_bytes();
    let mut word = WordBuf::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(block) = AsciiBlock::at(bytes, i) {
            block.words(&mut word, &mut f);
            i += AsciiBlock::LEN;
            continue;
        }
        let end = (i + AsciiBlock::LEN).min(bytes.len());
        while i < end {
            i = scalar_step(text, i, &mut word, &mut f);
        }
    }
    if !word.is_empty() {
        f(word.bytes());
    }
}

/// One step of the character-at-a-time scan from byte `i` (a character boundary) of `text`: a
/// run of ASCII letters and digits, or one other character. Returns where the next step starts
/// (a character boundary).
fn scalar_step(text: &str, mut i: usize, word: &mut WordBuf, f: &mut impl FnMut(&[u8])) -> usize {
    let bytes = text.as_bytes();
    let t = ASCII_WORD[bytes[i] as usize];
    if t != 0 && t != 0x80 {
        // A run of ASCII letters and digits: handed out in place when it is a whole word
        // already lowercase, else lowercased into the buffer.
        let start = i;
        let mut lower = true;
        while let Some(&b) = bytes.get(i) {
            let t = ASCII_WORD[b as usize];
            if t == 0 || t == 0x80 {
                break;
            }
            lower &= t == b;
            i += 1;
        }
        let run = &bytes[start..i];
        let whole = word.is_empty() && bytes.get(i).is_none_or(|&b| ASCII_WORD[b as usize] == 0);
        if whole && lower {
            f(run);
        } else {
            word.push_lowercase(run);
        }
        return i;
    }
    if t == 0x80 {
        let c = text[i..].chars().next().unwrap_or(' ');
        i += c.len_utf8();
        if c.is_alphanumeric() {
            let mut buf = [0u8; 4];
            for l in c.to_lowercase() {
                word.push(l.encode_utf8(&mut buf).as_bytes());
            }
            return i;
        }
    } else {
        i += 1;
    }
    if !word.is_empty() {
        f(word.bytes());
        word.clear();
    }
    i
}

/// Up to 64 bytes of ASCII text, lowercased, with one bit per byte (bit `i` for byte `i`) set
/// where the byte is a letter or a digit. Built eight bytes at a time in a `u64` (SWAR), so it
/// needs no `unsafe` and no particular CPU.
struct AsciiBlock {
    lower: [u8; AsciiBlock::LEN],
    word_bits: u64,
}

impl AsciiBlock {
    const LEN: usize = 64;

    /// The block at `bytes[at..]` (the last one padded with spaces), or `None` when it holds a
    /// byte that is not ASCII.
    fn at(bytes: &[u8], at: usize) -> Option<AsciiBlock> {
        let rest = &bytes[at..];
        let mut raw = [b' '; AsciiBlock::LEN];
        let n = rest.len().min(AsciiBlock::LEN);
        raw[..n].copy_from_slice(&rest[..n]);
        let mut lanes = [0u64; AsciiBlock::LEN / 8];
        let mut high = 0;
        for (lane, chunk) in lanes.iter_mut().zip(raw.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *lane = u64::from_le_bytes(b);
            high |= *lane;
        }
        if high & splat(0x80) != 0 {
            return None;
        }
        let mut block = AsciiBlock {
            lower: [0; AsciiBlock::LEN],
            word_bits: 0,
        };
        for (k, lane) in lanes.into_iter().enumerate() {
            let (lower, bits) = swar_lower_words(lane);
            block.lower[k * 8..k * 8 + 8].copy_from_slice(&lower.to_le_bytes());
            block.word_bits |= u64::from(bits) << (k * 8);
        }
        Some(block)
    }

    /// Hands out the words this block ends (continuing `word`, the one carried in from before
    /// it), and leaves in `word` the one running on past its end.
    fn words(&self, word: &mut WordBuf, f: &mut impl FnMut(&[u8])) {
        let mut bits = self.word_bits;
        if !word.is_empty() {
            let run = (!bits).trailing_zeros() as usize;
            word.push(&self.lower[..run]);
            if run == AsciiBlock::LEN {
                return;
            }
            f(word.bytes());
            word.clear();
            bits &= u64::MAX << run;
        }
        while bits != 0 {
            let start = bits.trailing_zeros() as usize;
            let end = start + (!(bits >> start)).trailing_zeros() as usize;
            if end == AsciiBlock::LEN {
                word.push(&self.lower[start..]);
                return;
            }
            f(&self.lower[start..end]);
            bits &= u64::MAX << end;
        }
    }
}

/// `b` in every byte of a `u64`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// For eight ASCII bytes in a little-endian `u64`: the bytes with `A`-`Z` lowercased, and a bit
/// per byte (bit `i` for byte `i`) set where the byte is a letter or a digit.
///
/// Per byte, `x + (0x80 - lo)` has its high bit set when `x >= lo`, and `x + (0x7f - hi)` when
/// `x > hi`; for ASCII bytes neither sum carries into the next byte. The multiply gathers the
/// eight high bits into the top byte.
fn swar_lower_words(x: u64) -> (u64, u8) {
    let high = splat(0x80);
    let in_range = |v: u64, lo: u8, hi: u8| {
        v.wrapping_add(splat(0x80 - lo)) & !v.wrapping_add(splat(0x7f - hi)) & high
    };
    let lower = x | (in_range(x, b'A', b'Z') >> 2);
    let word = in_range(lower, b'a', b'z') | in_range(lower, b'0', b'9');
    let bits = ((word >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
    (lower, bits)
}

/// The paragraphs of `text`: the pieces between blank lines (`"\n\n"`), as `str::split` cuts
/// them, found with a SIMD substring search.
fn paragraphs_of(text: &str) -> impl Iterator<Item = &str> {
    let mut from = 0;
    let mut breaks = memchr::memmem::find_iter(text.as_bytes(), b"\n\n");
    std::iter::from_fn(move || {
        if from > text.len() {
            return None;
        }
        let end = breaks.next().unwrap_or(text.len());
        let para = &text[from..end];
        from = end + 2;
        Some(para)
    })
}

/// The words of one body, hashed once: every word's hash in order, and which of them each
/// paragraph holds (paragraphs are separated by blank lines; no word spans one). Boilerplate
/// learning ([`super::clean::Boilerplate::learn_words`]), the story cut and the fingerprints all
/// read it, so a body is scanned once.
#[derive(Debug, Clone)]
pub struct Words<'a> {
    text: &'a str,
    hashes: Vec<u64>,
    /// Each paragraph's text and the end of its words in `hashes` (it starts where the previous
    /// one ended).
    paragraphs: Vec<(&'a str, u32)>,
}

impl<'a> Words<'a> {
    /// Scans `text`.
    pub fn of(text: &'a str) -> Words<'a> {
        let mut hashes = Vec::with_capacity(text.len() / 5);
        let mut paragraphs = Vec::new();
        for para in paragraphs_of(text) {
            for_each_word_bytes(para, |w| hashes.push(word_hash_bytes(w)));
            paragraphs.push((para, hashes.len().min(u32::MAX as usize) as u32));
        }
        Words {
            text,
            hashes,
            paragraphs,
        }
    }

    /// The text scanned.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Every word's hash, in order.
    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    /// Each paragraph's text and its words' hashes.
    pub fn paragraphs(&self) -> impl Iterator<Item = (&'a str, &[u64])> + '_ {
        let mut start = 0usize;
        self.paragraphs.iter().map(move |&(text, end)| {
            let words = &self.hashes[start..end as usize];
            start = end as usize;
            (text, words)
        })
    }
}

/// The hashes of the words of `text`, in order.
pub fn word_hashes(text: &str) -> Vec<u64> {
    let mut v = Vec::with_capacity(text.len() / 5);
    for_each_word_bytes(text, |w| v.push(word_hash_bytes(w)));
    v
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
    fingerprint_with(text, &super::clean::Boilerplate::default())
}

/// [`fingerprint`] for an item of a feed whose learned boilerplate is `boilerplate`.
pub fn fingerprint_with(text: &str, boilerplate: &super::clean::Boilerplate) -> Fingerprint {
    fingerprint_words(&Words::of(text), boilerplate)
}

/// Weighted simhash features: a word's hash and its weight.
type Features = Vec<(u64, i32)>;

/// [`fingerprint_with`] of a body already scanned.
pub fn fingerprint_words(
    words: &Words<'_>,
    boilerplate: &super::clean::Boilerplate,
) -> Fingerprint {
    let all = words.hashes();
    let story = super::clean::story_words(words, boilerplate);
    let hashes: &[u64] = &story;
    // Term frequencies of the meaningful words: runs of equal hashes once sorted.
    // Kept without a branch: about half the words are stop words, in no pattern a branch
    // predictor could learn.
    // Scratch buffers, one pair per thread: not two allocations of a few KB per item.
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<u64>, Features)> =
            const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    }
    let simhash = SCRATCH.with_borrow_mut(|(meaningful, tf)| {
        meaningful.clear();
        meaningful.resize(hashes.len(), 0);
        let mut kept = 0;
        for &h in hashes.iter() {
            meaningful[kept] = h;
            kept += usize::from(!is_stop_hash(h));
        }
        meaningful.truncate(kept);
        meaningful.sort_unstable();
        tf.clear();
        tf.extend(
            meaningful
                .chunk_by(|a, b| a == b)
                .map(|run| (run[0], tf_weight(run.len() as u32))),
        );
        simhash_of_features(tf)
    });
    let sketch = containment::sketch(hashes);
    Fingerprint {
        simhash,
        content: content_hash(all),
        words: all.len().min(u32::MAX as usize) as u32,
        short_marks: sketch.short,
        long_marks: sketch.long,
        anchors: sketch.anchors,
    }
}

/// The `content` hash: every word's stable hash, in order, as little-endian bytes.
fn content_hash(word_hashes: &[u64]) -> u64 {
    let mut h = Xxh3::with_seed(0);
    for chunk in word_hashes.chunks(256) {
        let mut bytes = [0u8; 256 * 8];
        for (i, w) in chunk.iter().enumerate() {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        h.update(&bytes[..chunk.len() * 8]);
    }
    h.digest()
}

/// The stable hash of one (already lowercased) word.
pub fn word_hash(word: &str) -> u64 {
    word_hash_bytes(word.as_bytes())
}

/// [`word_hash`] of a word's bytes.
fn word_hash_bytes(word: &[u8]) -> u64 {
    xxh3_64_with_seed(word, WORD_SEED)
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
    let features: Vec<(u64, i32)> = features.collect();
    simhash_of_features(&features)
}

with_avx2! {
    /// [`weighted_simhash`] of features already in a slice (AVX2: eight 32-bit lanes instead of
    /// SSE2's four).
    fn simhash_of_features(features: &[(u64, i32)]) -> u64 = simhash_of
}

/// The simhash sums. Per bit, the weight of the features that set it; the bit is set when that is
/// more than half the total. i32 sums with an AND mask (no multiply, no branch) vectorize well
/// (measured faster than a byte-spreading table); they are folded into i64 every CHUNK features,
/// long before an i32 could overflow.
#[inline(always)]
fn simhash_of(features: &[(u64, i32)]) -> u64 {
    const CHUNK: usize = 1 << 16;
    let mut set = [0i64; 64];
    let mut total = 0i64;
    for block in features.chunks(CHUNK) {
        let mut chunk = [0i32; 64];
        for &(h, w) in block {
            total += i64::from(w);
            for (i, slot) in chunk.iter_mut().enumerate() {
                let mask = -(((h >> i) & 1) as i32);
                *slot += mask & w;
            }
        }
        for (s, c) in set.iter_mut().zip(chunk) {
            *s += i64::from(c);
        }
    }
    set.iter().enumerate().fold(
        0u64,
        |acc, (i, &s)| if 2 * s > total { acc | (1 << i) } else { acc },
    )
}

/// Hamming distance between two fingerprints.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// True for English function words, which say nothing about which story a text tells.
pub fn is_stop_word(word: &str) -> bool {
    is_stop_hash(word_hash(word))
}

/// [`is_stop_word`] by the word's [`word_hash`]: two slots of a small table, compared without
/// a branch (about half the words of a text are stop words, so this runs for every word).
fn is_stop_hash(hash: u64) -> bool {
    let table = &*STOP_TABLE;
    let i = (hash as usize) & (table.len() - 2);
    (table[i] == hash) | (table[i + 1] == hash)
}

/// [`STOP_HASHES`] in a table of a power-of-two size plus one slot, each in its home slot or
/// the next one; 0 marks an empty slot (no stop word hashes to 0). The size doubles until
/// every hash finds room that close to home.
static STOP_TABLE: LazyLock<Vec<u64>> = LazyLock::new(|| {
    let mut size = STOP_HASHES.len().next_power_of_two();
    'grow: loop {
        let mut table = vec![0u64; size + 1];
        for &h in STOP_HASHES.iter().filter(|&&h| h != 0) {
            let home = (h as usize) & (size - 1);
            match (home..=home + 1).find(|&i| table[i] == 0) {
                Some(i) => table[i] = h,
                None => {
                    size *= 2;
                    continue 'grow;
                }
            }
        }
        return table;
    }
});

/// The stop words' hashes, sorted: the list below and every one-character word (letters and
/// digits of the ASCII range; other single characters are rare enough to carry meaning).
static STOP_HASHES: LazyLock<Vec<u64>> = LazyLock::new(|| {
    let singles = (b'a'..=b'z')
        .chain(b'0'..=b'9')
        .map(|c| word_hash(std::str::from_utf8(&[c]).unwrap_or_default()));
    let mut v: Vec<u64> = STOP_WORDS
        .iter()
        .map(|w| word_hash(w))
        .chain(singles)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
});

static STOP_WORDS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
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

    #[test]
    fn every_stop_word_is_found_in_two_slots_and_others_are_not() {
        for w in STOP_WORDS.iter() {
            assert!(is_stop_word(w), "{w}");
        }
        for c in ('a'..='z').chain('0'..='9') {
            assert!(is_stop_word(&c.to_string()), "{c}");
        }
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..10_000 {
            let word: String = (0..rng.usize(2..9)).map(|_| rng.lowercase()).collect();
            assert_eq!(
                is_stop_word(&word),
                STOP_WORDS.contains(&word.as_str()),
                "{word}"
            );
        }
    }

    /// Golden values: if one of these changes, every stored fingerprint is invalid. Never update
    /// them to make a test pass; bump the store format and re-index instead.
    #[test]
    fn golden_values_are_stable() {
        assert_eq!(word_hash("syria"), 0xdfae_12f5_3b6b_a45f);
        let f =
            fingerprint("Russia and the United States agreed on a ceasefire in south-west Syria.");
        assert_eq!(f.words, 13);
        assert_eq!(f.content, 0xa13d_2851_18cb_c9f0);
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

    /// The words of `text` scanned one character at a time only: what the block scan must equal.
    fn scalar_words(text: &str) -> Vec<Vec<u8>> {
        let text: String = if is_nfkc_quick(text.chars()) == IsNormalized::Yes {
            text.to_string()
        } else {
            text.nfkc().collect()
        };
        let (mut out, mut word, mut i) = (Vec::new(), WordBuf::new(), 0);
        while i < text.len() {
            i = scalar_step(&text, i, &mut word, &mut |w: &[u8]| out.push(w.to_vec()));
        }
        if !word.is_empty() {
            out.push(word.bytes().to_vec());
        }
        out
    }

    #[test]
    fn the_block_scan_finds_the_words_the_character_scan_finds() {
        let pieces = [
            "a",
            "Word",
            "WORDS",
            "x9",
            "2025",
            " ",
            " ",
            ",",
            "-",
            ".\n",
            "\t",
            "é",
            "Ünïcode",
            "’",
            "—",
            "\u{a0}",
            "ﬁ",
            "Ｆ",
            "日本",
            "long",
            "averyveryveryveryverylongwordthatgoesonpastsixtyfourbytesforsureyes",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..3000 {
            let ascii_only = round % 2 == 0;
            let n = rng.usize(0..120);
            let text: String = (0..n)
                .map(|_| {
                    loop {
                        let p = pieces[rng.usize(..pieces.len())];
                        if !ascii_only || p.is_ascii() {
                            break p;
                        }
                    }
                })
                .collect();
            let mut fast = Vec::new();
            for_each_word_bytes(&text, |w| fast.push(w.to_vec()));
            assert_eq!(fast, scalar_words(&text), "{text:?}");
        }
        // Every byte value the ASCII range has, at every offset in a block.
        for offset in 0..70 {
            let text: String = " ".repeat(offset) + &(0u8..128).map(char::from).collect::<String>();
            let mut fast = Vec::new();
            for_each_word_bytes(&text, |w| fast.push(w.to_vec()));
            assert_eq!(fast, scalar_words(&text), "offset {offset}");
        }
    }

    #[test]
    fn swar_matches_the_byte_table() {
        for x in 0u8..128 {
            let lane = u64::from_le_bytes([x, b'Q', x, b' ', x, b'7', x, 0x7f]);
            let (lower, bits) = swar_lower_words(lane);
            for (i, &b) in lane.to_le_bytes().iter().enumerate() {
                let t = ASCII_WORD[b as usize];
                assert_eq!(bits >> i & 1 == 1, t != 0, "byte {b}");
                assert_eq!(lower.to_le_bytes()[i], b.to_ascii_lowercase(), "byte {b}");
            }
        }
    }

    #[test]
    fn stop_words_do_not_move_the_simhash() {
        let a = fingerprint("ceasefire agreed southern syria monday");
        let b = fingerprint("the ceasefire was agreed for southern syria on monday");
        assert_eq!(a.simhash, b.simhash);
        assert_ne!(a.content, b.content);
    }

    #[test]
    fn every_simhash_path_agrees() {
        let mut rng = fastrand::Rng::with_seed(3);
        for n in [0, 1, 7, 300] {
            let features: Vec<(u64, i32)> = (0..n)
                .map(|_| (rng.u64(..), tf_weight(rng.u32(1..80))))
                .collect();
            let portable = simhash_of(&features);
            assert_eq!(weighted_simhash(features.iter().copied()), portable);
            // The obvious definition.
            let naive = (0..64).fold(0u64, |acc, i| {
                let sum: i64 = features
                    .iter()
                    .map(|&(h, w)| {
                        if (h >> i) & 1 == 1 {
                            i64::from(w)
                        } else {
                            -i64::from(w)
                        }
                    })
                    .sum();
                if sum > 0 { acc | (1 << i) } else { acc }
            });
            assert_eq!(portable, naive, "{n} features");
        }
    }

    #[test]
    fn empty_text() {
        let f = fingerprint("");
        assert_eq!(f.words, 0);
        assert_eq!(f.simhash, 0);
    }
}
