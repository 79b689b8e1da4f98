//! The operator installed on a node as users install it: its release build as an OCI image in the
//! node registry, and `kubectl apply -k` of an overlay of `deploy/` that changes only the image (and,
//! on request, adds environment variables to the container, e.g. a short `IMPORT_INTERVAL` for a
//! demo).

use std::path::{Component, Path, PathBuf};

use super::{Node, TestEnv, TestEnvError};

/// What [`Node::install_operator`] installed.
#[derive(Debug, Clone)]
pub struct OperatorInstall {
    /// The image repository in the node registry, e.g. `10.88.0.1:41234/imagestream-operator`.
    pub repository: String,
    /// The manifest digest of the image the pods run.
    pub digest: String,
    /// What `kubectl apply -k` printed.
    pub applied: String,
}

impl OperatorInstall {
    /// `repository@digest`: the image every operator container must run.
    pub fn image(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// `to` relative to the directory `from` (both absolute): the kustomize built into kubectl 1.20
/// loads bases only by relative paths.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part.as_os_str());
    }
    path
}

/// The `kustomization.yaml` of an overlay of `base` (a relative path to `deploy/`) that points the
/// image at `name@digest` and, when `environment` is not empty, adds those variables to the
/// operator's container with a strategic-merge patch written to `patch_file`.
pub fn overlay_kustomization(
    base: &Path,
    name: &str,
    digest: &str,
    environment: &[(&str, &str)],
    patch_file: &str,
) -> String {
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         bases:\n- {base}\n\
         images:\n- name: imagestream-operator\n  newName: {name}\n  digest: {digest}\n",
        base = base.display()
    );
    if !environment.is_empty() {
        text.push_str(&format!("patchesStrategicMerge:\n- {patch_file}\n"));
    }
    text
}

/// The strategic-merge patch adding `environment` to the operator's container (merged by name
/// with the variables deploy/ sets).
pub fn environment_patch(environment: &[(&str, &str)]) -> String {
    let variables = environment
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect::<Vec<_>>();
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "imagestream-operator", "namespace": "imagestream-operator"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "operator", "env": variables}
        ]}}}
    })
    .to_string()
}

impl Node {
    /// Builds the operator's image from `binary` (a release build), pushes it to the node registry
    /// as `imagestream-operator:<tag>`, and installs `deploy/` with `kubectl apply -k` on an
    /// overlay (written under the node's directory) that sets that image by digest and adds
    /// `environment` to the container. Returns as soon as kubectl has applied it; the caller waits
    /// for the pods.
    pub fn install_operator(
        &self,
        env: &TestEnv,
        binary: &Path,
        tag: &str,
        environment: &[(&str, &str)],
    ) -> Result<OperatorInstall, TestEnvError> {
        let repository = format!("{}/imagestream-operator", self.registry_host());
        let digest = self.push_operator_image(binary, &format!("{repository}:{tag}"))?;
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| TestEnvError::Io { what, source }
        };
        let overlay = self.dir().join("deploy-overlay");
        std::fs::create_dir_all(&overlay).map_err(io("create the deploy/ overlay"))?;
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy")
            .canonicalize()
            .map_err(io("find deploy/"))?;
        let overlay = overlay
            .canonicalize()
            .map_err(io("resolve the overlay directory"))?;
        let base = relative_path(&overlay, &deploy);
        const PATCH: &str = "environment.json";
        std::fs::write(
            overlay.join("kustomization.yaml"),
            overlay_kustomization(&base, &repository, &digest, environment, PATCH),
        )
        .map_err(io("write the overlay's kustomization.yaml"))?;
        if !environment.is_empty() {
            std::fs::write(overlay.join(PATCH), environment_patch(environment))
                .map_err(io("write the overlay's patch"))?;
        }
        let applied = env.run_kubectl(&["apply", "-k", &overlay.to_string_lossy()], None)?;
        Ok(OperatorInstall {
            repository,
            digest,
            applied,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        assert_eq!(
            relative_path(
                Path::new("/tmp/x/node/overlay"),
                Path::new("/work/main/deploy")
            ),
            PathBuf::from("../../../../work/main/deploy")
        );
        assert_eq!(
            relative_path(Path::new("/work/main/a"), Path::new("/work/main/deploy")),
            PathBuf::from("../deploy")
        );
    }

    #[test]
    fn the_overlay_sets_the_image_and_patches_only_when_asked() {
        let plain = overlay_kustomization(Path::new("../deploy"), "r/op", "sha256:ab", &[], "p");
        assert!(plain.contains("bases:\n- ../deploy\n"));
        assert!(plain.contains("newName: r/op\n  digest: sha256:ab\n"));
        assert!(!plain.contains("patchesStrategicMerge"));
        let patched = overlay_kustomization(
            Path::new("../deploy"),
            "r/op",
            "sha256:ab",
            &[("IMPORT_INTERVAL", "2s")],
            "env.json",
        );
        assert!(patched.ends_with("patchesStrategicMerge:\n- env.json\n"));
        let patch: serde_json::Value =
            serde_json::from_str(&environment_patch(&[("IMPORT_INTERVAL", "2s")])).unwrap();
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"][0]["env"][0],
            serde_json::json!({"name": "IMPORT_INTERVAL", "value": "2s"})
        );
    }
}
