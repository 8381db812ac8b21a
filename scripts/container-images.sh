#!/usr/bin/env bash
# container-images.sh - the container images of the testcontainers path and compose.yaml, made
# from nothing but this machine's package registries (no image registry needed):
#
#   localhost/signup/debian:bookworm   debootstrap --variant=minbase bookworm, imported
#   docker.io/apache/kafka:4.1.1       Debian's JRE 17 + the jars of scripts/kafka/pom.xml
#   docker.io/library/mariadb:10.11    Debian's mariadb-server (10.11)
#   signup/{gateway,registration-service,dlq-worker}:latest   the project's Dockerfile
#
# Kafka and MariaDB carry the official images' names because the tests and compose.yaml ask for
# those (testcontainers pulls only when an image is missing), and speak the subset of their
# interface that we use (scripts/containers/*). Each carries the label signup.built-locally, so
# `podman image inspect` tells them from the real ones.
#
# Usage: scripts/container-images.sh [--binaries DIR]
#   Builds what is missing or whose inputs changed (idempotent; a second run takes seconds).
#   --binaries DIR  the services' image takes gateway, registration-service and dlq-worker
#                   from DIR (e.g. target/debug, built on this host) instead of compiling the
#                   workspace again inside the build (the Dockerfile's default).
# Engine: podman with this checkout's store (scripts/container-engine.sh), else `docker`
# (CONTAINER_CLI=docker forces it). DEBIAN_MIRROR overrides the mirror read from apt's sources.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly CACHE="$ROOT/.local/container-images"
readonly CONTEXTS="$ROOT/scripts/containers"
readonly BASE_IMAGE=localhost/signup/debian:bookworm
readonly KAFKA_IMAGE=docker.io/apache/kafka:4.1.1
readonly MARIADB_IMAGE=docker.io/library/mariadb:10.11
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf '[container-images] %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

BINARIES=""
while (($#)); do
  case $1 in
    --binaries)
      BINARIES=$(cd "${2:?--binaries DIR}" && pwd)
      shift 2
      ;;
    *) die "unknown argument $1 (see the head of $0)" ;;
  esac
done

CLI=${CONTAINER_CLI:-}
if [[ -z $CLI ]]; then
  if have podman; then CLI=podman; else CLI=docker; fi
fi
if [[ $CLI == podman ]]; then
  eval "$("$ROOT/scripts/container-engine.sh" env)"
  export CONTAINERS_CONF CONTAINERS_STORAGE_CONF
  [[ -f $CONTAINERS_CONF ]] || "$ROOT/scripts/container-engine.sh" up >/dev/null
fi
# Host networking for the builds too (apt-get inside them): no bridge is created. Chroot
# isolation: podman's RUN steps under crun fail on this sandbox's hybrid cgroups.
build_opts=(--network host)
[[ $CLI == podman ]] && build_opts+=(--isolation chroot)
build() { "$CLI" build "${build_opts[@]}" "$@"; }

# digest FILE...: what an image was built from, stored in its label signup.inputs.
digest() { cat "$@" | cksum | cut -d' ' -f1; }
label_of() { "$CLI" image inspect --format "{{index .Config.Labels \"signup.inputs\"}}" "$1" 2>/dev/null || true; }

debian_mirror() {
  if [[ -n ${DEBIAN_MIRROR:-} ]]; then
    echo "$DEBIAN_MIRROR"
    return
  fi
  # The machine's own Debian mirror, from deb822 sources or the one-line format.
  local uri
  uri=$(awk '/^URIs:/ && !/security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $uri ]] || die "no Debian mirror in /etc/apt/sources.list*: set DEBIAN_MIRROR"
  echo "$uri"
}

ensure_base() {
  "$CLI" image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return 0
  local tarball="$CACHE/debian-bookworm-minbase.tar"
  if [[ ! -s $tarball ]]; then
    have debootstrap || {
      [[ $(id -u) == 0 ]] || die "debootstrap is missing: apt-get install debootstrap"
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q install -y debootstrap >&2
    }
    local rootfs="$CACHE/rootfs.tmp"
    rm -rf "$rootfs"
    mkdir -p "$CACHE"
    log "debootstrap --variant=minbase bookworm from $(debian_mirror)"
    debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >"$CACHE/debootstrap.log" 2>&1 ||
      die "debootstrap failed (see $CACHE/debootstrap.log)"
    # No daemons started by package scripts at build time, no recommends, no apt caches.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/90signup-no-recommends"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  log "importing $BASE_IMAGE"
  "$CLI" import --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null 2>&1
}

ensure_kafka() {
  local libs want
  # The jars local-services.sh fetches from Maven Central, hard-linked into the build context.
  libs=$("$ROOT/scripts/local-services.sh" kafka-libs)
  want=$(digest "$CONTEXTS"/kafka* "$CONTEXTS/log4j2.yaml" "$ROOT/scripts/kafka/pom.xml")
  [[ $(label_of "$KAFKA_IMAGE") == "$want" ]] && return 0
  local ctx="$CACHE/kafka-context"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  cp "$CONTEXTS"/kafka* "$CONTEXTS/log4j2.yaml" "$ctx/"
  cp -al "$libs" "$ctx/libs" 2>/dev/null || cp -a "$libs" "$ctx/libs"
  log "building $KAFKA_IMAGE"
  build -f "$ctx/kafka.Containerfile" --build-arg "BASE=$BASE_IMAGE" \
    --label signup.built-locally=scripts/container-images.sh --label "signup.inputs=$want" \
    -t "$KAFKA_IMAGE" "$ctx" >"$CACHE/kafka-build.log" 2>&1 || die "building Kafka failed (see $CACHE/kafka-build.log)"
}

ensure_mariadb() {
  local want
  want=$(digest "$CONTEXTS"/mariadb*)
  [[ $(label_of "$MARIADB_IMAGE") == "$want" ]] && return 0
  log "building $MARIADB_IMAGE"
  build -f "$CONTEXTS/mariadb.Containerfile" --build-arg "BASE=$BASE_IMAGE" \
    --label signup.built-locally=scripts/container-images.sh --label "signup.inputs=$want" \
    -t "$MARIADB_IMAGE" "$CONTEXTS" >"$CACHE/mariadb-build.log" 2>&1 || die "building MariaDB failed (see $CACHE/mariadb-build.log)"
}

ensure_services() {
  local -a args=(--build-arg "RUNTIME_BASE=$BASE_IMAGE" --build-arg "GIT_COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || true)")
  local want
  if [[ -n $BINARIES ]]; then
    # The Dockerfile's `prebuilt` stage copies them from here (.dockerignore lets it through).
    rm -rf "$ROOT/.local/container-bin"
    mkdir -p "$ROOT/.local/container-bin"
    # Hard links where the file system allows: three debug binaries are a quarter of a GB.
    local bin
    for bin in gateway registration-service dlq-worker; do
      ln -f "$BINARIES/$bin" "$ROOT/.local/container-bin/" 2>/dev/null || cp "$BINARIES/$bin" "$ROOT/.local/container-bin/"
    done
    args+=(--build-arg BINARIES=prebuilt)
    want=$(digest "$ROOT/Dockerfile" "$ROOT"/.local/container-bin/*)
  else
    want=$(git -C "$ROOT" rev-parse HEAD)-$(git -C "$ROOT" status --porcelain | cksum | cut -d' ' -f1)
  fi
  local target
  for target in gateway registration-service dlq-worker; do
    [[ $(label_of "signup/$target:latest") == "$want" ]] && continue
    log "building signup/$target:latest${BINARIES:+ from $BINARIES}"
    build -f "$ROOT/Dockerfile" --target "$target" "${args[@]}" --label "signup.inputs=$want" \
      -t "signup/$target:latest" "$ROOT" >"$CACHE/$target-build.log" 2>&1 ||
      die "building signup/$target failed (see $CACHE/$target-build.log)"
  done
}

mkdir -p "$CACHE"
t0=$(date +%s)
ensure_base
ensure_kafka
ensure_mariadb
ensure_services
log "images ready after $(($(date +%s) - t0))s"
