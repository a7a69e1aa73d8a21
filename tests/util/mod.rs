//! The test harness: a temp directory with a config, the real `feedsieve` binary run as a
//! command or as a daemon, and helpers to build feeds from the fixture stories.

#![allow(dead_code)]

pub mod hostile;
pub mod nats;
pub mod server;
pub mod sse;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use server::FeedServer;

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_feedsieve"))
}

/// The folder of the fixtures.
pub fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// A fixture feed's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data(&format!("feeds/{name}"))).expect("fixture feed")
}

/// The content type of a fixture feed, by its extension.
pub fn fixture_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("atom") => "application/atom+xml",
        Some("json") => "application/feed+json",
        _ => "application/rss+xml",
    }
}

/// The herald fixture with one more item (the library story), as a publisher adds one.
pub fn herald_with_library() -> String {
    let herald = String::from_utf8(fixture("herald.rss")).expect("UTF-8 fixture");
    let text = story("library");
    let item = rss(
        "x",
        &[Item {
            guid: "herald-lib",
            link: "https://herald.example.org/lib",
            title: "Tools to borrow",
            text: &text,
            date: "Thu, 12 Mar 2026 10:00:00 GMT",
        }],
    );
    let item =
        &item[item.find("<item>").unwrap_or(0)..item.find("</channel>").unwrap_or(item.len())];
    herald.replace("</channel>", &format!("{item}</channel>"))
}

/// A fixture story's text, paragraphs separated by blank lines.
pub fn story(name: &str) -> String {
    std::fs::read_to_string(data(&format!("stories/{name}.txt")))
        .expect("fixture story")
        .trim()
        .to_string()
}

/// Polls `f` every 50 ms until it is true; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temp directory holding a config file; the database goes in its `data` folder.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl TestEnv {
    /// A config of `data_dir = "data"`, an API on a free loopback port, and `body`.
    pub fn new(body: &str) -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("feedsieve.toml");
        let mut text = String::from("data_dir = \"data\"\n");
        if !body.contains("[api]") {
            text.push_str("[api]\nlisten = \"127.0.0.1:0\"\n");
        }
        text.push_str(body);
        std::fs::write(&config, text).expect("write config");
        TestEnv { dir, config }
    }

    /// A config with `[poll]` settings `poll` and one `[[feeds]]` per URL. Every test server is
    /// on 127.0.0.1, one host, so the gap between requests to it is 0 unless `poll` sets one.
    pub fn with_feeds(poll: &str, urls: &[String]) -> TestEnv {
        let gap = if poll.contains("host_gap") {
            ""
        } else {
            "host_gap = \"0s\"\n"
        };
        let mut body = format!("[poll]\n{gap}{poll}\n");
        for url in urls {
            body.push_str(&format!("[[feeds]]\nurl = \"{url}\"\n"));
        }
        TestEnv::new(&body)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `feedsieve --config FILE ARGS...` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        bin()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "feedsieve=debug")
            .output()
            .expect("run feedsieve")
    }

    /// Runs a command that must succeed and returns its stdout as NDJSON records.
    pub fn records(&self, args: &[&str]) -> Vec<Value> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "feedsieve {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        ndjson(&out.stdout)
    }

    /// `run --once`, which must succeed; returns its stderr.
    pub fn once(&self) -> String {
        let out = self.run(&["run", "--once"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "run --once failed: {}\n{stderr}",
            out.status
        );
        stderr
    }

    /// Starts `feedsieve run` and waits until its API is up.
    pub fn start_daemon(&self) -> Daemon {
        self.start_daemon_with(&[])
    }

    /// Starts `feedsieve run` with extra environment variables and waits until its API is up.
    pub fn start_daemon_with(&self, envs: &[(&str, &str)]) -> Daemon {
        let log = self
            .dir
            .path()
            .join(format!("daemon-{}.log", fastrand::u32(..)));
        let child = bin()
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("RUST_LOG", "feedsieve=debug")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the daemon");
        let daemon = Daemon { child, log };
        let info = self.data_dir().join("daemon.json");
        wait_until(Duration::from_secs(20), "the daemon's API", || {
            info.exists()
        });
        daemon
    }

    /// The feed states, by URL.
    pub fn feed(&self, url: &str) -> Value {
        self.records(&["feeds"])
            .into_iter()
            .find(|f| f["url"] == url)
            .unwrap_or_else(|| panic!("no feed {url}"))
    }
}

/// Parses NDJSON.
pub fn ndjson(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

/// A running `feedsieve run`; killed if the test forgets to stop it.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the daemon did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        let signal = match name {
            "TERM" => libc::SIGTERM,
            "INT" => libc::SIGINT,
            "HUP" => libc::SIGHUP,
            "KILL" => libc::SIGKILL,
            other => panic!("unknown signal {other}"),
        };
        // SAFETY: kill(2) with the pid of a child we spawned and still own.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill -{name} failed");
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the daemon said last (its log goes with the temp dir).
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(&self.log)
        {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// One RSS item for [`rss`].
#[derive(Clone, Copy)]
pub struct Item<'a> {
    pub guid: &'a str,
    pub link: &'a str,
    pub title: &'a str,
    pub text: &'a str,
    pub date: &'a str,
}

/// An RSS 2.0 feed carrying `items` (text paragraphs become `<p>` elements).
pub fn rss(title: &str, items: &[Item]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>{}</title><link>https://example.org/</link><description>test</description>\n",
        esc(title)
    );
    for it in items {
        let html: String = it
            .text
            .split("\n\n")
            .map(|p| format!("<p>{}</p>", esc(p)))
            .collect();
        out.push_str(&format!(
            "<item><title>{}</title><link>{}</link><guid isPermaLink=\"false\">{}</guid><pubDate>{}</pubDate><description>{}</description></item>\n",
            esc(it.title),
            esc(it.link),
            esc(it.guid),
            it.date,
            esc(&html)
        ));
    }
    out.push_str("</channel></rss>\n");
    out
}

/// A plain HTTP/1.1 GET: (status, body). Enough for the API's JSON answers.
pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    http(addr, "GET", path, token, None)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

impl TestEnv {
    /// The address the running daemon's API is bound to.
    pub fn api_addr(&self) -> String {
        let info: Value = serde_json::from_slice(
            &std::fs::read(self.data_dir().join("daemon.json")).expect("daemon.json"),
        )
        .expect("daemon.json is JSON");
        info["listen"].as_str().expect("listen").to_string()
    }
}

/// An HTTP/1.1 request with any method and an optional JSON body: (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// Made-up words, so that generated articles are distinct stories to dedup.
fn vocabulary() -> Vec<String> {
    let onsets = [
        "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st",
    ];
    let vowels = ["a", "e", "i", "o", "u", "ai", "ou"];
    let codas = ["", "n", "r", "s", "l", "t", "m"];
    let mut words = Vec::new();
    for o in onsets {
        for v in vowels {
            for c in codas {
                for v2 in ["a", "o", "i"] {
                    words.push(format!("{o}{v}{c}{v2}"));
                }
            }
        }
    }
    words
}

/// A distinct article body of about `words` made-up words, by `seed`, in paragraphs.
pub fn distinct_text(seed: u64, words: usize) -> String {
    let vocab = vocabulary();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = String::new();
    for i in 0..words {
        if i > 0 {
            out.push_str(if i % 40 == 0 { ".\n\n" } else { " " });
        }
        out.push_str(&vocab[rng.usize(..vocab.len())]);
    }
    out.push('.');
    out
}

/// An RSS feed of `count` distinct stories; item `i` has guid `{prefix}-{i}` and a text seeded
/// by `prefix` and `i`, so two feeds with different prefixes share nothing.
pub fn generated_feed(prefix: &str, count: usize) -> String {
    let seed = prefix
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
    let items: Vec<(String, String, String, String)> = (0..count)
        .map(|i| {
            (
                format!("{prefix}-{i}"),
                format!("https://{prefix}.example/story/{i}"),
                format!("Story {i} of {prefix}"),
                distinct_text(seed.wrapping_mul(1_000_003).wrapping_add(i as u64), 120),
            )
        })
        .collect();
    let list: Vec<Item> = items
        .iter()
        .map(|(guid, link, title, text)| Item {
            guid,
            link,
            title,
            text,
            date: "Thu, 12 Mar 2026 10:00:00 GMT",
        })
        .collect();
    rss(prefix, &list)
}

/// Feeds that keep publishing, for tests that interrupt the daemon mid-ingest: each of `names`
/// is served at `/{name}.rss` and grows by an item every 100 ms (up to 400).
pub struct Publisher {
    pub server: std::sync::Arc<FeedServer>,
    pub urls: Vec<String>,
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Publisher {
    pub fn start(names: &'static [&'static str]) -> Publisher {
        use std::sync::atomic::{AtomicBool, Ordering};
        let server = std::sync::Arc::new(FeedServer::start());
        let urls = names
            .iter()
            .map(|n| server.url(&format!("/{n}.rss")))
            .collect();
        for n in names {
            server.set(
                &format!("/{n}.rss"),
                generated_feed(n, 1),
                "application/rss+xml",
            );
        }
        let running = std::sync::Arc::new(AtomicBool::new(true));
        let thread = {
            let (server, running) = (server.clone(), running.clone());
            std::thread::spawn(move || {
                let mut count = 1;
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    count += 1;
                    for n in names {
                        let feed = generated_feed(n, count.min(400));
                        server.set(&format!("/{n}.rss"), feed, "application/rss+xml");
                    }
                }
            })
        };
        Publisher {
            server,
            urls,
            running,
            thread: Some(thread),
        }
    }

    /// Stops publishing (the feeds stay served as they are).
    pub fn stop(&mut self) {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the publisher thread");
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// (seq, id) of every article `articles` lists (through the daemon's API while it runs).
pub fn listed(env: &TestEnv) -> std::collections::BTreeMap<u64, String> {
    env.records(&["articles"])
        .iter()
        .map(|a| (a["seq"].as_u64().unwrap(), a["id"].to_string()))
        .collect()
}
