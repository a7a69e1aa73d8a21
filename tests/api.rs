use std::time::Duration;

use serde_json::Value;

use crate::util::{FeedServer, TestEnv, http_get, wait_until};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[test]
fn the_api_pages_by_cursor_and_answers_bad_requests_with_400() {
    let server = FeedServer::start();
    server.serve_fixture("herald.rss");
    server.serve_fixture("kell.atom");
    let env = TestEnv::with_feeds("", &[server.url("/herald.rss"), server.url("/kell.atom")]);
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    wait_until(Duration::from_secs(20), "three articles", || {
        json(&http_get(&addr, "/v1/articles?after=0", None).1)["articles"]
            .as_array()
            .unwrap()
            .len()
            == 3
    });

    let (status, body) = http_get(&addr, "/healthz", None);
    assert_eq!((status, json(&body)["status"].as_str()), (200, Some("ok")));

    // Cursor paging: `next` is the following request's `after`, and an empty page keeps it.
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = json(&http_get(&addr, &format!("/v1/articles?after={after}&limit=2"), None).1);
        let articles = page["articles"].as_array().unwrap();
        if articles.is_empty() {
            assert_eq!(page["next"], after);
            break;
        }
        seen.extend(articles.iter().map(|a| a["seq"].as_u64().unwrap()));
        after = page["next"].as_u64().unwrap();
    }
    assert_eq!(seen, [1, 2, 3]);

    // One article by id; the same bytes as the CLI prints.
    let cli = env.records(&["articles", "--limit", "1"]);
    let (status, body) = http_get(
        &addr,
        &format!("/v1/articles/{}", cli[0]["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body), cli[0]);

    let feeds = json(&http_get(&addr, "/v1/feeds", None).1);
    assert_eq!(feeds["feeds"].as_array().unwrap().len(), 2);
    let dups = json(&http_get(&addr, "/v1/duplicates?after=0", None).1);
    assert_eq!(dups["duplicates"].as_array().unwrap().len(), 0);

    for bad in [
        "/v1/articles?after=-1",
        "/v1/articles?limit=0",
        "/v1/articles?limit=many",
        "/v1/duplicates?after=x",
    ] {
        let (status, body) = http_get(&addr, bad, None);
        assert_eq!(status, 400, "{bad}");
        assert!(json(&body)["error"].as_str().is_some(), "{bad}: {body}");
    }
    for missing in ["/v1/articles/nope", "/v1/nothing"] {
        let (status, body) = http_get(&addr, missing, None);
        assert_eq!(status, 404, "{missing}");
        assert!(json(&body)["error"].as_str().is_some());
    }
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn off_loopback_every_request_needs_the_token() {
    let env = TestEnv::new("[api]\nlisten = \"0.0.0.0:0\"\ntoken_file = \"token\"\n");
    std::fs::write(env.dir.path().join("token"), "s3cret\n").unwrap();
    let daemon = env.start_daemon();
    let port = env.api_addr().rsplit(':').next().unwrap().to_string();
    let addr = format!("127.0.0.1:{port}");
    assert_eq!(http_get(&addr, "/v1/articles", None).0, 401);
    assert_eq!(http_get(&addr, "/v1/articles", Some("wrong")).0, 401);
    assert_eq!(http_get(&addr, "/v1/articles", Some("s3cret")).0, 200);
    // The CLI reads the token file too.
    assert!(env.records(&["articles"]).is_empty());
    assert_eq!(daemon.stop().code(), Some(0));

    // Without a token file, a non-loopback listener is a config error.
    let env = TestEnv::new("[api]\nlisten = \"0.0.0.0:0\"\n");
    let out = env.run(&["run", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("api.token_file"));
}

#[test]
fn on_loopback_changes_need_the_token_and_reads_do_not() {
    use crate::util::http;
    // No token configured: reads work, changes are refused with the way out.
    let env = TestEnv::new("");
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    assert_eq!(http_get(&addr, "/v1/feeds", None).0, 200);
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/feeds",
        None,
        Some(r#"{"url": "https://a.example/rss"}"#),
    );
    assert_eq!(status, 401);
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("api.token_file")
    );
    assert_eq!(daemon.stop().code(), Some(0));

    // A token file: every change needs it, compared exactly.
    let env = TestEnv::new("[api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"secrets/token\"\n");
    std::fs::create_dir_all(env.dir.path().join("secrets")).unwrap();
    std::fs::write(env.dir.path().join("secrets/token"), "correct-horse\n").unwrap();
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    let body = Some(r#"{"url": "https://a.example/rss"}"#);
    for token in [
        None,
        Some("correct"),
        Some("correct-horse-battery"),
        Some(""),
    ] {
        assert_eq!(
            http(&addr, "POST", "/v1/feeds", token, body).0,
            401,
            "{token:?}"
        );
        assert_eq!(http(&addr, "DELETE", "/v1/feeds/x", token, None).0, 401);
        assert_eq!(
            http(
                &addr,
                "POST",
                "/v1/consumers/c/ack",
                token,
                Some(r#"{"seq":0}"#)
            )
            .0,
            401
        );
    }
    assert_eq!(
        http(&addr, "POST", "/v1/feeds", Some("correct-horse"), body).0,
        201
    );
    assert_eq!(http_get(&addr, "/v1/articles", None).0, 200);
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn the_clean_stream_is_re_exported_as_atom_and_json_feed_and_metrics_count_it() {
    let server = FeedServer::start();
    server.serve_fixture("herald.rss");
    server.serve_fixture("kell.atom");
    let env = TestEnv::new(&format!(
        "[poll]\nhost_gap = \"0s\"\n[[feeds]]\nurl = \"{}\"\ntags = [\"town\"]\n[[feeds]]\nurl = \"{}\"\ntags = [\"science\"]\n",
        server.url("/herald.rss"),
        server.url("/kell.atom")
    ));
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    wait_until(Duration::from_secs(20), "three articles", || {
        env.records(&["articles"]).len() == 3
    });
    let stored = env.records(&["articles"]);

    let (status, atom) = http_get(&addr, "/v1/feed.atom", None);
    assert_eq!(status, 200);
    let feed = feed_rs::parser::parse(atom.as_bytes()).expect("our Atom parses");
    assert_eq!(feed.entries.len(), 3);
    // Newest first, plain text, the original link.
    assert_eq!(
        feed.entries[0].title.as_ref().unwrap().content,
        stored[2]["title"].as_str().unwrap()
    );
    assert_eq!(
        feed.entries[0].links[0].href,
        stored[2]["url"].as_str().unwrap()
    );
    assert!(!atom.contains("<p>"), "no markup from the sources");

    let (status, json_feed) = http_get(&addr, "/v1/feed.json?tag=science", None);
    assert_eq!(status, 200);
    let parsed = json(&json_feed);
    assert_eq!(parsed["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(parsed["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        parsed["items"][0]["_feedsieve"]["feed"],
        server.url("/kell.atom")
    );
    let feed = feed_rs::parser::parse(json_feed.as_bytes()).expect("our JSON Feed parses");
    assert_eq!(feed.entries.len(), 1);
    assert_eq!(
        http_get(&addr, "/v1/feed.atom?limit=2", None)
            .1
            .matches("<entry>")
            .count(),
        2
    );
    assert_eq!(http_get(&addr, "/v1/feed.json?limit=x", None).0, 400);

    let (status, metrics) = http_get(&addr, "/metrics", None);
    assert_eq!(status, 200);
    for line in [
        "feedsieve_articles_stored_total 3",
        "feedsieve_polls_total{result=\"ok\"} 2",
        "feedsieve_http_responses_total{status=\"200\"} 2",
        "feedsieve_last_article_seq 3",
        "feedsieve_feeds 2",
        "feedsieve_feeds_in_error 0",
        "feedsieve_feeds_by_status{status=\"ok\"} 2",
        "feedsieve_scheduler_lag_seconds_count 2",
        "feedsieve_deleted_total{kind=\"article\"} 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    for prefix in [
        "feedsieve_feed_duplicates_total{feed=\"http://",
        "feedsieve_feed_articles_total{feed=\"http://",
        "feedsieve_database_bytes ",
        "feedsieve_fetch_duration_seconds_bucket{le=\"+Inf\"} 2",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(prefix)),
            "{prefix} missing:\n{metrics}"
        );
    }
    assert_eq!(daemon.stop().code(), Some(0));
}
