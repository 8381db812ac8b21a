#!/usr/bin/env bash
# ensure-build-deps.sh - installs (Debian, apt) what building the workspace needs besides Rust:
# a C toolchain (librdkafka and zstd are compiled from source by cargo), and libssl-dev plus
# pkg-config, because librdkafka links the system OpenSSL for TLS and SASL/SCRAM.
# A no-op when they are present; scripts that build call it first.
set -euo pipefail

missing=()
command -v cc >/dev/null || missing+=(build-essential)
command -v pkg-config >/dev/null || missing+=(pkg-config)
# The headers, not just the library: openssl-sys compiles against them.
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
((${#missing[@]} == 0)) && exit 0

echo "[ensure-build-deps] installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -q >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
