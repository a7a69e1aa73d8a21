//! feedsieve's integration tests: the real binary, real feeds served over HTTP on 127.0.0.1, a
//! real sled database in a temp directory. One test binary; a module per area.

mod util;

// The HTTP API: cursor paging, records by id, 400 for bad parameters, the token off loopback.
mod api;
// Named consumers: at-least-once batches, offsets across restarts; `tail --follow`.
mod consumers;
// Feeds added, changed and removed at run time, through the API and the CLI.
mod catalog;
// The cluster's streams and leases on a real nats-server.
mod cluster;
// SIGKILL at random moments: nothing listed is lost, fsck stays clean, ingestion resumes.
mod crash;
// A full disk: ingestion stops, reads go on, and it resumes when space returns.
mod disk;
// Config errors exit 2 naming file, line and key; `check` validates without starting.
mod config;
// Conditional GET: a second poll of unchanged feeds is a 304 and stores nothing.
mod conditional;
// The parse path over the 6,800-feed corpus in ../shared (skipped when absent).
mod conformance;
// The daemon: reads go through its API while it runs; restarts keep everything; SIGTERM exits 0.
mod daemon;
// Each kind of repeat is dropped with the right reason and `duplicate_of`.
mod duplicates;
// Inputs the fuzzers once crashed on (fuzz/regressions/), replayed.
mod fuzzed;
// Broken feeds are reported in their own state and cost nothing else.
mod faults;
// Hostile servers: timeouts, caps, bombs, lies, charsets; each costs only its own feed.
mod hostile;
// OPML import with real-world files, and export that imports back to the same feeds.
mod opml;
// The OpenAPI document: every operation answers as documented.
mod openapi;
// Politeness: publisher hints, per-host limits, Retry-After, backoff, gone, redirects, jitter.
mod polite;
// Running as a service: systemd notifications and unit checks, SIGHUP reload, stop under load,
// retention.
mod service;
// The live stream: every article once, in order, across a restart; filters.
mod stream;
// Articles from RSS 2.0, Atom and JSON Feed are stored with every field.
mod formats;
