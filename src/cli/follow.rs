//! `tail` and `consume`: the article log for scripts, as it grows.
//!
//! `tail` prints the newest articles (or those after `--after`), and with `--follow` goes on
//! printing each article as it is stored, across daemon restarts: while the daemon runs it reads
//! the daemon's event stream (resuming with `Last-Event-ID`), while it does not it reads the
//! store, then waits for a daemon to come back. Every article is printed once, in seq order.
//!
//! `consume NAME` prints the next batch after the named consumer's committed offset and commits
//! the batch only once it was written out, so that a reader killed mid-batch gets it again.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::read::{Client, Source, open};
use crate::api::consumers::valid_name;
use crate::app;
use crate::config::Config;

/// Articles `tail` prints when given no `--after`.
pub const TAIL_LINES: u64 = 10;
/// How often `tail --follow` looks for a daemon that is not running.
const RECHECK: Duration = Duration::from_secs(1);
/// Records per page.
const PAGE: usize = 1000;

/// Writes one record and its newline.
fn line(out: &mut impl Write, record: &[u8]) -> std::io::Result<()> {
    out.write_all(record)?;
    out.write_all(b"\n")
}

/// `feedsieve tail [--follow] [--after SEQ]`.
pub async fn tail(config: &Config, follow: bool, after: Option<u64>) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut cursor = after;
    loop {
        let source = match open(config, false) {
            Ok(source) => source,
            // A daemon stopping (it checkpoints after its API is gone) or starting, or another
            // command: a follower waits for it, however long.
            Err(e) if follow && e.downcast_ref::<super::read::Busy>().is_some() => {
                tokio::time::sleep(RECHECK).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        match source {
            Source::Empty => {
                cursor.get_or_insert(0);
            }
            Source::Local(store) => {
                let mut c = *cursor.get_or_insert(store.visible_seq().saturating_sub(TAIL_LINES));
                loop {
                    let rows = store.article_records_after(c, PAGE)?;
                    let Some((last, _)) = rows.last() else { break };
                    c = *last;
                    for (_, record) in &rows {
                        line(&mut out, record)?;
                    }
                    out.flush()?;
                }
                cursor = Some(c);
                // Let a daemon have the database.
                drop(store);
            }
            Source::Daemon(client) => {
                let c = match cursor {
                    Some(c) => c,
                    None => {
                        #[derive(Deserialize)]
                        struct Health {
                            #[serde(default)]
                            last_seq: u64,
                        }
                        let h: Health = client.get("/healthz").await?;
                        h.last_seq.saturating_sub(TAIL_LINES)
                    }
                };
                let c = if follow {
                    follow_stream(&client, c, &mut out).await?
                } else {
                    page_all(&client, c, &mut out).await?
                };
                cursor = Some(c);
                if follow {
                    // The stream ended: the daemon stopped. Read what it left, then wait.
                    continue;
                }
            }
        }
        if !follow {
            return Ok(());
        }
        wait_for_daemon(config).await;
    }
}

/// Waits until a live daemon has left its `daemon.json`.
async fn wait_for_daemon(config: &Config) {
    loop {
        tokio::time::sleep(RECHECK).await;
        if let Some(info) = app::read_daemon_info(&config.data_dir)
            && std::path::Path::new(&format!("/proc/{}", info.pid)).exists()
        {
            return;
        }
    }
}

#[derive(Deserialize)]
struct Page {
    articles: Vec<Box<RawValue>>,
    next: u64,
}

/// Prints every article after `after` from the daemon; returns the new cursor.
async fn page_all(client: &Client, mut after: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    loop {
        let page: Page = client
            .get(&format!("/v1/articles?after={after}&limit={PAGE}"))
            .await?;
        for r in &page.articles {
            line(out, r.get().as_bytes())?;
        }
        out.flush()?;
        if page.articles.is_empty() || page.next <= after {
            return Ok(after);
        }
        after = page.next;
    }
}

/// Prints the daemon's event stream from `after` until it ends; returns the last seq printed.
/// A connection that fails mid-stream ends it too: the caller decides what comes next.
async fn follow_stream(client: &Client, after: u64, out: &mut impl Write) -> anyhow::Result<u64> {
    let mut cursor = after;
    let response = match client
        .request(reqwest::Method::GET, "/v1/stream")
        .header("Last-Event-ID", after.to_string())
        .send()
        .await
    {
        Ok(r) => r,
        // The daemon is going away; the caller reads the store or waits.
        Err(_) => return Ok(cursor),
    };
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("the daemon's stream answered {status}: {body}");
    }
    let mut body = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut event = Event::default();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&raw);
            let text = text.trim_end_matches(['\n', '\r']);
            if let Some((seq, data)) = event.feed(text) {
                // A seq at or below the cursor was printed already (never expected; cheap).
                if seq > cursor {
                    line(out, data.as_bytes())?;
                    out.flush()?;
                    cursor = seq;
                }
            }
        }
    }
    Ok(cursor)
}

/// A server-sent event being read, line by line.
#[derive(Default)]
struct Event {
    name: String,
    id: Option<u64>,
    data: String,
}

impl Event {
    /// Takes one line; at the blank line that ends an `article` event, returns its seq and data.
    fn feed(&mut self, line: &str) -> Option<(u64, String)> {
        if line.is_empty() {
            let done = std::mem::take(self);
            return match (done.name.as_str(), done.id) {
                ("article", Some(id)) if !done.data.is_empty() => Some((id, done.data)),
                _ => None,
            };
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.name = value.to_string(),
            "id" => self.id = value.parse().ok(),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
        None
    }
}

/// `feedsieve consume NAME [--limit N]`.
pub async fn consume(config: &Config, name: &str, limit: usize) -> anyhow::Result<()> {
    valid_name(name).map_err(anyhow::Error::msg)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match open(config, false)? {
        Source::Empty => Ok(()),
        Source::Local(store) => {
            let offset = store.consumer_offset(name)?;
            let rows = store.article_records_after(offset, limit)?;
            for (_, record) in &rows {
                line(&mut out, record)?;
            }
            out.flush()?;
            if let Some((last, _)) = rows.last() {
                store.set_consumer_offset(name, *last)?;
            }
            Ok(())
        }
        Source::Daemon(client) => {
            let page: Page = client
                .get(&format!("/v1/consumers/{name}/next?limit={limit}"))
                .await?;
            for r in &page.articles {
                line(&mut out, r.get().as_bytes())?;
            }
            out.flush()?;
            if !page.articles.is_empty() {
                client
                    .call::<serde_json::Value>(client.json_request(
                        reqwest::Method::POST,
                        &format!("/v1/consumers/{name}/ack"),
                        &serde_json::json!({ "seq": page.next }),
                    ))
                    .await
                    .context("the batch was printed but could not be committed")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn events_are_read_line_by_line() {
        let mut e = Event::default();
        let mut got = Vec::new();
        for l in [
            ": heartbeat",
            "",
            "event: article",
            "id: 7",
            "data: {\"seq\":7}",
            "",
            "data: x",
            "",
        ] {
            if let Some(x) = e.feed(l) {
                got.push(x);
            }
        }
        assert_eq!(got, vec![(7, "{\"seq\":7}".to_string())]);
    }
}
