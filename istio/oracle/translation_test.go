package oracle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	kubeconvert "istio.io/istio/pilot/pkg/serviceregistry/kube"
)

// The manifests a cluster holds for the default app (make deploy-app-default
// and deploy-istio-default), relative to istio/.
var appFolders = []string{"workloads", "app"}

// Where the golden file lives, and the environment variable that rewrites
// it (make oracle) instead of comparing.
const (
	// The cluster's DNS domain (Istio's default, and a default cluster's).
	domainSuffix = "cluster.local"
	goldenFile   = "testdata/ingress-gateway-routes.json"
	updateGolden = "ORACLE_UPDATE"
)

// golden is what the golden file holds: the sha256 of every input manifest
// (so istio/check's oracle_goldens test sees a stale golden without Go), and
// the route configurations istiod would push to the ingress gateway.
type golden struct {
	Inputs map[string]string `json:"inputs"`
	Routes []json.RawMessage `json:"routes"`
}

func TestIngressGatewayRoutes(t *testing.T) {
	inputs := map[string]string{}
	var istioDocs []string
	var services []*model.Service
	for _, folder := range appFolders {
		files, err := filepath.Glob(filepath.Join("..", folder, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		for _, file := range files {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(text)
			inputs[filepath.ToSlash(strings.TrimPrefix(file, "../"))] = hex.EncodeToString(sum[:])
			docs, svcs := splitManifests(t, file, text)
			istioDocs = append(istioDocs, docs...)
			services = append(services, svcs...)
		}
	}

	configs, _, err := crd.ParseInputs(strings.Join(istioDocs, "\n---\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range configs {
		// What istiod's Kubernetes config client sets on every object
		// (pilot/pkg/config/kube/crdclient/client.go): short host names in
		// routes then resolve to <name>.<namespace>.svc.cluster.local.
		configs[i].Domain = domainSuffix
	}
	cg := core.NewConfigGenTest(t, core.TestOptions{
		Configs:  configs,
		Services: services,
	})
	// The ingress gateway of Istio's default install: pods labelled
	// istio=ingressgateway in istio-system, which airport-gateway selects.
	labels := map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}
	proxy := cg.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ConfigNamespace: "istio-system",
		Labels:          labels,
		Metadata: &model.NodeMetadata{
			Namespace:    "istio-system",
			Labels:       labels,
			IstioVersion: "1.30.0",
		},
	})
	routes := cg.Routes(proxy)
	if len(routes) == 0 {
		t.Fatal("Istio generated no route configuration for the ingress gateway")
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].GetName() < routes[j].GetName() })

	out := golden{Inputs: inputs}
	for _, rc := range routes {
		out.Routes = append(out.Routes, stableJSON(t, rc))
	}
	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')

	if os.Getenv(updateGolden) != "" {
		if err := os.WriteFile(goldenFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v: run `make oracle`", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale (the manifests, or Istio's routes for them, changed): run `make oracle` and review the diff", goldenFile)
	}
}

// splitManifests returns the Istio documents of a YAML stream as text and
// its Services converted the way istiod's Kubernetes registry converts them.
func splitManifests(t *testing.T, file string, text []byte) ([]string, []*model.Service) {
	var docs []string
	var services []*model.Service
	decoder := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(text), 4096)
	for {
		var object map[string]any
		if err := decoder.Decode(&object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", file, err)
		}
		if object == nil {
			continue
		}
		apiVersion, _ := object["apiVersion"].(string)
		kind, _ := object["kind"].(string)
		raw, err := yaml.Marshal(object)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(apiVersion, ".istio.io/"):
			docs = append(docs, string(raw))
		case apiVersion == "v1" && kind == "Service":
			var svc corev1.Service
			if err := yaml.UnmarshalStrict(raw, &svc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			services = append(services, kubeconvert.ConvertService(svc, nil, domainSuffix, "Kubernetes", domainSuffix))
		}
	}
	return docs, services
}

// stableJSON is protojson's output with fixed formatting (protojson varies
// its whitespace on purpose), so the golden file diffs cleanly.
func stableJSON(t *testing.T, rc *route.RouteConfiguration) json.RawMessage {
	raw, err := protojson.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	return compact.Bytes()
}
