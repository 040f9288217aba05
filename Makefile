# longsparse: the two set-up commands.
#   make demo   install what is missing, build, fetch the default model, run the main job
#   make test   same set-up, then the whole test suite
BUILD ?= build
SAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

VENV ?= build-venv
PY_BUILD ?= build-python

.PHONY: all deps build model models demo test test-asan bench clean python

all: build

deps:
	@scripts/setup-deps

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

model: deps
	@scripts/fetch-model smollm2

# Both models: SmolLM2 (the default) and Gemma 3 270M (32k context), which the tests also use.
models: deps
	@scripts/fetch-model all

# The main job: NIAH + passkey prompts at 4k tokens, evaluated with dense attention and two
# sparse prefill methods on SmolLM2-135M; prints the report table (demo-eval/report/).
demo: build model
	scripts/demo-eval.sh $(BUILD) demo-eval

# The Python package (pyproject.toml) in a virtual environment: build tools, numpy and pytest
# from PyPI, the package built in $(PY_BUILD) (kept, so a rebuild is incremental).
$(VENV)/bin/python: | deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q scikit-build-core nanobind numpy pytest

python: deps $(VENV)/bin/python
	$(VENV)/bin/pip install -q --no-build-isolation --config-settings=build-dir=$(PY_BUILD) .

test: build models python
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	LONGSPARSE_CLI=$(abspath $(BUILD))/longsparse OMP_WAIT_POLICY=PASSIVE $(VENV)/bin/python -m pytest -q python/tests

# The tests under AddressSanitizer + UndefinedBehaviorSanitizer (debug-friendly, slower). The
# llama.cpp reference test (the whole forward pass on five prompts, minutes under ASan) is left
# to `make test` unless ASAN_CTEST_EXCLUDE is emptied; the model still runs under ASan in the
# other model tests.
ASAN_CTEST_EXCLUDE ?= ModelReference
# -O1 with line tables only: half the build time of -O2 -g on 2 cores (7 vs 14 minutes), and
# reports still name file and line.
SAN_OPT ?= -O1 -g1
test-asan: deps models
	cmake -S . -B $(SAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$(SAN_OPT)" -DLONGSPARSE_SANITIZE=ON -DLONGSPARSE_BENCH=OFF
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) $(if $(ASAN_CTEST_EXCLUDE),-E '$(ASAN_CTEST_EXCLUDE)')

bench: build
	bench/attention.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(PY_BUILD) $(VENV)

# libFuzzer run of the GGUF reader (clang, ASan + UBSan): builds into build-fuzz and fuzzes for
# FUZZ_TIME seconds from the seed corpus fuzz/corpus/gguf; new inputs go to build-fuzz/corpus,
# crashing inputs to build-fuzz/artifacts/.
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 60
.PHONY: fuzz
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLONGSPARSE_FUZZ=ON -DLONGSPARSE_BENCH=OFF -DLONGSPARSE_NATIVE=OFF
	cmake --build $(FUZZ_BUILD) --target gguf_fuzz -j $(JOBS)
	mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/artifacts
	$(FUZZ_BUILD)/fuzz/gguf_fuzz -max_total_time=$(FUZZ_TIME) -max_len=4096 -timeout=10 -rss_limit_mb=2048 -dict=fuzz/gguf.dict -artifact_prefix=$(FUZZ_BUILD)/artifacts/ -print_final_stats=1 $(FUZZ_BUILD)/corpus fuzz/corpus/gguf
