#!/usr/bin/env bash
# Istio's own translation of the manifests, as goldens: runs the Go test of
# istio/oracle (Istio 1.30's config generator, pinned by istio/oracle/go.mod)
# over istio/workloads + istio/app, each scenario and each plugin, and the
# Gateway API form of the app (istio/gateway-api) with its scenarios and
# plugins.
#
#   scripts/oracle.sh           checks the goldens in istio/oracle/testdata
#                               are what Istio generates today (make oracle-check)
#   scripts/oracle.sh --update  rewrites them (make oracle); review the diff
#
# The Go build cache is Go's own (outside the clone); after `make istioctl`
# most of Istio is already compiled there.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module_dir="${repo_root}/istio/oracle"
log="$(mktemp -t oracle.XXXXXX.log)"

fail() {
    echo "error: cannot run Istio's translation (istio/oracle): $*" >&2
    exit 1
}

# shellcheck source=go-toolchain.sh
source "${repo_root}/scripts/go-toolchain.sh"
require_go

# The Gateway API forms are read as the API server stores them, with their
# CRDs' defaults: the test reads the pinned CRDs `make crds` installs
# (idempotent, nothing downloaded when present).
"${repo_root}/scripts/install-crds.sh" >/dev/null || exit 1
export ORACLE_CRDS_DIR="${CRDS_DIR:-${repo_root}/.crds}"

case "${1:-}" in
    --update)
        ORACLE_UPDATE=1 run_go test -count=1 .
        echo "goldens rewritten in istio/oracle/testdata (review: git diff istio/oracle/testdata)"
        ;;
    "")
        run_go test -count=1 .
        echo "istio/oracle goldens are what Istio 1.30 generates"
        ;;
    *) fail "unknown argument ${1} (expected nothing or --update)" ;;
esac
rm -f "${log}"
