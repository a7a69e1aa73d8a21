use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::hostile::{Act, Hostile, unanswered_address};
use crate::util::{FeedServer, TestEnv, data, herald_with_library, wait_until};

fn kell() -> Vec<u8> {
    std::fs::read(data("feeds/kell.atom")).unwrap()
}

/// Stores from a feed on a hostile server, then makes that server misbehave with `act` and runs
/// the daemon until the feed's state names `expect`. Checks that the other feed in the same run (on
/// another host) is stored normally, the daemon keeps running, and nothing stored before is lost.
/// Returns the feed's state and the server.
fn survives(act: Act, poll: &str, expect: &str) -> (Value, Hostile) {
    survives_as(act, &[], poll, expect, "error")
}

/// [`survives`] with more paths on the hostile server, expecting the feed to end in `status`.
fn survives_as(
    act: Act,
    more: &[(&str, Act)],
    poll: &str,
    expect: &str,
    status: &str,
) -> (Value, Hostile) {
    let good = FeedServer::start_on("127.0.0.2:0");
    let good_url = good.serve_fixture("herald.rss");
    let hostile = Hostile::start();
    hostile.set("/feed", Act::ok("application/atom+xml", kell()));
    let urls = [good_url, hostile.url("/feed")];
    let env = TestEnv::with_feeds(&format!("interval = \"1s\"\n{poll}"), &urls);
    env.once();
    let before = env.records(&["articles"]);
    assert_eq!(before.len(), 3);

    hostile.set("/feed", act);
    for (path, act) in more {
        hostile.set(path, act.clone());
    }
    good.set("/herald.rss", herald_with_library(), "application/rss+xml");
    let mut daemon = env.start_daemon();
    wait_until(
        Duration::from_secs(40),
        &format!("an error naming {expect:?}"),
        || {
            env.feed(&urls[1])["error"]
                .as_str()
                .is_some_and(|e| e.contains(expect))
        },
    );
    wait_until(Duration::from_secs(20), "the other feed's new item", || {
        env.records(&["articles"]).len() == 4
    });
    assert!(
        daemon.alive(),
        "the daemon must keep running: {}",
        daemon.log()
    );
    let state = env.feed(&urls[1]);
    assert_eq!(state["status"], status, "{state}");
    assert!(status == "gone" || state["failures"].as_u64().unwrap() >= 1);
    assert!(!state["error"].as_str().unwrap().contains('\n'));
    let after = env.records(&["articles"]);
    assert_eq!(&after[..3], &before[..], "nothing stored before is lost");
    assert_eq!(daemon.stop().code(), Some(0));
    (state, hostile)
}

#[test]
fn a_server_that_trickles_is_cut_off_by_the_total_timeout() {
    let act = Act::Trickle {
        pause: Duration::from_millis(300),
        body: kell(),
    };
    survives(act, "timeout = \"2s\"", "timed out");
}

#[test]
fn a_connection_that_never_completes_hits_the_connect_timeout() {
    let (addr, _fillers, _fd) = unanswered_address();
    let good = FeedServer::start();
    let urls = [
        good.serve_fixture("herald.rss"),
        format!("http://{addr}/feed"),
    ];
    let env = TestEnv::with_feeds("connect_timeout = \"1s\"\ntimeout = \"20s\"", &urls);
    let started = Instant::now();
    env.once();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let state = env.feed(&urls[1]);
    let error = state["error"].as_str().unwrap();
    // Our deadline ("tcp connect error: deadline has elapsed") or, under load, the kernel's
    // ("client error (Connect): operation timed out"): both are a connect timeout.
    assert!(
        error.starts_with("fetch: timed out") && error.to_lowercase().contains("connect"),
        "{error}"
    );
    assert_eq!(env.records(&["articles"]).len(), 2);
}

#[test]
fn an_endless_body_is_cut_off_at_the_cap() {
    survives(
        Act::Endless,
        "max_body = \"256KiB\"",
        "larger than the 262144-byte limit",
    );
}

#[test]
fn a_gzip_bomb_is_refused_at_the_cap_without_inflating_it_all() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..512 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    assert!(
        bomb.len() < 1 << 20,
        "the bomb is small on the wire: {}",
        bomb.len()
    );
    let act = Act::Reply {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/rss+xml".into()),
            ("Content-Encoding".into(), "gzip".into()),
        ],
        body: bomb,
    };
    survives(
        act,
        "max_body = \"1MiB\"",
        "larger than the 1048576-byte limit",
    );
}

#[test]
fn a_hang_up_is_an_error() {
    survives(Act::Hangup, "", "fetch:");
}

#[test]
fn a_body_shorter_than_its_content_length_is_an_error_and_nothing_half_parsed_is_stored() {
    let body = kell();
    let act = Act::Lying {
        claimed: body.len() + 5000,
        body: body[..body.len() / 2].to_vec(),
    };
    survives(act, "", "fetch:");
}

#[test]
fn a_content_length_shorter_than_the_body_is_handled() {
    let act = Act::Lying {
        claimed: 300,
        body: kell(),
    };
    survives(act, "", "not a valid feed");
}

#[test]
fn an_html_page_is_refused_naming_the_feed_it_advertises() {
    let page = "<!DOCTYPE html><html><head><title>News</title><link rel=\"alternate\" type=\"application/rss+xml\" href=\"/rss.xml\"></head><body>Hello</body></html>";
    let (state, hostile) = survives(
        Act::ok("text/html; charset=utf-8", page),
        "",
        "got an HTML page, not a feed",
    );
    let error = state["error"].as_str().unwrap();
    assert!(
        error.ends_with(&format!("advertises a feed at {}", hostile.url("/rss.xml"))),
        "{error}"
    );
}

#[test]
fn an_empty_200_is_refused() {
    survives(Act::ok("application/rss+xml", ""), "", "the body is empty");
}

#[test]
fn an_xml_bomb_is_refused() {
    let mut bomb =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_string()
        } else {
            format!("lol{}", i - 1)
        };
        bomb.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    bomb.push_str("]>\n<rss version=\"2.0\"><channel><title>&lol9;</title><item><title>&lol9;</title><description>&lol9;</description></item></channel></rss>");
    survives(
        Act::ok("application/rss+xml", bomb),
        "",
        "declares XML entities",
    );
}

#[test]
fn an_external_entity_is_refused_and_never_fetched_or_read() {
    let probe = Hostile::start_on("127.0.0.5");
    probe.set("/secret", Act::ok("text/plain", "SECRET-FROM-THE-NETWORK"));
    let xxe = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE rss [<!ENTITY net SYSTEM \"{}\"><!ENTITY file SYSTEM \"file:///etc/passwd\">]>\n<rss version=\"2.0\"><channel><title>x</title><item><title>&net;</title><description>&file; &net;</description><guid>x1</guid></item></channel></rss>",
        probe.url("/secret")
    );
    survives(
        Act::ok("application/rss+xml", xxe),
        "",
        "declares XML entities",
    );
    assert!(
        probe.all_hits().is_empty(),
        "an external entity must never be fetched"
    );
}

#[test]
fn charsets_from_the_header_the_declaration_and_a_bom_are_honoured() {
    let server = Hostile::start();
    let item = |title: &str| {
        format!(
            "<rss version=\"2.0\"><channel><title>t</title><item><title>{title}</title><guid>{title}</guid><description>body</description></item></channel></rss>"
        )
    };
    let latin1 = |s: &str| -> Vec<u8> { s.chars().map(|c| c as u32 as u8).collect() };
    // Latin-1 bytes, announced only by the HTTP header.
    server.set(
        "/header",
        Act::ok(
            "application/rss+xml; charset=ISO-8859-1",
            latin1(&item("caf\u{e9} header")),
        ),
    );
    // Latin-1 bytes, announced only by the XML declaration.
    let decl = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>{}",
        item("caf\u{e9} declaration")
    );
    server.set(
        "/declaration",
        Act::ok("application/rss+xml", latin1(&decl)),
    );
    // UTF-16 little-endian with a BOM, under a header that says otherwise.
    let mut utf16 = vec![0xFF, 0xFE];
    for u in format!(
        "<?xml version=\"1.0\" encoding=\"utf-16\"?>{}",
        item("caf\u{e9} utf-16")
    )
    .encode_utf16()
    {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    server.set("/utf16", Act::ok("text/xml; charset=iso-8859-1", utf16));
    // UTF-8 with an invalid byte: replaced, not fatal.
    let mut broken = item("caf\u{e9} broken").into_bytes();
    let at = broken.windows(6).position(|w| w == b"broken").unwrap();
    broken[at] = 0xFF;
    server.set(
        "/broken",
        Act::ok("application/rss+xml; charset=utf-8", broken),
    );
    let urls: Vec<String> = ["/header", "/declaration", "/utf16", "/broken"]
        .iter()
        .map(|p| server.url(p))
        .collect();
    let env = TestEnv::with_feeds("", &urls);
    env.once();
    let mut titles: Vec<String> = env
        .records(&["articles"])
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "caf\u{e9} declaration",
            "caf\u{e9} header",
            "caf\u{e9} utf-16",
            "caf\u{e9} \u{fffd}roken"
        ]
    );
}

#[test]
fn a_429_with_retry_after_costs_only_its_host() {
    let (state, _) = survives(
        Act::status(429, &[("Retry-After", "2")]),
        "",
        "asks to retry after 2 s",
    );
    assert_eq!(state["http_status"], 429);
    assert_eq!(state["backoff_seconds"], 2);
}

#[test]
fn a_503_with_a_retry_after_date_costs_only_its_host() {
    let date = (chrono::Utc::now() + chrono::Duration::hours(2))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let (state, _) = survives(
        Act::status(503, &[("Retry-After", date.as_str())]),
        "",
        "the server answered 503",
    );
    let backoff = state["backoff_seconds"].as_u64().unwrap();
    assert!((7000..=7200).contains(&backoff), "{backoff}");
}

#[test]
fn a_500_is_an_error_with_backoff() {
    let (state, _) = survives(Act::status(500, &[]), "", "the server answered 500");
    assert!(state["backoff_seconds"].as_u64().is_some());
}

#[test]
fn a_410_makes_the_feed_gone() {
    let (state, hostile) = survives_as(Act::status(410, &[]), &[], "", "410 Gone", "gone");
    assert!(state["next_fetch"].is_null());
    assert_eq!(
        hostile.hits("/feed").len(),
        2,
        "one poll before, one that found it gone"
    );
}

#[test]
fn a_redirect_loop_is_named() {
    let there = Act::status(301, &[("Location", "/elsewhere")]);
    let back = Act::status(308, &[("Location", "/feed")]);
    let (state, hostile) =
        survives_as(there, &[("/elsewhere", back)], "", "redirect loop", "error");
    assert!(
        state["error"]
            .as_str()
            .unwrap()
            .contains(&hostile.url("/elsewhere")),
        "{state}"
    );
}
