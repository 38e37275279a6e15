# bench/bench.mk: the benchmark against the health checkers users run today (included by the Makefile).
#   make bench          full run (~17 minutes on 2 CPUs): prints the tables, writes build/bench/results.csv
#                       and .txt, and the impact table (bench/impact.py) in build/bench/impact.csv and .txt
#   make bench BENCH_SECONDS=3   shorter load phases (and fewer HAProxy rounds with BENCH_ROUNDS=N,
#                                fewer impact rounds with BENCH_IMPACT_ROUNDS=N)
#   make bench BENCH_ONLY=tls    only constd and pgcheckd, plain and with TLS (into build/bench/tls/)
#   make bench BENCH_ONLY=impact only the impact table (~5 minutes; into build/bench/impact/)
#   make bench-smoke    a tiny run (< 90 s) that checks the harness works; asserts nothing about speed
#                       (its output goes to build/bench/smoke/)
BENCH_SECONDS ?= 10
BENCH_ROUNDS ?= 10
BENCH_ONLY ?= all
BENCH_IMPACT_ROUNDS ?= 3
BENCH_TOOLS := build/bench/agentload build/bench/constd build/bench/conncheck
BENCH_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror

.PHONY: bench bench-smoke bench-tools bench-deps
bench-tools: $(BENCH_TOOLS)

build/bench/agentload: bench/agentload.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(SSL_LIBS)
build/bench/constd: bench/constd.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(LIBEV) $(SSL_LIBS)
build/bench/conncheck: bench/conncheck.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) $(shell $(PKG_CONFIG) --cflags libpq 2>/dev/null) -o $@ $< \
		$(shell $(PKG_CONFIG) --libs libpq 2>/dev/null || echo -lpq) -lpthread

bench-deps:
	bash bench/install-bench-deps

bench: deps bench-deps build/pgcheckd bench-tools
	$(PYTHON) bench/bench.py --seconds $(BENCH_SECONDS) --rounds $(BENCH_ROUNDS) --only $(BENCH_ONLY) \
		--impact-rounds $(BENCH_IMPACT_ROUNDS)

# For `make check`: only what scripts/install-deps installs is needed (wrk, xinetd, Patroni and etcd
# are used when present and reported as missing otherwise).
bench-smoke: build/pgcheckd bench-tools
	$(PYTHON) bench/bench.py --smoke
