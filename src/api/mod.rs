//! The HTTP API: the clean stream for other programs (pages, a live event stream, named consumers
//! with durable offsets, Atom and JSON Feed re-exports), feed management at run time, metrics.
//!
//! | route                                   | answer                                          |
//! |-----------------------------------------|-------------------------------------------------|
//! | `GET /v1/articles?after&limit&feed&tag` | `{"articles": [...], "next": SEQ}`              |
//! | `GET /v1/articles/{id}`                 | one article record                              |
//! | `GET /v1/duplicates?after&limit`        | `{"duplicates": [...], "next": SEQ}`            |
//! | `GET /v1/stream?after&feed&tag`         | server-sent events, one `article` event each    |
//! | `GET /v1/consumers`                     | `{"consumers": [{"name", "offset", "lag"}]}`    |
//! | `GET /v1/consumers/{name}/next?limit`   | `{"consumer", "offset", "articles", "next"}`    |
//! | `POST /v1/consumers/{name}/ack`         | `{"seq": N}` commits; `{"consumer", "offset"}`  |
//! | `GET /v1/feeds`, `GET /v1/feeds/{id}`   | feed records (state, `id`, `source`, `tags`)    |
//! | `POST /v1/feeds`, `PATCH`/`DELETE /v1/feeds/{id}` | feeds added at run time             |
//! | `GET /v1/feed.atom`, `GET /v1/feed.json` | the newest articles as Atom 1.0 / JSON Feed 1.1 |
//! | `GET /v1/explain?target=ID_OR_URL`      | why an item was kept or suppressed              |
//! | `GET /v1/openapi.json`                  | this API as an OpenAPI 3.1 document             |
//! | `GET /metrics`, `GET /healthz`          | Prometheus text; `{"status": "ok", "last_seq"}` |
//!
//! Records are served exactly as stored (the bytes `feedsieve articles` prints). Paging is by
//! cursor: pass the answer's `next` as the following request's `after`. Bad parameters are 400
//! with `{"error": "..."}`, never 500.
//!
//! Auth: every request that changes something (any method but GET and HEAD) needs
//! `Authorization: Bearer TOKEN`, the content of `api.token_file`; off loopback, every request
//! does. Tokens are compared in constant time. Without a valid one the answer is 401.

mod articles;
pub mod consumers;
mod export;
mod feeds;
mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, CatalogError};
use crate::store::{Store, StoreError};
use crate::telemetry::{Metrics, Series};

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

/// The OpenAPI document served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    catalog: Arc<Catalog>,
    metrics: Arc<Metrics>,
    token: Option<Arc<str>>,
    token_for_reads: bool,
    shutdown: CancellationToken,
    hub: Arc<stream::Hub>,
    readers: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    /// State over `store` and `catalog`. `token` is required for changes, and for every request
    /// when `token_for_reads` (off loopback).
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        token: Option<String>,
        token_for_reads: bool,
    ) -> ApiState {
        ApiState {
            store,
            catalog,
            metrics: Arc::new(Metrics::default()),
            token: token.map(Arc::from),
            token_for_reads,
            shutdown: CancellationToken::new(),
            hub: Arc::new(stream::Hub::default()),
            readers: Arc::new(tokio::sync::Semaphore::new(reader_threads())),
        }
    }

    /// Serves `metrics` at `/metrics` (the registry the pipeline records into).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> ApiState {
        self.metrics = metrics;
        self
    }

    /// Ends live streams when `shutdown` is cancelled, so that a graceful stop does not wait for
    /// clients that never hang up.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> ApiState {
        self.shutdown = shutdown;
        self
    }
}

/// Requests that may read the store at once: one core's worth less than the machine has, at
/// least one, so that the sieve always has a core.
fn reader_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// The router for all routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/articles", get(articles::list))
        .route("/v1/articles/{id}", get(articles::one))
        .route("/v1/duplicates", get(articles::duplicates))
        .route("/v1/explain", get(articles::explain))
        .route("/v1/stream", get(stream::stream))
        .route("/v1/consumers", get(consumers::list))
        .route("/v1/consumers/{name}/next", get(consumers::next))
        .route("/v1/consumers/{name}/ack", post(consumers::ack))
        .route("/v1/feeds", get(feeds::list).post(feeds::add))
        .route(
            "/v1/feeds/{id}",
            get(feeds::one).patch(feeds::update).delete(feeds::remove),
        )
        .route("/v1/feed.atom", get(export::atom))
        .route("/v1/feed.json", get(export::json_feed))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    fn internal(message: impl ToString) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        // The disk refused a read or write, or the store is being reopened after one: the
        // daemon is recovering, so the answer is "try again", not a bug.
        if e.is_io() || matches!(e, StoreError::Reopening(_)) {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
        ApiError::internal(e)
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        let status = match &e {
            CatalogError::Invalid(_) => StatusCode::BAD_REQUEST,
            CatalogError::Exists { .. } | CatalogError::FromConfig(_) => StatusCode::CONFLICT,
            CatalogError::NotFound(_) => StatusCode::NOT_FOUND,
            CatalogError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// A JSON answer from an already serialized body.
fn json(body: impl Into<String>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// Runs blocking store work off the async threads.
async fn spawn_read<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await?
}

/// Runs a request's blocking store work off the async threads, a few requests at a time: readers
/// hammering the API queue here instead of crowding the sieve off the CPU, so ingestion keeps
/// its pace under any read load.
async fn blocking<T: Send + 'static>(
    state: &ApiState,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = state.readers.acquire().await.map_err(ApiError::internal)?;
    spawn_read(work).await
}

/// Checks the bearer token where one is required.
async fn require_token(
    State(state): State<ApiState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if !(changes || state.token_for_reads) {
        return next.run(request).await;
    }
    let Some(token) = &state.token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "changes through the API need a bearer token: set api.token_file in the config",
        )
        .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required (Authorization: Bearer <content of api.token_file>)",
        )
        .into_response();
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

/// `{"status": "ok", "last_seq": N}`: alive, and the newest article's seq.
async fn healthz(State(state): State<ApiState>) -> Response {
    let last = *state.store.watch_articles().borrow();
    // Reads go on while the disk refuses writes, so the daemon is up, but degraded.
    let (status, writable) = if state.store.is_writable() {
        ("ok", true)
    } else {
        ("degraded", false)
    };
    json(format!(
        r#"{{"status":"{status}","last_seq":{last},"writable":{writable}}}"#
    ))
}

async fn openapi() -> Response {
    json(OPENAPI)
}

async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let catalog = state.catalog.clone();
    let (last, disk, feeds, consumers) = blocking(&state, move || {
        Ok((
            store.last_article_seq()?,
            store.size_on_disk()?,
            catalog.states()?,
            store.consumer_offsets()?.len(),
        ))
    })
    .await?;
    let mut by_status: std::collections::BTreeMap<&'static str, u64> =
        ["pending", "ok", "not_modified", "error", "gone"]
            .into_iter()
            .map(|s| (s, 0))
            .collect();
    let mut duplicates = Vec::with_capacity(feeds.len());
    let mut articles = Vec::with_capacity(feeds.len());
    for (feed, state) in &feeds {
        *by_status.entry(state.status.as_str()).or_default() += 1;
        let labels = vec![("feed", feed.config.url.clone())];
        duplicates.push((labels.clone(), state.duplicates as f64));
        articles.push((labels, state.articles as f64));
    }
    let in_error = by_status["error"] + by_status["gone"];
    let body = state.metrics.render(
        &[
            (
                "feedsieve_last_article_seq",
                "Sequence number of the newest stored article.",
                last as f64,
            ),
            (
                "feedsieve_feeds",
                "Feeds polled (config file and run time).",
                feeds.len() as f64,
            ),
            (
                "feedsieve_feeds_in_error",
                "Feeds whose last poll failed, or that are gone.",
                in_error as f64,
            ),
            (
                "feedsieve_consumers",
                "Named consumers with a committed offset.",
                consumers as f64,
            ),
            (
                "feedsieve_database_bytes",
                "Bytes the database takes on disk.",
                disk as f64,
            ),
            (
                "feedsieve_store_writable",
                "1 while the database takes writes; 0 from a refused write (a full disk) until it was reopened.",
                if state.store.is_writable() { 1.0 } else { 0.0 },
            ),
        ],
        &[
            Series {
                name: "feedsieve_feeds_by_status",
                help: "Feeds by the status of their last poll.",
                kind: "gauge",
                points: by_status
                    .into_iter()
                    .map(|(s, n)| (vec![("status", s.to_string())], n as f64))
                    .collect(),
            },
            Series {
                name: "feedsieve_feed_articles_total",
                help: "Articles stored, by feed.",
                kind: "counter",
                points: articles,
            },
            Series {
                name: "feedsieve_feed_duplicates_total",
                help: "Duplicates dropped, by feed.",
                kind: "counter",
                points: duplicates,
            },
        ],
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /v1/openapi.json)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method (see /v1/openapi.json)",
    )
}

/// A request's query parameters, checked against the names a route accepts.
struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `raw`; a parameter the route does not take is a 400 naming the ones it does.
    fn parse(raw: Option<&str>, accepted: &[&str]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        if let Some((k, _)) = pairs.iter().find(|(k, _)| !accepted.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "unknown parameter {k:?}; this route takes {}",
                if accepted.is_empty() {
                    "none".to_string()
                } else {
                    accepted.join(", ")
                }
            )));
        }
        Ok(Params(pairs))
    }

    /// The last value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A sequence number (`after`), 0 when absent.
    fn seq(&self, name: &str) -> Result<u64, ApiError> {
        match self.get(name) {
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("{name} must be a sequence number, not {v:?}"))
            }),
            None => Ok(0),
        }
    }

    /// A page size between 1 and `max`, `default` when absent.
    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(n.min(max)),
                _ => Err(ApiError::bad_request(format!(
                    "limit must be a positive integer, not {v:?}"
                ))),
            },
            None => Ok(default),
        }
    }
}

/// Reads a JSON request body into `T`; anything wrong is a 400 saying what.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::bad_request(format!("the body must be JSON: {}", e.inner()))
        } else {
            ApiError::bad_request(format!("the body's {path}: {}", e.inner()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn params_are_checked() {
        let p = Params::parse(
            Some("after=5&limit=9&tag=a&tag=b%20c"),
            &["after", "limit", "tag"],
        )
        .unwrap();
        assert_eq!(p.seq("after").unwrap(), 5);
        assert_eq!(p.limit(100, 1000).unwrap(), 9);
        assert_eq!(p.all("tag"), ["a", "b c"]);
        assert!(Params::parse(Some("afterr=5"), &["after"]).is_err());
        let p = Params::parse(Some("after=-1&limit=0"), &["after", "limit"]).unwrap();
        assert!(p.seq("after").is_err());
        assert!(p.limit(100, 1000).is_err());
    }

    #[test]
    fn the_openapi_document_is_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
