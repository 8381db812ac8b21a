#!/usr/bin/env bash
# test-template.sh - what CI checks of the service template: generates a service with a
# temporary name (scripts/new-service.sh), checks its formatting and lints, builds it and runs
# its integration test against the running local services, then removes it. Cargo.toml and
# Cargo.lock are restored and the crate deleted whatever happens (trap), so a failed run leaves
# nothing behind in the tree.
# Needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (scripts/test.sh exports them).
set -euo pipefail
cd "$(dirname "$0")/.."

for variable in KAFKA_BOOTSTRAP_SERVERS DATABASE_URL; do
  if [[ -z ${!variable:-} ]]; then
    echo "$variable is not set: scripts/local-services.sh up && eval \"\$(scripts/local-services.sh env)\" && export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL" >&2
    exit 1
  fi
done

name="template-check-$$"
backup=$(mktemp -d)
cp Cargo.toml Cargo.lock "$backup/"
cleanup() {
  cp "$backup/Cargo.toml" "$backup/Cargo.lock" .
  rm -rf "$name" "$backup"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so the EXIT trap runs then too.
trap 'exit 130' INT TERM

scripts/new-service.sh "$name" >/dev/null
# Its default probe address is its own: no other crate of the workspace defaults to it.
addr=$(grep -ohE '"127\.0\.0\.1:[0-9]+"' "$name/src/main.rs")
if grep -rqF --include='*.rs' --exclude-dir=target --exclude-dir=.local --exclude-dir="$name" -- "$addr" .; then
  echo "$name got the default address $addr of another crate" >&2
  exit 1
fi
cargo fmt -p "$name" -- --check
cargo clippy -p "$name" --all-targets -- -D warnings
# The service alone has main.rs + handler.rs; the template promises they stay short.
lines=$(cat "$name/src/main.rs" "$name/src/handler.rs" | wc -l)
((lines < 120)) || { echo "main.rs + handler.rs of the template are $lines lines (limit: under 120)" >&2; exit 1; }
cargo test -p "$name" -- "$@"
echo "template OK: generated (probes on $addr), built and tested $name ($lines lines of main.rs + handler.rs), then removed"
