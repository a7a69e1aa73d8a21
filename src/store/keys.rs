//! Key encodings for the sled trees. Numbers are big-endian so that sled's lexicographic order is
//! numeric order (the seq log depends on it); strings are prefixed with a tag byte so several
//! indexes share the `index` tree without colliding.
//!
//! | tree         | key                                  | value                              |
//! |--------------|--------------------------------------|------------------------------------|
//! | `articles`   | seq (u64 BE)                         | the article's NDJSON record        |
//! | `keys`       | seq (u64 BE)                         | [`super::ArticleKeys`] (JSON)      |
//! | `ids`        | article id                           | seq (u64 BE)                       |
//! | `duplicates` | duplicate seq (u64 BE)               | the duplicate's NDJSON record      |
//! | `index`      | `f` feed `\0` guid                   | `a`+seq or `d`+duplicate seq       |
//! |              | `g` guid (globally unique ones)      | seq                                |
//! |              | `u` canonical url                    | seq                                |
//! |              | `c` content hash (u64 BE)            | seq                                |
//! |              | `s` table (u8) rotated simhash seq   | empty                              |
//! |              | `w` mark (u64 BE) seq                | empty                              |
//! | `feeds`      | feed url                             | [`super::FeedState`] (JSON)        |
//! | `meta`       | name                                 | counters, format, index layout     |

/// Big-endian bytes of a sequence number.
pub fn seq(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads a big-endian u64 from the first 8 bytes, if there are 8.
pub fn read_u64(bytes: &[u8]) -> Option<u64> {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(tag);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// Key of "this feed delivered this guid".
pub fn feed_guid(feed: &str, guid: &str) -> Vec<u8> {
    tagged(b'f', &[feed.as_bytes(), b"\0", guid.as_bytes()])
}

/// Key of a globally unique guid.
pub fn guid(guid: &str) -> Vec<u8> {
    tagged(b'g', &[guid.as_bytes()])
}

/// Key of a canonical link.
pub fn url(url: &str) -> Vec<u8> {
    tagged(b'u', &[url.as_bytes()])
}

/// Key of a content hash.
pub fn content(hash: u64) -> Vec<u8> {
    tagged(b'c', &[&hash.to_be_bytes()])
}

/// Key of a simhash entry in block table `table`.
pub fn near(table: u32, rotated: u64, seq: u64) -> [u8; 18] {
    let mut k = [0u8; 18];
    k[0] = b's';
    k[1] = table as u8;
    k[2..10].copy_from_slice(&rotated.to_be_bytes());
    k[10..18].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Decodes a [`near`] key into (rotated simhash, seq).
pub fn parse_near(key: &[u8]) -> Option<(u64, u64)> {
    if key.len() != 18 || key[0] != b's' {
        return None;
    }
    Some((read_u64(&key[2..10])?, read_u64(&key[10..18])?))
}

/// Value of a `f` entry: the item was stored as article `seq`.
pub fn seen_article(seq: u64) -> [u8; 9] {
    let mut v = [b'a'; 9];
    v[1..].copy_from_slice(&seq.to_be_bytes());
    v
}

/// Value of a `f` entry: the item was suppressed as duplicate `seq`.
pub fn seen_duplicate(seq: u64) -> [u8; 9] {
    let mut v = [b'd'; 9];
    v[1..].copy_from_slice(&seq.to_be_bytes());
    v
}

/// Key of a containment mark of article `seq`.
pub fn mark(mark: u64, seq: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'w';
    k[1..9].copy_from_slice(&mark.to_be_bytes());
    k[9..17].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of every [`mark`] key for one mark.
pub fn mark_prefix(mark: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'w';
    k[1..9].copy_from_slice(&mark.to_be_bytes());
    k
}
