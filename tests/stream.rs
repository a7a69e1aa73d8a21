use std::time::Duration;

use serde_json::Value;

use crate::util::sse::SseClient;
use crate::util::{FeedServer, TestEnv, generated_feed, http, wait_until};

/// Reads events until `want` article seqs were seen or the stream ends.
fn read_articles(client: &mut SseClient, want: usize, seqs: &mut Vec<u64>) {
    while seqs.len() < want {
        let Some(event) = client.next_event() else {
            return;
        };
        assert_eq!(event.event, "article");
        let id: u64 = event
            .id
            .as_deref()
            .unwrap_or("")
            .parse()
            .expect("id: is a seq");
        let record: Value = serde_json::from_str(&event.data).expect("data: is the record");
        assert_eq!(record["seq"], id, "id: is the record's seq");
        seqs.push(id);
    }
}

#[test]
fn an_sse_client_gets_every_article_once_and_in_order_across_a_daemon_restart() {
    let server = FeedServer::start();
    server.set("/one.rss", generated_feed("one", 30), "application/rss+xml");
    let env = TestEnv::new(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n[poll]\nhost_gap = \"0s\"\ninterval = \"1h\"\n[[feeds]]\nurl = \"{}\"\n",
        server.url("/one.rss")
    ));
    let daemon = env.start_daemon();
    let addr = env.api_addr();

    // Connected from the start: the first feed's 30 articles arrive, live or from the store.
    let mut client = SseClient::connect(&addr, "/v1/stream?after=0", None).unwrap();
    assert_eq!(client.status, 200, "{}", client.headers);
    assert!(
        client
            .headers
            .to_ascii_lowercase()
            .contains("text/event-stream")
    );
    let mut seqs = Vec::new();
    read_articles(&mut client, 30, &mut seqs);
    assert_eq!(seqs.len(), 30);

    // The daemon stops: the stream ends (it does not hold the shutdown up).
    assert_eq!(daemon.stop().code(), Some(0));
    read_articles(&mut client, usize::MAX, &mut seqs);
    assert_eq!(seqs.len(), 30);

    // More is stored while the client is away: a second feed, polled at the restart.
    server.set("/two.rss", generated_feed("two", 25), "application/rss+xml");
    let token = std::fs::read_to_string(env.dir.path().join("token")).unwrap();
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/feeds",
        Some(token.trim()),
        Some(&format!(r#"{{"url": "{}"}}"#, server.url("/two.rss"))),
    );
    assert_eq!(status, 201, "{body}");
    wait_until(Duration::from_secs(20), "the second feed stored", || {
        env.records(&["articles"]).len() == 55
    });

    // Resuming with Last-Event-ID (it wins over the URL's after=0, as a browser would send it).
    let last = *seqs.last().unwrap();
    let mut client = SseClient::connect(&addr, "/v1/stream?after=0", Some(last)).unwrap();
    assert_eq!(client.status, 200);
    read_articles(&mut client, 25, &mut seqs);

    // And live: a third feed added now reaches the connected client.
    server.set(
        "/three.rss",
        generated_feed("three", 5),
        "application/rss+xml",
    );
    let (status, _) = http(
        &addr,
        "POST",
        "/v1/feeds",
        Some(token.trim()),
        Some(&format!(r#"{{"url": "{}"}}"#, server.url("/three.rss"))),
    );
    assert_eq!(status, 201);
    read_articles(&mut client, 60, &mut seqs);

    let stored: Vec<u64> = env
        .records(&["articles"])
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, stored, "every article exactly once, in seq order");
    assert_eq!(seqs, (1..=60).collect::<Vec<u64>>());
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn the_stream_filters_by_tag_and_rejects_a_bad_last_event_id() {
    let server = FeedServer::start();
    server.set(
        "/world.rss",
        generated_feed("world", 4),
        "application/rss+xml",
    );
    server.set(
        "/sport.rss",
        generated_feed("sport", 3),
        "application/rss+xml",
    );
    let env = TestEnv::new(&format!(
        "[poll]\nhost_gap = \"0s\"\n[[feeds]]\nurl = \"{}\"\ntags = [\"world\"]\n[[feeds]]\nurl = \"{}\"\ntags = [\"sport\"]\n",
        server.url("/world.rss"),
        server.url("/sport.rss")
    ));
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    wait_until(Duration::from_secs(20), "seven articles", || {
        env.records(&["articles"]).len() == 7
    });
    let mut client = SseClient::connect(&addr, "/v1/stream?tag=sport", None).unwrap();
    let mut seqs = Vec::new();
    read_articles(&mut client, 3, &mut seqs);
    let feeds: Vec<String> = env
        .records(&["articles"])
        .into_iter()
        .filter(|a| seqs.contains(&a["seq"].as_u64().unwrap()))
        .map(|a| a["feed"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(feeds, vec![server.url("/sport.rss"); 3]);

    let (status, body) = crate::util::http_get(&addr, "/v1/stream?after=soon", None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn a_client_that_stops_reading_holds_up_neither_ingestion_nor_other_clients() {
    let server = FeedServer::start();
    for f in 0..8 {
        server.set(
            &format!("/f{f}.rss"),
            generated_feed(&format!("slow{f}"), 50),
            "application/rss+xml",
        );
    }
    let mut config = String::from("[poll]\nhost_gap = \"0s\"\nper_host = 8\ninterval = \"1h\"\n");
    for f in 0..8 {
        config.push_str(&format!(
            "[[feeds]]\nurl = \"{}\"\n",
            server.url(&format!("/f{f}.rss"))
        ));
    }
    let env = TestEnv::new(&config);
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    // Connected before anything is stored, then never read from again.
    let stalled = SseClient::connect(&addr, "/v1/stream", None).unwrap();
    assert_eq!(stalled.status, 200);
    let mut reader = SseClient::connect(&addr, "/v1/stream", None).unwrap();
    let mut seqs = Vec::new();
    read_articles(&mut reader, 400, &mut seqs);
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
    assert_eq!(env.records(&["articles"]).len(), 400);
    let (_, metrics) = crate::util::http_get(&addr, "/metrics", None);
    assert!(
        metrics.lines().any(|l| l == "feedsieve_stream_clients 2"),
        "{metrics}"
    );
    drop(stalled);
    assert_eq!(daemon.stop().code(), Some(0));
}
