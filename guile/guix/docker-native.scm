;;; guix-docker-native --- Docker images from Guix store items, natively.
;;;
;;; This file is part of guix-docker-native, licensed under the GNU GPL,
;;; version 3 or (at your option) any later version.

(define-module (guix docker-native)
  #:use-module (system foreign)
  #:use-module (rnrs bytevectors)
  #:use-module (ice-9 format)
  #:use-module (ice-9 match)
  #:use-module (ice-9 regex)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:use-module (srfi srfi-11)
  #:use-module (srfi srfi-19)
  #:use-module (srfi srfi-26)
  #:export (build-docker-image
            build-docker-image/item
            build-docker-image/options
            make-image-options
            image-options?

            make-cancel-flag
            cancel-flag?
            cancel-build!

            docker-native-error?
            docker-native-error-code
            docker-native-error-symbol
            docker-native-error-message

            docker-native-library-file
            docker-native-version
            docker-native-abi-version

            store-directory
            store-item-name
            default-image-file-name
            repository->tag
            compressor->compression))

;;; Commentary:
;;;
;;; Bindings to libguix_docker_native, the native engine that writes the
;;; Docker image archive of a store item and its closure (what `docker load'
;;; reads).  The library is opened through the dynamic FFI the first time it
;;; is needed, so loading this module costs nothing and works without it.
;;;
;;; `build-docker-image' takes the arguments of Guix's procedure of that name
;;; in (guix docker), so that `guix pack -f docker' can switch modules and
;;; change nothing else.  `build-docker-image/item' is the short form: an
;;; item in, an image file name out.
;;;
;;; Code:


;;;
;;; Errors.
;;;

;; Every failure, from the library or from checks made here, is thrown with
;; this key and three arguments: the library's result code (an integer, or #f
;; when the library could not be loaded), a symbol naming that code, and a
;; message that names the offending input.
(define %error-key 'docker-native-error)

(define %result-symbols
  ;; The C ABI's result codes (src/error.rs): stable, only ever appended to.
  '((1 . null-argument)
    (2 . invalid-argument)
    (3 . invalid-store-path)
    (4 . incomplete-closure)
    (5 . unsupported-file)
    (6 . io)
    (7 . output)
    (8 . database)
    (9 . cancelled)
    (10 . panic)))

(define %invalid-argument 2)
(define %invalid-store-path 3)

(define (result-symbol code)
  (or (assv-ref %result-symbols code) 'unknown))

(define (raise-docker-native-error code message)
  (throw %error-key code (if code (result-symbol code) 'library-not-found)
         message))

(define (invalid-argument fmt . args)
  (raise-docker-native-error %invalid-argument (apply format #f fmt args)))

(define (docker-native-error? obj)
  "Return true if OBJ, an exception object (as given to a handler installed
with `with-exception-handler' or `guard'), is an error of this module."
  (and (exception? obj)
       (eq? (exception-kind obj) %error-key)))

(define (error-field exception index)
  (unless (docker-native-error? exception)
    (throw 'wrong-type-arg 'docker-native-error-field
           "Not a docker-native error: ~S" (list exception) (list exception)))
  (list-ref (exception-args exception) index))

(define (docker-native-error-code exception)
  "Return the result code of EXCEPTION, a docker-native error: an integer
from the C ABI (2 for an invalid argument, 3 for an invalid store path, ...),
or #f when the library could not be loaded."
  (error-field exception 0))

(define (docker-native-error-symbol exception)
  "Return the symbol naming the result code of EXCEPTION, such as
`invalid-argument', `invalid-store-path', `io', or `library-not-found'."
  (error-field exception 1))

(define (docker-native-error-message exception)
  "Return the message of EXCEPTION, a docker-native error: it names the input
that was refused and says what is wrong with it."
  (error-field exception 2))

(set-exception-printer!
 %error-key
 (lambda (port key args default-printer)
   (match args
     ((code (? symbol? symbol) (? string? message))
      (format port "guix-docker-native: ~a [~a~@[, code ~a~]]"
              message symbol code))
     (_ (default-printer)))))


;;;
;;; Finding and loading the library.
;;;

(define %library-environment-variable "GUIX_DOCKER_NATIVE_LIBRARY")
(define %library-soname "libguix_docker_native")
(define %library-file-name (string-append %library-soname ".so"))
(define %expected-abi-version 1)
;; The installed library's name: the SONAME, which carries the ABI version
;; (the unversioned .so is for the linker, and may be absent).
(define %installed-library-file-name
  (string-append %library-file-name "." (number->string %expected-abi-version)))

;; The absolute file name of the library an installation put in place, or
;; #f: set by `make install' or a package definition in
;; (guix docker-native config), as Guix's own (guix config) does for the
;; libraries Guix binds.
(define %configured-library-file
  (@ (guix docker-native config) %configured-library-file))

(define (module-relative-library-files)
  "Return the files where the library sits relative to this module's source:
in the Cargo build directory when the module is loaded from a checkout, and
in PREFIX/lib when it is installed under PREFIX/share/guile/site/VERSION."
  (match (search-path %load-path "guix/docker-native.scm")
    (#f '())
    (source
     (let ((root (dirname (dirname (canonicalize-path source)))))
       (append
        (let ((checkout (dirname root)))
          (if (file-exists? (string-append checkout "/Cargo.toml"))
              (list (string-append checkout "/target/release/"
                                   %library-file-name))
              '()))
        (match (string-match "^(.*)/share/guile/site/[0-9.]+$" root)
          (#f '())
          (m (map (cut string-append (match:substring m 1) "/lib/" <>)
                  (list %installed-library-file-name
                        %library-file-name)))))))))

(define (dynamic-link-error-message args)
  "Turn the arguments of a `dynamic-link' failure into a short reason."
  (match args
    ((_ (? string? fmt) (? list? fmt-args) . _)
     (match fmt-args
       ((file (? string? why)) why)
       (_ (apply format #f fmt fmt-args))))
    (_ (format #f "~s" args))))

(define (try-dynamic-link file)
  "Return the library handle of FILE, or a string saying why it failed."
  (catch #t
    (lambda () (dynamic-link file))
    (lambda (key . args)
      (dynamic-link-error-message args))))

(define (library-candidates)
  "Return the places to look for the library, best first, each as a pair:
what to pass to `dynamic-link' and how to describe it in an error."
  (let ((from-environment (getenv %library-environment-variable)))
    (if (and from-environment (not (string-null? from-environment)))
        ;; The user named one file: look nowhere else.
        `((,from-environment
           . ,(string-append %library-environment-variable "="
                             from-environment)))
        (append
         (if %configured-library-file
             `((,%configured-library-file
                . ,(string-append %configured-library-file
                                  " (configured at installation)")))
             '())
         (map (lambda (file) (cons file file))
              (delete-duplicates (module-relative-library-files)))
         (map (lambda (name)
                (cons name
                      (string-append name
                                     " through the dynamic linker \
(LD_LIBRARY_PATH: "
                                     (or (getenv "LD_LIBRARY_PATH") "unset")
                                     ")")))
              (list %installed-library-file-name %library-file-name))))))

(define (open-library)
  "Open the library at the first place that works and check its ABI
version; return (HANDLE . FILE).  Raise an error listing every place tried
when none works."
  (let loop ((candidates (library-candidates))
             (failures '()))
    (match candidates
      (()
       (raise-docker-native-error
        #f
        (format #f "~a not found or not loadable; looked at:~{~%  ~a~}~%\
Build it with `cargo build --release' and use ./pre-inst-env, or set ~a \
to its file name."
                %library-file-name (reverse failures)
                %library-environment-variable)))
      (((file . description) . rest)
       (let ((handle (try-dynamic-link file)))
         (if (string? handle)
             (loop rest (cons (string-append description ": " handle)
                              failures))
             (begin
               (check-abi-version handle description)
               (cons handle (if (string-prefix? "/" file)
                                file
                                description)))))))))

(define (check-abi-version handle description)
  (let* ((pointer (catch #t
                    (lambda () (dynamic-func "gdn_abi_version" handle))
                    (lambda _
                      (raise-docker-native-error
                       #f (format #f "~a: not guix-docker-native's library \
(it has no gdn_abi_version)" description)))))
         (version ((pointer->procedure uint32 pointer '()))))
    (unless (= version %expected-abi-version)
      (raise-docker-native-error
       #f (format #f "~a: C ABI version ~a, but this module needs version ~a"
                  description version %expected-abi-version)))))

;; (HANDLE . FILE), opened on first use.
(define %library (delay (open-library)))

(define (docker-native-library-file)
  "Load the library if it is not loaded yet, and return where it was found:
its file name, or a description of how the dynamic linker found it.  Raise a
docker-native error with code #f and symbol `library-not-found' when it is
nowhere to be found."
  (cdr (force %library)))

(define (library-function-pointer name)
  (match (force %library)
    ((handle . file)
     (catch #t
       (lambda () (dynamic-func name handle))
       (lambda _
         (raise-docker-native-error
          #f (format #f "~a: has no function ~a (a build of another version?)"
                     file name)))))))

(define (library-procedure return-type name argument-types)
  "Return a procedure calling the library's C function NAME, which is looked
up the first time the procedure is called."
  (let ((procedure #f))
    (lambda args
      (unless procedure
        (set! procedure (pointer->procedure return-type
                                            (library-function-pointer name)
                                            argument-types)))
      (apply procedure args))))

(define %last-error-message
  (library-procedure '* "gdn_last_error_message" '()))

(define (checked-library-procedure name argument-types)
  "Return a procedure calling NAME, a C function returning a gdn_result:
any result but GDN_OK is raised as a docker-native error carrying the
library's message."
  (let ((call (library-procedure int32 name argument-types)))
    (lambda args
      ;; The message is thread-local and valid until the next library call
      ;; on this thread: block asyncs (finalizers among them, which call
      ;; gdn_options_free) until it has been copied.
      (match (call-with-blocked-asyncs
              (lambda ()
                (let ((result (apply call args)))
                  (if (zero? result)
                      #f
                      (cons result
                            (let ((message (%last-error-message)))
                              (if (null-pointer? message)
                                  (string-append name " failed")
                                  (pointer->string message -1
                                                   "UTF-8"))))))))
        (#f #t)
        ((code . message) (raise-docker-native-error code message))))))

(define (docker-native-abi-version)
  "Return the C ABI version of the loaded library (this module needs 1)."
  ((library-procedure uint32 "gdn_abi_version" '())))

(define (docker-native-version)
  "Return the version of the loaded library, such as \"0.1.0\"."
  (pointer->string ((library-procedure '* "gdn_version" '())) -1 "UTF-8"))


;;;
;;; Converting arguments.
;;;

(define (string-argument what value)
  "Return VALUE, a string, as a pointer to a NUL-terminated UTF-8 copy;
refuse anything else with an error naming WHAT."
  (unless (string? value)
    (invalid-argument "~a ~s: expected a string" what value))
  (when (string-index value #\nul)
    (invalid-argument "~a ~s: contains a NUL character" what value))
  (string->pointer value "UTF-8"))

(define (uint32-argument what value)
  (unless (and (exact-integer? value) (<= 0 value #xffffffff))
    (invalid-argument "~a ~s: expected an integer from 0 to ~a"
                      what value #xffffffff))
  value)

(define (string-array-argument what strings)
  "Return a pointer to a C array of pointers to NUL-terminated UTF-8 copies
of STRINGS.  Table and strings live in one bytevector, which the returned
pointer keeps alive for as long as it is referenced."
  (define pointer-size (sizeof '*))
  (define encoded
    (map (lambda (s)
           (string-argument what s)        ;type and NUL checks
           (string->utf8 s))
         strings))
  (let* ((table-size (* pointer-size (length encoded)))
         (size (fold (lambda (bv total) (+ total 1 (bytevector-length bv)))
                     table-size encoded))
         (buffer (make-bytevector (max size 1) 0))
         (base (pointer-address (bytevector->pointer buffer))))
    (let loop ((encoded encoded) (slot 0) (offset table-size))
      (match encoded
        (() (bytevector->pointer buffer))
        ((bv . rest)
         (bytevector-copy! bv 0 buffer offset (bytevector-length bv))
         (bytevector-uint-set! buffer slot (+ base offset)
                               (native-endianness) pointer-size)
         (loop rest (+ slot pointer-size)
               (+ offset 1 (bytevector-length bv))))))))

(define (creation-time->seconds value)
  "Return VALUE, a number of seconds since the epoch, a SRFI-19 date, or a
SRFI-19 time of type time-utc or time-tai, as seconds since the epoch."
  (cond ((exact-integer? value) value)
        ((date? value) (time-second (date->time-utc value)))
        ((and (time? value) (eq? (time-type value) time-utc))
         (time-second value))
        ((and (time? value) (eq? (time-type value) time-tai))
         (time-second (time-tai->time-utc value)))
        (else
         (invalid-argument "creation-time ~s: expected seconds since the \
epoch, a SRFI-19 date, or a time-utc or time-tai time" value))))


;;;
;;; The options handle.
;;;

(define-wrapped-pointer-type <image-options>
  image-options?
  pointer->image-options image-options->pointer
  (lambda (options port)
    (format port "#<image-options ~a>"
            (number->string (pointer-address
                             (image-options->pointer options))
                            16))))

(define (library-object-maker new-name free-name)
  "Return a procedure that makes an object with the library's NEW-NAME, a
C function of no arguments, and returns its pointer, which the garbage
collector frees with FREE-NAME."
  (let ((new (library-procedure '* new-name '())))
    (lambda ()
      (let ((pointer (new)))
        (when (null-pointer? pointer)
          (raise-docker-native-error 10 (string-append new-name
                                                       " returned NULL")))
        (set-pointer-finalizer! pointer (library-function-pointer free-name))
        pointer))))

(define %new-options-pointer
  (library-object-maker "gdn_options_new" "gdn_options_free"))

(define (new-image-options)
  "Return a fresh options handle, freed by the garbage collector."
  (pointer->image-options (%new-options-pointer)))

(define-syntax-rule (define-option-setter name c-name (type ...))
  (define name
    (let ((call (checked-library-procedure c-name (list '* type ...))))
      (lambda (options . args)
        (apply call (image-options->pointer options) args)))))

(define-option-setter %set-store-dir "gdn_options_set_store_dir" ('*))
(define-option-setter %set-database "gdn_options_set_database" ('*))
(define-option-setter %add-tag "gdn_options_add_tag" ('*))
(define-option-setter %set-entry-point "gdn_options_set_entry_point" ('*))
(define-option-setter %add-entry-point-argument
  "gdn_options_add_entry_point_argument" ('*))
(define-option-setter %add-cmd "gdn_options_add_cmd" ('*))
(define-option-setter %add-env "gdn_options_add_env" ('*))
(define-option-setter %set-working-dir "gdn_options_set_working_dir" ('*))
(define-option-setter %set-user "gdn_options_set_user" ('*))
(define-option-setter %add-label "gdn_options_add_label" ('* '*))
(define-option-setter %add-exposed-port "gdn_options_add_exposed_port" ('*))
(define-option-setter %add-volume "gdn_options_add_volume" ('*))
(define-option-setter %add-symlink "gdn_options_add_symlink" ('* '*))
(define-option-setter %add-directory "gdn_options_add_directory"
  ('* uint32 uint32 uint32))
(define-option-setter %add-file "gdn_options_add_file" ('* '*))
(define-option-setter %add-transformation "gdn_options_add_transformation"
  ('* '*))
(define-option-setter %set-max-layers "gdn_options_set_max_layers" (uint32))
(define-option-setter %set-system "gdn_options_set_system" ('*))
(define-option-setter %set-creation-time "gdn_options_set_creation_time"
  (int64))
(define-option-setter %set-compression "gdn_options_set_compression"
  ('* int32))
(define-option-setter %set-threads "gdn_options_set_threads" (uint32))
(define-option-setter %set-localstatedir "gdn_options_set_localstatedir"
  (int32))
(define-option-setter %set-progress-callback
  "gdn_options_set_progress_callback" ('* '*))
(define-option-setter %set-cancel "gdn_options_set_cancel" ('*))

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
                             max-layers
                             system
                             creation-time
                             (compression 'none)
                             compression-level
                             threads)
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
MAX-LAYERS: at most this many layers (1 to
125; #f: one).  SYSTEM: a Guix system type or GNU triplet (default: the
host's).  CREATION-TIME: seconds since the epoch, or a SRFI-19 date or time
(default: SOURCE_DATE_EPOCH, else 1970-01-01T00:00:01Z).  COMPRESSION:
`none', `gzip' or `zstd' (a symbol or string) applied to the whole archive,
at COMPRESSION-LEVEL (#f: the compressor's default).  THREADS: worker
threads (#f: one per core)."
  (let ((options (new-image-options)))
    (define (string-of what value)
      (string-argument what value))

    (%set-store-dir options (string-of "store directory"
                                       (or store-directory
                                           (default-store-directory))))
    (when database
      (%set-database options (string-of "database" database)))
    (for-each (lambda (tag) (%add-tag options (string-of "tag" tag)))
              (list-argument "tags" tags))
    (match entry-point
      ((or #f ()) #t)
      (((? string? program) (? string? arguments) ...)
       (%set-entry-point options (string-of "entry point" program))
       (for-each (lambda (argument)
                   (%add-entry-point-argument
                    options (string-of "entry point argument" argument)))
                 arguments))
      (_ (invalid-argument "entry-point ~s: expected a list of strings, the \
program first" entry-point)))
    (for-each (lambda (arg) (%add-cmd options (string-of "cmd" arg)))
              (list-argument "cmd" cmd))
    (for-each (match-lambda
                ((name . value)
                 (%add-env options
                           (string-of "environment variable"
                                      (string-append name "=" value)))))
              (pairs-argument "environment" environment))
    (when working-directory
      (%set-working-dir options
                        (string-of "working directory" working-directory)))
    (when user
      (%set-user options (string-of "user" user)))
    (for-each (match-lambda
                ((key . value)
                 (%add-label options (string-of "label" key)
                             (string-of "label value" value))))
              (pairs-argument "labels" labels))
    (for-each (lambda (port)
                (%add-exposed-port options
                                   (string-of "exposed port"
                                              (if (exact-integer? port)
                                                  (number->string port)
                                                  port))))
              (list-argument "exposed-ports" exposed-ports))
    (for-each (lambda (volume)
                (%add-volume options (string-of "volume" volume)))
              (list-argument "volumes" volumes))
    (for-each (match-lambda
                ((link . target)
                 (%add-symlink options (string-of "symlink" link)
                               (string-of "symlink target" target))))
              (pairs-argument "symlinks" symlinks))
    (for-each (match-lambda
                ((path uid gid mode)
                 (%add-directory options (string-of "directory" path)
                                 (uint32-argument "uid" uid)
                                 (uint32-argument "gid" gid)
                                 (uint32-argument "mode" mode)))
                (other
                 (invalid-argument "directory ~s: expected (PATH UID GID MODE)"
                                   other)))
              (list-argument "directories" directories))
    (for-each (match-lambda
                ((path . source)
                 (%add-file options (string-of "file" path)
                            (string-of "file source" source))))
              (pairs-argument "files" files))
    (for-each (match-lambda
                ((old . new)
                 (%add-transformation options
                                      (string-of "transformation" old)
                                      (string-of "transformation target"
                                                 new))))
              (pairs-argument "transformations" transformations))
    (%set-localstatedir options (if localstatedir? 1 0))
    (when max-layers
      (%set-max-layers options (uint32-argument "max-layers" max-layers)))
    (when system
      (%set-system options (string-of "system" system)))
    (when creation-time
      (%set-creation-time options (creation-time->seconds creation-time)))
    (unless (or (not compression-level)
                (and (exact-integer? compression-level)
                     (< 0 compression-level #x80000000)))
      (invalid-argument "compression level ~s: expected a positive integer"
                        compression-level))
    (%set-compression options
                      (string-of "compression"
                                 (if (symbol? compression)
                                     (symbol->string compression)
                                     compression))
                      (or compression-level 0))
    (when threads
      (%set-threads options (uint32-argument "threads" threads)))
    options))


;;;
;;; Progress.
;;;

;; The progress procedure of the build running on this thread, the
;; exception it raised, if any, and the build's cancellation flag (a
;; gdn_cancel pointer).  The library calls the callback only on the thread
;; that called build_docker_image, inside that call.
(define-record-type <progress-state>
  (make-progress-state procedure exception cancel)
  progress-state?
  (procedure progress-state-procedure)
  (exception progress-state-exception set-progress-state-exception!)
  (cancel progress-state-cancel))



;;;
;;; Cancellation.
;;;

(define %cancel-request (library-procedure void "gdn_cancel_request" '(*)))

;; Return a fresh gdn_cancel pointer, freed by the garbage collector.
(define new-cancel-flag
  (library-object-maker "gdn_cancel_new" "gdn_cancel_free"))

(define-wrapped-pointer-type <cancel-flag>
  cancel-flag?
  pointer->cancel-flag cancel-flag->pointer
  (lambda (flag port)
    (format port "#<cancel-flag ~a>"
            (number->string (pointer-address (cancel-flag->pointer flag))
                            16))))

(define (make-cancel-flag)
  "Return a new cancellation flag.  Pass it as #:cancel to builds, and call
`cancel-build!' on it, from any thread, to stop them: each raises a
docker-native error with symbol `cancelled' and leaves nothing at its
output.  A flag stays requested: a build started with it afterwards stops
before writing anything."
  (pointer->cancel-flag (new-cancel-flag)))

(define (cancel-build! flag)
  "Request the cancellation of the builds that use FLAG, a flag from
`make-cancel-flag'.  Safe from any thread."
  (unless (cancel-flag? flag)
    (invalid-argument "cancel flag ~s: expected a flag from make-cancel-flag"
                      flag))
  (%cancel-request (cancel-flag->pointer flag)))

(define %current-progress (make-thread-local-fluid #f))

(define (progress-trampoline bytes-done bytes-total data)
  (match (fluid-ref %current-progress)
    (#f #t)
    (state
     (unless (progress-state-exception state)
       ;; Never let a Scheme exception unwind through the library's frames:
       ;; keep it, stop the build, and raise it once the build has returned.
       (with-exception-handler
           (lambda (exception)
             (set-progress-state-exception! state exception)
             (%cancel-request (progress-state-cancel state)))
         (lambda ()
           ;; The build runs with asyncs blocked (see
           ;; `checked-library-procedure'); let them run here, inside the
           ;; handler, so that a signal handler's exception stops the build
           ;; too instead of waiting for its end.
           (call-with-unblocked-asyncs
            (lambda ()
              ((progress-state-procedure state) bytes-done bytes-total))))
         #:unwind? #t)))))

;; One C function pointer for every build: made once, never freed.
(define %progress-callback
  (delay (procedure->pointer void progress-trampoline
                             (list uint64 uint64 '*))))


;;;
;;; Building.
;;;

(define %build-docker-image
  (checked-library-procedure "build_docker_image"
                             (list '* '* size_t '* '*)))

(define* (build-docker-image/options item output options
                                     #:key closure progress cancel)
  "Write to OUTPUT (a file name, or \"-\" for standard output) the Docker
image archive of ITEM, a store item, shaped by OPTIONS, a handle from
`make-image-options'.  CLOSURE is the list of store items to put in the
image, ITEM's closure, or #f to let the library compute it (from the
options' database when one is set, else by scanning the store).  PROGRESS,
when true, is called as (PROGRESS BYTES-DONE BYTES-TOTAL) as the build
advances, on the calling thread; an exception it raises cancels the build
(which stops within the next 128 KiB of data) and is raised again once the
library has returned, and nothing is left at OUTPUT then.  CANCEL, a flag
from `make-cancel-flag', stops the build when `cancel-build!' is called on
it (it is also the flag an exception from PROGRESS requests).  Return
OUTPUT.  Errors are raised as docker-native errors."
  (unless (image-options? options)
    (invalid-argument "options ~s: expected a handle from make-image-options"
                      options))
  (unless (or (not progress) (procedure? progress))
    (invalid-argument "progress ~s: expected a procedure" progress))
  (unless (or (not cancel) (cancel-flag? cancel))
    (invalid-argument "cancel ~s: expected a flag from make-cancel-flag"
                      cancel))
  ;; The library forbids starting a build from its progress callback.
  (when (fluid-ref %current-progress)
    (invalid-argument "build of ~s: cannot start a build from a progress \
procedure" item))
  (let ((item-pointer (string-argument "item" item))
        (output-pointer (string-argument "output" output))
        (closure-pointer (if closure
                             (string-array-argument
                              "closure item" (list-argument "closure" closure))
                             %null-pointer))
        (closure-length (if closure (length closure) 0))
        (flag (cond (cancel (cancel-flag->pointer cancel))
                    (progress (new-cancel-flag))
                    (else #f))))
    (define state (and progress (make-progress-state progress #f flag)))
    (when progress
      (%set-progress-callback options (force %progress-callback)
                              %null-pointer))
    (when flag
      (%set-cancel options flag))
    (let ((completed?                   ;#f when cancelled on PROGRESS's behalf
           (dynamic-wind
             (const #t)
             (lambda ()
               (with-fluids ((%current-progress state))
                 (catch %error-key
                   (lambda ()
                     (%build-docker-image item-pointer closure-pointer
                                          closure-length output-pointer
                                          (image-options->pointer options)))
                   (lambda (key code symbol message)
                     ;; When the progress procedure raised, the build was
                     ;; cancelled on its behalf: its exception is raised
                     ;; below.
                     (if (and state (progress-state-exception state)
                              (eq? symbol 'cancelled))
                         #f
                         (throw key code symbol message))))))
             (lambda ()
               ;; Clear the callback and the flag, whether set or not:
               ;; besides, this use of OPTIONS after the build keeps its
               ;; handle reachable, so its finalizer cannot run while the
               ;; library uses it.
               (%set-progress-callback options %null-pointer %null-pointer)
               (%set-cancel options %null-pointer)))))
      (match (and state (progress-state-exception state))
        (#f output)
        (exception
         ;; A cancelled build left nothing (and whatever was at OUTPUT
         ;; before is untouched); one that had finished when the
         ;; procedure raised, at its last call, is undone.
         (when (and completed? (not (string=? output "-")))
           (false-if-exception (delete-file output)))
         (raise-exception exception))))))


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
  "Return the store directory as Guix decides it: NIX_STORE_DIR when set,
else Guix's own setting when its modules are there, else \"/gnu/store\"."
  (match (getenv "NIX_STORE_DIR")
    ((or #f "") (or (guix-store-directory) "/gnu/store"))
    (directory directory)))

;; For keyword arguments named store-directory, which shadow the procedure.
(define default-store-directory store-directory)

(define %nix-base32-characters
  (string->char-set "0123456789abcdfghijklmnpqrsvwxyz"))

(define (store-item-name item)
  "Return the name of ITEM, a store file name such as
\"/gnu/store/...-hello-2.12\", without its store directory and hash: for that
example, \"hello-2.12\".  Raise a docker-native error (invalid-store-path)
naming ITEM when it does not look like a store item."
  (let ((base (and (string? item) (basename item))))
    (unless (and base
                 (string-prefix? "/" item)
                 (> (string-length base) 33)
                 (char=? (string-ref base 32) #\-)
                 (string-every %nix-base32-characters base 0 32))
      (raise-docker-native-error
       %invalid-store-path
       (format #f "~s: not a store item (expected an absolute \
STORE/HASH-NAME file name, HASH being 32 nix-base32 characters)" item)))
    (substring base 33)))

(define* (default-image-file-name item #:optional (compression 'none))
  "Return the file name `build-docker-image/item' writes ITEM's image to when
no output is given: NAME-docker-image.tar, plus \".gz\" or \".zst\" for
COMPRESSION `gzip' or `zstd'."
  (string-append (store-item-name item) "-docker-image.tar"
                 (match (if (string? compression)
                            (string->symbol compression)
                            compression)
                   ('gzip ".gz")
                   ('zstd ".zst")
                   (_ ""))))


;;;
;;; Guix's interface.
;;;

(define (repository->tag repository)
  "Return the image reference \"NAME:latest\" that Guix derives from
REPOSITORY, any string: lowercased, each character outside [a-z0-9._-]
mapped to \".\", then, to follow Docker's reference grammar, each run of
separators it forbids turned into one \".\" and separators at either end
dropped."
  (define (separator? c) (memv c '(#\. #\_ #\-)))
  (define (allowed-separator-run? run)
    (or (member run '("." "_" "__"))
        (string-every #\- run)))
  (define mapped
    (string-map (lambda (c)
                  (if (or (char<=? #\a c #\z) (char<=? #\0 c #\9)
                          (separator? c))
                      c
                      #\.))
                (string-downcase
                 (if (string? repository)
                     repository
                     (invalid-argument "repository ~s: expected a string"
                                       repository)))))
  ;; Split into alternating runs of name characters and separators.
  (define runs
    (let loop ((chars (string->list mapped)) (runs '()))
      (match chars
        (() (reverse runs))
        ((c . _)
         (let-values (((run rest) (span (if (separator? c)
                                            separator?
                                            (negate separator?))
                                        chars)))
           (loop rest (cons (list->string run) runs)))))))
  (define name-runs
    (let ((trimmed (drop-while (compose separator? (cut string-ref <> 0))
                               runs)))
      (reverse (drop-while (compose separator? (cut string-ref <> 0))
                           (reverse trimmed)))))
  (when (null? name-runs)
    (invalid-argument "repository ~s: has no letter or digit to name the \
image with" repository))
  (string-append
   (string-concatenate
    (map (lambda (run)
           (if (and (separator? (string-ref run 0))
                    (not (allowed-separator-run? run)))
               "."
               run))
         name-runs))
   ":latest"))

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
         (('directory (? string? name) uid gid)
          (loop rest (cons (list name uid gid #o755) directories) symlinks))
         (('directory (? string? name) uid gid mode)
          (loop rest (cons (list name uid gid mode) directories) symlinks))
         (((? string? link) '-> (? string? target))
          (loop rest directories (cons (cons link target) symlinks)))
         (_
          (invalid-argument "extra-files directive ~s: expected (directory \
NAME [UID GID [MODE]]) or (LINK -> TARGET)" directive)))))))

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
                             threads)
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
THREADS, the number of worker threads (#f: one per core).

Return IMAGE.  Errors are raised as docker-native errors naming the
offending input."
  (when root-system
    (invalid-argument "root-system ~s: building an image of a whole system's \
root is not supported yet" root-system))
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
      #:threads threads)
     #:closure (list-argument "paths" paths)
     #:progress progress
     #:cancel cancel)))

(define* (build-docker-image/item item
                                  #:key
                                  output
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
                                  threads)
  "Build the Docker image archive of ITEM, a store item, and return the
name of the file written: OUTPUT, or by default
NAME-docker-image.tar[.gz|.zst] in the current directory, NAME being ITEM's
name without its hash (see `default-image-file-name').

CLOSURE: the list of store items to include, ITEM's closure; by default the
library computes it, from DATABASE (a store db.sqlite) when given, else by
scanning the store for references.  TAGS: list of \"NAME[:TAG]\"; default
\"NAME:latest\" from ITEM.  ENTRY-POINT: list of a program, relative to ITEM
or absolute, and its arguments.  ENVIRONMENT: alist of (NAME . VALUE).
COMPRESSION: `none' (default), `gzip' or `zstd', at COMPRESSION-LEVEL (#f:
default).  MAX-LAYERS, SYSTEM, CREATION-TIME, THREADS: as for
`make-image-options'.  SYMLINKS: alist (LINK . TARGET), TARGET relative to
ITEM or absolute, like `guix pack -S'.  LOCALSTATEDIR?: true to put the
store database in the image, as `guix pack --localstatedir' (see
`make-image-options'; it needs DATABASE).  PROGRESS: a procedure called with
(BYTES-DONE BYTES-TOTAL).  CANCEL: a flag from `make-cancel-flag' that stops
the build.  STORE-DIRECTORY: the store ITEM lives in (default:
`store-directory')."
  (let ((output (or output (default-image-file-name item compression))))
    (build-docker-image/options
     item output
     (make-image-options #:store-directory store-directory
                         #:database database
                         #:tags tags
                         #:entry-point entry-point
                         #:environment environment
                         #:symlinks symlinks
                         #:localstatedir? localstatedir?
                         #:max-layers max-layers
                         #:system system
                         #:creation-time creation-time
                         #:compression compression
                         #:compression-level compression-level
                         #:threads threads)
     #:closure closure
     #:progress progress
     #:cancel cancel)))

;;; docker-native.scm ends here
