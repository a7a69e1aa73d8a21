//! A misbehaving HTTP server on loopback: each path acts out one fault (an arbitrary status and
//! headers, a body trickled byte by byte, a hang-up, a lying `Content-Length`, an endless body, a
//! slow answer). It records every request with its time and how many were in flight.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the server does at a path.
#[derive(Clone, Debug)]
pub enum Act {
    /// Answer with this status, these headers and this body (`Content-Length` added).
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Send the headers, then the body one byte every `pause`.
    Trickle { pause: Duration, body: Vec<u8> },
    /// Claim `Content-Length: claimed`, send `body` (shorter or longer), close.
    Lying { claimed: usize, body: Vec<u8> },
    /// Read the request and close without a word.
    Hangup,
    /// A chunked body that never ends.
    Endless,
    /// Wait, then act.
    Slow { delay: Duration, then: Box<Act> },
}

impl Act {
    /// A 200 with a content type.
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Act {
        Act::Reply {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A bodiless answer with headers.
    pub fn status(status: u16, headers: &[(&str, &str)]) -> Act {
        Act::Reply {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
        }
    }
}

/// One request seen.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub at: Instant,
    /// Requests in flight on this server when it arrived (itself included).
    pub in_flight: usize,
    pub headers: String,
}

/// The server.
pub struct Hostile {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Act>>>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Hostile {
    /// Starts a server on `ip` (a loopback address) on a free port.
    pub fn start_on(ip: &str) -> Hostile {
        let listener = TcpListener::bind(format!("{ip}:0")).expect("bind the hostile server");
        let addr = listener.local_addr().expect("addr");
        let routes: Arc<Mutex<HashMap<String, Act>>> = Arc::default();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (r, h) = (routes.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, h, f) = (r.clone(), h.clone(), in_flight.clone());
                std::thread::spawn(move || serve(stream, &r, &h, &f));
            }
        });
        Hostile { addr, routes, hits }
    }

    /// Starts a server on 127.0.0.1.
    pub fn start() -> Hostile {
        Self::start_on("127.0.0.1")
    }

    /// The URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sets what happens at `path`.
    pub fn set(&self, path: &str, act: Act) {
        self.routes.lock().unwrap().insert(path.to_string(), act);
    }

    /// The requests seen for `path`.
    pub fn hits(&self, path: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.path == path)
            .cloned()
            .collect()
    }

    /// Every request seen.
    pub fn all_hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

fn serve(
    mut stream: TcpStream,
    routes: &Mutex<HashMap<String, Act>>,
    hits: &Mutex<Vec<Hit>>,
    in_flight: &AtomicUsize,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 << 10 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let now_in_flight = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    hits.lock().unwrap().push(Hit {
        path: path.clone(),
        at: Instant::now(),
        in_flight: now_in_flight,
        headers: head,
    });
    let act = routes
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or(Act::Reply {
            status: 404,
            headers: vec![],
            body: b"not found".to_vec(),
        });
    // A request stops counting as in flight just before its last byte is sent: after that the
    // client may already be starting its next one.
    let mut done = Some(|| {
        in_flight.fetch_sub(1, Ordering::SeqCst);
    });
    act_out(&mut stream, act, &mut || {
        if let Some(d) = done.take() {
            d();
        }
    });
    if let Some(d) = done.take() {
        d();
    }
}

fn act_out(stream: &mut TcpStream, act: Act, last_byte: &mut dyn FnMut()) {
    let reason = |s: u16| match s {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    match act {
        Act::Reply {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
                reason(status)
            );
            for (n, v) in headers {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
            out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&body);
            let last = bytes.pop();
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
            last_byte();
            let _ = stream.write_all(&last.into_iter().collect::<Vec<u8>>());
        }
        Act::Trickle { pause, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/rss+xml\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            for b in body {
                if stream.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        }
        Act::Lying { claimed, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/rss+xml\r\nContent-Length: {claimed}\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
        Act::Hangup => {}
        Act::Endless => {
            let head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/rss+xml\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
            while stream.write_all(chunk.as_bytes()).is_ok() {}
        }
        Act::Slow { delay, then } => {
            std::thread::sleep(delay);
            act_out(stream, *then, last_byte);
        }
    }
    let _ = stream.flush();
}

/// A loopback address whose listener never accepts and whose queue is full, so a connection
/// attempt hangs until the client gives up (the way an unreachable host behaves).
pub fn unanswered_address() -> (SocketAddr, Vec<TcpStream>, i32) {
    // SAFETY: plain socket calls on a descriptor we own; closed by the caller's `close_fd`.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 4]);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        let mut out: libc::sockaddr_in = std::mem::zeroed();
        let mut out_len = len;
        libc::getsockname(fd, &mut out as *mut _ as *mut libc::sockaddr, &mut out_len);
        let addr = SocketAddr::from(([127, 0, 0, 4], u16::from_be(out.sin_port)));
        // Fill the accept queue.
        let mut fillers = Vec::new();
        for _ in 0..8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
        }
        (addr, fillers, fd)
    }
}
