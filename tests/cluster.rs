//! The cluster's shared parts against a real `nats-server` (skipped without one; see
//! `util::nats`).

use std::time::{Duration, Instant};

use feedsieve::cluster::outbox::{ARTICLES_SUBJECT, Outbox, SEQ_HEADER};
use feedsieve::cluster::{self, Layout};

use crate::util::nats::NatsServer;
use crate::util::{FeedServer, Item, TestEnv, rss, story, wait_until};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_streams_are_set_up_once_and_the_broker_drops_a_resent_poll() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    runtime().block_on(async {
        let c = cluster::connect(&nats.url(), Layout::default())
            .await
            .unwrap();
        // A second process finds them and uses them as they are.
        let again = cluster::connect(&nats.url(), Layout::default())
            .await
            .unwrap();
        for _ in 0..2 {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(async_nats::header::NATS_MESSAGE_ID, "feed-1:poll-1");
            again
                .js
                .publish_with_headers("feedsieve.polls.feed-1", headers, "report".into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let mut polls = c.js.get_stream(cluster::POLLS).await.unwrap();
        assert_eq!(polls.info().await.unwrap().state.messages, 1);
        for name in [cluster::ARTICLES, cluster::DUPLICATES] {
            assert!(c.js.get_stream(name).await.is_ok(), "{name}");
        }
    });
}

#[test]
fn a_host_lease_has_one_holder_is_renewed_and_is_taken_over_once_it_expires() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let layout = Layout {
        lease_ttl: Duration::from_secs(1),
        ..Layout::default()
    };
    runtime().block_on(async {
        let a = cluster::connect(&nats.url(), layout).await.unwrap().leases;
        let b = cluster::connect(&nats.url(), layout).await.unwrap().leases;
        let host = "127.0.0.2:8080";

        let rev = a.take(host, "a").await.unwrap().expect("a free lease");
        assert_eq!(b.take(host, "b").await.unwrap(), None, "held by a");
        let rev = a.renew(host, "a", rev).await.unwrap().expect("renewed");
        assert_eq!(b.holder(host).await.unwrap().as_deref(), Some("a"));

        // a stops renewing: the lease expires and b takes it over.
        let started = Instant::now();
        let b_rev = loop {
            if let Some(r) = b.take(host, "b").await.unwrap() {
                break r;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the lease never expired"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(started.elapsed() >= Duration::from_millis(500));
        // a's renewal with its old revision fails: it lost the lease.
        assert_eq!(a.renew(host, "a", rev).await.unwrap(), None);
        assert_eq!(a.holder(host).await.unwrap().as_deref(), Some("b"));

        // Released, it is free at once.
        b.release(host, b_rev).await.unwrap();
        assert!(a.take(host, "a").await.unwrap().is_some());
    });
}

/// Every message of `stream`, in order: (the seq header, the NDJSON record).
async fn messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<(u64, serde_json::Value)> {
    let s = js.get_stream(stream).await.unwrap();
    let count = s.get_info().await.unwrap().state.messages;
    let mut out = Vec::new();
    for n in 1..=count {
        let m = s.get_raw_message(n).await.unwrap();
        let seq = m.headers.get(SEQ_HEADER).unwrap().as_str().parse().unwrap();
        out.push((seq, serde_json::from_slice(&m.payload).unwrap()));
    }
    out
}

#[test]
fn the_outbox_publishes_each_record_once_in_order_and_resumes_from_the_streams() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    // Three stories, the third also syndicated by a second feed: 3 articles, 1 duplicate.
    let server = FeedServer::start();
    let texts = [story("solar"), story("rail"), story("glacier")];
    let items: Vec<Item> = ["solar", "rail", "glacier"]
        .iter()
        .zip(&texts)
        .map(|(name, text)| Item {
            guid: name,
            link: name,
            title: name,
            text,
            date: "Tue, 03 Mar 2026 07:00:00 GMT",
        })
        .collect();
    server.set("/a.rss", rss("A", &items), "application/rss+xml");
    let copy = Item {
        guid: "copy",
        link: "https://b.example/copy",
        title: "Glacier, again",
        ..items[2]
    };
    server.set("/b.rss", rss("B", &[copy]), "application/rss+xml");
    let env = TestEnv::with_feeds("", &[server.url("/a.rss")]);
    env.once();
    let env_b = std::fs::read_to_string(&env.config)
        .unwrap()
        .replace(&server.url("/a.rss"), &server.url("/b.rss"));
    std::fs::write(&env.config, env_b).unwrap();
    env.once();
    let articles = env.records(&["articles"]);
    let duplicates = env.records(&["duplicates"]);
    assert_eq!((articles.len(), duplicates.len()), (3, 1));

    let store = feedsieve::store::Store::open(&env.data_dir(), &Default::default()).unwrap();
    runtime().block_on(async {
        let c = cluster::connect(&nats.url(), Layout::default())
            .await
            .unwrap();
        let mut outbox = Outbox::open(c.js.clone()).await.unwrap();
        let sent = outbox.publish(&store).await.unwrap();
        assert_eq!((sent.articles, sent.duplicates), (3, 1));
        let published = messages(&c.js, cluster::ARTICLES).await;
        let ids = ids_of(published.iter().map(|(_, r)| r));
        let stored = ids_of(&articles);
        assert_eq!(ids, stored, "every article, in store order");
        assert_eq!(
            published.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let dups = messages(&c.js, cluster::DUPLICATES).await;
        assert_eq!(dups.len(), 1);
        assert_eq!(dups[0].1["id"], duplicates[0]["id"]);

        // A new outbox (a restart, or a standby with the same records) resumes from the
        // streams: nothing again.
        let mut again = Outbox::open(c.js.clone()).await.unwrap();
        assert_eq!(again.articles_after(), 3);
        let sent = again.publish(&store).await.unwrap();
        assert_eq!((sent.articles, sent.duplicates), (0, 0));
        // Even one that starts from the beginning (its position lost) publishes nothing twice
        // within the broker's duplicate window: the message ids are the records' ids.
        let mut replay = Outbox::starting_after(c.js.clone(), 0, 0);
        replay.publish(&store).await.unwrap();
        assert_eq!(messages(&c.js, cluster::ARTICLES).await.len(), 3);
        assert_eq!(messages(&c.js, cluster::DUPLICATES).await.len(), 1);
        let last =
            c.js.get_stream(cluster::ARTICLES)
                .await
                .unwrap()
                .get_last_raw_message_by_subject(ARTICLES_SUBJECT)
                .await
                .unwrap();
        assert_eq!(last.headers.get(SEQ_HEADER).unwrap().as_str(), "3");
    });
}

/// A process of the cluster: `[poll]` settings `poll`, the feeds, and a `[cluster]` section of
/// `cluster`.
fn clustered(poll: &str, urls: &[String], cluster: &str) -> TestEnv {
    let env = TestEnv::with_feeds(poll, urls);
    let mut text = std::fs::read_to_string(&env.config).unwrap();
    text.push_str(&format!("[cluster]\n{cluster}"));
    std::fs::write(&env.config, text).unwrap();
    env
}

/// A process of the cluster with `role`, on `nats`.
fn member(nats: &NatsServer, role: &str, urls: &[String]) -> TestEnv {
    clustered(
        "",
        urls,
        &format!("nats = \"{}\"\nrole = \"{role}\"\n", nats.url()),
    )
}

#[test]
fn two_fetchers_split_the_hosts_and_one_sieve_stores_each_story_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    // Two hosts. The glacier story is on both, under another guid, link and headline.
    let one = FeedServer::start();
    let two = FeedServer::start_on("127.0.0.2:0");
    let texts = [
        story("solar"),
        story("rail"),
        story("glacier"),
        story("library"),
    ];
    let item = |name: &'static str, text: &'static str| Item {
        guid: name,
        link: name,
        title: name,
        text,
        date: "Tue, 03 Mar 2026 07:00:00 GMT",
    };
    let texts: &'static [String; 4] = Box::leak(Box::new(texts));
    one.set(
        "/a.rss",
        rss("A", &[item("solar", &texts[0]), item("rail", &texts[1])]),
        "application/rss+xml",
    );
    one.set(
        "/b.rss",
        rss("B", &[item("glacier", &texts[2])]),
        "application/rss+xml",
    );
    two.set(
        "/c.rss",
        rss(
            "C",
            &[
                item("https://c.example/glacier-copy", &texts[2]),
                item("library", &texts[3]),
            ],
        ),
        "application/rss+xml",
    );
    let urls = [one.url("/a.rss"), one.url("/b.rss"), two.url("/c.rss")];

    // Both fetchers at once: each takes the hosts it can, none is polled twice.
    let fetchers = [
        member(&nats, "fetcher", &urls),
        member(&nats, "fetcher", &urls),
    ];
    let running: Vec<_> = fetchers
        .iter()
        .map(|f| {
            crate::util::bin()
                .arg("--config")
                .arg(&f.config)
                .args(["run", "--once"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in running {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (server, path) in [(&one, "/a.rss"), (&one, "/b.rss"), (&two, "/c.rss")] {
        assert_eq!(server.seen(path).len(), 1, "{path} polled once in all");
    }
    // A fetcher stores no articles: it keeps its feeds' states only.
    for f in &fetchers {
        assert!(f.records(&["articles"]).is_empty());
    }

    let sieve = member(&nats, "sieve", &urls);
    sieve.once();
    let articles = sieve.records(&["articles"]);
    let mut titles: Vec<&str> = articles
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    titles.sort();
    // The glacier story is stored once, from whichever fetcher's report reached the stream
    // first; the other copy is its duplicate.
    let glacier = ["glacier", "https://c.example/glacier-copy"];
    assert_eq!(titles.len(), 4, "{titles:?}");
    assert_eq!(
        titles.iter().filter(|t| glacier.contains(t)).count(),
        1,
        "{titles:?}"
    );
    for t in ["library", "rail", "solar"] {
        assert!(titles.contains(&t), "{titles:?}");
    }
    let duplicates = sieve.records(&["duplicates"]);
    assert_eq!(duplicates.len(), 1, "{duplicates:?}");
    assert!(glacier.contains(&duplicates[0]["title"].as_str().unwrap()));

    // Every unique article is on the articles stream, once, in the sieve's order.
    runtime().block_on(async {
        let c = cluster::connect(&nats.url(), Layout::default())
            .await
            .unwrap();
        let published = messages(&c.js, cluster::ARTICLES).await;
        let ids = ids_of(published.iter().map(|(_, r)| r));
        let stored = ids_of(&articles);
        assert_eq!(ids, stored);
        assert_eq!(messages(&c.js, cluster::DUPLICATES).await.len(), 1);
    });
    // A second pass of the sieve finds nothing new, and publishes nothing again.
    sieve.once();
    assert_eq!(sieve.records(&["articles"]).len(), 4);
}

/// The feeds whose state in `fetcher` says it polled them since `since`.
fn polled_since(fetcher: &TestEnv, since: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    let mut urls: Vec<String> = fetcher
        .records(&["feeds"])
        .into_iter()
        .filter(|f| {
            f["last_fetch"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > since)
        })
        .map(|f| f["url"].as_str().unwrap().to_string())
        .collect();
    urls.sort();
    urls
}

/// One feed server per host, on `hosts` loopback addresses from 127.0.0.`first`, each
/// serving `/f.rss` with one story (of the names in turn, guids `<prefix>-<i>`); and the feeds'
/// URLs.
fn one_feed_per_host(first: u8, hosts: u8, prefix: &str) -> (Vec<FeedServer>, Vec<String>) {
    const NAMES: [&str; 4] = ["solar", "rail", "glacier", "library"];
    let servers: Vec<FeedServer> = (0..hosts)
        .map(|i| FeedServer::start_on(&format!("127.0.0.{}:0", first + i)))
        .collect();
    let mut urls = Vec::new();
    for (i, s) in servers.iter().enumerate() {
        let guid: &'static str = Box::leak(format!("{prefix}-{i}").into_boxed_str());
        let text: &'static str = Box::leak(story(NAMES[i % NAMES.len()]).into_boxed_str());
        let item = Item {
            guid,
            link: guid,
            title: guid,
            text,
            date: "Tue, 03 Mar 2026 07:00:00 GMT",
        };
        s.set("/f.rss", rss("F", &[item]), "application/rss+xml");
        urls.push(s.url("/f.rss"));
    }
    (servers, urls)
}

/// A running fetcher's config: `urls` polled every second, host leases of 1 s.
fn quick_fetcher(nats: &NatsServer, urls: &[String]) -> TestEnv {
    clustered(
        "interval = \"1s\"",
        urls,
        &format!(
            "nats = \"{}\"\nrole = \"fetcher\"\nlease_ttl = \"1s\"\n",
            nats.url()
        ),
    )
}

#[test]
fn running_fetchers_share_the_hosts_and_a_killed_ones_are_taken_over_within_the_ttl() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    // Six hosts, one feed each.
    let (_servers, urls) = one_feed_per_host(1, 6, "story");
    let fetcher = || quick_fetcher(&nats, &urls);
    let (a_env, b_env) = (fetcher(), fetcher());
    let mut a = a_env.start_daemon();
    let b = b_env.start_daemon();

    // They settle on the rendezvous split: every feed polled, by one of them only.
    let all: Vec<String> = {
        let mut u = urls.clone();
        u.sort();
        u
    };
    let started = chrono::Utc::now();
    wait_until(
        Duration::from_secs(30),
        "the fetchers to share the hosts",
        || {
            let since = chrono::Utc::now() - chrono::Duration::milliseconds(1500);
            let (pa, pb) = (polled_since(&a_env, since), polled_since(&b_env, since));
            let mut both = [pa.clone(), pb.clone()].concat();
            both.sort();
            chrono::Utc::now() - started > chrono::Duration::seconds(3)
                && both == all
                && !pa.is_empty()
                && !pb.is_empty()
        },
    );

    // A dies without a word: B polls every feed within the lease TTL (and a round).
    a.signal("KILL");
    wait_until(Duration::from_secs(10), "fetcher A to die", || !a.alive());
    let killed = chrono::Utc::now();
    wait_until(Duration::from_secs(15), "fetcher B to take over", || {
        polled_since(&b_env, killed) == all
    });
    let took = chrono::Utc::now() - killed;
    assert!(took < chrono::Duration::seconds(8), "took {took}");
    drop(b);
}

/// How long the three-node test waits for each step: leader elections after the node stops
/// take seconds, more when the whole suite runs beside it on 2 cores.
const THREE_NODE_PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn on_a_three_node_nats_cluster_ingestion_goes_on_when_a_node_stops_and_loses_nothing() {
    let Some(mut nats) = crate::util::nats::NatsCluster::start() else {
        return;
    };
    // Feeds that grow by an item every 100 ms; one process fetching and sieving, streams on
    // three replicas.
    let mut publisher = crate::util::Publisher::start(&["alpha", "bravo", "charlie"]);
    let env = clustered(
        "interval = \"1s\"\nper_host = 3",
        &publisher.urls,
        &format!("nats = \"{}\"\nrole = \"all\"\nreplicas = 3\n", nats.urls()),
    );
    let daemon = env.start_daemon();
    wait_until(THREE_NODE_PATIENCE, "20 articles", || {
        crate::util::listed(&env).len() >= 20
    });
    nats.stop(2);
    let at_stop = crate::util::listed(&env).len();
    wait_until(THREE_NODE_PATIENCE, "ingestion to go on", || {
        crate::util::listed(&env).len() >= at_stop + 30
    });
    publisher.stop();
    // Every item the feeds list now is stored, and on the articles stream once.
    let served = items_served(&publisher);
    eprintln!("three-node: {at_stop} stored when node 2 stopped, {served} served in all");
    wait_until(THREE_NODE_PATIENCE, "every item stored", || {
        crate::util::listed(&env).len() == served
    });
    // JetStream may still be electing leaders after the stop: ask until it answers.
    runtime().block_on(wait_until_async(|| async {
        let Ok(c) = cluster::connect(
            &nats.urls(),
            Layout {
                replicas: 3,
                ..Layout::default()
            },
        )
        .await
        else {
            return false;
        };
        let Ok(mut articles) = c.js.get_stream(cluster::ARTICLES).await else {
            return false;
        };
        articles
            .info()
            .await
            .is_ok_and(|i| i.state.messages == served as u64)
    }));
    drop(daemon);
}

/// Polls `f` until it is true (for [`THREE_NODE_PATIENCE`] at most).
async fn wait_until_async<F, Fut>(f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !f().await {
        assert!(started.elapsed() < THREE_NODE_PATIENCE, "timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn when_the_sieve_leader_dies_the_standby_leads_and_every_article_is_published_once() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let mut publisher = crate::util::Publisher::start(&["delta", "echo", "foxtrot"]);
    let with_cluster = |role: &str| {
        clustered(
            "interval = \"1s\"\nper_host = 3",
            &publisher.urls,
            &format!(
                "nats = \"{}\"\nrole = \"{role}\"\nlease_ttl = \"1s\"\n",
                nats.url()
            ),
        )
    };
    let (fetcher_env, a_env, b_env) = (
        with_cluster("fetcher"),
        with_cluster("sieve"),
        with_cluster("sieve"),
    );
    let _fetcher = fetcher_env.start_daemon();
    let mut a = a_env.start_daemon();
    wait_until(Duration::from_secs(20), "sieve A to lead", || {
        a.log().contains("This sieve leads")
    });
    let b = b_env.start_daemon();
    let rt = runtime();
    let c = rt
        .block_on(cluster::connect(&nats.url(), Layout::default()))
        .unwrap();
    let published = || {
        rt.block_on(async {
            let mut s = c.js.get_stream(cluster::ARTICLES).await.unwrap();
            s.info().await.unwrap().state.messages as usize
        })
    };
    wait_until(Duration::from_secs(30), "20 articles published", || {
        published() >= 20
    });
    assert!(
        !b.log().contains("This sieve leads"),
        "B stood by while A led"
    );

    // A dies mid-ingest; B takes the lead within the TTL and goes on from where A's last
    // published article left the stream.
    a.signal("KILL");
    wait_until(Duration::from_secs(10), "sieve A to die", || !a.alive());
    let at_kill = published();
    wait_until(Duration::from_secs(20), "sieve B to lead", || {
        b.log().contains("This sieve leads")
    });
    wait_until(Duration::from_secs(30), "publishing to go on", || {
        published() >= at_kill + 20
    });
    publisher.stop();
    let served = items_served(&publisher);
    eprintln!("standby: {at_kill} published when A died, {served} served in all");
    wait_until(Duration::from_secs(30), "every item published", || {
        published() >= served && crate::util::listed(&b_env).len() >= served
    });
    // Exactly once, in B's order, with seqs 1, 2, 3, ... on the stream.
    let stream = rt.block_on(messages(&c.js, cluster::ARTICLES));
    assert_eq!(stream.len(), served);
    let stored = crate::util::listed(&b_env);
    for (i, (seq, record)) in stream.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(
            stored.get(seq).map(|id| id.trim_matches('"')),
            record["id"].as_str()
        );
    }
    drop(b);
}

/// The items the publisher's feeds list now, all feeds together.
fn items_served(publisher: &crate::util::Publisher) -> usize {
    publisher
        .urls
        .iter()
        .map(|u| {
            let rest = u.split_once("127.0.0.1:").unwrap().1;
            let (port, path) = rest.split_once('/').unwrap();
            let (_, body) =
                crate::util::http_get(&format!("127.0.0.1:{port}"), &format!("/{path}"), None);
            body.matches("<item>").count()
        })
        .sum()
}

/// The `id` of each record.
fn ids_of<'a>(records: impl IntoIterator<Item = &'a serde_json::Value>) -> Vec<&'a str> {
    records
        .into_iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[test]
fn a_sieve_that_takes_the_lead_while_no_report_comes_publishes_what_it_holds() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let server = FeedServer::start();
    let urls = [server.serve_fixture("herald.rss")];
    member(&nats, "fetcher", &urls).once();
    let rt = runtime();
    let c = rt
        .block_on(cluster::connect(&nats.url(), Layout::default()))
        .unwrap();
    let published = || {
        rt.block_on(async {
            let mut s = c.js.get_stream(cluster::ARTICLES).await.unwrap();
            s.info().await.unwrap().state.messages
        })
    };
    // Another sieve leads: this one takes the report in as a standby and publishes nothing.
    let other = rt
        .block_on(c.leases.take(cluster::roles::LEADER, "other"))
        .unwrap()
        .expect("the leader lease is free");
    let sieve = member(&nats, "sieve", &urls);
    sieve.once();
    let stored = sieve.records(&["articles"]).len();
    assert!(stored > 0);
    assert_eq!(published(), 0);
    // The leader goes; no report comes after. Taking the lead, this sieve publishes what it
    // holds.
    rt.block_on(c.leases.release(cluster::roles::LEADER, other))
        .unwrap();
    sieve.once();
    assert_eq!(published(), stored as u64);
}

#[test]
fn a_fetcher_pass_right_after_another_polls_nothing_again() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let server = FeedServer::start();
    let urls = [server.serve_fixture("herald.rss")];
    // The first pass's leases outlive it by their TTL (15 s): the second finds the host taken.
    member(&nats, "fetcher", &urls).once();
    member(&nats, "fetcher", &urls).once();
    assert_eq!(server.seen("/herald.rss").len(), 1);
}

/// The feed URLs `env` lists (`feedsieve feeds`), sorted.
fn listed_urls(env: &TestEnv) -> Vec<String> {
    let mut urls: Vec<String> = env
        .records(&["feeds"])
        .into_iter()
        .map(|f| f["url"].as_str().unwrap().to_string())
        .collect();
    urls.sort();
    urls
}

#[test]
fn the_feed_list_is_shared_so_feeds_added_anywhere_are_polled_once_and_by_fetchers_with_none_of_their_own()
 {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    // Four hosts, one feed each: A's config lists the first two, B's none.
    let (servers, urls) = one_feed_per_host(11, 4, "listed");
    let fetcher = |own: &[String]| quick_fetcher(&nats, own);
    let (a_env, b_env) = (fetcher(&urls[..2]), fetcher(&[]));
    // Changes through the API (`feeds add`, `feeds remove`) need a token.
    for env in [&a_env, &b_env] {
        let text = std::fs::read_to_string(&env.config).unwrap().replacen(
            "[api]\n",
            "[api]\ntoken_file = \"token\"\n",
            1,
        );
        std::fs::write(&env.config, text).unwrap();
    }
    let mut a = a_env.start_daemon();
    let b = b_env.start_daemon();

    // B lists A's config feeds; feeds added through B's API reach A.
    wait_until(Duration::from_secs(20), "B to list A's feeds", || {
        listed_urls(&b_env) == urls[..2]
    });
    for url in &urls[2..] {
        let out = b_env.run(&["feeds", "add", url]);
        assert!(out.status.success(), "{out:?}");
    }
    wait_until(Duration::from_secs(20), "A to list B's additions", || {
        listed_urls(&a_env) == urls
    });

    // Every feed is polled, none by both.
    let seen_by_both = |since: chrono::DateTime<chrono::Utc>| {
        let (pa, pb) = (polled_since(&a_env, since), polled_since(&b_env, since));
        let mut both = [pa.clone(), pb.clone()].concat();
        both.sort();
        (both, pa.iter().filter(|u| pb.contains(u)).count())
    };
    let started = chrono::Utc::now();
    wait_until(
        Duration::from_secs(30),
        "every listed feed to be polled once",
        || {
            let (both, shared) =
                seen_by_both(chrono::Utc::now() - chrono::Duration::milliseconds(1500));
            chrono::Utc::now() - started > chrono::Duration::seconds(3)
                && both == urls
                && shared == 0
        },
    );

    // A feed removed through A's API leaves B's list and is polled no more. A's own config
    // feeds cannot be removed through it.
    let out = a_env.run(&["feeds", "remove", &urls[3]]);
    assert!(out.status.success(), "{out:?}");
    let out = a_env.run(&["feeds", "remove", &urls[0]]);
    assert!(!out.status.success(), "removed a config feed");
    wait_until(
        Duration::from_secs(20),
        "B to drop the removed feed",
        || listed_urls(&b_env) == urls[..3],
    );
    let removed = servers[3].seen("/f.rss").len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(servers[3].seen("/f.rss").len(), removed, "still polled");

    // A dies: B, whose config lists no feed, polls the rest of the list within the TTL.
    a.signal("KILL");
    wait_until(Duration::from_secs(10), "fetcher A to die", || !a.alive());
    let killed = chrono::Utc::now();
    wait_until(Duration::from_secs(15), "fetcher B to take over", || {
        polled_since(&b_env, killed) == urls[..3]
    });
    drop(b);
}

#[test]
fn a_fetcher_taking_over_a_host_asks_with_the_validators_the_last_one_saw() {
    let Some(nats) = NatsServer::start() else {
        return;
    };
    let (servers, urls) = one_feed_per_host(21, 6, "handed");
    let fetcher = || quick_fetcher(&nats, &urls);
    // A alone fetches every feed in full.
    let a_env = fetcher();
    let mut a = a_env.start_daemon();
    let fetched = |s: &FeedServer| s.seen("/f.rss").iter().any(|r| r.status == 200);
    wait_until(Duration::from_secs(20), "A to fetch every feed", || {
        servers.iter().all(fetched)
    });
    // Then B joins, takes its share from A, and after A's SIGKILL all of them: its requests
    // are all conditional, and nothing is downloaded again.
    let before: Vec<usize> = servers.iter().map(|s| s.seen("/f.rss").len()).collect();
    let b_env = fetcher();
    let b = b_env.start_daemon();
    wait_until(Duration::from_secs(20), "B to poll its share", || {
        !polled_since(&b_env, chrono::Utc::now() - chrono::Duration::seconds(2)).is_empty()
    });
    a.signal("KILL");
    wait_until(Duration::from_secs(10), "fetcher A to die", || !a.alive());
    let killed = chrono::Utc::now();
    let all: Vec<String> = {
        let mut u = urls.clone();
        u.sort();
        u
    };
    wait_until(Duration::from_secs(15), "fetcher B to take over", || {
        polled_since(&b_env, killed) == all
    });
    for (s, from) in servers.iter().zip(before) {
        let since: Vec<(u16, bool)> = s.seen("/f.rss")[from..]
            .iter()
            .map(|r| (r.status, r.if_none_match.is_some()))
            .collect();
        assert!(!since.is_empty());
        assert!(
            since
                .iter()
                .all(|&(status, conditional)| status == 304 && conditional),
            "{since:?}"
        );
    }
    drop(b);
}
