//! Charset: turns the bytes a server sent into UTF-8 before the feed parser sees them.
//!
//! The encoding is taken, in this order, from a byte-order mark, the `charset` of the HTTP
//! `Content-Type`, the XML declaration, and the shape of a UTF-16 document without a BOM; else
//! UTF-8. Bytes that are invalid in that encoding become U+FFFD instead of failing the feed.
//! feed-rs decodes by the XML declaration only, so a declaration that names another encoding is
//! removed from the UTF-8 result (UTF-8 is XML's default).
//!
//! The decoding is done by `encoding_rs` (the WHATWG encoding standard's implementation), which
//! quick-xml already brings in.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// The charset parameter of a `Content-Type` header value, if any.
pub fn content_type_charset(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

/// The `encoding="..."` of an XML declaration at the start of `body` (ASCII-compatible bytes).
fn declared_encoding(body: &[u8]) -> Option<&str> {
    let decl = body.strip_prefix(b"<?xml")?;
    let end = decl.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&decl[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &rest[1..];
    rest.find(quote).map(|end| &rest[..end])
}

/// Decides the encoding of `body` and how many leading bytes (a BOM) to skip.
pub fn detect(body: &[u8], http_charset: Option<&str>) -> (&'static Encoding, usize) {
    if let Some((encoding, bom)) = Encoding::for_bom(body) {
        return (encoding, bom);
    }
    if let Some(e) = http_charset.and_then(|l| Encoding::for_label(l.as_bytes())) {
        return (e, 0);
    }
    match body {
        [b'<', 0, b'?', 0, ..] => return (UTF_16LE, 0),
        [0, b'<', 0, b'?', ..] => return (UTF_16BE, 0),
        _ => {}
    }
    let declared = declared_encoding(body).and_then(|l| Encoding::for_label(l.as_bytes()));
    (declared.unwrap_or(UTF_8), 0)
}

/// The body as UTF-8 text, borrowed when it already is (validated here once, so nothing
/// downstream checks it again).
pub fn to_utf8<'a>(body: &'a [u8], http_charset: Option<&str>) -> Cow<'a, str> {
    let (encoding, bom) = detect(body, http_charset);
    let bytes = &body[bom..];
    let declared_other = declared_encoding(bytes)
        .and_then(|l| Encoding::for_label(l.as_bytes()))
        .is_some_and(|e| e != UTF_8);
    if encoding == UTF_8 && !declared_other {
        return match std::str::from_utf8(bytes) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => Cow::Owned(String::from_utf8_lossy(bytes).into_owned()),
        };
    }
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Cow::Owned(without_declaration(&text))
}

/// Drops the XML declaration (its encoding no longer applies once the text is UTF-8).
fn without_declaration(text: &str) -> String {
    match text
        .strip_prefix("<?xml")
        .and_then(|rest| rest.find("?>").map(|end| &rest[end + 2..]))
    {
        Some(rest) => rest.to_string(),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf8(body: &[u8], http: Option<&str>) -> String {
        to_utf8(body, http).into_owned()
    }

    #[test]
    fn charset_from_header_declaration_and_bom() {
        assert_eq!(
            content_type_charset("text/xml; charset=\"ISO-8859-1\""),
            Some("ISO-8859-1")
        );
        assert_eq!(content_type_charset("application/rss+xml"), None);
        let latin1 = b"<?xml version=\"1.0\" encoding=\"iso-8859-1\"?><rss>caf\xe9</rss>";
        assert_eq!(utf8(latin1, None), "<rss>caf\u{e9}</rss>");
        // The HTTP header wins over the declaration.
        let cp = b"<?xml version=\"1.0\" encoding=\"utf-8\"?><rss>\x93q\x94</rss>";
        assert_eq!(
            utf8(cp, Some("windows-1252")),
            "<rss>\u{201c}q\u{201d}</rss>"
        );
        // A BOM wins over everything.
        let mut le = vec![0xFF, 0xFE];
        for u in "<?xml version=\"1.0\" encoding=\"utf-16\"?><rss>\u{e9}</rss>".encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(utf8(&le, Some("iso-8859-1")), "<rss>\u{e9}</rss>");
        // UTF-16 big-endian without a BOM.
        let be: Vec<u8> = "<?xml version=\"1.0\"?><rss>x</rss>"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(utf8(&be, None), "<rss>x</rss>");
    }

    #[test]
    fn invalid_bytes_are_replaced_and_utf8_is_borrowed() {
        assert_eq!(utf8(b"<rss>a\xffb</rss>", None), "<rss>a\u{fffd}b</rss>");
        assert!(matches!(
            to_utf8(b"<?xml version='1.0' encoding='UTF-8'?><rss/>", None),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            to_utf8("\u{feff}<rss/>".as_bytes(), None),
            Cow::Borrowed("<rss/>")
        ));
    }
}
