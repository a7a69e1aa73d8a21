//! `GET /v1/stream`: the article log as server-sent events, live.
//!
//! Each client has its own cursor and reads the store from it, a batch at a time, then waits for
//! the sieve's next stored article. A slow client only falls behind: it never holds up ingestion
//! or other clients, and it catches up from the store. `id:` is the article's seq, so a client
//! that reconnects with `Last-Event-ID` (browsers do it by themselves) misses nothing and sees
//! nothing twice. Heartbeat comments keep proxies from closing a quiet stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tracing::{debug, warn};

use super::articles::{Filter, page};
use super::{ApiError, ApiState, Params};
use crate::telemetry::Metrics;

/// Articles read from the store per step.
const BATCH: usize = 256;
/// How often a quiet stream sends a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Most clients streaming at once; more get 503.
pub const MAX_CLIENTS: i64 = 4096;

/// Counts a client in `feedsieve_stream_clients` while it is connected.
struct Connected(Arc<Metrics>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.stream_clients(-1);
    }
}

/// One client's position.
struct Cursor {
    state: ApiState,
    filter: Filter,
    after: u64,
    stored: tokio::sync::watch::Receiver<u64>,
    _connected: Connected,
}

/// `GET /v1/stream?after&feed&tag`, resumable with `Last-Event-ID`.
pub(super) async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref(), &["after", "feed", "tag"])?;
    // A reconnecting client's Last-Event-ID wins over the `after` of the URL it reuses.
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Last-Event-ID must be an article seq, not {:?}",
                    String::from_utf8_lossy(v.as_bytes())
                ))
            })?,
        None => params.seq("after")?,
    };
    let filter = Filter::from_params(&state, &params)?;
    if state.metrics.stream_clients_now() >= MAX_CLIENTS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_CLIENTS} clients are streaming already; page /v1/articles instead"),
        ));
    }
    state.metrics.stream_clients(1);
    let cursor = Cursor {
        stored: state.store.watch_articles(),
        _connected: Connected(state.metrics.clone()),
        state,
        filter,
        after,
    };
    debug!(after, "Stream client connected.");
    let events = futures_util::stream::unfold(cursor, step).flatten();
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response())
}

type Batch = futures_util::stream::Iter<std::vec::IntoIter<Result<Event, Infallible>>>;

/// The next batch of events for one client: what the store has after its cursor, or, when it has
/// caught up, what comes next. `None` ends the stream (shutdown, or a store failure).
async fn step(mut c: Cursor) -> Option<(Batch, Cursor)> {
    loop {
        if c.state.shutdown.is_cancelled() {
            return None;
        }
        // Mark what is stored now as seen before reading, so an article stored during the read
        // wakes the wait below.
        let last = *c.stored.borrow_and_update();
        let before = c.after;
        let (rows, next) = match page(&c.state, c.filter.clone(), c.after, BATCH).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = ?e, "Stream client ended: the store could not be read.");
                return None;
            }
        };
        c.after = next.max(c.after);
        if !rows.is_empty() {
            let events: Vec<Result<Event, Infallible>> = rows
                .into_iter()
                .map(|(seq, record)| {
                    Ok(Event::default()
                        .event("article")
                        .id(seq.to_string())
                        .data(String::from_utf8_lossy(&record)))
                })
                .collect();
            return Some((futures_util::stream::iter(events), c));
        }
        if c.after > before && c.after < last {
            // A filtered scan stopped at its budget: go on reading.
            continue;
        }
        tokio::select! {
            changed = c.stored.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            () = c.state.shutdown.cancelled() => return None,
        }
    }
}
