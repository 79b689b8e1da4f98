#!/usr/bin/env bash
# Runs every test target (unit, integration, binaries) and closes with one line (`total: N passed, N failed, N skipped`) totalling what all
# test binaries reported, so a reader of the log sees the whole count at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# A clean build of every test target takes about 2 GB under target/; say so up front rather than
# leave the reader with a linker's "No space left on device".
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
free_kib=$(df -Pk "$target_dir" | awk 'NR == 2 { print $4 }')
if [ "${free_kib:-0}" -lt $((3 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kib / 1024)) MiB free for $target_dir; a clean test build needs about 2 GiB" >&2
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
