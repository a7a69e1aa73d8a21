//! Hosts: the per-host half of the scheduler. Due feeds wait in their host's queue; a host may
//! start a request when it has fewer than `poll.per_host` in flight, `poll.host_gap` has passed
//! since its last request started, and no `Retry-After` blocks it.
//!
//! Hosts that may start a request now take turns (round robin), so a host with ten thousand due
//! feeds gets one request in per turn like any other and cannot starve the rest; hosts waiting for
//! their gap or block sleep in a timer heap; hosts at their limit wait for a request to finish.
//! Each host is in at most one of those places, so every operation is O(log hosts).
//!
//! `file://` feeds are all under one pseudo-host with no limit and no gap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// The host key of `url`: its lowercased host name, or [`LOCAL`] for files.
pub fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_else(|| LOCAL.to_string())
}

/// The pseudo-host of `file://` feeds.
pub const LOCAL: &str = "";

/// Where a host is in the dispatch structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Nothing waiting, or at its limit.
    Idle,
    /// In the round-robin queue.
    Runnable,
    /// In the timer heap, until this instant.
    Sleeping(Instant),
}

#[derive(Debug)]
struct Host {
    in_flight: usize,
    waiting: VecDeque<usize>,
    /// The earliest start of its next request (the gap).
    next_start: Instant,
    /// `Retry-After`: nothing before this.
    blocked_until: Option<Instant>,
    place: Place,
}

/// The per-host queues and limits.
#[derive(Debug)]
pub struct Hosts {
    per_host: usize,
    gap: Duration,
    hosts: HashMap<String, Host>,
    runnable: VecDeque<String>,
    sleeping: BinaryHeap<Reverse<(Instant, String)>>,
    /// Most requests ever in flight to one (network) host at once.
    peak_per_host: usize,
}

impl Hosts {
    /// Applies new limits (a config reload); requests in flight finish under the old ones.
    pub fn set_limits(&mut self, per_host: usize, gap: Duration) {
        self.per_host = per_host.max(1);
        self.gap = gap;
    }

    /// Queues for hosts allowing `per_host` requests in flight, `gap` apart.
    pub fn new(per_host: usize, gap: Duration) -> Hosts {
        Hosts {
            per_host: per_host.max(1),
            gap,
            hosts: HashMap::new(),
            runnable: VecDeque::new(),
            sleeping: BinaryHeap::new(),
            peak_per_host: 0,
        }
    }

    fn host(&mut self, key: &str, now: Instant) -> &mut Host {
        self.hosts.entry(key.to_string()).or_insert_with(|| Host {
            in_flight: 0,
            waiting: VecDeque::new(),
            next_start: now,
            blocked_until: None,
            place: Place::Idle,
        })
    }

    /// Queues a due feed on its host.
    pub fn push(&mut self, key: &str, feed: usize, now: Instant) {
        self.host(key, now).waiting.push_back(feed);
        self.place(key, now);
    }

    /// Blocks a host until `until` (a `Retry-After`).
    pub fn block(&mut self, key: &str, until: Instant, now: Instant) {
        let host = self.host(key, now);
        host.blocked_until = Some(host.blocked_until.map_or(until, |b| b.max(until)));
        self.place(key, now);
    }

    /// When a host is blocked past `now`, until when.
    pub fn blocked_until(&self, key: &str, now: Instant) -> Option<Instant> {
        self.hosts.get(key)?.blocked_until.filter(|&b| b > now)
    }

    /// Takes the feeds waiting on a host (a `--once` pass defers them when the host is blocked).
    pub fn take_waiting(&mut self, key: &str) -> Vec<usize> {
        match self.hosts.get_mut(key) {
            Some(h) => h.waiting.drain(..).collect(),
            None => Vec::new(),
        }
    }

    /// A request to `key` finished.
    pub fn request_done(&mut self, key: &str, now: Instant) {
        if let Some(h) = self.hosts.get_mut(key) {
            h.in_flight = h.in_flight.saturating_sub(1);
        }
        self.place(key, now);
    }

    /// The next feed whose request may start now, round robin over hosts, or `None`.
    pub fn next(&mut self, now: Instant) -> Option<(String, usize)> {
        // Wake the hosts whose gap or block is over.
        while let Some(Reverse((at, key))) = self.sleeping.peek().cloned() {
            if at > now {
                break;
            }
            self.sleeping.pop();
            if let Some(h) = self.hosts.get_mut(&key)
                && h.place == Place::Sleeping(at)
            {
                h.place = Place::Idle;
                self.place(&key, now);
            }
        }
        while let Some(key) = self.runnable.pop_front() {
            let (limit, gap) = self.limits(&key);
            let Some(h) = self.hosts.get_mut(&key) else {
                continue;
            };
            if h.place != Place::Runnable {
                continue;
            }
            h.place = Place::Idle;
            let Some(feed) = h.waiting.pop_front() else {
                continue;
            };
            h.in_flight += 1;
            h.next_start = now + gap;
            if key != LOCAL && limit != usize::MAX {
                self.peak_per_host = self.peak_per_host.max(h.in_flight);
            }
            self.place(&key, now);
            return Some((key, feed));
        }
        None
    }

    /// When the next sleeping host wakes.
    pub fn wake_at(&self) -> Option<Instant> {
        self.sleeping.peek().map(|Reverse((at, _))| *at)
    }

    /// True when a feed waits on host `key` (so a connection to it is worth keeping).
    pub fn has_waiting(&self, key: &str) -> bool {
        self.hosts.get(key).is_some_and(|h| !h.waiting.is_empty())
    }

    /// True when no feed waits on any host.
    pub fn is_empty(&self) -> bool {
        self.hosts.values().all(|h| h.waiting.is_empty())
    }

    /// Most requests that were in flight to one host at once.
    pub fn peak_per_host(&self) -> usize {
        self.peak_per_host
    }

    fn limits(&self, key: &str) -> (usize, Duration) {
        if key == LOCAL {
            (usize::MAX, Duration::ZERO)
        } else {
            (self.per_host, self.gap)
        }
    }

    /// Puts a host where it belongs after a change.
    fn place(&mut self, key: &str, now: Instant) {
        let (limit, _) = self.limits(key);
        let Some(h) = self.hosts.get_mut(key) else {
            return;
        };
        if h.waiting.is_empty() || h.in_flight >= limit {
            if h.place == Place::Runnable {
                // Stale entries in the queue are skipped by `next`.
                h.place = Place::Idle;
            }
            if matches!(h.place, Place::Sleeping(_)) {
                h.place = Place::Idle;
            }
            return;
        }
        let ready_at = h
            .blocked_until
            .map_or(h.next_start, |b| b.max(h.next_start));
        if ready_at > now {
            if h.place != Place::Sleeping(ready_at) {
                h.place = Place::Sleeping(ready_at);
                self.sleeping.push(Reverse((ready_at, key.to_string())));
            }
        } else if h.place != Place::Runnable {
            h.place = Place::Runnable;
            self.runnable.push_back(key.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_host_limit_gap_and_round_robin() {
        let now = Instant::now();
        let mut hosts = Hosts::new(2, Duration::from_secs(1));
        for feed in 0..5 {
            hosts.push("big.example", feed, now);
        }
        hosts.push("small.example", 100, now);
        // One from each host in turn, then the big host waits for its gap.
        assert_eq!(hosts.next(now), Some(("big.example".into(), 0)));
        assert_eq!(hosts.next(now), Some(("small.example".into(), 100)));
        assert_eq!(hosts.next(now), None);
        assert_eq!(hosts.wake_at(), Some(now + Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        assert_eq!(hosts.next(later), Some(("big.example".into(), 1)));
        // Two in flight: the limit holds even after the gap.
        let later = later + Duration::from_secs(5);
        assert_eq!(hosts.next(later), None);
        hosts.request_done("big.example", later);
        assert_eq!(hosts.next(later), Some(("big.example".into(), 2)));
        assert_eq!(hosts.peak_per_host(), 2);
    }

    #[test]
    fn retry_after_blocks_every_feed_on_the_host() {
        let now = Instant::now();
        let mut hosts = Hosts::new(4, Duration::ZERO);
        hosts.push("a.example", 1, now);
        hosts.push("a.example", 2, now);
        hosts.block("a.example", now + Duration::from_secs(60), now);
        assert_eq!(
            hosts.blocked_until("a.example", now),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(hosts.next(now + Duration::from_secs(59)), None);
        assert_eq!(
            hosts.next(now + Duration::from_secs(60)),
            Some(("a.example".into(), 1))
        );
        assert_eq!(hosts.take_waiting("a.example"), vec![2]);
        assert!(hosts.is_empty());
    }

    #[test]
    fn local_files_have_no_limit() {
        let now = Instant::now();
        let mut hosts = Hosts::new(1, Duration::from_secs(10));
        for feed in 0..3 {
            hosts.push(LOCAL, feed, now);
        }
        assert_eq!((0..3).filter_map(|_| hosts.next(now)).count(), 3);
        assert_eq!(host_of("file:///tmp/a.xml"), LOCAL);
        assert_eq!(
            host_of("https://News.Example.org:8443/rss"),
            "news.example.org"
        );
    }
}
