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
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayconsts "sigs.k8s.io/gateway-api/pkg/consts"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pilot/pkg/config/kube/extensions"
	"istio.io/istio/pilot/pkg/config/kube/gateway"
	"istio.io/istio/pilot/pkg/config/kube/gatewaycommon"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/core"
	kubeconvert "istio.io/istio/pilot/pkg/serviceregistry/kube"
	kubecontroller "istio.io/istio/pilot/pkg/serviceregistry/kube/controller"
	"istio.io/istio/pilot/test/xdstest"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/schema/gvr"
	"istio.io/istio/pkg/kube"
	"istio.io/istio/pkg/kube/kclient/clienttest"
	"istio.io/istio/pkg/kube/krt"
	"istio.io/istio/pkg/test"
)

// The manifests a cluster holds for the default app (make deploy-app-default
// and deploy-istio-default), relative to istio/; each scenario of
// istio/scenarios is applied on top of them, as `make <scenario>` does.
var appFolders = []string{"workloads", "app"}

// The Gateway API form of the app, relative to istio/ (when it exists): its
// YAML files (the Gateway, its HTTPRoutes, a Service per version) replace
// istio/app/gateway.yaml, the rest of istio/app (the sidecars'
// VirtualServices, the DestinationRules) stays, as istio/gateway-api/README.md
// says; each file of its scenarios/ and plugins/ is applied on top.
const gatewayAPIFolder = "gateway-api"

// The file of istio/app that the Gateway API form replaces.
const istioGatewayFile = "gateway.yaml"

// The environment variable that rewrites the goldens (make oracle) instead
// of comparing.
const updateGolden = "ORACLE_UPDATE"

// The cluster's DNS domain (Istio's default, and a default cluster's).
const domainSuffix = "cluster.local"

// golden is what a golden file (testdata/<set>.json) holds: the sha256 of
// every input manifest, so a changed manifest makes it stale even when
// Istio's output stays the same; what istiod would push to the ingress
// gateway (route configurations, HTTP connection managers, and the
// clusters of the app's services); and what it would push to the sidecar
// of every Deployment (its HTTP connection managers, outbound and inbound,
// and its outbound route configurations).
type golden struct {
	Inputs map[string]string `json:"inputs"`
	// Gateway API sets only: the Istio Gateways, VirtualServices and
	// DestinationRules istiod's gateway controller derives from the
	// Gateway API resources, which config generation then reads.
	GatewayAPIConfigs []json.RawMessage `json:"gatewayAPIConfigs,omitempty"`
	GatewayRoutes     []json.RawMessage `json:"gatewayRoutes"`
	GatewayHTTP       []httpChain       `json:"gatewayHTTP"`
	GatewayClusters   []json.RawMessage `json:"gatewayClusters"`
	// The sidecars' outbound route configurations: each distinct set once,
	// with the Deployments (namespace/name) whose sidecars get it.
	SidecarRoutes []sidecarRoutes `json:"sidecarRoutes"`
	// Per Deployment (namespace/name): its sidecar's HTTP filter chains,
	// outbound (listener 0.0.0.0_<port>) and inbound (virtualInbound).
	SidecarHTTP map[string][]httpChain `json:"sidecarHTTP"`
}

// httpChain is one HTTP filter chain of a proxy: its HTTP connection
// manager's options (path normalization, upgrades, timeouts, forwarded
// headers, an inbound chain's inline routes...) and the names of its HTTP
// filters in order, which is where the WasmPlugins show (their configs are
// Istio's telemetry, metadata exchange and the plugins' ECDS references).
type httpChain struct {
	Listener    string `json:"listener"`
	FilterChain string `json:"filterChain"`
	// What the chain matches on the connection (inbound chains come in
	// pairs: raw_buffer for plaintext, tls for mTLS peers), if anything.
	TransportProtocol string   `json:"transportProtocol,omitempty"`
	HTTPFilters       []string `json:"httpFilters"`
	// Left out for a sidecar's inbound chains for mTLS peers and for pod
	// ports no Service names (passthrough), which the local mesh has no
	// counterpart of: their filter names are kept.
	Options json.RawMessage `json:"options,omitempty"`
}

// sidecarRoutes is one set of outbound route configurations and the
// Deployments whose sidecars get exactly it.
type sidecarRoutes struct {
	Deployments []string          `json:"deployments"`
	Routes      []json.RawMessage `json:"routes"`
}

// TestIstioTranslation writes or compares testdata/app.json (the default
// app), testdata/scenarios/<scenario>.json (the app with that scenario
// applied on top), testdata/plugins/<plugin>.json (the app with that
// WasmPlugin), and testdata/gateway-api/app.json,
// testdata/gateway-api/scenarios/<scenario>.json and
// testdata/gateway-api/plugins/<plugin>.json: the same for the Gateway API
// form.
func TestIstioTranslation(t *testing.T) {
	base := glob(t, appFolders...)
	scenarios := glob(t, "scenarios")
	if len(scenarios) == 0 {
		t.Fatal("no scenarios under istio/scenarios")
	}
	plugins := glob(t, "plugins")
	if len(plugins) == 0 {
		t.Fatal("no plugins under istio/plugins")
	}
	sets := map[string][]string{"app": base}
	for _, plugin := range plugins {
		sets["plugins/"+stem(plugin)] = append(append([]string{}, base...), plugin)
	}
	for _, scenario := range scenarios {
		sets["scenarios/"+stem(scenario)] = append(append([]string{}, base...), scenario)
	}
	if forms := glob(t, gatewayAPIFolder); len(forms) > 0 {
		var gatewayAPIBase []string
		for _, file := range base {
			if filepath.Base(filepath.Dir(file)) == "app" && filepath.Base(file) == istioGatewayFile {
				continue
			}
			gatewayAPIBase = append(gatewayAPIBase, file)
		}
		gatewayAPIBase = append(gatewayAPIBase, forms...)
		sets[gatewayAPIFolder+"/app"] = gatewayAPIBase
		for _, folder := range []string{"scenarios", "plugins"} {
			for _, file := range glob(t, gatewayAPIFolder+"/"+folder) {
				sets[gatewayAPIFolder+"/"+folder+"/"+stem(file)] = append(append([]string{}, gatewayAPIBase...), file)
			}
		}
	}
	wanted := map[string]bool{}
	for _, name := range sortedKeys(sets) {
		golden := filepath.Join("testdata", name+".json")
		wanted[filepath.ToSlash(golden)] = true
		files := sets[name]
		t.Run(name, func(t *testing.T) { checkGolden(t, golden, translate(t, files)) })
	}
	// A golden whose scenario, plugin or form is gone is stale too.
	existing, _ := filepath.Glob(filepath.Join("testdata", "*", "*.json"))
	nested, _ := filepath.Glob(filepath.Join("testdata", gatewayAPIFolder, "*", "*.json"))
	for _, file := range append(existing, nested...) {
		if !wanted[filepath.ToSlash(file)] {
			t.Errorf("%s has no scenario, plugin or Gateway API form any more: run `make oracle` (it removes it)", file)
			if os.Getenv(updateGolden) != "" {
				_ = os.Remove(file)
			}
		}
	}
}

// glob is the YAML files of folders under istio/, each folder's sorted; a
// folder that does not exist has none.
func glob(t *testing.T, folders ...string) []string {
	var out []string
	for _, folder := range folders {
		files, err := filepath.Glob(filepath.Join("..", folder, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(files)
		out = append(out, files...)
	}
	return out
}

func stem(file string) string {
	return strings.TrimSuffix(filepath.Base(file), ".yaml")
}

// manifests is what a set of files holds, as a cluster would after
// `kubectl apply` of them in order: a later object of the same kind,
// namespace and name replaces the earlier.
type manifests struct {
	inputs      map[string]string
	istio       []config.Config
	services    map[string]corev1.Service
	deployments map[string]appsv1.Deployment
	namespaces  map[string]corev1.Namespace
	// Gateway API objects (Gateway, HTTPRoute, GRPCRoute, ReferenceGrant...)
	// in apply order, as the Kubernetes client decodes them.
	gatewayAPI []runtime.Object
}

func readManifests(t *testing.T, files []string) manifests {
	m := manifests{
		inputs:      map[string]string{},
		services:    map[string]corev1.Service{},
		deployments: map[string]appsv1.Deployment{},
		namespaces:  map[string]corev1.Namespace{},
	}
	var istioDocs []string
	gatewayAPI := map[string]int{}
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(text)
		m.inputs[filepath.ToSlash(strings.TrimPrefix(file, "../"))] = hex.EncodeToString(sum[:])
		for _, doc := range splitManifests(t, file, text) {
			switch {
			case doc.istio != "":
				istioDocs = append(istioDocs, doc.istio)
			case doc.service != nil:
				m.services[doc.service.Namespace+"/"+doc.service.Name] = *doc.service
			case doc.deployment != nil:
				m.deployments[doc.deployment.Namespace+"/"+doc.deployment.Name] = *doc.deployment
			case doc.namespace != nil:
				m.namespaces[doc.namespace.Name] = *doc.namespace
			case doc.gatewayAPI != nil:
				object := doc.gatewayAPI.(metav1.Object)
				key := doc.gatewayAPI.GetObjectKind().GroupVersionKind().Kind + "/" + object.GetNamespace() + "/" + object.GetName()
				if i, ok := gatewayAPI[key]; ok {
					m.gatewayAPI[i] = doc.gatewayAPI
					continue
				}
				gatewayAPI[key] = len(m.gatewayAPI)
				m.gatewayAPI = append(m.gatewayAPI, doc.gatewayAPI)
			}
		}
	}
	parsed, _, err := crd.ParseInputs(strings.Join(istioDocs, "\n---\n"))
	if err != nil {
		t.Fatal(err)
	}
	latest := map[string]int{}
	for _, c := range parsed {
		// What istiod's Kubernetes config client sets on every object
		// (pilot/pkg/config/kube/crdclient/client.go): short host names in
		// routes then resolve to <name>.<namespace>.svc.cluster.local.
		c.Domain = domainSuffix
		key := c.GroupVersionKind.Kind + "/" + c.Namespace + "/" + c.Name
		if i, ok := latest[key]; ok {
			m.istio[i] = c
			continue
		}
		latest[key] = len(m.istio)
		m.istio = append(m.istio, c)
	}
	return m
}

// translate runs Istio's config generator over the manifests and returns
// the golden's JSON.
func translate(t *testing.T, files []string) []byte {
	m := readManifests(t, files)
	deploymentKeys := sortedKeys(m.deployments)

	// Services through istiod's own Kubernetes conversion; one pod per
	// Deployment (its template's labels, an address of its own) as an
	// instance of every Service that selects it, so its sidecar gets its
	// inbound listeners as in a cluster.
	var serviceList []*model.Service
	var instances []*model.ServiceInstance
	for _, key := range sortedKeys(m.services) {
		svc := m.services[key]
		converted := kubeconvert.ConvertService(svc, nil, domainSuffix, "Kubernetes", domainSuffix)
		serviceList = append(serviceList, converted)
		for _, dkey := range deploymentKeys {
			d := m.deployments[dkey]
			podLabels := d.Spec.Template.Labels
			if d.Namespace != svc.Namespace || len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(podLabels)) {
				continue
			}
			instances = append(instances, podInstances(t, converted, svc, podAddress(deploymentKeys, dkey), podLabels, d.Name, d.Namespace, func(port corev1.ServicePort) uint32 {
				return targetPort(t, port, d)
			})...)
		}
	}

	var gatewayProxy *model.Proxy
	configs := m.istio
	var converted *gatewayAPI
	if len(m.gatewayAPI) > 0 {
		converted = convertGatewayAPI(t, m, serviceList, instances)
		configs = append(append([]config.Config{}, configs...), converted.derived...)
		serviceList = append(serviceList, converted.pod.service)
		instances = append(instances, converted.pod.instances...)
		gatewayProxy = converted.pod.proxy
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
	if gatewayProxy == nil {
		// The ingress gateway of Istio's default install: pods labelled
		// istio=ingressgateway in istio-system, which airport-gateway selects.
		gatewayLabels := map[string]string{"istio": "ingressgateway", "app": "istio-ingressgateway"}
		gatewayProxy = &model.Proxy{
			Type:            model.Router,
			ConfigNamespace: "istio-system",
			Labels:          gatewayLabels,
			Metadata: &model.NodeMetadata{
				Namespace:    "istio-system",
				Labels:       gatewayLabels,
				IstioVersion: "1.30.0",
			},
		}
	} else {
		// As istiod's environment holds it (pilot/pkg/bootstrap/configcontroller.go):
		// the listener builder asks it whether a Gateway API gateway has
		// InferencePools (listener_builder.go). Its configs are in the
		// store already, through the list above.
		cg.PushContext().GatewayAPIController = converted.controller
	}
	gateway := cg.SetupProxy(gatewayProxy)
	sidecars := map[string]*model.Proxy{}
	for _, dkey := range deploymentKeys {
		d := m.deployments[dkey]
		sidecars[dkey] = cg.SetupProxy(&model.Proxy{
			Type:            model.SidecarProxy,
			ID:              d.Name + "-0." + d.Namespace,
			ConfigNamespace: d.Namespace,
			Labels:          d.Spec.Template.Labels,
			IPAddresses:     []string{podAddress(deploymentKeys, dkey)},
			Metadata: &model.NodeMetadata{
				Namespace:    d.Namespace,
				Labels:       d.Spec.Template.Labels,
				WorkloadName: d.Name,
				IstioVersion: "1.30.0",
			},
		})
	}

	out := golden{Inputs: m.inputs}
	for _, c := range converted.configs() {
		out.GatewayAPIConfigs = append(out.GatewayAPIConfigs, configJSON(t, c))
	}
	gatewayRoutes := cg.Routes(gateway)
	if len(gatewayRoutes) == 0 {
		t.Fatal("Istio generated no route configuration for the ingress gateway")
	}
	out.GatewayRoutes = sortedJSON(t, gatewayRoutes, (*route.RouteConfiguration).GetName)
	out.GatewayHTTP = httpChains(t, cg.Listeners(gateway))
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

	out.SidecarHTTP = map[string][]httpChain{}
	routeSets := map[string]int{}
	for _, key := range deploymentKeys {
		proxy := sidecars[key]
		out.SidecarHTTP[key] = httpChains(t, cg.Listeners(proxy))
		routes := sortedJSON(t, cg.Routes(proxy), (*route.RouteConfiguration).GetName)
		text, err := json.Marshal(routes)
		if err != nil {
			t.Fatal(err)
		}
		if i, ok := routeSets[string(text)]; ok {
			out.SidecarRoutes[i].Deployments = append(out.SidecarRoutes[i].Deployments, key)
			continue
		}
		routeSets[string(text)] = len(out.SidecarRoutes)
		out.SidecarRoutes = append(out.SidecarRoutes, sidecarRoutes{Deployments: []string{key}, Routes: routes})
	}

	got, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(got, '\n')
}

// httpChains is every HTTP filter chain of the listeners, sorted by
// listener name: its connection manager's options and its HTTP filters'
// names. Left out of the options, being telemetry only and the same on
// every chain of a proxy: `tracing` (Istio's sampling and custom tags).
// Left out entirely for the inbound chains of mTLS peers and passthrough
// (see httpChain.Options).
func httpChains(t *testing.T, listeners []*listener.Listener) []httpChain {
	sort.SliceStable(listeners, func(i, j int) bool { return listeners[i].GetName() < listeners[j].GetName() })
	chains := []httpChain{}
	for _, l := range listeners {
		for _, chain := range l.GetFilterChains() {
			manager := xdstest.ExtractHTTPConnectionManager(t, chain)
			if manager == nil {
				continue
			}
			entry := httpChain{
				Listener:          l.GetName(),
				FilterChain:       chain.GetName(),
				TransportProtocol: chain.GetFilterChainMatch().GetTransportProtocol(),
				HTTPFilters:       []string{},
			}
			for _, filter := range manager.GetHttpFilters() {
				entry.HTTPFilters = append(entry.HTTPFilters, filter.GetName())
			}
			if entry.TransportProtocol == "tls" || strings.HasPrefix(entry.FilterChain, "virtualInbound-catchall") {
				chains = append(chains, entry)
				continue
			}
			manager.HttpFilters = nil
			manager.Tracing = nil
			entry.Options = sortedJSON(t, []*hcm.HttpConnectionManager{manager}, (*hcm.HttpConnectionManager).GetStatPrefix)[0]
			chains = append(chains, entry)
		}
	}
	return chains
}

// podInstances is a pod as an instance of each port of a Service.
func podInstances(t *testing.T, converted *model.Service, svc corev1.Service, address string, podLabels map[string]string,
	workload, namespace string, target func(corev1.ServicePort) uint32,
) []*model.ServiceInstance {
	var out []*model.ServiceInstance
	for _, port := range svc.Spec.Ports {
		servicePort, ok := converted.Ports.Get(port.Name)
		if !ok {
			t.Fatalf("Service %s/%s: port %q not converted", svc.Namespace, svc.Name, port.Name)
		}
		out = append(out, &model.ServiceInstance{
			Service:     converted,
			ServicePort: servicePort,
			Endpoint: &model.IstioEndpoint{
				Addresses:       []string{address},
				EndpointPort:    target(port),
				ServicePortName: port.Name,
				Labels:          podLabels,
				Namespace:       namespace,
				WorkloadName:    workload,
				TLSMode:         "istio",
			},
		})
	}
	return out
}

// gatewayPod is what istiod's gateway deployment controller creates for a
// Gateway API Gateway of class istio, as config generation sees it: the
// Service, its one pod as instances of it, and the pod's proxy.
type gatewayPod struct {
	service   *model.Service
	instances []*model.ServiceInstance
	proxy     *model.Proxy
}

// The address of the Gateway API gateway's pod (the sidecars have 10.0.0.x).
const gatewayPodAddress = "10.0.1.1"

// gatewayAPI is istiod's Gateway API controller run over a set's Gateway
// API objects: what it derived, and the gateway's pod.
type gatewayAPI struct {
	controller *gateway.Controller
	derived    []config.Config
	pod        gatewayPod
}

func (g *gatewayAPI) configs() []config.Config {
	if g == nil {
		return nil
	}
	return g.derived
}

// convertGatewayAPI runs istiod's Gateway API controller
// (pilot/pkg/config/kube/gateway) over the Gateway API objects, set up as
// Istio's own conversion test does (conversion_test.go TestConvertResources:
// a fake Kubernetes client holding the objects and their CRDs, the
// controller run to sync, its gateway context from a push context of the
// mesh's Services), and returns the Istio Gateways, VirtualServices and
// DestinationRules it derives, and the gateway's pod.
func convertGatewayAPI(t *testing.T, m manifests, services []*model.Service, instances []*model.ServiceInstance) *gatewayAPI {
	var objects []runtime.Object
	namespaces := map[string]bool{"istio-system": true}
	var gateways []*gatewayv1.Gateway
	// Creation times in apply order, as a cluster stamps them: the
	// controller merges the routes of several HTTPRoutes oldest first.
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, object := range m.gatewayAPI {
		object = object.DeepCopyObject()
		meta := object.(metav1.Object)
		if stamp := meta.GetCreationTimestamp(); stamp.IsZero() {
			meta.SetCreationTimestamp(metav1.NewTime(created.Add(time.Duration(i) * time.Second)))
		}
		namespaces[meta.GetNamespace()] = true
		if gw, ok := object.(*gatewayv1.Gateway); ok {
			gateways = append(gateways, gw)
		}
		objects = append(objects, object)
	}
	if len(gateways) != 1 {
		t.Fatalf("%d Gateway API Gateways: the oracle follows one gateway proxy (extend translation_test.go for more)", len(gateways))
	}
	for _, key := range sortedKeys(m.services) {
		svc := m.services[key]
		objects = append(objects, svc.DeepCopy())
		namespaces[svc.Namespace] = true
	}
	for _, name := range sortedKeys(m.namespaces) {
		ns := m.namespaces[name]
		objects = append(objects, ns.DeepCopy())
		delete(namespaces, name)
	}
	for _, name := range sortedKeys(namespaces) {
		if name == "" {
			continue
		}
		objects = append(objects, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}

	kc := kube.NewFakeClient(objects...)
	for _, resource := range []schema.GroupVersionResource{
		gvr.KubernetesGateway, gvr.ReferenceGrant, gvr.ListenerSet, gvr.GatewayClass, gvr.HTTPRoute,
		gvr.GRPCRoute, gvr.TCPRoute, gvr.TLSRoute, gvr.ServiceEntry, gvr.XBackendTrafficPolicy,
		gvr.BackendTLSPolicy, gvr.InferencePool,
	} {
		// The Gateway API CRDs as installed (the bundle version the
		// controller checks).
		clienttest.MakeCRDWithAnnotations(t, kc, resource, map[string]string{
			gatewayconsts.BundleVersionAnnotation: gatewayconsts.BundleVersion,
		})
	}
	stop := test.NewStop(t)
	// istiod creates the GatewayClass `istio` (and its other built-in
	// classes) itself; its class controller, run once here, before the
	// gateway controller reads them.
	classes := gatewaycommon.NewClassController(kc)
	kc.RunAndWait(stop)
	if err := classes.Reconcile(types.NamespacedName{}); err != nil {
		t.Fatalf("istiod's GatewayClass controller: %v", err)
	}
	previous := features.EnableGatewayAPIGatewayClassController
	features.EnableGatewayAPIGatewayClassController = false
	t.Cleanup(func() { features.EnableGatewayAPIGatewayClassController = previous })

	controller := gateway.NewController(kc, func(schema.GroupVersionResource, <-chan struct{}) bool { return true },
		kubecontroller.Options{DomainSuffix: domainSuffix, KrtDebugger: krt.GlobalDebugHandler}, nil)
	go controller.Run(stop)
	kc.RunAndWait(stop)
	mesh := core.NewConfigGenTest(t, core.TestOptions{Services: services, Instances: instances})
	controller.Reconcile(mesh.PushContext())
	kube.WaitForCacheSync("gateway-api", stop, controller.HasSynced)

	var derived []config.Config
	for _, kind := range []config.GroupVersionKind{gvk.Gateway, gvk.VirtualService, gvk.DestinationRule} {
		list := controller.List(kind, "")
		sort.Slice(list, func(i, j int) bool {
			return list[i].Namespace+"/"+list[i].Name < list[j].Namespace+"/"+list[j].Name
		})
		derived = append(derived, list...)
	}
	if len(derived) == 0 {
		t.Fatal("istiod's Gateway API controller derived nothing from the Gateway API resources")
	}

	// The gateway's Service and pod, as the deployment controller makes
	// them from the Gateway (gatewaycommon/deploymentcontroller.go,
	// extractServicePorts, and the kube-gateway.yaml template): Service
	// <gateway>-<class> with the status port and one port per listener
	// port, selecting the pod by gateway-name.
	gw := gateways[0]
	name := gatewaycommon.GetDefaultName(gw.Name, &gw.Spec, false)
	podLabels := map[string]string{
		"gateway.networking.k8s.io/gateway-name":       gw.Name,
		"gateway.networking.k8s.io/gateway-class-name": string(gw.Spec.GatewayClassName),
		"service.istio.io/canonical-name":              name,
	}
	tcp := "tcp"
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: gw.Namespace},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"gateway.networking.k8s.io/gateway-name": gw.Name},
			Ports:    []corev1.ServicePort{{Name: "status-port", Port: 15021, AppProtocol: &tcp, Protocol: corev1.ProtocolTCP}},
		},
	}
	seen := map[int32]bool{}
	for _, l := range gw.Spec.Listeners {
		if seen[l.Port] {
			continue
		}
		seen[l.Port] = true
		appProtocol := strings.ToLower(string(l.Protocol))
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name:        strings.ReplaceAll(string(l.Name), ".", "-"),
			Port:        l.Port,
			AppProtocol: &appProtocol,
			Protocol:    corev1.ProtocolTCP,
		})
	}
	converted := kubeconvert.ConvertService(svc, nil, domainSuffix, "Kubernetes", domainSuffix)
	pod := gatewayPod{
		service: converted,
		// The gateway's pods listen on the Service's ports themselves
		// (the template lowers ip_unprivileged_port_start to 0).
		instances: podInstances(t, converted, svc, gatewayPodAddress, podLabels, name, gw.Namespace,
			func(port corev1.ServicePort) uint32 { return uint32(port.Port) }),
		proxy: &model.Proxy{
			Type:            model.Router,
			ID:              name + "-0." + gw.Namespace,
			ConfigNamespace: gw.Namespace,
			Labels:          podLabels,
			IPAddresses:     []string{gatewayPodAddress},
			Metadata: &model.NodeMetadata{
				Namespace:    gw.Namespace,
				Labels:       podLabels,
				WorkloadName: name,
				IstioVersion: "1.30.0",
			},
		},
	}
	return &gatewayAPI{controller: controller, derived: derived, pod: pod}
}

// configJSON is a derived Istio config as kind, namespace, name,
// annotations and spec (protojson), with fixed formatting.
func configJSON(t *testing.T, c config.Config) json.RawMessage {
	spec, err := protojson.Marshal(c.Spec.(proto.Message))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(map[string]any{
		"kind":        c.GroupVersionKind.Kind,
		"namespace":   c.Namespace,
		"name":        c.Name,
		"annotations": c.Annotations,
		"spec":        json.RawMessage(spec),
	})
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		t.Fatal(err)
	}
	return compact.Bytes()
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

// document is one YAML document of a manifest, by what the oracle does
// with it; other kinds (ConfigMaps...) are none of istiod's business.
type document struct {
	istio      string
	service    *corev1.Service
	deployment *appsv1.Deployment
	namespace  *corev1.Namespace
	gatewayAPI runtime.Object
}

// splitManifests returns the documents of a YAML stream: Istio's as text
// (for crd.ParseInputs), Kubernetes Services, Deployments and Namespaces,
// and Gateway API objects decoded by Istio's Kubernetes client codec.
func splitManifests(t *testing.T, file string, text []byte) []document {
	var out []document
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
			out = append(out, document{istio: string(raw)})
		case strings.HasPrefix(apiVersion, "gateway.networking.k8s.io/"):
			// What the API server stores: the object with its CRD's
			// defaults filled in (a match without a path is PathPrefix /,
			// a backendRef's weight 1, ...), which istiod's converter
			// takes for granted.
			gv, err := schema.ParseGroupVersion(apiVersion)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			structural, ok := gatewayAPISchemas(t)[gv.WithKind(kind)]
			if !ok {
				t.Fatalf("%s: %s %s is in no Gateway API CRD of the standard channel (%s)", file, apiVersion, kind, crdsDir())
			}
			structuraldefaulting.Default(object, structural)
			if raw, err = yaml.Marshal(object); err != nil {
				t.Fatal(err)
			}
			decoded, _, err := kube.IstioCodec.UniversalDeserializer().Decode(raw, nil, nil)
			if err != nil {
				t.Fatalf("%s: %s: %v", file, kind, err)
			}
			if _, ok := decoded.(metav1.Object); !ok {
				t.Fatalf("%s: %s is no Kubernetes object", file, kind)
			}
			out = append(out, document{gatewayAPI: decoded})
		case apiVersion == "v1" && kind == "Service":
			var svc corev1.Service
			if err := yaml.UnmarshalStrict(raw, &svc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, document{service: &svc})
		case apiVersion == "v1" && kind == "Namespace":
			var ns corev1.Namespace
			if err := yaml.UnmarshalStrict(raw, &ns); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, document{namespace: &ns})
		case apiVersion == "apps/v1" && kind == "Deployment":
			var d appsv1.Deployment
			if err := yaml.Unmarshal(raw, &d); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, document{deployment: &d})
		}
	}
	return out
}

// crdsDir is where `make crds` (scripts/install-crds.sh) put the pinned CRD
// packages; scripts/oracle.sh passes it.
func crdsDir() string {
	if dir := os.Getenv("ORACLE_CRDS_DIR"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", ".crds")
}

var gatewayAPISchemaCache map[schema.GroupVersionKind]*structuralschema.Structural

// gatewayAPISchemas is the structural schema of every kind and version of
// the Gateway API's standard channel CRDs (sigs.k8s.io/gateway-api, as
// installed by `make crds`), read the way the API server reads a CRD
// (Istio's own CRD validator, pkg/config/crd/validator.go, does the same).
func gatewayAPISchemas(t *testing.T) map[schema.GroupVersionKind]*structuralschema.Structural {
	if gatewayAPISchemaCache != nil {
		return gatewayAPISchemaCache
	}
	files, _ := filepath.Glob(filepath.Join(crdsDir(), "gateway-api", "standard", "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no Gateway API CRDs in %s/gateway-api/standard: run `make crds`", crdsDir())
	}
	out := map[schema.GroupVersionKind]*structuralschema.Structural{}
	for _, file := range files {
		text, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		decoder := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(text), 4096)
		for {
			var v1 apiextensionsv1.CustomResourceDefinition
			if err := decoder.Decode(&v1); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", file, err)
			}
			if v1.Kind != "CustomResourceDefinition" {
				continue
			}
			var internal apiextensions.CustomResourceDefinition
			if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1, &internal, nil); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			for _, version := range internal.Spec.Versions {
				// The internal form keeps a schema common to every
				// version once, at the top.
				validation := version.Schema
				if validation == nil {
					validation = internal.Spec.Validation
				}
				if validation == nil {
					continue
				}
				structural, err := structuralschema.NewStructural(validation.OpenAPIV3Schema)
				if err != nil {
					t.Fatalf("%s %s: %v", file, version.Name, err)
				}
				out[schema.GroupVersionKind{Group: internal.Spec.Group, Version: version.Name, Kind: internal.Spec.Names.Kind}] = structural
			}
		}
	}
	gatewayAPISchemaCache = out
	return out
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
	sort.SliceStable(messages, func(i, j int) bool { return name(messages[i]) < name(messages[j]) })
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
