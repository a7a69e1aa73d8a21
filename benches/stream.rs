//! The consumer side under load: the real daemon ingests feeds while 100 clients follow
//! `/v1/stream` and paging clients read `/v1/articles` as fast as they can.
//!
//!     cargo bench --bench stream                       # 400 feeds x 50 items, 100 SSE, 4 pagers
//!     cargo bench --bench stream -- --feeds 100 --clients 20 --pagers 2
//!
//! Feeds are polled every 20 s (so the daemon starts its first polls within a second of each
//! other) and answer later polls with 304. Two runs over the same workload, each on a fresh
//! database: ingestion alone, then ingestion
//! with the readers. It prints how long ingestion took (first stored article to last), whether
//! every stream client got every article exactly once and in order, the paging clients'
//! requests per second and latency percentiles, and the daemon's peak memory.

mod support;

use std::collections::HashMap;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use futures_util::StreamExt;

use support::{sample_peak_rss, vocabulary};

struct Args {
    feeds: usize,
    items: usize,
    clients: usize,
    pagers: usize,
}

fn args() -> Args {
    let flags = support::Flags::from_env();
    let num = |name: &str, default: usize| flags.parse(name, default);
    Args {
        feeds: num("--feeds", 400),
        items: num("--items", 50),
        clients: num("--clients", 100),
        pagers: num("--pagers", 4),
    }
}

/// RSS feeds of distinct stories (random 150 to 350 words each).
fn generate(a: &Args) -> HashMap<String, bytes::Bytes> {
    let words = vocabulary();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut out = HashMap::new();
    for f in 0..a.feeds {
        let mut body = format!(
            "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>Load {f}</title><link>https://load{f}.example/</link><description>load</description>\n"
        );
        for i in 0..a.items {
            let n = rng.usize(150..350);
            let text: Vec<&str> = (0..n)
                .map(|_| words[rng.usize(..words.len())].as_str())
                .collect();
            let paragraphs: String = text
                .chunks(60)
                .map(|p| format!("<p>{}</p>", p.join(" ")))
                .collect();
            body.push_str(&format!(
                "<item><title>Story {i} of feed {f}</title><guid isPermaLink=\"false\">load-{f}-{i}</guid><link>https://load{f}.example/{i}</link><description><![CDATA[{paragraphs}]]></description></item>\n"
            ));
        }
        body.push_str("</channel></rss>\n");
        out.insert(format!("{f}.xml"), bytes::Bytes::from(body));
    }
    out
}

/// Serves a feed, with an ETag so that repeated polls are cheap 304s.
async fn serve(
    State(feeds): State<Arc<HashMap<String, bytes::Bytes>>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let etag = format!("\"{name}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return axum::http::StatusCode::NOT_MODIFIED.into_response();
    }
    match feeds.get(&name) {
        Some(body) => (
            [
                (header::CONTENT_TYPE, "application/rss+xml".to_string()),
                (header::ETAG, etag),
            ],
            body.clone(),
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

/// The last stored seq, from `/healthz`.
async fn last_seq(http: &reqwest::Client, base: &str) -> u64 {
    let Ok(r) = http.get(format!("{base}/healthz")).send().await else {
        return 0;
    };
    let v: serde_json::Value =
        serde_json::from_slice(&r.bytes().await.unwrap_or_default()).unwrap_or_default();
    v["last_seq"].as_u64().unwrap_or(0)
}

/// What one stream client saw.
#[derive(Default)]
struct Seen {
    events: u64,
    in_order: bool,
    done_at: Option<Instant>,
}

/// Follows the stream until `total` articles arrived (or it ends).
async fn follow(http: reqwest::Client, base: String, total: u64) -> Seen {
    let mut seen = Seen {
        in_order: true,
        ..Seen::default()
    };
    let Ok(response) = http.get(format!("{base}/v1/stream?after=0")).send().await else {
        return seen;
    };
    let mut body = response.bytes_stream();
    // Only the `id:` lines matter here; the part of a line cut by a chunk boundary carries over.
    let mut carry: Vec<u8> = Vec::new();
    let mut last = 0u64;
    while let Some(Ok(chunk)) = body.next().await {
        let data: &[u8] = if carry.is_empty() {
            &chunk
        } else {
            carry.extend_from_slice(&chunk);
            &carry
        };
        let mut start = 0;
        let mut ids = Vec::new();
        while let Some(nl) = data[start..].iter().position(|&b| b == b'\n') {
            let line = &data[start..start + nl];
            if let Some(id) = line.strip_prefix(b"id: ") {
                ids.push(
                    std::str::from_utf8(id)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0),
                );
            }
            start += nl + 1;
        }
        let rest = data[start..].to_vec();
        carry = rest;
        for id in ids {
            seen.events += 1;
            if id != last + 1 {
                seen.in_order = false;
            }
            last = id;
        }
        if last >= total {
            seen.done_at = Some(Instant::now());
            break;
        }
    }
    seen
}

/// Pages `/v1/articles` from random cursors until `stop`; returns each request's latency.
async fn page(
    http: reqwest::Client,
    base: String,
    stop: Arc<tokio::sync::Notify>,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut rng = fastrand::Rng::new();
    let stopped = stop.notified();
    tokio::pin!(stopped);
    loop {
        let last = last_seq(&http, &base).await;
        let after = rng.u64(0..=last);
        let started = Instant::now();
        let request = http
            .get(format!("{base}/v1/articles?after={after}&limit=100"))
            .send();
        tokio::select! {
            r = request => {
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                    latencies.push(started.elapsed());
                }
            }
            () = &mut stopped => return latencies,
        }
    }
}

struct Run {
    ingest: Duration,
    peak_kib: u64,
    clients_complete: usize,
    clients_in_order: usize,
    slowest_lag: Duration,
    requests: Vec<Duration>,
    paging_seconds: f64,
}

fn start_daemon(dir: &std::path::Path, feed_base: &str, feeds: usize) -> (Child, String) {
    let mut config = String::from(
        "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:0\"\n[poll]\ninterval = \"20s\"\nconcurrency = 16\nper_host = 16\nhost_gap = \"0s\"\n",
    );
    for f in 0..feeds {
        config.push_str(&format!("[[feeds]]\nurl = \"{feed_base}/{f}.xml\"\n"));
    }
    let child = support::spawn_daemon(dir, &config);
    let info = dir.join("data/daemon.json");
    let started = Instant::now();
    while !info.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&info).expect("daemon.json")).expect("JSON");
    let base = format!("http://{}", v["listen"].as_str().expect("listen"));
    (child, base)
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on the pid of the child we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
}

fn run(rt: &tokio::runtime::Runtime, a: &Args, feed_base: &str, readers: bool) -> Run {
    let temp = tempfile::tempdir().expect("temp dir");
    let total = (a.feeds * a.items) as u64;
    let (child, base) = start_daemon(temp.path(), feed_base, a.feeds);
    let sampler = sample_peak_rss(child.id());
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()
        .expect("client");
    let result = rt.block_on(async {
        let clients: Vec<_> = (0..if readers { a.clients } else { 0 })
            .map(|_| tokio::spawn(follow(http.clone(), base.clone(), total)))
            .collect();
        let stop_paging = Arc::new(tokio::sync::Notify::new());
        let pagers: Vec<_> = (0..if readers { a.pagers } else { 0 })
            .map(|_| tokio::spawn(page(http.clone(), base.clone(), stop_paging.clone())))
            .collect();
        let paging_started = Instant::now();
        // Ingestion: from the first stored article to the last.
        let mut first = None;
        let mut reported = 0;
        let end = loop {
            let last = last_seq(&http, &base).await;
            if last > 0 && first.is_none() {
                first = Some(Instant::now());
            }
            if last >= total {
                break Instant::now();
            }
            if last >= reported + total / 10 {
                reported = last;
                eprintln!(
                    "  {} stored {last}/{total}",
                    if readers { "with readers:" } else { "alone:" }
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let ingest = end - first.unwrap_or(end);
        let mut complete = 0;
        let mut in_order = 0;
        let mut slowest = Duration::ZERO;
        for c in clients {
            let seen = tokio::time::timeout(Duration::from_secs(120), c)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            if seen.events == total {
                complete += 1;
            }
            if seen.in_order && seen.events == total {
                in_order += 1;
            }
            if let Some(at) = seen.done_at {
                slowest = slowest.max(at.saturating_duration_since(end));
            }
        }
        stop_paging.notify_waiters();
        let paging_seconds = paging_started.elapsed().as_secs_f64();
        let mut requests = Vec::new();
        for p in pagers {
            requests.extend(p.await.unwrap_or_default());
        }
        (
            ingest,
            complete,
            in_order,
            slowest,
            requests,
            paging_seconds,
        )
    });
    stop(child);
    let peak_kib = sampler.join().unwrap_or(0);
    Run {
        ingest: result.0,
        peak_kib,
        clients_complete: result.1,
        clients_in_order: result.2,
        slowest_lag: result.3,
        requests: result.4,
        paging_seconds: result.5,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let a = args();
    let total = a.feeds * a.items;
    let feeds = Arc::new(generate(&a));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let feed_base = format!("http://{}", listener.local_addr().expect("addr"));
    rt.spawn(async move {
        let app = Router::new()
            .route("/{name}", axum::routing::get(serve))
            .with_state(feeds);
        let _ = axum::serve(listener, app).await;
    });
    println!(
        "workload: {} feeds x {} items = {total} distinct articles; {} stream clients, {} paging clients",
        a.feeds, a.items, a.clients, a.pagers
    );
    let alone = run(&rt, &a, &feed_base, false);
    let loaded = run(&rt, &a, &feed_base, true);
    let rate = |r: &Run| total as f64 / r.ingest.as_secs_f64().max(1e-9);
    let mut sorted = loaded.requests.clone();
    sorted.sort();
    println!("\n| run | ingestion | articles/s | daemon peak memory |");
    println!("|---|---|---|---|");
    for (name, r) in [("ingestion alone", &alone), ("with readers", &loaded)] {
        println!(
            "| {name} | {:.2} s | {:.0} | {} MB |",
            r.ingest.as_secs_f64(),
            rate(r),
            r.peak_kib / 1024
        );
    }
    println!(
        "\nstream clients: {}/{} got all {total} articles, {}/{} exactly once and in order; the slowest finished {:.2} s after the last article was stored",
        loaded.clients_complete,
        a.clients,
        loaded.clients_in_order,
        a.clients,
        loaded.slowest_lag.as_secs_f64()
    );
    println!(
        "paging clients: {} requests of 100 articles in {:.1} s = {:.0} requests/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sorted.len(),
        loaded.paging_seconds,
        sorted.len() as f64 / loaded.paging_seconds.max(1e-9),
        percentile(&sorted, 0.5).as_secs_f64() * 1e3,
        percentile(&sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "ingestion with readers ran at {:.0}% of its rate alone",
        100.0 * rate(&loaded) / rate(&alone)
    );
}
