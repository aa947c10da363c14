#!/usr/bin/env bash
# Property-based tests of the REST API against its own OpenAPI document:
# a real drycc-controller on free loopback ports with a temporary data dir,
# a registered user with a token and an app, then schemathesis against
# /v2/openapi.json. Every answer must be a non-5xx that matches the
# document's schema for its status code.
#
#   SCHEMATHESIS_MAX_TIME      seconds of generated requests (default 120)
#   SCHEMATHESIS_MAX_EXAMPLES  cases per operation and phase (default 40)
#   DRYCC_PY_CACHE             where the pinned schemathesis lives
#                              (default /var/cache/drycc-py)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
max_time="${SCHEMATHESIS_MAX_TIME:-120}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-40}"
cache="${DRYCC_PY_CACHE:-/var/cache/drycc-py}"
venv="$cache/schemathesis-$SCHEMATHESIS_VERSION"

# The virtualenv lives outside the clone and is reused; it is rebuilt only
# when the pinned version changes.
if [ ! -x "$venv/bin/schemathesis" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build -q --locked -p drycc-controller
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
controller="$target_dir/debug/drycc-controller"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work="$(mktemp -d)"
# A root controller runs apps as users of their own, who must be able to
# pass through to their checkouts under the data directory.
chmod 711 "$work"
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Anything the run left running under the controller stops with it.
    DRYCC_DATA_DIR="$work/data" DRYCC_RUN_DIR="$work/data/run" \
      "$controller" stop-apps >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(free_port)"
url="http://127.0.0.1:$port"
DRYCC_LISTEN="127.0.0.1:$port" \
  DRYCC_ROUTER_LISTEN=off \
  DRYCC_DATA_DIR="$work/data" \
  DRYCC_RUN_DIR="$work/data/run" \
  DRYCC_DEPLOY_TIMEOUT=10 \
  DRYCC_TERMINATION_GRACE_PERIOD=2 \
  DRYCC_LOG=warn \
  "$controller" >"$work/controller.log" 2>&1 &
pid=$!

for _ in $(seq 1 300); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/controller.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$url/healthz" >/dev/null

json() { curl -fsS -H 'Content-Type: application/json' "$@"; }
json -X POST "$url/v2/auth/register/" \
  -d '{"username":"fuzzer","password":"fuzzer-password","email":"fuzzer@example.com"}' >/dev/null
token="$(json -X POST "$url/v2/auth/login/" -d '{"username":"fuzzer","password":"fuzzer-password"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
json -X POST "$url/v2/apps/" -H "Authorization: token $token" -d '{"id":"fuzzed"}' >/dev/null

# Path parameters named `app` are the app above, so that requests get past
# the app lookup into the handlers.
cat >"$work/schemathesis.toml" <<'TOML'
[parameters]
"path.app" = "fuzzed"
TOML

echo "schemathesis $SCHEMATHESIS_VERSION against $url/v2/openapi.json: at most ${max_time}s, ${max_examples} examples per operation"
status=0
# Logging out or revoking the user's tokens would end the run's own
# session, and destroying the app would leave nothing to test: those three
# are covered by the end-to-end tests instead.
# From the temporary dir: schemathesis keeps its state in ./.schemathesis.
(cd "$work" && timeout --kill-after=10 "$((max_time + 120))" \
  "$venv/bin/schemathesis" --no-color --config-file "$work/schemathesis.toml" run "$url/v2/openapi.json" \
  --checks not_a_server_error,response_schema_conformance \
  --header "Authorization: token $token" \
  --exclude-operation-id auth_logout \
  --exclude-operation-id auth_revoke_user_tokens \
  --exclude-operation-id apps_destroy \
  --max-examples "$max_examples" \
  --max-time "$max_time" \
  --request-timeout 30 \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --generation-database none \
  --suppress-health-check all) || status=$?
if [ "$status" -ne 0 ]; then
  echo "schemathesis failed (exit $status); controller log:" >&2
  grep -E "ERROR|panicked" "$work/controller.log" | tail -n 40 >&2 || true
fi
exit "$status"
