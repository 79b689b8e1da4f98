//! One HTTP exchange with a registry or token service: admission by the host's limits, a timeout
//! over the whole exchange, a bounded read of the entire body (unread bodies reset HTTP/2 streams),
//! metrics, and the host's backoff bookkeeping. Secure and insecure calls use separate clients, so
//! one tenant's `insecure` never weakens another's TLS.

use std::time::{Duration, SystemTime};

use reqwest::header::{CONTENT_LENGTH, HeaderMap, RETRY_AFTER};
use reqwest::redirect::Policy;
use reqwest::{Certificate, Method, StatusCode, Url};
use tokio::time::Instant;

use super::egress::FilteringResolver;
use super::error::{RequestFailure, status_is_transient, status_reason};
use super::limits::{
    Admission, HostLimits, HostOutcome, parse_ratelimit_remaining, parse_retry_after,
};
use super::metrics::{RegistryMetrics, RequestOutcome};
use super::redact::{Secrets, redact};
use crate::domain::address_guard::is_refused_host;

/// How much of an error response is kept to find the registry's message.
pub const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// How much of an error response is read in all: past [`ERROR_BODY_LIMIT`] it is read and
/// discarded, so the exchange ends cleanly (an HTTP/2 stream dropped unread is reset, and many
/// resets make servers close the connection); past this, it is dropped.
pub const ERROR_BODY_DRAIN_LIMIT: u64 = 1024 * 1024;

const MAX_REDIRECTS: usize = 10;

/// A request to send.
#[derive(Debug)]
pub struct Outgoing {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: Url,
    /// Request headers (Accept, Authorization…).
    pub headers: HeaderMap,
    /// A form body (`application/x-www-form-urlencoded`), for OAuth2 token requests.
    pub form: Option<Vec<(&'static str, String)>>,
    /// Use the client that accepts any certificate.
    pub insecure: bool,
    /// The largest successful body accepted.
    pub body_limit: u64,
    /// One of the schemes of an insecure call: which scheme's failure is the call's is decided
    /// after all were tried, so a connection or TLS failure is not recorded in the host's backoff
    /// here; the caller records the one it reports with [`Transport::record_failure`].
    pub fallback_pending: bool,
    /// The secrets the request carries, scrubbed from the failures and log fields it produces.
    pub secrets: Secrets,
    /// The URL's host was named by a registry (a token realm), so it is registry text and is
    /// scrubbed of `secrets` in log fields and metric labels too. A host a tenant configured is
    /// shown as it is.
    pub host_named_by_registry: bool,
}

/// A response, read completely.
#[derive(Debug)]
pub struct Exchange {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body: complete for success statuses, at most [`ERROR_BODY_LIMIT`] bytes otherwise.
    pub body: Vec<u8>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// The limit on one whole exchange, from connecting to the last body byte.
    pub request_timeout: Duration,
    /// The limit on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// PEM certificates trusted in addition to the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Refuse link-local and cloud metadata addresses (see [`super::egress`]).
    pub refuse_link_local: bool,
    /// The `User-Agent`.
    pub user_agent: String,
}

/// The HTTP layer shared by every clone of the registry client.
#[derive(Debug)]
pub struct Transport {
    config: TransportConfig,
    secure: reqwest::Client,
    insecure: reqwest::Client,
    limits: HostLimits,
    metrics: RegistryMetrics,
}

/// Why the HTTP clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The extra CA bundle is not PEM certificates.
    #[error("the extra CA bundle is not valid PEM: {0}")]
    CaBundle(String),
    /// reqwest refused the configuration.
    #[error("{0}")]
    Client(String),
}

impl Transport {
    /// Builds the secure and the insecure HTTP client.
    pub fn new(
        config: TransportConfig,
        limits: HostLimits,
        metrics: RegistryMetrics,
    ) -> Result<Self, BuildError> {
        let extra_roots = match &config.extra_ca_pem {
            Some(pem) => {
                let certs = Certificate::from_pem_bundle(pem)
                    .map_err(|e| BuildError::CaBundle(error_chain(&e)))?;
                if certs.is_empty() {
                    return Err(BuildError::CaBundle("no certificate found".into()));
                }
                certs
            }
            None => Vec::new(),
        };
        let secure = Self::builder(&config, true)
            .tls_certs_merge(extra_roots)
            .build()
            .map_err(|e| BuildError::Client(error_chain(&e)))?;
        let insecure = Self::builder(&config, false)
            .tls_danger_accept_invalid_certs(true)
            .build()
            .map_err(|e| BuildError::Client(error_chain(&e)))?;
        Ok(Self {
            config,
            secure,
            insecure,
            limits,
            metrics,
        })
    }

    fn builder(config: &TransportConfig, secure: bool) -> reqwest::ClientBuilder {
        let refuse_link_local = config.refuse_link_local;
        let builder = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .redirect(Policy::custom(move |attempt| {
                let url = attempt.url();
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if refuse_link_local && url.host_str().is_some_and(is_refused_host) {
                    let host = authority(url);
                    attempt.error(RedirectRefused { host })
                } else if secure && url.scheme() != "https" {
                    attempt.error("redirect from HTTPS to plain HTTP refused")
                } else {
                    attempt.follow()
                }
            }));
        if refuse_link_local {
            builder.dns_resolver(FilteringResolver)
        } else {
            builder
        }
    }

    /// The metrics the transport records into.
    pub fn metrics(&self) -> &RegistryMetrics {
        &self.metrics
    }

    /// Sends `request` and reads its response. Error statuses are returned as an [`Exchange`]
    /// (the caller decides, e.g. a 401 leads to authentication); failures without an HTTP answer,
    /// and success bodies over the limit, are `Err`.
    pub async fn send(&self, request: Outgoing) -> Result<Exchange, RequestFailure> {
        let secrets = request.secrets.clone();
        self.send_unscrubbed(request)
            .await
            .map_err(|failure| failure.redacted(&secrets))
    }

    /// Records the failure an insecure call reports after trying its schemes, sent with
    /// `fallback_pending` and so not recorded by [`Transport::send`]: a transient one makes the
    /// host back off like any other.
    pub fn record_failure(&self, host: &str, failure: &RequestFailure) {
        if matches!(
            failure,
            RequestFailure::Connection { .. } | RequestFailure::Tls { .. }
        ) && failure.is_transient()
        {
            self.limits.record(
                host,
                HostOutcome::Transient {
                    reason: failure.reason(),
                    retry_after: None,
                },
            );
        }
    }

    async fn send_unscrubbed(&self, request: Outgoing) -> Result<Exchange, RequestFailure> {
        let host = authority(&request.url);
        let shown = if request.host_named_by_registry {
            redact(&host, &request.secrets).into_owned()
        } else {
            host.clone()
        };
        if self.config.refuse_link_local && request.url.host_str().is_some_and(is_refused_host) {
            return Err(RequestFailure::AddressRefused { host });
        }
        let (permit, admission) = match self.limits.admit(&host).await {
            Ok(admitted) => admitted,
            Err(backing_off) => {
                self.metrics.observe_wait(&shown, true);
                return Err(RequestFailure::BackingOff {
                    remaining: backing_off.remaining,
                    reason: backing_off.reason,
                });
            }
        };
        if admission == Admission::Waited {
            self.metrics.observe_wait(&shown, false);
        }
        let method = request.method.clone();
        let fallback_pending = request.fallback_pending;
        let request_secrets = request.secrets.clone();
        let start = Instant::now();
        let result = tokio::time::timeout(self.config.request_timeout, self.exchange(request))
            .await
            .unwrap_or(Err(RequestFailure::Timeout {
                after: self.config.request_timeout,
            }));
        let elapsed = start.elapsed();
        let (metric, host_outcome) = match &result {
            Ok(exchange) => {
                if let Some(remaining) = exchange
                    .headers
                    .get("ratelimit-remaining")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_ratelimit_remaining)
                {
                    self.metrics.set_ratelimit_remaining(&shown, remaining);
                }
                (
                    RequestOutcome::Status(exchange.status.as_u16()),
                    host_outcome_of_status(exchange),
                )
            }
            Err(failure @ RequestFailure::Timeout { .. }) => (
                RequestOutcome::Timeout,
                Some(HostOutcome::Transient {
                    reason: failure.reason(),
                    retry_after: None,
                }),
            ),
            Err(RequestFailure::Connection { .. } | RequestFailure::Tls { .. })
                if fallback_pending =>
            {
                (RequestOutcome::Error, None)
            }
            Err(failure) => (
                RequestOutcome::Error,
                Some(if failure.is_transient() {
                    HostOutcome::Transient {
                        reason: failure.reason(),
                        retry_after: None,
                    }
                } else {
                    HostOutcome::Answered
                }),
            ),
        };
        self.metrics
            .observe_request(&shown, method.as_str(), metric, elapsed);
        if let Some(outcome) = host_outcome {
            self.limits.record(&host, outcome);
        }
        // Released only now: a probe's outcome is recorded before a waiting call may start the
        // next one.
        drop(permit);
        match &result {
            Ok(exchange) => tracing::debug!(
                registry = %shown,
                method = %method,
                status = exchange.status.as_u16(),
                elapsed_ms = elapsed.as_millis() as u64,
                "registry request"
            ),
            Err(failure) => tracing::debug!(
                registry = %shown,
                method = %method,
                error = %failure.clone().redacted(&request_secrets),
                elapsed_ms = elapsed.as_millis() as u64,
                "registry request failed"
            ),
        }
        result
    }

    async fn exchange(&self, request: Outgoing) -> Result<Exchange, RequestFailure> {
        let client = if request.insecure {
            &self.insecure
        } else {
            &self.secure
        };
        // A HEAD announces the length of the body a GET would have; there is nothing to read.
        let is_head = request.method == Method::HEAD;
        let mut builder = client
            .request(request.method, request.url)
            .headers(request.headers);
        if let Some(form) = &request.form {
            builder = builder.form(form);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| classify(e, self.config.connect_timeout))?;
        let status = response.status();
        let headers = response.headers().clone();
        let success = status.is_success();
        let limit = if success {
            request.body_limit
        } else {
            ERROR_BODY_LIMIT
        };
        let announced = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if success && !is_head && announced.is_some_and(|length| length > limit) {
            return Err(RequestFailure::ResponseTooLarge { limit });
        }
        let capacity = if is_head {
            0
        } else {
            announced.unwrap_or(0).min(limit)
        };
        let mut body = Vec::with_capacity(capacity as usize);
        let mut read: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify(e, self.config.connect_timeout))?
        {
            read += chunk.len() as u64;
            let room = (limit as usize).saturating_sub(body.len());
            if chunk.len() > room {
                if success {
                    return Err(RequestFailure::ResponseTooLarge { limit });
                }
                // An error page only matters for its message: keep its start, read on to the end
                // unless it is huge.
                body.extend_from_slice(&chunk[..room]);
                if read > ERROR_BODY_DRAIN_LIMIT {
                    break;
                }
                continue;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Exchange {
            status,
            headers,
            body,
        })
    }
}

/// The host's backoff bookkeeping for an answer: 429, 408 and 5xx are transient failures
/// (honouring `Retry-After` on 429 and 503); any other answer shows the host is fine.
fn host_outcome_of_status(exchange: &Exchange) -> Option<HostOutcome> {
    let status = exchange.status.as_u16();
    if !status_is_transient(status) {
        return Some(HostOutcome::Answered);
    }
    Some(HostOutcome::Transient {
        reason: status_reason(status),
        retry_after: requested_wait(exchange),
    })
}

/// The wait a 429 or 503 asks for with `Retry-After`; other answers ask for none.
pub fn requested_wait(exchange: &Exchange) -> Option<Duration> {
    if !matches!(exchange.status.as_u16(), 429 | 503) {
        return None;
    }
    exchange
        .headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// `host[:port]` of a URL, the key of limits and metrics.
pub fn authority(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    }
}

/// The redirect policy's refusal of a link-local or metadata address, told apart from other
/// redirect errors so it is reported as the address guard's refusal.
#[derive(Debug, thiserror::Error)]
#[error("redirect to {host} refused: a link-local or cloud metadata address")]
struct RedirectRefused {
    host: String,
}

/// How the resolver of [`super::egress`] words its refusal of a name that resolves only to
/// refused addresses (`<name> resolves only to …`).
const RESOLVER_REFUSAL: &str = " resolves only to link-local or cloud metadata addresses";

/// The host the address guard refused somewhere in `error`'s chain: a redirect target, or a name
/// whose every address is refused.
fn refused_address(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<RedirectRefused>() {
            return Some(refused.host.clone());
        }
        if let Some(name) = e.to_string().strip_suffix(RESOLVER_REFUSAL) {
            return Some(name.to_owned());
        }
        current = next_cause(e);
    }
    None
}

/// Turns a reqwest error into a failure. The URL is left out: a redirect target (a CDN URL) can
/// carry signed query parameters.
/// Without an overall reqwest timeout set, a reqwest timeout is the connect timeout.
fn classify(error: reqwest::Error, connect_timeout: Duration) -> RequestFailure {
    let error = error.without_url();
    if error.is_timeout() {
        return RequestFailure::Timeout {
            after: connect_timeout,
        };
    }
    // The guard's refusal is its own failure, not a connection failure: a scheme fallback must
    // not replace it, and retrying cannot help.
    if let Some(host) = refused_address(&error) {
        return RequestFailure::AddressRefused { host };
    }
    if let Some(tls) = find_tls_error(&error) {
        return RequestFailure::Tls { detail: tls };
    }
    let detail = error_chain(&error);
    if error.is_redirect() {
        return RequestFailure::InvalidResponse { detail };
    }
    RequestFailure::Connection { detail }
}

fn find_tls_error(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        current = next_cause(e);
    }
    None
}

/// The next error in a chain. `io::Error::source()` skips the error an `io::Error` wraps (rustls
/// errors travel that way, wrapped twice), so that one is taken instead.
fn next_cause<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    match error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(wrapped) => Some(wrapped),
        None => error.source(),
    }
}

/// The messages of an error and its sources, joined with `: `, repeated ones left out.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = next_cause(e);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_keeps_the_port_only_when_given() {
        let url = Url::parse("https://registry-1.docker.io/v2/").unwrap();
        assert_eq!(authority(&url), "registry-1.docker.io");
        let url = Url::parse("http://127.0.0.1:5000/v2/").unwrap();
        assert_eq!(authority(&url), "127.0.0.1:5000");
        let url = Url::parse("https://[::1]:5000/v2/").unwrap();
        assert_eq!(authority(&url), "[::1]:5000");
    }

    #[test]
    fn error_chain_joins_sources_without_repeating_them() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner")]
        struct Outer(#[source] std::io::Error);
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&error), "outer: inner");
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_refused_addresses_is_the_guards_refusal() {
        use reqwest::dns::Resolve;
        let refused = FilteringResolver
            .resolve("169.254.169.254".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert_eq!(
            refused_address(refused.as_ref()),
            Some("169.254.169.254".to_owned())
        );
        let other = std::io::Error::other("Connection refused");
        assert_eq!(refused_address(&other), None);
    }

    #[test]
    fn a_refused_redirect_is_found_in_the_error_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("error following redirect")]
        struct Wrapper(#[source] RedirectRefused);
        let error = Wrapper(RedirectRefused {
            host: "169.254.169.254".into(),
        });
        assert_eq!(refused_address(&error), Some("169.254.169.254".to_owned()));
    }
}
