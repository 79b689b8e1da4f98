//! The local environment integration tests and the demo run against: a real kube-apiserver with etcd
//! (and, on request, kube-controller-manager) and real CNCF distribution registries, all on 127.0.0.1
//! with free ports, started once per process (envtest style). `USE_EXISTING_CLUSTER=true` points it at
//! the current kubeconfig instead of starting a control plane.
//!
//! A failure to start is an error that says why; nothing here ever makes a test pass silently.
//!
//! This crate is a development tool of imagestream-operator: a dev-dependency of its tests and the
//! library of its demo and benchmark, never linked into the operator binary. It knows nothing of the
//! operator's types; callers hand in the CustomResourceDefinitions to install.

mod assets;
mod control_plane;
mod host;
pub mod images;
pub mod install;
pub mod node;
pub mod pods;
mod process;
mod registry;
pub mod skip;
mod tls;
pub mod token_server;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use thiserror::Error;
use tokio::sync::OnceCell;

pub use assets::{Assets, provision_cache_bin_dir};
pub use control_plane::{ADMIN_USER, ControlPlane, ControlPlaneOptions};
pub use install::OperatorInstall;
pub use node::{NODE_CONTROLLERS, Node, NodeOptions, Teardown};
pub use process::{ManagedProcess, clock_ticks_per_second, send_sigterm};
pub use registry::{
    NotificationEndpoint, Registry, RegistryOptions, RegistryRequest, TokenAuth,
    parse_access_log_line, write_htpasswd,
};
pub use tls::{ServingCert, TestCa};

/// Why the local environment could not be started or used.
#[derive(Debug, Error)]
pub enum TestEnvError {
    /// A program was not found in any of the conventional places.
    #[error(
        "{program} not found: run `make provision` (hack/provision.sh), or set {variable} or KUBEBUILDER_ASSETS to point at it"
    )]
    MissingAsset { program: String, variable: String },
    /// A program could not be started.
    #[error("could not start {program}: {source}", program = program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    /// A program exited while it was expected to run.
    #[error("{program} exited with {status}; last log lines:\n{log_tail}")]
    Exited {
        program: String,
        status: String,
        log_tail: String,
    },
    /// A program did not become ready in time.
    #[error(
        "{program} was not ready after {waited:?} (last answer: {last}); last log lines:\n{log_tail}"
    )]
    NotReady {
        program: String,
        waited: Duration,
        last: String,
        log_tail: String,
    },
    /// A file-system operation failed.
    #[error("could not {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// A certificate or key could not be generated.
    #[error("could not generate a test certificate: {source}")]
    Certificate { source: rcgen::Error },
    /// The kubeconfig could not be loaded.
    #[error("could not load kubeconfig {path}: {message}", path = path.display())]
    Kubeconfig { path: PathBuf, message: String },
    /// A request to the apiserver failed.
    #[error("could not {what}: {source}")]
    Kube { what: String, source: kube::Error },
}

/// The environment shared by all tests of one test binary.
pub struct TestEnv {
    dir: PathBuf,
    kubeconfig: PathBuf,
    assets: Option<Assets>,
    control_plane: Option<Mutex<ControlPlane>>,
    registry: Registry,
}

static GLOBAL: OnceCell<Result<TestEnv, String>> = OnceCell::const_new();

impl TestEnv {
    /// The environment of this process, started on first use, with the CustomResourceDefinitions
    /// `crds` returns installed (it is called once, by the first caller).
    ///
    /// # Panics
    /// When the environment cannot be started, with the reason: a test must never pass without it.
    pub async fn global(crds: fn() -> Vec<CustomResourceDefinition>) -> &'static TestEnv {
        let env = GLOBAL
            .get_or_init(|| async {
                Self::start(&crds()).await.map_err(|err| {
                    format!("the integration-test environment could not be started: {err}")
                })
            })
            .await;
        match env {
            Ok(env) => env,
            Err(message) => panic!("{message}"),
        }
    }

    /// Starts a new environment: the control plane (unless `USE_EXISTING_CLUSTER=true`), a
    /// registry, and the given CustomResourceDefinitions, established before this returns.
    pub async fn start(crds: &[CustomResourceDefinition]) -> Result<TestEnv, TestEnvError> {
        install_crypto_provider();
        let dir = scratch_dir()?;
        let use_existing = std::env::var("USE_EXISTING_CLUSTER")
            .map(|v| v.eq_ignore_ascii_case("true"))
            .unwrap_or(false);
        let (kubeconfig, assets, control_plane) = if use_existing {
            let path = std::env::var_os("KUBECONFIG")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".kube/config")))
                .ok_or_else(|| TestEnvError::Kubeconfig {
                    path: PathBuf::from("~/.kube/config"),
                    message: "USE_EXISTING_CLUSTER=true but neither KUBECONFIG nor HOME is set"
                        .into(),
                })?;
            (path, Assets::from_environment().ok(), None)
        } else {
            let assets = Assets::from_environment()?;
            let plane = ControlPlane::start(&dir, &assets.etcd, &assets.kube_apiserver).await?;
            (plane.kubeconfig().to_owned(), Some(assets), Some(plane))
        };
        let registry_bin = registry_binary(assets.as_ref())?;
        let registry = Registry::start(
            &registry_bin,
            &dir.join("registry"),
            &RegistryOptions::default(),
        )
        .await?;
        let env = TestEnv {
            dir,
            kubeconfig,
            assets,
            control_plane: control_plane.map(Mutex::new),
            registry,
        };
        env.install_crds(crds).await?;
        Ok(env)
    }

    /// A new client with the admin credentials. Each test makes its own: a client is bound to the
    /// async runtime it was made in, and every test has its own runtime.
    pub async fn client(&self) -> Client {
        client_from_kubeconfig(&self.kubeconfig)
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The kubeconfig file with the admin credentials.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The registry shared by the tests of this binary (each test uses its own repositories).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The programs found for this environment.
    pub fn assets(&self) -> Option<&Assets> {
        self.assets.as_ref()
    }

    /// Starts another registry with `options` (for auth and TLS tests); it stops when dropped.
    pub async fn start_registry(
        &self,
        name: &str,
        options: &RegistryOptions,
    ) -> Result<Registry, TestEnvError> {
        let binary = registry_binary(self.assets.as_ref())?;
        let dir = self
            .dir
            .join(format!("registry-{name}-{:08x}", rand::random::<u32>()));
        Registry::start(&binary, &dir, options).await
    }

    /// Writes `object` into etcd under the apiserver's key for a cluster-scoped custom resource
    /// (`/registry/<group>/<plural>/<name>`), bypassing the apiserver and its validation: how an
    /// object stored under an older or looser schema looks to a client today. The apiserver serves it
    /// and sends it to watchers like any other. `Ok(false)` when this environment has no etcd of its
    /// own (`USE_EXISTING_CLUSTER=true`).
    pub async fn store_unvalidated(
        &self,
        group: &str,
        plural: &str,
        object: &serde_json::Value,
    ) -> Result<bool, TestEnvError> {
        use base64::Engine;
        let Some(plane) = &self.control_plane else {
            return Ok(false);
        };
        let etcd = plane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .etcd_url()
            .to_owned();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let key = format!("/registry/{group}/{plural}/{name}");
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let body = serde_json::json!({
            "key": encode(key.as_bytes()),
            "value": encode(object.to_string().as_bytes()),
        });
        let failed = |message: String| TestEnvError::Io {
            what: format!("write {key} into etcd"),
            source: std::io::Error::other(message),
        };
        let answer = reqwest::Client::new()
            .post(format!("{etcd}/v3/kv/put"))
            .json(&body)
            .send()
            .await
            .map_err(|err| failed(err.to_string()))?;
        if !answer.status().is_success() {
            return Err(failed(format!("etcd answered {}", answer.status())));
        }
        Ok(true)
    }

    /// Stops the apiserver for `down`, starts it again and waits until it answers `/readyz` with
    /// `ok`; returns when it does. Every client of the environment sees the outage. `Ok(false)`
    /// when this environment has no apiserver of its own (`USE_EXISTING_CLUSTER=true`).
    pub async fn restart_apiserver(&self, down: Duration) -> Result<bool, TestEnvError> {
        let Some(plane) = &self.control_plane else {
            return Ok(false);
        };
        plane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop_apiserver();
        tokio::time::sleep(down).await;
        plane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_apiserver_again()?;
        let client = client_from_kubeconfig(&self.kubeconfig).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a static request is valid");
            let last = match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(true),
                Ok(body) => body,
                Err(err) => err.to_string(),
            };
            if tokio::time::Instant::now() > deadline {
                return Err(TestEnvError::NotReady {
                    program: "kube-apiserver (restarted)".into(),
                    waited: Duration::from_secs(60),
                    last,
                    log_tail: String::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts kube-controller-manager (once), so Deployments really roll out.
    pub fn start_controller_manager(&self) -> Result<(), TestEnvError> {
        let Some(plane) = &self.control_plane else {
            return Ok(());
        };
        let binary = self
            .assets
            .as_ref()
            .and_then(|a| a.kube_controller_manager.clone())
            .ok_or_else(|| TestEnvError::MissingAsset {
                program: "kube-controller-manager".into(),
                variable: "TEST_ASSET_KUBE_CONTROLLER_MANAGER".into(),
            })?;
        plane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_controller_manager(&self.dir, &binary)
    }

    /// A `kubectl` command set up for this environment.
    ///
    /// # Panics
    /// When no kubectl was found (see [`Assets`]).
    pub fn kubectl(&self) -> std::process::Command {
        let binary = self
            .assets
            .as_ref()
            .and_then(|a| a.kubectl.clone())
            .unwrap_or_else(|| {
                panic!(
                    "{}",
                    TestEnvError::MissingAsset {
                        program: "kubectl".into(),
                        variable: "TEST_ASSET_KUBECTL".into()
                    }
                )
            });
        let mut cmd = std::process::Command::new(binary);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs kubectl with `args`, and `input` on its standard input when given: its standard
    /// output, or an error naming the command with what kubectl printed on standard error.
    ///
    /// # Panics
    /// When no kubectl was found (see [`Assets`]).
    pub fn run_kubectl(&self, args: &[&str], input: Option<&str>) -> Result<String, TestEnvError> {
        use std::io::Write;
        use std::process::Stdio;
        let what = format!("run kubectl {}", args.join(" "));
        let io = |source| TestEnvError::Io {
            what: what.clone(),
            source,
        };
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        if let Some(input) = input
            && let Some(mut stdin) = child.stdin.take()
        {
            stdin.write_all(input.as_bytes()).map_err(io)?;
        }
        let out = child.wait_with_output().map_err(io)?;
        if !out.status.success() {
            return Err(io(std::io::Error::other(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a namespace of its own for one test, named `<prefix>-<random>`.
    pub async fn namespace(&self, prefix: &str) -> String {
        let client = self.client().await;
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("{prefix}-")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = Api::<Namespace>::all(client)
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|err| panic!("could not create a test namespace: {err}"));
        created.metadata.name.expect("created namespace has a name")
    }

    /// Applies `crds` and waits until the apiserver serves each of them.
    pub async fn install_crds(
        &self,
        crds: &[CustomResourceDefinition],
    ) -> Result<(), TestEnvError> {
        let client = client_from_kubeconfig(&self.kubeconfig).await?;
        let api = Api::<CustomResourceDefinition>::all(client);
        let params = PatchParams::apply("imagestream-operator-testenv").force();
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(crd))
                .await
                .map_err(|source| TestEnvError::Kube {
                    what: format!("apply CRD {name}"),
                    source,
                })?;
        }
        for crd in crds {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let established = kube::runtime::conditions::is_crd_established();
            kube::runtime::wait::await_condition(api.clone(), &name, established)
                .await
                .map_err(|err| TestEnvError::Kube {
                    what: format!("wait for CRD {name} to be established"),
                    source: kube::Error::Service(Box::new(err)),
                })?;
        }
        Ok(())
    }
}

/// The distribution registry program, or why there is none.
fn registry_binary(assets: Option<&Assets>) -> Result<PathBuf, TestEnvError> {
    assets
        .and_then(|a| a.registry.clone())
        .ok_or_else(|| TestEnvError::MissingAsset {
            program: "docker-registry".into(),
            variable: "TEST_ASSET_REGISTRY".into(),
        })
}

/// Installs the process-wide rustls crypto provider (ring) unless one is installed already.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<Client, TestEnvError> {
    install_crypto_provider();
    let error = |message: String| TestEnvError::Kubeconfig {
        path: path.to_owned(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| error(e.to_string()))?;
    Client::try_from(config).map_err(|e| error(e.to_string()))
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16, TestEnvError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| TestEnvError::Io {
            what: "find a free port on 127.0.0.1".into(),
            source,
        })
}

fn write_file(path: &Path, contents: &str) -> Result<(), TestEnvError> {
    std::fs::write(path, contents).map_err(|source| TestEnvError::Io {
        what: format!("write {}", path.display()),
        source,
    })
}

/// A scratch directory for this process's environment, removed at exit (kept with `TESTENV_KEEP=1`).
fn scratch_dir() -> Result<PathBuf, TestEnvError> {
    let dir = tempfile::Builder::new()
        .prefix("imagestream-operator-testenv-")
        .tempdir()
        .map_err(|source| TestEnvError::Io {
            what: "create a scratch directory".into(),
            source,
        })?
        .keep();
    process::remove_at_exit(&dir);
    Ok(dir)
}
