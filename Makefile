# Waymark build. `make` builds, `make test` sets up and runs every test,
# `make run` sets up, builds and starts the server with a demo, `make bench`
# prints the benchmark tables. `make SANITIZE=address,undefined test` too.

CC      ?= cc
CSTD    := -std=c17
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
DEFS    := -D_GNU_SOURCE
CFLAGS  += $(CSTD) $(OPT) $(WARN) $(DEFS) -Iinclude -Isrc -pthread
LDLIBS  += -llz4 -lzstd -lmicrohttpd -llmdb -lsqlite3 -lroaring -lz -lcurl -lcrypto -lpthread -lm

BUILD   ?= build
ifneq ($(SANITIZE),)
  CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
  LDFLAGS += -fsanitize=$(SANITIZE)
  BUILD   := build-san
endif

LIB_SRC   := $(shell find src -name '*.c' ! -path 'src/cli/*' | sort)
CLI_SRC   := $(shell find src/cli -name '*.c' | sort)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
# `make SIMDJSON=1`: NDJSON lines parsed by simdjson (src/core/json_simdjson.cpp),
# the build the import measurement of docs/decisions.md compared; off by default.
ifeq ($(SIMDJSON),1)
  CFLAGS  += -DWM_WITH_SIMDJSON
  LIB_OBJ += $(BUILD)/src/core/json_simdjson.o
  LDLIBS  += -lsimdjson -lstdc++
endif
LIB       := $(BUILD)/libwaymark.a
BIN       := $(BUILD)/waymark

UNIT_SRC  := $(shell find tests/unit -name 'test_*.c' 2>/dev/null | sort)
UNIT_BIN  := $(UNIT_SRC:%.c=$(BUILD)/%)
FUZZ_DIRS := $(shell find tests/fuzz -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort)
FUZZ_REPLAY := $(FUZZ_DIRS:%=$(BUILD)/%/replay)
BENCH_SRC := $(shell find bench -maxdepth 1 -name '*.c' 2>/dev/null | sort)
BENCH_BIN := $(BENCH_SRC:%.c=$(BUILD)/%)

.PHONY: all bootstrap test unit fuzz-replay integration compat run bench clean crash-test fuzz format web

all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) -lcmocka $(LDLIBS)

$(BUILD)/tests/fuzz/%/replay: tests/fuzz/%/fuzz.c tests/fuzz/replay_main.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay_main.c $(LIB) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(BENCH_LIBS_$*) $(LDLIBS)

# JSON bake-off: Debian's parsers, simdjson through a small C++ shim.
BENCH_LIBS_part_codec :=
BENCH_LIBS_json_bakeoff := $(BUILD)/bench/json_simdjson_shim.o -ljansson -ljson-c -lyajl -lsimdjson -lstdc++
$(BUILD)/bench/json_bakeoff: $(BUILD)/bench/json_simdjson_shim.o
$(BUILD)/bench/json_simdjson_shim.o: bench/json_simdjson_shim.cpp
	@mkdir -p $(dir $@)
	g++ -std=c++17 -O2 -g -Wall -Wextra -c $< -o $@

$(BUILD)/src/core/json_simdjson.o: src/core/json_simdjson.cpp src/core/json_simdjson.h
	@mkdir -p $(dir $@)
	g++ -std=c++17 $(OPT) -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude -Isrc -c $< -o $@

# The web console (web/, docs/console.md): npm ci when node_modules is absent
# or older than the lock file, then the type check and `vite build` into
# web/dist, which `waymark serve` serves at `/`.
WEB_SRC   := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json
WEB_STAMP := web/node_modules/.package-lock.json

web: web/dist/index.html

$(WEB_STAMP): web/package-lock.json web/package.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

web/dist/index.html: $(WEB_STAMP) $(WEB_SRC)
	cd web && nice npx tsc --noEmit && nice npx vite build --logLevel warn

bootstrap:
	@scripts/bootstrap

test: bootstrap
	@$(MAKE) --no-print-directory build-tests web
	@BUILD=$(BUILD) tests/run-all

build-tests: $(BIN) $(UNIT_BIN) $(FUZZ_REPLAY)

unit: $(UNIT_BIN)
	@BUILD=$(BUILD) tests/run-all unit

run: bootstrap $(BIN)
	@$(MAKE) --no-print-directory web
	@scripts/run-demo

bench: bootstrap $(BIN) $(BENCH_BIN)
	@BUILD=$(BUILD) bench/run-all

crash-test: bootstrap $(BIN)
	@CRASH_ROUNDS=$${CRASH_ROUNDS:-200} python3 tests/integration/test_crash.py

# libFuzzer builds (clang); `make fuzz` runs each target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz: bootstrap
	@scripts/fuzz $(FUZZ_SECONDS)

format:
	clang-format -i $$(find src include tests bench -name '*.[ch]')

clean:
	rm -rf build build-san build-fuzz web/dist

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
