#!/usr/bin/env bash
# The main job, from a bare machine: starts the local Kafka broker and MariaDB, builds and
# starts the gateway, the registration-service and the dlq-worker, signs one user up over
# HTTP and shows the way it went: 202 from the gateway, status "completed", the row in MySQL.
#
#   scripts/demo.sh          start everything (idempotent) and sign a user up
#   scripts/demo.sh stop     stop the three services (scripts/local-services.sh down stops the rest)
#
# Services log to .local/run/<service>.log and keep running after the demo, so you can go on
# with curl (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=.local/run
SERVICES=(registration-service dlq-worker gateway)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

pid_of() {
  local f="$RUN_DIR/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

stop_services() {
  for s in "${SERVICES[@]}"; do
    if pid=$(pid_of "$s"); then
      log "stopping $s (pid $pid)"
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$RUN_DIR/$s.pid"
  done
}

wait_ready() {
  local name=$1 url=$2
  for _ in $(seq 1 150); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$name did not become ready at $url; last log lines:" >&2
  tail -n 20 "$RUN_DIR/$name.log" >&2
  exit 1
}

start_service() {
  local name=$1
  if pid=$(pid_of "$name"); then
    log "$name already running (pid $pid)"
    return
  fi
  log "starting $name (log: $RUN_DIR/$name.log)"
  setsid nohup "target/debug/$name" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

if [[ ${1:-} == stop ]]; then
  stop_services
  exit 0
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
scripts/ensure-build-deps.sh
command -v curl >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl; }
mkdir -p "$RUN_DIR"

log "starting Kafka and MariaDB"
scripts/local-services.sh up
eval "$(scripts/local-services.sh env)"
export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL
# The gateway signs the request ids it issues; keep one secret across demo runs.
[[ -s .local/request-id-secret ]] || od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >.local/request-id-secret
REQUEST_ID_SECRET=$(cat .local/request-id-secret)
export REQUEST_ID_SECRET
# The local broker also keeps the test suites' *-dlq topics; the demo's worker drains only the
# demo's own (a deployed worker keeps the default ^.*-dlq$ and serves every service's DLQ).
export DLQ_TOPIC_PATTERN='^user-registrations-dlq$'

log "building the services"
cargo build --locked --workspace --bins

for s in "${SERVICES[@]}"; do start_service "$s"; done
wait_ready registration-service http://127.0.0.1:8081/readyz
wait_ready dlq-worker http://127.0.0.1:8082/healthz
wait_ready gateway http://127.0.0.1:8083/readyz

email="ada.$(date +%s)@example.com"
log "POST /registrations for $email"
response=$(curl -sS -i -X POST http://127.0.0.1:8080/registrations \
  -H 'content-type: application/json' \
  -d "{\"email\": \"$email\", \"name\": \"Ada Lovelace\", \"password\": \"correct horse battery staple\"}")
printf '%s\n\n' "$response"
location=$(printf '%s' "$response" | tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
[[ -n $location ]] || { echo "no Location header: the sign-up was not accepted" >&2; exit 1; }

log "GET $location until the registration is settled"
for _ in $(seq 1 50); do
  status=$(curl -sS "http://127.0.0.1:8080$location")
  [[ $status == *'"pending"'* ]] || break
  sleep 0.1
done
printf '%s\n\n' "$status"

log "the row in registrations.users"
mariadb -h 127.0.0.1 -u registrations registrations -e \
  "SELECT LOWER(HEX(request_id)) AS request_id, email, name, LEFT(password_hash, 31) AS password_hash_prefix, created_at
     FROM users WHERE email = '$email'\\G"

cat <<TXT

The services keep running:
  gateway               http://127.0.0.1:8080  (POST /registrations, GET /registrations/{id}, /openapi.json)
                        http://127.0.0.1:8083  (internal: /readyz, /healthz, /metrics)
  registration-service  http://127.0.0.1:8081  (/readyz, /metrics)
  dlq-worker            http://127.0.0.1:8082  (/readyz, /metrics); parking lot: target/debug/dlq-worker parked list
Stop them with scripts/demo.sh stop, and Kafka/MariaDB with scripts/local-services.sh down.
TXT
