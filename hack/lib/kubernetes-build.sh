# Shared by hack/provision.sh and hack/provision-node.sh (sourced, not run): the provisioning cache,
# Debian package installation, and building Kubernetes v1.20.2 components from Debian bookworm's
# `kubernetes` source package with Debian's Go 1.19 and the vendored fixes that Go needs.
# The sourcing script sets `log_prefix` (for log lines) before sourcing, and `set -euo pipefail`.

cache_dir=${IMAGESTREAM_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagestream-operator}
bin_dir=$cache_dir/bin
k8s_version=1.20.2

log() { echo "${log_prefix:-provision}: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1
  fi
}

apt_updated=
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Stops and disables a system service a package started (the tests start their own instances).
disable_service() {
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$1" 2>/dev/null; then
    as_root systemctl disable --now "$1" >/dev/null 2>&1 || true
  fi
}

# k8s_build WORK_NAME PATCH_FUNCTION BINARY...
#   Builds cmd/BINARY... from the Debian source package in $cache_dir/WORK_NAME (its own Go build
#   cache beside it, so two builds never share or delete each other's directories) and installs them
#   into $bin_dir. PATCH_FUNCTION (or "") runs in the unpacked source tree after the shared fixes.
#   The source tree and the Go build cache are deleted afterwards.
k8s_build() {
  local work_name=$1 patch_fn=$2
  shift 2
  apt_install golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev build-essential

  local src_list=/etc/apt/sources.list.d/imagestream-operator-bookworm-src.sources
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src .* bookworm main' /etc/apt/sources.list; then
    log "adding a deb-src entry for bookworm main"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | as_root tee "$src_list" >/dev/null
    as_root apt-get update -qq
  fi

  local work=$cache_dir/$work_name
  rm -rf "$work"
  mkdir -p "$work" "$bin_dir"
  (
    cd "$work"
    log "downloading Debian's kubernetes source package"
    apt-get source --download-only kubernetes >&2
    orig=$(ls kubernetes_*.orig.tar.* | head -n1)
    mkdir src
    tar -xf "$orig" -C src --strip-components=1
    cd src

    # The vendored reflect2 1.0.1 crashes kube-apiserver under Go >= 1.18 on the first custom-resource
    # write; Debian's 1.0.2 works.
    reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
    rm -rf vendor/github.com/modern-go/reflect2
    mkdir -p vendor/github.com/modern-go/reflect2
    cp -r "$reflect2"/. vendor/github.com/modern-go/reflect2/
    sed -i 's|^# github.com/modern-go/reflect2 v1.0.1|# github.com/modern-go/reflect2 v1.0.2|' vendor/modules.txt || true
    sed -i 's|github.com/modern-go/reflect2 v1.0.1|github.com/modern-go/reflect2 v1.0.2|' go.mod || true

    # The vendored OpenAPI validators take any zero value for null under Go >= 1.18 (they compare two
    # reflect.Value structs with DeepEqual), so the apiserver rejects `field: ""` in every custom
    # resource. Built with older Go the comparison was in practice true only for nil; restore that.
    grep -rl 'reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))' vendor/ \
      | xargs -r sed -i 's/data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data))/data == nil/'

    if [ -n "$patch_fn" ]; then "$patch_fn"; fi

    log "building $* (several minutes)"
    export PATH=/usr/lib/go-1.19/bin:$PATH
    export GOFLAGS=-mod=vendor
    export GOCACHE=$work/go-build
    export KUBE_GIT_VERSION=v$k8s_version KUBE_GIT_TREE_STATE=clean
    local what=() b
    for b in "$@"; do what+=("cmd/$b"); done
    make WHAT="${what[*]}" >&2
    for b in "$@"; do
      install -m 0755 "_output/local/bin/linux/$(go env GOARCH)/$b" "$bin_dir/$b"
    done
  )
  rm -rf "$work"
}
