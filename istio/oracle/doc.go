// Package oracle runs Istio 1.30's own translation of the project's manifests,
// so the local mesh's translation can be compared with what istiod would
// push. The test in gateway_routes_test.go builds the ingress gateway's
// routes with Istio's config generator (pilot/pkg/networking/core, through
// the ConfigGenTest environment Istio's own tests use) and keeps them as a
// golden file; `make oracle` regenerates it. See README.md for the pins.
package oracle
