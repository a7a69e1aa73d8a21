//! Policy: how long to wait before a feed's next poll, given how the last one went.
//!
//! - **Interval.** A feed's own `interval`, else (in adaptive mode) one learned from how often it
//!   publishes, else `poll.interval`.
//! - **Publisher floor.** Never poll more often than the publisher asks: RSS `<ttl>`,
//!   `sy:updatePeriod`/`sy:updateFrequency`, `Cache-Control: max-age` and `Expires` each set a
//!   floor under the interval, honoured up to `poll.max_interval` (a CDN that says "cache for a
//!   year" does not stop a news feed for a year).
//! - **Jitter.** Every wait is stretched or shrunk by up to 10% at random, so that feeds added
//!   together drift apart.
//! - **Backoff.** After n consecutive failures, wait `interval × 2^(n-1)`, capped at
//!   `poll.max_backoff`; a success resets it. A failing feed is probed at the cap for as long as
//!   it fails, never dropped.
//! - **Rate limits.** A 429 or 503 with `Retry-After` waits exactly that long (plus jitter upward
//!   only); without it, it counts as a failure.
//! - **Gone.** A 410 stops polling.
//! - **Adaptive mode.** Half the median gap between the feed's latest publication dates, within
//!   `poll.min_interval` and `poll.max_interval`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{FeedConfig, PollConfig};

/// How the last poll went, as far as timing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    /// Fetched (or not modified).
    Ok,
    /// Failed; this many failures in a row, this one included.
    Failed {
        /// Consecutive failures.
        failures: u32,
    },
    /// Asked to come back after this long (429/503 with `Retry-After`).
    RetryAfter(Duration),
    /// 410: stop.
    Gone,
}

/// When to poll next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Wait this long; `None` stops polling.
    pub delay: Option<Duration>,
    /// The feed's interval now (kept, and shown in `feeds`).
    pub interval: Duration,
    /// The backoff in force, when the last poll failed or was rate limited.
    pub backoff: Option<Duration>,
}

/// The timing rules of `[poll]`.
#[derive(Debug, Clone)]
pub struct Policy {
    default_interval: Duration,
    adaptive: bool,
    min_interval: Duration,
    max_interval: Duration,
    max_backoff: Duration,
}

/// Publication dates used to learn an interval.
const LEARN_FROM: usize = 10;

impl Policy {
    /// The rules of `poll`.
    pub fn new(poll: &PollConfig) -> Policy {
        Policy {
            default_interval: poll.interval,
            adaptive: poll.adaptive,
            min_interval: poll.min_interval,
            max_interval: poll.max_interval,
            max_backoff: poll.max_backoff,
        }
    }

    /// The feed's base interval: its own, else the learned one (adaptive mode), else the default.
    pub fn interval(&self, feed: &FeedConfig, learned: Option<Duration>) -> Duration {
        match (feed.interval, self.adaptive, learned) {
            (Some(own), _, _) => own,
            (None, true, Some(learned)) => learned,
            _ => self.default_interval,
        }
    }

    /// In adaptive mode, an interval learned from publication dates: half the median gap between
    /// the latest ones, within the configured bounds. `None` with fewer than three dates.
    pub fn learn(&self, dates: &[DateTime<Utc>]) -> Option<Duration> {
        if !self.adaptive {
            return None;
        }
        let mut dates: Vec<DateTime<Utc>> = dates.to_vec();
        dates.sort_unstable_by(|a, b| b.cmp(a));
        dates.dedup();
        dates.truncate(LEARN_FROM);
        if dates.len() < 3 {
            return None;
        }
        let mut gaps: Vec<Duration> = dates
            .windows(2)
            .filter_map(|w| (w[0] - w[1]).to_std().ok())
            .collect();
        gaps.sort_unstable();
        let median = gaps[gaps.len() / 2];
        Some((median / 2).clamp(self.min_interval, self.max_interval))
    }

    /// The plan after a poll: `base` is the feed's interval, `floor` the publisher's hint.
    pub fn plan(&self, base: Duration, floor: Option<Duration>, result: Result) -> Plan {
        let interval = match floor {
            Some(floor) => base.max(floor.min(self.max_interval)),
            None => base,
        };
        match result {
            Result::Ok => Plan {
                delay: Some(jitter(interval, 0.9)),
                interval,
                backoff: None,
            },
            Result::Failed { failures } => {
                let doublings = failures.saturating_sub(1).min(32);
                let backoff = interval
                    .saturating_mul(1u32 << doublings.min(31))
                    .min(self.max_backoff.max(interval));
                Plan {
                    delay: Some(jitter(backoff, 0.9)),
                    interval,
                    backoff: Some(backoff),
                }
            }
            Result::RetryAfter(wait) => Plan {
                delay: Some(jitter(wait, 1.0)),
                interval,
                backoff: Some(wait),
            },
            Result::Gone => Plan {
                delay: None,
                interval,
                backoff: None,
            },
        }
    }
}

/// `d` times a random factor in `[low, low + 0.2)`: 0.9 gives ±10%, 1.0 gives +0..20%.
fn jitter(d: Duration, low: f64) -> Duration {
    d.mul_f64(low + fastrand::f64() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);

    fn policy(adaptive: bool) -> Policy {
        Policy::new(&PollConfig {
            interval: Duration::from_secs(30 * 60),
            adaptive,
            min_interval: 5 * MIN,
            max_interval: 24 * HOUR,
            max_backoff: 24 * HOUR,
            ..PollConfig::default()
        })
    }

    fn within(d: Option<Duration>, low: Duration, high: Duration) -> bool {
        d.is_some_and(|d| low <= d && d <= high)
    }

    #[test]
    fn publisher_floors_raise_the_interval_up_to_the_cap() {
        let p = policy(false);
        let plan = p.plan(30 * MIN, Some(2 * HOUR), Result::Ok);
        assert_eq!(plan.interval, 2 * HOUR);
        assert!(within(plan.delay, 108 * MIN, 132 * MIN), "{plan:?}");
        assert_eq!(
            p.plan(30 * MIN, Some(5 * MIN), Result::Ok).interval,
            30 * MIN
        );
        assert_eq!(
            p.plan(30 * MIN, Some(365 * 24 * HOUR), Result::Ok).interval,
            24 * HOUR
        );
    }

    #[test]
    fn failures_back_off_exponentially_to_the_cap_and_stay_there() {
        let p = policy(false);
        let backoff = |n| {
            p.plan(30 * MIN, None, Result::Failed { failures: n })
                .backoff
                .unwrap()
        };
        assert_eq!(backoff(1), 30 * MIN);
        assert_eq!(backoff(2), HOUR);
        assert_eq!(backoff(4), 4 * HOUR);
        assert_eq!(backoff(7), 24 * HOUR);
        assert_eq!(backoff(1000), 24 * HOUR);
        assert!(within(
            p.plan(30 * MIN, None, Result::Failed { failures: 1000 })
                .delay,
            1296 * MIN,
            1584 * MIN
        ));
    }

    #[test]
    fn retry_after_gone_and_jitter() {
        let p = policy(false);
        let plan = p.plan(30 * MIN, None, Result::RetryAfter(2 * HOUR));
        assert!(within(plan.delay, 2 * HOUR, 144 * MIN), "{plan:?}");
        assert_eq!(p.plan(30 * MIN, None, Result::Gone).delay, None);
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| p.plan(30 * MIN, None, Result::Ok).delay)
            .collect();
        assert!(delays.len() > 10, "jitter spreads polls");
    }

    #[test]
    fn adaptive_mode_learns_from_publication_dates() {
        let t = |h: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + h * 3600, 0).unwrap();
        let hourly: Vec<_> = (0..12).map(t).collect();
        assert_eq!(policy(true).learn(&hourly), Some(30 * MIN));
        let daily: Vec<_> = (0..5).map(|d| t(d * 24)).collect();
        assert_eq!(policy(true).learn(&daily), Some(12 * HOUR));
        let burst: Vec<_> = (0..5)
            .map(|i| t(0) + chrono::Duration::seconds(i))
            .collect();
        assert_eq!(policy(true).learn(&burst), Some(5 * MIN));
        assert_eq!(policy(true).learn(&hourly[..2]), None);
        assert_eq!(policy(false).learn(&hourly), None);
        let feed = FeedConfig {
            url: "http://x/".into(),
            name: None,
            interval: Some(10 * MIN),
            tags: vec![],
        };
        assert_eq!(policy(true).interval(&feed, Some(HOUR)), 10 * MIN);
        let feed = FeedConfig {
            interval: None,
            ..feed
        };
        assert_eq!(policy(true).interval(&feed, Some(HOUR)), HOUR);
        assert_eq!(policy(false).interval(&feed, Some(HOUR)), 30 * MIN);
    }
}
