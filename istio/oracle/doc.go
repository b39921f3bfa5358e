// Package oracle runs Istio 1.30's own translation of the project's manifests,
// so the local mesh's translation can be compared with what istiod would
// push. The test in translation_test.go feeds the default app, each scenario
// and each WasmPlugin to Istio's config generator (pilot/pkg/networking/core,
// through the ConfigGenTest environment Istio's own tests use) and keeps what
// the ingress gateway and the sidecars get as golden files in testdata/;
// `make oracle` regenerates them. See README.md for the pins and the inputs.
package oracle
