#!/usr/bin/env bash
# prometheus-tools.sh - Prometheus, promtool and Alertmanager from Debian's packages
# (`prometheus`, `prometheus-alertmanager`), installed when missing, and the rule checks.
#
# Usage: scripts/observability/prometheus-tools.sh ensure       install what is missing
#        scripts/observability/prometheus-tools.sh check-rules  promtool check + unit tests
#
# The packages ship system services; none is started by the install (a policy-rc.d that
# refuses starts is put in place for the install when the machine has none), so nothing of
# theirs listens on 9090/9093 (9093 is the local Kafka's controller port).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly ROOT
readonly RULES_DIR="$ROOT/observability/prometheus"

log() { printf '[prometheus-tools] %s\n' "$*" >&2; }

as_root() {
  if (($(id -u) == 0)); then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"
    exit 3
  fi
}

ensure() {
  local missing=()
  command -v promtool >/dev/null && command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d added=""
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy"
    added=1
  fi
  local rc=0
  {
    as_root apt-get -o DPkg::Lock::Timeout=600 -q update >&2 &&
      as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q install -y \
        --no-install-recommends "${missing[@]}" >&2
  } || rc=$?
  [[ -z $added ]] || as_root rm -f "$policy"
  ((rc == 0)) || { log "installing ${missing[*]} failed"; exit 3; }
}

check_rules() {
  ensure
  promtool check rules "$RULES_DIR"/rules/*.yml
  promtool test rules "$RULES_DIR"/tests/*.yml
}

case ${1:-} in
  ensure) ensure ;;
  check-rules) check_rules ;;
  *) sed -n '/^# Usage:/,/^#$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
