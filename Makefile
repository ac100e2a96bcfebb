# rehearse — make targets. `make test` is what CI runs (.ci/run).
GO ?= go
BIN := bin/rehearse

.PHONY: all build docker browser images test unit integration e2e e2e-run vet clean-clusters bench soak bench-e2e bench-build bench-cluster bench-profile

all: build

build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags "-s -w" -o $(BIN) ./cmd/rehearse

# Host set-up: a Docker engine that can run kind's privileged nodes (idempotent).
docker:
	bash scripts/docker-setup.sh

# Debian's Chromium, in which the e2e tests render report.html (idempotent).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium)

# Every image clusters run, built offline; a second run reuses everything. Compiling rehearse
# (~80 s cold) and installing Docker (~1 min, mostly downloads) go side by side.
images:
	$(MAKE) --no-print-directory -j2 build docker
	./$(BIN) images build

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -parallel 8 ./...

# Integration tests against real PostgreSQL containers (testcontainers-go, the locally built image).
integration: images
	TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 $(GO) test -count=1 -tags integration -timeout 15m ./workloads/...

# End-to-end tests on a real kind cluster (built offline). Rehearsals that drain or lose a node run
# one at a time in the fault lane: three workers set apart (labelled and tainted), where a
# rehearsal's namespace places all its pods and no other test's pod goes (TestFaultLane). Beside
# the lane, the other rehearsals run E2E_POOL at a time on the other three workers. The suite prints
# the host's load (whole suite, and each rehearsal's load window) and every rehearsal's wall time at
# its end. E2E_POOL=1: one at a time beside the lane.
E2E_POOL ?= 2
e2e: images browser
	$(MAKE) --no-print-directory e2e-run

e2e-run:
	E2E_POOL=$(E2E_POOL) REHEARSE_REQUIRE_BROWSER=1 $(GO) test -count=1 -tags e2e -timeout 75m -parallel 64 -v ./e2e/

# vet; then the unit and the integration tests side by side (both mostly wait on timers and
# containers: about 45 s and 100 s alone); once the unit tests have passed, the e2e suite compiles,
# creates its cluster and loads its images (~70 s) beside the rest of the integration tests, and its
# tests start when those have passed (E2E_AFTER: a file their exit status is written to), on a host
# they no longer share. The unit tests do not run beside the cluster's creation: some time steps
# to tens of milliseconds. If either fails, no e2e test runs (its cluster is deleted) and make test
# fails. The integration tests' output comes when they end.
test: vet images browser
	@gate=$$(mktemp -u /tmp/rehearse-e2e-after.XXXXXX); ilog=$$gate.integration; \
	trap 'rm -f $$gate $$gate.tmp $$ilog; exit 130' INT TERM; \
	$(MAKE) --no-print-directory integration > $$ilog 2>&1 & integ=$$!; \
	$(MAKE) --no-print-directory unit; u=$$?; \
	e2e=; if [ $$u -eq 0 ]; then E2E_AFTER=$$gate $(MAKE) --no-print-directory e2e-run & e2e=$$!; fi; \
	wait $$integ; i=$$?; cat $$ilog; rm -f $$ilog; \
	rc=$$u; if [ $$rc -eq 0 ]; then rc=$$i; fi; \
	echo $$rc > $$gate.tmp && mv $$gate.tmp $$gate; \
	e=0; if [ -n "$$e2e" ]; then wait $$e2e; e=$$?; fi; rm -f $$gate; \
	if [ $$rc -ne 0 ]; then echo "make test: unit or integration tests failed (exit $$rc)"; exit $$rc; fi; exit $$e

clean-clusters: build
	for c in $$(./$(BIN) cluster list); do ./$(BIN) cluster delete --name $$c; done

# Load path against a loopback server: at saturation beside bare vegeta (ratio), and the fidelity
# (achieved/target) of 100 and 500 req/s held for 10 s.
bench:
	$(GO) test -run XXX -bench 'Saturation|Fidelity' -benchtime 1x -count 3 ./load/

# Where the load path's CPU goes at saturation against a loopback server (the server's share included):
# pprof's top functions, cumulative.
bench-profile:
	$(GO) test -run XXX -bench LoadPath -benchtime 1x -count 1 -cpuprofile /tmp/rehearse-load.pprof -o /tmp/rehearse-load.test ./load/
	$(GO) tool pprof -top -cum -nodecount 45 /tmp/rehearse-load.test /tmp/rehearse-load.pprof

# A 10-minute run at 200 req/s on a kind cluster: peak RSS (time -v) and RSS at the end (metrics.prom).
soak: images
	/usr/bin/time -v ./$(BIN) run scenarios/soak-200.yaml --out out 2> out-soak.log; code=$$?; \
	grep -E "Maximum resident|Elapsed" out-soak.log; grep -E "^process_resident_memory_bytes|^rehearse_achieved_rate" out/soak-200/metrics.prom; \
	ls -l out/soak-200; exit $$code

# Time to a first verdict, phase by phase: cold `images build` (empty caches, --force; wall and CPU),
# image sizes, then the smoke scenario on a new cluster and again on the kept one. ~11 min.
bench-e2e: build docker
	bash scripts/bench-e2e.sh

# Where the components' cold Go build goes: each binary's link, the compile of the packages only it
# imports, and of those several share, read from `go build -debug-actiongraph` with an empty Go build
# cache (the module cache is kept). ~5 min on two cores.
bench-build:
	$(GO) test -run XXX -bench ComponentsBuild -benchtime 1x -timeout 40m ./clusters/nodeimage/

# Load from the cluster beside load from the host, on the e2e cluster against a fixed echo target:
# saturation of 1, 2 and 3 load agents and of the host, fidelity of 500 req/s. ~6 min.
bench-cluster: images
	$(GO) test -tags e2e -run XXX -bench ClusterLoad -benchtime 1x -timeout 30m ./e2e/
