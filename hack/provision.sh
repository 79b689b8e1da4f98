#!/usr/bin/env bash
# Provisions the integration-test environment: etcd, the CNCF distribution registry, skopeo and htpasswd
# from Debian's packages, and kube-apiserver, kube-controller-manager and kubectl v1.20.2 built from
# Debian bookworm's `kubernetes` source package. Built binaries are cached outside the checkout, so a
# second run only checks and returns. Prints the directory holding the binaries on its last line.
set -euo pipefail

log_prefix=provision
# shellcheck source=hack/lib/kubernetes-build.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/kubernetes-build.sh"
# Bump when the build recipe changes, so cached binaries are rebuilt.
build_revision=3
stamp=$bin_dir/.kubernetes-$k8s_version-r$build_revision

# Runtime dependencies of the test harness.
apt_install etcd-server docker-registry skopeo apache2-utils openssl ca-certificates

# The distribution registry package starts a system service on :5000; the tests start their own.
disable_service docker-registry
disable_service etcd

if [ -f "$stamp" ] && [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/kube-controller-manager" ] && [ -x "$bin_dir/kubectl" ]; then
  log "kubernetes $k8s_version binaries cached in $bin_dir"
  echo "$bin_dir"
  exit 0
fi

k8s_build build "" kube-apiserver kube-controller-manager kubectl
rm -f "$bin_dir"/.kubernetes-*
touch "$stamp"
log "kubernetes $k8s_version binaries built into $bin_dir"
echo "$bin_dir"
