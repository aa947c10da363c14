#!/usr/bin/env bash
# The dashboard's browser tests: headless Chromium (Debian's `chromium`)
# driven by playwright-core (pinned in crates/controller/tests/browser/),
# against a real controller. Installs Chromium when missing (as root, with
# apt) and the npm packages from the lock file, then runs the test that
# tests/dashboard_browser.rs ignores in a plain `cargo test`.
#
#   bash scripts/browser-tests.sh
#
# Screenshots: <target>/dashboard-screenshots/ (or $DRYCC_DASHBOARD_SCREENSHOTS).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x "${DRYCC_CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing (apt-get install chromium, or run as root)" >&2
    exit 1
  fi
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for the browser tests" >&2
  exit 1
fi
(cd crates/controller/tests/browser && npm ci --no-audit --no-fund --loglevel=error)
cargo test --locked -p drycc-controller --test dashboard_browser -- --ignored --nocapture
