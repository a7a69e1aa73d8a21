use serde_json::Value;

use crate::util::{TestEnv, data};

fn import(env: &TestEnv, file: &str) -> (Option<i32>, Vec<Value>, String) {
    let path = data(&format!("opml/{file}"));
    let out = env.run(&["feeds", "import", path.to_str().unwrap()]);
    (
        out.status.code(),
        crate::util::ndjson(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn summary(feeds: &[Value]) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = feeds
        .iter()
        .map(|f| {
            (
                f["url"].as_str().unwrap().to_string(),
                f["name"].as_str().unwrap().to_string(),
                f["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn real_world_opml_files_import_with_folders_as_tags() {
    let env = TestEnv::new("");
    let (code, added, stderr) = import(&env, "newsboat-example.opml");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(added.len(), 7);
    let tags = |url: &str| {
        added
            .iter()
            .find(|f| f["url"] == url)
            .map(|f| f["tags"].clone())
            .unwrap_or_else(|| panic!("{url} not imported"))
    };
    assert_eq!(
        tags("https://blogs.example.com/~john/posts.rss"),
        serde_json::json!(["Blogs"])
    );
    assert_eq!(
        tags("https://blogs.example.com/~mike/.rss"),
        serde_json::json!(["Blogs", "friends"])
    );
    assert_eq!(tags("https://example.com/feed.xml"), serde_json::json!([]));
    // Importing again adds nothing and says so.
    let (code, added, stderr) = import(&env, "newsboat-example.opml");
    assert_eq!((code, added.len()), (Some(0), 0));
    assert!(
        stderr.contains("0 feeds added, 7 already listed"),
        "{stderr}"
    );

    // Categories, ISO-8859-1, OPML 2.0 from another reader, nested folders.
    let (code, added, _) = import(&env, "newsboat-category.opml");
    assert_eq!(code, Some(0));
    assert_eq!(
        added[0]["tags"],
        serde_json::json!(["tag one", "tag_two", "tag/three"])
    );
    let (code, added, _) = import(&env, "feedvalidator-subscriptionList.opml");
    assert_eq!((code, added.len()), (Some(0), 13));
    assert!(added.iter().any(|f| f["name"] == "NYT > Business"));
    let (code, added, _) = import(&env, "commafeed-v2.0.opml");
    assert_eq!(code, Some(0));
    assert_eq!(added[0]["tags"], serde_json::json!(["out1"]));
    let (code, added, _) = import(&env, "newsboat-nested.opml");
    assert_eq!(code, Some(0));
    assert_eq!(added.len(), 4);

    // A command instead of a URL is refused by name; the rest of the file still goes in.
    let (code, added, stderr) = import(&env, "newsboat-piped.opml");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("|~/fetch_tweets.py"), "{stderr}");
    assert_eq!(added.len(), 0, "its other feed was in example.opml already");
    // Not an OPML document: a clear error, nothing changed.
    let before = env.records(&["feeds"]).len();
    let (code, _, stderr) = import(&env, "newsboat-no-body.opml");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no <body>"), "{stderr}");
    assert_eq!(env.records(&["feeds"]).len(), before);
}

#[test]
fn export_then_import_gives_the_same_feeds() {
    let env = TestEnv::new(
        "[[feeds]]\nurl = \"https://config.example/rss\"\nname = \"From the file\"\ntags = [\"desk\"]\ninterval = \"45m\"\n",
    );
    for file in [
        "newsboat-example.opml",
        "newsboat-category.opml",
        "feedvalidator-subscriptionList.opml",
    ] {
        assert_eq!(import(&env, file).0, Some(0));
    }
    let out = env.run(&["feeds", "export"]);
    assert!(out.status.success());
    let opml = String::from_utf8(out.stdout).unwrap();
    assert!(opml.starts_with("<?xml") && opml.contains("<opml version=\"2.0\">"));
    let exported = env.dir.path().join("export.opml");
    std::fs::write(&exported, &opml).unwrap();

    let fresh = TestEnv::new("");
    let out = fresh.run(&["feeds", "import", exported.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = summary(&env.records(&["feeds"]));
    let after = summary(&fresh.records(&["feeds"]));
    assert_eq!(before, after);
    let interval = fresh
        .records(&["feeds"])
        .into_iter()
        .find(|f| f["url"] == "https://config.example/rss")
        .unwrap()["interval"]
        .clone();
    assert_eq!(interval, "45m");
}
