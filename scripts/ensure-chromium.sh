#!/usr/bin/env bash
# ensure-chromium.sh - installs (Debian, apt) the headless browser the console's browser test
# drives: `chromium` and `chromium-driver` (the WebDriver server, `chromedriver`). A no-op when
# both are present; scripts/test.sh calls it before the console test.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
((${#missing[@]} == 0)) && exit 0

echo "[ensure-chromium] installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -q >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
