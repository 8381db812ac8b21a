#!/usr/bin/env bash
# The chaos and bad-input suite: crashes, outages, a broker restart and poison input against
# the real services, each checked by the ledger. Prints a table; exits non-zero on any
# violation. Restarts the shared local broker, so run it alone.
#
#   scripts/chaos.sh                 # long run: 25 kills per kill scenario (about 30 minutes)
#   scripts/chaos.sh --short         # what CI runs (a few minutes)
#   scripts/chaos.sh --kills 100 --scenario registration-kills
#   scripts/chaos.sh --replicated    # the replicated-cluster scenarios on the local three-broker
#                                    # cluster (started beside the single broker; about 15 minutes)
#   scripts/chaos.sh --replicated --restart-database   # also restarts MariaDB: run it alone
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " == *" --replicated "* ]]; then
  # For this run only: the remembered choice of `up --brokers` stays as it is.
  export LOCAL_KAFKA_BROKERS=3
fi
scripts/local-services.sh up
eval "$(scripts/local-services.sh env)"
export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL
scripts/ensure-build-deps.sh
# With the negative control (COMMIT_POLICY=unsafe-auto-commit), which release builds never have.
cargo build --locked --workspace --bins --features registration-service/negative-control
exec target/debug/chaos "$@"
