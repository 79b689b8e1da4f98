//! What a node changes on the machine, and how it is put back: a [`HostRecord`] of the machine's
//! state taken before the node starts, kept in a file under `/run` for as long as the node runs, and
//! [`HostRecord::restore`], which undoes everything the node may have changed.
//!
//! The file is what makes a killed run recoverable: a run that ends without its teardown (SIGKILL,
//! a timeout, a power cut of the test process) leaves containerd's shims and their containers
//! running, mounts, iptables chains and the bridge behind, and its record. The next node takes the
//! machine's lock ([`MachineLock`]), finds the record and restores it before it starts, so it
//! starts clean.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Teardown, TestEnvError};

/// Where the lock and the record of the machine's node live: a tmpfs, so a reboot (which also
/// clears what a node changes) clears them too.
pub const RECORD_DIR: &str = "/run/imagestream-testenv";

/// Sysctls kubelet (`vm.*`, `kernel.*`), kube-proxy (`route_localnet`, conntrack) and the bridge
/// plugin (`ip_forward`) may set; written back on restore.
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
/// restore when they did not exist before the node started.
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

/// Where mounts of a node may be left; everything mounted under them is unmounted on restore.
const MOUNT_ROOTS: &[&str] = &[
    "/var/lib/kubelet",
    "/run/containerd",
    "/var/run/netns",
    "/run/netns",
];

/// The prefix of every scratch directory of the environment (under the temporary directory).
pub const SCRATCH_PREFIX: &str = "imagestream-operator-testenv-";

pub fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestEnvError {
    let what = what.into();
    move |source| TestEnvError::Io { what, source }
}

pub fn other_error(what: impl Into<String>, message: impl Into<String>) -> TestEnvError {
    TestEnvError::Io {
        what: what.into(),
        source: std::io::Error::other(message.into()),
    }
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, TestEnvError> {
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

/// The machine's state before a node started, and where that node kept its own files.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    /// The process that started the node.
    pub pid: u32,
    /// The environment's scratch directory (removed when a killed run is reclaimed).
    pub scratch: PathBuf,
    /// The node's directory (containerd's root and state, kubelet's root): unmounted on restore.
    pub node_dir: PathBuf,
    /// containerd's socket: its shims carry it on their command line.
    pub containerd_socket: PathBuf,
    /// The bridge the node creates (it must not exist before).
    pub bridge: String,
    /// `(name under /proc/sys, value)` of [`SYSCTLS`].
    pub sysctls: Vec<(String, String)>,
    /// [`FIXED_DIRS`] that did not exist.
    pub missing_dirs: Vec<PathBuf>,
    /// `(binary, table, chain)` of the `KUBE-*`/`CNI-*` chains that existed.
    pub chains: Vec<(String, String, String)>,
    /// `/sys/fs/cgroup/<controller>/k8s.io` (containerd's cgroup parent for pods when kubelet runs
    /// with `--cgroups-per-qos=false`) that did not exist, per controller directory.
    pub missing_cgroups: Vec<PathBuf>,
}

impl HostRecord {
    /// Records the machine's state now, for a node keeping its files in `node_dir` (under
    /// `scratch`) and attaching pods to `bridge`.
    pub fn capture(
        scratch: &Path,
        node_dir: &Path,
        containerd_socket: &Path,
        bridge: &str,
    ) -> Self {
        Self {
            pid: std::process::id(),
            scratch: scratch.to_owned(),
            node_dir: node_dir.to_owned(),
            containerd_socket: containerd_socket.to_owned(),
            bridge: bridge.to_owned(),
            sysctls: SYSCTLS
                .iter()
                .filter_map(|name| {
                    std::fs::read_to_string(Path::new("/proc/sys").join(name))
                        .ok()
                        .map(|value| (name.to_string(), value.trim().to_owned()))
                })
                .collect(),
            missing_dirs: FIXED_DIRS
                .iter()
                .map(PathBuf::from)
                .filter(|dir| !dir.exists())
                .collect(),
            chains: node_chains(),
            missing_cgroups: pod_cgroup_parents()
                .into_iter()
                .filter(|dir| !dir.exists())
                .collect(),
        }
    }

    /// Puts the machine back as recorded, once the node's own processes have stopped: kills the
    /// shims of its containerd and every process left in the cgroups it created, unmounts what is
    /// mounted under its directories, removes the iptables chains that did not exist (and the
    /// rules jumping to them), writes the sysctls back, deletes the bridge, and removes the cgroups
    /// and fixed directories that did not exist. Records what it did and what it could not do.
    pub fn restore(&self, log: &mut Teardown) {
        self.kill_leftover_shims(log);
        self.kill_cgroup_processes(log);
        self.unmount(log);
        self.remove_chains(log);
        for (name, value) in &self.sysctls {
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
        if Path::new("/sys/class/net").join(&self.bridge).exists() {
            match run("ip", &["link", "delete", &self.bridge]) {
                Ok(_) => log.done.push(format!("deleted bridge {}", self.bridge)),
                Err(err) => log.problems.push(err.to_string()),
            }
        }
        for dir in &self.missing_cgroups {
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
        for dir in &self.missing_dirs {
            if dir.exists() {
                match std::fs::remove_dir_all(dir) {
                    Ok(()) => log.done.push(format!("removed {}", dir.display())),
                    Err(err) => log
                        .problems
                        .push(format!("remove {}: {err}", dir.display())),
                }
            }
        }
    }

    /// Shims of the node's containerd that outlived it (they are not its children): killed by pid.
    fn kill_leftover_shims(&self, log: &mut Teardown) {
        let socket = self.containerd_socket.to_string_lossy().into_owned();
        for (pid, cmdline) in processes() {
            if cmdline.contains("containerd-shim") && cmdline.contains(&socket) {
                log.done
                    .push(format!("killed leftover shim {pid}: {cmdline}"));
                let _ = run("kill", &["-KILL", &pid.to_string()]);
            }
        }
    }

    /// Processes left in the cgroups the node's containers ran in (containers whose shim was
    /// killed): killed, and waited for (up to 10 s) so their cgroups can be removed.
    fn kill_cgroup_processes(&self, log: &mut Teardown) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut killed = std::collections::BTreeSet::new();
        loop {
            let pids: Vec<u32> = self
                .missing_cgroups
                .iter()
                .flat_map(|dir| cgroup_processes(dir))
                .collect();
            if pids.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                log.problems
                    .push(format!("processes left in the node's cgroups: {pids:?}"));
                return;
            }
            for pid in pids {
                // Killed once; a killed process stays listed until it has been reaped.
                if killed.insert(pid) {
                    let _ = run("kill", &["-KILL", &pid.to_string()]);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !killed.is_empty() {
            log.done.push(format!(
                "killed {} processes left in the node's cgroups: {killed:?}",
                killed.len()
            ));
        }
    }

    fn unmount(&self, log: &mut Teardown) {
        let mut roots: Vec<PathBuf> = MOUNT_ROOTS.iter().map(PathBuf::from).collect();
        roots.push(self.node_dir.clone());
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
            .filter(|c| !self.chains.contains(c))
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

    /// Removes the scratch directory of a killed run (only a directory of this environment: one
    /// named `imagestream-operator-testenv-*`).
    fn remove_scratch(&self, log: &mut Teardown) {
        let ours = self
            .scratch
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(SCRATCH_PREFIX));
        if ours && self.scratch.exists() {
            match std::fs::remove_dir_all(&self.scratch) {
                Ok(()) => log.done.push(format!("removed {}", self.scratch.display())),
                Err(err) => log
                    .problems
                    .push(format!("remove {}: {err}", self.scratch.display())),
            }
        }
    }
}

/// The machine's node lock: one node per machine (the bridge, the iptables chains and the fixed
/// directories are machine-wide). Held from before the node changes anything until its teardown
/// has restored the machine; the record of the running node sits beside it.
#[derive(Debug)]
pub struct MachineLock {
    _file: File,
    record: PathBuf,
}

impl MachineLock {
    /// Takes the lock, waiting up to `timeout` for another node of this machine to finish.
    pub fn acquire(timeout: Duration) -> Result<Self, TestEnvError> {
        let dir = Path::new(RECORD_DIR);
        std::fs::create_dir_all(dir).map_err(io_error(format!("create {RECORD_DIR}")))?;
        let path = dir.join("node.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(format!("open {}", path.display())))?;
        let deadline = Instant::now() + timeout;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = std::fs::read_to_string(dir.join("node.json"))
                        .ok()
                        .and_then(|text| serde_json::from_str::<HostRecord>(&text).ok())
                        .map(|r| format!("process {}", r.pid))
                        .unwrap_or_else(|| "another process".into());
                    return Err(other_error(
                        "start a node",
                        format!(
                            "{holder} runs a node on this machine (lock {} held for {timeout:?})",
                            path.display()
                        ),
                    ));
                }
                Err(std::fs::TryLockError::Error(err)) => {
                    return Err(io_error(format!("lock {}", path.display()))(err));
                }
            }
        }
        Ok(Self {
            _file: file,
            record: dir.join("node.json"),
        })
    }

    /// The record a run left behind when it ended without its teardown, if any.
    pub fn leftover(&self) -> Option<HostRecord> {
        let text = std::fs::read_to_string(&self.record).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Restores the machine as a killed run recorded it, removes that run's scratch directory
    /// and its record.
    pub fn reclaim(&self, record: &HostRecord) -> Teardown {
        let mut log = Teardown::default();
        record.restore(&mut log);
        record.remove_scratch(&mut log);
        if log.problems.is_empty() {
            self.clear();
        }
        log
    }

    /// Writes the record of the node about to start.
    pub fn write(&self, record: &HostRecord) -> Result<(), TestEnvError> {
        let text = serde_json::to_string_pretty(record)
            .map_err(|e| other_error(format!("write {}", self.record.display()), e.to_string()))?;
        std::fs::write(&self.record, text)
            .map_err(io_error(format!("write {}", self.record.display())))
    }

    /// Removes the record: the machine is as it was.
    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.record);
    }
}

/// `(pid, command line)` of every process.
fn processes() -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

/// Pids in the cgroup `dir` and every cgroup below it.
fn cgroup_processes(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(cgroup_processes(&entry.path()));
            }
        }
    }
    pids
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

/// What a node changed on the machine and did not undo: `KUBE-`/`CNI-` iptables rules, mounts
/// under the node's directories, its fixed directories, its bridge, the record of a running node,
/// and processes of an environment's scratch directory (other than this process and its
/// children). Empty after a clean teardown.
pub fn host_leftovers(bridge: &str) -> Vec<String> {
    let mut left = Vec::new();
    for binary in IPTABLES {
        for table in TABLES {
            let out = run(binary, &["-t", table, "-S"]).unwrap_or_default();
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
                MOUNT_ROOTS
                    .iter()
                    .copied()
                    .chain([SCRATCH_PREFIX])
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
        if Path::new(dir).exists() {
            left.push(format!("directory {dir}"));
        }
    }
    if Path::new("/sys/class/net").join(bridge).exists() {
        left.push(format!("bridge {bridge}"));
    }
    let record = Path::new(RECORD_DIR).join("node.json");
    if record.exists() {
        left.push(format!("record {}", record.display()));
    }
    for (pid, cmdline) in processes() {
        if cmdline.contains(SCRATCH_PREFIX) && cmdline.contains("containerd-shim") {
            left.push(format!("process {pid}: {cmdline}"));
        }
    }
    for dir in pod_cgroup_parents() {
        let pids = cgroup_processes(&dir);
        if !pids.is_empty() {
            left.push(format!("processes {pids:?} in cgroup {}", dir.display()));
        }
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iptables_rules_split_into_arguments_with_quoted_comments_whole() {
        assert_eq!(
            shell_words(
                r#"KUBE-SERVICES -m comment --comment "kube-system/dns:dns \"x\"" -j KUBE-SVC-1"#
            ),
            vec![
                "KUBE-SERVICES",
                "-m",
                "comment",
                "--comment",
                r#"kube-system/dns:dns "x""#,
                "-j",
                "KUBE-SVC-1"
            ]
        );
    }

    #[test]
    fn records_survive_a_round_trip_through_their_file_format() {
        let record = HostRecord {
            pid: 7,
            scratch: "/tmp/imagestream-operator-testenv-x".into(),
            node_dir: "/tmp/imagestream-operator-testenv-x/node".into(),
            containerd_socket: "/tmp/imagestream-operator-testenv-x/node/containerd.sock".into(),
            bridge: "istest0".into(),
            sysctls: vec![("net/ipv4/ip_forward".into(), "0".into())],
            missing_dirs: vec!["/var/lib/kubelet".into()],
            chains: vec![("iptables".into(), "nat".into(), "KUBE-X".into())],
            missing_cgroups: vec!["/sys/fs/cgroup/memory/k8s.io".into()],
        };
        let back: HostRecord =
            serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(format!("{back:?}"), format!("{record:?}"));
    }
}
