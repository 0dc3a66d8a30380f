#!/usr/bin/env bash
# A real Redis server: Debian's redis-server, installed when missing, on loopback. One
# server (make run, the tests), or a Redis Cluster of three masters and three replicas
# (make run-cluster, the cluster tests).
#
#   redis.sh install                      apt-get install redis-server when it is missing
#   redis.sh start --data-dir D [--port P] [--persistence aof|none] [--databases N]
#   redis.sh wait --data-dir D [--timeout SECONDS]      until PING answers PONG
#   redis.sh stop --data-dir D [--timeout SECONDS]      SIGTERM, SIGKILL after the timeout
#   redis.sh kill --data-dir D                          SIGKILL, for fault tests
#   redis.sh status --data-dir D                        exit 0 when running
#
#   redis.sh cluster start --data-dir D [--ports P1,...,P6] [--bus-ports B1,...,B6]
#                          [--node-timeout MS] [--persistence aof|none] [--node N]
#   redis.sh cluster wait --data-dir D [--timeout SECONDS]
#   redis.sh cluster stop --data-dir D [--timeout SECONDS] [--node N]
#   redis.sh cluster kill --data-dir D [--node N]       SIGKILL, for fault tests
#   redis.sh cluster status --data-dir D [--node N]     "N PORT PID" per node; 0 when all run
#   redis.sh cluster nodes --data-dir D                 127.0.0.1:P1,...,127.0.0.1:P6
#
# DATA_DIR holds redis.pid, redis.port, redis.log and, with AOF, appendonlydir/.
# `--persistence aof` (make run) writes an append-only file fsynced every second;
# `none` (tests) keeps everything in memory only: a restart comes back empty (a cluster
# master killed and started again before its replica took over comes back an empty
# master, and its replica copies that).
#
# A cluster's D holds cluster.conf (its ports and settings) and node-1/ ... node-6/, each a
# DATA_DIR as above plus node.conf and Redis's own nodes.conf (the cluster as that node
# last saw it). The first `cluster start` creates the cluster (redis-cli --cluster create
# --cluster-replicas 1: which node replicates which master is redis-cli's choice); later
# starts reuse it, so its ports are fixed: remove D to move it. The single-node commands
# also work on one node's dir (start it again after a kill, say); `wait` on a cluster node
# also waits until that node sees the cluster ok.
# Ports default to 7000-7005; each node also listens on a cluster bus port for the other
# nodes, by default its port + 10000 (17000-17005). `cluster wait` returns once every node sees cluster_state:ok
# with all 16384 slots served and every replica is linked to its master.
#
# --node-timeout (cluster-node-timeout, default 3000 ms): how long a node may not answer
# before the others count it failed. A master's replica is promoted about one to two
# timeouts after the master dies (failure agreement, then a 0.5-1 s election delay); in
# that gap the dead master's slots refuse every command (CLUSTERDOWN), and with
# cluster-require-full-coverage (Redis's default) so do the others. Lower it and a busy
# machine's pauses count as failures.
set -euo pipefail

readonly DEFAULT_PORT=6379
readonly DEFAULT_CLUSTER_PORTS=7000,7001,7002,7003,7004,7005
readonly DEFAULT_NODE_TIMEOUT_MS=3000
readonly CLUSTER_NODES=6 CLUSTER_SLOTS=16384
readonly SCRIPT=redis.sh SERVER=redis-server PID_FILE=redis.pid
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
# shellcheck source=infra/lib/server.sh
. "${HERE}/../lib/server.sh"

# A redis-server (or its AOF checker at start-up) by its executable.
is_server() {
    local exe
    exe="$(readlink "/proc/$1/exe" 2>/dev/null || true)"
    [[ "${exe}" == */redis-server* || "${exe}" == */redis-check-* ]]
}

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

cmd_install() {
    if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
        return 0
    fi
    log "installing Debian's redis-server"
    # Wait for the dpkg lock rather than fail when another install runs at the same time.
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300
        install -y -q --no-install-recommends redis-server redis-tools)
    # The package lists may be missing or stale on a fresh machine: update only then.
    if ! as_root "${apt[@]}" >&2; then
        as_root apt-get -o DPkg::Lock::Timeout=300 update -q >&2
        as_root "${apt[@]}" >&2
    fi
    command -v redis-server >/dev/null || die "redis-server still missing after apt-get"
}

check_persistence() {
    [[ "$1" == aof || "$1" == none ]] || die "persistence is aof or none, not $1"
}

# persistence_args aof|none: redis-server's options for it, one a line.
persistence_args() {
    case "$1" in
        aof) printf '%s\n' --appendonly yes --appendfsync everysec --save "" ;;
        *) printf '%s\n' --appendonly no --save "" ;;
    esac
}

# launch DATA_DIR PORT REDIS_SERVER_ARGS...: redis-server in the background, in its own
# session; returns once its pid file is written.
launch() {
    local data_dir="$1" port="$2"
    shift 2
    rm -f "${data_dir}/redis.pid"
    printf '%s\n' "${port}" >"${data_dir}/redis.port"
    # Own session: a Ctrl-C in the terminal reaches only the supervisor, which stops it.
    # shellcheck disable=SC2016 # $$ and "$@" expand in the child bash
    setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' redis-launcher \
        "${data_dir}/redis.pid" \
        redis-server --bind 127.0.0.1 --port "${port}" --dir "${data_dir}" \
        --daemonize no --protected-mode yes --logfile "${data_dir}/redis.log" "$@" \
        </dev/null >>"${data_dir}/redis.out" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "${data_dir}/redis.pid" ]] && break
        sleep 0.1
    done
    [[ -s "${data_dir}/redis.pid" ]] || die "redis-server did not start (see ${data_dir}/redis.out)"
}

cmd_start() {
    local data_dir="" port="" persistence="" databases="" pid
    while (($# > 0)); do
        case "$1" in
            --data-dir) data_dir="$2"; shift 2 ;;
            --port) port="$2"; shift 2 ;;
            --persistence) persistence="$2"; shift 2 ;;
            --databases) databases="$2"; shift 2 ;;
            *) die "start: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: redis.sh start --data-dir D [--port P] [--persistence aof|none]"
    data_dir="$(abs_dir "${data_dir}")"
    if is_cluster_node "${data_dir}"; then
        [[ -z "${port}${persistence}${databases}" ]] ||
            die "${data_dir} is a cluster node: its settings are in its node.conf ('$0 cluster start' sets them)"
        start_cluster_node "${data_dir}"
        return 0
    fi
    port="${port:-${DEFAULT_PORT}}"
    persistence="${persistence:-none}"
    databases="${databases:-16}"
    check_port "${port}"
    [[ "${databases}" =~ ^[0-9]+$ ]] || die "not a number of databases: ${databases}"
    check_persistence "${persistence}"
    if pid="$(running_pid "${data_dir}")"; then
        die "a Redis server is already running on ${data_dir} (pid ${pid}); run '$0 stop --data-dir ${data_dir}'"
    fi
    cmd_install
    local -a persist
    mapfile -t persist < <(persistence_args "${persistence}")
    launch "${data_dir}" "${port}" --databases "${databases}" "${persist[@]}"
    log "started redis-server pid $(cat "${data_dir}/redis.pid") on 127.0.0.1:${port} (persistence ${persistence}), data ${data_dir}"
}

# cli PORT ARGS...: redis-cli against one local node, bounded in time; empty when it
# cannot answer.
cli() {
    local port="$1"
    shift
    timeout 2 redis-cli -h 127.0.0.1 -p "${port}" "$@" 2>/dev/null | tr -d '\r' || true
}

# info_value TEXT FIELD: FIELD's value in the `field:value` lines of CLUSTER INFO or INFO.
info_value() {
    sed -n "s/^$2://p" <<<"$1" | head -n 1
}

# wait_node DATA_DIR TIMEOUT: until it answers PING with PONG (and, for a cluster node,
# sees the cluster ok).
wait_node() {
    local data_dir="$1" timeout="$2" port deadline reply cluster=no
    [[ -f "${data_dir}/redis.port" ]] || die "no redis.port in ${data_dir}: not started"
    port="$(cat "${data_dir}/redis.port")"
    is_cluster_node "${data_dir}" && cluster=yes
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if ! running_pid "${data_dir}" >/dev/null; then
            tail -n 20 "${data_dir}/redis.out" "${data_dir}/redis.log" >&2 2>/dev/null || true
            die "the Redis server on ${data_dir} is not running"
        fi
        # PING answers LOADING while an AOF is replayed, PONG once it serves.
        reply="$(cli "${port}" ping)"
        if [[ "${reply}" == "PONG" && "${cluster}" == yes ]]; then
            [[ "$(info_value "$(cli "${port}" cluster info)" cluster_state)" == ok ]] || reply=""
        fi
        if [[ "${reply}" == "PONG" ]]; then
            log "redis ready on 127.0.0.1:${port}"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "${data_dir}/redis.log" >&2 2>/dev/null || true
    if [[ "${cluster}" == yes ]]; then
        die "redis on 127.0.0.1:${port} did not see its cluster ok after ${timeout}s"
    fi
    die "redis on 127.0.0.1:${port} did not answer PING after ${timeout}s"
}

cmd_wait() {
    local data_dir="" timeout=30
    while (($# > 0)); do
        case "$1" in
            --data-dir) data_dir="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            *) die "wait: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: redis.sh wait --data-dir D [--timeout SECONDS]"
    data_dir="$(abs_dir "${data_dir}")"
    wait_node "${data_dir}" "${timeout}"
}

# --- the cluster: three masters, three replicas ---------------------------------------------

# A cluster node, started on its own: its node.conf fixes its port and settings, its
# nodes.conf (Redis's) where it stood in the cluster.
start_cluster_node() {
    local data_dir="$1" pid port bus_port timeout_ms persistence
    if pid="$(running_pid "${data_dir}")"; then
        die "a Redis server is already running on ${data_dir} (pid ${pid}); run '$0 stop --data-dir ${data_dir}'"
    fi
    port="$(conf_value "${data_dir}/node.conf" port)"
    bus_port="$(conf_value "${data_dir}/node.conf" bus-port)"
    timeout_ms="$(conf_value "${data_dir}/node.conf" node-timeout)"
    persistence="$(conf_value "${data_dir}/node.conf" persistence)"
    check_port "${port}"
    check_port "${bus_port}"
    [[ "${timeout_ms}" =~ ^[0-9]+$ ]] || die "${data_dir}/node.conf: no node-timeout"
    check_persistence "${persistence}"
    cmd_install
    local -a persist
    mapfile -t persist < <(persistence_args "${persistence}")
    # A replica's full sync starts at once: Redis's default waits 5 s for more replicas to
    # share a diskless transfer, and each master here has one replica.
    launch "${data_dir}" "${port}" "${persist[@]}" --repl-diskless-sync-delay 0 \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "${bus_port}" \
        --cluster-node-timeout "${timeout_ms}"
    log "started redis-server pid $(cat "${data_dir}/redis.pid") on 127.0.0.1:${port} (cluster node, persistence ${persistence}), data ${data_dir}"
}

# split_ports LIST: the six ports of a comma-separated LIST, one a line, all different.
split_ports() {
    local -a listed
    local p
    IFS=, read -r -a listed <<<"$1"
    ((${#listed[@]} == CLUSTER_NODES)) || die "give ${CLUSTER_NODES} ports, comma-separated: not '$1'"
    (($(printf '%s\n' "${listed[@]}" | sort -u | wc -l) == CLUSTER_NODES)) || die "the ports must differ: $1"
    for p in "${listed[@]}"; do
        check_port "${p}"
        printf '%s\n' "${p}"
    done
}

check_node() {
    if ! [[ "$1" =~ ^[1-9][0-9]*$ ]] || (("$1" > CLUSTER_NODES)); then
        die "no node $1: nodes are 1 to ${CLUSTER_NODES}"
    fi
}

# The ports of the cluster in D, one a line.
cluster_ports() {
    [[ -f "$1/cluster.conf" ]] || die "no cluster in $1 (no cluster.conf)"
    split_ports "$(conf_value "$1/cluster.conf" ports)"
}

# Whether the nodes were already joined into a cluster (slots assigned).
cluster_created() {
    local port info
    while IFS= read -r port; do
        info="$(cli "${port}" cluster info)"
        local assigned
        assigned="$(info_value "${info}" cluster_slots_assigned)"
        ((${assigned:-0} > 0)) && return 0
    done < <(cluster_ports "$1")
    return 1
}

cluster_start() {
    local cluster_dir="$1" ports="$2" bus_ports="$3" timeout_ms="$4" persistence="$5" only="$6"
    local conf="${cluster_dir}/cluster.conf" n dir port
    local -a listed bus
    if [[ -f "${conf}" ]]; then
        local old old_bus
        old="$(conf_value "${conf}" ports)"
        old_bus="$(conf_value "${conf}" bus-ports)"
        [[ -z "${ports}" || "${ports}" == "${old}" ]] || old=""
        [[ -z "${bus_ports}" || "${bus_ports}" == "${old_bus}" ]] || old=""
        [[ -n "${old}" ]] ||
            die "the cluster in ${cluster_dir} was created on ports $(conf_value "${conf}" ports) (bus ${old_bus}) and its nodes.conf files name them: remove ${cluster_dir} for a new cluster"
        ports="${old}"
        bus_ports="${old_bus}"
        timeout_ms="${timeout_ms:-$(conf_value "${conf}" node-timeout)}"
        persistence="${persistence:-$(conf_value "${conf}" persistence)}"
    fi
    ports="${ports:-${DEFAULT_CLUSTER_PORTS}}"
    timeout_ms="${timeout_ms:-${DEFAULT_NODE_TIMEOUT_MS}}"
    persistence="${persistence:-none}"
    mapfile -t listed < <(split_ports "${ports}")
    ((${#listed[@]} == CLUSTER_NODES)) || exit 1 # split_ports said why
    if [[ -z "${bus_ports}" ]]; then
        for port in "${listed[@]}"; do
            ((port + 10000 <= 65535)) || die "port ${port} has no default bus port (port + 10000): give --bus-ports"
            bus_ports+="${bus_ports:+,}$((port + 10000))"
        done
    fi
    mapfile -t bus < <(split_ports "${bus_ports}")
    ((${#bus[@]} == CLUSTER_NODES)) || exit 1
    (($(printf '%s\n' "${listed[@]}" "${bus[@]}" | sort -u | wc -l) == 2 * CLUSTER_NODES)) ||
        die "the ports and bus ports must all differ: ${ports} and ${bus_ports}"
    if ! [[ "${timeout_ms}" =~ ^[0-9]+$ ]] || ((timeout_ms < 100)); then
        die "not a node timeout in ms: ${timeout_ms}"
    fi
    check_persistence "${persistence}"
    printf 'ports=%s\nbus-ports=%s\nnode-timeout=%s\npersistence=%s\n' \
        "${ports}" "${bus_ports}" "${timeout_ms}" "${persistence}" >"${conf}.tmp"
    mv "${conf}.tmp" "${conf}"
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        dir="$(node_dir "${cluster_dir}" "${n}")"
        mkdir -p "${dir}"
        printf 'port=%s\nbus-port=%s\nnode-timeout=%s\npersistence=%s\n' \
            "${listed[n - 1]}" "${bus[n - 1]}" "${timeout_ms}" "${persistence}" >"${dir}/node.conf"
    done
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        [[ -z "${only}" || "${only}" == "${n}" ]] || continue
        dir="$(node_dir "${cluster_dir}" "${n}")"
        running_pid "${dir}" >/dev/null && continue
        start_cluster_node "${dir}"
    done
    [[ -z "${only}" ]] || return 0
    # Every node answers before the cluster is created (or found created).
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        dir="$(node_dir "${cluster_dir}" "${n}")"
        port="${listed[n - 1]}"
        local deadline=$((SECONDS + 30))
        until [[ "$(cli "${port}" ping)" == PONG ]]; do
            running_pid "${dir}" >/dev/null || die "the Redis server on ${dir} is not running (see ${dir}/redis.log)"
            ((SECONDS < deadline)) || die "redis on 127.0.0.1:${port} did not answer PING after 30s"
            sleep 0.1
        done
    done
    if cluster_created "${cluster_dir}"; then
        log "cluster in ${cluster_dir} already created: its nodes rejoin it"
        return 0
    fi
    local -a addresses=()
    for port in "${listed[@]}"; do
        addresses+=("127.0.0.1:${port}")
    done
    # Three masters (the first three addresses) and one replica each. All on one host,
    # redis-cli warns that replicas share their master's host: expected here.
    if ! redis-cli --cluster create "${addresses[@]}" --cluster-replicas 1 --cluster-yes \
        </dev/null >"${cluster_dir}/create.log" 2>&1; then
        cat "${cluster_dir}/create.log" >&2
        die "redis-cli --cluster create failed"
    fi
    log "created a cluster of ${CLUSTER_NODES} nodes on ports ${ports} (node timeout ${timeout_ms} ms)"
}

# The cluster is ready when every node sees cluster_state:ok with every slot served by a
# live master, knows all six nodes as three masters and three replicas with none failing,
# and every replica is linked to its master.
cluster_ready() {
    local port info replication roles
    while IFS= read -r port; do
        info="$(cli "${port}" cluster info)"
        [[ "$(info_value "${info}" cluster_state)" == ok ]] || return 1
        [[ "$(info_value "${info}" cluster_slots_ok)" == "${CLUSTER_SLOTS}" ]] || return 1
        [[ "$(info_value "${info}" cluster_known_nodes)" == "${CLUSTER_NODES}" ]] || return 1
        # CLUSTER NODES: "<id> <address> <flags> ..."; "replicas failing" as this node sees it.
        roles="$(cli "${port}" cluster nodes | awk '
            $3 ~ /(^|,)slave(,|$)/ { replicas++ }
            $3 ~ /fail|handshake|noaddr/ { failing++ }
            END { print replicas + 0, failing + 0 }')"
        [[ "${roles}" == "$((CLUSTER_NODES / 2)) 0" ]] || return 1
        replication="$(cli "${port}" info replication)"
        if [[ "$(info_value "${replication}" role)" == slave ]]; then
            [[ "$(info_value "${replication}" master_link_status)" == up ]] || return 1
        fi
    done < <(cluster_ports "$1")
    return 0
}

cluster_wait() {
    local cluster_dir="$1" timeout="$2" deadline n dir
    deadline=$((SECONDS + timeout))
    while ! cluster_ready "${cluster_dir}"; do
        for ((n = 1; n <= CLUSTER_NODES; n++)); do
            dir="$(node_dir "${cluster_dir}" "${n}")"
            running_pid "${dir}" >/dev/null || die "the Redis server on ${dir} is not running (see ${dir}/redis.log)"
        done
        if ((SECONDS >= deadline)); then
            local port
            port="$(cluster_ports "${cluster_dir}" | head -n 1)"
            cli "${port}" cluster info >&2
            cli "${port}" cluster nodes >&2
            die "the cluster in ${cluster_dir} was not ok after ${timeout}s"
        fi
        sleep 0.2
    done
    log "cluster ready: $(cluster_nodes "${cluster_dir}")"
}

cluster_nodes() {
    local port out=""
    while IFS= read -r port; do
        out+="${out:+,}127.0.0.1:${port}"
    done < <(cluster_ports "$1")
    printf '%s\n' "${out}"
}

cmd_cluster() {
    (($# > 0)) || die "usage: redis.sh cluster start|wait|stop|kill|status|nodes --data-dir D ..."
    local command="$1" cluster_dir="" ports="" bus_ports="" timeout_ms="" persistence="" only="" timeout=""
    shift
    while (($# > 0)); do
        case "$1" in
            --data-dir) cluster_dir="$2"; shift 2 ;;
            --ports) ports="$2"; shift 2 ;;
            --bus-ports) bus_ports="$2"; shift 2 ;;
            --node-timeout) timeout_ms="$2"; shift 2 ;;
            --persistence) persistence="$2"; shift 2 ;;
            --node) check_node "$2"; only="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            *) die "cluster ${command}: unknown argument $1" ;;
        esac
    done
    [[ -n "${cluster_dir}" ]] || die "cluster ${command}: --data-dir D is required"
    if [[ "${command}" != start && ! -d "${cluster_dir}" ]]; then
        [[ "${command}" == stop || "${command}" == kill ]] && { log "no ${cluster_dir}: nothing to stop"; return 0; }
        die "no cluster in ${cluster_dir}"
    fi
    cluster_dir="$(abs_dir "${cluster_dir}")"
    if [[ "${command}" == wait || "${command}" == nodes ]]; then
        [[ -f "${cluster_dir}/cluster.conf" ]] || die "no cluster in ${cluster_dir} (no cluster.conf)"
    fi
    case "${command}" in
        start) cluster_start "${cluster_dir}" "${ports}" "${bus_ports}" "${timeout_ms}" "${persistence}" "${only}" ;;
        wait) cluster_wait "${cluster_dir}" "${timeout:-60}" ;;
        stop) cluster_stop "${cluster_dir}" "${timeout:-30}" "${only}" no ;;
        kill) cluster_stop "${cluster_dir}" 10 "${only}" yes ;;
        status) cluster_status "${cluster_dir}" "${only}" ;;
        nodes) cluster_nodes "${cluster_dir}" ;;
        *) die "unknown command cluster ${command}" ;;
    esac
}

main() {
    (($# > 0)) || die "usage: redis.sh install|start|wait|stop|kill|status|cluster ..."
    local command="$1"
    shift
    case "${command}" in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        wait) cmd_wait "$@" ;;
        stop) cmd_stop "$@" ;;
        kill) cmd_stop --kill --timeout 10 "$@" ;;
        status) cmd_status "$@" ;;
        cluster) cmd_cluster "$@" ;;
        *) die "unknown command ${command}" ;;
    esac
}

main "$@"
