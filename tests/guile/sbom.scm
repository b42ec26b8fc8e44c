;;; SBOMs through (guix docker-native): #:sbom, #:sbom-output and
;;; #:sbom-licenses of build-docker-image and build-docker-image/item, on the
;;; sample store with its database: the documents list exactly the closure
;;; with the database's hashes, carry the licences given, and a bad request
;;; leaves nothing; pushed to a registry (tests/lib/registry.sh's plain
;;; one, when docker-registry is installed) with the destination string,
;;; the SPDX artifact is found by the referrers tag, about the manifest.  (tests/consumers/sbom.sh validates the documents with
;;; the formats' own tools.)

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-26)
             (srfi srfi-64)
             (ice-9 match)
             (ice-9 textual-ports))

(test-suite-begin "sbom")

(define root (make-temporary-directory))
(define main (sample-store root))
(define store (string-append root "/gnu/store"))
(define database (string-append root "/var/guix/db/db.sqlite"))
(define out (string-append root "/out"))
(mkdir out)

(define (sqlite . query)
  (remove string-null?
          (string-split (command-output "sqlite3" "-readonly" database
                                        (string-concatenate query))
                        #\newline)))

(define closure
  ;; The main item's closure, by the database.
  (sqlite "WITH RECURSIVE c(id) AS (SELECT id FROM ValidPaths WHERE path = '"
          main "' UNION SELECT Refs.reference FROM Refs JOIN c ON "
          "Refs.referrer = c.id) SELECT path FROM ValidPaths WHERE id IN c "
          "ORDER BY path;"))

(define (read-json file)
  (json-read-string (call-with-input-file file get-string-all)))

(define (spdx-items doc)
  (sort (filter-map (lambda (p)
                      (and (string-prefix? "SPDXRef-Item-" (json-ref p "SPDXID"))
                           (json-ref p "packageFileName")))
                    (vector->list (json-ref doc "packages")))
        string<?))

(define (spdx-package doc path)
  (find (lambda (p) (equal? (json-ref p "packageFileName") path))
        (vector->list (json-ref doc "packages"))))

(define hello (find (cut string-suffix? "-hello-2.12.1" <>) closure))

(test-group "build-docker-image/item"
  (let ((image (build-docker-image/item main
                                        #:store-directory store
                                        #:database database
                                        #:output (string-append out "/a.tar")
                                        #:sbom '(spdx cyclonedx)
                                        #:sbom-licenses
                                        `((,hello . "GPL-3.0-or-later")))))
    (test-equal "the image" (string-append out "/a.tar") image)
    (let ((spdx (read-json (string-append image ".spdx.json")))
          (cdx (read-json (string-append image ".cdx.json"))))
      (test-equal "SPDX 2.3" "SPDX-2.3" (json-ref spdx "spdxVersion"))
      (test-equal "the SPDX items are the closure" closure (spdx-items spdx))
      (test-equal "each checksum is the database's hash"
        (map (lambda (path)
               (car (sqlite "SELECT substr(hash, 8) FROM ValidPaths WHERE path = '"
                            path "';")))
             closure)
        (map (lambda (path)
               (json-ref (spdx-package spdx path) "checksums" 0 "checksumValue"))
             closure))
      (test-equal "the licence given" "GPL-3.0-or-later"
        (json-ref (spdx-package spdx hello) "licenseDeclared"))
      (test-equal "the others: NOASSERTION" "NOASSERTION"
        (json-ref (spdx-package spdx main) "licenseDeclared"))
      (test-equal "CycloneDX 1.5" "1.5" (json-ref cdx "specVersion"))
      (test-equal "the CycloneDX components are the closure" closure
        (sort (map (cut json-ref <> "bom-ref")
                   (vector->list (json-ref cdx "components")))
              string<?))
      (test-equal "hello's purl" "pkg:guix/hello@2.12.1"
        (any (lambda (c) (and (equal? (json-ref c "bom-ref") hello)
                              (json-ref c "purl")))
             (vector->list (json-ref cdx "components")))))))

(test-group "build-docker-image"
  (let* ((image (string-append out "/b.tar"))
         (sbom (string-append out "/b.sbom.json")))
    (build-docker-image image closure main
                        #:store-directory store
                        #:sbom '("cyclonedx")
                        #:sbom-output sbom)
    (test-assert "the image" (file-exists? image))
    (test-equal "the SBOM at #:sbom-output" "CycloneDX"
      (json-ref (read-json sbom) "bomFormat"))
    (test-equal "without a database: NOASSERTION hashes"
      '("NOASSERTION")
      (delete-duplicates
       (append-map (lambda (c)
                     (filter-map (lambda (p)
                                   (and (equal? (json-ref p "name") "guix:nar-hash")
                                        (json-ref p "value")))
                                 (vector->list (json-ref c "properties"))))
                   (vector->list (json-ref (read-json sbom) "components")))))))

(test-group "refused, leaving nothing"
  (for-each
   (match-lambda
     ((keywords needle)
      (let ((output (string-append out "/refused.tar")))
        (match (error-fields
                (lambda ()
                  (apply build-docker-image/item main
                         #:store-directory store #:database database
                         #:output output keywords)))
          ((2 'invalid-argument message)
           (test-assert (format #f "~s: the message names ~s" keywords needle)
             (string-contains message needle)))
          (other (test-assert (format #f "~s: invalid-argument, not ~s"
                                      keywords other)
                   #f)))
        (test-assert (format #f "~s: nothing written" keywords)
          (not (any (lambda (f) (string-prefix? "refused" f))
                    (directory-entries out)))))))
   `(((#:sbom (swid)) "swid")
     ((#:sbom spdx) "sbom")
     ((#:sbom (spdx) #:sbom-licenses ((,main . "GPL 3+"))) "GPL 3+")
     ((#:sbom (spdx) #:sbom-licenses (("/gnu/store/x" . 5))) "sbom-licenses")
     ((#:sbom (spdx) #:sbom-licenses
       ((,(string-append store "/00000000000000000000000000000000-other")
         . "MIT")))
      "not an item of the image's closure")
     ((#:sbom-output "x.json") "no SBOM format"))))

(define (registry-script . commands)
  (command-output "bash" "-c"
                  (string-append ". tests/lib/registry.sh && "
                                 (string-join commands " "))))

(define (have? program)
  (zero? (status:exit-val
          (system* "/bin/sh" "-c"
                   (string-append "command -v " program " >/dev/null")))))

(if (and (have? "docker-registry") (have? "curl"))
    (let* ((registry (string-append root "/registry"))
           (_ (registry-script "gdn_registry_start plain" registry))
           (addr (string-trim-both
                  (call-with-input-file (string-append registry "/addr")
                    get-string-all)))
           (v2 (string-append "http://" addr "/v2/guile/sbom/"))
           (accept-manifest "Accept: application/vnd.oci.image.manifest.v1+json"))
      (define (get path . headers)
        (apply command-output "curl" "-sf"
               (append (append-map (cut list "-H" <>) headers)
                       (list (string-append v2 path)))))
      (test-group "pushed with #:sbom"
        (build-image/options (string-append "docker://" addr "/guile/sbom:1")
                             main
                             (make-image-options #:store-directory store
                                                 #:database database
                                                 #:sbom '(spdx)
                                                 #:tls-verify? #f))
        (let* ((manifest (get "manifests/1" accept-manifest))
               (digest (string-append
                        "sha256:"
                        (string-take (command-output
                                      "sh" "-c"
                                      (string-append "curl -sf -H '" accept-manifest
                                                     "' " v2 "manifests/1 | sha256sum"))
                                     64)))
               (index (json-read-string
                       (get (string-append "manifests/sha256-"
                                           (string-drop digest 7))
                            "Accept: application/vnd.oci.image.index.v1+json")))
               (entry (json-ref index "manifests" 0))
               (artifact (json-read-string
                          (get (string-append "manifests/" (json-ref entry "digest"))
                               accept-manifest)))
               (document (json-read-string
                          (get (string-append "blobs/"
                                              (json-ref artifact "layers" 0 "digest"))))))
          (test-assert "the image is there" (string? manifest))
          (test-equal "one artifact under the referrers tag" 1
            (vector-length (json-ref index "manifests")))
          (test-equal "its type" "application/spdx+json"
            (json-ref entry "artifactType"))
          (test-equal "its subject is the image's manifest" digest
            (json-ref artifact "subject" "digest"))
          (test-equal "the document lists the closure" closure
            (spdx-items document))))
      (registry-script "gdn_registry_stop" registry))
    (begin
      (format #t "# no docker-registry or curl: the push is not tried~%")
      (test-skip 1)
      (test-assert "pushed with #:sbom (docker-registry missing)" #f)))

(delete-directory root)
(test-suite-end "sbom")
