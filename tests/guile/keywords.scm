;;; Every keyword of build-docker-image and build-docker-image/item, given a
;;; value of the wrong type or out of range: a docker-native error naming
;;; the keyword, never a raw error from the FFI or a wrong-type-arg, and
;;; nothing written.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-26)
             (srfi srfi-64)
             (ice-9 match))

(test-suite-begin "keywords")

(define-values (root store) (make-mini-store-root))
(define tiny (mini-store-item root "tiny"))
(define closure (mini-store-closure root))
(define output (string-append root "/out/image.tar"))
(mkdir (dirname output))

(define (outcome thunk)
  "Call THUNK: (CODE SYMBOL MESSAGE) for a docker-native error, (raw KEY
ARGS) for any other exception, (returned VALUE) otherwise."
  (catch #t
    (lambda ()
      (match (error-fields thunk)
        (('no-error 'no-error _) (list 'returned))
        (fields fields)))
    (lambda (key . args)
      (list 'raw key args))))

(define (check-refused procedure keyword value needles)
  (let ((name (format #f "~a #:~a ~s" procedure keyword value)))
    (match (outcome
            (lambda ()
              (define keywords
                (append (if (eq? keyword 'store-directory)
                            '()
                            (list #:store-directory store))
                        (list (symbol->keyword keyword) value)))
              (match procedure
                ('build-docker-image
                 (apply build-docker-image output closure tiny keywords))
                ('build-docker-image/item
                 (apply build-docker-image/item tiny
                        (if (eq? keyword 'output)
                            keywords
                            (cons* #:output output keywords)))))))
      ((2 'invalid-argument message)
       (test-assert (string-append name ": names the keyword")
         (or (any (cut string-contains message <>) needles)
             (begin
               (format #t "    message: ~a~%" message)
               #f))))
      (other
       (test-assert (format #f "~a: an invalid-argument error, not ~s"
                            name other)
         #f)))
    (test-equal (string-append name ": nothing written")
      '() (directory-entries (dirname output)))))

(define (two-arguments-needed x) x)

;; (KEYWORD VALUE NEEDLE...): the message holds one of the NEEDLEs.
(define %common-cases
  `((tags "latest" "tags")
    (tags (5) "tag")
    (tags ("Upper:Case") "Upper:Case")
    (entry-point 5 "entry-point")
    (entry-point "bin/tiny" "entry-point")
    (entry-point ("bin/tiny" 5) "entry-point")
    (environment (1 2) "environment")
    (environment 5 "environment")
    (environment (("A" . 1)) "environment" "\"A\"")
    (environment (("" . "x")) "environment" "=x")
    (creation-time x "creation-time")
    (creation-time "2024-01-01" "creation-time")
    (creation-time ,(expt 2 70) "creation-time")
    (creation-time 253402300800 "creation-time")
    (creation-time -62167219201 "creation-time")
    (max-layers "3" "max-layers")
    (max-layers 0 "max-layers")
    (max-layers 126 "max-layers")
    (max-layers -1 "max-layers")
    (max-layers 2.5 "max-layers")
    (max-layers ,(expt 2 40) "max-layers")
    (system 5 "system")
    (system x86_64-linux "system")
    (system "sparc-linux" "sparc-linux")
    (progress 5 "progress")
    (progress ,two-arguments-needed "progress")
    (cancel 5 "cancel")
    (cancel #t "cancel")
    (store-directory 5 "store directory" "store-directory")
    (store-directory "gnu/store" "store directory" "store-directory")
    (threads -1 "threads")
    (threads "2" "threads")
    (threads 5000 "threads")
    (threads ,(expt 2 33) "threads")
    (sbom spdx "sbom")
    (sbom (5) "SBOM format")
    (sbom (swid) "swid")
    (sbom-output 5 "SBOM output")
    (sbom-licenses 5 "sbom-licenses")
    (sbom-licenses (("/x" . 5)) "sbom-licenses")
    (sbom-licenses (("/x" . "GPL 3+")) "GPL 3+")))

(define %build-docker-image-cases
  `((repository 5 "repository")
    ;; "+++" is no longer refused: the library's rule names it "image"
    ;; (images.scm, "repository").
    (extra-files 5 "extra-files")
    (extra-files ((directory 5)) "extra-files")
    (extra-files ((directory "/x" "0" 0)) "extra-files")
    (extra-files ((directory "/x" 0 0 -1)) "extra-files")
    (extra-files ((directory "/x" 0 0 ,(expt 2 32))) "extra-files")
    (extra-files (("/a" -> 5)) "extra-files")
    (extra-files (("/a" to "/b")) "extra-files")
    (transformations 5 "transformations")
    (transformations ((a -> b)) "transformation")
    (database 5 "database")
    (database (a) "database")
    (environment (("A" . "1") x) "environment")
    (compressor 5 "compressor")
    (compressor ("lzma") "compressor")
    (compressor ("gzip" 9) "compressor")
    (compressor ("gzip" "--bogus") "compressor")
    (compressor ("xz") "compressor")
    (root-system "/" "root-system")))

(define %build-docker-image/item-cases
  `((output 5 "output")
    (output "" "output")
    (closure 5 "closure")
    (closure (5) "closure")
    (database 5 "database")
    (compression lzma "compression")
    (compression 5 "compression")
    (compression-level 0 "compression level" "compression-level")
    (compression-level "9" "compression level" "compression-level")
    (compression-level ,(expt 2 40) "compression level" "compression-level")
    (symlinks 5 "symlinks")
    (symlinks (("/a" . 5)) "symlinks")
    (symlinks (("a" . "b")) "symlink")))

(test-group "build-docker-image"
  (for-each (match-lambda
              ((keyword value needles ...)
               (check-refused 'build-docker-image keyword value needles)))
            (append %common-cases %build-docker-image-cases)))

(test-group "build-docker-image/item"
  (for-each (match-lambda
              ((keyword value needles ...)
               (check-refused 'build-docker-image/item keyword value needles)))
            (append %common-cases %build-docker-image/item-cases)))

(test-group "compression level with a compression that takes none"
  (match (outcome (lambda ()
                    (build-docker-image/item tiny #:store-directory store
                                             #:output output
                                             #:compression 'none
                                             #:compression-level 3)))
    ((2 'invalid-argument message)
     (test-assert "names the level" (string-contains message "3")))
    (other (test-assert (format #f "an invalid-argument error, not ~s" other)
             #f))))

(test-group "the environment's store directory"
  (let ((previous (getenv "NIX_STORE_DIR")))
    (setenv "NIX_STORE_DIR" "relative/store")
    (let ((result (outcome (lambda ()
                             (build-docker-image/item tiny #:output output)))))
      (if previous (setenv "NIX_STORE_DIR" previous) (unsetenv "NIX_STORE_DIR"))
      (test-assert "a relative NIX_STORE_DIR is an error naming it"
        (match result
          ((2 'invalid-argument message)
           (and (string-contains message "NIX_STORE_DIR")
                (string-contains message "relative/store")))
          (_ #f))))))

(test-group "valid values still work"
  (test-equal "all keywords of build-docker-image at once" output
    (build-docker-image output closure tiny
                        #:store-directory store
                        #:repository "Tiny"
                        #:extra-files '((directory "/tmp" 0 0 #o1777)
                                        ("/bin" -> "bin"))
                        #:entry-point '("bin/tiny")
                        #:environment '(("A" . "1"))
                        #:compressor '("gzip" "-9n")
                        #:creation-time 86400
                        #:max-layers 2
                        #:system "x86_64-linux"
                        #:tags '("tiny:1")
                        #:progress (lambda (done total) #t)
                        #:cancel (make-cancel-flag)
                        #:threads 2))
  (delete-file output))

(delete-directory root)
(test-suite-end "keywords")
