#!/usr/bin/env bash
# All the tests: the project's one test command (README's second command,
# and what .ci/run calls).
#
#   bash tests/run-all.sh
#
# Runs as root on Debian 12 with Rust and gcc: installs the Debian packages
# the tests need (skipped when all are there), starts a private dockerd
# (stopped on exit), then runs the stages in order:
#   build     cargo build --release
#   rust      cargo test --release (unit, integration, header and doc tests)
#   c         tests/c/run.sh: the C ABI test program under valgrind memcheck
#   guile     tests/guile/run.sh: the Guile bindings' SRFI-64 tests
#   install   tests/install/run.sh: make install into a staging directory,
#             checked with the checkout out of sight; make uninstall
#   consumers tests/consumers/run.sh: docker, podman, skopeo and umoci
#   consumers-oci tests/consumers/oci.sh: the oci: and oci-archive:
#             destinations with skopeo, docker, podman, containerd's ctr, umoci
#   consumers-sbom tests/consumers/sbom.sh: the SBOMs, checked with
#             pyspdxtools and cyclonedx-python-lib (installed from PyPI by
#             the stage sbom-tools) against the store database and umoci
#   consumers-registry tests/consumers/registry.sh: pushes to docker-registry
#             (plain HTTP, TLS + Basic, TLS + bearer tokens), pulled back by
#             docker, podman, skopeo and umoci; credentials from every source
#   consumers-platforms tests/consumers/platforms.sh: a multi-platform
#             image (x86_64 and a real aarch64 busybox) with skopeo, docker,
#             ctr and umoci
# Each stage prints `ok - STAGE` or `FAIL - STAGE`; the last line is
# "N passed, N failed" and the exit status is non-zero when a stage failed.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD

# Debian 12 packages: the engines and tools the consumer tests drive,
# valgrind for the C test, Guile for the bindings, and the small tools the
# scripts use (sqlite3, jq, zstd; setpriv, unshare and script are in
# util-linux and bsdutils; perl in perl-base); nix-bin, whose nix-store
# verifies the store database --localstatedir puts in an image; for the
# install test, make, pkg-config (pkgconf), readelf and objdump (binutils),
# man (man-db), and the shells whose completions are installed (zsh, fish);
# for the registry tests (tests/lib/registry.sh), the registry itself
# (docker-registry, distribution 2.8), htpasswd (apache2-utils), openssl,
# curl, and Debian's python3 with python3-cryptography for the token issuer
# (Debian's package rather than pip: one installer, a fixed version); for
# the layer cache's test that a warm build reads no store file, strace.
PACKAGES=(
    docker.io containerd runc iptables
    podman uidmap
    skopeo umoci
    busybox-static
    valgrind
    guile-3.0
    sqlite3 jq zstd
    util-linux bsdutils perl-base
    nix-bin
    make pkgconf binutils man-db zsh fish
    python3-venv
    docker-registry apache2-utils openssl curl python3 python3-cryptography
    strace
)

# The SBOM validators, which Debian 12 does not package: the SPDX project's
# spdx-tools (pyspdxtools) and cyclonedx-python-lib with its JSON validator,
# from PyPI with pip, into a venv of their own (Debian's Python refuses pip
# installs outside one); tests/consumers/sbom.sh finds them there.
SBOM_TOOLS=/opt/gdn-sbom-tools
SBOM_TOOL_PACKAGES=('spdx-tools==0.8.5' 'cyclonedx-python-lib[json-validation]==11.12.0')

PASSED=0
FAILED=0
declare -a SUMMARY=()

record() {
    local status=$1 stage=$2
    if [ "$status" -eq 0 ]; then
        PASSED=$((PASSED + 1))
        SUMMARY+=("ok - $stage")
    else
        FAILED=$((FAILED + 1))
        SUMMARY+=("FAIL - $stage")
    fi
    echo "${SUMMARY[-1]}"
}

# stage NAME COMMAND...: runs one stage and records its result.
stage() {
    local name=$1 start status=0
    shift
    echo
    echo "=== $name: $*"
    start=$(date +%s)
    "$@" || status=$?
    echo "=== $name: status $status after $(($(date +%s) - start)) s"
    record "$status" "$name"
    return "$status"
}

# script_stage NAME SCRIPT: a stage that runs a bash script of the project;
# a missing script is a failure, not a skip.
script_stage() {
    local name=$1 script=$2
    if [ ! -f "$ROOT/$script" ]; then
        echo
        echo "=== $name: $script is missing"
        record 1 "$name ($script missing)"
        return 1
    fi
    stage "$name" bash "$ROOT/$script"
}

# skipped NAME WHY: a stage that cannot run counts as failed.
skipped() {
    record 1 "$1 (not run: $2)"
}

install_packages() {
    local missing=() p
    # tests/consumers/platforms.sh downloads busybox-static:arm64 (a real
    # aarch64 program; not installed): apt needs the architecture's lists.
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64 && apt-get update -q || return 1
    fi
    for p in "${PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "all ${#PACKAGES[@]} packages are installed"
        return 0
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q "${missing[@]}"
}

install_sbom_tools() {
    if "$SBOM_TOOLS/bin/python" -c 'import spdx_tools, cyclonedx.validation.json' 2>/dev/null; then
        echo "the SBOM validators are installed in $SBOM_TOOLS"
        return 0
    fi
    python3 -m venv "$SBOM_TOOLS" && "$SBOM_TOOLS/bin/pip" install -q "${SBOM_TOOL_PACKAGES[@]}"
}

# shellcheck source=lib/dockerd.sh
source "$ROOT/tests/lib/dockerd.sh"
DOCKERD_DIR=
stop_dockerd() {
    [ -z "$DOCKERD_DIR" ] || gdn_dockerd_stop
    DOCKERD_DIR=
}
trap stop_dockerd EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_dockerd() {
    DOCKERD_DIR=$(mktemp -d /tmp/gdn-dockerd.XXXXXX) && gdn_dockerd_start "$DOCKERD_DIR"
}

if [ "$(id -u)" != 0 ]; then
    echo "tests/run-all.sh runs as root (it installs packages, starts dockerd, mounts)" >&2
    exit 1
fi

setup_ok=yes
stage packages install_packages || setup_ok=no
sbom_ok=yes
stage sbom-tools install_sbom_tools || sbom_ok=no
if [ "$setup_ok" = yes ]; then
    stage dockerd start_dockerd || setup_ok=no
else
    skipped dockerd "packages missing"
fi

if stage build cargo build --release; then
    stage rust cargo test --release
    script_stage c tests/c/run.sh
    script_stage guile tests/guile/run.sh
    script_stage install tests/install/run.sh
    if [ "$setup_ok" = yes ]; then
        script_stage consumers tests/consumers/run.sh
        script_stage consumers-oci tests/consumers/oci.sh
        script_stage consumers-registry tests/consumers/registry.sh
        script_stage consumers-platforms tests/consumers/platforms.sh
    else
        skipped consumers "no packages or no dockerd"
        skipped consumers-oci "no packages or no dockerd"
        skipped consumers-registry "no packages or no dockerd"
        skipped consumers-platforms "no packages or no dockerd"
    fi
    if [ "$sbom_ok" = yes ]; then
        script_stage consumers-sbom tests/consumers/sbom.sh
    else
        skipped consumers-sbom "the SBOM validators could not be installed"
    fi
else
    for s in rust c guile install consumers consumers-oci consumers-registry consumers-platforms consumers-sbom; do
        skipped "$s" "the build failed"
    done
fi

stop_dockerd
echo
echo "=== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
