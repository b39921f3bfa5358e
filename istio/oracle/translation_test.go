package oracle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/kube/extensions"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	kubeconvert "istio.io/istio/pilot/pkg/serviceregistry/kube"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/kube/krt"
)

// The manifests a cluster holds for the default app (make deploy-app-default
// and deploy-istio-default), relative to istio/; each scenario of
// istio/scenarios is applied on top of them, as `make <scenario>` does.
var appFolders = []string{"workloads", "app"}

// The environment variable that rewrites the goldens (make oracle) instead
// of comparing.
const updateGolden = "ORACLE_UPDATE"

// The cluster's DNS domain (Istio's default, and a default cluster's).
const domainSuffix = "cluster.local"

// golden is what a golden file (testdata/<set>.json) holds: the sha256 of
// every input manifest, so a changed manifest makes it stale even when
// Istio's output stays the same; what istiod would push to the ingress
// gateway (route configurations, and the clusters of the app's services);
// and the routes of the control panel's sidecar (a client of the cameras,
// the services and the vision services).
type golden struct {
	Inputs          map[string]string `json:"inputs"`
	GatewayRoutes   []json.RawMessage `json:"gatewayRoutes"`
	GatewayHTTP     []gatewayHTTP     `json:"gatewayHTTP"`
	GatewayClusters []json.RawMessage `json:"gatewayClusters"`
	SidecarRoutes   []json.RawMessage `json:"sidecarRoutes"`
	// Per Deployment (namespace/name): its sidecar's HTTP filter chains,
	// filter names only; where Istio puts the WasmPlugins, among others.
	SidecarHTTPFilters map[string][]httpFilters `json:"sidecarHTTPFilters"`
}

// httpFilters is one HTTP filter chain of a sidecar and its HTTP filters'
// names in order.
type httpFilters struct {
	Listener    string   `json:"listener"`
	FilterChain string   `json:"filterChain"`
	HTTPFilters []string `json:"httpFilters"`
}

// gatewayHTTP is one HTTP filter chain of the ingress gateway's listeners:
// its HTTP connection manager's options (path normalization, upgrades,
// timeouts, forwarded headers...) and the names of its HTTP filters in
// order (their configs are Istio's telemetry and metadata exchange).
type gatewayHTTP struct {
	Listener    string          `json:"listener"`
	FilterChain string          `json:"filterChain"`
	HTTPFilters []string        `json:"httpFilters"`
	Options     json.RawMessage `json:"options"`
}

// TestIstioTranslation writes or compares testdata/app.json (the default
// app) and testdata/scenarios/<scenario>.json (the app with that scenario
// applied on top).
func TestIstioTranslation(t *testing.T) {
	var base []string
	for _, folder := range appFolders {
		files, err := filepath.Glob(filepath.Join("..", folder, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		base = append(base, files...)
	}
	scenarios, err := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	if err != nil || len(scenarios) == 0 {
		t.Fatalf("no scenarios under istio/scenarios: %v", err)
	}
	sort.Strings(scenarios)

	plugins, err := filepath.Glob(filepath.Join("..", "plugins", "*.yaml"))
	if err != nil || len(plugins) == 0 {
		t.Fatalf("no plugins under istio/plugins: %v", err)
	}
	sets := map[string][]string{"app": base}
	for _, plugin := range plugins {
		name := "plugins/" + strings.TrimSuffix(filepath.Base(plugin), ".yaml")
		sets[name] = append(append([]string{}, base...), plugin)
	}
	for _, scenario := range scenarios {
		name := "scenarios/" + strings.TrimSuffix(filepath.Base(scenario), ".yaml")
		sets[name] = append(append([]string{}, base...), scenario)
	}
	wanted := map[string]bool{}
	for name, files := range sets {
		golden := filepath.Join("testdata", name+".json")
		wanted[filepath.ToSlash(golden)] = true
		t.Run(name, func(t *testing.T) { checkGolden(t, golden, translate(t, files)) })
	}
	// A golden whose scenario is gone is stale too.
	existing, _ := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	for _, file := range existing {
		if !wanted[filepath.ToSlash(file)] {
			t.Errorf("%s has no scenario or plugin any more: run `make oracle` (it removes it)", file)
			if os.Getenv(updateGolden) != "" {
				_ = os.Remove(file)
			}
		}
	}
}

// translate runs Istio's config generator over the manifests, later files
// replacing earlier objects of the same kind, namespace and name, as
// `kubectl apply` leaves them, and returns the golden's JSON.
func translate(t *testing.T, files []string) []byte {
	inputs := map[string]string{}
	var istioDocs []string
	kubeServices := map[string]corev1.Service{}
	deployments := map[string]appsv1.Deployment{}
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(text)
		inputs[filepath.ToSlash(strings.TrimPrefix(file, "../"))] = hex.EncodeToString(sum[:])
		docs, svcs, deps := splitManifests(t, file, text)
		istioDocs = append(istioDocs, docs...)
		for _, svc := range svcs {
			kubeServices[svc.Namespace+"/"+svc.Name] = svc
		}
		for _, d := range deps {
			deployments[d.Namespace+"/"+d.Name] = d
		}
	}
	parsed, _, err := crd.ParseInputs(strings.Join(istioDocs, "\n---\n"))
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string]int{}
	var configs []config.Config
	for _, c := range parsed {
		// What istiod's Kubernetes config client sets on every object
		// (pilot/pkg/config/kube/crdclient/client.go): short host names in
		// routes then resolve to <name>.<namespace>.svc.cluster.local.
		c.Domain = domainSuffix
		key := c.GroupVersionKind.Kind + "/" + c.Namespace + "/" + c.Name
		if i, ok := latest[key]; ok {
			configs[i] = c
			continue
		}
		latest[key] = len(configs)
		configs = append(configs, c)
	}
	// Services through istiod's own Kubernetes conversion; one pod per
	// Deployment (its template's labels, an address of its own) as an
	// instance of every Service that selects it, so its sidecar gets its
	// inbound listeners as in a cluster.
	var serviceList []*model.Service
	var instances []*model.ServiceInstance
	for _, key := range sortedKeys(kubeServices) {
		svc := kubeServices[key]
		converted := kubeconvert.ConvertService(svc, nil, domainSuffix, "Kubernetes", domainSuffix)
		serviceList = append(serviceList, converted)
		for _, dkey := range sortedKeys(deployments) {
			d := deployments[dkey]
			podLabels := d.Spec.Template.Labels
			if d.Namespace != svc.Namespace || len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(podLabels)) {
				continue
			}
			for _, port := range svc.Spec.Ports {
				servicePort, ok := converted.Ports.Get(port.Name)
				if !ok {
					t.Fatalf("Service %s: port %q not converted", key, port.Name)
				}
				instances = append(instances, &model.ServiceInstance{
					Service:     converted,
					ServicePort: servicePort,
					Endpoint: &model.IstioEndpoint{
						Addresses:       []string{podAddress(sortedKeys(deployments), dkey)},
						EndpointPort:    targetPort(t, port, d),
						ServicePortName: port.Name,
						Labels:          podLabels,
						Namespace:       d.Namespace,
						WorkloadName:    d.Name,
						TLSMode:         "istio",
					},
				})
			}
		}
	}

	cg := core.NewConfigGenTest(t, core.TestOptions{
		Configs:   configs,
		Services:  serviceList,
		Instances: instances,
		// istiod turns WasmPlugins into TrafficExtensions with this
		// controller beside its config store (pilot/pkg/bootstrap/configcontroller.go);
		// without it, WasmPlugins reach no proxy.
		CreateConfigStore: func(store model.ConfigStoreController) model.ConfigStoreController {
			return extensions.NewController(store, nil, krt.GlobalDebugHandler)
		},
	})
	// The ingress gateway of Istio's default install: pods labelled
	// istio=ingressgateway in istio-system, which airport-gateway selects.
	gatewayLabels := map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}
	gateway := cg.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ConfigNamespace: "istio-system",
		Labels:          gatewayLabels,
		Metadata: &model.NodeMetadata{
			Namespace:    "istio-system",
			Labels:       gatewayLabels,
			IstioVersion: "1.30.0",
		},
	})
	sidecars := map[string]*model.Proxy{}
	for _, dkey := range sortedKeys(deployments) {
		d := deployments[dkey]
		sidecars[dkey] = cg.SetupProxy(&model.Proxy{
			Type:            model.SidecarProxy,
			ID:              d.Name + "-0." + d.Namespace,
			ConfigNamespace: d.Namespace,
			Labels:          d.Spec.Template.Labels,
			IPAddresses:     []string{podAddress(sortedKeys(deployments), dkey)},
			Metadata: &model.NodeMetadata{
				Namespace:    d.Namespace,
				Labels:       d.Spec.Template.Labels,
				WorkloadName: d.Name,
				IstioVersion: "1.30.0",
			},
		})
	}
	// The control panel's v1 pod: its routes (a client of the cameras, the
	// services and the vision services).
	sidecar, ok := sidecars["airport/cpanel-v1"]
	if !ok {
		t.Fatalf("no Deployment airport/cpanel-v1 among %v", sortedKeys(deployments))
	}

	out := golden{Inputs: inputs}
	gatewayRoutes := cg.Routes(gateway)
	if len(gatewayRoutes) == 0 {
		t.Fatal("Istio generated no route configuration for the ingress gateway")
	}
	out.GatewayRoutes = sortedJSON(t, gatewayRoutes, (*route.RouteConfiguration).GetName)
	listeners := cg.Listeners(gateway)
	sort.Slice(listeners, func(i, j int) bool { return listeners[i].GetName() < listeners[j].GetName() })
	for _, l := range listeners {
		for _, chain := range l.GetFilterChains() {
			manager := xdstest.ExtractHTTPConnectionManager(t, chain)
			if manager == nil {
				continue
			}
			entry := gatewayHTTP{Listener: l.GetName(), FilterChain: chain.GetName()}
			for _, filter := range manager.GetHttpFilters() {
				entry.HTTPFilters = append(entry.HTTPFilters, filter.GetName())
			}
			manager.HttpFilters = nil
			entry.Options = sortedJSON(t, []*hcm.HttpConnectionManager{manager}, (*hcm.HttpConnectionManager).GetStatPrefix)[0]
			out.GatewayHTTP = append(out.GatewayHTTP, entry)
		}
	}
	if len(out.GatewayHTTP) == 0 {
		t.Fatal("the ingress gateway has no HTTP listener")
	}
	var appClusters []*cluster.Cluster
	for _, c := range cg.Clusters(gateway) {
		// The app's services; Istio's own (BlackHole, prometheus, xds...) left out.
		if strings.HasSuffix(c.GetName(), ".airport.svc."+domainSuffix) {
			// Left out, being the same on every cluster and none of the
			// local mesh's business: Istio's mTLS (transport socket matches:
			// istio-peer-exchange ALPN, SDS certificates) and its own
			// metadata (config provenance for telemetry).
			c.TransportSocketMatches = nil
			c.Metadata = nil
			appClusters = append(appClusters, c)
		}
	}
	out.GatewayClusters = sortedJSON(t, appClusters, (*cluster.Cluster).GetName)
	out.SidecarRoutes = sortedJSON(t, cg.Routes(sidecar), (*route.RouteConfiguration).GetName)
	out.SidecarHTTPFilters = map[string][]httpFilters{}
	for key, proxy := range sidecars {
		chains := []httpFilters{}
		listeners := cg.Listeners(proxy)
		sort.Slice(listeners, func(i, j int) bool { return listeners[i].GetName() < listeners[j].GetName() })
		for _, l := range listeners {
			for _, chain := range l.GetFilterChains() {
				manager := xdstest.ExtractHTTPConnectionManager(t, chain)
				if manager == nil {
					continue
				}
				entry := httpFilters{Listener: l.GetName(), FilterChain: chain.GetName()}
				for _, filter := range manager.GetHttpFilters() {
					entry.HTTPFilters = append(entry.HTTPFilters, filter.GetName())
				}
				chains = append(chains, entry)
			}
		}
		out.SidecarHTTPFilters[key] = chains
	}

	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(got, '\n')
}

// checkGolden compares with the golden file, or rewrites it under make oracle.
func checkGolden(t *testing.T, goldenFile string, got []byte) {
	if os.Getenv(updateGolden) != "" {
		if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
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
		t.Fatalf("%s is stale (the manifests, or Istio's translation of them, changed): run `make oracle` and review the diff", goldenFile)
	}
}

// splitManifests returns the Istio documents of a YAML stream as text and
// its Services converted the way istiod's Kubernetes registry converts them.
func splitManifests(t *testing.T, file string, text []byte) ([]string, []corev1.Service, []appsv1.Deployment) {
	var docs []string
	var services []corev1.Service
	var deployments []appsv1.Deployment
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
			services = append(services, svc)
		case apiVersion == "apps/v1" && kind == "Deployment":
			var d appsv1.Deployment
			if err := yaml.Unmarshal(raw, &d); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			deployments = append(deployments, d)
		}
	}
	return docs, services, deployments
}

// targetPort is the container port a Service port sends to in a Deployment's
// pods: a number, a named container port, or the Service port itself.
func targetPort(t *testing.T, port corev1.ServicePort, d appsv1.Deployment) uint32 {
	switch {
	case port.TargetPort.Type == intstr.Int && port.TargetPort.IntVal != 0:
		return uint32(port.TargetPort.IntVal)
	case port.TargetPort.Type == intstr.String && port.TargetPort.StrVal != "":
		for _, container := range d.Spec.Template.Spec.Containers {
			for _, containerPort := range container.Ports {
				if containerPort.Name == port.TargetPort.StrVal {
					return uint32(containerPort.ContainerPort)
				}
			}
		}
		t.Fatalf("Deployment %s/%s has no container port named %q", d.Namespace, d.Name, port.TargetPort.StrVal)
	}
	return uint32(port.Port)
}

// podAddress gives each Deployment's one pod an address of its own.
func podAddress(deployments []string, key string) string {
	return fmt.Sprintf("10.0.0.%d", sort.SearchStrings(deployments, key)+1)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// sortedJSON is every message in protojson form, sorted by name, with fixed
// formatting (protojson varies its whitespace on purpose), so the golden
// files diff cleanly.
func sortedJSON[M proto.Message](t *testing.T, messages []M, name func(M) string) []json.RawMessage {
	sort.Slice(messages, func(i, j int) bool { return name(messages[i]) < name(messages[j]) })
	out := make([]json.RawMessage, 0, len(messages))
	for _, message := range messages {
		raw, err := protojson.Marshal(message)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, compact.Bytes())
	}
	return out
}
