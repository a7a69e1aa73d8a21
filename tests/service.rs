use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::hostile::{Act, Hostile};
use crate::util::{FeedServer, TestEnv, generated_feed, http_get, wait_until};

/// Reads the datagrams the daemon sends until `done` holds of them or `timeout` passes.
fn notifications(
    socket: &UnixDatagram,
    seen: &mut Vec<String>,
    timeout: Duration,
    done: impl Fn(&[String]) -> bool,
) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while !done(seen) {
        assert!(
            start.elapsed() < timeout,
            "timed out; the daemon sent {seen:?}"
        );
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify_and_security() {
    let analyze = |args: &[&str]| Command::new("systemd-analyze").args(args).output();
    if analyze(&["--version"]).is_err() {
        eprintln!("skipped: systemd-analyze is not installed (.ci/run installs it)");
        return;
    }
    let unit = crate::util::data("../../systemd/feedsieve.service");
    let text = std::fs::read_to_string(&unit).expect("the unit file");
    for wanted in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "DynamicUser=yes",
        "StateDirectory=feedsieve",
        "ConfigurationDirectory=feedsieve",
        "ExecReload=",
    ] {
        assert!(text.contains(wanted), "the unit lacks {wanted}");
    }

    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("feedsieve.service");
    std::fs::write(
        &copy,
        text.replace("/usr/local/bin/feedsieve", env!("CARGO_BIN_EXE_feedsieve")),
    )
    .unwrap();
    let verify = analyze(&["verify", copy.to_str().unwrap()]).unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr).into_owned()
        + &String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );

    let security = analyze(&["security", "--offline=true", unit.to_str().unwrap()]).unwrap();
    let out = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = out
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for feedsieve.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {out}"));
    assert!(exposure <= 1.5, "exposure {exposure} > 1.5:\n{out}");
}

#[test]
fn readiness_watchdog_reload_and_stop_are_told_to_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let env = TestEnv::new("");
    let daemon = env.start_daemon_with(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "1000000"),
    ]);
    let mut seen = Vec::new();
    notifications(&socket, &mut seen, Duration::from_secs(20), |s| {
        s.iter().any(|m| m == "READY=1")
    });
    // Ready means the API answers.
    let (status, _) = http_get(&env.api_addr(), "/healthz", None);
    assert_eq!(status, 200);
    // Pings every half second while the scheduler turns.
    notifications(&socket, &mut seen, Duration::from_secs(10), |s| {
        s.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3
    });

    daemon.signal("HUP");
    notifications(&socket, &mut seen, Duration::from_secs(10), |s| {
        s.iter()
            .skip_while(|m| *m != "RELOADING=1")
            .any(|m| m == "READY=1")
    });
    let mut daemon = daemon;
    assert!(daemon.alive());
    let log = daemon.log.clone();
    let exit = daemon.stop();
    assert_eq!(exit.code(), Some(0));
    // After the store is let go, sled writes its snapshot, so the next start is fast.
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("Database checkpointed"), "{log}");
    notifications(&socket, &mut seen, Duration::from_secs(5), |s| {
        s.iter().any(|m| m == "STOPPING=1")
    });
}

#[test]
fn sighup_reloads_feeds_and_keeps_running_on_a_broken_config() {
    let server = FeedServer::start();
    server.set("/a.rss", generated_feed("alpha", 2), "application/rss+xml");
    server.set("/b.rss", generated_feed("bravo", 3), "application/rss+xml");
    let (a, b) = (server.url("/a.rss"), server.url("/b.rss"));
    let env = TestEnv::with_feeds("interval = \"1s\"", std::slice::from_ref(&a));
    let original = std::fs::read_to_string(&env.config).unwrap();
    let mut daemon = env.start_daemon();
    wait_until(Duration::from_secs(20), "alpha's two articles", || {
        env.records(&["articles"]).len() == 2
    });

    // Swap alpha for bravo, change a [poll] setting and retention, and (restart only) the
    // API's address.
    let swapped = original
        .replace(&a, &b)
        .replace("interval = \"1s\"", "interval = \"1s\"\nconcurrency = 4")
        .replace("127.0.0.1:0", "127.0.0.1:1")
        .replace("[poll]", "[retention]\nmax_articles = 1000\n[poll]");
    std::fs::write(&env.config, &swapped).unwrap();
    daemon.signal("HUP");
    wait_until(Duration::from_secs(20), "bravo's articles", || {
        env.records(&["articles"]).len() == 5
    });
    let feeds = env.records(&["feeds"]);
    assert_eq!(feeds.len(), 1, "{feeds:?}");
    assert_eq!(feeds[0]["url"], b.as_str());
    // alpha is no longer polled.
    let polls = server.seen("/a.rss").len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        server.seen("/a.rss").len(),
        polls,
        "alpha polled after removal"
    );
    let log = daemon.log();
    for line in [
        "Poll settings reloaded",
        "Dedup and retention settings reloaded",
        "take effect at the next restart",
    ] {
        assert!(log.contains(line), "{line} not in\n{log}");
    }

    // A broken config is refused; the running one stays and polling goes on.
    std::fs::write(&env.config, swapped.replace("[poll]", "[poll]\nbogus = 1")).unwrap();
    daemon.signal("HUP");
    wait_until(Duration::from_secs(10), "the refusal in the log", || {
        daemon.log().contains("Reload refused")
    });
    assert!(daemon.log().contains("bogus"), "the log names the key");
    let polls = server.seen("/b.rss").len();
    wait_until(Duration::from_secs(10), "bravo still polled", || {
        server.seen("/b.rss").len() > polls
    });
    assert!(daemon.alive());
    // (The CLI itself refuses the broken file, so ask the API.)
    let (status, body) = http_get(&env.api_addr(), "/v1/feeds", None);
    assert_eq!(status, 200);
    assert!(body.contains("b.rss") && !body.contains("a.rss"), "{body}");
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn sigterm_with_polls_stuck_in_flight_stops_in_time_and_keeps_everything() {
    let server = FeedServer::start();
    server.set("/ok.rss", generated_feed("kept", 4), "application/rss+xml");
    let slow = Hostile::start();
    let mut urls = vec![server.url("/ok.rss")];
    for i in 0..8 {
        let path = format!("/stuck-{i}.rss");
        // A body that would take ten minutes to arrive.
        slow.set(
            &path,
            Act::Trickle {
                pause: Duration::from_secs(1),
                body: vec![b' '; 600],
            },
        );
        urls.push(slow.url(&path));
    }
    let env = TestEnv::with_feeds("interval = \"1h\"\ntimeout = \"10m\"\nper_host = 16", &urls);
    let daemon = env.start_daemon();
    wait_until(Duration::from_secs(20), "the good feed stored", || {
        env.records(&["articles"]).len() == 4
    });
    wait_until(
        Duration::from_secs(20),
        "every stuck poll in flight",
        || slow.all_hits().len() == 8,
    );
    let before = env.records(&["articles"]);

    let asked = Instant::now();
    let exit = daemon.stop();
    let took = asked.elapsed();
    assert_eq!(exit.code(), Some(0));
    // The grace period (10 s) and then cancellation: well inside TimeoutStopSec (30 s).
    assert!(took < Duration::from_secs(15), "stopping took {took:?}");
    assert_eq!(env.records(&["articles"]), before);
}

#[test]
fn retention_keeps_the_newest_and_a_deleted_story_stays_a_duplicate() {
    let server = FeedServer::start();
    server.set("/a.rss", generated_feed("older", 6), "application/rss+xml");
    let a = server.url("/a.rss");
    let env = TestEnv::with_feeds("", std::slice::from_ref(&a));
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace("[poll]", "[retention]\nmax_articles = 4\n[poll]"),
    )
    .unwrap();
    env.once();
    let kept = env.records(&["articles"]);
    let seqs: Vec<u64> = kept.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![3, 4, 5, 6], "the four newest stay");

    // Another outlet runs the two deleted stories (and one kept one) under new guids: inside
    // the dedup window, the deleted ones are still duplicates, of the deleted articles.
    let feed = generated_feed("older", 6)
        .replace("\">older-", "\">copy-")
        .replace("https://older.example/", "https://copy.example/");
    server.set("/b.rss", feed, "application/rss+xml");
    let b = server.url("/b.rss");
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{config}[[feeds]]\nurl = \"{b}\"\n")).unwrap();
    env.once();
    let ids = |records: &[serde_json::Value]| -> Vec<String> {
        records.iter().map(|a| a["id"].to_string()).collect()
    };
    assert_eq!(
        ids(&env.records(&["articles"])),
        ids(&kept),
        "nothing came back as new"
    );
    let dups = env.records(&["duplicates"]);
    assert_eq!(dups.len(), 6, "{dups:#?}");
    assert!(dups.iter().all(|d| d["reason"] == "content"));
}

#[test]
fn logs_are_json_lines_on_request_and_version_prints() {
    let version = crate::util::bin().arg("--version").output().unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("feedsieve {}", env!("CARGO_PKG_VERSION"))
    );

    let server = FeedServer::start();
    server.set("/a.rss", generated_feed("logged", 2), "application/rss+xml");
    let env = TestEnv::with_feeds("", &[server.url("/a.rss")]);
    let out = env.run(&["--log-format", "json", "run", "--once"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let poll = lines
        .iter()
        .find(|l| l["message"] == "Polled feed.")
        .unwrap_or_else(|| panic!("no poll line in {stderr}"));
    assert_eq!(poll["level"], "INFO");
    assert_eq!(poll["new"], 2);
    assert_eq!(poll["status"], 200);
}

#[test]
fn fsck_checks_the_database_and_waits_for_the_daemon_to_stop() {
    let server = FeedServer::start();
    server.set(
        "/a.rss",
        generated_feed("checked", 5),
        "application/rss+xml",
    );
    // The same stories again under other guids: duplicates with their links.
    let copies = generated_feed("checked", 5).replace("\">checked-", "\">again-");
    server.set("/b.rss", copies, "application/rss+xml");
    let env = TestEnv::with_feeds("", &[server.url("/a.rss"), server.url("/b.rss")]);
    env.once();
    let out = env.run(&["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("fsck: 5 articles, 0 tombstones, 5 duplicates: clean"),
        "{stdout}"
    );

    let daemon = env.start_daemon();
    let out = env.run(&["fsck"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it, then run fsck"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(daemon.stop().code(), Some(0));
    let out = env.run(&["fsck", "--repair"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("clean after repair"));
    assert_eq!(env.records(&["articles"]).len(), 5);
}
