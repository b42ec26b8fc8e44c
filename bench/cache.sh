#!/usr/bin/env bash
# The layer cache benchmark (issue 11's rows), on the benchmark store:
#
# oci: an OCI layout written cold (empty cache, empty layout), then
#   rewritten after one application item changed, with the cache warm: the
#   rewrite must take at most 20% of the cold write.  Also shown: a
#   --no-cache build of the same layout (what the cache costs when cold)
#   and a rewrite with nothing changed.
# push: a cold push (empty cache) to a TLS registry on loopback
#   (tests/lib/registry.sh's basic mode), then the same push again with
#   nothing changed (the median of three runs: at most 5% of the cold push,
#   and, in a run of its own under strace, no store file opened), then again after one application
#   item changed (at most 20% of the cold push, and at least 5x faster
#   than the path users have today redoing its archive and copy: the Guix
#   pipeline's archive, bench/lib.sh's, then `skopeo copy docker-archive:…
#   docker://…` compressing the layer, measured in the same run).
#
# "Changed" is done on a copy of the store database (the store is shared
# and is not touched): the item is registered again with another hash and
# a later time, as the daemon registers an item rebuilt under the same
# path, so the cache no longer knows its layer and reads, hashes and
# compresses it again.  The item: the largest that only the profile refers
# to (an application, not a library others share).
#
# Usage: bash bench/cache.sh [--size 1G] [--layers 100] [--compression zstd,gzip]
#                            [--parts oci,push] [--workdir DIR] [--results FILE]
#                            [--no-build]
# One run of each; the store is bench/make-store.sh's (made if missing).
# The push part runs as root (the registry's certificates; strace).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
project=$(dirname "$here")

size=1G
layers=100
compressions=zstd,gzip
parts=oci,push
workdir=/var/tmp/gdn
results=
build=yes

die() { echo "bench/cache: $*" >&2; exit 1; }
note() { echo "bench/cache: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --size) size=${2:?--size needs a value}; shift 2 ;;
        --layers) layers=${2:?--layers needs a value}; shift 2 ;;
        --compression) compressions=${2:?--compression needs a value}; shift 2 ;;
        --parts) parts=${2:?--parts needs a value}; shift 2 ;;
        --workdir) workdir=${2:?--workdir needs a value}; shift 2 ;;
        --results) results=${2:?--results needs a value}; shift 2 ;;
        --no-build) build=no; shift ;;
        --help | -h) sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $size =~ ^[1-9][0-9]*[KMGT]$ ]] || die "--size '$size': expected a number and K, M, G or T, e.g. 1G"
[[ $layers =~ ^[1-9][0-9]*$ ]] && [ "$layers" -le 125 ] || die "--layers '$layers': 1 to 125"
for c in ${compressions//,/ }; do
    case $c in none | gzip | zstd) ;; *) die "--compression '$c': none, gzip or zstd (or a comma-separated list)" ;; esac
done
for p in ${parts//,/ }; do
    case $p in oci | push) ;; *) die "--parts '$p': oci or push (or both, comma-separated)" ;; esac
done
want() { [[ ",$parts," == *",$1,"* ]]; }
tools="sqlite3 /usr/bin/time tar"
want push && tools+=" skopeo docker-registry htpasswd openssl strace sha256sum"
for tool in $tools; do
    command -v "$tool" >/dev/null || die "$tool is not installed (tests/run-all.sh's PACKAGES has it)"
done
# shellcheck source=lib.sh
source "$here/lib.sh"

binary=$project/target/release/guix-docker-native
if [ "$build" = yes ]; then
    note "building $binary"
    (cd "$project" && cargo build --release --bin guix-docker-native >&2)
fi
[ -x "$binary" ] || die "$binary: not built"

mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd -P)
root=$workdir/$size
[ -f "$root/summary" ] || bash "$here/make-store.sh" "$size" "$root" >&2
store=$root/gnu/store
profile=$(cat "$root/profile")
work=$workdir/cache-bench
rm -rf "$work" && mkdir -p "$work"
if want push; then
    # shellcheck source=../tests/lib/registry.sh
    source "$project/tests/lib/registry.sh"
    trap 'gdn_registry_stop_all; rm -rf "$work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
db=$work/db.sqlite
cp "$root/var/guix/db/db.sqlite" "$db"
results=${results:-$workdir/cache-results-$size-$(date +%Y%m%d-%H%M%S).txt}
: >"$results"
report() { printf '%s\n' "$*" | tee -a "$results"; }

changed=$(sqlite3 "$db" "SELECT path FROM ValidPaths v WHERE path <> '$profile' AND
    (SELECT count(*) FROM Refs r WHERE r.reference = v.id AND r.referrer <> v.id) <= 1
    ORDER BY narSize DESC LIMIT 1")
[ -n "$changed" ] || die "no application item found in $db"

# measure NAME ARGS...: one build of the profile with ARGS; wall-clock and
# CPU seconds.
declare -A times cpus
measure() {
    local name=$1 start end user sys
    shift
    sync
    note "$name"
    start=$EPOCHREALTIME
    /usr/bin/time -f '%U %S' -o "$work/.time" "$binary" -q --store-dir "$store" --database "$db" \
        --max-layers "$layers" "$@" "$profile" >/dev/null 2>"$work/.stderr" || {
        cat "$work/.stderr" >&2
        die "$name failed"
    }
    end=$EPOCHREALTIME
    if grep -q warning "$work/.stderr"; then
        cat "$work/.stderr" >&2
        die "$name: a warning"
    fi
    read -r user sys < <(tail -n 1 "$work/.time")
    times[$name]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    cpus[$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    report "  $(printf '%-46s %8s s wall %8s s CPU' "$name" "${times[$name]}" "${cpus[$name]}")"
}

# measure_shell NAME COMMAND: COMMAND (bash -o pipefail) once, as measure.
measure_shell() {
    local name=$1 command=$2 start end user sys
    sync
    note "$name"
    start=$EPOCHREALTIME
    /usr/bin/time -f '%U %S' -o "$work/.time" bash -o pipefail -c "$command" >/dev/null 2>"$work/.stderr" || {
        cat "$work/.stderr" >&2
        die "$name failed"
    }
    end=$EPOCHREALTIME
    read -r user sys < <(tail -n 1 "$work/.time")
    times[$name]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
    cpus[$name]=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    report "  $(printf '%-46s %8s s wall %8s s CPU' "$name" "${times[$name]}" "${cpus[$name]}")"
}

# change_item: registers the changed item again, as a rebuild would.
change_item() {
    sqlite3 "$db" "UPDATE ValidPaths SET hash = 'sha256:' || lower(hex(randomblob(32))),
        registrationTime = registrationTime + 1 WHERE path = '$changed'"
}

# verdict RATIO LIMIT: "met" when RATIO <= LIMIT, else "NOT met" (and the
# script's status becomes 1).
verdict() {
    if awk -v r="$1" -v l="$2" 'BEGIN { exit !(r <= l) }'; then echo met; else status=1; echo "NOT met"; fi
}

note "warming the page cache: reading $root once"
tar -C / -cf - "${store#/}" | cat >/dev/null

report "guix-docker-native layer cache benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
report "binary:  $binary ($(cd "$project" && git describe --always --dirty 2>/dev/null || echo 'no git'))"
report "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg) at the start"
sed 's/^/  /' "$root/summary" | tee -a "$results"
report "layers:  at most $layers; the item changed: $changed ($(du -sh "$changed" | cut -f1))"
report "one run of each"

status=0
want oci && for c in ${compressions//,/ }; do
    cache=$work/cache-$c
    layout=$work/layout-$c
    nocache=$work/nocache-$c
    report "compression $c:"
    measure "oci: --no-cache, new layout" -C "$c" --no-cache -o "oci:$nocache"
    rm -rf "$nocache"
    measure "oci: cold (empty cache and layout)" -C "$c" --cache-dir "$cache" -o "oci:$layout"
    measure "oci: rewrite, nothing changed" -C "$c" --cache-dir "$cache" -o "oci:$layout"
    change_item
    measure "oci: rewrite, one item changed" -C "$c" --cache-dir "$cache" -o "oci:$layout"
    ratio=$(awk -v a="${times[oci: rewrite, one item changed]}" -v b="${times[oci: cold (empty cache and layout)]}" \
        'BEGIN { printf "%.3f", a / b }')
    same=$(awk -v a="${times[oci: rewrite, nothing changed]}" -v b="${times[oci: cold (empty cache and layout)]}" \
        'BEGIN { printf "%.3f", a / b }')
    report "  one item changed / cold: $ratio (target <= 0.20: $(verdict "$ratio" 0.20)); nothing changed / cold: $same"
    report "  cache: $(find "$cache" -type f | wc -l) entries, $(du -sb "$cache" | cut -f1) bytes"
done

want push && for c in ${compressions//,/ }; do
    [ "$c" != none ] || continue
    reg=$work/registry-$c
    gdn_registry_start basic "$reg" >&2 || die "could not start a registry"
    addr=$(gdn_registry_get "$reg" addr)
    certs=$reg/certs
    creds="$(gdn_registry_get "$reg" user):$(gdn_registry_get "$reg" password)"
    cache=$work/push-cache-$c
    push=(-C "$c" --cache-dir "$cache" --cert-dir "$certs" --creds "$creds" -o "docker://$addr/bench:$c")
    report "push, compression $c (registry $addr):"
    measure "push: cold (empty cache)" "${push[@]}"
    # A push of under a second, so the median of three (the machine is
    # shared: one stray second-long stall would be the whole measurement).
    again=()
    for run in 1 2 3; do
        measure "push: again, nothing changed ($run)" "${push[@]}"
        again+=("${times[push: again, nothing changed ($run)]}")
    done
    times[push: again, nothing changed]=$(printf '%s\n' "${again[@]}" | sort -n | sed -n 2p)
    # Not timed: the same push under strace, counting the store files opened.
    strace -f -qq -e trace=openat -o "$work/trace" "$binary" -q --store-dir "$store" --database "$db" \
        --max-layers "$layers" "${push[@]}" "$profile" >/dev/null 2>"$work/.stderr" || {
        cat "$work/.stderr" >&2
        die "the push under strace failed"
    }
    opened=$(bench_store_files_opened "$work/trace")
    change_item
    measure "push: again, one item changed" "${push[@]}"
    guix=$(bench_guix_archive_command "$work" "$root")
    measure_shell "today: guix archive + skopeo copy" "$guix &&
        skopeo copy -q --dest-cert-dir '$certs' --dest-creds '$creds' --dest-compress-format $c \
            'docker-archive:$work/guix.tar' 'docker://$addr/guix:$c' && rm -f '$work/guix.tar'"
    cold=${times[push: cold (empty cache)]}
    same=$(bench_ratio "${times[push: again, nothing changed]}" "$cold")
    one=$(bench_ratio "${times[push: again, one item changed]}" "$cold")
    today=$(bench_ratio "${times[push: again, one item changed]}" "${times[today: guix archive + skopeo copy]}")
    files=met
    [ "$opened" = 0 ] || { files="NOT met"; status=1; }
    report "  nothing changed (median of 3) / cold: $same (target <= 0.05: $(verdict "$same" 0.05)); store files opened: $opened (target 0: $files)"
    report "  one item changed / cold: $one (target <= 0.20: $(verdict "$one" 0.20))"
    report "  one item changed / today's path: $today (target <= 0.20, 5x faster: $(verdict "$today" 0.20))"
    report "  cache: $(find "$cache" -type f | wc -l) entries, $(du -sb "$cache" | cut -f1) bytes"
    gdn_registry_stop "$reg"
done
report "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
note "results in $results"
exit $status
