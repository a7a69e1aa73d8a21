//! The cluster's shared parts against a real `nats-server` (skipped without one; see
//! `util::nats`).

use std::time::{Duration, Instant};

use feedsieve::cluster::{self, Layout};

use crate::util::nats::NatsServer;

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
