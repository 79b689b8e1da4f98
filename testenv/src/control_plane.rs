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

/// The user of the client certificate the API server presents to kubelets (`logs`, `exec`).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// A kube-controller-manager or kube-scheduler command with what every such component of the
/// environment gets: `kubeconfig` for its API client, authentication and authorisation, secure
/// serving on a free port of 127.0.0.1 only, no insecure port, no leader election.
pub(crate) fn kube_component(binary: &Path, kubeconfig: &Path) -> Result<Command, TestEnvError> {
    let mut cmd = Command::new(binary);
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!(
            "--authentication-kubeconfig={}",
            kubeconfig.display()
        ))
        .arg(format!(
            "--authorization-kubeconfig={}",
            kubeconfig.display()
        ))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={}", free_port()?))
        .arg("--port=0")
        .arg("--leader-elect=false");
    Ok(cmd)
}

/// How the control plane is started. The default is what the fast tests use: everything on
/// 127.0.0.1, the ServiceAccount admission plugin off.
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneOptions {
    /// The address kube-apiserver listens on and advertises (and the kubeconfig points at) instead
    /// of 127.0.0.1: an address pods reach, such as a node's bridge address. Its serving certificate
    /// also names 127.0.0.1, `localhost`, the first service IP (10.96.0.1) and `kubernetes.default.svc`.
    /// With it, the API server reaches kubelets at their `InternalIP` (node names do not resolve).
    pub bind_address: Option<std::net::Ipv4Addr>,
    /// Enables the ServiceAccount admission plugin, so pods get a service-account token mounted (a node
    /// also needs the `serviceaccount` and `serviceaccount-token` controllers).
    pub service_account_admission: bool,
}

/// Running etcd and kube-apiserver processes and the files that describe how to reach them.
pub struct ControlPlane {
    etcd: ManagedProcess,
    apiserver: ManagedProcess,
    controller_manager: Option<ManagedProcess>,
    url: String,
    etcd_url: String,
    kubeconfig: PathBuf,
    /// How the apiserver was started, to start it again after [`Self::stop_apiserver`].
    apiserver_restart: (PathBuf, Vec<String>, PathBuf),
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver with their state under `dir`, and waits until the apiserver's
    /// `/readyz` answers `ok`.
    pub async fn start(
        dir: &Path,
        etcd_bin: &Path,
        apiserver_bin: &Path,
    ) -> Result<Self, TestEnvError> {
        Self::start_with(
            dir,
            etcd_bin,
            apiserver_bin,
            &ControlPlaneOptions::default(),
        )
        .await
    }

    /// [`Self::start`] with `options`.
    pub async fn start_with(
        dir: &Path,
        etcd_bin: &Path,
        apiserver_bin: &Path,
        options: &ControlPlaneOptions,
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
        let bind = options
            .bind_address
            .map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.to_string());
        let serving = match options.bind_address {
            None => ca.issue(&["127.0.0.1", "localhost"])?,
            Some(_) => ca.issue(&[
                &bind,
                "127.0.0.1",
                "localhost",
                "10.96.0.1",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ])?,
        };
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
        let url = format!("https://{bind}:{port}");
        let admission = if options.service_account_admission {
            "--enable-admission-plugins=ServiceAccount"
        } else {
            "--disable-admission-plugins=ServiceAccount"
        };
        let mut apiserver_args: Vec<String> = vec![
            format!("--etcd-servers=http://127.0.0.1:{client_port}"),
            format!("--bind-address={bind}"),
            format!("--advertise-address={bind}"),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", pki.display()),
            format!("--tls-cert-file={}", pki.join("apiserver.crt").display()),
            format!(
                "--tls-private-key-file={}",
                pki.join("apiserver.key").display()
            ),
            format!("--client-ca-file={}", ca_file.display()),
            format!("--token-auth-file={}", pki.join("tokens.csv").display()),
            "--authorization-mode=RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!(
                "--service-account-key-file={}",
                pki.join("sa.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.join("sa.key").display()
            ),
            "--service-cluster-ip-range=10.96.0.0/24".to_owned(),
            admission.to_owned(),
            "--allow-privileged=true".to_owned(),
            "--enable-priority-and-fairness=false".to_owned(),
            "--v=0".to_owned(),
        ];
        if options.bind_address.is_some() {
            // `kubectl logs`/`exec` go through the kubelet: reach it at its node IP, since a test
            // node's name does not resolve.
            apiserver_args.push("--kubelet-preferred-address-types=InternalIP".to_owned());
            // The kubelet accepts only clients with a certificate of this CA (no anonymous
            // requests, see node.rs): the API server presents this one.
            let client = ca.issue_client(KUBELET_CLIENT_USER, "system:masters")?;
            write_file(&pki.join("kubelet-client.crt"), &client.cert_pem)?;
            write_file(&pki.join("kubelet-client.key"), &client.key_pem)?;
            apiserver_args.push(format!(
                "--kubelet-client-certificate={}",
                pki.join("kubelet-client.crt").display()
            ));
            apiserver_args.push(format!(
                "--kubelet-client-key={}",
                pki.join("kubelet-client.key").display()
            ));
        }
        let mut apiserver_cmd = Command::new(apiserver_bin);
        apiserver_cmd.args(&apiserver_args);
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
            apiserver_restart: (
                apiserver_bin.to_owned(),
                apiserver_args,
                dir.join("kube-apiserver-restarted.log"),
            ),
        };
        plane.wait_ready().await?;
        Ok(plane)
    }

    /// Kills the apiserver (etcd keeps running): clients see connections refused until
    /// [`Self::start_apiserver_again`].
    pub fn stop_apiserver(&mut self) {
        self.apiserver.kill();
    }

    /// Starts the apiserver again with the same flags, port and certificates; it logs to
    /// `kube-apiserver-restarted.log`. The caller waits until it is ready.
    pub fn start_apiserver_again(&mut self) -> Result<(), TestEnvError> {
        let (program, args, log) = &self.apiserver_restart;
        let mut command = Command::new(program);
        command.args(args);
        self.apiserver =
            ManagedProcess::spawn("kube-apiserver", command, log).map_err(|source| {
                TestEnvError::Spawn {
                    program: program.clone(),
                    source,
                }
            })?;
        Ok(())
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
        let mut cmd = kube_component(binary, &self.kubeconfig)?;
        cmd.arg("--controllers=deployment,replicaset,statefulset,daemonset,job,cronjob,garbagecollector,serviceaccount-token")
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
