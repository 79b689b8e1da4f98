#!/usr/bin/env bash
# Runs every test target of the workspace (unit, integration, binaries) and closes with one line
# (`total: N passed, N failed, N skipped`) totalling what all test binaries reported, so a reader of
# the log sees the whole count at the end. A test that could not run its subject here (it calls
# `support::skip`) is counted as skipped, not passed, and listed with its reason.
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
skips=$(mktemp)
trap 'rm -f "$log" "$skips"' EXIT
export IMAGESTREAM_TEST_SKIP_LOG="$skips"
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
skipped_at_run_time=$(wc -l <"$skips")
if [ "$skipped_at_run_time" -gt 0 ]; then
  echo
  echo "skipped here (libtest reports these as passed):"
  awk -F '\t' '{ printf "  %s: %s\n", $1, $2 }' "$skips"
fi
awk -v late="$skipped_at_run_time" '
     /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "total: %d passed, %d failed, %d skipped\n", p - late, f, s + late }' "$log"
exit "$status"
