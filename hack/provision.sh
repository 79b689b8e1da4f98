#!/usr/bin/env bash
# Provisions the integration-test environment: etcd, the CNCF distribution registry, skopeo and htpasswd
# from Debian's packages, and kube-apiserver, kube-controller-manager and kubectl v1.20.2 built from
# Debian bookworm's `kubernetes` source package. Built binaries are cached outside the checkout, so a
# second run only checks and returns. Prints the directory holding the binaries on its last line.
set -euo pipefail

cache_dir=${IMAGESTREAM_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagestream-operator}
bin_dir=$cache_dir/bin
k8s_version=1.20.2
# Bump when the build recipe changes, so cached binaries are rebuilt.
build_revision=3
stamp=$bin_dir/.kubernetes-$k8s_version-r$build_revision

log() { echo "provision: $*" >&2; }

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

# Runtime dependencies of the test harness.
apt_install etcd-server docker-registry skopeo apache2-utils openssl ca-certificates

# The distribution registry package starts a system service on :5000; the tests start their own.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  as_root systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  as_root systemctl disable --now etcd >/dev/null 2>&1 || true
fi

if [ -f "$stamp" ] && [ -x "$bin_dir/kube-apiserver" ] && [ -x "$bin_dir/kube-controller-manager" ] && [ -x "$bin_dir/kubectl" ]; then
  log "kubernetes $k8s_version binaries cached in $bin_dir"
  echo "$bin_dir"
  exit 0
fi

apt_install golang-1.19-go rsync golang-github-modern-go-reflect2-dev dpkg-dev build-essential

src_list=/etc/apt/sources.list.d/imagestream-operator-bookworm-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src .* bookworm main' /etc/apt/sources.list; then
  log "adding a deb-src entry for bookworm main"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | as_root tee "$src_list" >/dev/null
  as_root apt-get update -qq
fi

work=$cache_dir/build
rm -rf "$work"
mkdir -p "$work" "$bin_dir"
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

log "building kube-apiserver, kube-controller-manager and kubectl (several minutes)"
export PATH=/usr/lib/go-1.19/bin:$PATH
export GOFLAGS=-mod=vendor
export GOCACHE=$cache_dir/go-build
export KUBE_GIT_VERSION=v$k8s_version KUBE_GIT_TREE_STATE=clean
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl" >&2
for b in kube-apiserver kube-controller-manager kubectl; do
  install -m 0755 "_output/local/bin/linux/$(go env GOARCH)/$b" "$bin_dir/$b"
done
cd "$cache_dir"
rm -rf "$work" "$GOCACHE"
rm -f "$bin_dir"/.kubernetes-*
touch "$stamp"
log "kubernetes $k8s_version binaries built into $bin_dir"
echo "$bin_dir"
