//! Parse: the bytes of one fetched feed in, normalized [`Candidate`] articles out.
//!
//! feed-rs reads RSS 0.9x/1.0/2.0, Atom and JSON Feed (it honours the XML declaration's
//! encoding, so it gets the raw bytes, never text decoded by the HTTP layer). Each entry becomes a
//! [`Candidate`]: its guid, title, canonical link, publication date and the plain text of the
//! fullest body it carries (see [`normalize`]). Nothing here touches the store: this is what
//! `feedsieve inspect` prints and what the sieve judges.
//!
//! Refused, with a sentence an operator can act on ([`ParseError`]): an empty body, an HTML page
//! where a feed was expected, anything feed-rs cannot read.

pub mod normalize;

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

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
    /// RSS `<ttl>` in minutes, if given.
    pub ttl: Option<u32>,
    /// Its entries, in feed order.
    pub entries: Vec<Candidate>,
}

/// Why a body could not be read as a feed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Zero bytes, or only whitespace.
    #[error("parse: the body is empty")]
    Empty,
    /// An HTML page was served instead of a feed.
    #[error("parse: got an HTML page, not a feed")]
    Html,
    /// feed-rs could not read it.
    #[error("parse: not a valid feed: {0}")]
    Invalid(String),
}

/// Parses `body` as a feed fetched from `feed_url` (used to resolve relative links).
pub fn parse_feed(body: &[u8], feed_url: &str) -> Result<ParsedFeed, ParseError> {
    let start = sniff_start(body);
    if start.is_empty() {
        return Err(ParseError::Empty);
    }
    if looks_like_html(start) {
        return Err(ParseError::Html);
    }
    let parser = feed_rs::parser::Builder::new()
        .sanitize_content(false)
        .base_uri(Some(feed_url))
        // feed-rs would invent a random UUID for an entry with neither id nor link: an id that
        // changes on every poll. Leave it empty instead; `entry_guid` derives a stable one.
        .id_generator(|links, _title, _uri| {
            links.first().map(|l| l.href.clone()).unwrap_or_default()
        })
        .build();
    let feed = parser
        .parse(body)
        .map_err(|e| ParseError::Invalid(e.to_string()))?;
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
    Ok(ParsedFeed {
        title: feed.title.map(|t| one_line(&html_to_text(&t.content))),
        ttl: feed.ttl,
        entries,
    })
}

/// Normalizes one feed-rs entry.
fn candidate(entry: feed_rs::model::Entry, feed_url: &str, base: Option<&Url>) -> Candidate {
    let content = entry
        .content
        .as_ref()
        .and_then(|c| c.body.as_deref())
        .map(html_to_text)
        .unwrap_or_default();
    let summary = entry
        .summary
        .as_ref()
        .map(|s| html_to_text(&s.content))
        .unwrap_or_default();
    let mut text = if content.len() >= summary.len() {
        content
    } else {
        summary
    };
    if text.is_empty() {
        // Media feeds (YouTube, podcasts) carry their text in media:description.
        if let Some(d) = entry.media.iter().find_map(|m| m.description.as_ref()) {
            text = html_to_text(&d.content);
        }
    }
    let title = entry
        .title
        .as_ref()
        .map(|t| one_line(&html_to_text(&t.content)))
        .unwrap_or_default();
    let link = entry
        .links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or(entry.links.first());
    let url = link.and_then(|l| canonical_link(&l.href, base));
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

    #[test]
    fn rss_entries_are_normalized() {
        let f = parse_feed(RSS.as_bytes(), "https://ex.org/rss.xml").unwrap();
        assert_eq!(f.title.as_deref(), Some("T & co"));
        assert_eq!(f.ttl, Some(60));
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
        assert_eq!(
            parse_feed(RSS.as_bytes(), "https://ex.org/rss.xml")
                .unwrap()
                .entries[1]
                .guid,
            b.guid
        );
    }

    #[test]
    fn html_empty_and_garbage_are_refused() {
        assert_eq!(
            parse_feed(b"  \n", "http://x/").unwrap_err(),
            ParseError::Empty
        );
        assert_eq!(
            parse_feed(
                b"\xEF\xBB\xBF<!DOCTYPE html><html><body>hi</body></html>",
                "http://x/"
            )
            .unwrap_err(),
            ParseError::Html
        );
        assert_eq!(
            parse_feed(b"<?xml version='1.0'?>\n<html><p>x</p></html>", "http://x/").unwrap_err(),
            ParseError::Html
        );
        assert!(matches!(
            parse_feed(b"<rss version=\"2.0\"><channel><item>", "http://x/"),
            Err(ParseError::Invalid(_)) | Ok(_)
        ));
        assert!(matches!(
            parse_feed(b"hello", "http://x/"),
            Err(ParseError::Invalid(_))
        ));
    }
}
