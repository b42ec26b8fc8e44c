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
