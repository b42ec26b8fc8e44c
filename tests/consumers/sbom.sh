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
# entry and subject) and validated again; pushed to a registry (Debian's
# docker-registry 2.8, no referrers API) the artifacts are found by the
# referrers tag sha256-<hex>, fetched with curl and validated again, later
# pushes adding to the tag's index; a multi-platform image has one SBOM per
# platform, about that platform's manifest; a malformed hash column is
# refused naming the item, leaving nothing; builds are reproducible.
#
#   bash tests/consumers/sbom.sh        (as root, after cargo build --release)
#
# Each check prints `ok - ...` or `FAIL - ...` (then `#` lines saying why);
# the last line is "N passed, N failed"; the status is non-zero on a failure.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/checks.sh
source "$ROOT/tests/lib/checks.sh"
# shellcheck source=../lib/registry.sh
source "$ROOT/tests/lib/registry.sh"

BIN=$ROOT/target/release/guix-docker-native
SAMPLE_STORE=$ROOT/target/release/gdn-sample-store
SBOM_TOOLS=${GDN_SBOM_TOOLS:-/opt/gdn-sbom-tools}

WORK=
cleanup() {
    gdn_registry_stop_all
    [ -z "${WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- setup

for program in "$BIN" "$SAMPLE_STORE"; do
    [ -x "$program" ] || die "$program is missing: run cargo build --release first"
done
for tool in umoci skopeo sqlite3 jq nix-hash tar docker-registry curl; do
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
gdn_registry_start plain "$WORK/reg" || die "could not start the registry"
REG=$(gdn_registry_get "$WORK/reg" addr)

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

# closure_of PATH: PATH's closure by the store database, sorted.
closure_of() {
    sqlite3 -readonly "$DB" "
        WITH RECURSIVE c(id) AS (
            SELECT id FROM ValidPaths WHERE path = '$1'
            UNION SELECT Refs.reference FROM Refs JOIN c ON Refs.referrer = c.id)
        SELECT path FROM ValidPaths WHERE id IN c ORDER BY path;"
}

# reg_fetch PATH FILE [ACCEPT]: GET http://$REG/v2/PATH into FILE.
reg_fetch() {
    curl -sf ${3:+-H "Accept: $3"} -o "$2" "http://$REG/v2/$1" || { echo "GET /v2/$1 failed" >&2; return 1; }
}

# manifest_digest REPO:TAG: the digest of the manifest (or index) TAG names.
manifest_digest() {
    local file=$WORK/m-$RANDOM
    reg_fetch "${1%%:*}/manifests/${1#*:}" "$file" \
        "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.v2+json" || return 1
    echo "sha256:$(sha256sum <"$file" | cut -c1-64)"
}

# registry_artifact REPO SUBJECT TYPE: the document of the SBOM of type
# TYPE about the manifest SUBJECT in REPO, found as a client without the
# referrers API finds it: the index under the tag sha256-<hex of SUBJECT>
# (skopeo inspect --raw), its entry of artifactType TYPE, that manifest
# (whose subject must be SUBJECT), its layer's blob (fetched with curl).
registry_artifact() {
    local repo=$1 subject=$2 type=$3 index d file blob
    index=$(skopeo inspect --raw --tls-verify=false "docker://$REG/$repo:sha256-${subject#sha256:}") ||
        { echo "no referrers tag sha256-${subject#sha256:} in $repo" >&2; return 1; }
    [ "$(jq -r .mediaType <<<"$index")" = application/vnd.oci.image.index.v1+json ] || { echo "the tag is not an index: $index" >&2; return 1; }
    for d in $(jq -r --arg t "$type" '.manifests[] | select(.artifactType == $t) | .digest' <<<"$index"); do
        file=$WORK/artifact-$RANDOM.json
        reg_fetch "$repo/manifests/$d" "$file" application/vnd.oci.image.manifest.v1+json || return 1
        [ "sha256:$(sha256sum <"$file" | cut -c1-64)" = "$d" ] || { echo "manifest $d: digest" >&2; return 1; }
        [ "$(jq -r .subject.digest "$file")" = "$subject" ] || { echo "manifest $d: subject $(jq -c .subject "$file")" >&2; return 1; }
        [ "$(jq -r .artifactType "$file")" = "$type" ] || { echo "manifest $d: artifactType" >&2; return 1; }
        [ "$(jq -r .config.mediaType "$file")" = application/vnd.oci.empty.v1+json ] || { echo "manifest $d: config" >&2; return 1; }
        reg_fetch "$repo/blobs/$(jq -r .config.digest "$file")" "$file.config" || return 1
        [ "$(cat "$file.config")" = "{}" ] || { echo "empty config blob" >&2; return 1; }
        [ "$(jq -r '.layers | length' "$file")" = 1 ] && [ "$(jq -r .layers[0].mediaType "$file")" = "$type" ] ||
            { echo "manifest $d: layers" >&2; return 1; }
        blob=$file.blob
        reg_fetch "$repo/blobs/$(jq -r .layers[0].digest "$file")" "$blob" || return 1
        [ "sha256:$(sha256sum <"$blob" | cut -c1-64)" = "$(jq -r .layers[0].digest "$file")" ] || { echo "blob digest" >&2; return 1; }
        cat "$blob"
        return 0
    done
    echo "no $type entry in the index under sha256-${subject#sha256:}: $index" >&2
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

test_registry_push() {
    local repo=gdn-sbom/hello subject code types
    gdn --database "$DB" --sbom spdx --sbom cyclonedx --sbom-output "$WORK/pushed" "${IMAGE_ARGS[@]}" \
        --tls-verify=false -o "docker://$REG/$repo:1" "$MAIN" || return 1
    subject=$(manifest_digest "$repo:1") || return 1
    expect_equal "skopeo's digest" "$subject" "$(skopeo inspect --tls-verify=false "docker://$REG/$repo:1" | jq -r .Digest)" || return 1
    # This registry has no referrers API: the tag schema is what is used.
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$REG/v2/$repo/referrers/$subject")
    expect_equal "GET referrers" 404 "$code" || return 1
    registry_artifact "$repo" "$subject" application/spdx+json >"$WORK/reg.spdx.json" || return 1
    registry_artifact "$repo" "$subject" application/vnd.cyclonedx+json >"$WORK/reg.cdx.json" || return 1
    validate_spdx "$WORK/reg.spdx.json" && validate_cyclonedx "$WORK/reg.cdx.json" || return 1
    check_against_database "$WORK/reg.spdx.json" "$WORK/reg.cdx.json" "$DB" "$CLOSURE" || return 1
    expect_equal "SPDX image checksum" "${subject#sha256:}" \
        "$(jq -r '.packages[] | select(.SPDXID == "SPDXRef-Image") | .checksums[0].checksumValue' "$WORK/reg.spdx.json")" || return 1
    expect_equal "CycloneDX image hash" "${subject#sha256:}" "$(jq -r '.metadata.component.hashes[0].content' "$WORK/reg.cdx.json")" || return 1
    cmp "$WORK/pushed.spdx.json" "$WORK/reg.spdx.json" && cmp "$WORK/pushed.cdx.json" "$WORK/reg.cdx.json" || return 1
    # The same push again, and another tag of it: the index lists each SBOM once.
    gdn --database "$DB" --sbom spdx --sbom cyclonedx "${IMAGE_ARGS[@]}" --tls-verify=false -o "docker://$REG/$repo:2" "$MAIN" || return 1
    expect_equal "the same image" "$subject" "$(manifest_digest "$repo:2")" || return 1
    types=$(skopeo inspect --raw --tls-verify=false "docker://$REG/$repo:sha256-${subject#sha256:}" | jq -c '[.manifests[].artifactType]')
    expect_equal "the referrers index" '["application/spdx+json","application/vnd.cyclonedx+json"]' "$types"
}
check "docker://: SBOMs pushed as artifacts, found by the referrers tag, valid and exact, listed once" test_registry_push

test_registry_push_adds_to_the_index() {
    local repo=gdn-sbom/adds subject types
    gdn --database "$DB" --sbom cyclonedx "${IMAGE_ARGS[@]}" --tls-verify=false -o "docker://$REG/$repo:1" "$MAIN" || return 1
    subject=$(manifest_digest "$repo:1") || return 1
    types=$(skopeo inspect --raw --tls-verify=false "docker://$REG/$repo:sha256-${subject#sha256:}" | jq -c '[.manifests[].artifactType]')
    expect_equal "after the first push" '["application/vnd.cyclonedx+json"]' "$types" || return 1
    # A later push of the same image with another SBOM keeps the first's.
    gdn --database "$DB" --sbom spdx "${IMAGE_ARGS[@]}" --tls-verify=false -o "docker://$REG/$repo:1" "$MAIN" || return 1
    types=$(skopeo inspect --raw --tls-verify=false "docker://$REG/$repo:sha256-${subject#sha256:}" | jq -c '[.manifests[].artifactType]')
    expect_equal "after the second push" '["application/vnd.cyclonedx+json","application/spdx+json"]' "$types" || return 1
    registry_artifact "$repo" "$subject" application/spdx+json >"$WORK/adds.spdx.json" &&
        registry_artifact "$repo" "$subject" application/vnd.cyclonedx+json >"$WORK/adds.cdx.json" || return 1
    validate_spdx "$WORK/adds.spdx.json" && validate_cyclonedx "$WORK/adds.cdx.json"
}
check "docker://: a later push adds its SBOM to the referrers index, keeping the earlier one" test_registry_push_adds_to_the_index

test_registry_sbom_push_fails() {
    local repo=gdn-sbom/fails subject
    # The referrers tag of the image taken by something that is not an
    # index (the image itself): the SBOM cannot be listed, the push fails
    # naming it, and the tag asked for does not move.
    gdn --database "$DB" "${IMAGE_ARGS[@]}" --tls-verify=false -o "docker://$REG/$repo:old" "$MAIN" || return 1
    subject=$(manifest_digest "$repo:old") || return 1
    skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
        "docker://$REG/$repo:old" "docker://$REG/$repo:sha256-${subject#sha256:}" || return 1
    expect_refusal 7 "the referrers tag sha256-${subject#sha256:}" \
        gdn --database "$DB" --sbom spdx "${IMAGE_ARGS[@]}" --tls-verify=false -o "docker://$REG/$repo:new" "$MAIN" || return 1
    grep -q "SPDX SBOM" "$WORK/refusal.err" || { cat "$WORK/refusal.err"; return 1; }
    ! skopeo inspect --raw --tls-verify=false "docker://$REG/$repo:new" >/dev/null 2>&1 || { echo "the tag new was pushed"; return 1; }
}
check "docker://: a failed SBOM push is an error naming it, and moves no tag" test_registry_sbom_push_fails

test_multi_platform_sboms() {
    local hello hello_closure layout=$WORK/multi archive=$WORK/multi.tar index d system closure
    hello=$(printf '%s\n' "$CLOSURE" | grep -- '-hello-2.12.1$')
    hello_closure=$(closure_of "$hello")
    local platforms=(--platform "x86_64-linux=$MAIN" --platform "aarch64-linux=$hello")
    gdn --database "$DB" --sbom spdx --sbom cyclonedx --sbom-output "$WORK/multi-out" "${platforms[@]}" \
        --entry-point bin/hello -o "oci:$layout:m" || return 1
    # --sbom-output FILE with several platforms: FILE.SYSTEM.spdx.json, FILE.SYSTEM.cdx.json.
    expect_equal "the files" "$(printf '%s\n' multi-out.aarch64-linux.cdx.json multi-out.aarch64-linux.spdx.json \
        multi-out.x86_64-linux.cdx.json multi-out.x86_64-linux.spdx.json)" "$(cd "$WORK" && ls -1 multi-out.*)" || return 1
    index=$layout/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "m") | .digest | ltrimstr("sha256:")' "$layout/index.json")
    for system in x86_64-linux aarch64-linux; do
        case $system in
            x86_64-linux) d=$(jq -r '.manifests[] | select(.platform.architecture == "amd64") | .digest' "$index"); closure=$CLOSURE ;;
            *) d=$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' "$index"); closure=$hello_closure ;;
        esac
        # Each platform's SBOMs in the layout, about its manifest.
        local spdx cdx
        spdx=$(jq -r --arg d "$d" '.manifests[] | select(.annotations["guix-docker-native.sbom.subject"] == $d and .artifactType == "application/spdx+json") | .digest' "$layout/index.json")
        cdx=$(jq -r --arg d "$d" '.manifests[] | select(.annotations["guix-docker-native.sbom.subject"] == $d and .artifactType == "application/vnd.cyclonedx+json") | .digest' "$layout/index.json")
        [ -n "$spdx" ] && [ -n "$cdx" ] || { echo "no SBOM entries for $system ($d)"; return 1; }
        for a in $spdx $cdx; do
            expect_equal "$system subject" "$d" "$(jq -r .subject.digest "$layout/blobs/sha256/${a#sha256:}")" || return 1
        done
        cp "$layout/blobs/sha256/$(jq -r '.layers[0].digest | ltrimstr("sha256:")' "$layout/blobs/sha256/${spdx#sha256:}")" "$WORK/multi-$system.spdx.json" &&
            cp "$layout/blobs/sha256/$(jq -r '.layers[0].digest | ltrimstr("sha256:")' "$layout/blobs/sha256/${cdx#sha256:}")" "$WORK/multi-$system.cdx.json" || return 1
        validate_spdx "$WORK/multi-$system.spdx.json" && validate_cyclonedx "$WORK/multi-$system.cdx.json" || return 1
        check_against_database "$WORK/multi-$system.spdx.json" "$WORK/multi-$system.cdx.json" "$DB" "$closure" || return 1
        expect_equal "$system image checksum" "${d#sha256:}" \
            "$(jq -r '.packages[] | select(.SPDXID == "SPDXRef-Image") | .checksums[0].checksumValue' "$WORK/multi-$system.spdx.json")" || return 1
        cmp "$WORK/multi-out.$system.spdx.json" "$WORK/multi-$system.spdx.json" || return 1
    done
    # The oci-archive holds the same artifacts.
    gdn --database "$DB" --sbom spdx --sbom cyclonedx "${platforms[@]}" --entry-point bin/hello -o "oci-archive:$archive:m" || return 1
    mkdir "$WORK/multi-x" && tar -xf "$archive" -C "$WORK/multi-x" || return 1
    expect_equal "the archive's artifacts" "$(jq -c '[.manifests[] | select(.artifactType)]' "$layout/index.json")" \
        "$(jq -c '[.manifests[] | select(.artifactType)]' "$WORK/multi-x/index.json")" || return 1
    # Pushed: each platform's SBOMs under its manifest's referrers tag.
    gdn --database "$DB" --sbom spdx --sbom cyclonedx "${platforms[@]}" --entry-point bin/hello \
        --tls-verify=false -o "docker://$REG/gdn-sbom/multi:1" || return 1
    for system in x86_64-linux aarch64-linux; do
        case $system in
            x86_64-linux) d=$(jq -r '.manifests[] | select(.platform.architecture == "amd64") | .digest' "$index") ;;
            *) d=$(jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest' "$index") ;;
        esac
        case $system in x86_64-linux) closure=$CLOSURE ;; *) closure=$hello_closure ;; esac
        registry_artifact gdn-sbom/multi "$d" application/spdx+json >"$WORK/multi-reg-$system.spdx.json" || return 1
        registry_artifact gdn-sbom/multi "$d" application/vnd.cyclonedx+json >"$WORK/multi-reg-$system.cdx.json" || return 1
        validate_spdx "$WORK/multi-reg-$system.spdx.json" && validate_cyclonedx "$WORK/multi-reg-$system.cdx.json" || return 1
        check_against_database "$WORK/multi-reg-$system.spdx.json" "$WORK/multi-reg-$system.cdx.json" "$DB" "$closure" || return 1
        expect_equal "$system image checksum" "${d#sha256:}" \
            "$(jq -r '.metadata.component.hashes[0].content' "$WORK/multi-reg-$system.cdx.json")" || return 1
        # A pushed image's SBOM names it by where it was pushed.
        expect_equal "$system image name" "$REG/gdn-sbom/multi" "$(jq -r .metadata.component.name "$WORK/multi-reg-$system.cdx.json")" || return 1
    done
}
check "--platform: one SBOM per platform image, about its manifest, in the layout, the archive, the registry and the files" test_multi_platform_sboms

test_localstatedir_listed() {
    gdn --database "$DB" --localstatedir --sbom spdx --sbom cyclonedx -o "$WORK/lsd.tar" "$MAIN" || return 1
    validate_spdx "$WORK/lsd.tar.spdx.json" && validate_cyclonedx "$WORK/lsd.tar.cdx.json" || return 1
    local db_hash
    db_hash=$(tar -xOf "$WORK/lsd.tar" "$(tar -xOf "$WORK/lsd.tar" manifest.json | jq -r '.[0].Layers[0]')" |
        tar -xO var/guix/db/db.sqlite | sha256sum | cut -c1-64)
    expect_equal "SPDX database checksum" "$db_hash" \
        "$(jq -r '.packages[] | select(.name == "/var/guix/db/db.sqlite") | .checksums[0].checksumValue' "$WORK/lsd.tar.spdx.json")" || return 1
    expect_equal "CycloneDX database hash" "$db_hash" \
        "$(jq -r '.components[] | select(.name == "/var/guix/db/db.sqlite") | .hashes[0].content' "$WORK/lsd.tar.cdx.json")" || return 1
    expect_equal "the GC root" "A symbolic link to guix-profile-1-link." \
        "$(jq -r '.packages[] | select(.name == "/var/guix/profiles/per-user/root/guix-profile") | .description' "$WORK/lsd.tar.spdx.json")"
}
check "--localstatedir: the store database and its GC roots are listed among the extras, with the database's hash" test_localstatedir_listed

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
