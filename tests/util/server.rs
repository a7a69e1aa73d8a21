//! A real HTTP feed server on 127.0.0.1 for the tests: serves what a test put at a path, with
//! ETag and Last-Modified, answers conditional GETs with 304, and records every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One resource the server serves.
#[derive(Clone)]
struct Resource {
    status: u16,
    body: Vec<u8>,
    content_type: String,
    etag: String,
    last_modified: String,
}

/// A request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The `If-None-Match` header.
    pub if_none_match: Option<String>,
    /// The `If-Modified-Since` header.
    pub if_modified_since: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `Connection` header.
    pub connection: Option<String>,
    /// When the server saw it: 0 for its first request, then counting up across all paths.
    pub order: u64,
    /// What the server answered.
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    resources: HashMap<String, Resource>,
    seen: HashMap<String, Vec<Seen>>,
    requests: u64,
    version: u64,
}

/// The server; it runs on its own thread until the test process ends.
pub struct FeedServer {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl FeedServer {
    /// Starts a server on 127.0.0.1 on a free port.
    pub fn start() -> FeedServer {
        Self::start_on("127.0.0.1:0")
    }

    /// Starts a server on `addr`.
    pub fn start_on(addr: &str) -> FeedServer {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = std::net::TcpListener::bind(addr).expect("bind the test server");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("test server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = Router::new().fallback(serve).with_state(state);
                axum::serve(listener, app).await.expect("test server");
            });
        });
        FeedServer { addr, shared }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `body` at `path` with status 200 and a fresh ETag and Last-Modified.
    pub fn set(&self, path: &str, body: impl Into<Vec<u8>>, content_type: &str) {
        self.set_status(path, 200, body, content_type);
    }

    /// Serves the fixture feed `name` at `/name`; returns its URL.
    pub fn serve_fixture(&self, name: &str) -> String {
        let path = format!("/{name}");
        self.set(&path, super::fixture(name), super::fixture_type(name));
        self.url(&path)
    }

    /// Serves `body` at `path` with `status`.
    pub fn set_status(
        &self,
        path: &str,
        status: u16,
        body: impl Into<Vec<u8>>,
        content_type: &str,
    ) {
        let mut s = self.shared.lock().unwrap();
        s.version += 1;
        let body = body.into();
        let etag = format!("\"v{}-{}\"", s.version, body.len());
        let last_modified = (chrono::Utc::now() + chrono::Duration::seconds(s.version as i64))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        s.resources.insert(
            path.to_string(),
            Resource {
                status,
                body,
                content_type: content_type.to_string(),
                etag,
                last_modified,
            },
        );
    }

    /// The requests seen for `path`, oldest first.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.shared
            .lock()
            .unwrap()
            .seen
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn serve(State(shared): State<Arc<Mutex<Shared>>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let h = request.headers().clone();
    let mut s = shared.lock().unwrap();
    let resource = s.resources.get(&path).cloned();
    let if_none_match = header_str(&h, header::IF_NONE_MATCH);
    let if_modified_since = header_str(&h, header::IF_MODIFIED_SINCE);
    let (status, response) = match resource {
        None => (404, (StatusCode::NOT_FOUND, "not found").into_response()),
        Some(r) if r.status != 200 => {
            let status =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                r.status,
                (status, [(header::CONTENT_TYPE, r.content_type)], r.body).into_response(),
            )
        }
        Some(r) => {
            let not_modified = match &if_none_match {
                Some(inm) => inm == &r.etag,
                None => if_modified_since.as_deref() == Some(r.last_modified.as_str()),
            };
            if not_modified {
                (304, StatusCode::NOT_MODIFIED.into_response())
            } else {
                let response = Response::builder()
                    .status(200)
                    .header(header::CONTENT_TYPE, r.content_type)
                    .header(header::ETAG, r.etag)
                    .header(header::LAST_MODIFIED, r.last_modified)
                    .body(Body::from(r.body))
                    .unwrap();
                (200, response)
            }
        }
    };
    let order = s.requests;
    s.requests += 1;
    s.seen.entry(path).or_default().push(Seen {
        if_none_match,
        if_modified_since,
        user_agent: header_str(&h, header::USER_AGENT),
        connection: header_str(&h, header::CONNECTION),
        order,
        status,
    });
    response
}
