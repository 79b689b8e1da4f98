//! A real node for the local environment, started on request: containerd, kubelet, kube-scheduler,
//! kube-proxy and the kube-controller-manager controllers a node needs, with a bridge network pods
//! reach the API server and a plain-HTTP registry on. The fast tests never start one.
//!
//! What this changes on the machine, and [`Node::teardown`] undoes (so a second run starts clean):
//! - a bridge (`istest0`, 10.88.0.1/24 by default) the API server, kubelet and the node registry
//!   listen on (pods cannot reach 127.0.0.1 of the host);
//! - iptables chains `KUBE-*` (kubelet, kube-proxy) and `CNI-*` (the bridge plugin) in the filter,
//!   nat and mangle tables, IPv4 and IPv6: only chains that did not exist before are removed;
//! - sysctls kubelet, kube-proxy and the bridge plugin set (`ip_forward`, `route_localnet`,
//!   `vm.overcommit_memory`, `kernel.panic`, ...): their earlier values are written back;
//! - mounts (pod volumes, network namespaces, overlay root file systems) under the scratch
//!   directory, `/var/lib/kubelet`, `/run/containerd` and `/var/run/netns`, and the directories
//!   kubelet and containerd create in fixed places (`/var/lib/kubelet/device-plugins`, `/var/log/pods`,
//!   `/var/log/containers`, `/var/lib/cni`, `/run/containerd/s`), removed when they did not exist
//!   before;
//! - the `k8s.io` cgroups runc creates under each cgroup v1 controller (containerd's default parent
//!   when kubelet runs with `--cgroups-per-qos=false`), removed when they did not exist before.
//!
//! The machine's state is recorded before the node changes anything, and kept on file while it runs
//! (see `host.rs`): a run killed before its teardown is cleaned up by the next node before it starts
//! ([`Node::reclaimed`] tells what was restored).
//!
//! One node per machine at a time (a lock; a second node waits for the first's teardown): the
//! bridge, `/var/log/pods` and the iptables chains are machine-wide. Needs root (it creates a bridge
//! and runs kubelet).
//!
//! Everything else (containerd's root, state and socket, kubelet's root directory, the CNI
//! configuration and IP allocations) lives in the environment's scratch directory.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node as NodeObject, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use super::control_plane::{ControlPlane, ControlPlaneOptions, kube_component};
use super::host::{HostRecord, MachineLock, io_error, other_error, run};
use super::process::ManagedProcess;
use super::{
    Assets, Registry, RegistryOptions, TestEnv, TestEnvError, client_from_kubeconfig,
    install_crypto_provider, registry_binary, scratch_dir, write_file,
};

/// How long the node may take to become Ready.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a node waits for another node of the machine to be torn down before it gives up.
const NODE_LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// The controllers kube-controller-manager runs for a node: workloads, `nodelifecycle` (removes the
/// `node.kubernetes.io/not-ready` taint once the node is Ready), `endpoint`/`endpointslice` (Services),
/// `serviceaccount`/`serviceaccount-token` (the `default` ServiceAccount of each namespace and its
/// token Secret, which the ServiceAccount admission plugin mounts into pods), `namespace` and `podgc`.
pub const NODE_CONTROLLERS: &str = "deployment,replicaset,statefulset,daemonset,job,cronjob,garbagecollector,nodelifecycle,endpoint,endpointslice,serviceaccount,serviceaccount-token,namespace,podgc";

/// How the node is set up.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The node's name.
    pub name: String,
    /// The bridge pods are attached to; created by [`Node::prepare`], deleted on teardown.
    pub bridge: String,
    /// The bridge's (gateway's) address: the API server, kubelet and the node registry listen here.
    pub gateway: Ipv4Addr,
    /// The pod subnet's prefix length (the subnet holds `gateway`).
    pub prefix_len: u8,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            name: "testenv-node".into(),
            bridge: "istest0".into(),
            gateway: Ipv4Addr::new(10, 88, 0, 1),
            prefix_len: 24,
        }
    }
}

impl NodeOptions {
    /// The pod subnet in CIDR notation.
    pub fn subnet(&self) -> String {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        let network = Ipv4Addr::from(u32::from(self.gateway) & mask);
        format!("{network}/{}", self.prefix_len)
    }
}

/// What [`Node::teardown`] did, and what it could not undo.
#[derive(Debug, Default, Clone)]
pub struct Teardown {
    /// Each step that changed something, for logs.
    pub done: Vec<String>,
    /// What could not be undone; empty when the machine is as before.
    pub problems: Vec<String>,
}

/// A running node (see the module documentation). Stops and undoes everything on
/// [`Node::teardown`] or when dropped.
pub struct Node {
    options: NodeOptions,
    dir: PathBuf,
    kubeconfig: PathBuf,
    assets: NodeAssets,
    /// The machine's state before the node started, also on file while the node runs.
    record: HostRecord,
    /// Held until the teardown has restored the machine.
    lock: Option<MachineLock>,
    /// What was restored of a run that ended without its teardown, before this node started.
    reclaimed: Option<Teardown>,
    containerd_socket: PathBuf,
    registry: Option<ManagedProcess>,
    registry_host: String,
    sandbox_image: String,
    /// Started in this order, stopped in reverse.
    processes: Vec<ManagedProcess>,
    torn_down: bool,
    /// How long each start step took, for reports.
    timings: Vec<(String, Duration)>,
}

/// The programs of a node.
#[derive(Debug, Clone)]
struct NodeAssets {
    kubelet: PathBuf,
    kube_proxy: PathBuf,
    kube_scheduler: PathBuf,
    kube_controller_manager: PathBuf,
    registry: PathBuf,
}

impl NodeAssets {
    fn find(assets: &Assets) -> Result<Self, TestEnvError> {
        let dir = assets
            .kube_apiserver
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default();
        let program = |name: &str, variable: &str| {
            let path = std::env::var_os(variable)
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join(name));
            if path.is_file() {
                Ok(path)
            } else {
                Err(TestEnvError::MissingAsset {
                    program: format!("{name} (run hack/provision-node.sh)"),
                    variable: variable.to_owned(),
                })
            }
        };
        Ok(Self {
            kubelet: program("kubelet", "TEST_ASSET_KUBELET")?,
            kube_proxy: program("kube-proxy", "TEST_ASSET_KUBE_PROXY")?,
            kube_scheduler: program("kube-scheduler", "TEST_ASSET_KUBE_SCHEDULER")?,
            kube_controller_manager: assets.kube_controller_manager.clone().ok_or_else(|| {
                TestEnvError::MissingAsset {
                    program: "kube-controller-manager".into(),
                    variable: "TEST_ASSET_KUBE_CONTROLLER_MANAGER".into(),
                }
            })?,
            registry: registry_binary(Some(assets))?,
        })
    }
}

/// A free TCP port on `ip`.
fn free_port_on(ip: Ipv4Addr) -> Result<u16, TestEnvError> {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io_error(format!("find a free port on {ip}")))
}

fn spawn(name: &str, command: Command, log: &Path) -> Result<ManagedProcess, TestEnvError> {
    let program = PathBuf::from(command.get_program());
    ManagedProcess::spawn(name, command, log)
        .map_err(|source| TestEnvError::Spawn { program, source })
}

impl Node {
    /// Records the machine's state and creates the bridge, before the control plane starts (the
    /// API server binds to the bridge address).
    fn prepare(
        dir: &Path,
        options: &NodeOptions,
        assets: NodeAssets,
        kubeconfig: &Path,
    ) -> Result<Self, TestEnvError> {
        let lock = MachineLock::acquire(NODE_LOCK_TIMEOUT)?;
        let reclaimed = lock.leftover().map(|record| {
            let log = lock.reclaim(&record);
            eprintln!(
                "testenv: process {} ended without tearing its node down; restored the machine: {}",
                record.pid,
                log.done.join("; ")
            );
            log
        });
        if let Some(problems) = reclaimed.as_ref().map(|log| &log.problems)
            && !problems.is_empty()
        {
            return Err(other_error(
                "restore the machine after an earlier run that ended without its teardown",
                problems.join("; "),
            ));
        }
        let bridge = options.bridge.as_str();
        if Path::new("/sys/class/net").join(bridge).exists() {
            return Err(other_error(
                format!("create bridge {bridge}"),
                "it exists already and no earlier run recorded it (`ip link delete` it if it is a leftover)",
            ));
        }
        let scratch = dir;
        let dir = scratch.join("node");
        std::fs::create_dir_all(&dir).map_err(io_error("create the node directory"))?;
        let containerd_socket = dir.join("containerd.sock");
        let record = HostRecord::capture(scratch, &dir, &containerd_socket, bridge);
        lock.write(&record)?;
        let node = Self {
            options: options.clone(),
            containerd_socket,
            dir,
            kubeconfig: kubeconfig.to_owned(),
            assets,
            record,
            lock: Some(lock),
            reclaimed,
            registry: None,
            registry_host: String::new(),
            sandbox_image: String::new(),
            processes: Vec::new(),
            torn_down: false,
            timings: Vec::new(),
        };
        run("ip", &["link", "add", bridge, "type", "bridge"])?;
        let address = format!("{}/{}", options.gateway, options.prefix_len);
        run("ip", &["addr", "add", &address, "dev", bridge])?;
        run("ip", &["link", "set", bridge, "up"])?;
        Ok(node)
    }

    /// What was restored, before this node started, of an earlier run that ended without its
    /// teardown (killed): `None` when the machine was clean.
    pub fn reclaimed(&self) -> Option<&Teardown> {
        self.reclaimed.as_ref()
    }

    fn timed(&mut self, what: &str, since: Instant) {
        self.timings.push((what.to_owned(), since.elapsed()));
    }

    /// How long each start step took.
    pub fn timings(&self) -> &[(String, Duration)] {
        &self.timings
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// `<gateway>:<port>` of the node registry (plain HTTP), reachable from the host, containerd
    /// and pods alike.
    pub fn registry_host(&self) -> &str {
        &self.registry_host
    }

    /// The sandbox (pause) image containerd runs for each pod.
    pub fn sandbox_image(&self) -> &str {
        &self.sandbox_image
    }

    /// The node's scratch directory (logs of containerd, kubelet, ...).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the node registry on the bridge address and pushes the sandbox image to it.
    async fn start_registry(&mut self) -> Result<(), TestEnvError> {
        let since = Instant::now();
        let port = free_port_on(self.options.gateway)?;
        let host = format!("{}:{port}", self.options.gateway);
        let dir = self.dir.join("registry");
        std::fs::create_dir_all(&dir).map_err(io_error("create the node registry directory"))?;
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: testenv-node-{port}\n",
            dir.join("storage").display()
        );
        write_file(&dir.join("config.yml"), &config)?;
        let mut cmd = Command::new(&self.assets.registry);
        cmd.arg("serve").arg(dir.join("config.yml"));
        self.registry = Some(spawn("node-registry", cmd, &dir.join("registry.log"))?);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(&host).await.is_err() {
            if Instant::now() > deadline {
                return Err(other_error(
                    "start the node registry",
                    format!("nothing listens on {host}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.registry_host = host;
        self.timed("node registry", since);
        let since = Instant::now();
        // The sandbox: a busybox test image whose entrypoint prints a line and sleeps until SIGTERM.
        self.sandbox_image = format!("{}/testenv/pause:1", self.registry_host);
        self.push_test_image("pause", &self.sandbox_image.clone())?;
        self.timed("sandbox image built and pushed", since);
        Ok(())
    }

    /// Builds a busybox test image printing `message` with `hack/oci_image.py` and pushes it to
    /// `reference` (a repository of the node registry); returns the manifest digest.
    pub fn push_test_image(&self, message: &str, reference: &str) -> Result<String, TestEnvError> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/oci_image.py");
        let output = self
            .dir
            .join("oci")
            .join(format!("{:08x}", rand::random::<u32>()));
        let out = run(
            "python3",
            &[
                &script.to_string_lossy(),
                "test-image",
                "--message",
                message,
                "--output",
                &output.to_string_lossy(),
                "--push",
                reference,
            ],
        )?;
        Ok(out.lines().last().unwrap_or_default().trim().to_owned())
    }

    /// Builds the operator's image from `binary` (a release build of `imagestream-operator`) with
    /// `hack/oci_image.py operator` and pushes it to `reference` (a repository of the node
    /// registry); returns the manifest digest.
    pub fn push_operator_image(
        &self,
        binary: &Path,
        reference: &str,
    ) -> Result<String, TestEnvError> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/oci_image.py");
        let output = self
            .dir
            .join("oci")
            .join(format!("operator-{:08x}", rand::random::<u32>()));
        let out = run(
            "python3",
            &[
                &script.to_string_lossy(),
                "operator",
                "--binary",
                &binary.to_string_lossy(),
                "--output",
                &output.to_string_lossy(),
                "--push",
                reference,
            ],
        )?;
        Ok(out.lines().last().unwrap_or_default().trim().to_owned())
    }

    /// Writes containerd's configuration and starts it.
    async fn start_containerd(&mut self) -> Result<(), TestEnvError> {
        let since = Instant::now();
        let dir = self.dir.join("containerd");
        let certs = dir.join("certs.d");
        let hosts_dir = certs.join(&self.registry_host);
        std::fs::create_dir_all(&hosts_dir).map_err(io_error("create containerd's certs.d"))?;
        // The node registry speaks plain HTTP: containerd must be told so (config_path + hosts.toml).
        write_file(
            &hosts_dir.join("hosts.toml"),
            &format!(
                "server = \"http://{host}\"\n\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
                host = self.registry_host
            ),
        )?;
        let cni_conf = self.dir.join("cni/net.d");
        std::fs::create_dir_all(&cni_conf)
            .map_err(io_error("create the CNI configuration directory"))?;
        write_file(
            &cni_conf.join("10-testenv.conflist"),
            &serde_json::json!({
                "cniVersion": "0.4.0",
                "name": "testenv",
                "plugins": [{
                    "type": "bridge",
                    "bridge": self.options.bridge,
                    "isGateway": true,
                    // The default route via the bridge: Service IPs (kube-proxy DNAT on the host) and
                    // the API server on the bridge address.
                    "isDefaultGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.options.subnet(), "gateway": self.options.gateway.to_string()}]],
                        "dataDir": self.dir.join("cni/ipam").to_string_lossy(),
                    }
                }]
            })
            .to_string(),
        )?;
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            socket = self.containerd_socket.display(),
            sandbox = self.sandbox_image,
            cni_conf = cni_conf.display(),
            certs = certs.display(),
        );
        write_file(&dir.join("config.toml"), &config)?;
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(dir.join("config.toml"));
        let process = spawn("containerd", cmd, &self.dir.join("containerd.log"))?;
        self.processes.push(process);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.ctr(&["version"]).is_ok() {
                break;
            }
            if let Some(status) = self.processes.last_mut().and_then(|p| p.exited()) {
                return Err(TestEnvError::Exited {
                    program: "containerd".into(),
                    status: status.to_string(),
                    log_tail: self
                        .processes
                        .last()
                        .map(|p| p.log_tail(20))
                        .unwrap_or_default(),
                });
            }
            if Instant::now() > deadline {
                return Err(other_error(
                    "start containerd",
                    "its socket does not answer",
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.timed("containerd", since);
        Ok(())
    }

    fn ctr(&self, args: &[&str]) -> Result<String, TestEnvError> {
        let socket = self.containerd_socket.to_string_lossy().into_owned();
        let mut all = vec!["--address", &socket, "--namespace", "k8s.io"];
        all.extend_from_slice(args);
        run("ctr", &all)
    }

    /// Starts kubelet, kube-proxy, kube-scheduler and kube-controller-manager.
    fn start_kubernetes(&mut self, pki: &Path) -> Result<(), TestEnvError> {
        let gateway = self.options.gateway.to_string();
        let kubeconfig = format!("--kubeconfig={}", self.kubeconfig.display());
        let kubelet_dir = self.dir.join("kubelet");
        std::fs::create_dir_all(&kubelet_dir)
            .map_err(io_error("create kubelet's root directory"))?;
        let mut kubelet = Command::new(&self.assets.kubelet);
        kubelet
            .arg(&kubeconfig)
            .arg(format!("--root-dir={}", kubelet_dir.display()))
            .arg(format!("--cert-dir={}", kubelet_dir.join("pki").display()))
            .arg(format!(
                "--volume-plugin-dir={}",
                kubelet_dir.join("volume-plugins").display()
            ))
            .arg("--container-runtime=remote")
            .arg(format!(
                "--container-runtime-endpoint=unix://{}",
                self.containerd_socket.display()
            ))
            .arg(format!(
                "--pod-infra-container-image={}",
                self.sandbox_image
            ))
            // cAdvisor's own containerd client (default /run/containerd/containerd.sock).
            .arg(format!("--containerd={}", self.containerd_socket.display()))
            .arg("--cgroup-driver=cgroupfs")
            // No kubepods cgroup hierarchy (nothing to clean up, and the memory cgroup here is nested).
            .arg("--cgroups-per-qos=false")
            .arg("--enforce-node-allocatable=")
            .arg("--fail-swap-on=false")
            // root lacks CAP_SYS_RESOURCE: kubelet cannot lower its own oom_score_adj.
            .arg("--oom-score-adj=0")
            .arg(format!("--hostname-override={}", self.options.name))
            .arg(format!("--node-ip={gateway}"))
            .arg(format!("--address={gateway}"))
            .arg(format!("--port={}", free_port_on(self.options.gateway)?))
            .arg("--healthz-port=0")
            .arg("--read-only-port=0")
            // Its API (exec, logs, the pods' list) on the bridge address pods reach: no anonymous
            // requests, clients by certificate of the environment's CA (the API server's), each
            // request authorised by the API server (SubjectAccessReview).
            .arg("--anonymous-auth=false")
            .arg(format!("--client-ca-file={}", pki.join("ca.crt").display()))
            .arg("--authorization-mode=Webhook")
            .arg("--cluster-domain=cluster.local")
            .arg("--eviction-hard=memory.available<100Mi,nodefs.available<1%,imagefs.available<1%")
            // Report Ready within seconds of registering (default 10 s).
            .arg("--node-status-update-frequency=2s")
            .arg("--image-gc-high-threshold=100")
            .arg("--image-gc-low-threshold=99")
            .arg("--v=1");
        let process = spawn("kubelet", kubelet, &self.dir.join("kubelet.log"))?;
        self.processes.push(process);

        let mut proxy = Command::new(&self.assets.kube_proxy);
        proxy
            .arg(&kubeconfig)
            .arg(format!("--hostname-override={}", self.options.name))
            .arg("--proxy-mode=iptables")
            .arg(format!("--cluster-cidr={}", self.options.subnet()))
            .arg(format!("--bind-address={gateway}"))
            .arg(format!(
                "--healthz-bind-address=127.0.0.1:{}",
                super::free_port()?
            ))
            .arg(format!(
                "--metrics-bind-address=127.0.0.1:{}",
                super::free_port()?
            ))
            // Leave the machine's conntrack settings alone.
            .arg("--conntrack-max-per-core=0")
            .arg("--conntrack-tcp-timeout-established=0")
            .arg("--conntrack-tcp-timeout-close-wait=0")
            .arg("--oom-score-adj=0")
            .arg("--v=0");
        let process = spawn("kube-proxy", proxy, &self.dir.join("kube-proxy.log"))?;
        self.processes.push(process);

        let mut scheduler = kube_component(&self.assets.kube_scheduler, &self.kubeconfig)?;
        scheduler.arg("--v=0");
        let process = spawn(
            "kube-scheduler",
            scheduler,
            &self.dir.join("kube-scheduler.log"),
        )?;
        self.processes.push(process);

        let mut manager = kube_component(&self.assets.kube_controller_manager, &self.kubeconfig)?;
        manager
            .arg(format!("--controllers={NODE_CONTROLLERS}"))
            // Notice the Ready node (and drop its not-ready taint) within a second (default 5 s).
            .arg("--node-monitor-period=1s")
            .arg(format!(
                "--service-account-private-key-file={}",
                pki.join("sa.key").display()
            ))
            .arg(format!("--root-ca-file={}", pki.join("ca.crt").display()))
            .arg("--v=1");
        let process = spawn(
            "kube-controller-manager",
            manager,
            &self.dir.join("kube-controller-manager.log"),
        )?;
        self.processes.push(process);
        Ok(())
    }

    /// Fails when one of the node's programs has exited.
    fn check_running(&mut self) -> Result<(), TestEnvError> {
        for process in &mut self.processes {
            if let Some(status) = process.exited() {
                return Err(TestEnvError::Exited {
                    program: process.name().to_owned(),
                    status: status.to_string(),
                    log_tail: process.log_tail(25),
                });
            }
        }
        Ok(())
    }

    /// Waits until the node is Ready without the not-ready taint, and the `default` ServiceAccount
    /// of `default` has its token (pods cannot be created before).
    async fn wait_ready(&mut self) -> Result<(), TestEnvError> {
        let since = Instant::now();
        let client = client_from_kubeconfig(&self.kubeconfig).await?;
        let nodes: Api<NodeObject> = Api::all(client.clone());
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        let deadline = Instant::now() + NODE_READY_TIMEOUT;
        let mut registered = false;
        let mut ready = false;
        loop {
            self.check_running()?;
            let last = match nodes.get_opt(&self.options.name).await {
                Ok(Some(node)) => {
                    if !registered {
                        registered = true;
                        self.timed("node registered", since);
                    }
                    let is_ready = node
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| {
                            c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    let tainted = node
                        .spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .is_some_and(|t| {
                            t.iter().any(|t| t.key.starts_with("node.kubernetes.io/"))
                        });
                    if is_ready && !ready {
                        ready = true;
                        self.timed("node Ready", since);
                    }
                    let account = accounts.get_opt("default").await.ok().flatten();
                    let token = account
                        .as_ref()
                        .and_then(|a| a.secrets.as_ref())
                        .is_some_and(|s| !s.is_empty());
                    if is_ready && !tainted && token {
                        self.timed("node Ready, untainted, default token", since);
                        return Ok(());
                    }
                    format!("Ready={is_ready} tainted={tainted} default-token={token}")
                }
                Ok(None) => "not registered".to_owned(),
                Err(err) => err.to_string(),
            };
            if Instant::now() > deadline {
                let log_tail = self
                    .processes
                    .iter()
                    .find(|p| p.name() == "kubelet")
                    .map(|p| p.log_tail(25))
                    .unwrap_or_default();
                return Err(TestEnvError::NotReady {
                    program: format!("node {}", self.options.name),
                    waited: NODE_READY_TIMEOUT,
                    last,
                    log_tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops everything the node started and undoes what it changed on the machine (see the module
    /// documentation). Returns what it did and what could not be undone (nothing when all went
    /// well). Idempotent.
    pub async fn teardown(&mut self) -> Teardown {
        let mut log = Teardown::default();
        if self.torn_down {
            return log;
        }
        self.torn_down = true;
        // 1. No new pods: stop the scheduler and the controllers, then delete every pod at once so
        //    kubelet stops their sandboxes through CRI (CNI DEL, network namespace removed).
        for name in ["kube-controller-manager", "kube-scheduler"] {
            if let Some(p) = self.processes.iter_mut().find(|p| p.name() == name) {
                p.kill();
            }
        }
        if self.processes.iter().any(|p| p.name() == "kubelet") {
            match self.delete_pods().await {
                Ok(count) => log
                    .done
                    .push(format!("deleted {count} pods; their sandboxes stopped")),
                Err(err) => log.problems.push(format!("delete pods: {err}")),
            }
        }
        // 2. kubelet and kube-proxy stop; kube-proxy removes its rules.
        for name in ["kubelet", "kube-proxy"] {
            if let Some(p) = self.processes.iter_mut().find(|p| p.name() == name) {
                p.kill();
            }
        }
        // (`kube-proxy --cleanup` is not used: it also cleans IPVS and fails without `ipset`; the
        // iptables chains are removed below with kubelet's.)
        // 3. Remaining containers and sandboxes: kill and delete their tasks, so the shims exit.
        if self.processes.iter().any(|p| p.name() == "containerd") {
            self.remove_containers(&mut log);
        }
        for p in self.processes.iter_mut().rev() {
            p.kill();
        }
        self.processes.clear();
        if let Some(mut registry) = self.registry.take() {
            registry.kill();
        }
        // 4. Shims and processes left in the node's cgroups, mounts, iptables chains, sysctls,
        //    the bridge, cgroups, directories; then the record goes and the lock is released.
        self.record.restore(&mut log);
        if let Some(lock) = self.lock.take()
            && log.problems.is_empty()
        {
            lock.clear();
        }
        log
    }

    async fn delete_pods(&self) -> Result<usize, TestEnvError> {
        let client = client_from_kubeconfig(&self.kubeconfig).await?;
        let pods: Api<Pod> = Api::all(client.clone());
        let list =
            pods.list(&ListParams::default())
                .await
                .map_err(|source| TestEnvError::Kube {
                    what: "list pods".into(),
                    source,
                })?;
        let count = list.items.len();
        for pod in list.items {
            let (Some(namespace), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
                continue;
            };
            let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
        }
        // kubelet stops the sandboxes of deleted pods within seconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let running = self
                .ctr(&["tasks", "list"])
                .map(|all| all.lines().filter(|l| l.contains("RUNNING")).count())
                .unwrap_or(0);
            if running == 0 {
                return Ok(count);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(other_error(
            "stop pod sandboxes",
            "tasks still running after 30 s",
        ))
    }

    /// Kills and deletes every task and container of the node's containerd. kubelet and
    /// containerd may remove some of them meanwhile: one that is gone already counts as removed;
    /// only what is still listed at the end is a problem.
    fn remove_containers(&self, log: &mut Teardown) {
        let gone = |result: &Result<String, TestEnvError>| match result {
            Ok(_) => true,
            Err(err) => err.to_string().contains("not found"),
        };
        let tasks = self.ctr(&["tasks", "list", "--quiet"]).unwrap_or_default();
        for id in tasks.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for id in tasks.lines().map(str::trim).filter(|l| !l.is_empty()) {
            while !gone(&self.ctr(&["tasks", "delete", "--force", id])) && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let containers = self
            .ctr(&["containers", "list", "--quiet"])
            .unwrap_or_default();
        let mut removed = 0;
        for id in containers.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if gone(&self.ctr(&["containers", "delete", id])) {
                removed += 1;
            }
        }
        log.done.push(format!(
            "deleted {removed} containerd containers (with their tasks)"
        ));
        let left = self
            .ctr(&["containers", "list", "--quiet"])
            .unwrap_or_default();
        let left: Vec<&str> = left
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if !left.is_empty() {
            log.problems
                .push(format!("containerd containers left: {left:?}"));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.torn_down {
            let log = block_on_own_runtime(self.teardown());
            for problem in log.problems {
                eprintln!("node teardown: {problem}");
            }
        }
    }
}

/// Runs `future` to completion on a small runtime of its own (used from `Drop`).
fn block_on_own_runtime<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime can be built")
                    .block_on(future)
            })
            .join()
            .expect("the teardown thread does not panic")
    })
}

impl TestEnv {
    /// Starts an environment with a node: the bridge, the control plane listening on the bridge
    /// address with the ServiceAccount admission plugin, a registry (127.0.0.1, as usual), the node
    /// registry on the bridge address with the sandbox image, containerd, kubelet, kube-proxy,
    /// kube-scheduler and kube-controller-manager with [`NODE_CONTROLLERS`]; returns when the node
    /// is Ready and untainted. Call [`Node::teardown`] before exiting.
    pub async fn start_with_node(
        crds: &[CustomResourceDefinition],
        options: &NodeOptions,
    ) -> Result<(TestEnv, Node), TestEnvError> {
        install_crypto_provider();
        let dir = scratch_dir()?;
        let assets = Assets::from_environment()?;
        let node_assets = NodeAssets::find(&assets)?;
        let kubeconfig = dir.join("kubeconfig");
        // Declared before the node, so that on an early return (or when this future is dropped)
        // the node is torn down while the API server still answers.
        let plane: ControlPlane;
        let registry: Registry;
        let mut node = Node::prepare(&dir, options, node_assets, &kubeconfig)?;
        let since = Instant::now();
        plane = ControlPlane::start_with(
            &dir,
            &assets.etcd,
            &assets.kube_apiserver,
            &ControlPlaneOptions {
                bind_address: Some(options.gateway),
                service_account_admission: true,
            },
        )
        .await?;
        node.timed("control plane", since);
        let since = Instant::now();
        registry = Registry::start(
            &registry_binary(Some(&assets))?,
            &dir.join("registry"),
            &RegistryOptions::default(),
        )
        .await?;
        node.timed("registry", since);
        node.start_registry().await?;
        node.start_containerd().await?;
        node.start_kubernetes(&dir.join("pki"))?;
        node.wait_ready().await?;
        let env = TestEnv {
            dir,
            kubeconfig,
            assets: Some(assets),
            control_plane: Some(std::sync::Mutex::new(plane)),
            registry,
        };
        if let Err(err) = env.install_crds(crds).await {
            node.teardown().await;
            return Err(err);
        }
        Ok((env, node))
    }
}

pub use super::host::host_leftovers;
