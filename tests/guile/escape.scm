;;; Leaving a build early, by every means a Guile program has: an escape
;;; continuation, an abort to a prompt, a throw to an outer catch, a
;;; continuation, an async's exception, `cancel-thread'.  Each time the
;;; process survives, the build is cancelled, nothing is left at the output
;;; nor beside it, and no thread of the build is left running.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-64)
             (ice-9 control)
             (ice-9 match)
             (ice-9 threads))

(test-suite-begin "escape")

(define-values (root store) (make-mini-store-root))
(define tiny (mini-store-item root "tiny"))

;; A build that writes long enough (1 GiB) to be left while it runs.
(define-values (slow-store slow-item) (make-slow-store root))

(define (task-count)
  (length (directory-entries "/proc/self/task")))

(define (settled-task-count)
  "The number of threads once those that have ended their work are gone:
a joined thread may show in /proc for a moment while it exits.  Waits up to
2 s for the count to come down to what it was before the builds."
  (let wait ((tries 0))
    (let ((count (task-count)))
      (if (or (<= count tasks-before) (> tries 200))
          count
          (begin (usleep 10000) (wait (+ tries 1)))))))


(define (slow-build directory progress)
  "Build the slow item into DIRECTORY/slow.tar with PROGRESS."
  (build-docker-image/item slow-item #:store-directory slow-store
                           #:closure (list slow-item)
                           #:output (string-append directory "/slow.tar")
                           #:progress progress))

(define (writing? directory)
  "True once the library has its temporary file open in DIRECTORY (an
unnamed O_TMPFILE file, or a named one where the file system has none)."
  (or (file-open-in? directory) (pair? (directory-entries directory))))

(define (when-writing directory leave)
  "A progress procedure that calls LEAVE, a thunk that does not return,
once the build writes in DIRECTORY."
  (lambda (done total)
    (let wait ((tries 0))
      (unless (or (writing? directory) (> tries 3000))
        (usleep 10000)
        (wait (+ tries 1))))
    (leave)))

;; Warm up, so that the threads Guile and the library start once (the
;; finalizer thread, ...) are there before the counts are taken.
(build-docker-image/item tiny #:store-directory store
                         #:output (string-append root "/warm-up.tar")
                         #:progress (lambda (done total) #t))
(delete-file (string-append root "/warm-up.tar"))
(gc)

(define tasks-before (task-count))

(define (check-left-clean what directory)
  (test-equal (string-append what ": nothing at the output, no temporary file")
    '() (directory-entries directory))
  ;; A worker still running would write to its (unlinked) file or
  ;; recreate nothing; what shows is threads: count them, after a while.
  (usleep 300000)
  (test-equal (string-append what ": still nothing a while later")
    '() (directory-entries directory))
  (test-equal (string-append what ": no thread of the build is left")
    tasks-before (settled-task-count)))

(define (check-exit group directory-name capture value taken what)
  "The test group GROUP: a slow build into the fresh directory
DIRECTORY-NAME whose progress procedure, once the build writes, takes the
exit K that CAPTURE (call/ec or call/cc) gives, as (K VALUE).  The test
TAKEN checks that the exit is taken; WHAT names the build left clean."
  (test-group group
    (let* ((directory (fresh-directory root directory-name))
           (result (capture
                    (lambda (k)
                      (slow-build directory
                                  (when-writing directory
                                                (lambda () (k value))))
                      'returned))))
      (test-equal taken value result)
      (check-left-clean what directory))))

(check-exit "call/ec" "call-ec" call/ec 'escaped "the escape is taken" "call/ec")

(test-group "let/ec"
  (let* ((directory (fresh-directory root "let-ec"))
         (result (let/ec k
                   (slow-build directory
                               (when-writing directory (lambda () (k 1 2))))
                   'returned)))
    (test-equal "the escape is taken" 1 result)
    (check-left-clean "let/ec" directory)))

(test-group "abort-to-prompt"
  (let* ((directory (fresh-directory root "prompt"))
         (tag (make-prompt-tag "test"))
         (result (call-with-prompt tag
                   (lambda ()
                     (slow-build directory
                                 (when-writing directory
                                               (lambda ()
                                                 (abort-to-prompt tag 'aborted))))
                     'returned)
                   (lambda (k value) value))))
    (test-equal "the abort reaches its prompt" 'aborted result)
    (check-left-clean "abort-to-prompt" directory)))

(test-group "a throw to an outer catch"
  (let* ((directory (fresh-directory root "throw"))
         (result (catch 'get-out
                   (lambda ()
                     (slow-build directory
                                 (when-writing directory
                                               (lambda ()
                                                 (throw 'get-out 'thrown))))
                     'returned)
                   (lambda (key value) value))))
    (test-equal "the throw reaches its catch" 'thrown result)
    (check-left-clean "throw" directory)))

(test-group "a raise to an outer guard"
  (let* ((directory (fresh-directory root "raise"))
         (result (with-exception-handler
                     (lambda (exception) (list 'handled exception))
                   (lambda ()
                     (slow-build directory
                                 (when-writing directory
                                               (lambda () (raise-exception 42))))
                     'returned)
                   #:unwind? #t)))
    (test-equal "the exception reaches its handler" '(handled 42) result)
    (check-left-clean "raise" directory)))

(check-exit "a continuation captured before the build" "call-cc" call/cc 'jumped
            "the jump is taken" "call/cc")

(test-group "a continuation of the progress procedure, re-entered"
  (let* ((directory (fresh-directory root "re-enter"))
         (output (string-append directory "/tiny.tar"))
         (inside #f)
         (passes 0)
         (outcome
          (error-fields
           (lambda ()
             (build-docker-image/item tiny #:store-directory store
                                      #:output output
                                      #:progress
                                      (lambda (done total)
                                        (unless inside
                                          (call/cc
                                           (lambda (k) (set! inside k))))))
             (set! passes (+ passes 1))
             (when (= passes 1)
               (inside #t))
             'returned-twice))))
    (test-equal "the build ran once" 1 passes)
    (test-assert "entering it again is an error naming the build"
      (match outcome
        ((2 'invalid-argument message)
         (and (string-contains message "entered again")
              (string-contains message tiny)))
        (_ #f)))
    (test-assert "the image of the build that ran is there"
      (file-exists? output))
    (delete-file output)
    (test-equal "no thread of the build is left" tasks-before
      (settled-task-count))))

(test-group "an async's exception in the building thread"
  ;; As a signal handler's: it runs while the thread waits for the build,
  ;; progress procedure or not.
  (let* ((directory (fresh-directory root "async"))
         (thread (call-with-new-thread
                  (lambda ()
                    (catch 'interrupted
                      (lambda ()
                        (slow-build directory #f)
                        'returned)
                      (lambda (key) 'interrupted))))))
    (let wait ((tries 0))
      (unless (or (writing? directory) (> tries 3000))
        (usleep 10000)
        (wait (+ tries 1))))
    (test-assert "the build had started writing" (writing? directory))
    (system-async-mark (lambda () (throw 'interrupted)) thread)
    (test-equal "the exception is raised in the thread" 'interrupted
      (join-thread thread))
    (check-left-clean "async" directory)))

(test-group "cancel-thread"
  (let* ((directory (fresh-directory root "cancel-thread"))
         (thread (call-with-new-thread
                  (lambda ()
                    (slow-build directory (lambda (done total) #t))
                    'returned))))
    (let wait ((tries 0))
      (unless (or (writing? directory) (> tries 3000))
        (usleep 10000)
        (wait (+ tries 1))))
    (test-assert "the build had started writing" (writing? directory))
    (cancel-thread thread 'cancelled)
    (test-equal "the thread ends cancelled" 'cancelled (join-thread thread))
    ;; Checked at once: the thread may end only after the build has.
    (test-equal "cancel-thread: nothing is left once the thread has ended"
      '() (directory-entries directory))
    (check-left-clean "cancel-thread" directory)))

(test-group "cancel-thread while the progress procedure runs"
  (let* ((directory (fresh-directory root "cancel-in-progress"))
         (in-progress (make-condition-variable))
         (mutex (make-mutex))
         (entered? #f)
         (thread (call-with-new-thread
                  (lambda ()
                    (slow-build directory
                                (when-writing directory
                                              (lambda ()
                                                (with-mutex mutex
                                                  (set! entered? #t)
                                                  (signal-condition-variable
                                                   in-progress))
                                                (let forever ()
                                                  (usleep 10000)
                                                  (forever)))))
                    'returned))))
    (with-mutex mutex
      (let wait ()
        (unless entered?
          (wait-condition-variable in-progress mutex)
          (wait))))
    (cancel-thread thread 'cancelled)
    (test-equal "the thread ends cancelled" 'cancelled (join-thread thread))
    (check-left-clean "cancel-thread in progress" directory)))

(test-group "exit from the progress procedure"
  ;; In a process of its own: `exit' unwinds, so the build is cancelled and
  ;; ended before the process is.
  (let* ((directory (fresh-directory root "exit"))
         (script
          (format #f "(use-modules (guix docker-native) (ice-9 ftw) (srfi srfi-1))
(define (writing?)
  (or (> (length (scandir ~s)) 2)
      (any (lambda (fd)
             (false-if-exception
              (string-prefix? ~s (readlink (string-append \"/proc/self/fd/\" fd)))))
           (scandir \"/proc/self/fd\"))))
(build-docker-image/item ~s #:store-directory ~s #:closure (list ~s)
                         #:output ~s
                         #:progress (lambda (done total)
                                      (when (writing?) (exit 7))))"
                  directory (string-append directory "/")
                  slow-item slow-store slow-item
                  (string-append directory "/slow.tar"))))
    (call-with-values
        (lambda ()
          (run-command (list (or (getenv "GUILE") "guile") "--no-auto-compile"
                             "-c" script)))
      (lambda (status stdout stderr)
        (test-equal "the process exits with the status given" 7 status)
        (test-equal "exit: nothing at the output, no temporary file"
          '() (directory-entries directory))))))

(test-group "after all that"
  (let ((output (string-append root "/after.tar")))
    (test-equal "builds still work" output
      (build-docker-image/item tiny #:store-directory store #:output output
                               #:progress (lambda (done total) #t)))
    (test-assert "and write their image" (file-exists? output))))

(delete-directory root)
(test-suite-end "escape")
