//! Every input a fuzz target ever crashed on, replayed through the same code (`fuzz/bodies.rs`),
//! so a bug the fuzzer found stays fixed without a nightly toolchain.

mod bodies {
    #![allow(dead_code)]
    include!("../fuzz/bodies.rs");
}

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut n = 0;
    if !dir.exists() {
        return n;
    }
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let input = std::fs::read(&path).unwrap();
        eprintln!("replaying {}", path.display());
        body(&input);
        n += 1;
    }
    n
}

#[test]
fn inputs_the_parse_fuzzer_crashed_on_parse() {
    replay("parse_feed", bodies::parse_feed_body);
}

#[test]
fn inputs_the_fingerprint_fuzzer_crashed_on_compare_both_ways() {
    replay("fingerprint", bodies::fingerprint_body);
}
