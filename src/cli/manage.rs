//! `feeds add`, `feeds remove`, `feeds import` and `feeds export`: manage the feeds added at run
//! time, whether or not the daemon runs (through its API when it does, so that its scheduler
//! hears of the change at once; in the store directly when it does not).

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::read::{Client, Source, open};
use crate::catalog::{self, Catalog, CatalogError, Feed, NewFeed, feed_id};
use crate::config::{Config, FeedConfig};
use crate::opml;

/// Percent-encodes `s` as one path segment.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a change goes.
enum Target {
    Local(Catalog),
    Daemon(Client),
}

fn target(config: &Config) -> anyhow::Result<Target> {
    match open(config, true)? {
        Source::Local(store) => Ok(Target::Local(Catalog::new(config.feeds.clone(), store))),
        Source::Daemon(client) => Ok(Target::Daemon(client)),
        Source::Empty => bail!(
            "cannot create the database in {}",
            config.data_dir.display()
        ),
    }
}

/// How an add went.
enum Added {
    /// Added: its record.
    Record(String),
    /// Already listed.
    Exists(String),
}

async fn add_one(target: &Target, new: NewFeed) -> anyhow::Result<Added> {
    match target {
        Target::Local(catalog) => match catalog.add(new) {
            Ok(feed) => {
                let state = catalog
                    .state(&feed.id)?
                    .map(|(_, s)| s)
                    .unwrap_or_else(|| crate::store::FeedState::pending(&feed.config.url, ""));
                Ok(Added::Record(serde_json::to_string(&feed.record(&state))?))
            }
            Err(e @ CatalogError::Exists { .. }) => Ok(Added::Exists(e.to_string())),
            Err(e) => Err(e.into()),
        },
        Target::Daemon(client) => {
            let body = serde_json::json!({
                "url": new.url,
                "name": new.name,
                "interval": new.interval,
                "tags": new.tags,
            });
            let response = client
                .json_request(reqwest::Method::POST, "/v1/feeds", &body)
                .send()
                .await
                .context("the daemon's API did not answer")?;
            let status = response.status();
            let text = response
                .text()
                .await
                .context("reading the daemon's answer")?;
            if status.is_success() {
                return Ok(Added::Record(text));
            }
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            if status == reqwest::StatusCode::CONFLICT {
                return Ok(Added::Exists(message));
            }
            bail!("the daemon answered {status}: {message}")
        }
    }
}

/// `feeds add URL [--name] [--interval] [--tag]...`: prints the new feed's record.
pub async fn add(config: &Config, new: NewFeed) -> anyhow::Result<()> {
    match add_one(&target(config)?, new).await? {
        Added::Record(record) => {
            println!("{record}");
            Ok(())
        }
        Added::Exists(message) => bail!("{message}"),
    }
}

/// `feeds remove URL_OR_ID`: stops polling a feed added at run time (its articles stay).
pub async fn remove(config: &Config, which: &str) -> anyhow::Result<()> {
    let removed = match target(config)? {
        Target::Local(catalog) => {
            let feed = catalog.remove(which)?;
            serde_json::json!({ "removed": { "id": feed.id, "url": feed.config.url } })
        }
        Target::Daemon(client) => {
            client
                .call::<serde_json::Value>(client.request(
                    reqwest::Method::DELETE,
                    &format!("/v1/feeds/{}", segment(which)),
                ))
                .await?
        }
    };
    println!("{removed}");
    Ok(())
}

/// `feeds import FILE.opml`: adds every feed of the file; prints the added feeds' records,
/// and a summary on stderr. Entries that cannot be added are reported and make the exit status
/// 1, after the others were added.
pub async fn import(config: &Config, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let outlines =
        opml::parse(&bytes).with_context(|| format!("cannot import {}", file.display()))?;
    let target = target(config)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut added, mut listed, mut refused) = (0, 0, Vec::new());
    for o in outlines {
        let url = o.url.clone();
        let new = NewFeed {
            url: o.url,
            name: o.name,
            interval: o.interval,
            tags: o.tags,
        };
        match add_one(&target, new).await {
            Ok(Added::Record(record)) => {
                added += 1;
                writeln!(out, "{record}")?;
            }
            Ok(Added::Exists(_)) => listed += 1,
            Err(e) => refused.push(format!("{url}: {e:#}")),
        }
    }
    out.flush()?;
    eprintln!(
        "feedsieve: {}: {added} feeds added, {listed} already listed, {} refused",
        file.display(),
        refused.len()
    );
    for r in &refused {
        eprintln!("feedsieve: refused: {r}");
    }
    if !refused.is_empty() {
        bail!(
            "{} entries of {} were not imported",
            refused.len(),
            file.display()
        );
    }
    Ok(())
}

/// A feed record as the API serves it, read back for `export`.
#[derive(Deserialize)]
struct Record {
    url: String,
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    source: Option<catalog::Source>,
}

/// `feeds export`: every feed (config file's and run time's) as OPML 2.0 on stdout.
pub async fn export(config: &Config) -> anyhow::Result<()> {
    let feeds: Vec<Feed> = match open(config, false)? {
        Source::Empty => config
            .feeds
            .iter()
            .map(|c| Feed {
                id: feed_id(&c.url),
                source: catalog::Source::Config,
                config: c.clone(),
            })
            .collect(),
        Source::Local(store) => Catalog::new(config.feeds.clone(), store).list()?,
        Source::Daemon(client) => {
            #[derive(Deserialize)]
            struct Feeds {
                feeds: Vec<Box<RawValue>>,
            }
            let page: Feeds = client.get("/v1/feeds").await?;
            let mut feeds = Vec::new();
            for raw in page.feeds {
                let r: Record = serde_json::from_str(raw.get())
                    .context("the daemon sent a feed record this feedsieve cannot read")?;
                let interval = r
                    .interval
                    .as_deref()
                    .map(crate::config::parse_duration)
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                feeds.push(Feed {
                    id: feed_id(&r.url),
                    source: r.source.unwrap_or(catalog::Source::Api),
                    config: FeedConfig {
                        name: (r.name != r.url).then_some(r.name),
                        url: r.url,
                        interval,
                        tags: r.tags,
                    },
                });
            }
            feeds
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(opml::write(&feeds, "feedsieve subscriptions").as_bytes())?;
    out.flush()?;
    Ok(())
}
