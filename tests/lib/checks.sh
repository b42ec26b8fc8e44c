# The reporting of the shell test scripts (tests/consumers/*.sh): each
# check prints `ok - ...` or `FAIL - ...` followed by `#` lines saying why,
# and counts into PASSED and FAILED.  The script sets WORK (a scratch
# directory) before the first check.

PASSED=0
FAILED=0

# check DESCRIPTION COMMAND...: runs COMMAND (a function of the script,
# returning non-zero on failure, saying why on its output).
check() {
    local description=$1
    shift
    local log=$WORK/check.log
    if "$@" >"$log" 2>&1; then
        PASSED=$((PASSED + 1))
        echo "ok - $description"
        # A refusal's message is worth seeing in the log.
        grep '^# ' "$log" || true
    else
        FAILED=$((FAILED + 1))
        echo "FAIL - $description"
        tail -n 40 "$log" | sed 's/^/#   /'
    fi
}

# Fails the whole run when a prerequisite is missing.
die() {
    echo "FAIL - $*"
    FAILED=$((FAILED + 1))
    echo "$PASSED passed, $FAILED failed"
    exit 1
}

# expect_equal WHAT EXPECTED ACTUAL
expect_equal() {
    if [ "$2" != "$3" ]; then
        echo "$1 differs; expected:"
        printf '%s\n' "$2" | sed 's/^/    /'
        echo "got:"
        printf '%s\n' "$3" | sed 's/^/    /'
        return 1
    fi
}

# expect_refusal CODE NEEDLE COMMAND...: COMMAND (the builder) exits with
# CODE, says on standard error an error naming NEEDLE, and writes nothing on
# standard output.
expect_refusal() {
    local code=$1 needle=$2 status=0
    shift 2
    "$@" >"$WORK/refusal.out" 2>"$WORK/refusal.err" </dev/null || status=$?
    local message
    message=$(cat "$WORK/refusal.err")
    expect_equal "exit status" "$code" "$status" || { echo "stderr: $message"; return 1; }
    case $message in
        "guix-docker-native: error: "*) ;;
        *) echo "not an error message: $message"; return 1 ;;
    esac
    case $message in
        *"$needle"*) ;;
        *) echo "the message does not name '$needle': $message"; return 1 ;;
    esac
    [ ! -s "$WORK/refusal.out" ] || { echo "standard output: $(cat "$WORK/refusal.out")"; return 1; }
    echo "# $message"
}

# listing DIR NAME...: every entry under DIR/NAME..., sorted, one a line:
# `d PATH`, `l PATH -> TARGET`, `f PATH x|- SHA256` (x: executable).
listing() {
    local dir=$1 path mode
    shift
    (
        cd "$dir" || exit 1
        find "$@" -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' path; do
            if [ -L "$path" ]; then
                printf 'l %s -> %s\n' "$path" "$(readlink "$path")"
            elif [ -d "$path" ]; then
                printf 'd %s\n' "$path"
            elif [ -f "$path" ]; then
                mode=$(stat -c %a "$path")
                printf 'f %s %s %s\n' "$path" "$(((8#$mode & 8#111) ? 1 : 0))" "$(sha256sum <"$path" | cut -c1-64)"
            else
                printf '? %s\n' "$path"
            fi
        done
    )
}


# make_sample_store DIR: makes the sample store in DIR with $SAMPLE_STORE
# (gdn-sample-store) and sets SAMPLE_DIR, STORE, DB, MAIN (the main item),
# CLOSURE (its closure by the store database, one path a line, sorted),
# CLOSURE_SIZE and CLOSURE_NAMES (the closure's base names).
make_sample_store() {
    SAMPLE_DIR=$1
    STORE=$SAMPLE_DIR/gnu/store
    DB=$SAMPLE_DIR/var/guix/db/db.sqlite
    MAIN=$("$SAMPLE_STORE" "$SAMPLE_DIR") || die "gdn-sample-store $SAMPLE_DIR failed"
    [ -d "$MAIN" ] || die "gdn-sample-store printed '$MAIN', which is not a directory"
    CLOSURE=$(sqlite3 -readonly "$DB" "
        WITH RECURSIVE c(id) AS (
            SELECT id FROM ValidPaths WHERE path = '$MAIN'
            UNION SELECT Refs.reference FROM Refs JOIN c ON Refs.referrer = c.id)
        SELECT path FROM ValidPaths WHERE id IN c ORDER BY path;")
    CLOSURE_SIZE=$(printf '%s\n' "$CLOSURE" | wc -l)
    [ "$CLOSURE_SIZE" -ge 2 ] || die "the sample store's database gives a closure of $CLOSURE_SIZE item(s)"
    mapfile -t CLOSURE_NAMES < <(printf '%s\n' "$CLOSURE" | xargs -n1 basename)
}
