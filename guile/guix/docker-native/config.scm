;;; guix-docker-native --- Docker images from Guix store items, natively.
;;;
;;; This file is part of guix-docker-native, licensed under the GNU GPL,
;;; version 3 or (at your option) any later version.

(define-module (guix docker-native config)
  #:export (%configured-library-file))

;;; Commentary:
;;;
;;; What an installation configures, as Guix's own (guix config).  In a
;;; checkout, nothing: (guix docker-native) then finds the library in the
;;; Cargo build directory or through GUIX_DOCKER_NATIVE_LIBRARY.  `make
;;; install' installs this file with the installed library's absolute file
;;; name in place of #f; a package definition may substitute it the same
;;; way.  Keep the definition on one line: the Makefile rewrites that line.
;;;
;;; Code:

(define %configured-library-file #f)

;;; config.scm ends here
