//! Reading what a response's headers say about timing: `Retry-After`, `Cache-Control: max-age`
//! and `Expires`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{CACHE_CONTROL, DATE, EXPIRES, HeaderMap, RETRY_AFTER};

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// How long `Retry-After` asks to wait: delta seconds or an HTTP date (measured from the
/// response's `Date`, else from `now`).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = header(headers, RETRY_AFTER)?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = http_date(value)?;
    let reference = header(headers, DATE).and_then(http_date).unwrap_or(now);
    Some((at - reference).to_std().unwrap_or(Duration::ZERO))
}

/// How long the response may be cached: `Cache-Control: max-age` (unless `no-cache` or
/// `no-store`), else `Expires` minus `Date` (or `now`).
pub fn freshness(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(cc) = header(headers, CACHE_CONTROL) {
        let directives: Vec<String> = cc
            .split(',')
            .map(|d| d.trim().to_ascii_lowercase())
            .collect();
        if directives
            .iter()
            .any(|d| d == "no-cache" || d == "no-store")
        {
            return None;
        }
        if let Some(secs) = directives.iter().find_map(|d| {
            d.strip_prefix("max-age=")
                .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
        }) {
            return Some(Duration::from_secs(secs));
        }
    }
    let expires = http_date(header(headers, EXPIRES)?)?;
    let reference = header(headers, DATE).and_then(http_date).unwrap_or(now);
    (expires - reference).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = http_date("Wed, 25 Nov 2026 10:00:00 GMT").unwrap();
        assert_eq!(
            retry_after(&headers(&[(RETRY_AFTER, "120")]), now),
            Some(Duration::from_secs(120))
        );
        let h = headers(&[(RETRY_AFTER, "Wed, 25 Nov 2026 11:00:00 GMT")]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3600)));
        let h = headers(&[
            (RETRY_AFTER, "Wed, 25 Nov 2026 11:00:00 GMT"),
            (DATE, "Wed, 25 Nov 2026 10:30:00 GMT"),
        ]);
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(1800)));
        assert_eq!(retry_after(&headers(&[(RETRY_AFTER, "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    #[test]
    fn freshness_from_cache_control_or_expires() {
        let now = http_date("Wed, 25 Nov 2026 10:00:00 GMT").unwrap();
        let h = headers(&[(CACHE_CONTROL, "public, max-age=900")]);
        assert_eq!(freshness(&h, now), Some(Duration::from_secs(900)));
        let h = headers(&[(CACHE_CONTROL, "no-cache, max-age=900")]);
        assert_eq!(freshness(&h, now), None);
        let h = headers(&[(EXPIRES, "Wed, 25 Nov 2026 12:00:00 GMT")]);
        assert_eq!(freshness(&h, now), Some(Duration::from_secs(7200)));
        let h = headers(&[(EXPIRES, "0")]);
        assert_eq!(freshness(&h, now), None);
    }
}
