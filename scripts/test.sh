#!/usr/bin/env bash
# Runs the hygiene gates (scripts/check-hygiene.sh), then the test suite against real servers,
# from a bare machine if need be: starts (installing on first use) the local Kafka broker and
# MariaDB, builds the service binaries that the crash tests run as OS processes, runs every
# test of the workspace, then the short chaos suite (every scenario with a few faults; the long
# run is scripts/chaos.sh), then one leader-kill scenario on a local three-broker cluster.
# Extra arguments go to the test binaries, e.g. `scripts/test.sh --nocapture`.
# CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
command -v cc >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q build-essential; }
# libssl-dev + pkg-config: librdkafka is built with TLS and SASL against the system OpenSSL.
scripts/ensure-build-deps.sh
# The hygiene gates first (fmt, clippy -D warnings, cargo-deny, cargo-machete): cheap next to
# the suite, and a failure here needs no broker to show.
scripts/check-hygiene.sh

scripts/local-services.sh up
eval "$(scripts/local-services.sh env)"
export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL

# schemathesis (PyPI, pinned) for the API contract test, in a git-ignored virtualenv.
if [ ! -x .local/venv/bin/pip ]; then
  python3 -m venv --clear .local/venv 2>/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv && python3 -m venv --clear .local/venv; }
fi
.local/venv/bin/pip install -q --disable-pip-version-check -r scripts/schemathesis-requirements.txt
export SCHEMATHESIS_BIN="$PWD/.local/venv/bin/st"

cargo build --locked --workspace --bins
cargo test --locked --workspace --no-fail-fast -- "$@"
# The secured run: a broker with only a SASL_SSL listener (SCRAM-SHA-512, PLAIN) and a MariaDB
# requiring TLS, started beside the shared ones (which keep running) with certificates made
# here; a sign-up end to end over them, and a wrong password or an untrusted CA refused at
# start-up. Their env replaces the plaintext one for these tests only.
scripts/local-services.sh up --secure >/dev/null
(
  eval "$(scripts/local-services.sh env --secure)"
  cargo test --locked -p integration-tests --test secure_connections -- --ignored "$@"
)
# Last, because it restarts the shared broker.
target/debug/chaos --short
# One short scenario on a replicated cluster: the local three-broker cluster (started beside the
# single broker, from the same jars) and a kill -9 of the leader of loaded partitions, then of the
# active controller, under load. The whole replicated suite: scripts/chaos.sh --replicated.
(
  export LOCAL_KAFKA_BROKERS=3
  scripts/local-services.sh up >/dev/null
  eval "$(scripts/local-services.sh env)"
  export KAFKA_BOOTSTRAP_SERVERS
  target/debug/chaos --replicated --short --only replicated-leader-kill
)
