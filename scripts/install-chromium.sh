#!/usr/bin/env bash
# Installs Debian's Chromium, the headless browser of the dashboard test
# (services/e2e/tests/browser.rs), with apt-get. Does nothing when it is
# already there: `$CHROMIUM` if set, else /usr/bin/chromium, answering
# `--version`.
set -euo pipefail

bin="${CHROMIUM:-/usr/bin/chromium}"

works() {
    [[ -x "$1" ]] && "$1" --version >/dev/null 2>&1
}

if works "${bin}"; then
    exit 0
fi

fail() {
    echo "cannot install chromium (the headless browser of the dashboard test): $*; install it by hand (apt-get install chromium) and rerun" >&2
    exit 1
}

if [[ -n "${CHROMIUM:-}" ]]; then
    fail "CHROMIUM is set to ${CHROMIUM}, which is not a working browser (unset it to use Debian's /usr/bin/chromium)"
fi

command -v apt-get >/dev/null 2>&1 || fail "apt-get is not available (not a Debian-based system)"

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and sudo is not installed"
    sudo=(sudo --non-interactive)
fi

log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
echo "installing chromium with apt-get (Debian's package; this takes a minute)"
if ! { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        chromium fonts-liberation; } >"${log}" 2>&1; then
    reason="$(grep -E '^(E|W):|rror' "${log}" | tail -n 1)"
    fail "${reason:-apt-get install chromium failed}"
fi
works "${bin}" || fail "apt-get reported success but ${bin} --version does not run"
echo "chromium ready: $("${bin}" --version)"
