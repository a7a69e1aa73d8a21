//! The service manager's side: systemd's notification protocol (`sd_notify`), spoken directly.
//!
//! With `Type=notify`, systemd starts feedsieve with `NOTIFY_SOCKET` set to a Unix datagram
//! socket and waits for `READY=1`, which the daemon sends once the database is open and the API
//! listens. `RELOADING=1` and `STOPPING=1` say what a SIGHUP or SIGTERM started. With
//! `WatchdogSec=`, systemd also sets `WATCHDOG_USEC` and restarts the service unless it hears
//! `WATCHDOG=1` within that time: [`spawn_watchdog`] pings at half the interval, but only while
//! the scheduler loop's [`Heartbeat`] is fresh, so a wedged scheduler gets the service restarted
//! while a merely busy one does not.
//!
//! Without `NOTIFY_SOCKET` (a terminal, a test, another supervisor) every call does nothing. The
//! protocol is a few lines; a crate for it would add more than it saves.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Sends `state` (lines such as `READY=1`) to the service manager; returns whether it was sent.
/// Does nothing outside a `Type=notify` service.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket (Linux): `@name`.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => socket.send_to(state.as_bytes(), &path),
        }
    });
    match sent {
        Ok(_) => {
            debug!(state, "Told the service manager.");
            true
        }
        Err(e) => {
            warn!(error = %e, state, "Could not notify the service manager (NOTIFY_SOCKET).");
            false
        }
    }
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, for this process when
/// `WATCHDOG_PID` is set), if any.
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Proof of life from a loop: it beats on every turn; the watchdog reads how long ago.
#[derive(Clone)]
pub struct Heartbeat {
    origin: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Heartbeat {
    /// The loop is alive now.
    pub fn beat(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn age(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Pings the watchdog every `interval / 2` while `heartbeat` is younger than that, until `stop`.
pub fn spawn_watchdog(interval: Duration, heartbeat: Heartbeat, stop: CancellationToken) {
    let every = interval / 2;
    tokio::spawn(async move {
        let mut stalled = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let age = heartbeat.age();
            if age <= every {
                notify("WATCHDOG=1");
                stalled = false;
            } else if !stalled {
                warn!(silent_for = ?age, "The scheduler loop has not turned; not pinging the watchdog.");
                stalled = true;
            }
        }
    });
}
