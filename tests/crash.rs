use std::time::Duration;

use crate::util::{FeedServer, Publisher, TestEnv, listed, wait_until};

#[test]
fn sigkill_at_random_moments_loses_nothing_that_was_listed() {
    // Five feeds that keep publishing: each grows by an item every 100 ms.
    let mut publisher = Publisher::start(&["kilo", "lima", "mike", "november", "oscar"]);
    let env = TestEnv::with_feeds("interval = \"1s\"\nper_host = 5", &publisher.urls);
    let info = env.data_dir().join("daemon.json");

    let mut rng = fastrand::Rng::with_seed(7);
    let mut first_round = 0;
    for round in 0..20 {
        let mut daemon = env.start_daemon();
        std::thread::sleep(Duration::from_millis(rng.u64(150..1200)));
        let seen = listed(&env);
        daemon.signal("KILL");
        wait_until(Duration::from_secs(10), "the daemon to die", || {
            !daemon.alive()
        });
        // A killed daemon leaves its daemon.json; the next start writes a new one.
        let _ = std::fs::remove_file(&info);

        let fsck = env.run(&["fsck"]);
        assert!(
            fsck.status.success(),
            "round {round}: fsck after SIGKILL:\n{}",
            String::from_utf8_lossy(&fsck.stdout)
        );
        let after = listed(&env);
        for (seq, id) in &seen {
            assert_eq!(
                after.get(seq),
                Some(id),
                "round {round}: article {seq} was listed before the kill"
            );
        }
        // Seqs stay dense: nothing was skipped or reused.
        let seqs: Vec<u64> = after.keys().copied().collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "round {round}"
        );
        if round == 0 {
            first_round = after.len();
        }
    }
    publisher.stop();
    // Ingestion went on from restart to restart.
    assert!(listed(&env).len() > first_round + 20);
}

#[test]
fn a_feed_state_saved_after_a_304_survives_a_sigkill() {
    // The 304 stores no article, so only the group commit's own flush makes the new state
    // durable (sled's background flusher is off).
    let server = FeedServer::start();
    let url = server.serve_fixture("herald.rss");
    let env = TestEnv::with_feeds("interval = \"1s\"", std::slice::from_ref(&url));
    let mut daemon = env.start_daemon();
    wait_until(Duration::from_secs(20), "a conditional poll", || {
        server.seen("/herald.rss").iter().any(|s| s.status == 304)
    });
    // Two group commits (every 500 ms) after the 304.
    std::thread::sleep(Duration::from_millis(1200));
    daemon.signal("KILL");
    wait_until(Duration::from_secs(10), "the daemon to die", || {
        !daemon.alive()
    });
    let feed = env.feed(&url);
    assert_eq!(feed["status"], "not_modified", "{feed}");
    assert_eq!(feed["http_status"], 304, "{feed}");
}
