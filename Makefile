# Portcullis — kubebuilder-style Makefile. `make help` lists the targets.

# Image URL to use all building/pushing image targets.
IMG ?= ghcr.io/portcullis-io/portcullis:dev
# Pinned tool versions.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.0
# Control-plane versions live in hack/tools/{kube,etcd}/go.mod.

GOBIN ?= $(shell go env GOBIN)
ifeq (,$(GOBIN))
GOBIN = $(shell go env GOPATH)/bin
endif

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

LOCALBIN ?= $(shell pwd)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
CONTAINER_TOOL ?= docker

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs, RBAC and webhook manifests from kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: controller-gen ## Regenerate everything in a temporary copy and fail on any difference, new files included.
	hack/verify.sh

.PHONY: control-plane
control-plane: ## Build kube-apiserver, kube-controller-manager, kubectl and etcd (cached outside the work tree) and print their directory.
	@hack/control-plane.sh

.PHONY: test
# E2E_ADMISSION selects the end-to-end tests of admission policies.
E2E_ADMISSION = Admission|Mutation|Validation|Chain|DryRun|CELPolicies|DocExamples|PolicyException|Deployment|NotPortcullis|Broken|Samples|Native|PodSecurity

test: manifests generate fmt vet ## Run unit, integration and end-to-end tests (real etcd, kube-apiserver and kube-controller-manager), and the policy library's suites.
	go run ./cmd/portcullis test config/library config/samples/tests
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test ./... -count=1 -timeout 30m
	@# The admission tests again with every policy on the webhook: results
	@# are the same whoever evaluates a policy (the run above is Auto).
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" PORTCULLIS_E2E_EXECUTION=Webhook go test ./test/e2e/ -count=1 -timeout 15m -run '$(E2E_ADMISSION)'

.PHONY: test-race
# RACE_PACKAGES are the unit tests worth the race detector: the engines,
# registries, caches, handlers and controllers, whose concurrency tests
# assert little without it; not the control-plane harnesses.
RACE_PACKAGES = $$(go list ./internal/... ./webhooks/... ./controllers/... ./cmd/... | grep -v -e /internal/controlplane -e /internal/devenv)
test-race: ## Run the engines', handlers' and controllers' unit tests with the race detector (about 5 minutes; CI runs it).
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" go test -race -count=1 -timeout 20m $(RACE_PACKAGES)

.PHONY: test-faults
test-faults: ## Run the fault suite: the operator as separate processes killed, paused, slowed and restarted under load, through a real API server (about 4 minutes).
	KUBEBUILDER_ASSETS="$$(hack/control-plane.sh)" PORTCULLIS_FAULTS=1 go test ./test/faults/ -count=1 -v -timeout 20m

.PHONY: soak
soak: ## Run 10 minutes of mixed traffic through all four phases and report rate, errors, latency and the operator's RSS per minute (not part of make test).
	go build -o bin/soak ./hack/soak
	PORTCULLIS_ASSETS="$$(hack/control-plane.sh)" bin/soak -duration 10m -out bin/soak.md

.PHONY: bench
bench: ## Run the benchmarks with -benchmem.
	go test ./... -run '^$$' -bench . -benchmem

.PHONY: bench-chain
bench-chain: ## Measure the chain through real API servers: built-ins, a no-op webhook, Portcullis Webhook and Auto (about 5 minutes; not part of make test).
	go build -o bin/benchchain ./hack/benchchain
	PORTCULLIS_ASSETS="$$(hack/control-plane.sh)" bin/benchchain -out bin/bench-chain.md

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the portcullis binary.
	go build -o bin/portcullis ./cmd/portcullis

.PHONY: run
run: build ## Start a real local control plane with the operator wired in (state in .dev/).
	PORTCULLIS_ASSETS="$$(hack/control-plane.sh)" bin/portcullis dev --samples config/samples

.PHONY: docker-build
docker-build: ## Build the container image.
	$(CONTAINER_TOOL) build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster of ~/.kube/config.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs from the cluster.
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the operator to the cluster of ~/.kube/config.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the operator from the cluster.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $@

$(LOCALBIN):
	mkdir -p $@
