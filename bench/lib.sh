# Shared by the benchmark scripts (source it; bash).

# bench_guix_archive_command DIR ROOT: the shell command of the Guix
# pipeline bench/run.sh measures as the baseline, writing DIR/guix.tar: the
# closure of the store ROOT (bench/make-store.sh's) as one reproducible
# layer, its sha256, the archive's small files, then the archive.
bench_guix_archive_command() {
    local dir=$1 root=$2
    local det='--sort=name --mtime=@1 --owner=0 --group=0 --numeric-owner --hard-dereference'
    [ -f "$root/closure.rel" ] || sed 's,^/,,' "$root/closure" >"$root/closure.rel"
    printf '%s' "d='$dir/guix' && mkdir -p \"\$d/layer\" &&
    tar $det -C / -cf \"\$d/layer/layer.tar\" -T '$root/closure.rel' &&
    sha256sum \"\$d/layer/layer.tar\" >\"\$d/sha\" && h=\$(cut -d' ' -f1 \"\$d/sha\") && rm \"\$d/sha\" &&
    echo 1.0 >\"\$d/layer/VERSION\" && printf '{\"id\":\"layer\"}' >\"\$d/layer/json\" &&
    printf '{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\"]}}' \"\$h\" >\"\$d/config.json\" &&
    printf '[{\"Config\":\"config.json\",\"RepoTags\":[\"profile:latest\"],\"Layers\":[\"layer/layer.tar\"]}]' >\"\$d/manifest.json\" &&
    tar $det -C \"\$d\" -cf '$dir/guix.tar' . && rm -rf \"\$d\""
}

# bench_ratio A B: A / B with three decimals.
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'
}

# bench_store_files_opened TRACE: how many regular files `strace -f -e
# trace=openat` logged as opened by the layer walk (it opens each file
# with O_NONBLOCK|O_NOFOLLOW, relative to its directory; nothing else the
# program opens has both flags).
bench_store_files_opened() {
    grep 'O_NONBLOCK' "$1" | grep 'O_NOFOLLOW' | grep -v 'O_DIRECTORY' | grep -vc '= -1 ' || true
}
