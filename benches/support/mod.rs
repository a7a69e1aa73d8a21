//! What the benchmarks share: their command-line flags, words to write articles with, a
//! process's memory, and starting the real daemon.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

/// Words to write articles with: the BBC corpus when present, else the test stories.
pub fn vocabulary() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("../shared/corpus/news/bbc_news_2004_2005.jsonl"))
        .ok()
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["body"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| {
            ["solar", "rail", "library", "glacier"]
                .iter()
                .filter_map(|s| {
                    std::fs::read_to_string(root.join(format!("tests/data/stories/{s}.txt"))).ok()
                })
                .collect::<Vec<_>>()
                .join(" ")
        });
    text.split_whitespace()
        .map(|w| w.replace(['<', '>', '&'], ""))
        .collect()
}

/// The peak RSS (KiB) of a running process, from `VmHWM` in `/proc/PID/status`, sampled until the
/// process exits. (`ru_maxrss` from `wait4` would also count the memory the child inherited from
/// this process at fork, which holds the whole workload.)
pub fn sample_peak_rss(pid: u32) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut peak = 0u64;
        while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM:")) else {
                break;
            };
            let kib = hwm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak = peak.max(kib);
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// The bench's command-line flags: `--name value` pairs after `cargo bench --bench X --`.
pub struct Flags(Vec<String>);

impl Flags {
    /// This process's flags.
    pub fn from_env() -> Flags {
        Flags(std::env::args().collect())
    }

    /// The value after `name`, if given.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    /// The value after `name` parsed, or `default` when absent or unparsable.
    pub fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        self.get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 when unreadable; `pid` 0 is this
/// process.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let path = if pid == 0 {
        "/proc/self/status".to_string()
    } else {
        format!("/proc/{pid}/status")
    };
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Writes `config` to `dir/feedsieve.toml` and starts the real `feedsieve run` on it, logging
/// warnings to `dir/daemon.log`. `FEEDSIEVE_WRAP` (a command and its arguments, such as
/// `heaptrack -o /tmp/soak`) runs it under a tool; the memory figures are then the tool's.
pub fn spawn_daemon(dir: &Path, config: &str) -> std::process::Child {
    let path = dir.join("feedsieve.toml");
    std::fs::write(&path, config).expect("config");
    let wrap = std::env::var("FEEDSIEVE_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut c = std::process::Command::new(tool);
            c.args(words).arg(env!("CARGO_BIN_EXE_feedsieve"));
            c
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_feedsieve")),
    };
    command
        .arg("--config")
        .arg(&path)
        .arg("run")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log")).expect("log"))
        .spawn()
        .expect("start feedsieve")
}
