# pgcheckd: plain GNU make.
#   make               build build/pgcheckd
#   make check         unit tests (normal and ASan+UBSan builds), generated-file checks, integration tests
#   make unit          unit tests only;  make integration   integration tests only
#   make asan          build build-asan/pgcheckd with AddressSanitizer and UndefinedBehaviorSanitizer
#   make demo          install what is missing, build, and run the embedded demo cluster
#   make demo-scaleout the same cluster registering itself into HAProxy and growing under read load
#   make install DESTDIR=... PREFIX=...
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
DESTDIR ?=
VERSION := 0.1.0

CC ?= cc
PYTHON ?= /usr/bin/python3
PKG_CONFIG ?= pkg-config
WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
	-Wcast-qual -Wformat=2 -Wno-format-nonliteral
WERROR ?= -Werror
CFLAGS ?= -O2 -g
# pkg-config is read only when a recipe first needs it, never while this file is parsed: on a fresh
# machine `make demo` and `make check` install it (and the -dev packages) first, in `deps`.
# Each value is computed once: a recursive variable that replaces itself with its value.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags libpq 2>/dev/null))$(PKG_CFLAGS)
# Debian's libev ships no .pc file: fall back to -lev
LIBEV = $(eval LIBEV := $(shell $(PKG_CONFIG) --libs libev 2>/dev/null || echo -lev))$(LIBEV)
# libsystemd is optional: with it, pgcheckd tells systemd READY, RELOADING, STOPPING and WATCHDOG
SYSTEMD_CFLAGS = $(eval SYSTEMD_CFLAGS := $(shell $(PKG_CONFIG) --exists libsystemd 2>/dev/null && echo -DHAVE_SYSTEMD))$(SYSTEMD_CFLAGS)
SYSTEMD_LIBS = $(eval SYSTEMD_LIBS := $(shell $(PKG_CONFIG) --libs libsystemd 2>/dev/null))$(SYSTEMD_LIBS)
PKG_LIBS = $(eval PKG_LIBS := $(shell $(PKG_CONFIG) --libs libpq 2>/dev/null || echo -lpq))$(PKG_LIBS)
# OpenSSL (Debian libssl-dev): the TLS ports (libssl) and the MAC of authenticated peers (libcrypto)
SSL_LIBS = $(eval SSL_LIBS := $(shell $(PKG_CONFIG) --libs libssl libcrypto 2>/dev/null || echo -lssl -lcrypto))$(SSL_LIBS)
# libcurl (Debian libcurl4-openssl-dev) and jansson (libjansson-dev): the etcd client ([dcs])
DCS_CFLAGS = $(eval DCS_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl jansson 2>/dev/null))$(DCS_CFLAGS)
DCS_LIBS = $(eval DCS_LIBS := $(shell $(PKG_CONFIG) --libs libcurl jansson 2>/dev/null || echo -lcurl -ljansson))$(DCS_LIBS)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DPGCHECKD_VERSION='"$(VERSION)"' $(WARNINGS) $(WERROR) $(CFLAGS) \
	-Iconf -Ichecks -Iagent -Iagent/core -Iagent/serve -Iagent/haproxy $(PKG_CFLAGS) $(SYSTEMD_CFLAGS) $(DCS_CFLAGS)
LIBS = $(SYSTEMD_LIBS) $(LIBEV) -lpthread $(PKG_LIBS) $(DCS_LIBS) $(SSL_LIBS) -lm
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

# the folders are the data flow (DESIGN.md): conf -> checks (what is measured) -> agent/core (pure
# decisions) -> agent/serve (answers) and agent/haproxy (the runtime API); agent/ wires them together
CORE_SRCS := agent/core/request.c agent/core/verdict.c agent/core/weight.c agent/core/node.c agent/core/fencing.c
SERVE_SRCS := agent/serve/agentline.c agent/serve/http.c agent/serve/render.c agent/serve/respond.c agent/serve/clusterview.c agent/serve/admin.c agent/serve/tls.c agent/serve/listener.c
HAPROXY_SRCS := agent/haproxy/runtimeapi.c agent/haproxy/worker.c agent/haproxy/registrar.c agent/haproxy/scaleout.c agent/haproxy/drainwait.c agent/haproxy/pusher.c
# what the core's unit tests link, and nothing more: no libev, libpq, OpenSSL or threads (`make core-check`)
CORE_LINK_SRCS := $(CORE_SRCS) conf/conf_values.c agent/log.c
SRCS := conf/conf.c conf/conf_values.c checks/host.c checks/poller.c checks/peers.c checks/dcs_answer.c checks/dcs.c \
	$(CORE_SRCS) agent/log.c agent/log_conninfo.c agent/ctl.c agent/daemon.c $(SERVE_SRCS) $(HAPROXY_SRCS)
MAIN := agent/main.c
UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
# the pure core's tests: linked with CORE_LINK_SRCS only, so a core file that reached for I/O fails to link
CORE_UNIT_TESTS := test_verdict test_weight test_request test_node test_fencing_time
HEADERS := $(wildcard conf/*.h checks/*.h agent/*.h agent/*/*.h)

.PHONY: core-check harness-check format format-check lint demo-scaleout readme all check unit unit-asan unit-valgrind integration integration-asan asan generated-check demo install clean deps
all: build/pgcheckd

build/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@
build-asan/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

build/pgcheckd: $(SRCS:%.c=build/%.o) build/$(MAIN:.c=.o)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)
build-asan/pgcheckd: $(SRCS:%.c=build-asan/%.o) build-asan/$(MAIN:.c=.o)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LIBS)
asan: build-asan/pgcheckd

build/tests/%: tests/unit/%.c $(SRCS:%.c=build/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS) -lcmocka
build-asan/tests/%: tests/unit/%.c $(SRCS:%.c=build-asan/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LIBS) -lcmocka
$(CORE_UNIT_TESTS:%=build/tests/%): build/tests/%: tests/unit/%.c $(CORE_LINK_SRCS:%.c=build/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lm -lcmocka
$(CORE_UNIT_TESTS:%=build-asan/tests/%): build-asan/tests/%: tests/unit/%.c $(CORE_LINK_SRCS:%.c=build-asan/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $^ -lm -lcmocka

unit: $(UNIT_TESTS:%=build/tests/%)
	@set -e; for t in $^; do echo "== $$t"; ./$$t; done
unit-asan: $(UNIT_TESTS:%=build-asan/tests/%)
	@set -e; for t in $^; do echo "== $$t (asan)"; ./$$t; done
# the unit tests under valgrind: any memory error or leak fails
unit-valgrind: $(UNIT_TESTS:%=build/tests/%)
	@set -e; for t in $^; do echo "== $$t (valgrind)"; \
		valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 ./$$t; done

# the C sources, formatted by the checked-in .clang-format; linted by cppcheck (Debian's)
FORMAT_SRCS = $(wildcard conf/*.[ch] checks/*.[ch] agent/*.[ch] agent/*/*.[ch] tests/unit/*.c tests/fuzz/*.[ch] bench/*.c)
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRCS) || { echo "run 'make format'"; exit 1; }
	@echo "format: clean"
# variableScope is left out: declarations open a block here, as in the models STYLE.md names
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability --suppress=variableScope \
		--inline-suppr --std=c11 -D_GNU_SOURCE -DHAVE_SYSTEMD -Iconf -Ichecks -Iagent -Iagent/core -Iagent/serve \
		-Iagent/haproxy conf checks agent
	@echo "lint: clean"

# the test harness's own shell helpers (a pass must never be reported as a fail, nor the reverse)
harness-check:
	@bash tests/packaging/report-test

# agent/core is pure: none of its files (nor its unit tests) may include libev, libpq, threads or sockets,
# even indirectly; its unit tests link without those libraries (see CORE_UNIT_TESTS)
core-check:
	@for f in $(CORE_SRCS) $(CORE_UNIT_TESTS:%=tests/unit/%.c); do \
		if $(CC) $(ALL_CFLAGS) -E -H $$f -o /dev/null 2>&1 | grep -E '^\.+ .*/(ev|libpq-fe|pthread|socket|ssl)\.h$$'; then \
			echo "$$f: agent/core must not include I/O headers"; exit 1; fi; done
	@$(MAKE) --no-print-directory $(CORE_UNIT_TESTS:%=build/tests/%)
	@echo "core: pure (no libev, libpq, threads or sockets), its unit tests linked without them"

# conf/pgcheckd.ini is generated from the key table: fail when it drifted
generated-check: build/pgcheckd
	@./build/pgcheckd --help-config=ini | diff -u conf/pgcheckd.ini - \
		|| { echo "conf/pgcheckd.ini is out of date: run 'make conf/pgcheckd.ini'"; exit 1; }
	@./build/pgcheckd -t -c conf/pgcheckd.ini >/dev/null
	@$(PYTHON) scripts/readme-keys --check build/pgcheckd
	@echo "generated files: up to date"

conf/pgcheckd.ini: $(SRCS) conf/conf_keys.h | build/pgcheckd
	./build/pgcheckd --help-config=ini > $@
readme: build/pgcheckd
	$(PYTHON) scripts/readme-keys build/pgcheckd

integration: build/pgcheckd
	$(PYTHON) -m pytest -q tests/integration
integration-asan: build-asan/pgcheckd
	PGCHECKD_BIN=$(CURDIR)/build-asan/pgcheckd PGCHECKD_SANITIZED=1 $(PYTHON) -m pytest -q tests/integration

check: deps
	@$(MAKE) --no-print-directory format-check lint harness-check core-check unit unit-asan unit-valgrind generated-check fuzz FUZZ_SECONDS=10 integration integration-asan package-check package-check-trixie bench-smoke \
		compat-first-contact compat

deps:
	bash scripts/install-deps

# the build runs only after deps has finished (also under -j), in a make that reads pkg-config anew
demo: deps
	@$(MAKE) --no-print-directory build/pgcheckd
	$(PYTHON) scripts/demo
demo-scaleout: deps
	@$(MAKE) --no-print-directory build/pgcheckd
	$(PYTHON) scripts/demo --scale-out

install: build/pgcheckd
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/pgcheckd
	install -m 0755 build/pgcheckd $(DESTDIR)$(SBINDIR)/pgcheckd
	install -m 0644 conf/pgcheckd.ini $(DESTDIR)$(SYSCONFDIR)/pgcheckd/pgcheckd.ini

clean:
	rm -rf build build-asan

# tests/compat: the README's first command (`make demo`) in fresh debootstrap roots of Debian 12 and 13,
# and
# the compatibility matrix (PostgreSQL 15/17/18, HAProxy 2.6/3.0/3.2 from Debian 12, 13 and unstable).
# The roots are cached in $(COMPAT_CACHE), outside the clone, so a fresh clone downloads nothing again.
COMPAT_CACHE ?= /var/cache/pgcheckd-compat
export COMPAT_CACHE
.PHONY: compat compat-first-contact compat-readme
compat-first-contact:
	bash tests/compat/first-contact bookworm
	bash tests/compat/first-contact trixie
compat: build/pgcheckd
	$(PYTHON) tests/compat/matrix
	$(PYTHON) scripts/compat-readme --check
compat-readme:
	$(PYTHON) scripts/compat-readme

include packaging/packaging.mk
include tests/fuzz/fuzz.mk
include bench/bench.mk
-include tests/soak/soak.mk
