#!/usr/bin/env bash
# The guix-docker-native benchmark: the native builder against the floors
# (read, hash, write the data once) and the GNU tar pipelines of the seed and
# of `guix pack -f docker`, on a store of real files, in one run.
#
# Usage: bash bench/run.sh [--size 1G] [--runs 3] [--workdir DIR]
#                          [--memory-check] [--only REGEX] [--results FILE]
#                          [--no-build] [--baseline-binary FILE]
# See bench/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
project=$(dirname "$here")

size=1G
runs=3
workdir=/var/tmp/gdn
memory_check=no
only=
results=
build=yes
baseline=

usage() {
    cat <<'EOF'
Usage: bash bench/run.sh [OPTION]...
Measures guix-docker-native against the GNU tar pipelines on a store of real
files (made once and kept in the work directory).

  --size SIZE      size of the store's files: 200M, 1G (default), 2G, ...
  --runs N         runs of each measurement; medians are reported (default 3)
  --workdir DIR    stores, outputs and results go here (default /var/tmp/gdn);
                   outputs are written on its file system
  --memory-check   also measure our peak memory on a store twice the size
  --only REGEX     only the measurements whose names match (e.g. '^ours-')
  --results FILE   where the report is also written
                   (default DIR/results-SIZE-DATE.txt)
  --no-build       use target/release/guix-docker-native as it is
  --baseline-binary FILE
                   also measure gzip to a file with FILE, an earlier build
                   (from before libdeflate: zlib's gzip), against ours
  --help           this text
EOF
}

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --size) size=${2:?--size needs a value}; shift 2 ;;
        --runs) runs=${2:?--runs needs a value}; shift 2 ;;
        --workdir) workdir=${2:?--workdir needs a value}; shift 2 ;;
        --memory-check) memory_check=yes; shift ;;
        --only) only=${2:?--only needs a value}; shift 2 ;;
        --results) results=${2:?--results needs a value}; shift 2 ;;
        --no-build) build=no; shift ;;
        --baseline-binary) baseline=${2:?--baseline-binary needs a file}; shift 2 ;;
        --help | -h) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs '$runs': expected a positive whole number"
[[ $size =~ ^[1-9][0-9]*[KMGT]$ ]] || die "--size '$size': expected a number and K, M, G or T, e.g. 1G"
[ -z "$baseline" ] || [ -x "$baseline" ] || die "--baseline-binary '$baseline': not an executable file"

# --- tools -------------------------------------------------------------------

# Debian packages for the commands this script runs.
declare -A package_of=(
    [tar]=tar [gzip]=gzip [zstd]=zstd [openssl]=openssl [sqlite3]=sqlite3
    [sha256sum]=coreutils [/usr/bin/time]=time [find]=findutils [awk]=gawk
)
missing=()
for tool in "${!package_of[@]}"; do
    command -v "$tool" >/dev/null || missing+=("${package_of[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        note "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
            { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
    else
        die "missing commands; install the Debian packages: ${missing[*]}"
    fi
fi
command -v dpkg-query >/dev/null || die "the store is made from installed Debian packages: dpkg-query is needed"

binary=$project/target/release/guix-docker-native
if [ "$build" = yes ]; then
    note "building $binary"
    (cd "$project" && cargo build --release --bin guix-docker-native >&2)
fi

mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd -P)
out=$workdir/out
results=${results:-$workdir/results-$size-$(date +%Y%m%d-%H%M%S).txt}
: >"$results"

# Everything on standard output goes to the results file too.
report() { printf '%s\n' "$*" | tee -a "$results"; }

# --- measuring ---------------------------------------------------------------

clean_outputs() {
    if [ -e "$out" ]; then
        chmod -R u+w "$out" 2>/dev/null || true
        rm -rf "$out"
    fi
    mkdir -p "$out"
}

# measure NAME OUTPUT COMMAND: runs COMMAND (a bash command line) once with
# empty outputs and records its wall-clock seconds, CPU seconds (user+system,
# of every process of the pipeline), peak resident memory (of the largest
# process), and the size of OUTPUT (a file it writes; "-" for none).  The
# outputs are deleted right after.
declare -A times cpus rsss sizes commands
measured=()
ours_only=no
measure() {
    local name=$1 output=$2 command=$3 start end stats
    [ -z "$only" ] || [[ $name =~ $only ]] || return 0
    [ "$ours_only" = no ] || [[ $name == ours-* ]] || return 0
    if [[ $name == ours-* ]] && [ ! -x "$binary" ]; then
        die "$binary: not built (run without --no-build)"
    fi
    clean_outputs
    sync
    start=$EPOCHREALTIME
    if ! /usr/bin/time -f '%M %U %S' -o "$out/.time" bash -o pipefail -c "$command" >/dev/null 2>"$out/.stderr"; then
        cat "$out/.stderr" >&2
        die "$name failed: $command"
    fi
    end=$EPOCHREALTIME
    stats=$(tail -n 1 "$out/.time")
    read -r rss user sys <<<"$stats"
    times[$name]+="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }') "
    cpus[$name]+="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }') "
    rsss[$name]+="$rss "
    if [ "$output" != - ]; then
        [ -f "$output" ] || die "$name: no output $output"
        sizes[$name]=$(stat -c %s "$output")
    fi
    case " ${measured[*]} " in *" $name "*) ;; *) measured+=("$name") ;; esac
    commands[$name]=$command
    clean_outputs
}

median() { tr ' ' '\n' | sort -g | awk 'NF { v[++n] = $1 } END { if (n == 0) print ""; else if (n % 2) print v[(n + 1) / 2]; else printf "%.3f\n", (v[n / 2] + v[n / 2 + 1]) / 2 }'; }
minimum() { tr ' ' '\n' | awk 'NF { if (m == "" || $1 < m) m = $1 } END { print m }'; }
maximum() { tr ' ' '\n' | awk 'NF { if (m == "" || $1 > m) m = $1 } END { print m }'; }

# --- the measurements --------------------------------------------------------

# all_measurements ROOT: one round of every measurement on the store in ROOT
# (made by make-store.sh).
all_measurements() {
    local root=$1 store db profile rel list
    store=$root/gnu/store
    db=$root/var/guix/db/db.sqlite
    profile=$(cat "$root/profile")
    rel=${store#/}
    list=$root/closure.rel     # the closure's paths relative to /, for tar -T
    sed 's,^/,,' "$root/closure" >"$list"

    local det='--sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner --hard-dereference'
    # The small files of an image around a layer whose sha256 is in $d/sha.
    local image_files='h=$(cut -d" " -f1 "$d/sha") && echo 1.0 >"$d/layer/VERSION" &&
        printf "{\"id\":\"layer\"}" >"$d/layer/json" &&
        printf "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\"]}}" "$h" >"$d/config.json" &&
        printf "[{\"Config\":\"config.json\",\"RepoTags\":[\"profile:latest\"],\"Layers\":[\"layer/layer.tar\"]}]" >"$d/manifest.json" &&
        rm "$d/sha"'

    measure floor-read - "find '$store' -type f -exec cat {} + >/dev/null"
    measure floor-hash - "tar -C / -cf - '$rel' | openssl dgst -sha256 >/dev/null"
    measure floor-write "$out/floor.tar" "tar -C / -cf '$out/floor.tar' '$rel'"

    measure seed "$out/seed.tar" "d='$out/seed' && mkdir -p \"\$d/layer\" &&
        tar -C / -cf \"\$d/layer/layer.tar\" -T '$list' &&
        sha256sum \"\$d/layer/layer.tar\" >\"\$d/sha\" && $image_files &&
        tar -C \"\$d\" -cf '$out/seed.tar' ."

    local compressor name suffix
    for compressor in none 'gzip -9n' 'zstd -3 -T0 -q'; do
        case $compressor in
            none) name=guix; suffix= ;;
            gzip*) name=guix-gzip; suffix=.gz ;;
            zstd*) name=guix-zstd; suffix=.zst ;;
        esac
        local outer="tar $det -C \"\$d\" -cf - . | $compressor >'$out/guix.tar$suffix'"
        [ "$compressor" = none ] && outer="tar $det -C \"\$d\" -cf '$out/guix.tar' ."
        measure "$name" "$out/guix.tar$suffix" "d='$out/guix' && mkdir -p \"\$d/layer\" &&
            tar $det -C / -cf \"\$d/layer/layer.tar\" -T '$list' &&
            sha256sum \"\$d/layer/layer.tar\" >\"\$d/sha\" && $image_files && $outer"
    done

    local ours="'$binary' --store-dir '$store' --database '$db'" layers compression flag
    for compression in none gzip zstd; do
        case $compression in
            none) flag= suffix= ;;
            gzip) flag='-C gzip' suffix=.gz ;;
            zstd) flag='-C zstd' suffix=.zst ;;
        esac
        for layers in 1 100; do
            local layer_flag=
            [ "$layers" = 1 ] || layer_flag="--max-layers $layers"
            name=ours-$layers-file${flag:+-$compression}
            measure "$name" "$out/image.tar$suffix" "$ours $layer_flag $flag -o '$out/image.tar$suffix' '$profile'"
            name=ours-$layers-stdout${flag:+-$compression}
            measure "$name" - "$ours $layer_flag $flag -o - '$profile' >/dev/null"
        done
    done

    # Baselines of the same data: zstd -3 -T0 of our uncompressed archive
    # (the whole-archive zstd's size target), and the gzip of an earlier
    # build (--baseline-binary: zlib's deflate, before libdeflate).
    measure base-1-zstd-of-ours "$out/image.tar.zst" "$ours -o - '$profile' | zstd -3 -T0 -q >'$out/image.tar.zst'"
    if [ -n "$baseline" ]; then
        measure base-1-file-gzip "$out/image.tar.gz" \
            "'$baseline' --store-dir '$store' --database '$db' -C gzip -o '$out/image.tar.gz' '$profile'"
    fi

    # OCI: an image layout, uncompressed, 1 and 100 layers; each of 100
    # layers compressed on its own, as an oci-archive (one file, so that
    # its size compares with the whole-archive compression's).
    measure ours-oci-1-dir - "$ours -o 'oci:$out/layout' '$profile'"
    measure ours-oci-100-dir - "$ours --max-layers 100 -o 'oci:$out/layout' '$profile'"
    for compression in gzip zstd; do
        measure "ours-oci-100-archive-$compression" "$out/image.oci.tar" \
            "$ours --max-layers 100 -C $compression -o 'oci-archive:$out/image.oci.tar' '$profile'"
    done
}

describe() {
    case $1 in
        floor-read) echo "floor: read every file (find | cat)" ;;
        floor-hash) echo "floor: tar | openssl sha256 (hash once)" ;;
        floor-write) echo "floor: tar -cf FILE (write once)" ;;
        seed) echo "seed: layer.tar, sha256sum, tar again" ;;
        guix) echo "guix: reproducible layer, sha256, tar" ;;
        guix-gzip) echo "guix: ... | gzip -9n" ;;
        guix-zstd) echo "guix: ... | zstd -3 -T0" ;;
        base-1-zstd-of-ours) echo "ours -o - | zstd -3 -T0" ;;
        base-1-file-gzip) echo "baseline binary: gzip, 1 layer, file" ;;
        ours-oci-*) local l=${1#ours-oci-}
            l=${l%%-*}
            case $1 in
                *-dir) echo "ours: OCI layout, $l layer$([ "$l" = 1 ] || echo s)" ;;
                *) echo "ours: oci-archive, $l layers, ${1##*-} each" ;;
            esac ;;
        ours-*) local d=${1#ours-} l=${1#ours-}
            l=${l%%-*}; d=${d#*-}
            echo "ours: $l layer$([ "$l" = 1 ] || echo s), ${d//-/, }" ;;
        *) echo "$1" ;;
    esac
}

# --- the report --------------------------------------------------------------

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

print_measurements() {
    report ""
    report "$(printf '%-40s %8s %7s %7s %8s %9s %14s' measurement 'median s' 'min s' 'max s' 'CPU s' 'RSS MiB' 'output bytes')"
    local name
    for name in "${measured[@]}"; do
        report "$(printf '%-40s %8s %7s %7s %8s %9s %14s' "$(describe "$name")" \
            "$(median <<<"${times[$name]}")" "$(minimum <<<"${times[$name]}")" "$(maximum <<<"${times[$name]}")" \
            "$(median <<<"${cpus[$name]}")" "$(mib "$(maximum <<<"${rsss[$name]}")")" "${sizes[$name]:--}")"
    done
    report "(seconds: wall clock; CPU: user+system of all processes; RSS: the largest process's peak, the highest of the runs)"
}

# target LABEL OURS BASE LIMIT [SIZE-LIMIT]: a row comparing the medians of
# measurements OURS and BASE: PASS when ours/base <= LIMIT, and, with
# SIZE-LIMIT, when the size of OURS' output / BASE's <= SIZE-LIMIT.
verdicts=()
target() {
    local label=$1 ours=$2 base=$3 limit=$4 size_limit=${5:-} t_ours t_base ratio size_ratio=- pass
    if [ -z "${times[$ours]:-}" ] || [ -z "${times[$base]:-}" ]; then
        return 0
    fi
    t_ours=$(median <<<"${times[$ours]}")
    t_base=$(median <<<"${times[$base]}")
    ratio=$(awk -v a="$t_ours" -v b="$t_base" 'BEGIN { printf "%.3f", a / b }')
    pass=$(awk -v r="$ratio" -v l="$limit" 'BEGIN { print (r <= l) ? "PASS" : "FAIL" }')
    if [ -n "$size_limit" ]; then
        size_ratio=$(awk -v a="${sizes[$ours]}" -v b="${sizes[$base]}" 'BEGIN { printf "%.3f", a / b }')
        [ "$(awk -v r="$size_ratio" -v l="$size_limit" 'BEGIN { print (r <= l) }')" = 1 ] || pass=FAIL
    fi
    verdicts+=("$pass")
    report "$(printf '%-46s %7s %7s %7s %-17s %6s %-7s %s' "$label" "$t_ours" "$t_base" "$ratio" \
        "<= $limit$(awk -v l="$limit" 'BEGIN { if (l < 1) printf " (%.0fx)", 1 / l }')" "$size_ratio" "${size_limit:+<= $size_limit}" "$pass")"
}

print_targets() {
    report ""
    report "$(printf '%-46s %7s %7s %7s %-17s %6s %-7s %s' target 'ours s' 'base s' ours/base limit size 'limit' result)"
    target "uncompressed to a file / write-once floor" ours-1-file floor-write 1.2
    target "uncompressed to a file / seed pipeline" ours-1-file seed 0.334
    target "uncompressed to stdout / hash-once floor" ours-1-stdout floor-hash 1.3
    target "  the same with 100 layers: to a file / write" ours-100-file floor-write 1.2
    target "  the same with 100 layers: to stdout / hash" ours-100-stdout floor-hash 1.3
    target "zstd to a file / guix zstd -3 -T0 pipeline" ours-1-file-zstd guix-zstd 0.5 1.0
    target "gzip to a file / guix gzip -9n pipeline" ours-1-file-gzip guix-gzip 0.2 1.1
    target "100 layers / 1 layer, to a file" ours-100-file ours-1-file 1.05
    target "100 layers / 1 layer, to stdout" ours-100-stdout ours-1-stdout 1.05
    target "100 layers / 1 layer, zstd to a file" ours-100-file-zstd ours-1-file-zstd 1.05
    target "100 layers / 1 layer, gzip to a file" ours-100-file-gzip ours-1-file-gzip 1.05
    target "OCI layout / docker-archive file, 1 layer" ours-oci-1-dir ours-1-file 1.1
    target "OCI layout / docker-archive file, 100 layers" ours-oci-100-dir ours-100-file 1.1
    target "per-layer gzip / whole-archive gzip, 100 layers" ours-oci-100-archive-gzip ours-100-file-gzip 1.05 1.01
    target "per-layer zstd / whole-archive zstd, 100 layers" ours-oci-100-archive-zstd ours-100-file-zstd 1.05 1.01
    target "zstd to a file / ours -o - | zstd -3 -T0" ours-1-file-zstd base-1-zstd-of-ours 1.05 1.0
    target "gzip to a file / the baseline binary's" ours-1-file-gzip base-1-file-gzip 0.667 1.0
    report "(3x faster is ours/base <= 0.334; \"no slower\" allows 5% for noise)"
}

# Our highest peak memory over all our runs, in KiB.
our_peak() {
    local name all=
    for name in "${measured[@]}"; do
        [[ $name == ours-* ]] && all+="${rsss[$name]} "
    done
    maximum <<<"$all"
}

# --- main --------------------------------------------------------------------

machine() {
    report "guix-docker-native benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    report "binary:  $binary ($(cd "$project" && git describe --always --dirty 2>/dev/null || echo 'no git'))"
    report "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
    report "disk:    $(df -PTh "$workdir" | awk 'NR == 2 { print $2 " on " $1 }') (outputs in $out)"
    report "tools:   $(tar --version | head -n 1), gzip $(gzip --version | awk 'NR == 1 { print $2 }'), zstd $(zstd --version | sed 's/.* v\([0-9.]*\).*/\1/'), $(openssl version | cut -d' ' -f1-2)"
}

# store_for SIZE: makes (or finds) the store of SIZE and prints its root.
store_for() {
    local root=$workdir/$1
    bash "$here/make-store.sh" "$1" "$root" >&2
    echo "$root"
}

# warm ROOT: reads every file once so that every measurement finds the store
# in the page cache (it is not dropped between measurements: that needs root
# and would measure the disk, not the programs).
warm() {
    note "warming the page cache: reading $1 once"
    tar -C / -cf - "${1#/}/gnu/store" | cat >/dev/null
}

machine
root=$(store_for "$size")
report "store:   $size requested"
sed 's/^/  /' "$root/summary" | tee -a "$results"
report "runs:    $runs of each, interleaved; medians; the page cache is warm (every file read once first, never dropped)"

warm "$root"
report "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before measuring"
for ((r = 1; r <= runs; r++)); do
    note "round $r of $runs"
    all_measurements "$root"
done
report "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) after measuring"
print_measurements
print_targets

peak=$(our_peak)
if [ -n "$peak" ]; then
    report ""
    pass=$(awk -v k="$peak" 'BEGIN { print (k < 100 * 1024) ? "PASS" : "FAIL" }')
    verdicts+=("$pass")
    report "$(printf '%-46s %s MiB (limit < 100 MiB)  %s' "our peak memory, $size store" "$(mib "$peak")" "$pass")"
fi

report ""
report "commands (run with bash -o pipefail -c, outputs in $out):"
while IFS= read -r line; do
    report "$line"
done < <(for name in "${!commands[@]}"; do
    printf '  %s: %s\n' "$name" "$(tr -s ' \n' ' ' <<<"${commands[$name]}")"
done | sort)

if [ "$memory_check" = yes ] && [ -n "$peak" ]; then
    number=${size%[KMGT]} unit=${size: -1}
    big=$((number * 2))$unit
    big_root=$(store_for "$big")
    report ""
    report "memory check: our runs again on a store of $big (the same commands on $big_root)"
    sed 's/^/  /' "$big_root/summary" | tee -a "$results"
    declare -A small_rss
    for name in "${measured[@]}"; do small_rss[$name]=${rsss[$name]}; done
    small_names=("${measured[@]}")
    unset times cpus rsss sizes
    declare -A times cpus rsss sizes
    measured=()
    ours_only=yes
    warm "$big_root"
    for ((r = 1; r <= runs; r++)); do
        note "memory check: round $r of $runs"
        all_measurements "$big_root"
    done
    report "$(printf '%-40s %12s %12s %8s' measurement "RSS MiB $size" "RSS MiB $big" "median s")"
    for name in "${measured[@]}"; do
        report "$(printf '%-40s %12s %12s %8s' "$(describe "$name")" "$(mib "$(maximum <<<"${small_rss[$name]:-}")")" \
            "$(mib "$(maximum <<<"${rsss[$name]}")")" "$(median <<<"${times[$name]}")")"
    done
    big_peak=$(our_peak)
    pass=$(awk -v a="$big_peak" -v b="$peak" 'BEGIN { print (a <= 1.1 * b) ? "PASS" : "FAIL" }')
    verdicts+=("$pass")
    report "$(printf '%-46s %s MiB vs %s MiB: x%s (limit <= 1.1)  %s' "our peak memory, $big store / $size store" \
        "$(mib "$big_peak")" "$(mib "$peak")" "$(awk -v a="$big_peak" -v b="$peak" 'BEGIN { printf "%.3f", a / b }')" "$pass")"
fi

report ""
failed=0
for v in "${verdicts[@]}"; do [ "$v" = PASS ] || failed=$((failed + 1)); done
report "targets: $((${#verdicts[@]} - failed)) passed, $failed failed"
report "results written to $results"
