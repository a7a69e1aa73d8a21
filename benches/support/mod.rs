//! What the benchmarks share: words to write articles with, and a process's peak memory.

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
