//! Telemetry: the tracing subscriber that writes logs to stderr, and the metrics registry served at
//! `/metrics`.
//!
//! The level comes from `RUST_LOG` (for example `RUST_LOG=feedsieve=debug` shows every stored
//! article and dropped duplicate); without it, `run` logs at `info` (one line per poll) and the
//! reading commands at `warn`. `--log-format json` writes one JSON object per line for journald
//! and log shippers.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `default_level` applies when `RUST_LOG` is unset or invalid.
pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A subscriber already installed (a test harness) is fine.
    drop(result);
}

/// Counters and gauges exported at `/metrics` in the Prometheus text format. One registry per
/// process, shared as an `Arc`; every stage records into it, the API renders it.
///
/// Labels recorded here come from bounded sets only (poll result, HTTP status, duplicate reason);
/// per-feed series (duplicates by feed) and gauges are read from the store at scrape time and
/// passed to [`Metrics::render`].
#[derive(Default)]
pub struct Metrics {
    polls: Mutex<BTreeMap<&'static str, u64>>,
    statuses: Mutex<BTreeMap<u16, u64>>,
    fetched_bytes: AtomicU64,
    fetch_seconds: Histogram,
    lag_seconds: Histogram,
    articles: AtomicU64,
    duplicates: Mutex<BTreeMap<&'static str, u64>>,
    stream_clients: AtomicI64,
    deleted_articles: AtomicU64,
    deleted_duplicates: AtomicU64,
}

/// Upper bounds of the fetch-duration buckets, in seconds.
const BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds of the scheduler-lag buckets (how late a poll starts after it was due), seconds.
const LAG_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

/// A Prometheus histogram with ten buckets (their bounds are given when observing and rendering).
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; 10],
    total: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, bounds: &[f64; 10], seconds: f64) {
        for (bound, count) in bounds.iter().zip(&self.counts) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }
}

impl Histogram {
    fn render(&self, out: &mut String, name: &str, help: &str, bounds: &[f64; 10]) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in bounds.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

/// A labelled metric computed at scrape time (from the store rather than from events).
pub struct Series {
    /// Metric name.
    pub name: &'static str,
    /// Its help line.
    pub help: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// Each point: its labels (name, value) and its value.
    pub points: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Escapes a label value for the Prometheus text format.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    *map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default() += by;
}

impl Metrics {
    /// A poll ended with `result` (`ok`, `not_modified`, `error`, `gone`, `deferred`).
    pub fn poll(&self, result: &'static str, status: Option<u16>, bytes: usize, seconds: f64) {
        bump(&self.polls, result, 1);
        if let Some(status) = status.filter(|&s| s != 0) {
            bump(&self.statuses, status, 1);
        }
        self.fetched_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if result != "deferred" {
            self.fetch_seconds.observe(&BUCKETS, seconds);
        }
    }

    /// An article was stored.
    pub fn stored(&self) {
        self.articles.fetch_add(1, Ordering::Relaxed);
    }

    /// Retention deleted `articles` articles and `duplicates` duplicate records.
    pub fn deleted(&self, articles: u64, duplicates: u64) {
        self.deleted_articles.fetch_add(articles, Ordering::Relaxed);
        self.deleted_duplicates
            .fetch_add(duplicates, Ordering::Relaxed);
    }

    /// A poll started `seconds` after it was due.
    pub fn lag(&self, seconds: f64) {
        self.lag_seconds.observe(&LAG_BUCKETS, seconds);
    }

    /// A duplicate was recorded.
    pub fn duplicate(&self, reason: &'static str) {
        bump(&self.duplicates, reason, 1);
    }

    /// A stream client connected (+1) or left (-1).
    pub fn stream_clients(&self, delta: i64) {
        self.stream_clients.fetch_add(delta, Ordering::Relaxed);
    }

    /// Clients connected to `/v1/stream` now.
    pub fn stream_clients_now(&self) -> i64 {
        self.stream_clients.load(Ordering::Relaxed)
    }

    /// The metrics in the Prometheus text format; `gauges` (name, help, value) and `series`
    /// are computed by the caller at scrape time.
    pub fn render(&self, gauges: &[(&str, &str, f64)], series: &[Series]) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let lock = |m: &Mutex<BTreeMap<&'static str, u64>>| {
            m.lock().unwrap_or_else(|p| p.into_inner()).clone()
        };
        let _ = writeln!(
            out,
            "# HELP feedsieve_polls_total Polls by result.\n# TYPE feedsieve_polls_total counter"
        );
        for (result, n) in lock(&self.polls) {
            let _ = writeln!(out, "feedsieve_polls_total{{result=\"{result}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP feedsieve_http_responses_total Responses by HTTP status.\n# TYPE feedsieve_http_responses_total counter"
        );
        for (status, n) in self
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "feedsieve_http_responses_total{{status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP feedsieve_fetched_bytes_total Body bytes fetched.\n# TYPE feedsieve_fetched_bytes_total counter"
        );
        let _ = writeln!(
            out,
            "feedsieve_fetched_bytes_total {}",
            self.fetched_bytes.load(Ordering::Relaxed)
        );
        self.fetch_seconds.render(
            &mut out,
            "feedsieve_fetch_duration_seconds",
            "Fetch and parse time of a poll.",
            &BUCKETS,
        );
        self.lag_seconds.render(
            &mut out,
            "feedsieve_scheduler_lag_seconds",
            "How late polls start after they are due (host limits, concurrency, a busy loop).",
            &LAG_BUCKETS,
        );
        let _ = writeln!(
            out,
            "# HELP feedsieve_articles_stored_total Unique articles stored.\n# TYPE feedsieve_articles_stored_total counter"
        );
        let _ = writeln!(
            out,
            "feedsieve_articles_stored_total {}",
            self.articles.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP feedsieve_duplicates_total Duplicates dropped, by reason.\n# TYPE feedsieve_duplicates_total counter"
        );
        for (reason, n) in lock(&self.duplicates) {
            let _ = writeln!(out, "feedsieve_duplicates_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP feedsieve_stream_clients Clients connected to /v1/stream.\n# TYPE feedsieve_stream_clients gauge"
        );
        let _ = writeln!(
            out,
            "feedsieve_stream_clients {}",
            self.stream_clients.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP feedsieve_deleted_total Records deleted by retention, by kind.\n# TYPE feedsieve_deleted_total counter"
        );
        for (kind, n) in [
            ("article", &self.deleted_articles),
            ("duplicate", &self.deleted_duplicates),
        ] {
            let _ = writeln!(
                out,
                "feedsieve_deleted_total{{kind=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        for s in series {
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {}",
                s.name, s.help, s.name, s.kind
            );
            for (labels, value) in &s.points {
                let rendered: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = writeln!(out, "{}{{{}}} {value}", s.name, rendered.join(","));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::default();
        m.poll("ok", Some(200), 1234, 0.03);
        m.poll("error", Some(500), 0, 2.0);
        m.stored();
        m.duplicate("near");
        m.lag(0.3);
        m.deleted(2, 1);
        let series = Series {
            name: "feedsieve_feed_duplicates_total",
            help: "Duplicates by feed.",
            kind: "counter",
            points: vec![(vec![("feed", "http://a/\"x\"".to_string())], 3.0)],
        };
        let text = m.render(
            &[("feedsieve_database_bytes", "Bytes on disk.", 42.0)],
            &[series],
        );
        for line in [
            r#"feedsieve_polls_total{result="ok"} 1"#,
            r#"feedsieve_http_responses_total{status="500"} 1"#,
            "feedsieve_fetched_bytes_total 1234",
            r#"feedsieve_fetch_duration_seconds_bucket{le="0.05"} 1"#,
            r#"feedsieve_fetch_duration_seconds_bucket{le="+Inf"} 2"#,
            "feedsieve_fetch_duration_seconds_count 2",
            "feedsieve_articles_stored_total 1",
            r#"feedsieve_duplicates_total{reason="near"} 1"#,
            "feedsieve_database_bytes 42",
            r#"feedsieve_scheduler_lag_seconds_bucket{le="0.5"} 1"#,
            r#"feedsieve_deleted_total{kind="article"} 2"#,
            r#"feedsieve_feed_duplicates_total{feed="http://a/\"x\""} 3"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
