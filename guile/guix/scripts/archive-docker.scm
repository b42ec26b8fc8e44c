;;; guix-docker-native --- Docker images from Guix store items, natively.
;;;
;;; This file is part of guix-docker-native, licensed under the GNU GPL,
;;; version 3 or (at your option) any later version.

(define-module (guix scripts archive-docker)
  #:use-module (guix docker-native)
  #:use-module (ice-9 format)
  #:use-module (ice-9 match)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-26)
  #:use-module (srfi srfi-37)
  #:export (guix-archive-docker
            main
            make-progress-bar
            daemon-closure
            default-database))

;;; Commentary:
;;;
;;; `guix archive --export --format=docker ITEM...' on top of
;;; (guix docker-native): the grammar of `guix archive' for that one job.
;;; Docker images are self-contained, so --recursive is implied.  The image
;;; is written to NAME-docker-image.tar in the current directory (or
;;; --output) and its file name is printed.
;;;
;;; Code:

(define %program-name "guix archive")

(define (leave fmt . args)
  "Report an error in the style of Guix's commands and exit with code 1."
  (format (current-error-port) "~a: error: ~?~%" %program-name fmt args)
  (exit 1))


;;;
;;; Signals.
;;;

(define %stopping-signals
  ;; The signals that stop the command.
  (list SIGINT SIGTERM SIGHUP))

(define (call-with-stopping-signals-raised thunk)
  "Call THUNK with SIGINT, SIGTERM and SIGHUP raised in this thread as
exceptions with key `interrupted' and the signal number; restore the
previous handlers when THUNK returns.  During a build they are raised in
this thread while it waits for the build, which cancels the build and
waits for its end before the exception goes on."
  (let ((previous (map (lambda (signal)
                         (sigaction signal
                                    (lambda (signal)
                                      (throw 'interrupted signal))))
                       %stopping-signals)))
    (dynamic-wind
      (const #t)
      thunk
      (lambda ()
        (for-each (lambda (signal handler)
                    (sigaction signal (car handler) (cdr handler)))
                  %stopping-signals previous)))))

(define (signal-name signal)
  (cond ((= signal SIGINT) "SIGINT")
        ((= signal SIGTERM) "SIGTERM")
        ((= signal SIGHUP) "SIGHUP")
        (else (format #f "signal ~a" signal))))


;;;
;;; Progress bar.
;;;

(define (size->string bytes)
  (cond ((< bytes 1024) (format #f "~aB" bytes))
        ((< bytes (expt 1024 2)) (format #f "~,1fKiB" (/ bytes 1024.)))
        ((< bytes (expt 1024 3)) (format #f "~,1fMiB" (/ bytes (expt 1024. 2))))
        (else (format #f "~,1fGiB" (/ bytes (expt 1024. 3))))))

(define (terminal-width)
  (match (and=> (getenv "COLUMNS") string->number)
    ((? exact-integer? columns) (max columns 20))
    (_ 80)))

(define* (make-progress-bar port label #:key (width (terminal-width)))
  "Return a procedure to pass as #:progress: called with (BYTES-DONE
BYTES-TOTAL), it redraws on PORT, after a carriage return, one line in the
style of Guix's own transfer reports: LABEL, the sizes, a bar and the
percentage, within WIDTH columns.  It redraws only when the shown
percentage changes, and ends the line once BYTES-DONE reaches BYTES-TOTAL."
  (define (render done total fraction)
    (let* ((numbers (string-append (size->string done) "/"
                                   (size->string total)))
           (percent (format #f "~5,1f%" (* 100. fraction)))
           (bar-width (max 10 (min 40 (quotient width 4))))
           (filled (inexact->exact (floor (* bar-width fraction))))
           (tail (string-append numbers "  ["
                                (make-string filled #\#)
                                (make-string (- bar-width filled) #\space)
                                "] " percent))
           ;; Columns left for the label and at least two spaces after it;
           ;; the last column stays empty so the terminal does not wrap.
           (room (max 0 (- width 1 (string-length tail) 2)))
           (shown (if (> (string-length label) room)
                      (string-take label room)
                      label)))
      (string-append shown
                     (make-string (+ 2 (- room (string-length shown)))
                                  #\space)
                     tail)))

  (let ((last-shown #f)
        (finished? #f))
    (lambda (done total)
      (let* ((fraction (if (zero? total) 1 (min 1 (/ done total))))
             (permille (inexact->exact (floor (* 1000 fraction)))))
        (unless (or finished? (eqv? permille last-shown))
          (set! last-shown permille)
          (display "\r" port)
          (display (render done total fraction) port)
          (when (>= done total)
            (set! finished? #t)
            (newline port))
          (force-output port))))))


;;;
;;; Closure and database.
;;;

(define (guix-module name)
  "Return the public interface of Guix's module NAME, or #f without Guix."
  (false-if-exception (resolve-interface name)))

(define (daemon-closure items store)
  "Return the closure of ITEMS (store file names) as the Guix daemon knows
it, or #f when Guix's modules are not installed, no daemon answers, or the
daemon's store is not STORE.  An item the daemon does not know is an error."
  (let ((guix-store (guix-module '(guix store))))
    (and guix-store
         (let ((daemon-store (false-if-exception
                              ((module-ref guix-store '%store-prefix)))))
           (and (equal? daemon-store store)
                (let ((connection (false-if-exception
                                   ((module-ref guix-store 'open-connection)))))
                  (and connection
                       (dynamic-wind
                         (const #t)
                         (lambda ()
                           (for-each
                            (lambda (item)
                              (unless ((module-ref guix-store 'valid-path?)
                                       connection item)
                                (leave "~a: not a valid item of the store \
(the Guix daemon does not know it)" item)))
                            items)
                           ((module-ref guix-store 'requisites)
                            connection items))
                         (lambda ()
                           ((module-ref guix-store 'close-connection)
                            connection))))))))))

(define (default-database store)
  "Return the store database Guix keeps for STORE when it exists: the
db.sqlite under NIX_STATE_DIR when that is set, else under Guix's configured
local state directory (/var by default) when STORE is Guix's configured
store; else #f."
  (define (configured name default)
    (or (and=> (guix-module '(guix config))
               (lambda (config)
                 (false-if-exception (module-ref config name))))
        default))
  (let ((database
         (match (getenv "NIX_STATE_DIR")
           ((or #f "")
            (and (string=? store (configured '%storedir "/gnu/store"))
                 (string-append (configured '%localstatedir "/var")
                                "/guix/db/db.sqlite")))
           ((? absolute-file-name? state)
            (string-append state "/db/db.sqlite"))
           (state
            (leave "NIX_STATE_DIR=~a: not an absolute file name; set it to \
Guix's state directory, such as /var/guix, or unset it" state)))))
    (and database (file-exists? database) database)))


;;;
;;; Command line.
;;;

(define (show-help)
  (format #t "Usage: ~a --export --format=docker [OPTION]... ITEM...
Write a Docker image archive of ITEM, a store item, and its closure, and print
its file name.  `docker load' reads it.

      --export           export the items (required)
  -f, --format=FORMAT    produce FORMAT; only \"docker\" is supported here
  -r, --recursive        include the closure (always the case for images)
  -o, --output=DEST      write the image to DEST: FILE or docker-archive:FILE
                         (\"-\" for standard output), oci:DIR[:REF] (an OCI
                         image layout, added to) or oci-archive:FILE[:REF];
                         by default NAME-docker-image.tar[.gz|.zst] in the
                         current directory
  -t, --tag=NAME[:TAG]   tag the image NAME:TAG (repeatable); the default is
                         NAME:latest from the item's name
      --image-tag=NAME   the same, as `guix pack' calls it
      --entry-point=PROGRAM
                         use PROGRAM, relative to the first ITEM or absolute,
                         as the image's entry point
  -A, --entry-point-argument=ARG
                         append ARG to the entry point (repeatable)
  -S, --symlink=LINK=TARGET
                         add symlink LINK to TARGET, relative to the first ITEM
  -C, --compression=TYPE compress the archive with TYPE: none (default),
                         gzip or zstd
      --max-layers=N     spread the closure over at most N layers (1 to 125)
      --system=SYSTEM    record SYSTEM's architecture (default: this machine's)
      --store-dir=DIR    the store the items live in (default: NIX_STORE_DIR,
                         else Guix's store, else /gnu/store)
      --database=FILE    read references from the store database FILE when
                         the Guix daemon is not available
  -h, --help             display this help and exit
  -V, --version          display version information and exit

Without the Guix daemon, the closure is read from --database, else from the
local Guix database when it exists, else found by scanning the store.
" %program-name))

(define (show-version)
  (format #t "~a --format=docker (guix-docker-native) ~a~%"
          %program-name
          (catch 'docker-native-error
            docker-native-version
            (lambda (key code symbol message) "(library not found)"))))

(define (positive-integer name arg)
  (match (string->number arg)
    ((? exact-integer? n) (if (positive? n) n
                              (leave "--~a=~a: expected a positive integer"
                                     name arg)))
    (_ (leave "--~a=~a: expected a positive integer" name arg))))

(define (add name value)
  (lambda (opt opt-name arg result)
    (alist-cons name (value arg) result)))

(define %options
  (list (option '(#\h "help") #f #f
                (lambda _ (show-help) (exit 0)))
        (option '(#\V "version") #f #f
                (lambda _ (show-version) (exit 0)))
        (option '("export") #f #f (add 'export? (const #t)))
        (option '(#\f "format") #t #f (add 'format identity))
        (option '(#\r "recursive") #f #f (add 'recursive? (const #t)))
        (option '(#\o "output") #t #f (add 'output identity))
        (option '(#\t "tag" "image-tag") #t #f (add 'tag identity))
        (option '("entry-point") #t #f (add 'entry-point identity))
        (option '(#\A "entry-point-argument") #t #f
                (add 'entry-point-argument identity))
        (option '(#\S "symlink") #t #f
                (add 'symlink
                     (lambda (arg)
                       (match (string-index arg #\=)
                         (#f (leave "--symlink=~a: expected LINK=TARGET" arg))
                         (i (cons (string-take arg i)
                                  (string-drop arg (+ i 1))))))))
        (option '(#\C "compression") #t #f
                (add 'compression
                     (lambda (arg)
                       (if (member arg '("none" "gzip" "zstd"))
                           (string->symbol arg)
                           (leave "--compression=~a: expected none, gzip or \
zstd (xz, lzip and bzip2 are not supported yet)" arg)))))
        (option '("max-layers") #t #f
                (add 'max-layers (cut positive-integer "max-layers" <>)))
        (option '("system") #t #f (add 'system identity))
        (option '("store-dir") #t #f (add 'store-directory identity))
        (option '("database") #t #f (add 'database identity))))

(define (parse-command-line args)
  "Return an alist of the options in ARGS, in order, items as (item . FILE)."
  (reverse
   (catch 'misc-error
     (lambda ()
       (args-fold args %options
                  (lambda (opt name arg result)
                    (leave "~a: unrecognized option"
                           (if (char? name)
                               (string #\- name)
                               (string-append "--" name))))
                  (lambda (item result)
                    (alist-cons 'item item result))
                  '()))
     (lambda (key subr message arguments . _)
       ;; args-fold's own complaints, such as a missing argument (long
       ;; options take theirs as --NAME=VALUE, as in Guix).
       (leave "~?" message arguments)))))

(define (values-of key options)
  (filter-map (match-lambda
                ((k . v) (and (eq? k key) v)))
              options))

(define (value-of key options default)
  (match (values-of key options)
    (() default)
    (values (last values))))

(define (checked-items items store)
  "Return ITEMS, refusing none at all, and any that is not an item of
STORE as a build would refuse it (the error names the item)."
  (when (null? items)
    (leave "no store item given; usage: ~a --export --format=docker ITEM..."
           %program-name))
  (for-each (cut store-item-name <> store) items)
  items)

(define (guix-archive-docker . args)
  "Run `guix archive' with ARGS, the command-line arguments after the
program name, for --export --format=docker; return on success, exit with
code 1 and a message on error."
  (let* ((options (parse-command-line args))
         (format-name (value-of 'format options #f)))
    (unless (value-of 'export? options #f)
      (leave "only --export is supported here (with --format=docker)"))
    (match format-name
      ("docker" #t)
      (#f (leave "--format=docker is required: this command exports Docker \
images only"))
      (other (leave "--format=~a: unsupported format; only docker is \
supported here" other)))
    (catch 'interrupted
      (lambda ()
        (call-with-stopping-signals-raised
         (lambda ()
           (export-image options))))
      (lambda (key signal)
        (format (current-error-port)
                "~a: error: interrupted by ~a; no image was written~%"
                %program-name (signal-name signal))
        (exit (+ 128 signal))))))

(define (export-image options)
  "Write the image that OPTIONS, the parsed command line, asks for, and
print its file name; exit with code 1 and a message on error."
  (catch 'docker-native-error
    (lambda ()
      (let* ((store (value-of 'store-directory options (store-directory)))
             (items (checked-items (values-of 'item options) store))
             (closure (daemon-closure items store))
             (database (and (not closure)
                            (value-of 'database options
                                      (default-database store))))
             (compression (value-of 'compression options 'none))
             ;; -o is a destination, as the command line's (one parser,
             ;; the library's); without it, the default file.
             (destination (value-of 'output options #f))
             (output (or destination
                         (default-image-file-name (first items)
                                                  compression store)))
             (entry-arguments (values-of 'entry-point-argument options))
             (entry-point (match (value-of 'entry-point options #f)
                            (#f (unless (null? entry-arguments)
                                  (leave "--entry-point-argument needs \
--entry-point"))
                                #f)
                            (program (cons program entry-arguments)))))
        (when (and (not closure) (> (length items) 1))
          (leave "several items need the Guix daemon to compute their \
joint closure; give one item, or run this where guix-daemon runs"))
        (build-docker-image/item
         (first items)
         #:output (and (not destination) output)
         #:destination destination
         #:closure closure
         #:database database
         #:store-directory store
         #:tags (values-of 'tag options)
         #:entry-point entry-point
         #:symlinks (values-of 'symlink options)
         #:compression compression
         #:max-layers (value-of 'max-layers options #f)
         #:system (value-of 'system options #f)
         ;; A signal's exception is raised while this thread waits for
         ;; the build, progress bar or not: the build is cancelled and
         ;; has ended when it reaches the handler.
         #:progress (and (isatty? (current-error-port))
                         (make-progress-bar (current-error-port)
                                            (basename output))))
        (unless (string=? output "-")
          (format #t "~a~%" output))))
    (lambda (key code symbol message)
      (leave "~a" message))))

(define (main args)
  "Entry point of the guix-archive-docker script: ARGS is the whole command
line, program name first."
  (apply guix-archive-docker (cdr args))
  (exit 0))

;;; archive-docker.scm ends here
