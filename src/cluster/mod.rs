//! Running as several processes on NATS JetStream (README, "Past one machine"): the streams
//! and key-value buckets the roles share, host leases, and which fetcher polls which host
//! ([`assign`]). The single-process mode never touches this module.
//!
//! | name | kind | holds |
//! |---|---|---|
//! | [`POLLS`] | stream, `feedsieve.polls.<feed>` | poll reports, fetchers to the sieve; `Nats-Msg-Id` per report, so the broker drops a re-sent one |
//! | [`ARTICLES`] | stream, `feedsieve.articles` | every unique article, in order; `Nats-Msg-Id` = article id |
//! | [`DUPLICATES`] | stream, `feedsieve.duplicates` | every duplicate record |
//! | [`LEASES`] | bucket, entries expire after the lease TTL | host → the fetcher polling it |
//! | [`MEMBERS`] | bucket, entries expire after the lease TTL | live fetcher → its heartbeat |
//! | [`feeds::FEEDS`] | bucket, kept | feed id → the feed (the cluster's feed list) |
//! | [`handover::STATES`] | bucket, kept | feed id → its validators and boilerplate, for the next fetcher |

pub mod assign;
pub mod feeds;
pub mod handover;
pub mod outbox;
pub mod roles;
pub mod wire;

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use bytes::Bytes;

/// Stream of poll reports from the fetchers to the sieve.
pub const POLLS: &str = "FEEDSIEVE_POLLS";
/// Stream of the unique articles the sieve stored, in order.
pub const ARTICLES: &str = "FEEDSIEVE_ARTICLES";
/// Stream of the duplicate records.
pub const DUPLICATES: &str = "FEEDSIEVE_DUPLICATES";
/// How long poll reports stay in their stream: a sieve (or standby) away for longer cannot
/// catch up from it and must be copied from another sieve's data directory.
pub const KEEP_POLLS: Duration = Duration::from_secs(7 * 86_400);
/// Bucket of host leases.
pub const LEASES: &str = "feedsieve_leases";
/// Bucket of live fetchers.
pub const MEMBERS: &str = "feedsieve_members";

/// A cluster operation that failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Could not reach the NATS server.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// A stream or bucket could not be created or read.
    #[error("cannot set up JetStream {what} {name}: {message}")]
    Setup {
        /// `stream` or `bucket`.
        what: &'static str,
        /// Its name.
        name: &'static str,
        /// The server's or client's message.
        message: String,
    },
    /// Records could not be read or published.
    #[error("cannot publish to {name}: {message}")]
    Publish {
        /// The stream.
        name: &'static str,
        /// The server's, client's or store's message.
        message: String,
    },
    /// A lease could not be read or written.
    #[error("lease of {key}: {message}")]
    Lease {
        /// The lease's key.
        key: String,
        /// The server's or client's message.
        message: String,
    },
}

/// How the shared streams and buckets are made.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Copies of each stream and bucket (1, or 3 on a three-node NATS cluster).
    pub replicas: usize,
    /// How long a lease or a membership lives without renewal: a dead fetcher's hosts are
    /// taken over within it.
    pub lease_ttl: Duration,
    /// How long the broker remembers a `Nats-Msg-Id` to drop a re-send.
    pub duplicate_window: Duration,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            replicas: 1,
            lease_ttl: Duration::from_secs(15),
            duplicate_window: Duration::from_secs(120),
        }
    }
}

/// What the roles share, set up on one connection.
pub struct Cluster {
    /// The JetStream context.
    pub js: jetstream::Context,
    /// The host leases.
    pub leases: Leases,
    /// The live fetchers.
    pub members: Members,
}

/// Connects to `url` and makes sure every stream and bucket exists (creating what is missing;
/// existing ones are used as they are).
/// `url` may list several servers of one NATS cluster, separated by commas: the client
/// connects to one and moves to another when it goes away.
pub async fn connect(url: &str, layout: Layout) -> Result<Cluster, ClusterError> {
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .map(|u| u.trim().parse())
        .collect::<Result<_, _>>()
        .map_err(|e: std::io::Error| ClusterError::Setup {
            what: "connection",
            name: "cluster.nats",
            message: e.to_string(),
        })?;
    let client = async_nats::connect(servers)
        .await
        .map_err(|source| ClusterError::Connect {
            url: url.to_string(),
            source,
        })?;
    let js = jetstream::new(client);
    for (name, subject, max_age) in [
        (POLLS, "feedsieve.polls.>", KEEP_POLLS),
        // Kept: consumers read them from any point, as they read `feedsieve articles`.
        (ARTICLES, "feedsieve.articles", Duration::ZERO),
        (DUPLICATES, "feedsieve.duplicates", Duration::ZERO),
    ] {
        js.get_or_create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            max_age,
            num_replicas: layout.replicas,
            duplicate_window: layout.duplicate_window,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::Setup {
            what: "stream",
            name,
            message: e.to_string(),
        })?;
    }
    let leases = Leases {
        kv: open_bucket(&js, LEASES, layout.replicas, layout.lease_ttl).await?,
    };
    let members = Members {
        kv: open_bucket(&js, MEMBERS, layout.replicas, layout.lease_ttl).await?,
    };
    Ok(Cluster {
        js,
        leases,
        members,
    })
}

/// Opens the key-value bucket `name`, creating it when it is missing: one revision per key,
/// `replicas` copies, each entry kept for `max_age` (zero: kept until deleted). An existing
/// bucket is used as it is.
async fn open_bucket(
    js: &jetstream::Context,
    name: &'static str,
    replicas: usize,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    match js.get_key_value(name).await {
        Ok(store) => Ok(store),
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: name.to_string(),
                history: 1,
                max_age,
                num_replicas: replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::Setup {
                what: "bucket",
                name,
                message: e.to_string(),
            }),
    }
}

/// Host leases: a key per host in a bucket whose entries expire after the lease TTL, taken
/// with an atomic create and renewed with a compare-and-set on the revision, so that two
/// fetchers can never both hold one.
#[derive(Clone)]
pub struct Leases {
    kv: kv::Store,
}

impl Leases {
    /// Takes the lease on `host` for `me`: its revision, or `None` when someone holds it.
    pub async fn take(&self, host: &str, me: &str) -> Result<Option<u64>, ClusterError> {
        let key = assign::lease_key(host);
        match self.kv.create(&key, Bytes::from(me.to_string())).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(ClusterError::Lease {
                key,
                message: e.to_string(),
            }),
        }
    }

    /// Renews a lease held at `revision`: its new revision, or `None` when it was lost (it
    /// expired and someone else took it, or it was released).
    pub async fn renew(
        &self,
        host: &str,
        me: &str,
        revision: u64,
    ) -> Result<Option<u64>, ClusterError> {
        let key = assign::lease_key(host);
        match self
            .kv
            .update(&key, Bytes::from(me.to_string()), revision)
            .await
        {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(ClusterError::Lease {
                key,
                message: e.to_string(),
            }),
        }
    }

    /// Gives up a lease held at `revision` (when the host belongs to another fetcher now), so
    /// that its new owner need not wait for it to expire. A lease already lost is no error.
    pub async fn release(&self, host: &str, revision: u64) -> Result<(), ClusterError> {
        let key = assign::lease_key(host);
        match self.kv.delete_expect_revision(&key, Some(revision)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(()),
            Err(e) => Err(ClusterError::Lease {
                key,
                message: e.to_string(),
            }),
        }
    }

    /// Who holds the lease on `host`, if anyone.
    pub async fn holder(&self, host: &str) -> Result<Option<String>, ClusterError> {
        let key = assign::lease_key(host);
        match self.kv.get(&key).await {
            Ok(v) => Ok(v.map(|b| String::from_utf8_lossy(&b).into_owned())),
            Err(e) => Err(ClusterError::Lease {
                key,
                message: e.to_string(),
            }),
        }
    }
}

/// The live fetchers: each puts its id in a bucket whose entries expire after the lease TTL,
/// and puts it again while it lives, so the list is who renewed within one TTL.
#[derive(Clone)]
pub struct Members {
    kv: kv::Store,
}

impl Members {
    /// Says `me` is alive (again).
    pub async fn heartbeat(&self, me: &str) -> Result<(), ClusterError> {
        self.kv
            .put(me, Bytes::new())
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Lease {
                key: me.to_string(),
                message: e.to_string(),
            })
    }

    /// The live fetchers' ids, sorted.
    pub async fn list(&self) -> Result<Vec<String>, ClusterError> {
        use futures_util::TryStreamExt;
        let error = |e: String| ClusterError::Lease {
            key: MEMBERS.to_string(),
            message: e,
        };
        let keys = self.kv.keys().await.map_err(|e| error(e.to_string()))?;
        let mut ids: Vec<String> = keys.try_collect().await.map_err(|e| error(e.to_string()))?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}
