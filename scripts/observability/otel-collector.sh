#!/usr/bin/env bash
# otel-collector.sh - build (once, cached) a minimal OpenTelemetry Collector: the OTLP receiver
# and the file exporter, nothing else, with the collector's own builder (ocb) from the Go module
# proxy. The core distribution's `cmd/otelcorecol` is not published as a module (the proxy
# answers 404 for it) and has no file exporter, so we build the two components we need.
# Prints the binary's path. Everything lives under the git-ignored .local/otelcol/.
#
# Usage: scripts/observability/otel-collector.sh build   (prints the binary's path)
#        scripts/observability/otel-collector.sh path    (prints it if built, else exits 1)
# Needs Go (GO=/path/to/go, else `go` on PATH, else /usr/local/go/bin/go); exits 3 without it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly ROOT
# One release for every module: 0.161.0 is the newest whose contrib file exporter the Go module
# proxy serves whole (newer ones were refused).
readonly OTELCOL_VERSION=${OTELCOL_VERSION:-0.161.0}
readonly HOME_DIR="$ROOT/.local/otelcol"
readonly BIN="$HOME_DIR/dist-$OTELCOL_VERSION/otelcol-local"

log() { printf '[otel-collector] %s\n' "$*" >&2; }

find_go() {
  if [[ -n ${GO:-} ]]; then echo "$GO"; return; fi
  if command -v go >/dev/null 2>&1; then command -v go; return; fi
  if [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go; return; fi
  return 1
}

build() {
  if [[ -x $BIN ]]; then echo "$BIN"; return; fi
  local go
  go=$(find_go) || { log "Go not found (set GO=...)"; exit 3; }
  mkdir -p "$HOME_DIR"
  export GOPATH="$HOME_DIR/gopath" GOCACHE="$HOME_DIR/gocache" GOFLAGS=-modcacherw
  export PATH="$(dirname "$go"):$PATH"
  local t0=$SECONDS
  log "installing the collector builder v$OTELCOL_VERSION"
  "$go" install "go.opentelemetry.io/collector/cmd/builder@v$OTELCOL_VERSION" >&2
  cat >"$HOME_DIR/manifest.yaml" <<YAML
dist:
  name: otelcol-local
  description: OTLP receiver + file exporter, for the project's tests
  output_path: $HOME_DIR/dist-$OTELCOL_VERSION
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v$OTELCOL_VERSION
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/debugexporter v$OTELCOL_VERSION
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter v$OTELCOL_VERSION
YAML
  log "building the collector (first time only; cached under .local/otelcol)"
  "$GOPATH/bin/builder" --config "$HOME_DIR/manifest.yaml" >&2
  log "built in $((SECONDS - t0)) s"
  echo "$BIN"
}

case ${1:-} in
  build) build ;;
  path) [[ -x $BIN ]] && echo "$BIN" ;;
  *) sed -n '/^# Usage:/,/^# Needs/p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2; exit 2 ;;
esac
