# Two entry points for a fresh Debian 12 machine: `make serve` and `make test`.
BUILD_DIR ?= build
FUZZ_DIR := build-fuzz
FUZZ_SECONDS ?= 60
FUZZERS := http protocol tree manifest api websocket
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)

.PHONY: all setup configure build fuzz-build fuzz serve test test-sanitize bench clean

# `make test-sanitize`: the unit tests built with AddressSanitizer and
# UndefinedBehaviorSanitizer, and the data plane's (threads, strands,
# shards) with ThreadSanitizer, each in a build of its own that compiles
# only what those tests link.
ASAN_DIR := build-asan
TSAN_DIR := build-tsan
UNIT_TESTS := status_test json_test local_blob_store_test tree_test directory_test sqlite_metadata_store_test \
  manifest_test router_test websocket_scanner_test static_site_test scanner_test protocol_test http_server_test \
  deadlines_test start_check_test instance_state_test stems_test log_store_test pool_test deployer_test \
  build_queue_test api_client_test metrics_test etcd_metadata_store_test s3_blob_store_test
DATA_PLANE_TESTS := http_server_test deadlines_test instance_state_test stems_test pool_test log_store_test \
  start_check_test router_test metrics_test etcd_metadata_store_test

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

$(ASAN_DIR)/build.ninja:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O0 -g1" \
	  -DNUBO_SANITIZE=address,undefined

$(TSAN_DIR)/build.ninja:
	cmake -S . -B $(TSAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1 -Wno-tsan" \
	  -DNUBO_SANITIZE=thread

test-sanitize: setup $(ASAN_DIR)/build.ninja $(TSAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS) --target $(UNIT_TESTS)
	cmake --build $(TSAN_DIR) -j $(JOBS) --target $(DATA_PLANE_TESTS)
	@scripts/run-sanitized $(ASAN_DIR) $(UNIT_TESTS)
	@scripts/run-sanitized $(TSAN_DIR) $(DATA_PLANE_TESTS)

bench: build
	bench/static.sh && bench/deploy.sh && bench/invoke.sh && bench/coldstart.sh && bench/native.sh && bench/build.sh && bench/noisy.sh && bench/websocket.sh && bench/split.sh && bench/env-redeploy.sh && bench/log-search.sh && bench/console.sh && bench/fleet.sh

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR) $(ASAN_DIR) $(TSAN_DIR)
