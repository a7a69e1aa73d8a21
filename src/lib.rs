//! feedsieve: a daemon that polls news feeds, drops repeated articles, and keeps every unique
//! article in an embedded sled database, in order, for other tools to read.
//!
//! # Layout
//! The modules follow the data, which flows one way:
//!
//! | module        | stage                                                                 |
//! |---------------|-----------------------------------------------------------------------|
//! | [`config`]    | the TOML file, validated, with file/line/key errors                   |
//! | [`catalog`]   | the feed list: the config's feeds plus those added at run time        |
//! | [`scheduler`] | when each feed is due; global and per-host limits                     |
//! | [`poll`]      | one poll of one feed, top to bottom                                   |
//! | [`fetch`]     | conditional GET (or file read) under timeouts and a body cap          |
//! | [`parse`]     | feed-rs, then plain text and canonical links: the `Candidate`         |
//! | [`dedup`]     | fingerprints, the near-duplicate block tables, the `Verdict`          |
//! | [`sieve`]     | the one writer: judges each candidate and stores it or its verdict    |
//! | [`store`]     | sled: articles, seq logs, indexes, duplicates, feed states            |
//! | [`explain`]   | why an item was kept or suppressed: its nearest stored articles       |
//! | [`api`]       | the HTTP API: pages, live stream, consumers, feed exports, feeds      |
//! | [`opml`]      | OPML subscription lists, read by `feeds import`, written by `export`  |
//! | [`cli`]       | the commands; reading commands go through the API when the daemon runs |
//!
//! [`app`] wires the stages together, reloads them on SIGHUP and stops them in order; [`service`]
//! speaks systemd's notification protocol; [`telemetry`] sets up logging and holds the metrics.

#![warn(missing_docs)]

pub mod api;
pub mod app;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dedup;
pub mod explain;
pub mod fetch;
pub mod opml;
pub mod parse;
pub mod poll;
pub mod scheduler;
pub mod service;
pub mod sieve;
pub mod store;
pub mod telemetry;
