# fhir-smart-authz — see README.md. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/fhir_smart_authz.wasm
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: build cli test unit wasm-test e2e lint fmt bench bench-core demo venv validate clean

build: $(WASM) ## the shipped artifact: release .wasm

$(WASM): $(shell find src -name '*.rs') Cargo.toml Cargo.lock
	$(CARGO) build --release --target $(WASM_TARGET) --lib

cli: ## native CLI binary
	$(CARGO) build --release --bin fhir-smart-authz

unit: ## native unit, corpus and property tests
	$(CARGO) test --all-targets

wasm-test: ## the core's tests compiled to wasm32-wasip1, run under Node's WASI
	CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings --experimental-wasi-unstable-preview1 tests/wasi/run.mjs" $(CARGO) test --target $(WASM_TARGET) --lib --tests --no-fail-fast

venv: $(VENV)/.ok
$(VENV)/.ok: tests/e2e/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tests/e2e/requirements.txt
	touch $@

e2e: build cli venv ## end-to-end table against real Envoy running the built .wasm
	$(PY) -m pytest -q tests/e2e

validate: build cli venv ## envoy --mode validate on envoy/*.yaml, docker-compose config, Istio + example configs
	$(PY) -m pytest -q tests/e2e/test_configs.py

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) --lib -- -D warnings

fmt:
	$(CARGO) fmt --all

test: lint unit wasm-test e2e ## everything

bench-core: ## criterion: classify + decide natively
	$(CARGO) bench --bench core

# BENCH_ONLY=compare: only the side-by-side comparison (no criterion, no token-path rows).
bench: build venv $(if $(BENCH_ONLY),,bench-core) ## the filter side by side with Envoy alone and native jwt_authn + RBAC in real Envoy (+ core)
	$(PY) -m tests.e2e.bench

demo: build cli venv
	$(PY) -m tests.e2e.demo

clean:
	$(CARGO) clean
	rm -rf $(VENV) .rig
