#!/usr/bin/env bash
# A Kubernetes cluster for tests, built from Go modules (testbed/k8s):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok
# (which plays the kubelet of a fake Node: pods bound to it become Running
# and Ready, deleted pods go away), and a real Node: kubelet, containerd,
# runc, the CNI bridge and metrics-server (testbed/k8s/node.sh; root only,
# DRYCC_K8S_REAL_NODE=0 leaves it out). The control plane listens on
# 127.0.0.1; the real node on an address of a bridge `up` makes, whose pod
# network stays on this machine.
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
# Needs go (the version testbed/k8s/go.mod names), openssl, curl, python3;
# for the real node: gcc, libseccomp-dev, busybox-static,
# containernetworking-plugins, iproute2, iptables.
#
#   DRYCC_K8S_CACHE  build cache, outside the clone (default /var/cache/drycc-k8s):
#                    <k8s version>-<hash>/bin, plus Go's module and build caches
#   DRYCC_K8S_STATE  state dir for up/env/down (default for up: a new mktemp -d)
#   DRYCC_K8S_REAL_NODE=0  up without the real node (no root needed)
#   DRYCC_K8S_POD_CIDR  the real node's pod /24 (default: the first free one
#                    of 10.85.0.0/16)
#   DRYCC_K8S_NO_QPS_LIMITS=1  lift the client and in-flight limits (as
#                    kwokctl's --disable-qps-limits does): the controller
#                    manager and scheduler may send 5000 requests/s, the API
#                    server queues nothing; for load on many simulated nodes
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/testbed/k8s"
cache="${DRYCC_K8S_CACHE:-/var/cache/drycc-k8s}"
# Bumped when the way the binaries are built changes (flags, what is built).
recipe=4
node_name=fake-node
# The images the real node runs, built here (never pulled): the pause image
# (pinned by containerd as the sandbox image) and busybox for tests.
pause_image=localhost/drycc-testbed/pause:3.10
busybox_image=localhost/drycc-testbed/busybox:1

log() { echo "k8s-testbed: $*" >&2; }
die() {
    log "$*"
    exit 1
}

k8s_version() {
    awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$src/go.mod"
}

# shellcheck source=testbed/k8s/node.sh
source "$src/node.sh"

# The build is keyed by what goes into it: the modules' go.mod and go.sum
# (the control plane's, containerd's, runc's, metrics-server's), every Go
# file of the mains and tools, the busybox the images are made of, and the
# recipe number.
build_key() {
    local sum
    sum="$(cd "$src" && {
        echo "recipe $recipe $pause_image $busybox_image"
        find go.mod go.sum cmd tools containerd runc metrics-server -type f \( -name '*.go' -o -name 'go.*' \) \
            | LC_ALL=C sort | xargs sha256sum
        sha256sum /bin/busybox 2>/dev/null || echo "no /bin/busybox"
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

# module_version DIR MODULE: the version of MODULE that DIR's go.mod requires.
module_version() { (cd "$src/$1" && go list -m -f '{{.Version}}' "$2"); }

build_preflight() {
    command -v gcc >/dev/null || die "gcc is missing (apt-get install -y gcc): runc needs cgo, the pause binary is C"
    [[ -f /usr/include/seccomp.h ]] || die "seccomp.h is missing (apt-get install -y libseccomp-dev): runc is built with seccomp"
    [[ -f /usr/lib/x86_64-linux-gnu/libc.a || -f /usr/lib/libc.a ]] || die "libc.a is missing (apt-get install -y libc6-dev): the pause binary is static"
    [[ -x /bin/busybox ]] && /bin/busybox --list >/dev/null 2>&1 || die "/bin/busybox is missing (apt-get install -y busybox-static): the test images are made of it"
    file_is_static /bin/busybox || die "/bin/busybox is not static (apt-get install -y busybox-static)"
}

# A static binary has no interpreter (PT_INTERP) to load it.
file_is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }

# build_images DIR: the pause image and the busybox image as OCI archives
# in DIR/share/images, from DIR/share/pause and /bin/busybox.
build_images() {
    local out="$1" args=() applet
    mkdir -p "$out/share/images"
    "$out/bin/oci-image" -o "$out/share/images/pause.tar" -name "$pause_image" \
        -file "/pause=$out/share/pause:0755" -entrypoint /pause
    for applet in $(/bin/busybox --list); do
        [[ "$applet" == busybox ]] || args+=(-link "/bin/$applet=busybox")
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$out/share/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$out/share/group"
    "$out/bin/oci-image" -o "$out/share/images/busybox.tar" -name "$busybox_image" \
        -file "/bin/busybox=/bin/busybox:0755" "${args[@]}" \
        -file "/etc/passwd=$out/share/passwd:0644" -file "/etc/group=$out/share/group:0644" \
        -dir /tmp:1777 -dir /root:0700 -dir /proc:0555 -dir /sys:0555 -dir /dev:0755 \
        -cmd sh
    rm -f "$out/share/passwd" "$out/share/group"
}

cmd_build() {
    local key out tmp version kwok_dir v start t containerd_v runc_v ms_v
    key="$(build_key)"
    out="$cache/$key"
    if [[ -x "$out/bin/kube-apiserver" && -f "$out/.complete" ]]; then
        touch "$out/.complete" 2>/dev/null || true # in use: not pruned
        log "already built: $out/bin"
        return 0
    fi
    go_env
    build_preflight
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
    log "building Kubernetes $version (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kwok), containerd, runc, metrics-server and the node's images into $out; a first build takes a while"
    tmp="$(mktemp -d "$cache/.build.XXXXXX")"
    v=k8s.io/component-base/version
    # In the background and waited for: `set -e` holds in it (it would not
    # in a subshell followed by ||), so the first failing step fails it.
    (
        set -e
        cd "$src"
        t=$SECONDS
        go mod download
        go build -trimpath \
            -ldflags "-s -w -X $v.gitVersion=$version -X $v.gitMajor=$(echo "${version#v}" | cut -d. -f1) -X $v.gitMinor=$(echo "$version" | cut -d. -f2) -X $v.gitTreeState=clean" \
            -o "$tmp/bin/" ./cmd/... ./tools/... sigs.k8s.io/kwok/cmd/kwok
        log "control plane, kubelet and kwok built in $((SECONDS - t))s"
        # The container runtime, each from a module of its own (their
        # dependencies differ from Kubernetes'): containerd without cgo,
        # runc with cgo and seccomp (Debian's libseccomp).
        t=$SECONDS
        containerd_v="$(module_version containerd github.com/containerd/containerd/v2)"
        (cd containerd && go mod download && CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
            -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$containerd_v" \
            -o "$tmp/bin/" github.com/containerd/containerd/v2/cmd/containerd \
            github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 github.com/containerd/containerd/v2/cmd/ctr)
        log "containerd $containerd_v built in $((SECONDS - t))s"
        t=$SECONDS
        runc_v="$(module_version runc github.com/opencontainers/runc)"
        (cd runc && go mod download && CGO_ENABLED=1 go build -trimpath -tags seccomp \
            -ldflags "-s -w -X main.version=${runc_v#v}" -o "$tmp/bin/runc" github.com/opencontainers/runc)
        log "runc $runc_v built in $((SECONDS - t))s"
        t=$SECONDS
        ms_v="$(module_version metrics-server sigs.k8s.io/metrics-server)"
        (cd metrics-server && go mod download && CGO_ENABLED=0 go build -trimpath \
            -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$ms_v" \
            -o "$tmp/bin/" sigs.k8s.io/metrics-server/cmd/metrics-server)
        log "metrics-server $ms_v built in $((SECONDS - t))s"
        # The pause container: Kubernetes' own pause.c (PID 1 that sleeps
        # and reaps), static, from the k8s.io/kubernetes module.
        mkdir -p "$tmp/share"
        gcc -static -O2 -Wall -DVERSION="$version" -o "$tmp/share/pause" \
            "$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
        build_images "$tmp"
        # kwok's stages (how a simulated node and its pods change status):
        # the "fast" set that kwokctl uses, from the kwok module itself.
        kwok_dir="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
        for f in node/fast/node-initialize.yaml \
            node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
            pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
            echo "---"
            cat "$kwok_dir/kustomize/stage/$f"
        done >"$tmp/share/kwok-stages.yaml"
    ) &
    if ! wait $!; then
        rm -rf "$tmp"
        die "build failed"
    fi
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
    [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$state/"
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

# teardown: what up made, after a failed up or at down; fails when some
# of it could not be undone (said on stderr).
teardown() {
    node_down
    stop_all
    node_leftovers
}

# remove_state: the state dir, never crossing into a file system mounted
# under it (teardown unmounts them all; one it could not is reported).
remove_state() {
    local left
    left="$(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo)"
    [[ -z "$left" ]] || log "still mounted under $state (left in place): $left"
    rm -rf --one-file-system "$state"
}

cmd_up() {
    local etcd_port etcd_peer_port kcm_port sched_port kwok_port start_s
    local -a qps_flags=() limit_flags=()
    if [[ "${DRYCC_K8S_NO_QPS_LIMITS:-0}" == 1 ]]; then
        qps_flags=(--kube-api-qps=5000 --kube-api-burst=10000)
        limit_flags=(--max-requests-inflight=0 --max-mutating-requests-inflight=0 --enable-priority-and-fairness=false)
    fi
    cmd_build
    bin="$(bin_dir)"
    share="$(dirname "$bin")/share"
    for tool in openssl curl python3; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y $tool)"
    done
    real_node_enabled && node_preflight
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
    # The binaries this testbed runs (ctr is needed again by down).
    echo "$bin" >"$state/bin.path"
    # Whatever fails from here on, or an interrupt, leaves nothing running.
    trap 'teardown || true; remove_state' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    etcd_port="$(free_port)"
    etcd_peer_port="$(free_port)"
    apiserver_port="$(free_port)"
    kcm_port="$(free_port)"
    sched_port="$(free_port)"
    kwok_port="$(free_port)"

    make_pki
    if real_node_enabled; then
        kubelet_port="$(free_port)"
        kubelet_healthz_port="$(free_port)"
        node_net_up
        make_node_pki
        node_cgroups_up
        # containerd starts with etcd: both take a few seconds.
        node_containerd_up
    fi
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
        --kubelet-preferred-address-types=InternalIP \
        --kubelet-certificate-authority="$state/pki/ca.crt" \
        --enable-aggregator-routing=true \
        --allow-privileged=true \
        "${limit_flags[@]}" \
        --profiling=false
    wait_for "kube-apiserver /readyz" 120 api /readyz
    if real_node_enabled; then
        node_kubelet_up
        node_metrics_up
    fi

    # The HPA reacts within seconds (the default sync period is 15 s and
    # CPU of pods younger than 5 minutes is distrusted), so that the
    # walkthrough sees real load scale a type up and back down.
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
        "${qps_flags[@]}" \
        --horizontal-pod-autoscaler-sync-period=3s \
        --horizontal-pod-autoscaler-cpu-initialization-period=10s \
        --horizontal-pod-autoscaler-initial-readiness-delay=5s \
        --profiling=false
    start kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig="$state/scheduler.kubeconfig" \
        --authentication-kubeconfig="$state/scheduler.kubeconfig" \
        --authorization-kubeconfig="$state/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --secure-port="$sched_port" \
        --cert-dir="$state/scheduler-certs" \
        --leader-elect=false \
        "${qps_flags[@]}" \
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
    if real_node_enabled; then
        wait_for "the Node $real_node_name to be Ready" 120 real_node_ready
        log "node $real_node_name Ready after $((SECONDS - start_s))s"
        wait_for "the metrics API (APIService v1beta1.metrics.k8s.io) to be Available" 120 metrics_available
        log "metrics API Available after $((SECONDS - start_s))s"
    fi

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
    bin="$(cat "$state/bin.path" 2>/dev/null || bin_dir)"
    if ! teardown; then
        remove_state
        die "down: $state stopped, but not everything could be undone (see above)"
    fi
    remove_state
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
