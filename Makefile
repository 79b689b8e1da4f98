# imagestream-operator — build, test and demo targets. `make test` and `make demo` work on a fresh
# machine: both provision what they need first (hack/provision.sh, idempotent and cached).

CARGO ?= cargo

.PHONY: all build provision test lint unit integration crds demo run bench clean-cache

all: build

build:
	$(CARGO) build --release

## provision: install etcd, the distribution registry, skopeo and htpasswd, and build kube-apiserver,
## kube-controller-manager and kubectl v1.20.2 into ~/.cache/imagestream-operator (once).
provision:
	bash hack/provision.sh >/dev/null

## provision-node: what a test node needs, on top of provision: containerd, runc, the CNI plugins,
## busybox-static, iptables and conntrack from Debian, and kubelet (with the fix of kubernetes#97288),
## kube-scheduler and kube-proxy v1.20.2 built like the API server into the same cache (once).
## Starts nothing.
.PHONY: provision-node
provision-node: provision
	bash hack/provision-node.sh >/dev/null

## test: provision (with the node's programs), then formatting, lints and every test: unit,
## integration, and the end-to-end tests on a real node (needs root), which run the operator's
## release build as pods, and the node example. Incremental compilation is off unless
## CARGO_INCREMENTAL says otherwise: its cache would double target/.
OPERATOR_RELEASE_BIN = $$(realpath $${CARGO_TARGET_DIR:-target})/release/imagestream-operator
# The node example as a program (cargo test builds examples only as test harnesses).
NODE_EXAMPLE_BIN = $$(realpath $${CARGO_TARGET_DIR:-target})/debug/examples/node
test: export CARGO_INCREMENTAL ?= 0
test: provision-node
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --release --bin imagestream-operator
	$(CARGO) build --example node
	IMAGESTREAM_E2E=1 IMAGESTREAM_E2E_OPERATOR_BIN=$(OPERATOR_RELEASE_BIN) \
	  IMAGESTREAM_E2E_NODE_EXAMPLE=$(NODE_EXAMPLE_BIN) bash hack/run-tests.sh

## e2e: only the end-to-end tests on a real node (needs root): the operator's release build as an
## OCI image in the node registry, installed with `kubectl apply -k` on an overlay of deploy/ that
## only sets the image; two replicas Ready with one Lease holder, a triggered Deployment's pod
## replaced after each push (its log shows the new image), failover to the standby, no restarts or
## OOM kills; the node is torn down and checked clean at the end. And a run killed with its node
## running (`cargo run --example node -- --abandon`) is cleaned up by the next node before it starts.
## A plain `cargo test` (without IMAGESTREAM_E2E=1) records them as skipped.
.PHONY: e2e
e2e: provision-node
	$(CARGO) build --release --bin imagestream-operator
	$(CARGO) build --example node
	IMAGESTREAM_E2E=1 IMAGESTREAM_E2E_OPERATOR_BIN=$(OPERATOR_RELEASE_BIN) \
	  IMAGESTREAM_E2E_NODE_EXAMPLE=$(NODE_EXAMPLE_BIN) \
	  $(CARGO) test --test e2e -- --test-threads=1 --nocapture

## unit: the pure tests only (no control plane, no registry).
unit:
	$(CARGO) test --lib --bins

## integration: the tests against the real kube-apiserver and registry.
integration: provision
	$(CARGO) test --test integration

## crds: regenerate crds/ from the API types.
crds:
	$(CARGO) run --quiet -- crds --output-dir crds

## demo: the walk-through on a local cluster with a real node (needs root): the operator installed
## from deploy/ as pods, an image pushed, imported and rolled out, a new push to the same tag, the
## demo pods and their log lines before and after it. Undoes everything at the end (also on Ctrl-C).
demo: provision-node
	$(CARGO) build --release --bin imagestream-operator
	IMAGESTREAM_DEMO_OPERATOR_BIN=$(OPERATOR_RELEASE_BIN) $(CARGO) run --quiet --example demo

## run: the operator against the current kubeconfig, or against a local control plane started for
## the occasion when there is none (kubeconfig in target/local-cluster/). Flags: make run ARGS="...".
run:
	$(CARGO) build --bin imagestream-operator
	$(CARGO) run --quiet --example run -- $(ARGS)

## bench: the operator's release build at scale on a local control plane and registry (no
## kube-controller-manager); prints one table and writes target/bench/report-<STREAMS>.md. Set on the
## command line or in the environment: STREAMS (10000), TAGS (3), DISTINCT (1000), WORKLOADS (2000),
## NAMESPACES (20), INTERVAL (60s), OPERATOR_BIN, OPERATOR_ARGS; e.g.
## make bench STREAMS=1000 DISTINCT=100 WORKLOADS=200, or an older build for comparison:
## make bench OPERATOR_BIN=$(hack/bench-build-operator.sh <commit>). See examples/bench.rs.
bench: provision
	$(CARGO) build --release --bin imagestream-operator
	$(CARGO) run --release --quiet --example bench

## image: the operator's release build as an OCI image, written without a container engine by
## hack/oci_image.py (the binary with the shared libraries it links, CA certificates, user 65532, no
## shell; Entrypoint and Cmd as the Dockerfile) into target/oci/operator, and pushed with skopeo to
## IMAGE when given, e.g. make image IMAGE=127.0.0.1:5000/imagestream-operator:dev. The push skips TLS
## verification (plain-HTTP test registries) unless IMAGE_TLS_VERIFY=true; credentials: skopeo login.
## Deterministic: the same binary and revision give the same digest, printed last.
IMAGE ?=
IMAGE_TLS_VERIFY ?= false
IMAGE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
.PHONY: image
image:
	$(CARGO) build --release --bin imagestream-operator
	python3 hack/oci_image.py operator --binary $${CARGO_TARGET_DIR:-target}/release/imagestream-operator \
	  --output $${CARGO_TARGET_DIR:-target}/oci/operator \
	  --version "$(IMAGE_VERSION)" --revision "$(IMAGE_REVISION)" $(if $(IMAGE),--push "$(IMAGE)") \
	  $(if $(filter true,$(IMAGE_TLS_VERIFY)),--tls-verify)

clean-cache:
	rm -rf $${IMAGESTREAM_OPERATOR_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/imagestream-operator}
