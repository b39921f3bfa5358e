# Sourced by the scripts that run Go on istio/oracle's module (install-istioctl.sh,
# oracle.sh): checks that a Go toolchain new enough for that go.mod is on PATH,
# and says in one line how to get one when not. Expects `fail` and
# `module_dir` to be defined by the caller.

# Checks `go` is installed and at least the go.mod's `go` version.
require_go() {
    local required version lowest
    required="$(awk '$1 == "go" { print $2; exit }' "${module_dir}/go.mod")"
    command -v go >/dev/null 2>&1 \
        || fail "the Go toolchain is not installed: install Go ${required} or newer (https://go.dev/doc/install) and put it on PATH"
    version="$(go env GOVERSION 2>/dev/null)" || fail "\`go env GOVERSION\` failed: is Go installed correctly?"
    version="${version#go}"
    lowest="$(printf '%s\n%s\n' "${required}" "${version%%[-+ ]*}" | sort -V | head -n 1)"
    [[ "${lowest}" == "${required}" ]] \
        || fail "Go ${version} is too old: install Go ${required} or newer (https://go.dev/doc/install)"
}

# Runs `go "$@"` in the module with the pins as committed (-mod=readonly: go.mod
# and go.sum are never updated on the fly; GOWORK=off: no go.work above the
# clone changes them; GOTOOLCHAIN=local: no toolchain download), at low
# priority, output to the file "$log". On failure, exits with one line: the
# module download that failed (proxy unreachable) or the first error.
run_go() {
    if ! (cd "${module_dir}" && GOWORK=off GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:-} -mod=readonly" \
        nice go "$@") >"${log}" 2>&1; then
        local proxy network
        proxy="$(go env GOPROXY 2>/dev/null || echo "\$GOPROXY")"
        network="$(grep -m 1 -E 'dial tcp|no such host|connection refused|i/o timeout|TLS handshake|proxyconnect|: (403|404|410) ' "${log}" || true)"
        if [[ -n "${network}" ]]; then
            fail "cannot download the pinned Go modules from ${proxy} (is the Go module proxy reachable? set GOPROXY to a reachable mirror): $(sed 's/^[[:space:]]*//' <<<"${network}" | cut -c1-300); full log: ${log}"
        fi
        # A failed Go test says why on its `file_test.go:NN:` line.
        local reason
        reason="$(grep -m 1 -E '_test\.go:[0-9]+: ' "${log}" || grep -v '^go: downloading' "${log}" | grep -m 1 -v '^[[:space:]]*$' || true)"
        fail "go $* failed: $(sed 's/^[[:space:]]*//' <<<"${reason}" | cut -c1-300); full log: ${log}"
    fi
}
