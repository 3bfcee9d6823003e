# quantscope — build, run, test.  `make run` and `make test` are the whole set-up on Debian 12.
#   make            the quantscope binary (CUDA objects too when nvcc exists)
#   make SAN=1 …    AddressSanitizer + UndefinedBehaviorSanitizer build (in build-san/)
#   make test       unit, golden, robustness and CLI tests (Criterion), and check-includes
#   make check-includes  the include graph has no cycle (between files or between folders)
#   make bench      timings (ratios against baselines measured in the same run)
#   make fuzz       libFuzzer harnesses, FUZZ_SECONDS each (default 60); a subset with
#                   FUZZ_BINS="build-fuzz/fuzz_hparams build-fuzz/fuzz_recipe"
#   make deps       install the Debian packages (as root) or print the apt-get line
#   make sample-models  retrain sample_models/ from the KJV text (about an hour on 2 cores)

DEB_PACKAGES := gcc make pkg-config libncurses-dev libopenblas-dev libcsv-dev libcjson-dev \
                libcriterion-dev libpcre2-dev tmux bible-kjv clang

CC      := gcc
SAN     ?= 0
BUILD   := build
OPT     := -O2
ifeq ($(SAN),1)
BUILD   := build-san
OPT     := -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
endif

# -ffp-contract=off everywhere: fused multiply-add changes quantized bytes (spec/ggml-types.md §3.6)
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -ffp-contract=off -pthread -MMD -MP
PCRE2_LIBS := $(shell pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8)
LDLIBS  := -lcjson -lcsv $(PCRE2_LIBS) -lopenblas -lm -pthread
CURSES_LIBS := $(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncursesw -ltinfo)

NVCC    := $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc 2>/dev/null))
CU_SRCS := $(wildcard cuda/*.cu)
ifeq ($(SAN),1)
NVCC    :=
endif
ifneq ($(and $(NVCC),$(CU_SRCS)),)
CUDA_DIR  := $(patsubst %/bin/nvcc,%,$(NVCC))
CFLAGS    += -DQS_HAVE_CUDA
CU_OBJS   := $(CU_SRCS:%.cu=$(BUILD)/%.o)
LDLIBS    += -L$(CUDA_DIR)/lib64 -lcudart_static -ldl -lrt -lstdc++
NVCCFLAGS := -O2 -std=c++17 -Xcompiler -ffp-contract=off,-Wall \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90
endif

# core/ in layers, each a folder (README "What is where"); every #include names its file from the
# repository root (-I.): #include "core/quant/quant.h"
CORE_DIRS := util quant formats model data recipe
CORE_SRCS := $(foreach d,$(CORE_DIRS),$(wildcard core/$(d)/*.c))
CLI_SRCS  := $(wildcard cli/*.c)
TUI_SRCS  := $(wildcard tui/*.c)
VIEW_SRCS := $(wildcard views/*.c)
TEST_SRCS := $(wildcard tests/*.c)
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o) $(CU_OBJS)
APP_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/%.o) $(TUI_SRCS:%.c=$(BUILD)/%.o) $(VIEW_SRCS:%.c=$(BUILD)/%.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/views/plot.o
LIBQS     := $(BUILD)/libqs.a
BIN       := quantscope
ifeq ($(SAN),1)
BIN       := $(BUILD)/quantscope
endif

.PHONY: all run test bench bench-models deps fuzz clean sample-data sample-models check-deps cuda-note check-includes
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. -c $< -o $@

# the 8-lane quantizer searches: AVX2 code, entered only after a run-time CPU check
$(BUILD)/core/quant/ggml_quants_simd.o: CFLAGS += -mavx2

# the quantized dot products (core/quant/qdot_kernels.inc): one source, three instruction sets,
# picked at run time by core/quant/qdot.c; -O3 for GCC's loop vectorizer (no -ffast-math: the float
# operations stay as written, so every variant returns the same bits); 256-bit vectors preferred
# in the AVX-512 build (one 512-bit accumulator chain was slower than two 256-bit ones)
$(BUILD)/core/quant/qdot_generic.o: CFLAGS += -O3
$(BUILD)/core/quant/qdot_avx2.o: CFLAGS += -O3 -mavx2 -mfma -mf16c
$(BUILD)/core/quant/qdot_avx512.o: CFLAGS += -O3 -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c -mprefer-vector-width=256

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -I. -c $< -o $@

$(LIBQS): $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(APP_OBJS) $(LIBQS) | cuda-note
	$(CC) $(CFLAGS) -o $@ $(APP_OBJS) $(LIBQS) $(LDLIBS) $(CURSES_LIBS)

cuda-note:
ifeq ($(NVCC),)
	@echo "note: nvcc not found (or SAN build): building the CPU-only binary, skipping cuda/"
endif

# ---- tests ----
UNIT := $(BUILD)/tests/unit
# the tests link the workbench's objects (but not main) for its tensor job (tests/test_worker.c)
TEST_APP_OBJS := $(filter-out $(BUILD)/cli/main.o $(BUILD)/views/plot.o,$(APP_OBJS))
$(UNIT): $(TEST_OBJS) $(TEST_APP_OBJS) $(LIBQS)
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJS) $(TEST_APP_OBJS) $(LIBQS) $(LDLIBS) $(CURSES_LIBS) -lcriterion

# The UI screens hold perplexities and KL divergences whose last digits depend on the sgemm kernel
# OpenBLAS picks for the CPU (SkylakeX/Cooperlake kernels round differently from Haswell/Zen), so
# tests pin the Haswell kernel wherever the CPU has AVX2.
TEST_BLAS_CORE ?= $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo Haswell)

# With the shared data beside the checkout (../shared), a test that skips for want of data fails
# instead (tests/testutil.h, tu_skip): the suite cannot go quietly green. QS_REQUIRE_SHARED=0 relaxes it.
QS_REQUIRE_SHARED ?= $(if $(wildcard ../shared/golden),1,0)
# the sanitizer build runs several times slower: the tests' wall-clock limits scale with it
QS_TIMEOUT_SCALE ?= $(if $(filter 1,$(SAN)),4,1)

# sample-data: the KJV splits (build/kjv) the calibration UI test calibrates on
test: deps
	@$(MAKE) --no-print-directory $(BIN) $(UNIT) sample-data check-includes
	$(if $(TEST_BLAS_CORE),OPENBLAS_CORETYPE=$(TEST_BLAS_CORE)) QS_BIN=$(abspath $(BIN)) LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp) \
	    QS_REQUIRE_SHARED=$(QS_REQUIRE_SHARED) QS_TIMEOUT_SCALE=$(QS_TIMEOUT_SCALE) ./$(UNIT) --jobs $$(nproc)

# ---- the include graph: no cycle between files, none between folders (tools/include_check.c) ----
INCLUDE_FILES = $(shell find core tui views cli tests bench cuda tools \( -name '*.[ch]' -o -name '*.inc' -o -name '*.def' \
                  -o -name '*.cu' -o -name '*.cuh' \) 2>/dev/null | sort)
$(BUILD)/tools/include_check: tools/include_check.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<
check-includes: $(BUILD)/tools/include_check
	@./$(BUILD)/tools/include_check $(INCLUDE_FILES)

# ---- benchmarks ----
BENCH_SRCS := $(wildcard bench/*.c)
$(BUILD)/bench/%: bench/%.c $(LIBQS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. -o $@ $< $(LIBQS) $(LDLIBS)

# bench_knob measures the workbench's worker: it links the TUI's objects (but not main)
$(BUILD)/bench/bench_knob: bench/bench_knob.c $(LIBQS) $(filter-out $(BUILD)/cli/main.o,$(APP_OBJS))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I. -o $@ $< $(filter-out $(BUILD)/cli/main.o,$(APP_OBJS)) $(LIBQS) $(LDLIBS) $(CURSES_LIBS)

# bench_model takes a model file: it runs on the synthetic real-shape models below instead
BENCH_LOOSE := $(filter-out $(BUILD)/bench/bench_model,$(BENCH_SRCS:%.c=$(BUILD)/%))
bench: $(BENCH_LOOSE) bench-models
	@for b in $(BENCH_LOOSE); do echo "== $$b"; env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./$$b || exit 1; done

# Real shapes with random weights (quantscope synth; a few GB in build/synth, never committed):
# TinyLlama 1.1B in F16, Q8_0 and Q4_K_M, Llama-3-8B in Q4_K_M. OpenBLAS as a user's machine
# runs it (OPENBLAS_CORETYPE/L2_SIZE unset). llama-perplexity on the same shapes, 2 threads:
# F16 9.3 s / 2.2 GB and Q4_K_M 10.6 s / 1.2 GB for 4 passes of 256 tokens with loading
# (shared/spec/anchors.md §7.3).
SYNTH := $(BUILD)/synth
SYNTH_MODELS := $(SYNTH)/tinyllama-f16.gguf $(SYNTH)/tinyllama-q8_0.gguf $(SYNTH)/tinyllama-Q4_K_M.gguf \
                $(SYNTH)/llama-8b-Q4_K_M.gguf
SPM_VOCAB := $(wildcard ../shared/vocab/ggml-vocab-llama-spm.gguf)
BPE_VOCAB := $(wildcard ../shared/vocab/ggml-vocab-llama-bpe.gguf)
$(SYNTH)/tinyllama-%.gguf: | $(BIN)
	@mkdir -p $(SYNTH)
	./$(BIN) synth --shape tinyllama --type $* $(if $(SPM_VOCAB),--vocab $(SPM_VOCAB)) -o $@
$(SYNTH)/llama-8b-%.gguf: | $(BIN)
	@mkdir -p $(SYNTH)
	./$(BIN) synth --shape llama-8b --type $* $(if $(BPE_VOCAB),--vocab $(BPE_VOCAB)) -o $@
bench-models: $(BUILD)/bench/bench_model $(BUILD)/bench/bench_knob $(SYNTH_MODELS)
	@echo "== $(BUILD)/bench/bench_model (each model in its own process: peak RSS is per process)"
	@for m in $(SYNTH_MODELS); do env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./$(BUILD)/bench/bench_model $$m $$(basename $$m .gguf) || exit 1; done
	@echo "== $(BUILD)/bench/bench_knob on the 1.1B F16 and the 8B-shaped Q4_K_M (each in its own process)"
	@for m in $(SYNTH)/tinyllama-f16.gguf $(SYNTH)/llama-8b-Q4_K_M.gguf; do env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./$(BUILD)/bench/bench_knob $$m || exit 1; done

# ---- fuzzing (clang libFuzzer) ----
FUZZ_SECONDS ?= 60
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)
# -mavx2: the AVX2 quantizer searches (entered after a CPU check) build in the same clang command
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -g -O1 -ffp-contract=off -mavx2 -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
build-fuzz/%: tests/fuzz/%.c $(CORE_SRCS)
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(filter-out core/model/backend.c,$(CORE_SRCS)) core/model/backend.c -lcjson -lcsv $(PCRE2_LIBS) -lopenblas -lm -pthread

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$n for $(FUZZ_SECONDS) s"; \
	  ./$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-fuzz/ \
	    build-fuzz/corpus-$$n tests/fuzz/seeds-$${n#fuzz_} || exit 1; done

# ---- dependencies ----
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; } || exit 1; \
	else \
	  echo "missing Debian packages; run as root:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y$$missing"; exit 1; \
	fi

# the model `make run` opens in the workbench: the bundled sample model once trained
# (issue #4), else the reference model beside the checkout
MODEL ?= $(firstword $(wildcard sample_models/kjv-small.gguf sample_models/kjv-tiny.gguf ../shared/models/stories260K.gguf))
run: deps
	@$(MAKE) --no-print-directory $(BIN) sample-data
	@if [ -z "$(MODEL)" ]; then echo "make run: no model found; pass MODEL=path/to/model.gguf"; exit 1; fi
	./$(BIN) $(MODEL) --calib $(KJV)/calib.txt --eval $(KJV)/eval.txt

# ---- sample models (sample_models/README.md) ----
# The KJV text from Debian's bible-kjv, verse numbers and blank lines stripped, headings kept;
# chapters split deterministically: chapter k goes to eval when k mod 100 = 50, to calib when
# k mod 100 = 51, else to train.
KJV := build/kjv
sample-data: $(KJV)/train.txt
$(KJV)/train.txt:
	@command -v bible >/dev/null || { echo "sample-data: needs the bible-kjv package (make deps)"; exit 1; }
	mkdir -p $(KJV) && rm -f $(KJV)/*.txt
	bible -l0 gen1:1-rev22:21 | awk -v out=$(KJV) ' \
	  /^$$/ { next } \
	  /^ +[0-9]+ / { sub(/^ +[0-9]+ /, ""); print > f; next } \
	  { ch++; f = out (ch % 100 == 50 ? "/eval.txt" : ch % 100 == 51 ? "/calib.txt" : "/train.txt"); print > f }'

SAMPLE := build/sample
$(KJV)/vocab.gguf: $(KJV)/train.txt | $(BIN)
	./$(BIN) vocab --data $< --size 2048 -o $@

# F32 training output, then kjv-small as F16 (< 50 MB) and kjv-tiny also as an HF directory
$(SAMPLE)/%.f32.gguf: sample_models/%.json $(KJV)/vocab.gguf | $(BIN)
	mkdir -p $(SAMPLE)
	./$(BIN) train --config $< --data $(KJV)/train.txt --eval $(KJV)/eval.txt --vocab $(KJV)/vocab.gguf \
	  --log $(SAMPLE)/$*.loss.csv --checkpoint-every 100 -o $@

sample-models: $(SAMPLE)/kjv-tiny.f32.gguf $(SAMPLE)/kjv-small.f32.gguf
	cp $(SAMPLE)/kjv-tiny.f32.gguf sample_models/kjv-tiny.gguf
	./$(BIN) export $(SAMPLE)/kjv-small.f32.gguf --type f16 -o sample_models/kjv-small.gguf
	./$(BIN) export sample_models/kjv-tiny.gguf --hf sample_models/kjv-tiny-hf
	cp $(SAMPLE)/*.loss.csv sample_models/

clean:
	rm -rf build build-san build-fuzz quantscope

-include $(shell find build build-san -name '*.d' 2>/dev/null)
