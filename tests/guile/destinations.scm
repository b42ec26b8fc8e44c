;;; Destination strings and multi-platform images through (guix docker-native):
;;; #:destination "oci:DIR:REF" and "oci-archive:FILE", read back by skopeo
;;; and umoci; build-platform-image, one index of two platforms whose shared
;;; layers are stored once; the front end's -o oci:...; bad destinations
;;; refused with nothing left.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-11)
             (srfi srfi-64)
             (ice-9 match))

(test-suite-begin "destinations")

(define root (make-temporary-directory))
(define profile (sample-store (string-append root "/sample")))
(define store (dirname profile))
(define hello
  (find (lambda (item) (string-suffix? "-hello-2.12.1" item))
        (map (lambda (name) (string-append store "/" name))
             (directory-entries store))))

(define (skopeo . arguments)
  "The output of skopeo with ARGUMENTS, parsed as JSON."
  (json-read-string (apply command-output "skopeo" arguments)))

(define (blobs layout)
  (directory-entries (string-append layout "/blobs/sha256")))

;; An OCI layout through #:destination: skopeo reads it, umoci unpacks the
;; profile's closure.
(define layout (string-append root "/layout"))
(test-equal "#:destination \"oci:DIR:REF\" returns the destination"
  (string-append "oci:" layout ":guile")
  (build-docker-image/item profile
                           #:destination (string-append "oci:" layout ":guile")
                           #:store-directory store
                           #:tags '("hello:guile")
                           #:entry-point '("bin/hello")
                           #:compression 'gzip))
(test-equal "skopeo inspect of the layout: amd64, gzip layers"
  '("amd64" "application/vnd.oci.image.layer.v1.tar+gzip")
  (let ((raw (skopeo "inspect" "--raw" (string-append "oci:" layout ":guile"))))
    (list (json-ref (skopeo "inspect" (string-append "oci:" layout ":guile"))
                    "Architecture")
          (json-ref (vector-ref (json-ref raw "layers") 0) "mediaType"))))
(test-assert "umoci unpack of the layout holds the profile and hello"
  (let ((bundle (string-append root "/bundle")))
    (command-output "umoci" "unpack" "--rootless" "--image"
                    (string-append layout ":guile") bundle)
    (every (lambda (item)
             (file-exists? (string-append bundle "/rootfs" item "/bin/hello")))
           (list profile hello))))

(define oci-archive (string-append root "/image.tar"))
(test-equal "#:destination \"oci-archive:FILE\": skopeo reads it"
  "amd64"
  (begin
    (build-docker-image/item profile
                             #:destination (string-append "oci-archive:"
                                                          oci-archive)
                             #:store-directory store)
    (json-ref (skopeo "inspect" (string-append "oci-archive:" oci-archive))
              "Architecture")))

;; Bad destinations: the library's message, nothing left.
(define (refused destination)
  (match (error-fields
          (lambda ()
            (build-docker-image/item profile #:destination destination
                                     #:store-directory store)))
    ((code symbol message) (list code symbol message))))
(let ((missing (string-append root "/missing")))
  (match (refused (string-append "dir:" missing))
    ((code symbol message)
     (test-equal "an unknown transport is invalid-argument" '(2 invalid-argument)
       (list code symbol))
     (test-assert "the message names the transport"
       (string-contains message "unknown transport 'dir'"))
     (test-assert "nothing is left" (not (file-exists? missing)))))
  (match (refused (string-append "oci:" missing "/deeper"))
    ((code symbol message)
     (test-equal "oci: in a missing directory is an output error" '(7 output)
       (list code symbol))
     (test-assert "nothing is left there" (not (file-exists? missing)))))
  (match (refused (string-append "oci:" oci-archive))
    ((code symbol message)
     (test-assert "oci: onto a file is refused, naming it"
       (and (eqv? code 7) (string-contains message "is not a directory"))))))
(test-equal "#:output and #:destination together are refused"
  '(2 invalid-argument)
  (take (error-fields
         (lambda ()
           (build-docker-image/item profile #:output "x.tar"
                                    #:destination "oci:x"
                                    #:store-directory store)))
        2))

;; Two platforms, one index.  The profile for x86_64 and hello for aarch64
;; share hello, glibc-sample and greeting-data: their layers once.
(define multi (string-append root "/multi"))
(test-equal "build-platform-image returns the destination"
  (string-append "oci:" multi ":multi")
  (build-platform-image (string-append "oci:" multi ":multi")
                        `(("x86_64-linux" . ,profile)
                          ("aarch64-linux" . ,hello))
                        #:store-directory store
                        #:max-layers 10
                        #:entry-point '("bin/hello")))
(test-equal "skopeo inspect --raw: an index of amd64 and arm64/v8"
  '(("amd64" "linux" #f) ("arm64" "linux" "v8"))
  (let ((raw (skopeo "inspect" "--raw" (string-append "oci:" multi ":multi"))))
    (map (lambda (entry)
           (let ((platform (json-ref entry "platform")))
             (list (json-ref platform "architecture")
                   (json-ref platform "os")
                   (and (assoc "variant" platform)
                        (json-ref platform "variant")))))
         (vector->list (json-ref raw "manifests")))))
(test-equal "skopeo inspect --override-arch arm64 picks hello's image"
  (list "arm64" (string-append hello "/bin/hello"))
  (let ((config (skopeo "inspect" "--config" "--override-arch" "arm64"
                        (string-append "oci:" multi ":multi"))))
    (list (json-ref config "architecture")
          (vector-ref (json-ref config "config" "Entrypoint") 0))))
(test-equal "shared layers are stored once: 4 layers, 2 configs, 2 manifests, the index"
  9 (length (blobs multi)))
(test-equal "a docker-archive of two platforms is refused, naming why"
  '(2 invalid-argument #t #f)
  (let ((file (string-append root "/multi.tar")))
    (match (error-fields
            (lambda ()
              (build-platform-image file `(("x86_64-linux" . ,profile)
                                           ("aarch64-linux" . ,hello))
                                    #:store-directory store)))
      ((code symbol message)
       (list code symbol
             (->bool (string-contains message "a docker-archive holds the image of one platform"))
             (file-exists? file))))))
(test-equal "platforms that are not (SYSTEM . ITEM) pairs are refused"
  '(2 invalid-argument)
  (take (error-fields
         (lambda () (build-platform-image (string-append "oci:" multi) '()
                                          #:store-directory store)))
        2))

;; The front end: -o takes a destination.
(test-equal "guix-archive-docker -o oci:DIR:REF writes a layout skopeo reads"
  (list 0 (string-append "oci:" root "/front:front\n") "amd64")
  (let-values (((status stdout stderr)
                (run-command (list "guix-archive-docker" "--export"
                                   "--format=docker"
                                   (string-append "--store-dir=" store)
                                   (string-append "-o" "oci:" root
                                                  "/front:front")
                                   profile))))
    (list status stdout
          (json-ref (skopeo "inspect" (string-append "oci:" root
                                                     "/front:front"))
                    "Architecture"))))

(delete-directory root)
(test-suite-end "destinations")
