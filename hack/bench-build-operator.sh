#!/usr/bin/env bash
# Builds the operator's release binary as it was at a git revision (default HEAD), from a clean
# export of that revision (uncommitted changes are left out), and prints the binary's path, for
#   make bench OPERATOR_BIN=$(hack/bench-build-operator.sh <revision>)
# Builds go to target/bench/build (BENCH_BUILD_TARGET_DIR), apart from target/release, so the
# checkout's own release binary is never replaced; each revision's binary is kept and reused.
set -euo pipefail

revision=${1:-HEAD}
root=$(git rev-parse --show-toplevel)
commit=$(git -C "$root" rev-parse --short=12 "${revision}^{commit}")
out="$root/target/bench/operator-$commit"
binary="$out/imagestream-operator"

if [ ! -x "$binary" ]; then
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	git -C "$root" archive "$commit" | tar -x -C "$src"
	export CARGO_TARGET_DIR="${BENCH_BUILD_TARGET_DIR:-$root/target/bench/build}"
	# Cargo would take the package built from another directory into the same target directory
	# for fresh; cleaning the package (its dependencies stay) makes the build this revision's.
	cargo clean --release --package imagestream-operator --manifest-path "$src/Cargo.toml" >&2
	cargo build --release --locked --bin imagestream-operator --manifest-path "$src/Cargo.toml" >&2
	mkdir -p "$out"
	cp "$CARGO_TARGET_DIR/release/imagestream-operator" "$binary"
fi
echo "$binary"
