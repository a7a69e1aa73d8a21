//! The common case without feed-rs: plain RSS 2.0 and Atom 1.0 read straight off quick-xml's
//! borrowed events into the few fields feedsieve keeps ([`RawFeed`]).
//!
//! feed-rs builds its whole model (people, categories, media, every text copied through its own
//! event layer, dates through regex rewrites) for each poll; on the benchmark workload that was
//! most of `parse_feed`'s time. This reader produces exactly what feed-rs produces for the fields
//! feedsieve uses, following feed-rs 3.0's rules (text is the characters, CDATA and references
//! before the element ends, trimmed where feed-rs trims; links resolved against the feed's URL as
//! feed-rs resolves them; RSS comment links dropped when they repeat another link; an item's id
//! from its guid, else its first link). It *declines* (returns `None`, and feed-rs reads the
//! feed) at the first construct where agreement is not certain: any XML error, `xml:base`, an
//! element with markup inside where text is read, XHTML or out-of-line content, media, iTunes
//! or podcast elements in an item, an encoding other than UTF-8, a date that chrono's strict
//! RFC 3339 and RFC 2822 parsers refuse (feed-rs's lenient parser agrees with them wherever they
//! accept), RSS other than 2.0, an Atom document whose root is an entry.
//!
//! `tests/parse_reader.rs` holds the two readers to the same output over the conformance corpus.

use chrono::{DateTime, Utc};
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use url::Url;

/// A feed as `parse_feed` needs it, from either reader.
#[derive(Debug, Default, PartialEq)]
pub struct RawFeed {
    /// The feed's title text (not yet HTML-stripped).
    pub title: Option<String>,
    /// The feed's links, in document order.
    pub links: Vec<RawLink>,
    /// RSS `<ttl>`, in minutes.
    pub ttl: Option<u32>,
    /// The entries, in document order.
    pub entries: Vec<RawEntry>,
}

/// One link of a feed or entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RawLink {
    /// The target, resolved against the feed's URL when relative.
    pub href: String,
    /// Its `rel`, when it has one.
    pub rel: Option<String>,
}

/// One entry as `parse_feed` needs it, from either reader.
#[derive(Debug, Default, PartialEq)]
pub struct RawEntry {
    /// Its guid / Atom id (empty when it has none and no link).
    pub id: String,
    /// Title text.
    pub title: Option<String>,
    /// Links, in document order.
    pub links: Vec<RawLink>,
    /// Publication date.
    pub published: Option<DateTime<Utc>>,
    /// Last update.
    pub updated: Option<DateTime<Utc>>,
    /// RSS description / Atom summary.
    pub summary: Option<String>,
    /// RSS `content:encoded` / Atom content.
    pub content: Option<String>,
    /// The first media object's title (feed-rs only: this reader declines media elements).
    pub media_title: Option<String>,
    /// The first media object's description (likewise).
    pub media_description: Option<String>,
}

/// The namespaces feed-rs tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Rss,
    Atom,
    Content,
    DublinCore,
    Media,
    Itunes,
    Podcast,
    Comments,
    Other,
}

impl Ns {
    fn of(uri: &[u8]) -> Ns {
        match uri {
            b"http://purl.org/rss/1.0/" => Ns::Rss,
            b"http://www.w3.org/2005/Atom" => Ns::Atom,
            b"http://purl.org/rss/1.0/modules/content/" => Ns::Content,
            b"http://purl.org/dc/elements/1.1/" => Ns::DublinCore,
            b"http://search.yahoo.com/mrss/" => Ns::Media,
            b"http://www.itunes.com/dtds/podcast-1.0.dtd" => Ns::Itunes,
            b"https://podcastindex.org/namespace/1.0" => Ns::Podcast,
            b"http://wellformedweb.org/CommentAPI/" => Ns::Comments,
            _ => Ns::Other,
        }
    }
}

/// This reader cannot be sure it agrees with feed-rs here.
struct Declined;

type Read<T> = Result<T, Declined>;

/// Reads `doc` (UTF-8, already repaired as feed-rs would get it) fetched from `feed_url`, or
/// `None` when feed-rs must read it.
pub fn read(doc: &str, feed_url: &str) -> Option<RawFeed> {
    let base = Url::parse(feed_url).ok()?;
    let mut reader = NsReader::from_str(doc);
    let config = reader.config_mut();
    // As feed-rs configures its reader.
    config.expand_empty_elements = true;
    config.trim_markup_names_in_closing_tags = true;
    config.trim_text(false);
    let mut xml = Xml {
        reader,
        doc,
        base,
        default: Ns::Other,
    };
    xml.document().ok()
}

/// An element's start: its namespace (as feed-rs resolves it) and the tag.
struct Start<'a> {
    ns: Ns,
    tag: BytesStart<'a>,
}

impl Start<'_> {
    /// The name without its prefix, as feed-rs names elements.
    fn local(&self) -> &str {
        let name: &str = self.tag.name().into_inner();
        name.rsplit(':').next().unwrap_or(name)
    }

    /// The attributes feed-rs would see (those quick-xml reads without error), in order: each
    /// name and value, unescaped (as written when that fails).
    fn attributes(&self) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
        self.tag.attributes().filter_map(Result::ok).map(|a| {
            let name: &str = a.key.into_inner();
            let value = match a.value {
                std::borrow::Cow::Borrowed(raw) => {
                    quick_xml::escape::unescape(raw).unwrap_or(std::borrow::Cow::Borrowed(raw))
                }
                std::borrow::Cow::Owned(raw) => std::borrow::Cow::Owned(
                    quick_xml::escape::unescape(&raw)
                        .map(|v| v.into_owned())
                        .unwrap_or(raw),
                ),
            };
            (name, value)
        })
    }

    /// The first attribute called `name`.
    fn attribute(&self, name: &str) -> Option<String> {
        self.attributes()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What the next event is, reduced to what the reader acts on.
enum Next<'a> {
    Start(Start<'a>),
    End,
    /// Text, CDATA or a reference (appended to `text` by [`Xml::next`]).
    Text,
    /// Comments, processing instructions, the doctype.
    Other,
}

struct Xml<'a> {
    reader: NsReader<&'a [u8]>,
    /// The document `reader` reads: what it has left is always a suffix of it.
    doc: &'a str,
    base: Url,
    /// The namespace of unprefixed (and wrongly prefixed) elements, from the root.
    default: Ns,
}

impl<'a> Xml<'a> {
    /// The next event; text goes to `text` when given. Declines on any XML error, at the end of
    /// the document, on `xml:base` and on an XML declaration naming an encoding other than UTF-8.
    fn next(&mut self, text: Option<&mut Option<String>>) -> Read<Next<'a>> {
        let (resolved, event) = self.reader.read_resolved_event().map_err(|_| Declined)?;
        let ns = match resolved {
            ResolveResult::Bound(uri) => Ns::of(uri.into_inner().as_bytes()),
            ResolveResult::Unbound | ResolveResult::Unknown(_) => self.default,
        };
        Ok(match event {
            Event::Start(tag) => {
                if memchr::memmem::find(tag.as_bytes(), b"xml:base").is_some() {
                    return Err(Declined);
                }
                Next::Start(Start { ns, tag })
            }
            Event::End(_) => Next::End,
            Event::Text(t) => {
                if let Some(text) = text
                    && !t.is_empty()
                {
                    text.get_or_insert_with(String::new).push_str(&t);
                }
                Next::Text
            }
            Event::CData(t) => {
                if let Some(text) = text
                    && !t.is_empty()
                {
                    text.get_or_insert_with(String::new).push_str(&t);
                }
                Next::Text
            }
            Event::GeneralRef(r) => {
                if let Some(text) = text {
                    let buffer = text.get_or_insert_with(String::new);
                    match r.resolve_char_ref().map_err(|_| Declined)? {
                        Some(c) => buffer.push(c),
                        None => match quick_xml::escape::resolve_predefined_entity(&r) {
                            Some(resolved) => buffer.push_str(resolved),
                            None => {
                                buffer.push('&');
                                buffer.push_str(&r);
                                buffer.push(';');
                            }
                        },
                    }
                } else {
                    r.resolve_char_ref().map_err(|_| Declined)?;
                }
                Next::Text
            }
            Event::Decl(decl) => {
                let utf8 = decl.encoder().is_none_or(|e| e == encoding_rs::UTF_8);
                if !utf8 {
                    return Err(Declined);
                }
                Next::Other
            }
            Event::Eof => return Err(Declined),
            Event::Empty(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => Next::Other,
        })
    }

    /// The next child element of the element being read, or `None` at its end.
    fn child(&mut self) -> Read<Option<Start<'a>>> {
        loop {
            match self.next(None)? {
                Next::Start(start) => return Ok(Some(start)),
                Next::End => return Ok(None),
                Next::Text | Next::Other => {}
            }
        }
    }

    /// Skips the rest of the element just started.
    fn skip(&mut self) -> Read<()> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next(None)? {
                Next::Start(_) => depth += 1,
                Next::End => depth -= 1,
                Next::Text | Next::Other => {}
            }
        }
        Ok(())
    }

    /// The text of the element just started (`None` when it has none); declines when it holds
    /// an element.
    fn text(&mut self) -> Read<Option<String>> {
        if let Some(read) = self.direct_text() {
            return read;
        }
        let mut text = None;
        loop {
            match self.next(Some(&mut text))? {
                Next::Start(_) => return Err(Declined),
                Next::End => return Ok(text),
                Next::Text | Next::Other => {}
            }
        }
    }

    /// The text of the element just started, read straight from the document when it holds only
    /// characters, references and CDATA up to its end tag; `None`, with the reader untouched,
    /// for anything else (an empty element, comments, processing instructions, child elements,
    /// a reference quick-xml would refuse), which [`Xml::text`] then reads event by event.
    ///
    /// quick-xml reports every reference as an event of its own, so escaped HTML (`&lt;p&gt;`)
    /// came as several events a tag, and going through them, with the text growing piece by
    /// piece, was most of the reading. The result is the same: the same functions resolve each
    /// reference, and the end tag is still read (and checked) by quick-xml.
    fn direct_text(&mut self) -> Option<Read<Option<String>>> {
        let doc = self.doc;
        let start = doc.len() - self.reader.get_mut().len();
        // After `<a/>` quick-xml owes an `End` it has not read from the document.
        if doc[..start].ends_with("/>") {
            return None;
        }
        let bytes = doc.as_bytes();
        let mut text = String::new();
        let mut at = start;
        loop {
            let lt = at + memchr::memchr(b'<', &bytes[at..])?;
            unescape_into(&doc[at..lt], &mut text)?;
            let markup = &doc[lt..];
            if markup.starts_with("</") {
                *self.reader.get_mut() = &bytes[lt..];
                let text = (!text.is_empty()).then_some(text);
                return Some(match self.next(None) {
                    Ok(Next::End) => Ok(text),
                    Ok(_) | Err(Declined) => Err(Declined),
                });
            }
            let cdata = markup.strip_prefix("<![CDATA[")?;
            let end = memchr::memmem::find(cdata.as_bytes(), b"]]>")?;
            text.push_str(&cdata[..end]);
            at = lt + "<![CDATA[".len() + end + "]]>".len();
        }
    }

    /// An Atom text construct (`type` text or HTML), trimmed; declines on XHTML and unknown
    /// types (where feed-rs serializes markup or fails).
    fn atom_text(&mut self, start: &Start<'_>) -> Read<String> {
        match start.attribute("type").as_deref() {
            None | Some("text") | Some("html") | Some("text/html") => {
                Ok(trimmed(self.text()?.unwrap_or_default()))
            }
            Some(_) => Err(Declined),
        }
    }

    /// An Atom `<link>` (also inside RSS), skipping its content.
    fn atom_link(&mut self, start: &Start<'_>) -> Read<Option<RawLink>> {
        // feed-rs takes the first `href` and the last `rel`, and calls a link without one an
        // alternate.
        let (mut href, mut rel) = (None, None);
        for (name, value) in start.attributes() {
            match name {
                "href" if href.is_none() => href = Some(value),
                "rel" => rel = Some(value),
                _ => {}
            }
        }
        let link = href.map(|href| RawLink {
            href: self.href(&href),
            rel: Some(rel.map_or_else(|| "alternate".to_string(), |r| r.into_owned())),
        });
        self.skip()?;
        Ok(link)
    }

    /// A link target as feed-rs keeps it: absolute, or resolved against the feed's URL, else as
    /// written; trimmed.
    fn href(&self, raw: &str) -> String {
        let resolved = match Url::parse(raw) {
            Ok(url) => Some(url),
            Err(url::ParseError::RelativeUrlWithoutBase) => self.base.join(raw).ok(),
            Err(_) => None,
        };
        match resolved {
            Some(url) => trimmed(url.into()),
            None => raw.trim().to_string(),
        }
    }

    fn document(&mut self) -> Read<RawFeed> {
        let root = loop {
            if let Next::Start(start) = self.next(None)? {
                break start;
            }
        };
        match root.local() {
            "rss" if matches!(root.attribute("version").as_deref(), Some("2.0") | Some("")) => {
                self.default = Ns::Rss;
                // The first child called `channel` is the feed; nothing after it is read.
                loop {
                    match self.next(None)? {
                        Next::Start(start) if start.local() == "channel" => return self.channel(),
                        Next::Start(_) => self.skip()?,
                        Next::End => return Err(Declined),
                        Next::Text | Next::Other => {}
                    }
                }
            }
            "feed" => {
                self.default = Ns::Atom;
                self.atom_feed()
            }
            _ => Err(Declined),
        }
    }

    fn channel(&mut self) -> Read<RawFeed> {
        let mut feed = RawFeed::default();
        while let Some(start) = self.child()? {
            match (start.ns, start.local()) {
                (Ns::Rss, "title") => feed.title = self.text()?.map(trimmed),
                (Ns::Rss, "link") => {
                    if let Some(t) = self.text()? {
                        let href = self.href(&t);
                        feed.links.push(RawLink { href, rel: None });
                    }
                }
                (Ns::Atom, "link") => feed.links.extend(self.atom_link(&start)?),
                (Ns::Rss, "ttl") => {
                    if let Some(ttl) = self.text()?.and_then(|t| t.parse().ok()) {
                        feed.ttl = Some(ttl);
                    }
                }
                (Ns::Rss, "item") => feed.entries.push(self.rss_item()?),
                (Ns::Itunes | Ns::Podcast, _) => return Err(Declined),
                _ => self.skip()?,
            }
        }
        Ok(feed)
    }

    fn rss_item(&mut self) -> Read<RawEntry> {
        let mut entry = RawEntry::default();
        // Each link, and whether it is a `<comments>` link.
        let mut links: Vec<(RawLink, bool)> = Vec::new();
        while let Some(start) = self.child()? {
            match (start.ns, start.local()) {
                (Ns::Rss, "title") => entry.title = self.text()?.map(trimmed),
                (Ns::Rss, "description") => entry.summary = self.text()?.map(trimmed),
                (Ns::Rss, "guid") => {
                    if let Some(t) = self.text()? {
                        entry.id = trimmed(t);
                    }
                }
                (Ns::Rss, "pubDate") | (Ns::DublinCore, "date") => {
                    entry.published = timestamp(self.text()?)?
                }
                (Ns::Rss, "updated") | (Ns::Atom, "updated") => {
                    entry.updated = timestamp(self.text()?)?
                }
                (Ns::Content, "encoded") => {
                    entry.content = self.text()?.filter(|t| !t.is_empty());
                }
                (Ns::Rss, "link")
                | (Ns::Rss, "comments")
                | (Ns::Comments, "commentRss")
                | (Ns::Comments, "commentRSS") => {
                    let comments = start.local() == "comments";
                    if let Some(t) = self.text()? {
                        let href = self.href(&t);
                        links.push((RawLink { href, rel: None }, comments));
                    }
                }
                (Ns::Itunes | Ns::Media | Ns::Podcast, _) => return Err(Declined),
                _ => self.skip()?,
            }
        }
        if entry.updated.is_none() {
            entry.updated = entry.published;
        }
        // feed-rs drops a comments link that repeats another link.
        let others: Vec<String> = links
            .iter()
            .filter(|(_, c)| !c)
            .map(|(l, _)| l.href.clone())
            .collect();
        entry.links = links
            .into_iter()
            .filter(|(l, c)| !c || !others.contains(&l.href))
            .map(|(l, _)| l)
            .collect();
        Ok(with_id(entry))
    }

    fn atom_feed(&mut self) -> Read<RawFeed> {
        let mut feed = RawFeed::default();
        while let Some(start) = self.child()? {
            match (start.ns, start.local()) {
                (Ns::Atom, "title") => feed.title = Some(self.atom_text(&start)?),
                (Ns::Atom, "subtitle") | (Ns::Atom, "rights") => {
                    self.atom_text(&start)?;
                }
                (Ns::Atom, "link") => feed.links.extend(self.atom_link(&start)?),
                (Ns::Atom, "entry") => feed.entries.push(self.atom_entry()?),
                _ => self.skip()?,
            }
        }
        Ok(feed)
    }

    fn atom_entry(&mut self) -> Read<RawEntry> {
        let mut entry = RawEntry::default();
        while let Some(start) = self.child()? {
            match (start.ns, start.local()) {
                (Ns::Atom, "id") => {
                    if let Some(t) = self.text()? {
                        entry.id = t;
                    }
                }
                (Ns::Atom, "title") => entry.title = Some(self.atom_text(&start)?),
                (Ns::Atom, "summary") => entry.summary = Some(self.atom_text(&start)?),
                (Ns::Atom, "rights") => {
                    self.atom_text(&start)?;
                }
                (Ns::Atom, "content") => {
                    if start.attribute("src").is_some() {
                        return Err(Declined);
                    }
                    entry.content = Some(self.atom_text(&start)?);
                }
                (Ns::Atom, "updated") => {
                    if let Some(t) = self.text()? {
                        entry.updated = timestamp(Some(t))?;
                    }
                }
                (Ns::Atom, "published") | (Ns::Atom, "pubDate") => {
                    if let Some(t) = self.text()? {
                        entry.published = timestamp(Some(t))?;
                    }
                }
                (Ns::Atom, "link") => entry.links.extend(self.atom_link(&start)?),
                (Ns::Comments, "commentRss") | (Ns::Comments, "commentRSS") => {
                    if let Some(t) = self.text()? {
                        let href = self.href(&t);
                        entry.links.push(RawLink { href, rel: None });
                    }
                }
                (Ns::Media, _) => return Err(Declined),
                _ => self.skip()?,
            }
        }
        Ok(with_id(entry))
    }
}

/// `s` trimmed in place: most texts have nothing to trim, and copying each body to trim it
/// cost an allocation and a copy of every Atom item's text.
fn trimmed(mut s: String) -> String {
    s.truncate(s.trim_end().len());
    let start = s.len() - s.trim_start().len();
    s.drain(..start);
    s
}

/// Appends `raw` (characters between markup) to `text` with its references resolved as
/// [`Xml::next`] resolves quick-xml's reference events; `None` where quick-xml would fail (a `&`
/// without its `;`, a bad character reference).
fn unescape_into(raw: &str, text: &mut String) -> Option<()> {
    if text.capacity() == 0 {
        // Resolving references only shortens the text.
        text.reserve(raw.len());
    }
    let bytes = raw.as_bytes();
    let mut at = 0;
    while let Some(amp) = memchr::memchr(b'&', &bytes[at..]).map(|i| at + i) {
        text.push_str(&raw[at..amp]);
        let semi = amp + 1 + memchr::memchr2(b';', b'&', &bytes[amp + 1..])?;
        if bytes[semi] != b';' {
            return None;
        }
        let name = &raw[amp + 1..semi];
        match quick_xml::events::BytesRef::new(name).resolve_char_ref() {
            Ok(Some(c)) => text.push(c),
            Ok(None) => match quick_xml::escape::resolve_predefined_entity(name) {
                Some(resolved) => text.push_str(resolved),
                None => {
                    text.push('&');
                    text.push_str(name);
                    text.push(';');
                }
            },
            Err(_) => return None,
        }
        at = semi + 1;
    }
    text.push_str(&raw[at..]);
    Some(())
}

/// The entry, with its first link as its id when it has none (feedsieve's id generator for
/// feed-rs does the same).
fn with_id(mut entry: RawEntry) -> RawEntry {
    if entry.id.is_empty() {
        entry.id = entry
            .links
            .first()
            .map(|l| l.href.clone())
            .unwrap_or_default();
    }
    entry
}

/// A date by chrono's strict parsers (RFC 3339 first, as feed-rs tries it first); declines when
/// both refuse it, as feed-rs's lenient rewrites might still read it.
fn timestamp(text: Option<String>) -> Read<Option<DateTime<Utc>>> {
    let Some(text) = text else {
        return Ok(None);
    };
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc2822(text))
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| Declined)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://example.org/feeds/news.xml";

    #[test]
    fn plain_rss_is_read_as_feed_rs_reads_it() {
        let doc = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title> News &amp; co </title><link>https://example.org/</link><ttl>30</ttl>
<item><title>One</title><link>/a/1</link><comments>http://example.org/a/1</comments>
<guid isPermaLink="false"> g1 </guid><pubDate>Sat, 08 Jul 2017 10:00:00 GMT</pubDate>
<description><![CDATA[<p>Short</p>]]></description><content:encoded>&lt;p&gt;Long&lt;/p&gt;</content:encoded></item>
<item><title>Two</title><link>https://example.org/b</link></item>
</channel></rss>"#;
        let feed = read(doc, URL).expect("plain RSS is read");
        assert_eq!(feed.title.as_deref(), Some("News & co"));
        assert_eq!(feed.ttl, Some(30));
        let one = &feed.entries[0];
        assert_eq!(one.id, "g1");
        // Relative links resolve against the feed's URL; the comments link repeats it, and goes.
        assert_eq!(one.links.len(), 1);
        assert_eq!(one.links[0].href, "http://example.org/a/1");
        assert_eq!(one.summary.as_deref(), Some("<p>Short</p>"));
        assert_eq!(one.content.as_deref(), Some("<p>Long</p>"));
        assert_eq!(one.published, one.updated);
        assert!(one.published.is_some());
        // Without a guid, the first link is the id.
        assert_eq!(feed.entries[1].id, "https://example.org/b");
        // And the feed comes out of parse_feed as it does through feed-rs.
        let both = [super::super::Reader::Fast, super::super::Reader::FeedRs].map(|r| {
            format!(
                "{:?}",
                super::super::parse_feed_with(doc.as_bytes(), URL, None, r)
            )
        });
        assert_eq!(both[0], both[1]);
    }

    #[test]
    fn text_read_straight_from_the_document_is_the_text_of_the_events() {
        let summary = |description: &str| {
            let doc = format!(
                r#"<rss version="2.0"><channel><item>{description}<title>t</title></item></channel></rss>"#
            );
            read(&doc, URL).map(|feed| {
                let item = &feed.entries[0];
                assert_eq!(item.title.as_deref(), Some("t"), "{description}");
                item.summary.clone()
            })
        };
        let text = |inner: &str| summary(&format!("<description>{inner}</description>"));
        // References resolved as quick-xml's events give them, unknown entities kept.
        assert_eq!(
            text("a &lt;b&gt; &amp;amp; &#x41;&#66; &unknown; z"),
            Some(Some("a <b> &amp; AB &unknown; z".into()))
        );
        // CDATA between text, an empty CDATA, whitespace trimmed.
        assert_eq!(
            text(" <![CDATA[<p>x]]>&lt;y<![CDATA[]]>\n"),
            Some(Some("<p>x<y".into()))
        );
        assert_eq!(text("<![CDATA[]]>"), Some(None));
        assert_eq!(text(""), Some(None));
        // An empty element: its end is quick-xml's, not the next element's.
        assert_eq!(summary("<description/>"), Some(None));
        assert_eq!(summary("<description />"), Some(None));
        // A comment: read event by event.
        assert_eq!(text("a<!-- c -->b"), Some(Some("ab".into())));
        // What quick-xml refuses is declined either way.
        assert_eq!(text("bad & amp"), None);
        assert_eq!(text("&#0;"), None);
        assert_eq!(text("&#xZZ;"), None);
        assert_eq!(text("a &amp"), None);
    }

    #[test]
    fn what_feed_rs_might_read_differently_is_left_to_it() {
        let rss = |item: &str| {
            format!(
                r#"<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><item>{item}</item></channel></rss>"#
            )
        };
        assert!(read(&rss("<title>t</title>"), URL).is_some());
        for declined in [
            rss("<media:title>m</media:title>"),
            rss("<title>a <b>bold</b> title</title>"),
            rss("<pubDate>Thurs, 13 Jul 2011 07:38:00 GMT</pubDate>"),
            rss(r#"<link xml:base="http://other/">x</link>"#),
            rss("<title>unclosed"),
            r#"<rss version="0.91"><channel></channel></rss>"#.to_string(),
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml"><div>x</div></content></entry></feed>"#.to_string(),
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><entry><content src="http://x/"/></entry></feed>"#.to_string(),
            r#"<entry xmlns="http://www.w3.org/2005/Atom"><id>x</id></entry>"#.to_string(),
        ] {
            assert!(read(&declined, URL).is_none(), "{declined}");
        }
    }
}
