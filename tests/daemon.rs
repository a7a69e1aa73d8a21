use std::time::Duration;

use crate::util::{FeedServer, TestEnv, herald_with_library, wait_until};

#[test]
fn the_daemon_serves_reads_while_running_and_keeps_everything_across_restarts() {
    let server = FeedServer::start();
    let url = server.serve_fixture("herald.rss");
    let env = TestEnv::with_feeds("interval = \"1s\"", std::slice::from_ref(&url));

    let daemon = env.start_daemon();
    // The daemon holds the database: these go through its API.
    wait_until(
        Duration::from_secs(20),
        "two articles through the API",
        || env.records(&["articles"]).len() == 2,
    );
    let feeds = env.records(&["feeds"]);
    assert_eq!(feeds.len(), 1);
    assert_eq!(feeds[0]["status"], "ok");

    // A new item appears while it runs.
    server.set("/herald.rss", herald_with_library(), "application/rss+xml");
    wait_until(Duration::from_secs(20), "the new item", || {
        env.records(&["articles"]).len() == 3
    });
    let paged = env.records(&["articles", "--after", "1", "--limit", "1"]);
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0]["seq"], 2);

    let before = env.records(&["articles"]);
    let status = daemon.stop();
    assert_eq!(status.code(), Some(0), "SIGTERM must end the daemon with 0");
    assert!(!env.data_dir().join("daemon.json").exists());

    // Read directly from the database now, then again after a restart.
    assert_eq!(env.records(&["articles"]), before);
    let polls = server.seen("/herald.rss").len();
    let mut daemon = env.start_daemon();
    wait_until(Duration::from_secs(20), "a poll after the restart", || {
        server.seen("/herald.rss").len() > polls
    });
    assert!(daemon.alive());
    assert_eq!(server.seen("/herald.rss").last().unwrap().status, 304);
    assert_eq!(env.records(&["articles"]), before);
    assert_eq!(daemon.stop().code(), Some(0));
    assert_eq!(env.records(&["articles"]), before);
}

#[test]
fn sigint_also_stops_the_daemon_cleanly() {
    let env = TestEnv::new("");
    let daemon = env.start_daemon();
    daemon.signal("INT");
    let mut daemon = daemon;
    wait_until(Duration::from_secs(20), "exit on SIGINT", || {
        !daemon.alive()
    });
    assert!(daemon.log().contains("SIGINT"), "{}", daemon.log());
}
