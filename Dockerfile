# OCI "compat" image of the filter for Istio's WasmPlugin (`url: oci://...`):
# FROM scratch, a single layer holding plugin.wasm. Build the filter first:
#   make build && docker build -t REGISTRY/fhir-smart-authz:VERSION . && docker push REGISTRY/fhir-smart-authz:VERSION
FROM scratch
COPY target/fhir_smart_authz.wasm ./plugin.wasm
