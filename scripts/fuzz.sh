#!/usr/bin/env bash
# Runs each fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for a bounded time
# and prints what it did: runs, coverage, corpus size, and any crash.
#
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_TARGETS     space-separated targets (default: all of them)
#   FUZZ_CORPUS_DIR  where corpora persist between runs, one directory per
#                    target (default /var/cache/drycc-fuzz/corpus)
#
# cargo-fuzz needs a nightly toolchain (`cargo +nightly`); it is installed
# into ~/.cargo/bin when missing. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script; replay it with
# `cargo +nightly fuzz run <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
corpora="${FUZZ_CORPUS_DIR:-/var/cache/drycc-fuzz/corpus}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "ERROR: the fuzz targets need a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi

cd fuzz
targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
# One build of every target before the clock starts.
cargo +nightly fuzz build
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

failed=()
summary=()
for target in $targets; do
  mkdir -p "$corpora/$target"
  echo "fuzzing $target for ${seconds}s (corpus $corpora/$target)"
  status=0
  # libFuzzer stops itself at -max_total_time; timeout is a backstop.
  timeout --kill-after=10 "$((seconds + 120))" \
    cargo +nightly fuzz run "$target" "$corpora/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$logs/$target.log" 2>&1 || status=$?
  runs="$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$logs/$target.log" | tail -n 1 | grep -oE '[0-9]+ runs' || echo '? runs')"
  last="$(grep -E '^#[0-9]+' "$logs/$target.log" | tail -n 1)"
  cov="$(grep -oE 'cov: [0-9]+' <<<"$last" || echo 'cov: ?')"
  features="$(grep -oE 'ft: [0-9]+' <<<"$last" || echo 'ft: ?')"
  corpus="$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" || echo 'corp: ?')"
  if [ "$status" -eq 0 ]; then
    summary+=("$target: ok, $runs in ${seconds}s, $cov, $features, $corpus")
  else
    summary+=("$target: FAILED (exit $status) after $runs, $cov")
    failed+=("$target")
    echo "---- $target: the end of libFuzzer's output ----" >&2
    grep -vE '^#[0-9]+' "$logs/$target.log" | tail -n 60 >&2
  fi
done

echo "fuzz results (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
