#!/usr/bin/env bash
# test-containers.sh - the containers leg of CI (scripts/test.sh): the testcontainers path and
# compose.yaml, run for real on this machine's own engine.
#
#   1. the engine: podman serving the Docker API (scripts/container-engine.sh up; installed
#      from Debian when missing), and a snapshot of the machine's network settings;
#   2. the images (scripts/container-images.sh --binaries target/debug; cached, see there);
#   3. a subset of the integration tests with KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL unset,
#      so each test binary starts its broker and database with testcontainers; every recorded
#      container id (TESTCONTAINERS_RECORD) must appear in the engine's event log as started,
#      and after the leg none of the tests' containers may remain;
#   4. scripts/compose-smoke.sh: the composed stack and one sign-up through it;
#   5. the engine stopped again if this leg started it, and the network settings as before.
#
# Usage: scripts/test-containers.sh [TEST ARGS...]   (after `cargo build --workspace --bins`;
#   extra arguments go to the test binaries). CONTAINER_TESTS overrides the test binaries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
cd "$ROOT"
readonly WORK="$ROOT/.local/test-containers"
# The issue's minimum: the pipeline, a crash (fault) test, the DLQ and the API contract, plus
# the end-to-end sign-up over HTTP.
read -r -a TESTS <<<"${CONTAINER_TESTS:-end_to_end crash_recovery registration_pipeline dlq_crash api_contract}"
readonly PID_LABEL=signup.integration-tests.pid
# The services' images take the binaries the tests run (built with the workspace).
readonly BINARIES="${CARGO_TARGET_DIR:-$ROOT/target}/debug"

log() { printf '[test-containers] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

t0=$(date +%s)
mkdir -p "$WORK"
started_engine=false
scripts/container-engine.sh status || started_engine=true
scripts/container-engine.sh net-snapshot "$WORK/net-before"
eval "$(scripts/container-engine.sh up)"
export CONTAINERS_CONF CONTAINERS_STORAGE_CONF DOCKER_HOST
stop_engine() {
  local rc=$?
  if $started_engine; then scripts/container-engine.sh down || rc=1; fi
  scripts/container-engine.sh net-check "$WORK/net-before" || rc=1
  exit "$rc"
}
trap stop_engine EXIT

scripts/container-images.sh --binaries "$BINARIES"
t_images=$(date +%s)

record="$WORK/containers.txt"
rm -f "$record"
test_args=()
for t in "${TESTS[@]}"; do test_args+=(--test "$t"); done
log "integration tests in containers: ${TESTS[*]}"
# --workspace: the features the workspace build unified, so nothing is compiled again.
env -u KAFKA_BOOTSTRAP_SERVERS -u DATABASE_URL TESTCONTAINERS_RECORD="$record" \
  cargo test --locked --workspace "${test_args[@]}" -- "$@"
t_tests=$(date +%s)

# Proof that they ran in containers: one line per test binary, each id started by the engine.
[[ -s $record ]] || die "no test binary recorded containers: the tests did not run in containers"
lines=$(wc -l <"$record")
((lines == ${#TESTS[@]})) || die "expected ${#TESTS[@]} recorded test binaries, found $lines (see $record)"
podman events --stream=false --filter event=start --format '{{.ID}}' >"$WORK/started.txt"
for id in $(grep -oE '(kafka|mariadb)=[0-9a-f]+' "$record" | cut -d= -f2); do
  grep -q "^$id" "$WORK/started.txt" || die "container $id is recorded but the engine never started it"
done
log "$lines test binaries ran on $((lines * 2)) containers, each in the engine's event log"
# The last binary's containers outlive it (its environment is a static); remove them as the
# next test process would, then nothing of the tests may remain.
for id in $(podman ps -aq --filter "label=$PID_LABEL"); do
  pid=$(podman inspect --format "{{index .Config.Labels \"$PID_LABEL\"}}" "$id")
  [[ -d /proc/$pid ]] && die "container $id belongs to test process $pid, which still runs"
  podman rm --force --time 5 "$id" >/dev/null
done
left=$(podman ps -aq --filter "label=$PID_LABEL")
[[ -z $left ]] || die "test containers left behind: $left"

scripts/compose-smoke.sh --binaries "$BINARIES"
log "containers leg passed in $(($(date +%s) - t0))s (images $((t_images - t0))s, tests $((t_tests - t_images))s, compose smoke $(($(date +%s) - t_tests))s)"
