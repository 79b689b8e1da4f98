//! `make run`: the operator from this checkout against the cluster of the current kubeconfig, or —
//! when there is none — against a local control plane it starts for the occasion: etcd,
//! kube-apiserver, kube-controller-manager and a registry on 127.0.0.1, with the CRDs installed. The
//! local cluster's kubeconfig is written to `target/local-cluster/kubeconfig` for `kubectl`, and
//! everything stops on Ctrl-C. Arguments after `--` go to `imagestream-operator run`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use imagestream_testenv::TestEnv;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Which cluster the operator runs against.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// The cluster the client's usual configuration names: `KUBECONFIG`, `~/.kube/config` or the
    /// in-cluster service account, in kubectl's order.
    Configured(&'static str),
    /// None is configured: start a local control plane.
    Local,
}

/// What the environment offers, as kubectl and kube-rs look for it.
struct Environment {
    kubeconfig_var: Option<OsString>,
    home_config_exists: bool,
    in_cluster: bool,
}

impl Environment {
    fn read() -> Self {
        let home_config_exists = std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(".kube/config").is_file())
            .unwrap_or(false);
        Environment {
            kubeconfig_var: std::env::var_os("KUBECONFIG"),
            home_config_exists,
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                && std::env::var_os("KUBERNETES_SERVICE_PORT").is_some(),
        }
    }
}

fn target(env: &Environment) -> Target {
    if env.kubeconfig_var.as_ref().is_some_and(|v| !v.is_empty()) {
        Target::Configured("KUBECONFIG")
    } else if env.home_config_exists {
        Target::Configured("~/.kube/config")
    } else if env.in_cluster {
        Target::Configured("the in-cluster service account")
    } else {
        Target::Local
    }
}

fn operator_binary() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/imagestream-operator")
}

fn operator(args: &[String]) -> Command {
    let mut command = Command::new(operator_binary());
    command.arg("run").args(args).stdin(Stdio::null());
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "imagestream_operator=info");
    }
    command
}

fn provision() -> Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/provision.sh");
    let status = Command::new("bash")
        .arg(&script)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("{} failed ({status})", script.display()).into());
    }
    Ok(())
}

async fn run_local(args: &[String]) -> Result<ExitCode> {
    println!(
        "No kubeconfig found: starting a local control plane (hack/provision.sh builds it once)."
    );
    provision()?;
    let env = TestEnv::start(&imagestream_operator::api::crds()).await?;
    env.start_controller_manager()?;
    let kubeconfig_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/local-cluster");
    std::fs::create_dir_all(&kubeconfig_dir)?;
    let kubeconfig = kubeconfig_dir.join("kubeconfig");
    std::fs::copy(env.kubeconfig(), &kubeconfig)?;
    println!("  kube-apiserver, kube-controller-manager and etcd are up; the CRDs are installed.");
    println!("  registry (plain HTTP): {}", env.registry().host());
    println!(
        "  in another shell:      export KUBECONFIG={}",
        kubeconfig.display()
    );
    println!("  stop with Ctrl-C.\n");
    // One operator on a throwaway cluster: no Lease to hand over (unless asked for).
    let mut args = args.to_vec();
    if !args.iter().any(|a| a.starts_with("--leader-elect")) {
        args.insert(0, "--leader-elect=false".into());
    }
    let mut command = operator(&args);
    command
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "default");
    let mut child = tokio::process::Command::from(command)
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", operator_binary().display()))?;
    let code = tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            // Let the operator shut down (and release its Lease) while the apiserver still runs.
            if let Some(pid) = child.id() {
                // Fails only when the operator has exited already; the wait below reaps it.
                let _ = imagestream_testenv::send_sigterm(pid);
            }
            let _ = child.wait().await;
            ExitCode::SUCCESS
        }
        status = child.wait() => {
            let status = status?;
            eprintln!("the operator exited ({status})");
            if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
    };
    println!("\nStopping the local control plane.");
    drop(env);
    let _ = std::fs::remove_file(&kubeconfig);
    Ok(code)
}

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match target(&Environment::read()) {
        Target::Configured(source) => {
            println!("Running the operator against the cluster of {source}.");
            let status = operator(&args)
                .status()
                .map_err(|e| format!("could not start {}: {e}", operator_binary().display()))?;
            Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Target::Local => run_local(&args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kubeconfig: Option<&str>, home: bool, in_cluster: bool) -> Environment {
        Environment {
            kubeconfig_var: kubeconfig.map(OsString::from),
            home_config_exists: home,
            in_cluster,
        }
    }

    #[test]
    fn a_configured_cluster_is_used_in_kubectls_order() {
        assert_eq!(
            target(&env(Some("/k"), true, true)),
            Target::Configured("KUBECONFIG")
        );
        assert_eq!(
            target(&env(None, true, true)),
            Target::Configured("~/.kube/config")
        );
        assert_eq!(
            target(&env(Some(""), false, true)),
            Target::Configured("the in-cluster service account")
        );
    }

    #[test]
    fn without_any_configuration_a_local_control_plane_is_started() {
        assert_eq!(target(&env(None, false, false)), Target::Local);
        assert_eq!(target(&env(Some(""), false, false)), Target::Local);
    }
}
