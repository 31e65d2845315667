#!/usr/bin/env bash
# Times the README's two commands on a fresh clone, as a new user meets them: an empty CARGO_HOME
# (every crate downloaded), an empty target/, default settings. Writes the cargo --timings pages and
# the logs next to the clone and prints a two-line summary (docs/performance.md, "Build and test").
#
#   ci/build-times.sh [REV] [WORKDIR]     (REV defaults to HEAD; WORKDIR to a new temp folder)
set -euo pipefail
rev=${1:-HEAD}
work=${2:-$(mktemp -d)}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
mkdir -p "$work"
rm -rf "$work/clone" "$work/cargo-home"
git clone -q "$repo" "$work/clone"
git -C "$work/clone" checkout -q "$rev"
export CARGO_HOME="$work/cargo-home" CARGO_TERM_COLOR=never
mkdir -p "$CARGO_HOME"
# rustup's proxies live in the user's cargo home; the fresh one only holds the registry.
export PATH="${RUSTUP_CARGO_BIN:-$HOME/.cargo/bin}:$PATH"
cd "$work/clone"

timed() {  # timed NAME CMD... → seconds, log and timings page under $work
  local name=$1 start rc
  shift
  start=$(date +%s)
  set +e
  "$@" >"$work/$name.log" 2>&1
  rc=$?
  set -e
  cp target/cargo-timings/cargo-timing.html "$work/$name-timings.html" 2>/dev/null || true
  echo "$name: exit $rc, $(($(date +%s) - start)) s ($(grep -m1 -o 'Finished .* in .*' "$work/$name.log" || echo 'no build line'))"
}

timed consistency cargo run --timings -p xtask -- consistency
timed test cargo test --workspace --timings
echo "logs and --timings pages: $work"
