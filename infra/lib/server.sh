# shellcheck shell=bash
# What infra/kafka/kafka.sh and infra/redis/redis.sh share: messages, data dirs, ports, and
# knowing, stopping and reporting a server by the pid file in its data dir.
#
# The sourcing script sets, before it calls any of these:
#   SCRIPT     its name in messages (kafka.sh)
#   SERVER     what it runs, in messages (broker, redis-server)
#   PID_FILE   the pid file's name in DATA_DIR (kafka.pid)
# and defines `is_server PID DATA_DIR`: exit 0 when that live process is this data dir's
# server (a guard against a stale pid file whose pid was reused).

die() {
    printf '%s: %s\n' "${SCRIPT}" "$*" >&2
    exit 1
}

log() {
    printf '%s: %s\n' "${SCRIPT}" "$*" >&2
}

abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

check_port() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || (("$1" < 1 || "$1" > 65535)); then
        die "not a port: $1"
    fi
}

# Prints the pid from DATA_DIR/PID_FILE when that process is alive, not a zombie, and is
# this data dir's server.
running_pid() {
    local data_dir="$1" pid state
    [[ -f "${data_dir}/${PID_FILE}" ]] || return 1
    pid="$(cat "${data_dir}/${PID_FILE}")"
    [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/${pid}/stat" ]] || return 1
    state="$(sed -e 's/^.*) //' "/proc/${pid}/stat" | cut -d ' ' -f 1)"
    [[ "${state}" != "Z" ]] || return 1
    is_server "${pid}" "${data_dir}" || return 1
    printf '%s\n' "${pid}"
}

# stop --data-dir D [--timeout SECONDS] [--kill]: SIGTERM (or SIGKILL), then SIGKILL after
# the timeout; waits until the process is gone.
cmd_stop() {
    local data_dir="" timeout=30 signal=TERM pid deadline
    while (($# > 0)); do
        case "$1" in
            --data-dir) data_dir="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            --kill) signal=KILL; shift ;;
            *) die "stop: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: ${SCRIPT} stop --data-dir D [--timeout SECONDS]"
    [[ -d "${data_dir}" ]] || { log "no ${data_dir}: nothing to stop"; return 0; }
    data_dir="$(abs_dir "${data_dir}")"
    if ! pid="$(running_pid "${data_dir}")"; then
        rm -f "${data_dir:?}/${PID_FILE}"
        log "no ${SERVER} running on ${data_dir}"
        return 0
    fi
    kill -s "${signal}" "${pid}" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while running_pid "${data_dir}" >/dev/null; do
        if ((SECONDS >= deadline)); then
            log "${SERVER} pid ${pid} still running after ${timeout}s: SIGKILL"
            kill -s KILL "${pid}" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            signal=KILL
        fi
        sleep 0.05
    done
    rm -f "${data_dir:?}/${PID_FILE}"
    log "stopped ${SERVER} pid ${pid} (SIG${signal})"
}

# status --data-dir D: print the pid; exit 0 when running.
cmd_status() {
    local data_dir=""
    while (($# > 0)); do
        case "$1" in
            --data-dir) data_dir="$2"; shift 2 ;;
            *) die "status: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" && -d "${data_dir}" ]] || return 1
    data_dir="$(abs_dir "${data_dir}")"
    running_pid "${data_dir}"
}

# --- clusters: the sourcing script sets CLUSTER_NODES -------------------------------------

# conf_value FILE KEY: the value of `KEY=value` in FILE (our own key=value files).
conf_value() {
    sed -n "s|^$2=||p" "$1" | tail -n 1
}

# A cluster node's dir: node.conf names its id, ports and the quorum's voters.
is_cluster_node() {
    [[ -f "$1/node.conf" ]]
}

node_dir() {
    printf '%s/node-%s\n' "$1" "$2"
}

# cluster stop: SIGTERM to every node at once, then wait for each. One by one, the last
# Kafka node would wait for a controller quorum that left with the others (a majority of
# the voters must run to grant its controlled shutdown) until the timeout's SIGKILL.
# --kill: SIGKILL them all, as a power cut would.
cluster_stop() {
    local cluster_dir="$1" timeout="$2" only="$3" kill="$4" n dir code=0
    local -a args=(--timeout "${timeout}") pids=()
    [[ "${kill}" == "yes" ]] && args=(--kill --timeout 10)
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        [[ -z "${only}" || "${only}" == "${n}" ]] || continue
        dir="$(node_dir "${cluster_dir}" "${n}")"
        [[ -d "${dir}" ]] || continue
        cmd_stop --data-dir "${dir}" "${args[@]}" &
        pids+=("$!")
    done
    for n in "${pids[@]}"; do
        wait "${n}" || code=1
    done
    return "${code}"
}

# cluster status: "NODE PORT PID" a line (PID "-" when stopped); 0 when every node asked runs.
cluster_status() {
    local cluster_dir="$1" only="$2" n dir pid port code=0
    [[ -f "${cluster_dir}/cluster.conf" ]] || return 1
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        [[ -z "${only}" || "${only}" == "${n}" ]] || continue
        dir="$(node_dir "${cluster_dir}" "${n}")"
        port="$(conf_value "${dir}/node.conf" port 2>/dev/null || true)"
        if pid="$(running_pid "${dir}")"; then
            printf '%s %s %s\n' "${n}" "${port}" "${pid}"
        else
            printf '%s %s -\n' "${n}" "${port}"
            code=1
        fi
    done
    return "${code}"
}
