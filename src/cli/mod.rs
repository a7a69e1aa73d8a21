//! The command line: parses arguments, loads the config, runs one command, and turns the outcome
//! into an exit status.
//!
//! Exit status: 0 on success (a `run --once` in which some feeds failed is a success: they are
//! reported), 2 for a usage or config error (the message names file, line and key), 1 for
//! anything else. Output goes to stdout, logs and errors to stderr; a closed stdout
//! (`feedsieve articles | head`) ends the command quietly with 0.

mod follow;
mod fsck;
mod inspect;
mod manage;
mod read;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::app;
use crate::catalog::NewFeed;
use crate::config::{Config, ConfigError};
use crate::scheduler::Mode;
use crate::telemetry::{self, LogFormat};

/// feedsieve: polls news feeds, drops repeated articles, keeps every unique one in order.
#[derive(Debug, Parser)]
#[command(name = "feedsieve", version, about, propagate_version = true)]
pub struct Cli {
    /// The config file (TOML).
    #[arg(long, global = true, env = "FEEDSIEVE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (journald, log shippers).
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM/SIGINT (or poll every feed once with --once).
    Run {
        /// Poll every feed once, store what is new, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Print stored unique articles as NDJSON, ascending seq.
    Articles(Paging),
    /// Print suppressed duplicates as NDJSON, ascending seq.
    Duplicates(Paging),
    /// Print each feed's state as NDJSON, or add, remove, import and export feeds.
    Feeds {
        #[command(subcommand)]
        action: Option<FeedsAction>,
    },
    /// Print the newest articles as NDJSON; with --follow, go on printing them as they are stored.
    Tail {
        /// Keep printing new articles as they are stored (across daemon restarts).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Start after this seq instead of with the last 10 articles.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
    },
    /// Print the next batch of articles for a named consumer, then commit its offset.
    Consume {
        /// The consumer's name (letters, digits, '.', '_', '-').
        name: String,
        /// At most this many articles (1 to 1000).
        #[arg(long, default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
        limit: u64,
    },
    /// Parse one feed (file or URL) and print its normalized entries as NDJSON; stores nothing.
    Inspect {
        /// A file path or an http(s) URL.
        #[arg(value_name = "FILE_OR_URL")]
        target: String,
    },
    /// Why an item was kept or suppressed: its verdict and nearest stored articles, as JSON.
    Explain {
        /// An item id (of an article or of a suppressed copy) or a URL.
        #[arg(value_name = "URL_OR_ID")]
        target: String,
    },
    /// Validate the config and exit: 0 when valid, 2 otherwise.
    Check,
    /// Check the database's consistency (exit 0 when clean, 1 when not); the daemon must be
    /// stopped.
    Fsck {
        /// Rebuild item ids, links, counters and the dedup indexes from the records.
        #[arg(long)]
        repair: bool,
    },
}

/// What `feeds` does besides listing.
#[derive(Debug, Subcommand)]
enum FeedsAction {
    /// Add a feed at run time (persisted; the running daemon polls it at once).
    Add {
        /// The feed's URL (http or https).
        url: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Its own polling interval ("15m").
        #[arg(long, value_name = "DURATION")]
        interval: Option<String>,
        /// A tag (repeat for several).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// Remove a feed added at run time (its articles stay).
    Remove {
        /// The feed's URL or id.
        #[arg(value_name = "URL_OR_ID")]
        target: String,
    },
    /// Add every feed of an OPML file (folders and categories become tags).
    Import {
        /// The OPML file.
        #[arg(value_name = "FILE.opml")]
        file: PathBuf,
    },
    /// Print every feed as OPML 2.0.
    Export,
}

/// `--after` and `--limit` of the reading commands.
#[derive(Debug, Clone, Copy, clap::Args)]
struct Paging {
    /// Only records with seq greater than this.
    #[arg(long, default_value_t = 0, value_name = "SEQ")]
    after: u64,
    /// At most this many records.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Run { .. } => "info",
        _ => "warn",
    };
    telemetry::init(
        match cli.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        default_level,
    );
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("feedsieve: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("feedsieve: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// How a command failed, which decides the exit status.
enum Failure {
    /// Usage or config error: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Usage(e.to_string())
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Loads the config named by `--config` or `FEEDSIEVE_CONFIG`.
fn load_config(path: Option<&PathBuf>) -> Result<Config, Failure> {
    let path = path.ok_or_else(|| {
        Failure::Usage("no config file: pass --config FILE or set FEEDSIEVE_CONFIG".into())
    })?;
    Ok(Config::load(path)?)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Failure::Other(anyhow::Error::new(e).context("cannot start the async runtime"))
        })
}

fn execute(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Check => {
            let config = load_config(cli.config.as_ref())?;
            println!(
                "{}: ok ({} feeds)",
                config.path.display(),
                config.feeds.len()
            );
            Ok(())
        }
        Command::Run { once } => {
            let config = load_config(cli.config.as_ref())?;
            let mode = if once { Mode::Once } else { Mode::Forever };
            let summary = runtime()?.block_on(async {
                let signal = app::shutdown_signal();
                let hangups = (mode == Mode::Forever).then(app::hangup_signal).flatten();
                // On a worker, not on this thread: the scheduler wakes for every poll that
                // ends and starts the next, and from here each of those was a wake-up of this
                // thread and of a worker (2,200 thread switches in a 1,000-feed pass).
                let config = config.clone();
                tokio::spawn(async move { app::run(&config, mode, signal, hangups).await })
                    .await
                    .unwrap_or_else(|e| {
                        Err(anyhow::Error::new(e).context("the daemon's task failed"))
                    })
            })?;
            // Every handle on the store is gone with the runtime: write sled's snapshot now.
            app::checkpoint(&config);
            if once {
                eprintln!(
                    "feedsieve: polled {} feeds ({} fetched, {} not modified, {} failed, {} deferred): {} new articles, {} duplicates dropped{}",
                    summary.polls,
                    summary.fetched,
                    summary.not_modified,
                    summary.failed.len(),
                    summary.deferred.len(),
                    summary.new,
                    summary.duplicates,
                    match summary.peak_per_host {
                        0 => String::new(),
                        n => format!("; at most {n} requests in flight to one host"),
                    }
                );
                for (feed, error) in &summary.failed {
                    eprintln!("feedsieve: failed: {feed}: {error}");
                }
                for (feed, reason) in &summary.deferred {
                    eprintln!("feedsieve: deferred: {feed}: {reason}");
                }
            }
            Ok(())
        }
        Command::Articles(p) => {
            let config = load_config(cli.config.as_ref())?;
            Ok(runtime()?.block_on(read::records(
                &config,
                read::Log::Articles,
                p.after,
                p.limit,
            ))?)
        }
        Command::Duplicates(p) => {
            let config = load_config(cli.config.as_ref())?;
            Ok(runtime()?.block_on(read::records(
                &config,
                read::Log::Duplicates,
                p.after,
                p.limit,
            ))?)
        }
        Command::Fsck { repair } => {
            let config = load_config(cli.config.as_ref())?;
            Ok(fsck::fsck(&config, repair)?)
        }
        Command::Explain { target } => {
            let config = load_config(cli.config.as_ref())?;
            Ok(runtime()?.block_on(read::explain(&config, &target))?)
        }
        Command::Feeds { action } => {
            let config = load_config(cli.config.as_ref())?;
            let rt = runtime()?;
            Ok(match action {
                None => rt.block_on(read::feeds(&config)),
                Some(FeedsAction::Add {
                    url,
                    name,
                    interval,
                    tags,
                }) => rt.block_on(manage::add(
                    &config,
                    NewFeed {
                        url,
                        name,
                        interval,
                        tags,
                    },
                )),
                Some(FeedsAction::Remove { target }) => {
                    rt.block_on(manage::remove(&config, &target))
                }
                Some(FeedsAction::Import { file }) => rt.block_on(manage::import(&config, &file)),
                Some(FeedsAction::Export) => rt.block_on(manage::export(&config)),
            }?)
        }
        Command::Tail { follow, after } => {
            let config = load_config(cli.config.as_ref())?;
            Ok(runtime()?.block_on(follow::tail(&config, follow, after))?)
        }
        Command::Consume { name, limit } => {
            let config = load_config(cli.config.as_ref())?;
            Ok(runtime()?.block_on(follow::consume(&config, &name, limit as usize))?)
        }
        Command::Inspect { target } => {
            let config = match cli.config.as_ref() {
                Some(path) => Some(Config::load(path)?),
                None => None,
            };
            Ok(runtime()?.block_on(inspect::run(config.as_ref(), &target))?)
        }
    }
}
