# kafka.sh - one Kafka KRaft node: kafka_launch_node starts a node's JVM given
# its config (the single broker, every node of the cluster and the secured
# broker all start through it), kafka_metadata_ok is the readiness probe, and
# the single plaintext broker (broker + controller) on localhost:9092.

# ------------------------------------------------------ the single broker
readonly KAFKA_PORT=$((9092 + PORT_OFFSET))
readonly KAFKA_CONTROLLER_PORT=$((9093 + PORT_OFFSET))
readonly KAFKA_CONFIG_DIR="$KAFKA_HOME/config"
readonly KAFKA_CONFIG="$KAFKA_CONFIG_DIR/server.properties"
readonly KAFKA_DATA="$KAFKA_HOME/data"
readonly KAFKA_PID_FILE="$KAFKA_HOME/kafka.pid"
readonly KAFKA_CLUSTER_ID_FILE="$KAFKA_HOME/cluster.id"
readonly KAFKA_TEMPLATE="$SCRIPTS/kafka/server.properties"
readonly ENV_KAFKA="export KAFKA_BOOTSTRAP_SERVERS=localhost:$KAFKA_PORT"

# kafka_launch_node PID_FILE LOG_DIR CONFIG HEAP_OPTS [PREFIX...]: start one
# node's JVM as a daemon (PREFIX, e.g. `ip netns exec NS`, runs it in a network
# namespace); its pid lands in PID_FILE, its console in LOG_DIR/kafka.out.
kafka_launch_node() {
  local pid_file=$1 logs=$2 config=$3 heap=$4
  shift 4
  mkdir -p "$logs"
  rm -f "$pid_file"
  # shellcheck disable=SC2086  # the heap options are a list of JVM flags
  launch "$pid_file" "$logs/kafka.out" "$@" \
    java $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -XX:MaxInlineLevel=15 -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dkafka.logs.dir="$logs" -Dlog4j2.configurationFile="$KAFKA_LOG4J" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$config"
}

# kafka_metadata_ok PORT [TOOL ARGS...]: a real admin client gets metadata back
# from localhost:PORT (not just an open port); extra args such as
# --command-config FILE go to the tool.
kafka_metadata_ok() {
  local port=$1
  shift
  port_open "$port" &&
    timeout 30 java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dlog4j2.configurationFile="$KAFKA_TOOLS_LOG4J" -cp "$KAFKA_LIBS/*" \
      org.apache.kafka.tools.TopicCommand --bootstrap-server "localhost:$port" \
      "$@" --list >/dev/null 2>&1
}

kafka_pid() { service_pid "$KAFKA_PID_FILE" java "kafka.Kafka $KAFKA_CONFIG"; }

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
    log "starting Kafka on localhost:$KAFKA_PORT"
    kafka_launch_node "$KAFKA_PID_FILE" "$KAFKA_LOGS" "$KAFKA_CONFIG" "$KAFKA_HEAP_OPTS" ||
      kafka_fail "the launcher did not write $KAFKA_PID_FILE"
    pid=$(cat "$KAFKA_PID_FILE")
  else
    log "Kafka process $pid exists but does not accept connections yet; waiting"
  fi
  local deadline=$((t0 + KAFKA_START_TIMEOUT))
  while :; do
    pid_alive "$pid" || kafka_fail "the broker process (pid $pid) exited"
    kafka_metadata_ok "$KAFKA_PORT" && break
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
