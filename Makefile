# The two commands: `make demo` runs a real restore end to end, `make test` runs every test.
# Both work on a fresh machine with Rust, Python 3, a C compiler and the PostgreSQL server
# binaries; they build what they need and start their own PostgreSQL.

CARGO ?= cargo

.PHONY: demo test build lint fmt clean

## Build everything, start the managed local PostgreSQL, make a sample backup (or take
## BACKUP=/path/to/your.sql.gz), seal it, restore it verified and print a summary.
demo:
	@bash scripts/demo.sh

## Every test: formatting, lints, and the Rust tests against PostgreSQL clusters they start.
test:
	@bash scripts/test.sh

build:
	$(CARGO) build --release --workspace

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
