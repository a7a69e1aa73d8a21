//! `inspect FILE_OR_URL`: parse one feed and print its normalized entries as NDJSON, storing
//! nothing. The operator's tool for "what does feedsieve make of this feed?".
//!
//! # Format
//! One line per entry: the candidate's `feed`, `guid`, `url`, `title`, `published`, `text`, plus
//! `words` and `simhash` (16 hex digits), the values dedup will compare.

use std::io::Write;

use anyhow::Context;
use serde::Serialize;

use crate::config::{self, Config, PollConfig};
use crate::dedup::fingerprint::fingerprint;
use crate::fetch::{Fetched, Fetcher, Reuse, Validators};
use crate::parse::{Candidate, parse_feed};

#[derive(Serialize)]
struct Inspected<'a> {
    #[serde(flatten)]
    candidate: &'a Candidate,
    words: u32,
    simhash: String,
}

/// Parses `target` (a path or an http(s)/file URL) and prints its entries.
pub async fn run(config: Option<&Config>, target: &str) -> anyhow::Result<()> {
    let poll = config.map_or_else(PollConfig::default, |c| c.poll.clone());
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let url = config::feed_url(target, &cwd).map_err(|m| anyhow::anyhow!("{target}: {m}"))?;
    let fetcher = Fetcher::new(&poll)?;
    let body = match fetcher
        .fetch(&url, &Validators::default(), Reuse::Close)
        .await?
    {
        Fetched::Body { body, .. } => body,
        Fetched::NotModified { .. } => {
            anyhow::bail!("{url}: the server answered 304 to an unconditional request")
        }
    };
    let feed = parse_feed(&body, &url, None).with_context(|| url.clone())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for c in &feed.entries {
        let fp = fingerprint(&c.text);
        let line = Inspected {
            candidate: c,
            words: fp.words,
            simhash: format!("{:016x}", fp.simhash),
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
