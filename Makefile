# HeatGate — build, run, test. `make run` and `make test` install their own prerequisites.
SWIFT        ?= swift
PYTHON       ?= /usr/bin/python3
STRICT       := -Xswiftc -warnings-as-errors
BUILD_DEPS   := liblmdb-dev libzmq3-dev
TEST_DEPS    := $(BUILD_DEPS) lmdb-utils python3-zmq python3-lmdb python3-pytest prometheus
BIN          := .build/debug/heatgate

.PHONY: all deps test-deps build run test lint swift-test clean

all: build

deps:
	@scripts/ensure-deps.sh $(BUILD_DEPS)

test-deps:
	@scripts/ensure-deps.sh $(TEST_DEPS)

build: deps
	$(SWIFT) build $(STRICT)

## The gate on its embedded defaults: state in ./data, loopback endpoints.
run: build
	$(BIN) replay examples/replay.jsonl

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests

## Everything CI checks: strict build, format lint, Swift tests, Python tests.
test: test-deps
	$(SWIFT) build --build-tests $(STRICT)
	$(MAKE) lint
	$(SWIFT) test --skip-build

clean:
	rm -rf .build
