# bulwark: the two commands of the README, and the rest of the contract.
#   make run    install what is missing, build, start on etc/bulwark.yaml
#   make test   install what is missing, ASan+UBSan build, unit + integration tests
.PHONY: all deps build build-asan build-vg run test unit integration bench fuzz clean

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON ?= /usr/bin/python3
CONFIG ?= etc/bulwark.yaml

all: build

deps:
	@scripts/deps.sh

build:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DBULWARK_TESTS=OFF >/dev/null
	@cmake --build build -j$(JOBS)

build-vg:
	@cmake -S . -B build-vg -DCMAKE_BUILD_TYPE=Debug -DBULWARK_TESTS=OFF >/dev/null
	@cmake --build build-vg -j$(JOBS)

build-asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBULWARK_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)

run: deps build
	@mkdir -p var
	exec build/bulwarkd -c $(CONFIG)

unit: build-asan
	cd build-asan && ctest --output-on-failure

integration: build-asan build-vg
	BULWARK_BUILD=build-asan BULWARK_VG_BUILD=build-vg $(PYTHON) -m pytest -q tests/integration

test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

bench:
	@BULWARK_DEPS_BENCH=1 scripts/deps.sh
	@$(MAKE) --no-print-directory build
	$(PYTHON) bench/bench_smtp.py
	$(PYTHON) bench/bench_auth.py
	$(PYTHON) bench/bench_outbound.py
	$(PYTHON) bench/bench_imap.py

fuzz: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DBULWARK_FUZZ=ON -DBULWARK_TESTS=OFF -DBULWARK_SANITIZE=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	@scripts/fuzz.sh build-fuzz/fuzz 60

clean:
	rm -rf build build-asan build-vg build-fuzz
