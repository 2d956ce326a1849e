# podgate — `make help` lists the targets. Every binary under cmd/ is built the same way, so a new
# cmd/<name> needs no Makefile change; every Dockerfile.<name> becomes image <REGISTRY>/<name>.

SHELL        := /bin/bash
GO           ?= go
VERSION      ?= dev
REGISTRY     ?= ghcr.io/podgate
# Base image of every Dockerfile.*: distroless static nonroot by default; BASE=scratch builds
# without pulling anything (the binaries are static and the Dockerfiles set USER 65532:65532).
BASE         ?=
# buildah when installed, else docker.
CONTAINER_TOOL ?= $(shell command -v buildah >/dev/null 2>&1 && echo buildah || echo docker)
BENCH        ?= .
BENCHTIME    ?= 1s
FUZZTIME     ?= 10s
SOAK_DURATION ?= 10m
# deadcode from the Go module proxy, pinned; go run caches the build.
DEADCODE     ?= $(GO) run golang.org/x/tools/cmd/deadcode@v0.52.0

# helm for the chart's lint and template in make test (and the e2e's chart install): built from the
# Go module proxy into a cache outside the repository, once per version. As root (CI, make e2e) the
# cache is the e2e's, beside the Kubernetes and Traefik builds (test/e2e/run.sh); otherwise the
# user's cache directory.
HELM_VERSION ?= v4.3.2
E2E_CACHE    ?= $(or $(PODGATE_E2E_CACHE),$(or $(XDG_CACHE_HOME),/var/cache)/podgate-e2e)
TOOLS        ?= $(or $(PODGATE_TOOLS),$(if $(filter 0,$(shell id -u)),$(E2E_CACHE)/tools,$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/podgate-tools))
HELM         := $(TOOLS)/helm-$(HELM_VERSION)/helm

CMDS       := $(notdir $(patsubst %/,%,$(wildcard cmd/*/)))
BINARIES   := $(addprefix bin/,$(CMDS))
DOCKERFILES := $(wildcard Dockerfile.*)
IMAGES     := $(patsubst Dockerfile.%,%,$(DOCKERFILES))
LDFLAGS    := -s -w -X github.com/podgate/podgate/internal/version.Version=$(VERSION)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.\/-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: $(BINARIES) ## Build every cmd/* as a static binary in bin/<name>

bin/%: FORCE
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

.PHONY: FORCE
FORCE:

.PHONY: test
test: $(HELM) ## Run every test (with the race detector where it is cheap), helm lint and template of the chart
	$(HELM) lint --strict charts/podgate
	$(HELM) template podgate charts/podgate --namespace podgate-system >/dev/null
	PODGATE_HELM=$(HELM) $(GO) test ./...
	$(GO) test -race ./internal/...

$(HELM):
	GOBIN=$(dir $@) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)

.PHONY: helm
helm: $(HELM) ## Build helm (HELM_VERSION) into the tools cache and print its path
	@echo $(HELM)

SCRIPTS    := $(shell find . -name '*.sh' -not -path './.git/*') .ci/run

.PHONY: lint
lint: ## gofmt, go vet, deadcode (functions nothing calls, tests included), shellcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/e2e/...
	@out=$$($(DEADCODE) -test -tags e2e ./...) || exit 1; if [ -n "$$out" ]; then echo "unreachable functions (remove them):"; echo "$$out"; exit 1; fi
	@command -v shellcheck >/dev/null || { echo "shellcheck is missing: apt-get install shellcheck (.ci/run installs it)"; exit 1; }
	shellcheck -x $(SCRIPTS)

.PHONY: bench
bench: bin/sidecar bin/injector ## Full benchmark (~8 min, quiet machine): podgate vs direct vs oauth2-proxy, webhook, growth; rewrites docs/benchmarks.md (BASELINE=<rev> adds that build in the same run; PIN=0 does not pin the proxy to a CPU of its own)
	BASELINE='$(BASELINE)' PIN='$(PIN)' hack/bench/bench.sh

.PHONY: bench-quick
bench-quick: bin/sidecar bin/injector ## Benchmark subset (< 2 min): bearer and cookie at c=32, webhook at c=16; ends in name=value lines (BASELINE=<rev> adds that build in the same run; PIN=0 does not pin)
	BASELINE='$(BASELINE)' PIN='$(PIN)' hack/bench/bench.sh -quick

.PHONY: soak
soak: bin/sidecar ## Soak (SOAK_DURATION, default 10m, niced): mixed bearer, cookie and hostile load through one sidecar under the injector's memory limit; fails on RSS growth or a failed request; 10m or more rewrites its section of docs/benchmarks.md
	$(GO) build -o bin/bench ./hack/bench
	nice -n 10 bin/bench -soak $(SOAK_DURATION) -sidecar bin/sidecar

.PHONY: bench-go
bench-go: ## In-process Go benchmarks (BENCH=regexp, BENCHTIME=1s)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem ./...

.PHONY: fuzz
fuzz: ## Run every Fuzz* target for FUZZTIME each (default 10s); crashers stay in the package's testdata/fuzz as regression seeds
	@set -e; grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' internal cmd | sort | while read -r f; do \
		for fn in $$(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$$f" | cut -d' ' -f2); do \
			echo "fuzz $$fn in ./$$(dirname "$$f") for $(FUZZTIME)"; \
			$(GO) test "./$$(dirname "$$f")" -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 1; \
		done; \
	done

.PHONY: certs
certs: ## Dev CA + webhook serving certificate in certs/, copied to manifests/overlays/dev/certs/
	$(GO) run ./certs -dir certs -copy-to manifests/overlays/dev/certs

.PHONY: manifests
manifests: ## Render the dev overlay (needs make certs) to stdout
	kubectl kustomize manifests/overlays/dev

.PHONY: images
images: build ## Build every Dockerfile.<name> as REGISTRY/<name>:VERSION (BASE=scratch pulls nothing)
	@set -e; for name in $(IMAGES); do \
		echo "building $(REGISTRY)/$$name:$(VERSION) with $(CONTAINER_TOOL)"; \
		if [ "$(CONTAINER_TOOL)" = buildah ]; then \
			buildah bud $(if $(BASE),--build-arg BASE=$(BASE)) -f Dockerfile.$$name -t $(REGISTRY)/$$name:$(VERSION) . ; \
		else \
			$(CONTAINER_TOOL) build $(if $(BASE),--build-arg BASE=$(BASE)) -f Dockerfile.$$name -t $(REGISTRY)/$$name:$(VERSION) . ; \
		fi; \
	done

.PHONY: e2e
e2e: ## End to end, as root: install, build, start a cluster and Keycloak, test, tear down (docs/e2e.md)
	bash test/e2e/run.sh test

.PHONY: demo
demo: ## The e2e stack plus a demo app, left running: prints the URL, a user, the KUBECONFIG
	bash test/e2e/run.sh demo

.PHONY: demo-down
demo-down: ## Tear down the demo (or whatever an interrupted make e2e left)
	bash test/e2e/run.sh down

.PHONY: clean
clean: ## Remove bin/
	rm -rf bin/
