//! The dedup evaluation: labelled cases built from the BBC news corpus, run through the real
//! dedup path, with precision and recall for each kind of copy.
//!
//!     cargo run --release --example dedup-eval
//!     cargo run --release --example dedup-eval -- --sweep      # also try other thresholds
//!
//! Needs `../shared/corpus/news/` (research-only data: read in place, never copied into the
//! repository); without it, it says so and exits 0.
//!
//! Every distinct story of the corpus is stored first, through the same judge-then-insert path as
//! the daemon (a story suppressed there is a *wrongly suppressed distinct story*). Each case is
//! then rendered as HTML, normalized by `html_to_text`, fingerprinted and judged against that
//! store, not inserted, so cases do not interact. A positive counts as caught only when it is
//! suppressed as a duplicate of the story it was made from (either one, for a two-story mash-up).
//! The whole run is repeated with the `simhash` crate's unweighted `simhash_stream` in place of
//! feedsieve's weighted simhash: the baseline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use chrono::Utc;
use feedsieve::dedup::fingerprint::{Fingerprint, fingerprint};
use feedsieve::dedup::{Settings, Verdict, judge};
use feedsieve::parse::Candidate;
use feedsieve::parse::normalize::html_to_text;
use feedsieve::store::{Inserted, Options, Store};

struct Story {
    id: String,
    title: String,
    paragraphs: Vec<String>,
}

/// Which simhash the near-duplicate stage uses.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// feedsieve's: log-TF weighted, stop words out, story text only, fixed-seed hashes.
    Weighted,
    /// The `simhash` crate's `simhash_stream` over whitespace-split words.
    CrateUnweighted,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Weighted => "weighted simhash (feedsieve)",
            Variant::CrateUnweighted => "simhash crate, unweighted simhash_stream (baseline)",
        }
    }

    fn fingerprint(self, text: &str) -> Fingerprint {
        let mut fp = fingerprint(text);
        if self == Variant::CrateUnweighted {
            fp.simhash = simhash::simhash_stream(text.split_whitespace());
        }
        fp
    }
}

/// One labelled case.
struct Case {
    kind: &'static str,
    html: String,
    /// The stored stories it may be attributed to (empty for negatives).
    sources: Vec<usize>,
}

/// A natural duplicate pair of the corpus: (original id, copy id, kind).
type Pair = (String, String, String);

fn load(root: &Path) -> Option<(Vec<Story>, Vec<Pair>)> {
    let text = std::fs::read_to_string(root.join("bbc_news_2004_2005.jsonl")).ok()?;
    let stories = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| Story {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            title: v["title"].as_str().unwrap_or_default().to_string(),
            paragraphs: v["body"]
                .as_str()
                .unwrap_or_default()
                .split("\n\n")
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        })
        .collect();
    let pairs = std::fs::read_to_string(root.join("bbc_observed_duplicates.tsv"))
        .ok()?
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("id_a"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 3).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
        })
        .collect();
    Some((stories, pairs))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html(paragraphs: &[String]) -> String {
    paragraphs
        .iter()
        .map(|p| format!("<p>{}</p>\n", esc(p)))
        .collect()
}

fn words(paragraphs: &[String]) -> usize {
    paragraphs
        .iter()
        .map(|p| p.split_whitespace().count())
        .sum()
}

/// Replaces `share` of the words with words drawn from the corpus.
fn spin(
    paragraphs: &[String],
    share: f64,
    vocabulary: &[&str],
    rng: &mut fastrand::Rng,
) -> Vec<String> {
    paragraphs
        .iter()
        .map(|p| {
            p.split(' ')
                .map(|w| {
                    if rng.f64() < share {
                        vocabulary[rng.usize(..vocabulary.len())]
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Curly quotes, dashes, non-breaking spaces, entities, shouting: what copy-paste and CMSs do.
fn typographic(paragraphs: &[String]) -> String {
    paragraphs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut q = String::new();
            let mut open = true;
            for c in p.chars() {
                match c {
                    '"' => {
                        q.push_str(if open { "&#8220;" } else { "&rdquo;" });
                        open = !open;
                    }
                    '\'' => q.push_str("&#x2019;"),
                    '-' => q.push('\u{2013}'),
                    '&' => q.push_str("&amp;"),
                    '<' => q.push_str("&lt;"),
                    '>' => q.push_str("&gt;"),
                    _ => q.push(c),
                }
            }
            let q = q.replacen(' ', "&nbsp;", 3);
            let q = if i == 0 {
                q.to_uppercase()
                    .replace("&NBSP;", "&nbsp;")
                    .replace("&AMP;", "&amp;")
            } else {
                q
            };
            format!("<div class=\"para\"><span>{q}</span></div>\n")
        })
        .collect()
}

/// Builds every case.
fn cases(stories: &[Story], distinct: &[usize], pairs: &[Pair]) -> Vec<Case> {
    let mut rng = fastrand::Rng::with_seed(2026);
    let vocabulary: Vec<&str> = stories
        .iter()
        .flat_map(|s| s.paragraphs.iter().flat_map(|p| p.split(' ')))
        .collect();
    let by_id: HashMap<&str, usize> = stories
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut out = Vec::new();
    for (n, &i) in distinct.iter().enumerate() {
        let s = &stories[i];
        let p = &s.paragraphs;
        let other = &stories[distinct[(n + 1 + rng.usize(..distinct.len() - 1)) % distinct.len()]];
        if p.len() >= 3 {
            // Syndicated: new headline (not part of the body), dateline, boilerplate, last paragraph dropped.
            let mut body = p[..p.len() - 1].to_vec();
            body[0] = format!("LONDON (Wire Service) \u{2014} {}", body[0]);
            body.push("Reporting by Staff; Editing by the Desk. All rights reserved.".into());
            body.push("Sign up for our morning newsletter to get the news that matters.".into());
            out.push(Case {
                kind: "syndicated",
                html: html(&body),
                sources: vec![i],
            });
            // Spliced: one or two paragraphs of another story inserted.
            let mut spliced = p.clone();
            let take = 1 + rng.usize(..2).min(other.paragraphs.len().saturating_sub(1));
            let at = 1 + rng.usize(..p.len() - 1);
            for (k, para) in other.paragraphs.iter().take(take).enumerate() {
                spliced.insert(at + k, para.clone());
            }
            out.push(Case {
                kind: "spliced",
                html: html(&spliced),
                sources: vec![i],
            });
            // Two-story mash-up: the first half of one, the second half of another.
            let mut mash = p[..p.len() / 2].to_vec();
            mash.extend(
                other.paragraphs[other.paragraphs.len() / 2..]
                    .iter()
                    .cloned(),
            );
            let j = *by_id.get(other.id.as_str()).unwrap_or(&i);
            out.push(Case {
                kind: "mash-up",
                html: html(&mash),
                sources: vec![i, j],
            });
        }
        out.push(Case {
            kind: "spun 5%",
            html: html(&spin(p, 0.05, &vocabulary, &mut rng)),
            sources: vec![i],
        });
        out.push(Case {
            kind: "spun 10%",
            html: html(&spin(p, 0.10, &vocabulary, &mut rng)),
            sources: vec![i],
        });
        // Lede-only: the first paragraphs, at least 50 words.
        let mut lede = Vec::new();
        for para in p {
            lede.push(para.clone());
            if words(&lede) >= 50 {
                break;
            }
        }
        if lede.len() < p.len() {
            out.push(Case {
                kind: "lede-only",
                html: html(&lede),
                sources: vec![i],
            });
        }
        let mut shuffled = p.clone();
        rng.shuffle(&mut shuffled);
        if shuffled != *p {
            out.push(Case {
                kind: "reordered",
                html: html(&shuffled),
                sources: vec![i],
            });
        }
        out.push(Case {
            kind: "typographic",
            html: typographic(p),
            sources: vec![i],
        });
        // Negative: a one-sentence summary, the story's first sentence.
        let first = p[0]
            .split_inclusive(". ")
            .next()
            .unwrap_or(&p[0])
            .trim()
            .to_string();
        out.push(Case {
            kind: "one-sentence summary",
            html: html(&[first]),
            sources: vec![],
        });
    }
    for (a, b, kind) in pairs {
        if let (Some(&ia), Some(&ib)) = (by_id.get(a.as_str()), by_id.get(b.as_str())) {
            let kind = match kind.as_str() {
                "exact" => "natural: exact",
                "same_body_new_headline" => "natural: new headline",
                "near" => "natural: near",
                _ => "natural: revision",
            };
            out.push(Case {
                kind,
                html: html(&stories[ib].paragraphs),
                sources: vec![ia],
            });
        }
    }
    out
}

#[derive(Default, Clone)]
struct Tally {
    cases: usize,
    caught: usize,
    wrong_source: usize,
    by_reason: BTreeMap<&'static str, usize>,
}

fn candidate(feed: &str, guid: &str, text: String) -> Candidate {
    Candidate {
        feed: feed.into(),
        guid: guid.into(),
        url: None,
        title: String::new(),
        published: None,
        text,
    }
}

/// Stores every distinct story, then judges every case. Returns the tallies by kind and the
/// distinct stories wrongly suppressed.
fn run(
    stories: &[Story],
    distinct: &[usize],
    all_cases: &[Case],
    variant: Variant,
    settings: Settings,
) -> (BTreeMap<&'static str, Tally>, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), &Options::default()).expect("store");
    store.prepare_lookup().expect("dedup indexes");
    let mut writer = store.writer().expect("writer");
    let now = Utc::now();
    let mut seq_of: HashMap<u64, usize> = HashMap::new();
    let mut wrongly_suppressed = Vec::new();
    for (n, &i) in distinct.iter().enumerate() {
        let s = &stories[i];
        let text = html_to_text(&html(&s.paragraphs));
        let fp = variant.fingerprint(&text);
        let c = candidate("bbc://originals", &s.id, text);
        match judge(&c, &fp, &store, settings).expect("judge") {
            Verdict::New => match writer.insert_article(&c, &fp, now).expect("insert") {
                Inserted::Stored { seq, .. } => {
                    writer.commit().expect("commit");
                    seq_of.insert(seq, i);
                }
                Inserted::Taken(_) => wrongly_suppressed.push(s.id.clone()),
            },
            Verdict::Duplicate(m) => {
                let of = seq_of.get(&m.seq).map_or("?", |&j| stories[j].id.as_str());
                wrongly_suppressed.push(format!(
                    "{} ({}): {} of {of} ({}), distance {:?}, containment {:?}",
                    s.id,
                    s.title,
                    m.reason.as_str(),
                    seq_of
                        .get(&m.seq)
                        .map_or("", |&j| stories[j].title.as_str()),
                    m.distance,
                    m.containment
                ))
            }
            Verdict::Relisted => wrongly_suppressed.push(format!("{} (relisted?)", s.id)),
        }
        if (n + 1) % 500 == 0 {
            eprintln!(
                "  {}: stored {}/{} distinct stories",
                variant.name(),
                n + 1,
                distinct.len()
            );
        }
    }
    let mut tallies: BTreeMap<&'static str, Tally> = BTreeMap::new();
    for (n, case) in all_cases.iter().enumerate() {
        let text = html_to_text(&case.html);
        let fp = variant.fingerprint(&text);
        let c = candidate("bbc://copies", &format!("case-{n}"), text);
        let t = tallies.entry(case.kind).or_default();
        t.cases += 1;
        if let Verdict::Duplicate(m) = judge(&c, &fp, &store, settings).expect("judge") {
            *t.by_reason.entry(m.reason.as_str()).or_default() += 1;
            match seq_of.get(&m.seq) {
                Some(src) if case.sources.contains(src) => t.caught += 1,
                _ => t.wrong_source += 1,
            }
        }
    }
    (tallies, wrongly_suppressed)
}

fn report(
    variant: Variant,
    settings: Settings,
    tallies: &BTreeMap<&'static str, Tally>,
    wrongly: &[String],
    distinct: usize,
) {
    println!(
        "\n### {} (max_distance {}, containment {})\n",
        variant.name(),
        settings.max_distance,
        settings.containment
    );
    println!("| kind | cases | caught | recall | precision | reasons |");
    println!("|---|---|---|---|---|---|");
    let (mut tp, mut fp, mut positives) = (0usize, 0usize, 0usize);
    let mut worst: f64 = 1.0;
    for (kind, t) in tallies {
        let negative = *kind == "one-sentence summary";
        let reasons: Vec<String> = t
            .by_reason
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        if negative {
            fp += t.caught + t.wrong_source;
            println!(
                "| {kind} (negative) | {} | {} suppressed | | | {} |",
                t.cases,
                t.caught + t.wrong_source,
                reasons.join(", ")
            );
            continue;
        }
        let recall = t.caught as f64 / t.cases.max(1) as f64;
        let detected = t.caught + t.wrong_source;
        let precision = if detected == 0 {
            1.0
        } else {
            t.caught as f64 / detected as f64
        };
        worst = worst.min(recall);
        tp += t.caught;
        fp += t.wrong_source;
        positives += t.cases;
        println!(
            "| {kind} | {} | {} | {recall:.3} | {precision:.3} | {} |",
            t.cases,
            t.caught,
            reasons.join(", ")
        );
    }
    fp += wrongly.len();
    println!(
        "| distinct stories (negative) | {distinct} | {} suppressed | | | |",
        wrongly.len()
    );
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / positives.max(1) as f64;
    println!(
        "\n**overall: precision {precision:.4}, recall {recall:.4}, lowest recall of a kind {worst:.3}, distinct stories wrongly suppressed: {}**",
        wrongly.len()
    );
    for w in wrongly.iter().take(10) {
        println!("- wrongly suppressed: {w}");
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/news");
    let Some((stories, pairs)) = load(&root) else {
        println!(
            "dedup-eval: {} is not here; nothing to evaluate.",
            root.display()
        );
        return;
    };
    let copies: HashSet<&str> = pairs.iter().map(|(_, b, _)| b.as_str()).collect();
    let distinct: Vec<usize> = (0..stories.len())
        .filter(|&i| !copies.contains(stories[i].id.as_str()))
        .collect();
    let all_cases = cases(&stories, &distinct, &pairs);
    println!(
        "dedup-eval: {} stories, {} distinct, {} natural duplicate pairs, {} cases",
        stories.len(),
        distinct.len(),
        pairs.len(),
        all_cases.len()
    );
    let settings = Settings {
        max_distance: 3,
        containment: 0.7,
    };
    for variant in [Variant::Weighted, Variant::CrateUnweighted] {
        let (tallies, wrongly) = run(&stories, &distinct, &all_cases, variant, settings);
        report(variant, settings, &tallies, &wrongly, distinct.len());
    }
    simhash_alone(&stories, &distinct, &all_cases, settings.max_distance);
    seed_case(settings);
    if std::env::args().any(|a| a == "--shapes") {
        shapes(&stories, &distinct, &all_cases);
    }
    if std::env::args().any(|a| a == "--sweep") {
        for (k, c) in [(3, 0.6), (3, 0.65), (3, 0.75), (3, 0.8), (4, 0.7), (2, 0.7)] {
            let s = Settings {
                max_distance: k,
                containment: c,
            };
            let (tallies, wrongly) = run(&stories, &distinct, &all_cases, Variant::Weighted, s);
            report(Variant::Weighted, s, &tallies, &wrongly, distinct.len());
        }
    }
}

/// `--shapes`: for each kind, how far a case's simhash is from its source's and how much of the
/// two texts they share (short marks, long marks, of the case and of the source), as percentiles;
/// and every pair of distinct stories sharing much. What the thresholds are chosen from.
fn shapes(stories: &[Story], distinct: &[usize], all_cases: &[Case]) {
    use feedsieve::dedup::containment::Overlap;
    use feedsieve::dedup::fingerprint::distance;
    let fp_of = |i: usize| fingerprint(&html_to_text(&html(&stories[i].paragraphs)));
    // (distance, short own, short of, long own, long of)
    type Shape = (f64, f64, f64, f64, f64);
    let shape = |a: &Fingerprint, b: &Fingerprint| -> Shape {
        let o = Overlap::between(0, a, b.simhash, &b.short_marks, &b.long_marks);
        let (si, so) = o.short_shares(a.short_marks.len() as u32);
        let (li, lo) = o.long_shares(a.long_marks.len() as u32);
        (f64::from(distance(a.simhash, b.simhash)), si, so, li, lo)
    };
    let mut by_kind: BTreeMap<&str, Vec<Shape>> = BTreeMap::new();
    for case in all_cases {
        let Some(&src) = case.sources.first() else {
            continue;
        };
        by_kind
            .entry(case.kind)
            .or_default()
            .push(shape(&fingerprint(&html_to_text(&case.html)), &fp_of(src)));
    }
    // Every later distinct story against every earlier one it shares a fifth of its passages with.
    let fps: Vec<Fingerprint> = distinct.iter().map(|&i| fp_of(i)).collect();
    let mut close = Vec::new();
    for (x, a) in fps.iter().enumerate() {
        for (y, b) in fps.iter().enumerate().take(x) {
            let s = shape(a, b);
            if s.3 >= 0.2 || s.4 >= 0.2 {
                println!(
                    "close distinct pair: {} vs earlier {}: distance {}, short {:.2}/{:.2}, long {:.2}/{:.2}",
                    stories[distinct[x]].id, stories[distinct[y]].id, s.0, s.1, s.2, s.3, s.4
                );
                close.push(s);
            }
        }
    }
    by_kind.insert("distinct: close pairs", close);
    println!("\n| kind | distance p10/p50/p90 | short own | short of | long own | long of |");
    println!("|---|---|---|---|---|---|");
    for (kind, v) in by_kind {
        if v.is_empty() {
            continue;
        }
        let col = |f: fn(&Shape) -> f64| {
            let mut c: Vec<f64> = v.iter().map(f).collect();
            c.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            let p = |q: f64| c[((c.len() - 1) as f64 * q) as usize];
            format!("{:.2}/{:.2}/{:.2}", p(0.1), p(0.5), p(0.9))
        };
        println!(
            "| {kind} | {} | {} | {} | {} | {} |",
            col(|s| s.0),
            col(|s| s.1),
            col(|s| s.2),
            col(|s| s.3),
            col(|s| s.4)
        );
    }
}

/// The simhash alone, for both variants: the share of each kind of copy within `k` bits of its
/// source, and the pairs of distinct stories within `k` bits of each other (false near matches).
fn simhash_alone(stories: &[Story], distinct: &[usize], all_cases: &[Case], k: u32) {
    use feedsieve::dedup::fingerprint::distance;
    let variants = [Variant::Weighted, Variant::CrateUnweighted];
    println!("\n### The simhash alone: copies within {k} bits of their source\n");
    println!("| kind | {} | {} |", variants[0].name(), variants[1].name());
    println!("|---|---|---|");
    let text_of = |i: usize| html_to_text(&html(&stories[i].paragraphs));
    let mut rows: BTreeMap<&str, [(usize, usize); 2]> = BTreeMap::new();
    for case in all_cases {
        let Some(&src) = case.sources.first() else {
            continue;
        };
        let case_text = html_to_text(&case.html);
        let source_text = text_of(src);
        let row = rows.entry(case.kind).or_default();
        for (v, variant) in variants.iter().enumerate() {
            let d = distance(
                variant.fingerprint(&case_text).simhash,
                variant.fingerprint(&source_text).simhash,
            );
            row[v].1 += 1;
            row[v].0 += usize::from(d <= k);
        }
    }
    for (kind, row) in rows {
        println!(
            "| {kind} | {:.3} | {:.3} |",
            row[0].0 as f64 / row[0].1.max(1) as f64,
            row[1].0 as f64 / row[1].1.max(1) as f64
        );
    }
    let mut false_pairs = [0usize; 2];
    for (v, variant) in variants.iter().enumerate() {
        let hashes: Vec<u64> = distinct
            .iter()
            .map(|&i| variant.fingerprint(&text_of(i)).simhash)
            .collect();
        for (x, a) in hashes.iter().enumerate() {
            false_pairs[v] += hashes[x + 1..]
                .iter()
                .filter(|b| distance(*a, **b) <= k)
                .count();
        }
    }
    let pairs = distinct.len() * (distinct.len() - 1) / 2;
    println!(
        "| distinct story pairs within {k} bits (of {pairs}) | {} | {} |",
        false_pairs[0], false_pairs[1]
    );
}

/// The seed case: `../shared/seed/`'s mash-up judged against the Syria story it takes most of and
/// the Chicago story it splices in (both rebuilt from the seed, as the demo config carries them).
fn seed_case(settings: Settings) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seed");
    let Some(seed) = std::fs::read_dir(&dir)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
    else {
        println!("\nseed case: {} is not here", dir.display());
        return;
    };
    let paragraphs: Vec<String> = seed
        .split("\n\n")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    let body = &paragraphs[2..];
    let chicago_block = body
        .iter()
        .find(|p| p.starts_with("Trump tweets"))
        .cloned()
        .unwrap_or_default();
    let chicago = chicago_block
        .split_once('\n')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let repeat = "Both the US and Russian Federation oppose the Islamic State group in Syria. ";
    let syria: Vec<String> = body
        .iter()
        .filter(|p| **p != chicago_block)
        .map(|p| p.replace(repeat, ""))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path(), &Options::default()).expect("store");
    store.prepare_lookup().expect("dedup indexes");
    let mut writer = store.writer().expect("writer");
    for (guid, text) in [("syria", syria.join("\n\n")), ("chicago", chicago)] {
        let c = candidate("seed://originals", guid, text);
        let fp = fingerprint(&c.text);
        writer.insert_article(&c, &fp, Utc::now()).expect("insert");
    }
    writer.commit().expect("commit");
    let text = html_to_text(&html(&paragraphs[1..]));
    let verdict = judge(
        &candidate("seed://scraper", "mash-up", text.clone()),
        &fingerprint(&text),
        &store,
        settings,
    )
    .expect("judge");
    println!(
        "\nseed case (../shared/seed, {} words): {verdict:?}; article 1 is the Syria story",
        text.split_whitespace().count()
    );
}
