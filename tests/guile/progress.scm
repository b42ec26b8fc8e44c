;;; Progress reports: the procedure passed as #:progress, and the front
;;; end's progress bar.

(use-modules (guix docker-native)
             (guix scripts archive-docker)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-64)
             (ice-9 match)
             (ice-9 textual-ports))

(test-suite-begin "progress")

(define root (make-temporary-directory))
(define store (make-mini-store root))
(define big (mini-store-item root "big"))

(define (non-decreasing? numbers)
  (every <= (drop-right numbers 1) (drop numbers 1)))

(test-group "#:progress"
  (let ((calls '()))
    (build-docker-image (string-append root "/big.tar") (list big) big
                        #:store-directory store
                        #:progress (lambda (done total)
                                     (set! calls (cons (cons done total)
                                                       calls))))
    (let ((calls (reverse calls)))
      (test-assert "called at least twice" (>= (length calls) 2))
      (test-assert "bytes done only grow"
        (non-decreasing? (map car calls)))
      (test-assert "the total is the same in every call"
        (= 1 (length (delete-duplicates (map cdr calls)))))
      (test-assert "the total covers the item's 2 MiB"
        (>= (cdr (first calls)) (* 2 1024 1024)))
      (test-assert "never past the total"
        (every (match-lambda ((done . total) (<= done total))) calls))
      (test-assert "the last call is at the total"
        (match (last calls) ((done . total) (= done total)))))))

(test-group "an exception from the progress procedure"
  (let ((output (string-append root "/aborted.tar"))
        (calls 0))
    (test-equal "is raised again once the build returns"
      '(stop-here 1)
      (catch 'stop-here
        (lambda ()
          (build-docker-image/item big #:store-directory store
                                   #:output output
                                   #:progress (lambda (done total)
                                                (set! calls (+ calls 1))
                                                (throw 'stop-here calls)))
          'returned)
        (lambda (key . args) (cons key args))))
    (test-equal "the procedure is not called again after raising" 1 calls)
    (test-assert "and nothing is left at the output"
      (not (file-exists? output)))))

(test-group "options whose build a progress procedure stopped"
  (let ((options (make-image-options #:store-directory store))
        (output (string-append root "/again.tar")))
    (test-equal "the build is stopped with the procedure's exception"
      'stop-here
      (catch 'stop-here
        (lambda ()
          (build-docker-image/options big output options
                                      #:progress (lambda (done total)
                                                   (throw 'stop-here))))
        (lambda (key . args) key)))
    (test-assert "and nothing is at the output" (not (file-exists? output)))
    (test-equal "build again: the cancellation went with the build"
      output
      (build-docker-image/options big output options))
    (test-assert "the second build's image is there" (file-exists? output))
    (test-equal "a file at the output before a cancelled build is untouched"
      "an older image"
      (begin
        (write-file output "an older image")
        (catch 'stop-here
          (lambda ()
            (build-docker-image/options big output options
                                        #:progress (lambda (done total)
                                                     (throw 'stop-here))))
          (const #f))
        (call-with-input-file output get-string-all)))
    (delete-file output)))

(test-group "a build started from the progress procedure"
  (let ((inner #f))
    (build-docker-image/item
     big #:store-directory store
     #:output (string-append root "/outer.tar")
     #:progress (lambda (done total)
                  (unless inner
                    (set! inner
                      (error-fields
                       (lambda ()
                         (build-docker-image/item
                          big #:store-directory store
                          #:output (string-append root "/inner.tar"))))))))
    (test-assert "is refused with an error, as the library requires"
      (match inner
        ((2 'invalid-argument message)
         (string-contains message "progress procedure"))
        (_ #f)))
    (test-assert "the outer build completes"
      (file-exists? (string-append root "/outer.tar")))))

(test-group "progress bar"
  (define (bar-output calls width)
    (call-with-output-string
      (lambda (port)
        (let ((bar (make-progress-bar port "hello-docker-image.tar"
                                      #:width width)))
          (for-each (match-lambda ((done . total) (bar done total))) calls)))))

  (let* ((total (* 3 1024 1024))
         (calls (map (lambda (i) (cons (* i (/ total 4)) total)) (iota 5)))
         (output (bar-output calls 80))
         (lines (remove string-null? (string-split output #\return))))
    (test-equal "one redraw per call whose percentage changed" 5
      (length lines))
    (test-assert "each redraw fits the width"
      (every (lambda (line)
               (< (string-length (string-trim-right line #\newline)) 80))
             lines))
    (test-assert "shows the label, sizes and percentage"
      (and (string-contains (first lines) "hello-docker-image.tar")
           (string-contains (third lines) "1.5MiB/3.0MiB")
           (string-contains (third lines) "50.0%")))
    (test-assert "ends at 100% and a newline"
      (and (string-contains (last lines) "100.0%")
           (string-suffix? "\n" output))))

  (test-equal "repeated counts do not redraw" 2
    (length (remove string-null?
                    (string-split (bar-output '((0 . 100) (0 . 100) (0 . 100)
                                                (100 . 100))
                                              80)
                                  #\return))))

  (test-assert "a narrow terminal truncates the label, not the numbers"
    (let ((line (bar-output '((50 . 100)) 40)))
      (and (string-contains line "50.0%")
           (< (string-length line) 42)))))

(delete-directory root)
(test-suite-end "progress")
