# Build, install and uninstall guix-docker-native as distributions expect,
# with the directory variables of the GNU Coding Standards (upper case, as
# most Makefiles without a configure script spell them).  Guix's
# gnu-build-system and Debian's dh_auto_build/dh_auto_install call these
# targets; README.md ("Install") documents them.
#
#   make                                          build (cargo build --release, ...)
#   make install PREFIX=/usr DESTDIR=/tmp/stage   install, staged under DESTDIR
#   make uninstall PREFIX=/usr DESTDIR=/tmp/stage remove what install installed
#   make check                                    cargo test --release
#
# Give `make install' the same PREFIX/LIBDIR as `make' (or nothing but
# DESTDIR): the Guile module and the front end record the installed
# directories when they are built.

SHELL = /bin/sh
.SUFFIXES:

# Where things go.
PREFIX = /usr/local
EXEC_PREFIX = $(PREFIX)
BINDIR = $(EXEC_PREFIX)/bin
LIBDIR = $(EXEC_PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
DATAROOTDIR = $(PREFIX)/share
MANDIR = $(DATAROOTDIR)/man
PKGCONFIGDIR = $(LIBDIR)/pkgconfig
GUILE_EFFECTIVE_VERSION = 3.0
GUILE_SITE_DIR = $(DATAROOTDIR)/guile/site/$(GUILE_EFFECTIVE_VERSION)
GUILE_SITE_CCACHE_DIR = $(LIBDIR)/guile/$(GUILE_EFFECTIVE_VERSION)/site-ccache
BASH_COMPLETION_DIR = $(DATAROOTDIR)/bash-completion/completions
ZSH_COMPLETION_DIR = $(DATAROOTDIR)/zsh/site-functions
FISH_COMPLETION_DIR = $(DATAROOTDIR)/fish/vendor_completions.d
DESTDIR =

# The tools.  CC links the installed library; LDFLAGS are added to that link.
CARGO = cargo
CARGOFLAGS =
GUILE = guile
INSTALL = install
INSTALL_PROGRAM = $(INSTALL) -m 755
INSTALL_DATA = $(INSTALL) -m 644
# What the staticlib needs (rustc --print native-static-libs).
NATIVE_LIBS = -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

DIRECTORY_VARIABLES = PREFIX EXEC_PREFIX BINDIR LIBDIR INCLUDEDIR DATAROOTDIR \
  MANDIR PKGCONFIGDIR GUILE_SITE_DIR GUILE_SITE_CCACHE_DIR \
  BASH_COMPLETION_DIR ZSH_COMPLETION_DIR FISH_COMPLETION_DIR

# Each directory variable must be one absolute file name that can go into a
# Scheme string, a shell word and a sed replacement unchanged.
check-directory = $(strip \
  $(if $(filter-out 1,$(words $($(1)))),$(error $(1)='$($(1))': must be one absolute directory name, without spaces)) \
  $(if $(filter /%,$($(1))),,$(error $(1)='$($(1))': must be an absolute directory name (starting with /))) \
  $(if $(or $(findstring ",$($(1))),$(findstring ',$($(1))),$(findstring \,$($(1))),$(findstring |,$($(1))),$(findstring &,$($(1)))),\
    $(error $(1)='$($(1))': quotes, backslashes, | and & are not supported in directory names)))
$(foreach v,$(DIRECTORY_VARIABLES),$(call check-directory,$(v)))
$(if $(filter-out 0 1,$(words $(DESTDIR))),$(error DESTDIR='$(DESTDIR)': spaces are not supported))

# The package's version (Cargo.toml) and the C ABI's (the header).
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
ABI_VERSION := $(shell sed -n 's/^\#define GDN_ABI_VERSION \([0-9][0-9]*\)$$/\1/p' include/guix_docker_native.h)
$(if $(VERSION),,$(error Cargo.toml: no version = "..." line))
$(if $(ABI_VERSION),,$(error include/guix_docker_native.h: no GDN_ABI_VERSION))

# libguix_docker_native.so.1.0.1.0: the SONAME (ABI 1) and the package's
# version; .so.1 links to it for programs, .so to .so.1 for the linker.
LIBRARY = libguix_docker_native.so
SONAME = $(LIBRARY).$(ABI_VERSION)
LIBRARY_FILE = $(SONAME).$(VERSION)

TARGET_DIR = $(or $(CARGO_TARGET_DIR),target)
RELEASE = $(TARGET_DIR)/release
# What this Makefile generates.
BUILD = $(TARGET_DIR)/install-files
FILES = $(BUILD)/files
CONFIG_SCM = $(BUILD)/guile/guix/docker-native/config.scm
GO_FILES = $(BUILD)/ccache/guix/docker-native/config.go \
  $(BUILD)/ccache/guix/docker-native/bindings.go \
  $(BUILD)/ccache/guix/docker-native.go \
  $(BUILD)/ccache/guix/scripts/archive-docker.go
CONFIGURED_LIBRARY = $(LIBDIR)/$(SONAME)

# Writes $@.tmp over $@ only when they differ, so that $@'s mtime (and what
# is made from it) changes only with its contents.
update = if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

.PHONY: all generated install uninstall check clean FORCE

all:
	$(CARGO) build --release $(CARGOFLAGS) --lib --bin guix-docker-native --bin gdn-install-files
	$(RELEASE)/gdn-install-files $(FILES)
	@$(MAKE) --no-print-directory generated

# After Cargo, in a make of its own so that the files Cargo wrote are seen
# with their new dates.
generated: $(BUILD)/$(LIBRARY_FILE) $(BUILD)/guix-docker-native.pc \
  $(BUILD)/guix-archive-docker $(GO_FILES)

# The installed library, linked from the staticlib with the version script
# alone (Cargo's cdylib carries rustc's unversioned one; see build.rs).
$(BUILD)/$(LIBRARY_FILE): $(RELEASE)/libguix_docker_native.a $(FILES)/guix_docker_native.map
	$(CC) -shared -o $@.tmp -Wl,-soname,$(SONAME) \
	  -Wl,--version-script=$(FILES)/guix_docker_native.map \
	  -Wl,--whole-archive $(RELEASE)/libguix_docker_native.a -Wl,--no-whole-archive \
	  -Wl,--gc-sections -Wl,--strip-debug -Wl,-z,relro -Wl,-z,now $(LDFLAGS) $(NATIVE_LIBS)
	mv -f $@.tmp $@

$(BUILD)/guix-docker-native.pc: FORCE
	@mkdir -p $(@D)
	@{ echo 'prefix=$(PREFIX)'; \
	   echo 'exec_prefix=$(patsubst $(PREFIX)%,$${prefix}%,$(EXEC_PREFIX))'; \
	   echo 'libdir=$(patsubst $(EXEC_PREFIX)%,$${exec_prefix}%,$(LIBDIR))'; \
	   echo 'includedir=$(patsubst $(PREFIX)%,$${prefix}%,$(INCLUDEDIR))'; \
	   echo; \
	   echo 'Name: guix-docker-native'; \
	   echo 'Description: Docker image archives from GNU Guix store items (C API)'; \
	   echo 'Version: $(VERSION)'; \
	   echo 'Libs: -L$${libdir} -lguix_docker_native'; \
	   echo 'Cflags: -I$${includedir}'; } > $@.tmp
	@$(update)

# The front end, with the installed modules' directories.
$(BUILD)/guix-archive-docker: guile/guix-archive-docker FORCE
	@mkdir -p $(@D)
	sed -e 's|^site_dir=$$|site_dir=$(GUILE_SITE_DIR)|' \
	    -e 's|^site_ccache_dir=$$|site_ccache_dir=$(GUILE_SITE_CCACHE_DIR)|' $< > $@.tmp
	@grep -qx 'site_dir=$(GUILE_SITE_DIR)' $@.tmp && grep -qx 'site_ccache_dir=$(GUILE_SITE_CCACHE_DIR)' $@.tmp \
	  || { echo "$<: no empty site_dir= and site_ccache_dir= lines to set" >&2; rm -f $@.tmp; exit 1; }
	@$(update)

# (guix docker-native config) naming the installed library.
$(CONFIG_SCM): guile/guix/docker-native/config.scm FORCE
	@mkdir -p $(@D)
	sed 's|^(define %configured-library-file #f)$$|(define %configured-library-file "$(CONFIGURED_LIBRARY)")|' $< > $@.tmp
	@grep -qx '(define %configured-library-file "$(CONFIGURED_LIBRARY)")' $@.tmp \
	  || { echo "$<: no line '(define %configured-library-file #f)' to configure" >&2; rm -f $@.tmp; exit 1; }
	@$(update)

# Compiled modules.  A module is recompiled with what it imports: Guile may
# inline another module's definitions.  File names in the .go files are
# relative to the load path, so they hold no build directory.
$(BUILD)/ccache/guix/docker-native/config.go: $(CONFIG_SCM)
$(BUILD)/ccache/guix/docker-native/bindings.go: guile/guix/docker-native/bindings.scm \
  $(BUILD)/ccache/guix/docker-native/config.go
$(BUILD)/ccache/guix/docker-native.go: guile/guix/docker-native.scm \
  $(BUILD)/ccache/guix/docker-native/bindings.go
$(BUILD)/ccache/guix/scripts/archive-docker.go: guile/guix/scripts/archive-docker.scm \
  $(BUILD)/ccache/guix/docker-native.go
COMPILE_MODULE = (use-modules (system base compile)) (with-fluids ((%file-port-name-canonicalization (quote relative))) (compile-file (cadr (command-line)) \#:output-file (caddr (command-line))))
$(GO_FILES):
	@mkdir -p $(@D)
	GUILE_AUTO_COMPILE=0 GUILE_LOAD_PATH=$(abspath $(BUILD)/guile):$(CURDIR)/guile \
	GUILE_LOAD_COMPILED_PATH=$(abspath $(BUILD)/ccache) \
	  $(GUILE) --no-auto-compile -c '$(COMPILE_MODULE)' $(abspath $<) $(abspath $@).tmp
	mv -f $@.tmp $@

# What install puts where: source and destination.
INSTALLED_PROGRAMS = $(RELEASE)/guix-docker-native:$(BINDIR)/guix-docker-native \
  $(BUILD)/guix-archive-docker:$(BINDIR)/guix-archive-docker
INSTALLED_DATA = $(BUILD)/$(LIBRARY_FILE):$(LIBDIR)/$(LIBRARY_FILE) \
  include/guix_docker_native.h:$(INCLUDEDIR)/guix_docker_native.h \
  $(BUILD)/guix-docker-native.pc:$(PKGCONFIGDIR)/guix-docker-native.pc \
  $(FILES)/man1/guix-docker-native.1:$(MANDIR)/man1/guix-docker-native.1 \
  $(FILES)/completions/guix-docker-native.bash:$(BASH_COMPLETION_DIR)/guix-docker-native \
  $(FILES)/completions/_guix-docker-native:$(ZSH_COMPLETION_DIR)/_guix-docker-native \
  $(FILES)/completions/guix-docker-native.fish:$(FISH_COMPLETION_DIR)/guix-docker-native.fish
# The sources before the compiled files: a .go older than its source is stale.
INSTALLED_MODULES = guile/guix/docker-native.scm:$(GUILE_SITE_DIR)/guix/docker-native.scm \
  $(CONFIG_SCM):$(GUILE_SITE_DIR)/guix/docker-native/config.scm \
  guile/guix/docker-native/bindings.scm:$(GUILE_SITE_DIR)/guix/docker-native/bindings.scm \
  guile/guix/scripts/archive-docker.scm:$(GUILE_SITE_DIR)/guix/scripts/archive-docker.scm \
  $(BUILD)/ccache/guix/docker-native.go:$(GUILE_SITE_CCACHE_DIR)/guix/docker-native.go \
  $(BUILD)/ccache/guix/docker-native/config.go:$(GUILE_SITE_CCACHE_DIR)/guix/docker-native/config.go \
  $(BUILD)/ccache/guix/docker-native/bindings.go:$(GUILE_SITE_CCACHE_DIR)/guix/docker-native/bindings.go \
  $(BUILD)/ccache/guix/scripts/archive-docker.go:$(GUILE_SITE_CCACHE_DIR)/guix/scripts/archive-docker.go
INSTALLED_LINKS = $(LIBDIR)/$(SONAME) $(LIBDIR)/$(LIBRARY)

destinations = $(foreach pair,$(1),$(lastword $(subst :, ,$(pair))))
INSTALLED_FILES = $(call destinations,$(INSTALLED_PROGRAMS) $(INSTALLED_DATA) $(INSTALLED_MODULES)) \
  $(INSTALLED_LINKS)
INSTALLED_DIRS = $(sort $(patsubst %/,%,$(dir $(INSTALLED_FILES))))

install: all
	$(INSTALL) -d $(addprefix $(DESTDIR),$(INSTALLED_DIRS))
	@set -e; for pair in $(INSTALLED_PROGRAMS); do \
	  echo "$(INSTALL_PROGRAM) $${pair%%:*} $(DESTDIR)$${pair#*:}"; \
	  $(INSTALL_PROGRAM) "$${pair%%:*}" "$(DESTDIR)$${pair#*:}"; done
	@set -e; for pair in $(INSTALLED_DATA) $(INSTALLED_MODULES); do \
	  echo "$(INSTALL_DATA) $${pair%%:*} $(DESTDIR)$${pair#*:}"; \
	  $(INSTALL_DATA) "$${pair%%:*}" "$(DESTDIR)$${pair#*:}"; done
	ln -sfn $(LIBRARY_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sfn $(SONAME) $(DESTDIR)$(LIBDIR)/$(LIBRARY)

# Removes the installed files, then the directories that are left empty,
# up to DESTDIR (when staging) or PREFIX, never those themselves.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	@stop='$(abspath $(or $(DESTDIR),$(PREFIX)))'; \
	for dir in $(abspath $(addprefix $(DESTDIR),$(INSTALLED_DIRS))); do \
	  while case "$$dir" in "$$stop"/*) true;; *) false;; esac \
	        && rmdir "$$dir" 2>/dev/null; do \
	    echo "rmdir $$dir"; dir=$${dir%/*}; \
	  done; \
	done

check:
	$(CARGO) test --release $(CARGOFLAGS)

clean:
	rm -rf $(BUILD)

FORCE:
