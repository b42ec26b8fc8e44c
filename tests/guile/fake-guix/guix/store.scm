;;; A stand-in for Guix's (guix store), for the front-end tests on machines
;;; without Guix: the procedures the front end calls, with Guix's names and
;;; signatures, answering from files instead of a daemon.
;;;
;;;   FAKE_GUIX_STORE     the store directory (%store-prefix)
;;;   FAKE_GUIX_CLOSURE   a file of store items, one a line: the items the
;;;                       "daemon" knows, and what `requisites' returns
;;;   FAKE_GUIX_DAEMON    "down": open-connection fails as with no daemon
;;;   FAKE_GUIX_LOG       a file where each call is appended

(define-module (guix store)
  #:use-module (ice-9 rdelim)
  #:export (%store-prefix
            open-connection
            close-connection
            valid-path?
            requisites))

(define %store-prefix
  (make-parameter (getenv "FAKE_GUIX_STORE")))

(define (log-call . what)
  (let ((file (getenv "FAKE_GUIX_LOG")))
    (when file
      (let ((port (open-file file "a")))
        (write what port)
        (newline port)
        (close-port port)))))

(define (known-items)
  (call-with-input-file (getenv "FAKE_GUIX_CLOSURE")
    (lambda (port)
      (let loop ((items '()))
        (let ((line (read-line port)))
          (if (eof-object? line)
              (reverse items)
              (loop (if (string-null? line) items (cons line items)))))))))

(define* (open-connection #:optional file)
  (log-call 'open-connection)
  (when (equal? (getenv "FAKE_GUIX_DAEMON") "down")
    (throw 'store-connection-error "no daemon"))
  'fake-connection)

(define (close-connection connection)
  (log-call 'close-connection))

(define (valid-path? connection item)
  (log-call 'valid-path? item)
  (and (member item (known-items)) #t))

(define (requisites connection items)
  (log-call 'requisites items)
  (known-items))
