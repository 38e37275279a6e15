# make soak: pgcheckd at a fixed check rate for SOAK_SECONDS with PostgreSQL faults injected on a schedule
# (tests/soak/soak.py). Not part of make check. Prints checks answered, wrong answers (must be 0), errors,
# latency p50/p99/max, the faults injected, and each pgcheckd's RSS and fd count at start and end.
SOAK_SECONDS ?= 300
SOAK_RATE ?= 2000
SOAK_WORKERS ?= 4

.PHONY: soak
soak: build/pgcheckd
	$(PYTHON) tests/soak/soak.py --seconds $(SOAK_SECONDS) --rate $(SOAK_RATE) --workers $(SOAK_WORKERS)
