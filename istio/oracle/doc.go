// Package oracle runs Istio 1.30's own translation of the project's manifests,
// so the local mesh's translation can be compared with what istiod would
// push. The test in translation_test.go builds the ingress gateway's routes
// and clusters and a sidecar's routes, for the default app and for each
// scenario, with Istio's config generator (pilot/pkg/networking/core,
// through the ConfigGenTest environment Istio's own tests use) and keeps
// them as golden files in testdata/; `make oracle` regenerates them. See
// README.md for the pins.
package oracle
