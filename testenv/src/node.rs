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
//! One node per machine at a time: the bridge, `/var/log/pods` and the iptables chains are
//! machine-wide. Needs root (it creates a bridge and runs kubelet).
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

use super::control_plane::{ControlPlane, ControlPlaneOptions};
use super::process::ManagedProcess;
use super::{
    Assets, Registry, RegistryOptions, TestEnv, TestEnvError, client_from_kubeconfig,
    install_crypto_provider, registry_binary, scratch_dir, write_file,
};

/// How long the node may take to become Ready.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The controllers kube-controller-manager runs for a node: workloads, `nodelifecycle` (removes the
/// `node.kubernetes.io/not-ready` taint once the node is Ready), `endpoint`/`endpointslice` (Services),
/// `serviceaccount`/`serviceaccount-token` (the `default` ServiceAccount of each namespace and its
/// token Secret, which the ServiceAccount admission plugin mounts into pods), `namespace` and `podgc`.
pub const NODE_CONTROLLERS: &str = "deployment,replicaset,statefulset,daemonset,job,cronjob,garbagecollector,nodelifecycle,endpoint,endpointslice,serviceaccount,serviceaccount-token,namespace,podgc";

/// Sysctls kubelet (`vm.*`, `kernel.*`), kube-proxy (`route_localnet`, conntrack) and the bridge
/// plugin (`ip_forward`) may set; written back on teardown.
const SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// Fixed paths kubelet, containerd and CNI use whatever their root directories are; removed on
/// teardown when they did not exist before the node started.
const FIXED_DIRS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/var/log/pods",
    "/var/log/containers",
    "/run/containerd",
    "/var/run/netns",
    "/etc/cni",
    "/opt/cni",
    "/opt/containerd",
    "/usr/libexec/kubernetes",
];

/// Where mounts of a node may be left; everything mounted under them is unmounted on teardown.
const MOUNT_ROOTS: &[&str] = &[
    "/var/lib/kubelet",
    "/run/containerd",
    "/var/run/netns",
    "/run/netns",
];

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
#[derive(Debug, Default)]
pub struct Teardown {
    /// Each step that changed something, for logs.
    pub done: Vec<String>,
    /// What could not be undone; empty when the machine is as before.
    pub problems: Vec<String>,
}

/// What the machine looked like before the node started, to put it back.
#[derive(Debug, Default)]
struct HostSnapshot {
    sysctls: Vec<(String, String)>,
    missing_dirs: Vec<PathBuf>,
    /// `(binary, table, chain)` of the `KUBE-*`/`CNI-*` chains that existed before.
    chains: Vec<(String, String, String)>,
    bridge_created: bool,
    /// Whether `/sys/fs/cgroup/<controller>/k8s.io` (containerd's cgroup parent for pods when
    /// kubelet runs with `--cgroups-per-qos=false`) existed before, per controller directory.
    missing_cgroups: Vec<PathBuf>,
}

/// A running node (see the module documentation). Stops and undoes everything on
/// [`Node::teardown`] or when dropped.
pub struct Node {
    options: NodeOptions,
    dir: PathBuf,
    kubeconfig: PathBuf,
    assets: NodeAssets,
    snapshot: HostSnapshot,
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

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestEnvError {
    let what = what.into();
    move |source| TestEnvError::Io { what, source }
}

fn other_error(what: impl Into<String>, message: impl Into<String>) -> TestEnvError {
    TestEnvError::Io {
        what: what.into(),
        source: std::io::Error::other(message.into()),
    }
}

/// Runs a command to completion; its stdout, or an error with its stderr.
fn run(program: &str, args: &[&str]) -> Result<String, TestEnvError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(io_error(format!("run {program}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(other_error(
            format!("run {program} {}", args.join(" ")),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
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

const IPTABLES: &[&str] = &["iptables", "ip6tables"];
const TABLES: &[&str] = &["filter", "nat", "mangle"];

fn is_node_chain(chain: &str) -> bool {
    chain.starts_with("KUBE-") || chain.starts_with("CNI-")
}

/// The `KUBE-*`/`CNI-*` chains of every table, as `(binary, table, chain)`.
fn node_chains() -> Vec<(String, String, String)> {
    let mut chains = Vec::new();
    for binary in IPTABLES {
        for table in TABLES {
            let Ok(rules) = run(binary, &["-t", table, "-S"]) else {
                continue;
            };
            for line in rules.lines() {
                if let Some(chain) = line.strip_prefix("-N ")
                    && is_node_chain(chain)
                {
                    chains.push((binary.to_string(), table.to_string(), chain.to_owned()));
                }
            }
        }
    }
    chains
}

/// The mount points under `roots`, in mount order.
fn mounts_under(roots: &[PathBuf]) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(field.replace("\\040", " ")))
        .filter(|path| roots.iter().any(|root| path.starts_with(root)))
        .collect()
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
        let mut snapshot = HostSnapshot::default();
        for name in SYSCTLS {
            if let Ok(value) = std::fs::read_to_string(Path::new("/proc/sys").join(name)) {
                snapshot
                    .sysctls
                    .push((name.to_string(), value.trim().to_owned()));
            }
        }
        snapshot.missing_dirs = FIXED_DIRS
            .iter()
            .map(PathBuf::from)
            .filter(|dir| !dir.exists())
            .collect();
        snapshot.chains = node_chains();
        snapshot.missing_cgroups = pod_cgroup_parents()
            .into_iter()
            .filter(|dir| !dir.exists())
            .collect();
        let dir = dir.join("node");
        std::fs::create_dir_all(&dir).map_err(io_error("create the node directory"))?;
        let mut node = Self {
            options: options.clone(),
            containerd_socket: dir.join("containerd.sock"),
            dir,
            kubeconfig: kubeconfig.to_owned(),
            assets,
            snapshot,
            registry: None,
            registry_host: String::new(),
            sandbox_image: String::new(),
            processes: Vec::new(),
            torn_down: false,
            timings: Vec::new(),
        };
        let bridge = options.bridge.as_str();
        if Path::new("/sys/class/net").join(bridge).exists() {
            return Err(other_error(
                format!("create bridge {bridge}"),
                "it exists already (left by an earlier run? `ip link delete` it)",
            ));
        }
        run("ip", &["link", "add", bridge, "type", "bridge"])?;
        node.snapshot.bridge_created = true;
        let address = format!("{}/{}", options.gateway, options.prefix_len);
        run("ip", &["addr", "add", &address, "dev", bridge])?;
        run("ip", &["link", "set", bridge, "up"])?;
        Ok(node)
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

        let mut scheduler = Command::new(&self.assets.kube_scheduler);
        scheduler
            .arg(&kubeconfig)
            .arg(format!(
                "--authentication-kubeconfig={}",
                self.kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                self.kubeconfig.display()
            ))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", super::free_port()?))
            .arg("--port=0")
            .arg("--leader-elect=false")
            .arg("--v=0");
        let process = spawn(
            "kube-scheduler",
            scheduler,
            &self.dir.join("kube-scheduler.log"),
        )?;
        self.processes.push(process);

        let mut manager = Command::new(&self.assets.kube_controller_manager);
        manager
            .arg(&kubeconfig)
            .arg(format!(
                "--authentication-kubeconfig={}",
                self.kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                self.kubeconfig.display()
            ))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", super::free_port()?))
            .arg("--port=0")
            .arg("--leader-elect=false")
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
        self.kill_leftover_shims(&mut log);
        // 4. Mounts, iptables chains, sysctls, the bridge, directories.
        self.unmount(&mut log);
        self.remove_chains(&mut log);
        for (name, value) in &self.snapshot.sysctls {
            let path = Path::new("/proc/sys").join(name);
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            if now.trim() != value {
                match std::fs::write(&path, value) {
                    Ok(()) => log
                        .done
                        .push(format!("sysctl {name}: {} -> {value}", now.trim())),
                    Err(err) => log
                        .problems
                        .push(format!("restore sysctl {name}={value}: {err}")),
                }
            }
        }
        if self.snapshot.bridge_created {
            match run("ip", &["link", "delete", &self.options.bridge]) {
                Ok(_) => log
                    .done
                    .push(format!("deleted bridge {}", self.options.bridge)),
                Err(err) => log.problems.push(err.to_string()),
            }
            self.snapshot.bridge_created = false;
        }
        for dir in &self.snapshot.missing_cgroups {
            if !dir.exists() {
                continue;
            }
            match remove_cgroup_tree(dir) {
                Ok(()) => log.done.push(format!("removed cgroup {}", dir.display())),
                Err(err) => log
                    .problems
                    .push(format!("remove cgroup {}: {err}", dir.display())),
            }
        }
        for dir in &self.snapshot.missing_dirs {
            if dir.exists() {
                match std::fs::remove_dir_all(dir) {
                    Ok(()) => log.done.push(format!("removed {}", dir.display())),
                    Err(err) => log
                        .problems
                        .push(format!("remove {}: {err}", dir.display())),
                }
            }
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

    fn remove_containers(&self, log: &mut Teardown) {
        let tasks = self.ctr(&["tasks", "list", "--quiet"]).unwrap_or_default();
        for id in tasks.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for id in tasks.lines().map(str::trim).filter(|l| !l.is_empty()) {
            while self.ctr(&["tasks", "delete", "--force", id]).is_err()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let containers = self
            .ctr(&["containers", "list", "--quiet"])
            .unwrap_or_default();
        let mut removed = 0;
        for id in containers.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match self.ctr(&["containers", "delete", id]) {
                Ok(_) => removed += 1,
                Err(err) => log.problems.push(err.to_string()),
            }
        }
        log.done.push(format!(
            "deleted {removed} containerd containers (with their tasks)"
        ));
    }

    /// Shims of this containerd that outlived it (they are not its children): killed by pid.
    fn kill_leftover_shims(&self, log: &mut Teardown) {
        let socket = self.containerd_socket.to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("containerd-shim") && cmdline.contains(&socket) {
                log.done
                    .push(format!("killed leftover shim {pid}: {cmdline}"));
                let _ = run("kill", &["-KILL", &pid.to_string()]);
            }
        }
    }

    fn unmount(&self, log: &mut Teardown) {
        let mut roots: Vec<PathBuf> = MOUNT_ROOTS.iter().map(PathBuf::from).collect();
        roots.push(self.dir.clone());
        let before = mounts_under(&roots);
        if !before.is_empty() {
            log.done.push(format!("unmounting {before:?}"));
        }
        for attempt in 0..3 {
            let mounts = mounts_under(&roots);
            if mounts.is_empty() {
                return;
            }
            for mount in mounts.iter().rev() {
                let path = mount.to_string_lossy();
                if run("umount", &[&path]).is_err() && attempt == 2 {
                    let _ = run("umount", &["--lazy", &path]);
                }
            }
        }
        let left = mounts_under(&roots);
        if !left.is_empty() {
            log.problems.push(format!("mounts left: {left:?}"));
        }
    }

    fn remove_chains(&self, log: &mut Teardown) {
        let created: Vec<_> = node_chains()
            .into_iter()
            .filter(|c| !self.snapshot.chains.contains(c))
            .collect();
        for (binary, table, chain) in &created {
            // Rules elsewhere that jump to the chain go first.
            let rules = run(binary, &["-t", table, "-S"]).unwrap_or_default();
            for rule in rules.lines() {
                let Some(rest) = rule.strip_prefix("-A ") else {
                    continue;
                };
                let owner = rest.split(' ').next().unwrap_or_default();
                let jumps = rest.ends_with(&format!("-j {chain}"))
                    || rest.contains(&format!("-j {chain} "))
                    || rest.contains(&format!("-g {chain}"));
                if jumps
                    && !created
                        .iter()
                        .any(|c| c.1 == *table && c.2 == owner && c.0 == *binary)
                {
                    let args: Vec<String> = ["-t", table, "-D"]
                        .iter()
                        .map(|s| s.to_string())
                        .chain(shell_words(rest))
                        .collect();
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    if let Err(err) = run(binary, &args) {
                        log.problems.push(err.to_string());
                    }
                }
            }
        }
        for (binary, table, chain) in &created {
            let _ = run(binary, &["-t", table, "-F", chain]);
        }
        for (binary, table, chain) in &created {
            if let Err(err) = run(binary, &["-t", table, "-X", chain]) {
                log.problems.push(err.to_string());
            }
        }
        if !created.is_empty() {
            let names: Vec<String> = created
                .iter()
                .map(|(binary, table, chain)| format!("{binary}/{table}/{chain}"))
                .collect();
            log.done
                .push(format!("removed iptables chains {}", names.join(" ")));
        }
    }
}

/// `/sys/fs/cgroup/<controller>/k8s.io` for every cgroup v1 controller (and the v2 or hybrid
/// `unified` tree): where runc puts pod containers (containerd's default cgroup parent) when kubelet
/// runs with `--cgroups-per-qos=false`.
fn pod_cgroup_parents() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().join("k8s.io"))
        .collect();
    dirs.push(PathBuf::from("/sys/fs/cgroup/k8s.io"));
    dirs
}

/// Removes an (empty of processes) cgroup directory and its children, deepest first.
fn remove_cgroup_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path())?;
        }
    }
    std::fs::remove_dir(dir)
}

/// Splits an `iptables -S` rule into arguments (double-quoted words, as in comments, stay whole).
fn shell_words(rule: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            _ => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
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

/// What a node changed on the machine and did not undo: `KUBE-`/`CNI-` iptables rules, mounts
/// under the node's directories, its fixed directories and its bridge. Empty after a clean
/// teardown.
pub fn host_leftovers(bridge: &str) -> Vec<String> {
    let mut left = Vec::new();
    for binary in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle"] {
            let out = std::process::Command::new(binary)
                .args(["-t", table, "-S"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            left.extend(
                out.lines()
                    .filter(|l| l.contains("KUBE-") || l.contains("CNI-"))
                    .map(|l| format!("{binary} -t {table}: {l}")),
            );
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    left.extend(
        mounts
            .lines()
            .filter(|l| {
                [
                    "/var/lib/kubelet",
                    "/run/containerd",
                    "/run/netns",
                    "imagestream-operator-testenv",
                ]
                .iter()
                .any(|p| l.contains(p))
            })
            .map(|l| format!("mount: {l}")),
    );
    for dir in [
        "/var/lib/kubelet",
        "/var/lib/cni",
        "/var/log/pods",
        "/run/containerd",
    ] {
        if std::path::Path::new(dir).exists() {
            left.push(format!("directory {dir}"));
        }
    }
    if std::path::Path::new("/sys/class/net").join(bridge).exists() {
        left.push(format!("bridge {bridge}"));
    }
    left
}
