#!/usr/bin/env bash
# check-hygiene.sh - the hygiene gates, each of which fails the run:
#   1. formatting       cargo fmt --all -- --check              (rustfmt.toml)
#   2. lints            cargo clippy --workspace --all-targets --locked -- -D warnings
#                       ([workspace.lints] in Cargo.toml), and the library alone with each
#                       feature set a consumer may pick (none, mysql, http), which no
#                       workspace build exercises
#   3. dependencies     cargo deny check                        (deny.toml: advisories, licenses,
#                                                                bans, sources)
#   4. unused deps      cargo machete
# Missing tools are installed at pinned versions (cargo install --locked), so a fork gets the
# same verdicts; bump a pin deliberately, not by accident.
#
# The advisory check needs the RustSec database. It is fetched from its git repository where
# that is reachable; otherwise it runs offline against the dated snapshot in
# $RUSTSEC_ADVISORY_SNAPSHOT (default ../shared/data/rustsec-advisory-db, a read-only sibling of
# the clone in CI), and the summary names the snapshot's newest advisory date, so an old snapshot
# shows. A known-vulnerable dependency fails either way (deny.toml's ignores, each with its
# reason, excepted). Only with neither does the script say that advisories were NOT checked;
# with HYGIENE_REQUIRE_ADVISORIES=1 (set by the forge workflow) that is an error instead.
#
# scripts/test.sh (and so CI) runs this first; alone: scripts/check-hygiene.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
CARGO_MACHETE_VERSION=0.9.2

log() { echo "[hygiene] $*" >&2; }
elapsed() { echo "$((SECONDS - $1))s"; }

# `cargo install` only when the installed version is not the pinned one.
ensure_tool() {
  local crate=$1 version=$2 installed
  installed=$("$crate" --version 2>/dev/null | awk '{print $NF}') || true
  if [ "$installed" != "$version" ]; then
    log "installing $crate $version (found: ${installed:-none}); this compiles it once (~1-3 min)"
    local start=$SECONDS
    cargo install --locked --quiet --version "$version" "$crate"
    log "installed $crate $version in $(elapsed $start)"
  fi
}

ensure_component() {
  local component=$1 probe=$2
  if ! cargo "$probe" --version >/dev/null 2>&1; then
    log "adding the rustup component $component"
    rustup component add "$component"
  fi
}

# cargo-deny 0.20 opens an advisory database only as a git checkout named after its URL's hash
# (advisory-db-3157b0e258782691 for the default https://github.com/rustsec/advisory-db) under the
# config's db-path. So: copy the snapshot into a temporary db-path as a one-commit git repository,
# point a copy of deny.toml at it, and check with --offline so that nothing is fetched.
check_advisories_offline() {
  local snapshot=$1 dir
  dir=$(mktemp -d)
  # shellcheck disable=SC2064 # expand $dir now: it is local
  trap "rm -rf '$dir'" EXIT
  cp -r "$snapshot" "$dir/advisory-db-3157b0e258782691"
  chmod -R u+w "$dir"
  git -C "$dir/advisory-db-3157b0e258782691" init -q
  git -C "$dir/advisory-db-3157b0e258782691" add -A
  git -C "$dir/advisory-db-3157b0e258782691" -c user.name=snapshot -c user.email=snapshot@localhost \
    commit -q -m "RustSec snapshot"
  awk -v path="$dir" '{ print } /^\[advisories\]/ { print "db-path = \"" path "\"" }' deny.toml >"$dir/deny.toml"
  cargo deny --offline --locked --config "$dir/deny.toml" check --hide-inclusion-graph advisories
}

all_start=$SECONDS
ensure_component rustfmt fmt
ensure_component clippy clippy
ensure_tool cargo-deny "$CARGO_DENY_VERSION"
ensure_tool cargo-machete "$CARGO_MACHETE_VERSION"

summary=()

start=$SECONDS
log "1/4 cargo fmt --check"
if ! cargo fmt --all -- --check; then
  log "formatting differs from rustfmt: run \`cargo fmt --all\` and commit the result"
  exit 1
fi
summary+=("fmt: ok ($(elapsed $start))")

start=$SECONDS
log "2/4 cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings
for features in "" mysql http; do
  cargo clippy -p reliable-messaging --lib --locked --quiet --no-default-features --features "$features" -- -D warnings
done
summary+=("clippy: ok, library also without default features ($(elapsed $start))")

start=$SECONDS
log "3/4 cargo deny"
deny=(cargo deny --locked check --hide-inclusion-graph)
snapshot=${RUSTSEC_ADVISORY_SNAPSHOT:-../shared/data/rustsec-advisory-db}
if cargo deny fetch db >/dev/null 2>&1; then
  "${deny[@]}" advisories licenses bans sources
  summary+=("deny: advisories (live RustSec database), licenses, bans, sources ok ($(elapsed $start))")
elif [ -d "$snapshot/crates" ]; then
  # The snapshot's own date: its newest advisory (the folder has no git history).
  snapshot_date=$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$snapshot/crates" | cut -d'"' -f2 | sort | tail -1)
  log "the RustSec database is unreachable: checking advisories offline against the snapshot in $snapshot (newest advisory $snapshot_date)"
  check_advisories_offline "$snapshot"
  "${deny[@]}" licenses bans sources
  summary+=("deny: advisories (RustSec snapshot, newest advisory $snapshot_date), licenses, bans, sources ok ($(elapsed $start))")
else
  if [ "${HYGIENE_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    log "the RustSec advisory database could not be fetched, no snapshot in $snapshot, and HYGIENE_REQUIRE_ADVISORIES=1"
    exit 1
  fi
  log "WARNING: the RustSec advisory database could not be fetched and there is no snapshot in $snapshot: advisories NOT checked;"
  log "WARNING: checking licenses, bans and sources only (HYGIENE_REQUIRE_ADVISORIES=1 makes this fatal)"
  "${deny[@]}" licenses bans sources
  summary+=("deny: licenses, bans, sources ok ($(elapsed $start)); ADVISORIES NOT CHECKED (database unreachable, no snapshot)")
fi

start=$SECONDS
log "4/4 cargo machete"
cargo machete --skip-target-dir
summary+=("machete: ok ($(elapsed $start))")

log "all gates passed in $(elapsed $all_start):"
for line in "${summary[@]}"; do log "  $line"; done
