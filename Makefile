# meshcore: every target installs what it needs into .venv (Python) and target/ (Rust).
#   make demo   - build everything and run the local mesh demo
#   make test   - build everything and run every quality gate and test
#   make dev    - only set up .venv and build the extension into it

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.deps-stamp

.PHONY: dev demo test lint rust-lint rust-test py-lint py-test stubtest fuzz bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt "maturin>=1.9,<2" pydantic pyyaml google-re2 prometheus-client \
		pytest hypothesis ruff mypy import-linter types-PyYAML
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

fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	mkdir -p fuzz/corpus/snapshot_parse
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run snapshot_parse corpus/snapshot_parse ../tests/fixtures/snapshots/valid -- -max_total_time=$${FUZZ_SECONDS:-60}

clean:
	rm -rf $(VENV) target
