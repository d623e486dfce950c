# Plumb: make demo | make test | make generate | make lint | make bench | make chaos | make controlplane
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

export GOTOOLCHAIN := local
export PLUMB_CACHE ?= $(HOME)/.cache/plumb
K8S_VERSION ?= 1.37.2
export K8S_VERSION

CONTROLLER_GEN := go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
STATICCHECK := go run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Every module of the workspace, from go.work.
MODULES := $(shell sed -n 's|^[[:space:]]*\./\([^[:space:]]*\)$$|\1|p' go.work)
# Controllers: modules with an api/ folder of their own.
CONTROLLERS := $(patsubst %/api,%,$(filter %/api,$(MODULES)))
# Test parallelism across packages; each envtest package runs its own control plane.
TEST_P ?= 2

.PHONY: all
all: generate lint test

.PHONY: controlplane
controlplane: ## Build etcd, kube-apiserver, kube-controller-manager and kubectl once; print their folder.
	@WITH_KUBECTL=1 hack/controlplane.sh

.PHONY: generate
generate: ## deepcopy, CRDs and RBAC from the kubebuilder markers.
	@for c in $(CONTROLLERS); do \
	  echo "generate $$c"; \
	  (cd $$c/api && $(CONTROLLER_GEN) object paths=./...) ; \
	  (cd $$c && $(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases \
	     rbac:roleName=$$c paths=./internal/... output:rbac:artifacts:config=config/rbac); \
	done
	@echo "generate cli/internal/install/manifests"; cd hack && go run ./manifests
	@echo "generate docs/compat/flux.md"; cd hack && go run ./compat
	@echo "generate docs/reliability.md"; cd hack && go run ./reliability

.PHONY: tidy
tidy: ## One version set: the workspace's versions written back to every module, then go mod tidy.
	@go work sync
	@for m in $(MODULES); do (cd $$m && go mod tidy); done

.PHONY: lint
lint: ## gofmt, go vet and staticcheck over every module.
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && go vet -tags e2e,chaos ./...); done
	@for m in $(MODULES); do (cd $$m && $(STATICCHECK) -tags e2e,chaos ./...); done

.PHONY: test
test: ## Unit and envtest integration tests of every module (race detector on), then the end-to-end tests.
	@assets="$$(hack/controlplane.sh | tail -n 1)"; export KUBEBUILDER_ASSETS="$$assets"; \
	  pkgs=(); for m in $(MODULES); do pkgs+=("./$$m/..."); done; \
	  go test -json -race -count=1 -p $(TEST_P) -timeout 20m "$${pkgs[@]}" | (cd hack && go run ./testsum)
	@$(MAKE) --no-print-directory e2e-json

.PHONY: e2e-json
e2e-json: # make test's last step: the end-to-end tests, summarised as the package tests are.
	@assets="$$(hack/controlplane.sh | tail -n 1)"; export KUBEBUILDER_ASSETS="$$assets"; \
	  cd hack && go test -json -tags e2e -count=1 -timeout 20m ./e2e/... | go run ./testsum

.PHONY: e2e
e2e: ## End-to-end tests (hack/e2e, build tag e2e): every controller built and run as a process.
	@assets="$$(hack/controlplane.sh | tail -n 1)"; export KUBEBUILDER_ASSETS="$$assets"; \
	  cd hack && go test -tags e2e -count=1 -timeout 20m -v ./e2e/...

# UPDATE=1 records the run of make chaos in docs/reliability.json and docs/reliability.md.
UPDATE ?=

.PHONY: chaos
chaos: ## Fault-injection suite (hack/chaos, build tag chaos): controllers killed, servers failing, kube-apiserver restarted, disk full; prints the results table (UPDATE=1 records it in docs/reliability.md). Needs root for the tmpfs.
	@assets="$$(hack/controlplane.sh | tail -n 1)"; export KUBEBUILDER_ASSETS="$$assets"; \
	  cd hack && go test -tags chaos -count=1 -timeout 30m ./chaos/... $(if $(UPDATE),-args -update)

# Benchmark scenarios to run (default: every one, `go run ./bench list`); ARGS go to each.
S ?=
ARGS ?=

.PHONY: bench
bench: ## Every scenario of hack/bench, or those of S="git oci"; each appends to docs/benchmarks/<scenario>.jsonl and compares.
	@assets="$$(hack/controlplane.sh | tail -n 1)"; export KUBEBUILDER_ASSETS="$$assets"; \
	  tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	  cd hack && go build -o "$$tmp/bench" ./bench; \
	  scenarios="$(S)"; failed=(); \
	  for s in $${scenarios:-$$("$$tmp/bench" list)}; do \
	    echo "== bench $$s"; "$$tmp/bench" "$$s" $(ARGS) || failed+=("$$s"); \
	  done; \
	  if [ $${#failed[@]} -gt 0 ]; then echo "bench: failed: $${failed[*]}"; exit 1; fi

.PHONY: demo
demo: ## Local control plane, controllers and a sample Git repository, live.
	@assets="$$(WITH_KUBECTL=1 hack/controlplane.sh | tail -n 1)"; export KUBEBUILDER_ASSETS="$$assets"; \
	  cd hack && go run ./demo
