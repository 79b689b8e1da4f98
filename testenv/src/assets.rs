//! Where the local environment's programs come from. The envtest conventions win
//! (`TEST_ASSET_<NAME>`, then `KUBEBUILDER_ASSETS`), then the provisioning cache
//! (`hack/provision.sh`), then `PATH`.

use std::path::{Path, PathBuf};

use super::TestEnvError;

/// The programs the local environment runs.
#[derive(Debug, Clone)]
pub struct Assets {
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-controller-manager`, when found (only rollout tests need it).
    pub kube_controller_manager: Option<PathBuf>,
    /// `kubectl`, when found (only `kubectl explain`/`apply` tests need it).
    pub kubectl: Option<PathBuf>,
    /// The distribution registry (`docker-registry` on Debian, `registry` upstream).
    pub registry: Option<PathBuf>,
}

/// The directory `hack/provision.sh` builds the Kubernetes binaries into.
pub fn provision_cache_bin_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(dir) = env("IMAGESTREAM_OPERATOR_CACHE") {
        return Some(Path::new(&dir).join("bin"));
    }
    let cache = env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".cache")))?;
    Some(cache.join("imagestream-operator").join("bin"))
}

/// Finds program `name` (override variable `TEST_ASSET_<NAME>`) in the conventional places.
/// `candidates` lists the file names the program goes by.
fn find(
    env: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&Path) -> bool,
    variable: &str,
    candidates: &[&str],
) -> Option<PathBuf> {
    if let Some(path) = env(variable) {
        return Some(PathBuf::from(path));
    }
    let mut dirs = Vec::new();
    if let Some(dir) = env("KUBEBUILDER_ASSETS") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.extend(provision_cache_bin_dir(env));
    if let Some(path) = env("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.iter()
        .flat_map(|dir| candidates.iter().map(move |name| dir.join(name)))
        .find(|path| exists(path))
}

impl Assets {
    /// Resolves the programs from the process environment and the file system.
    pub fn from_environment() -> Result<Self, TestEnvError> {
        Self::resolve(&|name| std::env::var(name).ok(), &|path| path.is_file())
    }

    /// Resolves the programs with the given environment and file-existence check.
    pub fn resolve(
        env: &dyn Fn(&str) -> Option<String>,
        exists: &dyn Fn(&Path) -> bool,
    ) -> Result<Self, TestEnvError> {
        let missing = |program: &str, variable: &str| TestEnvError::MissingAsset {
            program: program.to_owned(),
            variable: variable.to_owned(),
        };
        Ok(Self {
            kube_apiserver: find(
                env,
                exists,
                "TEST_ASSET_KUBE_APISERVER",
                &["kube-apiserver"],
            )
            .ok_or_else(|| missing("kube-apiserver", "TEST_ASSET_KUBE_APISERVER"))?,
            etcd: find(env, exists, "TEST_ASSET_ETCD", &["etcd"])
                .ok_or_else(|| missing("etcd", "TEST_ASSET_ETCD"))?,
            kube_controller_manager: find(
                env,
                exists,
                "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
                &["kube-controller-manager"],
            ),
            kubectl: find(env, exists, "TEST_ASSET_KUBECTL", &["kubectl"]),
            registry: find(
                env,
                exists,
                "TEST_ASSET_REGISTRY",
                &["docker-registry", "registry"],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(vars: &[(&str, &str)], files: &[&str]) -> Result<Assets, TestEnvError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        Assets::resolve(&|name| vars.get(name).cloned(), &|path| {
            files.iter().any(|f| f == path)
        })
    }

    #[test]
    fn explicit_test_asset_variables_win_over_everything() {
        let assets = resolve(
            &[
                ("TEST_ASSET_KUBE_APISERVER", "/opt/k/apiserver"),
                ("TEST_ASSET_ETCD", "/opt/e/etcd"),
                ("KUBEBUILDER_ASSETS", "/kb"),
            ],
            &["/kb/kube-apiserver", "/kb/etcd"],
        )
        .unwrap();
        assert_eq!(assets.kube_apiserver, PathBuf::from("/opt/k/apiserver"));
        assert_eq!(assets.etcd, PathBuf::from("/opt/e/etcd"));
    }

    #[test]
    fn kubebuilder_assets_wins_over_the_provisioning_cache_and_path() {
        let assets = resolve(
            &[
                ("KUBEBUILDER_ASSETS", "/kb"),
                ("HOME", "/home/u"),
                ("PATH", "/usr/bin"),
            ],
            &[
                "/kb/kube-apiserver",
                "/home/u/.cache/imagestream-operator/bin/kube-apiserver",
                "/usr/bin/etcd",
                "/kb/etcd",
            ],
        )
        .unwrap();
        assert_eq!(assets.kube_apiserver, PathBuf::from("/kb/kube-apiserver"));
        assert_eq!(assets.etcd, PathBuf::from("/kb/etcd"));
    }

    #[test]
    fn provisioning_cache_is_found_under_home_and_etcd_on_path() {
        let assets = resolve(
            &[("HOME", "/home/u"), ("PATH", "/usr/local/bin:/usr/bin")],
            &[
                "/home/u/.cache/imagestream-operator/bin/kube-apiserver",
                "/home/u/.cache/imagestream-operator/bin/kubectl",
                "/usr/bin/etcd",
                "/usr/bin/docker-registry",
            ],
        )
        .unwrap();
        assert_eq!(
            assets.kube_apiserver,
            PathBuf::from("/home/u/.cache/imagestream-operator/bin/kube-apiserver")
        );
        assert_eq!(assets.etcd, PathBuf::from("/usr/bin/etcd"));
        assert_eq!(
            assets.registry,
            Some(PathBuf::from("/usr/bin/docker-registry"))
        );
        assert_eq!(assets.kube_controller_manager, None);
    }

    #[test]
    fn a_missing_apiserver_names_the_variable_that_fixes_it() {
        let err = resolve(&[("PATH", "/usr/bin")], &["/usr/bin/etcd"]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("kube-apiserver"), "{message}");
        assert!(message.contains("TEST_ASSET_KUBE_APISERVER"), "{message}");
        assert!(message.contains("make provision"), "{message}");
    }
}
