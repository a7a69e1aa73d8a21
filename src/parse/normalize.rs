//! Normalization: turns the HTML a feed carries into the plain text and canonical link that dedup
//! and consumers see.
//!
//! [`html_to_text`] strips tags, drops `<script>`, `<style>` and comments, decodes entities once
//! and folds whitespace, keeping paragraphs as blocks separated by one blank line. It is a single
//! forward pass with no DOM: feed bodies are fragments, often malformed, and this runs for every
//! item of every poll. Plain-text bodies pass through it unchanged but for whitespace (a blank line
//! in the input is a paragraph break in both cases).
//!
//! [`canonical_link`] makes the link a stable key: resolved against the feed, scheme and host
//! lowercased (by the `url` crate), fragment and `utm_*` tracking parameters dropped, everything
//! else kept byte for byte.

use std::borrow::Cow;

use url::Url;

/// Elements whose start or end begins a new paragraph.
const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "thead",
    "tfoot",
    "tr",
    "ul",
];

/// Elements whose whole content is dropped.
const SKIP_TAGS: &[&str] = &[
    "script", "style", "noscript", "template", "head", "iframe", "object", "svg",
];

/// What separates the next word from the text already written.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Gap {
    /// Nothing: the next characters continue the current word.
    None,
    /// One space.
    Space,
    /// A paragraph break (`\n\n`).
    Paragraph,
}

/// Accumulates text, folding whitespace and placing paragraph breaks.
struct TextBuilder {
    out: String,
    gap: Gap,
    /// `<br>` tags seen since the last text; two in a row break a paragraph.
    brs: u32,
}

impl TextBuilder {
    fn new(capacity: usize) -> Self {
        TextBuilder {
            out: String::with_capacity(capacity),
            gap: Gap::None,
            brs: 0,
        }
    }

    fn gap(&mut self, gap: Gap) {
        self.gap = self.gap.max(gap);
    }

    fn br(&mut self) {
        self.brs += 1;
        self.gap(if self.brs >= 2 {
            Gap::Paragraph
        } else {
            Gap::Space
        });
    }

    /// Appends text whose entities are already decoded. Words separated by single ASCII spaces
    /// (most of any text) are copied as one run; other spacing sets the gap before the next run.
    /// ASCII goes through a byte table; other characters are decoded where they start.
    fn push(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let n = bytes.len();
        // The length of the space character at `i`, or 0 when it is not one.
        let space_at = |i: usize| -> usize {
            match ASCII_CLASS[usize::from(bytes[i])] {
                Class::Word => 0,
                Class::Space | Class::Newline => 1,
                Class::Other => {
                    let c = text[i..].chars().next().unwrap_or('x');
                    if is_space(c) { c.len_utf8() } else { 0 }
                }
            }
        };
        let mut i = 0;
        while i < n {
            let mut newlines = 0;
            let skipped_from = i;
            while i < n {
                let s = space_at(i);
                if s == 0 {
                    break;
                }
                newlines += usize::from(bytes[i] == b'\n');
                i += s;
            }
            if i > skipped_from {
                self.gap(if newlines >= 2 {
                    Gap::Paragraph
                } else {
                    Gap::Space
                });
            }
            if i >= n {
                break;
            }
            // A run of words with single ASCII spaces between them.
            let start = i;
            while i < n {
                i = ascii_run(bytes, i);
                if i >= n {
                    break;
                }
                match ASCII_CLASS[usize::from(bytes[i])] {
                    Class::Word => i += 1,
                    Class::Space if bytes[i] == b' ' && i + 1 < n && space_at(i + 1) == 0 => i += 1,
                    Class::Space | Class::Newline => break,
                    Class::Other => {
                        let c = text[i..].chars().next().unwrap_or('x');
                        if is_space(c) {
                            break;
                        }
                        i += c.len_utf8();
                    }
                }
            }
            if !self.out.is_empty() {
                match self.gap {
                    Gap::None => {}
                    Gap::Space => self.out.push(' '),
                    Gap::Paragraph => self.out.push_str("\n\n"),
                }
            }
            self.gap = Gap::None;
            self.brs = 0;
            self.out.push_str(&text[start..i]);
        }
    }

    fn finish(self) -> String {
        self.out
    }
}

/// What an input byte is, for folding whitespace.
#[derive(Clone, Copy)]
enum Class {
    /// An ASCII character that is not white space.
    Word,
    /// ASCII white space other than a line feed.
    Space,
    /// A line feed (two in one stretch of spaces break a paragraph).
    Newline,
    /// Any byte of a non-ASCII character (decoded to tell).
    Other,
}

/// [`Class`] of every byte value.
const ASCII_CLASS: [Class; 256] = {
    let mut t = [Class::Word; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = if b >= 0x80 {
            Class::Other
        } else if b == 0x0A {
            Class::Newline
        } else if b == 0x20 || (b >= 0x09 && b <= 0x0D) {
            Class::Space
        } else {
            Class::Word
        };
        b += 1;
    }
    t
};

/// The end of the stretch from `i` of visible ASCII characters and single spaces each followed
/// by one (what most text is made of): eight bytes at a time, then byte by byte.
fn ascii_run(bytes: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let x = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        // Any byte below 0x20 (controls, tabs, newlines) or not ASCII.
        let odd = (x.wrapping_sub(ONES * 0x20) & !x & HIGH) | (x & HIGH);
        // Spaces, exactly: the bytes of x ^ 0x20.. that are zero.
        let y = x ^ (ONES * 0x20);
        let spaces = !(((y & !HIGH).wrapping_add(!HIGH)) | y | !HIGH);
        // Two spaces in a row, or a space as the last byte (its follower is in the next chunk).
        if odd != 0 || spaces & (spaces >> 8) != 0 {
            break;
        }
        i += if spaces >> 56 != 0 { 7 } else { 8 };
    }
    while let Some(&b) = bytes.get(i) {
        let visible = b.wrapping_sub(0x21) < 0x5E;
        let single_space = b == b' '
            && bytes
                .get(i + 1)
                .is_some_and(|c| c.wrapping_sub(0x21) < 0x5E);
        if !(visible || single_space) {
            break;
        }
        i += 1;
    }
    i
}

/// Whitespace for folding: Unicode white space plus the zero-width space and BOM.
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{200B}' || c == '\u{FEFF}'
}

/// Decodes HTML character references (`&amp;`, `&#8217;`, `&hellip;` ...) in a text run.
fn decode(text: &str) -> Cow<'_, str> {
    if text.contains('&') {
        html_escape::decode_html_entities(text)
    } else {
        Cow::Borrowed(text)
    }
}

/// Converts an HTML fragment (or plain text) to plain text: tags stripped, entities decoded,
/// whitespace folded, paragraphs kept as blocks separated by a blank line.
///
/// ```
/// use feedsieve::parse::normalize::html_to_text;
/// let html = "<p>Talks in <b>Paris</b> &amp; Geneva.</p><script>x()</script><p>Second&nbsp;one.</p>";
/// assert_eq!(html_to_text(html), "Talks in Paris & Geneva.\n\nSecond one.");
/// ```
pub fn html_to_text(html: &str) -> String {
    let bytes = html.as_bytes();
    let mut out = TextBuilder::new(html.len());
    let mut text_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += memchr_lt(&bytes[i..]);
            continue;
        }
        // A '<' that does not open a tag is text ("a < b").
        let next = bytes.get(i + 1).copied().unwrap_or(b' ');
        if !(next.is_ascii_alphabetic() || next == b'/' || next == b'!' || next == b'?') {
            i += 1;
            continue;
        }
        out.push(&decode(&html[text_start..i]));
        let (end, tag) = scan_tag(html, i);
        i = end;
        text_start = end;
        match tag {
            Tag::Cdata(range) => out.push(&html[range]),
            Tag::Open(name) if SKIP_TAGS.iter().any(|t| t.eq_ignore_ascii_case(name)) => {
                i = skip_element(html, i, name);
                text_start = i;
                out.gap(Gap::Space);
            }
            Tag::Open(name) | Tag::Close(name) => {
                if name.eq_ignore_ascii_case("br") {
                    out.br();
                } else if BLOCK_TAGS.iter().any(|t| t.eq_ignore_ascii_case(name)) {
                    out.gap(Gap::Paragraph);
                } else if is_spacing_inline(name) {
                    out.gap(Gap::Space);
                }
            }
            Tag::Other => {}
        }
    }
    out.push(&decode(&html[text_start..]));
    out.finish()
}

/// Inline elements that separate words (table cells, images, line-level containers).
fn is_spacing_inline(name: &str) -> bool {
    [
        "td", "th", "img", "caption", "option", "input", "button", "label",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(name))
}

/// Bytes up to the next `<` (or the end).
fn memchr_lt(bytes: &[u8]) -> usize {
    memchr::memchr(b'<', bytes).unwrap_or(bytes.len()).max(1)
}

/// What a `<...>` construct turned out to be.
enum Tag<'a> {
    Open(&'a str),
    Close(&'a str),
    /// A CDATA section: its content is text.
    Cdata(std::ops::Range<usize>),
    /// Comment, doctype, processing instruction.
    Other,
}

/// Scans the construct starting at `at` (a `<`); returns where it ends and what it is.
fn scan_tag(html: &str, at: usize) -> (usize, Tag<'_>) {
    let rest = &html[at..];
    if let Some(body) = rest.strip_prefix("<!--") {
        let end = body.find("-->").map_or(html.len(), |e| at + 4 + e + 3);
        return (end, Tag::Other);
    }
    if let Some(body) = rest.strip_prefix("<![CDATA[") {
        let start = at + 9;
        return match body.find("]]>") {
            Some(e) => (start + e + 3, Tag::Cdata(start..start + e)),
            None => (html.len(), Tag::Cdata(start..html.len())),
        };
    }
    let bytes = rest.as_bytes();
    let closing = bytes[1] == b'/';
    let name_start = if closing { 2 } else { 1 };
    let name_len = bytes[name_start..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b':'))
        .unwrap_or(bytes.len() - name_start);
    let name = &rest[name_start..name_start + name_len];
    // Find the closing '>' outside quoted attribute values.
    let mut quote = 0u8;
    let mut j = name_start + name_len;
    while j < bytes.len() {
        let b = bytes[j];
        if quote != 0 {
            if b == quote {
                quote = 0;
            }
        } else if b == b'"' || b == b'\'' {
            quote = b;
        } else if b == b'>' {
            break;
        }
        j += 1;
    }
    let end = (at + j + 1).min(html.len());
    let tag = if bytes[1] == b'!' || bytes[1] == b'?' || name.is_empty() {
        Tag::Other
    } else if closing {
        Tag::Close(name)
    } else {
        Tag::Open(name)
    };
    (end, tag)
}

/// Skips to just after `</name>` (case-insensitive), or to the end when it never closes.
fn skip_element(html: &str, from: usize, name: &str) -> usize {
    let bytes = html.as_bytes();
    let mut i = from;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'<') {
        let at = i + off;
        let after = at + 2;
        if bytes.get(at + 1) == Some(&b'/')
            && html
                .get(after..after + name.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        {
            return bytes[after..]
                .iter()
                .position(|&b| b == b'>')
                .map_or(html.len(), |e| after + e + 1);
        }
        i = at + 1;
    }
    html.len()
}

/// Turns paragraphs into one line (for titles).
pub fn one_line(text: &str) -> String {
    if text.contains('\n') {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        text.to_string()
    }
}

/// Canonical form of an item link: resolved against `base`, scheme and host lowercased,
/// fragment and `utm_*` parameters dropped. `None` when `href` is not a usable http(s) URL.
///
/// ```
/// use feedsieve::parse::normalize::canonical_link;
/// assert_eq!(
///     canonical_link("HTTPS://News.Example.ORG/a/b?id=7&utm_source=rss&UTM_Medium=x#top", None).as_deref(),
///     Some("https://news.example.org/a/b?id=7"),
/// );
/// ```
pub fn canonical_link(href: &str, base: Option<&Url>) -> Option<String> {
    let href = href.trim();
    if href.is_empty() {
        return None;
    }
    let mut url = Url::options().base_url(base).parse(href).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.set_fragment(None);
    if let Some(query) = url.query()
        && query.split('&').any(|p| is_tracking(p) || p.is_empty())
    {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty() && !is_tracking(p))
            .collect();
        let kept = kept.join("&");
        url.set_query(if kept.is_empty() { None } else { Some(&kept) });
    }
    Some(url.into())
}

/// A `utm_*` query parameter (any case).
fn is_tracking(pair: &str) -> bool {
    pair.get(..4)
        .is_some_and(|k| k.eq_ignore_ascii_case("utm_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_are_blank_line_separated() {
        let html = "<div><p>One  two\n three.</p>\n<p>Four &amp; five &#8217;six&#x2019; &hellip;</p></div><ul><li>a</li><li>b</li></ul>";
        assert_eq!(
            html_to_text(html),
            "One two three.\n\nFour & five \u{2019}six\u{2019} \u{2026}\n\na\n\nb"
        );
    }

    #[test]
    fn inline_tags_do_not_split_words() {
        assert_eq!(
            html_to_text("un<b>believ</b>able <a href=\"x>y\">link</a>"),
            "unbelievable link"
        );
    }

    #[test]
    fn breaks_scripts_comments_cdata() {
        let html = "a<br>b<br/><br />c<!-- x <p> --><script>if (a<b) {}</script><STYLE>p{}</STYLE>d<![CDATA[ <e> ]]>";
        assert_eq!(html_to_text(html), "a b\n\nc d <e>");
    }

    #[test]
    fn plain_text_keeps_paragraphs_and_literal_angles() {
        assert_eq!(
            html_to_text("  a < b and c>d\n\n\n second\tpara \n"),
            "a < b and c>d\n\nsecond para"
        );
        assert_eq!(html_to_text(""), "");
        assert_eq!(html_to_text("<p></p>&nbsp;"), "");
    }

    #[test]
    fn every_space_folds_like_str_split_whitespace() {
        // The byte-wise folding must agree with the char-wise definition on every kind of
        // space, ASCII or not, wherever it falls in a multi-byte neighbourhood.
        let spaces = [
            " ", "\t", "\u{0B}", "\u{0C}", "\r", "\u{85}", "\u{A0}", "\u{1680}", "\u{2003}",
            "\u{200A}", "\u{200B}", "\u{2028}", "\u{202F}", "\u{3000}", "\u{FEFF}",
        ];
        for space in spaces {
            let text = format!("{space}é{space}{space}naïve\u{1F600}{space}x{space}");
            assert_eq!(html_to_text(&text), "é naïve\u{1F600} x", "space {space:?}");
        }
        assert_eq!(html_to_text("a\u{A0}\n\u{3000}\nb"), "a\n\nb");
        // Not spaces: the separators that are not White_Space stay in the word.
        assert_eq!(html_to_text("a\u{1C}b"), "a\u{1C}b");
    }

    /// Whitespace folding as the definition says it, a character at a time.
    fn fold_reference(text: &str) -> String {
        let mut out = String::new();
        let mut gap = Gap::None;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if is_space(c) {
                let mut newlines = usize::from(c == '\n');
                while let Some(&d) = chars.peek().filter(|&&d| is_space(d)) {
                    newlines += usize::from(d == '\n');
                    chars.next();
                }
                gap = gap.max(if newlines >= 2 {
                    Gap::Paragraph
                } else {
                    Gap::Space
                });
                continue;
            }
            if !out.is_empty() {
                match gap {
                    Gap::None => {}
                    Gap::Space => out.push(' '),
                    Gap::Paragraph => out.push_str("\n\n"),
                }
            }
            gap = Gap::None;
            out.push(c);
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]
        /// Plain text folds exactly as the character-wise definition says, whatever mix of
        /// words, spaces (ASCII, Unicode, doubled, at an eight-byte boundary) and characters
        /// it holds.
        #[test]
        fn folding_matches_the_definition(pieces in proptest::collection::vec(0usize..16, 0..80)) {
            const PIECES: [&str; 16] = [
                "word", "a", "Longerword", " ", " ", "  ", "\n", "\n\n", "\t", "\r\n", "\u{a0}",
                "\u{2003}", "é", "\u{1F600}", "\u{1c}", "x.y,z",
            ];
            let text: String = pieces.iter().map(|&p| PIECES[p]).collect();
            proptest::prop_assert_eq!(html_to_text(&text), fold_reference(&text));
        }
    }

    #[test]
    fn unterminated_constructs_do_not_panic() {
        for html in [
            "<",
            "<p",
            "<!--",
            "<![CDATA[x",
            "<script>x",
            "<a href='x",
            "&",
            "&#xZZ;",
            "</",
            "<é>",
        ] {
            let _ = html_to_text(html);
        }
    }

    #[test]
    fn canonical_links() {
        let base = Url::parse("https://example.org/feeds/rss.xml").unwrap();
        assert_eq!(
            canonical_link("/world/1?utm_campaign=a", Some(&base)).as_deref(),
            Some("https://example.org/world/1")
        );
        assert_eq!(
            canonical_link("HTTP://EXAMPLE.org:80/x#frag", None).as_deref(),
            Some("http://example.org/x")
        );
        assert_eq!(
            canonical_link("https://e.org/?a=1&&utm_x=2&b=%20", None).as_deref(),
            Some("https://e.org/?a=1&b=%20")
        );
        assert_eq!(canonical_link("mailto:a@b.c", None), None);
        assert_eq!(canonical_link("   ", None), None);
    }
}
