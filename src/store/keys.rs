//! Key encodings. Everything that must change together (an article or a duplicate, its
//! `also_seen` link, the sequence counters) lives in one tree, `main`, under a one-byte prefix
//! per kind, so that one sled batch writes it atomically. Numbers are big-endian so that sled's
//! lexicographic order is numeric order (the seq logs depend on it).
//!
//! | key                                   | value                                            |
//! |---------------------------------------|--------------------------------------------------|
//! | `A` last seq of a group (u64)         | since format 6: pointers into the body log ([`super::bodies`]) to the values ([`super::records::encode_article`]) of the articles one commit stored, consecutive seqs ([`super::seqlog`]) |
//! | `D` last duplicate seq of a group     | since format 6: the same for duplicate records  |
//! | `a` seq (u64)                         | before format 6: pointer to one article value; inline in databases from before format 4 |
//! | `d` duplicate seq (u64)               | before format 6: pointer to one duplicate value (same encoding as articles); inline before format 4 |
//! | `t` article seq (u64)                 | tombstone: a deleted article's record without its text, kept while it is in `dedup.window` |
//! | `i` item id (16 hex)                  | `a`+seq or `d`+duplicate seq: what became of the item; written before format 5 only (since then item ids are indexed in memory, [`super::lookup`]) |
//! | `x` article seq, duplicate seq        | empty: the duplicate repeats the article         |
//! | `m` name                              | counters and facts (format, database id)         |
//!
//! The dedup indexes are not here: they live in memory ([`super::lookup`]), saved to
//! `lookup.bin`, and can always be rebuilt from the article and duplicate records. Feed states,
//! named consumers' offsets and the feeds added at run time live in their own trees (`feeds`,
//! `consumers`, `catalog`): they need no atomicity with the articles.

/// Prefix of article records with a key of their own (before format 6).
pub const ARTICLE: u8 = b'a';
/// Prefix of groups of article records (since format 6).
pub const ARTICLE_GROUP: u8 = b'A';
/// Prefix of duplicate records with a key of their own (before format 6).
pub const DUPLICATE: u8 = b'd';
/// Prefix of groups of duplicate records (since format 6).
pub const DUPLICATE_GROUP: u8 = b'D';
/// Prefix of tombstones (articles deleted by retention while inside the dedup window).
pub const TOMBSTONE: u8 = b't';

/// Key of a record in one of the seq logs.
pub fn logged(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [prefix; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Reads a big-endian u64 from the first 8 bytes, if there are 8.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

fn tagged(tag: u8, bytes: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bytes.len());
    k.push(tag);
    k.extend_from_slice(bytes);
    k
}

/// Key of an item id (what became of an item a feed delivered).
pub fn item(id: &str) -> Vec<u8> {
    tagged(b'i', id.as_bytes())
}

/// Key of a counter or layout fact.
pub fn meta(name: &str) -> Vec<u8> {
    tagged(b'm', name.as_bytes())
}

/// Value of an `i` entry: the item was stored as article `seq`.
pub fn became_article(seq: u64) -> [u8; 9] {
    logged(b'a', seq)
}

/// Value of an `i` entry: the item was recorded as duplicate `seq`.
pub fn became_duplicate(seq: u64) -> [u8; 9] {
    logged(b'd', seq)
}

/// Key saying duplicate `dup` repeats article `article` (the article's `also_seen`).
pub fn also(article: u64, dup: u64) -> [u8; 17] {
    let mut k = [b'x'; 17];
    k[1..9].copy_from_slice(&article.to_be_bytes());
    k[9..].copy_from_slice(&dup.to_be_bytes());
    k
}

/// Prefix of every [`also`] key of one article.
pub fn also_prefix(article: u64) -> [u8; 9] {
    logged(b'x', article)
}
