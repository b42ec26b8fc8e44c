#!/usr/bin/env bash
# How the builder's time and memory grow with the number of store items in
# the closure: stores of many tiny items (made by gdn-scale-store), images
# built with --database, one layer and --max-layers 100.
#
# Usage: bash bench/scale.sh [--items "20000 80000 100000"] [--layers "1 100"]
#                            [--runs N] [--workdir DIR] [--binary FILE]
#                            [--timeout SECONDS] [--no-build] [--results FILE]
# See bench/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
project=$(dirname "$here")

items="20000 80000 100000"
layers="1 100"
runs=1
workdir=/var/tmp/gdn-scale
binary=
timeout_s=
build=yes
results=

usage() {
    cat <<'EOF'
Usage: bash bench/scale.sh [OPTION]...
Builds images of closures of N tiny store items and reports wall time, peak
memory, how the time grows from the smallest N, and the memory per item.

  --items "N..."     closure sizes (default "20000 80000 100000"); one store
                     of the largest size is made once and holds a profile
                     per size
  --layers "L..."    --max-layers values (default "1 100")
  --runs N           runs of each build; the median time and the largest
                     peak memory are reported (default 1)
  --workdir DIR      store and outputs (default /var/tmp/gdn-scale)
  --binary FILE      the guix-docker-native to measure (default: this
                     checkout's target/release/guix-docker-native)
  --timeout SECONDS  stop a build that takes longer, report it as '>SECONDS'
  --no-build         do not run cargo build --release first
  --results FILE     also write the report to FILE
  --help             this text
EOF
}

die() { echo "scale: $*" >&2; exit 1; }
note() { echo "scale: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --items) items=${2:?--items needs a value}; shift 2 ;;
        --layers) layers=${2:?--layers needs a value}; shift 2 ;;
        --runs) runs=${2:?--runs needs a value}; shift 2 ;;
        --workdir) workdir=${2:?--workdir needs a value}; shift 2 ;;
        --binary) binary=${2:?--binary needs a value}; shift 2 ;;
        --timeout) timeout_s=${2:?--timeout needs a value}; shift 2 ;;
        --no-build) build=no; shift ;;
        --results) results=${2:?--results needs a value}; shift 2 ;;
        --help | -h) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs '$runs': expected a positive whole number"
[ -z "$timeout_s" ] || [[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout '$timeout_s': expected a positive whole number"
for n in $items; do [[ $n =~ ^[1-9][0-9]*$ ]] || die "--items: '$n' is not a positive whole number"; done
for l in $layers; do [[ $l =~ ^[1-9][0-9]*$ ]] || die "--layers: '$l' is not a positive whole number"; done
read -r -a sizes <<<"$(tr ' ' '\n' <<<"$items" | sed '/^$/d' | sort -n | uniq | tr '\n' ' ')"
[ ${#sizes[@]} -gt 0 ] || die "--items: no size given"
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (Debian package time)"

if [ "$build" = yes ]; then
    note "cargo build --release"
    (cd "$project" && cargo build --release --quiet --bin guix-docker-native --bin gdn-scale-store)
fi
target=${CARGO_TARGET_DIR:-$project/target}
generator=$target/release/gdn-scale-store
[ -x "$generator" ] || die "$generator is missing: run without --no-build"
binary=${binary:-$target/release/guix-docker-native}
[ -x "$binary" ] || die "$binary: not an executable"

# The store: the largest size, a profile per size, made once.
largest=${sizes[${#sizes[@]}-1]}
root=$workdir/store-$largest
profile_args=()
for n in "${sizes[@]}"; do profile_args+=(--profile "$n"); done
want=$(printf '%s ' "${sizes[@]}")
if [ ! -f "$root/profiles" ] || [ "$(cat "$root/sizes" 2>/dev/null)" != "$want" ]; then
    note "making $largest items in $root"
    mkdir -p "$root"
    rm -f "$root/profiles" "$root/sizes"
    "$generator" --force --items "$largest" "${profile_args[@]}" "$root" >"$root/profiles.tmp"
    mv "$root/profiles.tmp" "$root/profiles"
    printf '%s' "$want" >"$root/sizes"
fi
store=$root/gnu/store
db=$root/var/guix/db/db.sqlite
out=$workdir/out.tar
timefile=$workdir/time.txt

# measure N L: prints "SECONDS CPU-SECONDS PEAK-KIB" (median wall time,
# median user + system time, largest peak), or ">T - -" after a timeout.
measure() {
    local n=$1 l=$2 profile times=() cpus=() peak=0 run status t u sy m
    profile=$(awk -v n="$n" '$1 == n { print $2 }' "$root/profiles")
    for ((run = 0; run < runs; run++)); do
        rm -f "$out"
        status=0
        if [ -n "$timeout_s" ]; then
            /usr/bin/time -f '%e %U %S %M' -o "$timefile" timeout "$timeout_s" "$binary" --store-dir "$store" \
                --database "$db" --max-layers "$l" -q -o "$out" "$profile" >/dev/null || status=$?
        else
            /usr/bin/time -f '%e %U %S %M' -o "$timefile" "$binary" --store-dir "$store" \
                --database "$db" --max-layers "$l" -q -o "$out" "$profile" >/dev/null || status=$?
        fi
        rm -f "$out"
        if [ "$status" -eq 124 ]; then
            echo ">$timeout_s - -"
            return
        fi
        [ "$status" -eq 0 ] || die "the build of $n items, $l layers failed (status $status): $(cat "$timefile")"
        read -r t u sy m < <(tail -n 1 "$timefile")
        times+=("$t")
        cpus+=("$(awk -v u="$u" -v s="$sy" 'BEGIN { printf "%.2f", u + s }')")
        [ "$m" -gt "$peak" ] && peak=$m
    done
    printf '%s %s %s\n' "$(median "${times[@]}")" "$(median "${cpus[@]}")" "$peak"
}

median() {
    printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

report=$(mktemp)
trap 'rm -f "$report"' EXIT
{
    echo "guix-docker-native scale benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "binary: $binary"
    echo "store:  $largest tiny items in $store, database $db; $runs run(s) each"
    printf '%-8s %-7s %10s %12s %10s\n' items layers seconds cpu-seconds peak-MiB
} >"$report"
cat "$report" >&2
declare -A time_of cpu_of peak_of
for l in $layers; do
    for n in "${sizes[@]}"; do
        note "building $n items, --max-layers $l"
        read -r t c m < <(measure "$n" "$l")
        time_of[$n,$l]=$t
        cpu_of[$n,$l]=$c
        peak_of[$n,$l]=$m
        mib=$([ "$m" = - ] && echo - || awk -v m="$m" 'BEGIN { printf "%.1f", m / 1024 }')
        printf '%-8s %-7s %10s %12s %10s\n' "$n" "$l" "$t" "$c" "$mib" | tee -a "$report" >&2
    done
done
{
    smallest=${sizes[0]}
    for l in $layers; do
        for n in "${sizes[@]:1}"; do
            t0=${time_of[$smallest,$l]} t=${time_of[$n,$l]}
            if [[ $t0 == \>* || $t == \>* ]]; then
                echo "--max-layers $l: time($n)/time($smallest) unknown (timeout)"
            else
                awk -v a="$t" -v b="$t0" -v ca="${cpu_of[$n,$l]}" -v cb="${cpu_of[$smallest,$l]}" \
                    -v n="$n" -v s="$smallest" -v l="$l" 'BEGIN {
                    printf "--max-layers %s: time(%d)/time(%d) = %s wall, %s cpu (linear: %.1f)\n", l, n, s,
                        (b > 0 ? sprintf("%.2f", a / b) : "n/a"), (cb > 0 ? sprintf("%.2f", ca / cb) : "n/a"), n / s }'
            fi
        done
        m0=${peak_of[$smallest,$l]} m=${peak_of[$largest,$l]}
        if [ "$largest" != "$smallest" ] && [ "$m0" != - ] && [ "$m" != - ]; then
            awk -v a="$m" -v b="$m0" -v n="$largest" -v s="$smallest" -v l="$l" 'BEGIN {
                printf "--max-layers %s: memory per item = %.0f bytes (peak RSS delta %d..%d items)\n",
                    l, (a - b) * 1024 / (n - s), s, n }'
        fi
    done
} | tee -a "$report" >&2
[ -z "$results" ] || cp "$report" "$results"
