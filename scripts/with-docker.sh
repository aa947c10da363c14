#!/usr/bin/env bash
# Runs a command against a private Docker engine and a throwaway registry:
# a dockerd on a unix socket in a temporary directory (its own data root,
# exec root and bridge), a `docker-registry` on a free 127.0.0.1 port, the
# command with DOCKER_HOST and DRYCC_TEST_REGISTRY set, then both stopped by
# pid and every trace removed on exit.
#
#   bash scripts/with-docker.sh cargo test -p drycc-images
#
# Needs root and the Debian packages docker.io, docker-registry,
# busybox-static and iproute2 (test images are built from the host's
# /bin/busybox: nothing is pulled). When one is missing, the command runs
# without the two variables and the Docker tests skip, with a warning.
#
# The engine gets a bridge of its own on a free 10.x.y.0/24 instead of
# docker0, and leaves iptables alone: another dockerd on this host (a system
# one, or a parallel run) keeps its addresses and its rules. Published ports
# still work through docker-proxy (`-p 127.0.0.1:<port>:<container port>`).
#
#   DRYCC_DOCKER_ROOT  directory for the engine's data root (default: in the
#                      temporary directory, or under /var/tmp when that is on
#                      tmpfs/overlayfs, where the overlay2 driver may fail)
set -euo pipefail

missing=()
command -v dockerd >/dev/null || missing+=("dockerd (docker.io)")
command -v docker-registry >/dev/null || missing+=("docker-registry")
[ -x /bin/busybox ] || missing+=("/bin/busybox (busybox-static)")
command -v ip >/dev/null || missing+=("ip (iproute2)")
if [[ ${#missing[@]} -gt 0 || "$(id -u)" != 0 ]]; then
    if [[ ${#missing[@]} -gt 0 ]]; then
        why="${missing[*]} not installed (apt-get install -y docker.io docker-registry busybox-static iproute2)"
    else
        why="dockerd needs root"
    fi
    echo "WARNING: with-docker: $why, Docker tests skipped" >&2
    unset DOCKER_HOST DRYCC_TEST_REGISTRY
    exec "$@"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

dir="$(mktemp -d "${TMPDIR:-/tmp}/drycc-docker.XXXXXX")"
data_root="$dir/data"
fs="$(stat -f -c %T "$dir")"
if [[ -n "${DRYCC_DOCKER_ROOT:-}" ]]; then
    data_root="$(mktemp -d "$DRYCC_DOCKER_ROOT/drycc-docker-data.XXXXXX")"
elif [[ "$fs" == tmpfs || "$fs" == overlayfs ]]; then
    data_root="$(mktemp -d /var/tmp/drycc-docker-data.XXXXXX)"
fi
sock="$dir/docker.sock"
bridge="drycc$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
dockerd_pid=""
registry_pid=""
command_pid=""

# Stops a process we started: SIGTERM, up to $2 seconds, then SIGKILL.
stop_pid() {
    local pid="$1" patience="$2" i
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < patience * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "with-docker: pid $pid still running after ${patience}s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    set +e
    if [[ -n "$dockerd_pid" ]] && kill -0 "$dockerd_pid" 2>/dev/null; then
        # Containers first, while the engine can still stop them cleanly.
        local ids
        ids="$(DOCKER_HOST="unix://$sock" docker ps -aq 2>/dev/null)"
        if [[ -n "$ids" ]]; then
            # shellcheck disable=SC2086 # one id a word
            DOCKER_HOST="unix://$sock" docker rm -f -v $ids >/dev/null 2>&1
        fi
    fi
    stop_pid "$registry_pid" 10
    stop_pid "$dockerd_pid" 30
    # A killed dockerd leaves its containerd and shims behind; they wrote
    # their pids under the exec root.
    local pidfile
    for pidfile in "$dir"/exec/containerd/containerd.pid \
        "$dir"/exec/containerd/daemon/io.containerd.runtime.v2.task/*/*/shim.pid; do
        [[ -f "$pidfile" ]] && stop_pid "$(cat "$pidfile")" 10
    done
    # Deepest mount points first.
    awk -v a="$dir" -v b="$data_root" 'index($5, a) == 1 || index($5, b) == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r | while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
    done
    ip link show "$bridge" >/dev/null 2>&1 && ip link delete "$bridge"
    rm -rf "$dir" "$data_root"
}
# On a signal the command is stopped first: it must not outlive the engine
# and the registry it uses.
on_signal() {
    if [[ -n "$command_pid" ]]; then
        kill -TERM "$command_pid" 2>/dev/null
        wait "$command_pid" 2>/dev/null
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# A /24 nothing on this host routes directly (only "via" the default
# gateway, or not at all).
subnet=""
for _ in $(seq 1 50); do
    candidate="10.$((RANDOM % 56 + 200)).$((RANDOM % 256))"
    route="$(ip -4 route get "$candidate.1" 2>/dev/null || true)"
    if [[ -z "$route" || "$route" == *" via "* ]]; then
        subnet="$candidate"
        break
    fi
done
if [[ -z "$subnet" ]]; then
    echo "with-docker: found no free 10.x.y.0/24 for the bridge" >&2
    exit 1
fi
ip link add name "$bridge" type bridge
ip addr add "$subnet.1/24" dev "$bridge"
ip link set "$bridge" up

# An empty config file: /etc/docker/daemon.json may name sockets or
# settings of the host's own engine.
echo '{}' >"$dir/daemon.json"
dockerd --config-file "$dir/daemon.json" \
    --host "unix://$sock" \
    --data-root "$data_root" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" \
    --bridge "$bridge" --iptables=false --ip-masq=false \
    >"$dir/dockerd.log" 2>&1 &
dockerd_pid=$!

registry_port="$(free_port)"
mkdir -p "$dir/registry"
cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$registry_port
  secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
EOF
docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
registry_pid=$!

# Polls until both answer (or one of them exits).
wait_until() {
    local what="$1" pid="$2" log="$3" i
    shift 3
    for ((i = 0; i < 600; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "with-docker: $what exited; its log:" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "with-docker: $what did not answer within 60s; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
}
wait_until dockerd "$dockerd_pid" "$dir/dockerd.log" \
    curl -sf --noproxy "*" --max-time 5 --unix-socket "$sock" http://localhost/_ping
wait_until docker-registry "$registry_pid" "$dir/registry.log" \
    curl -sf --noproxy "*" --max-time 5 "http://127.0.0.1:$registry_port/v2/"

export DOCKER_HOST="unix://$sock"
export DRYCC_TEST_REGISTRY="127.0.0.1:$registry_port"
# In the background (stdin kept) so that a signal is handled at once
# rather than when the command ends.
"$@" <&0 &
command_pid=$!
wait "$command_pid"
