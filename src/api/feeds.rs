//! Feed management: the feed list with each feed's state, and feeds added, changed and removed at
//! run time (see [`crate::catalog`] for how they combine with the config file's).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, blocking, body, json};
use crate::catalog::{FeedPatch, NewFeed};

/// `GET /v1/feeds`: `{"feeds": [...]}`.
pub(super) async fn list(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let catalog = state.catalog.clone();
    let body = blocking(&state, move || {
        let states = catalog.states()?;
        let records: Vec<_> = states.iter().map(|(f, s)| f.record(s)).collect();
        Ok(serde_json::json!({ "feeds": records }).to_string())
    })
    .await?;
    Ok(json(body))
}

/// The record of one feed, by id or URL.
async fn record(state: &ApiState, id: String) -> Result<String, ApiError> {
    let catalog = state.catalog.clone();
    blocking(state, move || match catalog.state(&id)? {
        Some((feed, s)) => Ok(serde_json::to_string(&feed.record(&s)).unwrap_or_default()),
        None => Err(ApiError::not_found(format!(
            "no feed with id or URL {id:?}"
        ))),
    })
    .await
}

/// `GET /v1/feeds/{id}` (an id, or a percent-encoded URL).
pub(super) async fn one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(record(&state, id).await?))
}

/// `POST /v1/feeds` with `{"url", "name"?, "interval"?, "tags"?}`: 201 and the new feed.
pub(super) async fn add(State(state): State<ApiState>, raw: Bytes) -> Result<Response, ApiError> {
    let new: NewFeed = body(&raw)?;
    let catalog = state.catalog.clone();
    let feed = blocking(&state, move || Ok(catalog.add(new)?)).await?;
    let record = record(&state, feed.id).await?;
    Ok((StatusCode::CREATED, json(record)).into_response())
}

/// `PATCH /v1/feeds/{id}` with any of `name`, `interval`, `tags`.
pub(super) async fn update(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let patch: FeedPatch = body(&raw)?;
    let catalog = state.catalog.clone();
    let feed = blocking(&state, move || Ok(catalog.update(&id, patch)?)).await?;
    Ok(json(record(&state, feed.id).await?))
}

/// `DELETE /v1/feeds/{id}`: stops polling it; its articles stay.
pub(super) async fn remove(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let catalog = state.catalog.clone();
    let body = blocking(&state, move || {
        let feed = catalog.remove(&id)?;
        Ok(serde_json::json!({ "removed": { "id": feed.id, "url": feed.config.url } }).to_string())
    })
    .await?;
    Ok(json(body))
}
