# HeatGate — build, run, test. `make run` and `make test` install their own prerequisites.
SWIFT        ?= swift
PYTHON       ?= /usr/bin/python3
STRICT       := -Xswiftc -warnings-as-errors
BUILD_DEPS   := liblmdb-dev libzmq3-dev
TEST_DEPS    := $(BUILD_DEPS) lmdb-utils python3-zmq python3-lmdb python3-pytest python3-pytest-timeout prometheus \
                redis-server python3-redis python3-setuptools python3-pip
BENCH_DEPS   := $(BUILD_DEPS) redis-server python3-redis python3-hiredis
BIN          := .build/debug/heatgate
# The hot-path modules without dynamic exclusivity checks (see Package.swift); every build here agrees on it,
# so switching between `make` and a bare `swift build` rebuilds, but never mixes.
export HEATGATE_UNCHECKED_EXCLUSIVITY ?= 1
HOTPATH      := $(SWIFT) package --allow-writing-to-directory results benchmark --target HotPath \
                --format histogramPercentiles --no-progress

.PHONY: all deps test-deps bench-deps build run replay test lint deb deb-test clean bench bench-smoke bench-build powercut \
	fuzz soak crash-test
FUZZ_SECONDS ?= 300
SOAK_SECONDS ?= 600

all: build

deps:
	@scripts/ensure-deps.sh $(BUILD_DEPS)

test-deps:
	@scripts/ensure-deps.sh $(TEST_DEPS)

build: deps
	$(SWIFT) build $(STRICT)

## The gate on its embedded defaults: state in ./data, loopback endpoints, metrics on 127.0.0.1:8056.
run: build
	$(BIN) run $(if $(CONFIG),--config $(CONFIG))

## Replays the bundled example through the engine (no daemon needed).
replay: build
	$(BIN) replay examples/replay.jsonl

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests bench/Package.swift bench/Sources \
		bench/Benchmarks

## Everything CI checks: strict build, format lint, Swift tests (the crash-safety test's 20 SIGKILL
## rounds included), Python tests, and a bounded fuzz run.
test: test-deps
	$(SWIFT) build --build-tests $(STRICT) --explicit-target-dependency-import-check=error
	$(MAKE) lint
	$(SWIFT) test --skip-build
	HEATGATE_BIN=$(CURDIR)/$(BIN) $(PYTHON) -m pytest -q -p no:cacheprovider --timeout=180 tests/python examples/python \
		clients/python/tests
	scripts/check-client-dependency.sh
	FUZZ_SECONDS=20 fuzz/run.sh
	$(MAKE) bench-smoke

## libFuzzer over the parser, engine and encoder for FUZZ_SECONDS (default 300); see fuzz/run.sh.
fuzz:
	fuzz/run.sh

## Opt-in soak: SOAK_SECONDS (default 600) at 10 000 proposals/s with state updates and scrapes.
soak: test-deps
	$(SWIFT) build --build-tests $(STRICT)
	HEATGATE_SOAK_SECONDS=$(SOAK_SECONDS) $(SWIFT) test --skip-build --filter SoakTests

## Only the SIGKILL crash-safety rounds (CRASH_ROUNDS, default 20; `make test` runs 20 too).
crash-test: test-deps
	$(SWIFT) build --build-tests $(STRICT) --explicit-target-dependency-import-check=error
	HEATGATE_CRASH_ROUNDS=$(or $(CRASH_ROUNDS),20) $(SWIFT) test --skip-build --filter CrashSafetyTests

## Power-cut images of the durable store from the daemon's own recorded writes (contract §10, P9): POWERCUT_IMAGES
## (default 1000), each read back and started on with an empty run dir; exits non-zero if any is bad. CI runs it
## after `make test` (.ci/run); see docs/store.md.
powercut: test-deps
	$(SWIFT) build $(STRICT)
	$(PYTHON) crash/powercut/powercut.py --heatgate $(CURDIR)/$(BIN) --images $(or $(POWERCUT_IMAGES),1000)

## The Debian package: dist/quantum-portfolio-heat-gate_<version>_amd64.deb (release, static Swift runtime).
deb: deps
	packaging/build-deb.sh

## Installs, upgrades, removes and purges the package in a fresh Debian 12 root (root only; see packaging/README.md).
deb-test: deps
	packaging/deb-test.sh

bench-deps:
	@scripts/ensure-deps.sh $(BENCH_DEPS)

## The daemon (release) and bench/'s programs. SwiftPM's command plugin (`swift package benchmark`) leaves
## a build description without the other products behind, so it is dropped before building them.
bench-build: bench-deps
	$(SWIFT) build -c release --product heatgate
	rm -f bench/.build/release.yaml bench/.build/*/release/description.json
	cd bench && $(SWIFT) build -c release

## SPEC §10 in full (< 30 min on the 2-core machine): results in bench/results/, report in BENCHMARKS.md.
bench: bench-build
	rm -rf bench/results/hotpath && mkdir -p bench/results/hotpath
	cd bench && $(HOTPATH) --path results/hotpath
	cd bench && .build/release/hg-bench

## Seconds: every tool runs once at tiny sizes (no timing is judged); results in bench/results/smoke/.
bench-smoke: bench-build
	rm -rf bench/results/smoke && mkdir -p bench/results/smoke/hotpath
	cd bench && HEATGATE_BENCH_SMOKE=1 $(HOTPATH) --path results/smoke/hotpath
	cd bench && .build/release/hg-bench --smoke

clean:
	rm -rf .build bench/.build
