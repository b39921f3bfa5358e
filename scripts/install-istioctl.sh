#!/usr/bin/env bash
# Builds Istio's own istioctl (for `istioctl analyze` in `make test`) from the
# Go module istio.io/istio, pinned by istio/oracle/go.mod and go.sum (the
# module proxy's checksums of every module), into `<repo>/.tools/bin/`
# (never committed), or `$TOOLS_BIN` when set.
#
# Why through istio/oracle's module rather than `go install istio.io/istio/...@<version>`:
# the module proxy serves istio.io/istio on the 1.30 line only as the
# pseudo-version pinned there, and four of the modules that commit's go.mod
# asks for (istio.io/api, istio.io/client-go and go-control-plane's envoy and
# contrib, all pre-release pseudo-versions) are not on the proxy. The oracle's
# go.mod raises those four to the nearest versions the proxy does serve
# (istio.io/api and client-go v1.30.8, the 1.30 line's tags), which
# `go install pkg@version` cannot do. Both are written down in
# istio/oracle/README.md.
#
# Go's build and module caches stay where Go puts them (GOCACHE, GOMODCACHE:
# outside the clone), so a CI cache of those is reused as is. Idempotent and
# fast when done: `.tools/bin/istioctl.stamp` records the sha256 of go.mod, go.sum
# and the build flags; when it matches and the binary is there, nothing runs.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module_dir="${repo_root}/istio/oracle"
tools_bin="${TOOLS_BIN:-${repo_root}/.tools/bin}"
binary="${tools_bin}/istioctl"
stamp="${binary}.stamp"
log="${binary}.build.log"
package="istio.io/istio/istioctl/cmd/istioctl"

fail() {
    echo "error: cannot build istioctl into ${tools_bin}: $*" >&2
    exit 1
}

# What `istioctl version` reports: the branch's VERSION file with Istio's own
# "-dev" suffix for builds outside a release, and the commit of the pin.
ldflags="-X istio.io/istio/pkg/version.buildVersion=1.30-dev -X istio.io/istio/pkg/version.buildGitRevision=9739e10eb9d7"

command -v sha256sum >/dev/null 2>&1 || fail "sha256sum is not installed (coreutils)"
wanted_stamp="$(cat "${module_dir}/go.mod" "${module_dir}/go.sum" <(echo "${ldflags}") | sha256sum | cut -d' ' -f1)"
if [[ -x "${binary}" && -f "${stamp}" && "$(cat "${stamp}")" == "${wanted_stamp}" ]]; then
    echo "istioctl ready in ${tools_bin}"
    exit 0
fi

# shellcheck source=go-toolchain.sh
source "${repo_root}/scripts/go-toolchain.sh"
require_go

mkdir -p "${tools_bin}" || fail "cannot create the directory"
echo "building istioctl (${package}, pinned by istio/oracle/go.mod; the first build takes about 10 minutes on 2 cores)"
GOBIN="${tools_bin}" run_go install -ldflags "${ldflags}" "${package}"
echo "${wanted_stamp}" >"${stamp}"
echo "istioctl ready in ${tools_bin}"
