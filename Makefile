# herald — see README.md. `make run` and `make test` do all set-up on a fresh Debian machine.

CARGO ?= cargo
DATA ?= herald-data

FUZZ_SECONDS ?= 300

.PHONY: run build test deps lint bench fuzz docs

## run: herald on its built-in dev defaults (console https://127.0.0.1:8443/, data in ./herald-data)
run:
	$(CARGO) run -- run --data $(DATA)

## build: the release binary (target/release/herald), tuned for size and speed
build:
	$(CARGO) build --release --locked

## test: install what the tests need, lint, then unit and integration tests
test: deps lint
	$(CARGO) test --locked --lib --test tests

deps:
	bash scripts/test-deps.sh

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## bench: measure (herald and a local Postfix in the same run) and write the figures into BENCHMARKS.md
bench: build
	$(CARGO) build --release --locked --example smtp_probe --example api_load
	bash scripts/bench.sh

## fuzz: coverage-guided fuzzing of the SMTP server machine (cargo-fuzz; FUZZ_SECONDS, default 300)
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p fuzz/corpus/smtp_server
	cp -n fuzz/seeds/smtp_server/* fuzz/corpus/smtp_server/
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run smtp_server corpus/smtp_server -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096

## docs: regenerate the README's config reference from the settings model
docs:
	HERALD_WRITE_README=1 $(CARGO) test --lib readme_config_reference
