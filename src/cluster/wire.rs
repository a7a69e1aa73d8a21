//! A poll report on the wire: what a fetcher publishes to [`super::POLLS`] and the sieve reads
//! back, with the entries' fingerprints, so the sieve (the one serial stage) does no per-item
//! text work. One report is one message, the unit the sieve commits (its entries and the feed's
//! new state in one batch), as in one process.
//!
//! The encoding is postcard (compact varints) after a version byte, in structs of this module's
//! own, so that the internal types can change without breaking a cluster whose processes run
//! different versions: a version this build does not know is refused with a clear error. A
//! report is 1.5 times the size of its texts; see the tests.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::FeedConfig;
use crate::dedup::clean::Boilerplate;
use crate::dedup::fingerprint::Fingerprint;
use crate::fetch::Validators;
use crate::parse::Candidate;
use crate::poll::{PollOutcome, PollReport};

/// The wire format's version, the message's first byte.
pub const VERSION: u8 = 1;

/// Why a message could not be read as a poll report.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Empty message.
    #[error("empty poll message")]
    Empty,
    /// Written by a feedsieve with another format.
    #[error(
        "poll message of format {0}; this feedsieve reads format {VERSION} (run one version across the cluster)"
    )]
    Version(u8),
    /// Damaged or not a poll report.
    #[error("unreadable poll message: {0}")]
    Decode(#[from] postcard::Error),
}

/// A time as seconds and nanoseconds since the epoch (exact, unlike milliseconds).
type Time = (i64, u32);

fn time(t: DateTime<Utc>) -> Time {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

fn from_time((s, n): Time) -> DateTime<Utc> {
    DateTime::from_timestamp(s, n).unwrap_or_default()
}

#[derive(Serialize, Deserialize)]
struct Report {
    feed: Feed,
    started: Time,
    elapsed: Duration,
    outcome: Outcome,
    next_fetch: Option<Time>,
    interval: Duration,
    backoff: Option<Duration>,
    moved_to: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Feed {
    url: String,
    name: Option<String>,
    interval: Option<Duration>,
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize)]
enum Outcome {
    NotModified {
        status: u16,
    },
    Fetched {
        status: u16,
        bytes: u64,
        etag: Option<String>,
        last_modified: Option<String>,
        entries: Vec<Entry>,
        boilerplate: Boilerplate,
    },
    Failed {
        status: Option<u16>,
        error: String,
    },
    Gone {
        error: String,
    },
    Deferred {
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Entry {
    feed: String,
    guid: String,
    url: Option<String>,
    title: String,
    published: Option<Time>,
    text: String,
    simhash: u64,
    content: u64,
    words: u32,
    short_marks: Vec<u64>,
    long_marks: Vec<u64>,
    anchors: Vec<u64>,
}

/// The message for `report`.
pub fn encode(report: &PollReport) -> Vec<u8> {
    let outcome = match &report.outcome {
        PollOutcome::NotModified { status } => Outcome::NotModified { status: *status },
        PollOutcome::Fetched {
            status,
            bytes,
            validators,
            entries,
            boilerplate,
        } => Outcome::Fetched {
            status: *status,
            bytes: *bytes as u64,
            etag: validators.etag.clone(),
            last_modified: validators.last_modified.clone(),
            entries: entries
                .iter()
                .map(|(c, fp)| Entry {
                    feed: c.feed.clone(),
                    guid: c.guid.clone(),
                    url: c.url.clone(),
                    title: c.title.clone(),
                    published: c.published.map(time),
                    text: c.text.clone(),
                    simhash: fp.simhash,
                    content: fp.content,
                    words: fp.words,
                    short_marks: fp.short_marks.clone(),
                    long_marks: fp.long_marks.clone(),
                    anchors: fp.anchors.clone(),
                })
                .collect(),
            boilerplate: boilerplate.clone(),
        },
        PollOutcome::Failed { status, error } => Outcome::Failed {
            status: *status,
            error: error.clone(),
        },
        PollOutcome::Gone { error } => Outcome::Gone {
            error: error.clone(),
        },
        PollOutcome::Deferred { reason } => Outcome::Deferred {
            reason: reason.clone(),
        },
    };
    let wire = Report {
        feed: Feed {
            url: report.feed.url.clone(),
            name: report.feed.name.clone(),
            interval: report.feed.interval,
            tags: report.feed.tags.clone(),
        },
        started: time(report.started),
        elapsed: report.elapsed,
        outcome,
        next_fetch: report.next_fetch.map(time),
        interval: report.interval,
        backoff: report.backoff,
        moved_to: report.moved_to.clone(),
    };
    let mut out = vec![VERSION];
    // Writing into a Vec cannot fail, and every field has a postcard encoding.
    out = postcard::to_extend(&wire, out).unwrap_or_else(|_| vec![VERSION]);
    out
}

/// The report in a message written by [`encode`].
pub fn decode(message: &[u8]) -> Result<PollReport, WireError> {
    let (&version, body) = message.split_first().ok_or(WireError::Empty)?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let wire: Report = postcard::from_bytes(body)?;
    let outcome = match wire.outcome {
        Outcome::NotModified { status } => PollOutcome::NotModified { status },
        Outcome::Fetched {
            status,
            bytes,
            etag,
            last_modified,
            entries,
            boilerplate,
        } => PollOutcome::Fetched {
            status,
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            validators: Validators {
                etag,
                last_modified,
            },
            entries: entries
                .into_iter()
                .map(|e| {
                    (
                        Candidate {
                            feed: e.feed,
                            guid: e.guid,
                            url: e.url,
                            title: e.title,
                            published: e.published.map(from_time),
                            text: e.text,
                        },
                        Fingerprint {
                            simhash: e.simhash,
                            content: e.content,
                            words: e.words,
                            short_marks: e.short_marks,
                            long_marks: e.long_marks,
                            anchors: e.anchors,
                        },
                    )
                })
                .collect(),
            boilerplate,
        },
        Outcome::Failed { status, error } => PollOutcome::Failed { status, error },
        Outcome::Gone { error } => PollOutcome::Gone { error },
        Outcome::Deferred { reason } => PollOutcome::Deferred { reason },
    };
    Ok(PollReport {
        feed: FeedConfig {
            url: wire.feed.url,
            name: wire.feed.name,
            interval: wire.feed.interval,
            tags: wire.feed.tags,
        },
        started: from_time(wire.started),
        elapsed: wire.elapsed,
        outcome,
        next_fetch: wire.next_fetch.map(from_time),
        interval: wire.interval,
        backoff: wire.backoff,
        moved_to: wire.moved_to,
    })
}

/// The `Nats-Msg-Id` of a report's message: its feed and when the poll started, so that the
/// broker drops a report published twice (a fetcher retrying after a lost ack). Another poll
/// is another report, even of an unchanged feed: the sieve records it (the feed's state) and
/// skips the entries it already has.
pub fn message_id(report: &PollReport) -> String {
    let (s, n) = time(report.started);
    format!("{:016x}-{s}.{n:09}", feed_hash(report))
}

/// The subject a report is published on: one per feed, under `feedsieve.polls.`.
pub fn subject(report: &PollReport) -> String {
    format!("feedsieve.polls.{:016x}", feed_hash(report))
}

fn feed_hash(report: &PollReport) -> u64 {
    xxhash_rust::xxh3::xxh3_64(report.feed.url.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::fingerprint::fingerprint_with;

    fn fetched_report(path: &str) -> PollReport {
        let body = std::fs::read(path).unwrap();
        let url = "http://127.0.0.2:8080/feed.xml";
        let parsed = crate::parse::parse_feed(&body, url, Some("application/rss+xml")).unwrap();
        let mut boilerplate = Boilerplate::default();
        boilerplate.learn(parsed.entries.iter().map(|c| c.text.as_str()));
        let entries = parsed
            .entries
            .into_iter()
            .map(|c| {
                let fp = fingerprint_with(&c.text, &boilerplate);
                (c, fp)
            })
            .collect();
        PollReport {
            feed: FeedConfig {
                url: url.to_string(),
                name: Some("Herald".to_string()),
                interval: Some(Duration::from_secs(600)),
                tags: vec!["world".to_string()],
            },
            started: DateTime::from_timestamp(1_764_150_000, 123_456_789).unwrap(),
            elapsed: Duration::from_micros(15_250),
            outcome: PollOutcome::Fetched {
                status: 200,
                bytes: body.len(),
                validators: Validators {
                    etag: Some("\"v1\"".to_string()),
                    last_modified: None,
                },
                entries,
                boilerplate,
            },
            next_fetch: DateTime::from_timestamp(1_764_150_600, 5),
            interval: Duration::from_secs(600),
            backoff: None,
            moved_to: None,
        }
    }

    #[test]
    fn a_report_reads_back_as_it_was_written() {
        let mut reports = vec![fetched_report("tests/data/feeds/herald.rss")];
        for outcome in [
            PollOutcome::NotModified { status: 304 },
            PollOutcome::Failed {
                status: Some(500),
                error: "fetch: the server answered 500".into(),
            },
            PollOutcome::Gone {
                error: "410 Gone".into(),
            },
            PollOutcome::Deferred {
                reason: "Retry-After".into(),
            },
        ] {
            let mut r = fetched_report("tests/data/feeds/herald.rss");
            r.outcome = outcome;
            r.backoff = Some(Duration::from_secs(60));
            r.moved_to = Some("https://example.org/new.xml".into());
            reports.push(r);
        }
        for r in reports {
            let back = decode(&encode(&r)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{r:?}"));
        }
    }

    #[test]
    fn a_report_is_compact() {
        let r = fetched_report("tests/data/feeds/herald.rss");
        let PollOutcome::Fetched { entries, .. } = &r.outcome else {
            unreachable!()
        };
        let text: usize = entries.iter().map(|(c, _)| c.text.len()).sum();
        let marks: usize = entries
            .iter()
            .map(|(_, f)| f.short_marks.len() + f.long_marks.len() + f.anchors.len())
            .sum();
        let size = encode(&r).len();
        // Marks are uniform 64-bit hashes: up to 10 bytes as varints.
        assert!(
            size <= text + marks * 10 + 1024,
            "{size} bytes for {text} of text"
        );
    }

    #[test]
    fn a_damaged_or_foreign_message_is_refused_with_a_reason() {
        let mut m = encode(&fetched_report("tests/data/feeds/herald.rss"));
        assert!(matches!(decode(&[]), Err(WireError::Empty)));
        m[0] = 9;
        let e = decode(&m).unwrap_err();
        assert!(e.to_string().contains("format 9"), "{e}");
        m[0] = VERSION;
        m.truncate(m.len() / 2);
        assert!(matches!(decode(&m), Err(WireError::Decode(_))));
    }

    #[test]
    fn a_report_sent_twice_has_one_message_id_and_another_poll_another() {
        let a = fetched_report("tests/data/feeds/herald.rss");
        let again = fetched_report("tests/data/feeds/herald.rss");
        assert_eq!(message_id(&a), message_id(&again));
        let mut later = fetched_report("tests/data/feeds/herald.rss");
        later.started += chrono::Duration::seconds(600);
        assert_ne!(message_id(&a), message_id(&later));
        let mut other = fetched_report("tests/data/feeds/herald.rss");
        other.feed.url.push_str("?other");
        assert_ne!(message_id(&a), message_id(&other));
        assert!(
            message_id(&a)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        );
    }
}
