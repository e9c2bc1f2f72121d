# herald — see README.md. `make run` and `make test` do all set-up on a fresh Debian machine.

CARGO ?= cargo
DATA ?= herald-data

FUZZ_SECONDS ?= 300

.PHONY: run build test deps lint bench soak fuzz fuzz-check docs

## run: herald on its built-in dev defaults (console https://127.0.0.1:8443/, data in ./herald-data)
run:
	$(CARGO) run -- run --data $(DATA)

## build: the release binary (target/release/herald), tuned for size and speed
build:
	$(CARGO) build --release --locked

## test: install what the tests need, lint, check the fuzz crate builds, then unit and integration tests
test: deps lint fuzz-check
	$(CARGO) build --locked --profile release-faults --features failpoints --bin herald
	HERALD_FAULTS_BIN=$(CURDIR)/target/release-faults/herald $(CARGO) test --locked --lib --test tests

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

## soak: the crash loop. herald is killed with SIGKILL every few seconds for SOAK_SECONDS (default
## 600) while replies and notifications flow; every 250 must reach the webhook under one delivery
## id, every 202 the smarthost.
SOAK_SECONDS ?= 600
soak: build deps
	cd scripts && python3 soak.py ../target/release/herald $(SOAK_SECONDS)

## fuzz: coverage-guided fuzzing of every parser of internet input (cargo-fuzz), FUZZ_SECONDS
## each (default 300); FUZZ_TARGETS picks some. Crashes land in fuzz/artifacts/<target>/: keep one
## in fuzz/regressions/<target>/, named after what it caught, and make test replays it.
FUZZ_TARGETS ?= smtp_server smtp_client reply_extract settings_file webhook_answer dns_answer http_request
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; cp -n fuzz/seeds/$$t/* fuzz/corpus/$$t/ || true; \
	  if [ $$t = reply_extract ]; then cp -n tests/fixtures/replies/*.eml fuzz/corpus/$$t/ || true; fi; \
	  len=65536; if [ $$t = smtp_server ]; then len=4096; fi; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=$$len -timeout=10 -rss_limit_mb=1024) || exit 1; \
	done

## fuzz-check: the fuzz crate still builds against herald (so its targets cannot drift)
fuzz-check:
	cd fuzz && $(CARGO) check --locked --bins

## docs: regenerate the README's config reference from the settings model
docs:
	HERALD_WRITE_README=1 $(CARGO) test --lib readme_config_reference
