//! `feedsieve fsck [--repair]`: the database's consistency check, on the database itself (never
//! through the daemon: a check needs the database to stand still).

use anyhow::bail;

use crate::config::Config;
use crate::store::{self, Store, StoreError};

/// Checks (and with `repair`, rebuilds) the store of `config`; prints each problem and a summary
/// line. Fails when problems remain.
pub fn fsck(config: &Config, repair: bool) -> anyhow::Result<()> {
    if !config.data_dir.join("db").exists() {
        bail!("no database in {}", config.data_dir.display());
    }
    let options = store::Options {
        max_distance: config.dedup.max_distance,
        ..store::Options::default()
    };
    let store = match Store::open(&config.data_dir, &options) {
        Err(StoreError::Locked { path }) => bail!(
            "the database in {} is in use (the daemon?): stop it, then run fsck",
            path.display()
        ),
        other => other?,
    };
    let report = if repair {
        store.repair()?
    } else {
        store.fsck()?
    };
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    println!(
        "fsck: {} articles, {} tombstones, {} duplicates: {}",
        report.articles,
        report.tombstones,
        report.duplicates,
        match (report.problems.len(), repair) {
            (0, false) => "clean".to_string(),
            (0, true) =>
                "clean after repair (the dedup indexes are rebuilt at the next start)".to_string(),
            (n, _) => format!("{n} problems"),
        }
    );
    if !report.problems.is_empty() {
        bail!(
            "{} problems{}",
            report.problems.len(),
            if repair {
                " remain after repair"
            } else {
                "; `fsck --repair` rebuilds what can be rebuilt"
            }
        );
    }
    Ok(())
}
