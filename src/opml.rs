//! OPML subscription lists: read for `feedsieve feeds import`, written by `feeds export`.
//!
//! Reading takes what feed readers export (OPML 1.0, 1.1 and 2.0): every `outline` with an
//! `xmlUrl` is a feed, named by its `title` (or `text`); the folders it sits in and its
//! `category` attribute become its tags. Writing produces OPML 2.0 with one folder per first tag
//! and every tag in `category`, so that an export imports back to the same feeds, names, tags
//! and intervals.

use quick_xml::events::{BytesStart, Event};

use crate::catalog::Feed;
use crate::config;

/// A feed found in an OPML file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outline {
    /// The feed URL (`xmlUrl`), as written.
    pub url: String,
    /// Its `title`, or `text`.
    pub name: Option<String>,
    /// Enclosing folders' names, then its `category` entries, without repeats.
    pub tags: Vec<String>,
    /// feedsieve's own `interval` attribute, when the file came from `feeds export`.
    pub interval: Option<String>,
}

/// Why an OPML file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OpmlError {
    /// Not well-formed XML.
    #[error("not well-formed XML at byte {position}: {message}")]
    Xml {
        /// Byte offset of the problem.
        position: u64,
        /// The parser's message.
        message: String,
    },
    /// XML, but not OPML.
    #[error("not an OPML document: {0}")]
    NotOpml(String),
}

/// One attribute of `e`, by case-insensitive name, with entities decoded (HTML ones too, which
/// some exporters write into titles).
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    for a in e.attributes().with_checks(false).flatten() {
        if a.key.as_ref().eq_ignore_ascii_case(name) {
            let raw: &str = &a.value;
            let value = html_escape::decode_html_entities(raw).trim().to_string();
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

fn push_tag(tags: &mut Vec<String>, tag: &str) {
    let tag = tag.trim().trim_start_matches('/').trim();
    if !tag.is_empty() && !tags.iter().any(|t| t == tag) {
        tags.push(tag.to_string());
    }
}

/// Reads the feeds of an OPML document (any encoding its declaration or BOM names).
pub fn parse(bytes: &[u8]) -> Result<Vec<Outline>, OpmlError> {
    let text = crate::parse::charset::to_utf8(bytes, None);
    let mut reader = quick_xml::Reader::from_reader(text.as_bytes());
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    // One entry per open `outline`: the folder name it contributes, if any.
    let mut folders: Vec<Option<String>> = Vec::new();
    let mut saw_opml = false;
    let mut saw_body = false;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| OpmlError::Xml {
                position: reader.error_position(),
                message: e.to_string(),
            })?;
        let (e, is_start) = match event {
            Event::Start(e) => (e, true),
            Event::Empty(e) => (e, false),
            Event::End(e) => {
                if e.local_name().as_ref().eq_ignore_ascii_case("outline") {
                    folders.pop();
                }
                buf.clear();
                continue;
            }
            Event::Eof => break,
            _ => {
                buf.clear();
                continue;
            }
        };
        let name = e.local_name();
        if name.as_ref().eq_ignore_ascii_case("opml") {
            saw_opml = true;
        } else if name.as_ref().eq_ignore_ascii_case("body") {
            saw_body = true;
        } else if name.as_ref().eq_ignore_ascii_case("outline") {
            let url = attr(&e, "xmlUrl");
            if let Some(url) = url.clone() {
                let mut tags = Vec::new();
                for f in folders.iter().flatten() {
                    push_tag(&mut tags, f);
                }
                if let Some(categories) = attr(&e, "category") {
                    for c in categories.split(',') {
                        push_tag(&mut tags, c);
                    }
                }
                out.push(Outline {
                    url,
                    name: attr(&e, "title").or_else(|| attr(&e, "text")),
                    tags,
                    interval: attr(&e, "interval"),
                });
            }
            if is_start {
                // A feed outline with children contributes no folder name.
                folders.push(if url.is_none() {
                    attr(&e, "text").or_else(|| attr(&e, "title"))
                } else {
                    None
                });
            }
        }
        buf.clear();
    }
    if !saw_opml {
        return Err(OpmlError::NotOpml("there is no <opml> element".into()));
    }
    if !saw_body {
        return Err(OpmlError::NotOpml("there is no <body> element".into()));
    }
    Ok(out)
}

fn xml_attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

fn feed_outline(out: &mut String, indent: &str, feed: &Feed) {
    let name = feed.config.name.as_deref().unwrap_or(&feed.config.url);
    out.push_str(indent);
    out.push_str("<outline type=\"rss\"");
    xml_attr(out, "text", name);
    xml_attr(out, "title", name);
    xml_attr(out, "xmlUrl", &feed.config.url);
    if !feed.config.tags.is_empty() {
        xml_attr(out, "category", &feed.config.tags.join(","));
    }
    if let Some(interval) = feed.config.interval {
        xml_attr(out, "interval", &config::format_duration(interval));
    }
    out.push_str("/>\n");
}

/// Writes `feeds` as an OPML 2.0 document: feeds without tags first, then one folder per first
/// tag, in order of appearance.
pub fn write(feeds: &[Feed], title: &str) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n  <head>\n    <title>",
    );
    let mut escaped = String::new();
    xml_attr(&mut escaped, "t", title);
    out.push_str(escaped.trim_start_matches(" t=\"").trim_end_matches('"'));
    out.push_str("</title>\n    <dateCreated>");
    out.push_str(&chrono::Utc::now().to_rfc2822());
    out.push_str("</dateCreated>\n  </head>\n  <body>\n");
    for feed in feeds.iter().filter(|f| f.config.tags.is_empty()) {
        feed_outline(&mut out, "    ", feed);
    }
    let mut folders: Vec<&str> = Vec::new();
    for feed in feeds {
        if let Some(first) = feed.config.tags.first()
            && !folders.contains(&first.as_str())
        {
            folders.push(first);
        }
    }
    for folder in folders {
        out.push_str("    <outline");
        xml_attr(&mut out, "text", folder);
        xml_attr(&mut out, "title", folder);
        out.push_str(">\n");
        for feed in feeds
            .iter()
            .filter(|f| f.config.tags.first().map(String::as_str) == Some(folder))
        {
            feed_outline(&mut out, "      ", feed);
        }
        out.push_str("    </outline>\n");
    }
    out.push_str("  </body>\n</opml>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Source, feed_id};
    use crate::config::FeedConfig;

    fn feed(url: &str, name: Option<&str>, tags: &[&str], minutes: Option<u64>) -> Feed {
        Feed {
            id: feed_id(url),
            source: Source::Api,
            config: FeedConfig {
                url: url.into(),
                name: name.map(str::to_string),
                interval: minutes.map(|m| std::time::Duration::from_secs(m * 60)),
                tags: tags.iter().map(|t| t.to_string()).collect(),
            },
        }
    }

    #[test]
    fn folders_and_categories_become_tags() {
        let doc = br#"<?xml version="1.0"?><opml version="2.0"><body>
            <outline text="News" title="ignored">
              <outline text="World"><outline title="Wire &amp; Co" xmlUrl="https://wire.example/rss" category="/politics,europe"/></outline>
              <outline text="Local" xmlUrl="https://local.example/feed"/>
            </outline>
            <outline title="Loose" xmlurl="https://loose.example/atom"/>
            <outline text="no feed here"/>
        </body></opml>"#;
        let got = parse(doc).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].name.as_deref(), Some("Wire & Co"));
        assert_eq!(got[0].tags, ["News", "World", "politics", "europe"]);
        assert_eq!(got[1].tags, ["News"]);
        assert_eq!(got[2].url, "https://loose.example/atom");
        assert!(got[2].tags.is_empty());
    }

    #[test]
    fn export_imports_back() {
        let feeds = vec![
            feed("https://a.example/rss", Some("A <&> \"quoted\""), &[], None),
            feed(
                "https://b.example/rss?x=1&y=2",
                None,
                &["world", "europe"],
                Some(15),
            ),
            feed("https://c.example/rss", Some("C"), &["world"], None),
            feed("https://d.example/rss", Some("D"), &["sport"], Some(120)),
        ];
        let doc = write(&feeds, "feedsieve & friends");
        let back = parse(doc.as_bytes()).unwrap();
        let mut want: Vec<Outline> = feeds
            .iter()
            .map(|f| Outline {
                url: f.config.url.clone(),
                name: Some(
                    f.config
                        .name
                        .clone()
                        .unwrap_or_else(|| f.config.url.clone()),
                ),
                tags: f.config.tags.clone(),
                interval: f.config.interval.map(config::format_duration),
            })
            .collect();
        let mut back_sorted = back.clone();
        want.sort_by(|a, b| a.url.cmp(&b.url));
        back_sorted.sort_by(|a, b| a.url.cmp(&b.url));
        assert_eq!(back_sorted, want);
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            parse(b"<rss><channel/></rss>"),
            Err(OpmlError::NotOpml(_))
        ));
        assert!(matches!(
            parse(b"<opml><head/></opml>"),
            Err(OpmlError::NotOpml(_))
        ));
        assert!(matches!(
            parse(b"<opml><body><outline></opml>"),
            Err(OpmlError::Xml { .. })
        ));
    }
}
