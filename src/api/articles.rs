//! Reading the logs: pages of articles (optionally of some feeds or tags), one article, pages of
//! duplicates, and `explain`.

use std::borrow::Cow;
use std::collections::HashSet;

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Deserialize;

use super::{ApiError, ApiState, DEFAULT_LIMIT, MAX_LIMIT, Params, blocking, json};

/// Records a filtered page may look at before it answers with what it found; `next` then says
/// where to go on, so a rare feed's page over a long log stays cheap.
pub(super) const SCAN_BUDGET: usize = 20_000;

/// Which articles a reader wants: all, or those of some feeds (named by id or URL, or by tag).
#[derive(Debug, Clone, Default)]
pub(super) struct Filter {
    /// Feed URLs to keep; `None` keeps everything.
    feeds: Option<HashSet<String>>,
}

/// The one field a filter reads from a stored record.
#[derive(Deserialize)]
struct FeedField<'a> {
    #[serde(borrow)]
    feed: Cow<'a, str>,
}

impl Filter {
    /// The filter of a request's `feed` and `tag` parameters (each may repeat: feeds are
    /// or-ed, tags are or-ed, and both together must both hold).
    pub(super) fn from_params(state: &ApiState, params: &Params) -> Result<Filter, ApiError> {
        let feed_params = params.all("feed");
        let tag_params = params.all("tag");
        if feed_params.is_empty() && tag_params.is_empty() {
            return Ok(Filter::default());
        }
        let list = state.catalog.list()?;
        let mut by_feed: Option<HashSet<String>> = None;
        if !feed_params.is_empty() {
            let mut set = HashSet::new();
            for f in feed_params {
                match list.iter().find(|x| x.id == f || x.config.url == f) {
                    Some(x) => {
                        set.insert(x.config.url.clone());
                    }
                    // A feed no longer listed still has its articles in the log.
                    None if f.contains("://") => {
                        set.insert(f.to_string());
                    }
                    None => {
                        return Err(ApiError::bad_request(format!(
                            "feed must be a feed's id or URL; no feed has id {f:?}"
                        )));
                    }
                }
            }
            by_feed = Some(set);
        }
        let mut by_tag: Option<HashSet<String>> = None;
        if !tag_params.is_empty() {
            by_tag = Some(
                list.iter()
                    .filter(|x| {
                        x.config
                            .tags
                            .iter()
                            .any(|t| tag_params.contains(&t.as_str()))
                    })
                    .map(|x| x.config.url.clone())
                    .collect(),
            );
        }
        let feeds = match (by_feed, by_tag) {
            (Some(a), Some(b)) => a.intersection(&b).cloned().collect(),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => unreachable!("one of the two is set"),
        };
        Ok(Filter { feeds: Some(feeds) })
    }

    /// True when the filter keeps everything.
    pub(super) fn is_all(&self) -> bool {
        self.feeds.is_none()
    }

    /// Whether an article of the feed with this URL passes.
    pub(super) fn keeps_feed(&self, feed: &str) -> bool {
        self.feeds.as_ref().is_none_or(|f| f.contains(feed))
    }

    /// Whether the stored record `json` passes.
    pub(super) fn keeps(&self, json: &[u8]) -> bool {
        match &self.feeds {
            None => true,
            Some(feeds) => serde_json::from_slice::<FeedField>(json)
                .is_ok_and(|f| feeds.contains(f.feed.as_ref())),
        }
    }
}

/// A page of article records after `after`, through `filter`: the records and the cursor to go
/// on from (the last seq looked at, which may be past the last one returned).
pub(super) async fn page(
    state: &ApiState,
    filter: Filter,
    after: u64,
    limit: usize,
) -> Result<(Vec<(u64, Vec<u8>)>, u64), ApiError> {
    let store = state.store.clone();
    blocking(state, move || {
        if filter.is_all() {
            let rows = store.article_records_after(after, limit)?;
            let next = rows.last().map_or(after, |(seq, _)| *seq);
            return Ok((rows, next));
        }
        let Some(from) = after.checked_add(1) else {
            return Ok((Vec::new(), after));
        };
        let (rows, last) =
            store.scan_articles(from, false, limit, SCAN_BUDGET, |j| filter.keeps(j))?;
        Ok((rows, last.unwrap_or(after)))
    })
    .await
}

/// `{"<name>": [records...], "next": SEQ}` from raw records.
pub(super) fn page_body(name: &str, rows: &[(u64, Vec<u8>)], extra: &str, next: u64) -> String {
    let mut body = String::with_capacity(rows.iter().map(|(_, v)| v.len() + 1).sum::<usize>() + 64);
    body.push('{');
    body.push_str(extra);
    body.push('"');
    body.push_str(name);
    body.push_str("\":[");
    for (i, (_, v)) in rows.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&String::from_utf8_lossy(v));
    }
    body.push_str("],\"next\":");
    body.push_str(&next.to_string());
    body.push('}');
    body
}

/// `GET /v1/articles?after&limit&feed&tag`.
pub(super) async fn list(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref(), &["after", "limit", "feed", "tag"])?;
    let after = params.seq("after")?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let filter = Filter::from_params(&state, &params)?;
    let (rows, next) = page(&state, filter, after, limit).await?;
    Ok(json(page_body("articles", &rows, "", next)))
}

/// `GET /v1/articles/{id}`.
pub(super) async fn one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let found = {
        let id = id.clone();
        blocking(&state, move || Ok(store.article_by_id(&id)?)).await?
    };
    match found {
        Some(v) => Ok(json(String::from_utf8_lossy(&v).into_owned())),
        None => Err(ApiError::not_found(format!("no article with id {id:?}"))),
    }
}

/// `GET /v1/duplicates?after&limit`.
pub(super) async fn duplicates(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref(), &["after", "limit"])?;
    let after = params.seq("after")?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let store = state.store.clone();
    let rows: Vec<(u64, Vec<u8>)> = blocking(&state, move || {
        Ok(store
            .duplicates_after(after, limit)?
            .into_iter()
            .map(|(seq, v)| (seq, v.to_vec()))
            .collect())
    })
    .await?;
    let next = rows.last().map_or(after, |(seq, _)| *seq);
    Ok(json(page_body("duplicates", &rows, "", next)))
}

/// `GET /v1/explain?target=ID_OR_URL`.
pub(super) async fn explain(
    State(state): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref(), &["target"])?;
    let Some(target) = params
        .get("target")
        .map(str::to_string)
        .filter(|t| !t.trim().is_empty())
    else {
        return Err(ApiError::bad_request(
            "target must name an item id or a URL",
        ));
    };
    let store = state.store.clone();
    let found = {
        let target = target.clone();
        blocking(&state, move || {
            Ok(crate::explain::explain(&store, &target)?)
        })
        .await?
    };
    match found {
        Some(e) => Ok(json(serde_json::to_string(&e).unwrap_or_default())),
        None => Err(ApiError::not_found(format!(
            "no stored article or duplicate matches {target:?}"
        ))),
    }
}
