//! The records the store keeps and hands out. Each type that reaches a consumer documents its
//! wire format here, on the type that writes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dedup::Reason;
use crate::dedup::clean::Boilerplate;

/// A stored unique article, as printed by `feedsieve articles` and served by `/v1/articles`.
///
/// # Format
/// One JSON object per line (NDJSON), fields in this order: `seq` (u64, strictly increasing,
/// never reused), `id` (stable string), `feed` (URL of the feed it came from), `url` (canonical
/// link or null), `title`, `published` (RFC 3339 or null), `fetched` (RFC 3339), `text` (plain
/// text, paragraphs separated by a blank line), then `also_seen`: every place the story was seen
/// again, as the duplicate records that point here (without their `duplicate_of`), oldest first.
/// `also_seen` is added when the record is read, so it grows as copies arrive; the fields before
/// it never change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    /// Position in the article log.
    pub seq: u64,
    /// Stable id, derived from the feed and the guid.
    pub id: String,
    /// URL of the feed it came from.
    pub feed: String,
    /// Canonical link.
    pub url: Option<String>,
    /// Title on one line.
    pub title: String,
    /// When the publisher says it was published.
    pub published: Option<DateTime<Utc>>,
    /// When feedsieve fetched it.
    pub fetched: DateTime<Utc>,
    /// Plain text of the body.
    pub text: String,
}

/// A suppressed item, as printed by `feedsieve duplicates` and served by `/v1/duplicates`.
///
/// # Format
/// NDJSON: `seq` (its own sequence, strictly increasing), `id` (the copy's own item id, for
/// `explain`), `feed`, `url`, `title`,
/// `duplicate_of` (the `id` of the stored article it repeats), `reason` (`guid`, `url`, `content`,
/// `near` or `contained`), `distance` (Hamming bits, only for `near`), `containment` (0..1, only
/// for `contained`), `fetched` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Duplicate {
    /// Position in the duplicate log.
    pub seq: u64,
    /// The copy's own item id (a hash of its feed and guid).
    #[serde(default)]
    pub id: String,
    /// URL of the feed that delivered the copy.
    pub feed: String,
    /// The copy's canonical link.
    pub url: Option<String>,
    /// The copy's title.
    pub title: String,
    /// Id of the stored article it repeats.
    pub duplicate_of: String,
    /// Which check caught it.
    pub reason: Reason,
    /// Hamming distance, for `near`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance: Option<u32>,
    /// Share of text contained, for `contained`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<f64>,
    /// When feedsieve fetched the copy.
    pub fetched: DateTime<Utc>,
}

/// What the store keeps beside an article's public record: the keys it was indexed under (so
/// that its entries can be found again for re-indexing, retention and fsck) and its containment
/// marks (so that a containment match can be counted exactly).
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleKeys {
    /// Guid within its feed.
    pub guid: String,
    /// Simhash of the story text.
    pub simhash: u64,
    /// Content hash of the body.
    pub content: u64,
    /// Words in the body.
    pub words: u32,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub stored_ms: i64,
    /// Short containment marks, sorted.
    pub short_marks: Vec<u64>,
    /// Long containment marks, sorted.
    pub long_marks: Vec<u64>,
    /// The shingles it is indexed under, sorted.
    pub anchors: Vec<u64>,
}

impl ArticleKeys {
    /// The fingerprint these keys were made from (what dedup compares).
    pub fn fingerprint(&self) -> crate::dedup::fingerprint::Fingerprint {
        crate::dedup::fingerprint::Fingerprint {
            simhash: self.simhash,
            content: self.content,
            words: self.words,
            short_marks: self.short_marks.clone(),
            long_marks: self.long_marks.clone(),
            anchors: self.anchors.clone(),
        }
    }
}

/// Encodes an article value: `json_len (u32 LE)`, the NDJSON record, then [`ArticleKeys`] as
/// fixed-width little-endian fields (`simhash u64, content u64, words u32, stored_ms i64,
/// guid_len u32, guid`, then three lists, each a `u32` length and `u64`s: short marks, long
/// marks, anchors).
pub fn encode_article(json: &[u8], keys: &ArticleKeys) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + json.len() + keys_len(keys));
    v.extend_from_slice(&(json.len() as u32).to_le_bytes());
    v.extend_from_slice(json);
    push_keys(&mut v, keys);
    v
}

/// [`encode_article`] of `record` serialized to JSON in place: no copy of the JSON (nor of the
/// text the record borrows) on the way.
///
/// serde_json checks every byte of a string one at a time, and the text is nearly all of a
/// record: the other fields go through serde_json, the text through [`push_json_string`],
/// which escapes exactly as serde_json does, checking eight bytes at a time.
pub fn encode_record(record: &ArticleOut<'_>, keys: &ArticleKeys) -> Vec<u8> {
    let text = record.text;
    let mut v = Vec::with_capacity(4 + text.len() + text.len() / 64 + 512 + keys_len(keys));
    v.extend_from_slice(&[0; 4]);
    let head = ArticleOut {
        text: "",
        ..*record
    };
    serde_json::to_writer(&mut v, &head).expect("records of plain fields always serialize");
    // The text is the last field: `"text":""}` becomes `"text":"<escaped text>"}`.
    debug_assert!(v.ends_with(b"\"\"}"));
    v.truncate(v.len() - 3);
    push_json_string(&mut v, text);
    v.push(b'}');
    let json_len = (v.len() - 4) as u32;
    v[..4].copy_from_slice(&json_len.to_le_bytes());
    push_keys(&mut v, keys);
    v
}

/// Appends `text` as a JSON string, escaped byte for byte as serde_json escapes it: `"` and `\`
/// with a backslash, the control characters as `\b \t \n \f \r` or `\u00xx`, everything else
/// as it is.
pub fn push_json_string(out: &mut Vec<u8>, text: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The high bit of each zero byte of x; the lowest one set is exact (bits above it may be
    // set falsely by the borrow).
    let zeros = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let bytes = text.as_bytes();
    out.push(b'"');
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
            let special =
                control | zeros(x ^ (ONES * b'"' as u64)) | zeros(x ^ (ONES * b'\\' as u64));
            if special == 0 {
                i += 8;
                continue;
            }
            // Straight to the first byte to escape (little-endian: the lowest bit set).
            i += (special.trailing_zeros() / 8) as usize;
        }
        let b = bytes[i];
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0A => b"\\n",
            0x0C => b"\\f",
            0x0D => b"\\r",
            0x00..=0x1F => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[copied..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xF)]);
        } else {
            out.extend_from_slice(short);
        }
        i += 1;
        copied = i;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

fn keys_len(keys: &ArticleKeys) -> usize {
    let lists = keys.short_marks.len() + keys.long_marks.len() + keys.anchors.len();
    48 + keys.guid.len() + 8 * lists
}

fn push_keys(v: &mut Vec<u8>, keys: &ArticleKeys) {
    v.extend_from_slice(&keys.simhash.to_le_bytes());
    v.extend_from_slice(&keys.content.to_le_bytes());
    v.extend_from_slice(&keys.words.to_le_bytes());
    v.extend_from_slice(&keys.stored_ms.to_le_bytes());
    v.extend_from_slice(&(keys.guid.len() as u32).to_le_bytes());
    v.extend_from_slice(keys.guid.as_bytes());
    for list in [&keys.short_marks, &keys.long_marks, &keys.anchors] {
        v.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for m in list {
            v.extend_from_slice(&m.to_le_bytes());
        }
    }
}

/// An [`Article`] that borrows its strings, for writing one without copying its text: it
/// serializes to exactly the same JSON (a test checks it).
#[derive(Serialize, Clone, Copy)]
pub struct ArticleOut<'a> {
    /// See [`Article::seq`].
    pub seq: u64,
    /// See [`Article::id`].
    pub id: &'a str,
    /// See [`Article::feed`].
    pub feed: &'a str,
    /// See [`Article::url`].
    pub url: Option<&'a str>,
    /// See [`Article::title`].
    pub title: &'a str,
    /// See [`Article::published`].
    pub published: Option<DateTime<Utc>>,
    /// See [`Article::fetched`].
    pub fetched: DateTime<Utc>,
    /// See [`Article::text`].
    pub text: &'a str,
}

/// The NDJSON record inside an article value.
pub fn article_json(value: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(value.get(..4)?.try_into().ok()?) as usize;
    value.get(4..4 + len)
}

/// The `id` of an article value, read from the head of its record (`{"seq":N,"id":"...`, as
/// [`encode_record`] writes it) without parsing the rest; `None` when the head has another
/// shape (then parse the record). Recording a duplicate needs only the id of the article it
/// duplicates, and decoding the whole record for it cost 1% of a polling pass.
pub fn article_id(value: &[u8]) -> Option<&str> {
    let rest = article_json(value)?.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let rest = rest[digits..].strip_prefix(b",\"id\":\"")?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    (rest[end] == b'"')
        .then(|| std::str::from_utf8(&rest[..end]).ok())
        .flatten()
}

/// The [`ArticleKeys`] inside an article value.
pub fn article_keys(value: &[u8]) -> Option<ArticleKeys> {
    let json_len = u32::from_le_bytes(value.get(..4)?.try_into().ok()?) as usize;
    let mut r = Reader(value.get(4 + json_len..)?);
    let simhash = r.u64()?;
    let content = r.u64()?;
    let words = r.u32()?;
    let stored_ms = r.u64()? as i64;
    let guid_len = r.u32()? as usize;
    let guid = String::from_utf8(r.take(guid_len)?.to_vec()).ok()?;
    let mut lists = [Vec::new(), Vec::new(), Vec::new()];
    for list in &mut lists {
        let n = r.u32()? as usize;
        *list = (0..n).map(|_| r.u64()).collect::<Option<Vec<u64>>>()?;
    }
    let [short_marks, long_marks, anchors] = lists;
    Some(ArticleKeys {
        guid,
        simhash,
        content,
        words,
        stored_ms,
        short_marks,
        long_marks,
        anchors,
    })
}

/// Reads little-endian fields off the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// How a feed's last poll went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedStatus {
    /// Fetched and parsed.
    Ok,
    /// The server answered 304 (or the file did not change).
    NotModified,
    /// The last poll failed; `error` says why.
    Error,
    /// The server answered 410: polling stopped.
    Gone,
    /// Not polled yet.
    Pending,
}

impl FeedStatus {
    /// The name used in records and metrics (`not_modified`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FeedStatus::Ok => "ok",
            FeedStatus::NotModified => "not_modified",
            FeedStatus::Error => "error",
            FeedStatus::Gone => "gone",
            FeedStatus::Pending => "pending",
        }
    }
}

/// A feed's polling state, persisted across restarts.
///
/// # Format
/// `feedsieve feeds` prints it as NDJSON: `url`, `name`, `status` (`ok`, `not_modified`,
/// `error`, `gone`, `pending`), `last_fetch`, `next_fetch` (RFC 3339 or null), `error` (a sentence
/// or null), `articles`, `duplicates` (counts over the feed's life), `http_status` (last HTTP
/// status or null), `failures` (consecutive failed polls), `interval_seconds` (the interval in
/// force), `backoff_seconds` (the backoff in force, or null), `location` (where the feed
/// permanently moved, or null). The validators (`etag`, `last_modified`) are kept but not printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedState {
    /// The feed's URL (its identity).
    pub url: String,
    /// Display name.
    pub name: String,
    /// How the last poll went.
    pub status: FeedStatus,
    /// When it was last polled.
    pub last_fetch: Option<DateTime<Utc>>,
    /// When it is due next.
    pub next_fetch: Option<DateTime<Utc>>,
    /// Why the last poll failed.
    pub error: Option<String>,
    /// Articles stored from it.
    pub articles: u64,
    /// Duplicates it delivered.
    pub duplicates: u64,
    /// Last HTTP status.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// Consecutive failed polls.
    #[serde(default)]
    pub failures: u32,
    /// The feed's interval now, in seconds (its own, learned, or raised by the publisher's hints).
    #[serde(default)]
    pub interval_seconds: Option<u64>,
    /// The backoff in force after failures or a `Retry-After`, in seconds.
    #[serde(default)]
    pub backoff_seconds: Option<u64>,
    /// Where the feed permanently moved (301/308); polls go there.
    #[serde(default)]
    pub location: Option<String>,
    /// Paragraphs this feed repeats across its items, left out of its fingerprints.
    #[serde(default, skip_serializing_if = "Boilerplate::is_empty")]
    pub boilerplate: Boilerplate,
    /// ETag of the last 200 response, sent back as If-None-Match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Last-Modified of the last 200 response, sent back as If-Modified-Since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

impl FeedState {
    /// The state of a feed that was never polled.
    pub fn pending(url: &str, name: &str) -> FeedState {
        FeedState {
            url: url.to_string(),
            name: name.to_string(),
            status: FeedStatus::Pending,
            last_fetch: None,
            next_fetch: None,
            error: None,
            articles: 0,
            duplicates: 0,
            http_status: None,
            failures: 0,
            interval_seconds: None,
            backoff_seconds: None,
            location: None,
            boilerplate: Boilerplate::default(),
            etag: None,
            last_modified: None,
        }
    }

    /// The record consumers see (without the validators).
    pub fn public(&self) -> FeedView<'_> {
        FeedView {
            url: &self.url,
            name: &self.name,
            status: self.status,
            last_fetch: self.last_fetch,
            next_fetch: self.next_fetch,
            error: self.error.as_deref(),
            articles: self.articles,
            duplicates: self.duplicates,
            http_status: self.http_status,
            failures: self.failures,
            interval_seconds: self.interval_seconds,
            backoff_seconds: self.backoff_seconds,
            location: self.location.as_deref(),
        }
    }
}

/// The public form of [`FeedState`]; see its format.
#[derive(Debug, Serialize)]
pub struct FeedView<'a> {
    /// See [`FeedState::url`].
    pub url: &'a str,
    /// See [`FeedState::name`].
    pub name: &'a str,
    /// See [`FeedState::status`].
    pub status: FeedStatus,
    /// See [`FeedState::last_fetch`].
    pub last_fetch: Option<DateTime<Utc>>,
    /// See [`FeedState::next_fetch`].
    pub next_fetch: Option<DateTime<Utc>>,
    /// See [`FeedState::error`].
    pub error: Option<&'a str>,
    /// See [`FeedState::articles`].
    pub articles: u64,
    /// See [`FeedState::duplicates`].
    pub duplicates: u64,
    /// See [`FeedState::http_status`].
    pub http_status: Option<u16>,
    /// See [`FeedState::failures`].
    pub failures: u32,
    /// See [`FeedState::interval_seconds`].
    pub interval_seconds: Option<u64>,
    /// See [`FeedState::backoff_seconds`].
    pub backoff_seconds: Option<u64>,
    /// See [`FeedState::location`].
    pub location: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn article_values_round_trip() {
        let keys = ArticleKeys {
            guid: "g\u{e9}1".into(),
            simhash: u64::MAX - 3,
            content: 42,
            words: 400,
            stored_ms: 1_700_000_000_123,
            short_marks: vec![1, 5, 9],
            long_marks: vec![2, 7],
            anchors: vec![1],
        };
        let v = encode_article(b"{\"seq\":1}", &keys);
        assert_eq!(article_json(&v), Some(&b"{\"seq\":1}"[..]));
        assert_eq!(article_keys(&v), Some(keys.clone()));
        assert_eq!(article_keys(&v[..v.len() - 1]), None);
        assert_eq!(article_json(&[1, 0]), None);

        // The borrowed writer gives the same bytes as the owned record.
        for (url, published) in [(None, None), (Some("https://e/\"1\""), Some(Utc::now()))] {
            let a = Article {
                seq: 7,
                id: "00ff".into(),
                feed: "https://f/".into(),
                url: url.map(Into::into),
                title: "T\u{e9} \"q\"".into(),
                published,
                fetched: Utc::now(),
                text:
                    "line\n\npara <b> \"q\" \\ \u{1}\u{8}\t\r\u{c}\u{1f}\u{7f} caf\u{e9} \u{2028}"
                        .into(),
            };
            let out = ArticleOut {
                seq: a.seq,
                id: &a.id,
                feed: &a.feed,
                url: a.url.as_deref(),
                title: &a.title,
                published: a.published,
                fetched: a.fetched,
                text: &a.text,
            };
            let owned = encode_article(&serde_json::to_vec(&a).unwrap(), &keys);
            assert_eq!(encode_record(&out, &keys), owned);
            assert_eq!(article_id(&owned), Some("00ff"));
        }
    }

    #[test]
    fn an_id_is_read_from_the_head_or_left_to_the_parser() {
        let keys = ArticleKeys {
            guid: "g".into(),
            simhash: 0,
            content: 0,
            words: 0,
            stored_ms: 0,
            short_marks: vec![],
            long_marks: vec![],
            anchors: vec![],
        };
        let id =
            |json: &str| article_id(&encode_article(json.as_bytes(), &keys)).map(str::to_string);
        assert_eq!(
            id(r#"{"seq":12,"id":"0af1-12","feed":"f"}"#).as_deref(),
            Some("0af1-12")
        );
        // Another shape, or an id with an escape: the caller parses the record.
        assert_eq!(id(r#"{"id":"x","seq":1}"#), None);
        assert_eq!(id(r#"{"seq":1,"id":"a\"b"}"#), None);
        assert_eq!(id(r#"{"seq":1,"id":"unterminated"#), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// The fast string writer escapes exactly as serde_json does, wherever the bytes that
        /// need escaping fall relative to its eight-byte steps.
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(pieces in proptest::collection::vec(0usize..12, 0..60)) {
            const PIECES: [&str; 12] = [
                "plain", "a", "\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{7f}", "\u{e9}", "\u{2028}",
                "\u{1F600}", "12345678",
            ];
            let text: String = pieces.iter().map(|&p| PIECES[p]).collect();
            let mut ours = Vec::new();
            push_json_string(&mut ours, &text);
            proptest::prop_assert_eq!(ours, serde_json::to_vec(&text).unwrap());
        }
    }
}
