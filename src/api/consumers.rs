//! Named consumers with durable offsets (at-least-once delivery).
//!
//! A consumer asks for the articles after its committed offset (`next`), handles them, then
//! commits the last seq it handled (`ack`). Until it commits, `next` hands it the same batch
//! again, so a worker that dies mid-batch loses nothing. Offsets live in the store and survive
//! restarts. Committing a smaller seq rewinds the consumer; a seq past the newest article is
//! refused.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Deserialize;

use super::articles::{Filter, page, page_body};
use super::{ApiError, ApiState, DEFAULT_LIMIT, MAX_LIMIT, Params, blocking, body, json};

/// Checks a consumer name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "consumer names are 1 to 64 letters, digits, '.', '_' or '-', not {name:?}"
        ));
    }
    Ok(())
}

fn name_ok(name: &str) -> Result<(), ApiError> {
    valid_name(name).map_err(ApiError::bad_request)
}

/// `GET /v1/consumers`: every consumer, its offset, and how far behind it is.
pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let (offsets, last) = blocking(&state, move || {
        Ok((store.consumer_offsets()?, store.visible_seq()))
    })
    .await?;
    let consumers: Vec<_> = offsets
        .iter()
        .map(|(name, offset)| {
            serde_json::json!({
                "name": name,
                "offset": offset,
                "lag": last.saturating_sub(*offset),
            })
        })
        .collect();
    Ok(json(
        serde_json::json!({ "consumers": consumers }).to_string(),
    ))
}

/// `GET /v1/consumers/{name}/next?limit`: the articles after the committed offset.
pub(super) async fn next(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    name_ok(&name)?;
    let params = Params::parse(q.as_deref(), &["limit"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let store = state.store.clone();
    let offset = {
        let name = name.clone();
        blocking(&state, move || Ok(store.consumer_offset(&name)?)).await?
    };
    let (rows, next) = page(&state, Filter::default(), offset, limit).await?;
    let extra = format!(
        "\"consumer\":{},\"offset\":{offset},",
        serde_json::to_string(&name).unwrap_or_default()
    );
    Ok(json(page_body("articles", &rows, &extra, next)))
}

/// The body of an ack.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    seq: u64,
}

/// `POST /v1/consumers/{name}/ack` with `{"seq": N}`: commits the offset.
pub(super) async fn ack(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    name_ok(&name)?;
    let Ack { seq } = body(&raw)?;
    let store = state.store.clone();
    let answer = name.clone();
    blocking(&state, move || {
        let last = store.visible_seq();
        if seq > last {
            return Err(ApiError::bad_request(format!(
                "seq {seq} is past the newest article ({last})"
            )));
        }
        store.set_consumer_offset(&name, seq)?;
        Ok(())
    })
    .await?;
    Ok(json(
        serde_json::json!({ "consumer": answer, "offset": seq }).to_string(),
    ))
}
