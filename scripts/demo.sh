#!/usr/bin/env bash
# Builds a Docker image end to end with guix-docker-native.
#
# On a machine with Guix (a /gnu/store and its database) it packs the
# closure of `guix build hello` (or of $ITEM when set); elsewhere it makes
# the project's sample store under ${DEMO_DIR:-/tmp/gdn-demo} and packs its
# profile.  It prints the image's file name; `docker load -i FILE` reads it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release
out=${OUTPUT:-$PWD/hello-docker-image.tar}

if [ -n "${ITEM:-}" ] || { [ -d /gnu/store ] && [ -r /var/guix/db/db.sqlite ] && command -v guix >/dev/null; }; then
    item=${ITEM:-$(guix build hello)}
    exec "$bin/guix-docker-native" --database /var/guix/db/db.sqlite \
        --entry-point bin/hello -t hello:latest -o "$out" "$item"
fi

dir=${DEMO_DIR:-/tmp/gdn-demo}
item=$("$bin/gdn-sample-store" --force "$dir")
exec "$bin/guix-docker-native" --store-dir "$dir/gnu/store" \
    --database "$dir/var/guix/db/db.sqlite" \
    --entry-point bin/hello -t hello:latest -S /bin=bin -o "$out" "$item"
