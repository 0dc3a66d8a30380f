#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, combined broker+controller nodes on loopback) from the
# jars on Maven Central: no Docker, no release tarball. One node (make run, the tests), or
# a cluster of three whose controller quorum is the three nodes (make run-cluster, the
# cluster tests).
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
#   kafka.sh cluster start --data-dir D [--ports P1,P2,P3] [--controller-ports C1,C2,C3] [--node N]
#   kafka.sh cluster wait --data-dir D [--timeout SECONDS] [--node N]
#   kafka.sh cluster stop --data-dir D [--timeout SECONDS] [--node N]
#   kafka.sh cluster kill --data-dir D [--node N]      SIGKILL, for fault tests
#   kafka.sh cluster status --data-dir D [--node N]    "N PORT PID" per node; 0 when all run
#   kafka.sh cluster bootstrap --data-dir D            127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#
# DATA_DIR holds server.properties (rendered from server.properties.template and
# broker.properties), kraft/ (the log), logs/server.log, kafka.out (JVM stdout/stderr) and
# kafka.pid. A cluster's D holds cluster.conf (its id and ports) and node-1/ node-2/ node-3/,
# each a DATA_DIR as above plus node.conf (rendered with cluster.properties.template); the
# single-node commands also work on one node's dir (start it again after a kill, say).
# Cluster ports default to 9092,9094,9096 for clients and 9093,9095,9097 for controllers.
#
# Environment: KAFKA_HEAP_OPTS (default -Xms512m -Xmx512m for one node, -Xms384m -Xmx384m
# for each cluster node), KAFKA_JVM_PERFORMANCE_OPTS, CHANCERY_CACHE_DIR (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/chancery), CHANCERY_MVN_ARGS.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly POM="${HERE}/pom.xml"
readonly TEMPLATE="${HERE}/server.properties.template"
readonly CLUSTER_TEMPLATE="${HERE}/cluster.properties.template"
readonly BROKER_PROPERTIES="${HERE}/broker.properties"
readonly LOG4J2="${HERE}/log4j2.xml"
readonly DEFAULT_PORT=9092
readonly DEFAULT_CONTROLLER_PORT=9093
readonly DEFAULT_CLUSTER_PORTS=9092,9094,9096
readonly DEFAULT_CLUSTER_CONTROLLER_PORTS=9093,9095,9097
readonly CLUSTER_NODES=3
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

# render_config DATA_DIR PORT CONTROLLER_PORT: a single node's server.properties.
render_config() {
    local data_dir="$1" port="$2" controller_port="$3"
    check_port "${port}"
    check_port "${controller_port}"
    [[ "${port}" != "${controller_port}" ]] || die "port and controller port must differ"
    mkdir -p "${data_dir}/kraft" "${data_dir}/logs"
    {
        sed -e "s|@PORT@|${port}|g" \
            -e "s|@CONTROLLER_PORT@|${controller_port}|g" \
            -e "s|@LOG_DIRS@|${data_dir}/kraft|g" \
            "${TEMPLATE}"
        printf '\n'
        cat "${BROKER_PROPERTIES}"
    } >"${data_dir}/server.properties.tmp"
    mv "${data_dir}/server.properties.tmp" "${data_dir}/server.properties"
}

# render_node_config NODE_DIR: a cluster node's server.properties, from its node.conf.
render_node_config() {
    local data_dir="$1" conf="$1/node.conf"
    local node_id port controller_port voters
    node_id="$(conf_value "${conf}" node.id)"
    port="$(conf_value "${conf}" port)"
    controller_port="$(conf_value "${conf}" controller.port)"
    voters="$(conf_value "${conf}" voters)"
    [[ "${node_id}" =~ ^[0-9]+$ && -n "${voters}" ]] || die "${conf} is incomplete"
    check_port "${port}"
    check_port "${controller_port}"
    mkdir -p "${data_dir}/kraft" "${data_dir}/logs"
    {
        sed -e "s|@NODE_ID@|${node_id}|g" \
            -e "s|@PORT@|${port}|g" \
            -e "s|@CONTROLLER_PORT@|${controller_port}|g" \
            -e "s|@VOTERS@|${voters}|g" \
            -e "s|@LOG_DIRS@|${data_dir}/kraft|g" \
            "${CLUSTER_TEMPLATE}"
        printf '\n'
        cat "${BROKER_PROPERTIES}"
    } >"${data_dir}/server.properties.tmp"
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

# launch DATA_DIR JARS HEAP: run the broker of DATA_DIR/server.properties in the background,
# in its own session; returns once its pid file is written.
launch() {
    local data_dir="$1" jars="$2" heap="$3"
    rm -f "${data_dir}/kafka.pid"
    # Where this start's log begins: `wait` reads only what follows.
    if [[ -f "${data_dir}/logs/server.log" ]]; then
        stat -c %s "${data_dir}/logs/server.log" >"${data_dir}/logs/.start-offset"
    else
        printf '0\n' >"${data_dir}/logs/.start-offset"
    fi
    # JVM flags as bin/kafka-run-class.sh, with a smaller heap. The JVM runs in its own
    # session so a Ctrl-C in the terminal reaches only the supervisor, which stops it.
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
}

# A cluster node, started on its own (after a kill, say): its node.conf fixes its ports.
start_cluster_node() {
    local data_dir="$1" jars pid
    if pid="$(running_pid "${data_dir}")"; then
        die "a broker is already running on ${data_dir} (pid ${pid}); run '$0 stop --data-dir ${data_dir}'"
    fi
    is_formatted "${data_dir}" ||
        die "${data_dir} is a cluster node that was never formatted: run '$0 cluster start --data-dir $(dirname "${data_dir}")'"
    command -v java >/dev/null || die "java not found (Java 17 or newer is needed)"
    jars="$(ensure_jars)"
    render_node_config "${data_dir}"
    launch "${data_dir}" "${jars}" "${KAFKA_HEAP_OPTS:--Xms384m -Xmx384m}"
    log "started broker $(conf_value "${data_dir}/node.conf" node.id) pid $(cat "${data_dir}/kafka.pid") on 127.0.0.1:$(conf_value "${data_dir}/node.conf" port), data ${data_dir}"
}

cmd_start() {
    local data_dir="" port="" controller_port="" jars pid
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
    if is_cluster_node "${data_dir}"; then
        [[ -z "${port}${controller_port}" ]] ||
            die "${data_dir} is a cluster node: its ports are in its node.conf ('$0 cluster start' sets them)"
        start_cluster_node "${data_dir}"
        return 0
    fi
    port="${port:-${DEFAULT_PORT}}"
    controller_port="${controller_port:-${DEFAULT_CONTROLLER_PORT}}"
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
    launch "${data_dir}" "${jars}" "${KAFKA_HEAP_OPTS:--Xms512m -Xmx512m}"
    log "started broker pid $(cat "${data_dir}/kafka.pid") on 127.0.0.1:${port} (controller ${controller_port}), data ${data_dir}"
}

# The broker's client port, read back from the rendered config.
configured_port() {
    sed -n 's|^listeners=PLAINTEXT://127.0.0.1:\([0-9]*\),.*|\1|p' "$1/server.properties"
}

# A real Kafka request over bash's /dev/tcp: Metadata v4 for all topics. Prints how many
# live brokers the answering broker knows (a broker lists only the registered, unfenced
# ones, itself included once the controller has unfenced it); fails when it cannot ask.
metadata_brokers() {
    local port="$1" bytes
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
    printf '%s\n' $(((fields[12] << 24) | (fields[13] << 16) | (fields[14] << 8) | fields[15]))
}

started_in_log() {
    local data_dir="$1" offset=0 log_file="$1/logs/server.log" size count
    [[ -f "${log_file}" ]] || return 1
    [[ -f "${data_dir}/logs/.start-offset" ]] && offset="$(cat "${data_dir}/logs/.start-offset")"
    size="$(stat -c %s "${log_file}")"
    ((size >= offset)) || offset=0 # the log rolled over since the start
    # grep -c reads to the end: `grep -q` would stop at the first match and, under
    # pipefail, tail's SIGPIPE would fail the check whenever much was logged after it.
    count="$(tail -c +"$((offset + 1))" "${log_file}" | grep -c -F 'Kafka Server started' || true)"
    ((${count:-0} > 0))
}

# wait_node DATA_DIR TIMEOUT MIN_BROKERS: until the node's broker logged its start and
# answers metadata listing at least MIN_BROKERS live brokers.
wait_node() {
    local data_dir="$1" timeout="$2" min_brokers="$3" port deadline count
    port="$(configured_port "${data_dir}")"
    [[ -n "${port}" ]] || die "no server.properties in ${data_dir}"
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        if ! running_pid "${data_dir}" >/dev/null; then
            tail -n 30 "${data_dir}/kafka.out" "${data_dir}/logs/server.log" >&2 2>/dev/null || true
            die "the broker on ${data_dir} is not running"
        fi
        if started_in_log "${data_dir}" && count="$(metadata_brokers "${port}")" &&
            ((count >= min_brokers)); then
            log "broker ready on 127.0.0.1:${port} (${count} live brokers)"
            return 0
        fi
        sleep 0.25
    done
    tail -n 30 "${data_dir}/logs/server.log" >&2 2>/dev/null || true
    die "the broker on 127.0.0.1:${port} was not ready (${min_brokers} live brokers) after ${timeout}s"
}

cmd_wait() {
    local data_dir="" timeout=90
    while (($# > 0)); do
        case "$1" in
            --data-dir) data_dir="$2"; shift 2 ;;
            --timeout) timeout="$2"; shift 2 ;;
            *) die "wait: unknown argument $1" ;;
        esac
    done
    [[ -n "${data_dir}" ]] || die "usage: kafka.sh wait --data-dir D [--timeout SECONDS]"
    data_dir="$(abs_dir "${data_dir}")"
    wait_node "${data_dir}" "${timeout}" 1
}

# --- the three-node cluster ---------------------------------------------------------------

# split_ports LIST: the three ports of a comma-separated LIST, one a line; dies unless three.
split_ports() {
    local -a listed
    local p
    IFS=, read -r -a listed <<<"$1"
    ((${#listed[@]} == CLUSTER_NODES)) || die "give ${CLUSTER_NODES} ports, comma-separated: not '$1'"
    for p in "${listed[@]}"; do
        check_port "${p}"
        printf '%s\n' "${p}"
    done
}

# A Kafka cluster id (what `StorageTool random-uuid` makes, without starting a JVM):
# 16 random bytes in URL-safe base64, unpadded; Kafka refuses ids that start with '-'.
new_cluster_id() {
    local id
    while true; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "${id}" != -* ]] && break
    done
    printf '%s\n' "${id}"
}

check_node() {
    if ! [[ "$1" =~ ^[1-9][0-9]*$ ]] || (("$1" > CLUSTER_NODES)); then
        die "no node $1: nodes are 1 to ${CLUSTER_NODES}"
    fi
}

any_node_running() {
    local cluster_dir="$1" n
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        running_pid "$(node_dir "${cluster_dir}" "${n}")" >/dev/null && return 0
    done
    return 1
}

# write_cluster_conf CLUSTER_DIR ID PORTS CONTROLLER_PORTS, and every node's node.conf.
write_cluster_conf() {
    local cluster_dir="$1" cluster_id="$2" ports="$3" controller_ports="$4"
    local -a client control
    local voters="" n dir
    mapfile -t client < <(split_ports "${ports}")
    mapfile -t control < <(split_ports "${controller_ports}")
    # split_ports said why when a list is not three ports.
    ((${#client[@]} == CLUSTER_NODES && ${#control[@]} == CLUSTER_NODES)) || exit 1
    if (($(printf '%s\n' "${client[@]}" "${control[@]}" | sort -u | wc -l) != 2 * CLUSTER_NODES)); then
        die "the ${CLUSTER_NODES} client and ${CLUSTER_NODES} controller ports must all differ"
    fi
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        voters+="${voters:+,}${n}@127.0.0.1:${control[n - 1]}"
    done
    printf 'cluster.id=%s\nports=%s\ncontroller.ports=%s\n' \
        "${cluster_id}" "${ports}" "${controller_ports}" >"${cluster_dir}/cluster.conf.tmp"
    mv "${cluster_dir}/cluster.conf.tmp" "${cluster_dir}/cluster.conf"
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        dir="$(node_dir "${cluster_dir}" "${n}")"
        mkdir -p "${dir}"
        printf 'node.id=%s\nport=%s\ncontroller.port=%s\nvoters=%s\n' \
            "${n}" "${client[n - 1]}" "${control[n - 1]}" "${voters}" >"${dir}/node.conf"
    done
}

# format_node NODE_DIR CLUSTER_ID JARS: format a node's log dir for the cluster (static
# voters: no --standalone, no initial controllers).
format_node() {
    local dir="$1" cluster_id="$2" jars="$3"
    render_node_config "${dir}"
    # A short-lived tool, three at once: the quick JIT tier and one GC thread cost less CPU.
    java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
        -Dlog4j2.configurationFile="${LOG4J2}" -Dkafka.logs.dir="${dir}/logs" \
        -cp "${jars}/*" kafka.tools.StorageTool format \
        -t "${cluster_id}" -c "${dir}/server.properties" >>"${dir}/format.out" 2>&1 ||
        {
            cat "${dir}/format.out" >&2
            die "formatting ${dir} failed"
        }
}

# cluster start: record the cluster's id and ports (once; new ports only while every node
# is stopped), format the nodes that never ran, start the nodes that do not run.
cluster_start() {
    local cluster_dir="$1" ports="$2" controller_ports="$3" only="$4"
    local conf="${cluster_dir}/cluster.conf" cluster_id="" jars n dir formatted_id
    local -a to_format=() pids=()
    if [[ -f "${conf}" ]]; then
        cluster_id="$(conf_value "${conf}" cluster.id)"
        local old_ports old_controller_ports
        old_ports="$(conf_value "${conf}" ports)"
        old_controller_ports="$(conf_value "${conf}" controller.ports)"
        if [[ -n "${ports}${controller_ports}" && "${ports:-${old_ports}},${controller_ports:-${old_controller_ports}}" != "${old_ports},${old_controller_ports}" ]] &&
            any_node_running "${cluster_dir}"; then
            die "the cluster in ${cluster_dir} runs on ports ${old_ports} (controllers ${old_controller_ports}); stop every node before moving it"
        fi
        ports="${ports:-${old_ports}}"
        controller_ports="${controller_ports:-${old_controller_ports}}"
    fi
    [[ -n "${cluster_id}" ]] || cluster_id="$(new_cluster_id)"
    ports="${ports:-${DEFAULT_CLUSTER_PORTS}}"
    controller_ports="${controller_ports:-${DEFAULT_CLUSTER_CONTROLLER_PORTS}}"
    write_cluster_conf "${cluster_dir}" "${cluster_id}" "${ports}" "${controller_ports}"
    command -v java >/dev/null || die "java not found (Java 17 or newer is needed)"
    jars="$(ensure_jars)"
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        dir="$(node_dir "${cluster_dir}" "${n}")"
        if is_formatted "${dir}"; then
            formatted_id="$(conf_value "${dir}/kraft/meta.properties" cluster.id)"
            [[ "${formatted_id}" == "${cluster_id}" ]] ||
                die "${dir} belongs to cluster ${formatted_id}, not ${cluster_id} (${conf}): remove one of them"
        else
            to_format+=("${dir}")
        fi
    done
    # Formatting starts a JVM per node: the three in parallel.
    for dir in "${to_format[@]}"; do
        format_node "${dir}" "${cluster_id}" "${jars}" &
        pids+=("$!")
    done
    for n in "${pids[@]}"; do
        wait "${n}" || die "formatting a node of ${cluster_dir} failed"
    done
    ((${#to_format[@]} == 0)) || log "formatted ${#to_format[@]} node(s) of cluster ${cluster_id} in ${cluster_dir}"
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        [[ -z "${only}" || "${only}" == "${n}" ]] || continue
        dir="$(node_dir "${cluster_dir}" "${n}")"
        running_pid "${dir}" >/dev/null && continue
        start_cluster_node "${dir}"
    done
}

# cluster wait: each node has started and sees all three brokers live (so a topic with
# three replicas can be created at once). With --node N, only that node, and it need only
# see itself: the others may be down on purpose.
cluster_wait() {
    local cluster_dir="$1" timeout="$2" only="$3" deadline n left
    deadline=$((SECONDS + timeout))
    if [[ -n "${only}" ]]; then
        wait_node "$(node_dir "${cluster_dir}" "${only}")" "${timeout}" 1
        return 0
    fi
    for ((n = 1; n <= CLUSTER_NODES; n++)); do
        left=$((deadline - SECONDS))
        ((left > 0)) || left=1
        wait_node "$(node_dir "${cluster_dir}" "${n}")" "${left}" "${CLUSTER_NODES}"
    done
    log "cluster ready: $(cluster_bootstrap "${cluster_dir}")"
}

cluster_bootstrap() {
    local conf="$1/cluster.conf" p out=""
    [[ -f "${conf}" ]] || die "no cluster in $1 (no cluster.conf)"
    while IFS= read -r p; do
        out+="${out:+,}127.0.0.1:${p}"
    done < <(split_ports "$(conf_value "${conf}" ports)")
    printf '%s\n' "${out}"
}

cmd_cluster() {
    (($# > 0)) || die "usage: kafka.sh cluster start|wait|stop|kill|status|bootstrap --data-dir D ..."
    local command="$1" cluster_dir="" ports="" controller_ports="" only="" timeout=""
    shift
    while (($# > 0)); do
        case "$1" in
            --data-dir) cluster_dir="$2"; shift 2 ;;
            --ports) ports="$2"; shift 2 ;;
            --controller-ports) controller_ports="$2"; shift 2 ;;
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
    case "${command}" in
        start) cluster_start "${cluster_dir}" "${ports}" "${controller_ports}" "${only}" ;;
        wait) cluster_wait "${cluster_dir}" "${timeout:-120}" "${only}" ;;
        stop) cluster_stop "${cluster_dir}" "${timeout:-30}" "${only}" no ;;
        kill) cluster_stop "${cluster_dir}" 10 "${only}" yes ;;
        status) cluster_status "${cluster_dir}" "${only}" ;;
        bootstrap) cluster_bootstrap "${cluster_dir}" ;;
        *) die "unknown command cluster ${command}" ;;
    esac
}

main() {
    (($# > 0)) || die "usage: kafka.sh fetch|jars|format|start|wait|stop|kill|status|cluster ..."
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
        cluster) cmd_cluster "$@" ;;
        *) die "unknown command ${command}" ;;
    esac
}

main "$@"
