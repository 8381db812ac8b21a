#!/usr/bin/env bash
# local-services.sh - start/stop the real local infrastructure that the
# project's tests and demo talk to:
#
#   * Apache Kafka 4.x, single node, KRaft (combined broker + controller),
#     on localhost:9092 (controller listener on localhost:9093);
#   * MariaDB 10.11 on 127.0.0.1:3306 with a password-less development user
#     `registrations` and a database of the same name.
#
# Why this script and not docker compose: our machines (developers' and CI)
# have no Docker engine and reach no network except the package registries.
# So Kafka's jars come from Maven Central (via mvn and scripts/kafka/pom.xml)
# and run on the machine's Java 17, and MariaDB comes from Debian's packages.
# Everything we download or write (jars, data, logs, pid files) lives under
# <repo>/.local/ which is git-ignored; nothing is installed as a system
# service (a distro MariaDB that grabs port 3306 is stopped).
#
# Usage: scripts/local-services.sh COMMAND [--brokers N]
#   up           install what is missing, start Kafka and MariaDB, wait until
#                both really answer, print the env lines (idempotent; a
#                second `up` while running is a fast no-op)
#   up --brokers N
#                Kafka as a cluster of N broker processes (N = 1: the single
#                broker on localhost:9092, the default; N >= 2: a KRaft cluster
#                whose every node is broker + controller, each with its own data
#                dir under .local/kafka-cluster and its own address, see
#                "Multi-broker cluster" below). The choice is remembered: `up`,
#                `env`, `status` without --brokers use the last one given to `up`.
#                LOCAL_KAFKA_BROKERS=N selects N for one command without
#                remembering it (what the test scripts use).
#   down         stop Kafka (the single broker and the cluster: SIGTERM, SIGKILL
#                after 30 s) and MariaDB; idempotent
#   status       one line per service (per broker for a cluster: id, pid,
#                address, running/isolated/stopped); exit 0 only if all run
#   reset        down, then delete the local data dirs (downloads are kept)
#   env          print the export lines:  eval "$(scripts/local-services.sh env)"
#                (KAFKA_BOOTSTRAP_SERVERS lists every broker of a cluster)
#   broker-kill ID      SIGKILL of cluster broker ID (no controlled shutdown)
#   broker-stop ID      SIGTERM of broker ID (controlled shutdown; SIGKILL after 30 s)
#   broker-start ID     start broker ID again (same data); waits until it has
#                       started (caught up with the metadata and unfenced) unless
#                       the quorum is gone, then it only waits for the process
#   broker-isolate ID   network partition: broker ID loses every link to the other
#                       brokers and to clients (its veth is taken down), while it
#                       keeps running; needs the namespaced network (root)
#   broker-heal ID      undo broker-isolate
#   active-controller   print the node id of the active KRaft controller
#   up --secure  a secured broker and MariaDB, beside (never instead of) the
#                shared plaintext ones: SASL_SSL (SCRAM-SHA-512, PLAIN) on
#                localhost:29092 and MariaDB requiring TLS on 127.0.0.1:3307,
#                with a CA, certificates and passwords generated under
#                .local/secure/ (git-ignored); prints their env lines
#   env --secure | status --secure | down --secure   the same for those only
#                (plain `down` stops them too)
#   up --observability
#                also Prometheus (the shipped alert rules, scraping the services
#                scripts/demo.sh starts) on 9090, Alertmanager on 9095 and, when
#                built, the OpenTelemetry Collector on 4318 (plain `down` stops
#                them too; scripts/observability/local-stack.sh)
#   observability up | down | status   the same for those only
#   kafka-start | kafka-stop   start/stop only the broker (data is kept)
#   db-start    | db-stop      start/stop only MariaDB (data is kept)
#   kafka-tool MAIN_CLASS [ARGS...]
#                run a Kafka CLI class with the broker's classpath, e.g.
#                kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server localhost:9092 --list
#                kafka-tool org.apache.kafka.tools.ProducerPerformance ...
#   kafka-libs   fetch the Kafka jars if missing, print their directory (for
#                scripts/container-images.sh, whose Kafka image takes them)
#
# Multi-broker cluster (N >= 2): node i listens for clients on port 19091+i
# and for the quorum on 19191+i. Run as root (CI, these machines), each node
# runs in its own network namespace, joined to the host by a veth pair on a
# bridge, with its own address 10.209.X.(10+i) (X derived from the checkout's
# path, KAFKA_CLUSTER_SUBNET overrides the first three octets): that is what
# lets broker-isolate cut a node off for real, both from its peers and from
# clients, with nothing to configure in the services (they reach the nodes
# like remote hosts). Without root the nodes share 127.0.0.1 and isolation is
# not available (KAFKA_CLUSTER_NETWORK=loopback forces that mode). The cluster
# has its own ports and addresses, so it runs beside the single broker.
#
# Exit codes: 0 ok; 1 a service is not running (status) or other error;
# 2 usage; 3 installing a prerequisite failed; 4 Kafka failed to start or
# stop; 5 MariaDB failed to start or stop; 6 a port we need is taken by
# something that is not ours.
#
# Tunables (environment): KAFKA_START_TIMEOUT (90 s), KAFKA_STOP_TIMEOUT (30 s),
# DB_START_TIMEOUT (60 s), KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), LOCAL_PORT_OFFSET
# (0; added to every port, for a second checkout's services beside the first).

set -euo pipefail

readonly EX_NOT_RUNNING=1 EX_USAGE=2 EX_INSTALL=3 EX_KAFKA=4 EX_DB=5 EX_PORT=6

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly SCRIPTS="$ROOT/scripts"
readonly LOCAL="$ROOT/.local"

# Debian keeps mariadbd and friends in sbin, which is not on every PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# LOCAL_PORT_OFFSET=N moves every port below by N, so that a second checkout
# (a git worktree, say) runs its own broker and database beside the first.
readonly PORT_OFFSET="${LOCAL_PORT_OFFSET:-0}"
[[ $PORT_OFFSET =~ ^[0-9]+$ ]] || { echo "LOCAL_PORT_OFFSET must be a whole number, got '$PORT_OFFSET'" >&2; exit 2; }

# ---------------------------------------------------------------- Kafka paths
readonly KAFKA_PORT=$((9092 + PORT_OFFSET))
readonly KAFKA_CONTROLLER_PORT=$((9093 + PORT_OFFSET))
readonly KAFKA_HOME="$LOCAL/kafka"
readonly KAFKA_LIBS="$KAFKA_HOME/libs"
readonly KAFKA_LIBS_MARKER="$KAFKA_LIBS/.fetched"
readonly KAFKA_CONFIG_DIR="$KAFKA_HOME/config"
readonly KAFKA_CONFIG="$KAFKA_CONFIG_DIR/server.properties"
readonly KAFKA_DATA="$KAFKA_HOME/data"
readonly KAFKA_LOGS="$KAFKA_HOME/logs"
readonly KAFKA_PID_FILE="$KAFKA_HOME/kafka.pid"
readonly KAFKA_CLUSTER_ID_FILE="$KAFKA_HOME/cluster.id"
readonly KAFKA_POM="$SCRIPTS/kafka/pom.xml"
readonly KAFKA_TEMPLATE="$SCRIPTS/kafka/server.properties"
readonly KAFKA_LOG4J="$SCRIPTS/kafka/log4j2.yaml"
readonly KAFKA_TOOLS_LOG4J="$SCRIPTS/kafka/tools-log4j2.yaml"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

# -------------------------------------------------------------- MariaDB paths
readonly DB_PORT=$((3306 + PORT_OFFSET))
readonly DB_NAME=registrations
readonly DB_USER=registrations
readonly DB_HOME="$LOCAL/mariadb"
readonly DB_DATA="$DB_HOME/data"
readonly DB_CNF="$DB_HOME/my.cnf"
readonly DB_PID_FILE="$DB_HOME/mariadbd.pid"
readonly DB_LOGS="$DB_HOME/logs"
readonly DB_TMP="$DB_HOME/tmp"
readonly DB_INIT_MARKER="$DB_HOME/.initialized"
DB_START_TIMEOUT="${DB_START_TIMEOUT:-60}"
# A unix socket path must stay under ~107 bytes; deep checkouts fall back to
# a per-checkout name in the temp dir.
DB_SOCKET="$DB_HOME/mariadbd.sock"
if ((${#DB_SOCKET} > 100)); then
  DB_SOCKET="${TMPDIR:-/tmp}/local-services-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).sock"
fi
readonly DB_SOCKET

readonly ENV_KAFKA="export KAFKA_BOOTSTRAP_SERVERS=localhost:$KAFKA_PORT"
readonly ENV_DB="export DATABASE_URL=mysql://$DB_USER@127.0.0.1:$DB_PORT/$DB_NAME"

# ===================================================================== helpers

log() { printf '[local-services] %s\n' "$*" >&2; }
die() {
  local code=$1
  shift
  log "ERROR: $*"
  exit "$code"
}

now() { date +%s; }

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# proc_cmdline PID: the process's argv joined with spaces (empty if gone).
proc_cmdline() {
  local -a argv=()
  mapfile -d '' argv <"/proc/$1/cmdline" 2>/dev/null || return 0
  printf '%s' "${argv[*]}"
}

proc_comm() { cat "/proc/$1/comm" 2>/dev/null || true; }

# proc_zombie PID: the process has exited and only waits to be reaped.
proc_zombie() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} == Z ]]
}

# find_pids COMM NEEDLE: pids of live processes named COMM whose command line
# contains NEEDLE (an absolute path inside this checkout, so it only matches
# processes this script started for this checkout).
find_pids() {
  local comm=$1 needle=$2 dir pid
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    [[ $pid == "$$" ]] && continue
    [[ "$(proc_comm "$pid")" == "$comm" ]] || continue
    proc_zombie "$pid" && continue
    [[ "$(proc_cmdline "$pid")" == *"$needle"* ]] && printf '%s\n' "$pid"
  done
  return 0
}

# service_pid PIDFILE COMM NEEDLE: the pid of our running service or nothing.
# The pid file is only a hint: it is checked against /proc (pid reuse), and a
# lost pid file does not make us lose track of a running process.
service_pid() {
  local pid_file=$1 comm=$2 needle=$3 pid=""
  if [[ -s $pid_file ]]; then
    pid=$(tr -dc '0-9' <"$pid_file")
    if [[ -n $pid && "$(proc_comm "$pid")" == "$comm" && "$(proc_cmdline "$pid")" == *"$needle"* ]]; then
      printf '%s\n' "$pid"
      return 0
    fi
  fi
  find_pids "$comm" "$needle" | head -n1
}

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null && ! proc_zombie "$1"; }

# wait_gone PID SECONDS: 0 once PID has exited, 1 on timeout.
wait_gone() {
  local pid=$1 deadline=$(($(now) + $2))
  while pid_alive "$pid"; do
    proc_zombie "$pid" && return 0
    (($(now) >= deadline)) && return 1
    sleep 0.5
  done
  return 0
}

# terminate PID NAME TIMEOUT: SIGTERM, wait, then SIGKILL.
terminate() {
  local pid=$1 name=$2 timeout=$3
  pid_alive "$pid" || return 0
  log "stopping $name (pid $pid, SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$timeout"; then
    log "$name (pid $pid) still running after ${timeout}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || return 1
  fi
}

# launch PIDFILE OUTFILE CMD...: start CMD as a daemon in its own session
# (so it survives the caller's terminal and process group being killed),
# with stdin from /dev/null, stdout+stderr to OUTFILE and no other inherited
# file descriptors (an inherited pipe would keep callers like `$(...)`
# waiting, an inherited lock fd would block the next `up`). The launcher
# writes its own pid and then execs CMD, so PIDFILE holds CMD's pid.
launch() {
  local pid_file=$1 out=$2
  shift 2
  # shellcheck disable=SC2016  # the inner script expands its own variables
  setsid bash -c '
    pid_file=$1 out=$2; shift 2
    for fd in /proc/$$/fd/*; do
      fd=${fd##*/}
      if [[ $fd =~ ^[0-9]+$ ]] && (( fd > 2 )); then eval "exec $fd>&-"; fi
    done
    echo $$ >"$pid_file"
    exec "$@" </dev/null >>"$out" 2>&1
  ' local-services-launch "$pid_file" "$out" "$@" </dev/null >/dev/null 2>&1 &
  # Give the launcher a moment to write the pid file.
  local _
  for _ in $(seq 1 50); do
    [[ -s $pid_file ]] && return 0
    sleep 0.1
  done
  return 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# port_taken PORT LABEL COMM PATTERN EXIT_CODE: fail clearly when PORT is
# served by something that is not ours, naming candidate processes (e.g. the
# same service started from another checkout).
port_taken() {
  local port=$1 label=$2 comm=$3 pattern=$4 code=$5 who pid
  port_open "$port" || return 0
  who=""
  for pid in $(find_pids "$comm" "$pattern"); do
    who+=" [pid $pid: $(proc_cmdline "$pid" | cut -c1-300)]"
  done
  die "$code" "port $port is already in use by a process that is not this checkout's ${label}${who:+; candidates:$who}"
}

as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif have sudo; then
    sudo "$@"
  else
    die "$EX_INSTALL" "need root to run: $*"
  fi
}

APT_UPDATED=""
apt_install() {
  have apt-get || die "$EX_INSTALL" "apt-get not found; install $* by hand"
  local apt_opts=(-o DPkg::Lock::Timeout=600 -q)
  if [[ -z $APT_UPDATED ]]; then
    log "apt-get update"
    as_root apt-get "${apt_opts[@]}" update >&2 || die "$EX_INSTALL" "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >&2 ||
    die "$EX_INSTALL" "apt-get install $* failed"
}

# with_lock CMD...: serialise state-changing commands (two `up`s at once).
with_lock() {
  mkdir -p "$LOCAL"
  exec 9>"$LOCAL/.lock"
  if ! flock -w 900 9; then
    die 1 "another local-services.sh is still busy (lock $LOCAL/.lock)"
  fi
  "$@"
  exec 9>&-
}

# with_cluster_lock CMD...: one broker-start at a time, without waiting for an
# `up` of the whole machine (which holds the main lock while it installs).
with_cluster_lock() {
  mkdir -p "$CLUSTER_HOME"
  exec 8>"$CLUSTER_HOME/.lock"
  flock -w 300 8 || die 1 "another broker-start is still busy (lock $CLUSTER_HOME/.lock)"
  "$@"
  exec 8>&-
}

# ======================================================================= Kafka

kafka_pid() { service_pid "$KAFKA_PID_FILE" java "kafka.Kafka $KAFKA_CONFIG"; }

ensure_java() {
  if ! have java; then
    apt_install openjdk-17-jre-headless
  fi
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}')
  if ! [[ ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    die "$EX_INSTALL" "Kafka 4.x needs Java 17 or newer; 'java' is version ${v:-unknown}"
  fi
}

pom_digest() { cksum <"$KAFKA_POM" | cut -d' ' -f1; }

# Download the broker + tools jars once (again only when the pom changes).
ensure_kafka_libs() {
  local want
  want=$(pom_digest)
  if [[ -f $KAFKA_LIBS_MARKER && "$(cat "$KAFKA_LIBS_MARKER")" == "$want" ]] &&
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  have mvn || apt_install maven
  log "fetching Kafka jars from Maven Central (scripts/kafka/pom.xml) into .local/kafka/libs"
  local tmp="$KAFKA_HOME/libs.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$KAFKA_HOME"
  mkdir -p "$KAFKA_LOGS"
  if ! mvn -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" -DincludeScope=runtime </dev/null >"$KAFKA_LOGS/mvn.log" 2>&1; then
    rm -rf "$tmp"
    grep -E 'ERROR|FAIL' "$KAFKA_LOGS/mvn.log" | tail -n 20 >&2 || tail -n 20 "$KAFKA_LOGS/mvn.log" >&2
    die "$EX_INSTALL" "mvn could not fetch the Kafka jars (see .local/kafka/logs/mvn.log)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || die "$EX_INSTALL" "mvn ran but no kafka_2.13 jar arrived"
  printf '%s\n' "$want" >"$tmp/.fetched"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "Kafka jars ready: $(basename "$(compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" | head -n1)")"
}

# run_kafka_class MAIN_CLASS ARGS...: a Kafka CLI class, quiet logging.
run_kafka_class() {
  java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" \
    -cp "$KAFKA_LIBS/*" "$@"
}

sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

write_kafka_config() {
  mkdir -p "$KAFKA_CONFIG_DIR" "$KAFKA_DATA" "$KAFKA_LOGS"
  local tmp="$KAFKA_CONFIG.tmp"
  sed -e "s|@DATA_DIR@|$(sed_escape "$KAFKA_DATA")|g" \
    -e "s|@BROKER_PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
    "$KAFKA_TEMPLATE" >"$tmp"
  mv "$tmp" "$KAFKA_CONFIG"
}

# Format the KRaft storage once (a fresh data dir has no meta.properties).
ensure_kafka_formatted() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local cluster_id
  if [[ -s $KAFKA_CLUSTER_ID_FILE ]]; then
    cluster_id=$(cat "$KAFKA_CLUSTER_ID_FILE")
  else
    cluster_id=$(run_kafka_class kafka.tools.StorageTool random-uuid | tail -n1)
    [[ -n $cluster_id ]] || die "$EX_KAFKA" "could not generate a KRaft cluster id"
    printf '%s\n' "$cluster_id" >"$KAFKA_CLUSTER_ID_FILE"
  fi
  log "formatting KRaft storage (cluster id $cluster_id)"
  run_kafka_class kafka.tools.StorageTool format --standalone \
    -t "$cluster_id" -c "$KAFKA_CONFIG" >&2 ||
    die "$EX_KAFKA" "formatting the KRaft storage failed"
}

kafka_fail() {
  log "Kafka did not come up: $*"
  log "---- last lines of .local/kafka/logs/server.log ----"
  tail -n 40 "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
  log "---- last lines of .local/kafka/logs/kafka.out ----"
  tail -n 20 "$KAFKA_LOGS/kafka.out" >&2 2>/dev/null || true
  local pid
  pid=$(kafka_pid)
  [[ -n $pid ]] && log "the broker process (pid $pid) was left running for inspection; '$0 kafka-stop' stops it"
  exit "$EX_KAFKA"
}

kafka_start() {
  local pid
  pid=$(kafka_pid)
  if [[ -n $pid ]] && port_open "$KAFKA_PORT"; then
    log "Kafka already running (pid $pid, localhost:$KAFKA_PORT)"
    return 0
  fi
  local t0
  t0=$(now)
  if [[ -z $pid ]]; then
    port_taken "$KAFKA_PORT" Kafka java kafka.Kafka "$EX_PORT"
    port_taken "$KAFKA_CONTROLLER_PORT" Kafka java kafka.Kafka "$EX_PORT"
    ensure_java
    ensure_kafka_libs
    write_kafka_config
    ensure_kafka_formatted
    rm -f "$KAFKA_PID_FILE"
    log "starting Kafka on localhost:$KAFKA_PORT"
    # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
    launch "$KAFKA_PID_FILE" "$KAFKA_LOGS/kafka.out" \
      java $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dkafka.logs.dir="$KAFKA_LOGS" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONFIG" ||
      kafka_fail "the launcher did not write $KAFKA_PID_FILE"
    pid=$(cat "$KAFKA_PID_FILE")
  else
    log "Kafka process $pid exists but does not accept connections yet; waiting"
  fi
  # Ready = a real admin client gets metadata back, not just an open port.
  local deadline=$((t0 + KAFKA_START_TIMEOUT))
  while :; do
    pid_alive "$pid" || kafka_fail "the broker process (pid $pid) exited"
    if port_open "$KAFKA_PORT" &&
      timeout 30 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "localhost:$KAFKA_PORT" \
        --list >/dev/null 2>&1; then
      break
    fi
    (($(now) >= deadline)) && kafka_fail "no metadata from localhost:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s"
    sleep 1
  done
  log "Kafka ready (pid $pid, localhost:$KAFKA_PORT) after $(($(now) - t0))s"
}

kafka_stop() {
  local pid
  pid=$(kafka_pid)
  if [[ -z $pid ]]; then
    rm -f "$KAFKA_PID_FILE"
    log "Kafka is not running"
    return 0
  fi
  terminate "$pid" Kafka "$KAFKA_STOP_TIMEOUT" || die "$EX_KAFKA" "could not stop Kafka (pid $pid)"
  # Anything else of ours still around (e.g. a second broker after a lost pid file).
  local other
  for other in $(find_pids java "kafka.Kafka $KAFKA_CONFIG"); do
    terminate "$other" Kafka "$KAFKA_STOP_TIMEOUT" || die "$EX_KAFKA" "could not stop Kafka (pid $other)"
  done
  rm -f "$KAFKA_PID_FILE"
  log "Kafka stopped"
}

kafka_status() {
  local pid
  pid=$(kafka_pid)
  if [[ -n $pid ]] && port_open "$KAFKA_PORT"; then
    echo "kafka: running (pid $pid, localhost:$KAFKA_PORT)"
  elif [[ -n $pid ]]; then
    echo "kafka: starting or unhealthy (pid $pid, localhost:$KAFKA_PORT not accepting connections)"
    return 1
  else
    echo "kafka: stopped"
    return 1
  fi
}

# ======================================================== multi-broker cluster

readonly CLUSTER_HOME="$LOCAL/kafka-cluster"
readonly CLUSTER_TEMPLATE="$SCRIPTS/kafka/cluster-server.properties"
readonly CLUSTER_ID_FILE="$CLUSTER_HOME/cluster.id"
readonly CLUSTER_SIZE_FILE="$CLUSTER_HOME/size"
readonly CLUSTER_NETWORK_FILE="$CLUSTER_HOME/network"
readonly BROKERS_CHOICE_FILE="$LOCAL/kafka-brokers"
readonly CLUSTER_BROKER_PORT_BASE=$((19091 + PORT_OFFSET))     # node i: 19091+i
readonly CLUSTER_CONTROLLER_PORT_BASE=$((19191 + PORT_OFFSET)) # node i: 19191+i
# Interface and namespace names carry a tag of this checkout, so two
# checkouts on one machine do not share (or delete) each other's network.
CHECKOUT_TAG=$(($(printf '%s' "$ROOT" | cksum | cut -d' ' -f1) % 100000))
readonly CHECKOUT_TAG
KAFKA_CLUSTER_SUBNET="${KAFKA_CLUSTER_SUBNET:-10.209.$((CHECKOUT_TAG % 250 + 1))}"
readonly BRIDGE="lsk${CHECKOUT_TAG}br"

# --brokers N from the command line (empty: not given).
BROKERS_FLAG=""

# brokers_chosen: --brokers, else LOCAL_KAFKA_BROKERS, else the last `up --brokers`, else 1.
brokers_chosen() {
  local n=${BROKERS_FLAG:-${LOCAL_KAFKA_BROKERS:-}}
  if [[ -z $n && -s $BROKERS_CHOICE_FILE ]]; then
    n=$(tr -dc '0-9' <"$BROKERS_CHOICE_FILE")
  fi
  n=${n:-1}
  [[ $n =~ ^[1-9]$ ]] || die "$EX_USAGE" "--brokers must be 1 to 9, not '$n'"
  printf '%s\n' "$n"
}

# The cluster's size as formatted (0: never set up).
cluster_size() {
  if [[ -s $CLUSTER_SIZE_FILE ]]; then tr -dc '0-9' <"$CLUSTER_SIZE_FILE"; else echo 0; fi
}

# netns or loopback: fixed when the cluster is first set up (its addresses depend on it).
cluster_network() {
  if [[ -s $CLUSTER_NETWORK_FILE ]]; then
    cat "$CLUSTER_NETWORK_FILE"
  elif [[ -n ${KAFKA_CLUSTER_NETWORK:-} ]]; then
    printf '%s\n' "$KAFKA_CLUSTER_NETWORK"
  elif [[ $(id -u) == 0 ]] && have ip; then
    echo netns
  else
    echo loopback
  fi
}

broker_dir() { printf '%s/broker-%s' "$CLUSTER_HOME" "$1"; }
broker_config() { printf '%s/server.properties' "$(broker_dir "$1")"; }
broker_port() { echo $((CLUSTER_BROKER_PORT_BASE + $1)); }
controller_port() { echo $((CLUSTER_CONTROLLER_PORT_BASE + $1)); }
broker_netns() { printf 'lsk%s-b%s' "$CHECKOUT_TAG" "$1"; }
broker_veth() { printf 'lsk%sv%s' "$CHECKOUT_TAG" "$1"; }
broker_host() {
  if [[ $(cluster_network) == netns ]]; then
    printf '%s.%s' "$KAFKA_CLUSTER_SUBNET" $((10 + $1))
  else
    printf '127.0.0.1'
  fi
}
broker_address() { printf '%s:%s' "$(broker_host "$1")" "$(broker_port "$1")"; }
broker_pid() { service_pid "$(broker_dir "$1")/kafka.pid" java "kafka.Kafka $(broker_config "$1")"; }
broker_isolated() { [[ -e "$(broker_dir "$1")/isolated" ]]; }

# tcp_open HOST PORT: something accepts TCP connections there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

cluster_bootstrap() {
  local n=$1 i list=""
  for ((i = 1; i <= n; i++)); do list+="${list:+,}$(broker_address "$i")"; done
  printf '%s\n' "$list"
}

# check_broker_id ID: a node of the configured cluster.
check_broker_id() {
  local size
  size=$(cluster_size)
  ((size >= 2)) || die "$EX_USAGE" "no multi-broker cluster is set up; start one with: $0 up --brokers 3"
  [[ ${1:-} =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= size)) || die "$EX_USAGE" "broker id must be 1..$size, not '${1:-}'"
}

# The bridge and, per node, a namespace with lo up and a veth pair whose host
# side is on the bridge. Idempotent; an isolated node's link stays down.
ensure_cluster_network() {
  local n=$1 i ns veth
  [[ $(cluster_network) == netns ]] || return 0
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge || die "$EX_KAFKA" "could not create bridge $BRIDGE (root and the ip tool are needed; KAFKA_CLUSTER_NETWORK=loopback avoids them)"
    ip addr add "$KAFKA_CLUSTER_SUBNET.1/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  for ((i = 1; i <= n; i++)); do
    ns=$(broker_netns "$i")
    veth=$(broker_veth "$i")
    if ! ip netns list | grep -qw "$ns"; then
      ip netns add "$ns" || die "$EX_KAFKA" "could not create network namespace $ns"
    fi
    ip -n "$ns" link set lo up
    if ! ip link show "$veth" >/dev/null 2>&1; then
      ip link del "$veth" 2>/dev/null || true
      ip link add "$veth" type veth peer name eth0 netns "$ns" ||
        die "$EX_KAFKA" "could not create the veth pair of broker $i"
      ip -n "$ns" addr add "$(broker_host "$i")/24" dev eth0
      ip link set "$veth" master "$BRIDGE"
    fi
    ip -n "$ns" link set eth0 up
    if broker_isolated "$i"; then ip link set "$veth" down; else ip link set "$veth" up; fi
  done
}

remove_cluster_network() {
  [[ $(cluster_network) == netns ]] || return 0
  local i size
  size=$(cluster_size)
  for ((i = 1; i <= size; i++)); do
    ip netns del "$(broker_netns "$i")" 2>/dev/null || true
    ip link del "$(broker_veth "$i")" 2>/dev/null || true
    rm -f "$(broker_dir "$i")/isolated"
  done
  ip link del "$BRIDGE" 2>/dev/null || true
}

write_broker_config() {
  local i=$1 n=$2 j voters="" rf min_isr dir
  dir=$(broker_dir "$i")
  mkdir -p "$dir/data" "$dir/logs"
  for ((j = 1; j <= n; j++)); do voters+="${voters:+,}$j@$(broker_host "$j"):$(controller_port "$j")"; done
  rf=$((n < 3 ? n : 3))
  min_isr=$((rf > 1 ? rf - 1 : 1))
  sed -e "s|@DATA_DIR@|$(sed_escape "$dir/data")|g" \
    -e "s|@NODE_ID@|$i|g" -e "s|@VOTERS@|$voters|g" -e "s|@HOST@|$(broker_host "$i")|g" \
    -e "s|@BROKER_PORT@|$(broker_port "$i")|g" -e "s|@CONTROLLER_PORT@|$(controller_port "$i")|g" \
    -e "s|@DEFAULT_RF@|$rf|g" -e "s|@MIN_ISR@|$min_isr|g" \
    "$CLUSTER_TEMPLATE" >"$dir/server.properties.tmp"
  mv "$dir/server.properties.tmp" "$dir/server.properties"
}

# Static quorum: every node formatted with the same cluster id, no flags.
ensure_broker_formatted() {
  local i=$1 dir
  dir=$(broker_dir "$i")
  [[ -f $dir/data/meta.properties ]] && return 0
  log "formatting KRaft storage of broker $i (cluster id $(cat "$CLUSTER_ID_FILE"))"
  run_kafka_class kafka.tools.StorageTool format -t "$(cat "$CLUSTER_ID_FILE")" \
    -c "$(broker_config "$i")" >&2 || die "$EX_KAFKA" "formatting the storage of broker $i failed"
}

# launch_broker ID: starts the node's JVM (in its namespace); prints the byte
# offset of its server.log before the start, from which readiness is read.
launch_broker() {
  local i=$1 dir log_file offset
  dir=$(broker_dir "$i")
  log_file="$dir/logs/server.log"
  offset=$(stat -c %s "$log_file" 2>/dev/null || echo 0)
  local -a prefix=()
  [[ $(cluster_network) == netns ]] && prefix=(ip netns exec "$(broker_netns "$i")")
  rm -f "$dir/kafka.pid"
  # shellcheck disable=SC2086  # KAFKA_HEAP_OPTS is a list of JVM flags
  launch "$dir/kafka.pid" "$dir/logs/kafka.out" "${prefix[@]}" \
    java $KAFKA_HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dkafka.logs.dir="$dir/logs" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$(broker_config "$i")" ||
    die "$EX_KAFKA" "broker $i: the launcher did not write its pid file"
  printf '%s\n' "$offset"
}

# wait_broker_started ID OFFSET DEADLINE: the node logged that it started
# (KRaft brokers log this once caught up with the metadata and unfenced).
wait_broker_started() {
  local i=$1 offset=$2 deadline=$3 dir pid
  dir=$(broker_dir "$i")
  while :; do
    pid=$(broker_pid "$i")
    if [[ -z $pid ]]; then
      tail -n 30 "$dir/logs/server.log" "$dir/logs/kafka.out" >&2 2>/dev/null || true
      die "$EX_KAFKA" "broker $i exited while starting (logs: $dir/logs)"
    fi
    if tail -c +"$((offset + 1))" "$dir/logs/server.log" 2>/dev/null | grep -q 'Kafka Server started' &&
      tcp_open "$(broker_host "$i")" "$(broker_port "$i")"; then
      return 0
    fi
    if (($(now) >= deadline)); then
      tail -n 30 "$dir/logs/server.log" >&2 2>/dev/null || true
      die "$EX_KAFKA" "broker $i (pid $pid) did not start within ${KAFKA_START_TIMEOUT}s (logs: $dir/logs)"
    fi
    sleep 0.5
  done
}

cluster_start() {
  local n=$1 size i t0
  t0=$(now)
  size=$(cluster_size)
  if ((size != 0 && size != n)); then
    die "$EX_USAGE" "the local cluster was set up with $size brokers, not $n; '$0 reset' deletes it first"
  fi
  ensure_java
  ensure_kafka_libs
  mkdir -p "$CLUSTER_HOME"
  # A bare Debian may lack iproute2; as root we can install it and give each node its own
  # namespace (what broker-isolate needs).
  if [[ ! -s $CLUSTER_NETWORK_FILE && -z ${KAFKA_CLUSTER_NETWORK:-} && $(id -u) == 0 ]] && ! have ip; then
    apt_install iproute2
  fi
  [[ -s $CLUSTER_NETWORK_FILE ]] || cluster_network >"$CLUSTER_NETWORK_FILE"
  if [[ ! -s $CLUSTER_ID_FILE ]]; then
    run_kafka_class kafka.tools.StorageTool random-uuid | tail -n1 >"$CLUSTER_ID_FILE"
    [[ -s $CLUSTER_ID_FILE ]] || die "$EX_KAFKA" "could not generate a KRaft cluster id"
  fi
  printf '%s\n' "$n" >"$CLUSTER_SIZE_FILE"
  ensure_cluster_network "$n"
  local -A offsets=()
  for ((i = 1; i <= n; i++)); do
    [[ -n $(broker_pid "$i") ]] && continue
    if [[ $(cluster_network) == loopback ]]; then
      port_taken "$(broker_port "$i")" "Kafka broker $i" java kafka.Kafka "$EX_PORT"
      port_taken "$(controller_port "$i")" "Kafka controller $i" java kafka.Kafka "$EX_PORT"
    fi
    write_broker_config "$i" "$n"
    ensure_broker_formatted "$i"
    log "starting Kafka broker $i on $(broker_address "$i")"
    offsets[$i]=$(launch_broker "$i")
    [[ ${offsets[$i]} =~ ^[0-9]+$ ]] || die "$EX_KAFKA" "broker $i did not launch"
  done
  local deadline=$((t0 + KAFKA_START_TIMEOUT))
  for i in "${!offsets[@]}"; do
    wait_broker_started "$i" "${offsets[$i]}" "$deadline"
  done
  log "Kafka cluster of $n brokers ready ($(cluster_bootstrap "$n")) after $(($(now) - t0))s"
}

cluster_stop() {
  local size i pid
  size=$(cluster_size)
  ((size >= 2)) || return 0
  local -a pids=()
  # SIGTERM to all at once: stopped one by one, the last ones lose the quorum
  # and wait for it until their timeout.
  for ((i = 1; i <= size; i++)); do
    pid=$(broker_pid "$i")
    [[ -n $pid ]] || continue
    rm -f "$(broker_dir "$i")/isolated"
    [[ $(cluster_network) == netns ]] && ip link set "$(broker_veth "$i")" up 2>/dev/null
    log "stopping Kafka broker $i (pid $pid, SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    terminate "$pid" "Kafka broker" "$KAFKA_STOP_TIMEOUT" || die "$EX_KAFKA" "could not stop Kafka broker pid $pid"
  done
  remove_cluster_network
  ((${#pids[@]})) && log "Kafka cluster stopped"
  return 0
}

cluster_status() {
  local size i pid rc=0 state
  size=$(cluster_size)
  if ((size < 2)); then
    echo "kafka cluster: not set up ('$0 up --brokers 3')"
    return 1
  fi
  for ((i = 1; i <= size; i++)); do
    pid=$(broker_pid "$i")
    if [[ -z $pid ]]; then
      state=stopped
      rc=1
    elif broker_isolated "$i"; then
      state=isolated
      rc=1
    elif tcp_open "$(broker_host "$i")" "$(broker_port "$i")"; then
      state=running
    else
      state="starting or unhealthy"
      rc=1
    fi
    echo "kafka broker $i: $state (pid ${pid:--}, $(broker_address "$i"), controller :$(controller_port "$i"), data $(broker_dir "$i")/data)"
  done
  return "$rc"
}

broker_kill() {
  check_broker_id "$1"
  local pid
  pid=$(broker_pid "$1")
  [[ -n $pid ]] || { log "broker $1 is not running"; return 0; }
  log "SIGKILL of Kafka broker $1 (pid $pid)"
  kill -KILL "$pid"
  wait_gone "$pid" 10 || die "$EX_KAFKA" "broker $1 (pid $pid) survived SIGKILL"
}

broker_stop() {
  check_broker_id "$1"
  local pid
  pid=$(broker_pid "$1")
  [[ -n $pid ]] || { log "broker $1 is not running"; return 0; }
  terminate "$pid" "Kafka broker $1" "$KAFKA_STOP_TIMEOUT" || die "$EX_KAFKA" "could not stop broker $1"
}

broker_start() {
  check_broker_id "$1"
  local i=$1 n pid offset t0 others_up=0 j
  n=$(cluster_size)
  pid=$(broker_pid "$i")
  if [[ -n $pid ]]; then
    log "broker $i already running (pid $pid)"
    return 0
  fi
  t0=$(now)
  ensure_cluster_network "$n"
  write_broker_config "$i" "$n"
  log "starting Kafka broker $i on $(broker_address "$i")"
  offset=$(launch_broker "$i")
  [[ $offset =~ ^[0-9]+$ ]] || die "$EX_KAFKA" "broker $i did not launch"
  for ((j = 1; j <= n; j++)); do
    ((j != i)) && [[ -n $(broker_pid "$j") ]] && others_up=$((others_up + 1))
  done
  # A node can finish starting only with a quorum of voters up; when too few
  # others run (a test starting the nodes one by one), the process is enough.
  if (((others_up + 1) * 2 > n)); then
    wait_broker_started "$i" "$offset" $((t0 + KAFKA_START_TIMEOUT))
    log "broker $i started after $(($(now) - t0))s"
  else
    log "broker $i launched (pid $(broker_pid "$i")); no quorum until more brokers start"
  fi
}

broker_isolate() {
  check_broker_id "$1"
  [[ $(cluster_network) == netns ]] ||
    die "$EX_USAGE" "broker-isolate needs the namespaced network (run '$0 reset' and 'up --brokers N' as root)"
  touch "$(broker_dir "$1")/isolated"
  ip link set "$(broker_veth "$1")" down || die "$EX_KAFKA" "could not take broker $1's link down"
  log "broker $1 isolated: no traffic to or from $(broker_address "$1")"
}

broker_heal() {
  check_broker_id "$1"
  [[ $(cluster_network) == netns ]] || die "$EX_USAGE" "broker-heal needs the namespaced network"
  ip link set "$(broker_veth "$1")" up || die "$EX_KAFKA" "could not bring broker $1's link up"
  rm -f "$(broker_dir "$1")/isolated"
  log "broker $1 healed"
}

# The active controller, as the quorum reports it (any reachable node answers).
active_controller() {
  local n out id
  n=$(cluster_size)
  ((n >= 2)) || die "$EX_USAGE" "no multi-broker cluster is set up"
  out=$(timeout 30 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" \
    org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$(cluster_bootstrap "$n")" \
    describe --status 2>/dev/null) || die 1 "the quorum did not answer"
  id=$(awk -F': *' '/^LeaderId:/ {print $2; exit}' <<<"$out" | tr -dc '0-9-')
  [[ -n $id && $id != -1 ]] || die 1 "the quorum has no leader right now"
  printf '%s\n' "$id"
}

# ===================================================================== MariaDB

db_pid() { service_pid "$DB_PID_FILE" mariadbd "--defaults-file=$DB_CNF"; }

db_server_bin() {
  if have mariadbd; then command -v mariadbd; elif have mysqld; then command -v mysqld; fi
}

# mariadb-admin / mariadb as root over our socket (unix_socket auth), ignoring
# any system-wide client configuration.
db_admin() { mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root "$@"; }
db_sql() { mariadb --no-defaults --socket="$DB_SOCKET" -u root "$@"; }

# Processes of a distro MariaDB/MySQL (not started by us for this checkout).
foreign_db_pids() {
  local dir pid comm
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    comm=$(proc_comm "$pid")
    case $comm in
      mariadbd | mysqld | mysqld_safe | mariadbd-safe | mariadb-safe) ;;
      *) continue ;;
    esac
    proc_zombie "$pid" && continue
    # In another PID namespace: a container's server (the testcontainers path, compose, a
    # developer's Docker database), which is visible here but is not the system's to stop.
    [[ "$(readlink "/proc/$pid/ns/pid" 2>/dev/null)" == "$(readlink /proc/self/ns/pid)" ]] || continue
    # Ours, or another checkout's copy of this script: not a system server.
    [[ "$(proc_cmdline "$pid")" == *"--defaults-file="*"/.local/mariadb/my.cnf"* ]] && continue
    printf '%s %s\n' "$pid" "$comm"
  done
  return 0
}

# Stop a distro MariaDB (e.g. started by the package's postinst) so that ours
# owns port 3306. The *_safe wrappers go first: they would restart mariadbd.
stop_foreign_db() {
  local procs
  procs=$(foreign_db_pids)
  [[ -z $procs ]] && return 0
  log "a system MariaDB/MySQL is running ($(echo "$procs" | tr '\n' ' ')); stopping it so ours owns port $DB_PORT"
  if have service; then
    timeout 60 service mariadb stop >&2 2>&1 || timeout 60 service mysql stop >&2 2>&1 || true
  fi
  local pid comm
  while read -r pid comm; do
    [[ $comm == *safe ]] && { terminate "$pid" "system $comm" 10 || true; }
  done < <(foreign_db_pids)
  while read -r pid comm; do
    terminate "$pid" "system $comm" 30 || true
  done < <(foreign_db_pids)
  [[ -z $(foreign_db_pids) ]] || die "$EX_PORT" "could not stop the system MariaDB: $(foreign_db_pids | tr '\n' ' ')"
}

# Install Debian's MariaDB without letting its postinst start a system
# server (policy-rc.d exit 101 = "do not start services"), if needed.
ensure_mariadb_installed() {
  if [[ -n $(db_server_bin) ]] && have mariadb && have mariadb-admin && have mariadb-install-db; then
    return 0
  fi
  local policy=/usr/sbin/policy-rc.d added_policy=""
  if [[ ! -e $policy && $(id -u) == 0 ]]; then
    printf '#!/bin/sh\n# temporary, from local-services.sh: do not start services on install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    added_policy=1
  fi
  local rc=0
  (apt_install mariadb-server mariadb-client) || rc=$?
  [[ -n $added_policy ]] && rm -f "$policy"
  ((rc == 0)) || exit "$rc"
  [[ -n $(db_server_bin) ]] || die "$EX_INSTALL" "mariadb-server installed but no mariadbd found"
  stop_foreign_db
}

write_db_config() {
  mkdir -p "$DB_DATA" "$DB_LOGS" "$DB_TMP"
  local user
  user=$(id -un)
  cat >"$DB_CNF.tmp" <<EOF
# Generated by scripts/local-services.sh on every start; edit the script, not this file.
# Local development/test MariaDB: loopback only, data under .local/mariadb.
[mysqld]
user                    = $user
port                    = $DB_PORT
bind-address            = 127.0.0.1
socket                  = $DB_SOCKET
pid-file                = $DB_PID_FILE
datadir                 = $DB_DATA
tmpdir                  = $DB_TMP
log-error               = $DB_LOGS/mariadb.err
character-set-server    = utf8mb4
collation-server        = utf8mb4_unicode_ci
skip-name-resolve
max_connections         = 500
innodb_buffer_pool_size = 256M
innodb_log_file_size    = 64M
# Commits are written to the OS at once and flushed to disk every second:
# survives a killed mariadbd (chaos tests), not a machine crash; much faster tests.
innodb_flush_log_at_trx_commit = 2
EOF
  mv "$DB_CNF.tmp" "$DB_CNF"
}

# Create the system tables once.
ensure_db_initialised() {
  [[ -f $DB_INIT_MARKER && -d $DB_DATA/mysql ]] && return 0
  log "initialising MariaDB data directory .local/mariadb/data"
  rm -rf "$DB_DATA"
  mkdir -p "$DB_DATA"
  if ! mariadb-install-db --defaults-file="$DB_CNF" --user="$(id -un)" --datadir="$DB_DATA" \
    --auth-root-authentication-method=socket --skip-test-db \
    --skip-name-resolve >"$DB_LOGS/install-db.log" 2>&1; then
    tail -n 30 "$DB_LOGS/install-db.log" >&2 || true
    die "$EX_DB" "mariadb-install-db failed (see .local/mariadb/logs/install-db.log)"
  fi
  touch "$DB_INIT_MARKER"
}

db_fail() {
  log "MariaDB did not come up: $*"
  log "---- last lines of .local/mariadb/logs/mariadb.err ----"
  tail -n 30 "$DB_LOGS/mariadb.err" >&2 2>/dev/null || true
  local pid
  pid=$(db_pid)
  [[ -n $pid ]] && log "mariadbd (pid $pid) was left running for inspection; '$0 db-stop' stops it"
  exit "$EX_DB"
}

# The per-service database identities (issue 25), on the plain and the secured
# MariaDB: a migrator that owns the schema of $DB_NAME (and may grant on it), and
# one runtime account per service with no privilege yet: the migration step
# (DATABASE_MIGRATION_URL) grants each exactly its tables once they exist
# (table grants need the tables). $1 non-empty: passwords and REQUIRE SSL (the
# secured server); empty: password-less, for the loopback development server.
readonly DB_MIGRATOR_USER=registrations_migrator
readonly DB_RUNTIME_USERS="gateway registration_service dlq_worker"
identities_sql() {
  local secure=$1 user auth
  for user in "$DB_MIGRATOR_USER" $DB_RUNTIME_USERS; do
    auth=""
    if [[ -n $secure ]]; then
      auth="IDENTIFIED BY '$(secure_db_password "$user")' REQUIRE SSL"
    fi
    echo "CREATE USER IF NOT EXISTS '$user'@'%' $auth;"
    if [[ -n $auth ]]; then echo "ALTER USER '$user'@'%' $auth;"; fi
  done
  echo "GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_MIGRATOR_USER'@'%' WITH GRANT OPTION;"
}

# The development user: no password, from anywhere (loopback-only server),
# all privileges because tests create throwaway databases, WITH GRANT OPTION
# because tests give their throwaway databases their own per-service
# identities. No service uses it in the secured run. Idempotent.
provision_db() {
  db_sql --batch <<EOF || die "$EX_DB" "creating database/user '$DB_USER' failed"
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
DROP USER IF EXISTS ''@'localhost';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1';
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost';
CREATE USER IF NOT EXISTS '$DB_USER'@'%';
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$DB_USER'@'%' WITH GRANT OPTION;
$(identities_sql "")
FLUSH PRIVILEGES;
EOF
}

db_start() {
  local pid
  pid=$(db_pid)
  if [[ -n $pid ]] && port_open "$DB_PORT" && db_admin ping >/dev/null 2>&1; then
    log "MariaDB already running (pid $pid, 127.0.0.1:$DB_PORT)"
    # Idempotent, so a server started by an older checkout gets today's identities.
    provision_db
    return 0
  fi
  local t0
  t0=$(now)
  if [[ -z $pid ]]; then
    ensure_mariadb_installed
    stop_foreign_db
    port_taken "$DB_PORT" MariaDB mariadbd --defaults-file "$EX_PORT"
    write_db_config
    ensure_db_initialised
    rm -f "$DB_PID_FILE" "$DB_SOCKET"
    log "starting MariaDB on 127.0.0.1:$DB_PORT"
    launch "$DB_PID_FILE" "$DB_LOGS/mariadbd.out" "$(db_server_bin)" --defaults-file="$DB_CNF" ||
      db_fail "the launcher did not write $DB_PID_FILE"
    pid=$(cat "$DB_PID_FILE")
  else
    log "MariaDB process $pid exists but does not answer yet; waiting"
  fi
  local deadline=$((t0 + DB_START_TIMEOUT))
  until db_admin ping >/dev/null 2>&1 && port_open "$DB_PORT"; do
    pid_alive "$pid" || db_fail "mariadbd (pid $pid) exited"
    (($(now) >= deadline)) && db_fail "no answer on $DB_SOCKET within ${DB_START_TIMEOUT}s"
    sleep 0.5
  done
  provision_db
  log "MariaDB ready (pid $pid, 127.0.0.1:$DB_PORT) after $(($(now) - t0))s"
}

db_stop() {
  local pid
  pid=$(db_pid)
  if [[ -z $pid ]]; then
    rm -f "$DB_PID_FILE"
    log "MariaDB is not running"
    return 0
  fi
  log "stopping MariaDB (pid $pid)"
  timeout 60 mariadb-admin --no-defaults --socket="$DB_SOCKET" -u root --shutdown-timeout=50 \
    shutdown >/dev/null 2>&1 || true
  if ! wait_gone "$pid" 30; then
    terminate "$pid" MariaDB 30 || die "$EX_DB" "could not stop MariaDB (pid $pid)"
  fi
  local other
  for other in $(find_pids mariadbd "--defaults-file=$DB_CNF"); do
    terminate "$other" MariaDB 30 || die "$EX_DB" "could not stop MariaDB (pid $other)"
  done
  rm -f "$DB_PID_FILE"
  log "MariaDB stopped"
}

db_status() {
  local pid
  pid=$(db_pid)
  if [[ -n $pid ]] && port_open "$DB_PORT"; then
    echo "mariadb: running (pid $pid, 127.0.0.1:$DB_PORT)"
  elif [[ -n $pid ]]; then
    echo "mariadb: starting or unhealthy (pid $pid, 127.0.0.1:$DB_PORT not accepting connections)"
    return 1
  else
    echo "mariadb: stopped"
    return 1
  fi
}

# ============================================================ secured services
#
# `up --secure`: besides the shared plaintext services, a second single-node
# broker with only a SASL_SSL listener (SCRAM-SHA-512 and PLAIN, TLS with a CA
# generated here) and a second MariaDB that requires TLS, each on its own
# ports and data dir under .local/secure/, so the plaintext broker on :9092
# and MariaDB on :3306 that everyone else uses keep running untouched.
# Certificates and passwords are generated once, live only under .local/secure
# (git-ignored) and are printed by `env --secure`. Authentication only: no
# ACLs are configured.

readonly SECURE_HOME="$LOCAL/secure"
readonly SECURE_TLS="$SECURE_HOME/tls"
readonly SECURE_SECRETS="$SECURE_HOME/secrets.env"
readonly SECURE_KAFKA_PORT=$((29092 + PORT_OFFSET))
readonly SECURE_KAFKA_CONTROLLER_PORT=$((29093 + PORT_OFFSET))
readonly SECURE_KAFKA_HOME="$SECURE_HOME/kafka"
readonly SECURE_KAFKA_CONFIG="$SECURE_KAFKA_HOME/server.properties"
readonly SECURE_KAFKA_CLIENT_CONFIG="$SECURE_KAFKA_HOME/admin-client.properties"
readonly SECURE_KAFKA_DATA="$SECURE_KAFKA_HOME/data"
readonly SECURE_KAFKA_LOGS="$SECURE_KAFKA_HOME/logs"
readonly SECURE_KAFKA_PID_FILE="$SECURE_KAFKA_HOME/kafka.pid"
readonly SECURE_DB_PORT=$((3307 + PORT_OFFSET))
readonly SECURE_DB_USER=registrations_tls
readonly SECURE_DB_HOME="$SECURE_HOME/mariadb"
readonly SECURE_DB_DATA="$SECURE_DB_HOME/data"
readonly SECURE_DB_CNF="$SECURE_DB_HOME/my.cnf"
readonly SECURE_DB_PID_FILE="$SECURE_DB_HOME/mariadbd.pid"
# In the temp dir: a unix socket path must stay under ~107 bytes.
SECURE_DB_SOCKET="${TMPDIR:-/tmp}/local-services-secure-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1).sock"
readonly SECURE_DB_SOCKET
readonly SECURE_KAFKA_USER=registrations

SECURE_FLAG=""
# `up --observability`: Prometheus, Alertmanager (and the collector) beside the services.
OBSERVABILITY_FLAG=""
readonly OBSERVABILITY_STACK="$SCRIPTS/observability/local-stack.sh"

secure_secrets() {
  # shellcheck disable=SC1090  # generated by secure_ensure_secrets
  source "$SECURE_SECRETS"
}

# The password of a per-service database identity (identities_sql).
secure_db_password() {
  local var
  var="SECURE_DB_PASSWORD_$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')"
  printf '%s' "${!var:?$var missing from $SECURE_SECRETS}"
}

# Passwords: random, once; those added later are appended to an older file.
secure_ensure_secrets() {
  local user var
  if [[ -s $SECURE_SECRETS ]]; then
    umask 077
    for user in $DB_MIGRATOR_USER $DB_RUNTIME_USERS; do
      var="SECURE_DB_PASSWORD_$(printf '%s' "$user" | tr '[:lower:]' '[:upper:]')"
      grep -q "^$var=" "$SECURE_SECRETS" || echo "$var=$(openssl rand -hex 16)" >>"$SECURE_SECRETS"
    done
    umask 022
    return 0
  fi
  mkdir -p "$SECURE_HOME"
  chmod 700 "$SECURE_HOME"
  pw() { openssl rand -hex 16; }
  umask 077
  cat >"$SECURE_SECRETS.tmp" <<EOF
SECURE_KAFKA_ADMIN_PASSWORD=$(pw)
SECURE_KAFKA_APP_PASSWORD=$(pw)
SECURE_KEYSTORE_PASSWORD=$(pw)
SECURE_DB_PASSWORD=$(pw)
SECURE_DB_PASSWORD_REGISTRATIONS_MIGRATOR=$(pw)
SECURE_DB_PASSWORD_GATEWAY=$(pw)
SECURE_DB_PASSWORD_REGISTRATION_SERVICE=$(pw)
SECURE_DB_PASSWORD_DLQ_WORKER=$(pw)
EOF
  mv "$SECURE_SECRETS.tmp" "$SECURE_SECRETS"
  umask 022
}

# A CA, one server certificate for localhost/127.0.0.1 (broker and MariaDB), and
# a second, unrelated CA that tests use as "a CA we do not trust".
secure_ensure_certificates() {
  [[ -s $SECURE_TLS/server.p12 && -s $SECURE_TLS/untrusted-ca.pem ]] && return 0
  have openssl || apt_install openssl
  secure_secrets
  log "generating a local CA and server certificate in .local/secure/tls"
  rm -rf "$SECURE_TLS"
  mkdir -p "$SECURE_TLS"
  (
    cd "$SECURE_TLS"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 -keyout ca.key -out ca.pem \
      -subj "/CN=local-services test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 825 \
      -extfile server.ext -out server.pem
    openssl pkcs12 -export -in server.pem -inkey server.key -certfile ca.pem -name server \
      -out server.p12 -passout "pass:$SECURE_KEYSTORE_PASSWORD"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 -keyout untrusted-ca.key -out untrusted-ca.pem \
      -subj "/CN=some other CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    chmod 600 ./*.key server.p12
  ) >"$SECURE_HOME/openssl.log" 2>&1 || die "$EX_INSTALL" "generating certificates failed (see .local/secure/openssl.log)"
}

secure_kafka_pid() { service_pid "$SECURE_KAFKA_PID_FILE" java "kafka.Kafka $SECURE_KAFKA_CONFIG"; }

secure_write_kafka_config() {
  secure_secrets
  mkdir -p "$SECURE_KAFKA_DATA" "$SECURE_KAFKA_LOGS"
  umask 077
  cat >"$SECURE_KAFKA_CONFIG.tmp" <<EOF
# Generated by scripts/local-services.sh (up --secure). Single node, KRaft; clients
# only over SASL_SSL (SCRAM-SHA-512 or PLAIN); the controller listener is loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:$SECURE_KAFKA_CONTROLLER_PORT
listeners=SASL_SSL://localhost:$SECURE_KAFKA_PORT,CONTROLLER://localhost:$SECURE_KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://localhost:$SECURE_KAFKA_PORT,CONTROLLER://localhost:$SECURE_KAFKA_CONTROLLER_PORT
inter.broker.listener.name=SASL_SSL
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$SECURE_KAFKA_ADMIN_PASSWORD";
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$SECURE_KAFKA_ADMIN_PASSWORD" user_admin="$SECURE_KAFKA_ADMIN_PASSWORD" user_$SECURE_KAFKA_USER="$SECURE_KAFKA_APP_PASSWORD";
ssl.keystore.type=PKCS12
ssl.keystore.location=$SECURE_TLS/server.p12
ssl.keystore.password=$SECURE_KEYSTORE_PASSWORD
ssl.key.password=$SECURE_KEYSTORE_PASSWORD
ssl.truststore.type=PEM
ssl.truststore.location=$SECURE_TLS/ca.pem
ssl.client.auth=none
ssl.endpoint.identification.algorithm=https
log.dirs=$SECURE_KAFKA_DATA
num.partitions=3
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$SECURE_KAFKA_CLIENT_CONFIG" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$SECURE_KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$SECURE_TLS/ca.pem
EOF
  umask 022
  mv "$SECURE_KAFKA_CONFIG.tmp" "$SECURE_KAFKA_CONFIG"
}

# Formats once, creating the SCRAM users (the broker's own and the services') in the
# metadata log, so they exist before the first client connects.
secure_kafka_format() {
  [[ -f $SECURE_KAFKA_DATA/meta.properties ]] && return 0
  secure_secrets
  local cluster_id
  cluster_id=$(run_kafka_class kafka.tools.StorageTool random-uuid | tail -n1)
  log "formatting the secured broker's storage with SCRAM users admin and $SECURE_KAFKA_USER"
  run_kafka_class kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$SECURE_KAFKA_CONFIG" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$SECURE_KAFKA_ADMIN_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=$SECURE_KAFKA_USER,password=$SECURE_KAFKA_APP_PASSWORD]" >&2 ||
    die "$EX_KAFKA" "formatting the secured broker's storage failed"
}

secure_kafka_start() {
  local pid t0
  t0=$(now)
  pid=$(secure_kafka_pid)
  if [[ -z $pid ]]; then
    port_taken "$SECURE_KAFKA_PORT" "secured Kafka" java kafka.Kafka "$EX_PORT"
    port_taken "$SECURE_KAFKA_CONTROLLER_PORT" "secured Kafka" java kafka.Kafka "$EX_PORT"
    ensure_java
    ensure_kafka_libs
    secure_write_kafka_config
    secure_kafka_format
    rm -f "$SECURE_KAFKA_PID_FILE"
    log "starting the secured Kafka broker (SASL_SSL on localhost:$SECURE_KAFKA_PORT)"
    launch "$SECURE_KAFKA_PID_FILE" "$SECURE_KAFKA_LOGS/kafka.out" \
      java -Xms128m -Xmx384m -server -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dkafka.logs.dir="$SECURE_KAFKA_LOGS" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$SECURE_KAFKA_CONFIG" ||
      die "$EX_KAFKA" "the launcher did not write $SECURE_KAFKA_PID_FILE"
    pid=$(cat "$SECURE_KAFKA_PID_FILE")
  fi
  # Ready = an admin client gets metadata over SASL_SSL, which also proves TLS and SCRAM work.
  local deadline=$((t0 + KAFKA_START_TIMEOUT))
  until port_open "$SECURE_KAFKA_PORT" &&
    timeout 30 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server "localhost:$SECURE_KAFKA_PORT" \
      --command-config "$SECURE_KAFKA_CLIENT_CONFIG" --list >/dev/null 2>&1; do
    if ! pid_alive "$pid"; then
      tail -n 30 "$SECURE_KAFKA_LOGS/kafka.out" >&2 || true
      die "$EX_KAFKA" "the secured broker (pid $pid) exited (see .local/secure/kafka/logs)"
    fi
    (($(now) >= deadline)) && die "$EX_KAFKA" "no metadata over SASL_SSL from localhost:$SECURE_KAFKA_PORT within ${KAFKA_START_TIMEOUT}s"
    sleep 1
  done
  log "secured Kafka ready (pid $pid, SASL_SSL localhost:$SECURE_KAFKA_PORT) after $(($(now) - t0))s"
}

secure_db_pid() { service_pid "$SECURE_DB_PID_FILE" mariadbd "--defaults-file=$SECURE_DB_CNF"; }
secure_db_sql() { mariadb --no-defaults --socket="$SECURE_DB_SOCKET" -u root "$@"; }

secure_db_start() {
  local pid t0
  t0=$(now)
  pid=$(secure_db_pid)
  if [[ -z $pid ]]; then
    ensure_mariadb_installed
    port_taken "$SECURE_DB_PORT" "secured MariaDB" mariadbd "$SECURE_DB_CNF" "$EX_PORT"
    mkdir -p "$SECURE_DB_DATA" "$SECURE_DB_HOME/logs" "$SECURE_DB_HOME/tmp"
    cat >"$SECURE_DB_CNF" <<EOF
# Generated by scripts/local-services.sh (up --secure): MariaDB that only talks TLS.
[mysqld]
user                     = $(id -un)
port                     = $SECURE_DB_PORT
bind-address             = 127.0.0.1
socket                   = $SECURE_DB_SOCKET
pid-file                 = $SECURE_DB_PID_FILE
datadir                  = $SECURE_DB_DATA
tmpdir                   = $SECURE_DB_HOME/tmp
log-error                = $SECURE_DB_HOME/logs/mariadb.err
character-set-server     = utf8mb4
collation-server         = utf8mb4_unicode_ci
skip-name-resolve
max_connections          = 200
innodb_buffer_pool_size  = 64M
innodb_flush_log_at_trx_commit = 2
ssl_ca                   = $SECURE_TLS/ca.pem
ssl_cert                 = $SECURE_TLS/server.pem
ssl_key                  = $SECURE_TLS/server.key
require_secure_transport = ON
EOF
    if [[ ! -d $SECURE_DB_DATA/mysql ]]; then
      log "initialising the secured MariaDB data directory .local/secure/mariadb/data"
      mariadb-install-db --defaults-file="$SECURE_DB_CNF" --user="$(id -un)" --datadir="$SECURE_DB_DATA" \
        --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
        >"$SECURE_DB_HOME/logs/install-db.log" 2>&1 || die "$EX_DB" "mariadb-install-db failed for the secured MariaDB"
    fi
    rm -f "$SECURE_DB_PID_FILE" "$SECURE_DB_SOCKET"
    log "starting the secured MariaDB (TLS required) on 127.0.0.1:$SECURE_DB_PORT"
    launch "$SECURE_DB_PID_FILE" "$SECURE_DB_HOME/logs/mariadbd.out" "$(db_server_bin)" --defaults-file="$SECURE_DB_CNF" ||
      die "$EX_DB" "the launcher did not write $SECURE_DB_PID_FILE"
    pid=$(cat "$SECURE_DB_PID_FILE")
  fi
  local deadline=$((t0 + DB_START_TIMEOUT))
  until mariadb-admin --no-defaults --socket="$SECURE_DB_SOCKET" -u root ping >/dev/null 2>&1 && port_open "$SECURE_DB_PORT"; do
    if ! pid_alive "$pid"; then
      tail -n 30 "$SECURE_DB_HOME/logs/mariadb.err" >&2 || true
      die "$EX_DB" "the secured mariadbd (pid $pid) exited"
    fi
    (($(now) >= deadline)) && die "$EX_DB" "the secured MariaDB did not answer within ${DB_START_TIMEOUT}s"
    sleep 0.5
  done
  secure_secrets
  # REQUIRE SSL on top of require_secure_transport: the account itself refuses plaintext.
  secure_db_sql --batch <<EOF || die "$EX_DB" "creating the TLS user failed"
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$SECURE_DB_USER'@'%' IDENTIFIED BY '$SECURE_DB_PASSWORD' REQUIRE SSL;
ALTER USER '$SECURE_DB_USER'@'%' IDENTIFIED BY '$SECURE_DB_PASSWORD' REQUIRE SSL;
GRANT ALL PRIVILEGES ON *.* TO '$SECURE_DB_USER'@'%' WITH GRANT OPTION;
$(identities_sql secure)
FLUSH PRIVILEGES;
EOF
  log "secured MariaDB ready (pid $pid, TLS required on 127.0.0.1:$SECURE_DB_PORT) after $(($(now) - t0))s"
}

secure_up() {
  secure_ensure_secrets
  secure_ensure_certificates
  secure_db_start
  secure_kafka_start
}

secure_down() {
  local pid
  pid=$(secure_kafka_pid)
  [[ -n $pid ]] && { terminate "$pid" "secured Kafka" "$KAFKA_STOP_TIMEOUT" || die "$EX_KAFKA" "could not stop the secured Kafka"; }
  pid=$(secure_db_pid)
  if [[ -n $pid ]]; then
    timeout 60 mariadb-admin --no-defaults --socket="$SECURE_DB_SOCKET" -u root shutdown >/dev/null 2>&1 || true
    wait_gone "$pid" 30 || terminate "$pid" "secured MariaDB" 30 || die "$EX_DB" "could not stop the secured MariaDB"
  fi
  return 0
}

secure_status() {
  local rc=0 pid
  pid=$(secure_kafka_pid)
  if [[ -n $pid ]] && port_open "$SECURE_KAFKA_PORT"; then
    echo "kafka (secured): running (pid $pid, SASL_SSL localhost:$SECURE_KAFKA_PORT)"
  else
    echo "kafka (secured): stopped"
    rc=$EX_NOT_RUNNING
  fi
  pid=$(secure_db_pid)
  if [[ -n $pid ]] && port_open "$SECURE_DB_PORT"; then
    echo "mariadb (secured): running (pid $pid, TLS required on 127.0.0.1:$SECURE_DB_PORT)"
  else
    echo "mariadb (secured): stopped"
    rc=$EX_NOT_RUNNING
  fi
  return "$rc"
}

# What a service needs to talk to the secured services; SECURE_UNTRUSTED_CA_LOCATION is a
# CA that did not sign them (for tests of the refusal).
secure_print_env() {
  [[ -s $SECURE_SECRETS ]] || die "$EX_NOT_RUNNING" "the secured services were never set up: run '$0 up --secure'"
  secure_secrets
  echo "export KAFKA_BOOTSTRAP_SERVERS=localhost:$SECURE_KAFKA_PORT"
  echo "export KAFKA_SECURITY_PROTOCOL=SASL_SSL"
  echo "export KAFKA_SASL_MECHANISM=SCRAM-SHA-512"
  echo "export KAFKA_SASL_USERNAME=$SECURE_KAFKA_USER"
  echo "export KAFKA_SASL_PASSWORD=$SECURE_KAFKA_APP_PASSWORD"
  echo "export KAFKA_SSL_CA_LOCATION=$SECURE_TLS/ca.pem"
  echo "export DATABASE_URL='mysql://$SECURE_DB_USER:$SECURE_DB_PASSWORD@localhost:$SECURE_DB_PORT/$DB_NAME?ssl-mode=VERIFY_IDENTITY&ssl-ca=$SECURE_TLS/ca.pem'"
  echo "export SECURE_UNTRUSTED_CA_LOCATION=$SECURE_TLS/untrusted-ca.pem"
  # The per-service identities (issue 25) as SECURE_<USER>_DATABASE_URL, for the
  # test that runs each service as its own identity and migrates as the migrator.
  local user
  for user in $DB_MIGRATOR_USER $DB_RUNTIME_USERS; do
    echo "export SECURE_$(printf '%s' "$user" | tr '[:lower:]' '[:upper:]')_DATABASE_URL='mysql://$user:$(secure_db_password "$user")@localhost:$SECURE_DB_PORT/$DB_NAME?ssl-mode=VERIFY_IDENTITY&ssl-ca=$SECURE_TLS/ca.pem'"
  done
}

# ==================================================================== commands

print_env() {
  local n
  n=$(brokers_chosen)
  if ((n == 1)); then
    echo "$ENV_KAFKA"
  else
    echo "export KAFKA_BOOTSTRAP_SERVERS=$(cluster_bootstrap "$n")"
  fi
  echo "$ENV_DB"
}

cmd_up() {
  local t0 n
  t0=$(now)
  n=$(brokers_chosen)
  # Only an explicit --brokers is remembered (LOCAL_KAFKA_BROKERS is for one command).
  if [[ -n $BROKERS_FLAG ]]; then
    mkdir -p "$LOCAL"
    printf '%s\n' "$n" >"$BROKERS_CHOICE_FILE"
  fi
  db_start
  if ((n == 1)); then kafka_start; else cluster_start "$n"; fi
  log "all services up after $(($(now) - t0))s"
  print_env
}

cmd_down() {
  kafka_stop
  cluster_stop
  db_stop
}

cmd_reset() {
  cmd_down
  log "deleting Kafka and MariaDB data (downloaded jars are kept)"
  rm -rf "$CLUSTER_HOME"
  rm -rf "$KAFKA_DATA" "$KAFKA_CLUSTER_ID_FILE" "$KAFKA_CONFIG_DIR" "$KAFKA_LOGS" \
    "$DB_DATA" "$DB_INIT_MARKER" "$DB_LOGS" "$DB_TMP" "$DB_CNF"
}

cmd_status() {
  local rc=0
  if (($(brokers_chosen) == 1)); then
    kafka_status || rc=$EX_NOT_RUNNING
  else
    cluster_status || rc=$EX_NOT_RUNNING
  fi
  db_status || rc=$EX_NOT_RUNNING
  return "$rc"
}

cmd_kafka_tool() {
  (($# >= 1)) || die "$EX_USAGE" "usage: $0 kafka-tool MAIN_CLASS [ARGS...]"
  ensure_java
  [[ -f $KAFKA_LIBS_MARKER ]] || with_lock ensure_kafka_libs
  run_kafka_class "$@"
}

usage() {
  sed -n '/^# Usage:/,/^# Exit codes/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' -e '$d' >&2
}

main() {
  # --brokers N may come anywhere; everything else stays positional.
  local -a args=()
  while (($#)); do
    case $1 in
      --brokers)
        (($# >= 2)) || die "$EX_USAGE" "--brokers needs a number"
        BROKERS_FLAG=$2
        shift 2
        ;;
      --brokers=*)
        BROKERS_FLAG=${1#--brokers=}
        shift
        ;;
      --secure)
        SECURE_FLAG=1
        shift
        ;;
      --observability)
        OBSERVABILITY_FLAG=1
        shift
        ;;
      *)
        args+=("$1")
        shift
        ;;
    esac
  done
  set -- "${args[@]}"
  local cmd=${1:-}
  (($#)) && shift
  case $cmd in
    up)
      if [[ -n $SECURE_FLAG ]]; then with_lock secure_up && secure_print_env; else with_lock cmd_up; fi
      if [[ -n $OBSERVABILITY_FLAG ]]; then "$OBSERVABILITY_STACK" up; fi
      ;;
    down)
      if [[ -n $SECURE_FLAG ]]; then with_lock secure_down; else
        with_lock cmd_down && with_lock secure_down && "$OBSERVABILITY_STACK" down
      fi
      ;;
    observability) "$OBSERVABILITY_STACK" "${1:-}" ;;
    reset) with_lock cmd_reset ;;
    status) if [[ -n $SECURE_FLAG ]]; then secure_status; else cmd_status; fi ;;
    env) if [[ -n $SECURE_FLAG ]]; then secure_print_env; else print_env; fi ;;
    kafka-start) with_lock kafka_start ;;
    kafka-stop) with_lock kafka_stop ;;
    db-start) with_lock db_start ;;
    db-stop) with_lock db_stop ;;
    kafka-tool) cmd_kafka_tool "$@" ;;
    kafka-libs) with_lock ensure_kafka_libs && echo "$KAFKA_LIBS" ;;
    broker-kill) broker_kill "${1:-}" ;;
    broker-stop) broker_stop "${1:-}" ;;
    broker-start) with_cluster_lock broker_start "${1:-}" ;;
    broker-isolate) broker_isolate "${1:-}" ;;
    broker-heal) broker_heal "${1:-}" ;;
    active-controller) active_controller ;;
    -h | --help | help)
      usage
      ;;
    *)
      usage
      exit "$EX_USAGE"
      ;;
  esac
}

main "$@"
