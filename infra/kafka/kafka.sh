#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, one combined broker+controller on loopback) from the
# jars on Maven Central: no Docker, no release tarball.
#
#   kafka.sh fetch                        resolve the jars into the cache (once); print the dir
#   kafka.sh jars                         print the jars dir (fails when not fetched)
#   kafka.sh format DATA_DIR [--port P] [--controller-port C]
#   kafka.sh start --data-dir D [--port P] [--controller-port C]
#   kafka.sh wait --data-dir D [--timeout SECONDS]
#   kafka.sh stop --data-dir D [--timeout SECONDS]
#   kafka.sh kill --data-dir D            SIGKILL, for fault tests
#   kafka.sh status --data-dir D          print the pid; exit 0 when running
#   kafka.sh version                      the Kafka version the pom pins
#
# DATA_DIR holds server.properties (rendered from server.properties.template), kraft/
# (the log), logs/server.log, kafka.out (JVM stdout/stderr) and kafka.pid.
# Environment: KAFKA_HEAP_OPTS (default -Xms512m -Xmx512m), KAFKA_JVM_PERFORMANCE_OPTS,
# CHANCERY_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/chancery), CHANCERY_MVN_ARGS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly POM="${HERE}/pom.xml"
readonly TEMPLATE="${HERE}/server.properties.template"
readonly LOG4J2="${HERE}/log4j2.xml"
readonly DEFAULT_PORT=9092
readonly DEFAULT_CONTROLLER_PORT=9093
readonly SCRIPT=kafka.sh SERVER=broker PID_FILE=kafka.pid
# shellcheck source=infra/lib/server.sh
. "${HERE}/../lib/server.sh"

# This data dir's broker: its command line names the data dir's server.properties.
is_server() {
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "$2/server.properties"
}

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "${POM}" | head -n 1
}

cache_root() {
    printf '%s\n' "${CHANCERY_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME}/.cache}/chancery}"
}

jars_dir() {
    printf '%s/kafka-%s/jars\n' "$(cache_root)" "$(kafka_version)"
}

pom_digest() {
    sha256sum "${POM}" | cut -d ' ' -f 1
}

# The cache is complete when its manifest names this pom's digest and every jar it lists.
jars_complete() {
    local dir="$1" manifest="$1/.complete" line
    [[ -f "${manifest}" ]] || return 1
    [[ "$(head -n 1 "${manifest}")" == "pom-sha256 $(pom_digest)" ]] || return 1
    while IFS= read -r line; do
        [[ -s "${dir}/${line}" ]] || return 1
    done < <(tail -n +2 "${manifest}")
    return 0
}

cmd_fetch() {
    local dir version tmp lock
    dir="$(jars_dir)"
    version="$(kafka_version)"
    [[ -n "${version}" ]] || die "no <kafka.version> in ${POM}"
    command -v mvn >/dev/null || die "mvn not found (Maven is needed to fetch the broker's jars)"
    mkdir -p "$(dirname "${dir}")"
    lock="$(dirname "${dir}")/.lock"
    # One fetch at a time per cache (make test and .ci/run may race).
    exec 9>"${lock}"
    flock 9
    if jars_complete "${dir}"; then
        printf '%s\n' "${dir}"
        return 0
    fi
    log "fetching Kafka ${version} jars from Maven Central into ${dir}"
    tmp="$(mktemp -d "$(dirname "${dir}")/jars.tmp.XXXXXX")"
    # shellcheck disable=SC2086 # CHANCERY_MVN_ARGS is a list of words on purpose
    if ! mvn -B -q -f "${POM}" package -Djars.dir="${tmp}" -Dstyle.color=never ${CHANCERY_MVN_ARGS:-} >&2; then
        rm -rf "${tmp}"
        die "mvn failed to fetch the Kafka jars"
    fi
    {
        printf 'pom-sha256 %s\n' "$(pom_digest)"
        (cd "${tmp}" && ls -1 -- *.jar)
    } >"${tmp}/.complete"
    [[ -s "${tmp}/kafka_2.13-${version}.jar" ]] || die "kafka_2.13-${version}.jar missing after mvn"
    rm -rf "${dir}"
    mv "${tmp}" "${dir}"
    log "$(($(wc -l <"${dir}/.complete") - 1)) jars in ${dir}"
    printf '%s\n' "${dir}"
}

cmd_jars() {
    local dir
    dir="$(jars_dir)"
    jars_complete "${dir}" || die "jars not fetched: run '$0 fetch'"
    printf '%s\n' "${dir}"
}

ensure_jars() {
    local dir
    dir="$(jars_dir)"
    if ! jars_complete "${dir}"; then
        cmd_fetch >/dev/null
    fi
    printf '%s\n' "${dir}"
}

# render_config DATA_DIR PORT CONTROLLER_PORT
render_config() {
    local data_dir="$1" port="$2" controller_port="$3"
    check_port "${port}"
    check_port "${controller_port}"
    [[ "${port}" != "${controller_port}" ]] || die "port and controller port must differ"
    mkdir -p "${data_dir}/kraft" "${data_dir}/logs"
    sed -e "s|@PORT@|${port}|g" \
        -e "s|@CONTROLLER_PORT@|${controller_port}|g" \
        -e "s|@LOG_DIRS@|${data_dir}/kraft|g" \
        "${TEMPLATE}" >"${data_dir}/server.properties.tmp"
    mv "${data_dir}/server.properties.tmp" "${data_dir}/server.properties"
}

is_formatted() {
    [[ -f "$1/kraft/meta.properties" ]]
}

cmd_format() {
    local data_dir="" port="${DEFAULT_PORT}" controller_port="${DEFAULT_CONTROLLER_PORT}"
    local jars cluster_id
    while (($# > 0)); do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --controller-port) controller_port="$2"; shift 2 ;;
            --data-dir) data_dir="$2"; shift 2 ;;
            -*) die "format: unknown option $1" ;;
            *) data_dir="$1"; shift ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: kafka.sh format DATA_DIR [--port P] [--controller-port C]"
    data_dir="$(abs_dir "${data_dir}")"
    is_formatted "${data_dir}" && die "${data_dir} is already formatted"
    jars="$(ensure_jars)"
    render_config "${data_dir}" "${port}" "${controller_port}"
    cluster_id="$(java -cp "${jars}/*" kafka.tools.StorageTool random-uuid)"
    java -Dlog4j2.configurationFile="${LOG4J2}" -Dkafka.logs.dir="${data_dir}/logs" \
        -cp "${jars}/*" kafka.tools.StorageTool format \
        -t "${cluster_id}" -c "${data_dir}/server.properties" --standalone >&2
    log "formatted ${data_dir} (cluster ${cluster_id})"
}

cmd_start() {
    local data_dir="" port="${DEFAULT_PORT}" controller_port="${DEFAULT_CONTROLLER_PORT}" jars pid
    while (($# > 0)); do
        case "$1" in
            --port) port="$2"; shift 2 ;;
            --controller-port) controller_port="$2"; shift 2 ;;
            --data-dir) data_dir="$2"; shift 2 ;;
            *) die "start: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: kafka.sh start --data-dir D [--port P] [--controller-port C]"
    data_dir="$(abs_dir "${data_dir}")"
    if pid="$(running_pid "${data_dir}")"; then
        die "a broker is already running on ${data_dir} (pid ${pid}); run '$0 stop --data-dir ${data_dir}'"
    fi
    command -v java >/dev/null || die "java not found (Java 17 or newer is needed)"
    jars="$(ensure_jars)"
    # A single voter elects itself whatever its controller port: a data dir formatted
    # with one pair of ports restarts fine on another.
    if ! is_formatted "${data_dir}"; then
        cmd_format "${data_dir}" --port "${port}" --controller-port "${controller_port}"
    fi
    render_config "${data_dir}" "${port}" "${controller_port}"
    rm -f "${data_dir}/kafka.pid"
    # Where this start's log begins: `wait` reads only what follows.
    if [[ -f "${data_dir}/logs/server.log" ]]; then
        stat -c %s "${data_dir}/logs/server.log" >"${data_dir}/logs/.start-offset"
    else
        printf '0\n' >"${data_dir}/logs/.start-offset"
    fi
    # JVM flags as bin/kafka-run-class.sh, with a smaller heap. The JVM runs in its own
    # session so a Ctrl-C in the terminal reaches only the supervisor, which stops it.
    local heap="${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
    local perf="${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}"
    # SC2016: $$ and "$@" expand in the child bash. SC2086: the JVM options are word lists.
    # shellcheck disable=SC2016,SC2086
    setsid bash -c 'printf "%s\n" "$$" >"$1"; shift; exec "$@"' kafka-launcher \
        "${data_dir}/kafka.pid" \
        java ${heap} ${perf} \
        -Dlog4j2.configurationFile="${LOG4J2}" \
        -Dkafka.logs.dir="${data_dir}/logs" \
        -cp "${jars}/*" kafka.Kafka "${data_dir}/server.properties" \
        </dev/null >>"${data_dir}/kafka.out" 2>&1 &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s "${data_dir}/kafka.pid" ]] && break
        sleep 0.1
    done
    [[ -s "${data_dir}/kafka.pid" ]] || die "the broker did not start (see ${data_dir}/kafka.out)"
    log "started broker pid $(cat "${data_dir}/kafka.pid") on 127.0.0.1:${port} (controller ${controller_port}), data ${data_dir}"
}

# The broker's client port, read back from the rendered config.
configured_port() {
    sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$1/server.properties"
}

# A real Kafka request over bash's /dev/tcp: Metadata v4 for all topics. Succeeds when
# the broker answers with at least one live broker in the metadata (it lists itself only
# once it has registered with the controller and been unfenced).
metadata_ready() {
    local port="$1" bytes count
    local -a fields
    # size=16 | api_key=3 api_version=4 correlation_id=7 client_id="w" | topics=null auto_create=0
    bytes="$(
        exec 3<>"/dev/tcp/127.0.0.1/${port}" || exit 1
        printf '\x00\x00\x00\x10\x00\x03\x00\x04\x00\x00\x00\x07\x00\x01w\xff\xff\xff\xff\x00' >&3
        timeout 3 head -c 16 <&3 | od -An -v -tu1
    )" 2>/dev/null || return 1
    read -r -a fields <<<"${bytes}"
    ((${#fields[@]} == 16)) || return 1
    # response: size(4) correlation_id(4) throttle_time_ms(4) brokers.length(4)
    ((fields[4] == 0 && fields[5] == 0 && fields[6] == 0 && fields[7] == 7)) || return 1
    count=$(((fields[12] << 24) | (fields[13] << 16) | (fields[14] << 8) | fields[15]))
    ((count >= 1))
}

started_in_log() {
    local data_dir="$1" offset=0 log_file="$1/logs/server.log" size
    [[ -f "${log_file}" ]] || return 1
    [[ -f "${data_dir}/logs/.start-offset" ]] && offset="$(cat "${data_dir}/logs/.start-offset")"
    size="$(stat -c %s "${log_file}")"
    ((size >= offset)) || offset=0 # the log rolled over since the start
    tail -c +"$((offset + 1))" "${log_file}" | grep -q 'Kafka Server started'
}

cmd_wait() {
    local data_dir="" timeout=90 port deadline
    while (($# > 0)); do
        case "$1" in
            --data-dir) data_dir="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            *) die "wait: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: kafka.sh wait --data-dir D [--timeout SECONDS]"
    data_dir="$(abs_dir "${data_dir}")"
    port="$(configured_port "${data_dir}")"
    [[ -n "${port}" ]] || die "no server.properties in ${data_dir}"
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if ! running_pid "${data_dir}" >/dev/null; then
            tail -n 30 "${data_dir}/kafka.out" "${data_dir}/logs/server.log" >&2 2>/dev/null || true
            die "the broker on ${data_dir} is not running"
        fi
        if started_in_log "${data_dir}" && metadata_ready "${port}"; then
            log "broker ready on 127.0.0.1:${port}"
            return 0
        fi
        sleep 0.25
    done
    tail -n 30 "${data_dir}/logs/server.log" >&2 2>/dev/null || true
    die "the broker on 127.0.0.1:${port} was not ready after ${timeout}s"
}

main() {
    (($# > 0)) || die "usage: kafka.sh fetch|jars|format|start|wait|stop|kill|status ..."
    local command="$1"
    shift
    case "${command}" in
        fetch) cmd_fetch "$@" ;;
        jars) cmd_jars "$@" ;;
        version) kafka_version ;;
        format) cmd_format "$@" ;;
        start) cmd_start "$@" ;;
        wait) cmd_wait "$@" ;;
        stop) cmd_stop "$@" ;;
        kill) cmd_stop --kill --timeout 10 "$@" ;;
        status) cmd_status "$@" ;;
        *) die "unknown command ${command}" ;;
    esac
}

main "$@"
