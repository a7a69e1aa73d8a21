//! The sieve's outbox: every unique article it stored, in order, published to
//! [`super::ARTICLES`], and every duplicate record to [`super::DUPLICATES`], for consumers on
//! any NATS client.
//!
//! Where to resume is read from the streams themselves: each message carries its record's seq
//! in a [`SEQ_HEADER`] header, and an outbox starts after the seq of the last message in each
//! stream. So a sieve that restarts, or a standby that takes over with the same records,
//! publishes nothing twice and skips nothing, with no cursor of its own to lose; and each
//! message's `Nats-Msg-Id` is the record's id, so that even a publish repeated within the
//! broker's duplicate window (an ack lost in a failover) is dropped.
//!
//! Records are published as stored, the NDJSON line of `feedsieve articles` without
//! `also_seen` (which grows later): a consumer learns of later copies from the duplicates
//! stream, whose records name the article they repeat.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use serde::Deserialize;

use super::{ARTICLES, ClusterError, DUPLICATES};
use crate::store::Store;

/// Header holding a message's record seq.
pub const SEQ_HEADER: &str = "Feedsieve-Seq";
/// Subject of the articles stream.
pub const ARTICLES_SUBJECT: &str = "feedsieve.articles";
/// Subject of the duplicates stream.
pub const DUPLICATES_SUBJECT: &str = "feedsieve.duplicates";
/// Records read from the store and published per round trip.
const BATCH: usize = 256;

/// What one [`Outbox::publish`] sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Articles published.
    pub articles: usize,
    /// Duplicate records published.
    pub duplicates: usize,
}

/// Publishes what the store holds past the streams' last messages.
pub struct Outbox {
    js: jetstream::Context,
    /// The seq of the last article in the stream.
    articles_after: u64,
    /// The seq of the last duplicate record in the stream.
    duplicates_after: u64,
}

#[derive(Deserialize)]
struct Id<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
}

impl Outbox {
    /// An outbox resuming after the last message of each stream.
    pub async fn open(js: jetstream::Context) -> Result<Outbox, ClusterError> {
        let articles_after = last_seq(&js, ARTICLES, ARTICLES_SUBJECT).await?;
        let duplicates_after = last_seq(&js, DUPLICATES, DUPLICATES_SUBJECT).await?;
        Ok(Outbox {
            js,
            articles_after,
            duplicates_after,
        })
    }

    /// An outbox that starts after the given seqs whatever the streams hold (for tests of the
    /// broker's duplicate window, and for republishing on purpose).
    pub fn starting_after(js: jetstream::Context, articles: u64, duplicates: u64) -> Outbox {
        Outbox {
            js,
            articles_after: articles,
            duplicates_after: duplicates,
        }
    }

    /// The seq of the last article published.
    pub fn articles_after(&self) -> u64 {
        self.articles_after
    }

    /// Publishes every article and duplicate record readers of `store` can see that the
    /// streams do not have yet, in seq order, waiting for the broker's acks.
    pub async fn publish(&mut self, store: &Store) -> Result<Published, ClusterError> {
        let articles = drain(
            &self.js,
            (ARTICLES, ARTICLES_SUBJECT),
            &mut self.articles_after,
            |after| store.articles_after(after, BATCH),
        )
        .await?;
        let duplicates = drain(
            &self.js,
            (DUPLICATES, DUPLICATES_SUBJECT),
            &mut self.duplicates_after,
            |after| store.duplicates_after(after, BATCH),
        )
        .await?;
        Ok(Published {
            articles,
            duplicates,
        })
    }
}

/// Publishes the records `read` gives after `cursor`, a batch at a time, moving `cursor` past
/// each batch the broker acknowledged; returns how many.
async fn drain(
    js: &jetstream::Context,
    (stream, subject): (&'static str, &'static str),
    cursor: &mut u64,
    read: impl Fn(u64) -> Result<Vec<(u64, sled::IVec)>, crate::store::StoreError>,
) -> Result<usize, ClusterError> {
    let mut done = 0;
    loop {
        let rows = read(*cursor).map_err(|e| publish_error(stream, e.to_string()))?;
        let Some(&(last, _)) = rows.last() else {
            return Ok(done);
        };
        done += rows.len();
        send(js, stream, subject, rows).await?;
        *cursor = last;
    }
}

/// Publishes one batch, all in flight at once, then waits for every ack.
async fn send(
    js: &jetstream::Context,
    stream: &'static str,
    subject: &'static str,
    rows: Vec<(u64, sled::IVec)>,
) -> Result<(), ClusterError> {
    let mut acks = Vec::with_capacity(rows.len());
    for (seq, record) in rows {
        let id: Id<'_> = serde_json::from_slice(&record)
            .map_err(|e| publish_error(stream, format!("record {seq}: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id.id.as_ref());
        headers.insert(SEQ_HEADER, seq.to_string().as_str());
        let ack = js
            .publish_with_headers(subject, headers, bytes::Bytes::from(record.to_vec()))
            .await
            .map_err(|e| publish_error(stream, e.to_string()))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await
            .map_err(|e| publish_error(stream, e.to_string()))?;
    }
    Ok(())
}

fn publish_error(name: &'static str, message: String) -> ClusterError {
    ClusterError::Publish { name, message }
}

/// The record seq in the last message of `name`, 0 when it is empty.
async fn last_seq(
    js: &jetstream::Context,
    name: &'static str,
    subject: &str,
) -> Result<u64, ClusterError> {
    let s = js
        .get_stream(name)
        .await
        .map_err(|e| publish_error(name, e.to_string()))?;
    match s.get_last_raw_message_by_subject(subject).await {
        Ok(m) => m
            .headers
            .get(SEQ_HEADER)
            .and_then(|v| v.as_str().parse().ok())
            .ok_or_else(|| {
                publish_error(name, format!("its last message has no {SEQ_HEADER} header"))
            }),
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
        Err(e) => Err(publish_error(name, e.to_string())),
    }
}
