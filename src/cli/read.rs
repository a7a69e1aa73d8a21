//! `articles`, `duplicates` and `feeds`: print stored records as NDJSON, whether or not the daemon
//! is running.
//!
//! sled admits one process. When the database is free the command opens it directly; when a
//! daemon holds it, the command reads `daemon.json` from the data directory and pages through the
//! daemon's API instead. Either way the lines printed are the stored records, byte for byte.

use std::io::Write;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::app::{self, DaemonInfo};
use crate::catalog::{self, Catalog, Feed, feed_id};
use crate::config::Config;
use crate::store::{self, FeedState, Store, StoreError};

/// How long a command waits for a database another command holds (without a daemon).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Records fetched per page, locally or from the API.
const PAGE: u64 = 1000;

/// Which ordered log to print.
#[derive(Debug, Clone, Copy)]
pub enum Log {
    /// Stored articles.
    Articles,
    /// Duplicate records.
    Duplicates,
}

impl Log {
    fn route(self) -> &'static str {
        match self {
            Log::Articles => "articles",
            Log::Duplicates => "duplicates",
        }
    }
}

/// Where records come from.
pub(super) enum Source {
    /// No database yet: nothing stored.
    Empty,
    /// The database, opened by this process.
    Local(Store),
    /// A running daemon's API.
    Daemon(Client),
}

/// An HTTP client for a running daemon's API.
pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// Starts a request to `path` with the token, when there is one.
    pub(super) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Starts a request to `path` carrying `body` as JSON.
    pub(super) fn json_request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::RequestBuilder {
        self.request(method, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }

    /// Sends `request` and reads its JSON answer; an error status becomes an error carrying the
    /// daemon's message.
    pub(super) async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let response = request
            .send()
            .await
            .with_context(|| format!("the daemon's API at {} did not answer", self.base))?;
        let url = response.url().to_string();
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("reading {url}"))?;
        if !status.is_success() {
            #[derive(Deserialize)]
            struct ApiError {
                error: String,
            }
            match serde_json::from_slice::<ApiError>(&body) {
                Ok(e) => bail!("the daemon answered {status}: {}", e.error),
                Err(_) => bail!(
                    "{url} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ),
            }
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("{url} sent JSON this feedsieve cannot read"))
    }

    /// GETs `path` and reads its JSON answer.
    pub(super) async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> anyhow::Result<T> {
        self.call(self.request(reqwest::Method::GET, path)).await
    }
}

/// The database is held by another feedsieve process that serves no API: a command, or a daemon
/// starting or stopping. `tail --follow` waits it out; other commands report it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database in {} is in use by another feedsieve process that serves no API; try again when it ends",
    .0.display()
)]
pub(super) struct Busy(std::path::PathBuf);

/// Opens the store, or finds the daemon that holds it. With `create`, a missing database is
/// created (for commands that write); without, it reads as empty.
pub(super) fn open(config: &Config, create: bool) -> anyhow::Result<Source> {
    if !create && !config.data_dir.join("db").exists() {
        return Ok(Source::Empty);
    }
    let options = store::Options {
        max_distance: config.dedup.max_distance,
        ..store::Options::default()
    };
    let started = std::time::Instant::now();
    let opened = loop {
        match Store::open(&config.data_dir, &options) {
            // Another short command (a script's `consume`, a `tail` between two reads) holds
            // the database for a moment: wait for it rather than fail.
            Err(StoreError::Locked { .. })
                if app::read_daemon_info(&config.data_dir).is_none()
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => break other,
        }
    };
    match opened {
        Ok(store) => Ok(Source::Local(store)),
        Err(StoreError::Locked { path }) => {
            let Some(DaemonInfo { listen, .. }) = app::read_daemon_info(&config.data_dir) else {
                return Err(Busy(path).into());
            };
            let host = if listen.ip().is_unspecified() {
                std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), listen.port())
            } else {
                listen
            };
            let http = reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(std::time::Duration::from_secs(5))
                .build()
                .context("cannot build an HTTP client")?;
            Ok(Source::Daemon(Client {
                http,
                base: format!("http://{host}"),
                token: app::read_token(config)?,
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens the store for reading, or finds the daemon that holds it.
fn source(config: &Config) -> anyhow::Result<Source> {
    open(config, false)
}

/// One page of a log from the API.
#[derive(Deserialize)]
struct ApiPage {
    #[serde(alias = "articles", alias = "duplicates")]
    records: Vec<Box<RawValue>>,
    next: u64,
}

/// Prints records of `log` with seq greater than `after`, at most `limit` of them.
pub async fn records(
    config: &Config,
    log: Log,
    after: u64,
    limit: Option<u64>,
) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut after = after;
    let mut left = limit.unwrap_or(u64::MAX);
    let source = source(config)?;
    while left > 0 {
        let want = left.min(PAGE);
        let (count, next) = match &source {
            Source::Empty => break,
            Source::Local(store) => {
                let rows: Vec<(u64, Vec<u8>)> = match log {
                    Log::Articles => store.article_records_after(after, want as usize)?,
                    Log::Duplicates => store
                        .duplicates_after(after, want as usize)?
                        .into_iter()
                        .map(|(s, v)| (s, v.to_vec()))
                        .collect(),
                };
                for (_, v) in &rows {
                    out.write_all(v)?;
                    out.write_all(b"\n")?;
                }
                (rows.len() as u64, rows.last().map_or(after, |(s, _)| *s))
            }
            Source::Daemon(client) => {
                let page: ApiPage = client
                    .get(&format!("/v1/{}?after={after}&limit={want}", log.route()))
                    .await?;
                for r in &page.records {
                    out.write_all(r.get().as_bytes())?;
                    out.write_all(b"\n")?;
                }
                (page.records.len() as u64, page.next)
            }
        };
        if count == 0 {
            break;
        }
        left -= count;
        after = next;
    }
    out.flush()?;
    Ok(())
}

/// Prints why the item named by `target` (an item id or a URL) was kept or suppressed.
pub async fn explain(config: &Config, target: &str) -> anyhow::Result<()> {
    let body = match source(config)? {
        Source::Empty => bail!("nothing is stored yet in {}", config.data_dir.display()),
        Source::Local(store) => match crate::explain::explain(&store, target)? {
            Some(e) => serde_json::to_string(&e)?,
            None => bail!("no stored article or duplicate matches {target:?}"),
        },
        Source::Daemon(client) => {
            let query: String = url::form_urlencoded::byte_serialize(target.as_bytes()).collect();
            let e: Box<RawValue> = client.get(&format!("/v1/explain?target={query}")).await?;
            e.get().to_string()
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    out.write_all(body.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Prints every feed (the config file's and those added at run time) with its state.
pub async fn feeds(config: &Config) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match source(config)? {
        Source::Empty => {
            for f in &config.feeds {
                let feed = Feed {
                    id: feed_id(&f.url),
                    source: catalog::Source::Config,
                    config: f.clone(),
                };
                let state = FeedState::pending(&f.url, f.name.as_deref().unwrap_or(&f.url));
                serde_json::to_writer(&mut out, &feed.record(&state))?;
                out.write_all(b"\n")?;
            }
        }
        Source::Local(store) => {
            for (feed, state) in Catalog::new(config.feeds.clone(), store).states()? {
                serde_json::to_writer(&mut out, &feed.record(&state))?;
                out.write_all(b"\n")?;
            }
        }
        Source::Daemon(client) => {
            #[derive(Deserialize)]
            struct Feeds {
                feeds: Vec<Box<RawValue>>,
            }
            let feeds: Feeds = client.get("/v1/feeds").await?;
            for f in feeds.feeds {
                out.write_all(f.get().as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
