//! Repair: rewrites the few shapes of old-but-valid feeds that feed-rs refuses or misreads, so
//! that they parse instead of failing. Measured on feedparser's well-formed conformance feeds
//! (see README), these shapes were most of what feed-rs could not read:
//!
//! - **Atom 0.3** (namespace `http://purl.org/atom/ns#`): feed-rs reads the root but no
//!   element in that namespace, so every entry is silently lost. The namespace becomes Atom 1.0's
//!   and the renamed elements get their 1.0 names (`issued` → `published`, `modified` →
//!   `updated`, `tagline` → `subtitle`, `copyright` → `rights`); `type="text/html"` and
//!   `mode="escaped"` text becomes `type="html"`.
//! - **RSS without a `version` attribute, or with one feed-rs does not list** (0.93, 0.94, 2.01,
//!   2.1...): feed-rs finds "no root element". It is read as 2.0.
//! - **RSS 0.90** (namespace `http://my.netscape.com/rdf/simple/0.9/`): read as RSS 1.0, its
//!   successor in the same RDF shape.
//! - **RSS 2.0 in the `http://backend.userland.com/rss2` namespace** (an early draft some feeds
//!   declared): feed-rs reads no element of it. The declaration is dropped.
//! - **A text construct with a MIME type feed-rs does not know** (`application/xhtml+xml`, an
//!   empty `type`): the whole feed fails on one attribute. The type becomes `html`.
//!
//! - **RSS 1.0 items without `<link>`**: feed-rs drops them (the spec requires a link). Their
//!   `rdf:about`, the item's URI, becomes the link.
//! - **CDF** (Microsoft's Channel Definition Format of 1997, still in feedparser's suite):
//!   rewritten as RSS 2.0 (`CHANNEL`/`ITEM` with `HREF`, `TITLE`, `ABSTRACT`).
//!
//! Atom 0.3 and CDF are recognized before parsing; the other two are repaired only after feed-rs names
//! them, so a feed that parses is never rewritten.

use std::borrow::Cow;
use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

/// The Atom 0.3 namespace.
const ATOM_03: &str = "http://purl.org/atom/ns#";
/// The Atom 1.0 namespace.
const ATOM_10: &str = "http://www.w3.org/2005/Atom";

/// True when the document is Atom 0.3.
pub fn is_atom_03(doc: &str) -> bool {
    doc[..doc.floor_char_boundary(4096)].contains(ATOM_03)
}

/// Atom 0.3 rewritten as Atom 1.0.
pub fn atom_03(doc: &str) -> String {
    let mut out = doc.replace(ATOM_03, ATOM_10);
    for (old, new) in [
        ("issued", "published"),
        ("modified", "updated"),
        ("tagline", "subtitle"),
        ("copyright", "rights"),
    ] {
        out = out
            .replace(&format!("<{old}>"), &format!("<{new}>"))
            .replace(&format!("<{old} "), &format!("<{new} "))
            .replace(&format!("</{old}>"), &format!("</{new}>"));
    }
    out.replace("mode=\"escaped\"", "")
        .replace("mode=\"xml\"", "")
        .replace("type=\"text/html\"", "type=\"html\"")
        .replace("type=\"text/plain\"", "type=\"text\"")
        .replace("type=\"application/xhtml+xml\"", "type=\"xhtml\"")
}

/// The namespace of the RSS 2.0 draft that some feeds declare as their default.
const USERLAND_RSS2: &str = "xmlns=\"http://backend.userland.com/rss2\"";

/// RSS 2.0 without the draft namespace declaration.
fn userland_rss2(doc: &str) -> Option<String> {
    let head = &doc[..doc.floor_char_boundary(4096)];
    let at = head.find(USERLAND_RSS2)?;
    let root = head.find("<rss")?;
    (root < at).then(|| format!("{}{}", &doc[..at], &doc[at + USERLAND_RSS2.len()..]))
}

/// The root `<rss>` given `version="2.0"` when it has no version or one feed-rs does not list.
pub fn rss_version(doc: &str) -> Option<String> {
    let at = doc.find("<rss")?;
    if !matches!(
        doc.as_bytes().get(at + 4),
        Some(b' ' | b'>' | b'\n' | b'\r' | b'\t')
    ) {
        return None;
    }
    let end = at + doc[at..].find('>')?;
    let tag = &doc[at..end];
    let Some(v) = tag.find("version=") else {
        return Some(format!(
            "{} version=\"2.0\"{}",
            &doc[..at + 4],
            &doc[at + 4..]
        ));
    };
    let value_start = at + v + "version=".len();
    let quote = doc[value_start..]
        .chars()
        .next()
        .filter(|c| *c == '"' || *c == '\'')?;
    let value_end = value_start + 1 + doc[value_start + 1..end].find(quote)?;
    let version = &doc[value_start + 1..value_end];
    if matches!(version, "2.0" | "" | "0.91" | "0.92") {
        return None;
    }
    Some(format!(
        "{}2.0{}",
        &doc[..value_start + 1],
        &doc[value_end..]
    ))
}

/// True for an `<rss>` document with no `<channel>`: a valid feed with nothing in it.
pub fn is_empty_rss(doc: &str) -> bool {
    doc.contains("<rss") && !doc.contains("<channel") && !doc.contains("<item")
}

/// The RSS 0.90 namespace.
const RSS_090: &str = "http://my.netscape.com/rdf/simple/0.9/";
/// The RSS 1.0 namespace.
const RSS_10: &str = "http://purl.org/rss/1.0/";

/// Every `type="<mime>"` attribute made `type="html"`; `None` when there is none.
pub fn unknown_type(doc: &str, mime: &str) -> Option<String> {
    let attr = format!("type=\"{mime}\"");
    let attr_single = format!("type='{mime}'");
    if !doc.contains(&attr) && !doc.contains(&attr_single) {
        return None;
    }
    Some(
        doc.replace(&attr, "type=\"html\"")
            .replace(&attr_single, "type=\"html\""),
    )
}

/// True for a CDF document (root element `CHANNEL`, any case).
pub fn is_cdf(doc: &str) -> bool {
    let mut rest = doc.trim_start_matches('\u{feff}');
    // Skip the declaration, comments and whitespace before the root.
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("<?") {
            rest = r.split_once("?>").map_or("", |(_, r)| r);
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.split_once("-->").map_or("", |(_, r)| r);
        } else {
            break;
        }
    }
    rest.get(..8)
        .is_some_and(|h| h.eq_ignore_ascii_case("<channel"))
        && !doc.contains("<rss")
}

/// A CDF document rewritten as RSS 2.0.
pub fn cdf(doc: &str) -> String {
    // The prolog stays in front; the root is wrapped.
    let root = doc.to_ascii_lowercase().find("<channel").unwrap_or(0);
    let mut out = format!("{}<rss version=\"2.0\">", &doc[..root]);
    let mut rest = &doc[root..];
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('>').map(|e| at + e) else {
            out.push_str(&rest[at..]);
            return out + "</rss>";
        };
        let tag = &rest[at + 1..end];
        let closing = tag.starts_with('/');
        let body = tag.strip_prefix('/').unwrap_or(tag);
        let name_end = body
            .find(|c: char| c.is_whitespace() || c == '/')
            .unwrap_or(body.len());
        let name = body[..name_end].to_ascii_lowercase();
        let mapped = match name.as_str() {
            "channel" | "item" | "title" => Some(name.clone()),
            "abstract" => Some("description".to_string()),
            _ => None,
        };
        match (mapped, closing) {
            (Some(m), true) => out.push_str(&format!("</{m}>")),
            (Some(m), false) => {
                out.push_str(&format!("<{m}>"));
                let href = tag
                    .find("HREF=")
                    .or_else(|| tag.find("href="))
                    .and_then(|h| quoted(&tag[h + 5..]));
                if let Some(href) = href.filter(|_| m == "channel" || m == "item") {
                    out.push_str(&format!("<link>{href}</link>"));
                }
                if tag.ends_with('/') {
                    out.push_str(&format!("</{m}>"));
                }
            }
            (None, _) => out.push_str(&rest[at..=end]),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out + "</rss>"
}

/// The value of a quoted attribute value at the start of `v` (`"x"` or `'x'`).
fn quoted(v: &str) -> Option<&str> {
    let q = v.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    v[1..].find(q).map(|e| &v[1..1 + e])
}

/// RSS 1.0 items without `<link>` given their `rdf:about` as link; `None` when none lacks one.
pub fn rdf_item_links(doc: &str) -> Option<String> {
    let mut out = String::with_capacity(doc.len() + 256);
    let mut rest = doc;
    let mut changed = false;
    while let Some(at) = rest.find("<item") {
        let Some(end) = rest[at..].find('>').map(|e| at + e) else {
            break;
        };
        let tag = &rest[at..=end];
        let body_end = rest[end..].find("</item>").map_or(rest.len(), |e| end + e);
        let about = tag.find("rdf:about=").and_then(|a| quoted(&tag[a + 10..]));
        out.push_str(&rest[..=end]);
        if let Some(about) = about.filter(|_| !rest[end..body_end].contains("<link")) {
            out.push_str(&format!("<link>{about}</link>"));
            changed = true;
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// The document without XML declarations after its start. A declaration is only allowed as
/// the very first thing; quick-xml panics on a later one that names an encoding (found by the
/// parse fuzzer: a declaration inside an element's text). A lenient reader drops them.
pub fn late_declarations(doc: &str) -> Option<String> {
    let start = doc.len()
        - doc
            .trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n'])
            .len();
    let is_declaration = |at: usize| {
        doc[at + 5..]
            .chars()
            .next()
            .is_none_or(|c| c == '?' || c.is_ascii_whitespace())
    };
    static DECLARATION: LazyLock<Option<AhoCorasick>> =
        LazyLock::new(|| AhoCorasick::new(["<?xml"]).ok());
    let mut late = DECLARATION
        .as_ref()?
        .find_iter(doc)
        .map(|m| m.start())
        .filter(|&at| at != start && is_declaration(at))
        .peekable();
    late.peek()?;
    let mut out = String::with_capacity(doc.len());
    let mut copied = 0;
    for at in late {
        if at < copied {
            continue;
        }
        out.push_str(&doc[copied..at]);
        copied = doc[at..].find("?>").map_or(doc.len(), |end| at + end + 2);
    }
    out.push_str(&doc[copied..]);
    Some(out)
}

/// RSS contact elements whose text feed-rs splits into a name and an email.
const CONTACTS: [&str; 3] = ["author", "managingEditor", "webMaster"];

/// The document with a space between an email address and a non-ASCII character (or a
/// character reference) touching it, inside RSS `author`, `managingEditor` and `webMaster`.
/// feed-rs 3.0 slices one byte past the email there and panics when that byte is inside a
/// character (found by the parse fuzzer). feedsieve keeps no author, so the extra space costs
/// nothing.
pub fn contact_spacing(doc: &str) -> Option<String> {
    // One pass over the document for the three tags (a search per tag cost 3% of a pass), with
    // aho-corasick's SIMD searcher: its automaton stopped at every `<` of the document.
    // The automaton stays for CPUs without the SIMD searcher.
    fn tags() -> impl Iterator<Item = String> {
        CONTACTS.iter().map(|t| format!("<{t}"))
    }
    static SIMD: LazyLock<Option<aho_corasick::packed::Searcher>> = LazyLock::new(|| {
        aho_corasick::packed::Config::new()
            .builder()
            .extend(tags())
            .build()
    });
    static AUTOMATON: LazyLock<Option<AhoCorasick>> =
        LazyLock::new(|| AhoCorasick::new(tags()).ok());
    let found: Box<dyn Iterator<Item = (usize, usize, usize)>> = match SIMD.as_ref() {
        Some(simd) => Box::new(
            simd.find_iter(doc)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
        ),
        None => Box::new(
            AUTOMATON
                .as_ref()?
                .find_iter(doc)
                .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
        ),
    };
    let mut risky = Vec::new();
    let mut next = 0;
    for (at, after, pattern) in found {
        if at < next || !doc[after..].starts_with(['>', ' ', '\t', '\r', '\n']) {
            continue;
        }
        let close = format!("</{}>", CONTACTS[pattern]);
        let Some(start) = doc[after..].find('>').map(|i| after + i + 1) else {
            break;
        };
        let Some(end) = doc[start..].find(&close).map(|i| start + i) else {
            break;
        };
        next = end;
        let text = &doc[start..end];
        if text.contains('@') && text.contains(|c: char| !c.is_ascii() || c == '&') {
            risky.push(start..end);
        }
    }
    if risky.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(doc.len() + 64);
    let mut copied = 0;
    for r in risky {
        if r.start < copied {
            continue;
        }
        out.push_str(&doc[copied..r.start]);
        space_out(&doc[r.clone()], &mut out);
        copied = r.end;
    }
    out.push_str(&doc[copied..]);
    Some(out)
}

/// Copies `text`, putting a space between a visible ASCII character and a non-ASCII one or a
/// character reference (`&...;`), on either side.
fn space_out(text: &str, out: &mut String) {
    // Whether the last thing written was a visible ASCII character (else a non-ASCII one, a
    // reference, a space, or nothing).
    let mut after_ascii = false;
    let mut after_other = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let reference = (c == '&')
            .then(|| rest.find(';').filter(|&i| i <= 12))
            .flatten();
        let (token, other) = match reference {
            Some(i) => (&rest[..=i], true),
            None => (&rest[..c.len_utf8()], !c.is_ascii()),
        };
        let visible = !other && !c.is_ascii_whitespace();
        if (other && after_ascii) || (visible && after_other) {
            out.push(' ');
        }
        out.push_str(token);
        after_ascii = visible;
        after_other = other;
        rest = &rest[token.len()..];
    }
}

/// The document as feed-rs should first see it.
pub fn before_parsing(doc: &str) -> Cow<'_, str> {
    let fixed = match late_declarations(doc) {
        Some(fixed) => Cow::Owned(fixed),
        None => Cow::Borrowed(doc),
    };
    let fixed = match contact_spacing(&fixed) {
        Some(spaced) => Cow::Owned(spaced),
        None => fixed,
    };
    match fixed {
        Cow::Borrowed(doc) => repaired_dialect(doc),
        Cow::Owned(doc) => Cow::Owned(repaired_dialect(&doc).into_owned()),
    }
}

/// Old dialects and common mistakes rewritten into what feed-rs reads.
fn repaired_dialect(doc: &str) -> Cow<'_, str> {
    if is_atom_03(doc) {
        Cow::Owned(atom_03(doc))
    } else if is_cdf(doc) {
        Cow::Owned(cdf(doc))
    } else if doc[..doc.floor_char_boundary(4096)].contains(RSS_090) {
        Cow::Owned(doc.replace(RSS_090, RSS_10))
    } else if let Some(repaired) = userland_rss2(doc) {
        Cow::Owned(repaired)
    } else {
        Cow::Borrowed(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_touching_other_characters_get_a_space() {
        let doc = "<rss><channel><managingEditor>x@y.com\u{fffd}z</managingEditor><item><author>Jos\u{e9}(jo@e.org)&#233;</author><author>plain@e.org (Plain)</author></item></channel></rss>";
        assert_eq!(
            contact_spacing(doc).as_deref(),
            Some(
                "<rss><channel><managingEditor>x@y.com \u{fffd} z</managingEditor><item><author>Jos \u{e9} (jo@e.org) &#233;</author><author>plain@e.org (Plain)</author></item></channel></rss>"
            )
        );
        assert_eq!(contact_spacing("<rss><author>a@b.org</author></rss>"), None);
        // The name is kept and nothing panics.
        let feed = crate::parse::parse_feed(
            doc.as_bytes(),
            "https://e.example/",
            Some("application/rss+xml"),
        );
        assert!(feed.is_ok(), "{feed:?}");
    }

    #[test]
    fn late_xml_declarations_are_dropped() {
        let doc = "\u{feff}<?xml version=\"1.0\"?>\n<rss><channel><title>PHA+<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>x</title><?xml-stylesheet href=\"s\"?></channel></rss>";
        assert_eq!(
            late_declarations(doc).as_deref(),
            Some(
                "\u{feff}<?xml version=\"1.0\"?>\n<rss><channel><title>PHA+x</title><?xml-stylesheet href=\"s\"?></channel></rss>"
            )
        );
        assert_eq!(late_declarations("<?xml version=\"1.0\"?><rss/>"), None);
        // Unterminated: the rest goes.
        assert_eq!(late_declarations("<rss><?xml ").as_deref(), Some("<rss>"));
    }

    #[test]
    fn repairs() {
        let atom = r#"<feed version="0.3" xmlns="http://purl.org/atom/ns#"><entry><issued>2003-12-31T10:14:55Z</issued><summary type="text/html" mode="escaped">a</summary></entry></feed>"#;
        assert!(is_atom_03(atom));
        // The namespace check never splits a character, wherever byte 4096 falls.
        for pad in 4090..4100 {
            assert!(!is_atom_03(&format!(
                "{}\u{e9}\u{e9}\u{e9}\u{e9}",
                "x".repeat(pad)
            )));
        }
        assert_eq!(
            atom_03(atom),
            r#"<feed version="0.3" xmlns="http://www.w3.org/2005/Atom"><entry><published>2003-12-31T10:14:55Z</published><summary type="html" >a</summary></entry></feed>"#
        );
        assert_eq!(
            rss_version("<!-- c --><rss>\n<channel/></rss>").as_deref(),
            Some("<!-- c --><rss version=\"2.0\">\n<channel/></rss>")
        );
        assert_eq!(rss_version("<rss version=\"0.91\"><channel/></rss>"), None);
        assert_eq!(
            rss_version("<rss version='2.01'><channel/></rss>").as_deref(),
            Some("<rss version='2.0'><channel/></rss>")
        );
        let cdf_doc = "<?xml version=\"1.0\"?>\n<!-- c --><CHANNEL HREF=\"http://x/\"><TITLE>T</TITLE><ITEM HREF=\"http://x/1\"><ABSTRACT>A &amp; b</ABSTRACT></ITEM><LOGO HREF=\"l\"/></CHANNEL>";
        assert!(is_cdf(cdf_doc));
        assert_eq!(
            cdf(cdf_doc),
            "<?xml version=\"1.0\"?>\n<!-- c --><rss version=\"2.0\"><channel><link>http://x/</link><title>T</title><item><link>http://x/1</link><description>A &amp; b</description></item><LOGO HREF=\"l\"/></channel></rss>"
        );
        let rdf = "<item rdf:about=\"http://e/1\"><title>t</title></item><item rdf:about=\"http://e/2\"><link>http://e/2</link></item>";
        assert_eq!(
            rdf_item_links(rdf).as_deref(),
            Some(
                "<item rdf:about=\"http://e/1\"><link>http://e/1</link><title>t</title></item><item rdf:about=\"http://e/2\"><link>http://e/2</link></item>"
            )
        );
        assert!(is_empty_rss("<rss version=\"0.93\">\n</rss>"));
        assert_eq!(rss_version("<rss2><channel/></rss2>"), None);
        assert_eq!(
            userland_rss2("<rss version=\"2.0\"\n xmlns=\"http://backend.userland.com/rss2\" xmlns:dc=\"x\"><channel/></rss>").as_deref(),
            Some("<rss version=\"2.0\"\n  xmlns:dc=\"x\"><channel/></rss>")
        );
        assert_eq!(
            unknown_type(
                "<title type=\"application/xhtml+xml\">x</title>",
                "application/xhtml+xml"
            )
            .as_deref(),
            Some("<title type=\"html\">x</title>")
        );
        assert_eq!(
            userland_rss2("<rss version=\"2.0\"\n xmlns=\"http://backend.userland.com/rss2\" xmlns:dc=\"x\"><channel/></rss>").as_deref(),
            Some("<rss version=\"2.0\"\n  xmlns:dc=\"x\"><channel/></rss>")
        );
        assert_eq!(unknown_type("<title>x</title>", ""), None);
    }
}
