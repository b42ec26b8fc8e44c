#!/usr/bin/env bash
# Makes a Guix-like store of real files for the benchmark.
#
# Usage: bench/make-store.sh SIZE DIR
#   SIZE  the total size of the files to copy: 200M, 1G, 2G, ... (binary units)
#   DIR   where to put it: DIR/gnu/store (the items), DIR/var/guix/db/db.sqlite
#         (the database, in Guix's schema), DIR/profile (the path of the item
#         whose closure is the whole store), DIR/closure (every item, one a line)
#         and DIR/summary (counts and sizes).
#
# Most store items are installed Debian packages: a package's files under
# /usr, /lib, /bin, /sbin, /etc and /opt are copied (not linked) with `usr/`
# dropped from their names, so an item looks like a Guix one (bin/, lib/,
# share/, ...).  glibc, the libstdc++/libgcc runtime, bash, coreutils and the
# Python standard library come first; then the Python installations of pyenv,
# if any ($PYENV_ROOT/versions/*, oldest first, as items python-<version>),
# up to 40% of SIZE: they hold many small files, as Guix stores do; then
# other packages, in an order fixed by a hash of their names, until SIZE bytes
# are copied.  Then every item gets
# references to a few items made before it (a text file naming their paths
# and a symlink to one of them: the reference graph is acyclic), a "profile"
# item refers to all of them, and the database records it all.
#
# The store is made once: a DIR that holds a complete store is left alone.
set -euo pipefail

die() { echo "make-store: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: make-store.sh SIZE DIR"

# parse_size 200M -> 209715200 (K, M, G, T are powers of 1024)
parse_size() {
    local s=$1 n unit
    [[ $s =~ ^([0-9]+)([KMGT]?)(i?B)?$ ]] || die "size '$s': expected a number with an optional K, M, G or T suffix"
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    case $unit in
        K) n=$((n << 10)) ;; M) n=$((n << 20)) ;; G) n=$((n << 30)) ;; T) n=$((n << 40)) ;;
    esac
    [ "$n" -gt 0 ] || die "size '$s': must be more than zero"
    echo "$n"
}

target=$(parse_size "$1")
mkdir -p "$2"
root=$(cd "$2" && pwd -P)
store=$root/gnu/store
db=$root/var/guix/db/db.sqlite

if [ -f "$root/summary" ] && [ -f "$root/profile" ] && [ -f "$db" ]; then
    cat "$root/summary"
    exit 0
fi

schema=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/src/closure/schema.sql
[ -r "$schema" ] || die "$schema: the store database schema is missing"

for tool in dpkg-query tar sqlite3 sha256sum find awk; do
    command -v "$tool" >/dev/null || die "'$tool' is needed and not installed"
done

# A half-made store from an interrupted run: start again.  Items are read-only
# once normalised, so make them writable before removing them.
if [ -e "$root/gnu" ] || [ -e "$root/var" ]; then
    chmod -R u+w "$root/gnu" "$root/var" 2>/dev/null || true
    rm -rf "$root/gnu" "$root/var"
fi
rm -f "$root/profile" "$root/closure" "$root/summary" "$root/copy.log"
mkdir -p "$store" "$(dirname "$db")"

# The 32 characters of Nix's base32 (no e, o, t, u).
NIX_BASE32=0123456789abcdfghijklmnpqrsvwxyz

# nix_hash STRING: 32 Nix base32 characters derived from sha256(STRING), so
# names are the same on every run on the same machine.
nix_hash() {
    local hex out='' i
    hex=$(printf '%s' "$1" | sha256sum)
    for ((i = 0; i < 32; i++)); do
        out+=${NIX_BASE32:$((16#${hex:2*i:2} % 32)):1}
    done
    printf '%s' "$out"
}

# store_name PACKAGE VERSION: "<package>-<version>" without the version's
# epoch ("1:"), the characters a store name may not hold ("~", ...) turned
# into "-".
store_name() {
    local name="$1-${2#[0-9]*:}"
    name=${name//[^A-Za-z0-9+._?=-]/-}
    printf '%s' "$name"
}

# copy_package PACKAGE ITEM: copies the package's files and symlinks into
# ITEM.  Directories come from the files they hold; the merged-/usr
# top-level symlinks (/lib -> usr/lib, ...) are not copied.  Hard links are
# copied as separate files.
copy_package() {
    local pkg=$1 item=$2 path list
    list=$(mktemp)
    while IFS= read -r path; do
        case $path in
            /usr/* | /lib/* | /lib64/* | /bin/* | /sbin/* | /etc/* | /opt/*) ;;
            *) continue ;;
        esac
        if [ -L "$path" ]; then
            printf '%s\n' "${path#/}"
        elif [ -f "$path" ]; then
            printf '%s\n' "${path#/}"
        fi
    done < <(dpkg-query -L "$pkg" 2>/dev/null) >"$list"
    mkdir -p "$item"
    if [ -s "$list" ]; then
        # 'S': the transformation renames members, not symlink targets.
        tar -C / --no-recursion --ignore-failed-read --hard-dereference -cf - -T "$list" 2>>"$root/copy.log" |
            tar -C "$item" --no-same-owner --transform 's,^usr/,,S' -xf - 2>>"$root/copy.log"
    fi
    rm -f "$list"
}

# copy_pythons: copies pyenv's Python installations, oldest first, while
# they fit in 40% of the target size.
copy_pythons() {
    local versions=${PYENV_ROOT:-$HOME/.pyenv}/versions dir name base bytes first_bytes=$copied
    [ -d "$versions" ] || return 0
    while IFS= read -r dir; do
        [ -d "$dir" ] && [ ! -L "$dir" ] || continue
        bytes=$(find "$dir" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }')
        [ $((copied + bytes)) -le $((target * 4 / 10 + first_bytes)) ] || continue
        name=$(store_name python "${dir##*/}")
        base="$(nix_hash "$name")-$name"
        mkdir -p "$store/$base"
        tar -C "$dir" --hard-dereference -cf - . 2>>"$root/copy.log" |
            tar -C "$store/$base" --no-same-owner -xf - 2>>"$root/copy.log"
        items+=("$base")
        copied=$((copied + $(item_bytes "$store/$base")))
    done < <(printf '%s\n' "$versions"/* | sort -V)
}

# item_bytes ITEM: the sum of its regular files' sizes.
item_bytes() {
    find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

# The packages, largest allowed one a sixteenth of the store: the always-first
# ones, then the others in the order of a hash of their names.  Packages
# under 256 KiB are left out: they are mostly documentation and metadata, and
# leaving them out keeps about 180 items in 1 GiB, as in a real Guix closure.
max_package_kib=$((target / 16 / 1024))
first=(libc6 libgcc-s1 libstdc++6 bash coreutils libpython3.11-minimal libpython3.11-stdlib)
installed=$(dpkg-query -W -f '${db:Status-Abbrev}\t${Installed-Size}\t${binary:Package}\t${Version}\n' |
    awk -F '\t' '$1 ~ /^ii/ { print $2 "\t" $3 "\t" $4 }')
declare -A version_of
while IFS=$'\t' read -r kib pkg version; do
    version_of[${pkg%:*}]=$version
done <<<"$installed"
ordered=()
for pkg in "${first[@]}"; do
    [ -n "${version_of[$pkg]:-}" ] && ordered+=("$pkg")
done
while IFS=$'\t' read -r _ pkg; do
    ordered+=("$pkg")
done < <(while IFS=$'\t' read -r kib pkg version; do
    pkg=${pkg%:*}
    case " ${first[*]} " in *" $pkg "*) continue ;; esac
    [ "${kib:-0}" -ge 256 ] && [ "$kib" -le "$max_package_kib" ] || continue
    hex=$(printf '%s' "$pkg" | sha256sum)
    printf '%s\t%s\n' "${hex:0:16}" "$pkg"
done <<<"$installed" | sort)

echo "make-store: copying packages into $store until $target bytes" >&2
items=()   # base names, in the order made
copied=0
pythons_done=no
for pkg in "${ordered[@]}"; do
    [ "$copied" -lt "$target" ] || break
    case " ${first[*]} " in
        *" $pkg "*) ;;
        *) if [ "$pythons_done" = no ]; then
               copy_pythons
               pythons_done=yes
           fi ;;
    esac
    name=$(store_name "$pkg" "${version_of[$pkg]}")
    base="$(nix_hash "$name")-$name"
    copy_package "$pkg" "$store/$base"
    bytes=$(item_bytes "$store/$base")
    if [ "$bytes" -eq 0 ]; then
        rm -rf "${store:?}/$base"
        continue
    fi
    items+=("$base")
    copied=$((copied + bytes))
done
if [ "$copied" -lt $((target * 9 / 10)) ]; then
    die "only $copied bytes of installed packages could be copied (wanted $target): install more packages or ask for a smaller size"
fi

# References.  Item i (i > 0) refers to item 0 (glibc, as nearly everything
# in Guix does) and to up to three more items made before it, chosen by a hash
# of its name.  They are written in share/gdn-bench/references (full store
# paths, one a line, as build outputs embed them) and the first one also as a
# symlink, share/gdn-bench/<its name>; the database gets the same list.
declare -A refs_of
for ((i = 1; i < ${#items[@]}; i++)); do
    hex=$(printf '%s' "${items[i]}" | sha256sum)
    refs=" 0 "
    for ((k = 0; k < $((16#${hex:0:1} % 4)); k++)); do
        j=$((16#${hex:2+8*k:8} % i))
        case $refs in *" $j "*) ;; *) refs+="$j " ;; esac
    done
    refs_of[$i]=$refs
    dir="$store/${items[i]}/share/gdn-bench"
    mkdir -p "$dir"
    for j in $refs; do
        printf '%s\n' "$store/${items[j]}"
    done >"$dir/references"
    j=${refs# }; j=${j%% *}
    ln -s "$store/${items[j]}" "$dir/${items[j]#*-}"
done

# The profile: a manifest naming every item, a symlink to each item, and a
# union of the items' bin/ directories (the first item providing a name wins),
# like a Guix profile.
profile_base="$(nix_hash "profile-$target")-profile"
profile=$store/$profile_base
mkdir -p "$profile/bin" "$profile/items"
for base in "${items[@]}"; do
    printf '%s\n' "$store/$base" >>"$profile/manifest"
    ln -s "$store/$base" "$profile/items/${base#*-}"
    if [ -d "$store/$base/bin" ]; then
        for program in "$store/$base"/bin/*; do
            [ -e "$program" ] || [ -L "$program" ] || continue
            link=$profile/bin/${program##*/}
            [ -e "$link" ] || [ -L "$link" ] || ln -s "$program" "$link"
        done
    fi
done

# Store modes: directories 0555, files 0444, or 0555 when executable by
# anyone; every mtime 1 (the epoch plus one second), as in a Guix store.
echo "make-store: normalising modes and times" >&2
find "$store" -mindepth 1 -type f -perm /111 -exec chmod 0555 {} +
find "$store" -mindepth 1 -type f ! -perm /111 -exec chmod 0444 {} +
find "$store" -mindepth 1 -type d -exec chmod 0555 {} +
find "$store" -mindepth 1 -exec touch -h -d @1 {} +

# nar_size ITEM: the exact size of the item's Nix archive, from its metadata
# (strings are an 8-byte length and the bytes padded to 8; file contents the
# same).  Entries of a directory come sorted by name, but the size does not
# depend on the order.
nar_size() {
    (cd "$1" && find . -printf '%y\t%s\t%m\t%l\t%P\n') | awk -F '\t' '
        function str(n) { return 8 + int((n + 7) / 8) * 8 }
        function base(p) { sub(/.*\//, "", p); return p }
        {
            type = $1; size = $2; mode = $3; target = $4; path = $5
            # "(" "type" <type> ... ")"
            n = str(1) + str(4) + str(1)
            if (type == "f") {
                n += str(7) + str(8) + 8 + int((size + 7) / 8) * 8
                if (mode ~ /[1357]/) n += str(10) + str(0)
            } else if (type == "l") {
                n += str(7) + str(6) + str(length(target))
            } else if (type == "d") {
                n += str(9)
            }
            # Every entry but the root: "entry" "(" "name" <name> "node" ... ")"
            if (path != "") n += str(5) + str(1) + str(4) + str(length(base(path))) + str(4) + str(1)
            total += n
        }
        END { printf "%.0f\n", total + str(13) }'
}

# content_hash ITEM: sha256 of a deterministic tar of the item.  Guix stores
# the sha256 of the item's Nix archive here; nothing in the benchmark reads
# this column, so a content hash of another serialisation stands in for it.
content_hash() {
    local h
    h=$(tar -C "$store" --sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner -cf - "$1" | sha256sum)
    printf 'sha256:%s' "${h%% *}"
}

echo "make-store: writing the database $db" >&2
sql=$(mktemp)
{
    cat <<'EOF'
PRAGMA foreign_keys = ON;
BEGIN;
EOF
    # The library's schema, the one copy (src/closure.rs includes it).
    cat "$schema"
    all=("${items[@]}" "$profile_base")
    for ((i = 0; i < ${#all[@]}; i++)); do
        printf "INSERT INTO ValidPaths (id, path, hash, registrationTime, deriver, narSize) VALUES (%d, '%s', '%s', 1, NULL, %d);\n" \
            $((i + 1)) "$store/${all[i]}" "$(content_hash "${all[i]}")" "$(nar_size "$store/${all[i]}")"
    done
    for ((i = 1; i < ${#items[@]}; i++)); do
        for j in ${refs_of[$i]}; do
            printf 'INSERT INTO Refs (referrer, reference) VALUES (%d, %d);\n' $((i + 1)) $((j + 1))
        done
    done
    for ((i = 0; i < ${#items[@]}; i++)); do
        printf 'INSERT INTO Refs (referrer, reference) VALUES (%d, %d);\n' $((${#items[@]} + 1)) $((i + 1))
    done
    echo "COMMIT;"
} >"$sql"
sqlite3 "$db" <"$sql"
rm -f "$sql"

printf '%s\n' "$profile" >"$root/profile"
for base in "${items[@]}" "$profile_base"; do
    printf '%s\n' "$store/$base"
done | sort >"$root/closure"

files=$(find "$store" -type f | wc -l)
symlinks=$(find "$store" -type l | wc -l)
dirs=$(find "$store" -type d | wc -l)
bytes=$(item_bytes "$store")
{
    printf 'store:     %s\n' "$store"
    printf 'database:  %s\n' "$db"
    printf 'profile:   %s\n' "$profile"
    printf 'items:     %d (%d copied and the profile)\n' $((${#items[@]} + 1)) "${#items[@]}"
    printf 'files:     %d regular files, %d symlinks, %d directories\n' "$files" "$symlinks" "$dirs"
    printf 'size:      %d bytes in regular files (%.2f GiB)\n' "$bytes" "$(awk -v b="$bytes" 'BEGIN { print b / 1073741824 }')"
} >"$root/summary.tmp"
mv "$root/summary.tmp" "$root/summary"
cat "$root/summary"
