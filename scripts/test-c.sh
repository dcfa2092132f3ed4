#!/usr/bin/env bash
# Tests of the C interface: the committed header against a fresh cbindgen run, the header as
# C11 and C++17, and the C program against PostgreSQL three ways (plain, AddressSanitizer,
# valgrind), then the C++ program. Needs a C and a C++ compiler; installs the pinned cbindgen
# into target/tools when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.4
tools=$PWD/target/tools
cbindgen=$tools/bin/cbindgen
out=$PWD/target/test-c
warnings=(-Wall -Wextra -Werror -pedantic)
# What the Rust standard library needs from the system when linked statically.
native_libs=(-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc)
mkdir -p "$out"

step() { printf '\n== %s\n' "$*"; }

step "build restore-ffi"
cargo build --locked -q -p restore-ffi
lib=$PWD/target/debug

step "header is what cbindgen $CBINDGEN_VERSION generates"
if [[ ! -x $cbindgen ]] || ! "$cbindgen" --version | grep -qx "cbindgen $CBINDGEN_VERSION"; then
  cargo install --locked --quiet cbindgen --version "=$CBINDGEN_VERSION" --root "$tools"
fi
"$cbindgen" --quiet --config restore-ffi/cbindgen.toml --crate restore-ffi \
  --output "$out/securerestore.h" restore-ffi
if ! diff -u include/securerestore.h "$out/securerestore.h"; then
  echo "include/securerestore.h is stale: regenerate it with cbindgen $CBINDGEN_VERSION" >&2
  exit 1
fi

step "header compiles as C11 and C++17"
echo '#include "securerestore.h"' >"$out/header.c"
gcc -std=c11 "${warnings[@]}" -Iinclude -c "$out/header.c" -o "$out/header-c.o"
cp "$out/header.c" "$out/header.cpp"
g++ -std=c++17 "${warnings[@]}" -Iinclude -c "$out/header.cpp" -o "$out/header-cpp.o"

step "build the C and C++ programs"
gcc -std=c11 "${warnings[@]}" -g -Iinclude tests/c/restore_test.c \
  -L"$lib" -lsecurerestore -Wl,-rpath,"$lib" -o "$out/restore_test"
gcc -std=c11 "${warnings[@]}" -g -fsanitize=address -fno-omit-frame-pointer -Iinclude \
  tests/c/restore_test.c "$lib/libsecurerestore.a" "${native_libs[@]}" \
  -o "$out/restore_test_asan"
g++ -std=c++17 "${warnings[@]}" -g -Iinclude tests/c/api_test.cpp \
  -L"$lib" -lsecurerestore -Wl,-rpath,"$lib" -o "$out/api_test"

valgrind_bin=$(command -v valgrind || true)
if [[ -z $valgrind_bin && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  apt-get install -y -qq valgrind >/dev/null && valgrind_bin=$(command -v valgrind || true)
fi

run_all() {
  step "C program"
  "$out/restore_test"

  step "C program under AddressSanitizer"
  ASAN_OPTIONS=detect_leaks=1 "$out/restore_test_asan"

  step "C program under valgrind"
  if [[ -n $valgrind_bin ]]; then
    "$valgrind_bin" --error-exitcode=1 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
      "$out/restore_test"
  else
    printf '\n!!!!! valgrind is not installed and cannot be (not root): SKIPPED !!!!!\n\n' >&2
  fi

  step "C++ program"
  "$out/api_test"
}

export -f run_all step
export out valgrind_bin
bash scripts/with-test-server.sh bash -c run_all
