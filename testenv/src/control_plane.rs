//! A local Kubernetes control plane: etcd and kube-apiserver on 127.0.0.1 with free ports, an admin
//! token, a service-account signing key and a kubeconfig, optionally kube-controller-manager too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::ManagedProcess;
use super::tls::{TestCa, signing_key_pair_pem};
use super::{TestEnvError, free_port, write_file};

/// How long the control plane may take to become ready before the start is reported as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The user name of the admin token (member of `system:masters`).
pub const ADMIN_USER: &str = "testenv-admin";

/// Running etcd and kube-apiserver processes and the files that describe how to reach them.
pub struct ControlPlane {
    etcd: ManagedProcess,
    apiserver: ManagedProcess,
    controller_manager: Option<ManagedProcess>,
    url: String,
    etcd_url: String,
    kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver with their state under `dir`, and waits until the apiserver's
    /// `/readyz` answers `ok`.
    pub async fn start(
        dir: &Path,
        etcd_bin: &Path,
        apiserver_bin: &Path,
    ) -> Result<Self, TestEnvError> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| TestEnvError::Io { what, source }
        };
        let etcd_dir = dir.join("etcd");
        let pki = dir.join("pki");
        std::fs::create_dir_all(&pki).map_err(io("create the pki directory"))?;

        let client_port = free_port()?;
        let peer_port = free_port()?;
        let mut etcd_cmd = Command::new(etcd_bin);
        etcd_cmd
            .arg("--name=testenv")
            .arg(format!("--data-dir={}", etcd_dir.display()))
            .arg(format!(
                "--listen-client-urls=http://127.0.0.1:{client_port}"
            ))
            .arg(format!(
                "--advertise-client-urls=http://127.0.0.1:{client_port}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"
            ))
            .arg(format!(
                "--initial-cluster=testenv=http://127.0.0.1:{peer_port}"
            ))
            // Test data is thrown away; fsync only slows a shared machine down.
            .arg("--unsafe-no-fsync")
            .arg("--log-level=warn");
        let etcd =
            ManagedProcess::spawn("etcd", etcd_cmd, &dir.join("etcd.log")).map_err(|source| {
                TestEnvError::Spawn {
                    program: etcd_bin.to_owned(),
                    source,
                }
            })?;

        let ca = TestCa::new("imagestream-operator-testenv-ca")?;
        let serving = ca.issue(&["127.0.0.1", "localhost"])?;
        let ca_file = pki.join("ca.crt");
        write_file(&ca_file, ca.cert_pem())?;
        write_file(&pki.join("apiserver.crt"), &serving.cert_pem)?;
        write_file(&pki.join("apiserver.key"), &serving.key_pem)?;
        let (sa_private, sa_public) = signing_key_pair_pem()?;
        write_file(&pki.join("sa.key"), &sa_private)?;
        write_file(&pki.join("sa.pub"), &sa_public)?;
        let token = format!("{:032x}", rand::random::<u128>());
        write_file(
            &pki.join("tokens.csv"),
            &format!("{token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n"),
        )?;

        let port = free_port()?;
        let url = format!("https://127.0.0.1:{port}");
        let mut apiserver_cmd = Command::new(apiserver_bin);
        apiserver_cmd
            .arg(format!("--etcd-servers=http://127.0.0.1:{client_port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", pki.display()))
            .arg(format!(
                "--tls-cert-file={}",
                pki.join("apiserver.crt").display()
            ))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.join("apiserver.key").display()
            ))
            .arg(format!("--client-ca-file={}", ca_file.display()))
            .arg(format!(
                "--token-auth-file={}",
                pki.join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!(
                "--service-account-key-file={}",
                pki.join("sa.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.join("sa.key").display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--allow-privileged=true")
            .arg("--enable-priority-and-fairness=false")
            .arg("--v=0");
        let apiserver = ManagedProcess::spawn(
            "kube-apiserver",
            apiserver_cmd,
            &dir.join("kube-apiserver.log"),
        )
        .map_err(|source| TestEnvError::Spawn {
            program: apiserver_bin.to_owned(),
            source,
        })?;

        let kubeconfig = dir.join("kubeconfig");
        write_file(&kubeconfig, &kubeconfig_yaml(&url, &ca_file, &token))?;
        let mut plane = Self {
            etcd,
            apiserver,
            controller_manager: None,
            url,
            etcd_url: format!("http://127.0.0.1:{client_port}"),
            kubeconfig,
        };
        plane.wait_ready().await?;
        Ok(plane)
    }

    /// Polls `/readyz` until it answers, or reports why the apiserver did not come up.
    async fn wait_ready(&mut self) -> Result<(), TestEnvError> {
        let client = super::client_from_kubeconfig(&self.kubeconfig).await?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for process in [&mut self.etcd, &mut self.apiserver] {
                if let Some(status) = process.exited() {
                    return Err(TestEnvError::Exited {
                        program: process.name().to_owned(),
                        status: status.to_string(),
                        log_tail: process.log_tail(25),
                    });
                }
            }
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .expect("a static request is valid");
            let last = match client.request_text(request).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => body,
                Err(err) => err.to_string(),
            };
            if Instant::now() > deadline {
                return Err(TestEnvError::NotReady {
                    program: "kube-apiserver".into(),
                    waited: READY_TIMEOUT,
                    last,
                    log_tail: self.apiserver.log_tail(25),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Starts kube-controller-manager against this apiserver (deployment, replicaset, statefulset,
    /// daemonset, job and cronjob controllers), so that workload rollouts really happen.
    pub fn start_controller_manager(
        &mut self,
        dir: &Path,
        binary: &Path,
    ) -> Result<(), TestEnvError> {
        if self.controller_manager.is_some() {
            return Ok(());
        }
        let port = free_port()?;
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--authentication-kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--authorization-kubeconfig={}", self.kubeconfig.display()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg("--port=0")
            .arg("--leader-elect=false")
            .arg("--controllers=deployment,replicaset,statefulset,daemonset,job,cronjob,garbagecollector,serviceaccount-token")
            .arg(format!(
                "--service-account-private-key-file={}",
                dir.join("pki/sa.key").display()
            ))
            .arg(format!("--root-ca-file={}", dir.join("pki/ca.crt").display()))
            .arg("--v=1");
        let process = ManagedProcess::spawn(
            "kube-controller-manager",
            cmd,
            &dir.join("kube-controller-manager.log"),
        )
        .map_err(|source| TestEnvError::Spawn {
            program: binary.to_owned(),
            source,
        })?;
        self.controller_manager = Some(process);
        Ok(())
    }

    /// The apiserver's URL.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The apiserver's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig file with the admin credentials.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver's log file.
    pub fn apiserver_log(&self) -> &Path {
        self.apiserver.log_path()
    }
}

fn kubeconfig_yaml(url: &str, ca_file: &Path, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testenv\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\nusers:\n- name: {ADMIN_USER}\n  user:\n    token: {token}\ncontexts:\n- name: testenv\n  context:\n    cluster: testenv\n    user: {ADMIN_USER}\n    namespace: default\ncurrent-context: testenv\n",
        ca = ca_file.display()
    )
}
