#!/usr/bin/env bash
# Pushing to registries, proved with the real clients: the sample store's
# image is pushed by guix-docker-native -o docker://127.0.0.1:PORT/REPO:TAG
# to Debian's docker-registry (distribution 2.8) in each of the modes of
# tests/lib/registry.sh (plain HTTP; TLS with htpasswd Basic auth; TLS with
# bearer tokens from tests/registry/token-issuer.py), then
#   - skopeo inspect shows the tag and the media types asked for (OCI, or
#     Docker schema 2 with --manifest-format docker; gzip or zstd layers);
#   - skopeo copy docker://... oci:... and umoci unpack give the closure,
#     file for file;
#   - docker pull (the CA in /etc/docker/certs.d/HOST:PORT, docker login
#     for the credentials) and docker run print what the program prints,
#     for OCI and schema 2 manifests; podman pull and podman run too (zstd
#     as well);
#   - the credentials are found in each place container tools look:
#     --creds, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
#     $DOCKER_CONFIG/config.json's auths, a credential helper (credHelpers
#     and credsStore: a fake docker-credential-gdntest on PATH);
#   - a wrong password, and no credentials at all, fail with an error that
#     says where credentials were looked for, and leave no tag;
#   - no password appears in anything the pushes printed;
#   - the token registry refuses a token whose signature does not match
#     (it verifies what the issuer signs).
#
#   bash tests/consumers/registry.sh     (as root, after cargo build --release)
#
# GDN_REGISTRY_PUSHER=skopeo pushes with skopeo instead (an oci: layout
# made by guix-docker-native, then skopeo copy): a check of the registries
# and clients themselves; the checks that need our own messages then fail.
# Uses the dockerd at $DOCKER_HOST when it answers, else starts its own
# (tests/lib/dockerd.sh): Docker treats 127.0.0.0/8 as an insecure
# registry, so plain HTTP needs no --insecure-registry.  Each check prints
# `ok - ...` or `FAIL - ...`; the last line is "N passed, N failed".

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/dockerd.sh
source "$ROOT/tests/lib/dockerd.sh"
# shellcheck source=../lib/checks.sh
source "$ROOT/tests/lib/checks.sh"
# shellcheck source=../lib/registry.sh
source "$ROOT/tests/lib/registry.sh"

BIN=$ROOT/target/release/guix-docker-native
SAMPLE_STORE=$ROOT/target/release/gdn-sample-store
PUSHER=${GDN_REGISTRY_PUSHER:-gdn}

WORK=
MOUNTS=()
# The /etc/docker/certs.d/HOST:PORT directories made for docker.
CERTS_D=()

cleanup() {
    local d
    gdn_registry_stop_all
    for d in ${CERTS_D[@]+"${CERTS_D[@]}"}; do
        rm -rf "$d"
    done
    gdn_consumer_cleanup '^127\.0\.0\.1:[0-9]*/gdn-reg/'
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

[ "$(id -u)" = 0 ] || die "the registry tests run as root (dockerd, /etc/docker/certs.d)"
for program in "$BIN" "$SAMPLE_STORE"; do
    [ -x "$program" ] || die "$program is missing: run cargo build --release first"
done
for tool in docker-registry htpasswd openssl curl dockerd podman skopeo umoci sqlite3 jq "$GDN_REGISTRY_PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool is not installed (tests/run-all.sh installs it)"
done
"$GDN_REGISTRY_PYTHON" -c 'import cryptography' 2>/dev/null || die "python3-cryptography is not installed"
case $PUSHER in gdn | skopeo) ;; *) die "GDN_REGISTRY_PUSHER=$PUSHER: gdn or skopeo" ;; esac

WORK=$(mktemp -d /tmp/gdn-registry.XXXXXX)
mkdir "$WORK/push" "$WORK/nohome"
make_sample_store "$WORK/s"

EXPECTED=$(env -i GREETING=bonjour "$MAIN/bin/hello" one "two words")
gdn() { "$BIN" --store-dir "$STORE" --database "$DB" "$@"; }
IMAGE_ARGS=(--entry-point bin/hello -A one -A "two words" -E GREETING=bonjour --max-layers 3)
LAYERS=3

gdn_consumer_docker gdn-rd || die "could not start dockerd"
gdn_podman_setup "$WORK/podman"
DOCKER_CLIENT_CONFIG=$WORK/docker-client
mkdir -p "$DOCKER_CLIENT_CONFIG"

for mode in plain basic token; do
    gdn_registry_start "$mode" "$WORK/reg-$mode" || die "could not start the $mode registry"
    echo "# $mode registry at $(gdn_registry_get "$WORK/reg-$mode" addr)"
done

# ---------------------------------------------------------------- helpers

reg_dir() { echo "$WORK/reg-$1"; }
reg_addr() { gdn_registry_get "$(reg_dir "$1")" addr; }
reg_user() { gdn_registry_get "$(reg_dir "$1")" user; }
reg_password() { gdn_registry_get "$(reg_dir "$1")" password; }
reg_creds() { echo "$(reg_user "$1"):$(reg_password "$1")"; }

# read_args MODE PREFIX: the options by which skopeo reads the MODE
# registry with the right credentials (PREFIX: "" for inspect, "src-" for
# copy).
read_args() {
    local mode=$1 prefix=$2
    if [ "$mode" = plain ]; then
        echo "--${prefix}tls-verify=false"
    else
        echo "--${prefix}cert-dir=$(reg_dir "$mode")/certs"
        echo "--${prefix}creds=$(reg_creds "$mode")"
    fi
}

# registry_skopeo MODE inspect|copy ARGS...: skopeo reading the registry.
registry_skopeo() {
    local mode=$1 verb=$2 prefix=
    shift 2
    [ "$verb" = copy ] && prefix=src-
    local args
    mapfile -t args < <(read_args "$mode" "$prefix")
    timeout 120 skopeo "$verb" "${args[@]}" "$@"
}

# push ENV MODE REPO:TAG [OPTION...]: pushes the sample image to
# docker://ADDR/REPO:TAG of the MODE registry, with the registry's TLS
# options (--cert-dir DIR, or --tls-verify=false) and OPTIONs (-C, --creds,
# --manifest-format).  It runs with no credential variable set and an
# empty HOME, then ENV: VAR=VALUE words.  Its output: push_log MODE REF.
push() {
    local env_words=$1 mode=$2 ref=$3 log tls
    shift 3
    log=$(push_log "$mode" "$ref")
    if [ "$mode" = plain ]; then tls=(--tls-verify=false); else tls=(--cert-dir "$(reg_dir "$mode")/certs"); fi
    # shellcheck disable=SC2086 # ENV is words
    local environment=(env -u REGISTRY_AUTH_FILE -u XDG_RUNTIME_DIR -u XDG_CONFIG_HOME -u DOCKER_CONFIG
        HOME="$WORK/nohome" $env_words)
    local destination=docker://$(reg_addr "$mode")/$ref
    if [ "$PUSHER" = gdn ]; then
        "${environment[@]}" timeout 300 "$BIN" --store-dir "$STORE" --database "$DB" "${IMAGE_ARGS[@]}" \
            "${tls[@]}" "$@" -o "$destination" "$MAIN" >"$log.out" 2>"$log.err" </dev/null
    else
        skopeo_push "$log" "$destination" "${environment[*]}" "${tls[@]}" "$@"
    fi
}
push_log() { echo "$WORK/push/$1-${2//[:\/]/_}"; }

# skopeo_push LOG DESTINATION ENV OPTION...: the same through an oci:
# layout and skopeo copy, the options translated.
skopeo_push() {
    local log=$1 destination=$2 environment=$3 compression=none format=() dest=() layout
    shift 3
    while [ $# -gt 0 ]; do
        case $1 in
            -C) compression=$2; shift ;;
            --creds) dest+=("--dest-creds=$2"); shift ;;
            --cert-dir) dest+=("--dest-cert-dir=$2"); shift ;;
            --tls-verify=false) dest+=(--dest-tls-verify=false) ;;
            --manifest-format) [ "$2" = docker ] && format=(--format v2s2); shift ;;
        esac
        shift
    done
    layout=$log.layout
    gdn "${IMAGE_ARGS[@]}" -C "$compression" -o "oci:$layout:img" "$MAIN" >/dev/null || return 1
    # shellcheck disable=SC2086 # ENV is words
    $environment timeout 300 skopeo copy -q "${format[@]}" "${dest[@]}" "oci:$layout:img" "$destination" \
        >"$log.out" 2>"$log.err" </dev/null
}

# show_push MODE REF: what the push printed, for a failure's log.
show_push() {
    local log
    log=$(push_log "$1" "$2")
    echo "push to $1 $2: stdout:"
    sed 's/^/    /' "$log.out"
    echo "stderr:"
    sed 's/^/    /' "$log.err"
}

# pushed MODE REF: the registry has the tag (skopeo inspect with the right
# credentials lists it).
pushed() {
    local mode=$1 ref=$2 tags
    tags=$(registry_skopeo "$mode" inspect "docker://$(reg_addr "$mode")/$ref" | jq -r '.RepoTags[]') || {
        echo "skopeo inspect docker://$(reg_addr "$mode")/$ref failed"
        return 1
    }
    grep -qxF -- "${ref##*:}" <<<"$tags" || { echo "tag ${ref##*:} not among: $tags"; return 1; }
}

# not_pushed MODE REF: the registry has no such tag.
not_pushed() {
    local mode=$1 ref=$2 out
    if out=$(registry_skopeo "$mode" inspect --raw "docker://$(reg_addr "$mode")/$ref" 2>&1); then
        echo "the registry has $ref: $out"
        return 1
    fi
    case $out in
        *"manifest unknown"* | *"name unknown"* | *"not found"*) ;;
        *) echo "skopeo inspect failed otherwise than with an unknown manifest: $out"; return 1 ;;
    esac
}

# push_succeeds ENV MODE REF [OPTION...]: push, and the tag is there.
push_succeeds() {
    local env_words=$1 mode=$2 ref=$3
    push "$@" || { show_push "$mode" "$ref"; return 1; }
    pushed "$mode" "$ref"
}

# media_types MODE REF MANIFEST CONFIG LAYER: the manifest's, its config's
# and every layer's media type (LAYERS of them).
media_types() {
    local mode=$1 ref=$2 raw
    raw=$(registry_skopeo "$mode" inspect --raw "docker://$(reg_addr "$mode")/$ref") || return 1
    expect_equal "manifest media type" "$3" "$(jq -r .mediaType <<<"$raw")" || return 1
    expect_equal "config media type" "$4" "$(jq -r .config.mediaType <<<"$raw")" || return 1
    expect_equal "layer media types" "$(for _ in $(seq "$LAYERS"); do echo "$5"; done)" \
        "$(jq -r '.layers[].mediaType' <<<"$raw")"
}

OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_CONFIG=application/vnd.oci.image.config.v1+json
OCI_GZIP=application/vnd.oci.image.layer.v1.tar+gzip
OCI_ZSTD=application/vnd.oci.image.layer.v1.tar+zstd
V2S2_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
V2S2_CONFIG=application/vnd.docker.container.image.v1+json
V2S2_GZIP=application/vnd.docker.image.rootfs.diff.tar.gzip

# umoci_unpacks MODE REF: skopeo copy docker://... oci:..., umoci unpack:
# the image's store is the closure, file for file.
umoci_unpacks() {
    local mode=$1 ref=$2 name=${2//[:\/]/_}
    local layout=$WORK/pulled-$mode-$name bundle=$WORK/bundle-$mode-$name
    registry_skopeo "$mode" copy -q "docker://$(reg_addr "$mode")/$ref" "oci:$layout:pulled" || return 1
    umoci unpack --image "$layout:pulled" "$bundle" >/dev/null || return 1
    local rootfs=$bundle/rootfs
    expect_equal "items in the image's store" "$(printf '%s\n' "${CLOSURE_NAMES[@]}" | LC_ALL=C sort)" \
        "$(ls "$rootfs$STORE" | LC_ALL=C sort)" || return 1
    listing "$STORE" "${CLOSURE_NAMES[@]}" >"$WORK/store.list" || return 1
    listing "$rootfs$STORE" "${CLOSURE_NAMES[@]}" >"$WORK/image.list" || return 1
    diff -u "$WORK/store.list" "$WORK/image.list" || { echo "the unpacked image differs from the store"; return 1; }
    echo "# $(wc -l <"$WORK/store.list") entries identical"
    rm -rf "$layout" "$bundle"
}

# docker_trusts MODE: the private CA in /etc/docker/certs.d/ADDR, and
# docker login with the registry's credentials (a client config of ours).
docker_trusts() {
    local mode=$1 addr
    addr=$(reg_addr "$mode")
    [ "$mode" = plain ] && return 0
    mkdir -p "/etc/docker/certs.d/$addr" && CERTS_D+=("/etc/docker/certs.d/$addr") &&
        cp "$(reg_dir "$mode")/certs/ca.crt" "/etc/docker/certs.d/$addr/ca.crt" || return 1
    reg_password "$mode" | DOCKER_CONFIG=$DOCKER_CLIENT_CONFIG timeout 60 "$GDN_DOCKER_CLI" login \
        --username "$(reg_user "$mode")" --password-stdin "$addr"
}

# docker_pulls_and_runs MODE REF: docker pull, then docker run prints
# EXPECTED.
docker_pulls_and_runs() {
    local mode=$1 image output
    image=$(reg_addr "$mode")/$2
    DOCKER_CONFIG=$DOCKER_CLIENT_CONFIG timeout 300 "$GDN_DOCKER_CLI" pull -q "$image" || return 1
    output=$(timeout 120 "$GDN_DOCKER_CLI" run --rm --network none "$image" 2>&1)
    expect_equal "docker run $image" "$EXPECTED" "$output" || return 1
    "$GDN_DOCKER_CLI" rmi "$image" >/dev/null
}

# podman_pulls_and_runs MODE REF
podman_pulls_and_runs() {
    local mode=$1 image output args
    image=$(reg_addr "$mode")/$2
    mapfile -t args < <(read_args "$mode" "")
    timeout 300 "${GDN_PODMAN[@]}" pull -q "${args[@]}" "docker://$image" >/dev/null || return 1
    output=$(timeout 120 "${GDN_PODMAN[@]}" run --rm --network none "$image" 2>&1)
    expect_equal "podman run $image" "$EXPECTED" "$output" || return 1
    "${GDN_PODMAN[@]}" rmi "$image" >/dev/null
}

# refused_for_credentials MODE REF NEEDLE...: the push failed, saying
# "401" or "unauthorized" and every NEEDLE; the registry has no such tag.
refused_for_credentials() {
    local mode=$1 ref=$2 log message needle
    shift 2
    log=$(push_log "$mode" "$ref")
    message=$(cat "$log.err")
    grep -qiE '401|unauthori[sz]ed' "$log.err" || { echo "no 401 in: $message"; return 1; }
    for needle in "$@"; do
        grep -qF -- "$needle" "$log.err" || { echo "the error does not say '$needle': $message"; return 1; }
    done
    echo "# $(head -n 3 "$log.err")"
    not_pushed "$mode" "$ref"
}

# --------------------------------------------------------- the modes

for mode in plain basic token; do
    creds=()
    [ "$mode" = plain ] || creds=(--creds "$(reg_creds "$mode")")

    check "$mode: the push (OCI, gzip, $LAYERS layers) tags gdn-reg/hello:oci" \
        push_succeeds "" "$mode" gdn-reg/hello:oci -C gzip "${creds[@]}"
    check "$mode: skopeo inspect: OCI manifest, config and gzip layers" \
        media_types "$mode" gdn-reg/hello:oci "$OCI_MANIFEST" "$OCI_CONFIG" "$OCI_GZIP"
    check "$mode: the same image pushed again under another tag" \
        push_succeeds "" "$mode" gdn-reg/hello:again -C gzip "${creds[@]}"
    check "$mode: skopeo copy docker:// oci: and umoci unpack: the closure, file for file" \
        umoci_unpacks "$mode" gdn-reg/hello:oci
    check "$mode: docker knows the registry (certs.d, docker login)" docker_trusts "$mode"
    check "$mode: docker pull and docker run of the OCI image" \
        docker_pulls_and_runs "$mode" gdn-reg/hello:oci
    check "$mode: podman pull and podman run of the OCI image" \
        podman_pulls_and_runs "$mode" gdn-reg/hello:oci
done

# Docker schema 2, as Docker 20.10 pulls it.
check "basic: --manifest-format docker pushes a schema 2 image" \
    push_succeeds "" basic gdn-reg/hello:v2s2 -C gzip --manifest-format docker --creds "$(reg_creds basic)"
check "basic: skopeo inspect: schema 2 manifest, config and gzip layers" \
    media_types basic gdn-reg/hello:v2s2 "$V2S2_MANIFEST" "$V2S2_CONFIG" "$V2S2_GZIP"
check "basic: docker pull and docker run of the schema 2 image" \
    docker_pulls_and_runs basic gdn-reg/hello:v2s2

# zstd layers: podman reads them (Docker 20.10 does not).
check "token: the push with zstd layers" \
    push_succeeds "" token gdn-reg/hello:zstd -C zstd --creds "$(reg_creds token)"
check "token: skopeo inspect: zstd layers" \
    media_types token gdn-reg/hello:zstd "$OCI_MANIFEST" "$OCI_CONFIG" "$OCI_ZSTD"
check "token: podman pull and podman run of the zstd image" \
    podman_pulls_and_runs token gdn-reg/hello:zstd

# ------------------------------------------------- where credentials come from

# A fake credential helper: docker-credential-gdntest get, the registry on
# standard input, answers with what $WORK/helper-secrets holds for it
# (lines `ADDR USER PASSWORD`), else docker's "not found".
mkdir -p "$WORK/helpers"
cat >"$WORK/helpers/docker-credential-gdntest" <<EOF
#!/bin/sh
[ "\$1" = get ] || exit 3
read -r server
while read -r addr user password; do
    if [ "\$addr" = "\$server" ]; then
        printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "\$server" "\$user" "\$password"
        exit 0
    fi
done <"$WORK/helper-secrets"
echo "credentials not found in native keychain"
exit 1
EOF
chmod 755 "$WORK/helpers/docker-credential-gdntest"
: >"$WORK/helper-secrets"
for mode in basic token; do
    echo "$(reg_addr "$mode") $(reg_user "$mode") $(reg_password "$mode")" >>"$WORK/helper-secrets"
done

# auth_json FILE MODE [KEY]: an auth file with the MODE registry's
# credentials in `auths`, under KEY (default: HOST:PORT).
auth_json() {
    local file=$1 mode=$2 key=${3:-$(reg_addr "$2")}
    mkdir -p "$(dirname "$file")"
    jq -n --arg key "$key" --arg auth "$(printf '%s' "$(reg_creds "$mode")" | base64 -w0)" \
        '{auths: {($key): {auth: $auth}}}' >"$file"
}

# wrong_password_refused MODE: --creds with a wrong password.
wrong_password_refused() {
    local mode=$1
    if push "" "$mode" gdn-reg/refused:wrong -C gzip --creds "$(reg_user "$mode"):wrong-pw-$mode"; then
        echo "the push with a wrong password succeeded"
        return 1
    fi
    refused_for_credentials "$mode" gdn-reg/refused:wrong
}

# no_credentials_refused MODE DIR: nothing anywhere; the message lists
# --creds and the files by their paths.
no_credentials_refused() {
    local mode=$1 d=$2
    if push "REGISTRY_AUTH_FILE=$d/none.json DOCKER_CONFIG=$d/nothing" "$mode" gdn-reg/refused:none -C gzip; then
        echo "the push without credentials succeeded"
        return 1
    fi
    refused_for_credentials "$mode" gdn-reg/refused:none --creds "\$REGISTRY_AUTH_FILE ($d/none.json" \
        "$d/nothing/config.json"
}

for mode in basic token; do
    addr=$(reg_addr "$mode")
    d=$WORK/creds-$mode
    auth_json "$d/registry-auth.json" "$mode"
    check "$mode: credentials from \$REGISTRY_AUTH_FILE" \
        push_succeeds "REGISTRY_AUTH_FILE=$d/registry-auth.json" "$mode" gdn-reg/src:authfile -C gzip
    auth_json "$d/run/containers/auth.json" "$mode"
    check "$mode: credentials from \$XDG_RUNTIME_DIR/containers/auth.json" \
        push_succeeds "XDG_RUNTIME_DIR=$d/run" "$mode" gdn-reg/src:xdg -C gzip
    auth_json "$d/docker/config.json" "$mode" "https://$addr/v1/"
    check "$mode: credentials from \$DOCKER_CONFIG/config.json auths (key https://$addr/v1/)" \
        push_succeeds "DOCKER_CONFIG=$d/docker" "$mode" gdn-reg/src:dockerconfig -C gzip
    auth_json "$d/home/.docker/config.json" "$mode"
    check "$mode: credentials from ~/.docker/config.json auths" \
        push_succeeds "HOME=$d/home" "$mode" gdn-reg/src:home -C gzip
    mkdir -p "$d/helper" "$d/store"
    jq -n --arg key "$addr" '{credHelpers: {($key): "gdntest"}}' >"$d/helper/config.json"
    check "$mode: credentials from a credHelpers helper (docker-credential-gdntest)" \
        push_succeeds "DOCKER_CONFIG=$d/helper PATH=$WORK/helpers:$PATH" "$mode" gdn-reg/src:credhelper -C gzip
    jq -n --arg key "$addr" '{auths: {($key): {}}, credsStore: "gdntest"}' >"$d/store/config.json"
    check "$mode: credentials from a credsStore helper" \
        push_succeeds "DOCKER_CONFIG=$d/store PATH=$WORK/helpers:$PATH" "$mode" gdn-reg/src:credsstore -C gzip
    # The first place that has them wins: --creds over a file's wrong ones.
    jq -n --arg key "$addr" --arg auth "$(printf '%s' "$(reg_user "$mode"):wrong-from-file" | base64 -w0)" \
        '{auths: {($key): {auth: $auth}}}' >"$d/wrong-auth.json"
    check "$mode: --creds comes before \$REGISTRY_AUTH_FILE" \
        push_succeeds "REGISTRY_AUTH_FILE=$d/wrong-auth.json" "$mode" gdn-reg/src:order -C gzip --creds "$(reg_creds "$mode")"

    # Refusals: no tag is left, the error says where credentials were
    # looked for.
    check "$mode: a wrong password is refused with a 401 and leaves no tag" wrong_password_refused "$mode"
    check "$mode: no credentials: a 401 that names the places searched, no tag" no_credentials_refused "$mode" "$d"
done

# ---------------------------------------------- the token is verified for real

tampered_token_refused() {
    local dir addr realm creds token forged code
    dir=$(reg_dir token)
    addr=$(reg_addr token)
    creds=$(reg_creds token)
    realm=$(sed -n 's/^ *realm: //p' "$dir/config.yml" | grep token)
    token=$(curl -sf --cacert "$dir/certs/ca.crt" -u "$creds" \
        "$realm?service=gdn-test-registry&scope=repository:gdn-reg/hello:pull" | jq -r .token) || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$dir/certs/ca.crt" -H "Authorization: Bearer $token" \
        -H "Accept: $OCI_MANIFEST" "https://$addr/v2/gdn-reg/hello/manifests/oci")
    expect_equal "the issuer's token: GET manifest" 200 "$code" || return 1
    # The claims changed to another repository, the signature kept.
    forged=$("$GDN_REGISTRY_PYTHON" -c '
import base64, json, sys
header, claims, signature = sys.argv[1].split(".")
decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
decoded["access"][0]["name"] = "gdn-reg/src"
print(header + "." + base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode() + "." + signature)
' "$token") || return 1
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$dir/certs/ca.crt" -H "Authorization: Bearer $forged" \
        -H "Accept: $OCI_MANIFEST" "https://$addr/v2/gdn-reg/src/manifests/authfile")
    expect_equal "a forged token: GET manifest" 401 "$code" || return 1
    grep -q 'unable to verify token signature' "$dir/registry.log" || { echo "the registry's log has no signature failure"; return 1; }
}
check "token: the registry verifies the issuer's signature (a forged token gets 401)" tampered_token_refused

# ------------------------------------------------------- no secret printed

no_password_printed() {
    local mode needles=() found
    for mode in basic token; do
        needles+=(-e "$(reg_password "$mode")" -e "$(printf '%s' "$(reg_creds "$mode")" | base64 -w0)")
        needles+=(-e "wrong-pw-$mode")
    done
    needles+=(-e wrong-from-file)
    found=$(cd "$WORK/push" && grep -lF "${needles[@]}" -- *.out *.err)
    [ -z "$found" ] || { echo "a password is in: $found"; return 1; }
    echo "# $(cd "$WORK/push" && ls -- *.out *.err | wc -l) outputs of pushes searched"
}
check "no password (nor its base64) in anything a push printed" no_password_printed

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
