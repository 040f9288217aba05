# longsparse: the two set-up commands.
#   make demo   install what is missing, build, fetch the default model, run the main job
#   make test   same set-up, then the whole test suite
BUILD ?= build
SAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build model demo test test-asan bench clean

all: build

deps:
	@scripts/setup-deps

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

model: deps
	@scripts/fetch-model smollm2

demo: build model
	$(BUILD)/longsparse bench attention --compare-dense

test: build model
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (debug-friendly, slower).
test-asan: deps model
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLONGSPARSE_SANITIZE=ON -DLONGSPARSE_BENCH=OFF
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

bench: build
	bench/run-all.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
