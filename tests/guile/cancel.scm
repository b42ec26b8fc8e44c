;;; Cancelling builds: make-cancel-flag, cancel-build! and #:cancel.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-64)
             (ice-9 match)
             (ice-9 threads))

(test-suite-begin "cancel")

(define-values (root store) (make-mini-store-root))
(define tiny (mini-store-item root "tiny"))
(define closure (mini-store-closure root))


(test-group "flags"
  (test-assert "make-cancel-flag makes a flag" (cancel-flag? (make-cancel-flag)))
  (test-assert "other objects are not flags" (not (cancel-flag? 'flag)))
  (test-assert "cancel-build! refuses what is not a flag"
    (match (error-fields (lambda () (cancel-build! 'flag)))
      ((2 'invalid-argument message) (string-contains message "flag"))
      (_ #f)))
  (test-assert "#:cancel refuses what is not a flag"
    (match (error-fields
            (lambda ()
              (build-docker-image/item tiny #:store-directory store
                                       #:output (string-append root "/x.tar")
                                       #:cancel #t)))
      ((2 'invalid-argument message) (string-contains message "cancel"))
      (_ #f))))

(test-group "a flag requested before the build"
  (let ((flag (make-cancel-flag))
        (directory (fresh-directory root "before")))
    (cancel-build! flag)
    (test-equal "build-docker-image/item: cancelled"
      '(9 cancelled)
      (match (error-fields
              (lambda ()
                (build-docker-image/item tiny #:store-directory store
                                         #:output (string-append directory
                                                                 "/a.tar")
                                         #:cancel flag)))
        ((code symbol _) (list code symbol))))
    (test-equal "build-docker-image (Guix's keywords): cancelled"
      '(9 cancelled)
      (match (error-fields
              (lambda ()
                (build-docker-image (string-append directory "/b.tar")
                                    closure tiny
                                    #:store-directory store
                                    #:cancel flag)))
        ((code symbol _) (list code symbol))))
    (test-equal "nothing is left" '() (directory-entries directory))
    (test-assert "a new flag lets the build through"
      (file-exists?
       (build-docker-image/item tiny #:store-directory store
                                #:output (string-append directory "/c.tar")
                                #:cancel (make-cancel-flag))))))

(test-group "a flag requested by the progress procedure"
  (let ((flag (make-cancel-flag))
        (directory (fresh-directory root "progress")))
    (test-assert "the build raises `cancelled'"
      (match (error-fields
              (lambda ()
                (build-docker-image/item tiny #:store-directory store
                                         #:output (string-append directory
                                                                 "/a.tar")
                                         #:cancel flag
                                         #:progress (lambda (done total)
                                                      (cancel-build! flag)))))
        ((9 'cancelled message) (string-contains message "cancelled"))
        (_ #f)))
    (test-equal "nothing is left" '() (directory-entries directory))))

;; A build that writes long enough to be cancelled from another thread.
(define-values (slow-store slow-item) (make-slow-store root))

(test-group "a flag requested by another thread"
  (let* ((flag (make-cancel-flag))
         (directory (fresh-directory root "thread"))
         (build (call-with-new-thread
                 (lambda ()
                   (error-fields
                    (lambda ()
                      (build-docker-image/item
                       slow-item #:store-directory slow-store
                       #:closure (list slow-item)
                       #:output (string-append directory "/slow.tar")
                       #:cancel flag)))))))
      ;; The temporary file is open when the library starts writing.
      (let wait ((tries 0))
        (when (and (not (file-open-in? directory)) (< tries 6000))
          (usleep 10000)
          (wait (+ tries 1))))
      (test-assert "the build had started writing"
        (file-open-in? directory))
      (cancel-build! flag)
      (test-equal "the build raises `cancelled'" '(9 cancelled)
        (match (join-thread build)
          ((code symbol _) (list code symbol))))
      (test-equal "nothing is left" '() (directory-entries directory))))

(delete-directory root)
(test-suite-end "cancel")
