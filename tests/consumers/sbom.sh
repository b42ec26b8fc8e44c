#!/usr/bin/env bash
# SBOMs (--sbom spdx|cyclonedx) checked with the formats' own validators
# and against the store: the SPDX project's pyspdxtools and
# cyclonedx-python-lib's JSON validator (from PyPI, in the venv
# tests/run-all.sh makes, $GDN_SBOM_TOOLS, default /opt/gdn-sbom-tools)
# accept every document; on the sample store (and a small benchmark store)
# the SBOM lists exactly the items umoci unpacks into the image's store, each
# with the NAR hash its database row holds (Guix's base16 and Nix's
# nix-base32 forms alike) and a DEPENDS_ON per row of Refs; in oci: and
# oci-archive: destinations the artifacts are found from the image (index
# entry and subject) and validated again; a malformed hash column is refused
# naming the item, leaving nothing; builds are reproducible.
#
#   bash tests/consumers/sbom.sh        (as root, after cargo build --release)
#
# Each check prints `ok - ...` or `FAIL - ...` (then `#` lines saying why);
# the last line is "N passed, N failed"; the status is non-zero on a failure.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/checks.sh
source "$ROOT/tests/lib/checks.sh"

BIN=$ROOT/target/release/guix-docker-native
SAMPLE_STORE=$ROOT/target/release/gdn-sample-store
SBOM_TOOLS=${GDN_SBOM_TOOLS:-/opt/gdn-sbom-tools}

WORK=
cleanup() { [ -z "${WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

for program in "$BIN" "$SAMPLE_STORE"; do
    [ -x "$program" ] || die "$program is missing: run cargo build --release first"
done
for tool in umoci skopeo sqlite3 jq nix-hash tar; do
    command -v "$tool" >/dev/null || die "$tool is not installed (tests/run-all.sh installs it)"
done
PYTHON=$SBOM_TOOLS/bin/python
PYSPDXTOOLS=$SBOM_TOOLS/bin/pyspdxtools
"$PYTHON" -c 'import spdx_tools, cyclonedx.validation.json' 2>/dev/null && [ -x "$PYSPDXTOOLS" ] ||
    die "the SBOM validators are not in $SBOM_TOOLS (tests/run-all.sh installs them from PyPI)"

WORK=/tmp/gdn-sbom-$$
rm -rf "$WORK" && mkdir "$WORK" || die "cannot make $WORK"
make_sample_store "$WORK/s"
gdn() { "$BIN" -q --store-dir "$STORE" "$@"; }

# ---------------------------------------------------------------- helpers

validate_spdx() {
    "$PYSPDXTOOLS" -i "$1" || { echo "pyspdxtools refuses $1"; return 1; }
}

validate_cyclonedx() {
    "$PYTHON" - "$1" <<'EOF'
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())
if errors is not None:
    print(f"{sys.argv[1]}: {errors!r}")
    sys.exit(1)
EOF
}

# db_refs DB PATH: the items PATH references according to DB, without
# itself, sorted.
db_refs() {
    sqlite3 -readonly "$1" "SELECT b.path FROM Refs r JOIN ValidPaths a ON a.id = r.referrer
        JOIN ValidPaths b ON b.id = r.reference WHERE a.path = '$2' AND b.path != a.path ORDER BY b.path;"
}

# spdx_items FILE: the store paths of the SPDX document's store items, sorted.
spdx_items() { jq -r '.packages[] | select(.SPDXID | startswith("SPDXRef-Item-")) | .packageFileName' "$1" | LC_ALL=C sort; }
cdx_items() { jq -r '.components[] | select(.type == "library") | .["bom-ref"]' "$1" | LC_ALL=C sort; }

# check_against_database SPDX CDX DB CLOSURE: each document lists exactly
# CLOSURE (paths, one a line), each item with DB's hash and Refs.
check_against_database() {
    local spdx=$1 cdx=$2 db=$3 closure=$4 path expected got id
    expect_equal "SPDX items" "$closure" "$(spdx_items "$spdx")" || return 1
    expect_equal "CycloneDX items" "$closure" "$(cdx_items "$cdx")" || return 1
    # The hashes as the database writes them, converted to base16 here.
    local hashes
    hashes=$(sqlite3 -readonly -separator ' ' "$db" "SELECT path, hash FROM ValidPaths ORDER BY path;")
    while IFS= read -r path; do
        local column
        column=$(printf '%s\n' "$hashes" | awk -v p="$path" '$1 == p { print $2 }')
        column=${column#sha256:}
        if [ "${#column}" = 52 ]; then
            expected=$(nix-hash --type sha256 --to-base16 "$column")
        else
            expected=$column
        fi
        got=$(jq -r --arg p "$path" '.packages[] | select(.packageFileName == $p) | .checksums[0].checksumValue' "$spdx")
        expect_equal "SPDX checksum of $path" "$expected" "$got" || return 1
        got=$(jq -r --arg p "$path" '.components[] | select(.["bom-ref"] == $p) | .hashes[0].content' "$cdx")
        expect_equal "CycloneDX hash of $path" "$expected" "$got" || return 1
        expected=$(db_refs "$db" "$path")
        id=$(jq -r --arg p "$path" '.packages[] | select(.packageFileName == $p) | .SPDXID' "$spdx")
        got=$(jq -r --arg id "$id" '
            (.packages | map({key: .SPDXID, value: .packageFileName}) | from_entries) as $paths
            | .relationships[] | select(.spdxElementId == $id and .relationshipType == "DEPENDS_ON")
            | $paths[.relatedSpdxElement]' "$spdx" | LC_ALL=C sort)
        expect_equal "SPDX DEPENDS_ON of $path" "$expected" "$got" || return 1
        got=$(jq -r --arg p "$path" '.dependencies[] | select(.ref == $p) | .dependsOn[]' "$cdx" | LC_ALL=C sort)
        expect_equal "CycloneDX dependsOn of $path" "$expected" "$got" || return 1
    done <<<"$closure"
    echo "# $(printf '%s\n' "$closure" | wc -l) items, their hashes and references as $db has them"
}

# unpacked_store LAYOUT REF STORE: the store items umoci unpacks from the
# image, as full paths, sorted.
unpacked_store() {
    local bundle=$WORK/bundle-$RANDOM
    umoci unpack --image "$1:$2" "$bundle" >/dev/null || return 1
    find "$bundle/rootfs$3" -mindepth 1 -maxdepth 1 -printf "$3/%f\n" | LC_ALL=C sort
    rm -rf "$bundle"
}

# artifact LAYOUT REF TYPE: the blob of the SBOM of type TYPE of the image REF
# in LAYOUT, found from the image: the index entry of REF, then the entry
# whose artifactType is TYPE and whose manifest's subject is that image.
artifact() {
    local layout=$1 ref=$2 type=$3 image candidates d manifest
    image=$(jq -r --arg r "$ref" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .digest' "$layout/index.json")
    [ -n "$image" ] || { echo "no image $ref in $layout/index.json" >&2; return 1; }
    candidates=$(jq -r --arg t "$type" '.manifests[] | select(.artifactType == $t) | .digest' "$layout/index.json")
    for d in $candidates; do
        manifest=$layout/blobs/sha256/${d#sha256:}
        [ "$(jq -r .subject.digest "$manifest")" = "$image" ] || continue
        [ "$(jq -r .artifactType "$manifest")" = "$type" ] || { echo "manifest $d: artifactType" >&2; return 1; }
        [ "$(jq -r .config.mediaType "$manifest")" = application/vnd.oci.empty.v1+json ] || { echo "manifest $d: config" >&2; return 1; }
        [ "$(cat "$layout/blobs/sha256/$(jq -r '.config.digest | ltrimstr("sha256:")' "$manifest")")" = "{}" ] || { echo "empty config blob" >&2; return 1; }
        [ "$(jq -r .layers[0].mediaType "$manifest")" = "$type" ] || { echo "manifest $d: layer type" >&2; return 1; }
        local size subject_size
        subject_size=$(stat -c %s "$layout/blobs/sha256/${image#sha256:}")
        [ "$(jq -r .subject.size "$manifest")" = "$subject_size" ] || { echo "manifest $d: subject size" >&2; return 1; }
        local blob=$layout/blobs/sha256/$(jq -r '.layers[0].digest | ltrimstr("sha256:")' "$manifest")
        size=$(stat -c %s "$blob")
        [ "$(jq -r .layers[0].size "$manifest")" = "$size" ] || { echo "manifest $d: layer size" >&2; return 1; }
        [ "sha256:$(sha256sum <"$blob" | cut -c1-64)" = "$(jq -r .layers[0].digest "$manifest")" ] || { echo "blob digest" >&2; return 1; }
        cat "$blob"
        return 0
    done
    echo "no $type artifact whose subject is $image in $layout" >&2
    return 1
}

# ---------------------------------------------------------------- checks

printf 'hello\n' >"$WORK/app.conf"
IMAGE_ARGS=(-S /bin=bin --file /etc/app.conf="$WORK/app.conf" --entry-point bin/hello)

test_docker_archive_sboms_validate() {
    gdn --database "$DB" --sbom spdx --sbom cyclonedx "${IMAGE_ARGS[@]}" -o "$WORK/img.tar" "$MAIN" || return 1
    [ -f "$WORK/img.tar" ] && [ -f "$WORK/img.tar.spdx.json" ] && [ -f "$WORK/img.tar.cdx.json" ] ||
        { ls -l "$WORK"; return 1; }
    validate_spdx "$WORK/img.tar.spdx.json" && validate_cyclonedx "$WORK/img.tar.cdx.json"
    # The validators do refuse a broken document.
    jq '.packages[1].SPDXID = "no spaces"' "$WORK/img.tar.spdx.json" >"$WORK/broken.spdx.json"
    ! validate_spdx "$WORK/broken.spdx.json" >/dev/null 2>&1 || { echo "pyspdxtools accepts a bad SPDXID"; return 1; }
    jq '.components[0].type = "package"' "$WORK/img.tar.cdx.json" >"$WORK/broken.cdx.json"
    ! validate_cyclonedx "$WORK/broken.cdx.json" >/dev/null 2>&1 || { echo "the CycloneDX validator accepts a bad type"; return 1; }
}
check "docker-archive: SPDX and CycloneDX beside the image, both valid" test_docker_archive_sboms_validate

test_documents_say_the_store() {
    check_against_database "$WORK/img.tar.spdx.json" "$WORK/img.tar.cdx.json" "$DB" "$CLOSURE" || return 1
    local spdx=$WORK/img.tar.spdx.json cdx=$WORK/img.tar.cdx.json
    # The image is the subject, its digest the docker-archive's image ID.
    local id
    id=$(tar -xOf "$WORK/img.tar" manifest.json | jq -r '.[0].Config | rtrimstr(".json")')
    expect_equal "DESCRIBES" "SPDXRef-Image" "$(jq -r '.relationships[] | select(.relationshipType == "DESCRIBES") | .relatedSpdxElement' "$spdx")" || return 1
    expect_equal "image checksum" "$id" "$(jq -r '.packages[] | select(.SPDXID == "SPDXRef-Image") | .checksums[0].checksumValue' "$spdx")" || return 1
    expect_equal "metadata.component" "$id" "$(jq -r '.metadata.component.hashes[0].content' "$cdx")" || return 1
    # Names, versions and purls as Guix splits the names.
    local hello
    hello=$(printf '%s\n' "$CLOSURE" | grep -- '-hello-2.12.1$')
    expect_equal "hello" "hello 2.12.1 pkg:guix/hello@2.12.1" \
        "$(jq -r --arg p "$hello" '.packages[] | select(.packageFileName == $p) | "\(.name) \(.versionInfo) \(.externalRefs[0].referenceLocator)"' "$spdx")" || return 1
    expect_equal "profile" "profile null pkg:guix/profile" \
        "$(jq -r --arg p "$MAIN" '.components[] | select(.["bom-ref"] == $p) | "\(.name) \(.version) \(.purl)"' "$cdx")" || return 1
    # The extras: /bin, /etc/app.conf (with its hash), /tmp.
    expect_equal "extras" "$(printf '/bin\n/etc/app.conf\n/tmp')" \
        "$(jq -r '.packages[] | select(.SPDXID | startswith("SPDXRef-Extra-")) | .name' "$spdx")" || return 1
    expect_equal "extra file hash" "$(sha256sum <"$WORK/app.conf" | cut -c1-64)" \
        "$(jq -r '.components[] | select(.name == "/etc/app.conf") | .hashes[0].content' "$cdx")" || return 1
    expect_equal "licences" "NOASSERTION" "$(jq -r '[.packages[].licenseDeclared] | unique | join(",")' "$spdx")" || return 1
    expect_equal "created" "1970-01-01T00:00:01Z" "$(jq -r .creationInfo.created "$spdx")" || return 1
}
check "the SBOM lists the closure with the database's NAR hashes and Refs, the extras, the image" test_documents_say_the_store

test_oci_layout_artifacts() {
    local layout=$WORK/layout
    gdn --database "$DB" --sbom spdx --sbom cyclonedx "${IMAGE_ARGS[@]}" -o "oci:$layout:sbom" "$MAIN" || return 1
    # Exactly the store umoci unpacks.
    local unpacked
    unpacked=$(unpacked_store "$layout" sbom "$STORE") || return 1
    expect_equal "umoci's store" "$CLOSURE" "$unpacked" || return 1
    artifact "$layout" sbom application/spdx+json >"$WORK/layout.spdx.json" || return 1
    artifact "$layout" sbom application/vnd.cyclonedx+json >"$WORK/layout.cdx.json" || return 1
    validate_spdx "$WORK/layout.spdx.json" && validate_cyclonedx "$WORK/layout.cdx.json" || return 1
    expect_equal "SPDX items against umoci" "$unpacked" "$(spdx_items "$WORK/layout.spdx.json")" || return 1
    check_against_database "$WORK/layout.spdx.json" "$WORK/layout.cdx.json" "$DB" "$CLOSURE" || return 1
    # The subject's digest is the image manifest's.
    local image
    image=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "sbom") | .digest' "$layout/index.json")
    expect_equal "SPDX image checksum" "${image#sha256:}" \
        "$(jq -r '.packages[] | select(.SPDXID == "SPDXRef-Image") | .checksums[0].checksumValue' "$WORK/layout.spdx.json")" || return 1
    # skopeo still finds the image by its ref.
    skopeo inspect --raw "oci:$layout:sbom" | jq -e '.config.mediaType == "application/vnd.oci.image.config.v1+json"' >/dev/null ||
        { echo "skopeo cannot read oci:$layout:sbom"; return 1; }
}
check "oci: the SBOMs are artifacts whose subject is the image, valid and exact against umoci's unpack" test_oci_layout_artifacts

test_rebuild_replaces_artifacts() {
    local layout=$WORK/layout before after
    before=$(jq '[.manifests[] | select(.artifactType)] | length' "$layout/index.json")
    gdn --database "$DB" --sbom spdx --creation-time @1000 "${IMAGE_ARGS[@]}" -o "oci:$layout:sbom" "$MAIN" || return 1
    after=$(jq -c '[.manifests[] | select(.artifactType) | .artifactType]' "$layout/index.json")
    expect_equal "artifacts before" 2 "$before" || return 1
    expect_equal "artifacts after the same ref again, spdx only" '["application/spdx+json"]' "$after" || return 1
    artifact "$layout" sbom application/spdx+json >"$WORK/again.spdx.json" || return 1
    expect_equal "created" "1970-01-01T00:16:40Z" "$(jq -r .creationInfo.created "$WORK/again.spdx.json")" || return 1
    # Another ref beside it keeps both images' SBOMs.
    gdn --database "$DB" --sbom cyclonedx -o "oci:$layout:other" "$MAIN" || return 1
    artifact "$layout" sbom application/spdx+json >/dev/null && artifact "$layout" other application/vnd.cyclonedx+json >/dev/null
}
check "oci: the same ref again replaces its image's SBOMs, another ref keeps them" test_rebuild_replaces_artifacts

test_oci_archive_artifacts() {
    local archive=$WORK/img-oci.tar dir=$WORK/img-oci
    gdn --database "$DB" --sbom spdx --sbom cyclonedx --sbom-output "$WORK/beside" "${IMAGE_ARGS[@]}" \
        -o "oci-archive:$archive:sbom" "$MAIN" || return 1
    mkdir "$dir" && tar -xf "$archive" -C "$dir" || return 1
    artifact "$dir" sbom application/spdx+json >"$WORK/archive.spdx.json" || return 1
    artifact "$dir" sbom application/vnd.cyclonedx+json >"$WORK/archive.cdx.json" || return 1
    validate_spdx "$WORK/archive.spdx.json" && validate_cyclonedx "$WORK/archive.cdx.json" || return 1
    check_against_database "$WORK/archive.spdx.json" "$WORK/archive.cdx.json" "$DB" "$CLOSURE" || return 1
    # --sbom-output with two formats: FILE.spdx.json and FILE.cdx.json, the artifacts' bytes.
    cmp "$WORK/beside.spdx.json" "$WORK/archive.spdx.json" && cmp "$WORK/beside.cdx.json" "$WORK/archive.cdx.json" || return 1
    skopeo inspect --raw "oci-archive:$archive:sbom" >/dev/null || { echo "skopeo cannot read oci-archive:$archive:sbom"; return 1; }
}
check "oci-archive: the SBOM artifacts in the archive's index, valid, equal to the --sbom-output files" test_oci_archive_artifacts

test_nix_base32_database() {
    # The same database with the hashes as Nix writes them (nix-base32).
    local nixdb=$WORK/nix.sqlite path hash
    cp "$DB" "$nixdb" || return 1
    while IFS='|' read -r path hash; do
        sqlite3 "$nixdb" "UPDATE ValidPaths SET hash = 'sha256:$(nix-hash --type sha256 --to-base32 "${hash#sha256:}")' WHERE path = '$path';"
    done < <(sqlite3 -readonly "$DB" "SELECT path, hash FROM ValidPaths;")
    sqlite3 -readonly "$nixdb" "SELECT hash FROM ValidPaths LIMIT 1;" | grep -Eq '^sha256:[0-9a-z]{52}$' || return 1
    gdn --database "$nixdb" --sbom spdx --sbom cyclonedx --sbom-output "$WORK/nix" "${IMAGE_ARGS[@]}" -o "$WORK/nix.tar" "$MAIN" || return 1
    validate_spdx "$WORK/nix.spdx.json" && validate_cyclonedx "$WORK/nix.cdx.json" || return 1
    check_against_database "$WORK/nix.spdx.json" "$WORK/nix.cdx.json" "$nixdb" "$CLOSURE" || return 1
    # The same checksums as from Guix's base16.
    expect_equal "checksums" "$(jq -c '[.packages[].checksums]' "$WORK/img.tar.spdx.json")" "$(jq -c '[.packages[].checksums]' "$WORK/nix.spdx.json")"
}
check "a Nix database (nix-base32 hashes) gives the same checksums" test_nix_base32_database

test_without_database() {
    printf '%s\n' "$CLOSURE" >"$WORK/closure.txt"
    gdn --closure-file "$WORK/closure.txt" --sbom spdx --sbom cyclonedx -o "$WORK/nodb.tar" "$MAIN" || return 1
    validate_spdx "$WORK/nodb.tar.spdx.json" && validate_cyclonedx "$WORK/nodb.tar.cdx.json" || return 1
    expect_equal "items" "$CLOSURE" "$(spdx_items "$WORK/nodb.tar.spdx.json")" || return 1
    expect_equal "SPDX checksums" 0 "$(jq '[.packages[] | select(.SPDXID | startswith("SPDXRef-Item-")) | select(.checksums)] | length' "$WORK/nodb.tar.spdx.json")" || return 1
    expect_equal "CycloneDX nar-hash" NOASSERTION \
        "$(jq -r '[.components[] | select(.type == "library") | .properties[] | select(.name == "guix:nar-hash") | .value] | unique | join(",")' "$WORK/nodb.tar.cdx.json")" || return 1
    expect_equal "unknown references" "$CLOSURE_SIZE" \
        "$(jq '[.relationships[] | select(.relationshipType == "DEPENDS_ON" and .relatedSpdxElement == "NOASSERTION")] | length' "$WORK/nodb.tar.spdx.json")"
}
check "no database: the closure with NOASSERTION hashes and references, still valid" test_without_database

test_licences() {
    local hello
    hello=$(printf '%s\n' "$CLOSURE" | grep -- '-hello-2.12.1$')
    gdn --database "$DB" --sbom spdx --sbom cyclonedx --sbom-license "$hello=GPL-3.0-or-later" \
        --sbom-license "$MAIN=MIT OR LicenseRef-guix-profile" -o "$WORK/lic.tar" "$MAIN" || return 1
    validate_spdx "$WORK/lic.tar.spdx.json" && validate_cyclonedx "$WORK/lic.tar.cdx.json" || return 1
    expect_equal "SPDX" GPL-3.0-or-later "$(jq -r --arg p "$hello" '.packages[] | select(.packageFileName == $p) | .licenseDeclared' "$WORK/lic.tar.spdx.json")" || return 1
    expect_equal "CycloneDX" "MIT OR LicenseRef-guix-profile" \
        "$(jq -r --arg p "$MAIN" '.components[] | select(.["bom-ref"] == $p) | .licenses[0].expression' "$WORK/lic.tar.cdx.json")" || return 1
    expect_refusal 2 "'GPL 3+'" gdn --database "$DB" --sbom spdx --sbom-license "$hello=GPL 3+" -o "$WORK/lic2.tar" "$MAIN" || return 1
    [ ! -e "$WORK/lic2.tar" ] || { echo "an image was written"; return 1; }
}
check "licences given are declared (and validate), a Guix name is refused" test_licences

test_malformed_hash() {
    local bad=$WORK/bad.sqlite hello
    hello=$(printf '%s\n' "$CLOSURE" | grep -- '-hello-2.12.1$')
    cp "$DB" "$bad" && sqlite3 "$bad" "UPDATE ValidPaths SET hash = 'sha256:0123' WHERE path = '$hello';" || return 1
    expect_refusal 8 "$hello" gdn --database "$bad" --sbom spdx -o "$WORK/bad.tar" "$MAIN" || return 1
    grep -q "malformed" "$WORK/refusal.err" || return 1
    for f in bad.tar bad.tar.spdx.json; do
        [ ! -e "$WORK/$f" ] || { echo "$f was written"; return 1; }
    done
    local before
    before=$(cd "$WORK/layout" && find . -printf '%p %s\n' | LC_ALL=C sort; cat index.json)
    expect_refusal 8 "$hello" gdn --database "$bad" --sbom cyclonedx -o "oci:$WORK/layout:bad" "$MAIN" || return 1
    expect_equal "the layout" "$before" "$(cd "$WORK/layout" && find . -printf '%p %s\n' | LC_ALL=C sort; cat index.json)" || return 1
    # Not a text hash at all.
    sqlite3 "$bad" "UPDATE ValidPaths SET hash = x'00ff' WHERE path = '$hello';" || return 1
    expect_refusal 8 "$hello" gdn --database "$bad" --sbom spdx -o "$WORK/bad.tar" "$MAIN" || return 1
    grep -q "does not hold text" "$WORK/refusal.err" || return 1
    [ ! -e "$WORK/bad.tar" ] || { echo "bad.tar was written"; return 1; }
}
check "a malformed hash column: an error naming the item, no image, no SBOM" test_malformed_hash

test_bad_sbom_requests() {
    expect_refusal 2 "'swid'" gdn --database "$DB" --sbom swid -o "$WORK/x.tar" "$MAIN" || return 1
    expect_refusal 2 "--sbom-output" gdn --database "$DB" --sbom spdx -o - "$MAIN" || return 1
    expect_refusal 2 "no SBOM format" gdn --database "$DB" --sbom-output "$WORK/x.json" -o "$WORK/x.tar" "$MAIN" || return 1
    expect_refusal 7 "store database" gdn --database "$DB" --sbom spdx --sbom-output "$DB" -o "$WORK/x.tar" "$MAIN" || return 1
    expect_refusal 7 "image output" gdn --database "$DB" --sbom spdx --sbom-output "$WORK/x.tar" -o "$WORK/x.tar" "$MAIN" || return 1
    [ ! -e "$WORK/x.tar" ] && [ ! -e "$WORK/x.json" ] || { echo "something was written"; return 1; }
}
check "bad SBOM requests are refused naming the option, leaving nothing" test_bad_sbom_requests

test_reproducible() {
    local a=$WORK/repro-a b=$WORK/repro-b
    mkdir "$a" "$b" || return 1
    gdn --database "$DB" --sbom spdx --sbom cyclonedx "${IMAGE_ARGS[@]}" -o "oci:$a/l:x" "$MAIN" || return 1
    (umask 077 && gdn --database "$DB" --sbom spdx --sbom cyclonedx --threads 1 "${IMAGE_ARGS[@]}" -o "oci:$b/l:x" "$MAIN") || return 1
    diff -r "$a" "$b" || return 1
    gdn --database "$DB" --sbom spdx --sbom cyclonedx "${IMAGE_ARGS[@]}" -o "$a/img.tar" "$MAIN" || return 1
    SOURCE_DATE_EPOCH=1 gdn --database "$DB" --sbom spdx --sbom cyclonedx --threads 1 "${IMAGE_ARGS[@]}" -o "$b/img.tar" "$MAIN" || return 1
    cmp "$a/img.tar.spdx.json" "$b/img.tar.spdx.json" && cmp "$a/img.tar.cdx.json" "$b/img.tar.cdx.json" || return 1
    # Another creation time is another image: another document.
    gdn --database "$DB" --sbom spdx --creation-time @5 "${IMAGE_ARGS[@]}" -o "$b/later.tar" "$MAIN" || return 1
    ! cmp -s "$a/img.tar.spdx.json" "$b/later.tar.spdx.json" || { echo "the same SPDX for another image"; return 1; }
    expect_equal "namespaces differ" 2 \
        "$(jq -r .documentNamespace "$a/img.tar.spdx.json" "$b/later.tar.spdx.json" | sort -u | wc -l)"
}
check "the same inputs give the same SBOM bytes (file and layout)" test_reproducible

test_bench_store() {
    local bench=$WORK/bench
    bash "$ROOT/bench/make-store.sh" 20M "$bench" >"$WORK/bench.log" 2>&1 || { tail "$WORK/bench.log"; return 1; }
    local profile closure
    profile=$(cat "$bench/profile")
    closure=$(LC_ALL=C sort "$bench/closure")
    "$BIN" -q --store-dir "$bench/gnu/store" --database "$bench/var/guix/db/db.sqlite" --sbom spdx --sbom cyclonedx \
        -o "oci:$bench/layout:bench" "$profile" || return 1
    expect_equal "umoci's store" "$closure" "$(unpacked_store "$bench/layout" bench "$bench/gnu/store")" || return 1
    artifact "$bench/layout" bench application/spdx+json >"$WORK/bench.spdx.json" || return 1
    artifact "$bench/layout" bench application/vnd.cyclonedx+json >"$WORK/bench.cdx.json" || return 1
    validate_spdx "$WORK/bench.spdx.json" && validate_cyclonedx "$WORK/bench.cdx.json" || return 1
    check_against_database "$WORK/bench.spdx.json" "$WORK/bench.cdx.json" "$bench/var/guix/db/db.sqlite" "$closure"
}
check "a benchmark store (bench/make-store.sh 20M): exact closure, hashes and references" test_bench_store

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
