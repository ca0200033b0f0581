# The two commands of the quick start, and a few more. Everything goes through CMake presets.
PRESET ?= release
BUILD_DIR := build/$(PRESET)
JOBS ?= $(shell nproc)
CONFIG ?= config/pythmata.toml

.PHONY: all deps configure build run test unit integration bench fuzz format format-check clean

all: build

deps:
	bash scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake --preset $(PRESET)

configure: deps $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

## make run: install what is missing, build Release, serve on 127.0.0.1:8000 with SQLite under ./var
run: build
	mkdir -p var
	exec ./$(BUILD_DIR)/pythmata serve --config $(CONFIG)

## make test: install, build, run every test (unit, integration with real PostgreSQL and Redis,
## conformance, chaos, ops); the harnesses start and stop their own servers on free loopback
## ports. Then every libFuzzer target replays its saved regressions and fuzzes briefly
## (FUZZ_SECONDS each, default 10; FUZZ_SECONDS=0 skips it).
FUZZ_SECONDS ?= 10
test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 600
	if [ "$(FUZZ_SECONDS)" != "0" ]; then bash tests/fuzz/run.sh $(FUZZ_SECONDS); fi

unit: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L unit

integration: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -L integration

bench: build
	bash bench/run.sh

fuzz: deps
	bash tests/fuzz/run.sh $(or $(SECONDS),60)

format:
	bash scripts/format.sh

format-check:
	bash scripts/format.sh --check

clean:
	rm -rf build
