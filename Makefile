# meshcore: every target installs what it needs into .venv (Python) and target/ (Rust).
#   make demo   - build everything and run the local mesh demo
#   make test   - build everything and run every quality gate and test
#   make dev    - only set up .venv and build the extension into it
#   make bench  - data-plane benchmark suite, quick pass (bench-full: all of it; bench-smoke: CI check)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-stamp

.PHONY: bench-flame-deps pgo dev demo test lint rust-lint rust-test py-lint py-test e2e stubtest fuzz bench bench-full bench-smoke bench-deps bench-oha-deps bench-p99 bench-paired bench-paired-rps bench-vcpu clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt "maturin>=1.9,<2" pydantic pyyaml google-re2 prometheus-client \
		pytest hypothesis ruff mypy import-linter types-PyYAML grpcio websockets
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/maturin develop --release --quiet

demo: dev
	$(BIN)/meshcore demo

test: dev lint rust-test py-test

lint: rust-lint py-lint

rust-lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

rust-test:
	cargo test --workspace --locked

py-lint: $(STAMP)
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

py-test: dev
	$(BIN)/python -m mypy.stubtest meshcore._core
	$(BIN)/pytest -q

# Only the network-namespace tests (transparent capture); `make test` runs them too. Root.
e2e: dev
	$(BIN)/pytest -q -m netns

# Every fuzz target (fuzz/README.md) for FUZZ_SECONDS each, on its corpus (fuzz/corpus/,
# kept between runs) and its seeds; fails when one crashes (the input lands in
# fuzz/artifacts/<target>/). FUZZ_TARGETS picks some.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= snapshot_parse http1_request route_match http1_response
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build
	@cd fuzz && failed=""; for t in $(FUZZ_TARGETS); do \
		case $$t in \
			snapshot_parse) seeds=../tests/fixtures/snapshots/valid; opts= ;; \
			route_match) seeds=; opts="-len_control=0 -max_len=768" ;; \
			*) seeds=seeds/$$t; opts= ;; \
		esac; \
		[ -z "$$seeds" ] || [ -d "$$seeds" ] || seeds=; \
		mkdir -p corpus/$$t; \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		RUSTC_BOOTSTRAP=1 cargo fuzz run $$t corpus/$$t $$seeds -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$opts || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashed:$$failed"; exit 1; fi

# Benchmarks (bench/README.md). The tools come from Debian (only when missing), fortio from
# the Go module proxy into bench/.work/bin (v1.66.5: later releases need a module the proxy
# refuses here), the relay baseline is built in release mode into bench/.work.
BENCH_WORK := bench/.work
BENCH_APT  := wrk:wrk h2load:nghttp2-client nginx:nginx-light haproxy:haproxy valgrind:valgrind \
	strace:strace curl:curl taskset:util-linux perf:linux-perf
FORTIO_VERSION ?= v1.66.5
OHA_VERSION ?= 1.16.0

bench-deps: $(STAMP)
	@missing=""; for t in $(BENCH_APT); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	test -x $(BENCH_WORK)/bin/fortio || GOBIN=$(CURDIR)/$(BENCH_WORK)/bin go install fortio.org/fortio@$(FORTIO_VERSION)
	cd bench/relay && CARGO_TARGET_DIR=$(CURDIR)/$(BENCH_WORK)/relay-target cargo build --release --locked --quiet
	$(BIN)/pip install --quiet -r bench/requirements.txt
	$(BIN)/python -c 'import meshcore._core' 2>/dev/null || $(MAKE) dev

bench-smoke: bench-deps
	$(BIN)/python -m bench.suite --mode smoke

bench: pgo
	$(BIN)/python -m bench.suite --mode quick

# The release build: profile-guided (bench/pgo.py), with llvm-profdata of rustc's own LLVM
# major version from Debian's llvm-<major>. `make dev` puts the plain build back.
LLVM_MAJOR = $(shell rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
pgo: bench-deps
	@command -v llvm-profdata-$(LLVM_MAJOR) >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends llvm-$(LLVM_MAJOR); }
	$(BIN)/python -m bench.pgo

# Flame graphs (the full pass's profile scenario): inferno, from crates.io, into bench/.work.
bench-flame-deps:
	test -x $(BENCH_WORK)/bin/inferno-flamegraph || cargo install inferno --locked --quiet --root $(BENCH_WORK)

bench-full: pgo bench-flame-deps
	$(BIN)/python -m bench.suite --mode full

# Added p99 at 1,000 requests/s with every request's latency kept (oha, from crates.io, into
# bench/.work: fortio's buckets are too wide at p99), in many short interleaved runs.
bench-oha-deps:
	test -x $(BENCH_WORK)/bin/oha || cargo install oha --version $(OHA_VERSION) --locked --quiet --root $(BENCH_WORK)

bench-p99: pgo bench-oha-deps
	$(BIN)/python -m bench.suite --mode full --only latency --rates 1000 --repeats 60 \
		--latency-seconds 2 --latency-tool oha --tag p99 \
		--systems direct,relay,meshcore-http,nginx,haproxy

# The same p99 with two systems driven at the same time (a host stall lands on both).
bench-paired: pgo bench-oha-deps
	$(BIN)/python -m bench.paired_latency --repeats 20 --seconds 3

# Requests/s per core of one L7 hop: two proxies at a time, each held to 40 % of core 1 by a
# cgroup CPU quota, so the proxy is the bottleneck and a host stall lands on both.
bench-paired-rps: pgo bench-deps
	$(BIN)/python -m bench.paired_throughput --repeats 7

# What a hop's wake-ups cost on this machine: every wake-up on each topology's path timed
# from a perf sched trace, with halting vCPUs and with a SCHED_IDLE busy loop per core.
bench-vcpu: pgo bench-oha-deps
	$(BIN)/python -m bench.vcpu_wake --repeats 2

clean:
	rm -rf $(VENV) target
