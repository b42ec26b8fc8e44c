;;; guix-docker-native --- Docker images from Guix store items, natively.
;;;
;;; This file is part of guix-docker-native, licensed under the GNU GPL,
;;; version 3 or (at your option) any later version.

(define-module (guix docker-native)
  #:use-module (guix docker-native bindings)
  #:use-module (system foreign)
  #:use-module (ice-9 match)
  #:use-module (ice-9 threads)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:use-module (srfi srfi-11)
  #:use-module (srfi srfi-19)
  #:use-module (srfi srfi-26)
  #:re-export (image-options?
               make-cancel-flag
               cancel-flag?

               docker-native-error?
               docker-native-error-code
               docker-native-error-symbol
               docker-native-error-message

               docker-native-library-file
               docker-native-version
               docker-native-abi-version)
  #:export (build-docker-image
            build-docker-image/item
            build-docker-image/options
            build-image/options
            build-platform-image
            build-platform-image/options
            make-image-options

            cancel-build!

            store-directory
            store-item-name
            default-image-file-name
            repository->tag
            compressor->compression))

;;; Commentary:
;;;
;;; Docker image archives of store items (what `docker load' reads), written
;;; by libguix_docker_native through the bindings of
;;; (guix docker-native bindings), which this module re-exports where users
;;; need them (errors, the library, the handles' predicates).
;;;
;;; `build-docker-image' takes the arguments of Guix's procedure of that name
;;; in (guix docker), so that `guix pack -f docker' can switch modules and
;;; change nothing else.  `build-docker-image/item' is the short form: an
;;; item in, an image file name out.  The rules (store paths, default file
;;; names, tags derived from names, result codes) are the library's: the
;;; procedures here ask it.
;;;
;;; Code:


;;;
;;; Creation times.
;;;

(define %creation-time-range
  ;; The creation times an image can hold, RFC 3339's years 0000 to 9999, in
  ;; seconds since the epoch (the library's CREATION_TIME_RANGE).
  '(-62167219200 . 253402300799))

(define (creation-time->seconds value)
  "Return VALUE, a number of seconds since the epoch, a SRFI-19 date, or a
SRFI-19 time of type time-utc or time-tai, as seconds since the epoch, within
the years 0000 to 9999."
  (let ((seconds
         (cond ((exact-integer? value) value)
               ((date? value) (time-second (date->time-utc value)))
               ((and (time? value) (eq? (time-type value) time-utc))
                (time-second value))
               ((and (time? value) (eq? (time-type value) time-tai))
                (time-second (time-tai->time-utc value)))
               (else
                (invalid-argument "creation-time ~s: expected seconds since \
the epoch, a SRFI-19 date, or a time-utc or time-tai time" value)))))
    (match %creation-time-range
      ((low . high)
       (unless (<= low seconds high)
         (invalid-argument "creation-time ~s: outside the years 0000 to 9999 \
that an image's creation time can hold (~a to ~a seconds since the epoch)"
                           value low high))))
    seconds))


;;;
;;; Options.
;;;

(define (pairs-argument what value)
  "Check that VALUE is a list of pairs of strings (an alist); return it."
  (unless (and (list? value)
               (every (match-lambda
                        (((? string?) . (? string?)) #t)
                        (_ #f))
                      value))
    (invalid-argument "~a ~s: expected a list of (STRING . STRING) pairs"
                      what value))
  value)

(define (list-argument what value)
  (unless (list? value)
    (invalid-argument "~a ~s: expected a list" what value))
  value)

(define (string-of what)
  "Return a procedure turning a value into a setter's one argument, a
string, refused with an error naming WHAT when it is not one."
  (lambda (value)
    (list (string-argument what value))))

(define (pair-of what-first what-second)
  "Return a procedure turning a pair of strings into a setter's two
arguments, refused with an error naming WHAT-FIRST or WHAT-SECOND."
  (match-lambda
    ((first . second)
     (list (string-argument what-first first)
           (string-argument what-second second)))))

;; The options given as lists: KEYWORD, the check of the whole list, the
;; setter called for each element, and how an element becomes the
;; setter's arguments (after the options).
(define %repeated-options
  `((#:tags ,list-argument ,%add-tag ,(string-of "tag"))
    (#:cmd ,list-argument ,%add-cmd ,(string-of "cmd"))
    (#:environment ,pairs-argument ,%add-env
                   ,(match-lambda
                      ((name . value)
                       (list (string-argument "environment variable"
                                              (string-append name "="
                                                             value))))))
    (#:labels ,pairs-argument ,%add-label ,(pair-of "label" "label value"))
    (#:exposed-ports ,list-argument ,%add-exposed-port
                     ,(lambda (port)
                        (list (string-argument "exposed port"
                                               (if (exact-integer? port)
                                                   (number->string port)
                                                   port)))))
    (#:volumes ,list-argument ,%add-volume ,(string-of "volume"))
    (#:symlinks ,pairs-argument ,%add-symlink
                ,(pair-of "symlink" "symlink target"))
    (#:directories ,list-argument ,%add-directory
                   ,(match-lambda
                      ((path uid gid mode)
                       (list (string-argument "directory" path)
                             (uint32-argument "uid" uid)
                             (uint32-argument "gid" gid)
                             (uint32-argument "mode" mode)))
                      (other
                       (invalid-argument "directory ~s: expected (PATH UID \
GID MODE)" other))))
    (#:files ,pairs-argument ,%add-file ,(pair-of "file" "file source"))
    (#:transformations ,pairs-argument ,%add-transformation
                       ,(pair-of "transformation" "transformation target"))
    (#:sbom ,list-argument ,%add-sbom
            ,(lambda (format)
               (list (string-argument "SBOM format"
                                      (if (symbol? format)
                                          (symbol->string format)
                                          format)))))
    (#:sbom-licenses ,pairs-argument ,%add-sbom-license
                     ,(pair-of "SBOM licence item" "SBOM licence"))))

(define* (make-image-options #:key
                             store-directory
                             database
                             (tags '())
                             entry-point
                             (cmd '())
                             (environment '())
                             working-directory
                             user
                             (labels '())
                             (exposed-ports '())
                             (volumes '())
                             (symlinks '())
                             (directories '())
                             (files '())
                             (transformations '())
                             localstatedir?
                             (sbom '())
                             sbom-output
                             (sbom-licenses '())
                             max-layers
                             system
                             creation-time
                             (compression 'none)
                             compression-level
                             threads
                             registry-credentials
                             cert-directory
                             (tls-verify? #t)
                             manifest-format
                             push-jobs
                             cache-directory
                             (cache? #t))
  "Return a new options handle for `build-docker-image/options', set from
the arguments; the library checks each value and the first one it refuses
is raised as a docker-native error naming it.

STORE-DIRECTORY: the store the items live in (#f: `store-directory').
DATABASE: a store database (db.sqlite) to read the closure's references from
when the library computes the closure.  TAGS: list of \"NAME[:TAG]\"
references; none means \"NAME:latest\" from the item's name.  ENTRY-POINT:
list of a program (relative to the item, or absolute) and its arguments.
CMD: list of strings, the default arguments.  ENVIRONMENT and LABELS: alists
of strings.  WORKING-DIRECTORY, USER: strings.  EXPOSED-PORTS: list of
\"PORT[/PROTO]\" strings or port numbers.  VOLUMES: list of absolute paths.
SYMLINKS: alist (LINK . TARGET), TARGET relative to the item or absolute.
DIRECTORIES: list of (PATH UID GID MODE).  FILES: alist (IMAGE-PATH . SOURCE)
of host files to copy in.  TRANSFORMATIONS: alist (OLD . NEW) of prefixes to
rewrite in the archive's names.  LOCALSTATEDIR?: true to put the store
database in the image, as `guix pack --localstatedir': /var/guix/db/db.sqlite
registering exactly the closure with the rows DATABASE holds for it (which
it then requires), and root's profile, a GC root, linking to the item.
SBOM: list of formats, `spdx' (SPDX 2.3 JSON) and `cyclonedx' (CycloneDX 1.5
JSON), symbols or strings: write an SBOM of exactly what the image holds,
each store item with its name and version as Guix splits them, its purl
pkg:guix/NAME@VERSION, the NAR hash and references DATABASE gives
(NOASSERTION without it), and the extra directories, symlinks and files.
SBOM-OUTPUT: the file it goes to (with several formats, that name followed
by .spdx.json and .cdx.json); by default the image's file name followed by
those suffixes.  SBOM-LICENSES: alist (ITEM . EXPRESSION), ITEM a store item
of the closure, EXPRESSION an SPDX licence expression such as
\"GPL-3.0-or-later\" (a Guix licence's name, \"GPL 3+\", is refused; inside
Guix, map each package's `license' to its SPDX identifier); the other items'
licences are NOASSERTION.
MAX-LAYERS: at most this many layers (1 to
125; #f: one).  SYSTEM: a Guix system type or GNU triplet (default: the
host's).  CREATION-TIME: seconds since the epoch, or a SRFI-19 date or time
(default: SOURCE_DATE_EPOCH, else 1970-01-01T00:00:01Z).  COMPRESSION:
`none', `gzip' or `zstd' (a symbol or string) applied to the whole archive,
at COMPRESSION-LEVEL (#f: the compressor's default).  THREADS: worker
threads (#f: one per core).

For a push to a registry (a docker://HOST[:PORT]/REPOSITORY[:TAG]
destination): REGISTRY-CREDENTIALS, a pair (USER . PASSWORD) of strings
(#f: those the auth files and credential helpers hold); CERT-DIRECTORY, a
directory of CA certificates (DIR/*.crt) trusted besides the system's;
TLS-VERIFY?, #f to accept any certificate and plain HTTP; MANIFEST-FORMAT,
`oci' (default) or `docker' (Docker's schema 2); PUSH-JOBS, at most this
many layers uploading at once (#f: 4).

The layer cache (what builds learn of each layer, so that rewriting an OCI
layout skips the layers whose blobs it holds; the image is the same with or
without it): CACHE-DIRECTORY, where it lives (#f:
$XDG_CACHE_HOME/guix-docker-native, else ~/.cache/guix-docker-native);
CACHE?, #f to neither use nor update it, as --no-cache."
  (let ((options (new-image-options)))
    (define (set-option! setter . arguments)
      (apply setter (image-options->pointer options) arguments))

    (set-option! %set-store-dir (string-argument "store directory"
                                                 (or store-directory
                                                     (default-store-directory))))
    ;; The options of one value, set when given: the value, its setter, and
    ;; how the value becomes the setter's arguments (after the options).
    (for-each (match-lambda
                ((value setter convert)
                 (when value
                   (apply set-option! setter (convert value)))))
              `((,database ,%set-database ,(string-of "database"))
                (,working-directory ,%set-working-dir
                                    ,(string-of "working directory"))
                (,user ,%set-user ,(string-of "user"))
                (,max-layers ,%set-max-layers
                             ,(lambda (n)
                                (list (uint32-argument "max-layers" n))))
                (,system ,%set-system ,(string-of "system"))
                (,sbom-output ,%set-sbom-output ,(string-of "SBOM output"))
                (,creation-time ,%set-creation-time
                                ,(compose list creation-time->seconds))
                (,threads ,%set-threads
                          ,(lambda (n) (list (uint32-argument "threads" n))))
                (,cert-directory ,%set-cert-dir ,(string-of "cert-directory"))
                (,manifest-format ,%set-manifest-format
                                  ,(lambda (format)
                                     (list (string-argument
                                            "manifest-format"
                                            (if (symbol? format)
                                                (symbol->string format)
                                                format)))))
                (,push-jobs ,%set-push-jobs
                            ,(lambda (n)
                               (list (uint32-argument "push-jobs" n))))
                (,cache-directory ,%set-cache-dir
                                  ,(string-of "cache-directory"))))
    (match registry-credentials
      (#f #t)
      (((? string? user) . (? string? password))
       (set-option! %set-registry-credentials
                    (string-argument "registry-credentials user" user)
                    ;; Not string-argument: its error would quote it.
                    (if (string-index password #\nul)
                        (invalid-argument "registry-credentials: the password \
contains a NUL character")
                        (string->pointer password "UTF-8"))))
      (_ (invalid-argument "registry-credentials: expected a pair (USER . \
PASSWORD) of strings")))
    (set-option! %set-tls-verify (if tls-verify? 1 0))
    (set-option! %set-cache (if cache? 1 0))
    (match entry-point
      ((or #f ()) #t)
      (((? string? program) (? string? arguments) ...)
       (set-option! %set-entry-point (string-argument "entry point" program))
       (for-each (lambda (argument)
                   (set-option! %add-entry-point-argument
                                (string-argument "entry point argument"
                                                 argument)))
                 arguments))
      (_ (invalid-argument "entry-point ~s: expected a list of strings, the \
program first" entry-point)))
    (for-each (match-lambda
                ((keyword . values)
                 (match (assq-ref %repeated-options keyword)
                   ((check setter convert)
                    (for-each (lambda (value)
                                (apply set-option! setter (convert value)))
                              (check (symbol->string (keyword->symbol keyword)) values))))))
              `((#:tags . ,tags)
                (#:cmd . ,cmd)
                (#:environment . ,environment)
                (#:labels . ,labels)
                (#:exposed-ports . ,exposed-ports)
                (#:volumes . ,volumes)
                (#:symlinks . ,symlinks)
                (#:directories . ,directories)
                (#:files . ,files)
                (#:transformations . ,transformations)
                (#:sbom . ,sbom)
                (#:sbom-licenses . ,sbom-licenses)))
    (set-option! %set-localstatedir (if localstatedir? 1 0))
    (unless (or (not compression-level)
                (and (exact-integer? compression-level)
                     (< 0 compression-level #x80000000)))
      (invalid-argument "compression level ~s: expected a positive integer"
                        compression-level))
    (set-option! %set-compression
                 (string-argument "compression"
                                  (if (symbol? compression)
                                      (symbol->string compression)
                                      compression))
                 (or compression-level 0))
    options))


;;;
;;; Cancellation.
;;;

(define (cancel-build! flag)
  "Request the cancellation of the builds that use FLAG, a flag from
`make-cancel-flag'.  Safe from any thread."
  (unless (cancel-flag? flag)
    (invalid-argument "cancel flag ~s: expected a flag from make-cancel-flag"
                      flag))
  (%cancel-request (cancel-flag->pointer flag)))


;;;
;;; Progress.
;;;

;; The two threads meet in a <build>: the build thread's callback posts a
;; report and waits until the caller's thread has taken it (so the library
;; is paused while the progress procedure runs, as it would be were the
;; procedure called from the callback), or until the build is abandoned.
(define-record-type <build>
  (make-build mutex condition report finished? outcome abandoned? kept)
  build?
  (kept build-kept set-build-kept!)   ;objects the library uses: see below
  (mutex build-mutex)
  (condition build-condition)
  (report build-report set-build-report!)          ;(DONE . TOTAL) or #f
  (finished? build-finished? set-build-finished!)
  (outcome build-outcome set-build-outcome!)       ;#t, or (KEY . ARGS)
  (abandoned? build-abandoned? set-build-abandoned!))

;; On the build thread: its <build>.
(define %current-build (make-thread-local-fluid #f))

;; On the caller's thread: true while its progress procedure runs.
(define %in-progress-procedure (make-thread-local-fluid #f))

(define (post-report! build done total)
  "On the build thread: hand (DONE . TOTAL) to the caller's thread and wait
until it has been taken, or until the build is abandoned."
  (with-mutex (build-mutex build)
    (unless (build-abandoned? build)
      (set-build-report! build (cons done total))
      (broadcast-condition-variable (build-condition build))
      (let wait ()
        (when (and (build-report build) (not (build-abandoned? build)))
          (wait-condition-variable (build-condition build)
                                   (build-mutex build))
          (wait))))))

(define (finish-build! build outcome)
  "On the build thread: record OUTCOME, the library call's, and wake the
caller's thread."
  (with-mutex (build-mutex build)
    (set-build-outcome! build outcome)
    (set-build-finished! build #t)
    (broadcast-condition-variable (build-condition build))))

(define (next-event build)
  "On the caller's thread: wait for the next report, returned as
(report DONE . TOTAL), or for the end of the build, returned as
(finished . OUTCOME).  The wait is interruptible: signal handlers,
`cancel-thread' and other asyncs run in it."
  (with-mutex (build-mutex build)
    (let wait ()
      (cond ((build-report build) => (cut cons 'report <>))
            ((build-finished? build) (cons 'finished (build-outcome build)))
            (else
             (wait-condition-variable (build-condition build)
                                      (build-mutex build))
             (wait))))))

(define (report-taken! build)
  (with-mutex (build-mutex build)
    (set-build-report! build #f)
    (broadcast-condition-variable (build-condition build))))

(define (abandon-build! build)
  "Release the build thread from any report it waits on, for good."
  (with-mutex (build-mutex build)
    (set-build-abandoned! build #t)
    (set-build-report! build #f)
    (broadcast-condition-variable (build-condition build))))

(define (progress-trampoline bytes-done bytes-total data)
  ;; Called by the library on the build thread.  Nothing may leave it but a
  ;; normal return: keep any failure of ours inside.
  (catch #t
    (lambda ()
      (let ((build (fluid-ref %current-build)))
        (when build
          (post-report! build bytes-done bytes-total))))
    (const #f)))

;; One C function pointer for every build: made once, never freed.
(define %progress-callback
  (delay (procedure->pointer void progress-trampoline
                             (list uint64 uint64 '*))))


;;;
;;; Running a build.
;;;

;; The library's call is made on a thread of its own, the build thread, and
;; the caller's thread waits for it, calling the progress procedure with
;; each report.  So no Scheme code of the caller ever runs above the
;; library's frames: an exception, an escape (call/ec, abort-to-prompt, a
;; continuation), `cancel-thread' or a signal's handler leave the waiting
;; loop as they would any Scheme procedure, through a `dynamic-wind' that
;; cancels the build, waits for the library to return (and so for its
;; worker threads to end), and only then lets the exit go on.  Unwinding
;; through the library's frames, which would leave its workers running on
;; a stack that is gone, cannot happen.
;;

(define (private-options options)
  "Return a copy of OPTIONS for one build, freed by the caller with
`%free-options': the build's callback and flag are set on it, so that
OPTIONS itself never changes and may serve several builds at once."
  (%clone-options (image-options->pointer options)))

(define (start-build-thread build call)
  "Make the library call CALL, a thunk, on a new thread with BUILD as its
current build; return the thread."
  (call-with-new-thread
   (lambda ()
     (with-fluids ((%current-build build))
       (finish-build!
        build
        (catch #t
          (lambda () (call) #t)
          (lambda (key . args) (cons key args))))))))

(define (accepts-two-arguments? procedure)
  (match (procedure-minimum-arity procedure)
    ((required optional rest?)
     (and (<= required 2) (or rest? (>= (+ required optional) 2))))
    (#f #t)))                           ;unknown: let the call tell

(define (run-build what options progress cancel kept output call)
  "Run CALL, a procedure of an options pointer (a private copy of OPTIONS)
making one library build call, as `build-docker-image/options' describes;
WHAT names the build in messages, KEPT lists the pointer objects the call
reads, and OUTPUT is the file to remove when the call is left after the
build wrote it (#f: none).  Return #t, or raise the build's error."
  (unless (image-options? options)
    (invalid-argument "options ~s: expected a handle from make-image-options"
                      options))
  (unless (or (not progress)
              (and (procedure? progress) (accepts-two-arguments? progress)))
    (invalid-argument "progress ~s: expected a procedure of two arguments, \
BYTES-DONE and BYTES-TOTAL" progress))
  (unless (or (not cancel) (cancel-flag? cancel))
    (invalid-argument "cancel ~s: expected a flag from make-cancel-flag"
                      cancel))
  ;; One rule, as the library's for its callbacks (which refuses a build
  ;; with the running build's options): no build from a progress procedure.
  (when (fluid-ref %in-progress-procedure)
    (invalid-argument "build of ~s: cannot start a build from a progress \
procedure" what))
  (let* ((flag (if cancel
                   (cancel-flag->pointer cancel)
                   (new-cancel-flag-pointer)))
         ;; The build record lives until `finish!' is done, and with it
         ;; what the library reads: the pointer objects of the strings and
         ;; the closure table, and that of OPTIONS, whose finalizer
         ;; (gdn_options_free) must not run while gdn_options_clone reads
         ;; it.  A foreign call's arguments alone do not keep them alive.
         (build (make-build (make-mutex) (make-condition-variable) #f #f #f #f
                            (cons* (image-options->pointer options)
                                   flag kept)))
         (copy #f)
         (thread #f)
         (entered? #f)
         (completed? #f))               ;left through the loop's end
    (define (start!)
      (set! copy (private-options options))
      (%set-cancel copy flag)
      (when progress
        (%set-progress-callback copy (force %progress-callback)
                                %null-pointer))
      (set! thread
        (start-build-thread
         build
         (lambda ()
           (call copy)))))

    (define (finish!)
      ;; Runs with asyncs blocked (see below): nothing may interrupt the
      ;; wait for the library, or the exit would outrun the build again.
      (unless completed?
        (%cancel-request flag)
        (abandon-build! build))
      (when thread
        (join-thread thread))
      (when copy
        (%free-options copy)
        (set! copy #f))
      ;; The library is done with them: release them (and, this being a
      ;; use of the record, nothing is collected before this point).
      (set-build-kept! build #f)
      ;; The build had written OUTPUT when the call was left at its last
      ;; report: undo it, the caller never got OUTPUT back.
      (when (and output
                 (not completed?)
                 (build-finished? build)
                 (eq? #t (build-outcome build))
                 (not (string=? output "-")))
        (false-if-exception (delete-file output))))

    ;; Asyncs (signal handlers, `cancel-thread', ...) are blocked from here
    ;; on and run only where this thread waits for the build or calls
    ;; PROGRESS: an async's exit then always finds the build thread known
    ;; and reaches `finish!' with asyncs blocked again, with no window for a
    ;; second async to cut the wait short.
    (let ((outcome
           (call-with-blocked-asyncs
            (lambda ()
              (dynamic-wind
                (lambda ()
                  (when entered?
                    (invalid-argument "build of ~s: it has ended; its \
progress procedure cannot be entered again" what))
                  (set! entered? #t))
                (lambda ()
                  (start!)
                  (let loop ()
                    (match (call-with-unblocked-asyncs
                            (lambda () (next-event build)))
                      (('report done . total)
                       (call-with-unblocked-asyncs
                        (lambda ()
                          (with-fluids ((%in-progress-procedure #t))
                            (progress done total))))
                       (report-taken! build)
                       (loop))
                      (('finished . outcome)
                       (set! completed? #t)
                       outcome))))
                finish!)))))
      (match outcome
        (#t #t)
        ((key . args) (apply throw key args))))))

(define* (build-docker-image/options item output options
                                     #:key closure progress cancel)
  "Write to OUTPUT (a file name, or \"-\" for standard output) the Docker
image archive of ITEM, a store item, shaped by OPTIONS, a handle from
`make-image-options'.  CLOSURE is the list of store items to put in the
image, ITEM's closure, or #f to let the library compute it (from the
options' database when one is set, else by scanning the store).  PROGRESS,
when true, is called as (PROGRESS BYTES-DONE BYTES-TOTAL) as the build
advances, on the calling thread, the build pausing meanwhile.  CANCEL, a
flag from `make-cancel-flag', stops the build when `cancel-build!' is called
on it (and is the flag requested when the call is left early, see below).
Return OUTPUT.  Errors are raised as docker-native errors.

However the call is left before the build's end (an exception or an escape
from PROGRESS, such as `call/ec' or `abort-to-prompt', a signal handler's
exception, `cancel-thread'), the build is cancelled, and the exit goes on
once the library has returned and its threads have ended, leaving nothing
at OUTPUT (a file that was there is untouched, unless the build had already
replaced it).  OPTIONS is not changed and may be used by several builds at
once."
  (let ((item-pointer (string-argument "item" item))
        (output-pointer (string-argument "output" output))
        (closure-pointer (closure-argument closure)))
    (run-build item options progress cancel
               (list item-pointer output-pointer closure-pointer)
               output
               (lambda (copy)
                 (%build-docker-image item-pointer closure-pointer
                                      (if closure (length closure) 0)
                                      output-pointer copy)))
    output))

(define (closure-argument closure)
  "CLOSURE, a list of store items or #f, as a C array (or NULL)."
  (if closure
      (string-array-argument "closure item" (list-argument "closure" closure))
      %null-pointer))

(define* (build-image/options destination item options
                              #:key closure progress cancel)
  "Write the image of ITEM, a store item, shaped by OPTIONS (a handle from
`make-image-options'), to DESTINATION, a string as the command line's -o
takes it: \"oci:DIR[:REF]\" (an OCI image layout directory, created or
added to: an entry of the ref REF is replaced, the others stay),
\"oci-archive:FILE[:REF]\" (that layout as one tar file),
\"docker-archive:FILE\", a plain file name or \"-\" (the docker-archive
`docker load' reads).  REF defaults to the first tag.  The library parses
DESTINATION (the parser of the command line and the C ABI) and refuses an
unknown transport or a bad REF before anything is written.  CLOSURE,
PROGRESS and CANCEL are as for `build-docker-image/options'.  Return
DESTINATION.  After an error nothing this build wrote is left (a layout is
as it was)."
  (let ((destination-pointer (string-argument "destination" destination))
        (item-pointer (string-argument "item" item))
        (closure-pointer (closure-argument closure)))
    (run-build item options progress cancel
               (list destination-pointer item-pointer closure-pointer)
               #f
               (lambda (copy)
                 (%build-image destination-pointer item-pointer
                               closure-pointer
                               (if closure (length closure) 0)
                               copy)))
    destination))

(define* (build-platform-image/options destination platforms options
                                       #:key progress cancel)
  "Write a multi-platform image to DESTINATION (as for
`build-image/options'; \"oci:...\" or \"oci-archive:...\" for more than one
platform): one OCI image index whose manifests are the images of the store
items of PLATFORMS, an alist of (SYSTEM . ITEM), ITEM built for the Guix
system SYSTEM (\"x86_64-linux\", \"aarch64-linux\", \"armhf-linux\",
\"i686-linux\", \"riscv64-linux\", \"powerpc64le-linux\",
\"mips64el-linux\"), each image for its system's platform (linux/amd64,
linux/arm64/v8, linux/arm/v7, ...).  Each item's closure is computed (from
the options' database, else by scanning the store) and each item is its
image's main item; OPTIONS apply to every image but for their system.
Layers the images share are stored once.  PROGRESS and CANCEL are as for
`build-docker-image/options'.  Return DESTINATION."
  (unless (and (pair? platforms)
               (every (match-lambda
                        (((? string?) . (? string?)) #t)
                        (_ #f))
                      platforms))
    (invalid-argument "platforms ~s: expected a non-empty list of \
(SYSTEM . ITEM) pairs of strings" platforms))
  (let ((destination-pointer (string-argument "destination" destination))
        (systems-pointer (string-array-argument "system" (map car platforms)))
        (items-pointer (string-array-argument "item" (map cdr platforms))))
    (run-build (map cdr platforms) options progress cancel
               (list destination-pointer systems-pointer items-pointer)
               #f
               (lambda (copy)
                 (%build-platform-image destination-pointer systems-pointer
                                        items-pointer (length platforms)
                                        copy)))
    destination))


;;;
;;; The store.
;;;

(define (loaded-module name)
  "Return module NAME if it is loaded already, else #f."
  (resolve-module name #f #:ensure #f))

(define (guix-store-directory)
  "Return the store directory Guix's own modules use, or #f without Guix:
(guix store)'s %store-prefix when that module is loaded, else (guix config)'s
%store-directory when that module can be loaded."
  (define (variable-value module name)
    (and module
         (let ((variable (module-variable module name)))
           (and variable (variable-bound? variable)
                (let ((value (variable-ref variable)))
                  (if (procedure? value) (value) value))))))
  (or (false-if-exception
       (variable-value (loaded-module '(guix store)) '%store-prefix))
      (false-if-exception
       (variable-value (resolve-interface '(guix config))
                       '%store-directory))))

(define (store-directory)
  "Return the store directory as Guix decides it: NIX_STORE_DIR when set
(it must be absolute), else Guix's own setting when its modules are there,
else \"/gnu/store\"."
  (match (getenv "NIX_STORE_DIR")
    ((or #f "") (or (guix-store-directory) "/gnu/store"))
    ((? absolute-file-name? directory) directory)
    (directory
     (invalid-argument "NIX_STORE_DIR ~s: not an absolute file name; set it \
to the store directory, such as /gnu/store, or unset it" directory))))

;; For keyword arguments named store-directory, which shadow the procedure.
(define default-store-directory store-directory)

(define* (store-item-name item #:optional (store (store-directory)))
  "Return the name of ITEM, a store file name such as
\"/gnu/store/...-hello-2.12\", without its store directory and hash: for that
example, \"hello-2.12\".  Raise a docker-native error (invalid-store-path)
naming ITEM when it is not an item of STORE, the store directory, as a
build would refuse it."
  (let ((options (make-image-options #:store-directory store))
        (pointer (string-argument "item" item)))
    (let ((name (%store-item-name pointer (image-options->pointer options))))
      (keep-alive! options pointer)
      name)))

(define* (default-image-file-name item #:optional (compression 'none)
                                  (store (store-directory)))
  "Return the file name `build-docker-image/item' writes ITEM's image to when
no output is given, as the library names it: NAME-docker-image.tar, plus
\".gz\" or \".zst\" for COMPRESSION `gzip' or `zstd', NAME being ITEM's name
(see `store-item-name'; ITEM must be an item of STORE)."
  (let ((options (make-image-options #:store-directory store
                                     #:compression compression))
        (pointer (string-argument "item" item)))
    (let ((name (%default-output-name pointer
                                      (image-options->pointer options))))
      (keep-alive! options pointer)
      name)))


;;;
;;; Guix's interface.
;;;

(define (repository->tag repository)
  "Return the image reference \"NAME:latest\" that Guix derives from
REPOSITORY, any string, as the library derives it: lowercased, each
character outside [a-z0-9._-] mapped to \".\", each run of separators
Docker's reference grammar forbids turned into one \".\", separators at
either end dropped; \"image\" when no letter or digit is left."
  (let* ((pointer (string-argument "repository" repository))
         (tag (%tag-from-name pointer)))
    (keep-alive! pointer)
    tag))

(define (compression-flags compressor program arguments allowed-letters)
  "Return the level that ARGUMENTS, flags of PROGRAM as in COMPRESSOR,
ask for, or 0 for the default.  Flags that do not change the output
(ALLOWED-LETTERS in short flags, thread counts) are accepted; any other is
refused."
  (define (refuse flag)
    (invalid-argument "compressor ~s: ~a option ~s is not understood"
                      compressor program flag))
  (fold (lambda (flag level)
          (cond ((member flag '("--best")) 9)
                ((member flag '("--fast")) 1)
                ((member flag '("--no-name" "--stdout" "--quiet" "--force"
                                "--no-progress"))
                 level)
                ((string-prefix? "--threads=" flag) level)
                ((and (string-prefix? "-T" flag)
                      (string-every char-set:digit flag 2))
                 level)
                ((and (> (string-length flag) 1)
                      (char=? #\- (string-ref flag 0))
                      (not (char=? #\- (string-ref flag 1))))
                 (let* ((letters (substring flag 1))
                        (digits (string-filter char-set:digit letters))
                        (others (string-delete char-set:digit letters)))
                   (unless (string-every allowed-letters others)
                     (refuse flag))
                   (if (string-null? digits)
                       level
                       (string->number digits))))
                (else (refuse flag))))
        0
        arguments))

(define (compressor->compression compressor)
  "Return two values, the compression (`none', `gzip' or `zstd') and its
level (0 for the default), that COMPRESSOR asks for: a command list as Guix
passes it, such as (\"gzip\" \"-9n\") or (\"/gnu/store/...-zstd/bin/zstd\"
\"-19\" \"-T0\"), or #f, () or (\"none\") for none.  xz, lzip and bzip2 are
refused as not supported yet, and so is anything else."
  (match compressor
    ((or #f () ("none")) (values 'none 0))
    (((? string? command) (? string? arguments) ...)
     (match (basename command)
       ("gzip"
        (values 'gzip (compression-flags compressor "gzip" arguments
                                         (string->char-set "ncqf"))))
       ("zstd"
        (values 'zstd (compression-flags compressor "zstd" arguments
                                         (string->char-set "cqf"))))
       ((and program (or "xz" "lzip" "bzip2"))
        (invalid-argument "compressor ~s: ~a is not supported yet; use gzip, \
zstd or no compression" compressor program))
       (program
        (invalid-argument "compressor ~s: unknown compressor ~s; expected \
gzip, zstd or none" compressor program))))
    (_
     (invalid-argument "compressor ~s: expected a command list such as \
(\"gzip\" \"-9n\"), or #f" compressor))))

(define (extra-files->options extra-files)
  "Return two values, the directories and the symlinks of
`make-image-options', for EXTRA-FILES, a list of Guix's directives:
(directory NAME [UID GID [MODE]]) and (LINK -> TARGET)."
  (let loop ((directives (list-argument "extra-files" extra-files))
             (directories '())
             (symlinks '()))
    (match directives
      (()
       (values (reverse directories) (reverse symlinks)))
      ((directive . rest)
       (match directive
         (('directory (? string? name))
          (loop rest (cons (list name 0 0 #o755) directories) symlinks))
         (('directory (? string? name) (? uint32? uid) (? uint32? gid))
          (loop rest (cons (list name uid gid #o755) directories) symlinks))
         (('directory (? string? name) (? uint32? uid) (? uint32? gid)
           (? uint32? mode))
          (loop rest (cons (list name uid gid mode) directories) symlinks))
         (((? string? link) '-> (? string? target))
          (loop rest directories (cons (cons link target) symlinks)))
         (_
          (invalid-argument "extra-files directive ~s: expected (directory \
NAME [UID GID [MODE]]), UID, GID and MODE integers from 0 to 4294967295, or \
(LINK -> TARGET), both strings" directive)))))))

(define (transformations->options transformations)
  (map (match-lambda
         (((? string? old) '-> (? string? new)) (cons old new))
         (other
          (invalid-argument "transformation ~s: expected (OLD -> NEW)"
                            other)))
       (list-argument "transformations" transformations)))

(define (environment->options environment)
  (map (match-lambda
         (((? string? name) . (? string? value)) (cons name value))
         (other
          (invalid-argument "environment entry ~s: expected (NAME . VALUE), \
both strings" other)))
       (list-argument "environment" environment)))

(define* (build-docker-image image paths prefix
                             #:key
                             repository
                             (extra-files '())
                             (transformations '())
                             system
                             database
                             entry-point
                             (environment '())
                             compressor
                             creation-time
                             max-layers
                             root-system
                             ;; Ours.
                             (tags '())
                             progress
                             cancel
                             store-directory
                             threads
                             (sbom '())
                             sbom-output
                             (sbom-licenses '())
                             cache-directory
                             (cache? #t))
  "Write to IMAGE a Docker image archive holding PATHS, the closure of
PREFIX, the store item the image is about (Guix passes a profile), as Guix's
procedure of that name in (guix docker) does, with the same keywords.

REPOSITORY: the image is tagged \"NAME:latest\", NAME derived from
REPOSITORY as Guix does (see `repository->tag'); without it, NAME comes from
PREFIX's name (Guix's own default is \"guix\").  EXTRA-FILES: Guix's
directives (directory NAME [UID GID [MODE]]), mode #o755 by default, and
(LINK -> TARGET) symlinks, created in the image.  TRANSFORMATIONS: list of
(OLD -> NEW); archive names starting with OLD start with NEW instead.
SYSTEM: the Guix system or GNU triplet the binaries are for (x86_64, i686,
arm, aarch64, mips64el, riscv64), recorded as the image's architecture;
default: the host's.  DATABASE: a store database (db.sqlite) holding PATHS,
installed as Guix does: /var/guix/db/db.sqlite (mode #o644), registering
exactly PATHS with the hash, size, references, deriver and registration
time DATABASE gives each (Guix passes a database of just PATHS; a larger
one, such as the store's own, gives the same rows), the directories
/var/guix/profiles and /var/guix/gcroots, /var/guix/gcroots/profiles
pointing to /var/guix/profiles, and root's profile guix-profile, through
guix-profile-1-link, pointing to PREFIX, which makes PREFIX a GC root.
ENTRY-POINT: list of strings, the program first.  ENVIRONMENT: alist of
(NAME . VALUE) strings.  COMPRESSOR: the command Guix passes, applied to the
whole archive: gzip and zstd with their level flags, such as (\"gzip\"
\"-9n\") or (\"zstd\" \"-19\"); #f or () for none (the default); xz, lzip and
bzip2 raise a \"not supported yet\" error.  CREATION-TIME: a SRFI-19
time-utc (as Guix passes), date, or seconds; default: SOURCE_DATE_EPOCH, else
1970-01-01T00:00:01Z (Guix's own default is the current time, which makes
images differ from run to run).  MAX-LAYERS: at most that many layers in
all (1 to 125); #f: one layer.  ROOT-SYSTEM: not supported yet; giving it
raises an error.

Our own keywords: TAGS, more \"NAME[:TAG]\" references; PROGRESS, a
procedure called with (BYTES-DONE BYTES-TOTAL) as the build advances;
CANCEL, a flag from `make-cancel-flag' that stops the build; STORE-DIRECTORY, the store PATHS live in (default: `store-directory');
THREADS, the number of worker threads (#f: one per core); SBOM, SBOM-OUTPUT
and SBOM-LICENSES, an SBOM of PATHS beside IMAGE, as for
`make-image-options' (IMAGE.spdx.json, IMAGE.cdx.json by default): for
instance #:sbom '(spdx) #:sbom-licenses (map (lambda (item) (cons item
(LICENCE-OF item))) PATHS), LICENCE-OF being the caller's mapping from an
item to its package's SPDX licence expression; CACHE-DIRECTORY and CACHE?,
the layer cache, as for `make-image-options'.

Return IMAGE.  Errors are raised as docker-native errors naming the
offending input."
  (when root-system
    (invalid-argument "root-system ~s: building an image of a whole system's \
root is not supported yet" root-system))
  (unless (or (not database) (string? database))
    (invalid-argument "database ~s: expected the file name of a store \
database (a string), or #f" database))
  (let*-values (((compression level) (compressor->compression compressor))
                ((extra-directories extra-symlinks)
                 (extra-files->options extra-files)))
    (build-docker-image/options
     prefix image
     (make-image-options
      #:store-directory store-directory
      #:database database
      #:localstatedir? (and database #t)
      #:tags (append (if repository (list (repository->tag repository)) '())
                     tags)
      #:entry-point entry-point
      #:environment (environment->options environment)
      #:directories extra-directories
      #:symlinks extra-symlinks
      #:transformations (transformations->options transformations)
      #:max-layers max-layers
      #:system system
      #:creation-time creation-time
      #:compression compression
      #:compression-level (if (zero? level) #f level)
      #:threads threads
      #:sbom sbom
      #:sbom-output sbom-output
      #:sbom-licenses sbom-licenses
      #:cache-directory cache-directory
      #:cache? cache?)
     #:closure (list-argument "paths" paths)
     #:progress progress
     #:cancel cancel)))

;; The item builders take a subset of `make-image-options' keywords plus a
;; few of their own; they hand the rest on as they came, so that each
;; keyword's default and check live in `make-image-options' alone.
(define (keyword-arguments-without arguments keywords)
  "ARGUMENTS, alternating keywords and values as a #:rest argument holds
them, without the pairs whose keyword is one of KEYWORDS."
  (let loop ((arguments arguments) (kept '()))
    (match arguments
      (() (reverse kept))
      ((keyword value . rest)
       (loop rest (if (memq keyword keywords)
                      kept
                      (cons* value keyword kept)))))))

(define (builder-image-options arguments own-keywords)
  "The options handle of a builder's keyword ARGUMENTS, less OWN-KEYWORDS,
those the builder uses itself."
  (apply make-image-options (keyword-arguments-without arguments own-keywords)))

(define* (build-docker-image/item item
                                  #:key
                                  output
                                  destination
                                  closure
                                  database
                                  (tags '())
                                  entry-point
                                  (environment '())
                                  (compression 'none)
                                  compression-level
                                  max-layers
                                  system
                                  creation-time
                                  (symlinks '())
                                  localstatedir?
                                  progress
                                  cancel
                                  store-directory
                                  threads
                                  (sbom '())
                                  sbom-output
                                  (sbom-licenses '())
                                  cache-directory
                                  (cache? #t)
                                  #:rest arguments)
  "Build the Docker image archive of ITEM, a store item, and return the
name of the file written: OUTPUT, or by default
NAME-docker-image.tar[.gz|.zst] in the current directory, NAME being ITEM's
name without its hash (see `default-image-file-name').  With DESTINATION
instead of OUTPUT, write the image there and return DESTINATION: a string
as the command line's -o takes it, \"oci:DIR[:REF]\" (an OCI image layout,
added to), \"oci-archive:FILE[:REF]\", \"docker-archive:FILE\", a plain file
name or \"-\" (see `build-image/options').

CLOSURE: the list of store items to include, ITEM's closure; by default the
library computes it, from DATABASE (a store db.sqlite) when given, else by
scanning the store for references.  TAGS: list of \"NAME[:TAG]\"; default
\"NAME:latest\" from ITEM.  ENTRY-POINT: list of a program, relative to ITEM
or absolute, and its arguments.  ENVIRONMENT: alist of (NAME . VALUE).
COMPRESSION: `none' (default), `gzip' or `zstd', at COMPRESSION-LEVEL (#f:
default); of each layer on its own for an OCI destination.  MAX-LAYERS,
SYSTEM, CREATION-TIME, THREADS: as for `make-image-options'.  SYMLINKS:
alist (LINK . TARGET), TARGET relative to ITEM or absolute, like `guix pack
-S'.  LOCALSTATEDIR?: true to put the store database in the image, as `guix
pack --localstatedir' (see `make-image-options'; it needs DATABASE).
PROGRESS: a procedure called with (BYTES-DONE BYTES-TOTAL).  CANCEL: a flag
from `make-cancel-flag' that stops the build.  STORE-DIRECTORY: the store
ITEM lives in (default: `store-directory').  SBOM, SBOM-OUTPUT,
SBOM-LICENSES: an SBOM of the image beside it or in its OCI layout, as for
`make-image-options'.  CACHE-DIRECTORY, CACHE?: the layer cache, as for
`make-image-options'."
  (when (and output destination)
    (invalid-argument "output ~s and destination ~s: give one of them"
                      output destination))
  (let ((options (builder-image-options
                  arguments
                  '(#:output #:destination #:closure #:progress #:cancel))))
    (if destination
        (build-image/options destination item options
                             #:closure closure
                             #:progress progress
                             #:cancel cancel)
        (build-docker-image/options
         item
         (or output
             (default-image-file-name item compression
                                      (or store-directory
                                          (default-store-directory))))
         options
         #:closure closure
         #:progress progress
         #:cancel cancel))))

(define* (build-platform-image destination platforms
                               #:key
                               database
                               (tags '())
                               entry-point
                               (environment '())
                               (compression 'none)
                               compression-level
                               max-layers
                               creation-time
                               (symlinks '())
                               localstatedir?
                               progress
                               cancel
                               store-directory
                               threads
                               cache-directory
                               (cache? #t)
                               #:rest arguments)
  "Write a multi-platform image to DESTINATION, \"oci:DIR[:REF]\" or
\"oci-archive:FILE[:REF]\" (a docker-archive holds one platform only), and
return DESTINATION: one OCI image index (named REF, by default the first
tag) whose manifests are the images of PLATFORMS, an alist of (SYSTEM .
ITEM), ITEM being the store item built for the Guix system SYSTEM (`guix
build --system=SYSTEM'), e.g.

  (build-platform-image \"oci:/tmp/layout\"
                        `((\"x86_64-linux\" . ,hello-x86_64)
                          (\"aarch64-linux\" . ,hello-aarch64))
                        #:tags '(\"hello:2.12\")
                        #:entry-point '(\"bin/hello\"))

Each image is for its system's platform (x86_64-linux: linux/amd64,
aarch64-linux: linux/arm64/v8, armhf-linux: linux/arm/v7, i686-linux:
linux/386, riscv64-linux, powerpc64le-linux, mips64el-linux), with its
item's closure (from DATABASE when given, else by scanning the store) and
its item as main item (ENTRY-POINT and SYMLINKS are relative to it).
Layers the images share are stored once.  The other keywords are those of
`build-docker-image/item'."
  (build-platform-image/options
   destination platforms
   (builder-image-options arguments '(#:progress #:cancel))
   #:progress progress
   #:cancel cancel))

;;; docker-native.scm ends here
