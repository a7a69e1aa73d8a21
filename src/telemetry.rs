//! Telemetry: the tracing subscriber that writes logs to stderr.
//!
//! The level comes from `RUST_LOG` (for example `RUST_LOG=feedsieve=debug` shows every stored
//! article and dropped duplicate); without it, `run` logs at `info` (one line per poll) and the
//! reading commands at `warn`. `--log-format json` writes one JSON object per line for journald
//! and log shippers.

use std::io::IsTerminal;

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
