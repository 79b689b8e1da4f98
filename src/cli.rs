//! The command line of the `imagestream-operator` binary: flags are parsed here, the work is done by
//! the library modules.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::api;
use crate::domain::platform::Platform;

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
    Run(RunArgs),
    /// Ask the running operator to import every importable tag of one image stream now, like
    /// `oc import-image`: sets the `imagestream-operator/import-requested` annotation to the current
    /// time (no spec change).
    ImportImage {
        /// The image stream.
        stream: String,
        /// Its namespace (default: the kubeconfig's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// Print every CustomResourceDefinition the operator serves, as YAML; with --output-dir, write
    /// one file per CRD and a kustomization.yaml into that directory instead.
    Crds {
        /// Directory to write `<plural>.<group>.yaml` files and `kustomization.yaml` into.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
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
    /// Registries image streams may import from, as globs on `host[:port]` separated by commas
    /// (`quay.io,*.example.com,registry.local:5000`; a pattern without a port allows every port).
    /// Empty allows every registry. Link-local and cloud metadata addresses are refused regardless.
    #[arg(long, env = "ALLOWED_REGISTRIES", value_delimiter = ',')]
    pub allowed_registries: Vec<String>,
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

/// A command that failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// The cluster could not be reached or configured.
    #[error("could not connect to the cluster: {0}")]
    Connect(String),
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
        Command::Run(args) => run_operator(args).await,
        Command::ImportImage { stream, namespace } => request_import(&stream, namespace).await,
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
    let client = kube::Client::try_default()
        .await
        .map_err(|e| CliError::Connect(e.to_string()))?;
    let ca_bundle = match &args.registry_ca_bundle {
        Some(path) => Some(std::fs::read(path).map_err(|source| CliError::ReadFile {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let defaults = crate::registry::RegistryClientConfig::default();
    let registry = crate::registry::RegistryClient::new(crate::registry::RegistryClientConfig {
        request_timeout: args.registry_timeout,
        limits: crate::registry::LimitsConfig {
            max_concurrency_per_host: args.registry_max_concurrency,
            max_requests_per_second: args.registry_rate_limit,
            ..defaults.limits.clone()
        },
        extra_ca_pem: ca_bundle,
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
    };
    let instance = std::env::var("POD_NAME").ok();
    crate::controller::run::run_controllers(
        client,
        registry,
        config,
        args.namespace,
        instance,
        shutdown_signal(),
    )
    .await;
    Ok(())
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

async fn request_import(stream: &str, namespace: Option<String>) -> Result<(), CliError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| CliError::Connect(e.to_string()))?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_owned());
    let api = kube::Api::<api::ImageStream>::namespaced(client, &namespace);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = serde_json::json!({
        "metadata": { "annotations": { crate::controller::IMPORT_REQUESTED_ANNOTATION: now } }
    });
    api.patch(
        stream,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map_err(|source| CliError::Kube {
        what: format!("could not request an import of image stream {namespace}/{stream}"),
        source,
    })?;
    println!("imagestream.image.openshift.io/{stream} import requested");
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
    fn a_bad_duration_is_refused_with_an_example() {
        let err = Cli::try_parse_from(["imagestream-operator", "run", "--import-interval", "soon"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("15m"), "{err}");
    }
}
