;;; Images built through (guix docker-native): each of Guix's keywords
;;; changes the archive as documented.

(use-modules (guix docker-native)
             (test-helpers)
             (srfi srfi-1)
             (srfi srfi-19)
             (srfi srfi-26)
             (srfi srfi-64)
             (ice-9 match)
             (ice-9 regex))

(test-suite-begin "images")

(define root (make-temporary-directory))
(define store (make-mini-store root))
(define tiny (mini-store-item root "tiny"))
(define dep (mini-store-item root "dep"))
(define big (mini-store-item root "big"))
(define closure (mini-store-closure root))

;; A store item's directory as it appears in a layer: relative, with a
;; trailing slash.
(define (in-layer item) (string-append (string-drop item 1) "/"))

(define counter 0)
(define (build . keywords)
  "Build the image of `tiny' with Guix's interface and KEYWORDS; return the
archive's file name."
  (set! counter (+ counter 1))
  (let ((image (format #f "~a/image-~a.tar" root counter)))
    (apply build-docker-image image closure tiny
           #:store-directory store keywords)
    image))

(define (file-sha256 file)
  (car (string-split (command-output "sha256sum" "-b" file) #\space)))

(define (layers image)
  (vector->list (json-ref (image-manifest image) "Layers")))

(define (listing-line image name)
  "The line of the verbose listing of IMAGE's layers for entry NAME."
  (any (lambda (layer)
         (find (lambda (line)
                 (or (string-suffix? (string-append " " name) line)
                     (string-contains line (string-append " " name " -> "))))
               (layer-listing image layer)))
       (layers image)))

(test-group "defaults"
  (let* ((image (build))
         (config (image-config image))
         (names (layer-names image)))
    (test-equal "one layer" 1 (length (layers image)))
    (test-equal "diff_ids match the layers" 1
      (vector-length (json-ref config "rootfs" "diff_ids")))
    (test-equal "tag from the item's name" #("tiny:latest")
      (json-ref (image-manifest image) "RepoTags"))
    (test-equal "creation time 1970-01-01T00:00:01Z" "1970-01-01T00:00:01Z"
      (json-ref config "created"))
    (test-equal "os" "linux" (json-ref config "os"))
    (test-assert "the closure's items are in the layer"
      (every (lambda (item) (member (in-layer item) names))
             (list tiny dep)))
    (test-assert "an item outside the closure is not"
      (not (any (cut string-prefix? (in-layer big) <>) names)))
    (test-assert "the item's files are in the layer"
      (member (string-append (in-layer tiny) "share/tiny.txt") names))
    (test-equal "uncompressed: a tar file (ustar magic at 257)"
      (map char->integer (string->list "ustar"))
      (list-tail (file-magic image 262) 257))
    (test-equal "same inputs, same bytes"
      (file-sha256 image)
      (file-sha256 (build)))))

(test-group "repository"
  (test-equal "repository becomes NAME:latest, mapped as Guix does"
    #("tiny.app:latest")
    (json-ref (image-manifest (build #:repository "Tiny App")) "RepoTags"))
  (test-equal "our #:tags add references"
    #("tiny.app:latest" "example.org/tiny:1.0")
    (json-ref (image-manifest (build #:repository "Tiny App"
                                     #:tags '("example.org/tiny:1.0")))
              "RepoTags"))
  ;; The library's rule (gdn_tag_from_name), which the Scheme copy it
  ;; replaced refused with an error.
  (test-equal "a repository with no letter or digit gives image:latest"
    #("image:latest")
    (json-ref (image-manifest (build #:repository "+++")) "RepoTags")))

(test-group "entry-point"
  (let ((program (string-append tiny "/bin/tiny")))
    (test-equal "Entrypoint is the list given"
      (vector program "--flag" "two words")
      (json-ref (image-config (build #:entry-point
                                     (list program "--flag" "two words")))
                "config" "Entrypoint"))))

(test-group "environment"
  (let ((env (json-ref (image-config
                        (build #:environment '(("GREETING" . "hi there")
                                               ("LANG" . "C.UTF-8"))))
                       "config" "Env")))
    (test-assert "Env holds NAME=VALUE for each pair"
      (and (vector? env)
           (member "GREETING=hi there" (vector->list env))
           (member "LANG=C.UTF-8" (vector->list env))))))

(test-group "max-layers"
  (let ((three-items (append closure (list big))))
    (define (layered n)
      (let ((image (format #f "~a/layered-~a.tar" root n)))
        (build-docker-image image three-items tiny
                            #:store-directory store #:max-layers n)
        image))
    (let ((image (layered 2)))
      (test-equal "max-layers 2 gives 2 layers" 2 (length (layers image)))
      (test-equal "... and 2 diff_ids" 2
        (vector-length (json-ref (image-config image) "rootfs" "diff_ids")))
      (test-assert "... holding the whole closure"
        (every (lambda (item) (member (in-layer item) (layer-names image)))
               three-items)))
    (test-assert "max-layers 125 gives at most 125 layers, more than one"
      (<= 2 (length (layers (layered 125))) 125))))

(test-group "compressor"
  (test-equal "(\"gzip\" \"-9n\"): gzip magic" '(#x1f #x8b)
    (file-magic (build #:compressor '("gzip" "-9n")) 2))
  (test-equal "(\"zstd\" \"-19\"): zstd magic" '(#x28 #xb5 #x2f #xfd)
    (file-magic (build #:compressor '("zstd" "-19")) 4))
  (test-equal "a gzip-compressed image still has its manifest"
    #("tiny:latest")
    (json-ref (image-manifest (build #:compressor
                                     '("/usr/bin/gzip" "-9n")))
              "RepoTags"))
  (test-equal "#f: no compression" (map char->integer (string->list "ustar"))
    (list-tail (file-magic (build #:compressor #f) 262) 257)))

(test-group "extra-files"
  (let ((image (build #:extra-files
                      `((directory "/tmp" 0 0 #o1777)
                        (directory "/var/empty")
                        (directory "/home/alice" 1000 100 #o700)
                        ("/bin" -> ,(string-append tiny "/bin"))))))
    (test-assert "(directory \"/tmp\" 0 0 #o1777): a sticky directory"
      (let ((line (listing-line image "tmp/")))
        (and line (string-prefix? "drwxrwxrwt 0/0" line))))
    (test-assert "(directory \"/var/empty\"): a directory"
      (let ((line (listing-line image "var/empty/")))
        (and line (string-prefix? "d" line))))
    (test-assert "(directory \"/home/alice\" 1000 100 #o700): owner and mode"
      (let ((line (listing-line image "home/alice/")))
        (and line (string-prefix? "drwx------ 1000/100" line))))
    (test-assert "(\"/bin\" -> ITEM/bin): a symlink"
      (let ((line (listing-line image "bin")))
        (and line (string-prefix? "l" line)
             (string-suffix? (string-append "bin -> " tiny "/bin") line))))))

(test-group "transformations"
  (let* ((image (build #:transformations `((,store -> "/gnu/store"))))
         (names (layer-names image))
         (renamed (string-append "gnu/store/" (basename tiny))))
    (test-assert "names under OLD now start with NEW"
      (member (string-append renamed "/share/tiny.txt") names))
    (test-assert "no name starts with OLD any more"
      (not (any (cut string-prefix? (in-layer store) <>) names)))))

(test-group "creation-time"
  (test-equal "a time-utc, as Guix passes" "1970-01-02T00:00:00Z"
    (json-ref (image-config (build #:creation-time
                                   (make-time time-utc 0 86400)))
              "created"))
  (test-equal "a date" "2024-03-01T12:00:00Z"
    (json-ref (image-config
               (build #:creation-time (make-date 0 0 0 12 1 3 2024 0)))
              "created"))
  (test-equal "seconds" "2001-09-09T01:46:40Z"
    (json-ref (image-config (build #:creation-time 1000000000))
              "created")))

(test-group "system"
  (test-equal "aarch64-linux is arm64" "arm64"
    (json-ref (image-config (build #:system "aarch64-linux"))
              "architecture"))
  (test-equal "i686-linux is 386" "386"
    (json-ref (image-config (build #:system "i686-linux"))
              "architecture")))

(test-group "database"
  ;; Guix's #:database: the image's /var/guix/db/db.sqlite registers
  ;; exactly PATHS, with the rows the given database holds for them.
  (let* ((sample-root (make-temporary-directory))
         (profile (sample-store sample-root))
         (sample (string-append sample-root "/gnu/store"))
         (database (string-append sample-root "/var/guix/db/db.sqlite"))
         (paths (remove (cut string-suffix? "-unrelated-0.1" <>)
                        (map (cut string-append sample "/" <>)
                             (directory-entries sample))))
         (image (string-append root "/database.tar"))
         (_ (build-docker-image image paths profile
                                #:store-directory sample
                                #:database database))
         (layer (last (layers image)))
         (scratch (make-temporary-directory))
         (unpacked (begin
                     (system* "tar" "-xf" image "-C" scratch layer)
                     (system* "tar" "-xf" (string-append scratch "/" layer)
                              "-C" scratch "var/guix/db/db.sqlite")
                     (string-append scratch "/var/guix/db/db.sqlite")))
         (rows (lambda (file where)
                 (command-output "sqlite3" "-readonly" file
                                 (string-append "SELECT path, hash, narSize, \
(SELECT group_concat(v.path, ' ') FROM Refs r JOIN ValidPaths v \
ON v.id = r.reference WHERE r.referrer = p.id ORDER BY v.path) \
FROM ValidPaths p " where " ORDER BY path")))))
    (test-equal "installed at /var/guix/db/db.sqlite: exactly PATHS, with \
the source's hashes, sizes and references"
      (rows database "WHERE path NOT LIKE '%-unrelated-0.1'")
      (rows unpacked ""))
    (test-equal "PATHS are all registered" (length paths)
      (length (remove string-null?
                      (string-split (rows unpacked "") #\newline))))
    (test-assert "mode 0644, as Guix makes it"
      (string-prefix? "-rw-r--r--"
                      (listing-line image "var/guix/db/db.sqlite")))
    (test-assert "root's profile link points to the item (a GC root)"
      (let ((line (listing-line
                   image "var/guix/profiles/per-user/root/guix-profile-1-link")))
        (and line (string-suffix? (string-append "-> " profile) line))))
    (test-assert "guix-profile points to guix-profile-1-link, as in Guix"
      (let ((line (listing-line
                   image "var/guix/profiles/per-user/root/guix-profile")))
        (and line (string-suffix? "-> guix-profile-1-link" line))))
    (test-assert "/var/guix/gcroots/profiles points to /var/guix/profiles"
      (let ((line (listing-line image "var/guix/gcroots/profiles")))
        (and line (string-suffix? "-> /var/guix/profiles" line))))
    (test-assert "the history says the layer holds the store database"
      (string-contains
       (json-ref (vector-ref (json-ref (image-config image) "history") 0)
                 "comment")
       "the store database /var/guix/db/db.sqlite"))
    (test-equal "#:localstatedir? without #:database is refused"
      '(2 invalid-argument #t)
      (catch 'docker-native-error
        (lambda ()
          (build-docker-image/item tiny #:store-directory store
                                   #:output (string-append root "/none.tar")
                                   #:localstatedir? #t)
          'built)
        (lambda (key code symbol message)
          (list code symbol
                (and (string-contains message "no store database") #t)))))
    (test-assert "... and leaves nothing"
      (not (file-exists? (string-append root "/none.tar"))))
    (test-equal "a file that is not a store database is refused, naming it"
      '(8 database #t)
      (catch 'docker-native-error
        (lambda ()
          (let ((bogus (string-append root "/db.sqlite")))
            (write-file bogus "not really SQLite\n")
            (build #:database bogus)
            'built))
        (lambda (key code symbol message)
          (list code symbol
                (and (string-contains message "db.sqlite") #t)))))))

(test-group "short form"
  (let ((directory (make-temporary-directory))
        (cwd (getcwd)))
    (chdir directory)
    (let ((file (build-docker-image/item tiny #:store-directory store
                                         #:compression 'gzip)))
      (test-equal "writes NAME-docker-image.tar.gz in the current directory"
        "tiny-docker-image.tar.gz" file)
      (test-assert "the file is there" (file-exists? file))
      (test-assert "the library computed the closure (dep is in)"
        (member (in-layer dep) (layer-names file))))
    (chdir cwd)
    (delete-directory directory))
  (let ((file (build-docker-image/item
               tiny #:store-directory store
               #:output (string-append root "/short.tar")
               #:tags '("short:form")
               #:entry-point '("bin/tiny")
               #:symlinks '(("/usr/bin" . "bin")))))
    (test-equal "#:output is the file written" (string-append root "/short.tar")
      file)
    (test-equal "a relative entry point is relative to the item"
      (vector (string-append tiny "/bin/tiny"))
      (json-ref (image-config file) "config" "Entrypoint"))
    (test-equal "#:tags" #("short:form")
      (json-ref (image-manifest file) "RepoTags"))
    (test-assert "#:symlinks: a relative target is relative to the item"
      (let ((line (listing-line file "usr/bin")))
        (and line (string-suffix? (string-append "-> " tiny "/bin")
                                  line))))))

(test-group "build errors name their input"
  (match (error-fields
          (lambda ()
            (build-docker-image (string-append root "/no/such/dir/x.tar")
                                closure tiny #:store-directory store)))
    ((code symbol message)
     (test-equal "unwritable output: output error" '(7 output)
       (list code symbol))
     (test-assert "... naming the output"
       (string-contains message (string-append root "/no/such/dir")))))
  (match (error-fields
          (lambda ()
            (build-docker-image (string-append root "/x.tar")
                                (list dep) tiny #:store-directory store)))
    ((code symbol message)
     (test-equal "closure without the item: incomplete-closure"
       '(4 incomplete-closure) (list code symbol))
     (test-assert "... naming the item" (string-contains message tiny))))
  (let ((missing (string-append store "/44444444444444444444444444444444-gone")))
    (match (error-fields
            (lambda ()
              (build-docker-image/item missing #:store-directory store
                                       #:output (string-append root
                                                               "/y.tar"))))
      ((code symbol message)
       (test-assert "a missing item is an error naming it"
         (and (integer? code) (string-contains message missing))))))
  (match (error-fields
          (lambda ()
            (build-docker-image/item "/elsewhere/0123456789abcdfghijklmnpqrsvwxyz-x"
                                     #:store-directory store
                                     #:output (string-append root "/z.tar"))))
    ((code symbol message)
     (test-equal "an item outside the store: invalid-store-path"
       '(3 invalid-store-path) (list code symbol))
     (test-assert "... naming it" (string-contains message "/elsewhere/"))))
  (test-assert "no output is left behind by failed builds"
    (not (any file-exists?
              (map (cut string-append root <>) '("/x.tar" "/y.tar" "/z.tar"))))))

(delete-directory root)
(test-suite-end "images")
