#!/usr/bin/env bash
# bench.sh - THE benchmark command (issue 6): measures the services against the raw limits of
# this machine, measured in the same run, and prints one table (figure | ours | raw limit |
# ratio | goal | met?). See BENCHMARKS.md for the last recorded table and how to read it.
#
#   scripts/bench.sh            full run: every ratio from 5 alternating rounds of ours and its
#                               raw limit; ~9 minutes on a quiet 2-core machine, ~15 on a busy one
#   scripts/bench.sh --quick    3 smaller rounds per ratio, ~4 minutes (noisier; the table says so)
#   scripts/bench.sh --keep     keep the run's topics and databases for inspection
#   scripts/bench.sh --only raw,gateway,drain,outage,dlq,cost,flood   selected phases only
#   scripts/bench.sh --only flood   one client flooding the gateway at 2,000/s beside a
#                               well-behaved one, per-client budget on and off (~1 minute)
#   scripts/bench.sh --rounds 7 more (or fewer) rounds per ratio
#   scripts/bench.sh --only outage --outage-secs 180       one 3-minute outage (60 s or more: 1 round)
#   scripts/bench.sh --only outage --outage-by proxy       cut a TCP proxy instead of stopping MariaDB
#   scripts/bench.sh --only cost   the consumer's instructions per message under callgrind
#                               against its budget (benchmarks/src/figures/cost.rs); the same
#                               figure on a busy machine, so it fails a run on its own
#   scripts/bench.sh --replicated --only raw,gateway,drain
#                               the same on the local three-broker cluster (topics replicated
#                               3 times, min.insync.replicas 2), started beside the single broker
#
# The outage phase (part of a full run) STOPS THE LOCAL MariaDB SERVER for --outage-secs (10 by
# default) in each round (scripts/local-services.sh db-stop, then db-start): everyone using it on
# this machine sees the outage. The harness starts it again on any error, timeout, Ctrl-C or
# SIGTERM; only a SIGKILL can leave it down (then: scripts/local-services.sh db-start).
#
# It builds the service binaries and the harness in release mode, starts the local Kafka and
# MariaDB (scripts/local-services.sh up; a no-op when they already run), then runs the harness
# (benchmarks/, binary `bench`). The harness spawns the release binaries itself, each with its
# own ports, topics and fresh database, and removes what it created when it ends.
# The table goes to stdout and to target/bench/last-run.md; progress and logs to stderr and
# target/release/bench-logs/.
#
# Exit codes: 0 every goal met; 1 a goal was missed, unsettled (its rounds' spread crosses the
# goal) or could not be measured; 2 the harness could not run (e.g. services down); other codes
# come from the build or local-services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 2; }
scripts/ensure-build-deps.sh
# The instruction count (phase cost) runs the registration-service under valgrind's callgrind.
if ! command -v valgrind >/dev/null; then
  echo "[bench.sh] installing valgrind (Debian) for the instruction count" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind >&2
fi

echo "[bench.sh] building release binaries (gateway, registration-service, dlq-worker, bench)" >&2
cargo build --release --locked -p gateway -p registration-service -p dlq-worker -p benchmark-harness >&2

args=()
for a in "$@"; do
  if [[ $a == --replicated ]]; then
    # For this run only: the remembered choice of `up --brokers` stays as it is.
    export LOCAL_KAFKA_BROKERS=3
  else
    args+=("$a")
  fi
done
set -- "${args[@]}"

scripts/local-services.sh up >/dev/null
eval "$(scripts/local-services.sh env)"
export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL

mkdir -p target/bench
exec target/release/bench --output target/bench/last-run.md "$@"
