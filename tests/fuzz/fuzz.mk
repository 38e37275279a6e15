# tests/fuzz/fuzz.mk: libFuzzer harnesses for the parsers that take bytes from the network or a file
# (agent line, HTTP, configuration, request parameters, HAProxy runtime-API answers: "show servers state",
# error words, "show stat", etcd range answers). Included from the Makefile; uses its SRCS,
# ALL_CFLAGS, LIBS and HEADERS. Needs clang with libFuzzer (Debian: clang, libclang-rt-dev).
#
#   make fuzz-build                      build build-fuzz/fuzz_{agentline,http,conf,request,runtimeapi,peerline,showstat,dcs}
#   make fuzz                            run each harness FUZZ_SECONDS (15) on its seeds
#   make fuzz-long                       the same for FUZZ_LONG_SECONDS (600, ten minutes) each
#   make fuzz FUZZ_HARNESSES=http FUZZ_SECONDS=60
#   make fuzz FUZZ_ARGS=-jobs=2          extra libFuzzer flags
#   make fuzz-build FUZZ_DEFINES=-DNAME  extra -D flags for the harnesses (they are rebuilt when it changes)
#   make fuzz-clean
#
# Seeds live in tests/fuzz/corpus/<name>/ and are only read: libFuzzer writes what it finds into the
# first corpus directory, a temporary one here, removed afterwards. A crash, leak or broken invariant
# stops the run with a non-zero exit; its input is saved as build-fuzz/artifacts/<name>-crash-<sha1>
# (replay it: ./build-fuzz/fuzz_<name> build-fuzz/artifacts/<name>-crash-...).

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 15
FUZZ_LONG_SECONDS ?= 600
FUZZ_HARNESSES ?= agentline http conf request runtimeapi peerline showstat dcs
FUZZ_ARGS ?=
FUZZ_DEFINES ?=
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = $(ALL_CFLAGS) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) $(FUZZ_DEFINES)

.PHONY: fuzz-build fuzz fuzz-long fuzz-clean fuzz-force
# the objects are shared by every harness: keep them between builds
.SECONDARY: $(SRCS:%.c=build-fuzz/%.o)

build-fuzz/%.o: %.c $(HEADERS) Makefile tests/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

# the harnesses are rebuilt when FUZZ_DEFINES changes
build-fuzz/defines: fuzz-force
	@mkdir -p build-fuzz; echo '$(FUZZ_DEFINES)' | cmp -s - $@ || echo '$(FUZZ_DEFINES)' > $@

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_check.h build-fuzz/defines $(SRCS:%.c=build-fuzz/%.o)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Itests/fuzz -o $@ $< $(SRCS:%.c=build-fuzz/%.o) $(LIBS)

fuzz-force:

fuzz-build: $(FUZZ_HARNESSES:%=build-fuzz/fuzz_%)

# fuzz_run runs every harness $(1) seconds: new inputs into a temporary first corpus directory, the
# repository's seeds as the second (read only), a dictionary when tests/fuzz/<name>.dict exists.
define fuzz_run
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT INT TERM; mkdir -p build-fuzz/artifacts; \
	for h in $(FUZZ_HARNESSES); do \
		echo "== fuzz_$$h for $(1) s"; mkdir -p "$$tmp/$$h"; \
		dict=; if [ -f tests/fuzz/$$h.dict ]; then dict=-dict=tests/fuzz/$$h.dict; fi; \
		./build-fuzz/fuzz_$$h -max_total_time=$(1) -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/$$h- \
			$$dict $(FUZZ_ARGS) "$$tmp/$$h" tests/fuzz/corpus/$$h; \
	done
endef

fuzz: fuzz-build
	$(call fuzz_run,$(FUZZ_SECONDS))

fuzz-long: fuzz-build
	$(call fuzz_run,$(FUZZ_LONG_SECONDS))

fuzz-clean:
	rm -rf build-fuzz
