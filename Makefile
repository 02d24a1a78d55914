# aily_exporter — build and test.
#
#   make build   the binary ./aily_exporter, version-stamped
#   make test    everything CI runs: gofmt, go vet, staticcheck, govulncheck, the built
#                binary's Go version, go test -race, promtool check metrics on the golden scrape, the alert rule
#                tests, the Helm chart (helm lint/template) and the end-to-end test against a real Prometheus
#   make generate  copy dashboards/alerts.yml and aily.json into the Helm chart
#   make soak    the ground-truth soak (not part of make test): the real binary
#                against the fake API with every fault, vanishing runs, both
#                listing orders, an HA pair, a reload and a restart, for
#                SOAK_MINUTES (default 20); prints every series that differs
#                from the truth, and fails if one does
#   make mutation  mutation testing with gremlins of the counting and planning
#                code (./internal/watch; others with PKGS="./internal/watch ./feishu"): fails under
#                90% efficacy (killed / (killed + lived); MUTATION_EFFICACY to
#                change it); about 5 minutes per package on 2 cores, so not part
#                of make test. Reports in ./bin/mutation-*.json and *.log
#
# Tools not on PATH are installed, pinned, into ./bin.

SHELL       := bash
.SHELLFLAGS := -eu -o pipefail -c

GO     ?= go
# The machine's Go may lag behind its security releases (1.26.8 has standard
# library vulnerabilities fixed in 1.26.9 and 1.26.10, which govulncheck
# reports); build and test with the patched one, fetched once through the Go
# module proxy (about 6 s). `go run . --demo` works with any Go 1.26. `make test`
# checks that the binary `make build` made carries it (check-go-version).
GO_VERSION := go1.26.10
export GOTOOLCHAIN := $(GO_VERSION)
BINARY := aily_exporter
GOBIN  := $(CURDIR)/bin
export GOBIN

STATICCHECK_VERSION := v0.8.2
GOVULNCHECK_VERSION := v1.9.0
# The vulnerability database, pinned as a module so that the check works
# offline (CI reaches only the module proxy) and gives the same answer twice.
VULNDB_VERSION      := v0.0.0-20261105234957-e22db6528018
PROMTOOL_VERSION    := v0.316.0
# helm renders and lints the chart offline (make test-helm); about 2–3 min to
# build cold through the module proxy, once.
HELM_VERSION        := v3.22.0
GREMLINS_VERSION    := v0.6.0

# A tool on PATH wins; otherwise the pinned one in ./bin, installed on first use.
STATICCHECK := $(or $(shell command -v staticcheck 2>/dev/null),$(GOBIN)/staticcheck)
PROMTOOL    := $(or $(shell command -v promtool 2>/dev/null),$(GOBIN)/promtool)
PROMETHEUS  := $(or $(shell command -v prometheus 2>/dev/null),$(GOBIN)/prometheus)

# Version stamping, read by github.com/prometheus/common/version
# (aily_exporter --version, aily_exporter_build_info).
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= $(shell whoami 2>/dev/null || echo unknown)@$(shell hostname 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

GOLDEN := collector/testdata/golden.prom
# Every go test run of `make test` appends its verbose output here, for the
# closing summary.
TEST_LOG := $(GOBIN)/go-test.log

.PHONY: all build generate soak test fmt-check vet staticcheck vulncheck check-go-version test-go check-metrics test-rules test-helm test-e2e test-summary mutation clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BINARY) .

# The Helm chart carries copies of the alerting rules and the dashboard that
# users download from dashboards/ (a chart cannot read files outside itself);
# run this after changing them. A test (go test ./deploy/...) fails while the
# copies differ.
CHART := deploy/helm/aily-exporter
generate:
	cp dashboards/alerts.yml dashboards/aily.json $(CHART)/files/

# The steps run one after another even under make -j, and stop at the first
# failure; each go test run prints its own summary before failing.
test:
	@mkdir -p $(GOBIN) && rm -f $(TEST_LOG)
	@$(MAKE) --no-print-directory fmt-check
	@$(MAKE) --no-print-directory vet
	@$(MAKE) --no-print-directory staticcheck
	@$(MAKE) --no-print-directory vulncheck
	@$(MAKE) --no-print-directory check-go-version
	@$(MAKE) --no-print-directory test-go
	@$(MAKE) --no-print-directory check-metrics
	@$(MAKE) --no-print-directory test-rules
	@$(MAKE) --no-print-directory test-helm
	@$(MAKE) --no-print-directory test-e2e
	@$(MAKE) --no-print-directory test-summary

fmt-check:
	@echo "==> gofmt"
	@files=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*' -not -path './.cache/*')); \
	if [ -n "$$files" ]; then echo "not gofmt'ed (run gofmt -w):"; echo "$$files"; exit 1; fi

# -tags soak: the soak test is vetted and checked too, though only make soak runs it.
vet:
	@echo "==> go vet"
	$(GO) vet -tags soak ./...

staticcheck: $(STATICCHECK)
	@echo "==> staticcheck"
	$(STATICCHECK) -tags soak ./...

# govulncheck against the pinned database: fails if our code reaches a known
# vulnerability of the standard library or of a module we require.
vulncheck: $(GOBIN)/govulncheck $(GOBIN)/vulndb/index/db.json
	@echo "==> govulncheck (database $(VULNDB_VERSION))"
	$(GOBIN)/govulncheck -db file://$(GOBIN)/vulndb ./...

# The binary make build made must carry the pinned Go: one built with an older
# Go (GOTOOLCHAIN=local on a machine that lags) links a standard library with
# known vulnerabilities, which govulncheck on the source does not see.
check-go-version: build
	@echo "==> go version ./$(BINARY)"
	@got=$$($(GO) version ./$(BINARY) | awk '{print $$NF}'); \
	if [ "$$got" != "$(GO_VERSION)" ]; then \
		echo "./$(BINARY) is built with $$got, not the pinned $(GO_VERSION) (GOTOOLCHAIN=$$GOTOOLCHAIN)"; exit 1; \
	fi; echo "./$(BINARY): $$got"

test-go:
	@echo "==> go test -race"
	@.ci/gotest $(TEST_LOG) -race -count=1 ./...

check-metrics: $(PROMTOOL)
	@echo "==> promtool check metrics $(GOLDEN)"
	@test -s $(GOLDEN) || { echo "$(GOLDEN) is missing or empty"; exit 1; }
	$(PROMTOOL) check metrics < $(GOLDEN)

# The alerting rules and their unit tests (dashboards/), and the Prometheus
# configuration example that loads them. The tests hold on promtool 2.42
# (Debian, CI) and 3.x alike. The run success SLO's burn-rate alerts have
# their own files (about 15 s each): the page's at one sample a minute, the
# ticket's, whose windows run to 3 days, at one every 5 minutes.
test-rules: $(PROMTOOL)
	@echo "==> promtool check rules / test rules / check config"
	$(PROMTOOL) check rules dashboards/alerts.yml
	$(PROMTOOL) test rules dashboards/alerts_test.yml
	$(PROMTOOL) test rules dashboards/slo_fast_test.yml
	$(PROMTOOL) test rules dashboards/slo_slow_test.yml
	$(PROMTOOL) check config dashboards/prometheus.yml
	$(PROMTOOL) check config deploy/compose/prometheus/prometheus.yml

# The Helm chart: helm lint and helm template with the defaults and every
# documented variation (ci/*-values.yaml), every object decoded strictly into
# its Go type, the PrometheusRule through promtool check rules; misspelt keys
# refused by values.schema.json; the notes' commands.
test-helm: $(GOBIN)/helm $(PROMTOOL)
	@echo "==> helm lint / helm template (deploy/helm/)"
	@PATH="$(dir $(PROMTOOL)):$$PATH" AILY_HELM=$(GOBIN)/helm \
		.ci/gotest $(TEST_LOG) -count=1 ./deploy/helm/

# The end-to-end test: the exporter in --demo mode under a real Prometheus
# (the one on PATH, else bin/prometheus); about 70 s, it logs its wall time.
# With chromium on PATH (.ci/run installs Debian's) it also loads /status in
# headless Chromium; without it that check is skipped, except under CI.
test-e2e: $(PROMETHEUS)
	@echo "==> end-to-end test (dashboards/)"
	@PATH="$(dir $(PROMETHEUS)):$$PATH" AILY_E2E=1 \
		.ci/gotest $(TEST_LOG) -count=1 -run 'TestEndToEnd' ./dashboards/

test-summary:
	@.ci/gotest --summary $(TEST_LOG)
	@echo "make test: gofmt, go vet, staticcheck, govulncheck, the binary's Go version, go test -race, promtool check metrics, rule tests, the Helm chart and the end-to-end test passed"

SOAK_MINUTES ?= 20
soak:
	@echo "==> soak: $(SOAK_MINUTES) minutes of runs and faults, then about 5 minutes to settle"
	SOAK_MINUTES=$(SOAK_MINUTES) $(GO) test -tags soak -count=1 -timeout 0 -v -run TestSoak ./soak/

# Mutation testing. With gremlins' defaults every mutant times out on a
# 2-core machine: one worker, and a generous timeout coefficient. gremlins
# derives the timeout from its coverage run, so that run must not come from
# the test cache (GOFLAGS=-count=1). Its --threshold-efficacy flag is not
# applied in v0.6.0 (it exits 0 under any threshold), so the efficacy is read
# off its summary and checked here. The mutation tag leaves out the slow
# randomized tests (internal/watch/chaos_test.go): each mutant runs the unit tests.
PKGS              ?= ./internal/watch
MUTATION_EFFICACY ?= 90
mutation: $(GOBIN)/gremlins
	@for pkg in $(PKGS); do \
		name=$$(echo "$$pkg" | tr -c 'a-zA-Z0-9\n' '-' | sed 's/^-*//'); \
		echo "==> gremlins unleash $$pkg (report in $(GOBIN)/mutation-$$name.json)"; \
		GOFLAGS=-count=1 $(GOBIN)/gremlins unleash --workers 1 --timeout-coefficient 10 --tags mutation \
			--output "$(GOBIN)/mutation-$$name.json" "$$pkg" | tee "$(GOBIN)/mutation-$$name.log"; \
		eff=$$(sed -n 's/.*Test efficacy: \([0-9.]*\)%.*/\1/p' "$(GOBIN)/mutation-$$name.log"); \
		if [ -z "$$eff" ]; then echo "$$pkg: gremlins reported no efficacy"; exit 1; fi; \
		awk -v e="$$eff" -v min="$(MUTATION_EFFICACY)" 'BEGIN { exit !(e >= min) }' || \
			{ echo "$$pkg: mutation efficacy $$eff% is under $(MUTATION_EFFICACY)%"; exit 1; }; \
		echo "$$pkg: mutation efficacy $$eff% (at least $(MUTATION_EFFICACY)% required)"; \
	done

$(GOBIN)/staticcheck:
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(GOBIN)/gremlins:
	$(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)

$(GOBIN)/govulncheck:
	$(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

$(GOBIN)/vulndb/index/db.json:
	$(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)
	$(GO) mod download golang.org/x/vulndb@$(VULNDB_VERSION)
	rm -rf $(GOBIN)/vulndb
	$(GOBIN)/indexdb -vulns "$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $(GOBIN)/vulndb

# A cold build of promtool takes several minutes; .ci/run installs Debian's
# prometheus package instead, which brings promtool on PATH.
$(GOBIN)/promtool:
	$(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

$(GOBIN)/helm:
	$(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(GOBIN)/prometheus:
	$(GO) install github.com/prometheus/prometheus/cmd/prometheus@$(PROMTOOL_VERSION)

clean:
	rm -rf $(BINARY) $(GOBIN)
