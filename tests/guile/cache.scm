;;; The layer cache through (guix docker-native): #:cache-directory keeps
;;; it where asked (an entry per layer), a rewrite of an OCI layout with it
;;; warm gives the same index and blobs, #:cache? #f writes none, and the
;;; keywords' bad values are refused.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-64)
             (ice-9 match)
             (ice-9 textual-ports))

(test-suite-begin "cache")

(define root (make-temporary-directory))
(define profile (sample-store (string-append root "/sample")))
(define store (dirname profile))
(define cache (string-append root "/cache"))

(define-syntax-rule (test-refused name (expected-code needle ...) thunk)
  (match (error-fields thunk)
    ((code symbol message)
     (test-assert name
       (and (eqv? code expected-code)
            (string-contains message needle) ...)))))

(define (entries directory)
  "The cache entries under DIRECTORY (none when it is not there)."
  (let ((layers (string-append directory "/layers-1")))
    (if (file-exists? layers)
        (remove (lambda (name) (string-prefix? "." name))
                (directory-entries layers))
        '())))

(define (layout-files layout)
  "The index and blob names of LAYOUT, with the index's text."
  (list (call-with-input-file (string-append layout "/index.json")
          get-string-all)
        (sort (directory-entries (string-append layout "/blobs/sha256"))
              string<?)))

(define (build layout . keywords)
  (apply build-docker-image/item profile
         #:destination (string-append "oci:" layout)
         #:store-directory store
         #:tags '("hello:cache")
         #:compression 'zstd
         #:max-layers 4
         keywords))

(define layout (string-append root "/layout"))
(build layout #:cache-directory cache)
(test-assert "#:cache-directory holds an entry per layer"
  (<= 2 (length (entries cache)) 4))
(define cold (layout-files layout))
(build layout #:cache-directory cache)
(test-equal "a warm rewrite of the layout gives the same index and blobs"
  cold (layout-files layout))

(define no-cache (string-append root "/no-cache"))
(define reference (string-append root "/reference"))
(build reference #:cache-directory no-cache #:cache? #f)
(test-equal "#:cache? #f writes no entry" '() (entries no-cache))
(test-equal "and gives the same image" cold (layout-files reference))

(test-assert "make-image-options takes the cache keywords"
  (image-options? (make-image-options #:cache-directory cache #:cache? #f)))
(test-refused "cache-directory not a string" (2 "cache-directory")
  (lambda () (make-image-options #:cache-directory 5)))
(test-refused "an empty cache-directory" (2 "cache directory ''")
  (lambda () (make-image-options #:cache-directory "")))

(delete-directory root)
(test-suite-end "cache")
