#!/usr/bin/env bash
# compose-smoke.sh - compose.yaml started for real and one sign-up through it: Kafka, MariaDB
# and the three services as containers (podman-compose against this checkout's podman, on the
# host's network: compose.host-network.yaml), a POST /registrations that must end `completed`
# with its row in MariaDB, then `down`, after which none of the stack's containers may remain
# and the machine's network settings must be as before.
#
# Usage: scripts/compose-smoke.sh [--binaries DIR]
#   Starts the engine (scripts/container-engine.sh up) and makes the images
#   (scripts/container-images.sh, which gets --binaries DIR) when needed; leaves the engine
#   running, as it found it or as `up` left it. podman-compose (PyPI, pinned in
#   scripts/containers/compose-requirements.txt) goes into the git-ignored .local/compose-venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly VENV="$ROOT/.local/compose-venv"
readonly WORK="$ROOT/.local/compose-smoke"
readonly PROJECT=signup-smoke

log() { printf '[compose-smoke] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

ensure_compose() {
  if [[ ! -x $VENV/bin/pip ]]; then
    python3 -m venv --clear "$VENV" 2>/dev/null || {
      apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
      python3 -m venv --clear "$VENV"
    }
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/scripts/containers/compose-requirements.txt" >&2
}

# Free TCP ports on 127.0.0.1, one per line (held together while picked, so they differ).
free_ports() {
  python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held: s.bind(("127.0.0.1", 0))
print("\n".join(str(s.getsockname()[1]) for s in held))' "$1"
}

compose() {
  "$VENV/bin/podman-compose" -p "$PROJECT" -f "$ROOT/compose.yaml" -f "$ROOT/compose.host-network.yaml" "$@"
}

# The stack's containers in this checkout's store, running or not.
stack_containers() { podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.ID}} {{.Names}} {{.Status}}'; }

wait_http() {
  local name=$1 url=$2 _
  for _ in $(seq 1 180); do
    curl -fsS --max-time 2 "$url" >/dev/null 2>&1 && return 0
    sleep 1
  done
  podman logs --tail 30 "${PROJECT}_${name}_1" >&2 || true
  die "$name did not answer $url within 180 s (its last log lines above)"
}

images_args=()
while (($#)); do
  case $1 in
    --binaries)
      images_args=(--binaries "${2:?--binaries DIR}")
      shift 2
      ;;
    *) die "unknown argument $1 (see the head of $0)" ;;
  esac
done

command -v curl >/dev/null || die "curl is missing"
eval "$("$ROOT/scripts/container-engine.sh" up)"
export CONTAINERS_CONF CONTAINERS_STORAGE_CONF DOCKER_HOST
"$ROOT/scripts/container-images.sh" "${images_args[@]}"
ensure_compose
mkdir -p "$WORK"
"$ROOT/scripts/container-engine.sh" net-snapshot "$WORK/net-before"

mapfile -t ports < <(free_ports 7)
export SIGNUP_KAFKA_PORT=${ports[0]} SIGNUP_KAFKA_CONTROLLER_PORT=${ports[1]} SIGNUP_MARIADB_PORT=${ports[2]}
export SIGNUP_GATEWAY_PORT=${ports[3]} SIGNUP_REGISTRATION_SERVICE_PORT=${ports[4]} SIGNUP_DLQ_WORKER_PORT=${ports[5]}
# The gateway's probes and /metrics are on its internal listener.
export SIGNUP_GATEWAY_INTERNAL_PORT=${ports[6]}
# Stopped whatever happens after this point; a failed run shows the services' logs first.
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    local c
    for c in gateway registration-service dlq-worker; do
      log "last log lines of $c:"
      podman logs --tail 15 "${PROJECT}_${c}_1" >&2 2>&1 || true
    done
  fi
  compose down -t 10 >"$WORK/down.log" 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT

t0=$(date +%s)
log "podman-compose up (Kafka on 127.0.0.1:$SIGNUP_KAFKA_PORT, MariaDB on :$SIGNUP_MARIADB_PORT, gateway on :$SIGNUP_GATEWAY_PORT)"
compose up -d --no-build >"$WORK/up.log" 2>&1 || { tail -n 30 "$WORK/up.log" >&2; die "podman-compose up failed (see $WORK/up.log)"; }
running=$(stack_containers | grep -c ' Up ' || true)
((running == 5)) || { stack_containers >&2; die "expected the 5 containers of compose.yaml running, found $running"; }
wait_http registration-service "http://127.0.0.1:$SIGNUP_REGISTRATION_SERVICE_PORT/readyz"
wait_http dlq-worker "http://127.0.0.1:$SIGNUP_DLQ_WORKER_PORT/healthz"
wait_http gateway "http://127.0.0.1:$SIGNUP_GATEWAY_INTERNAL_PORT/readyz"
log "stack ready after $(($(date +%s) - t0))s"

email="compose-smoke-$(date +%s)-$$@example.com"
answer=$(curl -sS -i --max-time 30 -X POST "http://127.0.0.1:$SIGNUP_GATEWAY_PORT/registrations" \
  -H 'content-type: application/json' \
  -d "{\"email\": \"$email\", \"name\": \"Compose Smoke\", \"password\": \"a long compose passphrase\"}" | tr -d '\r')
code=$(printf '%s\n' "$answer" | awk 'NR == 1 {print $2}')
[[ $code == 202 ]] || die "POST /registrations answered $code, not 202: $answer"
location=$(printf '%s\n' "$answer" | awk 'tolower($1) == "location:" {print $2}')
[[ -n $location ]] || die "the 202 has no Location header: $answer"

status=""
for _ in $(seq 1 60); do
  status=$(curl -fsS --max-time 5 "http://127.0.0.1:$SIGNUP_GATEWAY_PORT$location" || true)
  [[ $status == *'"completed"'* ]] && break
  sleep 1
done
[[ $status == *'"completed"'* ]] || die "GET $location never said completed; last answer: $status"
log "GET $location: $status"

# The row, read inside the database's container (the host needs no MySQL client).
row=$(podman exec "${PROJECT}_mariadb_1" mariadb -uregistrations -pregistrations -h127.0.0.1 \
  -P"$SIGNUP_MARIADB_PORT" registrations -N -e \
  "SELECT email, LEFT(password_hash, 10) FROM users WHERE email = '$email'")
[[ $row == "$email"$'\t$argon2id$' ]] || die "the users row is not what was signed up: '$row'"
log "users row in MariaDB: $row"

trap - EXIT
compose down -t 10 >"$WORK/down.log" 2>&1 || { tail -n 20 "$WORK/down.log" >&2; die "podman-compose down failed"; }
left=$(stack_containers)
[[ -z $left ]] || die "containers left after down: $left"
"$ROOT/scripts/container-engine.sh" net-check "$WORK/net-before"
log "passed in $(($(date +%s) - t0))s: sign-up completed through the composed stack, nothing left running"
