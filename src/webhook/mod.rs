//! The push-notification receiver: `POST /notifications/<format>` on its own listener
//! (`--webhook-addr`), apart from `/metrics`, so it can be exposed through an Ingress while the
//! metrics stay inside the cluster.
//!
//! A request is answered in milliseconds and never waits for an import: the body is read (at most
//! [`MAX_BODY`] bytes, within [`BODY_TIMEOUT`]), authenticated with the format's key from the
//! Secret ([`keys`]), parsed by the format's pure parser ([`crate::domain::notification`]), and
//! every pushed `registry/repository:tag` is handed to the import engine, which asks the registry
//! now for every distinct tag pulled from there. Nothing about a payload is logged before it is
//! authenticated. Polling goes on as the safety net.

pub mod keys;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Serialize;

use crate::controller::engine::{EngineSlot, NotifyOutcome};
use crate::domain::distinct_tag::normalised;
use crate::domain::notification::auth::authenticate;
use crate::domain::notification::{Format, MAX_BODY, Parsed, Push, parse};
use crate::domain::reference::ImageReference;
use crate::metrics::Metrics;

pub use keys::Keys;

/// How long a client may take to send its body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receiver needs: the keys, the engine (while this replica leads) and the metrics.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// One key per format, from the Secret.
    pub keys: Arc<Keys>,
    /// The engine of the running controllers.
    pub engine: Arc<EngineSlot>,
    /// Where notifications are counted.
    pub metrics: Arc<Metrics>,
}

/// The receiver's routes.
pub fn router(receiver: Receiver) -> Router {
    Router::new()
        .route("/notifications/{format}", post(notification))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(receiver)
}

/// The answer to an accepted notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// Pushed tags that some distinct tag is pulled from: asked now (or already current).
    pub accepted: usize,
    /// Events with nothing to do: pulls, deletes, other actions, untagged pushes, and pushes of
    /// tags nobody tracks.
    pub ignored: usize,
}

async fn notification(
    State(receiver): State<Receiver>,
    Path(segment): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(format) = Format::from_path(&segment) else {
        return plain(StatusCode::NOT_FOUND, "no such notification format");
    };
    let source = format.as_str();
    let Some(key) = receiver.keys.get(format) else {
        receiver.metrics.count_notification(source, "disabled", 1);
        return plain(
            StatusCode::NOT_FOUND,
            "this notification format is not enabled",
        );
    };
    if declared_length(&headers).is_some_and(|length| length > MAX_BODY as u64) {
        receiver.metrics.count_notification(source, "malformed", 1);
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "body larger than 1 MiB");
    }
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(status) => {
            receiver.metrics.count_notification(source, "malformed", 1);
            return plain(status, "body too large or too slow");
        }
    };
    // Senders that cannot set a header (Docker Hub, Quay, Pub/Sub push) put the token in the URL.
    let query_bearer = query_token(query.as_deref()).map(|token| format!("Bearer {token}"));
    let lookup = |name: &str| match headers.get(name).and_then(|value| value.to_str().ok()) {
        None if name == "authorization" => query_bearer.as_deref(),
        found => found,
    };
    if let Err(err) = authenticate(format, lookup, &body, &key) {
        receiver
            .metrics
            .count_notification(source, "unauthenticated", 1);
        tracing::debug!(source, reason = err.reason(), "notification refused");
        return plain(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let Some(engine) = receiver.engine.get() else {
        receiver
            .metrics
            .count_notification(source, "unavailable", 1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "this replica is not importing (standing by); retry\n",
        )
            .into_response();
    };
    let parsed = match parse(format, &body) {
        Ok(parsed) => parsed,
        Err(err) => {
            receiver.metrics.count_notification(source, "malformed", 1);
            tracing::info!(source, reason = err.reason(), error = %err, "notification refused");
            // A registry's notification queue resends a refused envelope forever, holding up
            // every later one: an authenticated envelope it cannot improve is taken and dropped.
            let status = match format {
                Format::Distribution | Format::Gitlab => StatusCode::ACCEPTED,
                _ => StatusCode::BAD_REQUEST,
            };
            return plain(status, &err.to_string());
        }
    };
    let accepted = deliver(&parsed, |pulled, digest| engine.notify(pulled, digest));
    receiver
        .metrics
        .count_notification(source, "accepted", accepted.accepted as u64);
    receiver
        .metrics
        .count_notification(source, "ignored", accepted.ignored as u64);
    if accepted.accepted > 0 {
        tracing::debug!(source, pushes = ?parsed.pushes, "push notification");
    }
    (StatusCode::ACCEPTED, axum::Json(accepted)).into_response()
}

/// Hands every push of `parsed` to `notify` (the engine) and counts what happened.
pub fn deliver(
    parsed: &Parsed,
    mut notify: impl FnMut(&str, Option<&str>) -> NotifyOutcome,
) -> Accepted {
    let mut answer = Accepted {
        accepted: 0,
        ignored: parsed.ignored.len(),
    };
    for push in &parsed.pushes {
        let tracked = pulled_reference(push)
            .map(|pulled| notify(&pulled, push.digest.as_deref()).tracked)
            .unwrap_or(0);
        if tracked > 0 {
            answer.accepted += 1;
        } else {
            answer.ignored += 1;
        }
    }
    answer
}

/// The push as distinct tags name what they pull: `registry/repository:tag`, normalised.
pub fn pulled_reference(push: &Push) -> Option<String> {
    let written = format!("{}/{}:{}", push.registry, push.repository, push.tag);
    ImageReference::parse(&written)
        .ok()
        .map(|reference| normalised(&reference))
}

/// The `token` query parameter, percent-decoded.
fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "token").then(|| percent_decode(value))
    })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok();
        match (bytes[i], hex().and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The body, at most [`MAX_BODY`] bytes, read within [`BODY_TIMEOUT`].
async fn read_body(body: Body) -> Result<Bytes, StatusCode> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::REQUEST_TIMEOUT),
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// Serves the receiver on `listener` (TLS when `tls` is given) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    receiver: Receiver,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(receiver);
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => tls::serve(listener, config, app, shutdown).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::engine::ImportEngine;
    use axum::http::Request;
    use tower::ServiceExt;

    const KEY: &str = "s3cret";

    fn receiver(with_engine: bool) -> Receiver {
        let metrics = Arc::new(Metrics::new());
        let engine = Arc::new(EngineSlot::default());
        if with_engine {
            let (wakes, _) = futures::channel::mpsc::unbounded();
            engine.set(Some(Arc::new(ImportEngine::new(
                Duration::from_secs(60),
                4,
                4,
                wakes,
                metrics.clone(),
            ))));
        }
        Receiver {
            keys: Arc::new(Keys::from_pairs([
                (Format::Generic, KEY.as_bytes()),
                (Format::Distribution, KEY.as_bytes()),
                (Format::DockerHub, KEY.as_bytes()),
            ])),
            engine,
            metrics,
        }
    }

    async fn post(receiver: &Receiver, uri: &str, auth: Option<&str>, body: &str) -> (u16, String) {
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = router(receiver.clone())
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    const PUSH: &str = r#"{"repository": "quay.io/team/app", "tag": "v1"}"#;

    #[tokio::test]
    async fn requests_are_refused_by_path_key_and_credential_before_anything_is_parsed() {
        let r = receiver(true);
        let bearer = format!("Bearer {KEY}");
        assert_eq!(
            post(&r, "/notifications/nexus", Some(&bearer), PUSH)
                .await
                .0,
            404
        );
        assert_eq!(post(&r, "/metrics", None, "").await.0, 404);
        // A known format without a key in the Secret.
        assert_eq!(
            post(&r, "/notifications/quay", Some(&bearer), PUSH).await.0,
            404
        );
        assert_eq!(r.metrics.notification_count("quay", "disabled"), 1);
        assert_eq!(post(&r, "/notifications/generic", None, PUSH).await.0, 401);
        let wrong = post(
            &r,
            "/notifications/generic",
            Some("Bearer s3cre"),
            "{not json",
        )
        .await;
        assert_eq!(wrong.0, 401);
        assert_eq!(
            r.metrics.notification_count("generic", "unauthenticated"),
            2
        );
        assert_eq!(r.metrics.notification_count("generic", "malformed"), 0);
        let standby = post(
            &receiver(false),
            "/notifications/generic",
            Some(&bearer),
            PUSH,
        )
        .await;
        assert_eq!(standby.0, 503);
    }

    #[tokio::test]
    async fn authenticated_pushes_are_answered_at_once_and_bad_bodies_counted() {
        let r = receiver(true);
        let bearer = format!("Bearer {KEY}");
        let (status, body) = post(&r, "/notifications/generic", Some(&bearer), PUSH).await;
        assert_eq!(
            (status, body.as_str()),
            (202, r#"{"accepted":0,"ignored":1}"#)
        );
        // The token in the URL, for senders that cannot set a header.
        let query = format!("/notifications/dockerhub?token={KEY}");
        let hub = r#"{"push_data": {"tag": "1.25"}, "repository": {"repo_name": "nginx"}}"#;
        assert_eq!(post(&r, &query, None, hub).await.0, 202);
        assert_eq!(
            post(&r, "/notifications/dockerhub?token=s3cre", None, hub)
                .await
                .0,
            401
        );
        assert_eq!(
            post(&r, "/notifications/generic", Some(&bearer), "{]")
                .await
                .0,
            400
        );
        // The registry's queue would resend a refused envelope forever: taken, counted, dropped.
        let (status, _) = post(&r, "/notifications/distribution", Some(&bearer), "{]").await;
        assert_eq!(status, 202);
        assert_eq!(r.metrics.notification_count("distribution", "malformed"), 1);
        let huge = "x".repeat(MAX_BODY + 1);
        assert_eq!(
            post(&r, "/notifications/generic", Some(&bearer), &huge)
                .await
                .0,
            413
        );
    }

    #[test]
    fn the_query_token_is_percent_decoded() {
        assert_eq!(
            query_token(Some("a=1&token=s%2Fc+t")).as_deref(),
            Some("s/c t")
        );
        assert_eq!(query_token(Some("tokens=x")), None);
        assert_eq!(query_token(None), None);
    }

    fn push(registry: &str, repository: &str, tag: &str) -> Push {
        Push {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: None,
        }
    }

    #[test]
    fn pushes_are_named_as_distinct_tags_name_their_pulls() {
        assert_eq!(
            pulled_reference(&push("docker.io", "library/nginx", "1.25")).as_deref(),
            Some("docker.io/library/nginx:1.25")
        );
        assert_eq!(
            pulled_reference(&push("127.0.0.1:5000", "team/app", "v1")).as_deref(),
            Some("127.0.0.1:5000/team/app:v1")
        );
    }

    #[test]
    fn pushes_nobody_tracks_and_skipped_events_are_ignored() {
        let parsed = Parsed {
            pushes: vec![
                push("quay.io", "team/app", "v1"),
                push("quay.io", "team/other", "v1"),
            ],
            ignored: vec![crate::domain::notification::Ignored::Pull],
        };
        let mut asked = Vec::new();
        let answer = deliver(&parsed, |pulled, _| {
            asked.push(pulled.to_owned());
            NotifyOutcome {
                tracked: usize::from(pulled.ends_with("team/app:v1")),
                asked: 0,
                current: 0,
            }
        });
        assert_eq!(
            answer,
            Accepted {
                accepted: 1,
                ignored: 2
            }
        );
        assert_eq!(asked, ["quay.io/team/app:v1", "quay.io/team/other:v1"]);
    }
}
