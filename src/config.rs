//! Configuration: the TOML file an operator writes, turned into plain typed values.
//!
//! In: the path of a TOML file (`--config FILE` or `FEEDSIEVE_CONFIG`). Out: a [`Config`] whose
//! relative paths are already resolved against the file's folder, whose durations and sizes are
//! numbers, and whose feed URLs are absolute (`http`, `https` or `file`).
//!
//! Refused: unknown keys, durations and sizes that do not parse, a feed without a URL, a feed URL
//! with another scheme, the same feed listed twice, an API listening off loopback without a token. Every refusal is a [`ConfigError`] that names
//! the file, the line and the dotted key (`poll.interval`, `feeds[2].url`), because an operator
//! fixing a config on a server wants to jump straight to the line. The binary turns it into exit
//! status 2.
//!
//! The keys and their defaults are the ones in `SPEC.md`; `config/feedsieve.toml` comments every one.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// A configuration error, always tied to the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file we tried to read.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file was read but a key is wrong, missing or unknown.
    #[error("{}:{line}: {key}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the offending key or value (the top of the file when unknown).
        line: usize,
        /// Dotted path of the key, such as `poll.interval` or `feeds[2].url`.
        key: String,
        /// What is wrong, in a sentence.
        message: String,
    },
}

/// The whole configuration of one feedsieve process.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from.
    pub path: PathBuf,
    /// Where the sled database and the daemon's state file live.
    pub data_dir: PathBuf,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Polling: intervals, timeouts, limits.
    pub poll: PollConfig,
    /// Duplicate detection.
    pub dedup: DedupConfig,
    /// How long stored articles are kept.
    pub retention: RetentionConfig,
    /// The feeds to poll, in file order.
    pub feeds: Vec<FeedConfig>,
    /// `[cluster]`: this process's part in a cluster on NATS JetStream; `None` runs alone.
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: running as one of several processes sharing NATS JetStream (see
/// `crate::cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The NATS server's URL (`nats://host:port`), or several of one cluster, comma-separated.
    pub nats: String,
    /// What this process does.
    pub role: Role,
    /// Copies of each stream and bucket (3 on a three-node NATS cluster).
    pub replicas: usize,
    /// How long a fetcher's host leases live without renewal.
    pub lease_ttl: Duration,
}

/// A process's part in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Polls the hosts it holds leases on and publishes the reports.
    Fetcher,
    /// Dedups and stores the reports in stream order, and publishes the articles.
    Sieve,
    /// Both.
    All,
}

/// `[api]`: where the HTTP API listens.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address to listen on; loopback by default. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// File holding the bearer token required for changes (and for everything off loopback).
    pub token_file: Option<PathBuf>,
}

/// `[poll]`: how feeds are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    /// Default interval between two polls of one feed.
    pub interval: Duration,
    /// Whole-request timeout, connect to last byte.
    pub timeout: Duration,
    /// Timeout for establishing the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Largest body accepted; larger bodies are refused while streaming.
    pub max_body: u64,
    /// Fetches in flight at once, over all hosts.
    pub concurrency: usize,
    /// Fetches in flight at once to one host.
    pub per_host: usize,
    /// Least time between the starts of two requests to one host.
    pub host_gap: Duration,
    /// Learn each feed's interval from how often it publishes (feeds without their own
    /// `interval`).
    pub adaptive: bool,
    /// Shortest interval adaptive mode may choose.
    pub min_interval: Duration,
    /// Longest interval adaptive mode may choose, and the most a publisher's hint (`<ttl>`,
    /// `sy:updatePeriod`, `Cache-Control`, `Expires`) can stretch an interval.
    pub max_interval: Duration,
    /// Longest wait after repeated failures.
    pub max_backoff: Duration,
}

/// `[dedup]`: duplicate detection.
#[derive(Debug, Clone)]
pub struct DedupConfig {
    /// Largest simhash Hamming distance that still counts as a `near` duplicate.
    pub max_distance: u32,
    /// How long fingerprints stay in the near-duplicate index.
    pub window: Duration,
    /// Smallest containment (0..1) for a `contained` duplicate.
    pub containment: f64,
}

/// `[retention]`: how long articles are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Articles older than this are deleted (their fingerprints stay as tombstones).
    pub max_age: Option<Duration>,
    /// The oldest articles beyond this count are deleted.
    pub max_articles: Option<u64>,
    /// Ingestion pauses while the data directory's filesystem has less than this many bytes
    /// free (0: never), so that the disk filling up never makes a write fail; reads go on.
    pub min_free: u64,
}

/// Default `retention.min_free`: room for sled to flush, compact and open again.
pub const DEFAULT_MIN_FREE: u64 = 128 << 20;

/// One `[[feeds]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedConfig {
    /// Absolute URL (`http`, `https` or `file`); this is the feed's identity in the store.
    pub url: String,
    /// Display name; defaults to the URL.
    pub name: Option<String>,
    /// This feed's own interval; `None` uses `poll.interval`.
    pub interval: Option<Duration>,
    /// Free-form tags for filtering downstream.
    pub tags: Vec<String>,
}

/// The largest Hamming distance the near-duplicate index supports (it keeps k+1 tables of at
/// least 8 bits each).
pub const MAX_DISTANCE_LIMIT: u32 = 7;

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parses config `text` as if read from `path` (relative paths resolve against its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |span: Option<std::ops::Range<usize>>, key: String, message: String| {
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line: span.map_or(1, |s| line_of(text, s.start)),
                key,
                message,
            }
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| invalid(e.span(), "(syntax)".into(), e.message().to_string()))?;
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            // Make sure an unknown key is named even where the path stops at its parent.
            let key = match unknown_field(&message) {
                Some(field) if key == "." => field.to_string(),
                Some(field) if !key.ends_with(field) => format!("{key}.{field}"),
                _ => key,
            };
            invalid(inner.span(), key, message)
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let mut config = raw.build(
            base,
            &|span, key, message| invalid(Some(span), key, message),
            text,
        )?;
        config.path = path.to_path_buf();
        Ok(config)
    }
}

/// Extracts `x` from serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// 1-based line number of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_data_dir")]
    data_dir: toml::Spanned<PathBuf>,
    #[serde(default)]
    api: RawApi,
    #[serde(default)]
    poll: RawPoll,
    #[serde(default)]
    dedup: RawDedup,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    feeds: Vec<RawFeed>,
    cluster: Option<RawCluster>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    nats: toml::Spanned<String>,
    #[serde(default = "default_role")]
    role: Role,
    #[serde(default = "default_replicas")]
    replicas: toml::Spanned<usize>,
    #[serde(default = "default_lease_ttl")]
    lease_ttl: toml::Spanned<Dur>,
}

fn default_role() -> Role {
    Role::All
}

fn default_replicas() -> toml::Spanned<usize> {
    toml::Spanned::new(0..0, 1)
}

fn default_lease_ttl() -> toml::Spanned<Dur> {
    toml::Spanned::new(0..0, Dur(Duration::from_secs(15)))
}

fn default_data_dir() -> toml::Spanned<PathBuf> {
    toml::Spanned::new(0..0, PathBuf::from("data"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    #[serde(default = "default_listen")]
    listen: toml::Spanned<String>,
    token_file: Option<PathBuf>,
}

fn default_listen() -> toml::Spanned<String> {
    toml::Spanned::new(0..0, "127.0.0.1:8711".to_string())
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            listen: default_listen(),
            token_file: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPoll {
    interval: Dur,
    timeout: Dur,
    connect_timeout: Dur,
    max_body: Size,
    concurrency: toml::Spanned<usize>,
    per_host: toml::Spanned<usize>,
    host_gap: Dur,
    adaptive: bool,
    min_interval: toml::Spanned<Dur>,
    max_interval: Dur,
    max_backoff: Dur,
}

impl Default for PollConfig {
    /// The defaults of `[poll]`, as in SPEC.md.
    fn default() -> Self {
        PollConfig {
            interval: Duration::from_secs(30 * 60),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body: 16 << 20,
            concurrency: 16,
            per_host: 2,
            host_gap: Duration::from_secs(1),
            adaptive: false,
            min_interval: Duration::from_secs(5 * 60),
            max_interval: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for RawPoll {
    fn default() -> Self {
        let d = PollConfig::default();
        RawPoll {
            interval: Dur(d.interval),
            timeout: Dur(d.timeout),
            connect_timeout: Dur(d.connect_timeout),
            max_body: Size(d.max_body),
            concurrency: toml::Spanned::new(0..0, d.concurrency),
            per_host: toml::Spanned::new(0..0, d.per_host),
            host_gap: Dur(d.host_gap),
            adaptive: d.adaptive,
            min_interval: toml::Spanned::new(0..0, Dur(d.min_interval)),
            max_interval: Dur(d.max_interval),
            max_backoff: Dur(d.max_backoff),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDedup {
    max_distance: toml::Spanned<u32>,
    window: Dur,
    containment: toml::Spanned<f64>,
}

impl Default for RawDedup {
    fn default() -> Self {
        RawDedup {
            max_distance: toml::Spanned::new(0..0, 3),
            window: Dur(Duration::from_secs(30 * 86_400)),
            containment: toml::Spanned::new(0..0, 0.7),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    max_age: Option<Dur>,
    max_articles: Option<u64>,
    #[serde(default = "default_min_free")]
    min_free: Size,
}

fn default_min_free() -> Size {
    Size(DEFAULT_MIN_FREE)
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention {
            max_age: Some(Dur(Duration::from_secs(90 * 86_400))),
            max_articles: Some(1_000_000),
            min_free: default_min_free(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    url: toml::Spanned<String>,
    name: Option<String>,
    interval: Option<Dur>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Builds the error for a key whose value spans the given bytes.
type Invalid<'a> = dyn Fn(std::ops::Range<usize>, String, String) -> ConfigError + 'a;

impl RawConfig {
    /// Checks what serde cannot (ranges, URLs, repeats) and resolves paths against `base`.
    fn build(self, base: &Path, invalid: &Invalid, text: &str) -> Result<Config, ConfigError> {
        let listen_span = self.api.listen.span();
        let listen: SocketAddr = self.api.listen.get_ref().parse().map_err(|_| {
            invalid(
                listen_span.clone(),
                "api.listen".into(),
                format!(
                    "{:?} is not an address and port such as \"127.0.0.1:8711\"",
                    self.api.listen.get_ref()
                ),
            )
        })?;
        if !listen.ip().is_loopback() && self.api.token_file.is_none() {
            return Err(invalid(
                listen_span,
                "api.listen".into(),
                format!("{listen} is not a loopback address, so api.token_file must be set"),
            ));
        }
        let positive = |value: &toml::Spanned<usize>, key: &str| {
            if *value.get_ref() == 0 {
                Err(invalid(
                    value.span(),
                    key.into(),
                    "must be at least 1".into(),
                ))
            } else {
                Ok(*value.get_ref())
            }
        };
        let concurrency = positive(&self.poll.concurrency, "poll.concurrency")?;
        let per_host = positive(&self.poll.per_host, "poll.per_host")?;
        let min_interval = self.poll.min_interval.get_ref().0;
        if min_interval > self.poll.max_interval.0 {
            return Err(invalid(
                self.poll.min_interval.span(),
                "poll.min_interval".into(),
                "must not be longer than poll.max_interval".into(),
            ));
        }
        let max_distance = *self.dedup.max_distance.get_ref();
        if max_distance > MAX_DISTANCE_LIMIT {
            return Err(invalid(
                self.dedup.max_distance.span(),
                "dedup.max_distance".into(),
                format!("must be between 0 and {MAX_DISTANCE_LIMIT}"),
            ));
        }

        let containment = *self.dedup.containment.get_ref();
        if !(containment > 0.0 && containment <= 1.0) {
            return Err(invalid(
                self.dedup.containment.span(),
                "dedup.containment".into(),
                "must be a share between 0 (exclusive) and 1, such as 0.6".into(),
            ));
        }

        let cluster = match self.cluster {
            None => None,
            Some(c) => {
                let nats = c.nats.get_ref().trim();
                if !nats.split(',').all(|u| {
                    let u = u.trim();
                    u.starts_with("nats://") || u.starts_with("tls://")
                }) {
                    return Err(invalid(
                        c.nats.span(),
                        "cluster.nats".into(),
                        "must be a NATS URL such as nats://127.0.0.1:4222, or several of one \
                         cluster separated by commas"
                            .into(),
                    ));
                }
                let replicas = *c.replicas.get_ref();
                if !(1..=5).contains(&replicas) {
                    return Err(invalid(
                        c.replicas.span(),
                        "cluster.replicas".into(),
                        "must be between 1 and 5 (JetStream's limit)".into(),
                    ));
                }
                let lease_ttl = c.lease_ttl.get_ref().0;
                if lease_ttl < Duration::from_secs(1) {
                    return Err(invalid(
                        c.lease_ttl.span(),
                        "cluster.lease_ttl".into(),
                        "must be at least 1s".into(),
                    ));
                }
                Some(ClusterConfig {
                    nats: nats.to_string(),
                    role: c.role,
                    replicas,
                    lease_ttl,
                })
            }
        };

        let mut feeds: Vec<FeedConfig> = Vec::with_capacity(self.feeds.len());
        let mut first_at: Vec<usize> = Vec::with_capacity(self.feeds.len());
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, raw) in self.feeds.into_iter().enumerate() {
            let span = raw.url.span();
            let key = format!("feeds[{i}].url");
            let url = feed_url(raw.url.get_ref(), base)
                .map_err(|m| invalid(span.clone(), key.clone(), m))?;
            if let Some(&j) = seen.get(&url) {
                return Err(invalid(
                    span,
                    key,
                    format!(
                        "{url} is already listed as feeds[{j}] (line {})",
                        line_of(text, first_at[j])
                    ),
                ));
            }
            first_at.push(span.start);
            seen.insert(url.clone(), i);
            feeds.push(FeedConfig {
                url,
                name: raw.name,
                interval: raw.interval.map(|d| d.0),
                tags: raw.tags,
            });
        }

        Ok(Config {
            path: PathBuf::new(),
            data_dir: base.join(self.data_dir.into_inner()),
            api: ApiConfig {
                listen,
                token_file: self.api.token_file.map(|p| base.join(p)),
            },
            poll: PollConfig {
                interval: self.poll.interval.0,
                timeout: self.poll.timeout.0,
                connect_timeout: self.poll.connect_timeout.0,
                max_body: self.poll.max_body.0,
                concurrency,
                per_host,
                host_gap: self.poll.host_gap.0,
                adaptive: self.poll.adaptive,
                min_interval,
                max_interval: self.poll.max_interval.0,
                max_backoff: self.poll.max_backoff.0,
            },
            dedup: DedupConfig {
                max_distance,
                window: self.dedup.window.0,
                containment,
            },
            retention: RetentionConfig {
                max_age: self.retention.max_age.map(|d| d.0),
                max_articles: self.retention.max_articles,
                min_free: self.retention.min_free.0,
            },
            feeds,
            cluster,
        })
    }
}

/// Turns a configured feed location into an absolute URL: `http(s)://` and `file://` URLs stay
/// as they are, anything without a scheme is a path relative to the config's folder.
pub fn feed_url(raw: &str, base: &Path) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("a feed needs a URL".into());
    }
    match Url::parse(raw) {
        Ok(url) => match url.scheme() {
            "http" | "https" if url.host_str().is_some() => Ok(url.to_string()),
            "file" => Ok(url.to_string()),
            "http" | "https" => Err(format!("{raw:?} has no host")),
            other => Err(format!(
                "{raw:?} uses the unsupported scheme {other:?} (use http, https, file or a path)"
            )),
        },
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let path = base.join(raw);
            let absolute = std::path::absolute(&path)
                .map_err(|e| format!("cannot resolve path {}: {e}", path.display()))?;
            Url::from_file_path(&absolute)
                .map(|u| u.to_string())
                .map_err(|()| format!("cannot turn {} into a file URL", absolute.display()))
        }
        Err(e) => Err(format!("{raw:?} is not a URL: {e}")),
    }
}

/// A duration written as a string: a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`),
/// several of them allowed in a row (`"1h30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// A byte size written as a string: a number and a unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`,
/// `GiB`), or a bare integer of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"16MiB\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `"90s"`, `"15m"`, `"2h"`, `"30d"`, `"1h30m"`, `"250ms"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration {s:?} (write a number and a unit: \"90s\", \"15m\", \"2h\", \"30d\")"
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3_600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            "w" => Duration::from_secs(n.checked_mul(7 * 86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Writes a duration the way [`parse_duration`] reads it, in whole seconds: `"1h30m"`, `"15m"`,
/// `"90s"` becomes `"1m30s"`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Parses `"16MiB"`, `"512KB"`, `"1GiB"`, `"1000"` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?} (write a number and a unit: \"512KiB\", \"16MiB\")");
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let factor: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/feedsieve/test.toml"), text)
    }

    fn err(text: &str) -> String {
        parse(text)
            .expect_err("config should be refused")
            .to_string()
    }

    #[test]
    fn the_cluster_section_is_optional_and_checked() {
        assert_eq!(parse("").unwrap().cluster, None);
        let c = parse("[cluster]\nnats = \"nats://10.0.0.5:4222\"\nrole = \"fetcher\"\n")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!(c.nats, "nats://10.0.0.5:4222");
        assert_eq!(c.role, Role::Fetcher);
        assert_eq!((c.replicas, c.lease_ttl), (1, Duration::from_secs(15)));
        let all = parse("[cluster]\nnats = \"nats://n:4222\"\nreplicas = 3\nlease_ttl = \"30s\"\n")
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!((all.role, all.replicas), (Role::All, 3));
        assert_eq!(all.lease_ttl, Duration::from_secs(30));
        let several = "[cluster]\nnats = \"nats://a:4222, nats://b:4222\"\n";
        assert_eq!(
            parse(several).unwrap().cluster.unwrap().nats,
            "nats://a:4222, nats://b:4222"
        );
        let e = err("[cluster]\nnats = \"nats://a:4222,b:4222\"\n");
        assert!(e.contains("cluster.nats"), "{e}");
        let e = err("[cluster]\nnats = \"http://n:4222\"\n");
        assert!(e.contains("cluster.nats") && e.contains("nats://"), "{e}");
        let e = err("[cluster]\nnats = \"nats://n:4222\"\nrole = \"leader\"\n");
        assert!(e.contains("cluster.role") && e.contains("leader"), "{e}");
        let e = err("[cluster]\nnats = \"nats://n:4222\"\nreplicas = 0\n");
        assert!(e.contains("cluster.replicas"), "{e}");
        let e = err("[cluster]\nrole = \"sieve\"\n");
        assert!(e.contains("nats"), "{e}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "10", "m", "10x", "-5s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("512KB"), Ok(512_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["", "MiB", "16 Mb", "1.5MiB", "-1"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = parse("").unwrap();
        assert_eq!(c.data_dir, Path::new("/etc/feedsieve/data"));
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8711");
        assert_eq!(c.poll.interval, Duration::from_secs(1800));
        assert_eq!(c.poll.timeout, Duration::from_secs(30));
        assert_eq!(c.poll.max_body, 16 << 20);
        assert_eq!(c.poll.concurrency, 16);
        assert_eq!(c.poll.per_host, 2);
        assert_eq!(c.dedup.max_distance, 3);
        assert_eq!(c.dedup.window, Duration::from_secs(30 * 86400));
        assert_eq!(c.retention.max_articles, Some(1_000_000));
    }

    #[test]
    fn feeds_resolve_relative_paths_and_keep_urls() {
        let c = parse(
            "[[feeds]]\nurl = \"https://Example.org/rss.xml\"\nname = \"Ex\"\ninterval = \"10m\"\n\
             [[feeds]]\nurl = \"demo/a.xml\"\ntags = [\"world\"]\n",
        )
        .unwrap();
        assert_eq!(c.feeds[0].url, "https://example.org/rss.xml");
        assert_eq!(c.feeds[0].interval, Some(Duration::from_secs(600)));
        assert_eq!(c.feeds[1].url, "file:///etc/feedsieve/demo/a.xml");
        assert_eq!(c.feeds[1].tags, vec!["world".to_string()]);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("data_dir = \"x\"\n[poll]\ninterval = \"5m\"\nintreval = \"5m\"\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:4: poll.intreval:"),
            "{e}"
        );
        let e = err("colour = 1\n");
        assert!(e.starts_with("/etc/feedsieve/test.toml:1: colour:"), "{e}");
    }

    #[test]
    fn bad_duration_and_size_name_their_key() {
        let e = err("[poll]\n\ninterval = \"soon\"\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:3: poll.interval:"),
            "{e}"
        );
        assert!(e.contains("invalid duration"), "{e}");
        let e = err("[poll]\nmax_body = \"lots\"\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:2: poll.max_body:"),
            "{e}"
        );
        let e = err(
            "[[feeds]]\nurl = \"http://a/\"\n[[feeds]]\nurl = \"http://b/\"\ninterval = \"7q\"\n",
        );
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:5: feeds[1].interval:"),
            "{e}"
        );
    }

    #[test]
    fn feed_without_url_or_with_bad_url_is_refused() {
        let e = err("[[feeds]]\nurl = \"http://a/\"\n\n[[feeds]]\nname = \"no url\"\n");
        assert!(e.contains("feeds[1]"), "{e}");
        assert!(e.contains("missing field `url`"), "{e}");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:4:")
                || e.starts_with("/etc/feedsieve/test.toml:5:"),
            "{e}"
        );
        let e = err("[[feeds]]\nurl = \"gopher://a/\"\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:2: feeds[0].url:"),
            "{e}"
        );
        let e = err("[[feeds]]\nurl = \"http://a/\"\n[[feeds]]\nurl = \"http://a/\"\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:4: feeds[1].url:"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_and_ranges() {
        let e = err("[poll\n");
        assert!(e.starts_with("/etc/feedsieve/test.toml:1:"), "{e}");
        let e = err("[dedup]\nmax_distance = 12\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:2: dedup.max_distance:"),
            "{e}"
        );
        let e = err("[dedup]\ncontainment = 1.5\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:2: dedup.containment:"),
            "{e}"
        );
        let e = err("[poll]\nconcurrency = 0\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:2: poll.concurrency:"),
            "{e}"
        );
        let e = err("[api]\nlisten = \"0.0.0.0:8711\"\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:2: api.listen:"),
            "{e}"
        );
        assert!(e.contains("api.token_file"), "{e}");
        let e = err("[api]\nlisten = \"localhost\"\n");
        assert!(
            e.starts_with("/etc/feedsieve/test.toml:2: api.listen:"),
            "{e}"
        );
    }

    #[test]
    fn durations_format_back() {
        for text in ["90s", "15m", "2h", "30d", "1h30m", "1d2h3m4s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(900)), "15m");
    }
}
