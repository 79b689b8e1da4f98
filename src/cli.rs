//! The command line of the `imagestream-operator` binary: flags are parsed here, the work is done by
//! the library modules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::api;
use crate::controller::Concurrency;
use crate::controller::importer::ImportLimits;
use crate::domain::platform::Platform;

/// The program name under which the binary acts as a kubectl plugin (`kubectl imagestream …`).
pub const PLUGIN_NAME: &str = "kubectl-imagestream";

/// OpenShift image streams and image-change triggers for any Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "imagestream-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controllers against the cluster of the current kubeconfig (or the in-cluster
    /// service account).
    Run(Box<RunArgs>),
    /// Import a tag now and print the result, like `oc import-image`: creates the stream (with
    /// --confirm) or tag (with --from), asks the operator to import, and waits for its answer.
    ImportImage(Box<ImportImageArgs>),
    /// Point tags at an image, a pull spec or another tag, like `oc tag`.
    Tag(Box<TagCommand>),
    /// Change a workload's image triggers or image lookup, like `oc set`.
    #[command(subcommand)]
    Set(SetCommand),
    /// Show an image stream or one of its tags in detail, like `oc describe`.
    #[command(subcommand)]
    Describe(DescribeCommand),
    /// List every tag of every image stream, like `oc get istag`.
    #[command(subcommand)]
    Get(GetCommand),
    /// Turn OpenShift objects into their Kubernetes equivalents.
    #[command(subcommand)]
    Convert(ConvertCommand),
    /// Print every CustomResourceDefinition the operator serves, as YAML; with --output-dir, write
    /// one file per CRD and a `Kustomization` into that directory instead.
    Crds {
        /// Directory to write `<plural>.<group>.yaml` files and `Kustomization` into.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
}

/// The namespace flag of the `oc`-style commands.
#[derive(Debug, Clone, clap::Args)]
pub struct Scope {
    /// The namespace (default: the kubeconfig context's).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// `--reference-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReferencePolicyArg {
    /// Pods pull from the source registry.
    Source,
    /// Pods pull through the integrated registry (recorded for compatibility).
    Local,
}

impl ReferencePolicyArg {
    fn api(self) -> String {
        match self {
            Self::Source => "Source".into(),
            Self::Local => "Local".into(),
        }
    }
}

/// `--import-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportModeArg {
    /// One image of a manifest list (the preferred platform).
    #[value(name = "Legacy", alias = "legacy")]
    Legacy,
    /// The manifest list itself.
    #[value(name = "PreserveOriginal", alias = "preserveoriginal")]
    PreserveOriginal,
}

/// Flags of `import-image`.
#[derive(Debug, clap::Args)]
pub struct ImportImageArgs {
    /// `NAME[:TAG]` of the image stream (tag `latest` when none is given).
    pub name: String,
    /// The pull spec to import from (a new stream or tag; an existing tag keeps its source).
    #[arg(long)]
    pub from: Option<String>,
    /// Create the stream when it does not exist.
    #[arg(long)]
    pub confirm: bool,
    /// Import every tag of the stream that tracks a pull spec.
    #[arg(long)]
    pub all: bool,
    /// Re-import the tag every import interval.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub scheduled: Option<bool>,
    /// Allow plain HTTP and unverified TLS for this tag's registry.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub insecure: Option<bool>,
    /// How Pods should pull the tag's image.
    #[arg(long, value_enum)]
    pub reference_policy: Option<ReferencePolicyArg>,
    /// Which digest of a manifest list the tag records.
    #[arg(long, value_enum)]
    pub import_mode: Option<ImportModeArg>,
    /// How long to wait for the operator's result.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The namespace.
    #[command(flatten)]
    pub scope: Scope,
}

/// Flags of `tag`.
#[derive(Debug, clap::Args)]
pub struct TagCommand {
    /// `SOURCE DEST [DEST…]` (a pull spec, `STREAM:TAG` or `STREAM@DIGEST`; destinations
    /// `[NAMESPACE/]STREAM:TAG`), or with -d the tags to delete.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// What SOURCE is (default: a stream tag or image when such a stream exists, else a pull spec).
    #[arg(long, value_enum)]
    pub source: Option<crate::domain::oc_tag::SourceKind>,
    /// Follow the source tag (ImageStreamTag) instead of copying its current image.
    #[arg(long)]
    pub alias: bool,
    /// Re-import a pull-spec source every import interval.
    #[arg(long)]
    pub scheduled: bool,
    /// Allow plain HTTP and unverified TLS for a pull-spec source.
    #[arg(long)]
    pub insecure: bool,
    /// Only point at the source; nothing is imported.
    #[arg(long)]
    pub reference: bool,
    /// How Pods should pull the tag's image.
    #[arg(long, value_enum)]
    pub reference_policy: Option<ReferencePolicyArg>,
    /// Delete the named tags.
    #[arg(short, long)]
    pub delete: bool,
    /// The namespace.
    #[command(flatten)]
    pub scope: Scope,
}

/// The `set` subcommands.
#[derive(Debug, Subcommand)]
pub enum SetCommand {
    /// Add, change, pause or remove image triggers of a workload, or list them (no change flag).
    Triggers {
        /// `deployment|statefulset|daemonset|cronjob/NAME`.
        workload: String,
        /// `[NAMESPACE/]STREAM:TAG` whose image the container follows.
        #[arg(long)]
        from_image: Option<String>,
        /// The containers to update (comma-separated; default: the only container).
        #[arg(short = 'c', long, value_delimiter = ',')]
        containers: Vec<String>,
        /// Update the image automatically (the default for new triggers).
        #[arg(long, conflicts_with = "manual")]
        auto: bool,
        /// Record the trigger but do not update the image (`paused`).
        #[arg(long)]
        manual: bool,
        /// Remove the triggers from --from-image (or all triggers without it).
        #[arg(long)]
        remove: bool,
        /// Remove every trigger.
        #[arg(long)]
        remove_all: bool,
        /// The namespace.
        #[command(flatten)]
        scope: Scope,
    },
    /// Turn `lookupPolicy.local` of streams on or off, or mark workloads' pod templates to
    /// resolve stream names; with no names, list the streams and their setting.
    ImageLookup {
        /// Stream names, or `KIND/NAME` workloads.
        names: Vec<String>,
        /// `--enabled=false` turns lookup off.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        enabled: bool,
        /// The namespace.
        #[command(flatten)]
        scope: Scope,
    },
}

/// The `describe` subcommands.
#[derive(Debug, Subcommand)]
pub enum DescribeCommand {
    /// An image stream: every tag, its history, conditions and triggering workloads.
    #[command(alias = "is", alias = "imagestreams")]
    Imagestream {
        /// The stream.
        name: String,
        /// The namespace.
        #[command(flatten)]
        scope: Scope,
    },
    /// One tag's current image.
    #[command(alias = "imagestreamtag")]
    Istag {
        /// `STREAM:TAG`.
        name: String,
        /// The namespace.
        #[command(flatten)]
        scope: Scope,
    },
}

/// The `get` subcommands.
#[derive(Debug, Subcommand)]
pub enum GetCommand {
    /// Every tag of every image stream: NAME, IMAGE REFERENCE, UPDATED.
    #[command(alias = "imagestreamtags", alias = "imagestreamtag")]
    Istag {
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// The namespace.
        #[command(flatten)]
        scope: Scope,
    },
}

/// The `convert` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConvertCommand {
    /// DeploymentConfigs (files, directories or `-` for standard input; YAML or JSON; Lists and
    /// Templates unpacked) into `apps/v1` Deployments with image-trigger annotations; a warning
    /// on standard error for everything a Deployment cannot carry.
    #[command(alias = "dc", alias = "deploymentconfigs")]
    Deploymentconfig {
        /// Files, directories or `-`.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = crate::oc::convert::OutputFormat::Yaml)]
        output: crate::oc::convert::OutputFormat,
    },
}

/// Flags of `run`. Every flag can also be set through the environment variable named in its help.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// How often tags with `importPolicy.scheduled: true` are checked, e.g. `15m`, `30s`.
    #[arg(long, env = "IMPORT_INTERVAL", default_value = "15m", value_parser = parse_duration)]
    pub import_interval: Duration,
    /// History entries kept per tag; the oldest fall off. 0 keeps everything (OpenShift's behaviour).
    #[arg(long, env = "MAX_TAG_HISTORY", default_value_t = 10)]
    pub max_tag_history: usize,
    /// The platform taken from a manifest list in `Legacy` import mode when the tag does not name
    /// one with `importer.image.openshift.io/prefer-os`/`prefer-arch`.
    #[arg(long, env = "IMPORT_PLATFORM", default_value = "linux/amd64")]
    pub platform: Platform,
    /// How long an Image must be unreferenced by every image stream (and at least this old) before
    /// it is deleted. `0s` keeps every Image.
    #[arg(long, env = "IMAGE_GC_GRACE", default_value = "1h", value_parser = parse_duration)]
    pub image_gc_grace: Duration,
    /// Host name of the cluster's internal registry, for `status.dockerImageRepository` and for
    /// `referencePolicy: Local` (none by default).
    #[arg(long, env = "INTERNAL_REGISTRY_HOSTNAME")]
    pub internal_registry_hostname: Option<String>,
    /// Public host name of the cluster's registry, for `status.publicDockerImageRepository`.
    #[arg(long, env = "PUBLIC_REGISTRY_HOSTNAME")]
    pub public_registry_hostname: Option<String>,
    /// Timeout of each registry request.
    #[arg(long, env = "REGISTRY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub registry_timeout: Duration,
    /// Requests in flight to one registry host at most.
    #[arg(long, env = "REGISTRY_MAX_CONCURRENCY", default_value_t = 8)]
    pub registry_max_concurrency: usize,
    /// Distinct registry tags imported at a time, over all registries (each registry host also
    /// gets at most --registry-max-concurrency of them).
    #[arg(long, env = "IMPORT_CONCURRENCY", default_value_t = Concurrency::default().imports)]
    pub import_concurrency: usize,
    /// ImageStream reconciles at a time (each writes at most one status and two Events).
    #[arg(long, env = "IMAGESTREAM_CONCURRENCY", default_value_t = Concurrency::default().image_streams)]
    pub imagestream_concurrency: usize,
    /// Trigger reconciles at a time, per workload kind.
    #[arg(long, env = "TRIGGER_CONCURRENCY", default_value_t = Concurrency::default().triggers)]
    pub trigger_concurrency: usize,
    /// Registries image streams may import from, as globs on `host[:port]` separated by commas
    /// (`quay.io,*.example.com,registry.local:5000`; a pattern without a port allows every port).
    /// Empty allows every registry. Link-local and cloud metadata addresses are refused regardless.
    #[arg(long, env = "ALLOWED_REGISTRIES", value_delimiter = ',')]
    pub allowed_registries: Vec<String>,
    /// Entries of a manifest list one Image may record: a `PreserveOriginal` import of a longer list
    /// fails with `ManifestListTooLarge` and creates no Image.
    #[arg(long, env = "MAX_MANIFEST_LIST_CHILDREN", default_value_t = ImportLimits::DEFAULT_MAX_MANIFEST_LIST_CHILDREN, value_parser = clap::value_parser!(u32).range(1..).map(|n: u32| n as usize))]
    pub max_manifest_list_children: usize,
    /// Layers of one image an Image may record: an image with more fails with `TooManyLayers` and
    /// creates no Image.
    #[arg(long, env = "MAX_IMAGE_LAYERS", default_value_t = ImportLimits::DEFAULT_MAX_IMAGE_LAYERS, value_parser = clap::value_parser!(u32).range(1..).map(|n: u32| n as usize))]
    pub max_image_layers: usize,
    /// Requests started per second to one registry host at most; 0 for no budget.
    #[arg(long, env = "REGISTRY_RATE_LIMIT", default_value_t = 20)]
    pub registry_rate_limit: u32,
    /// PEM file of extra certificate authorities trusted for every registry.
    #[arg(long, env = "REGISTRY_CA_BUNDLE")]
    pub registry_ca_bundle: Option<PathBuf>,
    /// Watch only this namespace's image streams and pull secrets (default: every namespace).
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Address of the HTTP server with `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Run the controllers only while holding the leader Lease, so replicas can fail over
    /// (`--leader-elect=false` runs them unconditionally).
    #[arg(
        long,
        env = "LEADER_ELECT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: `POD_NAMESPACE`, else the service account's
    /// namespace, else `default`).
    #[arg(long, env = "LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease; operators that must not exclude each other need different names.
    #[arg(long, env = "LEADER_ELECTION_LEASE_NAME", default_value = crate::leader::DEFAULT_LEASE_NAME)]
    pub leader_election_lease_name: String,
    /// How long the Lease stays valid without renewal: a standby takes over at most this long after
    /// the leader dies. Whole seconds, at least 2s; the leader renews at half of it.
    #[arg(long, env = "LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_lease_duration)]
    pub leader_election_lease_duration: Duration,
    /// On SIGTERM, how long the reconciles in flight may take to finish before the Lease is released
    /// and the process exits anyway.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Address of the push-notification receiver (`POST /notifications/<format>`); off when unset.
    /// Needs `--webhook-secret`.
    #[arg(long, env = "WEBHOOK_ADDR", requires = "webhook_secret")]
    pub webhook_addr: Option<SocketAddr>,
    /// The Secret (`NAMESPACE/NAME`) holding one key per enabled notification format, named like
    /// the format's path (`distribution`, `github`, …); re-read when it changes.
    #[arg(long, env = "WEBHOOK_SECRET", value_parser = parse_secret_ref)]
    pub webhook_secret: Option<(String, String)>,
    /// PEM certificate chain: serve the receiver over TLS (with `--webhook-tls-key`).
    #[arg(long, env = "WEBHOOK_TLS_CERT", requires = "webhook_tls_key")]
    pub webhook_tls_cert: Option<PathBuf>,
    /// PEM private key of `--webhook-tls-cert`.
    #[arg(long, env = "WEBHOOK_TLS_KEY", requires = "webhook_tls_cert")]
    pub webhook_tls_key: Option<PathBuf>,
    /// Address of the image-lookup admission webhook (HTTPS, `POST /admission/image-lookup`); off
    /// when unset.
    #[arg(long, env = "ADMISSION_ADDR")]
    pub admission_addr: Option<SocketAddr>,
    /// The Secret (`NAMESPACE/NAME`) the webhook's CA and serving certificate are kept in
    /// (default: `imagestream-operator-admission` in the operator's namespace).
    #[arg(long, env = "ADMISSION_SECRET", value_parser = parse_secret_ref)]
    pub admission_secret: Option<(String, String)>,
    /// The MutatingWebhookConfiguration whose webhooks get the CA as their `caBundle`.
    #[arg(
        long,
        env = "ADMISSION_WEBHOOK_CONFIGURATION",
        default_value = "imagestream-operator"
    )]
    pub admission_webhook_configuration: String,
    /// The Service in front of the webhook: its DNS names go into the serving certificate, with
    /// `localhost` and `127.0.0.1`.
    #[arg(
        long,
        env = "ADMISSION_SERVICE",
        default_value = "imagestream-operator-admission"
    )]
    pub admission_service: String,
}

fn parse_secret_ref(s: &str) -> Result<(String, String), String> {
    crate::webhook::keys::secret_ref(s)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30s or 15m: {e}"))
}

fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_duration(s)?;
    if duration < crate::leader::LeaseTiming::MIN_DURATION {
        return Err(format!(
            "{s:?} is shorter than the shortest lease duration, 2s"
        ));
    }
    Ok(duration)
}

/// A command that failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// The cluster could not be reached or configured.
    #[error("could not connect to the cluster: {0}")]
    Connect(String),
    /// The controllers stopped without being asked to; the process exits so that it is restarted.
    #[error("the controllers stopped: {0}")]
    ControllersEnded(String),
    /// The registry client could not be set up.
    #[error("could not set up the registry client: {0}")]
    Registry(String),
    /// An API request failed.
    #[error("{what}: {source}")]
    Kube { what: String, source: kube::Error },
    /// Reading a file named by a flag failed.
    #[error("could not read {path}: {source}", path = path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The HTTP server could not listen on its address.
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The admission webhook could not be set up.
    #[error("admission webhook: {0}")]
    Admission(String),
    /// The webhook's TLS certificate or key could not be used.
    #[error("webhook TLS: {0}")]
    WebhookTls(String),
    /// Leader election ended this instance's leadership.
    #[error(transparent)]
    Election(#[from] crate::leader::ElectionError),
    /// An `oc`-style command failed.
    #[error(transparent)]
    Oc(#[from] crate::oc::OcError),
    /// Writing a generated file failed.
    #[error("could not write {path}: {source}", path = path.display())]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crds { output_dir: None } => {
            print!("{}", api::crds_yaml());
            Ok(())
        }
        Command::Crds {
            output_dir: Some(dir),
        } => write_crd_files(&dir),
        Command::Run(args) => run_operator(*args).await,
        Command::ImportImage(args) => import_image(*args).await,
        Command::Tag(args) => tag(*args).await,
        Command::Set(command) => set(command).await,
        Command::Describe(command) => describe(command).await,
        Command::Get(GetCommand::Istag {
            all_namespaces,
            scope,
        }) => {
            let cluster = crate::oc::Cluster::connect(scope.namespace).await?;
            let namespace = (!all_namespaces).then_some(cluster.namespace.as_str());
            let table = crate::oc::describe::get_istags(&cluster.client, namespace)
                .await
                .map_err(|e| crate::oc::OcError::Refused(e.to_string()))?;
            print!("{table}");
            Ok(())
        }
        Command::Convert(ConvertCommand::Deploymentconfig { inputs, output }) => {
            let mut out = std::io::stdout().lock();
            let mut warnings = std::io::stderr().lock();
            let summary = crate::oc::convert::convert(&inputs, output, &mut out, &mut warnings)
                .map_err(|e| crate::oc::OcError::Refused(e.to_string()))?;
            if summary.converted == 0 {
                return Err(crate::oc::OcError::Refused(
                    "no DeploymentConfig found in the input".to_owned(),
                )
                .into());
            }
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn run_operator(args: RunArgs) -> Result<(), CliError> {
    init_logging(args.log_format);
    let kube_config = kube::Config::infer()
        .await
        .map_err(|e| CliError::Connect(e.to_string()))?;
    let client = kube::Client::try_from(kube_config.clone())
        .map_err(|e| CliError::Connect(e.to_string()))?;
    let admission_settings = args.admission_addr.map(|addr| AdmissionSettings {
        addr,
        secret: args.admission_secret.clone(),
        configuration: args.admission_webhook_configuration.clone(),
        service: args.admission_service.clone(),
        internal_registry: args.internal_registry_hostname.clone(),
    });
    let webhook_settings = WebhookSettings {
        secret: args.webhook_secret.clone(),
        tls: args
            .webhook_tls_cert
            .clone()
            .zip(args.webhook_tls_key.clone()),
    };
    let ca_bundle = match &args.registry_ca_bundle {
        Some(path) => Some(std::fs::read(path).map_err(|source| CliError::ReadFile {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let defaults = crate::registry::RegistryClientConfig::default();
    let registry = crate::registry::RegistryClient::new(crate::registry::RegistryClientConfig {
        request_timeout: args.registry_timeout,
        limits: crate::registry::LimitsConfig {
            max_concurrency_per_host: args.registry_max_concurrency,
            max_requests_per_second: args.registry_rate_limit,
            ..crate::registry::LimitsConfig::for_interval(args.import_interval)
        },
        extra_ca_pem: ca_bundle,
        // The client records into the instance `/metrics` serves.
        metrics: metrics.registry_client().clone(),
        ..defaults
    })
    .map_err(|e| CliError::Registry(e.to_string()))?;
    let config = crate::controller::ControllerConfig {
        import_interval: args.import_interval,
        max_tag_history: args.max_tag_history,
        default_platform: args.platform,
        internal_registry_host: args.internal_registry_hostname,
        public_registry_host: args.public_registry_hostname,
        image_gc_grace: Some(args.image_gc_grace).filter(|grace| !grace.is_zero()),
        allowed_registries: crate::domain::registry_allowlist::RegistryAllowlist::new(
            &args.allowed_registries,
        ),
        concurrency: Concurrency {
            image_streams: args.imagestream_concurrency.clamp(1, usize::from(u16::MAX)),
            triggers: args.trigger_concurrency.clamp(1, usize::from(u16::MAX)),
            imports: args.import_concurrency.max(1),
            imports_per_host: args.registry_max_concurrency.max(1),
        },
        import_limits: ImportLimits {
            max_manifest_list_children: args.max_manifest_list_children,
            max_image_layers: args.max_image_layers,
        },
    };
    let timing = crate::leader::LeaseTiming::for_duration(args.leader_election_lease_duration);
    let health = Arc::new(crate::server::Health::new(timing.duration));
    let engine_slot = Arc::new(crate::controller::engine::EngineSlot::default());
    let telemetry = crate::controller::run::Telemetry {
        metrics: metrics.clone(),
        health: health.clone(),
        engine: engine_slot.clone(),
        // Only a receiver in a Pod needs routing to the leader.
        pod: args
            .webhook_addr
            .and(std::env::var("POD_NAMESPACE").ok())
            .zip(std::env::var("POD_NAME").ok()),
    };
    let admission = match admission_settings {
        Some(settings) => Some(start_admission(settings, client.clone()).await?),
        None => None,
    };
    let webhook = match args.webhook_addr {
        Some(addr) => Some(
            start_webhook(
                addr,
                webhook_settings,
                client.clone(),
                crate::webhook::Receiver {
                    keys: Arc::new(crate::webhook::Keys::default()),
                    engine: engine_slot,
                    metrics: metrics.clone(),
                },
            )
            .await?,
        ),
        None => None,
    };

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| CliError::Listen {
            addr: args.http_addr,
            source,
        })?;
    tracing::info!(addr = %args.http_addr, "serving /metrics, /healthz and /readyz");
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(
        listener,
        crate::server::ServerState {
            metrics: metrics.clone(),
            health: health.clone(),
        },
        async move {
            let _ = server_stopped.await;
        },
    ));

    // One shutdown signal: /readyz turns unready at once, then the controllers stop.
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    let signal_health = health.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal_health.set_shutting_down();
        let _ = shutdown_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let instance = std::env::var("POD_NAME").ok();
    let namespace = args.namespace;
    let result = if args.leader_elect {
        let service_account_namespace =
            std::fs::read_to_string(crate::leader::SERVICE_ACCOUNT_NAMESPACE_FILE).ok();
        let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok());
        let settings = crate::leader::ElectionSettings {
            lease_name: args.leader_election_lease_name,
            namespace: crate::leader::lease_namespace(
                args.leader_election_namespace.as_deref(),
                std::env::var("POD_NAMESPACE").ok().as_deref(),
                service_account_namespace.as_deref(),
            ),
            identity: crate::leader::holder_identity(
                instance.as_deref(),
                host_name.as_deref(),
                &format!("{:08x}", rand::random::<u32>()),
            ),
            timing,
            drain_timeout: args.shutdown_timeout,
        };
        let lease_client =
            kube::Client::try_from(crate::leader::lease_client_config(kube_config, &timing))
                .map_err(|e| CliError::Connect(e.to_string()))?;
        crate::leader::run_elected(
            crate::leader::ElectionClients {
                lease: lease_client,
                watch: client.clone(),
            },
            &settings,
            health.clone(),
            metrics.clone(),
            shutdown,
            // Controllers that end on their own have logged why and failed the health; the election
            // then reports `ControllersStopped` and the process exits non-zero.
            move |stop| async move {
                let _ = crate::controller::run::run_controllers_reporting(
                    client,
                    registry,
                    config,
                    namespace,
                    instance,
                    telemetry,
                    async move {
                        let _ = stop.await;
                    },
                )
                .await;
            },
        )
        .await
        .map_err(CliError::from)
    } else {
        metrics.set_leader(true);
        let mut controllers = tokio::spawn(crate::controller::run::run_controllers_reporting(
            client,
            registry,
            config,
            namespace,
            instance,
            telemetry,
            stopped(shutdown.clone()),
        ));
        // Wait for the signal, then give the reconciles in flight the shutdown timeout to finish;
        // controllers that end before the signal end the process with an error. The signal ends the
        // controllers too, so when both are ready the signal counts.
        let signalled = shutdown.clone();
        tokio::select! {
            biased;
            () = stopped(shutdown) => {
                if tokio::time::timeout(args.shutdown_timeout, controllers)
                    .await
                    .is_err()
                {
                    tracing::warn!(timeout = ?args.shutdown_timeout, "the controllers did not stop in time");
                }
                Ok(())
            }
            ended = &mut controllers => match ended {
                Ok(Ok(())) if *signalled.borrow() => Ok(()),
                Ok(Err(ended)) => Err(CliError::ControllersEnded(ended.to_string())),
                Ok(Ok(())) => Err(CliError::ControllersEnded("the controllers returned".to_owned())),
                Err(err) => Err(CliError::ControllersEnded(format!("the controllers task failed: {err}"))),
            },
        }
    };

    for (stop, task) in webhook.into_iter().chain(admission) {
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = stop_server.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "the HTTP server failed"),
        Ok(_) => {}
        Err(_) => tracing::warn!("the HTTP server did not stop in time"),
    }
    result
}

/// The admission webhook's flags.
struct AdmissionSettings {
    addr: SocketAddr,
    secret: Option<(String, String)>,
    configuration: String,
    service: String,
    internal_registry: Option<String>,
}

/// How often the admission certificate is checked for renewal.
const CERTIFICATE_CHECK: Duration = Duration::from_secs(6 * 3600);

/// The image-lookup admission webhook on its address, with a certificate from (or written to) its
/// Secret and the CA published to its MutatingWebhookConfiguration, renewed while it runs.
async fn start_admission(
    settings: AdmissionSettings,
    client: kube::Client,
) -> Result<
    (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    CliError,
> {
    use crate::admission::certificates::{certified, ensure, publish_ca};
    use crate::webhook::tls::CertificateSlot;
    let own_namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(crate::leader::SERVICE_ACCOUNT_NAMESPACE_FILE).ok())
        .unwrap_or_else(|| "imagestream-operator".to_owned());
    let (namespace, name) = settings.secret.unwrap_or_else(|| {
        (
            own_namespace.clone(),
            "imagestream-operator-admission".to_owned(),
        )
    });
    let service = &settings.service;
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        format!("{service}.{own_namespace}.svc"),
        format!("{service}.{own_namespace}.svc.cluster.local"),
    ];
    let failed =
        |e: crate::admission::certificates::CertificateError| CliError::Admission(e.to_string());
    let serving = ensure(&client, &namespace, &name, &names)
        .await
        .map_err(failed)?;
    publish_ca(&client, &settings.configuration, &serving.ca_pem)
        .await
        .map_err(failed)?;
    let resolver = Arc::new(CertificateSlot::new(
        certified(&serving).map_err(CliError::Admission)?,
    ));
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|source| CliError::Listen {
            addr: settings.addr,
            source,
        })?;
    tracing::info!(addr = %settings.addr, "serving image-lookup admission on /admission/image-lookup");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = futures::FutureExt::shared(stopped);
    // Renewal: the Secret is re-read (another replica may have renewed it), re-issued when due,
    // served, and the CA published again.
    let renewing = stopped.clone();
    let rotating = resolver.clone();
    let configuration = settings.configuration.clone();
    let renew_client = client.clone();
    tokio::spawn(async move {
        let renew = async {
            loop {
                tokio::time::sleep(CERTIFICATE_CHECK).await;
                match ensure(&renew_client, &namespace, &name, &names).await {
                    Ok(serving) => {
                        match certified(&serving) {
                            Ok(key) => rotating.replace(key),
                            Err(err) => {
                                tracing::warn!(error = %err, "could not serve the renewed admission certificate")
                            }
                        }
                        if let Err(err) =
                            publish_ca(&renew_client, &configuration, &serving.ca_pem).await
                        {
                            tracing::warn!(error = %err, "could not publish the admission CA");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "could not renew the admission certificate")
                    }
                }
            }
        };
        tokio::select! {
            _ = renewing => {}
            () = renew => {}
        }
    });
    // Every replica answers lookups from a stream cache of its own, leader or not, so admission
    // does not depend on leadership (nor pause while it changes hands). Empty until listed: an
    // object admitted before is stored as written.
    let lookups = Arc::new(crate::admission::Streams::default());
    let store = crate::controller::stores::spawn_reflector(
        kube::Api::<kube::core::DeserializeGuard<crate::api::ImageStream>>::all(client.clone()),
        kube::runtime::watcher::Config::default(),
        "admission image-streams",
        None,
    );
    let filling = lookups.clone();
    tokio::spawn(async move {
        if crate::controller::stores::wait_until_listed(&store).await {
            tracing::info!("image-lookup admission: stream cache listed");
            filling.set(Some(Arc::new(crate::admission::StoreLookup(store))));
        }
    });
    let state = crate::admission::AdmissionState {
        streams: lookups,
        internal_registry: settings.internal_registry,
    };
    let task = tokio::spawn(async move {
        if let Err(err) = crate::admission::serve(listener, resolver, state, async move {
            let _ = stopped.await;
        })
        .await
        {
            tracing::warn!(error = %err, "the admission webhook server failed");
        }
    });
    Ok((stop, task))
}

/// The receiver's flags other than its address.
struct WebhookSettings {
    secret: Option<(String, String)>,
    tls: Option<(PathBuf, PathBuf)>,
}

/// The push-notification receiver on `addr`, following the keys of `--webhook-secret`, until the
/// returned sender is used or dropped.
async fn start_webhook(
    addr: SocketAddr,
    settings: WebhookSettings,
    client: kube::Client,
    receiver: crate::webhook::Receiver,
) -> Result<
    (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ),
    CliError,
> {
    let tls = match &settings.tls {
        Some((cert, key)) => {
            Some(crate::webhook::tls::server_config(cert, key).map_err(CliError::WebhookTls)?)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Listen { addr, source })?;
    tracing::info!(%addr, tls = tls.is_some(), "serving push notifications on /notifications/<format>");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = futures::FutureExt::shared(stopped);
    let keys = receiver.keys.clone();
    let (namespace, name) = settings
        .secret
        .expect("clap requires --webhook-secret with --webhook-addr");
    let following = stopped.clone();
    tokio::spawn(crate::webhook::keys::follow_secret(
        client,
        namespace,
        name,
        keys,
        async move {
            let _ = following.await;
        },
    ));
    let task = tokio::spawn(async move {
        if let Err(err) = crate::webhook::serve(listener, tls, receiver, async move {
            let _ = stopped.await;
        })
        .await
        {
            tracing::warn!(error = %err, "the webhook server failed");
        }
    });
    Ok((stop, task))
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

async fn import_image(args: ImportImageArgs) -> Result<(), CliError> {
    let (stream, tag) = crate::oc::import_image::name_and_tag(&args.name)?;
    let request = crate::domain::import_image::ImportRequest {
        stream,
        tag,
        from: args.from,
        confirm: args.confirm,
        all: args.all,
        policy: crate::domain::import_image::PolicyFlags {
            scheduled: args.scheduled,
            insecure: args.insecure,
            reference_policy: args.reference_policy.map(ReferencePolicyArg::api),
            import_mode: args.import_mode.map(|mode| match mode {
                ImportModeArg::Legacy => "Legacy".to_owned(),
                ImportModeArg::PreserveOriginal => "PreserveOriginal".to_owned(),
            }),
        },
    };
    let cluster = crate::oc::Cluster::connect(args.scope.namespace).await?;
    let mut out = std::io::stdout().lock();
    crate::oc::import_image::import_image(&cluster, &request, args.timeout, &mut out).await?;
    Ok(())
}

async fn tag(args: TagCommand) -> Result<(), CliError> {
    let cluster = crate::oc::Cluster::connect(args.scope.namespace).await?;
    let tag_args = crate::oc::tag::TagArgs {
        names: args.names,
        source_kind: args.source,
        alias: args.alias,
        flags: crate::domain::oc_tag::TagFlags {
            scheduled: args.scheduled,
            insecure: args.insecure,
            reference: args.reference,
            reference_policy: args.reference_policy.map(ReferencePolicyArg::api),
        },
        delete: args.delete,
    };
    let mut out = std::io::stdout().lock();
    crate::oc::tag::tag(&cluster, &tag_args, &mut out).await?;
    Ok(())
}

async fn describe(command: DescribeCommand) -> Result<(), CliError> {
    let (scope, text) = match &command {
        DescribeCommand::Imagestream { name, scope } | DescribeCommand::Istag { name, scope } => {
            (scope.clone(), name.clone())
        }
    };
    let cluster = crate::oc::Cluster::connect(scope.namespace).await?;
    let described = match command {
        DescribeCommand::Imagestream { .. } => {
            crate::oc::describe::describe_stream(&cluster.client, &cluster.namespace, &text).await
        }
        DescribeCommand::Istag { .. } => {
            crate::oc::describe::describe_istag(&cluster.client, &cluster.namespace, &text).await
        }
    }
    .map_err(|e| crate::oc::OcError::Refused(e.to_string()))?;
    print!("{described}");
    Ok(())
}

async fn set(command: SetCommand) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match command {
        SetCommand::Triggers {
            workload,
            from_image,
            containers,
            auto,
            manual,
            remove,
            remove_all,
            scope,
        } => {
            let cluster = crate::oc::Cluster::connect(scope.namespace).await?;
            let change = crate::domain::trigger_edit::TriggerChange {
                from_image,
                containers,
                manual: (auto || manual).then_some(manual),
                remove,
                remove_all,
            };
            crate::oc::set::triggers(&cluster, &workload, &change, &mut out).await?;
        }
        SetCommand::ImageLookup {
            names,
            enabled,
            scope,
        } => {
            let cluster = crate::oc::Cluster::connect(scope.namespace).await?;
            crate::oc::set::image_lookup(&cluster, &names, enabled, &mut out).await?;
        }
    }
    Ok(())
}

fn write_crd_files(dir: &std::path::Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::WriteFile {
        path: dir.to_owned(),
        source,
    })?;
    for file in api::crd_files() {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, &file.yaml).map_err(|source| CliError::WriteFile { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_flags_parse_humane_durations_and_platforms() {
        let cli = Cli::try_parse_from([
            "imagestream-operator",
            "run",
            "--import-interval",
            "2s",
            "--max-tag-history",
            "0",
            "--platform",
            "linux/arm64/v8",
            "--image-gc-grace",
            "0s",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.import_interval, Duration::from_secs(2));
        assert_eq!(args.max_tag_history, 0);
        assert_eq!(args.platform.variant.as_deref(), Some("v8"));
        assert!(args.image_gc_grace.is_zero());
    }

    #[test]
    fn run_defaults_follow_openshift_where_it_has_one() {
        let cli = Cli::try_parse_from(["imagestream-operator", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.import_interval, Duration::from_secs(15 * 60));
        assert_eq!(args.max_tag_history, 10);
        assert_eq!(args.platform.to_string(), "linux/amd64");
    }

    #[test]
    fn import_limits_default_to_64_children_and_256_layers_and_refuse_zero() {
        let parse = |extra: &[&str]| {
            Cli::try_parse_from(["imagestream-operator", "run"].iter().chain(extra)).map(|cli| {
                let Command::Run(args) = cli.command else {
                    panic!("not run")
                };
                (args.max_manifest_list_children, args.max_image_layers)
            })
        };
        assert_eq!(parse(&[]).unwrap(), (64, 256));
        assert_eq!(
            parse(&[
                "--max-manifest-list-children",
                "10",
                "--max-image-layers",
                "500"
            ])
            .unwrap(),
            (10, 500)
        );
        for zero in ["--max-manifest-list-children=0", "--max-image-layers=0"] {
            assert!(parse(&[zero]).is_err(), "{zero}");
        }
    }

    #[test]
    fn leader_election_is_on_by_default_and_can_be_turned_off() {
        let parse = |extra: &[&str]| {
            let cli =
                Cli::try_parse_from(["imagestream-operator", "run"].iter().chain(extra)).unwrap();
            let Command::Run(args) = cli.command else {
                panic!("not run")
            };
            args
        };
        let defaults = parse(&[]);
        assert!(defaults.leader_elect);
        assert_eq!(defaults.http_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(defaults.leader_election_lease_name, "imagestream-operator");
        assert_eq!(
            defaults.leader_election_lease_duration,
            Duration::from_secs(15)
        );
        assert!(!parse(&["--leader-elect=false"]).leader_elect);
        assert!(parse(&["--leader-elect"]).leader_elect);
        let tuned = parse(&[
            "--http-addr",
            "127.0.0.1:9090",
            "--leader-election-namespace",
            "ops",
            "--leader-election-lease-duration",
            "4s",
        ]);
        assert_eq!(tuned.http_addr.port(), 9090);
        assert_eq!(tuned.leader_election_namespace.as_deref(), Some("ops"));
        assert_eq!(tuned.leader_election_lease_duration, Duration::from_secs(4));
    }

    #[test]
    fn a_lease_duration_under_two_seconds_is_refused() {
        let err = Cli::try_parse_from([
            "imagestream-operator",
            "run",
            "--leader-election-lease-duration",
            "1s",
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("2s"), "{err}");
    }

    #[test]
    fn a_bad_duration_is_refused_with_an_example() {
        let err = Cli::try_parse_from(["imagestream-operator", "run", "--import-interval", "soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("15m"), "{err}");
    }
}
