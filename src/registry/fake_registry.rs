//! A FAKE registry for unit tests of the client: an in-process HTTP server on 127.0.0.1:0 whose
//! answers a test scripts per request, with a log of every request it saw. It produces what a
//! real registry cannot on demand (429 storms, slow or oversized bodies, wrong digests, counted
//! token fetches). It is not the distribution registry; integration tests in `tests/` use that.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use tokio::task::JoinHandle;

/// One request the fake registry received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// `GET`, `HEAD`, `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// The `Host` header, to build realm URLs pointing back at the fake.
    pub host: String,
    /// The request body as text.
    pub body: String,
}

/// The fake registry's scripted answer to one request.
#[derive(Debug, Clone)]
pub struct FakeReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Option<Duration>,
    trickle: Option<(usize, Duration)>,
}

impl FakeReply {
    /// An empty answer with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
            trickle: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Waits this long before answering at all.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sends the body in `chunks` pieces with `pause` between them, without `Content-Length`.
    pub fn trickle(mut self, chunks: usize, pause: Duration) -> Self {
        self.trickle = Some((chunks.max(1), pause));
        self
    }
}

type Handler = dyn Fn(&SeenRequest) -> FakeReply + Send + Sync;

struct Shared {
    handler: Box<Handler>,
    log: Mutex<Vec<SeenRequest>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    connections: AtomicUsize,
}

/// A running fake registry; stopped when dropped.
pub struct FakeRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeRegistry {
    /// Starts a fake registry answering every request with `handler`.
    pub async fn start(
        handler: impl Fn(&SeenRequest) -> FakeReply + Send + Sync + 'static,
    ) -> Self {
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            log: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the fake registry");
        let host = listener.local_addr().expect("local address").to_string();
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let counted = shared.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
            counted.connections.fetch_add(1, Ordering::SeqCst);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { host, shared, task }
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many requests had `method` and a path starting with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .count()
    }

    /// How many TCP connections clients opened.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = SeenRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
        authorization: header("authorization"),
        accept: header("accept"),
        host: header("host").unwrap_or_default(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared.log.lock().unwrap().push(seen.clone());
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let reply = (shared.handler)(&seen);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);

    let body = match reply.trickle {
        None => Body::from(reply.body),
        Some((chunks, pause)) => {
            let size = reply.body.len().div_ceil(chunks).max(1);
            let pieces: Vec<Bytes> = reply
                .body
                .chunks(size)
                .map(Bytes::copy_from_slice)
                .collect();
            Body::from_stream(futures::stream::unfold(
                (pieces.into_iter(), pause, true),
                |(mut pieces, pause, first)| async move {
                    let piece = pieces.next()?;
                    if !first {
                        tokio::time::sleep(pause).await;
                    }
                    Some((Ok::<_, std::io::Error>(piece), (pieces, pause, false)))
                },
            ))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("valid status");
    for (name, value) in reply.headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }
    response
}
