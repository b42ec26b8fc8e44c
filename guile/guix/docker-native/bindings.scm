;;; guix-docker-native --- Docker images from Guix store items, natively.
;;;
;;; This file is part of guix-docker-native, licensed under the GNU GPL,
;;; version 3 or (at your option) any later version.

(define-module (guix docker-native bindings)
  #:use-module (guix docker-native config)
  #:use-module (system foreign)
  #:use-module (rnrs bytevectors)
  #:use-module (ice-9 format)
  #:use-module (ice-9 match)
  #:use-module (ice-9 regex)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-26)
  #:export (;; Errors.
            raise-docker-native-error
            invalid-argument
            result-code
            docker-native-error?
            docker-native-error-code
            docker-native-error-symbol
            docker-native-error-message

            ;; The library.
            docker-native-library-file
            docker-native-version
            docker-native-abi-version
            library-procedure

            ;; Arguments.
            string-argument
            string-array-argument
            uint32?
            uint32-argument
            keep-alive!

            ;; Wrapped pointers.  The types are exported because their
            ;; accessors, inlined where they are used, refer to them.
            <image-options>
            <cancel-flag>
            image-options?
            new-image-options
            image-options->pointer
            cancel-flag?
            make-cancel-flag
            cancel-flag->pointer
            new-cancel-flag-pointer

            ;; The C functions.
            %set-store-dir %set-database %add-tag %set-entry-point
            %add-entry-point-argument %add-cmd %add-env %set-working-dir
            %set-user %add-label %add-exposed-port %add-volume %add-symlink
            %add-directory %add-file %add-transformation %set-max-layers
            %set-system %set-creation-time %set-compression %set-threads
            %set-localstatedir %set-progress-callback %set-cancel
            %set-registry-credentials %set-cert-dir %set-tls-verify
            %set-manifest-format %set-push-jobs
            %set-cache-dir %set-cache
            %clone-options %free-options %cancel-request %build-docker-image
            %build-image %build-platform-image
            %store-item-name %default-output-name %tag-from-name
            %add-sbom %set-sbom-output %add-sbom-license))

;;; Commentary:
;;;
;;; The bindings of libguix_docker_native through the dynamic FFI: finding
;;; and loading the library (on first use, so that loading this module
;;; costs nothing and works without it), the one procedure maker that turns
;;; a C function into a Scheme procedure, the wrapped pointer types whose
;;; finalizers free the library's handles, and the one error key.  The
;;; result codes, the rules of store paths, of default file names and of
;;; tags are the library's, asked for through the C ABI, never repeated
;;; here.  (guix docker-native) is the interface built on these.
;;;
;;; Code:


;;;
;;; Errors.
;;;

;; Every failure, from the library or from checks made in Scheme, is thrown
;; with this key and three arguments: the library's result code (an integer,
;; or #f when the library could not be loaded), the symbol the library names
;; that code with (`gdn_result_name'), and a message that names the
;; offending input.
(define %error-key 'docker-native-error)

(define (raise-docker-native-error code message)
  (throw %error-key code (if code (result-symbol code) 'library-not-found)
         message))

(define (invalid-argument fmt . args)
  "Raise an error of the library's code `invalid-argument', with the
message FMT formatted with ARGS."
  (raise-docker-native-error (result-code 'invalid-argument)
                             (apply format #f fmt args)))

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
(define %library-file-name "libguix_docker_native.so")
(define %expected-abi-version 1)
;; The installed library's name: the SONAME, which carries the ABI version
;; (the unversioned .so is for the linker, and may be absent).
(define %installed-library-file-name
  (string-append %library-file-name "." (number->string %expected-abi-version)))
;; A function of the newest symbol version this module uses (GDN_1.2): a
;; library without it is older than the module.
(define %newest-function "gdn_options_add_sbom")

(define (module-relative-library-files)
  "Return the files where the library sits relative to the modules' source:
in the Cargo build directory when they are loaded from a checkout, and in
PREFIX/lib when they are installed under PREFIX/share/guile/site/VERSION."
  (match (search-path %load-path "guix/docker-native/bindings.scm")
    (#f '())
    (source
     ;; ROOT/guix/docker-native/bindings.scm
     (let ((root (dirname (dirname (dirname (canonicalize-path source))))))
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
               (check-library handle description)
               (cons handle (if (string-prefix? "/" file)
                                file
                                description)))))))))

(define (check-library handle description)
  "Refuse the library HANDLE unless it is guix-docker-native's, of this
module's ABI version, and no older than the functions this module uses."
  (define (has? name)
    (false-if-exception (dynamic-func name handle)))
  (unless (has? "gdn_abi_version")
    (raise-docker-native-error
     #f (format #f "~a: not guix-docker-native's library (it has no \
gdn_abi_version)" description)))
  (let ((version ((pointer->procedure uint32 (dynamic-func "gdn_abi_version"
                                                           handle)
                                      '()))))
    (unless (= version %expected-abi-version)
      (raise-docker-native-error
       #f (format #f "~a: C ABI version ~a, but this module needs version ~a"
                  description version %expected-abi-version))))
  (unless (has? %newest-function)
    (raise-docker-native-error
     #f (format #f "~a: a library older than this module (it has no ~a)"
                description %newest-function))))

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


;;;
;;; The procedure maker.
;;;

(define (pointer->utf8 pointer)
  (pointer->string pointer -1 "UTF-8"))

(define* (library-procedure name return argument-types #:key finalizer)
  "Return a procedure calling the library's C function NAME, which takes
ARGUMENT-TYPES (foreign types) and is looked up on the first call.  RETURN
says what it returns and what the procedure does with it:

  `result'  a gdn_result: GDN_OK returns #t, any other code is raised as a
            docker-native error carrying the library's message;
  `string'  a gdn_result, the function taking one more argument, a char **
            where the library puts a string: the procedure returns the
            string (freed with gdn_string_free) or raises as for `result';
  `handle'  a pointer to a new handle, NULL on failure, which is raised;
            with FINALIZER, the name of the C function that frees it, the
            garbage collector frees the handle;
  otherwise a foreign type, returned as it is."
  (define foreign-return
    (match return
      ((or 'result 'string) int32)
      ('handle '*)
      (type type)))
  (define foreign-arguments
    (if (eq? return 'string)
        (append argument-types '(*))
        argument-types))
  (define procedure #f)
  (define (call . args)
    (unless procedure
      (set! procedure (pointer->procedure foreign-return
                                          (library-function-pointer name)
                                          foreign-arguments)))
    (apply procedure args))
  (match return
    ('result
     (lambda args
       (checked-call name (lambda () (values (apply call args) #t)))))
    ('string
     (lambda args
       (let ((slot (make-bytevector (sizeof '*) 0)))
         (checked-call
          name
          (lambda ()
            (let ((code (apply call (append args
                                            (list (bytevector->pointer
                                                   slot))))))
              (values code (and (zero? code) (take-string! slot)))))))))
    ('handle
     (lambda args
       (let ((pointer (checked-call
                       name
                       (lambda ()
                         (let ((pointer (apply call args)))
                           (if (null-pointer? pointer)
                               (values (result-code 'panic) #f)
                               (values 0 pointer)))))))
         (when finalizer
           (set-pointer-finalizer! pointer
                                   (library-function-pointer finalizer)))
         pointer)))
    (_ call)))

(define %last-error-message
  (library-procedure "gdn_last_error_message" '* '()))

(define %string-free
  (library-procedure "gdn_string_free" void '(*)))

(define (take-string! slot)
  "Return the string the library put in SLOT, a bytevector holding a char *,
and free it."
  (let ((pointer (make-pointer (bytevector-uint-ref slot 0 (native-endianness)
                                                    (sizeof '*)))))
    (let ((text (pointer->utf8 pointer)))
      (%string-free pointer)
      text)))

(define (checked-call name thunk)
  "Call THUNK, which calls the library's NAME and returns two values, a
result code and what to return on success; raise any other code as a
docker-native error with the library's message."
  ;; The message is thread-local and valid until the next library call on
  ;; this thread: block asyncs (finalizers among them, which call
  ;; gdn_options_free) until it has been copied.
  (match (call-with-blocked-asyncs
          (lambda ()
            (call-with-values thunk
              (lambda (code value)
                (if (zero? code)
                    (list #t value)
                    (list code
                          (let ((message (%last-error-message)))
                            (if (null-pointer? message)
                                (string-append name " failed")
                                (pointer->utf8 message)))))))))
    ((#t value) value)
    ((code message) (raise-docker-native-error code message))))

(define (docker-native-abi-version)
  "Return the C ABI version of the loaded library (this module needs 1)."
  ((library-procedure "gdn_abi_version" uint32 '())))

(define (docker-native-version)
  "Return the version of the loaded library, such as \"0.1.0\"."
  (pointer->utf8 ((library-procedure "gdn_version" '* '()))))


;;;
;;; Result codes, as the library names them.
;;;

(define %result-name (library-procedure "gdn_result_name" '* (list int32)))

;; ((CODE . SYMBOL) ...): every result code the library knows, from 0 on,
;; with its name (`gdn_result_name'), read once.
(define %result-symbols
  (delay (let loop ((code 0) (table '()))
           (let ((name (%result-name code)))
             (if (null-pointer? name)
                 (reverse table)
                 (loop (+ code 1)
                       (acons code (string->symbol (pointer->utf8 name))
                              table)))))))

(define (result-symbol code)
  (or (assv-ref (force %result-symbols) code) 'unknown))

(define (result-code symbol)
  "Return the library's result code named SYMBOL, such as `invalid-argument'."
  (or (any (match-lambda
             ((code . name) (and (eq? name symbol) code)))
           (force %result-symbols))
      (error "the library has no result code named" symbol)))


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

(define (uint32? value)
  (and (exact-integer? value) (<= 0 value #xffffffff)))

(define (uint32-argument what value)
  (unless (uint32? value)
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

;; The last objects given to `keep-alive!'.
(define %kept-alive #f)

(define (keep-alive! . objects)
  "Keep OBJECTS reachable up to this call.  A foreign call's arguments are
bare addresses: call this after the call with the Scheme objects that own
them (a handle with a finalizer, a string's pointer), so that none is
collected, and its memory freed, while the library reads it."
  (set! %kept-alive objects))


;;;
;;; Wrapped pointers.
;;;

(define-wrapped-pointer-type <image-options>
  image-options?
  pointer->image-options image-options->pointer
  (lambda (options port)
    (format port "#<image-options ~a>"
            (number->string (pointer-address
                             (image-options->pointer options))
                            16))))

(define %new-options-pointer
  (library-procedure "gdn_options_new" 'handle '()
                     #:finalizer "gdn_options_free"))

(define (new-image-options)
  "Return a fresh options handle, freed by the garbage collector."
  (pointer->image-options (%new-options-pointer)))

(define-wrapped-pointer-type <cancel-flag>
  cancel-flag?
  pointer->cancel-flag cancel-flag->pointer
  (lambda (flag port)
    (format port "#<cancel-flag ~a>"
            (number->string (pointer-address (cancel-flag->pointer flag))
                            16))))

;; Return a fresh gdn_cancel pointer, freed by the garbage collector.
(define new-cancel-flag-pointer
  (library-procedure "gdn_cancel_new" 'handle '()
                     #:finalizer "gdn_cancel_free"))

(define (make-cancel-flag)
  "Return a new cancellation flag.  Pass it as #:cancel to builds, and call
`cancel-build!' on it, from any thread, to stop them: each raises a
docker-native error with symbol `cancelled' and leaves nothing at its
output.  A flag stays requested: a build started with it afterwards stops
before writing anything."
  (pointer->cancel-flag (new-cancel-flag-pointer)))


;;;
;;; The C functions.
;;;

;; The options' setters: each takes the options pointer first.
(define %set-store-dir (library-procedure "gdn_options_set_store_dir" 'result '(* *)))
(define %set-database (library-procedure "gdn_options_set_database" 'result '(* *)))
(define %add-tag (library-procedure "gdn_options_add_tag" 'result '(* *)))
(define %set-entry-point (library-procedure "gdn_options_set_entry_point" 'result '(* *)))
(define %add-entry-point-argument
  (library-procedure "gdn_options_add_entry_point_argument" 'result '(* *)))
(define %add-cmd (library-procedure "gdn_options_add_cmd" 'result '(* *)))
(define %add-env (library-procedure "gdn_options_add_env" 'result '(* *)))
(define %set-working-dir (library-procedure "gdn_options_set_working_dir" 'result '(* *)))
(define %set-user (library-procedure "gdn_options_set_user" 'result '(* *)))
(define %add-label (library-procedure "gdn_options_add_label" 'result '(* * *)))
(define %add-exposed-port (library-procedure "gdn_options_add_exposed_port" 'result '(* *)))
(define %add-volume (library-procedure "gdn_options_add_volume" 'result '(* *)))
(define %add-symlink (library-procedure "gdn_options_add_symlink" 'result '(* * *)))
(define %add-directory
  (library-procedure "gdn_options_add_directory" 'result
                     (list '* '* uint32 uint32 uint32)))
(define %add-file (library-procedure "gdn_options_add_file" 'result '(* * *)))
(define %add-transformation
  (library-procedure "gdn_options_add_transformation" 'result '(* * *)))
(define %set-max-layers
  (library-procedure "gdn_options_set_max_layers" 'result (list '* uint32)))
(define %set-system (library-procedure "gdn_options_set_system" 'result '(* *)))
(define %set-creation-time
  (library-procedure "gdn_options_set_creation_time" 'result (list '* int64)))
(define %set-compression
  (library-procedure "gdn_options_set_compression" 'result (list '* '* int32)))
(define %set-threads
  (library-procedure "gdn_options_set_threads" 'result (list '* uint32)))
;; Whether the image holds the store database (--localstatedir).
(define %set-localstatedir
  (library-procedure "gdn_options_set_localstatedir" 'result (list '* int32)))
(define %set-progress-callback
  (library-procedure "gdn_options_set_progress_callback" 'result '(* * *)))
(define %set-cancel (library-procedure "gdn_options_set_cancel" 'result '(* *)))
;; SBOMs (GDN_1.2): a format, the file, an item's licence.
(define %add-sbom (library-procedure "gdn_options_add_sbom" 'result '(* *)))
(define %set-sbom-output
  (library-procedure "gdn_options_set_sbom_output" 'result '(* *)))
(define %add-sbom-license
  (library-procedure "gdn_options_add_sbom_license" 'result '(* * *)))
;; A push's options (GDN_1.2).
(define %set-registry-credentials
  (library-procedure "gdn_options_set_registry_credentials" 'result '(* * *)))
(define %set-cert-dir (library-procedure "gdn_options_set_cert_dir" 'result '(* *)))
(define %set-tls-verify
  (library-procedure "gdn_options_set_tls_verify" 'result (list '* int32)))
(define %set-manifest-format
  (library-procedure "gdn_options_set_manifest_format" 'result '(* *)))
(define %set-push-jobs
  (library-procedure "gdn_options_set_push_jobs" 'result (list '* uint32)))
;; The layer cache (GDN_1.3).
(define %set-cache-dir (library-procedure "gdn_options_set_cache_dir" 'result '(* *)))
(define %set-cache
  (library-procedure "gdn_options_set_cache" 'result (list '* int32)))

;; A build's private copy of options, freed by the build itself (no
;; finalizer, so never wrapped in an <image-options>: see
;; `build-docker-image/options').
(define %clone-options (library-procedure "gdn_options_clone" 'handle '(*)))
(define %free-options (library-procedure "gdn_options_free" void '(*)))

(define %cancel-request (library-procedure "gdn_cancel_request" void '(*)))

(define %build-docker-image
  (library-procedure "build_docker_image" 'result (list '* '* size_t '* '*)))
;; To a destination string: (DESTINATION ITEM CLOSURE LENGTH OPTIONS), and
;; (DESTINATION SYSTEMS ITEMS COUNT OPTIONS) for several platforms.
(define %build-image
  (library-procedure "gdn_build_image" 'result (list '* '* '* size_t '*)))
(define %build-platform-image
  (library-procedure "gdn_build_platform_image" 'result (list '* '* '* size_t '*)))

;; The names the library gives: (ITEM OPTIONS) and (NAME) to a string.
(define %store-item-name (library-procedure "gdn_store_item_name" 'string '(* *)))
(define %default-output-name
  (library-procedure "gdn_default_output_name" 'string '(* *)))
(define %tag-from-name (library-procedure "gdn_tag_from_name" 'string '(*)))

;;; bindings.scm ends here
