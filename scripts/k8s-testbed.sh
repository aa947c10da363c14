#!/usr/bin/env bash
# A Kubernetes control plane for tests, built from Go modules (testbed/k8s):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
# (which plays the kubelet of a fake Node: pods bound to it become Running
# and Ready, deleted pods go away). Everything listens on 127.0.0.1 only.
#
#   bash scripts/k8s-testbed.sh build       # binaries into the cache (once per version)
#   eval "$(bash scripts/k8s-testbed.sh up)" # start; prints the two exports below
#   bash scripts/k8s-testbed.sh env         # the exports again (and DRYCC_K8S_BIN)
#   bash scripts/k8s-testbed.sh down        # stop by pid, remove the state dir
#   bash scripts/k8s-testbed.sh run CMD...  # up, CMD with the exports, down
#
# `up` prints, on stdout and nothing else:
#   export DRYCC_K8S_STATE=<state dir>
#   export KUBECONFIG=<state dir>/admin.kubeconfig
# The kubeconfig names https://127.0.0.1:<port> with the testbed's CA and a
# static bearer token of the user `admin` (group system:masters); a client
# certificate of the same user is in <state>/pki/admin.{crt,key}.
#
# Needs go (the version testbed/k8s/go.mod names), openssl, curl, python3.
#
#   DRYCC_K8S_CACHE  build cache, outside the clone (default /var/cache/drycc-k8s):
#                    <k8s version>-<hash>/bin, plus Go's module and build caches
#   DRYCC_K8S_STATE  state dir for up/env/down (default for up: a new mktemp -d)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/testbed/k8s"
cache="${DRYCC_K8S_CACHE:-/var/cache/drycc-k8s}"
# Bumped when the way the binaries are built changes (flags, what is built).
recipe=2
node_name=fake-node

log() { echo "k8s-testbed: $*" >&2; }
die() {
    log "$*"
    exit 1
}

k8s_version() {
    awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$src/go.mod"
}

# The build is keyed by what goes into it: the module's go.mod and go.sum,
# every Go file of the mains, and the recipe number.
build_key() {
    local sum
    sum="$(cd "$src" && {
        echo "recipe $recipe"
        find go.mod go.sum cmd -type f \( -name '*.go' -o -name 'go.*' \) | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -c1-12)"
    echo "$(k8s_version)-$sum"
}

bin_dir() { echo "$cache/$(build_key)/bin"; }

go_env() {
    command -v go >/dev/null || die "ERROR: go is missing; the Kubernetes suite cannot run"
    export GOMODCACHE="$cache/go-mod" GOCACHE="$cache/go-build"
    # The go.mod and go.sum committed are the whole truth: never edit them.
    # No VCS stamp: a clone whose .git git will not read (another owner) builds too.
    export GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
}

cmd_build() {
    local key out tmp version kwok_dir v start
    key="$(build_key)"
    out="$cache/$key"
    if [[ -x "$out/bin/kube-apiserver" && -f "$out/.complete" ]]; then
        touch "$out/.complete" 2>/dev/null || true # in use: not pruned
        log "already built: $out/bin"
        return 0
    fi
    go_env
    if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w "$cache" ]]; then
        die "cannot write the build cache $cache (set DRYCC_K8S_CACHE to a directory of yours)"
    fi
    # One build at a time per cache (parallel CI runs on one machine).
    exec 9>"$cache/.build.lock"
    flock 9
    if [[ -f "$out/.complete" ]]; then
        exec 9>&-
        return 0
    fi
    version="$(k8s_version)"
    start=$SECONDS
    log "building Kubernetes $version (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) into $out; a first build takes a while"
    tmp="$(mktemp -d "$cache/.build.XXXXXX")"
    v=k8s.io/component-base/version
    (
        cd "$src"
        go mod download
        go build -trimpath \
            -ldflags "-s -w -X $v.gitVersion=$version -X $v.gitMajor=$(echo "${version#v}" | cut -d. -f1) -X $v.gitMinor=$(echo "$version" | cut -d. -f2) -X $v.gitTreeState=clean" \
            -o "$tmp/bin/" ./cmd/... sigs.k8s.io/kwok/cmd/kwok
        # kwok's stages (how a simulated node and its pods change status):
        # the "fast" set that kwokctl uses, from the kwok module itself.
        kwok_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
        mkdir -p "$tmp/share"
        for f in node/fast/node-initialize.yaml \
            node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
            pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
            echo "---"
            cat "$kwok_dir/kustomize/stage/$f"
        done >"$tmp/share/kwok-stages.yaml"
    ) || {
        rm -rf "$tmp"
        die "build failed"
    }
    rm -rf "$out"
    touch "$tmp/.complete"
    mv "$tmp" "$out"
    # Builds of other inputs (another branch, an older go.sum) unused for a
    # week go: each is 400 MB.
    find "$cache" -mindepth 2 -maxdepth 2 -name .complete -mtime +7 -printf '%h\n' \
        | while read -r old; do rm -rf "$old"; done
    exec 9>&-
    log "built in $((SECONDS - start))s: $out/bin ($(du -sh "$out" | cut -f1))"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- certificates -----------------------------------------------------------

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# new_cert NAME SUBJECT EXTENSIONS: a key and a certificate signed by the CA.
new_cert() {
    local pki="$state/pki" name="$1" subject="$2" ext="$3" ca="${ca:-ca}"
    new_key "$pki/$name.key"
    openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n%b\n' "$ext" >"$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" \
        -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 3650 \
        -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr" "$pki/$name.ext"
}

make_pki() {
    local pki="$state/pki"
    mkdir -p "$pki"
    new_key "$pki/ca.key"
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=drycc-k8s-testbed-ca" -days 3650 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out "$pki/ca.crt" 2>/dev/null
    new_cert apiserver "/CN=kube-apiserver" \
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    new_cert admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
    new_cert controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
    new_cert scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
    new_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
    # The aggregation layer's front proxy has a CA of its own (as kubeadm
    # does): a client certificate of the main CA must not pass for it.
    new_key "$pki/front-proxy-ca.key"
    openssl req -x509 -new -key "$pki/front-proxy-ca.key" -subj "/CN=drycc-k8s-testbed-front-proxy-ca" -days 3650 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out "$pki/front-proxy-ca.crt" 2>/dev/null
    ca=front-proxy-ca new_cert front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage=clientAuth"
    # kwok serves the kubelet's API of the fake node (logs, exec) on 127.0.0.1.
    new_cert kwok "/CN=$node_name" "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:$node_name"
    # Service account tokens are signed by the API server with this key.
    new_key "$pki/sa.key"
    openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    chmod 600 "$pki"/*.key
}

# kubeconfig FILE USER-CREDENTIALS-YAML USER-NAME
kubeconfig() {
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: drycc-testbed
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $(base64 -w0 <"$state/pki/ca.crt")
users:
- name: $3
  user:
$2
contexts:
- name: drycc-testbed
  context:
    cluster: drycc-testbed
    user: $3
current-context: drycc-testbed
EOF
    chmod 600 "$1"
}

# --- processes --------------------------------------------------------------

# start NAME BINARY ARGS...: in the background, its output in logs/NAME.log,
# its pid appended to the pids file (stopped in reverse order by `down`).
start() {
    local name="$1"
    shift
    "$@" </dev/null >"$state/logs/$name.log" 2>&1 &
    echo "$name $!" >>"$state/pids"
}

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$state/pids"; }

# A pid from the pids file is ours only while its command line names the
# state dir (every process gets a path in it): a recycled pid is left alone.
ours() {
    local pid="$1"
    [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$state/"
}

stop_pid() {
    local name="$1" pid="$2" i
    ours "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        ours "$pid" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) still running after 10s, killing it"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        ours "$pid" || return 0
        sleep 0.1
    done
}

stop_all() {
    [[ -f "$state/pids" ]] || return 0
    local name pid
    tac "$state/pids" | while read -r name pid; do
        stop_pid "$name" "$pid"
    done
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds; fails
# at once (with the logs) when a process we started has exited.
wait_for() {
    local what="$1" limit="$2" i name pid
    shift 2
    for ((i = 0; i < limit * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        while read -r name pid; do
            if ! kill -0 "$pid" 2>/dev/null; then
                log "$name exited while waiting for $what; its log:"
                tail -n 40 "$state/logs/$name.log" >&2
                return 1
            fi
        done <"$state/pids"
        sleep 0.2
    done
    log "no $what within ${limit}s; last lines of the logs:"
    for f in "$state"/logs/*.log; do
        echo "== $f" >&2
        tail -n 15 "$f" >&2
    done
    return 1
}

api() {
    local path="$1"
    shift
    curl -sf --noproxy '*' --max-time 10 --cacert "$state/pki/ca.crt" \
        -H "Authorization: Bearer $(cat "$state/admin.token")" "$@" \
        "https://127.0.0.1:$apiserver_port$path"
}

node_ready() {
    api "/api/v1/nodes/$node_name" | python3 -c '
import json, sys
node = json.load(sys.stdin)
ready = [c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
sys.exit(0 if ready and ready[0]["status"] == "True" else 1)'
}

print_env() {
    echo "export DRYCC_K8S_STATE=$state"
    echo "export KUBECONFIG=$state/admin.kubeconfig"
}

cmd_up() {
    local bin share etcd_port etcd_peer_port kcm_port sched_port kwok_port start_s
    cmd_build
    bin="$(bin_dir)"
    share="$(dirname "$bin")/share"
    for tool in openssl curl python3; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y $tool)"
    done
    start_s=$SECONDS
    if [[ -n "${DRYCC_K8S_STATE:-}" ]]; then
        state="$DRYCC_K8S_STATE"
        [[ -f "$state/pids" ]] && die "$state already has a testbed (pids file); run down first"
        mkdir -p "$state"
    else
        state="$(mktemp -d "${TMPDIR:-/tmp}/drycc-k8s.XXXXXX")"
    fi
    state="$(cd "$state" && pwd)"
    mkdir -p "$state/logs"
    : >"$state/pids"
    # Whatever fails from here on, or an interrupt, leaves nothing running.
    trap 'stop_all; rm -rf "$state"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    etcd_port="$(free_port)"
    etcd_peer_port="$(free_port)"
    apiserver_port="$(free_port)"
    kcm_port="$(free_port)"
    sched_port="$(free_port)"
    kwok_port="$(free_port)"

    make_pki
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$state/admin.token"
    chmod 600 "$state/admin.token"
    echo "$(cat "$state/admin.token"),admin,admin,\"system:masters\"" >"$state/pki/tokens.csv"
    chmod 600 "$state/pki/tokens.csv"
    kubeconfig "$state/admin.kubeconfig" "    token: $(cat "$state/admin.token")" admin
    kubeconfig "$state/controller-manager.kubeconfig" "    client-certificate: $state/pki/controller-manager.crt
    client-key: $state/pki/controller-manager.key" system:kube-controller-manager
    kubeconfig "$state/scheduler.kubeconfig" "    client-certificate: $state/pki/scheduler.crt
    client-key: $state/pki/scheduler.key" system:kube-scheduler
    echo "$apiserver_port" >"$state/apiserver.port"

    start etcd "$bin/etcd" \
        --name=testbed --data-dir="$state/etcd" \
        --listen-client-urls="http://127.0.0.1:$etcd_port" \
        --advertise-client-urls="http://127.0.0.1:$etcd_port" \
        --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster="testbed=http://127.0.0.1:$etcd_peer_port" \
        --unsafe-no-fsync=true --log-level=warn
    wait_for "etcd health" 30 curl -sf --noproxy '*' --max-time 2 "http://127.0.0.1:$etcd_port/health"

    start kube-apiserver "$bin/kube-apiserver" \
        --etcd-servers="http://127.0.0.1:$etcd_port" \
        --bind-address=127.0.0.1 --secure-port="$apiserver_port" \
        --advertise-address=127.0.0.1 \
        --endpoint-reconciler-type=none \
        --tls-cert-file="$state/pki/apiserver.crt" --tls-private-key-file="$state/pki/apiserver.key" \
        --client-ca-file="$state/pki/ca.crt" \
        --token-auth-file="$state/pki/tokens.csv" \
        --authorization-mode=Node,RBAC \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$state/pki/sa.pub" \
        --service-account-signing-key-file="$state/pki/sa.key" \
        --service-cluster-ip-range=10.96.0.0/16 \
        --kubelet-client-certificate="$state/pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$state/pki/apiserver-kubelet-client.key" \
        --requestheader-client-ca-file="$state/pki/front-proxy-ca.crt" \
        --requestheader-allowed-names=front-proxy-client \
        --requestheader-username-headers=X-Remote-User \
        --requestheader-group-headers=X-Remote-Group \
        --requestheader-extra-headers-prefix=X-Remote-Extra- \
        --proxy-client-cert-file="$state/pki/front-proxy-client.crt" \
        --proxy-client-key-file="$state/pki/front-proxy-client.key" \
        --allow-privileged=true \
        --profiling=false
    wait_for "kube-apiserver /readyz" 120 api /readyz

    start kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig="$state/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$state/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$state/controller-manager.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$kcm_port" \
        --cert-dir="$state/kcm-certs" \
        --leader-elect=false \
        --use-service-account-credentials=true \
        --service-account-private-key-file="$state/pki/sa.key" \
        --root-ca-file="$state/pki/ca.crt" \
        --cluster-signing-cert-file="$state/pki/ca.crt" \
        --cluster-signing-key-file="$state/pki/ca.key" \
        --service-cluster-ip-range=10.96.0.0/16 \
        --controllers='*' \
        --profiling=false
    start kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig="$state/scheduler.kubeconfig" \
        --authentication-kubeconfig="$state/scheduler.kubeconfig" \
        --authorization-kubeconfig="$state/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$sched_port" \
        --cert-dir="$state/scheduler-certs" \
        --leader-elect=false \
        --profiling=false

    cat >"$state/kwok.yaml" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  cidr: 10.244.0.0/16
  nodeIP: 127.0.0.1
  nodePort: $kwok_port
  serverAddress: 127.0.0.1:$kwok_port
  manageAllNodes: false
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  nodeLeaseDurationSeconds: 40
  nodeLeaseParallelism: 4
  nodePlayStageParallelism: 4
  podPlayStageParallelism: 4
  podsOnNodeSyncParallelism: 4
  enablePodsOnNodeSyncListPager: false
  enablePodsOnNodeSyncStreamWatch: true
  enableCRDs: []
EOF
    cat "$share/kwok-stages.yaml" >>"$state/kwok.yaml"
    start kwok "$bin/kwok" \
        --config="$state/kwok.yaml" \
        --kubeconfig="$state/admin.kubeconfig" \
        --tls-cert-file="$state/pki/kwok.crt" --tls-private-key-file="$state/pki/kwok.key"

    # The one Node: kwok manages it (annotation), keeps its lease and status.
    cat >"$state/node.json" <<EOF
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "$node_name",
   "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
   "labels": {"kubernetes.io/hostname": "$node_name", "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "type": "kwok"}},
 "status": {"capacity": {"cpu": "32", "memory": "64Gi", "pods": "250"},
            "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "250"}}}
EOF
    api /api/v1/nodes -X POST -H 'Content-Type: application/json' -d @"$state/node.json" >/dev/null \
        || die "could not create the Node $node_name"
    wait_for "the Node $node_name to be Ready" 60 node_ready
    # The controller manager is working once namespaces get their default
    # ServiceAccount (pods need one to be admitted).
    wait_for "the ServiceAccount default/default" 60 api /api/v1/namespaces/default/serviceaccounts/default

    trap - EXIT INT TERM
    log "up in $((SECONDS - start_s))s: https://127.0.0.1:$apiserver_port, state $state"
    print_env
}

find_state() {
    state="${1:-${DRYCC_K8S_STATE:-}}"
    [[ -n "$state" ]] || die "no state dir: set DRYCC_K8S_STATE (printed by up) or pass it"
    [[ -d "$state" ]] || die "$state: no such state dir"
    state="$(cd "$state" && pwd)"
}

cmd_down() {
    find_state "${1:-}"
    [[ -f "$state/pids" || -f "$state/admin.kubeconfig" ]] || die "$state does not look like a testbed state dir"
    stop_all
    rm -rf "$state"
    log "down: stopped and removed $state"
}

cmd_env() {
    if [[ -f "$(bin_dir)/kube-apiserver" ]]; then
        echo "export DRYCC_K8S_BIN=$(bin_dir)"
    fi
    if [[ -n "${1:-${DRYCC_K8S_STATE:-}}" ]]; then
        find_state "${1:-}"
        print_env
    fi
}

cmd_run() {
    local exports rc=0
    exports="$(cmd_up)"
    eval "$exports"
    # shellcheck disable=SC2064 # the state dir is fixed now
    trap "bash '$0' down '$DRYCC_K8S_STATE'" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "$@" || rc=$?
    exit "$rc"
}

case "${1:-}" in
build) cmd_build ;;
up) cmd_up ;;
down) cmd_down "${2:-}" ;;
env) cmd_env "${2:-}" ;;
run)
    shift
    [[ $# -gt 0 ]] || die "usage: $0 run COMMAND..."
    cmd_run "$@"
    ;;
*)
    echo "usage: $0 build|up|down|env|run COMMAND..." >&2
    exit 2
    ;;
esac
