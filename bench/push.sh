#!/usr/bin/env bash
# The push benchmark (issue 10's rows): a cold push of the benchmark store
# with guix-docker-native -o docker://… (100 layers, zstd and gzip) against
# the path users have today, measured in the same run: the Guix pipeline's
# archive build (bench/run.sh's `guix` command: a reproducible layer,
# sha256sum, tar) followed by `skopeo copy docker-archive:… docker://…`
# with skopeo compressing the layer (--dest-compress-format).  Every push
# goes to a registry of its own, fresh (tests/lib/registry.sh's TLS +
# htpasswd mode on loopback), so that none finds a blob already there, and
# skopeo's blob cache knows nothing of it (another port, another registry).
#
# Usage: bash bench/push.sh [--size 1G] [--layers 100] [--workdir DIR]
#                           [--flat 200M,2G] [--results FILE] [--no-build]
# One run of each.  As root (the registries' certificates, skopeo's cache).
# Targets: ours / today's path <= 0.5 (2x faster), zstd and gzip; our peak
# resident memory < 100 MiB, and flat in the closure's size: our push of
# each --flat store (made like the main one; `--flat none`: none) peaks
# under 100 MiB too, and one of a larger store within 10% of the main
# store's (bench/run.sh --memory-check's rule); a smaller store's peak is
# shown beside it (lower: its layers do not fill the buffers).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
project=$(dirname "$here")

size=1G
layers=100
workdir=/var/tmp/gdn
results=
build=yes
flat=200M,2G

die() { echo "bench/push: $*" >&2; exit 1; }
note() { echo "bench/push: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --size) size=${2:?--size needs a value}; shift 2 ;;
        --layers) layers=${2:?--layers needs a value}; shift 2 ;;
        --workdir) workdir=${2:?--workdir needs a value}; shift 2 ;;
        --results) results=${2:?--results needs a value}; shift 2 ;;
        --flat) flat=${2:?--flat needs a value}; shift 2 ;;
        --no-build) build=no; shift ;;
        --help | -h) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $size =~ ^[1-9][0-9]*[KMGT]$ ]] || die "--size '$size': expected a number and K, M, G or T, e.g. 1G"
[[ $layers =~ ^[1-9][0-9]*$ ]] && [ "$layers" -le 125 ] || die "--layers '$layers': 1 to 125"
flat_sizes=()
if [ "$flat" != none ]; then
    IFS=, read -r -a flat_sizes <<<"$flat"
    for s in "${flat_sizes[@]}"; do
        [[ $s =~ ^[1-9][0-9]*[KMGT]$ ]] && [ "$s" != "$size" ] ||
            die "--flat '$flat': expected sizes like 200M,2G (none: not measured), other than --size"
    done
fi
for tool in skopeo docker-registry htpasswd openssl curl tar sha256sum /usr/bin/time; do
    command -v "$tool" >/dev/null || die "$tool is not installed (tests/run-all.sh's PACKAGES has it)"
done

binary=$project/target/release/guix-docker-native
if [ "$build" = yes ]; then
    note "building $binary"
    (cd "$project" && cargo build --release --bin guix-docker-native >&2)
fi
[ -x "$binary" ] || die "$binary: not built"

# shellcheck source=lib.sh
source "$here/lib.sh"
# shellcheck source=../tests/lib/registry.sh
source "$project/tests/lib/registry.sh"
trap gdn_registry_stop_all EXIT

mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd -P)
out=$workdir/push-out
results=${results:-$workdir/push-results-$size-$(date +%Y%m%d-%H%M%S).txt}
: >"$results"
report() { printf '%s\n' "$*" | tee -a "$results"; }

root=$workdir/$size
bash "$here/make-store.sh" "$size" "$root" >&2
store=$root/gnu/store
profile=$(cat "$root/profile")
sed 's,^/,,' "$root/closure" >"$root/closure.rel"

# measure NAME COMMAND: COMMAND (bash, with $ADDR, $CERTS and $CREDS of a
# fresh registry) once; its wall-clock and CPU seconds and peak RSS.
declare -A times cpus rsss commands
measured=()
measure() {
    local name=$1 command=$2 reg=$workdir/push-registry start end rss user sys
    gdn_registry_stop "$reg"
    gdn_registry_start basic "$reg" >&2 || die "could not start a registry"
    rm -rf "$out" && mkdir -p "$out"
    sync
    note "$name"
    start=$EPOCHREALTIME
    if ! ADDR=$(cat "$reg/addr") CERTS=$reg/certs CREDS="$(cat "$reg/user"):$(cat "$reg/password")" \
        /usr/bin/time -f '%M %U %S' -o "$out/.time" bash -o pipefail -c "$command" >/dev/null 2>"$out/.stderr"; then
        cat "$out/.stderr" >&2
        die "$name failed: $command"
    fi
    end=$EPOCHREALTIME
    read -r rss user sys < <(tail -n 1 "$out/.time")
    times[$name]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    cpus[$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    rsss[$name]=$rss
    commands[$name]=$command
    measured+=("$name")
    gdn_registry_stop "$reg"
    rm -rf "$out"
}

note "warming the page cache: reading $root once"
tar -C / -cf - "${store#/}" | cat >/dev/null

report "guix-docker-native push benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
report "binary:  $binary ($(cd "$project" && git describe --always --dirty 2>/dev/null || echo 'no git'))"
report "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
report "tools:   $(skopeo --version), $(docker-registry --version | awk '{ print $1, $3 }')"
report "store:   $size requested, $root"
sed 's/^/  /' "$root/summary" | tee -a "$results"
report "registry: docker-registry on 127.0.0.1, TLS + htpasswd, a fresh one for every push; one run of each"

# ours_on ROOT: our push's command for the store made at ROOT.
ours_on() { echo "'$binary' --store-dir '$1/gnu/store' --database '$1/var/guix/db/db.sqlite' --max-layers $layers --cert-dir \"\$CERTS\" --creds \"\$CREDS\" -q"; }
ours=$(ours_on "$root")
# bench/run.sh's guix pipeline (bench/lib.sh): one reproducible layer, its
# sha256, the archive's small files, the archive; then skopeo pushes it.
guix_archive=$(bench_guix_archive_command "$out" "$root")
for compression in zstd gzip; do
    measure "ours-push-$compression" "$ours -C $compression -o \"docker://\$ADDR/bench:$compression\" '$profile'"
    measure "guix-skopeo-$compression" "$guix_archive &&
        skopeo copy -q --dest-cert-dir \"\$CERTS\" --dest-creds \"\$CREDS\" --dest-compress-format $compression \
            'docker-archive:$out/guix.tar' \"docker://\$ADDR/bench:$compression\""
done

# Our push of each --flat store, zstd and gzip (no baseline: only our
# memory is compared).
for s in "${flat_sizes[@]}"; do
    r=$workdir/$s
    bash "$here/make-store.sh" "$s" "$r" >&2
    report "store:   $s requested (flatness), $r"
    sed 's/^/  /' "$r/summary" | tee -a "$results"
    note "warming the page cache: reading $r once"
    tar -C / -cf - "${r#/}/gnu/store" | cat >/dev/null
    for compression in zstd gzip; do
        measure "ours-push-$s-$compression" "$(ours_on "$r") -C $compression -o \"docker://\$ADDR/bench:$compression\" '$(cat "$r/profile")'"
    done
done

describe() {
    case $1 in
        ours-push-*-*) local rest=${1#ours-push-}; echo "ours: push, $layers layers, ${rest#*-}, ${rest%-*} store" ;;
        ours-push-*) echo "ours: push, $layers layers, ${1##*-}" ;;
        guix-skopeo-*) echo "guix archive + skopeo copy, ${1##*-}" ;;
    esac
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

report ""
report "$(printf '%-40s %8s %8s %9s' measurement 'wall s' 'CPU s' 'RSS MiB')"
for name in "${measured[@]}"; do
    report "$(printf '%-40s %8s %8s %9s' "$(describe "$name")" "${times[$name]}" "${cpus[$name]}" "$(mib "${rsss[$name]}")")"
done
report "(wall clock; CPU: user+system of all processes; RSS: the largest process's peak)"

failed=0
verdict() { [ "$1" = PASS ] || failed=$((failed + 1)); }
report ""
report "$(printf '%-46s %7s %7s %7s %-10s %s' target 'ours s' 'base s' ours/base limit result)"
for compression in zstd gzip; do
    o=${times[ours-push-$compression]} b=${times[guix-skopeo-$compression]}
    ratio=$(awk -v a="$o" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
    pass=$(awk -v r="$ratio" 'BEGIN { print (r <= 0.5) ? "PASS" : "FAIL" }')
    verdict "$pass"
    report "$(printf '%-46s %7s %7s %7s %-10s %s' "cold push $compression / guix archive + skopeo" "$o" "$b" "$ratio" "<= 0.5" "$pass")"
done
peak=$(for c in zstd gzip; do echo "${rsss[ours-push-$c]}"; done | sort -n | tail -n 1)
pass=$(awk -v k="$peak" 'BEGIN { print (k < 100 * 1024) ? "PASS" : "FAIL" }')
verdict "$pass"
report "$(printf '%-46s %s MiB (limit < 100 MiB)  %s' "our peak memory while pushing, $size store" "$(mib "$peak")" "$pass")"
bytes() { numfmt --from=iec "$1"; }
for s in "${flat_sizes[@]}"; do
    if [ "$(bytes "$s")" -gt "$(bytes "$size")" ]; then limit=1.1; else limit=; fi
    for compression in zstd gzip; do
        other=${rsss[ours-push-$s-$compression]} main=${rsss[ours-push-$compression]}
        ratio=$(awk -v a="$other" -v b="$main" 'BEGIN { printf "%.2f", a / b }')
        pass=$(awk -v k="$other" -v r="$ratio" -v l="$limit" 'BEGIN {
            print (k < 100 * 1024 && (l == "" || r <= l)) ? "PASS" : "FAIL" }')
        verdict "$pass"
        report "$(printf '%-46s %s / %s MiB = %s (limit < 100 MiB%s)  %s' \
            "peak memory $compression, $s store / $size store" "$(mib "$other")" "$(mib "$main")" \
            "$ratio" "${limit:+, <= $limit}" "$pass")"
    done
done

report ""
report "commands (bash -o pipefail -c; ADDR, CERTS, CREDS: the fresh registry's):"
for name in "${measured[@]}"; do
    report "  $name: $(tr -s ' \n' ' ' <<<"${commands[$name]}")"
done
report ""
report "targets: $((3 + 2 * ${#flat_sizes[@]} - failed)) passed, $failed failed"
report "results written to $results"
