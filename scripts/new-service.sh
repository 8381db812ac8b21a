#!/usr/bin/env bash
# new-service.sh NAME - create a new consumer service crate NAME/ in this workspace from
# templates/consumer-service/: a handler stub that stores each message in a MySQL table of the
# service's own database, its migration, its configuration (the service kit's, so
# `NAME --help` lists every variable), and an integration test against the real broker and
# database. Adds NAME to the workspace members.
#
#   scripts/new-service.sh payments-consumer
#   scripts/local-services.sh up && eval "$(scripts/local-services.sh env)"
#   export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL
#   cargo test -p payments-consumer
#
# NAME: lower-case letters, digits and single dashes, starting with a letter, at most 40
# characters (it also names the database, `payments_consumer`, and the variables,
# `PAYMENTS_CONSUMER_TOPIC`, `PAYMENTS_CONSUMER_ADDR`).
set -euo pipefail
cd "$(dirname "$0")/.."

name=${1:-}
if [[ ! $name =~ ^[a-z][a-z0-9]*(-[a-z0-9]+)*$ ]] || ((${#name} > 40)); then
  echo "usage: $0 NAME   (lower-case letters, digits and single dashes, starting with a letter, at most 40 characters)" >&2
  exit 64
fi
template=templates/consumer-service
[[ -d $template ]] || { echo "$template is missing" >&2; exit 1; }
[[ ! -e $name ]] || { echo "$name already exists" >&2; exit 1; }
if grep -Eq "^[[:space:]]*\"$name\",?[[:space:]]*$" Cargo.toml; then
  echo "$name is already a workspace member" >&2
  exit 1
fi
snake=${name//-/_}
upper=${snake^^}

# Its own default port: the first from 8090 up that no other crate of the workspace defaults
# to, so two generated services run side by side without setting an address.
taken=$(grep -rhoE --include='*.rs' '"127\.0\.0\.1:[0-9]+"' --exclude-dir=target --exclude-dir=templates --exclude-dir=.local --exclude-dir=.git . |
  sed -E 's/.*:([0-9]+)"/\1/' | sort -un)
port=8090
while grep -qx "$port" <<<"$taken"; do port=$((port + 1)); done

cp -R "$template" "$name"
# The template is a valid crate named consumer-service-template; its three spellings are the
# placeholders.
find "$name" -type f -exec sed -i \
  -e "s/consumer-service-template/$name/g" \
  -e "s/consumer_service_template/$snake/g" \
  -e "s/CONSUMER_SERVICE_TEMPLATE/$upper/g" \
  -e "s/127\.0\.0\.1:8090/127.0.0.1:$port/g" {} +

# Into [workspace] members, before the list's closing bracket.
awk -v member="    \"$name\"," '
  /^members[[:space:]]*=[[:space:]]*\[/ { in_members = 1 }
  in_members && /^\]/ { print member; in_members = 0 }
  { print }
' Cargo.toml >Cargo.toml.new
grep -q "\"$name\"," Cargo.toml.new || { rm -f Cargo.toml.new; rm -rf "$name"; echo "could not find the workspace members in Cargo.toml" >&2; exit 1; }
mv Cargo.toml.new Cargo.toml

cat <<MSG
Created $name/ (a workspace member now, probes on 127.0.0.1:$port):
  $name/src/main.rs        configuration and wiring through reliable_messaging::service
  $name/src/handler.rs     what each message does: replace the body of handle() and its examples
  (every place to edit is marked TEMPLATE:)
  $name/migrations/        its own database ($snake), created and migrated at start
  $name/tests/             the handler against the database; the service with the handler's examples
Run its test against the local services:
  scripts/local-services.sh up && eval "\$(scripts/local-services.sh env)" && export KAFKA_BOOTSTRAP_SERVERS DATABASE_URL
  cargo test -p $name
Every setting: cargo run -p $name -- --help
MSG
