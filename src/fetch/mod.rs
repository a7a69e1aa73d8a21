//! Fetch: one conditional GET of one feed, with every limit enforced while the bytes arrive.
//!
//! In: a feed URL and the validators saved from its last 200. Out: [`Fetched::NotModified`] (a
//! 304: nothing to parse) or [`Fetched::Body`] with the raw bytes and the new validators, else a
//! [`FetchError`] whose message is one sentence naming the stage (`fetch: ...`).
//!
//! HTTP goes through one shared reqwest client (rustls, gzip/brotli/deflate, connection pooling)
//! that names feedsieve and its version in `User-Agent`. The connect timeout and the whole-request
//! timeout come from `[poll]`; the body cap is checked against `Content-Length` first and then
//! counted chunk by chunk, so a server that lies about the length or streams forever is cut off
//! at the cap, not after it.
//!
//! `file://` URLs are read from disk under the same cap; their validator is the file's size and
//! modification time, so an unchanged file is "not modified" just like a 304.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use crate::config::PollConfig;

/// The `User-Agent` feedsieve sends.
pub const USER_AGENT: &str = concat!(
    "feedsieve/",
    env!("CARGO_PKG_VERSION"),
    " (feed deduplicating daemon)"
);

const ACCEPT_FEEDS: &str = "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8";

/// What the last successful fetch said about the feed's version, sent back next time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` header.
    pub etag: Option<String>,
    /// The `Last-Modified` header.
    pub last_modified: Option<String>,
}

/// A fetch that reached the server and got an answer worth keeping.
#[derive(Debug)]
pub enum Fetched {
    /// 304 Not Modified (or an unchanged file): nothing to parse.
    NotModified {
        /// The HTTP status (304; 0 for files).
        status: u16,
    },
    /// A body to parse.
    Body {
        /// The HTTP status (200; 0 for files).
        status: u16,
        /// The raw (decompressed) bytes.
        body: Bytes,
        /// Validators to send next time.
        validators: Validators,
    },
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with an error status.
    #[error("fetch: the server answered {status}")]
    Status {
        /// The status, with its reason phrase.
        status: StatusCode,
    },
    /// The body is larger than `poll.max_body`.
    #[error("fetch: the body is larger than the {limit}-byte limit (poll.max_body)")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// No answer within `poll.timeout` (or `poll.connect_timeout`).
    #[error("fetch: timed out: {0}")]
    Timeout(String),
    /// The connection could not be made (DNS, refused, TLS).
    #[error("fetch: cannot connect: {0}")]
    Connect(String),
    /// The request or the body transfer failed.
    #[error("fetch: {0}")]
    Request(String),
    /// A `file://` feed could not be read.
    #[error("fetch: cannot read {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The URL cannot be fetched at all.
    #[error("fetch: {0}")]
    BadUrl(String),
}

impl FetchError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status } => Some(status.as_u16()),
            _ => None,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> FetchError {
        let chain = error_chain(&e);
        if e.is_timeout() {
            FetchError::Timeout(chain)
        } else if e.is_connect() {
            FetchError::Connect(chain)
        } else {
            FetchError::Request(chain)
        }
    }
}

/// The deepest useful message of an error chain ("connection refused" rather than
/// "error sending request").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Fetches feeds; one per process, shared by all poll tasks.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_body: u64,
}

impl Fetcher {
    /// Builds the HTTP client from `[poll]`.
    pub fn new(poll: &PollConfig) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(poll.connect_timeout)
            .timeout(poll.timeout)
            .gzip(true)
            .brotli(true)
            .deflate(true)
            .redirect(reqwest::redirect::Policy::limited(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(poll.per_host)
            .build()
            .map_err(|e| FetchError::Request(error_chain(&e)))?;
        Ok(Fetcher {
            client,
            max_body: poll.max_body,
        })
    }

    /// Fetches `url`, conditionally on `validators`.
    pub async fn fetch(&self, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
        if url.starts_with("file://") {
            return self.fetch_file(url, validators).await;
        }
        let mut request = self.client.get(url).header(ACCEPT, ACCEPT_FEEDS);
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        let mut response = request.send().await.map_err(FetchError::from_reqwest)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified { status: 304 });
        }
        if !status.is_success() {
            return Err(FetchError::Status { status });
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        // A compressed response's Content-Length is the compressed size; reqwest hides it once it
        // decompresses, so this early check only fires for identity bodies.
        if response.content_length().is_some_and(|n| n > self.max_body) {
            return Err(FetchError::TooLarge {
                limit: self.max_body,
            });
        }
        let mut body = Vec::with_capacity(
            response
                .content_length()
                .unwrap_or(64 << 10)
                .min(self.max_body) as usize,
        );
        while let Some(chunk) = response.chunk().await.map_err(FetchError::from_reqwest)? {
            if (body.len() + chunk.len()) as u64 > self.max_body {
                return Err(FetchError::TooLarge {
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body {
            status: status.as_u16(),
            body: Bytes::from(body),
            validators,
        })
    }

    async fn fetch_file(&self, url: &str, validators: &Validators) -> Result<Fetched, FetchError> {
        let path = url::Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| FetchError::BadUrl(format!("{url} is not a local file path")))?;
        let io = |source| FetchError::File {
            path: path.clone(),
            source,
        };
        let meta = tokio::fs::metadata(&path).await.map_err(io)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let etag = format!("file:{}:{}", meta.len(), mtime);
        if validators.etag.as_deref() == Some(etag.as_str()) {
            return Ok(Fetched::NotModified { status: 0 });
        }
        if meta.len() > self.max_body {
            return Err(FetchError::TooLarge {
                limit: self.max_body,
            });
        }
        let body = tokio::fs::read(&path).await.map_err(io)?;
        if body.len() as u64 > self.max_body {
            return Err(FetchError::TooLarge {
                limit: self.max_body,
            });
        }
        Ok(Fetched::Body {
            status: 0,
            body: Bytes::from(body),
            validators: Validators {
                etag: Some(etag),
                last_modified: None,
            },
        })
    }
}
