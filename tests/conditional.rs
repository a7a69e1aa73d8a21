use crate::util::{FeedServer, Item, TestEnv, rss, story};

#[test]
fn a_second_poll_of_unchanged_feeds_is_conditional_and_stores_nothing() {
    let server = FeedServer::start();
    let urls = [
        server.serve_fixture("herald.rss"),
        server.serve_fixture("kell.atom"),
    ];
    let env = TestEnv::with_feeds("", &urls);

    env.once();
    assert_eq!(env.records(&["articles"]).len(), 3);
    env.once();

    for path in ["/herald.rss", "/kell.atom"] {
        let seen = server.seen(path);
        assert_eq!(seen.len(), 2, "{path}");
        assert!(seen[0].if_none_match.is_none() && seen[0].if_modified_since.is_none());
        assert!(
            seen[0]
                .user_agent
                .as_deref()
                .unwrap_or("")
                .starts_with("feedsieve/"),
            "{:?}",
            seen[0].user_agent
        );
        assert!(
            seen[1].if_none_match.is_some(),
            "{path}: no If-None-Match on the second poll"
        );
        assert!(
            seen[1].if_modified_since.is_some(),
            "{path}: no If-Modified-Since on the second poll"
        );
        assert_eq!(seen[1].status, 304, "{path}");
    }
    assert_eq!(
        env.records(&["articles"]).len(),
        3,
        "a 304 must store nothing"
    );
    assert!(env.records(&["duplicates"]).is_empty());
    for url in &urls {
        let feed = env.feed(url);
        assert_eq!(feed["status"], "not_modified");
        assert_eq!(feed["http_status"], 304);
    }

    // A changed feed is fetched in full again; only the new entry is stored.
    let text = story("library");
    server.set(
        "/kell.atom",
        rss(
            "Kell",
            &[Item {
                guid: "kell-library",
                link: "https://kell.example.edu/library",
                title: "Library of things",
                text: &text,
                date: "Thu, 12 Mar 2026 10:00:00 GMT",
            }],
        ),
        "application/rss+xml",
    );
    env.once();
    assert_eq!(server.seen("/kell.atom").last().unwrap().status, 200);
    assert_eq!(env.records(&["articles"]).len(), 4);
    assert_eq!(env.feed(&urls[1])["status"], "ok");
}
