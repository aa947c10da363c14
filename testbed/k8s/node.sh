# The testbed's real node, sourced by scripts/k8s-testbed.sh: containerd,
# runc, the CNI bridge, a kubelet and metrics-server on this machine, beside
# kwok's simulated node. See README.md ("The real node").
#
# What `up` makes, it records in <state>/node.env, and `down` undoes exactly
# that, by pid and by name: the processes (the pids file; containers by the
# cgroups under our cgroup root; shims by the containerd socket in their
# command line), every mount under the state dir (kubelet's volumes, the
# containers' root filesystems, the pods' network namespaces), the cgroups,
# the bridge, our iptables rules and kubelet's chains (when they did not
# exist before), and the kernel settings kubelet changes.

real_node_name=real-node
# The machine's kubelet chains and kernel settings before the first real
# node started, kept while one runs (the testbeds of a machine share it).
host_env="$cache/.real-node-host.env"
# The pool pod networks are taken from, one /24 per testbed; the first /24
# that overlaps nothing on this machine is used (DRYCC_K8S_POD_CIDR chooses).
pod_pool=10.85.0.0/16
# The cluster's own ranges, which a pod network must not overlap either:
# services, and the IPs kwok gives its simulated pods.
cluster_ranges="10.96.0.0/16 10.244.0.0/16"
# What kubelet writes on start (container_manager_linux.go), restored by down.
kubelet_sysctls="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
# The chains kubelet creates (kubelet_network_linux.go), table:chain.
kubelet_chains="mangle:KUBE-IPTABLES-HINT filter:KUBE-FIREWALL mangle:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY filter:KUBE-KUBELET-CANARY"

real_node_enabled() { [[ "${DRYCC_K8S_REAL_NODE:-1}" != 0 ]]; }

node_preflight() {
    [[ "$(id -u)" == 0 ]] || die "the real node needs root (containers, a bridge, cgroups); run as root, or DRYCC_K8S_REAL_NODE=0 for the simulated node alone"
    local tool
    for tool in ip iptables ip6tables mount umount flock sysctl; do
        command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y iproute2 iptables mount util-linux procps)"
    done
    for tool in bridge host-local loopback; do
        [[ -x "/usr/lib/cni/$tool" ]] || die "/usr/lib/cni/$tool is missing (apt-get install -y containernetworking-plugins)"
    done
    [[ -d /sys/fs/cgroup/pids && -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/cpu ]] \
        || die "the real node expects cgroup v1 with one mount per controller under /sys/fs/cgroup (found: $(ls /sys/fs/cgroup | tr '\n' ' '))"
}

# pick_pod_cidr: the first /24 of the pool (or DRYCC_K8S_POD_CIDR) that
# overlaps no address and no route of this machine (default routes aside:
# they are "everything else") nor the cluster's ranges. Prints the CIDR.
pick_pod_cidr() {
    {
        ip -4 -o addr show | awk '{ print $4 }'
        ip -4 route show table all | awk '$1 == "default" { next }
            $1 ~ /^(local|broadcast|unreachable|blackhole|prohibit|throw|anycast|multicast)$/ { print $2; next }
            { print $1 }'
        printf '%s\n' $cluster_ranges
    } | python3 -c '
import ipaddress, sys
used = []
for line in sys.stdin:
    try:
        used.append(ipaddress.ip_network(line.strip(), strict=False))
    except ValueError:
        pass
wanted = sys.argv[1]
if wanted:
    try:
        net = ipaddress.ip_network(wanted)
    except ValueError as e:
        sys.exit(f"DRYCC_K8S_POD_CIDR={wanted}: {e} (want a private /24 such as 10.85.7.0/24)")
    if net.prefixlen != 24 or not net.is_private:
        sys.exit(f"DRYCC_K8S_POD_CIDR={wanted}: want a private /24 such as 10.85.7.0/24")
    clash = " ".join(str(u) for u in used if u.overlaps(net))
    if clash:
        sys.exit(f"DRYCC_K8S_POD_CIDR={wanted} overlaps {clash} on this machine")
    print(net)
    sys.exit(0)
for net in ipaddress.ip_network(sys.argv[2]).subnets(new_prefix=24):
    if not any(u.overlaps(net) for u in used):
        print(net)
        sys.exit(0)
sys.exit(f"every /24 of {sys.argv[2]} overlaps an address or route of this machine; set DRYCC_K8S_POD_CIDR")
' "${DRYCC_K8S_POD_CIDR:-}" "$pod_pool"
}

# The forwarding rules that keep pods on this machine: traffic between pods
# on the bridge passes (whatever the FORWARD policy, e.g. Docker's DROP),
# traffic from the bridge to anywhere else is dropped.
forward_rules() {
    echo "-i $bridge -o $bridge -m comment --comment drycc-testbed-$bridge -j ACCEPT"
    echo "-i $bridge ! -o $bridge -m comment --comment drycc-testbed-$bridge -j DROP"
}

# node_net_up: the bridge, its address (the node's IP), the forwarding
# rules. Under a lock in the build cache (the testbeds of one machine
# share it): two testbeds never pick one network.
node_net_up() {
    local n rule
    exec 8>"$cache/.net.lock"
    flock 8
    pod_cidr="$(pick_pod_cidr)" || die "no pod network: see above"
    n="$(echo "$pod_cidr" | cut -d. -f3)"
    node_ip="$(echo "$pod_cidr" | cut -d. -f1-3).1"
    bridge="drycctb$n"
    cgroup_root="/drycc-testbed-$n"
    ip link show "$bridge" >/dev/null 2>&1 && die "the bridge $bridge exists already (another testbed's, or left over: ip link del $bridge)"
    {
        echo "pod_cidr=$pod_cidr"
        echo "node_ip=$node_ip"
        echo "bridge=$bridge"
        echo "cgroup_root=$cgroup_root"
    } >>"$state/node.env"
    ip link add "$bridge" type bridge
    echo "made_bridge=1" >>"$state/node.env"
    ip addr add "$node_ip/24" dev "$bridge"
    # IPv4 only: no IPv6 address on the bridge, not even link-local.
    sysctl -q -w "net.ipv6.conf.$bridge.disable_ipv6=1" 2>/dev/null || true
    ip link set "$bridge" up
    # Kubelet's chains and kernel settings as they were before the first
    # real node of this machine started (the last one to go restores them).
    if [[ ! -f "$host_env" ]]; then
        {
            for rule in $kubelet_chains; do
                if iptables -t "${rule%%:*}" -S "${rule#*:}" >/dev/null 2>&1; then
                    echo "had_chain_${rule//[:-]/_}=1"
                fi
            done
            for rule in $kubelet_sysctls; do
                echo "sysctl_${rule//./_}=$(sysctl -n "$rule")"
            done
        } >"$host_env.tmp"
        mv "$host_env.tmp" "$host_env"
    fi
    forward_rules | tac | while read -r rule; do
        # shellcheck disable=SC2086 # a rule is words
        iptables -I FORWARD 1 $rule
    done
    echo "made_forward_rules=1" >>"$state/node.env"
    check_contained
    exec 8>&-
}

# other_real_nodes: whether the kubelet of another testbed runs.
other_real_nodes() {
    local proc cmdline
    for proc in /proc/[0-9]*; do
        cmdline="$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")"
        [[ "$cmdline" == */bin/kubelet\ --config=*/kubelet/config.yaml* && "$cmdline" != *"$state/"* ]] && return 0
    done
    return 1
}

# check_contained: refuses to go on unless the pod network is this
# machine's alone: the CIDR still overlaps nothing else (a route added
# meanwhile), our FORWARD rules come first, and no NAT rule names the pod
# network (pods have no default route either: see the CNI configuration).
check_contained() {
    local rule others
    others="$(ip -4 route show table all | grep -vF "dev $bridge" | awk '$1 != "default" { print }' \
        | python3 -c '
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1])
for line in sys.stdin:
    words = line.split()
    dest = words[1] if words[0] in ("local", "broadcast", "unreachable", "blackhole", "prohibit", "throw") else words[0]
    try:
        if ipaddress.ip_network(dest, strict=False).overlaps(net):
            print(line.strip())
    except ValueError:
        pass' "$pod_cidr")"
    [[ -z "$others" ]] || die "routes of this machine overlap the pod network $pod_cidr: $others"
    # Ours first, or after other testbeds' (which match their bridges only).
    local before
    while read -r rule; do
        # shellcheck disable=SC2086
        iptables -C FORWARD $rule 2>/dev/null || die "the FORWARD rule '$rule' is missing"
    done < <(forward_rules)
    before="$(iptables -S FORWARD | grep '^-A' | sed "/drycc-testbed-$bridge /q" \
        | grep -v -e "drycc-testbed-$bridge " -e '--comment drycc-testbed-drycctb[0-9]* ' || true)"
    [[ -z "$before" ]] || die "rules come before ours in the FORWARD chain: $before"
    if iptables -t nat -S | grep -F -- "${pod_cidr%/*}" | grep -q -E 'MASQUERADE|SNAT'; then
        die "a NAT rule names the pod network $pod_cidr: $(iptables -t nat -S | grep -F -- "${pod_cidr%/*}")"
    fi
}

# cgroup_dirs: our cgroup root in every hierarchy (the v1 controllers',
# and the v2 one mounted beside them, where runc makes its cgroups too).
cgroup_dirs() {
    local h
    for h in /sys/fs/cgroup/*/; do
        [[ -f "$h/cgroup.procs" ]] && echo "${h%/}$cgroup_root"
    done
}

# The kubelet wants the cgroup root in every v1 hierarchy.
node_cgroups_up() {
    local d parent
    for d in $(cgroup_dirs); do
        [[ -f "$(dirname "$d")/cgroup.controllers" ]] && continue
        mkdir -p "$d"
        # cpuset: a child starts with no CPUs and no memory nodes.
        if [[ -f "$d/cpuset.cpus" ]]; then
            parent="$(dirname "$d")"
            cat "$parent/cpuset.cpus" >"$d/cpuset.cpus"
            cat "$parent/cpuset.mems" >"$d/cpuset.mems"
        fi
    done
    echo "made_cgroups=1" >>"$state/node.env"
}

make_node_pki() {
    new_cert kubelet-client "/O=system:nodes/CN=system:node:$real_node_name" "extendedKeyUsage=clientAuth"
    new_cert kubelet-serving "/CN=system:node:$real_node_name" \
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:$node_ip,DNS:$real_node_name"
    new_cert metrics-server "/CN=metrics-server.kube-system.svc" \
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:$node_ip,DNS:metrics-server.kube-system.svc"
    new_cert metrics-server-client "/CN=system:metrics-server" "extendedKeyUsage=clientAuth"
    chmod 600 "$state/pki"/*.key
}

ctr_() { "$bin/ctr" --address "$state/containerd/containerd.sock" --namespace k8s.io "$@"; }

node_containerd_up() {
    local c="$state/containerd"
    mkdir -p "$c/root" "$c/state" "$c/runc" "$c/opt" "$state/cni/net.d" "$state/cni/ipam"
    # No route in the pods but their own subnet (isGateway false, no
    # routes): a pod reaches the other pods and this node's address only.
    cat >"$state/cni/net.d/10-drycc-testbed.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "drycc-testbed-$bridge",
  "plugins": [{
    "type": "bridge",
    "bridge": "$bridge",
    "isGateway": false,
    "isDefaultGateway": false,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": "$pod_cidr", "gateway": "$node_ip"}]],
      "dataDir": "$state/cni/ipam"
    }
  }]
}
EOF
    # Its own socket, root and state (dockerd attaches to the default
    # socket when it exists), absolute shim and runc paths, the pause image
    # built here and pinned, network namespaces under the state dir.
    cat >"$c/config.toml" <<EOF
version = 3
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[debug]
  address = "$c/debug.sock"
  level = "info"
[metrics]
  address = ""

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$c/opt"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "$pause_image"
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    # Processes here may lack CAP_SYS_RESOURCE (this machine's do), so no
    # container's OOM score goes below containerd's own (the kubelet asks
    # -998 for pause).
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    enable_criu = false
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        runtime_path = "$bin/containerd-shim-runc-v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$bin/runc"
          Root = "$c/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["/usr/lib/cni"]
      conf_dir = "$state/cni/net.d"
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
EOF
    [[ -d /run/containerd ]] || echo "made_run_containerd=1" >>"$state/node.env"
    [[ -d /run/containerd/s ]] || echo "made_run_containerd_s=1" >>"$state/node.env"
    start containerd "$bin/containerd" --config "$c/config.toml"
    wait_for "containerd" 60 ctr_ version
    local image
    for image in "$share"/images/*.tar; do
        ctr_ images import --platform linux/amd64 "$image" >/dev/null 2>>"$state/logs/ctr.log" \
            || die "could not import $image into containerd"
    done
}

node_kubelet_up() {
    local k="$state/kubelet"
    mkdir -p "$k/root" "$state/pod-logs"
    kubeconfig "$state/kubelet.kubeconfig" "    client-certificate: $state/pki/kubelet-client.crt
    client-key: $state/pki/kubelet-client.key" "system:node:$real_node_name"
    # cgroup v1 without systemd: cgroupfs, and failCgroupV1 false (1.37
    # refuses v1 otherwise). Eviction on absolute amounts and image GC only
    # on a full disk: a short disk must not evict the tests' pods or
    # collect the images imported here (nothing can pull them again).
    cat >"$k/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $state/pki/kubelet-serving.crt
tlsPrivateKeyFile: $state/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$state/containerd/containerd.sock
podLogsDir: $state/pod-logs
resolvConf: ""
clusterDomain: cluster.local
registerWithTaints:
- {key: drycc.cc/real-node, value: "true", effect: NoSchedule}
evictionHard:
  memory.available: 100Mi
  nodefs.available: 512Mi
  imagefs.available: 512Mi
  nodefs.inodesFree: 2%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 50
# A crashing container is restarted within 2 s, not after minutes of
# back-off (KubeletCrashLoopBackOffMax, beta and on since 1.35): tests of
# crashes end soon.
crashLoopBackOff:
  maxContainerRestartPeriod: 2s
serializeImagePulls: false
nodeStatusUpdateFrequency: 5s
EOF
    start kubelet "$bin/kubelet" \
        --config="$k/config.yaml" \
        --kubeconfig="$state/kubelet.kubeconfig" \
        --root-dir="$k/root" \
        --cert-dir="$k/pki" \
        --hostname-override="$real_node_name" \
        --node-ip="$node_ip" \
        --node-labels="drycc.cc/testbed-node=real" \
        --v=1
}

# The metrics API: metrics-server as a process on this node's address,
# reached by the aggregator (--enable-aggregator-routing) through a Service
# without selector and an EndpointSlice naming that address, registered as
# the APIService v1beta1.metrics.k8s.io; its RBAC is upstream's.
node_metrics_up() {
    local ms_port obj
    ms_port="$(free_port)"
    kubeconfig "$state/metrics-server.kubeconfig" "    client-certificate: $state/pki/metrics-server-client.crt
    client-key: $state/pki/metrics-server-client.key" system:metrics-server
    for obj in \
        '/apis/rbac.authorization.k8s.io/v1/clusterroles {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"system:metrics-server"},"rules":[{"apiGroups":[""],"resources":["nodes/metrics"],"verbs":["get"]},{"apiGroups":[""],"resources":["pods","nodes"],"verbs":["get","list","watch"]}]}' \
        '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"system:metrics-server"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:metrics-server"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"system:metrics-server"}]}' \
        '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding","metadata":{"name":"metrics-server:system:auth-delegator"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:auth-delegator"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"system:metrics-server"}]}' \
        '/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings {"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{"name":"metrics-server-auth-reader","namespace":"kube-system"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"extension-apiserver-authentication-reader"},"subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"system:metrics-server"}]}' \
        '/api/v1/namespaces/kube-system/services {"apiVersion":"v1","kind":"Service","metadata":{"name":"metrics-server","namespace":"kube-system"},"spec":{"ports":[{"name":"https","port":443,"targetPort":'"$ms_port"',"protocol":"TCP"}]}}' \
        '/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"metrics-server","namespace":"kube-system","labels":{"kubernetes.io/service-name":"metrics-server","endpointslice.kubernetes.io/managed-by":"drycc-testbed"}},"addressType":"IPv4","endpoints":[{"addresses":["'"$node_ip"'"],"conditions":{"ready":true}}],"ports":[{"name":"https","port":'"$ms_port"',"protocol":"TCP"}]}' \
        '/apis/apiregistration.k8s.io/v1/apiservices {"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1beta1.metrics.k8s.io"},"spec":{"group":"metrics.k8s.io","version":"v1beta1","service":{"namespace":"kube-system","name":"metrics-server","port":443},"caBundle":"'"$(base64 -w0 <"$state/pki/ca.crt")"'","groupPriorityMinimum":100,"versionPriority":100}}'; do
        api "${obj%% *}" -X POST -H 'Content-Type: application/json' -d "${obj#* }" >/dev/null \
            || die "could not create ${obj%% *}: ${obj#* }"
    done
    start metrics-server "$bin/metrics-server" \
        --kubeconfig="$state/metrics-server.kubeconfig" \
        --authentication-kubeconfig="$state/metrics-server.kubeconfig" \
        --authorization-kubeconfig="$state/metrics-server.kubeconfig" \
        --bind-address="$node_ip" --secure-port="$ms_port" \
        --tls-cert-file="$state/pki/metrics-server.crt" --tls-private-key-file="$state/pki/metrics-server.key" \
        --cert-dir="$state/metrics-server-certs" \
        --kubelet-certificate-authority="$state/pki/ca.crt" \
        --kubelet-client-certificate="$state/pki/metrics-server-client.crt" \
        --kubelet-client-key="$state/pki/metrics-server-client.key" \
        --kubelet-preferred-address-types=InternalIP \
        --kubelet-use-node-status-port \
        --node-selector=drycc.cc/testbed-node=real \
        --metric-resolution=10s --kubelet-request-timeout=5s \
        --profiling=false
}

real_node_ready() { node_name="$real_node_name" node_ready; }

metrics_available() {
    api /apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io | python3 -c '
import json, sys
s = json.load(sys.stdin)
ok = [c for c in s.get("status", {}).get("conditions", []) if c["type"] == "Available"]
sys.exit(0 if ok and ok[0]["status"] == "True" else 1)'
}

# node_down: everything node_*_up made, in the order that lets each part go
# cleanly; every step runs even when an earlier one failed.
node_down() {
    [[ -f "$state/node.env" ]] || return 0
    # Every step is tried: a failure of one must not leave the rest.
    local -
    set +e
    local made_bridge="" made_forward_rules="" made_cgroups="" made_run_containerd="" made_run_containerd_s=""
    local bridge="" cgroup_root="" pod_cidr="" node_ip="" name pid id i rule var
    # shellcheck disable=SC1091 # written by up
    source "$state/node.env"
    local shims
    shims="$(shim_ids)"
    for name in metrics-server kubelet; do
        pid="$(pid_of "$name")"
        [[ -n "$pid" ]] && stop_pid "$name" "$pid"
    done
    # The containers, through containerd while it runs: tasks killed and
    # deleted (their shims exit), then the containers.
    pid="$(pid_of containerd)"
    if [[ -n "$pid" ]] && ours "$pid" && [[ -S "$state/containerd/containerd.sock" ]]; then
        for id in $(ctr_ tasks ls -q 2>/dev/null); do
            ctr_ tasks delete -f "$id" >/dev/null 2>&1 || true
        done
        for id in $(ctr_ containers ls -q 2>/dev/null); do
            ctr_ containers delete "$id" >/dev/null 2>&1 || true
        done
        # Shims with no task left exit on their own (and remove their
        # sockets); a few seconds for them.
        for ((i = 0; i < 50; i++)); do
            [[ -z "$(shim_ids)" ]] && break
            sleep 0.1
        done
        stop_pid containerd "$pid"
    fi
    # Whatever is left: processes in our cgroups, then shims (their command
    # line names our containerd socket).
    if [[ -n "$cgroup_root" ]]; then
        for ((i = 0; i < 50; i++)); do
            pids="$(cat $(find "/sys/fs/cgroup/pids$cgroup_root" -name cgroup.procs 2>/dev/null) /dev/null 2>/dev/null)"
            [[ -z "$pids" ]] && break
            # shellcheck disable=SC2086
            kill -KILL $pids 2>/dev/null || true
            sleep 0.1
        done
    fi
    local proc cmdline
    for proc in /proc/[0-9]*; do
        pid="${proc#/proc/}"
        [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
        cmdline="$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")"
        [[ "$cmdline" == *"-address $state/containerd/containerd.sock"* ]] || continue
        log "killing leftover ${cmdline:0:100} (pid $pid)"
        kill -KILL "$pid" 2>/dev/null
    done
    # Mounts under the state dir, deepest first, until none is left (kubelet
    # makes its root dir a shared mount, so some appear twice).
    for ((i = 0; i < 10; i++)); do
        mapfile -t mounts < <(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -ru)
        [[ ${#mounts[@]} -eq 0 ]] && break
        for m in "${mounts[@]}"; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
    done
    if [[ -n "$made_cgroups" && -n "$cgroup_root" ]]; then
        for d in $(cgroup_dirs); do
            [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
            [[ -d "$d" ]] && log "could not remove the cgroup $d"
        done
    fi
    if [[ -n "$made_forward_rules" && -n "$bridge" ]]; then
        while read -r rule; do
            # shellcheck disable=SC2086
            while iptables -C FORWARD $rule 2>/dev/null; do iptables -D FORWARD $rule; done
        done < <(forward_rules)
    fi
    [[ -n "$made_bridge" && -n "$bridge" ]] && ip link del "$bridge" 2>/dev/null
    # A shim killed leaves its socket in containerd's shared directory:
    # its name is the hash of our address, namespace and the shim's id.
    for id in $shims $(shim_ids); do
        rm -f "$(shim_socket "$id")"
    done
    [[ -n "$made_run_containerd_s" ]] && rmdir /run/containerd/s 2>/dev/null
    [[ -n "$made_run_containerd" ]] && rmdir /run/containerd 2>/dev/null
    node_host_restore
    return 0
}

# node_host_restore: the last real node of the machine to go puts the
# kubelet's chains and kernel settings back as they were before the first
# started.
node_host_restore() {
    local rule var tool
    exec 8>"$cache/.net.lock"
    flock 8
    if [[ ! -f "$host_env" ]] || other_real_nodes; then
        exec 8>&-
        return 0
    fi
    # shellcheck disable=SC1090 # written by up
    source "$host_env"
    # Kubelet's chains (when none was there before), IPv4 and IPv6.
    if [[ -z "${had_chain_filter_KUBE_FIREWALL:-}" ]]; then
        for tool in iptables ip6tables; do
            while "$tool" -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
            while "$tool" -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
        done
    fi
    for rule in $kubelet_chains; do
        var="had_chain_${rule//[:-]/_}"
        [[ -n "${!var:-}" ]] && continue
        for tool in iptables ip6tables; do
            "$tool" -t "${rule%%:*}" -F "${rule#*:}" 2>/dev/null
            "$tool" -t "${rule%%:*}" -X "${rule#*:}" 2>/dev/null
        done
    done
    for rule in $kubelet_sysctls; do
        var="sysctl_${rule//./_}"
        [[ -n "${!var:-}" && "$(sysctl -n "$rule" 2>/dev/null)" != "${!var}" ]] && sysctl -q -w "$rule=${!var}"
    done
    rm -f "$host_env"
    exec 8>&-
}

# shim_ids: the ids of the running shims of our containerd.
shim_ids() {
    local proc cmdline
    for proc in /proc/[0-9]*; do
        cmdline="$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")"
        [[ "$cmdline" == *"-address $state/containerd/containerd.sock"* && "$cmdline" =~ -id\ ([0-9a-f]+) ]] \
            && echo "${BASH_REMATCH[1]}"
    done
    return 0
}

# shim_socket ID: where containerd's shim of ID listens (SocketAddress in
# containerd's pkg/shim: /run/containerd/s/<sha256 of address/ns/id>).
shim_socket() {
    echo "/run/containerd/s/$(printf '%s' "$state/containerd/containerd.sock/k8s.io/$1" | sha256sum | cut -d' ' -f1)"
}

# node_leftovers: says what of the testbed is still there once it was
# stopped (a process naming the state dir, a mount under it, the node's
# bridge, rules or cgroups); fails if anything.
node_leftovers() {
    local left=() proc cmdline d bridge="" cgroup_root=""
    # shellcheck disable=SC1091 # written by up
    [[ -f "$state/node.env" ]] && source "$state/node.env"
    for proc in /proc/[0-9]*; do
        [[ "${proc#/proc/}" == "$$" || "${proc#/proc/}" == "$BASHPID" ]] && continue
        cmdline="$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline")"
        [[ "$cmdline" == *"$state/"* && "$cmdline" != *k8s-testbed.sh* ]] && left+=("process ${proc#/proc/}: ${cmdline:0:80}")
    done
    while read -r d; do left+=("mount $d"); done < <(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo)
    if [[ -n "$bridge" ]]; then
        ip link show "$bridge" >/dev/null 2>&1 && left+=("link $bridge")
        iptables -S FORWARD | grep -qF "drycc-testbed-$bridge" && left+=("FORWARD rules drycc-testbed-$bridge")
    fi
    if [[ -n "$cgroup_root" ]]; then
        for d in $(cgroup_dirs); do [[ -d "$d" ]] && left+=("cgroup $d"); done
    fi
    [[ ${#left[@]} -eq 0 ]] && return 0
    log "left behind: $(printf '%s; ' "${left[@]}")"
    return 1
}
