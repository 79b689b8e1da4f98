#!/usr/bin/env bash
# Provisions what a test node needs on top of hack/provision.sh: Debian's containerd, runc, CNI plugins
# (containernetworking-plugins), busybox-static (for test images) and the iptables/conntrack tools
# kubelet and kube-proxy call, and kubelet, kube-scheduler and kube-proxy v1.20.2 built from Debian
# bookworm's `kubernetes` source package with the same recipe as the API server
# (hack/lib/kubernetes-build.sh). The binaries go to the same cache directory with their own stamp,
# so a second run only checks and returns. Prints the directory holding the binaries on its last line.
# It starts nothing: the test environment runs its own containerd and kubelet.
set -euo pipefail

log_prefix=provision-node
# shellcheck source=hack/lib/kubernetes-build.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/kubernetes-build.sh"
# Bump when the build recipe changes, so cached binaries are rebuilt. Not named `.kubernetes-*`:
# hack/provision.sh deletes those stamps when it rebuilds its own binaries.
build_revision=1
stamp=$bin_dir/.node-kubernetes-$k8s_version-r$build_revision
binaries=(kubelet kube-scheduler kube-proxy)

# Run-time packages of the node. Debian's containerd package starts a system service where systemd
# runs; stop it when this script is what installed it (the test environment starts its own, with its
# own configuration, socket and state directories).
containerd_was_installed=$(dpkg-query -W -f='${Status}' containerd 2>/dev/null | grep -c "install ok installed" || true)
apt_install containerd runc containernetworking-plugins busybox-static iptables conntrack
if [ "$containerd_was_installed" = 0 ]; then disable_service containerd; fi

cached=1
for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || cached=; done
if [ -f "$stamp" ] && [ -n "$cached" ]; then
  log "kubernetes $k8s_version node binaries cached in $bin_dir"
  echo "$bin_dir"
  exit 0
fi

# kubernetes/kubernetes#97288: kubelet 1.20.0-1.20.2 keeps a deleted pod Terminating until sandbox
# garbage collection (about a minute), because PodResourcesAreReclaimed (pkg/kubelet/kubelet_pods.go)
# also waits for the pod's sandboxes to be removed, and the sandbox deleter added with that check
# (#92817) misses pods not yet marked deleted when their containers are removed. Upstream reverted
# #92817 (#97980, in 1.20.3 as #97998). The equivalent change here drops the one `return false` of that
# check, so a stopped pod whose containers are gone is reclaimed at once (the check's log line stays;
# sandboxes are still removed by the sandbox deleter and garbage collection, as in 1.20.3).
patch_kubelet_97288() {
  local file=pkg/kubelet/kubelet_pods.go before after
  before=$(wc -l <"$file")
  sed -i "/^\t\/\/ pod's sandboxes should be deleted\$/,/^\t}\$/{/^\t\treturn false\$/d}" "$file"
  after=$(wc -l <"$file")
  if [ $((before - after)) -ne 1 ]; then
    log "the fix for kubernetes#97288 did not apply to $file (removed $((before - after)) lines, expected 1)"
    exit 1
  fi
  log "applied the fix for kubernetes#97288 to $file"
}

k8s_build build-node patch_kubelet_97288 "${binaries[@]}"
rm -f "$bin_dir"/.node-kubernetes-*
touch "$stamp"
log "kubernetes $k8s_version node binaries built into $bin_dir"
echo "$bin_dir"
