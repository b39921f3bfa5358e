#!/usr/bin/env bash
# Installs wrk, the HTTP load generator of the Envoy benchmark (`make bench`),
# from Debian's packages. Does nothing when wrk is already on the PATH.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    exit 0
fi

fail() {
    echo "cannot install wrk (the load generator of make bench): $*; install it by hand (apt-get install wrk) and rerun" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available (not a Debian-based system)"

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and sudo is not installed"
    sudo=(sudo --non-interactive)
fi

log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
echo "installing wrk with apt-get"
if ! { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk; } >"${log}" 2>&1; then
    reason="$(grep -E '^(E|W):|rror' "${log}" | tail -n 1)"
    fail "${reason:-apt-get install wrk failed}"
fi
command -v wrk >/dev/null 2>&1 || fail "apt-get reported success but wrk is not on the PATH"
echo "wrk ready at $(command -v wrk)"
