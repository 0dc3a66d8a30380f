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
