// What each fuzz target does with one input. Shared by the targets (`include!`) and by
// `tests/fuzzed.rs`, which replays every input kept in `fuzz/regressions/`, so a crash found
// once stays a test.

/// Bytes in, articles out: the parse-and-normalize path the poller runs on every body, then
/// the fingerprints dedup takes of each entry. The first byte picks the declared charset.
pub fn parse_feed_body(data: &[u8]) {
    let (content_type, body) = match data.split_first() {
        Some((b, rest)) => (
            match b % 5 {
                0 => None,
                1 => Some("application/rss+xml; charset=utf-8"),
                2 => Some("application/atom+xml; charset=iso-8859-1"),
                3 => Some("text/xml; charset=windows-1251"),
                _ => Some("application/feed+json"),
            },
            rest,
        ),
        None => (None, data),
    };
    if let Ok(feed) = feedsieve::parse::parse_feed(body, "https://fuzz.example/feed.xml", content_type)
    {
        for c in &feed.entries {
            assert!(!c.title.contains('\n'), "a title is one line");
            let fp = feedsieve::dedup::fingerprint::fingerprint(&c.text);
            assert!(fp.short_marks.is_sorted() && fp.long_marks.is_sorted());
        }
    }
}

/// Two texts in (split at the first NUL), compared both ways: the fingerprint and containment
/// path. Whichever text arrives first, they share the same passages, and every share is a
/// fraction.
pub fn fingerprint_body(data: &[u8]) {
    use feedsieve::dedup::containment::Overlap;
    use feedsieve::dedup::fingerprint::fingerprint;
    let (a, b) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &data[data.len() / 2..]),
    };
    let a = feedsieve::parse::normalize::html_to_text(&String::from_utf8_lossy(a));
    let b = String::from_utf8_lossy(b);
    let (fa, fb) = (fingerprint(&a), fingerprint(&b));
    let ab = Overlap::between(2, &fa, fb.simhash, &fb.short_marks, &fb.long_marks);
    let ba = Overlap::between(1, &fb, fa.simhash, &fa.short_marks, &fa.long_marks);
    assert_eq!(ab.long_shared(), ba.long_shared());
    assert_eq!(ab.short_shared, ba.short_shared);
    assert_eq!(ab.distance, ba.distance);
    let (cab, cba) = (
        ab.containment(fa.long_marks.len() as u32),
        ba.containment(fb.long_marks.len() as u32),
    );
    assert_eq!(cab, cba, "containment does not depend on the order");
    assert!((0.0..=1.0).contains(&cab), "containment {cab}");
    if a == b {
        assert_eq!(fa, fb);
    }
}
