use std::time::Duration;

use serde_json::Value;

use crate::util::{FeedServer, TestEnv, generated_feed, http, wait_until};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn env_with_token(server: &FeedServer) -> TestEnv {
    TestEnv::new(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n[poll]\nhost_gap = \"0s\"\ninterval = \"1h\"\n[[feeds]]\nurl = \"{}\"\nname = \"Config wire\"\ntags = [\"wire\"]\n",
        server.url("/config.rss")
    ))
}

#[test]
fn a_feed_added_through_the_api_is_polled_at_once_and_is_still_there_after_a_restart() {
    let server = FeedServer::start();
    server.set(
        "/config.rss",
        generated_feed("cfg", 2),
        "application/rss+xml",
    );
    server.set(
        "/runtime.rss",
        generated_feed("rt", 3),
        "application/rss+xml",
    );
    let env = env_with_token(&server);
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    let token = std::fs::read_to_string(env.dir.path().join("token")).unwrap();
    let token = Some(token.trim());
    wait_until(Duration::from_secs(20), "the config feed", || {
        env.records(&["articles"]).len() == 2
    });

    let new = format!(
        r#"{{"url": "{}", "name": "Runtime", "interval": "2h", "tags": ["world", "europe"]}}"#,
        server.url("/runtime.rss")
    );
    assert_eq!(http(&addr, "POST", "/v1/feeds", None, Some(&new)).0, 401);
    let (status, body) = http(&addr, "POST", "/v1/feeds", token, Some(&new));
    assert_eq!(status, 201, "{body}");
    let added = json(&body);
    assert_eq!(added["source"], "api");
    assert_eq!(added["interval"], "2h");
    let id = added["id"].as_str().unwrap().to_string();
    // Polled without a restart.
    wait_until(Duration::from_secs(20), "the runtime feed polled", || {
        env.records(&["articles"]).len() == 5
    });
    assert_eq!(http(&addr, "POST", "/v1/feeds", token, Some(&new)).0, 409);

    // Listed with where each came from; filters by feed and tag.
    let feeds = json(&http(&addr, "GET", "/v1/feeds", None, None).1);
    let sources: Vec<(&str, &str)> = feeds["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("Config wire", "config"), ("Runtime", "api")]);
    let one = json(&http(&addr, "GET", &format!("/v1/feeds/{id}"), None, None).1);
    assert_eq!(one["articles"], 3);
    let by_tag = json(&http(&addr, "GET", "/v1/articles?tag=europe", None, None).1);
    assert_eq!(by_tag["articles"].as_array().unwrap().len(), 3);
    assert_eq!(by_tag["next"], 5);
    let by_feed = json(
        &http(
            &addr,
            "GET",
            &format!("/v1/articles?feed={id}&limit=2"),
            None,
            None,
        )
        .1,
    );
    assert_eq!(by_feed["articles"].as_array().unwrap().len(), 2);
    let wire = json(
        &http(
            &addr,
            "GET",
            "/v1/articles?tag=wire&tag=nothing",
            None,
            None,
        )
        .1,
    );
    assert_eq!(wire["articles"].as_array().unwrap().len(), 2);
    assert_eq!(
        http(&addr, "GET", "/v1/articles?feed=nosuchid", None, None).0,
        400
    );

    // Changes: a runtime feed can be patched; the config file's cannot.
    let (status, body) = http(
        &addr,
        "PATCH",
        &format!("/v1/feeds/{id}"),
        token,
        Some(r#"{"name": "Runtime desk", "tags": ["world"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["tags"], serde_json::json!(["world"]));
    let config_id = feeds["feeds"][0]["id"].as_str().unwrap();
    let (status, body) = http(
        &addr,
        "DELETE",
        &format!("/v1/feeds/{config_id}"),
        token,
        None,
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        json(&body)["error"]
            .as_str()
            .unwrap()
            .contains("config file")
    );
    let (status, _) = http(
        &addr,
        "PATCH",
        &format!("/v1/feeds/{id}"),
        token,
        Some(r#"{"color": 1}"#),
    );
    assert_eq!(status, 400);
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/feeds",
        token,
        Some(r#"{"url": "file:///etc/passwd"}"#),
    );
    assert_eq!(status, 400);

    // After a restart: still there, with its changes, and not polled again before its interval.
    assert_eq!(daemon.stop().code(), Some(0));
    let listed = env.records(&["feeds"]);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["name"], "Runtime desk");
    assert_eq!(listed[1]["source"], "api");
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    let feeds = json(&http(&addr, "GET", "/v1/feeds", None, None).1);
    assert_eq!(feeds["feeds"][1]["name"], "Runtime desk");
    assert_eq!(feeds["feeds"][1]["tags"], serde_json::json!(["world"]));

    // Removed: polling stops, the articles stay.
    let (status, body) = http(&addr, "DELETE", &format!("/v1/feeds/{id}"), token, None);
    assert_eq!(status, 200, "{body}");
    let polls = server.seen("/runtime.rss").len();
    assert_eq!(
        json(&http(&addr, "GET", "/v1/feeds", None, None).1)["feeds"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        http(&addr, "GET", &format!("/v1/feeds/{id}"), None, None).0,
        404
    );
    assert_eq!(env.records(&["articles"]).len(), 5);
    assert_eq!(daemon.stop().code(), Some(0));
    assert_eq!(server.seen("/runtime.rss").len(), polls);
}

#[test]
fn the_cli_manages_feeds_with_and_without_the_daemon() {
    let server = FeedServer::start();
    server.set(
        "/config.rss",
        generated_feed("cfg2", 1),
        "application/rss+xml",
    );
    server.set("/a.rss", generated_feed("clia", 2), "application/rss+xml");
    server.set("/b.rss", generated_feed("clib", 2), "application/rss+xml");
    let env = env_with_token(&server);

    // No daemon: straight into the store.
    let added = env.records(&[
        "feeds",
        "add",
        &server.url("/a.rss"),
        "--name",
        "A",
        "--tag",
        "x",
        "--tag",
        "y",
        "--interval",
        "15m",
    ]);
    assert_eq!(added[0]["source"], "api");
    assert_eq!(added[0]["tags"], serde_json::json!(["x", "y"]));
    assert_eq!(added[0]["interval"], "15m");
    let again = env.run(&["feeds", "add", &server.url("/a.rss")]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already listed"));
    let bad = env.run(&["feeds", "add", "ftp://nope.example/feed"]);
    assert_eq!(bad.status.code(), Some(1));

    // With the daemon: through its API, which polls the new feed at once.
    let daemon = env.start_daemon();
    wait_until(
        Duration::from_secs(20),
        "the config feed and the first CLI feed",
        || env.records(&["articles"]).len() == 3,
    );
    let added = env.records(&["feeds", "add", &server.url("/b.rss"), "--name", "B"]);
    assert_eq!(added[0]["name"], "B");
    wait_until(
        Duration::from_secs(20),
        "the feed added through the daemon",
        || env.records(&["articles"]).len() == 5,
    );
    let removed = env.records(&["feeds", "remove", &server.url("/a.rss")]);
    assert_eq!(removed[0]["removed"]["url"], server.url("/a.rss"));
    let refused = env.run(&["feeds", "remove", &server.url("/config.rss")]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("config file"));
    assert_eq!(daemon.stop().code(), Some(0));

    let names: Vec<String> = env
        .records(&["feeds"])
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["Config wire", "B"]);
    let removed = env.records(&["feeds", "remove", &server.url("/b.rss")]);
    assert_eq!(removed.len(), 1);
    assert_eq!(env.records(&["feeds"]).len(), 1);
}
