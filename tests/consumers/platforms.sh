#!/usr/bin/env bash
# Multi-platform images with the real consumers: a little store holds the
# same package built for x86_64-linux (Debian's static busybox of this
# machine) and for aarch64-linux (Debian's busybox-static:arm64, a real
# aarch64 program that cannot run here), both referring to one data item;
# guix-docker-native --platform SYSTEM=ITEM writes them as one OCI image
# index, and
#   - skopeo inspect --raw shows the index with linux/amd64 and
#     linux/arm64/v8; skopeo inspect --override-arch picks each image;
#   - skopeo copy --override-arch amd64 into the private dockerd, then
#     docker run prints what the program prints;
#   - podman pull --arch arm64 (and amd64) of oci:DIR:REF picks that
#     platform's image (podman image inspect: its architecture, its
#     config; the entry point's busybox for that machine); the amd64 one
#     runs with podman run;
#   - ctr images import --all-platforms of the oci-archive, then ctr run of
#     the amd64 image;
#   - umoci unpack of each platform's image (picked by skopeo copy
#     --override-arch) holds exactly that platform's closure, file for file;
#   - the data item's layer is one blob, stored once (layout and archive);
#   - two builds give the same bytes; a docker-archive of two platforms and
#     other bad platforms are refused, leaving nothing.
#
#   bash tests/consumers/platforms.sh   (as root, after cargo build --release)
#
# Needs dpkg's arm64 architecture and busybox-static:arm64 downloadable
# (tests/run-all.sh's packages stage adds the architecture); uses the
# dockerd at $DOCKER_HOST when it answers, else starts its own
# (tests/lib/dockerd.sh); starts its own containerd (tests/lib/containerd.sh)
# and keeps podman's storage in the work directory.
# Each check prints `ok - ...` or `FAIL - ...`; the last line is
# "N passed, N failed"; the status is non-zero on a failure.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/dockerd.sh
source "$ROOT/tests/lib/dockerd.sh"
# shellcheck source=../lib/checks.sh
source "$ROOT/tests/lib/checks.sh"
# shellcheck source=../lib/containerd.sh
source "$ROOT/tests/lib/containerd.sh"

BIN=$ROOT/target/release/guix-docker-native

WORK=
OWN_DOCKERD=no

cleanup() {
    if [ "$OWN_DOCKERD" = yes ]; then
        gdn_dockerd_stop
    elif [ -n "${WORK:-}" ]; then
        gdn_docker rmi --force gdn-platforms:amd64 >/dev/null 2>&1 || true
    fi
    gdn_containerd_stop
    gdn_podman_cleanup
    [ -z "${WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

[ "$(id -u)" = 0 ] || die "the consumer tests run as root (dockerd, containerd)"
[ -x "$BIN" ] || die "$BIN is missing: run cargo build --release first"
for tool in dockerd containerd ctr podman skopeo umoci jq apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || die "$tool is not installed (tests/run-all.sh installs it)"
done
[ -x /bin/busybox ] || die "/bin/busybox (busybox-static) is not installed"

WORK=/tmp/gdn-platforms-$$
rm -rf "$WORK" && mkdir "$WORK" || die "cannot make $WORK"

# The aarch64 busybox, from Debian.
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64 ||
    die "dpkg --add-architecture arm64 failed"
(cd "$WORK" && { apt-get download busybox-static:arm64 >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get download busybox-static:arm64 >/dev/null 2>&1; }; }) ||
    die "apt-get download busybox-static:arm64 failed"
dpkg-deb -x "$WORK"/busybox-static_*_arm64.deb "$WORK/arm64" || die "dpkg-deb -x of busybox-static:arm64 failed"
ARM_BUSYBOX=$WORK/arm64/bin/busybox
[ -f "$ARM_BUSYBOX" ] || die "busybox-static:arm64 has no bin/busybox"

# elf_machine FILE: the ELF e_machine of FILE (3e00: x86-64, b700: AArch64).
elf_machine() { od -An -tx1 -j18 -N2 "$1" | tr -d ' \n'; }
[ "$(elf_machine "$ARM_BUSYBOX")" = b700 ] || die "$ARM_BUSYBOX is not an AArch64 program"

# The store: a hash part is 32 characters of nix-base32 (no e, o, t, u).
STORE=$WORK/s/gnu/store
mkdir -p "$STORE"
hash_of() { printf %s "$1" | sha256sum | cut -c1-32 | tr e z; }
DATA=$STORE/$(hash_of greeting-data)-greeting-data-1.0
mkdir -p "$DATA/share/greeting"
echo "Hello from a multi-platform image!" >"$DATA/share/greeting/message.txt"
# Something worth sharing: 1 MiB the two images store once.
head -c 1048576 /dev/zero | tr '\0' 'g' >"$DATA/share/greeting/big.txt"
# make_hello SYSTEM BUSYBOX: the hello package built for SYSTEM; prints its path.
make_hello() {
    local system=$1 busybox=$2 item
    item=$STORE/$(hash_of "hello-multi:$system")-hello-multi-1.0
    mkdir -p "$item/bin"
    cp "$busybox" "$item/bin/busybox"
    cat >"$item/bin/hello" <<EOF
#!$item/bin/busybox sh
$item/bin/busybox cat $DATA/share/greeting/message.txt
$item/bin/busybox echo "built for $system"
EOF
    chmod 0555 "$item/bin/busybox" "$item/bin/hello"
    echo "$item"
}
X86=$(make_hello x86_64-linux /bin/busybox)
ARM=$(make_hello aarch64-linux "$ARM_BUSYBOX")
find "$STORE" -exec touch -h -d @1 {} + && find "$STORE" -type f -exec chmod a-w {} +
EXPECTED=$(env -i "$X86/bin/hello")
[ "$EXPECTED" = "Hello from a multi-platform image!
built for x86_64-linux" ] || die "the x86_64 hello prints '$EXPECTED'"

# No database: each item's closure is found by scanning, as the daemon does.
gdn() { "$BIN" --store-dir "$STORE" "$@"; }
PLATFORMS=(--platform "x86_64-linux=$X86" --platform "aarch64-linux=$ARM")
IMAGE_ARGS=(-q --entry-point bin/hello --max-layers 10 -t gdn-platforms:1)

if gdn_docker version >/dev/null 2>&1; then
    echo "# using the dockerd at ${DOCKER_HOST:-the default socket}"
else
    gdn_dockerd_start "$(mktemp -d /tmp/gdn-pd.XXXXXX)" || die "could not start dockerd"
    OWN_DOCKERD=yes
fi
gdn_containerd_start "$(mktemp -d /tmp/gdn-pc.XXXXXX)" || die "could not start containerd"
gdn_podman_setup "$WORK/podman"

LAYOUT=$WORK/layout
ARCHIVE=$WORK/multi.tar
REF=gdn-platforms:1
gdn "${IMAGE_ARGS[@]}" -C gzip "${PLATFORMS[@]}" -o "oci:$LAYOUT" >"$WORK/printed" ||
    die "the build into oci:$LAYOUT failed"
gdn "${IMAGE_ARGS[@]}" -C gzip "${PLATFORMS[@]}" -o "oci-archive:$ARCHIVE" >/dev/null ||
    die "the build into oci-archive:$ARCHIVE failed"

# ---------------------------------------------------------------- checks

prints_the_destination() {
    expect_equal "printed" "oci:$LAYOUT:$REF" "$(cat "$WORK/printed")"
}

# skopeo inspect --raw: the index entry is an image index of two manifests.
skopeo_shows_the_index() {
    local raw platforms
    raw=$(timeout 60 skopeo inspect --raw "oci:$LAYOUT:$REF") || return 1
    expect_equal "mediaType" application/vnd.oci.image.index.v1+json "$(jq -r .mediaType <<<"$raw")" || return 1
    platforms=$(jq -r '.manifests[] | [.mediaType, .platform.os, .platform.architecture, .platform.variant // "-"] | join(" ")' <<<"$raw")
    expect_equal "the manifests and their platforms" \
        "application/vnd.oci.image.manifest.v1+json linux amd64 -
application/vnd.oci.image.manifest.v1+json linux arm64 v8" "$platforms" || return 1
    jq -c '.manifests[].platform' <<<"$raw" | sed 's/^/# /'
}

# skopeo_picks ARCH VARIANT MACHINE: --override-arch picks the image whose
# config says ARCH (and VARIANT), its entry point the program for it.
skopeo_picks() {
    local arch=$1 variant=$2 machine=$3 inspected config entry item
    inspected=$(timeout 60 skopeo inspect --override-arch "$arch" "oci:$LAYOUT:$REF") || return 1
    expect_equal "Architecture" "$arch" "$(jq -r .Architecture <<<"$inspected")" || return 1
    config=$(timeout 60 skopeo inspect --config --override-arch "$arch" "oci:$LAYOUT:$REF") || return 1
    expect_equal "config architecture/variant" "$arch/$variant" \
        "$(jq -r '"\(.architecture)/\(.variant // "-")"' <<<"$config")" || return 1
    entry=$(jq -r '.config.Entrypoint[0]' <<<"$config")
    item=${entry%/bin/hello}
    expect_equal "its item's busybox is for" "$machine" "$(elf_machine "$item/bin/busybox")" || return 1
    echo "# $arch: $entry"
}

docker_runs_amd64() {
    local output
    timeout 120 skopeo copy --quiet --override-arch amd64 --dest-daemon-host "${DOCKER_HOST:-unix:///var/run/docker.sock}" \
        "oci:$LAYOUT:$REF" docker-daemon:gdn-platforms:amd64 || return 1
    expect_equal "architecture in docker" amd64 "$("$GDN_DOCKER_CLI" image inspect -f '{{.Architecture}}' gdn-platforms:amd64)" ||
        return 1
    output=$(timeout 120 "$GDN_DOCKER_CLI" run --rm --network none gdn-platforms:amd64 2>&1)
    expect_equal "docker run" "$EXPECTED" "$output"
}

# podman_pulls ARCH MACHINE: podman pull --arch ARCH of the layout gives the
# image of ARCH's manifest in the index (its ID is that manifest's config
# digest), which podman image inspect says is for ARCH, its entry point's
# busybox a MACHINE program; the amd64 one runs.
podman_pulls() {
    local arch=$1 machine=$2 id index manifest config inspected entry output
    id=$(timeout 120 "${GDN_PODMAN[@]}" pull -q --arch "$arch" "oci:$LAYOUT:$REF" 2>&1) || { echo "$id"; return 1; }
    index=$LAYOUT/blobs/sha256/$(jq -r '.manifests[0].digest' "$LAYOUT/index.json" | cut -d: -f2)
    manifest=$(jq -r --arg a "$arch" '.manifests[] | select(.platform.architecture == $a) | .digest' "$index")
    config=$(jq -r .config.digest "$LAYOUT/blobs/sha256/${manifest#sha256:}")
    expect_equal "the pulled image's ID (the $arch manifest's config)" "${config#sha256:}" "$id" || return 1
    inspected=$(gdn_podman image inspect "$id") || return 1
    expect_equal "podman image inspect: Architecture/Os" "$arch/linux" \
        "$(jq -r '.[0] | "\(.Architecture)/\(.Os)"' <<<"$inspected")" || return 1
    entry=$(jq -r '.[0].Config.Entrypoint[0]' <<<"$inspected")
    expect_equal "its entry point's busybox is for" "$machine" "$(elf_machine "${entry%/bin/hello}/bin/busybox")" ||
        return 1
    echo "# podman pull --arch $arch: $id, $entry"
    if [ "$arch" = amd64 ]; then
        output=$(timeout 120 "${GDN_PODMAN[@]}" run --rm --network none "$id" 2>&1)
        expect_equal "podman run" "$EXPECTED" "$output" || return 1
    fi
    gdn_podman rmi -f "$id" >/dev/null
}

ctr_imports_all_platforms() {
    local output name=docker.io/library/$REF platforms
    output=$(timeout 120 "${GDN_CTR[@]}" images import --all-platforms --snapshotter native "$ARCHIVE" 2>&1) ||
        { echo "$output"; return 1; }
    echo "# ctr images import: $output"
    case $output in
        *"unpacking $name"*done*) ;;
        *) echo "ctr images import said: $output"; return 1 ;;
    esac
    # Both platforms' content is in containerd's store.
    # (REF TYPE DIGEST SIZE PLATFORMS LABELS; the size has a space.)
    platforms=$(gdn_ctr images ls | awk -v n="$name" '$1 == n')
    case $platforms in
        *linux/amd64*linux/arm64/v8*) ;;
        *) echo "ctr images ls shows: $platforms"; return 1 ;;
    esac
    output=$(timeout 120 "${GDN_CTR[@]}" run --rm --snapshotter native "$name" "gdn-platforms-$$" 2>&1)
    expect_equal "ctr run" "$EXPECTED" "$output" || return 1
    gdn_ctr images rm "$name" >/dev/null
}

# umoci_unpacks ARCH ITEM: the image skopeo picks for ARCH, copied into a
# layout of its own, unpacks to exactly ITEM's closure (ITEM and the data).
umoci_unpacks() {
    local arch=$1 item=$2 one=$WORK/one-$1 bundle=$WORK/bundle-$1 names
    timeout 120 skopeo copy --quiet --override-arch "$arch" "oci:$LAYOUT:$REF" "oci:$one:$arch" || return 1
    umoci unpack --image "$one:$arch" "$bundle" >/dev/null || return 1
    names=$(ls "$bundle/rootfs$STORE")
    expect_equal "the store in the image" "$(printf '%s\n' "$(basename "$DATA")" "$(basename "$item")" | sort)" \
        "$names" || return 1
    listing "$STORE" "$(basename "$DATA")" "$(basename "$item")" >"$WORK/store-$arch.list" || return 1
    listing "$bundle/rootfs$STORE" "$(basename "$DATA")" "$(basename "$item")" >"$WORK/image-$arch.list" || return 1
    expect_equal "file for file" "$(cat "$WORK/store-$arch.list")" "$(cat "$WORK/image-$arch.list")"
}

# The data item's layer is one blob in both manifests, and the layout holds
# each blob once: the distinct layers, 2 configs, 2 manifests, the index.
shared_blob_stored_once() {
    local manifests shared distinct blobs
    manifests=$(jq -r '.manifests[].digest' <"$LAYOUT/blobs/sha256/$(jq -r '.manifests[0].digest' "$LAYOUT/index.json" | cut -d: -f2)")
    local -a layers=()
    local m
    for m in $manifests; do
        layers+=("$(jq -r '.layers[].digest' "$LAYOUT/blobs/sha256/${m#sha256:}" | sort)")
    done
    shared=$(comm -12 <(echo "${layers[0]}") <(echo "${layers[1]}"))
    distinct=$(printf '%s\n' "${layers[@]}" | sort -u | wc -l)
    [ -n "$shared" ] || { echo "no layer is shared"; return 1; }
    blobs=$(find "$LAYOUT/blobs/sha256" -type f | wc -l)
    expect_equal "blobs in blobs/sha256" "$((distinct + 5))" "$blobs" || return 1
    # A shared layer holds the data item (1 MiB, gzipped to a little).
    local digest found=no
    for digest in $shared; do
        # (Read whole: grep -q would stop the pipe early, a failure under pipefail.)
        case $(gzip -dc <"$LAYOUT/blobs/sha256/${digest#sha256:}" | tar t) in
            *greeting-data-1.0/share/greeting/big.txt*) found=yes ;;
        esac
    done
    [ "$found" = yes ] || { echo "no shared layer holds the data item"; return 1; }
    echo "# $(echo "$shared" | wc -l) shared layer(s), $distinct distinct layers, $blobs blobs"
}

archive_holds_each_blob_once() {
    local names duplicates
    names=$(tar tf "$ARCHIVE") || return 1
    duplicates=$(sort <<<"$names" | uniq -d)
    [ -z "$duplicates" ] || { echo "written twice: $duplicates"; return 1; }
    # The same blobs as the layout.
    expect_equal "blobs" "$(ls "$LAYOUT/blobs/sha256")" \
        "$(grep '^blobs/sha256/.' <<<"$names" | sed 's|^blobs/sha256/||' | sort)"
}

reproducible() {
    local again=$WORK/again
    (umask 077 && gdn "${IMAGE_ARGS[@]}" -C gzip --threads 1 "${PLATFORMS[@]}" -o "oci:$again" >/dev/null) || return 1
    diff -r "$LAYOUT" "$again" || return 1
    gdn "${IMAGE_ARGS[@]}" -C gzip --threads 3 "${PLATFORMS[@]}" -o "oci-archive:$WORK/again.tar" >/dev/null || return 1
    cmp "$ARCHIVE" "$WORK/again.tar"
}

refusals() {
    local file=$WORK/refused.tar dir=$WORK/refused
    expect_refusal 2 "a docker-archive holds the image of one platform" \
        gdn "${PLATFORMS[@]}" -o "$file" || return 1
    [ ! -e "$file" ] || { echo "$file was left"; return 1; }
    expect_refusal 2 "linux/amd64 is given twice" \
        gdn --platform "x86_64-linux=$X86" --platform "x86_64-linux-gnu=$ARM" -o "oci:$dir" || return 1
    expect_refusal 2 "system 'sparc-linux': unsupported" \
        gdn --platform "x86_64-linux=$X86" --platform "sparc-linux=$ARM" -o "oci:$dir" || return 1
    expect_refusal 2 "cannot be used with" gdn "${PLATFORMS[@]}" -o "oci:$dir" "$X86" || return 1
    expect_refusal 6 "does not exist" gdn "${PLATFORMS[@]}" --platform "i686-linux=$STORE/$(hash_of none)-none" \
        -o "oci:$dir" || return 1
    [ ! -e "$dir" ] || { echo "$dir was left"; return 1; }
}

check "the CLI prints oci:DIR:REF" prints_the_destination
check "skopeo inspect --raw: one image index, linux/amd64 and linux/arm64/v8" skopeo_shows_the_index
check "skopeo inspect --override-arch amd64: the x86_64 image" skopeo_picks amd64 - 3e00
check "skopeo inspect --override-arch arm64: the aarch64 image (variant v8, a real AArch64 busybox)" skopeo_picks arm64 v8 b700
check "skopeo copy --override-arch amd64 into docker, docker run" docker_runs_amd64
check "podman pull --arch arm64 oci:DIR:REF: the aarch64 image (podman image inspect)" podman_pulls arm64 b700
check "podman pull --arch amd64 oci:DIR:REF: the x86_64 image, podman run" podman_pulls amd64 3e00
check "ctr images import --all-platforms of the oci-archive, ctr run of the amd64 image" ctr_imports_all_platforms
check "umoci unpack of the amd64 image: exactly its closure, file for file" umoci_unpacks amd64 "$X86"
check "umoci unpack of the arm64 image: exactly its closure, file for file" umoci_unpacks arm64 "$ARM"
check "the shared data layer is one blob, stored once" shared_blob_stored_once
check "the oci-archive holds each blob once, the layout's blobs" archive_holds_each_blob_once
check "two builds (other umask, other threads) give the same bytes" reproducible
check "a docker-archive of two platforms and bad platforms are refused, leaving nothing" refusals

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
