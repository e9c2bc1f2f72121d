# herald — see README.md. `make run` and `make test` do all set-up on a fresh Debian machine.

CARGO ?= cargo
DATA ?= herald-data

.PHONY: run build test deps lint unit integration bench docs

## run: herald on its built-in dev defaults (console https://127.0.0.1:8443/, data in ./herald-data)
run:
	$(CARGO) run -- run --data $(DATA)

## build: the release binary (target/release/herald), tuned for size and speed
build:
	$(CARGO) build --release --locked

## test: install what the tests need, lint, then unit and integration tests
test: deps lint
	$(CARGO) test --locked --all-targets

deps:
	bash scripts/test-deps.sh

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## bench: measure and write the figures into BENCHMARKS.md
bench: build
	bash scripts/bench.sh

## docs: regenerate the README's config reference from the settings model
docs:
	HERALD_WRITE_README=1 $(CARGO) test --lib readme_config_reference
