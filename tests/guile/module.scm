;;; (guix docker-native): loading the library, converting arguments, and
;;; the error each bad input raises.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-19)
             (srfi srfi-64)
             (ice-9 match)
             (ice-9 regex))

(test-suite-begin "module")

(define top (top-directory))

;; Runs EXPRESSION (a string) in a fresh Guile, where the library has not
;; been loaded yet, with ENVIRONMENT; returns its standard output.
(define* (guile-output expression #:key (environment '())
                       (load-path (string-append top "/guile")))
  (call-with-values
      (lambda ()
        (run-command (list "guile" "--no-auto-compile" "-c" expression)
                     #:environment
                     `(("GUILE_LOAD_PATH" . ,load-path)
                       ;; A copy of the modules elsewhere is newer than
                       ;; run.sh's compiled files: do not offer those.
                       ,@(if (string-prefix? top load-path)
                             '()
                             '(("GUILE_LOAD_COMPILED_PATH" . #f)))
                       ,@environment)))
    (lambda (status stdout stderr)
      (string-append stdout stderr))))

(define-syntax-rule (test-refused name (expected-code needle ...) thunk)
  (match (error-fields thunk)
    ((code symbol message)
     (test-assert name
       (and (eqv? code expected-code)
            (string-contains message needle) ...)))))

(define %print-error
  "(use-modules (guix docker-native))
   (catch 'docker-native-error
     (lambda () (display (docker-native-library-file)))
     (lambda (key code symbol message)
       (write (list code symbol)) (newline) (display message)))")

;;;
;;; Loading.
;;;

(test-group "loading"
  (test-assert "loading the module does not load the library"
    (string-contains
     (guile-output "(use-modules (guix docker-native)) (display 'loaded)"
                   #:environment '(("GUIX_DOCKER_NATIVE_LIBRARY"
                                    . "/nonexistent/libx.so")))
     "loaded"))

  (test-equal "GUIX_DOCKER_NATIVE_LIBRARY names the file that is loaded"
    (string-append top "/target/release/libguix_docker_native.so")
    (docker-native-library-file))

  (test-equal "ABI version" 1 (docker-native-abi-version))

  (test-assert "library version is the crate's"
    (string-match "^[0-9]+\\.[0-9]+\\.[0-9]+" (docker-native-version)))

  (let ((output (guile-output %print-error
                              #:environment
                              '(("GUIX_DOCKER_NATIVE_LIBRARY"
                                 . "/nonexistent/libgdn.so")))))
    (test-assert "a missing GUIX_DOCKER_NATIVE_LIBRARY file is an error \
with code #f and symbol library-not-found"
      (string-prefix? "(#f library-not-found)" output))
    (test-assert "... naming the file and the variable"
      (and (string-contains output "/nonexistent/libgdn.so")
           (string-contains output "GUIX_DOCKER_NATIVE_LIBRARY"))))

  ;; Without the variable, from the checkout: the error lists the Cargo
  ;; build directory and the dynamic linker.
  (let ((output (guile-output
                 %print-error
                 #:environment `(("GUIX_DOCKER_NATIVE_LIBRARY" . #f)
                                 ("LD_LIBRARY_PATH" . "/nonexistent-lib")))))
    ;; The checkout's target/release holds the library, so it is found.
    (test-equal "without the variable, the checkout's build is found"
      (string-append top "/target/release/libguix_docker_native.so")
      output))

  (let* ((copy (make-temporary-directory))
         (output (begin
                   (command-output "cp" "-r" (string-append top "/guile")
                                   copy)
                   (guile-output
                    %print-error
                    #:load-path (string-append copy "/guile")
                    #:environment `(("GUIX_DOCKER_NATIVE_LIBRARY" . #f)
                                    ("LD_LIBRARY_PATH"
                                     . "/nonexistent-lib"))))))
    (delete-directory copy)
    (test-assert "nowhere to be found: the error says where it looked"
      (and (string-prefix? "(#f library-not-found)" output)
           (string-contains output "libguix_docker_native.so")
           (string-contains output "dynamic linker")
           (string-contains output "/nonexistent-lib"))))

  ;; An installation: PREFIX/share/guile/site/3.0 and PREFIX/lib.
  (let* ((prefix (make-temporary-directory))
         (site (string-append prefix "/share/guile/site/3.0"))
         (output (begin
                   (command-output "mkdir" "-p" site (string-append prefix
                                                                   "/lib"))
                   (command-output "cp" "-r" (string-append top "/guile/guix")
                                   site)
                   (command-output "cp" (string-append
                                         top "/target/release/"
                                         "libguix_docker_native.so")
                                   (string-append prefix "/lib"))
                   (guile-output
                    %print-error
                    #:load-path site
                    #:environment `(("GUIX_DOCKER_NATIVE_LIBRARY" . #f)
                                    ("LD_LIBRARY_PATH"
                                     . "/nonexistent-lib"))))))
    (delete-directory prefix)
    (test-equal "installed under PREFIX, the library in PREFIX/lib is found"
      (string-append prefix "/lib/libguix_docker_native.so")
      output))

  (let ((output (guile-output %print-error
                              #:environment
                              '(("GUIX_DOCKER_NATIVE_LIBRARY"
                                 . "libz.so.1")))))
    (test-assert "another library is refused: it lacks gdn_abi_version"
      (and (string-prefix? "(#f library-not-found)" output)
           (string-contains output "libz.so.1")
           (string-contains output "gdn_abi_version")))))

;;;
;;; Store directory and names.
;;;

(test-group "store"
  (test-equal "NIX_STORE_DIR decides the store directory"
    "/tmp/some/store\n"
    (guile-output "(use-modules (guix docker-native))
                   (display (store-directory)) (newline)"
                  #:environment '(("NIX_STORE_DIR" . "/tmp/some/store"))))

  (test-equal "without NIX_STORE_DIR nor Guix, /gnu/store"
    "/gnu/store\n"
    (guile-output "(use-modules (guix docker-native))
                   (display (store-directory)) (newline)"
                  #:environment '(("NIX_STORE_DIR" . #f))))

  (test-equal "with (guix store) loaded, its %store-prefix"
    "/fake/guix/store\n"
    (guile-output "(use-modules (guix store) (guix docker-native))
                   (display (store-directory)) (newline)"
                  #:load-path (string-append top "/guile:" top
                                             "/tests/guile/fake-guix")
                  #:environment '(("NIX_STORE_DIR" . #f)
                                  ("FAKE_GUIX_STORE" . "/fake/guix/store"))))

  (test-equal "store-item-name"
    "hello-2.12"
    (store-item-name
     "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12"))

  (test-equal "default-image-file-name with zstd"
    "hello-2.12-docker-image.tar.zst"
    (default-image-file-name
      "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12" 'zstd))

  (match (error-fields (lambda () (store-item-name "/gnu/store/hello")))
    ((code symbol message)
     (test-equal "not a store item: invalid-store-path" '(3 invalid-store-path)
       (list code symbol))
     (test-assert "... naming it" (string-contains message "/gnu/store/hello"))))

  ;; The library's rule, with the store it is given: an item of another
  ;; store, or a file inside an item, is not one.
  (test-equal "store-item-name in another store"
    "hello-2.12"
    (store-item-name "/tmp/s/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12"
                     "/tmp/s"))
  (for-each
   (lambda (item needle)
     (match (error-fields (lambda () (store-item-name item "/gnu/store")))
       ((code symbol message)
        (test-assert (string-append "not an item of /gnu/store: " item)
          (and (eq? symbol 'invalid-store-path)
               (string-contains message item)
               (string-contains message needle))))))
   '("/tmp/s/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12"
     "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12/bin")
   '("not under the store directory" "inside the store item"))
  (test-equal "default-image-file-name: gzip, another store"
    "hello-2.12-docker-image.tar.gz"
    (default-image-file-name
      "/tmp/s/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12" 'gzip "/tmp/s")))

;;;
;;; Result codes: the library's names.
;;;

(test-group "result codes"
  (test-equal "Scheme-side checks raise the library's invalid-argument"
    '(2 invalid-argument)
    (match (error-fields (lambda () (make-image-options #:tags "hello")))
      ((code symbol message) (list code symbol))))
  (test-equal "the library's own errors carry its names"
    '(3 invalid-store-path)
    (match (error-fields (lambda () (store-item-name "relative")))
      ((code symbol message) (list code symbol)))))

;;;
;;; Conversions done on the Scheme side.
;;;

(test-group "conversions"
  (test-equal "repository->tag maps as Guix does"
    '("hello:latest" "guile.gnutls:latest" "a.b:latest" "my-app_2:latest"
      "x.y:latest")
    (map repository->tag
         '("hello" "Guile+GnuTLS" "a..b" "My-App_2" "--x/y--")))
  ;; The library's rule: a name with no letter or digit gives "image"
  ;; (the Scheme copy this replaced raised an error for it).
  (test-equal "repository->tag: no letter or digit gives image:latest"
    "image:latest"
    (repository->tag "+++"))
  (test-refused "repository->tag of a non-string" (2 "repository")
    (lambda () (repository->tag 'hello)))

  (test-equal "compressor->compression: gzip -9n"
    '(gzip 9)
    (call-with-values (lambda () (compressor->compression '("gzip" "-9n")))
      list))
  (test-equal "compressor->compression: a store file name, zstd -19 -T0"
    '(zstd 19)
    (call-with-values
        (lambda ()
          (compressor->compression
           '("/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-zstd-1.5/bin/zstd"
             "-19" "-T0")))
      list))
  (test-equal "compressor->compression: #f, () and (\"none\")"
    '((none 0) (none 0) (none 0))
    (map (lambda (c)
           (call-with-values (lambda () (compressor->compression c)) list))
         '(#f () ("none"))))
  (for-each
   (lambda (program)
     (match (error-fields
             (lambda () (compressor->compression (list program "-9"))))
       ((code symbol message)
        (test-assert (string-append program " is not supported yet")
          (and (eqv? code 2)
               (string-contains message program)
               (string-contains message "not supported yet"))))))
   '("xz" "lzip" "bzip2"))
  (match (error-fields (lambda () (compressor->compression '("gzip" "-9x"))))
    ((code symbol message)
     (test-assert "an unknown gzip flag is refused, naming it"
       (and (eqv? code 2) (string-contains message "-9x"))))))

;;;
;;; Errors from options, before any build.
;;;


(test-group "option errors"
  (test-assert "default options make a handle"
    (image-options? (make-image-options)))

  (test-refused "invalid tag, named by the library" (2 "Not:A:Tag")
    (lambda () (make-image-options #:tags '("Not:A:Tag"))))
  (test-refused "max-layers 0" (2 "max-layers")
    (lambda () (make-image-options #:max-layers 0)))
  (test-assert "registry options make a handle"
    (image-options? (make-image-options
                     #:registry-credentials '("me" . "hunter2")
                     #:cert-directory "/etc/certs" #:tls-verify? #f
                     #:manifest-format 'docker #:push-jobs 8)))
  (test-refused "registry credentials not a pair" (2 "registry-credentials")
    (lambda () (make-image-options #:registry-credentials "me:hunter2")))
  (test-assert "a refused password is never quoted"
    (match (error-fields
            (lambda ()
              (make-image-options #:registry-credentials '("m:e" . "hunter2"))))
      ((2 _ message) (and (string-contains message "m:e")
                          (not (string-contains message "hunter2"))))
      (_ #f)))
  (test-refused "unknown manifest format" (2 "manifest format 'v1'")
    (lambda () (make-image-options #:manifest-format 'v1)))
  (test-refused "push-jobs 65" (2 "jobs 65")
    (lambda () (make-image-options #:push-jobs 65)))
  (test-refused "push-jobs not an integer" (2 "push-jobs")
    (lambda () (make-image-options #:push-jobs "4")))
  (test-refused "cert-directory not a string" (2 "cert-directory")
    (lambda () (make-image-options #:cert-directory 5)))
  (test-refused "max-layers 126" (2 "126")
    (lambda () (make-image-options #:max-layers 126)))
  (test-refused "max-layers not an integer" (2 "max-layers" "many")
    (lambda () (make-image-options #:max-layers "many")))
  (test-refused "unknown system" (2 "sparc-linux")
    (lambda () (make-image-options #:system "sparc-linux")))
  (test-refused "unknown compression" (2 "lz4")
    (lambda () (make-image-options #:compression 'lz4)))
  (test-refused "gzip level 10" (2 "10")
    (lambda () (make-image-options #:compression 'gzip
                                   #:compression-level 10)))
  (test-refused "environment value not a string" (2 "PORT")
    (lambda () (make-image-options #:environment '(("PORT" . 80)))))
  (test-refused "environment name empty" (2 "=x")
    (lambda () (make-image-options #:environment '(("" . "x")))))
  (test-refused "a NUL in a string" (2 "entry point")
    (lambda () (make-image-options #:entry-point '("/bin/a\x00b"))))
  (test-refused "entry point not a list of strings" (2 "entry-point")
    (lambda () (make-image-options #:entry-point "/bin/sh")))
  (test-refused "relative symlink name" (2 "bin")
    (lambda () (make-image-options #:symlinks '(("bin" . "/x")))))
  (test-refused "directory mode out of range" (2 "mode")
    (lambda () (make-image-options #:directories '(("/tmp" 0 0 -1)))))
  (test-refused "creation time of the wrong type" (2 "creation-time" "yesterday")
    (lambda () (make-image-options #:creation-time "yesterday")))
  (test-refused "exposed port out of range" (2 "70000")
    (lambda () (make-image-options #:exposed-ports '(70000))))

  (test-assert "every kind of creation time is accepted"
    (every image-options?
           (map (lambda (time) (make-image-options #:creation-time time))
                (list 86400
                      (make-time time-utc 0 86400)
                      (make-time time-tai 0 86437)
                      (time-utc->date (make-time time-utc 0 86400) 0))))))

;;;
;;; Errors from `build-docker-image', Guix's interface.
;;;

(define %item "/gnu/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12")

(define (guix-build . keywords)
  (apply build-docker-image "/tmp/gdn-never-written.tar" (list %item) %item
         keywords))

(test-group "build-docker-image errors"
  (test-refused "root-system is not supported yet" (2 "root-system"
                                                     "not supported yet")
    (lambda () (guix-build #:root-system "/tmp/root")))
  (test-refused "xz compressor" (2 "xz" "not supported yet")
    (lambda () (guix-build #:compressor '("xz" "-e" "-T0"))))
  (test-refused "bad extra-files directive" (2 "(file \"/etc/x\")")
    (lambda () (guix-build #:extra-files '((file "/etc/x")))))
  (test-refused "bad transformation" (2 "(\"/a\" \"/b\")")
    (lambda () (guix-build #:transformations '(("/a" "/b")))))
  ;; The library derives the tag: "+++" gives image:latest (see
  ;; "conversions"); a repository that is not a string is refused.
  (test-refused "repository not a string" (2 "repository")
    (lambda () (guix-build #:repository 42)))
  (test-refused "bad environment entry" (2 "LANG")
    (lambda () (guix-build #:environment '(("LANG" . C)))))
  (test-refused "paths not a list" (2 "paths")
    (lambda ()
      (build-docker-image "/tmp/gdn-never-written.tar" %item %item)))
  (test-assert "nothing was written"
    (not (file-exists? "/tmp/gdn-never-written.tar"))))

;;;
;;; The exception printer.
;;;

(test-assert "the exception printer shows the message, symbol and code"
  (let ((text (call-with-output-string
                (lambda (port)
                  (print-exception port #f 'docker-native-error
                                   '(7 output "/x/y.tar: cannot write"))))))
    (and (string-contains text "/x/y.tar: cannot write")
         (string-contains text "output")
         (string-contains text "7"))))

(test-assert "docker-native-error? and accessors on exception objects"
  (match (with-exception-handler
             (lambda (e)
               (list (docker-native-error? e)
                     (docker-native-error-code e)
                     (docker-native-error-symbol e)
                     (docker-native-error-message e)))
           (lambda () (make-image-options #:max-layers 0))
           #:unwind? #t)
    ((#t 2 'invalid-argument (? string? message))
     (string-contains message "max-layers"))
    (_ #f)))

(test-suite-end "module")
