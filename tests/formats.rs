use serde_json::Value;

use crate::util::{FeedServer, TestEnv, data, story};

fn by_title<'a>(articles: &'a [Value], title: &str) -> &'a Value {
    articles
        .iter()
        .find(|a| a["title"] == title)
        .unwrap_or_else(|| panic!("no article titled {title:?} in {articles:#?}"))
}

#[test]
fn rss_atom_and_json_feed_articles_are_stored_with_every_field() {
    let server = FeedServer::start();
    let urls = [
        server.serve_fixture("herald.rss"),
        server.serve_fixture("kell.atom"),
        server.serve_fixture("brennock.json"),
    ];
    let env = TestEnv::with_feeds("", &urls);
    env.once();

    let articles = env.records(&["articles"]);
    assert_eq!(articles.len(), 4, "{articles:#?}");
    for (i, a) in articles.iter().enumerate() {
        let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "seq",
                "id",
                "feed",
                "url",
                "title",
                "published",
                "fetched",
                "text",
                "also_seen"
            ]
        );
        assert_eq!(a["seq"], i as u64 + 1);
        assert!(chrono::DateTime::parse_from_rfc3339(a["fetched"].as_str().unwrap()).is_ok());
    }
    let ids: std::collections::HashSet<_> =
        articles.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4);

    // RSS 2.0 with content:encoded: tracking parameters and fragment dropped from the link,
    // the script stripped, paragraphs kept.
    let solar = by_title(&articles, "Port Alder switches on floating solar farm");
    assert_eq!(solar["feed"], urls[0]);
    assert_eq!(
        solar["url"],
        "https://herald.example.org/news/2026/03/03/floating-solar"
    );
    assert_eq!(solar["published"], "2026-03-03T07:15:00Z");
    assert_eq!(solar["text"], story("solar"));

    // RSS 2.0 with escaped HTML in the description.
    let rail = by_title(&articles, "Night trains for the Valley Line");
    assert_eq!(
        rail["url"],
        "https://herald.example.org/news/2026/03/04/night-trains"
    );
    assert_eq!(rail["text"], story("rail"));

    // Atom: an HTML title with an entity, a relative link resolved against the document, the
    // content (not the shorter summary), a date with an offset normalized to UTC.
    let glacier = by_title(
        &articles,
        "Drones map the retreat of the Sarn glacier \u{2014} week by week",
    );
    assert_eq!(glacier["feed"], urls[1]);
    assert_eq!(glacier["url"], server.url("/stories/sarn-glacier-drones"));
    assert_eq!(glacier["published"], "2026-03-05T08:00:00Z");
    assert_eq!(glacier["text"], story("glacier"));

    // JSON Feed with content_text.
    let library = by_title(
        &articles,
        "Library lends drills, ladders and sewing machines",
    );
    assert_eq!(library["feed"], urls[2]);
    assert_eq!(
        library["url"],
        "https://brennock.example.net/library-of-things"
    );
    assert_eq!(library["published"], "2026-03-11T12:00:00Z");
    assert_eq!(library["text"], story("library"));
}

#[test]
fn inspect_prints_normalized_entries_and_stores_nothing() {
    let env = TestEnv::new("");
    let path = data("feeds/kell.atom");
    let entries = env.records(&["inspect", path.to_str().unwrap()]);
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["guid"],
        "tag:newsroom.kell.example.edu,2026:sarn-glacier-drones"
    );
    assert_eq!(entries[0]["text"], story("glacier"));
    assert_eq!(entries[0]["simhash"].as_str().unwrap().len(), 16);
    assert!(
        !env.data_dir().exists(),
        "inspect must not create a database"
    );
}
