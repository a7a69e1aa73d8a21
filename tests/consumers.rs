use std::time::Duration;

use serde_json::Value;

use crate::util::{FeedServer, TestEnv, generated_feed, http, wait_until};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Consumer `indexer`'s next batch of at most two.
fn next_two(addr: &str) -> Value {
    json(
        &http(
            addr,
            "GET",
            "/v1/consumers/indexer/next?limit=2",
            None,
            None,
        )
        .1,
    )
}

fn seqs(page: &Value) -> Vec<u64> {
    page["articles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_named_consumer_gets_each_batch_until_it_commits_and_its_offset_survives_restarts() {
    let server = FeedServer::start();
    server.set(
        "/wire.rss",
        generated_feed("wire", 5),
        "application/rss+xml",
    );
    let env = TestEnv::new(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n[poll]\nhost_gap = \"0s\"\ninterval = \"1h\"\n[[feeds]]\nurl = \"{}\"\n",
        server.url("/wire.rss")
    ));
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    // The daemon wrote a token for us, readable by its owner only.
    let token_path = env.dir.path().join("token");
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.len() >= 32);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    wait_until(Duration::from_secs(20), "five articles", || {
        env.records(&["articles"]).len() == 5
    });

    // At-least-once: the same batch until it is acknowledged.
    let page = next_two(&addr);
    assert_eq!(seqs(&page), [1, 2]);
    assert_eq!(
        (page["offset"].as_u64(), page["next"].as_u64()),
        (Some(0), Some(2))
    );
    let again = next_two(&addr);
    assert_eq!(seqs(&again), [1, 2]);

    // Committing needs the token.
    let ack = Some(r#"{"seq": 2}"#);
    assert_eq!(
        http(&addr, "POST", "/v1/consumers/indexer/ack", None, ack).0,
        401
    );
    assert_eq!(
        http(
            &addr,
            "POST",
            "/v1/consumers/indexer/ack",
            Some("nope"),
            ack
        )
        .0,
        401
    );
    let (status, body) = http(
        &addr,
        "POST",
        "/v1/consumers/indexer/ack",
        Some(&token),
        ack,
    );
    assert_eq!(
        (status, json(&body)["offset"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    let page = next_two(&addr);
    assert_eq!(seqs(&page), [3, 4]);

    // Bad requests say what is wrong.
    for (method, path, body) in [
        ("POST", "/v1/consumers/indexer/ack", r#"{"seq": 99}"#),
        ("POST", "/v1/consumers/indexer/ack", r#"{"seq": "two"}"#),
        ("POST", "/v1/consumers/indexer/ack", "not json"),
        ("POST", "/v1/consumers/bad%20name/ack", r#"{"seq": 1}"#),
        ("GET", "/v1/consumers/indexer/next?limit=0", ""),
    ] {
        let (status, answer) = http(&addr, method, path, Some(&token), Some(body));
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert!(json(&answer)["error"].as_str().is_some());
    }

    // The offset survives a restart of the daemon.
    assert_eq!(daemon.stop().code(), Some(0));
    let daemon = env.start_daemon();
    let addr = env.api_addr();
    let page = json(
        &http(
            &addr,
            "GET",
            "/v1/consumers/indexer/next?limit=10",
            None,
            None,
        )
        .1,
    );
    assert_eq!(seqs(&page), [3, 4, 5]);
    // The CLI goes through the daemon, prints the batch, then commits it.
    let printed = env.records(&["consume", "indexer", "--limit", "2"]);
    assert_eq!(
        printed
            .iter()
            .map(|a| a["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [3, 4]
    );
    let list = json(&http(&addr, "GET", "/v1/consumers", None, None).1);
    assert_eq!(list["consumers"][0]["name"], "indexer");
    assert_eq!(list["consumers"][0]["offset"], 4);
    assert_eq!(list["consumers"][0]["lag"], 1);
    assert_eq!(daemon.stop().code(), Some(0));

    // Without a daemon, the CLI reads and commits in the store itself.
    let printed = env.records(&["consume", "indexer"]);
    assert_eq!(printed.len(), 1);
    assert_eq!(printed[0]["seq"], 5);
    assert!(env.records(&["consume", "indexer"]).is_empty());
    // Another consumer starts from the beginning.
    assert_eq!(
        env.records(&["consume", "audit", "--limit", "1000"]).len(),
        5
    );
    let daemon = env.start_daemon();
    let list = json(&http(&env.api_addr(), "GET", "/v1/consumers", None, None).1);
    let offsets: Vec<(String, u64)> = list["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        offsets,
        [("audit".to_string(), 5), ("indexer".to_string(), 5)]
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn tail_prints_the_newest_and_follows_across_a_restart() {
    let server = FeedServer::start();
    server.set(
        "/wire.rss",
        generated_feed("tailwire", 12),
        "application/rss+xml",
    );
    let env = TestEnv::new(&format!(
        "[api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n[poll]\nhost_gap = \"0s\"\ninterval = \"1h\"\n[[feeds]]\nurl = \"{}\"\n",
        server.url("/wire.rss")
    ));
    env.once();
    // Without --after: the last ten.
    let last = env.records(&["tail"]);
    assert_eq!(last.first().unwrap()["seq"], 3);
    assert_eq!(last.len(), 10);
    assert_eq!(env.records(&["tail", "--after", "10"]).len(), 2);

    // --follow: prints what is there, waits for a daemon, follows it, and goes on after its
    // restart, each article once.
    let out_path = env.dir.path().join("tail.out");
    let mut tail = follow(&env, 5, &out_path);
    let printed = || crate::util::ndjson(&std::fs::read(&out_path).unwrap_or_default());
    wait_until(Duration::from_secs(20), "the stored articles", || {
        printed().len() == 7
    });
    let daemon = env.start_daemon();
    let token = std::fs::read_to_string(env.dir.path().join("token")).unwrap();
    server.set(
        "/more.rss",
        generated_feed("tailmore", 3),
        "application/rss+xml",
    );
    let (status, _) = http(
        &env.api_addr(),
        "POST",
        "/v1/feeds",
        Some(token.trim()),
        Some(&format!(r#"{{"url": "{}"}}"#, server.url("/more.rss"))),
    );
    assert_eq!(status, 201);
    wait_until(Duration::from_secs(20), "the live articles", || {
        printed().len() == 10
    });
    assert_eq!(daemon.stop().code(), Some(0));
    server.set(
        "/last.rss",
        generated_feed("taillast", 2),
        "application/rss+xml",
    );
    let out = env.run(&["feeds", "add", &server.url("/last.rss")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = env.start_daemon();
    wait_until(
        Duration::from_secs(20),
        "the articles after the restart",
        || printed().len() == 12,
    );
    let _ = tail.kill();
    let _ = tail.wait();
    let seqs: Vec<u64> = printed()
        .iter()
        .map(|a| a["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (6..=17).collect::<Vec<u64>>());
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn tail_follow_waits_out_a_database_held_without_an_api() {
    // A daemon checkpointing as it stops, or starting, holds the database with no API for a
    // moment; a slow machine can stretch that past the 5 s a command waits. A follower waits.
    let server = FeedServer::start();
    server.set(
        "/wire.rss",
        generated_feed("heldwire", 4),
        "application/rss+xml",
    );
    let env = TestEnv::new(&format!(
        "[poll]\nhost_gap = \"0s\"\n[[feeds]]\nurl = \"{}\"\n",
        server.url("/wire.rss")
    ));
    env.once();
    let lock = std::fs::File::options()
        .write(true)
        .open(env.data_dir().join("lock"))
        .unwrap();
    lock.lock().unwrap();
    let out_path = env.dir.path().join("tail.out");
    let mut tail = follow(&env, 0, &out_path);
    std::thread::sleep(Duration::from_secs(7));
    assert!(
        tail.try_wait().unwrap().is_none(),
        "tail --follow gave up on a held database"
    );
    lock.unlock().unwrap();
    let printed = || crate::util::ndjson(&std::fs::read(&out_path).unwrap_or_default());
    wait_until(Duration::from_secs(20), "the stored articles", || {
        printed().len() == 4
    });
    let _ = tail.kill();
    let _ = tail.wait();
}

/// `tail --follow --after AFTER`, printing into `out`.
fn follow(env: &TestEnv, after: u64, out: &std::path::Path) -> std::process::Child {
    crate::util::bin()
        .arg("--config")
        .arg(&env.config)
        .args(["tail", "--follow", "--after", &after.to_string()])
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
