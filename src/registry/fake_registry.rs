//! A FAKE registry for unit tests of the client: an in-process HTTP server on 127.0.0.1:0 whose
//! answers a test scripts per request, with a log of every request it saw. It produces what a
//! real registry cannot on demand (429 storms, slow or oversized bodies, wrong digests, counted
//! token fetches, connections reset or bodies cut off mid-answer). It is not the distribution
//! registry; integration tests in `tests/` use that.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
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
    break_after: Option<usize>,
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
            break_after: None,
        }
    }

    /// No answer at all: the connection is reset (`SO_LINGER` 0) once the request is read.
    pub fn reset() -> Self {
        Self {
            break_after: Some(0),
            ..Self::status(200)
        }
    }

    /// Announces the whole body in `Content-Length`, sends its first `bytes` bytes and then
    /// resets the connection.
    pub fn truncated(mut self, bytes: usize) -> Self {
        self.break_after = Some(bytes);
        self
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
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the fake registry");
        let host = listener.local_addr().expect("local address").to_string();
        let app = Router::new()
            .fallback(answer)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<Breaker>();
        let listener = BreakableListener {
            inner: listener,
            shared: shared.clone(),
        };
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

async fn answer(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(breaker): ConnectInfo<Breaker>,
    request: Request,
) -> Response {
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

    let body = match (reply.break_after, reply.trickle) {
        (Some(0), _) => {
            breaker.0.store(true, Ordering::SeqCst);
            Body::empty()
        }
        (Some(keep), _) => {
            let head = Bytes::copy_from_slice(&reply.body[..keep.min(reply.body.len())]);
            let announced = reply.body.len();
            let mut response = truncated_body(head, breaker);
            response.headers_mut().insert(
                axum::http::header::CONTENT_LENGTH,
                HeaderValue::from(announced),
            );
            *response.status_mut() = StatusCode::from_u16(reply.status).expect("valid status");
            for (name, value) in reply.headers {
                response.headers_mut().append(
                    HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                    HeaderValue::from_str(&value).expect("header value"),
                );
            }
            return response;
        }
        (None, None) => Body::from(reply.body),
        (None, Some((chunks, pause))) => {
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

/// A response whose body is `head` and then a broken connection.
fn truncated_body(head: Bytes, breaker: Breaker) -> Response {
    let stream = futures::stream::unfold(Some(head), move |head| {
        let breaker = breaker.clone();
        async move {
            match head {
                Some(head) => Some((Ok::<_, std::io::Error>(head), None)),
                None => {
                    // Give the first bytes time to leave before the connection breaks.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    breaker.0.store(true, Ordering::SeqCst);
                    Some((Err(std::io::Error::other("truncated on purpose")), None))
                }
            }
        }
    });
    Response::new(Body::from_stream(stream))
}

/// Breaks the connection it belongs to when set: the next read or write fails and the socket is
/// closed with a reset.
#[derive(Clone, Debug, Default)]
struct Breaker(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, BreakableListener>> for Breaker {
    fn connect_info(stream: IncomingStream<'_, BreakableListener>) -> Self {
        stream.io().breaker.clone()
    }
}

/// The fake's listener: counts connections and gives each a [`Breaker`].
struct BreakableListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl Listener for BreakableListener {
    type Io = BreakableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        self.shared.connections.fetch_add(1, Ordering::SeqCst);
        (
            BreakableStream {
                stream,
                breaker: Breaker::default(),
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection of the fake that fails every read and write once its breaker is set.
struct BreakableStream {
    stream: TcpStream,
    breaker: Breaker,
}

impl BreakableStream {
    fn broken(&self) -> Option<std::io::Error> {
        if !self.breaker.0.load(Ordering::SeqCst) {
            return None;
        }
        // SO_LINGER 0: closing sends a reset rather than an orderly end of stream.
        let _ = self.stream.set_zero_linger();
        Some(std::io::ErrorKind::ConnectionReset.into())
    }
}

impl AsyncRead for BreakableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(error) = self.broken() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for BreakableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(error) = self.broken() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(error) = self.broken() {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
