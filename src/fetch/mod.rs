//! Fetch: one conditional GET of one feed, with every limit enforced while the bytes arrive.
//!
//! In: a feed URL and the validators saved from its last 200. Out: [`Fetched::NotModified`] (a
//! 304: nothing to parse) or [`Fetched::Body`] with the raw bytes, the new validators, the
//! `Content-Type` and how long the server says the answer stays fresh; else a [`FetchError`]
//! whose message is one sentence naming the stage (`fetch: ...`).
//!
//! HTTP goes through one shared reqwest client (rustls, gzip/brotli/deflate, connection pooling)
//! that names feedsieve and its version in `User-Agent`. The connect timeout and the whole-request
//! timeout (connect to last byte, so a server that trickles is cut off) come from `[poll]`. The
//! body cap is checked against `Content-Length` first and then counted chunk by chunk on the
//! decompressed bytes, so a server that lies about the length, streams forever, or sends a gzip
//! bomb is cut off at the cap, never after it; a reset or a body shorter than its
//! `Content-Length` is an error, and nothing of it is parsed.
//!
//! Redirects are followed here, not by reqwest, so that they can be judged: at most
//! [`MAX_REDIRECTS`], a loop is an error that names it, and a leading run of permanent ones (301,
//! 308) is reported as [`Meta::moved_to`] so the feed's stored URL can move; temporary ones
//! (302, 303, 307) are followed but not remembered. 410 is [`FetchError::Gone`]; 429 and 503
//! are [`FetchError::RateLimited`] with the `Retry-After` they carry.
//!
//! `file://` URLs are read from disk under the same cap; their validator is the file's size and
//! modification time, so an unchanged file is "not modified" just like a 304.

pub mod response;

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT, CONNECTION, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};

use crate::config::PollConfig;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

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

/// Whether the connection a fetch uses is worth keeping for the next request to its host.
///
/// An idle HTTP/1.1 connection keeps its read buffer, grown to the size of the feed it carried,
/// until the pool's idle timeout: polling 5,000 feeds on 5,000 hosts peaked at 409 MB with every
/// connection pooled and 89 MB with none (README, "One polling cycle over 10,000 feeds"). The
/// scheduler knows whether another feed waits on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Another request to the host follows: the connection goes back to the pool.
    Keep,
    /// Nothing waits on the host: the request says `Connection: close`, and the connection
    /// ends with the response instead of idling. (HTTP/2 has no such header; its one
    /// connection per host stays pooled until the idle timeout.)
    Close,
}

/// What the server said besides the body, kept whatever the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// The HTTP status (0 for files).
    pub status: u16,
    /// How long the answer stays fresh (`Cache-Control: max-age` or `Expires`).
    pub fresh_for: Option<Duration>,
    /// Where the feed permanently moved (a leading run of 301/308 redirects).
    pub moved_to: Option<String>,
}

/// A fetch that reached the server and got an answer worth keeping.
#[derive(Debug)]
pub enum Fetched {
    /// 304 Not Modified (or an unchanged file): nothing to parse.
    NotModified(Meta),
    /// A body to parse.
    Body {
        /// Status, freshness, permanent move.
        meta: Meta,
        /// The raw (decompressed) bytes.
        body: Bytes,
        /// Validators to send next time.
        validators: Validators,
        /// The `Content-Type` header (its charset decodes the body).
        content_type: Option<String>,
    },
}

impl Fetched {
    /// Status, freshness, permanent move.
    pub fn meta(&self) -> &Meta {
        match self {
            Fetched::NotModified(meta) | Fetched::Body { meta, .. } => meta,
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 410: the feed is gone for good.
    #[error("fetch: the server answered 410 Gone: the feed was removed")]
    Gone,
    /// 429 or 503: the server asks us to come back later.
    #[error("fetch: the server answered {status}{}", retry_sentence(*.retry_after))]
    RateLimited {
        /// 429 or 503.
        status: StatusCode,
        /// How long `Retry-After` asks to wait.
        retry_after: Option<Duration>,
    },
    /// The server answered with another error status.
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
    /// A redirect led back to a URL already visited.
    #[error("fetch: redirect loop: {}", .0.join(" -> "))]
    RedirectLoop(Vec<String>),
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("fetch: more than {MAX_REDIRECTS} redirects: {}", .0.join(" -> "))]
    TooManyRedirects(Vec<String>),
    /// A redirect without a usable `Location`.
    #[error("fetch: the server answered {status} without a usable Location")]
    BadRedirect {
        /// The redirect status.
        status: StatusCode,
    },
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

fn retry_sentence(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" and asks to retry after {} s", d.as_secs()),
        None => String::new(),
    }
}

impl FetchError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Gone => Some(410),
            FetchError::RateLimited { status, .. } | FetchError::Status { status } => {
                Some(status.as_u16())
            }
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
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(poll.per_host)
            .build()
            .map_err(|e| FetchError::Request(error_chain(&e)))?;
        Ok(Fetcher {
            client,
            max_body: poll.max_body,
        })
    }

    /// Fetches `url`, conditionally on `validators`, following redirects; `reuse` says whether
    /// to keep the connection for another request to the host.
    pub async fn fetch(
        &self,
        url: &str,
        validators: &Validators,
        reuse: Reuse,
    ) -> Result<Fetched, FetchError> {
        if url.starts_with("file://") {
            return self.fetch_file(url, validators).await;
        }
        let mut chain = vec![url.to_string()];
        let mut permanent = true;
        let mut moved_to = None;
        let mut response = loop {
            let current = chain.last().map(String::as_str).unwrap_or(url);
            let mut request = self.client.get(current).header(ACCEPT, ACCEPT_FEEDS);
            if reuse == Reuse::Close {
                request = request.header(CONNECTION, "close");
            }
            if let Some(etag) = &validators.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, lm);
            }
            let response = request.send().await.map_err(FetchError::from_reqwest)?;
            let status = response.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                break response;
            }
            let next = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url::Url::parse(current).ok()?.join(l).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or(FetchError::BadRedirect { status })?
                .to_string();
            let seen = chain.contains(&next);
            chain.push(next.clone());
            if seen {
                return Err(FetchError::RedirectLoop(chain));
            }
            if chain.len() > MAX_REDIRECTS + 1 {
                return Err(FetchError::TooManyRedirects(chain));
            }
            permanent &= matches!(
                status,
                StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
            );
            if permanent {
                moved_to = Some(next);
            }
        };
        let status = response.status();
        let now = Utc::now();
        let meta = Meta {
            status: status.as_u16(),
            fresh_for: response::freshness(response.headers(), now),
            moved_to,
        };
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified(meta));
        }
        match status {
            StatusCode::GONE => return Err(FetchError::Gone),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                return Err(FetchError::RateLimited {
                    status,
                    retry_after: response::retry_after(response.headers(), now),
                });
            }
            s if !s.is_success() => return Err(FetchError::Status { status }),
            _ => {}
        }
        let headers: &HeaderMap = response.headers();
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let content_type = header(CONTENT_TYPE);
        // A compressed response's Content-Length is the compressed size; reqwest hides it once it
        // decompresses, so this early check only fires for identity bodies.
        if response.content_length().is_some_and(|n| n > self.max_body) {
            return Err(FetchError::TooLarge {
                limit: self.max_body,
            });
        }
        let capacity = response
            .content_length()
            .unwrap_or(64 << 10)
            .min(self.max_body) as usize;
        let mut body = Vec::with_capacity(capacity);
        while let Some(chunk) = response.chunk().await.map_err(FetchError::from_reqwest)? {
            if (body.len() + chunk.len()) as u64 > self.max_body {
                return Err(FetchError::TooLarge {
                    limit: self.max_body,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body {
            meta,
            body: Bytes::from(body),
            validators,
            content_type,
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
            return Ok(Fetched::NotModified(Meta::default()));
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
            meta: Meta::default(),
            body: Bytes::from(body),
            validators: Validators {
                etag: Some(etag),
                last_modified: None,
            },
            content_type: None,
        })
    }
}
