# mariadb.sh - MariaDB from Debian's packages, run from a data dir under
# .local/: ONE start/stop path (mariadb_start, mariadb_stop) for both servers,
# the plain development one on 127.0.0.1:3306 ("plain") and the one that only
# talks TLS for `up --secure` ("secure"); db_server NAME selects which.

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

readonly ENV_DB="export DATABASE_URL=mysql://$DB_USER@127.0.0.1:$DB_PORT/$DB_NAME"

# db_server plain|secure: sets the M_* variables the functions below use. The
# secured server's paths come from secure.sh.
db_server() {
  case $1 in
    plain)
      M_LABEL=MariaDB M_HOME=$DB_HOME M_PORT=$DB_PORT M_SOCKET=$DB_SOCKET M_CNF=$DB_CNF
      M_PID_FILE=$DB_PID_FILE M_INIT_MARKER=$DB_INIT_MARKER M_MAX_CONNECTIONS=500 M_BUFFER_POOL=256M
      # The development server owns port 3306: a distro server started by its package goes.
      M_STOP_FOREIGN=1 M_PROVISION=provision_db
      M_TITLE="Local development/test MariaDB: loopback only, data under .local/mariadb."
      M_EXTRA=$'innodb_log_file_size    = 64M'
      ;;
    secure)
      M_LABEL="the secured MariaDB" M_HOME=$SECURE_DB_HOME M_PORT=$SECURE_DB_PORT M_SOCKET=$SECURE_DB_SOCKET
      M_CNF=$SECURE_DB_CNF M_PID_FILE=$SECURE_DB_PID_FILE M_INIT_MARKER="" M_MAX_CONNECTIONS=200
      M_BUFFER_POOL=64M M_STOP_FOREIGN="" M_PROVISION=secure_provision_db
      M_TITLE="(up --secure): MariaDB that only talks TLS."
      M_EXTRA="ssl_ca                   = $SECURE_TLS/ca.pem
ssl_cert                 = $SECURE_TLS/server.pem
ssl_key                  = $SECURE_TLS/server.key
require_secure_transport = ON"
      ;;
    *) die "$EX_USAGE" "db_server: unknown server '$1'" ;;
  esac
  M_DATA=$M_HOME/data M_LOGS=$M_HOME/logs M_TMP=$M_HOME/tmp
}

db_pid() { service_pid "$DB_PID_FILE" mariadbd "--defaults-file=$DB_CNF"; }
mariadb_pid() { service_pid "$M_PID_FILE" mariadbd "--defaults-file=$M_CNF"; }

db_server_bin() {
  if have mariadbd; then command -v mariadbd; elif have mysqld; then command -v mysqld; fi
}

# mariadb-admin / mariadb as root over the selected server's socket (unix_socket
# auth), ignoring any system-wide client configuration.
db_admin() { mariadb-admin --no-defaults --socket="$M_SOCKET" -u root "$@"; }
db_sql() { mariadb --no-defaults --socket="$M_SOCKET" -u root "$@"; }

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
    # A checkout's secured server (up --secure) is not a system server either.
    [[ "$(proc_cmdline "$pid")" == *"--defaults-file="*"/.local/secure/mariadb/my.cnf"* ]] && continue
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
  mkdir -p "$M_DATA" "$M_LOGS" "$M_TMP"
  local user
  user=$(id -un)
  cat >"$M_CNF.tmp" <<CNF
# Generated by scripts/local-services.sh on every start; edit the script, not this file.
# $M_TITLE
[mysqld]
user                    = $user
port                    = $M_PORT
bind-address            = 127.0.0.1
socket                  = $M_SOCKET
pid-file                = $M_PID_FILE
datadir                 = $M_DATA
tmpdir                  = $M_TMP
log-error               = $M_LOGS/mariadb.err
character-set-server    = utf8mb4
collation-server        = utf8mb4_unicode_ci
skip-name-resolve
max_connections         = $M_MAX_CONNECTIONS
innodb_buffer_pool_size = $M_BUFFER_POOL
# Commits are written to the OS at once and flushed to disk every second:
# survives a killed mariadbd (chaos tests), not a machine crash; much faster tests.
innodb_flush_log_at_trx_commit = 2
$M_EXTRA
CNF
  mv "$M_CNF.tmp" "$M_CNF"
}

# Create the system tables once (the plain server also keeps a marker, so a
# half-initialised data dir is redone).
ensure_db_initialised() {
  [[ -d $M_DATA/mysql && ( -z $M_INIT_MARKER || -f $M_INIT_MARKER ) ]] && return 0
  log "initialising the data directory of $M_LABEL (${M_DATA#"$ROOT"/})"
  rm -rf "$M_DATA"
  mkdir -p "$M_DATA"
  if ! mariadb-install-db --defaults-file="$M_CNF" --user="$(id -un)" --datadir="$M_DATA" \
    --auth-root-authentication-method=socket --skip-test-db \
    --skip-name-resolve >"$M_LOGS/install-db.log" 2>&1; then
    tail -n 30 "$M_LOGS/install-db.log" >&2 || true
    die "$EX_DB" "mariadb-install-db failed (see ${M_LOGS#"$ROOT"/}/install-db.log)"
  fi
  [[ -z $M_INIT_MARKER ]] || touch "$M_INIT_MARKER"
}

db_fail() {
  log "$M_LABEL did not come up: $*"
  log "---- last lines of ${M_LOGS#"$ROOT"/}/mariadb.err ----"
  tail -n 30 "$M_LOGS/mariadb.err" >&2 2>/dev/null || true
  local pid
  pid=$(mariadb_pid)
  [[ -n $pid ]] && log "mariadbd (pid $pid) was left running for inspection; '$0 down' stops it"
  exit "$EX_DB"
}

# mariadb_start NAME: start the server (idempotent), wait until it answers,
# then create its databases and identities ($M_PROVISION, idempotent, so a
# server started by an older checkout gets today's identities).
mariadb_start() {
  db_server "$1"
  local pid t0
  pid=$(mariadb_pid)
  if [[ -n $pid ]] && port_open "$M_PORT" && db_admin ping >/dev/null 2>&1; then
    log "$M_LABEL already running (pid $pid, 127.0.0.1:$M_PORT)"
    "$M_PROVISION"
    return 0
  fi
  t0=$(now)
  if [[ -z $pid ]]; then
    ensure_mariadb_installed
    [[ -z $M_STOP_FOREIGN ]] || stop_foreign_db
    port_taken "$M_PORT" "$M_LABEL" mariadbd --defaults-file "$EX_PORT"
    write_db_config
    ensure_db_initialised
    rm -f "$M_PID_FILE" "$M_SOCKET"
    log "starting $M_LABEL on 127.0.0.1:$M_PORT"
    launch "$M_PID_FILE" "$M_LOGS/mariadbd.out" "$(db_server_bin)" --defaults-file="$M_CNF" ||
      db_fail "the launcher did not write $M_PID_FILE"
    pid=$(cat "$M_PID_FILE")
  else
    log "$M_LABEL process $pid exists but does not answer yet; waiting"
  fi
  local deadline=$((t0 + DB_START_TIMEOUT))
  until db_admin ping >/dev/null 2>&1 && port_open "$M_PORT"; do
    pid_alive "$pid" || db_fail "mariadbd (pid $pid) exited"
    (($(now) >= deadline)) && db_fail "no answer on $M_SOCKET within ${DB_START_TIMEOUT}s"
    sleep 0.5
  done
  "$M_PROVISION"
  log "$M_LABEL ready (pid $pid, 127.0.0.1:$M_PORT) after $(($(now) - t0))s"
}

# mariadb_stop NAME: a clean shutdown, SIGTERM/SIGKILL if it does not end.
mariadb_stop() {
  db_server "$1"
  local pid
  pid=$(mariadb_pid)
  if [[ -z $pid ]]; then
    rm -f "$M_PID_FILE"
    log "$M_LABEL is not running"
    return 0
  fi
  log "stopping $M_LABEL (pid $pid)"
  timeout 60 mariadb-admin --no-defaults --socket="$M_SOCKET" -u root --shutdown-timeout=50 \
    shutdown >/dev/null 2>&1 || true
  if ! wait_gone "$pid" 30; then
    terminate "$pid" "$M_LABEL" 30 || die "$EX_DB" "could not stop $M_LABEL (pid $pid)"
  fi
  local other
  for other in $(find_pids mariadbd "--defaults-file=$M_CNF"); do
    terminate "$other" "$M_LABEL" 30 || die "$EX_DB" "could not stop $M_LABEL (pid $other)"
  done
  rm -f "$M_PID_FILE"
  log "$M_LABEL stopped"
}

db_start() { mariadb_start plain; }
db_stop() { mariadb_stop plain; }

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
