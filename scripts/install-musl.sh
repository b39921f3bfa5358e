#!/usr/bin/env bash
# Installs what the static (musl) builds of the services need for their OCI
# images (`make images`): the Rust target x86_64-unknown-linux-musl, with
# rustup, and musl-gcc, from Debian's musl-tools, which compiles the C code
# the services carry (rusqlite's bundled SQLite). Does nothing when both are
# there.
set -euo pipefail

target=x86_64-unknown-linux-musl

fail() {
    echo "error: cannot set up the musl build of the service images: $*" >&2
    exit 1
}

if ! rustup target list --installed 2>/dev/null | grep -qx "${target}"; then
    command -v rustup >/dev/null 2>&1 || fail "rustup is not installed, so the Rust target ${target} cannot be added"
    echo "adding the Rust target ${target} with rustup"
    rustup target add "${target}" || fail "rustup target add ${target} failed"
fi

works() {
    command -v musl-gcc >/dev/null 2>&1 && musl-gcc --version >/dev/null 2>&1
}

if works; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
    fail "musl-gcc is missing and apt-get is not available (not a Debian-based system): install your distribution's musl-gcc (package musl-tools on Debian and Ubuntu)"

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fail "musl-gcc is missing, and installing it needs root (not root, and sudo is not installed)"
    sudo=(sudo --non-interactive)
fi

log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
echo "installing musl-tools (musl-gcc) with apt-get"
if ! { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends musl-tools; } >"${log}" 2>&1; then
    reason="$(grep -E '^(E|W):|rror' "${log}" | tail -n 1)"
    fail "${reason:-apt-get install musl-tools failed}"
fi
works || fail "apt-get reported success but musl-gcc --version does not run"
echo "musl-gcc ready: $(musl-gcc --version | head -n 1)"
