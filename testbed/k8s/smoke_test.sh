#!/usr/bin/env bash
# The testbed's smoke test (smoke/smoke_test.go), against a running testbed:
#
#   eval "$(bash scripts/k8s-testbed.sh up)"
#   bash testbed/k8s/smoke_test.sh
#   bash scripts/k8s-testbed.sh down
#
# Go's caches are the testbed's (DRYCC_K8S_CACHE), outside the clone.
set -euo pipefail
cd "$(dirname "$0")"
command -v go >/dev/null || { echo "ERROR: go is missing; the Kubernetes suite cannot run" >&2; exit 1; }
[[ -n "${KUBECONFIG:-}" ]] || { echo "smoke_test: KUBECONFIG is not set (start the testbed: scripts/k8s-testbed.sh up)" >&2; exit 1; }
cache="${DRYCC_K8S_CACHE:-/var/cache/drycc-k8s}"
export GOMODCACHE="$cache/go-mod" GOCACHE="$cache/go-build" GOFLAGS=-mod=readonly GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# -trimpath as the build: the packages it compiled are reused.
exec go test -trimpath -count=1 -v ./smoke/
