//! The HTTP API: stored articles, duplicates and feed states as JSON, for other programs and for
//! the CLI while the daemon holds the database.
//!
//! | route                          | answer                                              |
//! |--------------------------------|-----------------------------------------------------|
//! | `GET /v1/articles?after&limit` | `{"articles": [...], "next": SEQ}`                  |
//! | `GET /v1/articles/{id}`        | one article record                                  |
//! | `GET /v1/duplicates?after&limit` | `{"duplicates": [...], "next": SEQ}`              |
//! | `GET /v1/feeds`                | `{"feeds": [...]}`                                  |
//! | `GET /v1/explain?target=ID_OR_URL` | why an item was kept or suppressed (see [`crate::explain`]) |
//! | `GET /healthz`                 | `{"status": "ok"}`                                  |
//!
//! Records are served exactly as stored (the same bytes `feedsieve articles` prints). Paging is by
//! cursor: pass the answer's `next` as the following request's `after`. `limit` defaults to 100
//! and is capped at 1000. Bad parameters are 400 with `{"error": "..."}`, never 500.
//!
//! Off loopback, every request needs `Authorization: Bearer TOKEN` (the token file's content),
//! compared in constant time; without it the answer is 401.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::FeedConfig;
use crate::store::{FeedState, Store, StoreError};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    feeds: Arc<Vec<FeedConfig>>,
    token: Option<Arc<str>>,
}

impl ApiState {
    /// State over `store` for the configured `feeds`; `token`, when set, is required on every
    /// request.
    pub fn new(store: Store, feeds: Vec<FeedConfig>, token: Option<String>) -> ApiState {
        ApiState {
            store,
            feeds: Arc::new(feeds),
            token: token.map(Arc::from),
        }
    }
}

/// The router for all routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/articles", get(articles))
        .route("/v1/articles/{id}", get(article))
        .route("/v1/duplicates", get(duplicates))
        .route("/v1/feeds", get(feeds))
        .route("/v1/explain", get(explain))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// An API error: a status and a sentence, served as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Checks the bearer token when one is required.
async fn require_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "a valid bearer token is required".into(),
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

async fn healthz() -> Response {
    json(r#"{"status":"ok"}"#.to_string())
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such route".into(),
    }
}

/// `after` and `limit` from a query string.
fn paging(q: &HashMap<String, String>) -> Result<(u64, usize), ApiError> {
    let after = match q.get("after") {
        Some(v) => v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("after must be a sequence number, not {v:?}"))
        })?,
        None => 0,
    };
    let limit = match q.get("limit") {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(MAX_LIMIT),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a positive integer, not {v:?}"
                )));
            }
        },
        None => DEFAULT_LIMIT,
    };
    Ok((after, limit))
}

/// Reads a page of a seq-ordered log from the store: (seq, record) pairs.
type PageReader = fn(&Store, u64, usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

/// Serves a page of stored records as `{"<name>": [...], "next": SEQ}`.
async fn page(
    state: ApiState,
    q: HashMap<String, String>,
    name: &'static str,
    read: PageReader,
) -> Result<Response, ApiError> {
    let (after, limit) = paging(&q)?;
    let store = state.store.clone();
    let rows = tokio::task::spawn_blocking(move || read(&store, after, limit))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: e.to_string(),
        })??;
    let next = rows.last().map_or(after, |(seq, _)| *seq);
    let mut body = String::with_capacity(rows.iter().map(|(_, v)| v.len() + 1).sum::<usize>() + 32);
    body.push_str("{\"");
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
    Ok(json(body))
}

async fn articles(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    page(state, q, "articles", Store::article_records_after).await
}

async fn duplicates(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    page(state, q, "duplicates", |s, after, limit| {
        Ok(s.duplicates_after(after, limit)?
            .into_iter()
            .map(|(seq, v)| (seq, v.to_vec()))
            .collect())
    })
    .await
}

async fn article(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.article_by_id(&id)? {
        Some(v) => Ok(json(String::from_utf8_lossy(&v).into_owned())),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no article with id {id:?}"),
        }),
    }
}

async fn explain(
    State(state): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let Some(target) = q.get("target").filter(|t| !t.trim().is_empty()) else {
        return Err(ApiError::bad_request(
            "target must name an item id or a URL",
        ));
    };
    match crate::explain::explain(&state.store, target)? {
        Some(e) => Ok(json(serde_json::to_string(&e).unwrap_or_default())),
        None => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no stored article or duplicate matches {target:?}"),
        }),
    }
}

async fn feeds(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let list = state.store.feed_list(&state.feeds)?;
    let views: Vec<_> = list.iter().map(FeedState::public).collect();
    Ok(json(serde_json::json!({ "feeds": views }).to_string()))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
    }
}
