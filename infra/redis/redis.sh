#!/usr/bin/env bash
# A real Redis server: Debian's redis-server, installed when missing, on loopback.
#
#   redis.sh install                      apt-get install redis-server when it is missing
#   redis.sh start --data-dir D [--port P] [--persistence aof|none] [--databases N]
#   redis.sh wait --data-dir D [--timeout SECONDS]      until PING answers PONG
#   redis.sh stop --data-dir D [--timeout SECONDS]      SIGTERM, SIGKILL after the timeout
#   redis.sh kill --data-dir D                          SIGKILL, for fault tests
#   redis.sh status --data-dir D                        exit 0 when running
#
# DATA_DIR holds redis.pid, redis.port, redis.log and, with AOF, appendonlydir/.
# `--persistence aof` (make run) writes an append-only file fsynced every second;
# `none` (tests) keeps everything in memory only: a restart comes back empty.
set -euo pipefail

readonly DEFAULT_PORT=6379
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

cmd_start() {
    local data_dir="" port="${DEFAULT_PORT}" persistence="none" databases=16 pid
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
    check_port "${port}"
    [[ "${databases}" =~ ^[0-9]+$ ]] || die "not a number of databases: ${databases}"
    data_dir="$(abs_dir "${data_dir}")"
    if pid="$(running_pid "${data_dir}")"; then
        die "a Redis server is already running on ${data_dir} (pid ${pid}); run '$0 stop --data-dir ${data_dir}'"
    fi
    cmd_install
    local -a persist
    case "${persistence}" in
        aof) persist=(--appendonly yes --appendfsync everysec --save "") ;;
        none) persist=(--appendonly no --save "") ;;
        *) die "persistence is aof or none, not ${persistence}" ;;
    esac
    rm -f "${data_dir}/redis.pid"
    printf '%s\n' "${port}" >"${data_dir}/redis.port"
    # Own session: a Ctrl-C in the terminal reaches only the supervisor, which stops it.
    # shellcheck disable=SC2016 # $$ and "$@" expand in the child bash
    setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' redis-launcher \
        "${data_dir}/redis.pid" \
        redis-server --bind 127.0.0.1 --port "${port}" --dir "${data_dir}" \
        --daemonize no --protected-mode yes --databases "${databases}" \
        --logfile "${data_dir}/redis.log" "${persist[@]}" \
        </dev/null >>"${data_dir}/redis.out" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "${data_dir}/redis.pid" ]] && break
        sleep 0.1
    done
    [[ -s "${data_dir}/redis.pid" ]] || die "redis-server did not start (see ${data_dir}/redis.out)"
    log "started redis-server pid $(cat "${data_dir}/redis.pid") on 127.0.0.1:${port} (persistence ${persistence}), data ${data_dir}"
}

cmd_wait() {
    local data_dir="" timeout=30 port deadline reply
    while (($# > 0)); do
        case "$1" in
            --data-dir) data_dir="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            *) die "wait: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: redis.sh wait --data-dir D [--timeout SECONDS]"
    data_dir="$(abs_dir "${data_dir}")"
    [[ -f "${data_dir}/redis.port" ]] || die "no redis.port in ${data_dir}: not started"
    port="$(cat "${data_dir}/redis.port")"
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if ! running_pid "${data_dir}" >/dev/null; then
            tail -n 20 "${data_dir}/redis.out" "${data_dir}/redis.log" >&2 2>/dev/null || true
            die "the Redis server on ${data_dir} is not running"
        fi
        # PING answers LOADING while an AOF is replayed, PONG once it serves.
        reply="$(timeout 2 redis-cli -h 127.0.0.1 -p "${port}" ping 2>/dev/null || true)"
        if [[ "${reply}" == "PONG" ]]; then
            log "redis ready on 127.0.0.1:${port}"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "${data_dir}/redis.log" >&2 2>/dev/null || true
    die "redis on 127.0.0.1:${port} did not answer PING after ${timeout}s"
}

main() {
    (($# > 0)) || die "usage: redis.sh install|start|wait|stop|kill|status ..."
    local command="$1"
    shift
    case "${command}" in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        wait) cmd_wait "$@" ;;
        stop) cmd_stop "$@" ;;
        kill) cmd_stop --kill --timeout 10 "$@" ;;
        status) cmd_status "$@" ;;
        *) die "unknown command ${command}" ;;
    esac
}

main "$@"
