# mod_zeq_e2e: build with apxs, test against Debian's apache2, run the demo.
#   make          build .libs/mod_zeq_e2e.so (-Wall -Wextra -Werror)
#   make test     C unit tests + the Apache::Test suite (installs what it misses)
#   make test SANITIZE=1  the same with the module, the test module and the
#                 unit tests built with AddressSanitizer and UBSan (t/sanitize)
#   make fuzz     each libFuzzer harness of t/fuzz/ for FUZZ_SECONDS (300)
#   make test-module  build/.libs/mod_zeq_test.so, the suite's test handlers
#   make run      the demo on 127.0.0.1:$(PORT) (installs what it misses)
#   make bench    the benchmark: table, docs/PERFORMANCE.md and plots
#                 (BENCH_QUICK=1: every phase shortly, into build/bench-quick/)
#   make install  install the module and conf/zeq_e2e.{load,conf} (a2enmod zeq_e2e)
#   make deb      build/deb/libapache2-mod-zeq-e2e_VERSION_ARCH.deb (dpkg-buildpackage)
#   make test-deb lintian, then the package installed, used and purged on this
#                 machine's own apache2 (as root; t/deb/run)
#   make version  the module's version (ZEQ_E2E_VERSION in include/mod_zeq_e2e.h)

APXS    ?= $(shell command -v apxs 2>/dev/null || echo /usr/bin/apxs)
PORT    ?= 8080
BUILD   := build
SOURCES := mod_zeq_e2e.c src/zeq_config.c src/zeq_envelope.c src/zeq_proto.c \
           src/zeq_gate.c src/zeq_exchange.c src/zeq_spool.c src/zeq_body.c \
           src/zeq_kex.c \
           src/zeq_record.c src/zeq_seal.c src/zeq_replay.c src/zeq_sessrec.c \
           src/zeq_remote.c src/zeq_redis.c src/zeq_memcache.c \
           src/zeq_store.c src/zeq_stats.c src/zeq_status.c \
           src/zeq_session.c src/zeq_handshake.c src/zeq_request.c \
           src/zeq_response.c src/zeq_error.c src/zeq_client.c \
           src/zeq_frame.c src/zeq_ws.c src/zeq_limit.c src/zeq_guard.c \
           src/zeq_reccache.c src/zeq_wintab.c
HEADERS := $(wildcard src/*.h include/*.h)
WARN    := -std=c11 -Wall -Wextra -Werror
MODULE  := .libs/mod_zeq_e2e.so
# SANITIZE=1: the module, the test module and the unit tests built with
# AddressSanitizer and UndefinedBehaviorSanitizer. $(FLAVOUR) records which
# build the tree holds: each of them depends on it, and it changes only when
# the flavour does, so that switching rebuilds them all (never a mix).
ifeq ($(SANITIZE),1)
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=undefined -g
else
SAN     :=
endif
FLAVOUR := $(BUILD)/flavour
FLAVOUR_NAME := $(if $(SAN),sanitize,plain)
# Pure parts, unit-tested and fuzzed without httpd.
PURE    := src/zeq_envelope.c src/zeq_proto.c src/zeq_frame.c src/zeq_kex.c \
           src/zeq_record.c src/zeq_seal.c src/zeq_replay.c src/zeq_sessrec.c \
           src/zeq_limit.c src/zeq_reccache.c src/zeq_wintab.c
UNIT    := $(patsubst t/unit/%.c,$(BUILD)/%,$(wildcard t/unit/test_*.c))

# Debian packages: to build, to test, to run the demo.
DEPS_BUILD := apache2 apache2-dev libssl-dev libcjson-dev libhiredis-dev gcc make
DEPS_TEST  := $(DEPS_BUILD) libapache2-mod-perl2 libcryptx-perl libwww-perl \
              libjson-pp-perl libapache2-mod-php \
              curl openssl redis-server memcached
DEPS_RUN   := $(DEPS_BUILD) openssl
DEPS_DEB   := $(DEPS_BUILD) build-essential debhelper dpkg-dev
DEPS_TEST_DEB := $(DEPS_DEB) lintian curl nodejs

# The module's version, written once: include/mod_zeq_e2e.h.
VERSION  := $(shell sed -n 's/^[#]define ZEQ_E2E_VERSION *"\([^"]*\)".*/\1/p' include/mod_zeq_e2e.h)
DEB_NAME := libapache2-mod-zeq-e2e
DEB_DIR  := $(BUILD)/deb
DEB      := $(DEB_DIR)/$(DEB_NAME)_$(VERSION)_$(shell dpkg --print-architecture 2>/dev/null).deb

DEPS_BENCH := $(DEPS_BUILD) openssl gnuplot-nox
# Debian's clang and its compiler-rt (libFuzzer, the sanitizers' runtimes).
DEPS_FUZZ  := $(DEPS_BUILD) clang libclang-rt-dev

.PHONY: all install test test-module unit run bench clean deps-build deps-test \
        deps-run deps-bench deps-deb deps-test-deb deb test-deb version \
        fuzz deps-fuzz replay FORCE

all: $(MODULE)

CLIENT_JS := client/zeq-e2e-client.js

# The browser library, embedded as a C array with its ETag (SHA-256 prefix).
$(BUILD)/zeq_client_js.h: $(CLIENT_JS) Makefile
	@mkdir -p $(BUILD)
	@{ echo "/* generated from $(CLIENT_JS) by make: do not edit */"; \
	  echo "#define ZEQ_CLIENT_JS_ETAG \"\\\"$$(sha256sum $(CLIENT_JS) | cut -c1-32)\\\"\""; \
	  echo "static const char zeq_client_js[] = {"; \
	  od -An -v -tx1 $(CLIENT_JS) | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo "};"; } > $@.tmp && mv $@.tmp $@

# "plain" or "sanitize" and the flags; rewritten only when that changes.
$(FLAVOUR): FORCE
	@mkdir -p $(BUILD)
	@f='$(strip $(FLAVOUR_NAME) $(SAN))'; [ "$$(cat $@ 2>/dev/null)" = "$$f" ] || echo "$$f" > $@

$(MODULE): $(SOURCES) $(HEADERS) Makefile src/exports.map $(BUILD)/zeq_client_js.h $(FLAVOUR)
	@mkdir -p $(BUILD)
	@echo "apxs -c $(SOURCES)$(if $(SAN), ($(FLAVOUR_NAME))) (log: $(BUILD)/apxs.log)"
	@$(APXS) -c -n zeq_e2e -Iinclude -Isrc -I$(BUILD) \
	  $(addprefix -Wc$(comma),$(WARN) $(SAN)) $(addprefix -Wl$(comma),$(SAN)) \
	  -Wl,-Wl$(comma)--version-script=src/exports.map \
	  $(SOURCES) -lcrypto -lcjson -lhiredis > $(BUILD)/apxs.log 2>&1 \
	  || { grep -a -E ': (error|warning|note):' $(BUILD)/apxs.log || cat $(BUILD)/apxs.log; exit 1; }

comma := ,

# Test handlers of the Apache::Test suite (t/readers.t), loaded only by
# t/conf/extra.conf.in; never installed. t/run-tests builds it.
TEST_MODULE := $(BUILD)/.libs/mod_zeq_test.so

$(TEST_MODULE): t/modules/mod_zeq_test.c Makefile $(FLAVOUR)
	@mkdir -p $(BUILD)
	@echo "apxs -c t/modules/mod_zeq_test.c$(if $(SAN), ($(FLAVOUR_NAME))) (log: $(BUILD)/apxs-test.log)"
	@$(APXS) -c -n zeq_test -o $(BUILD)/mod_zeq_test.la \
	  $(addprefix -Wc$(comma),$(WARN) $(SAN)) $(addprefix -Wl$(comma),$(SAN)) \
	  t/modules/mod_zeq_test.c -lcrypto > $(BUILD)/apxs-test.log 2>&1 \
	  || { grep -a -E ': (error|warning|note):' $(BUILD)/apxs-test.log || cat $(BUILD)/apxs-test.log; exit 1; }

test-module: $(TEST_MODULE)

# Installs the Debian packages in $(1) that are missing (as root: apt-get).
define install_deps
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run as root, or: apt-get install$$missing" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
endef

deps-build:
	$(call install_deps,$(DEPS_BUILD))
deps-test:
	$(call install_deps,$(DEPS_TEST))
deps-run:
	$(call install_deps,$(DEPS_RUN))
deps-deb:
	$(call install_deps,$(DEPS_DEB))
deps-test-deb:
	$(call install_deps,$(DEPS_TEST_DEB))
deps-bench:
	$(call install_deps,$(DEPS_BENCH))
deps-fuzz:
	$(call install_deps,$(DEPS_FUZZ))

$(BUILD)/%: t/unit/%.c $(PURE) $(PURE:.c=.h) src/zeq_result.h $(wildcard t/unit/*.h) $(FLAVOUR)
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(SAN) -D_POSIX_C_SOURCE=200809L -Isrc -Iinclude $< $(PURE) \
	  -pthread -lcrypto -lcjson -o $@

# The spool's test also needs APR and APR-util (src/zeq_spool.c has no
# httpd header); the other unit tests link the pure parts only.
APR_CFLAGS := $(shell apr-1-config --cflags --cppflags --includes 2>/dev/null) \
              $(shell apu-1-config --includes 2>/dev/null)
APR_LIBS   := $(shell apu-1-config --link-ld 2>/dev/null) \
              $(shell apr-1-config --link-ld 2>/dev/null)
SPOOL      := src/zeq_spool.c src/zeq_envelope.c

$(BUILD)/test_spool: t/unit/test_spool.c $(SPOOL) $(wildcard src/zeq_spool.h src/zeq_envelope.h t/unit/*.h) $(FLAVOUR)
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(SAN) -Isrc -Iinclude $(APR_CFLAGS) $< $(SPOOL) \
	  $(APR_LIBS) -lcrypto -o $@

BODY       := src/zeq_body.c src/zeq_spool.c src/zeq_record.c src/zeq_envelope.c

$(BUILD)/test_body: t/unit/test_body.c $(BODY) $(BODY:.c=.h) src/zeq_result.h $(wildcard t/unit/*.h) $(FLAVOUR)
	@mkdir -p $(BUILD)
	$(CC) $(WARN) $(SAN) -Isrc -Iinclude $(APR_CFLAGS) $< $(BODY) \
	  $(APR_LIBS) -lcrypto -o $@

# The fuzz harnesses (t/fuzz/fuzz_NAME.c, corpus in t/fuzz/corpus/NAME/):
# built by any compiler with t/fuzz/replay.c's main(), which replays the
# corpus (make unit, make test); built by clang with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer for make fuzz (t/fuzz/run).
FUZZ_NAMES   := $(patsubst t/fuzz/fuzz_%.c,%,$(wildcard t/fuzz/fuzz_*.c))
REPLAY       := $(addprefix $(BUILD)/replay_,$(FUZZ_NAMES))
REPLAY_OBJS  := $(patsubst src/%.c,$(BUILD)/replay-obj/%.o,$(PURE))
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BINS    := $(addprefix $(FUZZ_DIR)/fuzz_,$(FUZZ_NAMES))
FUZZ_OBJS    := $(patsubst src/%.c,$(FUZZ_DIR)/obj/%.o,$(PURE))
FUZZ_SECONDS ?= 300
FUZZ_CC      ?= clang
FUZZ_SAN     := -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_HDRS    := $(PURE:.c=.h) src/zeq_result.h
.SECONDARY: $(REPLAY_OBJS) $(FUZZ_OBJS)

$(BUILD)/replay-obj/%.o: src/%.c $(FUZZ_HDRS)
	@mkdir -p $(BUILD)/replay-obj
	$(CC) $(WARN) -D_POSIX_C_SOURCE=200809L -Isrc -Iinclude -c $< -o $@

$(BUILD)/replay_%: t/fuzz/fuzz_%.c t/fuzz/replay.c $(wildcard t/fuzz/*.h) $(REPLAY_OBJS)
	$(CC) $(WARN) -D_POSIX_C_SOURCE=200809L -Isrc -Iinclude $< t/fuzz/replay.c \
	  $(REPLAY_OBJS) -lcrypto -lcjson -o $@

$(FUZZ_DIR)/obj/%.o: src/%.c $(FUZZ_HDRS)
	@mkdir -p $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(WARN) -D_POSIX_C_SOURCE=200809L $(FUZZ_SAN) \
	  -fsanitize=fuzzer-no-link,address,undefined -Isrc -Iinclude -c $< -o $@

$(FUZZ_DIR)/fuzz_%: t/fuzz/fuzz_%.c $(wildcard t/fuzz/*.h) $(FUZZ_OBJS)
	$(FUZZ_CC) $(WARN) -D_POSIX_C_SOURCE=200809L $(FUZZ_SAN) \
	  -fsanitize=fuzzer,address,undefined -Isrc -Iinclude $< $(FUZZ_OBJS) \
	  -lcrypto -lcjson -o $@

replay: $(REPLAY)
	@set -e; for n in $(FUZZ_NAMES); do $(BUILD)/replay_$$n t/fuzz/corpus/$$n; done

# Under SANITIZE=1 with LeakSanitizer on: a unit test leaking fails.
UNIT_ENV := $(if $(SAN),ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)

unit: $(UNIT) $(REPLAY)
	@set -e; for t in $(UNIT); do echo "== $$t"; $(UNIT_ENV) $$t; done
	@echo "== the fuzz corpus (t/fuzz/corpus/), replayed"
	@$(MAKE) --no-print-directory replay

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory -j2 $(FUZZ_BINS)
	FUZZ_SECONDS=$(FUZZ_SECONDS) t/fuzz/run $(FUZZ_DIR) $(FUZZ_NAMES)

test: deps-test
	client/test/run --deps
	$(MAKE) all unit test-module
	t/run-tests
	client/test/run

# The load generator: OpenSSL only, none of the module's code.
LOADGEN := $(BUILD)/zeqload

$(LOADGEN): bench/zeqload.c Makefile
	@mkdir -p $(BUILD)
	$(CC) -O2 $(WARN) bench/zeqload.c -lcrypto -lm -o $@

bench: deps-bench
	$(MAKE) all $(LOADGEN)
	bench/run

run: deps-run
	$(MAKE) all
	PORT=$(PORT) demo/run

install: $(MODULE)
	$(APXS) -i -n zeq_e2e mod_zeq_e2e.la
	install -d $(DESTDIR)/etc/apache2/mods-available
	install -m 644 conf/zeq_e2e.load conf/zeq_e2e.conf $(DESTDIR)/etc/apache2/mods-available/

version:
	@echo $(VERSION)

# The Debian package, from the tree as it is (without what git ignores),
# copied to $(DEB_DIR)/src/: dpkg-buildpackage writes its results into the
# parent of the directory it builds, which must not be the checkout's.
DEB_SRC := $(DEB_DIR)/src/$(DEB_NAME)-$(VERSION)

deb: deps-deb
	@test -n "$(VERSION)" || { echo "no ZEQ_E2E_VERSION in include/mod_zeq_e2e.h" >&2; exit 1; }
	@v=$$(dpkg-parsechangelog -S Version); [ "$$v" = "$(VERSION)" ] || { \
	  echo "debian/changelog is at $$v, include/mod_zeq_e2e.h at $(VERSION): add a debian/changelog entry" >&2; \
	  exit 1; }
	@rm -rf $(DEB_DIR) && mkdir -p $(DEB_SRC)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z --cached --others --exclude-standard \
	    | perl -0 -ne 'chomp; print "$$_\0" if -e $$_ && !-d $$_' \
	    | tar --null -T - -cf - | tar -C $(DEB_SRC) -xf -; \
	else \
	  tar --exclude=./build --exclude=./.libs --exclude=./src/.libs --exclude='*.o' \
	      --exclude='*.lo' --exclude='*.slo' --exclude='*.la' --exclude=node_modules \
	      --exclude=./t/logs --exclude=./t/var --exclude=./t/htdocs/gen -cf - . \
	    | tar -C $(DEB_SRC) -xf -; \
	fi
	@echo "dpkg-buildpackage -us -uc -b in $(DEB_SRC) (log: $(DEB_DIR)/build.log)"
	@cd $(DEB_SRC) && dpkg-buildpackage -us -uc -b > ../../build.log 2>&1 \
	  || { tail -n 30 ../../build.log >&2; exit 1; }
	@mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/src/*.buildinfo $(DEB_DIR)/src/*.changes $(DEB_DIR)/
	@rm -rf $(DEB_DIR)/src
	@test -f $(DEB) && echo "built $(DEB)"

test-deb: deps-test-deb deb
	t/deb/run $(DEB)

clean:
	rm -rf .libs $(BUILD) *.lo *.la *.o *.slo src/*.lo src/*.o src/*.slo src/.libs \
	  t/modules/*.lo t/modules/*.o t/modules/*.slo t/modules/.libs
