//! The clean stream re-exported as feeds: `/v1/feed.atom` (Atom 1.0) and `/v1/feed.json` (JSON
//! Feed 1.1), the newest articles first, filterable by feed and tag, so that any feed reader can
//! subscribe to what feedsieve kept.
//!
//! Sanitized by construction: an entry carries the stored plain text (tags were stripped when it
//! was stored), escaped for XML; no HTML from a source reaches a reader. Links are kept only when
//! they are `http` or `https`, so a `javascript:` link in a source feed goes nowhere.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use super::articles::{Filter, SCAN_BUDGET};
use super::{ApiError, ApiState, Params, blocking};
use crate::store::Article;

/// Entries in an export unless `limit` says otherwise.
pub const DEFAULT_ENTRIES: usize = 50;
/// Most entries in an export.
pub const MAX_ENTRIES: usize = 500;

const TITLE: &str = "feedsieve: the clean stream";

/// The newest articles through the request's filter, and the export's own URL.
async fn newest(
    state: &ApiState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    q: Option<&str>,
) -> Result<(Vec<Article>, String), ApiError> {
    let params = Params::parse(q, &["limit", "feed", "tag"])?;
    let limit = params.limit(DEFAULT_ENTRIES, MAX_ENTRIES)?;
    let filter = Filter::from_params(state, &params)?;
    let store = state.store.clone();
    let articles = blocking(state, move || {
        let last = store.visible_seq();
        if last == 0 {
            return Ok(Vec::new());
        }
        let (rows, _) = store.scan_articles(last, true, limit, SCAN_BUDGET, |j| filter.keeps(j))?;
        Ok(rows
            .iter()
            .filter_map(|(_, json)| serde_json::from_slice::<Article>(json).ok())
            .collect())
    })
    .await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok((articles, format!("http://{host}{uri}")))
}

/// A link a reader may follow: `http` or `https` only.
fn safe_link(link: Option<&str>) -> Option<&str> {
    let link = link?;
    let scheme = url::Url::parse(link).ok()?.scheme().to_ascii_lowercase();
    matches!(scheme.as_str(), "http" | "https").then_some(link)
}

/// Escapes text for XML, dropping characters XML 1.0 cannot carry.
fn xml_escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

fn element(out: &mut String, indent: &str, name: &str, attrs: &str, text: &str) {
    out.push_str(indent);
    out.push('<');
    out.push_str(name);
    out.push_str(attrs);
    out.push('>');
    xml_escape(text, out);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

fn link(out: &mut String, indent: &str, rel: &str, href: &str) {
    out.push_str(indent);
    out.push_str("<link rel=\"");
    out.push_str(rel);
    out.push_str("\" href=\"");
    xml_escape(href, out);
    out.push_str("\"/>\n");
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Renders articles (newest first) as an Atom 1.0 document whose own URL is `self_url`.
pub fn atom_document(articles: &[Article], self_url: &str) -> String {
    let mut out = String::with_capacity(1024 + articles.len() * 2048);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    element(&mut out, "  ", "id", "", self_url);
    element(&mut out, "  ", "title", "", TITLE);
    let updated = articles
        .iter()
        .map(|a| a.fetched)
        .max()
        .unwrap_or_else(chrono::Utc::now);
    element(&mut out, "  ", "updated", "", &rfc3339(updated));
    link(&mut out, "  ", "self", self_url);
    out.push_str("  <author><name>feedsieve</name></author>\n");
    element(
        &mut out,
        "  ",
        "generator",
        &format!(" version=\"{}\"", env!("CARGO_PKG_VERSION")),
        "feedsieve",
    );
    for a in articles {
        out.push_str("  <entry>\n");
        element(
            &mut out,
            "    ",
            "id",
            "",
            &format!("urn:feedsieve:article:{}", a.id),
        );
        element(&mut out, "    ", "title", " type=\"text\"", &a.title);
        if let Some(href) = safe_link(a.url.as_deref()) {
            link(&mut out, "    ", "alternate", href);
        }
        if let Some(href) = safe_link(Some(&a.feed)) {
            link(&mut out, "    ", "via", href);
        }
        if let Some(p) = a.published {
            element(&mut out, "    ", "published", "", &rfc3339(p));
        }
        element(
            &mut out,
            "    ",
            "updated",
            "",
            &rfc3339(a.published.unwrap_or(a.fetched)),
        );
        element(&mut out, "    ", "content", " type=\"text\"", &a.text);
        out.push_str("  </entry>\n");
    }
    out.push_str("</feed>\n");
    out
}

/// Renders articles (newest first) as a JSON Feed 1.1 document whose own URL is `self_url`.
pub fn json_feed_document(articles: &[Article], self_url: &str) -> String {
    let items: Vec<serde_json::Value> = articles
        .iter()
        .map(|a| {
            let mut item = serde_json::json!({
                "id": a.id,
                "title": a.title,
                "content_text": a.text,
                "date_modified": rfc3339(a.fetched),
                "_feedsieve": { "seq": a.seq, "feed": a.feed },
            });
            if let Some(url) = safe_link(a.url.as_deref()) {
                item["url"] = url.into();
            }
            if let Some(p) = a.published {
                item["date_published"] = rfc3339(p).into();
            }
            item
        })
        .collect();
    serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": TITLE,
        "feed_url": self_url,
        "items": items,
    })
    .to_string()
}

/// `GET /v1/feed.atom?limit&feed&tag`.
pub(super) async fn atom(
    State(state): State<ApiState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (articles, self_url) = newest(&state, &headers, &uri, q.as_deref()).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        atom_document(&articles, &self_url),
    )
        .into_response())
}

/// `GET /v1/feed.json?limit&feed&tag`.
pub(super) async fn json_feed(
    State(state): State<ApiState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (articles, self_url) = newest(&state, &headers, &uri, q.as_deref()).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/feed+json")],
        json_feed_document(&articles, &self_url),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(seq: u64, title: &str, url: Option<&str>, text: &str) -> Article {
        Article {
            seq,
            id: format!("{seq:016x}"),
            feed: "https://wire.example/rss".into(),
            url: url.map(str::to_string),
            title: title.into(),
            published: None,
            fetched: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            text: text.into(),
        }
    }

    #[test]
    fn exports_parse_back_and_carry_no_markup_or_unsafe_links() {
        let articles = vec![
            article(
                2,
                "Talks <b>resume</b> & \"hope\" \u{1}",
                Some("javascript:alert(1)"),
                "<script>alert(1)</script> Envoys met in Geneva.",
            ),
            article(1, "Plain", Some("https://wire.example/a"), "Body text."),
        ];
        let atom = atom_document(&articles, "http://127.0.0.1:1/v1/feed.atom?tag=a&feed=b");
        assert!(!atom.contains("<script>") && !atom.contains("javascript:"));
        let parsed = feed_rs::parser::parse(atom.as_bytes()).unwrap();
        assert_eq!(parsed.entries.len(), 2);
        let first = &parsed.entries[0];
        assert_eq!(
            first.title.as_ref().map(|t| t.content.as_str()),
            Some("Talks <b>resume</b> & \"hope\"")
        );
        assert!(
            first
                .links
                .iter()
                .all(|l| !l.href.starts_with("javascript"))
        );
        assert_eq!(parsed.entries[1].links[0].href, "https://wire.example/a");

        let json = json_feed_document(&articles, "http://127.0.0.1:1/v1/feed.json");
        let parsed = feed_rs::parser::parse(json.as_bytes()).unwrap();
        assert_eq!(parsed.entries.len(), 2);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["items"][0].get("url").is_none());
        assert_eq!(v["items"][1]["url"], "https://wire.example/a");
    }
}
