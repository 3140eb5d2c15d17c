# Two entry points for a fresh Debian 12 machine: `make serve` and `make test`.
BUILD_DIR ?= build
FUZZ_DIR := build-fuzz
FUZZ_SECONDS ?= 60
FUZZERS := http protocol tree manifest api
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: all setup configure build fuzz-build fuzz serve test bench clean

all: build

setup:
	@scripts/setup

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: setup $(BUILD_DIR)/build.ninja

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The libFuzzer targets: clang, instrumented, in a build of their own.
$(FUZZ_DIR)/build.ninja:
	cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DNUBO_FUZZERS=ON

fuzz-build: setup $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) --target fuzzers -j $(JOBS)

# Each fuzzer for FUZZ_SECONDS over its seed corpus (fuzz/corpus/NAME).
fuzz: fuzz-build
	@for f in $(FUZZERS); do scripts/fuzz $(FUZZ_DIR)/fuzz_$$f fuzz/corpus/$$f $(FUZZ_SECONDS) || exit 1; done

serve: build
	$(BUILD_DIR)/nubo serve

test: build fuzz-build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

bench: build
	bench/static.sh && bench/deploy.sh && bench/invoke.sh && bench/coldstart.sh && bench/native.sh && bench/build.sh && bench/noisy.sh

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR)
