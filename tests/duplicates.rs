use serde_json::Value;

use crate::util::{FeedServer, Item, TestEnv, rss, story};

const DATE: &str = "Tue, 03 Mar 2026 07:00:00 GMT";
const LATER: &str = "Tue, 03 Mar 2026 09:00:00 GMT";

/// The glacier story as a syndicating outlet runs it: a new headline, a dateline in front, two
/// boilerplate sentences at the end.
fn syndicated_glacier() -> String {
    let text = story("glacier");
    format!(
        "KELL, March 5 (Northern Wire) \u{2014} {text}\n\nSign up for our science newsletter to get stories like this one every week. Northern Wire stories may not be republished without permission."
    )
}

#[test]
fn each_kind_of_repeat_is_dropped_with_its_reason_and_the_original() {
    let server = FeedServer::start();
    let (solar, rail, library, glacier) = (
        story("solar"),
        story("rail"),
        story("library"),
        story("glacier"),
    );
    let originals = [
        Item {
            guid: "https://a.example/solar",
            link: "https://a.example/solar",
            title: "Floating solar",
            text: &solar,
            date: DATE,
        },
        Item {
            guid: "a-rail",
            link: "https://a.example/rail",
            title: "Night trains",
            text: &rail,
            date: DATE,
        },
        Item {
            guid: "a-library",
            link: "https://a.example/library",
            title: "Library of things",
            text: &library,
            date: DATE,
        },
        Item {
            guid: "a-glacier",
            link: "https://a.example/glacier",
            title: "Glacier drones",
            text: &glacier,
            date: DATE,
        },
    ];
    server.set("/a.rss", rss("A", &originals), "application/rss+xml");
    server.set("/b.rss", rss("B", &[]), "application/rss+xml");
    let (a, b) = (server.url("/a.rss"), server.url("/b.rss"));
    let env = TestEnv::with_feeds("concurrency = 1", &[a.clone(), b.clone()]);
    env.once();
    let stored = env.records(&["articles"]);
    assert_eq!(stored.len(), 4);
    let id_of = |title: &str| stored.iter().find(|x| x["title"] == title).unwrap()["id"].clone();

    // Feed A re-posts the rail story under a new guid; feed B copies the rest.
    let syndicated = syndicated_glacier();
    let reposted = Item {
        guid: "a-rail-v2",
        link: "https://a.example/rail",
        title: "Night trains (updated)",
        text: &rail,
        date: LATER,
    };
    server.set(
        "/a.rss",
        rss("A", &[&originals[..], &[reposted]].concat()),
        "application/rss+xml",
    );
    server.set(
        "/b.rss",
        rss(
            "B",
            &[
                // The same item (its guid is a URL: unique beyond its feed) under a new link.
                Item {
                    guid: "https://a.example/solar",
                    link: "https://b.example/2026/solar",
                    title: "Solar on the water",
                    text: &solar,
                    date: LATER,
                },
                // The same text under a new guid and link.
                Item {
                    guid: "b-77",
                    link: "https://b.example/tools",
                    title: "Borrow a drill",
                    text: &library,
                    date: LATER,
                },
                // New headline, dateline, boilerplate.
                Item {
                    guid: "b-78",
                    link: "https://b.example/ice",
                    title: "Ice in retreat, drones show",
                    text: &syndicated,
                    date: LATER,
                },
            ],
        ),
        "application/rss+xml",
    );
    env.once();

    assert_eq!(env.records(&["articles"]).len(), 4, "no copy may be stored");
    let dups = env.records(&["duplicates"]);
    assert_eq!(dups.len(), 4, "{dups:#?}");
    let find = |title: &str| -> &Value {
        dups.iter()
            .find(|d| d["title"] == title)
            .unwrap_or_else(|| panic!("{title} not dropped: {dups:#?}"))
    };

    let d = find("Night trains (updated)");
    assert_eq!(
        (d["reason"].as_str(), &d["duplicate_of"]),
        (Some("url"), &id_of("Night trains"))
    );
    assert_eq!(d["feed"], a);

    let d = find("Solar on the water");
    assert_eq!(
        (d["reason"].as_str(), &d["duplicate_of"]),
        (Some("guid"), &id_of("Floating solar"))
    );
    assert_eq!(d["feed"], b);
    assert_eq!(d["url"], "https://b.example/2026/solar");

    let d = find("Borrow a drill");
    assert_eq!(
        (d["reason"].as_str(), &d["duplicate_of"]),
        (Some("content"), &id_of("Library of things"))
    );

    let d = find("Ice in retreat, drones show");
    assert_eq!(
        (d["reason"].as_str(), &d["duplicate_of"]),
        (Some("near"), &id_of("Glacier drones"))
    );
    let distance = d["distance"].as_u64().unwrap();
    assert!(distance <= 3, "distance {distance}");
    assert!(d.get("containment").is_none());

    for (i, d) in dups.iter().enumerate() {
        assert_eq!(d["seq"], i as u64 + 1);
    }

    // Provenance: each original lists where its story was seen again.
    let stored = env.records(&["articles"]);
    let also =
        |title: &str| stored.iter().find(|a| a["title"] == title).unwrap()["also_seen"].clone();
    let glacier_copies = also("Glacier drones");
    assert_eq!(
        glacier_copies.as_array().unwrap().len(),
        1,
        "{glacier_copies}"
    );
    assert_eq!(glacier_copies[0]["reason"], "near");
    assert_eq!(glacier_copies[0]["feed"], b);
    assert_eq!(glacier_copies[0]["url"], "https://b.example/ice");
    assert!(glacier_copies[0].get("duplicate_of").is_none());
    assert_eq!(also("Night trains")[0]["reason"], "url");
    assert_eq!(also("Floating solar")[0]["reason"], "guid");
    assert_eq!(also("Library of things")[0]["reason"], "content");

    // A third poll sees the same entries again: re-listings are skipped without a record.
    server.set(
        "/a.rss",
        format!("{} ", rss("A", &originals)),
        "application/rss+xml",
    );
    env.once();
    assert_eq!(env.records(&["duplicates"]).len(), 4);
    assert_eq!(env.records(&["articles"]).len(), 4);
    let fa = env.feed(&a);
    assert_eq!(
        (fa["articles"].as_u64(), fa["duplicates"].as_u64()),
        (Some(4), Some(1))
    );
}

#[test]
fn the_same_story_from_many_feeds_in_one_pass_is_stored_once() {
    let server = FeedServer::start();
    let text = story("rail");
    let mut urls = Vec::new();
    for i in 0..12 {
        let guid = format!("outlet-{i}-rail");
        let link = format!("https://outlet{i}.example/rail");
        let title = format!("Night trains, outlet {i}");
        server.set(
            &format!("/f{i}.rss"),
            rss(
                "outlet",
                &[Item {
                    guid: &guid,
                    link: &link,
                    title: &title,
                    text: &text,
                    date: DATE,
                }],
            ),
            "application/rss+xml",
        );
        urls.push(server.url(&format!("/f{i}.rss")));
    }
    let env = TestEnv::with_feeds("concurrency = 12", &urls);
    env.once();
    assert_eq!(env.records(&["articles"]).len(), 1);
    let dups = env.records(&["duplicates"]);
    assert_eq!(dups.len(), 11);
    assert!(dups.iter().all(|d| d["reason"] == "content"));
}

#[test]
fn a_mash_up_that_splices_two_stored_stories_is_contained() {
    let server = FeedServer::start();
    let (rail, solar) = (story("rail"), story("solar"));
    let paragraphs: Vec<&str> = rail.split("\n\n").collect();
    let solar_para = solar.split("\n\n").nth(1).unwrap();
    let mash = [&paragraphs[..2], &[solar_para], &paragraphs[2..]]
        .concat()
        .join("\n\n");
    server.set(
        "/wire.rss",
        rss(
            "wire",
            &[
                Item {
                    guid: "w-rail",
                    link: "https://wire.example/rail",
                    title: "Night trains",
                    text: &rail,
                    date: DATE,
                },
                Item {
                    guid: "w-solar",
                    link: "https://wire.example/solar",
                    title: "Floating solar",
                    text: &solar,
                    date: DATE,
                },
            ],
        ),
        "application/rss+xml",
    );
    server.set(
        "/scraper.rss",
        rss(
            "scraper",
            &[Item {
                guid: "s-1",
                link: "https://scraper.example/1",
                title: "Trains and panels",
                text: &mash,
                date: LATER,
            }],
        ),
        "application/rss+xml",
    );
    let env = TestEnv::with_feeds(
        "concurrency = 1",
        &[server.url("/wire.rss"), server.url("/scraper.rss")],
    );
    env.once();
    let articles = env.records(&["articles"]);
    assert_eq!(articles.len(), 2);
    let dups = env.records(&["duplicates"]);
    assert_eq!(dups.len(), 1, "{dups:#?}");
    assert_eq!(dups[0]["reason"], "contained");
    assert_eq!(
        dups[0]["duplicate_of"],
        articles
            .iter()
            .find(|a| a["title"] == "Night trains")
            .unwrap()["id"]
    );
    assert!(
        dups[0]["containment"].as_f64().unwrap() >= 0.9,
        "{}",
        dups[0]
    );

    // explain, by the copy's URL: suppressed as contained in the rail story, and the solar story,
    // whose second paragraph was spliced in, shows up as well.
    let explained = env.records(&["explain", "https://scraper.example/1"]);
    let e = &explained[0];
    assert_eq!(e["item"]["kind"], "duplicate");
    assert_eq!(
        (
            e["verdict"]["kept"].as_bool(),
            e["verdict"]["reason"].as_str()
        ),
        (Some(false), Some("contained"))
    );
    let titles: Vec<&str> = e["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(&titles[..2], ["Night trains", "Floating solar"]);
    assert!(e["candidates"][0]["containment"].as_f64().unwrap() >= 0.9);
    assert!(
        e["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["stored_before"] == true)
    );

    // explain, by an article's id: kept, with the other stored story as a distant candidate.
    let rail = articles
        .iter()
        .find(|a| a["title"] == "Night trains")
        .unwrap();
    let explained = env.records(&["explain", rail["id"].as_str().unwrap()]);
    assert_eq!(explained[0]["verdict"]["kept"], true);
    assert_eq!(explained[0]["item"]["seq"], rail["seq"]);

    // Unknown targets are an error, not an empty answer.
    assert!(
        !env.run(&["explain", "https://nowhere.example/x"])
            .status
            .success()
    );

    // The same answer through the daemon's API while it holds the database.
    let daemon = env.start_daemon();
    let via_api = env.records(&["explain", "https://scraper.example/1"]);
    assert_eq!(via_api[0]["verdict"]["reason"], "contained");
    assert_eq!(daemon.stop().code(), Some(0));
}

/// The seed case (../shared/seed/), as the demo config carries it: a wire story about Syria, a
/// Chicago story, and a scraped page that takes most of the Syria story, splices in the Chicago
/// headline and paragraph, and repeats sentences.
#[test]
fn the_seed_mash_up_is_stored_once_and_explained() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo");
    let env = TestEnv::new("[poll]\nconcurrency = 1\n");
    let mut body = std::fs::read_to_string(&env.config).unwrap();
    for name in ["wire-world.xml", "metro-desk.atom", "aggregator.json"] {
        body.push_str(&format!(
            "[[feeds]]\nurl = \"{}\"\n",
            demo.join(name).display()
        ));
    }
    std::fs::write(&env.config, body).unwrap();
    env.once();

    let articles = env.records(&["articles"]);
    let titles: Vec<&str> = articles
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "United States renews offer of Syria cooperation with Russian Federation",
            "Trump tweets he's sending in federal help for Chicago's gun 'epidemic'"
        ]
    );
    let dups = env.records(&["duplicates"]);
    assert_eq!(dups.len(), 2, "{dups:#?}");
    let mash = &dups[0];
    assert_eq!(
        mash["url"],
        "https://aggregator.example.net/p/447fff3f424c702b"
    );
    assert_eq!(mash["reason"], "contained");
    assert_eq!(mash["duplicate_of"], articles[0]["id"]);
    assert!(mash["containment"].as_f64().unwrap() > 0.9, "{mash}");
    assert_eq!(dups[1]["reason"], "content");
    assert_eq!(dups[1]["duplicate_of"], articles[1]["id"]);

    // explain names both stories the mash-up is made of.
    let e = &env.records(&[
        "explain",
        "https://aggregator.example.net/p/447fff3f424c702b",
    ])[0];
    let ids: Vec<&serde_json::Value> = e["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&articles[0]["id"], &articles[1]["id"]]);
    assert_eq!(
        e["candidates"][1]["containment"], 1.0,
        "the Chicago story is wholly inside"
    );
}

#[test]
fn a_feed_s_own_footer_is_learned_and_left_out_of_its_fingerprints() {
    let server = FeedServer::start();
    let footer = "The Valley Herald has served readers in the Alder valley and beyond since 1921, in print and online.";
    let (solar, rail, library, glacier) = (
        story("solar"),
        story("rail"),
        story("library"),
        story("glacier"),
    );
    let with_footer: Vec<String> = [&solar, &rail, &library, &glacier]
        .iter()
        .map(|t| format!("{t}\n\n{footer}"))
        .collect();
    let items: Vec<Item> = with_footer
        .iter()
        .enumerate()
        .map(|(i, text)| Item {
            guid: ["h-1", "h-2", "h-3", "h-4"][i],
            link: [
                "https://h.example/1",
                "https://h.example/2",
                "https://h.example/3",
                "https://h.example/4",
            ][i],
            title: "Herald story",
            text,
            date: DATE,
        })
        .collect();
    server.set("/herald.rss", rss("Herald", &items), "application/rss+xml");
    server.set(
        "/wire.rss",
        rss(
            "Wire",
            &[Item {
                guid: "w-1",
                link: "https://wire.example/glacier",
                title: "Glacier, from the wire",
                text: &glacier,
                date: LATER,
            }],
        ),
        "application/rss+xml",
    );
    let env = TestEnv::with_feeds(
        "concurrency = 1",
        &[server.url("/herald.rss"), server.url("/wire.rss")],
    );
    env.once();
    let dups = env.records(&["duplicates"]);
    assert_eq!(dups.len(), 1, "{dups:#?}");
    assert_eq!(
        (dups[0]["reason"].as_str(), dups[0]["distance"].as_u64()),
        (Some("near"), Some(0)),
        "{}",
        dups[0]
    );
}

#[test]
fn past_the_window_a_similar_story_is_new_again_but_the_article_stays() {
    let server = FeedServer::start();
    let text = story("library");
    server.set(
        "/a.rss",
        rss(
            "A",
            &[Item {
                guid: "a-1",
                link: "https://a.example/1",
                title: "Library",
                text: &text,
                date: DATE,
            }],
        ),
        "application/rss+xml",
    );
    let env = TestEnv::with_feeds("", &[server.url("/a.rss")]);
    let mut config = std::fs::read_to_string(&env.config).unwrap();
    config.push_str("[dedup]\nwindow = \"2s\"\n");
    std::fs::write(&env.config, &config).unwrap();
    env.once();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // The same text, from another outlet, after the window.
    server.set(
        "/a.rss",
        rss(
            "A",
            &[Item {
                guid: "a-1",
                link: "https://a.example/1",
                title: "Library",
                text: &text,
                date: DATE,
            }],
        ),
        "application/rss+xml",
    );
    let b = server.url("/b.rss");
    server.set(
        "/b.rss",
        rss(
            "B",
            &[Item {
                guid: "b-1",
                link: "https://b.example/1",
                title: "Library again",
                text: &text,
                date: LATER,
            }],
        ),
        "application/rss+xml",
    );
    config.push_str(&format!("[[feeds]]\nurl = \"{b}\"\n"));
    std::fs::write(&env.config, &config).unwrap();
    let stderr = env.once();
    assert!(stderr.contains("left the dedup indexes"), "{stderr}");
    let articles = env.records(&["articles"]);
    assert_eq!(
        articles.len(),
        2,
        "the old article stays and the copy is new again"
    );
    assert!(env.records(&["duplicates"]).is_empty());
}
