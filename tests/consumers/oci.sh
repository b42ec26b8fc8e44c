#!/usr/bin/env bash
# The OCI destinations with the real consumers: images written by
# guix-docker-native -o oci:DIR[:REF] and -o oci-archive:FILE[:REF] from the
# sample store, uncompressed, gzip and zstd, in one layer and several, are
# inspected by skopeo, copied by skopeo into Docker and run, pulled or
# loaded and run by podman, imported and run by containerd's ctr, and
# unpacked by umoci (the root is the closure, file for file); builds are
# reproducible; a layout is added to without harm to what it holds; bad
# destinations are refused, leaving nothing.
#
#   bash tests/consumers/oci.sh        (as root, after cargo build --release)
#
# Uses the dockerd at $DOCKER_HOST when it answers, else starts its own
# (tests/lib/dockerd.sh); starts its own containerd (tests/lib/containerd.sh).
# Each check prints `ok - ...` or `FAIL - ...` (then `#` lines saying why);
# the last line is "N passed, N failed"; the status is non-zero on a failure.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/dockerd.sh
source "$ROOT/tests/lib/dockerd.sh"
# shellcheck source=../lib/checks.sh
source "$ROOT/tests/lib/checks.sh"
# shellcheck source=../lib/containerd.sh
source "$ROOT/tests/lib/containerd.sh"

BIN=$ROOT/target/release/guix-docker-native
SAMPLE_STORE=$ROOT/target/release/gdn-sample-store

WORK=
MOUNTS=()

cleanup() {
    gdn_containerd_stop
    gdn_consumer_cleanup '^gdn-oci'
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

[ "$(id -u)" = 0 ] || die "the consumer tests run as root (dockerd, containerd, mounts)"
for program in "$BIN" "$SAMPLE_STORE"; do
    [ -x "$program" ] || die "$program is missing: run cargo build --release first"
done
for tool in dockerd containerd ctr podman skopeo umoci sqlite3 jq zstd gzip unshare; do
    command -v "$tool" >/dev/null || die "$tool is not installed (tests/run-all.sh installs it)"
done

# Lower case: podman 4.3 names an image pulled from oci:DIR after DIR.
WORK=/tmp/gdn-oci-$$
rm -rf "$WORK" && mkdir "$WORK" || die "cannot make $WORK"
make_sample_store "$WORK/s"

EXPECTED=$(env -i GREETING=bonjour "$MAIN/bin/hello" one "two words")
gdn() { "$BIN" --store-dir "$STORE" --database "$DB" "$@"; }
IMAGE_ARGS=(--entry-point bin/hello -A one -A "two words" -E GREETING=bonjour)

gdn_consumer_docker gdn-od || die "could not start dockerd"
gdn_podman_setup "$WORK/podman"
gdn_containerd_start "$(mktemp -d /tmp/gdn-oc.XXXXXX)" || die "could not start containerd"
podman_cmd() { timeout 120 "${GDN_PODMAN[@]}" "$@"; }

media_type() {
    case $1 in
        none) echo application/vnd.oci.image.layer.v1.tar ;;
        gzip) echo application/vnd.oci.image.layer.v1.tar+gzip ;;
        zstd) echo application/vnd.oci.image.layer.v1.tar+zstd ;;
    esac
}
decompress() {
    case $1 in
        none) cat ;;
        gzip) gzip -dc ;;
        zstd) zstd -qdc ;;
    esac
}
# Layers an image of the sample store has with --max-layers N (N <= closure
# size + 1): N - 1 items alone, the rest together, and /tmp on top.
expected_layers() { [ "$1" = 1 ] && echo 1 || echo "$1"; }

# ---------------------------------------------------------------- checks

# layout_is_right DIR REF COMPRESSION LAYERS: skopeo reads the image; the
# manifest names the media types asked for; every blob's file has its
# digest and size; each layer decompressed hashes to its diff_id; the index
# entry carries the ref and containerd names.
layout_is_right() {
    local dir=$1 ref=$2 compression=$3 layers=$4 raw config i digest diff_id
    raw=$(timeout 60 skopeo inspect --raw "oci:$dir:$ref") || return 1
    expect_equal "layer media types" "$(for i in $(seq "$layers"); do media_type "$compression"; done)" \
        "$(jq -r '.layers[].mediaType' <<<"$raw")" || return 1
    expect_equal "config media type" application/vnd.oci.image.config.v1+json "$(jq -r .config.mediaType <<<"$raw")" || return 1
    expect_equal "manifest annotation created" 1970-01-01T00:00:01Z \
        "$(jq -r '.annotations["org.opencontainers.image.created"]' <<<"$raw")" || return 1
    config=$(timeout 60 skopeo inspect --config --raw "oci:$dir:$ref") || return 1
    expect_equal "architecture" amd64 "$(jq -r .architecture <<<"$config")" || return 1
    for i in $(seq 0 $((layers - 1))); do
        digest=$(jq -r ".layers[$i].digest" <<<"$raw")
        local blob=$dir/blobs/sha256/${digest#sha256:}
        expect_equal "blob $i's sha256" "$digest" "sha256:$(sha256sum <"$blob" | cut -c1-64)" || return 1
        expect_equal "blob $i's size" "$(jq -r ".layers[$i].size" <<<"$raw")" "$(stat -c %s "$blob")" || return 1
        diff_id=$(jq -r ".rootfs.diff_ids[$i]" <<<"$config")
        expect_equal "layer $i's diff_id (the uncompressed tar's sha256)" "$diff_id" \
            "sha256:$(decompress "$compression" <"$blob" | sha256sum | cut -c1-64)" || return 1
    done
    local entry
    entry=$(jq -c --arg r "$ref" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r)' "$dir/index.json")
    expect_equal "containerd's name in the index entry" "docker.io/library/$ref" \
        "$(jq -r '.annotations["io.containerd.image.name"]' <<<"$entry")" || return 1
    echo "# $layers layer(s), $(media_type "$compression")"
}

# docker_runs_from_layout DIR REF: skopeo copy into the docker daemon; docker run.
docker_runs_from() {
    local source=$1 tag=$2 output
    timeout 120 skopeo copy --quiet --dest-daemon-host "${DOCKER_HOST:-unix:///var/run/docker.sock}" "$source" "docker-daemon:$tag" || return 1
    output=$(timeout 120 "$GDN_DOCKER_CLI" run --rm --network none "$tag" 2>&1)
    expect_equal "docker run $tag" "$EXPECTED" "$output"
}

podman_runs() {
    local output
    output=$(podman_cmd run --rm --network none "$1" 2>&1)
    expect_equal "podman run $1" "$EXPECTED" "$output"
}

podman_pulls_layout() {
    local dir=$1 ref=$2 id
    id=$(podman_cmd pull -q "oci:$dir:$ref" 2>&1) || { echo "$id"; return 1; }
    podman_runs "$id" && podman_cmd rmi -f "$id" >/dev/null
}

podman_loads_archive() {
    local file=$1 output
    output=$(podman_cmd load -q -i "$file" 2>&1) || { echo "$output"; return 1; }
    echo "# podman load: $output"
    podman_runs "${output##*: }" && podman_cmd rmi -af >/dev/null
}

ctr_imports_and_runs() {
    local file=$1 name=$2 output
    output=$(timeout 120 "${GDN_CTR[@]}" images import --snapshotter native "$file" 2>&1) || { echo "$output"; return 1; }
    case $output in
        *"unpacking $name"*done*) ;;
        *) echo "ctr images import said: $output"; return 1 ;;
    esac
    output=$(timeout 120 "${GDN_CTR[@]}" run --rm --snapshotter native "$name" "gdn-oci-$$-$RANDOM" 2>&1)
    expect_equal "ctr run $name" "$EXPECTED" "$output" || return 1
    gdn_ctr images rm "$name" >/dev/null
}

# oci_layout COMPRESSION MAX_LAYERS: oci:DIR:REF through skopeo, docker
# (not zstd: Docker 20.10 cannot unpack it), podman pull and umoci.
oci_layout() {
    local compression=$1 n=$2 dir=$WORK/layout-$1-$2 tag=gdn-oci-$1:l$2 printed
    rm -rf "$dir"
    printed=$(gdn "${IMAGE_ARGS[@]}" -t "$tag" -C "$compression" --max-layers "$n" -o "oci:$dir" "$MAIN") || return 1
    expect_equal "printed destination" "oci:$dir:$tag" "$printed" || return 1
    layout_is_right "$dir" "$tag" "$compression" "$(expected_layers "$n")" || return 1
    if [ "$compression" != zstd ]; then
        docker_runs_from "oci:$dir:$tag" "$tag" || return 1
    fi
    podman_pulls_layout "$dir" "$tag"
}

# oci_archive COMPRESSION MAX_LAYERS: oci-archive:FILE through skopeo,
# podman load and ctr images import.
oci_archive() {
    local compression=$1 n=$2 file=$WORK/archive-$1-$2.tar tag=gdn-oci-$1:a$2 unpacked=$WORK/unpacked-$1-$2
    gdn "${IMAGE_ARGS[@]}" -t "$tag" -C "$compression" --max-layers "$n" -o "oci-archive:$file" "$MAIN" >/dev/null || return 1
    rm -rf "$unpacked" && mkdir "$unpacked" && tar -xf "$file" -C "$unpacked" || return 1
    layout_is_right "$unpacked" "$tag" "$compression" "$(expected_layers "$n")" || return 1
    local raw
    raw=$(timeout 60 skopeo inspect --raw "oci-archive:$file") || return 1
    expect_equal "skopeo's media types of oci-archive:" \
        "$(for i in $(seq "$(expected_layers "$n")"); do media_type "$compression"; done)" \
        "$(jq -r '.layers[].mediaType' <<<"$raw")" || return 1
    if [ "$compression" != zstd ]; then
        docker_runs_from "oci-archive:$file" "$tag" || return 1
    fi
    podman_loads_archive "$file" && ctr_imports_and_runs "$file" "docker.io/library/$tag"
}

# oci_archive_to_a_pipe COMPRESSION: -o oci-archive:- (each blob spooled to
# an unnamed file under $TMPDIR) gives the bytes of the regular file, and a
# FIFO too; skopeo copy oci-archive:FIFO, podman load and ctr images
# import - read it from the pipe and run it; the spool directory is empty
# after each build.
oci_archive_to_a_pipe() {
    local compression=$1 file=$WORK/piped-$1.tar tag=gdn-oci-$1:pipe spool=$WORK/spool-$1 dir=$WORK/from-pipe-$1 id
    rm -rf "$spool" "$dir" && mkdir "$spool" || return 1
    local args=("${IMAGE_ARGS[@]}" -t "$tag" -C "$compression" --max-layers 4)
    gdn "${args[@]}" -o "oci-archive:$file" "$MAIN" >/dev/null || return 1
    expect_equal "oci-archive:- | cat: the regular file's bytes" "$(sha256sum <"$file")" \
        "$(TMPDIR=$spool gdn "${args[@]}" -o oci-archive:- "$MAIN" | sha256sum)" || return 1
    expect_equal "spool directory after the build" "" "$(ls -A "$spool")" || return 1
    mkfifo "$WORK/fifo-$1" || return 1
    sha256sum <"$WORK/fifo-$1" >"$WORK/fifo-$1.sum" &
    local reader=$!
    TMPDIR=$spool gdn "${args[@]}" -o "oci-archive:$WORK/fifo-$1" "$MAIN" >/dev/null || return 1
    wait "$reader" || return 1
    rm -f "$WORK/fifo-$1"
    expect_equal "oci-archive:FIFO: the regular file's bytes" "$(sha256sum <"$file")" "$(cat "$WORK/fifo-$1.sum")" || return 1
    # skopeo takes a path, not /dev/stdin (it resolves symlinks, and a
    # pipe's is pipe:[N]): standard output is a FIFO that skopeo reads.
    local fifo=$WORK/skopeo-fifo-$1 writer
    mkfifo "$fifo" || return 1
    TMPDIR=$spool "$BIN" --store-dir "$STORE" --database "$DB" "${args[@]}" -o oci-archive:- "$MAIN" >"$fifo" &
    writer=$!
    timeout 120 skopeo copy --quiet "oci-archive:$fifo" "oci:$dir:$tag" || { kill "$writer"; wait "$writer"; return 1; }
    wait "$writer" || return 1
    rm -f "$fifo"
    # skopeo may recompress the layers on the way; the config (the
    # diff_ids) is the one built, and the copy runs.
    expect_equal "config of the copy read from the FIFO" \
        "$(timeout 60 skopeo inspect --raw "oci-archive:$file" | jq -r .config.digest)" \
        "$(timeout 60 skopeo inspect --raw "oci:$dir:$tag" | jq -r .config.digest)" || return 1
    podman_pulls_layout "$dir" "$tag" || return 1
    id=$(TMPDIR=$spool gdn "${args[@]}" -o oci-archive:- "$MAIN" | podman_cmd load -q 2>&1) || { echo "$id"; return 1; }
    echo "# podman load from the pipe: $id"
    podman_runs "${id##*: }" && podman_cmd rmi -af >/dev/null || return 1
    local output name=docker.io/library/$tag
    output=$(TMPDIR=$spool gdn "${args[@]}" -o oci-archive:- "$MAIN" |
        timeout 120 "${GDN_CTR[@]}" images import --snapshotter native - 2>&1) || { echo "$output"; return 1; }
    case $output in
        *"unpacking $name"*done*) ;;
        *) echo "ctr images import - said: $output"; return 1 ;;
    esac
    output=$(timeout 120 "${GDN_CTR[@]}" run --rm --snapshotter native "$name" "gdn-oci-$$-$RANDOM" 2>&1)
    expect_equal "ctr run $name" "$EXPECTED" "$output" || return 1
    gdn_ctr images rm "$name" >/dev/null
    expect_equal "spool directory after the builds" "" "$(ls -A "$spool")"
}

# An oci-archive with SBOM artifacts (--sbom spdx --sbom cyclonedx): its
# index has the image and the two artifacts.  By its ref, skopeo copy
# oci-archive:FILE:REF and podman pull oci-archive:FILE:REF give the image,
# which runs; ctr images import takes the named entry, which runs.  podman
# load (no way to give a ref) and skopeo without a ref refuse it as any
# archive of several images ("more than one image"): README, "SBOMs", says
# so; this check notices when they stop refusing it.
oci_archive_with_sboms() {
    local file=$WORK/sboms.tar tag=gdn-oci-sbom:1 dir=$WORK/sbom-copy id output name=docker.io/library/gdn-oci-sbom:1
    rm -rf "$dir"
    gdn "${IMAGE_ARGS[@]}" -t "$tag" -C gzip --max-layers 3 --sbom spdx --sbom cyclonedx -o "oci-archive:$file" "$MAIN" \
        >/dev/null || return 1
    expect_equal "index entries: the image, then the artifacts" "- application/spdx+json application/vnd.cyclonedx+json" \
        "$(tar -xOf "$file" index.json | jq -r '[.manifests[] | .artifactType // "-"] | join(" ")')" || return 1
    timeout 120 skopeo copy --quiet "oci-archive:$file:$tag" "oci:$dir:$tag" || return 1
    podman_pulls_layout "$dir" "$tag" || return 1
    id=$(podman_cmd pull -q "oci-archive:$file:$tag" 2>&1) || { echo "podman pull oci-archive:FILE:REF: $id"; return 1; }
    podman_runs "$id" && podman_cmd rmi -f "$id" >/dev/null || return 1
    ctr_imports_and_runs "$file" "$name" || return 1
    if output=$(podman_cmd load -q -i "$file" 2>&1); then
        echo "podman load now takes an archive with SBOMs ($output): update README's SBOM section"
        return 1
    fi
    case $output in
        *"more than one image"*) echo "# podman load refuses it, as README says: ${output##*oci-archive: }" ;;
        *) echo "podman load said: $output"; return 1 ;;
    esac
}

# umoci unpack of oci:DIR:REF: the store holds exactly the closure, file
# for file (contents, executable bits, symlink targets).
umoci_unpacks_the_closure() {
    local compression=$1 dir=$WORK/umoci-$1 bundle=$WORK/bundle-$1 tag=gdn-oci:umoci
    rm -rf "$dir" "$bundle"
    gdn "${IMAGE_ARGS[@]}" -t "$tag" -C "$compression" --max-layers 3 -o "oci:$dir" "$MAIN" >/dev/null || return 1
    umoci unpack --image "$dir:$tag" "$bundle" >/dev/null || return 1
    local rootfs=$bundle/rootfs
    expect_equal "items in the image's store" "$(printf '%s\n' "${CLOSURE_NAMES[@]}" | LC_ALL=C sort)" \
        "$(ls "$rootfs$STORE" | LC_ALL=C sort)" || return 1
    listing "$STORE" "${CLOSURE_NAMES[@]}" >"$WORK/store.list" || return 1
    listing "$rootfs$STORE" "${CLOSURE_NAMES[@]}" >"$WORK/image.list" || return 1
    diff -u "$WORK/store.list" "$WORK/image.list" || { echo "the unpacked image differs from the store"; return 1; }
    echo "# $(wc -l <"$WORK/store.list") entries identical"
}

# The bytes of every file of a layout, one line each.
layout_bytes() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum); }

# Same bytes: again; umask 077 and one thread in another directory; a copy
# of the store with other mtimes, in a mount namespace.
reproducible() {
    local compression=$1 a=$WORK/rep-a b=$WORK/rep-b c=$WORK/rep-c
    rm -rf "$a" "$b" "$c" "$a.tar" "$b.tar" "$c.tar"
    gdn "${IMAGE_ARGS[@]}" -t gdn-oci:rep -C "$compression" --max-layers 3 --threads 2 -o "oci:$a" "$MAIN" >/dev/null &&
        gdn "${IMAGE_ARGS[@]}" -t gdn-oci:rep -C "$compression" --max-layers 3 --threads 2 -o "oci-archive:$a.tar" "$MAIN" >/dev/null ||
        return 1
    (umask 077 && cd / && gdn "${IMAGE_ARGS[@]}" -t gdn-oci:rep -C "$compression" --max-layers 3 --threads 1 -o "oci:$b" "$MAIN" >/dev/null &&
        gdn "${IMAGE_ARGS[@]}" -t gdn-oci:rep -C "$compression" --max-layers 3 --threads 1 -o "oci-archive:$b.tar" "$MAIN" >/dev/null) ||
        return 1
    expect_equal "oci: layout, umask 077 and one thread" "$(layout_bytes "$a")" "$(layout_bytes "$b")" || return 1
    cmp "$a.tar" "$b.tar" || return 1
    local copy=$WORK/touched
    rm -rf "$copy" && cp -a "$SAMPLE_DIR" "$copy" && find "$copy" -exec touch -h -d '2011-11-11 11:11:11' {} + || return 1
    unshare --mount --propagation private -- bash -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' x "$copy" "$SAMPLE_DIR" \
        "$BIN" --store-dir "$STORE" --database "$DB" "${IMAGE_ARGS[@]}" -t gdn-oci:rep -C "$compression" --max-layers 3 \
        -o "oci-archive:$c.tar" "$MAIN" >/dev/null || return 1
    cmp "$a.tar" "$c.tar"
}

# A second image added to a layout: the first stays, its blobs untouched;
# the same ref again replaces its entry; both run.
second_image_leaves_the_first() {
    local dir=$WORK/two inodes_before inodes_after
    rm -rf "$dir"
    gdn "${IMAGE_ARGS[@]}" -t gdn-oci:first -C gzip -o "oci:$dir" "$MAIN" >/dev/null || return 1
    inodes_before=$(cd "$dir/blobs/sha256" && stat -c '%n %i %Y' * | sort)
    gdn "${IMAGE_ARGS[@]}" -t gdn-oci:second -C gzip --max-layers 3 -o "oci:$dir" "$MAIN" >/dev/null || return 1
    expect_equal "refs in the index" "gdn-oci:first gdn-oci:second" \
        "$(jq -r '[.manifests[].annotations["org.opencontainers.image.ref.name"]] | join(" ")' "$dir/index.json")" || return 1
    inodes_after=$(cd "$dir/blobs/sha256" && stat -c '%n %i %Y' * | sort)
    expect_equal "the first image's blobs (name, inode, mtime) missing or changed" "" \
        "$(comm -23 <(printf '%s\n' "$inodes_before") <(printf '%s\n' "$inodes_after"))" || return 1
    layout_is_right "$dir" gdn-oci:first gzip 1 && podman_pulls_layout "$dir" gdn-oci:first || return 1
    layout_is_right "$dir" gdn-oci:second gzip 3 && podman_pulls_layout "$dir" gdn-oci:second || return 1
    # The same ref again, another image (zstd): its entry is replaced.
    gdn "${IMAGE_ARGS[@]}" -t gdn-oci:first -C zstd -o "oci:$dir:gdn-oci:first" "$MAIN" >/dev/null || return 1
    expect_equal "refs after replacing the first" "gdn-oci:second gdn-oci:first" \
        "$(jq -r '[.manifests[].annotations["org.opencontainers.image.ref.name"]] | join(" ")' "$dir/index.json")" || return 1
    layout_is_right "$dir" gdn-oci:first zstd 1 && podman_pulls_layout "$dir" gdn-oci:first || return 1
    umoci unpack --image "$dir:gdn-oci:second" "$WORK/two-bundle" >/dev/null || return 1
    echo "# $(ls "$dir/blobs/sha256" | wc -l) blobs, $(jq '.manifests | length' "$dir/index.json") images"
}

# Everything under DIR, with contents.
snapshot() { (cd "$1" && find . -printf '%y %p %s\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum); }

bad_destinations() {
    local d=$WORK/bad before
    rm -rf "$d" && mkdir -p "$d"
    expect_refusal 2 "unknown transport 'docker-daemon'" gdn -o docker-daemon:gdn-oci:x "$MAIN" || return 1
    expect_refusal 2 "unknown transport 'dir'" gdn -o "dir:$d/x" "$MAIN" || return 1
    echo data >"$d/file"
    expect_refusal 7 "'$d/file' is not a directory" gdn -o "oci:$d/file" "$MAIN" || return 1
    expect_equal "the file" data "$(cat "$d/file")" || return 1
    mkdir "$d/other" && echo x >"$d/other/keep"
    expect_refusal 7 "is not an OCI image layout" gdn -o "oci:$d/other" "$MAIN" || return 1
    expect_equal "the directory that is not a layout" keep "$(ls -A "$d/other")" || return 1
    gdn -o "oci:$d/corrupt" "$MAIN" >/dev/null || return 1
    printf '{"schemaVersion":2,"manifests":[' >"$d/corrupt/index.json"
    before=$(snapshot "$d/corrupt")
    expect_refusal 7 "index.json' is corrupt" gdn -t gdn-oci:other -o "oci:$d/corrupt" "$MAIN" || return 1
    expect_equal "the corrupt layout" "$before" "$(snapshot "$d/corrupt")" || return 1
    expect_refusal 7 "$d/missing/x.tar" gdn -o "oci-archive:$d/missing/x.tar" "$MAIN" || return 1
    expect_refusal 7 "cannot create the layout directory" gdn -o "oci:$d/missing/layout" "$MAIN" || return 1
    expect_refusal 2 "reference 'a b'" gdn -o "oci:$d/l:a b" "$MAIN" || return 1
    # To a device or pipe, blobs are spooled under $TMPDIR: a missing one is named.
    TMPDIR=$d/missing expect_refusal 7 "temporary file under '$d/missing' (\$TMPDIR)" gdn -o "oci-archive:/dev/null" "$MAIN" || return 1
    expect_equal "what the refusals left in $d" "$(printf '%s\n' corrupt file other)" "$(ls -A "$d")"
}

# A build that fails while writing (a full disk) leaves the layout as it
# was: no new blob, no temporary file, the old index.
failed_build_leaves_the_layout() {
    local m=$WORK/full before status=0
    mkdir -p "$m" && mount -t tmpfs -o size=600k gdn-oci-full "$m" || return 1
    MOUNTS+=("$m")
    gdn "${IMAGE_ARGS[@]}" -t gdn-oci:small -C gzip -o "oci:$m/l" "$MAIN" >/dev/null || { umount "$m"; return 1; }
    before=$(snapshot "$m/l")
    expect_refusal 7 "No space left" gdn "${IMAGE_ARGS[@]}" -t gdn-oci:big --max-layers 3 -o "oci:$m/l" "$MAIN" || status=1
    expect_equal "the layout after the failed build" "$before" "$(snapshot "$m/l")" || status=1
    podman_pulls_layout "$m/l" gdn-oci:small || status=1
    umount "$m"
    return $status
}

# A store with one large item, for builds that take long enough to interrupt.
BIG_DIR=$WORK/big
BIG_STORE=$BIG_DIR/gnu/store
BIG_ITEM=$BIG_STORE/0123456789abcdfghijklmnpqrsvwxyz-big-1.0

# interrupted SIGNAL CODE DEST WATCHED: a slow build to DEST stopped by
# SIGNAL, once it has a file open under WATCHED, exits with CODE and says so.
interrupted() {
    local signal=$1 code=$2 dest=$3 watched=$4 pid status=0 i
    mkdir -p "$BIG_ITEM" && [ -s "$BIG_ITEM/data" ] || head -c 192M /dev/urandom >"$BIG_ITEM/data" || return 1
    "$BIN" --store-dir "$BIG_STORE" --closure-file <(echo "$BIG_ITEM") -C gzip --compression-level 9 --threads 1 \
        -o "$dest" "$BIG_ITEM" >"$WORK/interrupt.out" 2>"$WORK/interrupt.err" &
    pid=$!
    for i in $(seq 1 100); do
        ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF -- "-> $watched/" && break
        sleep 0.05
    done
    sleep 0.3
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; echo "the build ended before the signal (status $?)"; return 1; }
    kill "-$signal" "$pid"
    wait "$pid" || status=$?
    expect_equal "exit status" "$code" "$status" || { cat "$WORK/interrupt.err"; return 1; }
    grep -q "^guix-docker-native: error: interrupted by SIG$signal" "$WORK/interrupt.err" || { cat "$WORK/interrupt.err"; return 1; }
}

# An interrupted build into a layout leaves it as it was (no blob, no
# temporary file, the old index; its image still loads); one into an
# oci-archive leaves nothing.
interrupted_build_leaves_the_layout() {
    local dir=$WORK/intr before
    rm -rf "$dir"
    gdn "${IMAGE_ARGS[@]}" -t gdn-oci:kept -o "oci:$dir" "$MAIN" >/dev/null || return 1
    before=$(snapshot "$dir")
    interrupted INT 130 "oci:$dir:big" "$dir" || return 1
    expect_equal "the layout after SIGINT" "$before" "$(snapshot "$dir")" || return 1
    podman_pulls_layout "$dir" gdn-oci:kept || return 1
    mkdir -p "$WORK/intr-archive"
    interrupted TERM 143 "oci-archive:$WORK/intr-archive/big.tar" "$WORK/intr-archive" || return 1
    expect_equal "left in the oci-archive's directory after SIGTERM" "" "$(ls -A "$WORK/intr-archive")" || return 1
    # To a pipe: the blob being spooled is an unnamed file, gone with the build.
    mkdir -p "$WORK/intr-spool"
    TMPDIR=$WORK/intr-spool interrupted TERM 143 "oci-archive:-" "$WORK/intr-spool" || return 1
    expect_equal "left in \$TMPDIR after SIGTERM to a pipe" "" "$(ls -A "$WORK/intr-spool")"
}

echo "# sample store: $MAIN ($CLOSURE_SIZE items in its closure)"
for compression in none gzip zstd; do
    for n in 1 4; do
        what="skopeo inspect; skopeo copy to docker-daemon and docker run; podman pull and run"
        [ "$compression" = zstd ] && what="skopeo inspect; podman pull and run (Docker 20.10 has no zstd)"
        check "oci:DIR:REF, -C $compression, $(expected_layers $n) layer(s): $what" oci_layout "$compression" "$n"
        what="skopeo; docker; podman load and run; ctr images import and ctr run"
        [ "$compression" = zstd ] && what="skopeo; podman load and run; ctr images import and ctr run"
        check "oci-archive:FILE, -C $compression, $(expected_layers $n) layer(s): $what" oci_archive "$compression" "$n"
    done
done
for compression in none gzip zstd; do
    check "oci-archive:- and a FIFO, -C $compression: the file's bytes; skopeo, podman load, ctr import from the pipe; no spool left" \
        oci_archive_to_a_pipe "$compression"
done
check "oci-archive with SBOM artifacts: skopeo copy and podman pull oci-archive:FILE:REF, ctr import, each runs" \
    oci_archive_with_sboms
check "umoci unpack of oci:DIR:REF (gzip, 3 layers): exactly the closure, file for file" umoci_unpacks_the_closure gzip
check "umoci unpack of oci:DIR:REF (uncompressed, 3 layers): exactly the closure, file for file" umoci_unpacks_the_closure none
check "gzip: same bytes again, with umask 077 and one thread, from a store with other mtimes" reproducible gzip
check "zstd: same bytes again, with umask 077 and one thread, from a store with other mtimes" reproducible zstd
check "a second image added to a layout leaves the first (blobs untouched); the same ref is replaced" \
    second_image_leaves_the_first
check "bad destinations: unknown transport, a file, not a layout, corrupt index.json, missing directory" bad_destinations
check "a build failing on a full disk leaves the layout as it was" failed_build_leaves_the_layout
check "SIGINT into a layout leaves it as it was (its image loads); SIGTERM into an oci-archive (a file, a pipe) leaves nothing" \
    interrupted_build_leaves_the_layout

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
