#!/usr/bin/env bash
# Builds libguix_docker_native.so, compiles tests/c/test_abi.c against
# include/guix_docker_native.h, makes a sample store, and runs the program
# under valgrind memcheck: any failed check, memory error, or definite or
# indirect leak fails the run.  ("Still reachable" blocks that Rust's
# runtime keeps until exit are not leaks.)
#
# Usage: bash tests/c/run.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
lib_dir=$target/release

# CI starts with Rust and gcc only.
if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "run.sh: installing valgrind" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
    else
        echo "run.sh: valgrind is not installed" >&2
        exit 2
    fi
fi
cc=${CC:-cc}

cargo build --release --lib --bin gdn-sample-store

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gdn-c-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/sample"
item=$("$lib_dir/gdn-sample-store" "$tmp/sample" | tail -n 1)
if [ -z "$item" ] || [ ! -d "$item" ]; then
    echo "run.sh: gdn-sample-store printed no item directory (got '$item')" >&2
    exit 2
fi
store=$(dirname "$item")
database=$(find "$tmp/sample" -name db.sqlite -type f | head -n 1)
if [ -z "$database" ]; then
    echo "run.sh: the sample store in $tmp/sample has no db.sqlite" >&2
    exit 2
fi
# The entry point: the first program in the item's bin/, relative to the item.
entry_point=()
for program in "$item"/bin/*; do
    if [ -f "$program" ] && [ -x "$program" ]; then
        entry_point=("${program#"$item"/}")
        break
    fi
done

# The library exports exactly the functions the header declares.
declared=$(grep -oE '\b(gdn_[a-z_]+|build_docker_image)\(' include/guix_docker_native.h | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$lib_dir/libguix_docker_native.so" | awk '$2 == "T" {print $3}' | sort -u)
if [ "$declared" != "$exported" ]; then
    echo "run.sh: the library's exports differ from the header's functions:" >&2
    diff <(echo "$declared") <(echo "$exported") >&2 || true
    exit 1
fi
echo "ok - libguix_docker_native.so exports exactly the $(echo "$declared" | wc -l) functions of the header"

"$cc" -std=c11 -Wall -Wextra -Werror -Iinclude tests/c/test_abi.c -o "$tmp/test_abi" \
    -pthread -L"$lib_dir" -lguix_docker_native -Wl,-rpath,"$lib_dir"

mkdir "$tmp/work"
# Defaults must not come from the caller's environment.
env -u NIX_STORE_DIR -u SOURCE_DATE_EPOCH \
    valgrind --tool=memcheck --quiet --leak-check=full \
        --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
        "$tmp/test_abi" "$store" "$item" "$database" "$tmp/work" "${entry_point[@]}"
