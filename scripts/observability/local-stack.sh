#!/usr/bin/env bash
# local-stack.sh - Prometheus and Alertmanager (Debian's packages) beside the local services,
# for a person to look at: Prometheus scrapes the three services where scripts/demo.sh starts
# them and evaluates the shipped rules (observability/prometheus/rules/, real durations);
# Alertmanager shows what fires. With a built collector (scripts/observability/otel-collector.sh
# build) the OpenTelemetry Collector is started too, receiving OTLP/HTTP and writing every span
# to a file. Called by `scripts/local-services.sh up --observability` and `down`.
#
# Usage: scripts/observability/local-stack.sh up      start what is not running (idempotent)
#        scripts/observability/local-stack.sh down    stop them by pid (SIGTERM, SIGKILL after 10 s)
#        scripts/observability/local-stack.sh status  one line each; exit 0 only if all run
#
# Ports (LOCAL_PORT_OFFSET added, as for the other local services): Prometheus 9090,
# Alertmanager 9095 (not 9093: the local Kafka's controller has it), collector OTLP/HTTP 4318.
# Scrape targets: GATEWAY_METRICS (127.0.0.1:8083, the gateway's internal listener), REGISTRATION_METRICS (127.0.0.1:8081),
# DLQ_WORKER_METRICS (127.0.0.1:8082). Everything it writes is under the git-ignored
# .local/observability/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly ROOT
readonly HOME_DIR="$ROOT/.local/observability"
readonly OFFSET="${LOCAL_PORT_OFFSET:-0}"
[[ $OFFSET =~ ^[0-9]+$ ]] || { echo "LOCAL_PORT_OFFSET must be a whole number, got '$OFFSET'" >&2; exit 2; }
readonly PROMETHEUS_PORT=$((9090 + OFFSET)) ALERTMANAGER_PORT=$((9095 + OFFSET)) OTLP_PORT=$((4318 + OFFSET))
readonly GATEWAY_METRICS=${GATEWAY_METRICS:-127.0.0.1:8083}
readonly REGISTRATION_METRICS=${REGISTRATION_METRICS:-127.0.0.1:8081}
readonly DLQ_WORKER_METRICS=${DLQ_WORKER_METRICS:-127.0.0.1:8082}

log() { printf '[observability] %s\n' "$*" >&2; }

pid_of() {
  local f="$HOME_DIR/$1.pid"
  [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

write_configs() {
  mkdir -p "$HOME_DIR/prometheus-data" "$HOME_DIR/alertmanager-data"
  cat >"$HOME_DIR/prometheus.yml" <<YAML
# Written by scripts/observability/local-stack.sh; rewritten on every up.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files: ['$ROOT/observability/prometheus/rules/*.yml']
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:$ALERTMANAGER_PORT']
scrape_configs:
  - job_name: gateway
    static_configs: [{ targets: ['$GATEWAY_METRICS'] }]
  - job_name: registration-service
    static_configs: [{ targets: ['$REGISTRATION_METRICS'] }]
  - job_name: dlq-worker
    static_configs: [{ targets: ['$DLQ_WORKER_METRICS'] }]
YAML
  # No receiver behind the route: alerts are there to be seen in Alertmanager's UI.
  cat >"$HOME_DIR/alertmanager.yml" <<YAML
route:
  receiver: ui-only
  group_by: ['alertname', 'job', 'instance']
receivers:
  - name: ui-only
YAML
  cat >"$HOME_DIR/otelcol.yaml" <<YAML
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$OTLP_PORT
exporters:
  file:
    path: $HOME_DIR/traces.jsonl
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
YAML
}

# Readiness: Prometheus and Alertmanager have /-/ready; the collector's OTLP receiver takes an
# empty export (200), which shows the receiver itself is up.
ready_url() { curl -fsS -o /dev/null "$1" 2>/dev/null; }
ready_otlp() { curl -fsS -o /dev/null -X POST -H 'content-type: application/json' -d '{}' "$1" 2>/dev/null; }

# start NAME PROBE URL PROGRAM ARGS...: a detached process, its pid file, and a wait until PROBE URL passes.
start() {
  local name=$1 probe=$2 ready=$3
  shift 3
  if pid=$(pid_of "$name"); then
    log "$name already running (pid $pid)"
    return
  fi
  setsid nohup "$@" >"$HOME_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$HOME_DIR/$name.pid"
  for _ in $(seq 1 100); do
    "$probe" "$ready" && { log "$name ready (pid $(cat "$HOME_DIR/$name.pid"), $ready)"; return; }
    kill -0 "$(cat "$HOME_DIR/$name.pid")" 2>/dev/null || break
    sleep 0.3
  done
  log "$name did not start; last lines of $HOME_DIR/$name.log:"
  tail -n 15 "$HOME_DIR/$name.log" >&2
  exit 1
}

cmd_up() {
  "$ROOT/scripts/observability/prometheus-tools.sh" ensure
  command -v curl >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl; }
  write_configs
  start alertmanager ready_url "http://127.0.0.1:$ALERTMANAGER_PORT/-/ready" prometheus-alertmanager \
    --config.file="$HOME_DIR/alertmanager.yml" --storage.path="$HOME_DIR/alertmanager-data" \
    --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address=
  start prometheus ready_url "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" prometheus \
    --config.file="$HOME_DIR/prometheus.yml" --storage.tsdb.path="$HOME_DIR/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
  local collector traces="not collected (no collector built)"
  if collector=$("$ROOT/scripts/observability/otel-collector.sh" path 2>/dev/null); then
    start otel-collector ready_otlp "http://127.0.0.1:$OTLP_PORT/v1/traces" "$collector" --config="$HOME_DIR/otelcol.yaml"
    traces="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_PORT -> $HOME_DIR/traces.jsonl"
  else
    log "no collector built (scripts/observability/otel-collector.sh build makes one, ~2 min): traces not collected"
  fi
  cat >&2 <<TEXT
[observability] Prometheus    http://127.0.0.1:$PROMETHEUS_PORT/alerts  (rules, targets: /targets)
[observability] Alertmanager  http://127.0.0.1:$ALERTMANAGER_PORT/
[observability] traces        $traces
TEXT
}

cmd_down() {
  local name pid
  for name in otel-collector prometheus alertmanager; do
    if pid=$(pid_of "$name"); then
      log "stopping $name (pid $pid)"
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$HOME_DIR/$name.pid"
  done
}

cmd_status() {
  local rc=0 name pid
  for name in prometheus alertmanager otel-collector; do
    if pid=$(pid_of "$name"); then
      echo "$name: running (pid $pid)"
    elif [[ $name == otel-collector ]] && ! "$ROOT/scripts/observability/otel-collector.sh" path >/dev/null 2>&1; then
      echo "$name: not built"
    else
      echo "$name: stopped"
      rc=1
    fi
  done
  return "$rc"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) sed -n '/^# Usage:/,/^#$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
