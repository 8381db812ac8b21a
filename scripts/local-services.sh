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

#
# The parts live under scripts/local-services/, one file per concern:
# common.sh (paths, offsets, process helpers, downloads), kafka.sh (the one
# start path of a Kafka node; the single broker), cluster.sh (the multi-broker
# cluster, namespaces, faults), mariadb.sh (the one start path of MariaDB),
# identities.sh (database accounts), secure.sh (certificates, secrets, the
# secured broker and MariaDB); observability/local-stack.sh (Prometheus,
# Alertmanager, collector).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT

for part in common kafka cluster mariadb identities secure; do
  # shellcheck source=/dev/null  # the parts, by concern
  source "$ROOT/scripts/local-services/$part.sh"
done
unset part

SECURE_FLAG=""
# `up --observability`: Prometheus, Alertmanager (and the collector) beside the services.
OBSERVABILITY_FLAG=""
readonly OBSERVABILITY_STACK="$SCRIPTS/observability/local-stack.sh"

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
