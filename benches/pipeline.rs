//! Throughput of the per-article work: HTML to text, fingerprints, and the dedup lookups against a
//! store that already holds many articles.
//!
//!     cargo bench --bench pipeline                 # 100,000 stored
//!     cargo bench --bench pipeline -- --stored 1000000 --cache-mb 64
//!
//! It ends by opening the store again, timing the dedup indexes loaded from `lookup.bin` and
//! rebuilt from the article log.
//!
//! Articles are the BBC news corpus in `../shared/corpus/news/` when it is there (real lengths,
//! median 326 words), else synthetic 400-word texts. The stored articles are synthetic texts drawn
//! from the same vocabulary, so no lookup is answered by an exact match.

mod support;

use std::path::Path;
use std::time::Instant;

use chrono::Utc;
use feedsieve::dedup::fingerprint::{Fingerprint, fingerprint};
use feedsieve::dedup::{Index, Settings, judge};
use feedsieve::parse::Candidate;
use feedsieve::parse::normalize::html_to_text;
use feedsieve::store::{Options, Store};

fn main() {
    let flags = support::Flags::from_env();
    let stored: usize = flags.parse("--stored", 100_000);
    let cache_mb: u64 = flags.parse("--cache-mb", Options::default().cache_bytes >> 20);

    let (bodies, source) = load_articles();
    let words: usize = bodies.iter().map(|b| b.split_whitespace().count()).sum();
    println!(
        "articles: {} from {source}, {} words on average",
        bodies.len(),
        words / bodies.len().max(1)
    );
    let html: Vec<String> = bodies.iter().map(|b| to_html(b)).collect();
    let html_bytes: usize = html.iter().map(String::len).sum();

    // 1. HTML to text.
    let rounds = 5;
    let start = Instant::now();
    let mut texts = Vec::new();
    for _ in 0..rounds {
        texts = html.iter().map(|h| html_to_text(h)).collect::<Vec<_>>();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (html.len() * rounds) as f64;
    println!(
        "normalize (HTML to text):  {:>9.0} articles/s  {:>6.1} MB/s",
        n / secs,
        (html_bytes * rounds) as f64 / secs / 1e6
    );

    // 2. Fingerprints (clean, content hash, simhash, winnowed marks).
    let start = Instant::now();
    let mut fps: Vec<Fingerprint> = Vec::new();
    for _ in 0..rounds {
        fps = texts.iter().map(|t| fingerprint(t)).collect();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("fingerprint:               {:>9.0} articles/s", n / secs);

    // 1+2 on exactly 400-word articles, one core.
    let four_hundred: Vec<String> = {
        let all: Vec<&str> = bodies.iter().flat_map(|b| b.split(' ')).collect();
        all.chunks(400)
            .filter(|c| c.len() == 400)
            .map(|c| {
                to_html(
                    &c.chunks(60)
                        .map(|p| p.join(" "))
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                )
            })
            .collect()
    };
    let start = Instant::now();
    for _ in 0..rounds {
        for h in &four_hundred {
            std::hint::black_box(fingerprint(&html_to_text(h)));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "normalize + fingerprint:   {:>9.0} articles/s  (400-word articles, one core)",
        (four_hundred.len() * rounds) as f64 / secs
    );

    // 3. A store holding `stored` articles.
    let vocabulary: Vec<&str> = bodies.iter().flat_map(|b| b.split_whitespace()).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let options = Options {
        cache_bytes: cache_mb << 20,
        ..Options::default()
    };
    let store = Store::open(dir.path(), &options).expect("open store");
    store.prepare_lookup().expect("dedup indexes");
    let mut writer = store.writer().expect("writer");
    let mut rng = fastrand::Rng::with_seed(42);
    let now = Utc::now();
    let start = Instant::now();
    for i in 0..stored {
        let text: Vec<&str> = (0..400)
            .map(|_| vocabulary[rng.usize(..vocabulary.len())])
            .collect();
        let text = text.join(" ");
        let c = Candidate {
            feed: format!("http://bench.example/{}", i % 1000),
            guid: format!("bench-{i}"),
            url: Some(format!("https://bench.example/a/{i}")),
            title: format!("stored {i}"),
            published: None,
            text,
        };
        writer
            .insert_article(&c, &fingerprint(&c.text), now)
            .expect("insert");
        // One batch per 20 articles, as the sieve commits one per feed's report.
        if (i + 1) % 20 == 0 {
            writer.commit().expect("commit");
        }
        if (i + 1) % (stored / 10).max(1) == 0 {
            eprintln!("filling the store: {:>9}/{stored}", i + 1);
        }
    }
    writer.commit().expect("commit");
    let secs = start.elapsed().as_secs_f64();
    store.flush().expect("flush");
    println!(
        "store (fingerprint+insert): {:>8.0} articles/s while filling {stored} ({:.0} bytes on disk per article)",
        stored as f64 / secs,
        store.size_on_disk().unwrap_or(0) as f64 / stored.max(1) as f64
    );
    println!(
        "index:                      {:>8.0} bytes of memory per stored article (every dedup index)",
        store.index_bytes().unwrap_or(0) as f64 / stored.max(1) as f64
    );
    let parts: Vec<String> = store
        .index_parts()
        .unwrap_or_default()
        .iter()
        .map(|(name, bytes)| format!("{name} {:.0}", *bytes as f64 / stored.max(1) as f64))
        .collect();
    println!("index by table (bytes per article): {}", parts.join(", "));
    let kib = |field: &str| support::status_kib(0, field) as f64;
    println!(
        "process memory:             {:>8.0} MB resident after the fill (peak {:.0} MB), of which the dedup indexes {:.0} MB and the {} articles' texts held by this bench {:.0} MB",
        kib("VmRSS:") / 1024.0,
        kib("VmHWM:") / 1024.0,
        store.index_bytes().unwrap_or(0) as f64 / 1e6 / 1.048_576,
        bodies.len(),
        html_bytes as f64 * 2.0 / 1_048_576.0
    );

    // 4. Lookups against it: each measured over ROUNDS passes after a warm-up pass, the median
    // pass reported (the machine is shared with sled's background threads and the kernel's
    // writeback of what the fill wrote).
    let lookups = fps.len();
    let mut near = 0;
    let rate = median_rate(lookups, || {
        near = 0;
        for fp in &fps {
            near += usize::from(store.nearest(fp.simhash, 3).expect("nearest").is_some());
        }
    });
    println!(
        "near lookup (k=3):         {rate:>9.0} lookups/s  with {stored} stored ({near} hits)"
    );
    let rate = median_rate(lookups, || {
        for fp in &fps {
            store.overlaps(&fp.anchors, fp, 4).expect("overlaps");
        }
    });
    println!("containment lookup:        {rate:>9.0} lookups/s  with {stored} stored");

    let settings = Settings {
        max_distance: 3,
        containment: 0.7,
    };
    let candidates: Vec<Candidate> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Candidate {
            feed: "http://bench.example/new".into(),
            guid: format!("new-{i}"),
            url: Some(format!("https://bench.example/new/{i}")),
            title: String::new(),
            published: None,
            text: t.clone(),
        })
        .collect();
    let rate = median_rate(lookups, || {
        for (c, fp) in candidates.iter().zip(&fps) {
            judge(c, fp, &store, settings).expect("judge");
        }
    });
    println!("judge (all checks):        {rate:>9.0} articles/s with {stored} stored");

    // 5. Opening the store again: the dedup indexes from lookup.bin, then from the log alone.
    store.flush().expect("flush");
    drop(writer);
    drop(store);
    for (what, remove) in [("from lookup.bin", false), ("rebuilt from the log", true)] {
        if remove {
            std::fs::remove_file(dir.path().join("lookup.bin")).expect("remove lookup.bin");
        }
        let start = Instant::now();
        let store = Store::open(dir.path(), &options).expect("reopen");
        let opened = start.elapsed().as_secs_f64();
        let window = store.prepare_lookup().expect("dedup indexes");
        println!(
            "open:                      {:>9.2} s: sled {opened:.2} s, dedup indexes {:.2} s {what} ({window} articles in the window)",
            start.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64() - opened
        );
        store.flush().expect("save lookup.bin");
    }

    // 6. The real daemon starting on this store: READY (database open, API listening), then the
    // dedup indexes loaded in the background; twice, the second time after the first run's
    // stop has checkpointed the database.
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        "data_dir = \".\"\n[api]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    for round in ["first start", "after a stop"] {
        let (ready, indexed, stopped) = daemon_start(dir.path(), &config);
        println!(
            "daemon start ({round:>12}): READY after {ready:.2} s, dedup indexes ready after {indexed:.2} s; SIGTERM to exit {stopped:.2} s"
        );
    }
}

/// Starts `feedsieve run` on `config`: seconds until it tells systemd READY=1, until it logs
/// that its dedup indexes are ready, and from SIGTERM to its exit (checkpoint included).
fn daemon_start(dir: &Path, config: &Path) -> (f64, f64, f64) {
    use std::os::unix::net::UnixDatagram;
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(20)))
        .expect("timeout");
    let log_path = dir.join(format!("daemon-{}.log", fastrand::u32(..)));
    let log = std::fs::File::create(&log_path).expect("log file");
    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_feedsieve"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "info")
        .stderr(log)
        .spawn()
        .expect("start feedsieve");
    let mut buf = [0u8; 256];
    let ready = loop {
        if let Ok(n) = socket.recv(&mut buf)
            && &buf[..n] == b"READY=1"
        {
            break start.elapsed().as_secs_f64();
        }
        assert!(
            start.elapsed().as_secs() < 300,
            "no READY=1 from the daemon"
        );
    };
    let indexed = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("Dedup indexes ready") {
            break start.elapsed().as_secs_f64();
        }
        assert!(
            start.elapsed().as_secs() < 600,
            "indexes never ready:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stopping = Instant::now();
    // SAFETY: kill(2) on the pid of the child we just spawned and have not waited for.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "the daemon exited with {status}");
    (ready, indexed, stopping.elapsed().as_secs_f64())
}

/// Passes of each lookup measurement.
const ROUNDS: usize = 5;

/// Runs `pass` (which does `per_pass` operations) once to warm up, then [`ROUNDS`] times; the
/// median pass's rate.
fn median_rate(per_pass: usize, mut pass: impl FnMut()) -> f64 {
    pass();
    let mut rates: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            pass();
            per_pass as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[ROUNDS / 2]
}

/// Bodies from the BBC corpus when present, else synthetic ones.
fn load_articles() -> (Vec<String>, &'static str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/news/bbc_news_2004_2005.jsonl");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bodies: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["body"].as_str().map(str::to_string))
            .collect();
        if !bodies.is_empty() {
            return (bodies, "the BBC corpus");
        }
    }
    let stories: Vec<String> = ["solar", "rail", "library", "glacier"]
        .iter()
        .map(|s| {
            std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/stories/{s}.txt")),
            )
            .unwrap_or_default()
        })
        .collect();
    let vocabulary: Vec<&str> = stories.iter().flat_map(|s| s.split_whitespace()).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let bodies = (0..2000)
        .map(|_| {
            (0..8)
                .map(|_| {
                    (0..50)
                        .map(|_| vocabulary[rng.usize(..vocabulary.len())])
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .collect();
    (bodies, "synthetic text (../shared/corpus/news not found)")
}

/// Wraps a plain body the way feeds carry it: paragraphs, an inline link, entities.
fn to_html(body: &str) -> String {
    body.split("\n\n")
        .map(|p| {
            let p = p.replace('&', "&amp;").replace('\'', "&#8217;");
            format!("<p>{p} <a href=\"https://example.org/more\">More</a></p>\n")
        })
        .collect()
}
