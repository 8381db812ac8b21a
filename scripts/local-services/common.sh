# common.sh - what every part of scripts/local-services.sh shares: exit codes,
# paths and port offsets, process helpers (pid files checked against /proc,
# daemon launch, stop with timeout), locks, apt installs, Java and the Kafka
# jars downloaded from Maven Central. Sourced by the dispatcher, which sets ROOT.

readonly EX_NOT_RUNNING=1 EX_USAGE=2 EX_INSTALL=3 EX_KAFKA=4 EX_DB=5 EX_PORT=6

readonly SCRIPTS="$ROOT/scripts"
readonly LOCAL="$ROOT/.local"

# Debian keeps mariadbd and friends in sbin, which is not on every PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

# LOCAL_PORT_OFFSET=N moves every port below by N, so that a second checkout
# (a git worktree, say) runs its own broker and database beside the first.
readonly PORT_OFFSET="${LOCAL_PORT_OFFSET:-0}"
[[ $PORT_OFFSET =~ ^[0-9]+$ ]] || { echo "LOCAL_PORT_OFFSET must be a whole number, got '$PORT_OFFSET'" >&2; exit 2; }

# ------------------------------------------- downloads (shared by every node)
readonly KAFKA_HOME="$LOCAL/kafka"
readonly KAFKA_LIBS="$KAFKA_HOME/libs"
readonly KAFKA_LIBS_MARKER="$KAFKA_LIBS/.fetched"
readonly KAFKA_LOGS="$KAFKA_HOME/logs"
readonly KAFKA_POM="$SCRIPTS/kafka/pom.xml"
readonly KAFKA_LOG4J="$SCRIPTS/kafka/log4j2.yaml"
readonly KAFKA_TOOLS_LOG4J="$SCRIPTS/kafka/tools-log4j2.yaml"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"

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


# tcp_open HOST PORT: something accepts TCP connections there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# =========================================================== Java and jars

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

