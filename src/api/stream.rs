//! `GET /v1/stream`: the article log as server-sent events, live.
//!
//! Every client has its own cursor. New articles are read from the store once, by a [`Hub`] that
//! formats each as an event and keeps the latest few thousand in a ring; a client whose cursor is
//! in the ring takes the shared, ready-made events from it, so a hundred clients cost little more
//! than one. A client whose cursor is older (it connected with an old `after`, or it fell behind)
//! reads the store from its cursor, a batch at a time, until it reaches the ring. So a slow
//! client only falls behind: it never holds up ingestion or other clients, and it catches up from
//! the store. `id:` is the article's seq, so a client that reconnects with `Last-Event-ID`
//! (browsers do it by themselves) misses nothing and sees nothing twice. A comment line every
//! [`HEARTBEAT`] keeps proxies from closing a quiet stream.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::articles::{Filter, page};
use super::{ApiError, ApiState, Params, spawn_read};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Articles read from the store per step.
const BATCH: usize = 256;
/// How often a quiet stream sends a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Most clients streaming at once; more get 503.
pub const MAX_CLIENTS: i64 = 4096;
/// Events the hub keeps for clients that are caught up.
const RING: usize = 4096;

/// One article as an event, ready to send.
struct Frame {
    seq: u64,
    feed: Box<str>,
    bytes: Bytes,
}

/// Formats one stored record as an `article` event.
fn frame_bytes(seq: u64, record: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(record.len() + 40);
    out.extend_from_slice(b"event: article\nid: ");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Records are compact JSON: no raw newline can end the data line early.
    out.extend_from_slice(record);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Reads new articles once for every client: the ring of the latest events, and the seq of the
/// newest one in it.
pub struct Hub {
    ring: Mutex<VecDeque<Arc<Frame>>>,
    newest: watch::Sender<u64>,
    started: OnceLock<()>,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            ring: Mutex::new(VecDeque::with_capacity(RING)),
            newest: watch::Sender::new(0),
            started: OnceLock::new(),
        }
    }
}

#[derive(Deserialize)]
struct FeedField<'a> {
    #[serde(borrow)]
    feed: Cow<'a, str>,
}

impl Hub {
    /// Starts the reading task the first time a client connects.
    fn start(self: &Arc<Hub>, store: &Store, shutdown: &tokio_util::sync::CancellationToken) {
        self.started.get_or_init(|| {
            let hub = self.clone();
            let store = store.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { hub.run(store, shutdown).await });
        });
    }

    async fn run(self: Arc<Hub>, store: Store, shutdown: tokio_util::sync::CancellationToken) {
        let mut stored = store.watch_articles();
        let mut cursor = *stored.borrow_and_update();
        self.newest.send_replace(cursor);
        loop {
            let last = *stored.borrow_and_update();
            while cursor < last {
                let reader = store.clone();
                let after = cursor;
                let rows = match spawn_read(move || Ok(reader.article_records_after(after, BATCH)?))
                    .await
                {
                    Ok(rows) => rows,
                    Err(e) => {
                        warn!(error = ?e, "The stream hub could not read new articles.");
                        break;
                    }
                };
                let Some((newest, _)) = rows.last() else {
                    break;
                };
                let newest = *newest;
                {
                    let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
                    for (seq, record) in rows {
                        let feed = serde_json::from_slice::<FeedField>(&record)
                            .map(|f| f.feed.into_owned().into_boxed_str())
                            .unwrap_or_default();
                        if ring.len() == RING {
                            ring.pop_front();
                        }
                        ring.push_back(Arc::new(Frame {
                            seq,
                            feed,
                            bytes: frame_bytes(seq, &record),
                        }));
                    }
                }
                cursor = newest;
                self.newest.send_replace(cursor);
            }
            tokio::select! {
                changed = stored.changed() => if changed.is_err() { return },
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// The events after `after` that pass `filter`, from the ring: `None` when the ring does not
    /// reach back that far (the client reads the store), else the events (at most `limit`) and
    /// the seq the client has now seen up to.
    fn after(&self, after: u64, filter: &Filter, limit: usize) -> Option<(Vec<Bytes>, u64)> {
        let newest = *self.newest.borrow();
        if after >= newest {
            return Some((Vec::new(), after));
        }
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        match ring.front() {
            Some(f) if f.seq <= after + 1 => {}
            _ => return None,
        }
        let start = ring.partition_point(|f| f.seq <= after);
        let mut out = Vec::new();
        let mut seen = after;
        for f in ring.range(start..) {
            seen = f.seq;
            if filter.keeps_feed(&f.feed) {
                out.push(f.bytes.clone());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Some((out, seen))
    }
}

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
    newest: watch::Receiver<u64>,
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
    state.hub.start(&state.store, &state.shutdown);
    state.metrics.stream_clients(1);
    let cursor = Cursor {
        newest: state.hub.newest.subscribe(),
        _connected: Connected(state.metrics.clone()),
        state,
        filter,
        after,
    };
    debug!(after, "Stream client connected.");
    let body =
        futures_util::stream::unfold(cursor, step).map(Ok::<Bytes, std::convert::Infallible>);
    let mut response = Body::from_stream(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tell nginx not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The next chunk for one client: events after its cursor (from the ring or the store), or a
/// heartbeat when nothing came for [`HEARTBEAT`]. `None` ends the stream (shutdown, or a store
/// failure).
async fn step(mut c: Cursor) -> Option<(Bytes, Cursor)> {
    loop {
        if c.state.shutdown.is_cancelled() {
            return None;
        }
        // Mark the hub's position as seen before looking, so an article that arrives meanwhile
        // wakes the wait below.
        let newest = *c.newest.borrow_and_update();
        let events = match c.state.hub.after(c.after, &c.filter, BATCH) {
            Some((events, seen)) => {
                c.after = seen.max(c.after);
                events
            }
            None => {
                let before = c.after;
                let (rows, next) = match page(&c.state, c.filter.clone(), c.after, BATCH).await {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = ?e, "Stream client ended: the store could not be read.");
                        return None;
                    }
                };
                c.after = next.max(c.after);
                if rows.is_empty() && c.after == before {
                    // Nothing readable between the cursor and the ring (deleted articles):
                    // jump to the ring.
                    let ring_start = c
                        .state
                        .hub
                        .ring
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .front()
                        .map(|f| f.seq.saturating_sub(1));
                    c.after = c.after.max(ring_start.unwrap_or(newest));
                }
                rows.iter()
                    .map(|(seq, record)| frame_bytes(*seq, record))
                    .collect()
            }
        };
        if !events.is_empty() {
            let mut chunk = Vec::with_capacity(events.iter().map(Bytes::len).sum());
            for e in &events {
                chunk.extend_from_slice(e);
            }
            return Some((Bytes::from(chunk), c));
        }
        if c.after < newest {
            continue;
        }
        tokio::select! {
            changed = tokio::time::timeout(HEARTBEAT, c.newest.changed()) => match changed {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) => return Some((Bytes::from_static(b": keep-alive\n\n"), c)),
            },
            () = c.state.shutdown.cancelled() => return None,
        }
    }
}
