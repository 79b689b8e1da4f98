//! A kube client that records every request the operator sends to the API server (method, path,
//! status), so tests count writes exactly: a layer in the client's own tower stack, in front of a
//! real API server. Counting there, rather than in the API server's metrics, keeps the count to one
//! operator while other tests run against the same server.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::Client;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// One request the operator sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCall {
    /// `GET`, `POST`, `PATCH`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// Whether the query asked for a watch.
    pub watch: bool,
    /// The status the API server answered (0 when no answer came).
    pub status: u16,
}

impl ApiCall {
    /// Whether the call writes: POST, PUT, PATCH or DELETE.
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// The calls of one client, in the order they were answered.
#[derive(Debug, Clone, Default)]
pub struct ApiLog(Arc<Mutex<Vec<ApiCall>>>);

impl ApiLog {
    /// Every call so far.
    pub fn calls(&self) -> Vec<ApiCall> {
        self.0.lock().unwrap().clone()
    }

    /// The writes so far.
    pub fn writes(&self) -> Vec<ApiCall> {
        self.calls().into_iter().filter(ApiCall::is_write).collect()
    }
}

#[derive(Clone)]
struct Recording {
    log: ApiLog,
}

impl<S> tower::Layer<S> for Recording {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Recorded {
            inner,
            log: self.log.clone(),
        }
    }
}

#[derive(Clone)]
struct Recorded<S> {
    inner: S,
    log: ApiLog,
}

impl<S, B, R> tower::Service<http::Request<B>> for Recorded<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let watch = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true"));
        let log = self.log.clone();
        self.inner
            .call(request)
            .map(move |result| {
                let status = result.as_ref().map_or(0, |r| r.status().as_u16());
                log.0.lock().unwrap().push(ApiCall {
                    method,
                    path,
                    watch,
                    status,
                });
                result
            })
            .boxed()
    }
}

/// A client from the kubeconfig at `path` that records its calls in the returned log.
pub async fn recording_client(path: &Path) -> (Client, ApiLog) {
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let log = ApiLog::default();
    let client = ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&Recording { log: log.clone() })
        .build();
    (client, log)
}
