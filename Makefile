# rctd: build, test, install, bench.  See README.md.
CC      ?= cc
PREFIX  ?= /usr/local
PKGS    := hdf5 libzstd gsl yaml-0.1 zlib
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE= -O2 -g -Wall -Wextra -Werror -pthread \
               -DRCTD_VERSION='"$(VERSION)"' -Ikernels
ifeq ($(SANITIZE),1)
CFLAGS_BASE += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS     += -fsanitize=address,undefined
BUILD       := build/asan
else ifeq ($(SANITIZE),thread)
# ThreadSanitizer (README: Two commands); no CUDA (its runtime's threads are not
# instrumented), and no target_clones (kernels/cpu/irwls.c says why).
CFLAGS_BASE += -O1 -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS     += -fsanitize=thread
NO_CUDA     := 1
BUILD       := build/tsan
else ifeq ($(SANITIZE),)
BUILD       := build/release
else
$(error SANITIZE=$(SANITIZE): give 1 (AddressSanitizer and UBSan) or thread)
endif
# FUZZ=1: the libFuzzer build (clang, AddressSanitizer, UndefinedBehaviorSanitizer, no CUDA);
# see `make fuzz` below.
ifeq ($(FUZZ),1)
CC          := clang
NO_CUDA     := 1
CFLAGS_BASE += -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
               -fno-sanitize-recover=all
LDFLAGS     += -fsanitize=address,undefined
BUILD       := build/fuzz
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(CFLAGS_BASE) $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm -lpthread

# CUDA backend: built and linked only when nvcc is on the PATH (NO_CUDA=1 turns it off).
NVCC := $(if $(NO_CUDA),,$(shell command -v nvcc 2>/dev/null))
CUDA_SRC := $(wildcard kernels/cuda/*.cu)
ifneq ($(and $(NVCC),$(CUDA_SRC)),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIB  := $(BUILD)/librctd-cuda.a
CFLAGS    += -DRCTD_HAVE_CUDA=1
LDLIBS    += -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++
# -fmad=false: no a*b+c contraction, so device arithmetic rounds as the CPU kernels' C does.
NVCCFLAGS ?= -O3 -std=c++17 -arch=sm_90 -fmad=false -Ikernels -Xcompiler -Wall,-fPIC
endif

# lib/ by layer, bottom up (lib/README.md): each folder may include its own headers and those
# of the layers below it.
LIB_LAYERS := common format io stage cli
LIB_SRC    := $(wildcard $(LIB_LAYERS:%=lib/%/*.c))
LIB_INC    := $(LIB_LAYERS:%=-Ilib/%)
INC_common := -Ilib/common
INC_format := $(INC_common) -Ilib/format
INC_io     := $(INC_format) -Ilib/io
INC_stage  := $(INC_io) -Ilib/stage
INC_cli    := $(INC_stage) -Ilib/cli
$(foreach l,$(LIB_LAYERS),$(eval $(BUILD)/lib/$(l)/%.o: LIB_INC = $(INC_$(l))))
KERNEL_SRC := $(wildcard kernels/*.c kernels/cpu/*.c)
CMD_SRC    := $(wildcard cmd/*.c)
TEST_SRC   := $(wildcard tests/*.c)
BENCH_SRC  := $(wildcard bench/*.c)

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
KERNEL_OBJ := $(KERNEL_SRC:%.c=$(BUILD)/%.o)
CUDA_OBJ   := $(CUDA_SRC:%.cu=$(BUILD)/%.o)
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/%.o)
BINS       := $(patsubst cmd/%.c,bin/%,$(CMD_SRC))
ifneq ($(SANITIZE),)
BINS       := $(patsubst cmd/%.c,$(BUILD)/bin/%,$(CMD_SRC))
endif
LIBRCTD    := $(BUILD)/librctd.a
LIBKERN    := $(BUILD)/librctd-kernels.a
# The CUDA backend uses the CPU kernels (host fallback) and the kernels' --device selection
# uses the CUDA backend: the kernels library is named on both sides of it.
ALL_LIBS   := $(LIBRCTD) $(LIBKERN) $(CUDA_LIB) $(if $(CUDA_LIB),$(LIBKERN))
GPU_BINS   := $(BUILD)/rctd-gpu-tests $(BUILD)/rctd-gpu-bench

.PHONY: all deps test test-run test-unit test-e2e test-gpu bench bench-gpu install clean format \
        demo demo-run test-slurm fuzz fuzz-run
# lib/ and kernels/ get the release build's archives only: a sanitizer build's copies would be
# newer than the release ones and stay after a later plain build.
PUBLIC_LIBS := $(if $(filter build/release,$(BUILD)),lib/librctd.a kernels/librctd-kernels.a \
               $(if $(CUDA_LIB),kernels/librctd-cuda.a))
all: $(BINS) $(PUBLIC_LIBS) $(if $(CUDA_LIB),$(GPU_BINS))

lib/librctd.a: $(LIBRCTD)
	cp $< $@
kernels/librctd-kernels.a: $(LIBKERN)
	cp $< $@
kernels/librctd-cuda.a: $(CUDA_LIB)
	cp $< $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIB_INC) -MMD -MP -c $< -o $@
$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIBRCTD): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBKERN): $(KERNEL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(CUDA_LIB): $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

bin/% $(BUILD)/bin/%: $(BUILD)/cmd/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)

$(BUILD)/rctd-tests: $(TEST_OBJ) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(TEST_OBJ) $(ALL_LIBS) $(LDLIBS)

# Missing Debian packages: installed when root, else the exact apt-get command is printed.
deps:
	@./scripts/setup.sh

# test and demo install what is missing first, then run in a fresh make (so that pkg-config
# sees the new packages).  The suite has two tiers (tests/test.h): the unit tests of lib/ and
# kernels/ (TEST; no binary needed: test-unit) and the end-to-end tests of the tools (TEST_E2E:
# test-e2e); test-run runs both.  FILTER=WORD runs the tests whose name or file contains WORD.
test: deps
	@$(MAKE) --no-print-directory test-run
TEST_ENV := RCTD_BIN=$(abspath $(dir $(firstword $(BINS)))) RCTD_REPO=$(CURDIR)
test-run: $(BINS) $(BUILD)/rctd-tests
	$(TEST_ENV) $(BUILD)/rctd-tests $(FILTER)
test-unit: $(BUILD)/rctd-tests
	RCTD_REPO=$(CURDIR) $(BUILD)/rctd-tests --unit $(FILTER)
test-e2e: $(BINS) $(BUILD)/rctd-tests
	$(TEST_ENV) $(BUILD)/rctd-tests --e2e $(FILTER)

# The Snakemake workflow on a single-node SLURM cluster started for the test (as root; installs
# slurmctld, slurmd, munge when missing; stops every daemon it started).  Not part of `test`.
test-slurm: deps
	@$(MAKE) --no-print-directory all
	tests/slurm/run.sh $(abspath bin)

# The demo: rctd run in doublet mode on the bundled spacexr vignette (data/vignette), writing
# an h5ad (a copy of the spatial h5ad with the results) and its HTML report, and printing the
# summary.
DEMO_OUT := out/demo/vignette_rctd.h5ad
demo: deps
	@$(MAKE) --no-print-directory demo-run
demo-run: all
	@mkdir -p $(dir $(DEMO_OUT))
	bin/rctd run --reference data/vignette/h5ad/reference.h5ad --reference-numi-col nUMI \
	  --cell-type-col cell_type_name \
	  --spatial data/vignette/h5ad/spatial.h5ad --mode doublet -o $(DEMO_OUT) \
	  --report $(DEMO_OUT:.h5ad=_report.html)

# Benchmarks: every bench/NAME.c is a program; bench/run.sh runs them all.
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LDLIBS)
bench: all $(BENCH_BINS)
	RCTD_BENCH_BIN=$(abspath $(BUILD)/bench) RCTD_BIN=$(abspath bin) ./bench/run.sh

# GPU tests and benchmark (need an NVIDIA GPU to run; built with `all` whenever CUDA is, so CI
# compiles them).  tests/gpu/test_*.c run under the test runner; tests/gpu/gpu_*.c are helpers
# (synthetic data) shared with bench/gpu/*.c.
GPU_HELP_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/gpu/gpu_*.c))
GPU_TEST_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/gpu/test_*.c)) $(GPU_HELP_OBJ) \
                 $(BUILD)/tests/runner.o
GPU_BENCH_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard bench/gpu/*.c)) $(GPU_HELP_OBJ)
$(BUILD)/rctd-gpu-tests: $(GPU_TEST_OBJ) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(GPU_TEST_OBJ) $(ALL_LIBS) $(LDLIBS)
$(BUILD)/rctd-gpu-bench: $(GPU_BENCH_OBJ) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(GPU_BENCH_OBJ) $(ALL_LIBS) $(LDLIBS)
test-gpu: $(BUILD)/rctd-gpu-tests
	RCTD_REPO=$(CURDIR) $(BUILD)/rctd-gpu-tests $(FILTER)
bench-gpu: $(BUILD)/rctd-gpu-bench
	RCTD_REPO=$(CURDIR) $(BUILD)/rctd-gpu-bench $(BENCH_ARGS)

# Fuzzing (tests/fuzz/README.md): each tests/fuzz/fuzz_NAME.c is a libFuzzer harness, built in
# build/fuzz with FUZZ=1 and run for FUZZ_SECONDS seconds from a seed corpus of the test fixtures.
# The HDF5 harnesses run build/release/rctd-fuzz-read (a plain build) per input.
FUZZ_SECONDS ?= 10
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_COMMON  := $(BUILD)/tests/fuzz/common.o
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_COMMON) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_COMMON) $(ALL_LIBS) $(LDLIBS)
$(BUILD)/rctd-fuzz-read: $(BUILD)/tests/fuzz/read_input.o $(FUZZ_COMMON) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
fuzz: deps
	@$(MAKE) --no-print-directory build/release/rctd-fuzz-read
	@$(MAKE) --no-print-directory FUZZ=1 fuzz-run
fuzz-run: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
	RCTD_FUZZ_READER=$(abspath build/release/rctd-fuzz-read) \
	  tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5

format:
	clang-format -i $(LIB_SRC) $(KERNEL_SRC) $(CMD_SRC) $(TEST_SRC) lib/*/*.h kernels/*.h kernels/common/*.h

clean:
	rm -rf build bin lib/librctd.a kernels/librctd-kernels.a kernels/librctd-cuda.a

-include $(shell find build -name '*.d' 2>/dev/null)
