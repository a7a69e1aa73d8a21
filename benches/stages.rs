//! Where the compute of a poll goes, stage by stage, on one core and without I/O: the feed
//! files of a workload folder are read into memory, then each stage of a poll runs over all of
//! them in turn, `--reps` times, and the fastest time of each stage is printed (the minimum
//! is the least noisy estimate of a stage's cost).
//!
//!     cargo bench --bench stages -- --workload target/peers/<stamp>/workload
//!     cargo bench --bench stages -- --workload ../shared/bench/work --reps 9
//!     cargo bench --bench stages -- --workload ../shared/corpus/feeds --reps 1
//!
//! The stages are those `poll` runs in its blocking task: `parse_feed` (charset, repairs, the
//! fast reader or feed-rs, HTML to text, links), then the word scan of each body, boilerplate
//! learning, and the fingerprints (story cut, simhash, containment marks). `parse_feed` with
//! feed-rs reading every document is timed too, as the baseline the fast reader is measured
//! against. The sieve and the store are measured by
//! the `pipeline` bench; the whole daemon by `cycle`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use feedsieve::dedup::clean::Boilerplate;
use feedsieve::dedup::fingerprint::{Words, fingerprint_words};
use feedsieve::parse::{Candidate, Reader, parse_feed, parse_feed_with};

mod support;

fn main() {
    let flags = support::Flags::from_env();
    let Some(dir) = flags.get("--workload").map(PathBuf::from) else {
        eprintln!(
            "stages: give --workload <folder with feeds/> (written by gen_feeds.py or peers.sh)"
        );
        std::process::exit(2);
    };
    let reps: usize = flags.parse("--reps", 5);
    // A workload folder keeps its feeds in `feeds/`; any other folder is read whole (such as
    // `../shared/corpus/feeds`, for a digest over many dialects).
    let feeds_dir = if dir.join("feeds").is_dir() {
        dir.join("feeds")
    } else {
        dir.clone()
    };
    let mut files = Vec::new();
    let mut pending = vec![feeds_dir.clone()];
    while let Some(d) = pending.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) => {
                eprintln!("stages: cannot read {}: {e}", d.display());
                std::process::exit(2);
            }
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(body) = std::fs::read(&path) {
                let name = path.strip_prefix(&feeds_dir).unwrap_or(&path);
                files.push((format!("http://127.0.0.1/{}", name.display()), body));
            }
        }
    }
    files.sort();
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "stages: {} feeds, {:.1} MB, best of {reps}",
        files.len(),
        bytes as f64 / 1e6
    );

    let mut best = [Duration::MAX; 4];
    // parse_feed with feed-rs reading every document: the baseline of the fast reader.
    let mut baseline = Duration::MAX;
    // A digest of everything the stages produced: a speed change that changes it changed
    // behaviour too.
    let mut digest = xxhash_rust::xxh3::Xxh3::new();
    let mut items = 0;
    let mut text_bytes = 0;
    for rep in 0..reps {
        let mut took = [Duration::ZERO; 4];
        let mut took_baseline = Duration::ZERO;
        items = 0;
        text_bytes = 0;
        for (url, body) in &files {
            let t = Instant::now();
            let read = parse_feed_with(body, url, Some("application/xml"), Reader::FeedRs);
            took_baseline += t.elapsed();
            drop(read);
            let t = Instant::now();
            let Ok(parsed) = parse_feed(body, url, Some("application/xml")) else {
                continue;
            };
            took[0] += t.elapsed();
            let entries: Vec<Candidate> = parsed.entries;
            items += entries.len();
            text_bytes += entries.iter().map(|c| c.text.len()).sum::<usize>();

            let t = Instant::now();
            let words: Vec<Words<'_>> = entries.iter().map(|c| Words::of(&c.text)).collect();
            took[1] += t.elapsed();

            let t = Instant::now();
            let mut boilerplate = Boilerplate::default();
            boilerplate.learn_words(words.iter());
            took[2] += t.elapsed();

            let t = Instant::now();
            let prints: Vec<_> = words
                .iter()
                .map(|w| fingerprint_words(w, &boilerplate))
                .collect();
            took[3] += t.elapsed();
            if rep == 0 {
                for (c, p) in entries.iter().zip(&prints) {
                    for field in [&c.guid, &c.title, &c.text] {
                        digest.update(field.as_bytes());
                        digest.update(&[0]);
                    }
                    digest.update(c.url.as_deref().unwrap_or("").as_bytes());
                    digest.update(&p.simhash.to_le_bytes());
                    digest.update(&p.content.to_le_bytes());
                    for marks in [&p.short_marks, &p.long_marks, &p.anchors] {
                        for m in marks.iter() {
                            digest.update(&m.to_le_bytes());
                        }
                    }
                }
            }
        }
        for (b, t) in best.iter_mut().zip(took) {
            *b = (*b).min(t);
        }
        baseline = baseline.min(took_baseline);
        eprint!("\rstages: rep {}/{reps}", rep + 1);
    }
    eprintln!();
    let names = [
        "parse_feed",
        "word scan",
        "boilerplate learning",
        "fingerprints",
    ];
    let total: Duration = best.iter().sum();
    println!(
        "{items} items, {:.1} MB of feeds, {:.1} MB of text, output digest {:016x}",
        bytes as f64 / 1e6,
        text_bytes as f64 / 1e6,
        digest.digest()
    );
    println!("| stage | best time | per item | share |");
    println!("|---|---|---|---|");
    for (name, t) in names.iter().zip(best) {
        println!(
            "| {name} | {:.3} s | {:.1} µs | {:.0}% |",
            t.as_secs_f64(),
            t.as_secs_f64() * 1e6 / items.max(1) as f64,
            100.0 * t.as_secs_f64() / total.as_secs_f64()
        );
    }
    println!(
        "| all | {:.3} s | {:.1} µs | 100% |",
        total.as_secs_f64(),
        total.as_secs_f64() * 1e6 / items.max(1) as f64
    );
    println!(
        "| (baseline: parse_feed with feed-rs reading every document) | {:.3} s | {:.1} µs | |",
        baseline.as_secs_f64(),
        baseline.as_secs_f64() * 1e6 / items.max(1) as f64
    );
}
