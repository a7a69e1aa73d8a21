//! Clean: the part of a body that tells the story, which is what near-duplicate fingerprints are
//! taken from.
//!
//! Syndicated copies differ from the original mostly in the wrapping: a dateline in front
//! ("KELL, March 5 (Northern Wire) —"), a byline or "Posted ..." line, and boilerplate at the end
//! ("Sign up for our newsletter", "The post ... appeared first on ..."). On a 200-word story those
//! few lines flip about eight bits of a 64-bit simhash, far past any useful distance, so they are
//! taken out first:
//!
//! - a dateline: up to [`DATELINE_MAX_BYTES`] at the start of the first paragraph, ending in a
//!   dash, that begins with a capitalized place name or carries a parenthesized agency;
//! - a leading byline or date line: a first paragraph of a few words starting with `By`,
//!   `Posted`, `Published` or `Updated`;
//! - boilerplate paragraphs: paragraphs of at most [`BOILERPLATE_MAX_WORDS`] words containing a
//!   phrase that only wrapping uses ([`BOILERPLATE_CUES`]).
//!
//! - paragraphs a feed repeats across its items ([`Boilerplate`], learned per feed): the same
//!   paragraph word for word, or paragraphs ending in the same four words ("The post *Title*
//!   appeared first on *Site*", a house footer with a changing date).
//!
//! The stored text is never changed, and the `content` hash still covers every word.

use std::borrow::Cow;
use std::sync::LazyLock;

/// A dateline is at most this long.
pub const DATELINE_MAX_BYTES: usize = 80;
/// Paragraphs longer than this are never taken for boilerplate.
pub const BOILERPLATE_MAX_WORDS: usize = 50;

/// Phrases that mark a short paragraph as wrapping rather than story (compared lowercased).
pub const BOILERPLATE_CUES: &[&str] = &[
    "all rights reserved",
    "appeared first on",
    "click here",
    "follow us on",
    "may not be published",
    "may not be republished",
    "may not be reproduced",
    "newsletter",
    "read more:",
    "share this article",
    "sign up for",
    "sign up to",
    "subscribe to",
    "subscribe now",
    "copyright \u{a9}",
    "\u{a9} copyright",
    "this article was originally published",
    "the post ",
];

/// The story part of `text` (paragraphs separated by blank lines), borrowed when nothing is cut.
pub fn story_text(text: &str) -> Cow<'_, str> {
    story_text_with(text, &Boilerplate::default())
}

/// [`story_text`], also leaving out the paragraphs a feed's learned `boilerplate` names.
pub fn story_text_with<'a>(text: &'a str, boilerplate: &Boilerplate) -> Cow<'a, str> {
    let paragraphs: Vec<&str> = text.split("\n\n").collect();
    let learned = |i: usize, rest: Option<&str>| boilerplate.names(rest.unwrap_or(paragraphs[i]));
    match cut(&paragraphs, learned) {
        None => Cow::Borrowed(text),
        Some(kept) => Cow::Owned(
            kept.iter()
                .map(|&(i, rest)| rest.unwrap_or(paragraphs[i]))
                .collect::<Vec<_>>()
                .join("\n\n"),
        ),
    }
}

/// The word hashes of the story part of a scanned body: exactly the words of
/// [`story_text_with`]'s text, without building it (borrowed when nothing is cut).
pub fn story_words<'w>(
    words: &'w super::fingerprint::Words<'_>,
    boilerplate: &Boilerplate,
) -> Cow<'w, [u64]> {
    let (paragraphs, hashes): (Vec<&str>, Vec<&[u64]>) = words.paragraphs().unzip();
    let rest_words = |rest: &str| super::fingerprint::word_hashes(rest);
    let learned = |i: usize, rest: Option<&str>| match rest {
        None => boilerplate.names_words(hashes[i]),
        Some(rest) => boilerplate.names_words(&rest_words(rest)),
    };
    match cut(&paragraphs, learned) {
        None => Cow::Borrowed(words.hashes()),
        Some(kept) => {
            let mut out = Vec::with_capacity(words.hashes().len());
            for (i, rest) in kept {
                match rest {
                    None => out.extend_from_slice(hashes[i]),
                    Some(rest) => out.extend(rest_words(rest)),
                }
            }
            Cow::Owned(out)
        }
    }
}

/// The story cut's rule, paragraph by paragraph, for [`story_text_with`] and [`story_words`]:
/// `None` when every paragraph stays whole; else the paragraphs kept, each by index, with what
/// is left of it when its dateline was cut. `learned(i, rest)` says whether paragraph `i` (or
/// what is left of it) is one the feed repeats.
fn cut<'a>(
    paragraphs: &[&'a str],
    mut learned: impl FnMut(usize, Option<&'a str>) -> bool,
) -> Option<Vec<(usize, Option<&'a str>)>> {
    let mut changed = false;
    let mut kept = Vec::with_capacity(paragraphs.len());
    for (i, &para) in paragraphs.iter().enumerate() {
        if i == 0 && is_byline(para) {
            changed = true;
            continue;
        }
        // The first paragraph kept may open with a dateline.
        let rest = if kept.is_empty() {
            strip_dateline(para)
        } else {
            None
        };
        changed |= rest.is_some();
        if is_boilerplate(rest.unwrap_or(para)) || learned(i, rest) {
            changed = true;
            continue;
        }
        kept.push((i, rest));
    }
    changed.then_some(kept)
}

/// A short first paragraph that only names an author or a date.
fn is_byline(para: &str) -> bool {
    ["By ", "Posted ", "Published ", "Updated ", "BY "]
        .iter()
        .any(|p| para.starts_with(p))
        && para.split_whitespace().nth(10).is_none()
}

/// The paragraph without its dateline, if it has one.
fn strip_dateline(para: &str) -> Option<&str> {
    let head_end = para
        .char_indices()
        .map(|(i, _)| i)
        .take_while(|&i| i <= DATELINE_MAX_BYTES)
        .last()
        .unwrap_or(0);
    let head = &para[..head_end.min(para.len())];
    let (dash_at, dash_len) = ["\u{2014}", "\u{2013}", "--", " - "]
        .iter()
        .filter_map(|d| head.find(d).map(|i| (i, d.len())))
        .min()?;
    let prefix = para[..dash_at].trim();
    let first = prefix
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap_or("");
    let place = first.chars().filter(|c| c.is_alphabetic()).count() >= 3
        && first.chars().all(|c| !c.is_lowercase());
    let agency = prefix.contains('(') && prefix.ends_with(')');
    if prefix.is_empty() || !(place || agency) {
        return None;
    }
    let rest = para[dash_at + dash_len..].trim_start();
    (!rest.is_empty()).then_some(rest)
}

/// All the cues in one automaton, matched against the paragraph lowercased (ASCII), in a single
/// pass. Matching lowercased text exactly finds what an ASCII-case-insensitive search finds, and
/// lets aho-corasick use its SIMD prefilter (Teddy), which case-insensitive searches cannot:
/// its automaton walked every byte of every short paragraph (3% of pass 1 on the benchmark
/// workload).
static CUES: LazyLock<Option<aho_corasick::packed::Searcher>> = LazyLock::new(|| {
    aho_corasick::packed::Config::new()
        .builder()
        .extend(BOILERPLATE_CUES)
        .build()
});

/// A short paragraph made of wrapping.
///
/// Cheapest test first: many paragraphs are certainly too long (counted without decoding a
/// character), and searching only the others for cues took the search from 8% to 3% of the
/// parse-and-fingerprint work on the benchmark workload (it had searched every body whole).
fn is_boilerplate(para: &str) -> bool {
    if certainly_longer_than(para, BOILERPLATE_MAX_WORDS) {
        return false;
    }
    thread_local! {
        static LOWER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let cue = LOWER.with_borrow_mut(|lower| {
        lower.clear();
        lower.extend(para.bytes().map(|b| b.to_ascii_lowercase()));
        match CUES.as_ref() {
            Some(cues) => cues.find(lower.as_slice()).is_some(),
            None => BOILERPLATE_CUES
                .iter()
                .any(|cue| memchr::memmem::find(lower, cue.as_bytes()).is_some()),
        }
    });
    cue && para.split_whitespace().nth(BOILERPLATE_MAX_WORDS).is_none()
}

/// True when `text` certainly has more than `words` whitespace-separated words: each ASCII
/// space followed by a visible ASCII character starts a word of its own, so more than `words`
/// of them prove it. Counted without a branch a byte, 256 bytes at a time (the compiler
/// vectorizes it), stopping as soon as there are enough: searching for each space in turn (a
/// SIMD search started every few bytes) cost more than the cue search it saves.
fn certainly_longer_than(text: &str, words: usize) -> bool {
    let bytes = text.as_bytes();
    let pairs = bytes.len().saturating_sub(1);
    let mut count = 0usize;
    let mut at = 0;
    while at < pairs {
        let end = (at + 256).min(pairs);
        count += bytes[at..end]
            .iter()
            .zip(&bytes[at + 1..=end])
            .map(|(&space, &next)| usize::from((space == b' ') & (next.wrapping_sub(0x21) < 0x5E)))
            .sum::<usize>();
        if count > words {
            return true;
        }
        at = end;
    }
    false
}

/// Paragraphs one feed repeats across its items, learned from what it publishes.
///
/// A paragraph of at most [`BOILERPLATE_MAX_WORDS`] words is known by the hash of all its words;
/// one of at most [`TAIL_MAX_WORDS`] words (footers are short) also by the hash of its last
/// [`TAIL_WORDS`] words. A key found in at least
/// [`LEARN_MIN_ITEMS`] items of one fetch, and in at least half of them, is boilerplate for that
/// feed from then on. At most [`KEEP_KEYS`] keys are kept, the newest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Boilerplate {
    keys: Vec<u64>,
}

/// The keys of one short paragraph: the hash of all its words, and of its last [`TAIL_WORDS`]
/// when it has at most [`TAIL_MAX_WORDS`].
#[derive(Debug, Clone, Copy)]
struct ParagraphKeys {
    whole: u64,
    tail: Option<u64>,
}

impl ParagraphKeys {
    fn iter(self) -> impl Iterator<Item = u64> {
        std::iter::once(self.whole).chain(self.tail)
    }
}

/// Words of a paragraph's tail key.
pub const TAIL_WORDS: usize = 4;
/// Paragraphs longer than this have no tail key.
pub const TAIL_MAX_WORDS: usize = 25;
/// Items of one fetch a paragraph must recur in.
pub const LEARN_MIN_ITEMS: usize = 3;
/// Keys kept per feed.
pub const KEEP_KEYS: usize = 64;

impl Boilerplate {
    /// True when nothing is learned.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys of a paragraph (whole, and tail when short), if it is short enough to be
    /// boilerplate.
    fn paragraph_keys(para: &str) -> Option<ParagraphKeys> {
        Self::keys_of(&super::fingerprint::word_hashes(para))
    }

    /// [`Boilerplate::paragraph_keys`] of a paragraph's word hashes.
    fn keys_of(words: &[u64]) -> Option<ParagraphKeys> {
        let n = words.len();
        if !(TAIL_WORDS..=BOILERPLATE_MAX_WORDS).contains(&n) {
            return None;
        }
        // The hashes' little-endian bytes, as one xxh3 input (the stored keys depend on it).
        let hash = |seed: u64, ws: &[u64]| {
            let mut bytes = [0u8; BOILERPLATE_MAX_WORDS * 8];
            for (chunk, w) in bytes.chunks_exact_mut(8).zip(ws) {
                chunk.copy_from_slice(&w.to_le_bytes());
            }
            xxhash_rust::xxh3::xxh3_64_with_seed(&bytes[..ws.len() * 8], seed)
        };
        let whole = hash(1, words);
        let tail = (n <= TAIL_MAX_WORDS).then(|| hash(2, &words[n - TAIL_WORDS..]));
        Some(ParagraphKeys { whole, tail })
    }

    /// True when the paragraph with these word hashes is one of the learned paragraphs.
    fn names_words(&self, words: &[u64]) -> bool {
        !self.keys.is_empty()
            && Self::keys_of(words).is_some_and(|ks| ks.iter().any(|k| self.keys.contains(&k)))
    }

    /// True when `para` is one of the learned paragraphs.
    pub fn names(&self, para: &str) -> bool {
        !self.keys.is_empty()
            && Self::paragraph_keys(para)
                .is_some_and(|ks| ks.iter().any(|k| self.keys.contains(&k)))
    }

    /// Learns from the texts of one fetch, keeping what was known.
    pub fn learn<'a>(&mut self, texts: impl Iterator<Item = &'a str>) {
        let words: Vec<_> = texts.map(super::fingerprint::Words::of).collect();
        self.learn_words(words.iter());
    }

    /// [`Boilerplate::learn`] from the scanned bodies of one fetch.
    pub fn learn_words<'w, 'a: 'w>(
        &mut self,
        bodies: impl Iterator<Item = &'w super::fingerprint::Words<'a>>,
    ) {
        let mut items = 0usize;
        let mut seen: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        let mut in_item = Vec::new();
        for words in bodies {
            items += 1;
            in_item.clear();
            for (_, hashes) in words.paragraphs() {
                if let Some(keys) = Self::keys_of(hashes) {
                    in_item.extend(keys.iter());
                }
            }
            in_item.sort_unstable();
            in_item.dedup();
            for &k in &in_item {
                *seen.entry(k).or_default() += 1;
            }
        }
        let needed = LEARN_MIN_ITEMS.max(items.div_ceil(2));
        let mut learned: Vec<u64> = seen
            .into_iter()
            .filter(|&(_, n)| n >= needed)
            .map(|(k, _)| k)
            .collect();
        learned.sort_unstable();
        for k in learned {
            if !self.keys.contains(&k) {
                self.keys.push(k);
            }
        }
        if self.keys.len() > KEEP_KEYS {
            let excess = self.keys.len() - KEEP_KEYS;
            self.keys.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datelines_bylines_and_boilerplate_are_cut() {
        let text = "By Jane Doe\n\nKELL, March 5 (Northern Wire) \u{2014} The glacier retreated.\n\nMore text here.\n\nSign up for our newsletter.\n\nThe post Glacier appeared first on Example News.";
        assert_eq!(
            story_text(text),
            "The glacier retreated.\n\nMore text here."
        );
        assert_eq!(
            story_text("WASHINGTON (AP) -- Talks ended."),
            "Talks ended."
        );
        assert_eq!(story_text("LONDON \u{2013} Rain fell."), "Rain fell.");
        assert_eq!(
            story_text("Posted July 08, 2017\n\nNetanyahu spoke."),
            "Netanyahu spoke."
        );
    }

    #[test]
    fn word_starts_are_counted_as_their_definition_says() {
        // The definition: spaces followed by a visible ASCII character, more than `words`.
        let plain = |text: &str, words: usize| {
            let b = text.as_bytes();
            (0..b.len().saturating_sub(1))
                .filter(|&i| b[i] == b' ' && (0x21..0x7F).contains(&b[i + 1]))
                .count()
                > words
        };
        let mut rng = fastrand::Rng::with_seed(11);
        let pieces = [" ", "a", "  ", "\n", "\u{e9}", "x ", " \u{7f}", "~", "\t"];
        for _ in 0..2000 {
            let len = rng.usize(0..700);
            let text: String = (0..len)
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            for words in [0, 1, 7, 50, 300] {
                assert_eq!(
                    certainly_longer_than(&text, words),
                    plain(&text, words),
                    "{text:?} {words}"
                );
            }
        }
    }

    #[test]
    fn cues_are_found_in_any_ascii_case() {
        for para in [
            "ALL RIGHTS RESERVED.",
            "Copyright \u{a9} 2024 Example Media",
            "cOpYrIgHt \u{a9} the authors",
            "\u{a9} Copyright Example",
            "Read More: the full story",
            "Le contenu. Subscribe To our list",
        ] {
            assert!(is_boilerplate(para), "{para}");
        }
        for para in [
            "A short paragraph.",
            "Copyright law changed",
            "read more of this",
        ] {
            assert!(!is_boilerplate(para), "{para}");
        }
    }

    #[test]
    fn a_feed_learns_its_own_boilerplate() {
        let leads = [
            "Boats crowd the harbour at dawn.",
            "The council met late on Tuesday.",
            "Rain closed the ridge road again.",
            "A new bakery opened on Mill Street.",
        ];
        let items: Vec<String> = (0..4)
            .map(|i| {
                format!(
                    "{}\n\nMore about story {i} here.\n\nThe Valley Herald has covered the Alder valley since 1921.\n\nFiled {i} March by the Herald's news desk staff.",
                    leads[i]
                )
            })
            .collect();
        let mut b = Boilerplate::default();
        b.learn(items.iter().map(String::as_str));
        assert_eq!(
            story_text_with(&items[0], &b),
            "Boats crowd the harbour at dawn.\n\nMore about story 0 here."
        );
        // Too few items to learn from.
        let mut none = Boilerplate::default();
        none.learn(items[..2].iter().map(String::as_str));
        assert!(none.is_empty());
        // What was learned is kept and used on a fetch of one item.
        let later = "A new story.\n\nThe Valley Herald has covered the Alder valley since 1921.";
        assert_eq!(story_text_with(later, &b), "A new story.");
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Boilerplate>(&json).unwrap(), b);
    }

    /// The keys are stored in feed states: they must stay the hashes of the words' hashes'
    /// bytes, whatever the scanner does inside.
    #[test]
    fn paragraph_keys_match_the_plain_definition() {
        let plain = |para: &str| -> Option<Vec<u64>> {
            let mut words = Vec::new();
            crate::dedup::fingerprint::for_each_word(para, |w| {
                words.push(crate::dedup::fingerprint::word_hash(w))
            });
            if words.len() < TAIL_WORDS || words.len() > BOILERPLATE_MAX_WORDS {
                return None;
            }
            let hash = |seed, ws: &[u64]| {
                let bytes: Vec<u8> = ws.iter().flat_map(|w| w.to_le_bytes()).collect();
                xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, seed)
            };
            let mut keys = vec![hash(1, &words)];
            if words.len() <= TAIL_MAX_WORDS {
                keys.push(hash(2, &words[words.len() - TAIL_WORDS..]));
            }
            Some(keys)
        };
        let long_word = "x".repeat(200);
        let fifty = "word ".repeat(50);
        let fifty_one = "word ".repeat(51);
        for para in [
            "",
            "Too short here.",
            "The Valley Herald has covered the Alder valley since 1921.",
            "Ünïcödé Straße ﬁne words, \u{FF21}\u{FF22} and more",
            long_word.as_str(),
            &format!("a {long_word} b c d"),
            &fifty,
            &fifty_one,
        ] {
            let got = Boilerplate::paragraph_keys(para).map(|k| k.iter().collect::<Vec<_>>());
            assert_eq!(got, plain(para), "{para}");
        }
    }

    /// The story's words from a scanned body are the words of the story's text, whatever is cut.
    fn story_words_agree(text: &str, boilerplate: &Boilerplate) {
        let words = crate::dedup::fingerprint::Words::of(text);
        let from_text = crate::dedup::fingerprint::word_hashes(&story_text_with(text, boilerplate));
        assert_eq!(
            &*story_words(&words, boilerplate),
            from_text.as_slice(),
            "{text:?}"
        );
        assert_eq!(
            matches!(story_words(&words, boilerplate), Cow::Borrowed(_)),
            matches!(story_text_with(text, boilerplate), Cow::Borrowed(_)),
            "{text:?}"
        );
    }

    #[test]
    fn story_words_match_the_story_text() {
        let mut learned = Boilerplate::default();
        let footer = "The Valley Herald has covered the Alder valley since 1921.";
        learned.learn([footer, footer, footer].into_iter());
        assert!(!learned.is_empty());
        for text in [
            "",
            "\n\n",
            "By Jane Doe\n\nKELL, March 5 (Northern Wire) \u{2014} The glacier retreated.\n\nMore.",
            "--\n\nLONDON \u{2013} Rain fell.",
            "Sign up for our newsletter.\n\nWASHINGTON (AP) -- Talks ended.\n\nMore talks.",
            "!!!\n\nPARIS \u{2014} A dateline after a paragraph without words.",
            "Posted July 08, 2017\n\n\n\nNetanyahu spoke.",
            "Ünïcödé Straße\n\nﬁne words, \u{FF21}\u{FF22}\n\nThe post X appeared first on Y.",
            "Story one.\n\nThe Valley Herald has covered the Alder valley since 1921.",
            "The mayor said the plan - a new bridge - would cost less.",
        ] {
            story_words_agree(text, &Boilerplate::default());
            story_words_agree(text, &learned);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Random bodies of pieces that trigger every cut, in any order.
        #[test]
        fn story_words_match_the_story_text_for_any_body(
            pieces in proptest::collection::vec(0usize..10, 0..8),
        ) {
            const PIECES: [&str; 10] = [
                "By Jane Doe",
                "KELL, March 5 (Northern Wire) \u{2014} The glacier retreated.",
                "Sign up for our newsletter.",
                "The Valley Herald has covered the Alder valley since 1921.",
                "Officials in Kell said nothing at all about the bridge today.",
                "",
                "\u{2014}",
                "LONDON \u{2013} Ünïcödé rain fell on ﬁne Straße.",
                "Read more: the council's plan",
                "The council met late on Tuesday to vote on the bridge plan.",
            ];
            let text = pieces.iter().map(|&i| PIECES[i]).collect::<Vec<_>>().join("\n\n");
            let mut learned = Boilerplate::default();
            let footer = PIECES[3];
            learned.learn([footer, footer, footer].into_iter());
            story_words_agree(&text, &Boilerplate::default());
            story_words_agree(&text, &learned);
        }
    }

    #[test]
    fn story_text_is_left_alone() {
        for text in [
            "The mayor said the plan - a new bridge - would cost less.",
            "Officials in Kell, a town of 900 \u{2014} said nothing.",
            "Subscribers to the service rose by a third, the company said, as its newsletter audience grew and the board approved a wider rollout across the region over the coming year, with more to follow in the spring and autumn according to figures it published on Monday alongside its quarterly results and guidance for investors.",
        ] {
            assert!(matches!(story_text(text), Cow::Borrowed(_)), "{text}");
        }
    }
}
