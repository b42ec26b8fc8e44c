#!/bin/sh
# Runs the Guile tests (SRFI-64) of guix-docker-native with guile-3.0,
# through ./pre-inst-env, and prints "N passed, N failed" last.
#   tests/guile/run.sh              all test files
#   tests/guile/run.sh images       only tests/guile/images.scm
# Docker tests need DOCKER_HOST (tests/run-all.sh starts dockerd); under
# CI=true they fail without it, elsewhere they are skipped.
# Needs: guile-3.0, tar, gzip, zstd, sqlite3, util-linux's script(1).

set -u
top=$(CDPATH= cd -- "$(dirname -- "$0")/../.." && pwd)
cd "$top" || exit 1
GUILE=${GUILE:-guile}

if [ -z "${GDN_SKIP_BUILD:-}" ]; then
    cargo build --release --quiet || { echo "cargo build failed"; echo "0 passed, 1 failed"; exit 1; }
fi

# Compile the modules first: a warning (unbound variable, wrong arity,
# format string) fails the run, and the tests then use the compiled code.
compiled=$(mktemp -d /tmp/gdn-guile-go-XXXXXX)
trap 'rm -rf "$compiled"' EXIT
if ! GUILE_LOAD_PATH="$top/guile" "$GUILE" --no-auto-compile -c '
(use-modules (system base compile) (ice-9 match))
(define output-directory (cadr (command-line)))
(define warnings 0)
(for-each
 (lambda (file)
   (let* ((port (open-output-string))
          (go (string-append output-directory "/"
                             (string-drop-right file 4) ".go")))
     (parameterize ((current-warning-port port))
       (compile-file (string-append "guile/" file) #:output-file go
                     #:opts (quote (#:warnings (unbound-variable arity-mismatch
                                                 format shadowed-toplevel
                                                 macro-use-before-definition)))))
     (let ((text (get-output-string port)))
       (unless (string-null? text)
         (set! warnings (+ warnings 1))
         (display text)))))
 (cddr (command-line)))
(exit (zero? warnings))' "$compiled" guix/docker-native/config.scm guix/docker-native/bindings.scm guix/docker-native.scm guix/scripts/archive-docker.scm
then
    echo "FAIL: the Guile modules compile without warnings"
    echo "0 passed, 1 failed"
    exit 1
fi

GDN_TOP_DIRECTORY=$top
GUILE_LOAD_COMPILED_PATH="$compiled${GUILE_LOAD_COMPILED_PATH:+:$GUILE_LOAD_COMPILED_PATH}"
GUILE_AUTO_COMPILE=0
export GDN_TOP_DIRECTORY GUILE_LOAD_COMPILED_PATH GUILE_AUTO_COMPILE

if [ $# -gt 0 ]; then
    files=$(for name in "$@"; do echo "tests/guile/$name.scm"; done)
else
    files=$(ls tests/guile/*.scm | grep -v '/test-helpers\.scm$')
fi

passed=0; failed=0; skipped=0
for file in $files; do
    echo "== $file"
    log="$compiled/$(basename "$file").log"
    ./pre-inst-env "$GUILE" -L "$top/tests/guile" "$file" >"$log" 2>&1
    status=$?
    cat "$log"
    counts=$(grep '^%%gdn-counts ' "$log" | tail -n 1)
    if [ -n "$counts" ]; then
        set -- $counts
        passed=$((passed + $2)); failed=$((failed + $3)); skipped=$((skipped + $4))
        if [ "$status" -ne 0 ] && [ "$3" -eq 0 ]; then
            echo "FAIL: $file exited with status $status"
            failed=$((failed + 1))
        fi
    else
        echo "FAIL: $file stopped before its summary (status $status)"
        failed=$((failed + 1))
    fi
done

echo
echo "Guile tests: $passed passed, $failed failed, $skipped skipped"
if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
