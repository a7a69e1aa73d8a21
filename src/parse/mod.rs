//! Parse: the bytes of one fetched feed in, normalized [`Candidate`] articles out.
//!
//! feed-rs reads RSS 0.9x/1.0/2.0, Atom and JSON Feed (it honours the XML declaration's
//! encoding, so it gets the raw bytes, never text decoded by the HTTP layer). Each entry becomes a
//! [`Candidate`]: its guid, title, canonical link, publication date and the plain text of the
//! fullest body it carries (see [`normalize`]). Nothing here touches the store: this is what
//! `feedsieve inspect` prints and what the sieve judges.
//!
//! The bytes are first made UTF-8 ([`charset`]: BOM, HTTP charset, XML declaration, UTF-16
//! included; invalid bytes replaced).
//!
//! Refused, with a sentence an operator can act on ([`ParseError`]): an empty body; an HTML page
//! where a feed was expected (naming the feeds it advertises with `<link rel="alternate">`); a
//! document whose DOCTYPE declares entities (the "billion laughs" bomb and external entities that
//! point at local files both need one; feed-rs would not expand them, but a feed that needs them
//! cannot be read correctly either); anything feed-rs cannot read.

pub mod charset;
pub mod fast;
pub mod normalize;
pub mod repair;

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

use fast::{RawEntry, RawFeed, RawLink};
use normalize::{canonical_link, html_to_text, one_line};

/// One feed entry, normalized and ready to be judged by dedup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// URL of the feed it came from (the feed's identity).
    pub feed: String,
    /// The entry's id within its feed: its guid / Atom id, else its link, else a hash of its text.
    pub guid: String,
    /// Canonical link to the article, when it has a usable one.
    pub url: Option<String>,
    /// Title as plain text on one line.
    pub title: String,
    /// When it was published (else updated), as the feed says.
    pub published: Option<DateTime<Utc>>,
    /// Plain text of the body: paragraphs separated by a blank line.
    pub text: String,
}

/// A parsed feed: what the scheduler and the sieve need of it.
#[derive(Debug, Clone)]
pub struct ParsedFeed {
    /// The feed's own title, if it has one.
    pub title: Option<String>,
    /// How often the publisher asks to be polled at most: RSS `<ttl>`, or
    /// `sy:updatePeriod` / `sy:updateFrequency`, whichever is longer.
    pub min_interval: Option<std::time::Duration>,
    /// Its entries, in feed order.
    pub entries: Vec<Candidate>,
}

/// Why a body could not be read as a feed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Zero bytes, or only whitespace.
    #[error("parse: the body is empty")]
    Empty,
    /// An HTML page was served instead of a feed; it may advertise feeds.
    #[error("parse: got an HTML page, not a feed{}", advertised_sentence(.0))]
    Html(Vec<String>),
    /// The DOCTYPE declares entities.
    #[error(
        "parse: refused: the document declares XML entities in its DOCTYPE (entity expansion and external entities are never processed)"
    )]
    Entities,
    /// feed-rs could not read it.
    #[error("parse: not a valid feed: {0}")]
    Invalid(String),
}

fn advertised_sentence(feeds: &[String]) -> String {
    match feeds {
        [] => String::new(),
        [one] => format!("; the page advertises a feed at {one}"),
        many => format!("; the page advertises feeds at {}", many.join(", ")),
    }
}

/// Which reader turns a feed document into entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// [`fast`] for plain RSS 2.0 and Atom, feed-rs for everything else (what feedsieve uses).
    Fast,
    /// feed-rs for everything: the baseline the fast reader is tested and measured against.
    FeedRs,
}

/// Parses `body` as a feed fetched from `feed_url` (used to resolve relative links), served with
/// the `Content-Type` `content_type` (its charset is used to decode the body).
pub fn parse_feed(
    body: &[u8],
    feed_url: &str,
    content_type: Option<&str>,
) -> Result<ParsedFeed, ParseError> {
    parse_feed_with(body, feed_url, content_type, Reader::Fast)
}

/// [`parse_feed`] with the given [`Reader`].
pub fn parse_feed_with(
    body: &[u8],
    feed_url: &str,
    content_type: Option<&str>,
    reader: Reader,
) -> Result<ParsedFeed, ParseError> {
    let text = charset::to_utf8(body, content_type.and_then(charset::content_type_charset));
    let text: &str = &text;
    let start = sniff_start(text.as_bytes());
    if start.is_empty() {
        return Err(ParseError::Empty);
    }
    if looks_like_html(start) {
        let page = String::from_utf8_lossy(&start[..start.len().min(256 << 10)]);
        return Err(ParseError::Html(advertised_feeds(&page, feed_url)));
    }
    if declares_entities(start) {
        return Err(ParseError::Entities);
    }
    let mut doc = repair::before_parsing(text);
    // feed-rs drops RSS 1.0 items without a link; such documents get their rdf:about as a link
    // and are read again. (Only RDF documents with items missing: scanning every document cost
    // 1.4% of a pass.)
    let items_missing = |doc: &str, feed: &RawFeed| {
        let head = &doc[..doc.floor_char_boundary(4096)];
        (head.contains("rdf") || head.contains("RDF"))
            && feed.entries.len() < doc.matches("<item").count()
    };
    let fast = match reader {
        Reader::Fast => fast::read(&doc, feed_url).filter(|feed| !items_missing(&doc, feed)),
        Reader::FeedRs => None,
    };
    let feed = match fast {
        Some(feed) => feed,
        None => {
            let Some(feed) = read_with_feed_rs(&mut doc, feed_url)? else {
                return Ok(ParsedFeed {
                    title: None,
                    min_interval: None,
                    entries: Vec::new(),
                });
            };
            match items_missing(&doc, &feed)
                .then(|| repair::rdf_item_links(&doc))
                .flatten()
            {
                Some(repaired) => feed_rs_parser(feed_url)
                    .parse(repaired.as_bytes())
                    .map(raw_feed)
                    .unwrap_or(feed),
                None => feed,
            }
        }
    };
    let base = Url::parse(feed_url).ok();
    let base = feed
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .and_then(|l| Url::parse(&l.href).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .or(base);
    let entries = feed
        .entries
        .into_iter()
        .map(|entry| candidate(entry, feed_url, base.as_ref()))
        .collect();
    let ttl = feed
        .ttl
        .map(|m| std::time::Duration::from_secs(u64::from(m) * 60));
    let min_interval = ttl.max(syndication_period(text));
    Ok(ParsedFeed {
        title: feed.title.map(|t| one_line(&html_to_text(&t))),
        min_interval,
        entries,
    })
}

/// A feed-rs parser as feedsieve configures it (a fresh one per attempt: feed-rs keeps
/// media-RSS state in its parser, and a parser reused after a failed parse panics, found by the
/// corpus run).
fn feed_rs_parser(feed_url: &str) -> feed_rs::parser::Parser {
    feed_rs::parser::Builder::new()
        .sanitize_content(false)
        .base_uri(Some(feed_url))
        // feed-rs would invent a random UUID for an entry with neither id nor link: an id that
        // changes on every poll. Leave it empty; `entry_guid` derives a stable one.
        .id_generator(|links, _title, _uri| {
            links.first().map(|l| l.href.clone()).unwrap_or_default()
        })
        .build()
}

/// Reads `doc` with feed-rs, repairing what feed-rs cannot read and reading again (up to four
/// times); `doc` ends as the version read. `None` for an RSS document with nothing in it.
fn read_with_feed_rs(
    doc: &mut std::borrow::Cow<'_, str>,
    feed_url: &str,
) -> Result<Option<RawFeed>, ParseError> {
    let mut repairs = 0;
    loop {
        let e = match feed_rs_parser(feed_url).parse(doc.as_bytes()) {
            Ok(feed) => return Ok(Some(raw_feed(feed))),
            Err(e) => e,
        };
        use feed_rs::parser::{ParseErrorKind, ParseFeedError};
        let repaired = match &e {
            ParseFeedError::ParseError(ParseErrorKind::NoFeedRoot) => repair::rss_version(doc),
            ParseFeedError::ParseError(ParseErrorKind::UnknownMimeType { mime, .. }) => {
                repair::unknown_type(doc, mime)
            }
            _ => None,
        };
        repairs += 1;
        match repaired {
            Some(r) if repairs <= 4 => *doc = std::borrow::Cow::Owned(r),
            _ if repair::is_empty_rss(doc) => return Ok(None),
            _ => return Err(ParseError::Invalid(e.to_string())),
        }
    }
}

/// What feedsieve keeps of feed-rs's model.
fn raw_feed(feed: feed_rs::model::Feed) -> RawFeed {
    let link = |l: feed_rs::model::Link| RawLink {
        href: l.href,
        rel: l.rel,
    };
    RawFeed {
        title: feed.title.map(|t| t.content),
        links: feed.links.into_iter().map(link).collect(),
        ttl: feed.ttl,
        entries: feed
            .entries
            .into_iter()
            .map(|e| RawEntry {
                id: e.id,
                title: e.title.map(|t| t.content),
                links: e.links.into_iter().map(link).collect(),
                published: e.published,
                updated: e.updated,
                summary: e.summary.map(|s| s.content),
                content: e.content.and_then(|c| c.body),
                media_title: e
                    .media
                    .iter()
                    .find_map(|m| m.title.as_ref())
                    .map(|t| t.content.clone()),
                media_description: e
                    .media
                    .iter()
                    .find_map(|m| m.description.as_ref())
                    .map(|d| d.content.clone()),
            })
            .collect(),
    }
}

/// The RSS 1.0 syndication module's hint: `sy:updatePeriod` (hourly, daily, weekly, monthly,
/// yearly) divided by `sy:updateFrequency` (default 1).
fn syndication_period(doc: &str) -> Option<std::time::Duration> {
    let head = &doc[..doc.floor_char_boundary(64 << 10)];
    let element = |name: &str| -> Option<String> {
        let at = memchr::memmem::find(head.as_bytes(), format!(":{name}>").as_bytes())?;
        let rest = &head[at + name.len() + 2..];
        Some(rest[..rest.find('<')?].trim().to_string())
    };
    let period = match element("updatePeriod")?.to_ascii_lowercase().as_str() {
        "hourly" => 3_600,
        "daily" => 86_400,
        "weekly" => 7 * 86_400,
        "monthly" => 30 * 86_400,
        "yearly" => 365 * 86_400,
        _ => return None,
    };
    let frequency: u64 = element("updateFrequency")
        .and_then(|f| f.parse().ok())
        .filter(|&f| f > 0)
        .unwrap_or(1);
    Some(std::time::Duration::from_secs(period / frequency))
}

/// True when the prolog has a DOCTYPE that declares entities.
fn declares_entities(doc: &[u8]) -> bool {
    let head = &doc[..doc.len().min(64 << 10)];
    // Each `<!` (a SIMD search; they are few), then the word after it in any case.
    let mut declarations = memchr::memmem::find_iter(head, b"<!").map(|at| &head[at + 2..]);
    let is = |rest: &[u8], word: &[u8]| {
        rest.get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    declarations.any(|rest| is(rest, b"DOCTYPE")) && declarations.any(|rest| is(rest, b"ENTITY"))
}

/// The feeds an HTML page advertises with `<link rel="alternate" type="application/rss+xml">`
/// (or Atom, or JSON Feed), resolved against the page's URL.
pub fn advertised_feeds(page: &str, page_url: &str) -> Vec<String> {
    let base = Url::parse(page_url).ok();
    let lower = page.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find("<link") {
        let start = from + at;
        let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let attrs = attributes(&page[start + 5..end]);
        let get = |name: &str| {
            attrs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let alternate = get("rel").is_some_and(|r| {
            r.split_whitespace()
                .any(|t| t.eq_ignore_ascii_case("alternate"))
        });
        let feed_type = get("type").is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("rss")
                || t.contains("atom")
                || t.contains("feed+json")
                || t == "application/json"
        });
        if alternate
            && feed_type
            && let Some(href) = get("href")
        {
            let url = Url::options().base_url(base.as_ref()).parse(href.trim());
            if let Ok(url) = url {
                let url = url.to_string();
                if !out.contains(&url) {
                    out.push(url);
                }
            }
        }
        from = end.max(start + 5);
    }
    out
}

/// The attributes of a tag's inside (`name="value"`, `name='value'`, `name=value`), names
/// lowercased, entities in values decoded.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = tag;
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace() || c == '>')
            .unwrap_or(rest.len());
        if name_end == 0 {
            break;
        }
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let end = after[1..].find(q).map_or(after.len(), |e| e + 1);
                    let v = &after[1..end];
                    rest = after.get(end + 1..).unwrap_or("");
                    v
                }
                _ => {
                    let end = after.find(char::is_whitespace).unwrap_or(after.len());
                    let v = &after[..end];
                    rest = &after[end..];
                    v
                }
            }
        } else {
            ""
        };
        out.push((name, html_escape::decode_html_entities(value).into_owned()));
    }
    out
}

/// Normalizes one entry.
fn candidate(entry: RawEntry, feed_url: &str, base: Option<&Url>) -> Candidate {
    let content = entry
        .content
        .as_deref()
        .map(html_to_text)
        .unwrap_or_default();
    let summary = entry
        .summary
        .as_deref()
        .map(html_to_text)
        .unwrap_or_default();
    let mut text = if content.len() >= summary.len() {
        content
    } else {
        summary
    };
    if text.is_empty() {
        // Media feeds (YouTube, podcasts) carry their text in media:description.
        if let Some(d) = &entry.media_description {
            text = html_to_text(d);
        }
    }
    // Media feeds (YouTube, podcasts) may title an entry only in media:title.
    let title = entry
        .title
        .as_ref()
        .or(entry.media_title.as_ref())
        .map(|t| one_line(&html_to_text(t)))
        .unwrap_or_default();
    let link = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first());
    // Without a link, a guid that is a URL is the link (RSS's isPermaLink default).
    let url = link
        .and_then(|l| canonical_link(&l.href, base))
        .or_else(|| {
            canonical_link(entry.id.trim(), None).filter(|_| entry.id.trim().starts_with("http"))
        });
    let guid = entry_guid(entry.id.trim(), &title, &text);
    Candidate {
        feed: feed_url.to_string(),
        guid,
        url,
        title,
        published: entry.published.or(entry.updated),
        text,
    }
}

/// The entry's id, or when it has none, a stable one derived from its title and text.
fn entry_guid(id: &str, title: &str, text: &str) -> String {
    if !id.is_empty() {
        return id.to_string();
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(title.as_bytes());
    h.update(&[0]);
    h.update(text.as_bytes());
    format!("feedsieve:text:{:032x}", h.digest128())
}

/// The body with a BOM and leading whitespace skipped (for sniffing only).
fn sniff_start(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let skip = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    &body[skip..]
}

/// True when the document is HTML rather than a feed.
fn looks_like_html(start: &[u8]) -> bool {
    let head = &start[..start.len().min(512)];
    let lower: Vec<u8> = head.iter().map(|b| b.to_ascii_lowercase()).collect();
    let mut rest = lower.as_slice();
    // Skip an XML declaration and comments before the root.
    loop {
        if rest.starts_with(b"<?xml") || rest.starts_with(b"<!--") {
            let close: &[u8] = if rest.starts_with(b"<?xml") {
                b"?>"
            } else {
                b"-->"
            };
            match rest.windows(close.len()).position(|w| w == close) {
                Some(p) => rest = sniff_start(&rest[p + close.len()..]),
                None => return false,
            }
        } else {
            break;
        }
    }
    rest.starts_with(b"<!doctype html") || rest.starts_with(b"<html")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>T &amp; co</title><link>https://ex.org/</link><ttl>60</ttl>
<item><title>First &lt;b&gt;one&lt;/b&gt;</title><link>/a/1?utm_source=rss#c</link><guid>g1</guid>
<pubDate>Sat, 08 Jul 2017 10:00:00 GMT</pubDate>
<description>&lt;p&gt;Short.&lt;/p&gt;</description>
<content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/"><![CDATA[<p>Long body one.</p><p>Para two.</p>]]></content:encoded></item>
<item><title>No id</title><description>Only text.</description></item>
</channel></rss>"#;

    fn parse(body: &[u8]) -> Result<ParsedFeed, ParseError> {
        parse_feed(body, "http://x.example/news/", None)
    }

    #[test]
    fn rss_entries_are_normalized() {
        let f = parse_feed(RSS.as_bytes(), "https://ex.org/rss.xml", None).unwrap();
        assert_eq!(f.title.as_deref(), Some("T & co"));
        assert_eq!(f.min_interval, Some(std::time::Duration::from_secs(3600)));
        let a = &f.entries[0];
        assert_eq!(a.guid, "g1");
        assert_eq!(a.title, "First one");
        assert_eq!(a.url.as_deref(), Some("https://ex.org/a/1"));
        assert_eq!(a.text, "Long body one.\n\nPara two.");
        assert_eq!(
            a.published.unwrap().to_rfc3339(),
            "2017-07-08T10:00:00+00:00"
        );
        let b = &f.entries[1];
        assert!(b.guid.starts_with("feedsieve:text:"), "{}", b.guid);
        assert_eq!(b.url, None);
        let again = parse_feed(RSS.as_bytes(), "https://ex.org/rss.xml", None).unwrap();
        assert_eq!(again.entries[1].guid, b.guid);
    }

    #[test]
    fn empty_html_and_garbage_are_refused() {
        assert_eq!(parse(b"  \n").unwrap_err(), ParseError::Empty);
        let page = b"\xEF\xBB\xBF<!DOCTYPE html><html><body>hi</body></html>";
        assert_eq!(parse(page).unwrap_err(), ParseError::Html(vec![]));
        let page = b"<?xml version='1.0'?>\n<html><p>x</p></html>";
        assert_eq!(parse(page).unwrap_err(), ParseError::Html(vec![]));
        assert!(matches!(parse(b"hello"), Err(ParseError::Invalid(_))));
    }

    #[test]
    fn an_html_page_names_the_feeds_it_advertises() {
        let page = br#"<!doctype html><html><head><link rel=stylesheet href=a.css>
            <link rel="alternate" type="application/rss+xml" title="News" href="/feed.xml?a=1&amp;b=2">
            <LINK REL='alternate' TYPE='application/atom+xml' HREF='https://x.example/atom'></head></html>"#;
        let e = parse(page).unwrap_err();
        let feeds = vec![
            "http://x.example/feed.xml?a=1&b=2".to_string(),
            "https://x.example/atom".to_string(),
        ];
        assert_eq!(e, ParseError::Html(feeds));
        assert!(
            e.to_string()
                .ends_with("at http://x.example/feed.xml?a=1&b=2, https://x.example/atom"),
            "{e}"
        );
    }

    #[test]
    fn entity_declarations_are_refused_but_a_plain_doctype_is_not() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><rss version="2.0"><channel><title>&lol2;</title></channel></rss>"#;
        assert_eq!(parse(bomb).unwrap_err(), ParseError::Entities);
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><rss version="2.0"><channel><title>&xxe;</title></channel></rss>"#;
        assert_eq!(parse(xxe).unwrap_err(), ParseError::Entities);
        let netscape = br#"<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel><title>caf&eacute;</title><link>http://x/</link><item><title>a &eacute;</title><link>http://x/a</link></item></channel></rss>"#;
        let f = parse(netscape).unwrap();
        assert_eq!(f.entries[0].title, "a \u{e9}");
    }

    #[test]
    fn publisher_interval_hints() {
        let rdf = br#"<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel rdf:about="http://x/"><title>t</title><link>http://x/</link><sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency></channel></rdf:RDF>"#;
        let f = parse(rdf).unwrap();
        assert_eq!(
            f.min_interval,
            Some(std::time::Duration::from_secs(6 * 3600))
        );
    }
}
