# The two commands: `make demo` runs a real restore end to end, `make test` runs every test.
# Both work on a fresh machine with Rust, Python 3, a C compiler and the PostgreSQL server
# binaries; they build what they need and start their own PostgreSQL.

CARGO ?= cargo

.PHONY: demo test build lint fmt clean install

## Build everything, start the managed local PostgreSQL, make a sample backup (or take
## BACKUP=/path/to/your.sql.gz), seal it, restore it verified and print a summary.
demo:
	@bash scripts/demo.sh

## Every test: formatting, lints, the Rust tests and the C interface's tests (plain, ASan,
## valgrind), against PostgreSQL clusters they start.
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

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

## Install libsecurerestore (.so and .a), securerestore.h and securerestore.pc under PREFIX.
install:
	$(CARGO) build --release --locked -p restore-ffi
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)
	install -m 0755 target/release/libsecurerestore.so $(DESTDIR)$(LIBDIR)/
	install -m 0644 target/release/libsecurerestore.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 include/securerestore.h $(DESTDIR)$(INCLUDEDIR)/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    restore-ffi/securerestore.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/securerestore.pc
