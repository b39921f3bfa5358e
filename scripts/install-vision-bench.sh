#!/usr/bin/env bash
# Installs the Python side of the vision benchmark (services/vision-bench/
# reference.py: the airport vision pipeline on onnxruntime) into <repo>/.venv:
# the versions pinned in services/vision-bench/requirements.txt, from PyPI.
#
# Only `make bench-vision` needs this; `make test` never does.
# Idempotent: pip (and its network round trip) runs only when a pinned
# package is missing or at another version.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${repo_root}/.venv"
requirements="${repo_root}/services/vision-bench/requirements.txt"

fail() {
    echo "error: cannot install the vision benchmark's Python packages into ${venv}: $*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 || fail "python3 is not installed"
[[ -f "${requirements}" ]] || fail "${requirements} is missing"
if [[ ! -x "${venv}/bin/python" ]]; then
    if ! venv_error="$(python3 -m venv "${venv}" 2>&1)"; then
        fail "python3 -m venv failed (on Debian: apt-get install python3-venv): $(tail -n 1 <<<"${venv_error}")"
    fi
fi
python="${venv}/bin/python"

# Every `name==version` line of the requirements, installed at that version?
pinned_ok() {
    "${python}" - "${requirements}" <<'PY'
import sys
from importlib import metadata
ok = True
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, version = line.partition("==")
    try:
        ok &= metadata.version(name) == version
    except metadata.PackageNotFoundError:
        ok = False
sys.exit(0 if ok else 1)
PY
}

if pinned_ok; then
    echo "vision benchmark packages ready in ${venv}"
    exit 0
fi

echo "installing the vision benchmark's Python packages (onnxruntime, OpenCV, NumPy, onnx) from PyPI"
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
if ! "${python}" -m pip install --disable-pip-version-check --quiet --only-binary=:all: \
    -r "${requirements}" >"${log}" 2>&1; then
    reason="$(grep -E 'ERROR|error' "${log}" | tail -n 1)"
    fail "pip install -r ${requirements} failed: ${reason:-see the output of pip}"
fi
pinned_ok || fail "pip finished but the pinned versions are not all installed"
echo "vision benchmark packages ready in ${venv}"
