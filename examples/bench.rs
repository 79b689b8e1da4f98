//! `make bench`: the operator at scale, measured on a local control plane and a local registry.
//!
//! Starts etcd, kube-apiserver and a plain-HTTP registry on 127.0.0.1 with the project's test
//! environment (no kube-controller-manager: Deployments are only patched, never rolled out), pushes
//! `DISTINCT` repositories × `TAGS` tags (every tag a different image), creates `STREAMS`
//! ImageStreams of `TAGS` scheduled tags each (stream `i` tracks `bench/repo-<i % DISTINCT>`, so
//! every registry tag is shared by `STREAMS / DISTINCT` streams) and `WORKLOADS` Deployments with an
//! `image.openshift.io/triggers` annotation on tag `t0` of stream `w % STREAMS`, spread over
//! `NAMESPACES` namespaces. Only then it starts the operator's release binary as a child process and
//! measures:
//!
//! 1. the time until every stream has every tag imported (and every workload its digest), from a
//!    watch on ImageStreams and Deployments;
//! 2. the operator's peak RSS (`VmHWM`) and its RSS at the end of an idle cycle (`VmRSS`);
//! 3. its CPU time (`utime + stime`) over one idle cycle of `INTERVAL`, measured after one further
//!    interval has passed since the first import;
//! 4. the operator's registry requests (HEAD, manifest GET, blob GET) during the first import and
//!    the idle cycle, from the registry's access log (only the `imagestream-operator/` User-Agent);
//! 5. API writes from kube-apiserver's `apiserver_request_total`, by verb, resource and code class,
//!    against a budget of one write per stream, Image, workload and Event;
//! 6. the busiest 10 s of the idle cycle's HEADs, as a share of the cycle's HEADs;
//! 7. push → patch latency: a new image on `repo-0:tag-0`, then the time until each subscribing
//!    stream shows its digest and each of their workloads runs it;
//! 8. the HEAD rate of an operator restarted with `--import-interval 1s`, against a bare keep-alive
//!    client (8 workers, one pooled reqwest client) over the same URLs, with the operator stopped.
//!
//! Benchmarks report; nothing here asserts a time. The result is one markdown table, printed and
//! written to `target/bench/report-<STREAMS>.md`, with the operator's logs beside it.
//!
//! ```sh
//! make bench                                    # 10000 streams × 3 tags, 1000 repositories, 2000 workloads
//! make bench STREAMS=200 DISTINCT=20 WORKLOADS=50 INTERVAL=20s
//! make bench OPERATOR_BIN=$(hack/bench-build-operator.sh <commit>)   # an older build, for comparison
//! make bench NOTIFY=1 STREAMS=1000 DISTINCT=100 WORKLOADS=200          # push notifications
//! make bench ADMISSION=1                                                # the image-lookup webhook's latency
//! ```
//!
//! The admission mode (`ADMISSION=1`, `ADMISSION_PODS`, 1000) creates that many Pods naming a
//! stream, one after another, in a namespace the webhook does not serve and in one it serves, and
//! reports both create latencies (p50, p99) and the difference.
//!
//! The notification mode replaces steps 3–8: the registry notifies the operator's receiver of
//! every push, polling is effectively off (`INTERVAL` defaults to 1h), and after the first import
//! it pushes `PUSHES` new images and reports push → every subscribing stream and Deployment (p50,
//! p99, max) and the registry requests spent per push.
//!
//! Environment: `STREAMS` (10000), `TAGS` (3), `DISTINCT` (1000), `WORKLOADS` (2000), `NAMESPACES`
//! (20), `INTERVAL` (60s), `OPERATOR_BIN` (target/release/imagestream-operator, under
//! `CARGO_TARGET_DIR` when set), `OPERATOR_ARGS` (extra flags of `run`), `BENCH_CONCURRENCY` (24
//! repositories pushed, or objects created, at once), `BURST_SECONDS` (30: a restart at 10,000
//! streams spends its first ~15 s listing and subscribing, so the last 10 s are steady), `BASELINE_SECONDS`
//! (10), `FIRST_IMPORT_TIMEOUT` (30m), `BENCH_OUT` (target/bench); `NOTIFY=1` for the
//! notification mode (below), with `PUSHES` (100) and `PUSH_GAP` (250ms); `TESTENV_KEEP=1` keeps the
//! scratch directory (logs, etcd data). `cargo test --example bench` tests the parsing and counting.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt, stream};
use imagestream_operator::api::ImageStream;
use imagestream_operator::api::image_stream::{
    ImageStreamSpec, TagImportPolicy, TagReference, TagSource,
};
use imagestream_testenv::images::{
    ImageConfig, ImagePusher, ManifestFormat, Platform, PushError, TestImage,
    manifest_accept_header,
};
use imagestream_testenv::{
    ManagedProcess, NotificationEndpoint, Registry, RegistryOptions, RegistryRequest, TestEnv,
    free_port,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use rand::RngCore;
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The operator's registry client names itself `imagestream-operator/<version>`; the bench's own
/// pushes (`imagestream-operator-testenv`) and baseline client do not match it.
const OPERATOR_AGENT_PREFIX: &str = "imagestream-operator/";
const BASELINE_AGENT: &str = "imagestream-operator-bench-baseline";
const BASELINE_WORKERS: usize = 8;
const TRIGGERED_CONTAINER: &str = "app";
const IMAGE_LABEL: &str = "io.imagestream-operator.bench";
/// How long a stopped operator may take to exit after SIGTERM before it is killed (its default
/// `--shutdown-timeout` is 20 s).
const STOP_GRACE: Duration = Duration::from_secs(30);
/// The sliding window of "busiest 10 s share" and of the burst rate.
const WINDOW_SECONDS: u64 = 10;

// ---------------------------------------------------------------------------------------------
// Parameters

struct Params {
    streams: usize,
    tags: usize,
    distinct: usize,
    workloads: usize,
    namespaces: usize,
    interval: Duration,
    interval_text: String,
    operator_bin: PathBuf,
    operator_args: Vec<String>,
    concurrency: usize,
    burst: Duration,
    baseline: Duration,
    first_import_timeout: Duration,
    out_dir: PathBuf,
    notify: bool,
    pushes: usize,
    push_gap: Duration,
    admission: bool,
    admission_pods: usize,
}

impl Params {
    fn from_env() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let notify = env_text("NOTIFY").is_some_and(|v| v != "0");
        let (interval, interval_text) =
            env_duration("INTERVAL", if notify { "1h" } else { "60s" })?;
        let params = Self {
            streams: env_count("STREAMS", 10_000)?,
            tags: env_count("TAGS", 3)?,
            distinct: env_count("DISTINCT", 1000)?,
            workloads: env_number("WORKLOADS", 2000)?,
            namespaces: env_count("NAMESPACES", 20)?,
            interval,
            interval_text,
            operator_bin: std::env::var_os("OPERATOR_BIN")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    // Where `cargo build --release` put it, honouring CARGO_TARGET_DIR.
                    std::env::var_os("CARGO_TARGET_DIR")
                        .filter(|v| !v.is_empty())
                        .map(PathBuf::from)
                        .unwrap_or_else(|| root.join("target"))
                        .join("release/imagestream-operator")
                }),
            operator_args: std::env::var("OPERATOR_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            concurrency: env_count("BENCH_CONCURRENCY", 24)?,
            burst: env_duration("BURST_SECONDS", "30s")?.0,
            baseline: env_duration("BASELINE_SECONDS", "10s")?.0,
            first_import_timeout: env_duration("FIRST_IMPORT_TIMEOUT", "30m")?.0,
            out_dir: std::env::var_os("BENCH_OUT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/bench")),
            notify,
            pushes: env_count("PUSHES", 100)?,
            push_gap: env_duration("PUSH_GAP", "250ms")?.0,
            admission: env_text("ADMISSION").is_some_and(|v| v != "0"),
            admission_pods: env_count("ADMISSION_PODS", 1000)?,
        };
        if params.distinct > params.streams {
            return Err(format!(
                "DISTINCT ({}) must not exceed STREAMS ({}): every repository needs a stream",
                params.distinct, params.streams
            )
            .into());
        }
        if !params.operator_bin.is_file() {
            return Err(format!(
                "no operator binary at {} (build it with `cargo build --release --bin imagestream-operator`, or set OPERATOR_BIN)",
                params.operator_bin.display()
            )
            .into());
        }
        Ok(params)
    }

    fn distinct_tags(&self) -> usize {
        self.distinct * self.tags
    }

    fn namespace_of_stream(&self, stream: usize) -> String {
        format!("bench-{:02}", stream % self.namespaces)
    }

    fn stream_key(&self, stream: usize) -> String {
        format!("{}/s-{stream}", self.namespace_of_stream(stream))
    }

    fn workload_stream(&self, workload: usize) -> usize {
        workload % self.streams
    }

    fn workload_key(&self, workload: usize) -> String {
        format!(
            "{}/w-{workload}",
            self.namespace_of_stream(self.workload_stream(workload))
        )
    }
}

fn tag_name(tag: usize) -> String {
    format!("t{tag}")
}

fn repository(repo: usize) -> String {
    format!("bench/repo-{repo}")
}

fn registry_tag(tag: usize) -> String {
    format!("tag-{tag}")
}

fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_number(name: &str, default: usize) -> Result<usize> {
    match env_text(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|err| format!("{name}={text}: {err}").into()),
    }
}

/// A number that must be at least 1.
fn env_count(name: &str, default: usize) -> Result<usize> {
    let value = env_number(name, default)?;
    if value == 0 {
        return Err(format!("{name} must be at least 1").into());
    }
    Ok(value)
}

/// A duration as the operator's flags spell it (`20s`, `1m`); a bare number is seconds.
fn env_duration(name: &str, default: &str) -> Result<(Duration, String)> {
    let text = env_text(name).unwrap_or_else(|| default.to_owned());
    let text = text.trim();
    let spelled = if text.chars().all(|c| c.is_ascii_digit()) {
        format!("{text}s")
    } else {
        text.to_owned()
    };
    let duration =
        humantime::parse_duration(&spelled).map_err(|err| format!("{name}={text}: {err}"))?;
    if duration.is_zero() {
        return Err(format!("{name} must be longer than zero").into());
    }
    Ok((duration, spelled))
}

// ---------------------------------------------------------------------------------------------
// The report

/// One row of the final table.
struct Row {
    section: &'static str,
    figure: String,
    measured: String,
    target: String,
}

/// Every figure measured so far, in order; printed (also after a failure) as one markdown table.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(
        &mut self,
        section: &'static str,
        figure: impl Into<String>,
        measured: impl Into<String>,
    ) {
        self.check(section, figure, measured, "");
    }

    fn check(
        &mut self,
        section: &'static str,
        figure: impl Into<String>,
        measured: impl Into<String>,
        target: impl Into<String>,
    ) {
        self.rows.push(Row {
            section,
            figure: figure.into(),
            measured: measured.into(),
            target: target.into(),
        });
    }

    fn markdown(&self) -> String {
        let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
        let mut out =
            String::from("| section | figure | measured | target / check |\n|---|---|---|---|\n");
        // Rows stay grouped by section, in the order the sections first appeared, even when a
        // figure of an earlier section is only known later (writes trailing the first import).
        let mut order: Vec<&str> = Vec::new();
        for row in &self.rows {
            if !order.contains(&row.section) {
                order.push(row.section);
            }
        }
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        rows.sort_by_key(|row| order.iter().position(|s| *s == row.section));
        let mut last_section = "";
        for row in rows {
            let section = if row.section == last_section {
                ""
            } else {
                row.section
            };
            last_section = row.section;
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                cell(section),
                cell(&row.figure),
                cell(&row.measured),
                cell(&row.target)
            ));
        }
        out
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        f64::NAN
    } else {
        numerator / denominator
    }
}

/// `measured` against an upper bound: "ok" or how far over.
fn at_most(measured: f64, bound: f64, what: &str) -> String {
    if measured.is_nan() {
        format!("{what}: not measured")
    } else if measured <= bound + 1e-9 {
        format!("{what}: ok")
    } else if bound == 0.0 {
        format!("{what}: over")
    } else {
        format!("{what}: over ({:.2}×)", ratio(measured, bound))
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn list(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn step(text: &str) {
    println!("\n==> {text}");
}

// ---------------------------------------------------------------------------------------------
// Setup: images, namespaces, streams, workloads

/// Counts finished items and prints a line at most every two seconds, and at the end.
struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
    started: Instant,
    printed: Instant,
}

impl Progress {
    fn new(what: &'static str, total: usize) -> Self {
        let now = Instant::now();
        Self {
            what,
            total,
            done: 0,
            started: now,
            printed: now,
        }
    }

    fn tick(&mut self) {
        self.advance(1);
    }

    fn advance(&mut self, items: usize) {
        self.done += items;
        if self.done == self.total || self.printed.elapsed() >= Duration::from_secs(2) {
            self.printed = Instant::now();
            let elapsed = self.started.elapsed().as_secs_f64();
            println!(
                "    {} {}/{} ({elapsed:.0} s, {:.0}/s)",
                self.what,
                self.done,
                self.total,
                self.done as f64 / elapsed.max(0.001)
            );
        }
    }
}

/// A small image whose config names its repository, tag and generation, so every registry tag
/// (and every later push) has its own digest; the one layer is shared.
fn bench_image(layer: &[u8], repo: usize, tag: usize, generation: u32) -> TestImage {
    let mut config = ImageConfig::random();
    config.labels.insert(
        IMAGE_LABEL.into(),
        format!("repo-{repo}:tag-{tag}#{generation}"),
    );
    TestImage {
        format: ManifestFormat::Oci,
        platform: Platform::linux("amd64"),
        config,
        layers: vec![layer.to_vec()],
    }
}

/// Pushes every registry tag's image; returns how many pushes had to be retried. The tags of one
/// repository are pushed one after the other: distribution's filesystem storage loses a blob
/// uploaded into the same repository by two pushes at once (here the shared layer), and then
/// refuses the manifest naming it.
async fn push_images(pusher: &ImagePusher, p: &Params, layer: &[u8]) -> Result<usize> {
    let mut progress = Progress::new("pushed", p.distinct_tags());
    let mut retried = 0;
    stream::iter(0..p.distinct)
        .map(|repo| async move {
            let mut retries = 0;
            for tag in 0..p.tags {
                let image = bench_image(layer, repo, tag, 1);
                retries += push_with_retries(pusher, repo, tag, image).await?.0;
            }
            Ok::<_, PushError>(retries)
        })
        .buffer_unordered(p.concurrency)
        .try_for_each(|retries| {
            retried += retries;
            progress.advance(p.tags);
            futures::future::ready(Ok(()))
        })
        .await?;
    Ok(retried)
}

/// A push answered with a 5xx (a registry under load) is repeated, up to four times. Returns the
/// number of retries and the pushed digest.
async fn push_with_retries(
    pusher: &ImagePusher,
    repo: usize,
    tag: usize,
    image: TestImage,
) -> std::result::Result<(usize, String), PushError> {
    let mut retries = 0;
    loop {
        match pusher
            .push_image(&repository(repo), &registry_tag(tag), &image)
            .await
        {
            Ok(pushed) => return Ok((retries, pushed.digest)),
            Err(err) if retries < 4 && err.status().is_some_and(|s| s >= 500) => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(200 * retries as u64)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

fn bench_stream(p: &Params, registry_host: &str, index: usize) -> ImageStream {
    let repo = index % p.distinct;
    let tags = (0..p.tags)
        .map(|tag| TagReference {
            name: tag_name(tag),
            from: Some(TagSource {
                kind: Some("DockerImage".into()),
                name: Some(format!(
                    "{registry_host}/{}:{}",
                    repository(repo),
                    registry_tag(tag)
                )),
                ..TagSource::default()
            }),
            import_policy: Some(TagImportPolicy {
                scheduled: Some(true),
                insecure: Some(true),
                ..TagImportPolicy::default()
            }),
            ..TagReference::default()
        })
        .collect();
    let mut stream = ImageStream::new(
        &format!("s-{index}"),
        ImageStreamSpec {
            tags,
            ..ImageStreamSpec::default()
        },
    );
    stream.metadata.namespace = Some(p.namespace_of_stream(index));
    stream
}

fn bench_workload(p: &Params, index: usize) -> Result<Deployment> {
    let stream = p.workload_stream(index);
    let name = format!("w-{index}");
    let triggers = json!([{
        "from": {"kind": "ImageStreamTag", "name": format!("s-{stream}:{}", tag_name(0))},
        "fieldPath": format!("spec.template.spec.containers[?(@.name==\"{TRIGGERED_CONTAINER}\")].image"),
    }]);
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": p.namespace_of_stream(stream),
            "annotations": {"image.openshift.io/triggers": triggers.to_string()},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                // A placeholder: the trigger writes the digest reference.
                "spec": {"containers": [{"name": TRIGGERED_CONTAINER, "image": " "}]},
            },
        },
    }))?)
}

async fn create_objects(client: &Client, p: &Params, registry_host: &str) -> Result<()> {
    let namespaces = Api::<Namespace>::all(client.clone());
    for index in 0..p.namespaces.min(p.streams) {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(p.namespace_of_stream(index)),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces
            .create(&PostParams::default(), &namespace)
            .await?;
    }

    let mut progress = Progress::new("ImageStreams created", p.streams);
    stream::iter(0..p.streams)
        .map(|index| {
            let stream = bench_stream(p, registry_host, index);
            let api = Api::<ImageStream>::namespaced(client.clone(), &p.namespace_of_stream(index));
            async move { api.create(&PostParams::default(), &stream).await }
        })
        .buffer_unordered(p.concurrency)
        .try_for_each(|_| {
            progress.tick();
            futures::future::ready(Ok(()))
        })
        .await?;

    let workloads = (0..p.workloads)
        .map(|index| bench_workload(p, index))
        .collect::<Result<Vec<_>>>()?;
    let mut progress = Progress::new("Deployments created", p.workloads);
    stream::iter(workloads)
        .map(|workload| {
            let namespace = workload.namespace().unwrap_or_default();
            let api = Api::<Deployment>::namespaced(client.clone(), &namespace);
            async move { api.create(&PostParams::default(), &workload).await }
        })
        .buffer_unordered(p.concurrency)
        .try_for_each(|_| {
            progress.tick();
            futures::future::ready(Ok(()))
        })
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What the watches saw

#[derive(Default)]
struct SeenStream {
    /// Tag → (current digest, when the bench saw it become current).
    tags: HashMap<String, (String, Instant)>,
    complete: bool,
}

struct SeenWorkload {
    image: String,
    changed: Instant,
    triggered: bool,
}

/// The state of every bench object as the watches last delivered it, with the time each change
/// arrived; measurements read it instead of listing objects.
#[derive(Default)]
struct Observed {
    expected_tags: usize,
    streams: HashMap<String, SeenStream>,
    complete_streams: usize,
    streams_synced: bool,
    workloads: HashMap<String, SeenWorkload>,
    triggered_workloads: usize,
    workloads_synced: bool,
    watch_errors: usize,
}

impl Observed {
    fn observe_stream(&mut self, stream: &ImageStream, now: Instant) {
        let key = format!(
            "{}/{}",
            stream.namespace().unwrap_or_default(),
            stream.name_any()
        );
        let seen = self.streams.entry(key).or_default();
        let status = stream.status.as_ref();
        for tag in status.iter().flat_map(|s| s.tags.iter()) {
            if let Some(current) = tag.items.first()
                && seen.tags.get(&tag.tag).map(|(digest, _)| digest) != Some(&current.image)
            {
                seen.tags
                    .insert(tag.tag.clone(), (current.image.clone(), now));
            }
        }
        let complete = (0..self.expected_tags).all(|tag| {
            status
                .and_then(|s| s.tag(&tag_name(tag)))
                .is_some_and(|t| !t.items.is_empty())
        });
        if complete != seen.complete {
            seen.complete = complete;
            if complete {
                self.complete_streams += 1;
            } else {
                self.complete_streams -= 1;
            }
        }
    }

    fn observe_workload(&mut self, deployment: &Deployment, now: Instant) {
        let key = format!(
            "{}/{}",
            deployment.namespace().unwrap_or_default(),
            deployment.name_any()
        );
        let image = deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|pod| {
                pod.containers
                    .iter()
                    .find(|c| c.name == TRIGGERED_CONTAINER)
            })
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let triggered = image.contains("@sha256:");
        let was_triggered = match self.workloads.get_mut(&key) {
            Some(seen) if seen.image == image => return,
            Some(seen) => {
                let was = seen.triggered;
                *seen = SeenWorkload {
                    image,
                    changed: now,
                    triggered,
                };
                was
            }
            None => {
                self.workloads.insert(
                    key,
                    SeenWorkload {
                        image,
                        changed: now,
                        triggered,
                    },
                );
                false
            }
        };
        match (was_triggered, triggered) {
            (false, true) => self.triggered_workloads += 1,
            (true, false) => self.triggered_workloads -= 1,
            _ => {}
        }
    }
}

/// Aborts the watch tasks when the bench ends, however it ends.
struct Watches(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn start_watches(client: &Client, observed: &Arc<Mutex<Observed>>) -> Watches {
    let lock = |o: &Arc<Mutex<Observed>>| {
        let o = o.clone();
        move || o.lock().unwrap_or_else(|p| p.into_inner()).watch_errors += 1
    };
    let streams = {
        let api = Api::<ImageStream>::all(client.clone());
        let observed = observed.clone();
        let count_error = lock(&observed);
        tokio::spawn(async move {
            let mut events = pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let now = Instant::now();
                match event {
                    Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => observed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .observe_stream(&s, now),
                    Ok(watcher::Event::InitDone) => {
                        observed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .streams_synced = true
                    }
                    Ok(_) => {}
                    Err(err) => {
                        eprintln!("    (ImageStream watch: {err}; it restarts)");
                        count_error();
                    }
                }
            }
        })
    };
    let workloads = {
        let api = Api::<Deployment>::all(client.clone());
        let observed = observed.clone();
        let count_error = lock(&observed);
        tokio::spawn(async move {
            let mut events = pin!(watcher(api, watcher::Config::default()).default_backoff());
            while let Some(event) = events.next().await {
                let now = Instant::now();
                match event {
                    Ok(watcher::Event::Apply(d) | watcher::Event::InitApply(d)) => observed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .observe_workload(&d, now),
                    Ok(watcher::Event::InitDone) => {
                        observed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .workloads_synced = true
                    }
                    Ok(_) => {}
                    Err(err) => {
                        eprintln!("    (Deployment watch: {err}; it restarts)");
                        count_error();
                    }
                }
            }
        })
    };
    Watches(vec![streams, workloads])
}

// ---------------------------------------------------------------------------------------------
// The operator process

struct Operator {
    process: ManagedProcess,
    started: Instant,
    log: PathBuf,
}

impl Operator {
    fn start(p: &Params, env: &TestEnv, interval: &str, log: &Path) -> Result<Self> {
        Self::start_with(p, env, interval, log, &[])
    }

    /// [`Self::start`] with `extra` flags.
    fn start_with(
        p: &Params,
        env: &TestEnv,
        interval: &str,
        log: &Path,
        extra: &[String],
    ) -> Result<Self> {
        let mut command = Command::new(&p.operator_bin);
        command
            .args([
                "run",
                "--leader-elect=false",
                "--import-interval",
                interval,
                "--registry-rate-limit",
                "0",
                "--http-addr",
                &format!("127.0.0.1:{}", free_port()?),
                "--log-format",
                "json",
            ])
            .args(extra)
            .args(&p.operator_args)
            .env("KUBECONFIG", env.kubeconfig());
        let process = ManagedProcess::spawn("imagestream-operator", command, log)
            .map_err(|err| format!("could not start {}: {err}", p.operator_bin.display()))?;
        println!(
            "    operator pid {} (--import-interval {interval}), log: {}",
            process.id(),
            log.display()
        );
        Ok(Self {
            process,
            started: Instant::now(),
            log: log.to_owned(),
        })
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }

    /// An error with the log's last lines when the operator has exited.
    fn ensure_running(&mut self) -> Result<()> {
        match self.process.exited() {
            None => Ok(()),
            Some(status) => Err(format!(
                "the operator exited ({status}); last log lines:\n{}",
                self.process.log_tail(20)
            )
            .into()),
        }
    }

    /// Sleeps, checking every second that the operator still runs.
    async fn sleep(&mut self, duration: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + duration;
        loop {
            self.ensure_running()?;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            tokio::time::sleep((deadline - now).min(Duration::from_secs(1))).await;
        }
    }

    /// SIGTERM, then up to [`STOP_GRACE`] for it to exit; killed after that. Says how it ended.
    async fn stop(&mut self) -> String {
        let asked = Instant::now();
        self.process.terminate();
        while asked.elapsed() < STOP_GRACE {
            if let Some(status) = self.process.exited() {
                return format!(
                    "{status} {:.1} s after SIGTERM",
                    asked.elapsed().as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.process.kill();
        format!("still running {} after SIGTERM; killed", secs(STOP_GRACE))
    }
}

/// `utime + stime` of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses; the fields after the last `)` do not.
    let (_, rest) = stat.rsplit_once(')').ok_or("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), so utime (14) and stime (15) are at 11 and 12.
    let ticks: f64 = fields.get(11).ok_or("no utime")?.parse::<f64>()?
        + fields.get(12).ok_or("no stime")?.parse::<f64>()?;
    let per_second = imagestream_testenv::clock_ticks_per_second();
    Ok(ticks / per_second)
}

/// A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`).
fn memory_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status").into())
}

/// Level counts of a JSON log, and the most frequent WARN/ERROR kinds: target and message, with
/// the `reason` field when there is one, else the start of the `error` field (errors name objects,
/// reasons do not, so reasons group better).
fn log_summary(path: &Path) -> (BTreeMap<String, u64>, Vec<(String, u64)>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut levels = BTreeMap::new();
    let mut problems: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            *levels.entry("(not JSON)".to_owned()).or_default() += 1;
            continue;
        };
        let level = entry["level"].as_str().unwrap_or("?").to_owned();
        if level == "WARN" || level == "ERROR" {
            let fields = &entry["fields"];
            let message: String = fields["message"]
                .as_str()
                .unwrap_or("?")
                .chars()
                .take(100)
                .collect();
            let target = entry["target"].as_str().unwrap_or("?");
            let detail = match (fields["reason"].as_str(), fields["error"].as_str()) {
                (Some(reason), _) => format!(" (reason {reason})"),
                (None, Some(error)) => format!(": {}", error.chars().take(80).collect::<String>()),
                (None, None) => String::new(),
            };
            *problems
                .entry(format!("{level} {target}: {message}{detail}"))
                .or_default() += 1;
        }
        *levels.entry(level).or_default() += 1;
    }
    let mut problems: Vec<_> = problems.into_iter().collect();
    problems.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    problems.truncate(4);
    (levels, problems)
}

// ---------------------------------------------------------------------------------------------
// kube-apiserver's request counters

/// The labels of `apiserver_request_total` the bench reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Debug, Default, Clone)]
struct ApiCounts(HashMap<RequestKey, f64>);

const READ_VERBS: [&str; 4] = ["GET", "LIST", "WATCH", "CONNECT"];
/// Written by kube-apiserver itself (the `kubernetes` Service's endpoint reconciler), never by the
/// operator: reported apart from the operator's writes.
const APISERVER_OWN_RESOURCES: [&str; 2] = ["endpoints", "endpointslices"];

impl ApiCounts {
    async fn scrape(client: &Client) -> Result<Self> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        Ok(Self::parse(&client.request_text(request).await?))
    }

    /// The `apiserver_request_total` samples of a Prometheus text exposition, summed by verb,
    /// `resource[/subresource]` and code.
    fn parse(text: &str) -> Self {
        let mut counts = HashMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let labels = parse_labels(labels);
            let label = |name: &str| labels.get(name).cloned().unwrap_or_default();
            let subresource = label("subresource");
            let resource = if subresource.is_empty() {
                label("resource")
            } else {
                format!("{}/{subresource}", label("resource"))
            };
            let key = RequestKey {
                verb: label("verb"),
                resource,
                code: label("code"),
            };
            *counts.entry(key).or_insert(0.0) += value;
        }
        Self(counts)
    }

    fn since(&self, before: &ApiCounts) -> ApiCounts {
        Self(
            self.0
                .iter()
                .map(|(key, after)| {
                    let delta = after - before.0.get(key).copied().unwrap_or(0.0);
                    (key.clone(), delta.max(0.0))
                })
                .filter(|(_, delta)| *delta > 0.0)
                .collect(),
        )
    }

    fn summary(&self) -> ApiSummary {
        let mut summary = ApiSummary::default();
        for (key, value) in &self.0 {
            let value = *value as u64;
            let code: u16 = key.code.parse().unwrap_or(0);
            if code >= 500 {
                summary.server_errors_all += value;
            }
            if READ_VERBS.contains(&key.verb.as_str()) {
                summary.reads += value;
                continue;
            }
            if APISERVER_OWN_RESOURCES.contains(&key.resource.as_str()) {
                summary.apiserver_own_writes += value;
                continue;
            }
            summary.writes += value;
            *summary.by_verb.entry(key.verb.clone()).or_default() += value;
            *summary.by_resource.entry(key.resource.clone()).or_default() += value;
            *summary
                .by_class
                .entry(format!("{}xx", code / 100))
                .or_default() += value;
            if code == 409 {
                summary.conflicts += value;
                *summary
                    .conflicts_by_resource
                    .entry(key.resource.clone())
                    .or_default() += value;
            }
            if code >= 500 {
                summary.server_errors += value;
            }
        }
        summary
    }
}

fn parse_labels(text: &str) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') || chars.next() != Some('"') {
            return labels;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
    }
}

#[derive(Debug, Default)]
struct ApiSummary {
    writes: u64,
    reads: u64,
    by_verb: BTreeMap<String, u64>,
    by_resource: BTreeMap<String, u64>,
    by_class: BTreeMap<String, u64>,
    conflicts: u64,
    conflicts_by_resource: BTreeMap<String, u64>,
    server_errors: u64,
    server_errors_all: u64,
    apiserver_own_writes: u64,
}

fn report_api(report: &mut Report, section: &'static str, summary: &ApiSummary) {
    report.add(section, "API writes", summary.writes.to_string());
    report.add(section, "API writes by verb", list(&summary.by_verb));
    report.add(
        section,
        "API writes by resource",
        list(&summary.by_resource),
    );
    report.add(section, "API writes by code class", list(&summary.by_class));
    report.check(
        section,
        "API write conflicts (409)",
        if summary.conflicts == 0 {
            "0".to_owned()
        } else {
            format!(
                "{} ({})",
                summary.conflicts,
                list(&summary.conflicts_by_resource)
            )
        },
        at_most(summary.conflicts as f64, 0.0, "0"),
    );
    report.check(
        section,
        "API 5xx (writes / all requests)",
        format!("{} / {}", summary.server_errors, summary.server_errors_all),
        at_most(summary.server_errors_all as f64, 0.0, "0"),
    );
    report.add(
        section,
        "API reads (GET, LIST, WATCH; the bench's watches included)",
        summary.reads.to_string(),
    );
    report.add(
        section,
        "kube-apiserver's own writes (endpoints; not counted above)",
        summary.apiserver_own_writes.to_string(),
    );
}

// ---------------------------------------------------------------------------------------------
// The registry's access log

#[derive(Debug, Default)]
struct RegistryWindow {
    heads: usize,
    manifest_gets: usize,
    blob_gets: usize,
    other: usize,
    failed: usize,
}

fn is_operator(request: &RegistryRequest) -> bool {
    request.user_agent.starts_with(OPERATOR_AGENT_PREFIX)
}

/// The operator's requests among `requests`, by kind.
fn registry_window(requests: &[RegistryRequest]) -> RegistryWindow {
    let mut window = RegistryWindow::default();
    for request in requests.iter().filter(|r| is_operator(r)) {
        let path = request.path.split('?').next().unwrap_or_default();
        match request.method.as_str() {
            "HEAD" => window.heads += 1,
            "GET" if path.contains("/manifests/") => window.manifest_gets += 1,
            "GET" if path.contains("/blobs/") => window.blob_gets += 1,
            _ => window.other += 1,
        }
        if request.status >= 400 {
            window.failed += 1;
        }
    }
    window
}

/// The operator's HEADs split by what asked them: the first HEAD of each tag in the window, a
/// HEAD at least `spacing` after the same tag's previous one (a scheduled poll of a tag already
/// answered), and a HEAD sooner than that (a repeat the engine should never send). Log times have
/// one-second resolution, so a second of slack is allowed.
fn heads_by_kind(requests: &[RegistryRequest], spacing: Duration) -> (usize, usize, usize) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let (mut first, mut polls, mut repeats) = (0, 0, 0);
    let spacing = spacing.as_secs().saturating_sub(1);
    for request in requests
        .iter()
        .filter(|r| is_operator(r) && r.method == "HEAD")
    {
        let at = request.time.map(unix_seconds).unwrap_or_default();
        match last.insert(request.path.as_str(), at) {
            None => first += 1,
            Some(previous) if at.saturating_sub(previous) >= spacing => polls += 1,
            Some(_) => repeats += 1,
        }
    }
    (first, polls, repeats)
}

/// The requests logged between two marks (lengths of the log at two moments).
fn window_of(requests: &[RegistryRequest], from: usize, to: usize) -> &[RegistryRequest] {
    requests
        .get(from..to.min(requests.len()))
        .unwrap_or_default()
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The operator's HEADs per second of the log, for seconds in `[from, to)`.
fn heads_per_second(requests: &[RegistryRequest], from: u64, to: u64) -> BTreeMap<u64, usize> {
    let mut per_second = BTreeMap::new();
    for request in requests
        .iter()
        .filter(|r| is_operator(r) && r.method == "HEAD")
    {
        if let Some(second) = request.time.map(unix_seconds)
            && (from..to).contains(&second)
        {
            *per_second.entry(second).or_default() += 1;
        }
    }
    per_second
}

/// The largest count of any `WINDOW_SECONDS` window (sliding by one second) within `[from, to)`.
fn busiest_window(per_second: &BTreeMap<u64, usize>, from: u64, to: u64) -> usize {
    let last_start = to.saturating_sub(WINDOW_SECONDS).max(from);
    (from..=last_start)
        .map(|start| {
            per_second
                .range(start..start + WINDOW_SECONDS)
                .map(|(_, n)| n)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The run

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let params = match Params::from_env() {
        Ok(params) => params,
        Err(err) => {
            eprintln!("bench: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut report = Report::default();
    let started = Instant::now();
    let outcome = tokio::select! {
        outcome = run(&params, &mut report) => outcome,
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    report.add("run", "whole run", secs(started.elapsed()));
    let table = report.markdown();
    println!("\n{table}");
    let failed = outcome.as_ref().err().map(|err| err.to_string());
    match write_report(&params, &table, failed.as_deref()) {
        Ok(path) => println!("report: {}", path.display()),
        Err(err) => eprintln!("bench: could not write the report: {err}"),
    }
    match failed {
        None => std::process::ExitCode::SUCCESS,
        Some(err) => {
            eprintln!("bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn write_report(p: &Params, table: &str, failed: Option<&str>) -> Result<PathBuf> {
    std::fs::create_dir_all(&p.out_dir)?;
    let path = p.out_dir.join(format!("report-{}.md", p.streams));
    let when = humantime::format_rfc3339_seconds(SystemTime::now());
    let mut text = format!(
        "# imagestream-operator bench, {} streams ({when})\n\n",
        p.streams
    );
    if let Some(err) = failed {
        text.push_str(&format!("**The run failed: {err}**\n\n"));
    }
    text.push_str(table);
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Copies an operator log out of the scratch directory (removed at exit) next to the report.
fn keep_log(p: &Params, log: &Path, name: &str) -> Option<PathBuf> {
    let kept = p.out_dir.join(format!("operator-{}-{name}.log", p.streams));
    std::fs::create_dir_all(&p.out_dir).ok()?;
    std::fs::copy(log, &kept).ok()?;
    Some(kept)
}

async fn run(p: &Params, report: &mut Report) -> Result<()> {
    if p.notify {
        return run_notify(p, report).await;
    }
    if p.admission {
        return run_admission(p, report).await;
    }
    report_parameters(p, report);

    step("Starting etcd, kube-apiserver and a registry on 127.0.0.1 (no kube-controller-manager)");
    let env = TestEnv::start(&imagestream_operator::api::crds()).await?;
    let client = env.client().await;
    let scratch = scratch_dir(&env);
    println!(
        "    registry {}, scratch directory {}",
        env.registry().base_url(),
        scratch.display()
    );
    let bench = Bench::new(p, &env, env.registry(), client);
    let watches = setup(&bench, report).await?;

    step("Starting the operator; waiting until every stream has every tag imported");
    let before = Marks::take(&bench).await?;
    let log = scratch.join("operator-1.log");
    let mut operator = Operator::start(p, &env, &p.interval_text, &log)?;
    let result = with_first_operator(&bench, &mut operator, report, before).await;
    drop(watches);
    let stopped = operator.stop().await;
    report.add("operator", "first run stopped", stopped);
    summarize_log(p, report, &operator.log, "run1");
    result?;

    burst(&bench, report, &scratch.join("operator-2.log")).await
}

/// The environment's scratch directory (logs beside the kubeconfig), or the system's.
fn scratch_dir(env: &TestEnv) -> PathBuf {
    env.kubeconfig()
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(std::env::temp_dir)
}

/// What every phase works with.
struct Bench<'a> {
    p: &'a Params,
    env: &'a TestEnv,
    registry: &'a Registry,
    client: Client,
    observed: Arc<Mutex<Observed>>,
}

impl<'a> Bench<'a> {
    fn new(p: &'a Params, env: &'a TestEnv, registry: &'a Registry, client: Client) -> Self {
        Self {
            p,
            env,
            registry,
            client,
            observed: Arc::new(Mutex::new(Observed {
                expected_tags: p.tags,
                ..Observed::default()
            })),
        }
    }

    fn registry(&self) -> &Registry {
        self.registry
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The API request counters and the length of the registry's log at one moment.
struct Marks {
    api: ApiCounts,
    registry: usize,
}

impl Marks {
    async fn take(bench: &Bench<'_>) -> Result<Self> {
        Ok(Self {
            api: ApiCounts::scrape(&bench.client).await?,
            registry: bench.registry().requests().len(),
        })
    }
}

fn report_parameters(p: &Params, report: &mut Report) {
    let section = "parameters";
    report.add(
        section,
        "streams × tags",
        format!("{} × {}", p.streams, p.tags),
    );
    report.add(
        section,
        "distinct repositories / registry tags (= digests)",
        format!("{} / {}", p.distinct, p.distinct_tags()),
    );
    report.add(
        section,
        "streams per registry tag",
        format!("{:.1}", p.streams as f64 / p.distinct as f64),
    );
    report.add(
        section,
        "workloads (Deployments, trigger on t0)",
        p.workloads.to_string(),
    );
    report.add(section, "namespaces", p.namespaces.to_string());
    report.add(section, "--import-interval", p.interval_text.clone());
    report.add(
        section,
        "operator binary",
        p.operator_bin.display().to_string(),
    );
    report.add(
        section,
        "operator flags",
        format!(
            "run --leader-elect=false --registry-rate-limit 0 --log-format json {}",
            p.operator_args.join(" ")
        ),
    );
    report.add(
        section,
        "machine",
        format!(
            "{} CPUs; kube-apiserver v1.20.2, etcd and the registry on the same host",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    );
}

/// Pushes the images, creates the objects and starts the watches, returning once the watches
/// have listed every object.
async fn setup(bench: &Bench<'_>, report: &mut Report) -> Result<Watches> {
    let p = bench.p;
    let started = Instant::now();
    step(&format!(
        "Pushing {} repositories × {} tags (one image each), {} in flight",
        p.distinct, p.tags, p.concurrency
    ));
    let pusher = ImagePusher::for_registry(bench.registry());
    let mut layer = vec![0u8; 1024];
    rand::rng().fill_bytes(&mut layer);
    let push_retries = push_images(&pusher, p, &layer).await?;
    let push_time = started.elapsed();

    step(&format!(
        "Creating {} namespaces, {} ImageStreams and {} Deployments",
        p.namespaces.min(p.streams),
        p.streams,
        p.workloads
    ));
    let create_started = Instant::now();
    create_objects(&bench.client, p, bench.registry().host()).await?;
    let create_time = create_started.elapsed();

    step("Watching ImageStreams and Deployments");
    let watches = start_watches(&bench.client, &bench.observed);
    wait_for(
        "the watches' initial lists",
        Duration::from_secs(600),
        || {
            let o = bench.observed();
            (o.streams_synced
                && o.workloads_synced
                && o.streams.len() >= p.streams
                && o.workloads.len() >= p.workloads)
                .then_some(())
        },
    )
    .await?;
    report.add(
        "setup",
        "push, create, watch (all before the operator starts)",
        format!(
            "{} (push {}, create {})",
            secs(started.elapsed()),
            secs(push_time),
            secs(create_time)
        ),
    );
    if push_retries > 0 {
        report.add(
            "setup",
            "pushes repeated after a registry 500",
            push_retries.to_string(),
        );
    }
    Ok(watches)
}

fn summarize_log(p: &Params, report: &mut Report, log: &Path, name: &str) {
    let (levels, problems) = log_summary(log);
    let kept = keep_log(p, log, name)
        .map(|k| k.display().to_string())
        .unwrap_or_else(|| log.display().to_string());
    report.add(
        "operator",
        format!("{name} log lines by level ({kept})"),
        list(&levels),
    );
    if !problems.is_empty() {
        report.add(
            "operator",
            format!("{name} most frequent WARN/ERROR"),
            problems
                .iter()
                .map(|(message, n)| format!("{n}× {message}"))
                .collect::<Vec<_>>()
                .join(" · "),
        );
    }
}

/// Polls `probe` every 200 ms until it answers, or fails after `timeout`.
async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out after {} waiting for {what}", secs(timeout)).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything measured while the first operator runs: first import, idle cycle, push → patch,
/// and its memory over all of them.
async fn with_first_operator(
    bench: &Bench<'_>,
    operator: &mut Operator,
    report: &mut Report,
    before: Marks,
) -> Result<()> {
    let first = first_import(bench, operator, report, &before).await?;
    let steady_rss = idle_cycle(bench, operator, report, &first).await?;
    push_to_patch(bench, operator, report).await?;
    let section = "memory";
    report.add(
        section,
        "peak RSS (VmHWM)",
        mib(memory_kib(operator.pid(), "VmHWM")?),
    );
    report.add(
        section,
        "steady RSS (VmRSS, end of the idle cycle)",
        mib(steady_rss),
    );
    let watch_errors = bench.observed().watch_errors;
    if watch_errors > 0 {
        report.add(
            "setup",
            "the bench's watch errors (restarted)",
            watch_errors.to_string(),
        );
    }
    Ok(())
}

/// What the idle cycle compares the first import's writes with.
struct FirstImport {
    end: Marks,
    writes: u64,
    budget: usize,
}

/// 1, 4, 5: waits until every stream has every tag and every workload its digest (or
/// `FIRST_IMPORT_TIMEOUT`), and reports the time, registry requests and API writes it took.
async fn first_import(
    bench: &Bench<'_>,
    operator: &mut Operator,
    report: &mut Report,
    before: &Marks,
) -> Result<FirstImport> {
    let p = bench.p;
    let pid = operator.pid();
    let deadline = operator.started + p.first_import_timeout;
    let mut printed = Instant::now();
    let mut streams_done: Option<Duration> = None;
    let mut workloads_done: Option<Duration> = None;
    let (streams, workloads) = loop {
        operator.ensure_running()?;
        let (streams, workloads) = {
            let o = bench.observed();
            (o.complete_streams, o.triggered_workloads)
        };
        let now = Instant::now();
        if streams >= p.streams && streams_done.is_none() {
            streams_done = Some(now - operator.started);
        }
        if workloads >= p.workloads && workloads_done.is_none() {
            workloads_done = Some(now - operator.started);
        }
        if (streams_done.is_some() && workloads_done.is_some()) || now > deadline {
            break (streams, workloads);
        }
        if printed.elapsed() >= Duration::from_secs(5) {
            printed = now;
            println!(
                "    {:>5.0} s: streams {streams}/{}, workloads {workloads}/{}, operator RSS {}, CPU {:.1} s",
                operator.started.elapsed().as_secs_f64(),
                p.streams,
                p.workloads,
                mib(memory_kib(pid, "VmRSS").unwrap_or(0)),
                cpu_seconds(pid).unwrap_or(f64::NAN)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let import_cpu = cpu_seconds(pid)?;
    let import_rss = memory_kib(pid, "VmRSS")?;
    let end = Marks::take(bench).await?;

    let section = "first import";
    let incomplete = |done: usize, total: usize| {
        format!(
            "incomplete: {done}/{total} after {}",
            secs(p.first_import_timeout)
        )
    };
    report.add(
        section,
        "time to full first import (every stream, every tag)",
        streams_done.map_or_else(|| incomplete(streams, p.streams), secs),
    );
    report.add(
        section,
        "time until every workload runs its digest",
        workloads_done.map_or_else(|| incomplete(workloads, p.workloads), secs),
    );
    report.add(
        section,
        "operator CPU for the first import / RSS after it",
        format!("{import_cpu:.1} s / {}", mib(import_rss)),
    );
    let requests = bench.registry().requests();
    let window = registry_window(window_of(&requests, before.registry, end.registry));
    let distinct_tags = p.distinct_tags() as f64;
    let per_tag = |n: usize| ratio(n as f64, distinct_tags);
    report.check(
        section,
        "registry HEADs (first-import HEADs / distinct tags)",
        format!("{} ({:.2})", window.heads, per_tag(window.heads)),
        at_most(per_tag(window.heads), 1.01, "≤ 1.01 per distinct tag"),
    );
    let first_import_requests = window_of(&requests, before.registry, end.registry);
    let (first_asks, polls, repeats) = heads_by_kind(first_import_requests, p.interval * 9 / 10);
    report.check(
        section,
        "… of which first asks / scheduled polls ≥ 0.9 interval after the tag's last / repeats sooner",
        format!("{first_asks} / {polls} / {repeats}"),
        at_most(repeats as f64, 0.0, "no repeats"),
    );
    report.check(
        section,
        "manifest GETs (per distinct digest)",
        format!(
            "{} ({:.2})",
            window.manifest_gets,
            per_tag(window.manifest_gets)
        ),
        at_most(per_tag(window.manifest_gets), 1.0, "1 per digest"),
    );
    report.check(
        section,
        "blob GETs (per distinct digest)",
        format!("{} ({:.2})", window.blob_gets, per_tag(window.blob_gets)),
        at_most(per_tag(window.blob_gets), 1.0, "1 (the config) per digest"),
    );
    report.add(
        section,
        "other registry requests / answers ≥ 400",
        format!("{} / {}", window.other, window.failed),
    );
    let api = end.api.since(&before.api).summary();
    report_api(report, section, &api);
    // One status write per stream, one Image per digest, one patch per workload, one Event per
    // imported tag and per rolled workload.
    let events = p.streams * p.tags + p.workloads;
    let budget = p.streams + p.distinct_tags() + p.workloads + events;
    report.check(
        section,
        "API writes / budget",
        format!(
            "{} / {budget} = {:.2}",
            api.writes,
            ratio(api.writes as f64, budget as f64)
        ),
        format!(
            "budget = streams {} + Images {} + workloads {} + Events {events} (one per imported tag and per rolled workload); {}",
            p.streams,
            p.distinct_tags(),
            p.workloads,
            at_most(api.writes as f64 / budget as f64, 1.0, "≤ 1")
        ),
    );
    Ok(FirstImport {
        end,
        writes: api.writes,
        budget,
    })
}

/// 2, 3, 4, 5, 6: lets one interval pass, then measures one: CPU, RSS, registry requests and their
/// spread, API writes. Returns the RSS at its end.
async fn idle_cycle(
    bench: &Bench<'_>,
    operator: &mut Operator,
    report: &mut Report,
    first: &FirstImport,
) -> Result<u64> {
    let p = bench.p;
    let pid = operator.pid();
    step(&format!(
        "Letting one interval ({}) pass, then measuring one idle cycle",
        secs(p.interval)
    ));
    operator.sleep(p.interval).await?;
    let start = Marks::take(bench).await?;
    let cycle_from = SystemTime::now();
    let cpu_start = cpu_seconds(pid)?;
    operator.sleep(p.interval).await?;
    let cpu_end = cpu_seconds(pid)?;
    let cycle_to = SystemTime::now();
    let steady_rss = memory_kib(pid, "VmRSS")?;
    let requests = bench.registry().requests();
    let cycle = window_of(&requests, start.registry, requests.len());
    let api_end = ApiCounts::scrape(&bench.client).await?;

    let section = "idle cycle";
    let cpu = cpu_end - cpu_start;
    report.add(
        section,
        "operator CPU per idle cycle (utime + stime)",
        format!(
            "{cpu:.2} s ({:.1} % of one core)",
            100.0 * cpu / cycle_to.duration_since(cycle_from)?.as_secs_f64()
        ),
    );
    report.add(
        section,
        "steady RSS (VmRSS at the end of the cycle)",
        mib(steady_rss),
    );
    let idle = registry_window(cycle);
    let distinct_tags = p.distinct_tags() as f64;
    report.check(
        section,
        "registry HEADs (idle HEADs / distinct tags)",
        format!(
            "{} ({:.2})",
            idle.heads,
            ratio(idle.heads as f64, distinct_tags)
        ),
        at_most(idle.heads as f64 / distinct_tags, 1.0, "1 per distinct tag"),
    );
    // A mark-to-mark window of exactly one interval can catch one tag's poll at both of its ends
    // when an ask runs a few milliseconds late: a second HEAD ≥ 0.9 interval after the first is
    // that, one sooner would be a repeat.
    let (once, edges, repeats) = heads_by_kind(cycle, p.interval * 9 / 10);
    report.check(
        section,
        "… tags asked / asked again ≥ 0.9 interval later (both window edges) / repeats sooner",
        format!("{once} / {edges} / {repeats}"),
        at_most(repeats as f64, 0.0, "no repeats"),
    );
    report.check(
        section,
        "manifest GETs / blob GETs / other",
        format!(
            "{} / {} / {}",
            idle.manifest_gets, idle.blob_gets, idle.other
        ),
        at_most((idle.manifest_gets + idle.blob_gets) as f64, 0.0, "0 GETs"),
    );
    let (from, to) = (unix_seconds(cycle_from), unix_seconds(cycle_to));
    let per_second = heads_per_second(cycle, from, to);
    let in_cycle: usize = per_second.values().sum();
    let busiest = busiest_window(&per_second, from, to);
    let share = ratio(busiest as f64, in_cycle as f64);
    let even = WINDOW_SECONDS as f64 / (to - from).max(1) as f64;
    report.check(
        section,
        "busiest 10 s share of the cycle's HEADs",
        format!("{share:.3} ({busiest} of {in_cycle})"),
        format!(
            "even spread = 10 s / interval = {even:.3}; {}",
            at_most(share, 2.0 * even, "≤ 2× even")
        ),
    );
    let settle = start.api.since(&first.end.api).summary();
    report.check(
        section,
        "API writes in the interval after the first import (not endpoints)",
        format!("{} ({})", settle.writes, list(&settle.by_resource)),
        at_most(settle.writes as f64, 0.0, "0"),
    );
    let trailing = first.writes + settle.writes;
    report.check(
        "first import",
        "API writes / budget, with the interval after it",
        format!(
            "{trailing} / {} = {:.2}",
            first.budget,
            ratio(trailing as f64, first.budget as f64)
        ),
        at_most(trailing as f64 / first.budget as f64, 1.0, "≤ 1"),
    );
    let cycle_api = api_end.since(&start.api).summary();
    report.check(
        section,
        "API writes in the idle cycle (not endpoints)",
        format!("{} ({})", cycle_api.writes, list(&cycle_api.by_resource)),
        at_most(cycle_api.writes as f64, 0.0, "0"),
    );
    report.check(
        section,
        "API 409 / 5xx in the idle cycle",
        format!("{} / {}", cycle_api.conflicts, cycle_api.server_errors_all),
        at_most(
            (cycle_api.conflicts + cycle_api.server_errors_all) as f64,
            0.0,
            "0",
        ),
    );
    Ok(steady_rss)
}

/// 7: pushes a new image to `repo-0:tag-0` and reports when each subscribing stream showed its
/// digest and each of their workloads ran it, as the watches saw them.
async fn push_to_patch(
    bench: &Bench<'_>,
    operator: &mut Operator,
    report: &mut Report,
) -> Result<()> {
    let p = bench.p;
    step("Pushing a new image to repo-0:tag-0; waiting for its streams and workloads");
    let subscribers: Vec<String> = (0..p.streams)
        .filter(|i| i.is_multiple_of(p.distinct))
        .map(|i| p.stream_key(i))
        .collect();
    let subscribed_workloads: Vec<String> = (0..p.workloads)
        .filter(|w| p.workload_stream(*w).is_multiple_of(p.distinct))
        .map(|w| p.workload_key(w))
        .collect();
    let pusher = ImagePusher::for_registry(bench.registry());
    let mut layer = vec![0u8; 1024];
    rand::rng().fill_bytes(&mut layer);
    let image = bench_image(&layer, 0, 0, 2);
    let (_, digest) = push_with_retries(&pusher, 0, 0, image).await?;
    // The manifest PUT is the push's last request: the tag moved just now.
    let pushed_at = Instant::now();
    let t0 = tag_name(0);
    let timeout = p.interval * 2 + Duration::from_secs(60);
    let mut printed = Instant::now();
    let (streams, workloads) = loop {
        operator.ensure_running()?;
        let (streams, workloads) = {
            let o = bench.observed();
            let streams: Vec<Duration> = subscribers
                .iter()
                .filter_map(|key| {
                    let (seen, at) = o.streams.get(key)?.tags.get(&t0)?;
                    (*seen == digest).then(|| at.saturating_duration_since(pushed_at))
                })
                .collect();
            let workloads: Vec<Duration> = subscribed_workloads
                .iter()
                .filter_map(|key| {
                    let seen = o.workloads.get(key)?;
                    seen.image
                        .ends_with(&digest)
                        .then(|| seen.changed.saturating_duration_since(pushed_at))
                })
                .collect();
            (streams, workloads)
        };
        let done =
            streams.len() == subscribers.len() && workloads.len() == subscribed_workloads.len();
        if done || pushed_at.elapsed() > timeout {
            break (streams, workloads);
        }
        if printed.elapsed() >= Duration::from_secs(5) {
            printed = Instant::now();
            println!(
                "    {:>4.0} s: streams {}/{}, workloads {}/{}",
                pushed_at.elapsed().as_secs_f64(),
                streams.len(),
                subscribers.len(),
                workloads.len(),
                subscribed_workloads.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let bound = p.interval + Duration::from_secs(2);
    let section = "push → patch";
    let check = |latencies: &[Duration], total: usize, kind: &str| {
        if latencies.len() < total {
            return format!(
                "only {} of {total} {kind} moved within {}",
                latencies.len(),
                secs(timeout)
            );
        }
        let max = latencies.iter().max().copied().unwrap_or_default();
        at_most(
            max.as_secs_f64(),
            bound.as_secs_f64(),
            &format!("max ≤ interval + 2 s = {}", secs(bound)),
        )
    };
    report.check(
        section,
        "streams showing the new digest",
        latency_summary(&streams, subscribers.len()),
        check(&streams, subscribers.len(), "streams"),
    );
    let spread = streams.iter().max().copied().unwrap_or_default()
        - streams.iter().min().copied().unwrap_or_default();
    report.add(
        section,
        "spread, first to last stream",
        format!("{:.2} s", spread.as_secs_f64()),
    );
    if !subscribed_workloads.is_empty() {
        report.check(
            section,
            "workloads running the new digest",
            latency_summary(&workloads, subscribed_workloads.len()),
            check(&workloads, subscribed_workloads.len(), "workloads"),
        );
    }
    Ok(())
}

/// `min · median · max (n objects)`.
fn latency_summary(latencies: &[Duration], total: usize) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |i: usize| sorted.get(i).copied().unwrap_or_default().as_secs_f64();
    format!(
        "min {:.2} s · median {:.2} s · max {:.2} s ({} of {total} objects)",
        at(0),
        at(sorted.len() / 2),
        at(sorted.len().saturating_sub(1)),
        sorted.len()
    )
}

/// 8: an operator with `--import-interval 1s` for `BURST_SECONDS`, its HEAD rate over the last
/// 10 s, then — with the operator stopped — a bare keep-alive client over the same URLs.
async fn burst(bench: &Bench<'_>, report: &mut Report, log: &Path) -> Result<()> {
    let p = bench.p;
    step(&format!(
        "Restarting the operator with --import-interval 1s for {}",
        secs(p.burst)
    ));
    let mut operator = Operator::start(p, bench.env, "1s", log)?;
    let ran = operator.sleep(p.burst).await;
    let end = unix_seconds(SystemTime::now());
    let stopped = operator.stop().await;
    report.add("operator", "burst run stopped", stopped);
    summarize_log(p, report, &operator.log, "run2");
    ran?;
    let requests = bench.registry().requests();
    let operator_heads: usize =
        heads_per_second(&requests, end.saturating_sub(WINDOW_SECONDS), end)
            .values()
            .sum();
    let operator_rate = operator_heads as f64 / WINDOW_SECONDS as f64;

    step(&format!(
        "Baseline: {BASELINE_WORKERS} keep-alive workers sending the same HEADs for {}",
        secs(p.baseline)
    ));
    let (ok, failed, elapsed) = baseline(p, &bench.registry().base_url()).await?;
    let baseline_rate = ok as f64 / elapsed.as_secs_f64();
    let section = "burst (--import-interval 1s)";
    report.add(
        section,
        format!(
            "operator HEAD rate (last {WINDOW_SECONDS} s of {})",
            secs(p.burst)
        ),
        format!("{operator_rate:.0}/s ({operator_heads} HEADs)"),
    );
    report.add(
        section,
        format!(
            "bare client HEAD rate ({BASELINE_WORKERS} workers, keep-alive, same URLs and Accept)"
        ),
        format!(
            "{baseline_rate:.0}/s ({ok} in {}, {failed} failed)",
            secs(elapsed)
        ),
    );
    report.check(
        section,
        "burst ratio (operator / bare client)",
        format!("{:.2}", ratio(operator_rate, baseline_rate)),
        format!(
            "1.0 = as fast as a bare keep-alive client; telling only when the operator cannot keep up with its demand of {} HEADs/s (one per distinct tag per second)",
            p.distinct_tags()
        ),
    );
    report.add(
        section,
        "operator HEAD rate / distinct tags per second",
        format!(
            "{:.2} (a full pass over the distinct tags every {:.1} s)",
            ratio(operator_rate, p.distinct_tags() as f64),
            ratio(p.distinct_tags() as f64, operator_rate)
        ),
    );
    Ok(())
}

/// [`BASELINE_WORKERS`] workers sharing one keep-alive client send HEADs over the operator's URL
/// set (every distinct tag) with the operator's `Accept` header. Returns (answered 2xx, failed,
/// elapsed).
async fn baseline(p: &Params, base_url: &str) -> Result<(u64, u64, Duration)> {
    let client = reqwest::Client::builder()
        .user_agent(BASELINE_AGENT)
        .pool_max_idle_per_host(BASELINE_WORKERS)
        .timeout(Duration::from_secs(30))
        .build()?;
    let urls: Arc<Vec<String>> = Arc::new(
        (0..p.distinct)
            .flat_map(|repo| {
                (0..p.tags).map(move |tag| {
                    format!(
                        "{base_url}/v2/{}/manifests/{}",
                        repository(repo),
                        registry_tag(tag)
                    )
                })
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + p.baseline;
    let workers: Vec<_> = (0..BASELINE_WORKERS)
        .map(|_| {
            let (client, urls, next, ok, failed) = (
                client.clone(),
                urls.clone(),
                next.clone(),
                ok.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
                    let answer = client
                        .head(url)
                        .header(http::header::ACCEPT, manifest_accept_header())
                        .send()
                        .await;
                    match answer {
                        Ok(response) if response.status().is_success() => {
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    Ok((
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        started.elapsed(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_totals_sum_writes_by_verb_resource_and_code_and_keep_endpoints_apart() {
        let before = ApiCounts::parse(
            r#"apiserver_request_total{code="201",component="apiserver",dry_run="",group="image.openshift.io",resource="images",scope="cluster",subresource="",verb="POST",version="v1"} 10"#,
        );
        let after = ApiCounts::parse(
            r#"# HELP apiserver_request_total Counter of apiserver requests
apiserver_request_total{code="201",component="apiserver",dry_run="",group="image.openshift.io",resource="images",scope="cluster",subresource="",verb="POST",version="v1"} 13
apiserver_request_total{code="409",component="apiserver",dry_run="",group="image.openshift.io",resource="images",scope="cluster",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="image.openshift.io",resource="imagestreams",scope="namespace",subresource="status",verb="APPLY",version="v1"} 5
apiserver_request_total{code="504",component="apiserver",dry_run="",group="image.openshift.io",resource="imagestreams",scope="namespace",subresource="status",verb="APPLY",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="endpoints",scope="namespace",subresource="",verb="PUT",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="cluster",subresource="",verb="LIST",version="v1"} 7
apiserver_request_sli_duration_seconds_bucket{verb="POST",le="1"} 99"#,
        );
        let summary = after.since(&before).summary();
        assert_eq!(summary.writes, 3 + 2 + 5 + 1);
        assert_eq!(
            summary.by_verb,
            BTreeMap::from([("APPLY".into(), 6), ("POST".into(), 5)])
        );
        assert_eq!(
            summary.by_resource,
            BTreeMap::from([("images".into(), 5), ("imagestreams/status".into(), 6)])
        );
        assert_eq!(
            summary.by_class,
            BTreeMap::from([("2xx".into(), 8), ("4xx".into(), 2), ("5xx".into(), 1)])
        );
        assert_eq!(summary.conflicts, 2);
        assert_eq!((summary.server_errors, summary.server_errors_all), (1, 1));
        assert_eq!(summary.apiserver_own_writes, 4);
        assert_eq!(summary.reads, 7);
    }

    #[test]
    fn the_busiest_window_slides_by_one_second_within_the_cycle() {
        let per_second = BTreeMap::from([(100, 1), (105, 3), (114, 4), (115, 2), (130, 9)]);
        // [105, 115) holds 3 + 4, [106, 116) holds 4 + 2; 130 lies outside [100, 120).
        assert_eq!(busiest_window(&per_second, 100, 120), 7);
        // A cycle shorter than the window is one window.
        assert_eq!(busiest_window(&per_second, 104, 110), 3);
    }

    #[test]
    fn heads_split_into_first_asks_scheduled_polls_and_repeats() {
        let head = |path: &str, at: u64| RegistryRequest {
            method: "HEAD".into(),
            path: path.into(),
            status: 200,
            user_agent: format!("{OPERATOR_AGENT_PREFIX}0.1.0"),
            time: Some(UNIX_EPOCH + Duration::from_secs(at)),
        };
        let requests = [
            head("/v2/a/manifests/t", 100),
            head("/v2/b/manifests/t", 101),
            head("/v2/a/manifests/t", 155),
            head("/v2/b/manifests/t", 110),
            head("/v2/b/manifests/t", 175),
        ];
        // a: first, then a poll 55 s later; b: first, a repeat 9 s later, a poll 65 s after it.
        assert_eq!(heads_by_kind(&requests, Duration::from_secs(54)), (2, 2, 1));
    }

    #[test]
    fn log_problems_group_by_target_message_and_reason_not_by_object() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("operator.log");
        std::fs::write(
            &log,
            r#"{"level":"INFO","fields":{"message":"caches synced"},"target":"op::run"}
{"level":"WARN","fields":{"message":"reconcile failed","stream":"a/s-1","reason":"StatusWriteFailed","error":"could not write a/s-1"},"target":"op::image_stream"}
{"level":"WARN","fields":{"message":"reconcile failed","stream":"a/s-2","reason":"StatusWriteFailed","error":"could not write a/s-2"},"target":"op::image_stream"}
{"level":"ERROR","fields":{"message":"failed with status 504 Gateway Timeout"},"target":"kube_client::client::builder"}
not json
"#,
        )
        .unwrap();
        let (levels, problems) = log_summary(&log);
        assert_eq!(
            levels,
            BTreeMap::from([
                ("(not JSON)".into(), 1),
                ("ERROR".into(), 1),
                ("INFO".into(), 1),
                ("WARN".into(), 2)
            ])
        );
        assert_eq!(
            problems,
            vec![
                (
                    "WARN op::image_stream: reconcile failed (reason StatusWriteFailed)".into(),
                    2
                ),
                (
                    "ERROR kube_client::client::builder: failed with status 504 Gateway Timeout"
                        .into(),
                    1
                ),
            ]
        );
    }

    #[test]
    fn access_log_windows_count_only_the_operators_requests_by_kind() {
        let line = |method: &str, path: &str, status: u16, agent: &str| {
            imagestream_testenv::parse_access_log_line(&format!(
                r#"127.0.0.1 - - [01/Dec/2026:15:32:14 +0000] "{method} {path} HTTP/1.1" {status} 2 "" "{agent}""#
            ))
            .unwrap()
        };
        let requests = vec![
            line(
                "HEAD",
                "/v2/bench/repo-0/manifests/tag-0",
                200,
                "imagestream-operator/0.1.0",
            ),
            line(
                "GET",
                "/v2/bench/repo-0/manifests/sha256:ab",
                200,
                "imagestream-operator/0.1.0",
            ),
            line(
                "GET",
                "/v2/bench/repo-0/blobs/sha256:cd",
                200,
                "imagestream-operator/0.1.0",
            ),
            line("GET", "/v2/", 401, "imagestream-operator/0.1.0"),
            line(
                "HEAD",
                "/v2/bench/repo-0/blobs/sha256:cd",
                404,
                "imagestream-operator-testenv",
            ),
        ];
        let window = registry_window(&requests);
        assert_eq!(
            (
                window.heads,
                window.manifest_gets,
                window.blob_gets,
                window.other,
                window.failed
            ),
            (1, 1, 1, 1, 1)
        );
        let second = unix_seconds(requests[0].time.unwrap());
        assert_eq!(
            heads_per_second(&requests, second, second + 1),
            BTreeMap::from([(second, 1)])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Notification mode (NOTIFY=1)

/// The bearer token the notifying registry sends and the operator's webhook Secret holds.
const NOTIFY_TOKEN: &str = "bench-notification-token";

/// `NOTIFY=1`: a registry that notifies the operator of every push (its `notifications.endpoints`
/// entry, `ignore.actions: [pull]`), polling effectively off (`INTERVAL`, default 1h here); after
/// the first import, `PUSHES` new images to tag `t0` of repositories 0, 1, … in sequence,
/// `PUSH_GAP` apart (250ms: four pushes a second, each moving `STREAMS / DISTINCT` streams; 100
/// pushes at once would measure the API server's write rate, not the notification path), and the
/// time from each push to the moment every subscribing stream and Deployment shows it.
async fn run_notify(p: &Params, report: &mut Report) -> Result<()> {
    report_parameters(p, report);
    step("Starting etcd, kube-apiserver and a registry that notifies the operator");
    let env = TestEnv::start(&imagestream_operator::api::crds()).await?;
    let client = env.client().await;
    let scratch = scratch_dir(&env);
    let webhook_port = free_port()?;
    let registry = env
        .start_registry(
            "notifying",
            &RegistryOptions {
                notifications: Some(NotificationEndpoint {
                    url: format!("http://127.0.0.1:{webhook_port}/notifications/distribution"),
                    bearer_token: Some(NOTIFY_TOKEN.into()),
                    ignore_pulls: true,
                }),
                ..RegistryOptions::default()
            },
        )
        .await?;
    println!(
        "    registry {}, webhook port {webhook_port}",
        registry.base_url()
    );
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bench-webhook", "namespace": "default"},
        "stringData": {"distribution": NOTIFY_TOKEN},
    }))?;
    Api::<Secret>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &secret)
        .await?;
    let bench = Bench::new(p, &env, &registry, client);
    let watches = setup(&bench, report).await?;

    step("Starting the operator with its receiver; waiting for the first import");
    let before = Marks::take(&bench).await?;
    let log = scratch.join("operator-1.log");
    let webhook = [
        "--webhook-addr".to_owned(),
        format!("127.0.0.1:{webhook_port}"),
        "--webhook-secret".to_owned(),
        "default/bench-webhook".to_owned(),
    ];
    let mut operator = Operator::start_with(p, &env, &p.interval_text, &log, &webhook)?;
    let result = async {
        first_import(&bench, &mut operator, report, &before).await?;
        notified_pushes(&bench, &mut operator, report).await
    }
    .await;
    drop(watches);
    let stopped = operator.stop().await;
    report.add("operator", "run stopped", stopped);
    summarize_log(p, report, &operator.log, "run1");
    result
}

/// The streams and workloads that follow tag `t0` of repository `repo`.
fn subscribers_of(p: &Params, repo: usize) -> (Vec<String>, Vec<String>) {
    let streams = (0..p.streams)
        .filter(|i| i % p.distinct == repo)
        .map(|i| p.stream_key(i))
        .collect();
    let workloads = (0..p.workloads)
        .filter(|w| p.workload_stream(*w) % p.distinct == repo)
        .map(|w| p.workload_key(w))
        .collect();
    (streams, workloads)
}

/// One push of the notification mode.
struct NotifiedPush {
    repo: usize,
    digest: String,
    at: Instant,
    streams: Vec<String>,
    workloads: Vec<String>,
}

impl NotifiedPush {
    /// When every subscribing stream, and every subscribing workload, showed the digest (after
    /// the push), if all have.
    fn reached(&self, o: &Observed) -> (Option<Duration>, Option<Duration>) {
        let t0 = tag_name(0);
        let streams: Option<Vec<Duration>> = self
            .streams
            .iter()
            .map(|key| {
                let (seen, at) = o.streams.get(key)?.tags.get(&t0)?;
                (*seen == self.digest).then(|| at.saturating_duration_since(self.at))
            })
            .collect();
        let workloads: Option<Vec<Duration>> = self
            .workloads
            .iter()
            .map(|key| {
                let seen = o.workloads.get(key)?;
                seen.image
                    .ends_with(&self.digest)
                    .then(|| seen.changed.saturating_duration_since(self.at))
            })
            .collect();
        let last = |all: Vec<Duration>| all.into_iter().max().unwrap_or_default();
        (streams.map(last), workloads.map(last))
    }
}

/// The `q` quantile (0 … 1) of `values`, nearest rank.
fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn quantiles(values: &[Duration], total: usize) -> String {
    format!(
        "p50 {:.3} s · p99 {:.3} s · max {:.3} s ({} of {total} pushes)",
        quantile(values, 0.5).as_secs_f64(),
        quantile(values, 0.99).as_secs_f64(),
        quantile(values, 1.0).as_secs_f64(),
        values.len()
    )
}

async fn notified_pushes(
    bench: &Bench<'_>,
    operator: &mut Operator,
    report: &mut Report,
) -> Result<()> {
    let p = bench.p;
    step(&format!(
        "Pushing {} new images, one to tag t0 of each of repositories 0…{}, {:?} apart",
        p.pushes,
        p.pushes.min(p.distinct) - 1,
        p.push_gap
    ));
    let mark = bench.registry().requests().len();
    let pusher = ImagePusher::for_registry(bench.registry());
    let mut layer = vec![0u8; 1024];
    rand::rng().fill_bytes(&mut layer);
    let mut pushes = Vec::with_capacity(p.pushes);
    for n in 0..p.pushes {
        let repo = n % p.distinct;
        let generation = 2 + u32::try_from(n / p.distinct).unwrap_or(0);
        let (_, digest) =
            push_with_retries(&pusher, repo, 0, bench_image(&layer, repo, 0, generation)).await?;
        let (streams, workloads) = subscribers_of(p, repo);
        pushes.push(NotifiedPush {
            repo,
            digest,
            at: Instant::now(),
            streams,
            workloads,
        });
        tokio::time::sleep(p.push_gap).await;
    }
    let pushed = pushes
        .last()
        .map(|push| push.at)
        .unwrap_or_else(Instant::now);
    let timeout = Duration::from_secs(120);
    let (streams, workloads) = loop {
        operator.ensure_running()?;
        let reached: Vec<_> = {
            let o = bench.observed();
            // A repository pushed twice: only its last push can still be seen.
            pushes
                .iter()
                .filter(|push| {
                    !pushes[pushes.len().saturating_sub(p.distinct)..]
                        .iter()
                        .any(|later| later.repo == push.repo && later.at > push.at)
                })
                .map(|push| push.reached(&o))
                .collect()
        };
        let streams: Vec<Duration> = reached.iter().filter_map(|r| r.0).collect();
        let workloads: Vec<Duration> = reached.iter().filter_map(|r| r.1).collect();
        if (streams.len() == reached.len() && workloads.len() == reached.len())
            || pushed.elapsed() > timeout
        {
            break (streams, workloads);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Anything the notifications could still cause has had its window.
    operator.sleep(Duration::from_secs(3)).await?;
    let section = "push notifications";
    let total = pushes.len();
    report.add(
        section,
        "pushes (tag t0, each shared by streams / workloads)",
        format!(
            "{total} ({} / {})",
            pushes[0].streams.len(),
            pushes[0].workloads.len()
        ),
    );
    report.add(
        section,
        "push → every subscribing stream shows it",
        quantiles(&streams, total),
    );
    report.check(
        section,
        "push → every subscribing Deployment patched",
        quantiles(&workloads, total),
        if workloads.len() < total {
            format!(
                "only {} of {total} within {}",
                workloads.len(),
                secs(timeout)
            )
        } else {
            at_most(quantile(&workloads, 0.99).as_secs_f64(), 1.0, "p99 < 1 s")
        },
    );
    let requests = bench.registry().requests();
    let window = registry_window(window_of(&requests, mark, requests.len()));
    report.check(
        section,
        "registry HEADs / manifest GETs / blob GETs per push",
        format!(
            "{:.2} / {:.2} / {:.2} ({} / {} / {})",
            window.heads as f64 / total as f64,
            window.manifest_gets as f64 / total as f64,
            window.blob_gets as f64 / total as f64,
            window.heads,
            window.manifest_gets,
            window.blob_gets
        ),
        at_most(window.heads as f64 / total as f64, 1.0, "1 HEAD per push"),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Admission mode (ADMISSION=1)

/// The namespace the webhook serves, and one it does not (the baseline).
const LOOKUP_NAMESPACE: &str = "bench-lookup";
const PLAIN_NAMESPACE: &str = "bench-plain";

/// `ADMISSION=1`: the operator with its image-lookup admission webhook registered by URL; then
/// `ADMISSION_PODS` Pods naming `web:latest` created one after another in a namespace the webhook
/// does not serve (the baseline: the API server alone) and in one it serves (each resolved to the
/// digest), and the create latencies of both, from the same run.
async fn run_admission(p: &Params, report: &mut Report) -> Result<()> {
    step("Starting etcd, kube-apiserver and a registry");
    let env = TestEnv::start(&imagestream_operator::api::crds()).await?;
    let client = env.client().await;
    let scratch = scratch_dir(&env);
    for (namespace, label) in [(LOOKUP_NAMESPACE, "lookup"), (PLAIN_NAMESPACE, "plain")] {
        let object: Namespace = serde_json::from_value(json!({
            "metadata": {"name": namespace, "labels": {"imagestream-operator-bench": label}},
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &object)
            .await?;
        let account: k8s_openapi::api::core::v1::ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": "default"}}))?;
        Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), namespace)
            .create(&PostParams::default(), &account)
            .await?;
    }
    let pushed = ImagePusher::for_registry(env.registry())
        .push_random("bench/web", "latest", ManifestFormat::Oci)
        .await?;
    let stream: ImageStream = serde_json::from_value(json!({
        "apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
        "metadata": {"name": "web", "namespace": LOOKUP_NAMESPACE},
        "spec": {"lookupPolicy": {"local": true}, "tags": [{"name": "latest", "from": {
            "kind": "DockerImage", "name": format!("{}/bench/web:latest", env.registry().host())},
            "importPolicy": {"insecure": true}}]},
    }))?;
    Api::<ImageStream>::namespaced(client.clone(), LOOKUP_NAMESPACE)
        .create(&PostParams::default(), &stream)
        .await?;
    let port = free_port()?;
    let configuration: k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration =
        serde_json::from_value(json!({
            "metadata": {"name": "bench-image-lookup"},
            "webhooks": [{
                "name": "image-lookup.imagestream-operator.io",
                "clientConfig": {"url": format!("https://127.0.0.1:{port}/admission/image-lookup")},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
                "namespaceSelector": {"matchLabels": {"imagestream-operator-bench": "lookup"}},
                "failurePolicy": "Ignore", "sideEffects": "None", "timeoutSeconds": 5,
                "reinvocationPolicy": "IfNeeded", "admissionReviewVersions": ["v1"],
            }],
        }))?;
    Api::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>::all(
        client.clone(),
    )
    .create(&PostParams::default(), &configuration)
    .await?;

    step("Starting the operator with its admission webhook");
    let flags = [
        "--namespace".to_owned(),
        LOOKUP_NAMESPACE.to_owned(),
        "--admission-addr".to_owned(),
        format!("127.0.0.1:{port}"),
        "--admission-secret".to_owned(),
        format!("{LOOKUP_NAMESPACE}/admission-certificate"),
        "--admission-webhook-configuration".to_owned(),
        "bench-image-lookup".to_owned(),
    ];
    let mut operator = Operator::start_with(
        p,
        &env,
        &p.interval_text,
        &scratch.join("operator-1.log"),
        &flags,
    )?;
    let resolved = format!("{}/bench/web@{}", env.registry().host(), pushed.digest);
    let lookup_pods = Api::<Pod>::namespaced(client.clone(), LOOKUP_NAMESPACE);
    let started = Instant::now();
    loop {
        operator.ensure_running()?;
        let probe = lookup_pods
            .create(
                &PostParams::default(),
                &bench_pod(&format!("probe-{}", started.elapsed().as_millis())),
            )
            .await?;
        if pod_image(&probe) == resolved {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            return Err("the webhook did not resolve web:latest within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    step(&format!(
        "Creating {} Pods naming web:latest without the webhook, then {} with it",
        p.admission_pods, p.admission_pods
    ));
    let plain = create_pods(
        &Api::namespaced(client.clone(), PLAIN_NAMESPACE),
        p.admission_pods,
        "",
    )
    .await?;
    let looked_up = create_pods(&lookup_pods, p.admission_pods, &resolved).await?;
    let stopped = operator.stop().await;
    let section = "image-lookup admission";
    report.add(
        section,
        "Pods created, one after another",
        format!("{} per namespace", p.admission_pods),
    );
    report.add(
        section,
        "create latency without the webhook (API server alone)",
        quantiles_ms(&plain.0),
    );
    report.add(
        section,
        "create latency with the webhook",
        quantiles_ms(&looked_up.0),
    );
    report.add(
        section,
        "added by the webhook (p50 / p99)",
        format!(
            "{:.2} ms / {:.2} ms",
            (quantile(&looked_up.0, 0.5).as_secs_f64() - quantile(&plain.0, 0.5).as_secs_f64())
                * 1000.0,
            (quantile(&looked_up.0, 0.99).as_secs_f64() - quantile(&plain.0, 0.99).as_secs_f64())
                * 1000.0
        ),
    );
    report.check(
        section,
        "Pods stored with the digest reference",
        format!("{} of {}", looked_up.1, p.admission_pods),
        at_most((p.admission_pods - looked_up.1) as f64, 0.0, "every one"),
    );
    report.add("operator", "run stopped", stopped);
    Ok(())
}

fn bench_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "app", "image": "web:latest"}]},
    }))
    .expect("a Pod")
}

fn pod_image(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// Creates `count` Pods one after another: each create's latency, and how many were stored
/// with `expected` as their image.
async fn create_pods(
    api: &Api<Pod>,
    count: usize,
    expected: &str,
) -> Result<(Vec<Duration>, usize)> {
    let mut latencies = Vec::with_capacity(count);
    let mut matched = 0;
    for i in 0..count {
        let started = Instant::now();
        let created = api
            .create(&PostParams::default(), &bench_pod(&format!("p-{i}")))
            .await?;
        latencies.push(started.elapsed());
        matched += usize::from(pod_image(&created) == expected);
    }
    Ok((latencies, matched))
}

fn quantiles_ms(values: &[Duration]) -> String {
    format!(
        "p50 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
        quantile(values, 0.5).as_secs_f64() * 1000.0,
        quantile(values, 0.99).as_secs_f64() * 1000.0,
        quantile(values, 1.0).as_secs_f64() * 1000.0
    )
}
