#!/usr/bin/env bash
# The proof with the real consumers: images made by guix-docker-native from
# the sample store are loaded and run by Debian's docker.io and podman,
# copied by skopeo and unpacked by umoci, and compared with the store file
# for file; builds are reproducible; bad input is refused cleanly.
#
#   bash tests/consumers/run.sh        (as root, after cargo build --release)
#
# Uses target/release/guix-docker-native and target/release/gdn-sample-store.
# Uses the dockerd at $DOCKER_HOST when it answers, else starts its own
# (tests/lib/dockerd.sh).  Each check prints `ok - ...` or `FAIL - ...`
# (followed by `#` lines saying why); the last line is "N passed, N failed";
# the exit status is non-zero when a check failed.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/dockerd.sh
source "$ROOT/tests/lib/dockerd.sh"
# shellcheck source=../lib/checks.sh
source "$ROOT/tests/lib/checks.sh"

BIN=$ROOT/target/release/guix-docker-native
SAMPLE_STORE=$ROOT/target/release/gdn-sample-store
NOBODY=65534

WORK=
MOUNTS=()

cleanup() { gdn_consumer_cleanup '^gdn-sample:'; }
# Removes the images these tests loaded into docker.
remove_docker_images() { gdn_docker_remove_images '^gdn-sample:'; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

[ "$(id -u)" = 0 ] || die "the consumer tests run as root (dockerd, mounts, mknod)"
for program in "$BIN" "$SAMPLE_STORE"; do
    [ -x "$program" ] || die "$program is missing: run cargo build --release first"
done
for tool in dockerd podman skopeo umoci sqlite3 jq zstd gzip setpriv unshare script perl nix-store; do
    command -v "$tool" >/dev/null || die "$tool is not installed (tests/run-all.sh installs it)"
done

WORK=$(mktemp -d /tmp/gdn-consumers.XXXXXX)
# Others (user nobody) traverse it in the unreadable-file check.
chmod 755 "$WORK"
make_sample_store "$WORK/s"
mapfile -t UNRELATED < <(comm -23 <(ls "$STORE" | LC_ALL=C sort) <(printf '%s\n' "${CLOSURE_NAMES[@]}" | LC_ALL=C sort))
[ "${#UNRELATED[@]}" -ge 1 ] || die "the sample store has no item outside the closure to check for"

# What the image must print: the program run on this machine.
HELLO_LINE="Hello from the guix-docker-native sample store!"
EXPECTED=$(env -i GREETING=bonjour "$MAIN/bin/hello" one "two words")

# gdn ARGS...: the CLI on the sample store, with its database.
gdn() { "$BIN" --store-dir "$STORE" --database "$DB" "$@"; }
# The image the consumers run (a tag is added per use).
IMAGE_ARGS=(--entry-point bin/hello -A one -A "two words" -E GREETING=bonjour)
A=$WORK/a.tar

gdn_consumer_docker gdn-cd || die "could not start dockerd"
gdn_podman_setup "$WORK/podman"

# ---------------------------------------------------------------- checks

sample_program_runs_here() {
    case $EXPECTED in
        "$HELLO_LINE"*"two words"*bonjour*) ;;
        *) echo "bin/hello printed: $EXPECTED"; return 1 ;;
    esac
}

builds_and_prints_its_name() {
    gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test -o "$A" "$MAIN" >"$WORK/stdout" 2>"$WORK/stderr" || {
        cat "$WORK/stderr"
        return 1
    }
    expect_equal "standard output" "$A" "$(cat "$WORK/stdout")" || return 1
    expect_equal "standard error (not a terminal: no progress bar)" "" "$(cat "$WORK/stderr")" || return 1
    [ -s "$A" ] || { echo "$A is missing or empty"; return 1; }
}

# docker_runs TAG [DOCKER RUN ARGS...]: the image prints EXPECTED.
docker_runs() {
    local tag=$1 output
    shift
    output=$(timeout 120 "$GDN_DOCKER_CLI" run --rm --network none "$@" "$tag" 2>&1)
    expect_equal "docker run $tag" "$EXPECTED" "$output"
}

# docker_loads ARCHIVE TAG: docker load reports the tag.
docker_loads() {
    local output
    output=$(timeout 120 "$GDN_DOCKER_CLI" load -i "$1" 2>&1) || { echo "$output"; return 1; }
    case $output in
        *"Loaded image: $2"*) ;;
        *) echo "docker load said: $output"; return 1 ;;
    esac
}

docker_loads_and_runs() {
    docker_loads "$A" gdn-sample:test && docker_runs gdn-sample:test
}

docker_records_the_creation_time() {
    local created
    created=$(gdn_docker image inspect --format '{{.Created}}' gdn-sample:test) || return 1
    expect_equal "Created of the default image" "1970-01-01T00:00:01Z" "$created" || return 1
    gdn "${IMAGE_ARGS[@]}" -t gdn-sample:dated --creation-time 2024-02-29T12:34:56Z -o "$WORK/dated.tar" "$MAIN" >/dev/null &&
        docker_loads "$WORK/dated.tar" gdn-sample:dated || return 1
    created=$(gdn_docker image inspect --format '{{.Created}}' gdn-sample:dated) || return 1
    expect_equal "Created with --creation-time" "2024-02-29T12:34:56Z" "$created"
}

streams_into_docker_load() {
    local output
    output=$(gdn "${IMAGE_ARGS[@]}" -t gdn-sample:stream -o - "$MAIN" | timeout 120 "$GDN_DOCKER_CLI" load 2>&1)
    case $output in
        *"Loaded image: gdn-sample:stream"*) ;;
        *) echo "docker load said: $output"; return 1 ;;
    esac
    docker_runs gdn-sample:stream
}

streams_the_same_bytes() {
    gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test -o - "$MAIN" >"$WORK/stream.tar" || return 1
    cmp "$A" "$WORK/stream.tar"
}

default_output_name() {
    mkdir -p "$WORK/cwd" && cd "$WORK/cwd" || return 1
    local name
    name=$(gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test "$MAIN") || { cd "$WORK"; return 1; }
    cd "$WORK" || return 1
    local item=${MAIN##*/}
    expect_equal "printed name" "${item:33}-docker-image.tar" "$name" || return 1
    cmp "$A" "$WORK/cwd/$name"
}

progress_bar_on_a_terminal() {
    local command
    command=$(printf '%q ' "$BIN" --store-dir "$STORE" --database "$DB" -o "$WORK/tty.tar" "$MAIN")
    script -qec "$command" "$WORK/typescript" >/dev/null </dev/null || { cat "$WORK/typescript"; return 1; }
    if ! grep -aq $'\r.*100%.*items' "$WORK/typescript"; then
        echo "no progress bar (with 100% and items after a carriage return) on the terminal:"
        cat -v "$WORK/typescript"
        return 1
    fi
    command=$(printf '%q ' "$BIN" --quiet --store-dir "$STORE" --database "$DB" -o "$WORK/tty2.tar" "$MAIN")
    script -qec "$command" "$WORK/typescript" >/dev/null </dev/null || return 1
    if grep -aq '%' "$WORK/typescript"; then
        echo "--quiet still draws a progress bar:"
        cat -v "$WORK/typescript"
        return 1
    fi
}

podman_loads_and_runs() {
    local output
    output=$(podman_cmd load -i "$A" 2>&1) || { echo "$output"; return 1; }
    case $output in
        *"Loaded image"*"gdn-sample:test"*) ;;
        *) echo "podman load said: $output"; return 1 ;;
    esac
    output=$(podman_cmd run --rm --network none gdn-sample:test 2>&1)
    expect_equal "podman run" "$EXPECTED" "$output"
}
# podman with its private storage, bounded in time.
podman_cmd() { timeout 120 "${GDN_PODMAN[@]}" "$@"; }

umoci_unpacks_exactly_the_closure() {
    local oci=$WORK/oci bundle=$WORK/bundle
    timeout 120 skopeo copy --quiet "docker-archive:$A" "oci:$oci:test" || return 1
    umoci unpack --image "$oci:test" "$bundle" >/dev/null || return 1
    local rootfs=$bundle/rootfs
    expect_equal "items in the image's store" "$(printf '%s\n' "${CLOSURE_NAMES[@]}" | LC_ALL=C sort)" \
        "$(ls "$rootfs$STORE" | LC_ALL=C sort)" || return 1
    local u
    for u in "${UNRELATED[@]}"; do
        [ ! -e "$rootfs$STORE/$u" ] || { echo "$u, outside the closure, is in the image"; return 1; }
    done
    # Outside the store: only the store directory's parents.
    local expected_parents="" d=$STORE
    while [ "$d" != / ]; do
        expected_parents="$d"$'\n'"$expected_parents"
        d=$(dirname "$d")
    done
    expect_equal "what the image holds outside the store" "${expected_parents%$'\n'}" \
        "$(cd "$rootfs" && find . -mindepth 1 -path "./${STORE#/}/*" -prune -o -print | sed 's/^\.//' | LC_ALL=C sort)" || return 1
    listing "$STORE" "${CLOSURE_NAMES[@]}" >"$WORK/store.list" || return 1
    listing "$rootfs$STORE" "${CLOSURE_NAMES[@]}" >"$WORK/image.list" || return 1
    [ "$(wc -l <"$WORK/store.list")" -ge 10 ] || { echo "suspiciously few files:"; cat "$WORK/store.list"; return 1; }
    if ! diff -u "$WORK/store.list" "$WORK/image.list"; then
        echo "the unpacked image differs from the store (- store, + image)"
        return 1
    fi
    echo "# $(wc -l <"$WORK/store.list") entries identical (type, contents, executable bit, symlink target)"
    # Modes as the store has them: directories 0555, files 0444 or 0555.
    local odd
    odd=$(find "$rootfs$STORE" -mindepth 1 \( -type d ! -perm 555 \) -o \( -type f ! -perm 444 ! -perm 555 \) -printf '%m %p\n')
    expect_equal "entries with modes other than 0555 (dirs) and 0444/0555 (files)" "" "$odd"
}

rebuilds_identically() {
    gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test -o "$WORK/again.tar" "$MAIN" >/dev/null || return 1
    cmp "$A" "$WORK/again.tar" || return 1
    mkdir -p "$WORK/elsewhere"
    (cd "$WORK/elsewhere" && umask 077 && env -u SOURCE_DATE_EPOCH \
        "$BIN" --store-dir "$STORE" --database "$DB" --threads 1 "${IMAGE_ARGS[@]}" -t gdn-sample:test \
        -o "$WORK/umask.tar" "$MAIN" >/dev/null) || return 1
    cmp "$A" "$WORK/umask.tar"
}

# in_store_copy COPY COMMAND...: runs COMMAND in a mount namespace where the
# copy COPY of the sample directory is seen at its path.
in_store_copy() {
    unshare --mount --propagation private -- bash -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' \
        in_store_copy "$1" "$SAMPLE_DIR" "${@:2}"
}

# A fresh copy of the sample directory (store and database).
make_store_copy() {
    rm -rf "$1" && cp -a "$SAMPLE_DIR" "$1"
}

rebuilds_identically_from_a_touched_copy() {
    local copy=$WORK/touched
    make_store_copy "$copy" || return 1
    find "$copy" -exec touch -h -d '2011-11-11 11:11:11' {} + &&
        find "$copy/gnu/store" -exec chown -h "$NOBODY:$NOBODY" {} + || return 1
    in_store_copy "$copy" "$BIN" --store-dir "$STORE" --database "$DB" "${IMAGE_ARGS[@]}" -t gdn-sample:test \
        -o "$WORK/touched.tar" "$MAIN" >/dev/null || return 1
    cmp "$A" "$WORK/touched.tar"
}

gzip_archive_loads_in_docker() {
    gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test -C gzip -o "$WORK/a.tar.gz" "$MAIN" >/dev/null || return 1
    gzip -dc "$WORK/a.tar.gz" | cmp - "$A" || { echo "gunzip of the gzip archive differs from the plain one"; return 1; }
    # Every image with these layers goes, so that the load must import them.
    remove_docker_images
    docker_loads "$WORK/a.tar.gz" gdn-sample:test && docker_runs gdn-sample:test
}

zstd_archive_loads_in_podman() {
    gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test -C zstd -o "$WORK/a.tar.zst" "$MAIN" >/dev/null || return 1
    zstd -qdc "$WORK/a.tar.zst" | cmp - "$A" || { echo "unzstd of the zstd archive differs from the plain one"; return 1; }
    podman_cmd rmi gdn-sample:test >/dev/null || return 1
    local output
    output=$(podman_cmd load -i "$WORK/a.tar.zst" 2>&1) || { echo "$output"; return 1; }
    output=$(podman_cmd run --rm --network none gdn-sample:test 2>&1)
    expect_equal "podman run of the zstd archive's image" "$EXPECTED" "$output"
}

# compressed_reproducibly NAME: same bytes with one thread and with two.
compressed_reproducibly() {
    gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test -C "$1" --threads 1 -o "$WORK/t1.$1" "$MAIN" >/dev/null &&
        gdn "${IMAGE_ARGS[@]}" -t gdn-sample:test -C "$1" --threads 2 -o "$WORK/t2.$1" "$MAIN" >/dev/null || return 1
    cmp "$WORK/t1.$1" "$WORK/t2.$1"
}

# layered_image N EXTRA_LAYER [ARGS...]: an image with --max-layers N has
# min(closure size, N - EXTRA_LAYER) + EXTRA_LAYER layers (a layer per item
# while there is room, the rest grouped, plus one for symlinks), loads and runs.
layered_image() {
    local n=$1 extra=$2 tag=gdn-sample:layers$1 file=$WORK/layers$1.tar
    shift 2
    gdn "${IMAGE_ARGS[@]}" "$@" -t "$tag" --max-layers "$n" -o "$file" "$MAIN" >/dev/null || return 1
    local slots=$((n - extra)) expected layers diff_ids config
    expected=$((CLOSURE_SIZE < slots ? CLOSURE_SIZE : slots))
    expected=$((expected + extra))
    layers=$(tar -xOf "$file" manifest.json | jq '.[0].Layers | length') || return 1
    config=$(tar -xOf "$file" manifest.json | jq -r '.[0].Config') || return 1
    diff_ids=$(tar -xOf "$file" "$config" | jq '.rootfs.diff_ids | length') || return 1
    expect_equal "layers in manifest.json" "$expected" "$layers" || return 1
    expect_equal "diff_ids in the config" "$expected" "$diff_ids" || return 1
    echo "# $layers layers"
    docker_loads "$file" "$tag" && docker_runs "$tag"
}

# refuses CODE NEEDLE OUTDIR COMMAND...: COMMAND exits with CODE, prints
# nothing on standard output, an error naming NEEDLE on standard error,
# and leaves OUTDIR empty.
refuses() {
    local code=$1 needle=$2 outdir=$3
    shift 3
    expect_refusal "$code" "$needle" "$@" || return 1
    if [ -n "$(ls -A "$outdir")" ]; then
        echo "left in $outdir:"
        ls -la "$outdir"
        return 1
    fi
}

# A fresh, empty output directory.
outdir() {
    local dir=$WORK/out/$1
    rm -rf "$dir" && mkdir -p "$dir" && echo "$dir"
}

HASH=0123456789abcdfghijklmnpqrsvwxyz
MAIN_NAME=${MAIN##*/}
# An item the main one refers to (a path in its closure other than itself).
REFERENCED=$(printf '%s\n' "$CLOSURE" | grep -vx "$MAIN" | head -n 1)

refuses_missing_item() {
    local o
    o=$(outdir missing)
    refuses 6 "$HASH-missing-1.0" "$o" gdn -o "$o/image.tar" "$STORE/$HASH-missing-1.0"
}

refuses_path_outside_the_store() {
    local o outside=$WORK/elsewhere/$HASH-outside-1.0
    o=$(outdir outside)
    mkdir -p "$outside"
    refuses 3 "$outside" "$o" gdn -o "$o/image.tar" "$outside"
}

refuses_badly_named_item() {
    local o status=0
    o=$(outdir badname)
    mkdir "$STORE/not-a-store-item" || return 1
    refuses 3 "not-a-store-item" "$o" gdn -o "$o/image.tar" "$STORE/not-a-store-item" || status=1
    rmdir "$STORE/not-a-store-item"
    return $status
}

refuses_relative_path() {
    local o relative=${STORE#/}/$MAIN_NAME
    o=$(outdir relative)
    (cd / && refuses 3 "$relative" "$o" "$BIN" --store-dir "$STORE" --database "$DB" -o "$o/image.tar" "$relative")
}

refuses_closure_without_the_item() {
    local o list=$WORK/closure-without-item.txt
    o=$(outdir closure1)
    printf '%s\n' "$CLOSURE" | grep -vx "$MAIN" >"$list"
    refuses 4 "$MAIN_NAME" "$o" "$BIN" --store-dir "$STORE" --closure-file "$list" -o "$o/image.tar" "$MAIN"
}

refuses_closure_without_a_reference() {
    local o list=$WORK/closure-without-reference.txt
    o=$(outdir closure2)
    printf '%s\n' "$CLOSURE" | grep -vx "$REFERENCED" >"$list"
    refuses 4 "${REFERENCED##*/}" "$o" gdn --closure-file "$list" -o "$o/image.tar" "$MAIN"
}

# As root every file is readable: run as nobody, over a copy of the store
# where one file is mode 000, writing to a directory nobody may write.
refuses_unreadable_file() {
    local o copy=$WORK/unreadable victim status=0
    o=$(outdir unreadable)
    chown "$NOBODY:$NOBODY" "$o"
    make_store_copy "$copy" || return 1
    victim=$(cd "$copy/gnu/store" && find "${CLOSURE_NAMES[@]}" -type f -links 1 | LC_ALL=C sort | head -n 1)
    [ -n "$victim" ] || { echo "no file to make unreadable"; return 1; }
    chmod 000 "$copy/gnu/store/$victim"
    mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/" && chmod 755 "$WORK/bin" "$WORK/bin/guix-docker-native"
    printf '%s\n' "$CLOSURE" >"$WORK/closure.txt" && chmod 644 "$WORK/closure.txt"
    # --no-cache: setpriv keeps root's HOME, whose layer cache nobody cannot
    # read (a warning naming the entry, which is not this test's point).
    refuses 6 "$victim" "$o" in_store_copy "$copy" \
        setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups \
        "$WORK/bin/guix-docker-native" --no-cache --store-dir "$STORE" --closure-file "$WORK/closure.txt" \
        -o "$o/image.tar" "$MAIN" || status=1
    rm -rf "$copy"
    return $status
}

# refuses_special KIND NAME MAKE...: a copy of the store with MAKE run in
# the main item's directory, creating NAME there, is refused.
refuses_special() {
    local kind=$1 name=$2 o copy=$WORK/special status=0
    shift 2
    o=$(outdir "$kind")
    make_store_copy "$copy" || return 1
    (cd "$copy/gnu/store/$MAIN_NAME" && "$@") || { echo "could not make the $kind"; return 1; }
    [ -e "$copy/gnu/store/$MAIN_NAME/$name" ] || [ -S "$copy/gnu/store/$MAIN_NAME/$name" ] ||
        { echo "no $name was made"; return 1; }
    refuses 5 "$name" "$o" in_store_copy "$copy" "$BIN" --store-dir "$STORE" --database "$DB" \
        -o "$o/image.tar" "$MAIN" || status=1
    rm -rf "$copy"
    return $status
}

make_socket() {
    perl -MIO::Socket::UNIX -e \
        'IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $ARGV[0], Listen => 1) or die "socket: $!\n"' "$1"
}

refuses_invalid_tag() {
    local o
    o=$(outdir tag)
    refuses 2 "Sample:Test" "$o" gdn -t Sample:Test -o "$o/image.tar" "$MAIN"
}

refuses_max_layers() {
    local o
    o=$(outdir layers)
    refuses 2 "max-layers $1" "$o" gdn --max-layers "$1" -o "$o/image.tar" "$MAIN"
}

refuses_missing_output_directory() {
    local o
    o=$(outdir nodir)
    refuses 7 "$o/no-such-dir" "$o" gdn -o "$o/no-such-dir/image.tar" "$MAIN"
}

refuses_directory_as_output() {
    local o
    o=$(outdir isdir)
    mkdir "$o/image.tar"
    refuses 7 "$o/image.tar" "$o/image.tar" gdn -o "$o/image.tar" "$MAIN" || return 1
    [ -d "$o/image.tar" ] && expect_equal "the output directory's contents" "image.tar" "$(ls -A "$o")"
}

refuses_full_disk() {
    local o status=0
    o=$(outdir full)
    mount -t tmpfs -o size=64k gdn-full "$o" || return 1
    MOUNTS+=("$o")
    refuses 7 "$o/image.tar" "$o" gdn -o "$o/image.tar" "$MAIN" || status=1
    grep -q "No space left" "$WORK/refusal.err" || { echo "the message does not say the disk is full"; status=1; }
    umount "$o"
    return $status
}

refuses_terminal_as_output() {
    local command status=0
    command=$(printf '%q ' "$BIN" --store-dir "$STORE" --database "$DB" -o - "$MAIN")
    script -qec "$command" "$WORK/typescript" >/dev/null </dev/null || status=$?
    expect_equal "exit status" 7 "$status" || return 1
    grep -aq "guix-docker-native: error: output '-': standard output is a terminal" "$WORK/typescript" || {
        cat -v "$WORK/typescript"
        return 1
    }
}

# A store with one large item, for builds that take long enough to interrupt.
BIG_DIR=$WORK/big
BIG_STORE=$BIG_DIR/gnu/store
BIG_ITEM=$BIG_STORE/${HASH}-big-1.0
make_big_store() {
    [ -d "$BIG_ITEM" ] && return 0
    mkdir -p "$BIG_ITEM" && head -c 192M /dev/urandom >"$BIG_ITEM/data" && echo "$BIG_ITEM" >"$BIG_DIR/closure.txt"
}

# interrupted SIGNAL STATUS: a slow build (gzip -9 on one thread over 192 MiB)
# stopped by SIGNAL exits with STATUS, says so, and leaves nothing.
interrupted() {
    local signal=$1 code=$2 o pid status=0 i started=no
    o=$(outdir "interrupt-$signal")
    make_big_store || return 1
    "$BIN" --store-dir "$BIG_STORE" --closure-file "$BIG_DIR/closure.txt" -C gzip --compression-level 9 \
        --threads 1 -o "$o/big.tar.gz" "$BIG_ITEM" >"$WORK/interrupt.out" 2>"$WORK/interrupt.err" &
    pid=$!
    # Wait until the archive is being written: the build has a file open in
    # the output directory (its temporary file, unnamed with O_TMPFILE).
    for i in $(seq 1 100); do
        if ls -l "/proc/$pid/fd" 2>/dev/null | grep -qF -- "-> $o/"; then
            started=yes
            break
        fi
        sleep 0.05
    done
    sleep 0.3
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        echo "the build ended before the signal (status $?): make the item larger"
        return 1
    fi
    kill "-$signal" "$pid"
    wait "$pid" || status=$?
    expect_equal "exit status" "$code" "$status" || { cat "$WORK/interrupt.err"; return 1; }
    grep -q "^guix-docker-native: error: interrupted by SIG$signal" "$WORK/interrupt.err" || {
        cat "$WORK/interrupt.err"
        return 1
    }
    [ -z "$(ls -A "$o")" ] || { echo "left in $o:"; ls -la "$o"; return 1; }
    echo "# $(cat "$WORK/interrupt.err") (temporary file open before the signal: $started)"
}

# ------------------------------------------------ guix pack parity (issue 12)

# run_busybox TAG ARGS...: runs the image's /bin/busybox as nobody.
run_busybox() {
    local tag=$1
    shift
    timeout 120 "$GDN_DOCKER_CLI" run --rm --network none --user "$NOBODY:$NOBODY" --entrypoint /bin/busybox "$tag" "$@" 2>&1
}

# The CLI's default image (with Debian's static busybox added by --file, for
# a shell): a container, as nobody, writes to /tmp, mode 1777 as with guix
# pack; with --no-tmp it cannot.
default_image_has_a_writable_tmp() {
    local output
    gdn --file /bin/busybox=/bin/busybox -o "$WORK/tmp.tar" "$MAIN" >/dev/null || return 1
    # The default tag: the sample profile's manifest lists hello.
    docker_loads "$WORK/tmp.tar" hello:latest || return 1
    gdn_docker tag hello:latest gdn-sample:tmp && gdn_docker rmi hello:latest >/dev/null || return 1
    output=$(run_busybox gdn-sample:tmp sh -c 'echo written by $(id -u) >/tmp/gdn-test && cat /tmp/gdn-test && stat -c %a /tmp')
    expect_equal "a container of the default image writing to /tmp as nobody" "written by $NOBODY"$'\n'"1777" "$output" || return 1
    gdn --no-tmp --file /bin/busybox=/bin/busybox -t gdn-sample:notmp -o "$WORK/notmp.tar" "$MAIN" >/dev/null &&
        docker_loads "$WORK/notmp.tar" gdn-sample:notmp || return 1
    # /tmp may still be there as a parent of the store (mode 0755), never writable.
    output=$(run_busybox gdn-sample:notmp sh -c 'if echo x >/tmp/gdn-test; then echo writable; else echo not writable; fi 2>/dev/null')
    expect_equal "--no-tmp: /tmp as nobody" "not writable" "$(printf '%s\n' "$output" | tail -n 1)"
}

# What docker history shows for the layers: the items, then what was added.
history_says_what_each_layer_holds() {
    local file=$WORK/history.tar comments
    gdn --max-layers 10 -S /bin=bin --image-tag gdn-sample:history -o "$file" "$MAIN" >/dev/null &&
        docker_loads "$file" gdn-sample:history || return 1
    comments=$(gdn_docker history --no-trunc --format '{{.Comment}}' gdn-sample:history) || return 1
    echo "$comments" | sed 's/^/# /'
    expect_equal "the top layer's comment" "directory /tmp; symlink /bin" "$(printf '%s\n' "$comments" | head -n 1)" || return 1
    expect_equal "the items' comments" "$(printf '%s\n' "${CLOSURE_NAMES[@]}" | cut -c34- | LC_ALL=C sort)" \
        "$(printf '%s\n' "$comments" | tail -n +2 | LC_ALL=C sort)"
}

# Rows of a store database: path, hash, narSize, registrationTime, deriver
# and the references, for the paths WHERE selects.
database_rows() {
    sqlite3 -readonly "$1" "SELECT p.path, p.hash, p.narSize, p.registrationTime, p.deriver,
        (SELECT group_concat(path, ' ') FROM (SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference
                                             WHERE r.referrer = p.id ORDER BY v.path))
        FROM ValidPaths p $2 ORDER BY p.path"
}

# nix-store on a store of its own (no build users, its cache in WORK).
nix_store() { XDG_CACHE_HOME=$WORK/nix-cache timeout 120 nix-store --option build-users-group '' "$@"; }

# nix_verify ROOT: Nix's own check of the unpacked store at ROOT against
# its database.  Nix wants its schema: Guix's is Nix's version 7, which Nix
# upgrades itself; its step from 8 to 9 drops a FailedPaths table that
# Guix's schema no longer has, so an empty one is made for it to drop.
nix_verify() {
    local root=$1 url output status=0
    sqlite3 "$root/var/guix/db/db.sqlite" \
        'CREATE TABLE FailedPaths (id integer primary key autoincrement not null, path text unique not null, time integer not null)' &&
        printf 7 >"$root/var/guix/db/schema" || return 1
    url="local?root=$root&store=$STORE&state=$root/var/guix&real=$root$STORE"
    output=$(nix_store --store "$url" --verify --check-contents 2>&1) || status=$?
    printf '%s\n' "$output" | sed 's/^/#   nix-store: /'
    expect_equal "nix-store --verify --check-contents status" 0 "$status" || return 1
    case $output in
        *disappeared*|*modified*|*error*|*invalid*) echo "nix-store found problems"; return 1 ;;
    esac
    expect_equal "nix-store -qR of the main item (Nix's reading of the database)" "$CLOSURE" \
        "$(nix_store --store "$url" -qR "$MAIN" 2>&1 | LC_ALL=C sort)"
}

# --localstatedir: the unpacked image's /var/guix/db/db.sqlite registers
# exactly the closure, each row as the source has it; Guix's GC roots are
# beside it; the bytes are reproducible; Nix verifies the store against it
# (and notices a file changed behind its back).
localstatedir_registers_the_closure() {
    local file=$WORK/state.tar oci=$WORK/state-oci bundle=$WORK/state-bundle rootfs db in_closure
    gdn --localstatedir -t gdn-sample:state -o "$file" "$MAIN" >/dev/null || return 1
    gdn --localstatedir -t gdn-sample:state -o "$WORK/state-again.tar" "$MAIN" >/dev/null &&
        cmp "$file" "$WORK/state-again.tar" || { echo "two --localstatedir builds differ"; return 1; }
    rm -rf "$oci" "$bundle"
    timeout 120 skopeo copy --quiet "docker-archive:$file" "oci:$oci:state" || return 1
    umoci unpack --image "$oci:state" "$bundle" >/dev/null || return 1
    rootfs=$bundle/rootfs
    db=$rootfs/var/guix/db/db.sqlite
    expect_equal "the database's mode" "644" "$(stat -c %a "$db")" || return 1
    expect_equal "the paths registered in the image" "$CLOSURE" \
        "$(sqlite3 -readonly "$db" 'SELECT path FROM ValidPaths ORDER BY path')" || return 1
    in_closure="WHERE p.path IN ($(printf "'%s'," $CLOSURE | sed 's/,$//'))"
    expect_equal "each row (hash, narSize, registrationTime, deriver, references)" \
        "$(database_rows "$DB" "$in_closure")" "$(database_rows "$db" "")" || return 1
    echo "# $(database_rows "$db" "" | wc -l) rows equal to the source's"
    expect_equal "root's profile" "guix-profile-1-link -> $MAIN" \
        "$(readlink "$rootfs/var/guix/profiles/per-user/root/guix-profile") -> $(readlink "$rootfs/var/guix/profiles/per-user/root/guix-profile-1-link")" || return 1
    expect_equal "gcroots/profiles" "/var/guix/profiles" "$(readlink "$rootfs/var/guix/gcroots/profiles")" || return 1
    nix_verify "$rootfs" || return 1
    # The same check fails on a store file changed after the build.
    local victim
    victim=$(cd "$rootfs$STORE" && find "${CLOSURE_NAMES[@]}" -type f | LC_ALL=C sort | head -n 1)
    chmod u+w "$rootfs$STORE/$victim" && echo changed >>"$rootfs$STORE/$victim" || return 1
    if nix_store --verify --check-contents \
        --store "local?root=$rootfs&store=$STORE&state=$rootfs/var/guix&real=$rootfs$STORE" >/dev/null 2>&1; then
        echo "nix-store accepted a store with $victim changed"
        return 1
    fi
}

refuses_localstatedir_without_database() {
    local o
    o=$(outdir localstatedir)
    refuses 2 "no store database was given" "$o" "$BIN" --store-dir "$STORE" --localstatedir -o "$o/image.tar" "$MAIN"
}

echo "# sample store: $MAIN ($CLOSURE_SIZE items in its closure)"
check "the sample program prints its greeting, arguments and GREETING" sample_program_runs_here
check "the CLI writes the archive and prints its file name, nothing else" builds_and_prints_its_name
check "docker load -i, then docker run prints the program's output" docker_loads_and_runs
check "docker shows the default and the --creation-time creation times" docker_records_the_creation_time
check "guix-docker-native -o - | docker load, then docker run" streams_into_docker_load
check "-o - streams the same bytes as -o FILE" streams_the_same_bytes
check "without -o: <name>-docker-image.tar in the current directory" default_output_name
check "a progress bar on a terminal, none with --quiet" progress_bar_on_a_terminal
check "podman load, then podman run prints the program's output" podman_loads_and_runs
check "skopeo copy to OCI, umoci unpack: exactly the closure, file for file" umoci_unpacks_exactly_the_closure
check "two builds give identical bytes (also umask 077, one thread, other cwd)" rebuilds_identically
check "identical bytes from a copy with other mtimes and owners" rebuilds_identically_from_a_touched_copy
check "gzip archive: gunzips to the plain archive; docker loads and runs it" gzip_archive_loads_in_docker
check "zstd archive: unzstds to the plain archive; podman loads and runs it" zstd_archive_loads_in_podman
check "gzip: identical bytes with one and two threads" compressed_reproducibly gzip
check "zstd: identical bytes with one and two threads" compressed_reproducibly zstd
check "--max-layers 2: 2 layers; docker loads and runs it" layered_image 2 0
check "--max-layers 4 --no-tmp: a layer per item; docker loads and runs it" layered_image 4 0 --no-tmp
check "--max-layers 125 -S /bin=bin: items + symlink layer; runs /bin/hello" \
    layered_image 125 1 -S /bin=bin --entry-point /bin/hello
check "bad input: a missing item" refuses_missing_item
check "bad input: a path outside the store" refuses_path_outside_the_store
check "bad input: a path not named like a store item" refuses_badly_named_item
check "bad input: a relative path" refuses_relative_path
check "bad input: a closure file without the item" refuses_closure_without_the_item
check "bad input: a closure file missing a referenced item (--database)" refuses_closure_without_a_reference
check "bad input: an unreadable file (as nobody)" refuses_unreadable_file
check "bad input: a FIFO in an item" refuses_special fifo gdn-fifo mkfifo gdn-fifo
check "bad input: a socket in an item" refuses_special socket gdn-socket make_socket gdn-socket
check "bad input: a device node in an item" refuses_special device gdn-null mknod gdn-null c 1 3
check "bad input: a name starting with .wh." refuses_special whiteout .wh.gdn-hidden touch .wh.gdn-hidden
check "bad input: an invalid tag" refuses_invalid_tag
check "bad input: --max-layers 0" refuses_max_layers 0
check "bad input: --max-layers 126" refuses_max_layers 126
check "bad input: an output directory that does not exist" refuses_missing_output_directory
check "bad input: an output path that is a directory" refuses_directory_as_output
check "bad input: a full disk (64 KiB tmpfs)" refuses_full_disk
check "bad input: -o - with standard output on a terminal" refuses_terminal_as_output
check "SIGINT stops a build: status 130, nothing left" interrupted INT 130
check "SIGTERM stops a build: status 143, nothing left" interrupted TERM 143
check "the CLI's default image: a container writes to /tmp (1777) as nobody; not with --no-tmp" \
    default_image_has_a_writable_tmp
check "docker history: each layer's comment says what it holds (--image-tag)" history_says_what_each_layer_holds
check "--localstatedir: exactly the closure, rows as the source's; nix-store --verify --check-contents accepts it" \
    localstatedir_registers_the_closure
check "bad input: --localstatedir without --database" refuses_localstatedir_without_database

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
