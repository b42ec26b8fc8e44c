;;; Helpers shared by the Guile tests of guix-docker-native.
;;;
;;; This file is part of guix-docker-native, licensed under the GNU GPL,
;;; version 3 or (at your option) any later version.

(define-module (test-helpers)
  #:use-module (guix docker-native)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-11)
  #:use-module (srfi srfi-26)
  #:use-module (srfi srfi-64)
  #:use-module (ice-9 format)
  #:use-module (ice-9 ftw)
  #:use-module (ice-9 match)
  #:use-module (ice-9 popen)
  #:use-module (ice-9 rdelim)
  #:use-module (ice-9 textual-ports)
  #:use-module (ice-9 binary-ports)
  #:use-module (rnrs bytevectors)
  #:export (test-suite-begin
            test-suite-end
            top-directory

            shell-quote
            run-command
            command-output

            make-temporary-directory
            delete-directory
            write-file
            directory-entries
            file-open-in?

            make-mini-store
            make-mini-store-root
            fresh-directory
            mini-store-directory
            mini-store-item
            mini-store-closure
            make-slow-store

            sample-store

            file-magic
            archive-members
            archive-member
            archive-json
            image-manifest
            image-config
            layer-listing
            layer-names
            layer-member

            json-read-string
            json-ref

            error-fields
            docker-required
            docker))

;;; Commentary:
;;;
;;; A test runner that prints each result and a summary line that
;;; tests/guile/run.sh adds up; a small JSON reader (Guile has none built
;;; in); archive inspection through tar(1); small store directories made on
;;; the spot.
;;;
;;; Code:


;;;
;;; Runner.
;;;

(define (report-result runner)
  (let ((name (test-runner-test-name runner))
        (kind (test-result-kind runner)))
    (format #t "~a: ~a~%"
            (match kind
              ('pass "PASS") ('fail "FAIL") ('xpass "XPASS")
              ('xfail "XFAIL") ('skip "SKIP") (_ kind))
            name)
    (when (memq kind '(fail xpass))
      (for-each (lambda (key)
                  (let ((value (test-result-ref runner key)))
                    (when value
                      (format #t "    ~a: ~s~%" key value))))
                '(source-file source-line source-form expected-value
                  actual-value actual-error)))))

(define (test-suite-begin name)
  "Start the test file NAME with a runner that prints every result."
  (let ((runner (test-runner-simple)))
    (test-runner-on-test-end! runner report-result)
    ;; No log file (the simple runner writes NAME.log in the current
    ;; directory); groups are shown by the names of their tests.
    (test-runner-on-group-begin! runner (lambda (runner suite count) #t))
    (test-runner-on-group-end! runner (lambda (runner) #t))
    (test-runner-on-final!
     runner
     (lambda (runner)
       (let ((pass (+ (test-runner-pass-count runner)
                      (test-runner-xfail-count runner)))
             (fail (+ (test-runner-fail-count runner)
                      (test-runner-xpass-count runner)))
             (skip (test-runner-skip-count runner)))
         (format #t "# ~a: ~a passed, ~a failed, ~a skipped~%"
                 name pass fail skip)
         ;; Machine-readable, for run.sh.
         (format #t "%%gdn-counts ~a ~a ~a~%" pass fail skip))))
    (test-runner-current runner)
    (test-begin name)))

(define (test-suite-end name)
  "End the test file NAME; exit non-zero when a test failed."
  (let ((runner (test-runner-current)))
    (test-end name)
    (exit (if (zero? (+ (test-runner-fail-count runner)
                        (test-runner-xpass-count runner)))
              0 1))))

(define (top-directory)
  "The checkout's top directory, from $GDN_TOP_DIRECTORY (run.sh sets it)."
  (or (getenv "GDN_TOP_DIRECTORY")
      (error "GDN_TOP_DIRECTORY is not set; run the tests with \
tests/guile/run.sh")))


;;;
;;; Commands.
;;;

(define (shell-quote string)
  (string-append "'"
                 (string-join (string-split string #\') "'\\''")
                 "'"))

(define (read-file-string file)
  (call-with-input-file file get-string-all #:encoding "ISO-8859-1"))

(define* (run-command arguments #:key (environment '()) stdin directory)
  "Run ARGUMENTS, a list of strings, through /bin/sh with ENVIRONMENT, an
alist of variables to set (a value of #f unsets it), in DIRECTORY, with
STDIN (a file name) as standard input.  Return three values: the exit
status, standard output and standard error, both as strings (bytes read as
Latin-1)."
  (let* ((scratch (make-temporary-directory))
         (out (string-append scratch "/out"))
         (err (string-append scratch "/err"))
         (script
          (string-append
           (if directory (string-append "cd " (shell-quote directory) " && ")
               "")
           (string-join
            (map (match-lambda
                   ((name . #f) (string-append "unset " name ";"))
                   ((name . value)
                    (string-append "export " name "=" (shell-quote value)
                                   ";")))
                 environment)
            " ")
           " exec "
           (string-join (map shell-quote arguments) " ")
           " >" (shell-quote out) " 2>" (shell-quote err)
           " <" (shell-quote (or stdin "/dev/null"))))
         (status (status:exit-val (system* "/bin/sh" "-c" script)))
         (stdout (read-file-string out))
         (stderr (read-file-string err)))
    (delete-directory scratch)
    (values status stdout stderr)))

(define (command-output . arguments)
  "Run ARGUMENTS and return its standard output; raise an error naming the
command and showing its standard error when it fails."
  (let-values (((status stdout stderr) (run-command arguments)))
    (unless (eqv? status 0)
      (error (format #f "command failed (~a): ~a~%~a" status
                     (string-join arguments) stderr)))
    stdout))


;;;
;;; Files.
;;;

(define (make-temporary-directory)
  (mkdtemp (string-copy "/tmp/gdn-guile-test-XXXXXX")))

(define (delete-directory directory)
  (system* "chmod" "-R" "u+w" directory)
  (system* "rm" "-rf" directory))

(define (directory-entries directory)
  "The names in DIRECTORY, sorted, without . and ..; hidden ones too."
  (scandir directory (lambda (name) (not (member name '("." ".."))))))

;; A build's temporary file has no name while it is written (O_TMPFILE):
;; a listing of the directory does not show it, the process's descriptors do.
(define* (file-open-in? directory #:optional (pid "self"))
  "Whether process PID (a number, or \"self\") has a file open in DIRECTORY."
  (let ((fds (format #f "/proc/~a/fd" pid))
        (prefix (string-append directory "/")))
    (any (lambda (fd)
           (false-if-exception
            (string-prefix? prefix (readlink (string-append fds "/" fd)))))
         (or (false-if-exception
              (scandir fds (lambda (name) (not (member name '("." ".."))))))
             '()))))

(define (write-file file content)
  "Create FILE (and its directories) holding CONTENT, a string or
bytevector."
  (system* "mkdir" "-p" (dirname file))
  (call-with-output-file file
    (lambda (port)
      (if (bytevector? content)
          (put-bytevector port content)
          (display content port)))
    #:binary #t))


;;;
;;; A small store made on the spot.
;;;

;; Four items: `tiny' refers to `dep' (its file names dep); `big' holds
;; 2 MiB, so that progress has something to count; `medium' 64 KiB.
(define %mini-hashes
  '(("tiny" . "0123456789abcdfghijklmnpqrsvwxyz")
    ("dep" . "11111111111111111111111111111111")
    ("big" . "22222222222222222222222222222222")
    ("medium" . "33333333333333333333333333333333")))

(define (mini-store-directory root)
  (string-append root "/gnu/store"))

(define (mini-store-item root name)
  "The file name of item NAME (tiny, dep, big or medium) of the mini store
at ROOT."
  (string-append (mini-store-directory root) "/"
                 (assoc-ref %mini-hashes name) "-" name))

(define (mini-store-closure root)
  "The closure of `tiny': itself and `dep'."
  (list (mini-store-item root "tiny") (mini-store-item root "dep")))

(define (pseudo-random-bytes size)
  "SIZE bytes that are not all zeros, so that compression has work to do."
  (let ((bv (make-bytevector size)))
    (let loop ((i 0))
      (when (< i size)
        (bytevector-u8-set! bv i (modulo (* i 7919) 251))
        (loop (+ i 1))))
    bv))

(define (make-mini-store root)
  "Create the mini store under ROOT (ROOT/gnu/store) and return its store
directory."
  (let ((tiny (mini-store-item root "tiny"))
        (dep (mini-store-item root "dep"))
        (big (mini-store-item root "big"))
        (medium (mini-store-item root "medium")))
    (write-file (string-append dep "/lib/dep.txt") "the dependency\n")
    (write-file (string-append tiny "/share/tiny.txt")
                (string-append "tiny, using " dep "/lib/dep.txt\n"))
    (write-file (string-append tiny "/bin/tiny") "#!/bin/sh\necho tiny\n")
    (chmod (string-append tiny "/bin/tiny") #o555)
    (symlink "share/tiny.txt" (string-append tiny "/readme"))
    (write-file (string-append big "/data") (pseudo-random-bytes (* 2 1024 1024)))
    (write-file (string-append medium "/data") (pseudo-random-bytes (* 64 1024)))
    (mini-store-directory root)))

(define (make-mini-store-root)
  "The prologue of a test file that builds from the mini store: make a
temporary directory and the mini store in it; return two values, the
directory and the store directory."
  (let ((root (make-temporary-directory)))
    (values root (make-mini-store root))))

(define (fresh-directory root name)
  "Make the empty directory ROOT/NAME (an output directory of its own for
one test) and return its name."
  (let ((directory (string-append root "/" name)))
    (mkdir directory)
    directory))

(define (make-slow-store root)
  "Create under ROOT a store whose one item holds a 1 GiB sparse file: a
build that writes long enough to be interrupted while it runs.  Return
two values: the store directory and the item."
  (let* ((store (string-append root "/slow/gnu/store"))
         (item (string-append store "/" (make-string 32 #\b) "-slow-1.0")))
    (system* "mkdir" "-p" item)
    (call-with-output-file (string-append item "/zeros")
      (lambda (port) (truncate-file port (expt 2 30))))
    (values store item)))


;;;
;;; The sample store of gdn-sample-store.
;;;

(define (sample-store root)
  "Generate the sample store under ROOT with target/release/gdn-sample-store
and return its main item (the last line it prints)."
  (let* ((program (string-append (top-directory)
                                 "/target/release/gdn-sample-store"))
         (output (command-output program root))
         (lines (remove string-null? (string-split output #\newline))))
    (last lines)))


;;;
;;; Archives.
;;;

(define (file-magic file count)
  "The first COUNT bytes of FILE, as a list of integers."
  (call-with-input-file file
    (lambda (port)
      (let ((bv (get-bytevector-n port count)))
        (if (eof-object? bv) '() (bytevector->u8-list bv))))
    #:binary #t))

(define (decompression-flag archive)
  (match (file-magic archive 4)
    ((#x1f #x8b . _) "--gzip")
    ((#x28 #xb5 #x2f #xfd) "--zstd")
    (_ #f)))

(define (tar . arguments)
  (apply command-output "tar" arguments))

(define (archive-members archive)
  "The names of the members of ARCHIVE (possibly gzip- or zstd-compressed)."
  (remove string-null?
          (string-split (apply tar (append (or (and=> (decompression-flag
                                                        archive)
                                                       list)
                                                  '())
                                              (list "-tf" archive)))
                        #\newline)))

(define (archive-member archive member)
  "The content of MEMBER of ARCHIVE, as a Latin-1 string."
  (apply tar (append (or (and=> (decompression-flag archive) list) '())
                     (list "-xOf" archive member))))

(define (archive-json archive member)
  (json-read-string (latin1->utf8-string (archive-member archive member))))

(define (latin1->utf8-string s)
  (utf8->string (u8-list->bytevector (map char->integer (string->list s)))))

(define (image-manifest archive)
  "The single entry of ARCHIVE's manifest.json."
  (match (archive-json archive "manifest.json")
    (#(entry) entry)
    (other (error "manifest.json has not exactly one entry" other))))

(define (image-config archive)
  (archive-json archive (json-ref (image-manifest archive) "Config")))

(define (extract-layer archive layer directory)
  "Extract LAYER of ARCHIVE into DIRECTORY; return its file name."
  (apply tar (append (or (and=> (decompression-flag archive) list) '())
                     (list "-xf" archive "-C" directory layer)))
  (string-append directory "/" layer))

(define (layer-listing archive layer)
  "The verbose listing (tar -tvf) of LAYER in ARCHIVE, one string per entry."
  (let* ((scratch (make-temporary-directory))
         (file (extract-layer archive layer scratch))
         (listing (tar "--numeric-owner" "-tvf" file)))
    (delete-directory scratch)
    (remove string-null? (string-split listing #\newline))))

(define (layer-names archive)
  "The names of all entries of all layers of ARCHIVE."
  (append-map (lambda (layer)
                (let* ((scratch (make-temporary-directory))
                       (file (extract-layer archive layer scratch))
                       (names (tar "-tf" file)))
                  (delete-directory scratch)
                  (remove string-null? (string-split names #\newline))))
              (vector->list (json-ref (image-manifest archive) "Layers"))))

(define (layer-member archive layer member)
  "The content of MEMBER of LAYER in ARCHIVE, as a Latin-1 string."
  (let* ((scratch (make-temporary-directory))
         (file (extract-layer archive layer scratch))
         (content (tar "-xOf" file member)))
    (delete-directory scratch)
    content))


;;;
;;; JSON: objects become alists with string keys, arrays vectors, null the
;;; symbol null.
;;;

(define (json-read-string string)
  (call-with-input-string string
    (lambda (port)
      (let ((value (read-value port)))
        (skip-space port)
        (unless (eof-object? (peek-char port))
          (error "JSON: trailing characters"))
        value))))

(define (skip-space port)
  (let ((c (peek-char port)))
    (when (and (char? c) (char-whitespace? c))
      (read-char port)
      (skip-space port))))

(define (expect port string)
  (string-for-each (lambda (c)
                     (unless (eqv? (read-char port) c)
                       (error "JSON: expected" string)))
                   string))

(define (read-value port)
  (skip-space port)
  (match (peek-char port)
    (#\{ (read-char port) (read-object port))
    (#\[ (read-char port) (read-array port))
    (#\" (read-char port) (read-json-string port))
    (#\t (expect port "true") #t)
    (#\f (expect port "false") #f)
    (#\n (expect port "null") 'null)
    (_ (read-number port))))

(define (read-object port)
  (skip-space port)
  (if (eqv? (peek-char port) #\})
      (begin (read-char port) '())
      (let loop ((members '()))
        (skip-space port)
        (expect port "\"")
        (let ((key (read-json-string port)))
          (skip-space port)
          (expect port ":")
          (let* ((value (read-value port))
                 (members (cons (cons key value) members)))
            (skip-space port)
            (match (read-char port)
              (#\, (loop members))
              (#\} (reverse members))
              (c (error "JSON: bad object" c))))))))

(define (read-array port)
  (skip-space port)
  (if (eqv? (peek-char port) #\])
      (begin (read-char port) #())
      (let loop ((elements '()))
        (let ((elements (cons (read-value port) elements)))
          (skip-space port)
          (match (read-char port)
            (#\, (loop elements))
            (#\] (list->vector (reverse elements)))
            (c (error "JSON: bad array" c)))))))

(define (read-json-string port)
  (let loop ((chars '()))
    (match (read-char port)
      (#\" (list->string (reverse chars)))
      (#\\
       (match (read-char port)
         (#\n (loop (cons #\newline chars)))
         (#\t (loop (cons #\tab chars)))
         (#\r (loop (cons #\return chars)))
         (#\b (loop (cons #\backspace chars)))
         (#\f (loop (cons #\page chars)))
         (#\u (let ((code (string->number
                           (list->string (list (read-char port) (read-char port)
                                               (read-char port) (read-char port)))
                           16)))
                (loop (cons (integer->char code) chars))))
         (c (loop (cons c chars)))))
      ((? eof-object?) (error "JSON: unterminated string"))
      (c (loop (cons c chars))))))

(define (read-number port)
  (let loop ((chars '()))
    (let ((c (peek-char port)))
      (if (and (char? c) (string-index "+-0123456789.eE" c))
          (loop (cons (read-char port) chars))
          (or (string->number (list->string (reverse chars)))
              (error "JSON: bad value near" c))))))

(define (json-ref value . keys)
  "Follow KEYS (strings for objects, integers for arrays) from VALUE;
return #f when one is missing."
  (fold (lambda (key value)
          (cond ((not value) #f)
                ((and (string? key) (list? value)) (assoc-ref value key))
                ((and (integer? key) (vector? value)
                      (< key (vector-length value)))
                 (vector-ref value key))
                (else #f)))
        value keys))


;;;
;;; Errors and Docker.
;;;

(define (error-fields thunk)
  "Call THUNK; return (CODE SYMBOL MESSAGE) of the docker-native error it
raises, or (no-error no-error \"returned VALUE\") when it returns normally,
which no test expects."
  (catch 'docker-native-error
    (lambda ()
      (let ((value (thunk)))
        (list 'no-error 'no-error (format #f "returned ~s" value))))
    (lambda (key code symbol message)
      (list code symbol message))))

(define (docker-required)
  "Return #t when Docker can be used (DOCKER_HOST is set).  Otherwise
return #f after explaining; under CI=true that explanation is a failed
test, since the CI script starts dockerd and sets DOCKER_HOST."
  (cond ((getenv "DOCKER_HOST") #t)
        ((equal? (getenv "CI") "true")
         (test-assert "DOCKER_HOST is set (CI starts dockerd)" #f)
         #f)
        (else
         (format #t "# DOCKER_HOST is unset: Docker tests skipped~%")
         (test-skip 1)
         (test-assert "Docker tests (DOCKER_HOST unset)" #f)
         #f)))

(define (docker . arguments)
  "Run docker with ARGUMENTS; return (STATUS STDOUT STDERR)."
  (call-with-values (lambda () (run-command (cons "docker" arguments)))
    list))

;;; test-helpers.scm ends here
