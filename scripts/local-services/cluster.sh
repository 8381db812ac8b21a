# cluster.sh - the local multi-broker KRaft cluster (`up --brokers N`): node
# configs and storage, each node in its own network namespace on a bridge
# (when root), and the faults tests place on it: broker-kill/stop/start,
# broker-isolate/heal, active-controller. Nodes start via kafka_launch_node.

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
  kafka_launch_node "$dir/kafka.pid" "$dir/logs" "$(broker_config "$i")" "$KAFKA_HEAP_OPTS" "${prefix[@]}" ||
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
