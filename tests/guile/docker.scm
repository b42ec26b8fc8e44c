;;; Images built through (guix docker-native) from the sample store, loaded
;;; and run by Docker.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-64)
             (ice-9 ftw)
             (ice-9 match))

(test-suite-begin "docker")

(define %hello-line "Hello from the guix-docker-native sample store!")

(define root (make-temporary-directory))

(when (docker-required)
  (let* ((profile (sample-store root))
         (store (string-append root "/gnu/store"))
         (database (string-append root "/var/guix/db/db.sqlite"))
         (image (string-append root "/hello.tar"))
         (tag "gdn-guile-test/hello:guile"))

    (test-equal "the short form builds from the sample store" image
      (build-docker-image/item profile
                               #:output image
                               #:store-directory store
                               #:database database
                               #:tags (list tag)
                               #:entry-point '("bin/hello" "first arg")
                               #:environment '(("GREETING" . "bonjour"))))

    (match (docker "load" "-i" image)
      ((status stdout stderr)
       (test-equal "docker load succeeds" 0 status)
       (test-assert "docker load names the tag"
         (string-contains stdout tag))))

    (match (docker "run" "--rm" "--network" "none" tag)
      ((status stdout stderr)
       (test-equal "docker run succeeds" 0 status)
       (test-equal "the entry point prints its greeting, argument and \
environment"
         (list %hello-line "argument 1: first arg" "GREETING=bonjour")
         (remove string-null? (string-split stdout #\newline)))))

    ;; Guix's interface, with a gzip-compressed archive, several layers and
    ;; an extra symlink; the closure comes from the caller (as guix pack
    ;; passes it).
    (let* ((closure (filter (lambda (item)
                              (not (string-suffix? "-unrelated-0.1" item)))
                            (map (lambda (name) (string-append store "/" name))
                                 (scandir store
                                          (lambda (name)
                                            (> (string-length name) 33))))))
           (guix-image (string-append root "/guix.tar.gz")))
      (build-docker-image guix-image closure profile
                          #:store-directory store
                          #:repository "GDN-Guile-Test/Guix Interface"
                          #:compressor '("gzip" "-9n")
                          #:max-layers 3
                          #:extra-files `(("/bin" -> ,(string-append profile
                                                                     "/bin")))
                          #:entry-point (list (string-append profile
                                                             "/bin/hello")))
      (test-equal "Guix-style image: 3 layers" 3
        (vector-length (json-ref (image-manifest guix-image) "Layers")))
      (match (docker "load" "-i" guix-image)
        ((status stdout stderr)
         (test-equal "docker load reads the gzip-compressed archive" 0
           status)))
      (match (docker "run" "--rm" "--network" "none" "--entrypoint" "/bin/hello"
                     "gdn-guile-test.guix.interface:latest"
                     "via the /bin symlink")
        ((status stdout stderr)
         (test-equal "docker run through the extra /bin symlink"
           (list %hello-line "argument 1: via the /bin symlink")
           (remove string-null? (string-split stdout #\newline))))))

    (docker "rmi" "-f" tag "gdn-guile-test.guix.interface:latest")))

(delete-directory root)
(test-suite-end "docker")
