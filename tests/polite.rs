use std::time::Duration;

use chrono::DateTime;
use serde_json::Value;

use crate::util::hostile::{Act, Hostile};
use crate::util::server::FeedServer;
use crate::util::{TestEnv, data, generated_feed, wait_until};

fn kell() -> Vec<u8> {
    std::fs::read(data("feeds/kell.atom")).unwrap()
}

fn rss_with(channel_extra: &str, items: &[(&str, &str)]) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\" xmlns:sy=\"http://purl.org/rss/1.0/modules/syndication/\"><channel><title>t</title><link>http://t/</link>{channel_extra}"
    );
    for (guid, date) in items {
        out.push_str(&format!("<item><title>{guid}</title><guid>{guid}</guid><pubDate>{date}</pubDate><description>text of {guid}</description></item>"));
    }
    out.push_str("</channel></rss>");
    out
}

fn secs_between(a: &Value, b: &Value) -> i64 {
    let t = |v: &Value| DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (t(b) - t(a)).num_seconds()
}

#[test]
fn publisher_hints_set_a_floor_under_the_interval() {
    let server = Hostile::start();
    let one = [("a", "Tue, 03 Mar 2026 07:00:00 GMT")];
    server.set(
        "/ttl",
        Act::ok("application/rss+xml", rss_with("<ttl>60</ttl>", &one)),
    );
    server.set("/sy", Act::ok("application/rss+xml", rss_with("<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>", &one)));
    let cache = Act::Reply {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/rss+xml".into()),
            ("Cache-Control".into(), "public, max-age=7200".into()),
        ],
        body: rss_with("", &one).into_bytes(),
    };
    server.set("/cache", cache);
    let expires = (chrono::Utc::now() + chrono::Duration::hours(3))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    server.set(
        "/expires",
        Act::Reply {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/rss+xml".into()),
                ("Expires".into(), expires),
            ],
            body: rss_with("", &one).into_bytes(),
        },
    );
    server.set("/plain", Act::ok("application/rss+xml", rss_with("", &one)));
    let paths = ["/ttl", "/sy", "/cache", "/expires", "/plain"];
    let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
    let env = TestEnv::with_feeds("interval = \"10m\"", &urls);
    env.once();
    let expect = [3600, 6 * 3600, 7200, 3 * 3600, 600];
    for (url, want) in urls.iter().zip(expect) {
        let f = env.feed(url);
        let got = f["interval_seconds"].as_i64().unwrap();
        assert!(
            (want - 5..=want).contains(&got),
            "{url}: interval {got}, want {want}"
        );
        let wait = secs_between(&f["last_fetch"], &f["next_fetch"]);
        assert!(
            wait as f64 >= want as f64 * 0.89 && wait as f64 <= want as f64 * 1.11,
            "{url}: next poll in {wait} s"
        );
    }
}

#[test]
fn adaptive_mode_learns_from_how_often_a_feed_publishes() {
    let server = Hostile::start();
    let hourly: Vec<(String, String)> = (0..8)
        .map(|h| {
            (
                format!("h{h}"),
                format!("Tue, 03 Mar 2026 {:02}:00:00 GMT", 10 + h),
            )
        })
        .collect();
    let items: Vec<(&str, &str)> = hourly
        .iter()
        .map(|(g, d)| (g.as_str(), d.as_str()))
        .collect();
    server.set(
        "/hourly",
        Act::ok("application/rss+xml", rss_with("", &items)),
    );
    let env = TestEnv::with_feeds(
        "adaptive = true\nmin_interval = \"5m\"\nmax_interval = \"6h\"",
        &[server.url("/hourly")],
    );
    env.once();
    assert_eq!(env.feed(&server.url("/hourly"))["interval_seconds"], 1800);
}

#[test]
fn per_host_limits_and_gaps_hold_and_a_busy_host_does_not_starve_the_others() {
    let busy = Hostile::start_on("127.0.0.1");
    let quiet = Hostile::start_on("127.0.0.2");
    let slow = |body: Vec<u8>| Act::Slow {
        delay: Duration::from_millis(300),
        then: Box::new(Act::ok("application/atom+xml", body)),
    };
    let mut urls = Vec::new();
    for i in 0..8 {
        busy.set(&format!("/f{i}"), slow(kell()));
        urls.push(busy.url(&format!("/f{i}")));
    }
    quiet.set("/only", Act::ok("application/atom+xml", kell()));
    urls.push(quiet.url("/only"));
    let env = TestEnv::with_feeds("concurrency = 4\nper_host = 2\nhost_gap = \"100ms\"", &urls);
    env.once();

    let hits = busy.all_hits();
    assert_eq!(hits.len(), 8);
    assert!(
        hits.iter().all(|h| h.in_flight <= 2),
        "at most 2 in flight to one host: {:?}",
        hits.iter().map(|h| h.in_flight).collect::<Vec<_>>()
    );
    let mut starts: Vec<_> = hits.iter().map(|h| h.at).collect();
    starts.sort();
    // Seen at the server, so accept and thread scheduling on a loaded machine blur the 100 ms
    // by a few milliseconds either way; without the gap they would be microseconds apart.
    for w in starts.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(80),
            "requests to one host {:?} apart",
            w[1] - w[0]
        );
    }
    // The quiet host's only feed listed last is fetched while the busy host still has work.
    let quiet_at = quiet.all_hits()[0].at;
    assert!(
        quiet_at < starts[2],
        "the quiet host waited behind the busy one"
    );
}

/// A connection is kept only while another feed waits on its host: the request that empties a
/// host's queue says `Connection: close`, so a pass over many hosts does not leave an idle
/// connection, holding its buffers, to each of them.
#[test]
fn a_connection_is_kept_only_while_another_feed_waits_on_its_host() {
    let busy = FeedServer::start_on("127.0.0.1:0");
    let lone = FeedServer::start_on("127.0.0.2:0");
    let mut urls = Vec::new();
    for i in 0..3 {
        let path = format!("/busy{i}.rss");
        busy.set(
            &path,
            generated_feed(&format!("busy{i}"), 2),
            "application/rss+xml",
        );
        urls.push(busy.url(&path));
    }
    lone.set(
        "/lone.rss",
        generated_feed("lone", 2),
        "application/rss+xml",
    );
    urls.push(lone.url("/lone.rss"));
    let env = TestEnv::with_feeds("concurrency = 4\nper_host = 1", &urls);
    env.once();

    let close = |s: &crate::util::server::Seen| s.connection.as_deref() == Some("close");
    let lone_seen = lone.seen("/lone.rss");
    assert_eq!(lone_seen.len(), 1);
    assert!(close(&lone_seen[0]), "{lone_seen:?}");
    let mut busy_seen: Vec<_> = (0..3)
        .flat_map(|i| busy.seen(&format!("/busy{i}.rss")))
        .collect();
    busy_seen.sort_by_key(|s| s.order);
    assert_eq!(
        busy_seen.iter().map(close).collect::<Vec<_>>(),
        [false, false, true],
        "{busy_seen:?}"
    );
}

#[test]
fn retry_after_blocks_every_feed_on_the_host_until_then() {
    let server = Hostile::start();
    for p in ["/a", "/b", "/c"] {
        server.set(p, Act::ok("application/atom+xml", kell()));
    }
    let urls: Vec<String> = ["/a", "/b", "/c"].iter().map(|p| server.url(p)).collect();
    let env = TestEnv::with_feeds("interval = \"1s\"\nper_host = 1", &urls);
    env.once();
    server.set("/a", Act::status(429, &[("Retry-After", "3")]));
    let daemon = env.start_daemon();
    wait_until(Duration::from_secs(20), "a 429", || {
        server.hits("/a").len() >= 2
    });
    let limited_at = server.hits("/a")[1].at;
    wait_until(Duration::from_secs(20), "polling to resume", || {
        server
            .all_hits()
            .iter()
            .any(|h| h.at > limited_at + Duration::from_secs(3))
    });
    let early: Vec<_> = server
        .all_hits()
        .into_iter()
        .filter(|h| {
            h.at > limited_at + Duration::from_millis(50)
                && h.at < limited_at + Duration::from_millis(2950)
        })
        .map(|h| h.path)
        .collect();
    assert!(early.is_empty(), "requests during Retry-After: {early:?}");
    let state = env.feed(&urls[0]);
    assert_eq!(state["http_status"], 429);
    assert!(
        state["error"].as_str().unwrap().contains("retry after 3 s"),
        "{state}"
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn a_single_pass_defers_feeds_on_a_host_that_asks_to_wait() {
    let server = Hostile::start();
    let date = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    server.set("/a", Act::status(503, &[("Retry-After", date.as_str())]));
    server.set("/b", Act::ok("application/atom+xml", kell()));
    let urls = [server.url("/a"), server.url("/b")];
    let env = TestEnv::with_feeds("per_host = 1\nconcurrency = 1", &urls);
    let stderr = env.once();
    assert!(stderr.contains("1 deferred"), "{stderr}");
    assert!(server.hits("/b").is_empty(), "no request to a blocked host");
    let a = env.feed(&urls[0]);
    let wait = secs_between(&a["last_fetch"], &a["next_fetch"]);
    assert!((3500..=4400).contains(&wait), "retry in {wait} s");
    let b = env.feed(&urls[1]);
    assert_eq!(b["status"], "pending");
    // The block outlives the process: the next pass defers again without asking.
    let stderr = env.once();
    assert!(stderr.contains("2 deferred"), "{stderr}");
    assert_eq!(server.hits("/a").len(), 1);
}

#[test]
fn errors_back_off_exponentially_to_the_cap_and_a_success_resets() {
    let server = Hostile::start();
    server.set("/flaky", Act::status(500, &[]));
    let url = server.url("/flaky");
    let env = TestEnv::with_feeds(
        "interval = \"1s\"\nmax_backoff = \"2s\"",
        std::slice::from_ref(&url),
    );
    let daemon = env.start_daemon();
    let mut backoffs = Vec::new();
    wait_until(Duration::from_secs(30), "four failures", || {
        let f = env.feed(&url);
        if let (Some(n), Some(b)) = (f["failures"].as_u64(), f["backoff_seconds"].as_u64())
            && backoffs.last() != Some(&(n, b))
        {
            backoffs.push((n, b));
        }
        f["failures"].as_u64() >= Some(4)
    });
    assert!(
        backoffs.contains(&(1, 1)) && backoffs.contains(&(2, 2)),
        "{backoffs:?}"
    );
    assert!(
        backoffs.iter().all(|&(_, b)| b <= 2),
        "capped: {backoffs:?}"
    );
    let f = env.feed(&url);
    assert_eq!(
        (f["status"].as_str(), f["http_status"].as_u64()),
        (Some("error"), Some(500))
    );
    assert!(
        f["next_fetch"].is_string(),
        "a failing feed stays scheduled"
    );
    server.set("/flaky", Act::ok("application/atom+xml", kell()));
    wait_until(Duration::from_secs(10), "recovery", || {
        env.feed(&url)["status"] == "ok"
    });
    let f = env.feed(&url);
    assert_eq!(
        (f["failures"].as_u64(), f["backoff_seconds"].is_null()),
        (Some(0), true)
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn a_gone_feed_stops_being_polled_and_says_so() {
    let server = Hostile::start();
    server.set("/gone", Act::status(410, &[]));
    server.set("/ok", Act::ok("application/atom+xml", kell()));
    let urls = [server.url("/gone"), server.url("/ok")];
    let env = TestEnv::with_feeds("interval = \"1s\"", &urls);
    let daemon = env.start_daemon();
    wait_until(
        Duration::from_secs(10),
        "the other feed polled three times",
        || server.hits("/ok").len() >= 3,
    );
    assert_eq!(server.hits("/gone").len(), 1, "no poll after a 410");
    let f = env.feed(&urls[0]);
    assert_eq!(
        (f["status"].as_str(), f["http_status"].as_u64()),
        (Some("gone"), Some(410))
    );
    assert!(f["next_fetch"].is_null());
    assert_eq!(daemon.stop().code(), Some(0));
    // Still gone after a restart.
    let daemon = env.start_daemon();
    let before = server.hits("/ok").len();
    wait_until(Duration::from_secs(10), "a poll after the restart", || {
        server.hits("/ok").len() > before
    });
    assert_eq!(server.hits("/gone").len(), 1);
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn permanent_redirects_move_the_feed_and_temporary_ones_do_not() {
    let server = Hostile::start();
    for (old, code) in [
        ("/p301", 301),
        ("/p308", 308),
        ("/t302", 302),
        ("/t307", 307),
    ] {
        let new = format!("{old}-new");
        server.set(old, Act::status(code, &[("Location", new.as_str())]));
        server.set(&new, Act::ok("application/atom+xml", format!("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>{old}</title><id>urn:{old}</id><entry><title>e</title><id>urn:{old}:1</id><content>body</content></entry></feed>")));
    }
    let urls: Vec<String> = ["/p301", "/p308", "/t302", "/t307"]
        .iter()
        .map(|p| server.url(p))
        .collect();
    let env = TestEnv::with_feeds("", &urls);
    env.once();
    assert_eq!(env.records(&["articles"]).len(), 4);
    for (url, moved) in urls.iter().zip([true, true, false, false]) {
        let f = env.feed(url);
        let want = if moved {
            Value::from(format!("{url}-new"))
        } else {
            Value::Null
        };
        assert_eq!(f["location"], want, "{url}");
        assert_eq!(f["status"], "ok");
    }
    env.once();
    for (path, moved) in [
        ("/p301", true),
        ("/p308", true),
        ("/t302", false),
        ("/t307", false),
    ] {
        let expected_old_hits = if moved { 1 } else { 2 };
        assert_eq!(server.hits(path).len(), expected_old_hits, "{path}");
        assert_eq!(server.hits(&format!("{path}-new")).len(), 2, "{path}-new");
    }
    // The feed keeps its identity: articles and states stay under the configured URL.
    assert!(
        env.records(&["articles"])
            .iter()
            .all(|a| urls.contains(&a["feed"].as_str().unwrap().to_string()))
    );
}

#[test]
fn redirect_chains_are_limited_and_loops_named() {
    let server = Hostile::start();
    for i in 0..7 {
        let next = format!("/chain{}", i + 1);
        server.set(
            &format!("/chain{i}"),
            Act::status(302, &[("Location", next.as_str())]),
        );
    }
    server.set("/loop-a", Act::status(301, &[("Location", "/loop-b")]));
    server.set("/loop-b", Act::status(301, &[("Location", "/loop-a")]));
    let urls = [server.url("/chain0"), server.url("/loop-a")];
    let env = TestEnv::with_feeds("", &urls);
    env.once();
    let chain = env.feed(&urls[0]);
    let e = chain["error"].as_str().unwrap();
    assert!(e.starts_with("fetch: more than 5 redirects: "), "{e}");
    assert!(e.contains(&server.url("/chain5")), "{e}");
    assert_eq!(
        server.hits("/chain6").len(),
        0,
        "the sixth redirect is not followed"
    );
    let lp = env.feed(&urls[1]);
    let e = lp["error"].as_str().unwrap();
    let expected = format!(
        "fetch: redirect loop: {} -> {} -> {}",
        urls[1],
        server.url("/loop-b"),
        urls[1]
    );
    assert_eq!(e, expected);
}

/// Ten feeds polled together drift apart: their second polls spread over the ±10% jitter of the
/// interval. The times are the server's, so a server thread stalled on a loaded machine sees
/// requests late and together; a 4 s interval (±400 ms) leaves room for stalls of a few hundred
/// milliseconds (with 2 s the whole suite, run on 2 cores, once saw a 66 ms spread).
#[test]
fn jitter_spreads_feeds_added_together() {
    let server = Hostile::start();
    let mut urls = Vec::new();
    for i in 0..10 {
        server.set(&format!("/j{i}"), Act::ok("application/atom+xml", kell()));
        urls.push(server.url(&format!("/j{i}")));
    }
    let env = TestEnv::with_feeds("interval = \"4s\"\nper_host = 10\nconcurrency = 10", &urls);
    let daemon = env.start_daemon();
    wait_until(Duration::from_secs(20), "two polls of each feed", || {
        (0..10).all(|i| server.hits(&format!("/j{i}")).len() >= 2)
    });
    assert_eq!(daemon.stop().code(), Some(0));
    let mut second: Vec<_> = (0..10)
        .map(|i| server.hits(&format!("/j{i}"))[1].at)
        .collect();
    second.sort();
    let spread = *second.last().unwrap() - second[0];
    assert!(
        spread >= Duration::from_millis(150),
        "second polls within {spread:?} of each other"
    );
}
