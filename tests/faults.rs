use std::time::Duration;

use crate::util::{FeedServer, TestEnv, data, wait_until};

#[test]
fn broken_feeds_are_reported_in_their_state_and_cost_nothing_else() {
    let server = FeedServer::start();
    let herald = std::fs::read(data("feeds/herald.rss")).unwrap();
    server.set("/good.rss", herald.clone(), "application/rss+xml");
    server.set(
        "/later-broken.rss",
        std::fs::read(data("feeds/kell.atom")).unwrap(),
        "application/atom+xml",
    );
    server.set_status("/error.rss", 500, "oops", "text/plain");
    server.set(
        "/page.html",
        "<!DOCTYPE html>\n<html><head><title>Home</title></head><body>Welcome</body></html>",
        "text/html",
    );
    server.set("/broken.xml", "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>x</title><item><title>a</item></channel></rss>", "application/rss+xml");
    let mut huge =
        String::from("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>big</title>");
    while huge.len() < 200_000 {
        huge.push_str("<item><title>filler</title><description>lorem ipsum dolor sit amet</description></item>");
    }
    huge.push_str("</channel></rss>");
    server.set("/huge.rss", huge, "application/rss+xml");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = format!("http://{closed}/feed.rss");

    let cases = [
        (unreachable.clone(), "cannot connect"),
        (server.url("/missing.rss"), "404"),
        (server.url("/error.rss"), "500"),
        (server.url("/page.html"), "HTML page"),
        (server.url("/broken.xml"), "not a valid feed"),
        (server.url("/huge.rss"), "larger than"),
    ];
    let mut urls = vec![server.url("/good.rss"), server.url("/later-broken.rss")];
    urls.extend(cases.iter().map(|(u, _)| u.clone()));
    let env = TestEnv::with_feeds(
        "max_body = \"64KiB\"\ntimeout = \"5s\"\nconnect_timeout = \"2s\"\ninterval = \"1s\"",
        &urls,
    );

    let stderr = env.once();
    assert!(stderr.contains("6 failed"), "{stderr}");
    assert_eq!(
        env.records(&["articles"]).len(),
        3,
        "the good feeds are stored"
    );
    for (url, reason) in &cases {
        let feed = env.feed(url);
        assert_eq!(feed["status"], "error", "{url}");
        let error = feed["error"].as_str().unwrap();
        assert!(
            error.contains(reason),
            "{url}: expected {reason:?} in {error:?}"
        );
        assert!(!error.contains('\n'), "one line: {error:?}");
        assert_eq!(feed["failures"], 1);
        assert!(stderr.contains(url.as_str()), "the summary names {url}");
    }
    assert_eq!(env.feed(&urls[0])["status"], "ok");

    // A feed that breaks after it was stored keeps its articles; the daemon keeps polling.
    server.set_status(
        "/later-broken.rss",
        503,
        "down for maintenance",
        "text/plain",
    );
    let mut daemon = env.start_daemon();
    wait_until(Duration::from_secs(30), "two more rounds of polls", || {
        server.seen("/error.rss").len() >= 3 && server.seen("/later-broken.rss").len() >= 3
    });
    assert!(daemon.alive(), "the daemon must not exit: {}", daemon.log());
    let feed = env.feed(&urls[1]);
    assert_eq!(feed["status"], "error");
    assert_eq!(feed["http_status"], 503);
    assert!(feed["failures"].as_u64().unwrap() >= 1);
    assert_eq!(feed["articles"], 1);
    assert_eq!(
        env.records(&["articles"]).len(),
        3,
        "nothing stored is lost"
    );
    assert!(
        daemon.log().contains("Poll failed"),
        "one log line per failed poll"
    );
    assert_eq!(daemon.stop().code(), Some(0));
    assert_eq!(env.records(&["articles"]).len(), 3);
}
