//! A soak test: does the daemon's memory and disk level off when it runs for a long time with
//! retention on?
//!
//!     cargo bench --bench soak                                  # 300 feeds, 10 minutes
//!     cargo bench --bench soak -- --seconds 90 --sample 15 --feeds 100
//!     cargo bench --bench soak -- --max-age 5m --max-articles 5000 --data /tmp/soak
//!
//! `--feeds N` RSS feeds are served from this process on 127.0.0.1 to 127.0.0.`--hosts`, with
//! ETag, Last-Modified and 304s. Each feed publishes a new item every `--period` seconds (each
//! with its own phase) and always lists its latest 20: a headline, a stable guid and link, a
//! pubDate and a ~300-word body drawn from the BBC corpus's vocabulary, seeded by feed and item
//! number; one item in ten is a copy of another feed's earlier item under a new headline, so
//! duplicates are dropped all along. The real daemon (`feedsieve run`) polls every feed every
//! `--interval` with `[retention] max_age = --max-age` and `max_articles = --max-articles` and a
//! `--window` dedup window, for `--minutes` (or `--seconds`). (Keep `--max-age` longer than the
//! 20 items a feed lists, 100 s by default: an item deleted and out of the window while its feed
//! still lists it is stored again, by design.)
//!
//! Every `--sample` seconds it records the daemon's RSS and peak RSS (`/proc/PID/status`), the
//! data folder's size on disk (allocated blocks, as `du` counts), the articles stored so far
//! (`/healthz`), the articles still kept (newest seq minus oldest kept seq, plus one) and the
//! duplicates dropped (`/metrics`), printing a progress line each time. At the end: a Markdown
//! table, a bar plot of RSS and disk over time, a verdict ("levelled off" when the mean of the
//! last third of the samples is less than 10% above the mean of the middle third, for memory and
//! for disk alike; "still growing" otherwise), and the daemon is stopped with SIGTERM and must
//! exit 0.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use support::vocabulary;

/// Items a feed lists at once.
const ITEMS: u64 = 20;

struct Args {
    feeds: usize,
    hosts: usize,
    period: f64,
    seconds: u64,
    sample: u64,
    interval: String,
    window: String,
    max_age: String,
    max_articles: u64,
    data: Option<PathBuf>,
}

fn args() -> Args {
    let flags = support::Flags::from_env();
    let get = |name: &str| flags.get(name);
    let num = |name: &str, default: u64| flags.parse(name, default);
    let seconds = flags.parse("--seconds", num("--minutes", 10) * 60);
    Args {
        feeds: num("--feeds", 300).max(2) as usize,
        hosts: num("--hosts", 4).clamp(1, 250) as usize,
        period: flags.parse("--period", 5.0f64).max(0.1),
        seconds,
        sample: num("--sample", 30).max(1),
        interval: get("--interval").unwrap_or_else(|| "5s".into()),
        window: get("--window").unwrap_or_else(|| "2m".into()),
        max_age: get("--max-age").unwrap_or_else(|| "3m".into()),
        max_articles: num("--max-articles", 20_000),
        data: get("--data").map(PathBuf::from),
    }
}

/// The feeds, as functions of the clock: what feed `f` lists now is fixed by `f` and the time.
struct Feeds {
    count: u64,
    period_ms: u64,
    words: Vec<String>,
    /// Each feed's last answer.
    cache: Vec<Mutex<Option<Rendered>>>,
    ok: AtomicUsize,
    not_modified: AtomicUsize,
}

/// A feed as rendered for its newest item.
struct Rendered {
    newest: u64,
    body: bytes::Bytes,
    etag: String,
    modified: String,
}

impl Feeds {
    /// A seed for item `k` of feed `f`, one per use (`what`).
    fn seed(f: u64, k: u64, what: u8) -> u64 {
        let mut key = [0u8; 17];
        key[..8].copy_from_slice(&f.to_le_bytes());
        key[8..16].copy_from_slice(&k.to_le_bytes());
        key[16] = what;
        xxhash_rust::xxh3::xxh3_64(&key)
    }

    /// Feed `f`'s phase, so that feeds publish at different moments.
    fn phase_ms(&self, f: u64) -> u64 {
        Self::seed(f, 0, 0) % self.period_ms
    }

    /// When item `k` of feed `f` is published (ms since the epoch).
    fn published_ms(&self, f: u64, k: u64) -> u64 {
        (k * self.period_ms).saturating_sub(self.phase_ms(f))
    }

    /// The newest item of feed `f` at `now_ms`.
    fn newest(&self, f: u64, now_ms: u64) -> u64 {
        (now_ms + self.phase_ms(f)) / self.period_ms
    }

    fn random_words(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<&str> {
        (0..n)
            .map(|_| self.words[rng.usize(..self.words.len())].as_str())
            .collect()
    }

    /// The body of item `k` of feed `f`: its own ~300 words, or (one item in ten) the body of
    /// another feed's previous item, which was published before this one.
    fn body(&self, f: u64, k: u64, depth: u32) -> String {
        let copy = Self::seed(f, k, 1);
        if copy.is_multiple_of(10) && depth < 8 {
            let other = (f + 1 + (copy >> 8) % (self.count - 1)) % self.count;
            return self.body(other, k.saturating_sub(1), depth + 1);
        }
        let mut rng = fastrand::Rng::with_seed(Self::seed(f, k, 2));
        let n = rng.usize(250..350);
        self.random_words(&mut rng, n)
            .chunks(60)
            .map(|p| format!("<p>{}</p>", p.join(" ")))
            .collect()
    }

    /// Feed `f` as RSS 2.0 with its newest item `newest`.
    fn render(&self, f: u64, newest: u64) -> String {
        let mut out = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>Soak feed {f}</title><link>https://soak{f}.example/</link><description>soak</description>\n"
        );
        for k in (newest.saturating_sub(ITEMS - 1)..=newest).rev() {
            let mut rng = fastrand::Rng::with_seed(Self::seed(f, k, 3));
            let title = self.random_words(&mut rng, 8).join(" ");
            let date = http_date(self.published_ms(f, k));
            out.push_str(&format!(
                "<item><title>{title}</title><guid isPermaLink=\"false\">soak-{f}-{k}</guid><link>https://soak{f}.example/{k}</link><pubDate>{date}</pubDate><description><![CDATA[{}]]></description></item>\n",
                self.body(f, k, 0)
            ));
        }
        out.push_str("</channel></rss>\n");
        out
    }
}

fn http_date(ms: u64) -> String {
    chrono::DateTime::from_timestamp((ms / 1000) as i64, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Serves `/feeds/{f}.xml`: 304 when the client's ETag (or Last-Modified) is current.
async fn serve(State(feeds): State<Arc<Feeds>>, headers: HeaderMap, request: Request) -> Response {
    let Some(f) = request
        .uri()
        .path()
        .strip_prefix("/feeds/")
        .and_then(|p| p.strip_suffix(".xml"))
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&f| f < feeds.count)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let newest = feeds.newest(f, now_ms());
    let (body, etag, modified) = {
        let mut cached = feeds.cache[f as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let c = match cached.take() {
            Some(c) if c.newest == newest => cached.insert(c),
            _ => cached.insert(Rendered {
                newest,
                body: bytes::Bytes::from(feeds.render(f, newest)),
                etag: format!("\"{f}-{newest}\""),
                modified: http_date(feeds.published_ms(f, newest)),
            }),
        };
        (c.body.clone(), c.etag.clone(), c.modified.clone())
    };
    let header_is = |name, value: &str| {
        headers
            .get(name)
            .is_some_and(|v: &axum::http::HeaderValue| v.as_bytes() == value.as_bytes())
    };
    let current = if headers.contains_key(header::IF_NONE_MATCH) {
        header_is(header::IF_NONE_MATCH, &etag)
    } else {
        header_is(header::IF_MODIFIED_SINCE, &modified)
    };
    if current {
        feeds.not_modified.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    feeds.ok.fetch_add(1, Ordering::Relaxed);
    (
        [
            (header::CONTENT_TYPE, "application/rss+xml".to_string()),
            (header::ETAG, etag),
            (header::LAST_MODIFIED, modified),
        ],
        body,
    )
        .into_response()
}

/// One look at the daemon.
struct Sample {
    seconds: u64,
    rss_kib: u64,
    peak_kib: u64,
    disk: u64,
    stored: u64,
    kept: u64,
    duplicates: u64,
}

/// Bytes allocated on disk under `dir` (what `du` counts).
fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_usage(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

async fn get_text(http: &reqwest::Client, url: String) -> String {
    match http.get(url).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Articles stored so far, articles kept now, duplicates dropped so far, from the API.
async fn counts(http: &reqwest::Client, base: &str) -> (u64, u64, u64) {
    let json = |t: String| serde_json::from_str::<serde_json::Value>(&t).unwrap_or_default();
    let last = json(get_text(http, format!("{base}/healthz")).await)["last_seq"]
        .as_u64()
        .unwrap_or(0);
    let oldest = json(get_text(http, format!("{base}/v1/articles?after=0&limit=1")).await)
        ["articles"][0]["seq"]
        .as_u64();
    let kept = oldest.map_or(0, |o| last.saturating_sub(o) + 1);
    let duplicates = get_text(http, format!("{base}/metrics"))
        .await
        .lines()
        .filter(|l| l.starts_with("feedsieve_duplicates_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64;
    (last, kept, duplicates)
}

fn start_daemon(dir: &Path, a: &Args, urls: &[String]) -> (Child, PathBuf) {
    let mut config = format!(
        "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:0\"\n[poll]\ninterval = \"{}\"\nconcurrency = 16\nper_host = 4\nhost_gap = \"0s\"\n[dedup]\nwindow = \"{}\"\n[retention]\nmax_age = \"{}\"\nmax_articles = {}\n",
        a.interval, a.window, a.max_age, a.max_articles
    );
    for u in urls {
        config.push_str(&format!("[[feeds]]\nurl = \"{u}\"\n"));
    }
    let data = dir.join("data");
    let _ = std::fs::remove_file(data.join("daemon.json"));
    (support::spawn_daemon(dir, &config), data)
}

/// The daemon's log, last lines, for when it failed.
fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// How much the mean of the last third of `values` exceeds the mean of the middle third.
fn growth(values: &[f64]) -> f64 {
    let n = values.len();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let middle = mean(&values[n / 3..2 * n / 3]);
    let last = mean(&values[2 * n / 3..]);
    if middle > 0.0 {
        last / middle - 1.0
    } else {
        0.0
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() {
    let a = args();
    let feeds = Arc::new(Feeds {
        count: a.feeds as u64,
        period_ms: (a.period * 1000.0) as u64,
        words: vocabulary(),
        cache: (0..a.feeds).map(|_| Mutex::new(None)).collect(),
        ok: AtomicUsize::new(0),
        not_modified: AtomicUsize::new(0),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut addrs = Vec::new();
    for h in 0..a.hosts {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(format!(
                "127.0.0.{}:0",
                h + 1
            )))
            .expect("bind loopback");
        addrs.push(listener.local_addr().expect("addr"));
        let app = Router::new().fallback(serve).with_state(feeds.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    let urls: Vec<String> = (0..a.feeds)
        .map(|f| format!("http://{}/feeds/{f}.xml", addrs[f % a.hosts]))
        .collect();

    let temp = tempfile::tempdir().expect("temp dir");
    let dir = a.data.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("data folder");
    let unique_per_s = a.feeds as f64 / a.period * 0.9;
    let max_age = feedsieve::config::parse_duration(&a.max_age).ok();
    println!(
        "workload: {} feeds on {} hosts, a new item every {} s each ({:.0} items/s, 1 in 10 a copy), {ITEMS} listed; poll interval {}, dedup window {}, retention max_age {} / max_articles {}; {} s, a sample every {} s",
        a.feeds,
        a.hosts,
        a.period,
        a.feeds as f64 / a.period,
        a.interval,
        a.window,
        a.max_age,
        a.max_articles,
        a.seconds,
        a.sample
    );
    if let Some(max_age) = max_age {
        println!(
            "retention should keep about {:.0} articles once the run is {} old",
            (unique_per_s * max_age.as_secs_f64()).min(a.max_articles as f64),
            a.max_age
        );
    }
    println!("files (config, database, log): {}", dir.display());

    let (mut child, data) = start_daemon(&dir, &a, &urls);
    let pid = child.id();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let started = Instant::now();
    let base = loop {
        if let Ok(v) = std::fs::read(data.join("daemon.json"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&v)
            && let Some(listen) = v["listen"].as_str()
        {
            break format!("http://{listen}");
        }
        if started.elapsed() > Duration::from_secs(30) || child.try_wait().ok().flatten().is_some()
        {
            eprintln!("the daemon did not start:\n{}", log_tail(&dir));
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let mut samples: Vec<Sample> = Vec::new();
    let mut next = a.sample;
    while next <= a.seconds {
        std::thread::sleep(
            (started + Duration::from_secs(next)).saturating_duration_since(Instant::now()),
        );
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!("the daemon exited early ({status}):\n{}", log_tail(&dir));
            std::process::exit(1);
        }
        let (rss_kib, peak_kib) = (
            support::status_kib(pid, "VmRSS:"),
            support::status_kib(pid, "VmHWM:"),
        );
        let (stored, kept, duplicates) = rt.block_on(counts(&http, &base));
        let s = Sample {
            seconds: next,
            rss_kib,
            peak_kib,
            disk: disk_usage(&data),
            stored,
            kept,
            duplicates,
        };
        eprintln!(
            "  {:>4} s: RSS {:.1} MB (peak {:.1}), disk {:.1} MB, stored {}, kept {}, duplicates {}; served {} feeds, {} not modified",
            s.seconds,
            s.rss_kib as f64 / 1024.0,
            s.peak_kib as f64 / 1024.0,
            mb(s.disk),
            s.stored,
            s.kept,
            s.duplicates,
            feeds.ok.load(Ordering::Relaxed),
            feeds.not_modified.load(Ordering::Relaxed)
        );
        samples.push(s);
        next += a.sample;
    }

    // Stop the daemon: SIGTERM, and it must exit 0.
    let stopping = Instant::now();
    // SAFETY: kill(2) on the pid of the child we spawned and have not reaped.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if stopping.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };

    println!("\n| time | RSS | peak RSS | disk | stored (total) | kept | duplicates (total) |");
    println!("|---|---|---|---|---|---|---|");
    for s in &samples {
        println!(
            "| {} s | {:.1} MB | {:.1} MB | {:.1} MB | {} | {} | {} |",
            s.seconds,
            s.rss_kib as f64 / 1024.0,
            s.peak_kib as f64 / 1024.0,
            mb(s.disk),
            s.stored,
            s.kept,
            s.duplicates
        );
    }

    // Bars scaled to each series' largest value.
    let rss_max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(1).max(1);
    let disk_max = samples.iter().map(|s| s.disk).max().unwrap_or(1).max(1);
    let bar = |v: u64, max: u64| "#".repeat((v * 40).div_ceil(max) as usize);
    let rss_label = format!("RSS (# = {:.1} MB)", rss_max as f64 / 1024.0 / 40.0);
    println!(
        "\n```text\n   time  {rss_label:<42}disk (# = {:.1} MB)",
        mb(disk_max) / 40.0
    );
    for s in &samples {
        println!(
            "{:>5} s  {:<42}{}",
            s.seconds,
            bar(s.rss_kib, rss_max),
            bar(s.disk, disk_max)
        );
    }
    println!("```");

    if samples.len() >= 3 {
        let rss_growth = growth(&samples.iter().map(|s| s.rss_kib as f64).collect::<Vec<_>>());
        let disk_growth = growth(&samples.iter().map(|s| s.disk as f64).collect::<Vec<_>>());
        let verdict = if rss_growth < 0.1 && disk_growth < 0.1 {
            "levelled off"
        } else {
            "still growing"
        };
        println!(
            "\n{verdict}: last third of the samples over the middle third: RSS {:+.1}%, disk {:+.1}%",
            rss_growth * 100.0,
            disk_growth * 100.0
        );
    } else {
        println!("\ntoo few samples for a verdict (need 3)");
    }
    match status {
        Some(s) if s.code() == Some(0) => println!(
            "SIGTERM: the daemon exited 0 in {:.1} s",
            stopping.elapsed().as_secs_f64()
        ),
        other => {
            println!(
                "SIGTERM: the daemon did not exit 0 ({other:?}):\n{}",
                log_tail(&dir)
            );
            std::process::exit(1);
        }
    }
}
