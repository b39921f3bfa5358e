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
        if grep -q -E 'module lookup disabled by GOPROXY=off|disabled by GOPROXY=off' "${log}"; then
            fail "the pinned Go modules are not all in the module cache ($(go env GOMODCACHE 2>/dev/null)) and GOPROXY=off forbids downloading them: set GOPROXY=https://proxy.golang.org (or a reachable mirror); full log: ${log}"
        fi
        # Go names the module it could not fetch and why: no network, a
        # proxy that refuses (an HTTP status), or no proxy at all.
        network="$(grep -m 1 -E 'dial tcp|no such host|connection refused|i/o timeout|TLS handshake|proxyconnect|reading https?://[^ ]+: [0-9]{3}|: (400|403|404|410|5[0-9][0-9]) ' "${log}" || true)"
        if [[ -n "${network}" ]]; then
            fail "cannot download the pinned Go modules from ${proxy} (is the Go module proxy reachable? set GOPROXY to a reachable mirror): $(sed 's/^[[:space:]]*//' <<<"${network}" | cut -c1-300); full log: ${log}"
        fi
        # A failed Go test says why on its `file_test.go:NN:` line; otherwise
        # the first line that is not Go's progress (downloads, the package
        # header `# <package>`, FAIL summaries).
        local reason
        reason="$(grep -m 1 -E '_test\.go:[0-9]+: ' "${log}" \
            || grep -v -E '^(go: downloading|#|FAIL|ok )|^[[:space:]]*$' "${log}" | head -n 1 || true)"
        fail "go $* failed: $(sed 's/^[[:space:]]*//' <<<"${reason}" | cut -c1-300); full log: ${log}"
    fi
}
