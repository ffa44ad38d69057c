# fleetprof — run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
TOOL := $(GO) tool -modfile=$(CURDIR)/tools/go.mod
BIN := bin/fleetprof
GOTEST_FLAGS ?= -count=1 -timeout 20m

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## install Debian packages, the chDB library (npm) and Go modules
	./scripts/setup.sh

build: ## build bin/fleetprof (needs no chDB, no clang)
	$(GO) build -o $(BIN) ./cmd/fleetprof

image: ## OCI image from this host's binary + libchdb.so, no engine or registry: bin/fleetprof-image.tar, podman/docker-loaded (IMAGE=ghcr.io/fleetprof/fleetprof:0.1.0)
	./scripts/build-image.sh

up: setup build ## set up, then run fleetprof up: embedded ClickHouse, agent on this host, UI on http://127.0.0.1:7070
	$(if $(filter 0,$(shell id -u)),,sudo) ./$(BIN) up

test: setup check-generated lint ## set up, then check generated code, lint and run the whole test suite (strict: a skip for a missing tool, server or too few samples fails)
	FLEETPROF_STRICT_TESTS=1 $(GO) test $(GOTEST_FLAGS) ./...

test-short: ## the suite without setup, generation check or lint
	$(GO) test $(GOTEST_FLAGS) ./...

soak: setup ## long fault campaigns (kill -9 of the aggregator 25 times on each backend; disk full on a tmpfs)
	FLEETPROF_SOAK=1 FLEETPROF_STRICT_TESTS=1 $(GO) test -run 'TestKillNine|TestDiskFull' -count 1 -timeout 60m -v ./cmd/fleetprof/

bench: setup build ## benchmarks (ingest incl. the pprof stream and fleet senders, queries, agent CPU/fidelity vs perf, UI render; analyzer evaluation with its tables)
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 60m $$($(GO) list ./... | grep -v /analyzer/evaluate) | tee bench.txt
	set -o pipefail; $(GO) test -run '^$$' -bench Evaluate -benchtime 1x -timeout 60m -v ./analyzer/evaluate | tee -a bench.txt

eval-real: ## change-point core vs binary segmentation and PELT on 22 annotated TCPD series and 18 recorded on this machine (F1, cover; tuning and held-out halves), ~10 s
	$(GO) test -count=1 -run '^TestRealSeries$$' -v ./analyzer/evaluate | grep -v '^=== '

record-series: build ## re-record analyzer/evaluate/testdata/recorded.json on this host (benchmark histories, shares from a real fleetprof up, load averages; root, ~40 min)
	$(GO) build -o bin/recordseries ./scripts/recordseries
	nice -n 10 bin/recordseries -fleetprof $(BIN) -out analyzer/evaluate/testdata/recorded.json

generate: ## regenerate protobuf (buf) and eBPF (bpf2go) code
	cd proto && $(TOOL) buf generate && $(TOOL) buf lint
	$(GO) generate ./bpf/...

check-generated: ## fail when regenerating would change committed generated code
	@sum() { find proto bpf -type f \( -name '*.go' -o -name '*.o' \) -print0 | sort -z | xargs -0 sha256sum; }; \
	before=$$(sum); $(MAKE) --no-print-directory generate >/dev/null; after=$$(sum); \
	if [ "$$before" != "$$after" ]; then echo "generated code was out of date (now regenerated; review and commit):"; \
	  diff <(echo "$$before") <(echo "$$after") | grep '^>' ; exit 1; fi; echo "generated code is up to date"

lint: ## golangci-lint (config: .golangci.yml); everything but the storage engines builds without cgo
	CGO_ENABLED=0 $(GO) build $$($(GO) list ./... | grep -v -e '/aggregator/storage' -e '/aggregator$$' -e '/cmd/' -e '/deploy$$')
	$(TOOL) golangci-lint run ./...

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output
	rm -rf bin bench.txt

.PHONY: help setup build up test test-short soak bench generate check-generated lint fmt clean
