#!/usr/bin/env bash
# Debian's Chromium, for the browser tests (tests/browser) and the Atlas benchmark: Playwright
# cannot download a browser of its own here, so it drives this one.
#
#   chromium.sh install     apt-get install chromium when it is missing
set -euo pipefail

log() { printf 'chromium.sh: %s\n' "$*" >&2; }

as_root() {
    if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi
}

cmd_install() {
    if command -v chromium >/dev/null; then
        return 0
    fi
    log "installing Debian's chromium"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300
        install -y -q --no-install-recommends chromium)
    # The package lists may be missing or stale on a fresh machine: update only then.
    if ! as_root "${apt[@]}" >&2; then
        as_root apt-get -o DPkg::Lock::Timeout=300 update -q >&2
        as_root "${apt[@]}" >&2
    fi
    command -v chromium >/dev/null || { log "chromium still missing after apt-get"; exit 1; }
}

case "${1:-}" in
    install) cmd_install ;;
    *) echo "usage: chromium.sh install" >&2; exit 2 ;;
esac
