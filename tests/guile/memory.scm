;;; Hundreds of builds in one process: the options handles are freed by
;;; their finalizers and nothing grows.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-64)
             (ice-9 format)
             (ice-9 match)
             (ice-9 rdelim))

(test-suite-begin "memory")

(define-values (root store) (make-mini-store-root))
(define medium (mini-store-item root "medium"))   ;one 64 KiB file
(define output (string-append root "/loop.tar"))

(define (resident-kib)
  "This process's resident set size (VmRSS), in KiB."
  (call-with-input-file "/proc/self/status"
    (lambda (port)
      (let loop ()
        (match (read-line port)
          ((? eof-object?) (error "no VmRSS in /proc/self/status"))
          (line
           (if (string-prefix? "VmRSS:" line)
               (string->number (car (string-tokenize line char-set:digit)))
               (loop))))))))

;; Each build's options carry 64 environment variables of 1 KiB: 64 KiB that
;; the library copies into its handle.  A handle that is never freed leaks
;; at least that much, so %builds leaked handles would be over 25 MiB.
(define %builds 400)
(define %environment
  (map (lambda (i)
         (cons (string-append "VARIABLE_" (number->string i))
               (make-string 1024 #\x)))
       (iota 64)))

(define (build-once)
  (build-docker-image output (list medium) medium
                      #:store-directory store
                      #:environment %environment
                      #:compressor #f
                      #:progress (lambda (done total) #t)))

(define (settle)
  ;; Collect twice: finalizers run after the first collection.
  (gc) (gc)
  (resident-kib))

;; Warm up: the library, its thread pool, malloc's arenas and Guile's heap
;; reach their working size first (measured: VmRSS grows by about 9 MiB
;; over the first 250 builds).
(for-each (lambda (_) (build-once)) (iota 250))
(define before (settle))
(for-each (lambda (_) (build-once)) (iota %builds))
(define after (settle))

(format #t "# VmRSS before ~a KiB, after ~a more builds ~a KiB (~@d KiB)~%"
        before %builds after (- after before))

;; Bound: 8 MiB.  A leaked options handle per build would add 25 MiB (see
;; above), and so would a leaked copy of the 64 KiB layer or of the archive
;; per build.  After the warm-up, what remains is noise from the heap and
;; malloc's arenas: from 0 to 3 MiB in the runs measured here.  8 MiB stays
;; clear of that and still catches any of those leaks three times over.
(test-assert (format #f "~a builds: VmRSS grows less than 8 MiB" %builds)
  (< (- after before) (* 8 1024)))

(test-assert "the last image is complete"
  (equal? #("medium:latest") (json-ref (image-manifest output) "RepoTags")))

(delete-directory root)
(test-suite-end "memory")
