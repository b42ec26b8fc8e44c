;;; guix-archive-docker, `guix archive --export --format=docker' on the
;;; native library, end to end on the sample store.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-26)
             (srfi srfi-64)
             (ice-9 match)
             (ice-9 textual-ports))

(test-suite-begin "front-end")

(define root (make-temporary-directory))
(define profile (sample-store root))
(define store (string-append root "/gnu/store"))
(define database (string-append root "/var/guix/db/db.sqlite"))
(define work (string-append root "/work"))
(mkdir work)

(define (store-items)
  (filter (lambda (name) (> (string-length name) 33))
          (string-split (command-output "ls" store) #\newline)))

(define (item-with-name name)
  (string-append store "/" (find (cut string-suffix? name <>) (store-items))))

(define hello (item-with-name "-hello-2.12.1"))
(define greeting (item-with-name "-greeting-data-1.0"))
(define unrelated (item-with-name "-unrelated-0.1"))

(define* (archive arguments #:key (environment '()))
  "Run guix-archive-docker with ARGUMENTS in WORK, with NIX_STORE_DIR set to
the sample store; return (STATUS STDOUT STDERR)."
  (call-with-values
      (lambda ()
        (run-command (cons "guix-archive-docker" arguments)
                     #:directory work
                     ;; Later settings win: the caller's come last.
                     #:environment (append `(("NIX_STORE_DIR" . ,store)
                                             ("NIX_STATE_DIR" . #f))
                                           environment)))
    list))

(define (in-layers? image item)
  "Is ITEM's directory in IMAGE's layers?"
  (member (string-append (string-drop item 1) "/") (layer-names image)))

(test-group "-f docker without -r"
  (match (archive (list "--export" "-f" "docker" profile))
    ((status stdout stderr)
     (let ((image (string-append work "/profile-docker-image.tar")))
       (test-equal "exit status 0" 0 status)
       (test-equal "prints the image file name" "profile-docker-image.tar\n"
         stdout)
       (test-equal "no progress output when stderr is not a terminal" ""
         stderr)
       (test-assert "the image is in the current directory"
         (file-exists? image))
       (test-equal "tagged from the item's name" #("profile:latest")
         (json-ref (image-manifest image) "RepoTags"))
       (test-assert "the closure is in it (implied --recursive)"
         (every (cut in-layers? image <>) (list profile hello greeting)))
       (test-assert "what is outside the closure is not"
         (not (in-layers? image unrelated)))))))

(define image-option-arguments
  (list "--export" "--format=docker" "-r"
        "--output=out/custom.tar" "--tag=gdn/front-end:v1"
        "-t" "gdn/front-end:latest"
        "--entry-point=bin/hello" "-A" "one" "-A" "two"
        "--max-layers=2" "-S" "/bin=bin"
        "--system=aarch64-linux"
        profile))

(test-group "--export --format=docker -r with image options"
  (match (archive image-option-arguments)
    ((status stdout stderr)
     (test-equal "a missing output directory: exit status 1" 1 status)
     (test-assert "a missing output directory is reported, naming it"
       (string-contains stderr "out/custom.tar"))))
  (mkdir (string-append work "/out"))
  (match (archive image-option-arguments)
    ((status stdout stderr)
     (let* ((image (string-append work "/out/custom.tar"))
            (config (image-config image)))
       (test-equal "exit status 0" 0 status)
       (test-equal "prints --output" "out/custom.tar\n" stdout)
       (test-equal "--tag and -t, in order"
         #("gdn/front-end:v1" "gdn/front-end:latest")
         (json-ref (image-manifest image) "RepoTags"))
       (test-equal "--entry-point relative to the item, with -A arguments"
         (vector (string-append profile "/bin/hello") "one" "two")
         (json-ref config "config" "Entrypoint"))
       (test-equal "--max-layers" 2
         (vector-length (json-ref (image-manifest image) "Layers")))
       (test-equal "--system" "arm64" (json-ref config "architecture"))
       (test-assert "-S /bin=bin"
         (member "bin" (layer-names image)))))))

(test-group "compression"
  (match (archive (list "--export" "-f" "docker" "-C" "gzip" profile))
    ((status stdout stderr)
     (test-equal "-C gzip names the file .tar.gz"
       "profile-docker-image.tar.gz\n" stdout)
     (test-equal "... and gzips it" '(#x1f #x8b)
       (file-magic (string-append work "/profile-docker-image.tar.gz") 2))))
  (match (archive (list "--export" "-f" "docker" "-C" "xz" profile))
    ((status stdout stderr)
     (test-assert "-C xz: not supported yet"
       (and (= status 1) (string-contains stderr "not supported yet"))))))

(test-group "standard output"
  (match (archive (list "--export" "-f" "docker" "-o" "-" profile))
    ((status stdout stderr)
     (test-equal "-o - exits 0" 0 status)
     (test-equal "-o - writes the tar to standard output, and no file name"
       "ustar" (and (> (string-length stdout) 262)
                    (substring stdout 257 262))))))

(test-group "closure from a store database"
  ;; A copy of the sample database that forgets that hello refers to the
  ;; greeting data: an image built from it lacks that item, which shows
  ;; the database was read (scanning would find the reference).
  (let* ((state (string-append root "/forgetful"))
         (forgetful (string-append state "/db/db.sqlite")))
    (mkdir state)
    (mkdir (string-append state "/db"))
    (copy-file database forgetful)
    (command-output "sqlite3" forgetful
                    (string-append
                     "DELETE FROM Refs WHERE reference IN "
                     "(SELECT id FROM ValidPaths WHERE path = '" greeting "');"))
    (match (archive (list "--export" "-f" "docker"
                          (string-append "--database=" forgetful)
                          "-o" "from-database.tar" profile))
      ((status stdout stderr)
       (let ((image (string-append work "/from-database.tar")))
         (test-equal "--database: exit status 0" 0 status)
         (test-assert "--database is read for the closure"
           (and (in-layers? image hello)
                (not (in-layers? image greeting)))))))
    (match (archive (list "--export" "-f" "docker" "-o" "from-state.tar"
                          profile)
                    #:environment `(("NIX_STATE_DIR" . ,state)))
      ((status stdout stderr)
       (let ((image (string-append work "/from-state.tar")))
         (test-equal "NIX_STATE_DIR: exit status 0" 0 status)
         (test-assert "without --database, NIX_STATE_DIR/db/db.sqlite is read"
           (and (in-layers? image hello)
                (not (in-layers? image greeting)))))))))

(test-group "closure from the Guix daemon"
  ;; tests/guile/fake-guix holds a stand-in for Guix's (guix store) with
  ;; the procedures the front end calls; its "daemon" knows the items listed
  ;; in a file.  The list leaves out the greeting data, which scanning or
  ;; the database would include: an image without it shows that the
  ;; daemon's answer was used.
  (let* ((known (string-append root "/daemon-items"))
         (log (string-append root "/daemon-log"))
         (fake `(("GUILE_LOAD_PATH"
                  . ,(string-append (getenv "GUILE_LOAD_PATH") ":"
                                    (top-directory) "/tests/guile/fake-guix"))
                 ("FAKE_GUIX_STORE" . ,store)
                 ("FAKE_GUIX_CLOSURE" . ,known)
                 ("FAKE_GUIX_LOG" . ,log)))
         (calls (lambda ()
                  (if (file-exists? log)
                      (let ((text (call-with-input-file log
                                    (lambda (port)
                                      (let loop ((calls '()))
                                        (let ((call (read port)))
                                          (if (eof-object? call)
                                              (reverse calls)
                                              (loop (cons call calls)))))))))
                        (delete-file log)
                        text)
                      '()))))
    (write-file known (string-append
                       (string-join (list profile hello
                                          (item-with-name "-glibc-sample-2.39")
                                          unrelated)
                                    "\n")
                       "\n"))
    (match (archive (list "--export" "-f" "docker" "-o" "daemon.tar" profile)
                    #:environment fake)
      ((status stdout stderr)
       (let ((image (string-append work "/daemon.tar")))
         (test-equal "exit status 0" 0 status)
         (test-assert "the daemon's requisites are the image's items"
           (and (in-layers? image hello)
                (in-layers? image unrelated)
                (not (in-layers? image greeting))))
         (test-equal "the connection was opened, asked and closed"
           `((open-connection) (valid-path? ,profile) (requisites (,profile))
             (close-connection))
           (calls)))))
    (match (archive (list "--export" "-f" "docker" "-o" "two.tar"
                          profile unrelated)
                    #:environment fake)
      ((status stdout stderr)
       (test-equal "several items with the daemon: exit status 0" 0 status)
       (test-equal "... the image is named after the first" "two.tar\n"
         stdout)
       (calls)))
    (match (archive (list "--export" "-f" "docker" greeting)
                    #:environment fake)
      ((status stdout stderr)
       (test-assert "an item the daemon does not know is an error naming it"
         (and (= status 1) (string-contains stderr greeting)
              (string-contains stderr "daemon")))
       (calls)))
    (match (archive (list "--export" "-f" "docker" "-o" "down.tar" profile)
                    #:environment (append fake '(("FAKE_GUIX_DAEMON" . "down"))))
      ((status stdout stderr)
       (test-assert "no daemon answering: the library finds the closure"
         (and (= status 0)
              (in-layers? (string-append work "/down.tar") greeting)))
       (calls)))
    (match (archive (list "--export" "-f" "docker" "-o" "other.tar" profile)
                    #:environment (append fake
                                          '(("FAKE_GUIX_STORE" . "/gnu/store"))))
      ((status stdout stderr)
       (test-assert "a daemon of another store is not asked"
         (and (= status 0)
              (not (member '(open-connection) (calls)))
              (in-layers? (string-append work "/other.tar") greeting)))))))

(test-group "progress on a terminal"
  ;; script(1) runs the command on a pseudo-terminal.
  (match (call-with-values
             (lambda ()
               (run-command
                (list "script" "-qec"
                      (string-join
                       (map shell-quote
                            (list "guix-archive-docker" "--export" "-f" "docker"
                                  "-o" "tty.tar" profile)))
                      "/dev/null")
                #:directory work
                #:environment `(("NIX_STORE_DIR" . ,store) ("COLUMNS" . "80"))))
           list)
    ((status stdout stderr)
     (test-equal "exit status 0" 0 status)
     (test-assert "a line redrawn with carriage returns, ending at 100%"
       (and (string-contains stdout "\r")
            (string-contains stdout "100.0%")
            (string-contains stdout "tty.tar"))))))

(test-group "errors"
  (define-syntax-rule (test-refusal name arguments needle ...)
    (match (archive arguments)
      ((status stdout stderr)
       (test-assert name
         (and (= status 1)
              (string-null? stdout)
              (string-prefix? "guix archive: error: " stderr)
              (string-contains stderr needle) ...)))))
  (test-refusal "without --export" (list "-f" "docker" profile) "--export")
  (test-refusal "another format" (list "--export" "-f" "nar" profile) "nar")
  (test-refusal "no format" (list "--export" profile) "--format=docker")
  (test-refusal "no item" (list "--export" "-f" "docker") "no store item")
  (test-refusal "an item outside the store"
    (list "--export" "-f" "docker" "/tmp/not-in-store") "/tmp/not-in-store")
  (test-refusal "an unknown option"
    (list "--export" "-f" "docker" "--frobnicate" profile) "--frobnicate")
  (test-refusal "a bad tag, named"
    (list "--export" "-f" "docker" "--tag=Bad:Tag" profile) "Bad:Tag")
  (test-refusal "-A without --entry-point"
    (list "--export" "-f" "docker" "-A" "x" profile) "--entry-point")
  (test-refusal "several items without the daemon"
    (list "--export" "-f" "docker" profile hello) "daemon")
  (test-refusal "--max-layers=0"
    (list "--export" "-f" "docker" "--max-layers=0" profile) "max-layers")
  (match (archive (list "--export" "-f" "docker" profile)
                  #:environment '(("GUIX_DOCKER_NATIVE_LIBRARY"
                                   . "/nonexistent/libgdn.so")))
    ((status stdout stderr)
     (test-assert "no library: the error says where it looked"
       (and (= status 1) (string-contains stderr "/nonexistent/libgdn.so"))))))

(test-assert "--help describes --format=docker"
  (match (archive (list "--help"))
    ((0 stdout _) (string-contains stdout "--format=FORMAT"))
    (_ #f)))

;; A build long enough to be interrupted while it writes.
(define-values (slow-store slow-item) (make-slow-store root))

(define (interrupted-export signal-name directory)
  "Start guix-archive-docker on the slow item, writing into DIRECTORY; send
it SIGNAL-NAME (\"INT\", \"TERM\") as soon as it has its temporary file
open there (it has no name: O_TMPFILE); return (STATUS STDERR)."
  (mkdir directory)
  (let ((err (string-append directory ".err"))
        (status (string-append directory ".status")))
    (system* "/bin/sh" "-c"
             (string-append
              "NIX_STORE_DIR=" (shell-quote slow-store) " NIX_STATE_DIR="
              (shell-quote root) " guix-archive-docker --export -f docker -o "
              (shell-quote (string-append directory "/slow.tar")) " "
              (shell-quote slow-item) " 2>" (shell-quote err) " & pid=$!; "
              "i=0; while ! ls -l /proc/$pid/fd 2>/dev/null | grep -qF -- "
              (shell-quote (string-append "-> " directory "/"))
              " && [ $i -lt 6000 ]; do sleep 0.01; i=$((i + 1)); done; "
              "kill -" signal-name " $pid; wait $pid; echo $? >"
              (shell-quote status)))
    (list (string->number
           (string-trim-both (call-with-input-file status get-string-all)))
          (call-with-input-file err get-string-all))))

(test-group "a signal during the build"
  (for-each
   (match-lambda
     ((name number)
      (let ((directory (string-append root "/interrupted-" name)))
        (match (interrupted-export name directory)
          ((status stderr)
           (test-equal (string-append "SIG" name ": exit status 128 + "
                                      (number->string number))
             (+ 128 number) status)
           (test-assert (string-append "SIG" name ": says so")
             (string-contains stderr (string-append "interrupted by SIG"
                                                    name)))
           (test-equal (string-append "SIG" name
                                      ": nothing left in the output directory")
             '() (directory-entries directory)))))))
   `(("INT" ,SIGINT) ("TERM" ,SIGTERM))))

(delete-directory root)
(test-suite-end "front-end")
