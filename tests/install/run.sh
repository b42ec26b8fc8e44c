#!/usr/bin/env bash
# Installs guix-docker-native as a distribution would (`make` and `make
# install PREFIX=/usr DESTDIR=STAGE`), then checks the installation with the
# build tree out of sight: in a private mount namespace whose view of the
# checkout (and of CARGO_TARGET_DIR) is an empty tmpfs, so that whatever
# still refers to it fails.  There:
#   - the files are where they belong, the library with its full version
#     and the .so.1 and .so symlinks;
#   - readelf -d shows the SONAME, objdump -T every export with its version
#     (GDN_1, or GDN_1.1 and GDN_1.2 for the functions added since), and
#     the exports are exactly the installed header's functions;
#   - tests/c/test_abi.c compiles and links with nothing but
#     `pkg-config --cflags --libs guix-docker-native` (the staged prefix
#     through PKG_CONFIG_SYSROOT_DIR), has no rpath, and runs with the staged
#     LIBDIR on LD_LIBRARY_PATH;
#   - Guile, with only GUILE_LOAD_PATH and GUILE_LOAD_COMPILED_PATH set,
#     loads (guix docker-native) from the compiled files without a word on
#     standard error (no "compiled file is stale", no auto-compilation),
#     finds the installed library and builds an image; the installed CLI
#     and `guix archive --format=docker' front end build images too;
#   - `man -l` renders the man page without warnings, and it documents
#     every option of `--help`;
#   - the bash, zsh and fish completions load and complete an option;
# and then `make uninstall` leaves the staging directory as it was.  Last,
# installed for real (no DESTDIR) in a temporary PREFIX with LIBDIR outside
# PREFIX/lib, Guile opens the library through the file name configured at
# installation alone, and uninstall leaves PREFIX empty.
#
# Usage: bash tests/install/run.sh    (as root, or where unprivileged user
# namespaces are allowed).  Needs: make, cc, pkg-config, binutils, man-db,
# guile-3.0, zsh, fish, util-linux's unshare.  Last line: "N passed, N failed".

set -uo pipefail

if [ "${1:-}" = --check-installed ]; then
    phase=installed
    shift
else
    phase=build
fi

# check DESCRIPTION COMMAND... and the PASSED and FAILED counts: the
# consumer scripts' tests/lib/checks.sh (its log in $WORK), from the
# checkout, or, in the namespace that hides it, the copy beside this one.
if [ "$phase" = installed ]; then
    # shellcheck source=../lib/checks.sh
    source "$(dirname "$0")/checks.sh"
else
    # shellcheck source=../lib/checks.sh
    source "$(dirname "${BASH_SOURCE[0]}")/../lib/checks.sh"
fi
# ok and fail: a result this script judged itself.
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
finish() {
    echo "${summary_prefix:-}$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
    exit
}

PREFIX=/usr

# ---------------------------------------------------------------------------
# Inside the namespace: the checks of the installation.
# ---------------------------------------------------------------------------
if [ "$phase" = installed ]; then
    stage=$1 tmp=$2 version=$3 hidden=$4
    WORK=$tmp
    summary_prefix="without the checkout: "
    p=$stage$PREFIX
    lib=$p/lib
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

    check "the checkout is out of sight ($hidden is empty)" \
        test -z "$(ls -A "$hidden")"

    # The files.
    for file in bin/guix-docker-native bin/guix-archive-docker \
                lib/libguix_docker_native.so.1.$version include/guix_docker_native.h \
                lib/pkgconfig/guix-docker-native.pc \
                share/guile/site/3.0/guix/docker-native.scm \
                share/guile/site/3.0/guix/docker-native/config.scm \
                share/guile/site/3.0/guix/docker-native/bindings.scm \
                share/guile/site/3.0/guix/scripts/archive-docker.scm \
                lib/guile/3.0/site-ccache/guix/docker-native.go \
                lib/guile/3.0/site-ccache/guix/docker-native/config.go \
                lib/guile/3.0/site-ccache/guix/docker-native/bindings.go \
                lib/guile/3.0/site-ccache/guix/scripts/archive-docker.go \
                share/man/man1/guix-docker-native.1 \
                share/bash-completion/completions/guix-docker-native \
                share/zsh/site-functions/_guix-docker-native \
                share/fish/vendor_completions.d/guix-docker-native.fish; do
        check "installed: $PREFIX/$file" test -f "$p/$file" -a ! -L "$p/$file"
    done
    check "the programs are executable" test -x "$p/bin/guix-docker-native" -a -x "$p/bin/guix-archive-docker"
    check "the library is mode 0644" test "$(stat -c %a "$lib/libguix_docker_native.so.1.$version")" = 644
    check "libguix_docker_native.so.1 -> libguix_docker_native.so.1.$version" \
        test "$(readlink "$lib/libguix_docker_native.so.1")" = "libguix_docker_native.so.1.$version"
    check "libguix_docker_native.so -> libguix_docker_native.so.1" \
        test "$(readlink "$lib/libguix_docker_native.so")" = libguix_docker_native.so.1
    leaks=$(grep -rlF -e "$stage" -e "$hidden" "$stage" 2>/dev/null)
    check "no installed file names the staging directory or the checkout${leaks:+ (found in: $leaks)}" \
        test -z "$leaks"

    # The library: SONAME, exports, versions.
    soname=$(readelf -d "$lib/libguix_docker_native.so.1.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
    check "readelf -d: SONAME is libguix_docker_native.so.1 (got '$soname')" \
        test "$soname" = libguix_docker_native.so.1
    declared=$(grep -oE '\b(gdn_[a-z_]+|build_docker_image)\(' "$p/include/guix_docker_native.h" | tr -d '(' | sort -u)
    # objdump -T: ADDRESS FLAGS... SECTION SIZE VERSION NAME; defined
    # functions are in .text.
    exports=$(objdump -T "$lib/libguix_docker_native.so.1" | awk '$4 == ".text" {print $NF, $(NF-1)}' | sort)
    exported=$(echo "$exports" | awk '{print $1}')
    if [ "$declared" = "$exported" ]; then
        ok "objdump -T: the exported functions are exactly the header's $(echo "$declared" | wc -l)"
    else
        fail "objdump -T: the exported functions differ from the header's:"
        diff <(echo "$declared") <(echo "$exported") | sed 's/^/    /'
    fi
    # Each function's version, as build.rs's version script assigns it
    # (GDN_1, and GDN_1.1, GDN_1.2 for the functions added since; copied out of the
    # build tree before the checkout went out of sight).
    wanted=$(awk '/^GDN_[0-9.]+ [{]/ {node = $1}
                  /^    [a-z_]+;$/ {name = $1; sub(/;$/, "", name); print name, node}' \
                 "$tmp/guix_docker_native.map" | sort)
    nodes=$(awk '/^GDN_[0-9.]+ [{]/ {print $1}' "$tmp/guix_docker_native.map" | tr '\n' ' ')
    check "the version script has the nodes GDN_1, GDN_1.1, GDN_1.2 and GDN_1.3 (got: $nodes)" test "$nodes" = "GDN_1 GDN_1.1 GDN_1.2 GDN_1.3 "
    if [ -n "$exports" ] && [ "$exports" = "$wanted" ]; then
        ok "objdump -T: every export has its version ($(echo "$wanted" | grep -c ' GDN_1\.1$') GDN_1.1, $(echo "$wanted" | grep -c ' GDN_1\.2$') GDN_1.2, $(echo "$wanted" | grep -c ' GDN_1\.3$') GDN_1.3, the others GDN_1)"
    else
        fail "objdump -T: the exports' versions differ from the version script's:"
        diff <(echo "$wanted") <(echo "$exports") | sed 's/^/    /'
    fi
    others=$(objdump -T "$lib/libguix_docker_native.so.1" | awk '$2 == "g" && $4 != ".text" && $NF !~ /^GDN_1(\.[123])?$/')
    check "objdump -T: nothing else is exported${others:+ (also: $others)}" test -z "$others"
    for node in $nodes; do
        check "objdump -p: the library defines the version $node" \
            sh -c "objdump -p '$lib/libguix_docker_native.so.1' | sed -n '/Version definitions/,/^\$/p' | grep -q ' $node\$'"
    done
    check "objdump -p: GDN_1.1 inherits GDN_1" \
        sh -c "objdump -p '$lib/libguix_docker_native.so.1' | sed -n '/Version definitions/,/^\$/p' | grep -A1 ' GDN_1\.1\$' | tail -n 1 | grep -qxE '[[:space:]]*GDN_1[[:space:]]*'"
    check "objdump -p: GDN_1.2 inherits GDN_1.1" \
        sh -c "objdump -p '$lib/libguix_docker_native.so.1' | sed -n '/Version definitions/,/^\$/p' | grep -A1 ' GDN_1\.2\$' | tail -n 1 | grep -qxE '[[:space:]]*GDN_1\.1[[:space:]]*'"
    check "objdump -p: GDN_1.3 inherits GDN_1.2" \
        sh -c "objdump -p '$lib/libguix_docker_native.so.1' | sed -n '/Version definitions/,/^\$/p' | grep -A1 ' GDN_1\.3\$' | tail -n 1 | grep -qxE '[[:space:]]*GDN_1\.2[[:space:]]*'"

    # A C program, with pkg-config only.
    export PKG_CONFIG_LIBDIR=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
    unset PKG_CONFIG_PATH
    check "pkg-config --modversion guix-docker-native is $version" \
        test "$(pkg-config --modversion guix-docker-native)" = "$version"
    # (Word splitting joins the flags with single spaces.)
    # shellcheck disable=SC2046
    flags=$(echo $(pkg-config --cflags --libs guix-docker-native))
    check "pkg-config --cflags --libs: '$flags' (the staged include and lib directories)" \
        test "$flags" = "-I$p/include -L$lib -lguix_docker_native"
    # shellcheck disable=SC2086
    check "tests/c/test_abi.c compiles with -Wall -Wextra -Werror and the pkg-config flags only" \
        cc -std=c11 -Wall -Wextra -Werror "$tmp/test_abi.c" -o "$tmp/test_abi" -pthread $flags
    needed=$(readelf -d "$tmp/test_abi" | sed -n 's/.*(NEEDED).*\[\(libguix.*\)\]$/\1/p')
    check "the program needs libguix_docker_native.so.1 (got '$needed')" test "$needed" = libguix_docker_native.so.1
    check "the program has no rpath or runpath" \
        sh -c "! readelf -d '$tmp/test_abi' | grep -qE 'RPATH|RUNPATH'"
    resolved=$(LD_LIBRARY_PATH=$lib ldd "$tmp/test_abi" | awk '$1 == "libguix_docker_native.so.1" {print $3}')
    check "with LD_LIBRARY_PATH=$lib, the dynamic linker takes the staged library (got '$resolved')" \
        test "$resolved" = "$lib/libguix_docker_native.so.1"
    mkdir "$tmp/c-work"
    if env -u NIX_STORE_DIR -u SOURCE_DATE_EPOCH LD_LIBRARY_PATH="$lib" \
           "$tmp/test_abi" "$store" "$item" "$database" "$tmp/c-work" $entry_point >"$tmp/c.log" 2>&1; then
        ok "the C test program passes against the installed library"
    else
        fail "the C test program passes against the installed library:"
        tail -n 20 "$tmp/c.log" | sed 's/^/    /'
    fi

    # Guile, with the load paths only.
    site=$p/share/guile/site/3.0
    ccache=$lib/guile/3.0/site-ccache
    check "the installed (guix docker-native config) names $PREFIX/lib/libguix_docker_native.so.1" \
        grep -qxF "(define %configured-library-file \"$PREFIX/lib/libguix_docker_native.so.1\")" \
            "$site/guix/docker-native/config.scm"
    mkdir "$tmp/home" "$tmp/guile-work"
    guile_env=(env -i PATH="$PATH" HOME="$tmp/home" GUILE_LOAD_PATH="$site" GUILE_LOAD_COMPILED_PATH="$ccache")
    (cd "$tmp/guile-work" && "${guile_env[@]}" guile -c "
(use-modules (guix docker-native))
(format #t \"library ~a~%\" (docker-native-library-file))
(format #t \"output ~a~%\"
        (build-docker-image/item \"$item\" #:store-directory \"$store\"
                                 #:database \"$database\" #:output \"guile.tar\"))") \
        >"$tmp/guile.out" 2>"$tmp/guile.err"
    status=$?
    check "Guile loads (guix docker-native) and builds an image (status $status)" test "$status" = 0
    if [ -s "$tmp/guile.err" ]; then
        fail "Guile prints nothing on standard error (no stale or auto-compiled files); it printed:"
        sed 's/^/    /' "$tmp/guile.err"
    else
        ok "Guile prints nothing on standard error (no stale or auto-compiled files)"
    fi
    check "Guile compiled nothing itself (its cache in HOME is empty)" test ! -e "$tmp/home/.cache/guile"
    check "Guile opened the installed library ($(sed -n 's/^library //p' "$tmp/guile.out"))" \
        grep -qxF "library $lib/libguix_docker_native.so.1" "$tmp/guile.out"
    check "the image Guile wrote holds manifest.json" \
        sh -c "tar -tf '$tmp/guile-work/guile.tar' | grep -qx manifest.json"

    # The installed programs.
    check "guix-docker-native --version prints $version" \
        sh -c "'$p/bin/guix-docker-native' --version | grep -qw '$version'"
    (cd "$tmp/guile-work" && env -u NIX_STORE_DIR -u SOURCE_DATE_EPOCH "$p/bin/guix-docker-native" \
         --store-dir "$store" --database "$database" --no-tmp -t profile -o cli.tar "$item" >/dev/null 2>"$tmp/cli.err")
    check "the installed guix-docker-native builds the same image as Guile$(test -s "$tmp/cli.err" && echo " ($(head -c 300 "$tmp/cli.err"))")" \
        cmp -s "$tmp/guile-work/cli.tar" "$tmp/guile-work/guile.tar"
    check "the installed front end knows the installed modules (site_dir=$PREFIX/share/guile/site/3.0)" \
        grep -qx "site_dir=$PREFIX/share/guile/site/3.0" "$p/bin/guix-archive-docker"
    front_version=$(cd "$tmp/guile-work" && "${guile_env[@]}" "$p/bin/guix-archive-docker" --version 2>&1)
    check "guix-archive-docker --version names the library's version ($front_version)" \
        test "$front_version" = "guix archive --format=docker (guix-docker-native) $version"
    (cd "$tmp/guile-work" && "${guile_env[@]}" "$p/bin/guix-archive-docker" --export -f docker \
         --store-dir="$store" --database="$database" --output=front-end.tar "$item" >/dev/null 2>"$tmp/front.err")
    check "the installed guix-archive-docker builds the same image$(test -s "$tmp/front.err" && echo " ($(head -c 300 "$tmp/front.err"))")" \
        cmp -s "$tmp/guile-work/front-end.tar" "$tmp/guile-work/guile.tar"

    # The man page.
    page=$p/share/man/man1/guix-docker-native.1
    MANPAGER=cat MANWIDTH=100 man --warnings -l "$page" >"$tmp/man.txt" 2>"$tmp/man.err"
    status=$?
    check "man -l renders the page (status $status, no warnings: '$(head -c 200 "$tmp/man.err")')" \
        test "$status" = 0 -a ! -s "$tmp/man.err"
    check "the page's NAME is 'guix-docker-native - Make a Docker image archive...'" \
        grep -q 'guix-docker-native - Make a Docker image archive' "$tmp/man.txt"
    help_options=$("$p/bin/guix-docker-native" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)
    man_options=$(grep -oE -- '--[a-z][a-z-]+' "$tmp/man.txt" | sort -u)
    missing=$(comm -23 <(echo "$help_options") <(echo "$man_options") | tr '\n' ' ')
    check "the man page documents every option of --help ($(echo "$help_options" | wc -l))${missing:+; missing: $missing}" \
        test -z "$missing"

    # The completions.
    bash_completion=$p/share/bash-completion/completions/guix-docker-native
    spec=$(bash -c "source '$bash_completion' && complete -p guix-docker-native" 2>&1)
    check "bash: source COMPLETION; complete -p guix-docker-native ($spec)" \
        sh -c "echo '$spec' | grep -q ' guix-docker-native\$'"
    function=$(echo "$spec" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
    words=$(bash -c "source '$bash_completion'
COMP_WORDS=(guix-docker-native --max-l); COMP_CWORD=1; COMP_LINE='guix-docker-native --max-l'; COMP_POINT=\${#COMP_LINE}
$function guix-docker-native --max-l guix-docker-native; printf '%s\n' \"\${COMPREPLY[@]}\"" 2>&1)
    check "bash: guix-docker-native --max-l<TAB> completes to --max-layers (got: $words)" \
        test "$words" = --max-layers
    zsh_completion=$p/share/zsh/site-functions/_guix-docker-native
    if command -v zsh >/dev/null; then
        check "zsh: the completion parses (zsh -n) and declares #compdef guix-docker-native" \
            sh -c "zsh -n '$zsh_completion' && head -n 1 '$zsh_completion' | grep -qx '#compdef guix-docker-native'"
        check "zsh: compinit finds _guix-docker-native in its directory" \
            zsh -fc "fpath=('$(dirname "$zsh_completion")' \$fpath); autoload -Uz compinit; compinit -u -d '$tmp/zcompdump'; [[ \${_comps[guix-docker-native]} == _guix-docker-native ]]"
    else
        fail "zsh is not installed (apt-get install zsh)"
    fi
    fish_completion=$p/share/fish/vendor_completions.d/guix-docker-native.fish
    if command -v fish >/dev/null; then
        words=$(HOME=$tmp/home fish --no-config -c "source '$fish_completion'; complete -C 'guix-docker-native --max-l'" 2>&1 | cut -f 1)
        check "fish: guix-docker-native --max-l<TAB> completes to --max-layers (got: $words)" \
            test "$words" = --max-layers
    else
        fail "fish is not installed (apt-get install fish)"
    fi
    finish
fi

# ---------------------------------------------------------------------------
# Outside: build, install, run the checks hidden from the checkout, uninstall.
# ---------------------------------------------------------------------------
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
target=${CARGO_TARGET_DIR:-$root/target}

for tool in make cc pkg-config readelf objdump man guile unshare; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done
[ "$FAILED" -eq 0 ] || finish

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gdn-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
WORK=$tmp
stage=$tmp/stage
mkdir -p "$stage$PREFIX/lib" "$stage/etc"
# Someone else's files: uninstall must leave them alone.
echo "not ours" >"$stage$PREFIX/lib/libother.so.3"
echo "not ours either" >"$stage/etc/other.conf"
listing() { (cd "$stage" && find . -printf '%y %m %p %l\n' | sort && find . -type f -exec sha256sum {} + | sort); }
before=$(listing)

if make --no-print-directory PREFIX="$PREFIX" >"$tmp/make.log" 2>&1; then
    ok "make PREFIX=$PREFIX"
else
    fail "make PREFIX=$PREFIX:"; tail -n 30 "$tmp/make.log" | sed 's/^/    /'; finish
fi
if make --no-print-directory install PREFIX="$PREFIX" DESTDIR="$stage" >"$tmp/install.log" 2>&1; then
    ok "make install PREFIX=$PREFIX DESTDIR=STAGE"
else
    fail "make install PREFIX=$PREFIX DESTDIR=STAGE:"; tail -n 30 "$tmp/install.log" | sed 's/^/    /'; finish
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)

# What the checks use, copied out of the checkout: the C test program, the
# library's version script, and a sample store (made by the build tree's generator).
cp tests/c/test_abi.c "$tmp/" && cp "$0" "$tmp/run.sh" && cp tests/lib/checks.sh "$tmp/checks.sh"
cp "$target/install-files/files/guix_docker_native.map" "$tmp/"
mkdir "$tmp/sample"
cargo build --release --quiet --bin gdn-sample-store || { fail "cargo build --bin gdn-sample-store"; finish; }
item=$("$target/release/gdn-sample-store" "$tmp/sample" | tail -n 1)
store=$(dirname "$item")
database=$(find "$tmp/sample" -name db.sqlite -type f | head -n 1)
entry_point=
for program in "$item"/bin/*; do
    if [ -f "$program" ] && [ -x "$program" ]; then entry_point=${program#"$item"/}; break; fi
done
export item store database entry_point

# Out of sight: an empty tmpfs over the checkout (and the target directory).
hide="mount -t tmpfs -o size=1m,mode=0555 gdn-hidden '$root'"
case "$target" in
    "$root"/*) ;;
    *) hide="$hide && mount -t tmpfs -o size=1m,mode=0555 gdn-hidden '$target'" ;;
esac
if [ "$(id -u)" = 0 ]; then
    namespace=(unshare --mount --propagation private)
else
    namespace=(unshare --user --map-root-user --mount --propagation private)
fi
"${namespace[@]}" sh -c "$hide && cd / && exec bash '$tmp/run.sh' --check-installed '$stage' '$tmp' '$version' '$root'" \
    >"$tmp/installed.log" 2>&1
cat "$tmp/installed.log"
counts=$(tail -n 1 "$tmp/installed.log")
if [[ $counts =~ ^without\ the\ checkout:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    PASSED=$((PASSED + BASH_REMATCH[1]))
    FAILED=$((FAILED + BASH_REMATCH[2]))
else
    fail "the checks in a mount namespace without the checkout ran (${namespace[*]}: see above)"
fi

if make --no-print-directory uninstall PREFIX="$PREFIX" DESTDIR="$stage" >"$tmp/uninstall.log" 2>&1; then
    ok "make uninstall PREFIX=$PREFIX DESTDIR=STAGE"
else
    fail "make uninstall PREFIX=$PREFIX DESTDIR=STAGE:"; tail -n 30 "$tmp/uninstall.log" | sed 's/^/    /'
fi
after=$(listing)
if [ "$before" = "$after" ]; then
    ok "after uninstall the staging directory is as it was before install (others' files included)"
else
    fail "after uninstall the staging directory is as it was before install:"
    diff <(echo "$before") <(echo "$after") | sed 's/^/    /'
fi

# Installed for real (no DESTDIR) with LIBDIR outside PREFIX/lib: only the
# file name configured at installation leads Guile to the library.
direct=$tmp/direct
mkdir "$direct"
if make --no-print-directory install PREFIX="$direct" LIBDIR="$direct/lib64" >"$tmp/direct.log" 2>&1; then
    ok "make install PREFIX=DIR LIBDIR=DIR/lib64"
    found=$(cd "$tmp" && env -i PATH="$PATH" HOME="$tmp/home-direct" \
                GUILE_LOAD_PATH="$direct/share/guile/site/3.0" \
                GUILE_LOAD_COMPILED_PATH="$direct/lib64/guile/3.0/site-ccache" \
                guile -c '(use-modules (guix docker-native)) (display (docker-native-library-file))' 2>&1)
    check "Guile opens the configured LIBDIR/libguix_docker_native.so.1, no variable set (got: $found)" \
        test "$found" = "$direct/lib64/libguix_docker_native.so.1"
else
    fail "make install PREFIX=DIR LIBDIR=DIR/lib64:"; tail -n 30 "$tmp/direct.log" | sed 's/^/    /'
fi
make --no-print-directory uninstall PREFIX="$direct" LIBDIR="$direct/lib64" >"$tmp/direct-uninstall.log" 2>&1
check "make uninstall leaves PREFIX itself, empty ($(cd "$direct" && find . -mindepth 1 | head -n 3 | tr '\n' ' '))" \
    test -d "$direct" -a -z "$(ls -A "$direct")"
finish
