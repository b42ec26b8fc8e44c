/*
 * test_abi.c: exercises the C ABI of guix-docker-native through
 * include/guix_docker_native.h and libguix_docker_native.so.
 *
 * Usage: test_abi STORE_DIR ITEM DATABASE WORKDIR [ENTRY_POINT]
 *   STORE_DIR    a sample store (tests/c/run.sh makes one with gdn-sample-store)
 *   ITEM         its main item
 *   DATABASE     its store database
 *   WORKDIR      an empty directory for the archives
 *   ENTRY_POINT  a program relative to ITEM (optional)
 *
 * Builds real images through the ABI (several options, an explicit closure,
 * a closure computed from the database, compressed, to standard output, in
 * two threads at once), asks it the names it gives (result codes, store
 * items, default output files, tags), writes OCI layouts, oci-archives and a
 * multi-platform index through the destination strings (read back by skopeo
 * and umoci) and drives every error path.  Prints one line per
 * check and "N passed, N failed"; exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guix_docker_native.h"

static int passed, failed;

static void expect(int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s - ", ok ? "ok" : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  if (ok)
    passed++;
  else
    failed++;
}

static const char *last_error(void) {
  const char *message = gdn_last_error_message();
  return message ? message : "(NULL)";
}

/* A call returned `got`; it should have failed with `want` and a message
 * that contains `needle` (the input it names). */
static void expect_failure(const char *what, gdn_result got, gdn_result want, const char *needle) {
  const char *message = gdn_last_error_message();
  expect(got == want, "%s: result %d (want %d): %s", what, got, want, last_error());
  expect(message != NULL && strstr(message, needle) != NULL, "%s: message names %s", what, needle);
}

static char *join(const char *a, const char *b) {
  size_t n = strlen(a) + strlen(b) + 2;
  char *s = malloc(n);
  if (!s) abort();
  snprintf(s, n, "%s/%s", a, b);
  return s;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static int entries_in(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
  closedir(d);
  return n;
}

/* A failed build: the code, the message, and nothing left behind at
 * `output` or beside it in `output_dir`. */
static void expect_build_failure(const char *what, gdn_result got, gdn_result want,
                                 const char *needle, const char *output, const char *output_dir) {
  expect_failure(what, got, want, needle);
  if (output) expect(!exists(output), "%s: nothing at %s", what, output);
  if (output_dir) expect(entries_in(output_dir) == 0, "%s: no file left in %s", what, output_dir);
}

/* ---- reading archives ---- */

typedef struct {
  unsigned char *data;
  size_t size;
} bytes;

static bytes read_file(const char *path) {
  bytes b = {NULL, 0};
  FILE *f = fopen(path, "rb");
  if (!f) return b;
  size_t cap = 1 << 16;
  b.data = malloc(cap);
  if (!b.data) abort();
  size_t n;
  while ((n = fread(b.data + b.size, 1, cap - b.size, f)) > 0) {
    b.size += n;
    if (b.size == cap) {
      cap *= 2;
      b.data = realloc(b.data, cap);
      if (!b.data) abort();
    }
  }
  fclose(f);
  return b;
}

static int same_bytes(bytes a, bytes b) {
  return a.data && b.data && a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
}

static unsigned long long octal(const unsigned char *field, size_t len) {
  unsigned long long v = 0;
  if (field[0] & 0x80) { /* base-256 */
    for (size_t i = 1; i < len; i++) v = (v << 8) | field[i];
    return v;
  }
  for (size_t i = 0; i < len && field[i] >= '0' && field[i] <= '7'; i++) v = v * 8 + (field[i] - '0');
  return v;
}

/* Is `h` a tar header block with magic "ustar" and a correct checksum? */
static int is_tar_header(const unsigned char *h) {
  if (memcmp(h + 257, "ustar", 5) != 0) return 0;
  unsigned long sum = 0;
  for (int i = 0; i < 512; i++) sum += (i >= 148 && i < 156) ? ' ' : h[i];
  return sum == octal(h + 148, 8);
}

static const unsigned char *pax_value(const unsigned char *pax, size_t len, const char *key,
                                     size_t *value_len) {
  /* PAX records: "LEN KEY=VALUE\n". */
  size_t off = 0;
  size_t klen = strlen(key);
  while (off < len) {
    size_t rec = 0, i = off;
    while (i < len && pax[i] >= '0' && pax[i] <= '9') rec = rec * 10 + (pax[i++] - '0');
    if (rec == 0 || off + rec > len || pax[i] != ' ') return NULL;
    i++;
    if (i + klen < off + rec && memcmp(pax + i, key, klen) == 0 && pax[i + klen] == '=') {
      *value_len = off + rec - (i + klen + 1) - 1;
      return pax + i + klen + 1;
    }
    off += rec;
  }
  return NULL;
}

/* The member of the uncompressed tar `b` named `name` (or, with `suffix`,
 * the first whose name ends with `name`): a view into `b`, {NULL, 0} when
 * it is not there. */
static bytes tar_find(bytes b, const char *name, int suffix) {
  bytes none = {NULL, 0};
  size_t off = 0;
  char long_name[4096] = "";
  while (off + 512 <= b.size) {
    const unsigned char *h = b.data + off;
    int zero = 1;
    for (int i = 0; i < 512 && zero; i++) zero = h[i] == 0;
    if (zero || !is_tar_header(h)) return none;
    unsigned long long size = octal(h + 124, 12);
    const unsigned char *body = h + 512;
    if (off + 512 + size > b.size) return none;
    char type = (char)h[156];
    if (type == 'x' || type == 'L') {
      size_t vlen = 0;
      const unsigned char *v = type == 'L' ? body : pax_value(body, size, "path", &vlen);
      if (type == 'L') vlen = strnlen((const char *)body, size);
      if (v && vlen < sizeof long_name) {
        memcpy(long_name, v, vlen);
        long_name[vlen] = 0;
      }
    } else {
      char short_name[101];
      memcpy(short_name, h, 100);
      short_name[100] = 0;
      const char *entry = long_name[0] ? long_name : short_name;
      size_t elen = strlen(entry), nlen = strlen(name);
      if (suffix ? elen >= nlen && strcmp(entry + elen - nlen, name) == 0 : strcmp(entry, name) == 0) {
        bytes found = {(unsigned char *)body, (size_t)size};
        return found;
      }
      long_name[0] = 0;
    }
    off += 512 + (size + 511) / 512 * 512;
  }
  return none;
}

/* The contents of the member `name` of the uncompressed tar `b`, as a
 * NUL-terminated malloc'd string, or NULL when it is not there. */
static char *tar_member(bytes b, const char *name) {
  bytes m = tar_find(b, name, 0);
  if (!m.data) return NULL;
  char *s = malloc(m.size + 1);
  if (!s) abort();
  memcpy(s, m.data, m.size);
  s[m.size] = 0;
  return s;
}

/* The checks a user makes of an uncompressed image archive. */
static void expect_image(const char *what, const char *path, const char *tag) {
  bytes b = read_file(path);
  expect(b.data != NULL && b.size >= 1024 && b.size % 512 == 0,
         "%s: %s exists, %zu bytes, whole 512-byte blocks", what, path, b.size);
  expect(b.size >= 512 && is_tar_header(b.data), "%s: starts with a tar header", what);
  char *manifest = b.data ? tar_member(b, "manifest.json") : NULL;
  expect(manifest != NULL, "%s: has manifest.json", what);
  if (manifest && tag) {
    char quoted[256];
    snprintf(quoted, sizeof quoted, "\"%s\"", tag);
    expect(strstr(manifest, "\"RepoTags\"") && strstr(manifest, quoted),
           "%s: manifest.json lists the tag %s", what, tag);
  }
  free(manifest);
  free(b.data);
}

/* ---- the store ---- */

static int is_item_name(const char *name) {
  return strlen(name) > 33 && name[32] == '-' && name[0] != '.';
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every item of the store: a closure of any of them.  Sorted. */
static char **store_items(const char *store, size_t *count) {
  DIR *d = opendir(store);
  if (!d) {
    perror(store);
    exit(2);
  }
  size_t n = 0, cap = 16;
  char **items = malloc(cap * sizeof *items);
  if (!items) abort();
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_item_name(e->d_name)) continue;
    if (n == cap) {
      cap *= 2;
      items = realloc(items, cap * sizeof *items);
      if (!items) abort();
    }
    items[n++] = join(store, e->d_name);
  }
  closedir(d);
  qsort(items, n, sizeof *items, compare_strings);
  *count = n;
  return items;
}

static void free_strings(char **s, size_t n) {
  for (size_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

/* ---- progress ---- */

typedef struct {
  atomic_int inside;
  atomic_int overlapped;
  atomic_int foreign_thread;
  atomic_long calls;
  atomic_int beyond_total;
} progress_log;

/* Set by a thread around its own build_docker_image calls. */
static _Thread_local int building;

static gdn_result build(const char *item, const char *const *closure, size_t len,
                        const char *output, const gdn_options *options) {
  building = 1;
  gdn_result r = build_docker_image(item, closure, len, output, options);
  building = 0;
  return r;
}

static void on_progress(uint64_t bytes_done, uint64_t bytes_total, void *userdata) {
  progress_log *log = userdata;
  if (!building) atomic_store(&log->foreign_thread, 1);
  if (atomic_fetch_add(&log->inside, 1) != 0) atomic_store(&log->overlapped, 1);
  atomic_fetch_add(&log->calls, 1);
  if (bytes_done > bytes_total) atomic_store(&log->beyond_total, 1);
  /* Widen the window in which overlapping calls would show. */
  struct timespec pause = {0, 100000};
  nanosleep(&pause, NULL);
  atomic_fetch_sub(&log->inside, 1);
}

/* ---- threads ---- */

typedef struct {
  const char *item;
  const char *output;
  const gdn_options *options;
  gdn_result result;
  int clean_start; /* no last error inherited from the main thread */
  char message[512];
} build_job;

static void *run_build(void *arg) {
  build_job *job = arg;
  job->clean_start = gdn_last_error_message() == NULL;
  job->result = build(job->item, NULL, 0, job->output, job->options);
  snprintf(job->message, sizeof job->message, "%s", last_error());
  return NULL;
}

/* ---- the tests ---- */

static void test_versions(void) {
  expect(gdn_abi_version() == 1 && GDN_ABI_VERSION == 1, "gdn_abi_version() == 1");
  const char *v = gdn_version();
  expect(v != NULL && strlen(v) > 0 && strchr(v, '.') != NULL, "gdn_version() is \"%s\"", v ? v : "(NULL)");
  expect(gdn_last_error_message() == NULL, "no error before any call");
}

static void progress_noop(uint64_t done, uint64_t total, void *userdata) {
  (void)done;
  (void)total;
  (void)userdata;
}

#define NULL_OPTIONS(call) expect_failure(#call, call, GDN_ERR_NULL_ARGUMENT, "'options'")

static void test_null_options_handle(void) {
  NULL_OPTIONS(gdn_options_set_store_dir(NULL, "/gnu/store"));
  NULL_OPTIONS(gdn_options_set_database(NULL, "/var/guix/db/db.sqlite"));
  NULL_OPTIONS(gdn_options_add_tag(NULL, "hello"));
  NULL_OPTIONS(gdn_options_set_entry_point(NULL, "bin/hello"));
  NULL_OPTIONS(gdn_options_add_entry_point_argument(NULL, "-v"));
  NULL_OPTIONS(gdn_options_add_cmd(NULL, "-v"));
  NULL_OPTIONS(gdn_options_add_env(NULL, "A=1"));
  NULL_OPTIONS(gdn_options_set_working_dir(NULL, "/"));
  NULL_OPTIONS(gdn_options_set_user(NULL, "0"));
  NULL_OPTIONS(gdn_options_add_label(NULL, "k", "v"));
  NULL_OPTIONS(gdn_options_add_exposed_port(NULL, "80"));
  NULL_OPTIONS(gdn_options_add_volume(NULL, "/data"));
  NULL_OPTIONS(gdn_options_add_symlink(NULL, "/bin", "bin"));
  NULL_OPTIONS(gdn_options_add_directory(NULL, "/tmp", 0, 0, 01777));
  NULL_OPTIONS(gdn_options_add_file(NULL, "/etc/x", "/etc/hostname"));
  NULL_OPTIONS(gdn_options_add_transformation(NULL, "/gnu", "/opt"));
  NULL_OPTIONS(gdn_options_set_max_layers(NULL, 2));
  NULL_OPTIONS(gdn_options_set_system(NULL, "x86_64-linux"));
  NULL_OPTIONS(gdn_options_set_creation_time(NULL, 1));
  NULL_OPTIONS(gdn_options_set_compression(NULL, "gzip", 0));
  NULL_OPTIONS(gdn_options_set_threads(NULL, 1));
  NULL_OPTIONS(gdn_options_set_localstatedir(NULL, 1));
  NULL_OPTIONS(gdn_options_set_progress_callback(NULL, progress_noop, NULL));
  NULL_OPTIONS(gdn_options_set_cancel(NULL, NULL));
  NULL_OPTIONS(gdn_options_set_registry_credentials(NULL, "me", "pw"));
  NULL_OPTIONS(gdn_options_set_cert_dir(NULL, "/etc/certs"));
  NULL_OPTIONS(gdn_options_set_tls_verify(NULL, 0));
  NULL_OPTIONS(gdn_options_set_manifest_format(NULL, "docker"));
  NULL_OPTIONS(gdn_options_set_push_jobs(NULL, 2));
  NULL_OPTIONS(gdn_options_set_cache_dir(NULL, "/tmp/cache"));
  NULL_OPTIONS(gdn_options_set_cache(NULL, 0));
  gdn_options_free(NULL);
  expect(1, "gdn_options_free(NULL) returns");
}

#define NULL_ARG(call, name) expect_failure(#call, call, GDN_ERR_NULL_ARGUMENT, "'" name "'")
#define INVALID(call, needle) expect_failure(#call, call, GDN_ERR_INVALID_ARGUMENT, needle)

static void test_setter_errors(void) {
  gdn_options *o = gdn_options_new();
  expect(o != NULL, "gdn_options_new() gives a handle");
  if (!o) return;

  NULL_ARG(gdn_options_set_store_dir(o, NULL), "dir");
  NULL_ARG(gdn_options_set_database(o, NULL), "file");
  NULL_ARG(gdn_options_add_tag(o, NULL), "tag");
  NULL_ARG(gdn_options_set_entry_point(o, NULL), "program");
  NULL_ARG(gdn_options_add_entry_point_argument(o, NULL), "arg");
  NULL_ARG(gdn_options_add_cmd(o, NULL), "arg");
  NULL_ARG(gdn_options_add_env(o, NULL), "name_eq_value");
  NULL_ARG(gdn_options_set_working_dir(o, NULL), "dir");
  NULL_ARG(gdn_options_set_user(o, NULL), "user");
  NULL_ARG(gdn_options_add_label(o, NULL, "v"), "key");
  NULL_ARG(gdn_options_add_label(o, "k", NULL), "value");
  NULL_ARG(gdn_options_add_exposed_port(o, NULL), "port");
  NULL_ARG(gdn_options_add_volume(o, NULL), "path");
  NULL_ARG(gdn_options_add_symlink(o, NULL, "bin"), "link");
  NULL_ARG(gdn_options_add_symlink(o, "/bin", NULL), "target");
  NULL_ARG(gdn_options_add_directory(o, NULL, 0, 0, 0755), "path");
  NULL_ARG(gdn_options_add_file(o, NULL, "/etc/hostname"), "image_path");
  NULL_ARG(gdn_options_add_file(o, "/etc/x", NULL), "source");
  NULL_ARG(gdn_options_add_transformation(o, NULL, "/opt"), "old_prefix");
  NULL_ARG(gdn_options_add_transformation(o, "/gnu", NULL), "new_prefix");
  NULL_ARG(gdn_options_set_system(o, NULL), "system");
  NULL_ARG(gdn_options_set_compression(o, NULL, 0), "name");

  INVALID(gdn_options_add_tag(o, "hello\xff\xfe"), "'tag'");
  expect(strstr(last_error(), "UTF-8") != NULL, "invalid UTF-8 is called so: %s", last_error());
  INVALID(gdn_options_set_entry_point(o, "bin/\xc3("), "'program'");
  INVALID(gdn_options_add_tag(o, "Not A Tag!"), "Not A Tag!");
  INVALID(gdn_options_add_tag(o, "hello:"), "hello:");
  INVALID(gdn_options_set_max_layers(o, 0), "max-layers 0");
  INVALID(gdn_options_set_max_layers(o, 126), "max-layers 126");
  INVALID(gdn_options_set_system(o, "sparc-linux"), "sparc-linux");
  INVALID(gdn_options_set_compression(o, "lzma", 0), "lzma");
  INVALID(gdn_options_set_compression(o, "gzip", 10), "compression level 10");
  INVALID(gdn_options_set_store_dir(o, "gnu/store"), "gnu/store");
  INVALID(gdn_options_set_working_dir(o, "relative/dir"), "relative/dir");
  INVALID(gdn_options_add_env(o, "NO_EQUALS_SIGN"), "NO_EQUALS_SIGN");
  INVALID(gdn_options_add_exposed_port(o, "80/icmp"), "80/icmp");
  INVALID(gdn_options_add_volume(o, "data"), "'data'");
  INVALID(gdn_options_add_directory(o, "/tmp", 0, 0, 010000), "'/tmp'");
  INVALID(gdn_options_add_entry_point_argument(o, "-v"), "'-v'");
  INVALID(gdn_options_set_creation_time(o, INT64_MAX), "creation time");
  INVALID(gdn_options_set_threads(o, 100000), "threads 100000");

  /* A push's options (GDN_1.2); a refused password is never quoted. */
  NULL_ARG(gdn_options_set_registry_credentials(o, "me", NULL), "password");
  NULL_ARG(gdn_options_set_manifest_format(o, NULL), "format");
  INVALID(gdn_options_set_registry_credentials(o, "m:e", "hunter2"), "m:e");
  expect(strstr(last_error(), "hunter2") == NULL, "the password is not in the message: %s", last_error());
  INVALID(gdn_options_set_registry_credentials(o, "me", "hunter\xff"), "'password' is not valid UTF-8");
  expect(strstr(last_error(), "hunter") == NULL, "the password is not in the message: %s", last_error());
  INVALID(gdn_options_set_manifest_format(o, "v1"), "manifest format 'v1'");
  INVALID(gdn_options_set_push_jobs(o, 65), "jobs 65");
  expect(gdn_options_set_registry_credentials(o, "me", "hunter2") == GDN_OK, "credentials accepted");
  expect(gdn_options_set_registry_credentials(o, NULL, NULL) == GDN_OK, "NULL user forgets the credentials");
  expect(gdn_options_set_cert_dir(o, "/etc/certs") == GDN_OK && gdn_options_set_cert_dir(o, NULL) == GDN_OK,
         "a cert dir is set and unset");
  expect(gdn_options_set_tls_verify(o, 0) == GDN_OK, "tls verify off accepted");
  expect(gdn_options_set_manifest_format(o, "docker") == GDN_OK, "manifest format docker accepted");
  expect(gdn_options_set_push_jobs(o, 8) == GDN_OK, "push jobs 8 accepted");

  /* The layer cache (GDN_1.3). */
  INVALID(gdn_options_set_cache_dir(o, ""), "cache directory ''");
  expect(gdn_options_set_cache_dir(o, "/tmp/cache") == GDN_OK && gdn_options_set_cache_dir(o, NULL) == GDN_OK,
         "a cache dir is set and unset");
  expect(gdn_options_set_cache(o, 0) == GDN_OK && gdn_options_set_cache(o, 1) == GDN_OK, "the cache off and on");

  /* A success after a failure clears the message. */
  expect(gdn_options_set_max_layers(o, 125) == GDN_OK, "max layers 125 is accepted");
  expect(gdn_last_error_message() == NULL, "a successful call clears the last error");
  gdn_options_free(o);
}

/* Failures of build_docker_image that must leave nothing behind. */
/* The names the library gives (GDN_1.1): result codes, store items, the
 * default output file and the tag from a name; each string it returns is
 * freed with gdn_string_free (valgrind sees a leak otherwise). */
static void test_names(const char *store, const char *item, const char *database, const char *work) {
  static const struct { gdn_result code; const char *name; } codes[] = {
    {GDN_OK, "ok"},
    {GDN_ERR_NULL_ARGUMENT, "null-argument"},
    {GDN_ERR_INVALID_ARGUMENT, "invalid-argument"},
    {GDN_ERR_INVALID_STORE_PATH, "invalid-store-path"},
    {GDN_ERR_INCOMPLETE_CLOSURE, "incomplete-closure"},
    {GDN_ERR_UNSUPPORTED_FILE, "unsupported-file"},
    {GDN_ERR_IO, "io"},
    {GDN_ERR_OUTPUT, "output"},
    {GDN_ERR_DATABASE, "database"},
    {GDN_ERR_CANCELLED, "cancelled"},
    {GDN_ERR_PANIC, "panic"},
    {GDN_ERR_BUSY, "busy"},
  };
  gdn_options_add_tag(NULL, "x"); /* an error that gdn_result_name leaves alone */
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *name = gdn_result_name(codes[i].code);
    expect(name != NULL && strcmp(name, codes[i].name) == 0, "gdn_result_name(%d) is \"%s\" (got %s)",
           codes[i].code, codes[i].name, name ? name : "NULL");
  }
  expect(gdn_result_name(GDN_ERR_BUSY + 1) == NULL && gdn_result_name(-1) == NULL,
         "gdn_result_name of an unknown code is NULL");
  expect(gdn_last_error_message() != NULL, "gdn_result_name leaves the last error alone");

  const char *item_name = base_name(item) + 33; /* after "<32 characters>-" */
  gdn_options *o = gdn_options_new();
  gdn_options_set_store_dir(o, store);
  char *name = NULL;
  gdn_result r = gdn_store_item_name(item, o, &name);
  expect(r == GDN_OK && name && strcmp(name, item_name) == 0, "gdn_store_item_name is \"%s\" (got %s)", item_name,
         name ? name : last_error());
  gdn_string_free(name);

  char *expected = malloc(strlen(item_name) + 32);
  if (!expected) abort();
  sprintf(expected, "%s-docker-image.tar.gz", item_name);
  gdn_options_set_compression(o, "gzip", 0);
  r = gdn_default_output_name(item, o, &name);
  expect(r == GDN_OK && name && strcmp(name, expected) == 0, "gdn_default_output_name with gzip is \"%s\" (got %s)",
         expected, name ? name : last_error());
  gdn_string_free(name);
  free(expected);

  /* Not an item of the options' store: refused as a build refuses it. */
  char *inside = join(item, "bin");
  name = (char *)"not reset";
  r = gdn_store_item_name(inside, o, &name);
  expect_failure("gdn_store_item_name(a file inside an item)", r, GDN_ERR_INVALID_STORE_PATH, inside);
  expect(name == NULL, "gdn_store_item_name: NULL after a failure");
  r = gdn_default_output_name("relative-0123", o, &name);
  expect_failure("gdn_default_output_name(a relative path)", r, GDN_ERR_INVALID_STORE_PATH, "relative-0123");
  r = build_docker_image(inside, NULL, 0, "/tmp/gdn-never-written.tar", o);
  expect_failure("build_docker_image(the same path)", r, GDN_ERR_INVALID_STORE_PATH, inside);
  free(inside);
  NULL_ARG(gdn_store_item_name(NULL, o, &name), "item");
  NULL_ARG(gdn_default_output_name(item, o, NULL), "name");
  gdn_options_free(o);

  char *tag = NULL;
  r = gdn_tag_from_name("Guile+GnuTLS", &tag);
  expect(r == GDN_OK && tag && strcmp(tag, "guile.gnutls:latest") == 0, "gdn_tag_from_name(\"Guile+GnuTLS\") is %s",
         tag ? tag : last_error());
  gdn_string_free(tag);
  r = gdn_tag_from_name("+++", &tag);
  expect(r == GDN_OK && tag && strcmp(tag, "image:latest") == 0, "gdn_tag_from_name(\"+++\") is %s",
         tag ? tag : last_error());
  gdn_string_free(tag);
  INVALID(gdn_tag_from_name("\xff", &tag), "'name'");
  NULL_ARG(gdn_tag_from_name(NULL, &tag), "name");
  gdn_string_free(NULL);

  /* A build without a tag is tagged as gdn_tag_from_name says. */
  r = gdn_tag_from_name(item_name, &tag);
  expect(r == GDN_OK, "gdn_tag_from_name(\"%s\"): %s", item_name, r == GDN_OK ? tag : last_error());
  o = gdn_options_new();
  gdn_options_set_store_dir(o, store);
  gdn_options_set_database(o, database);
  char *out = join(work, "untagged.tar");
  r = build(item, NULL, 0, out, o);
  expect(r == GDN_OK, "a build without a tag: %d %s", r, last_error());
  expect_image("without a tag", out, tag);
  unlink(out);
  free(out);
  gdn_string_free(tag);
  gdn_options_free(o);
}

static void test_build_errors(const char *store, const char *item, const char *work) {
  char *fail_dir = join(work, "fail");
  if (mkdir(fail_dir, 0755) != 0) {
    perror(fail_dir);
    exit(2);
  }
  char *out = join(fail_dir, "image.tar");
  gdn_options *o = gdn_options_new();
  if (!o || gdn_options_set_store_dir(o, store) != GDN_OK) {
    expect(0, "options for the build errors: %s", last_error());
    return;
  }

  expect_build_failure("NULL item", build_docker_image(NULL, NULL, 0, out, o),
                       GDN_ERR_NULL_ARGUMENT, "'item'", out, fail_dir);
  expect_build_failure("NULL output", build_docker_image(item, NULL, 0, NULL, o),
                       GDN_ERR_NULL_ARGUMENT, "'output'", NULL, fail_dir);
  expect_build_failure("closure NULL with length 3", build_docker_image(item, NULL, 3, out, o),
                       GDN_ERR_NULL_ARGUMENT, "'closure'", out, fail_dir);
  const char *holey[] = {item, NULL};
  expect_build_failure("closure with a NULL entry", build_docker_image(item, holey, 2, out, o),
                       GDN_ERR_NULL_ARGUMENT, "closure[1]", out, fail_dir);
  expect_build_failure("item not UTF-8", build_docker_image("/gnu/store/\xff\xfe", NULL, 0, out, o),
                       GDN_ERR_INVALID_ARGUMENT, "'item'", out, fail_dir);
  expect_build_failure("empty output", build_docker_image(item, NULL, 0, "", o),
                       GDN_ERR_INVALID_ARGUMENT, "'output'", NULL, fail_dir);

  char *missing = join(store, "00000000000000000000000000000000-missing-1.0");
  expect_build_failure("missing item", build_docker_image(missing, NULL, 0, out, o),
                       GDN_ERR_IO, base_name(missing), out, fail_dir);

  /* A directory named like an item, but outside the store. */
  char *outside = join(work, "11111111111111111111111111111111-outside-1.0");
  if (mkdir(outside, 0755) != 0) perror(outside);
  expect_build_failure("path outside the store", build_docker_image(outside, NULL, 0, out, o),
                       GDN_ERR_INVALID_STORE_PATH, outside, out, fail_dir);

  char relative[4096];
  snprintf(relative, sizeof relative, "%s/%s", base_name(store), base_name(item));
  expect_build_failure("relative path", build_docker_image(relative, NULL, 0, out, o),
                       GDN_ERR_INVALID_STORE_PATH, relative, out, fail_dir);

  size_t n = 0;
  char **all = store_items(store, &n);
  const char **others = malloc((n ? n : 1) * sizeof *others);
  if (!others) abort();
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (strcmp(all[i], item) != 0) others[m++] = all[i];
  expect_build_failure("closure lacking the item", build_docker_image(item, others, m, out, o),
                       GDN_ERR_INCOMPLETE_CLOSURE, base_name(item), out, fail_dir);
  free(others);
  free_strings(all, n);

  char *no_dir = join(work, "no-such-dir");
  char *no_dir_out = join(no_dir, "image.tar");
  expect_build_failure("output directory missing", build_docker_image(item, NULL, 0, no_dir_out, o),
                       GDN_ERR_OUTPUT, "no-such-dir", no_dir_out, fail_dir);
  expect(!exists(no_dir), "the missing output directory was not created");

  /* With no options, the store is $NIX_STORE_DIR or /gnu/store: the sample
   * item is outside it. */
  expect_build_failure("default options, item outside /gnu/store",
                       build_docker_image(item, NULL, 0, out, NULL), GDN_ERR_INVALID_STORE_PATH,
                       base_name(item), out, fail_dir);

  gdn_options_free(o);
  free(no_dir_out);
  free(no_dir);
  rmdir(outside);
  free(outside);
  free(missing);
  free(out);
  rmdir(fail_dir);
  free(fail_dir);
}

/* A progress callback that requests cancellation the first time it runs. */
static void cancel_on_progress(uint64_t done, uint64_t total, void *userdata) {
  (void)done;
  (void)total;
  gdn_cancel_request(userdata);
}

static void test_cancel(const char *store, const char *item, const char *work) {
  char *dir = join(work, "cancel");
  if (mkdir(dir, 0755) != 0) {
    perror(dir);
    exit(2);
  }
  char *out = join(dir, "image.tar");
  gdn_options *o = gdn_options_new();
  gdn_cancel *c = gdn_cancel_new();
  if (!o || !c || gdn_options_set_store_dir(o, store) != GDN_OK || gdn_options_set_cancel(o, c) != GDN_OK) {
    expect(0, "options for the cancelled builds: %s", last_error());
    return;
  }
  expect(build(item, NULL, 0, out, o) == GDN_OK && exists(out), "a build with a flag not requested succeeds");
  unlink(out);

  /* Requested during the build, from its progress callback. */
  gdn_options_set_progress_callback(o, cancel_on_progress, c);
  expect_build_failure("cancelled during the build", build(item, NULL, 0, out, o),
                       GDN_ERR_CANCELLED, "cancelled", out, dir);

  /* The flag stays set: a new build stops before writing; freeing the
   * flag does not detach it. */
  gdn_options_set_progress_callback(o, NULL, NULL);
  gdn_cancel_free(c);
  expect_build_failure("built after the request", build(item, NULL, 0, out, o),
                       GDN_ERR_CANCELLED, "cancelled", out, dir);

  expect(gdn_options_set_cancel(o, NULL) == GDN_OK, "gdn_options_set_cancel(o, NULL) detaches");
  expect(build(item, NULL, 0, out, o) == GDN_OK && exists(out), "without the flag the build succeeds");
  unlink(out);
  gdn_cancel_request(NULL);
  gdn_cancel_free(NULL);
  expect(1, "gdn_cancel_request(NULL) and gdn_cancel_free(NULL) return");

  gdn_options_free(o);
  free(out);
  rmdir(dir);
  free(dir);
}

/* ---- what a progress callback may do with its own build's handle ---- */

typedef struct {
  const char *store;
  const char *item;
  const char *nested_out; /* the output of builds started by the callback */
  gdn_options *options;   /* the running build's handle */
  int free_it;            /* 1: free the handle from the callback, 2: from another thread */
  int ran;
  gdn_result same_handle, copy_handle, own_handle, setter, other_thread_setter;
  int nested_left_nothing, own_wrote;
  char same_message[512], setter_message[512], other_message[512];
} reentry;

static void *change_from_other_thread(void *arg) {
  reentry *r = arg;
  r->other_thread_setter = gdn_options_set_max_layers(r->options, 2);
  snprintf(r->other_message, sizeof r->other_message, "%s", last_error());
  return NULL;
}

static void *free_from_other_thread(void *arg) {
  gdn_options_free(arg);
  return NULL;
}

static void reenter(uint64_t done, uint64_t total, void *userdata) {
  (void)done;
  (void)total;
  reentry *r = userdata;
  if (r->ran) return;
  r->ran = 1;
  pthread_t thread;
  if (r->free_it == 1) {
    gdn_options_free(r->options);
    return;
  }
  if (r->free_it == 2) {
    if (pthread_create(&thread, NULL, free_from_other_thread, r->options) == 0) pthread_join(thread, NULL);
    return;
  }
  /* The same handle, and a copy of it: refused at once, not a deadlock. */
  r->same_handle = build_docker_image(r->item, NULL, 0, r->nested_out, r->options);
  snprintf(r->same_message, sizeof r->same_message, "%s", last_error());
  r->nested_left_nothing = !exists(r->nested_out);
  gdn_options *copy = gdn_options_clone(r->options);
  r->copy_handle = copy ? build_docker_image(r->item, NULL, 0, r->nested_out, copy) : -1;
  gdn_options_free(copy);
  /* A handle of its own: a nested build is fine. */
  gdn_options *own = gdn_options_new();
  r->own_handle = own && gdn_options_set_store_dir(own, r->store) == GDN_OK
                      ? build_docker_image(r->item, NULL, 0, r->nested_out, own)
                      : -1;
  r->own_wrote = exists(r->nested_out);
  unlink(r->nested_out);
  gdn_options_free(own);
  /* The running build's options cannot change, from here or elsewhere. */
  r->setter = gdn_options_add_tag(r->options, "changed:now");
  snprintf(r->setter_message, sizeof r->setter_message, "%s", last_error());
  if (pthread_create(&thread, NULL, change_from_other_thread, r) == 0) pthread_join(thread, NULL);
}

static void test_reentry(const char *store, const char *item, const char *work) {
  char *dir = join(work, "reentry");
  if (mkdir(dir, 0755) != 0) {
    perror(dir);
    exit(2);
  }
  char *out = join(dir, "image.tar");
  char *nested_out = join(dir, "nested.tar");
  reentry r = {.store = store, .item = item, .nested_out = nested_out};
  r.options = gdn_options_new();
  if (!r.options || gdn_options_set_store_dir(r.options, store) != GDN_OK ||
      gdn_options_set_progress_callback(r.options, reenter, &r) != GDN_OK) {
    expect(0, "options for the re-entry tests: %s", last_error());
    return;
  }
  expect(build(item, NULL, 0, out, r.options) == GDN_OK && exists(out),
         "a build whose callback re-enters the library completes: %s", last_error());
  expect(r.ran, "the callback ran");
  expect(r.same_handle == GDN_ERR_BUSY, "build_docker_image from the callback with its own handle: GDN_ERR_BUSY (got %d)",
         r.same_handle);
  expect(strstr(r.same_message, "progress callback") != NULL && strstr(r.same_message, "same options handle") != NULL,
         "the message names the rule: %s", r.same_message);
  expect(r.nested_left_nothing, "the refused build wrote nothing");
  expect(r.copy_handle == GDN_ERR_BUSY, "... with a copy of its handle (gdn_options_clone): GDN_ERR_BUSY (got %d)",
         r.copy_handle);
  expect(r.own_handle == GDN_OK && r.own_wrote, "... with a handle of its own: the nested build succeeds (got %d)",
         r.own_handle);
  expect(r.setter == GDN_ERR_BUSY && strstr(r.setter_message, "gdn_options_add_tag") != NULL &&
             strstr(r.setter_message, "in use by 1 running build") != NULL,
         "a setter from the callback on the running build's handle: GDN_ERR_BUSY: %s", r.setter_message);
  expect(r.other_thread_setter == GDN_ERR_BUSY && strstr(r.other_message, "gdn_options_set_max_layers") != NULL,
         "a setter from another thread during the build: GDN_ERR_BUSY: %s", r.other_message);
  expect_image("the re-entered build", out, NULL);
  bytes b = read_file(out);
  char *manifest = b.data ? tar_member(b, "manifest.json") : NULL;
  expect(manifest != NULL && strstr(manifest, "changed") == NULL, "the build kept its options (no tag added during it)");
  free(manifest);
  free(b.data);
  unlink(out);
  expect(gdn_options_add_tag(r.options, "changed:now") == GDN_OK, "after the build the handle changes again");

  /* Freed during its build, from the callback and from another thread:
   * the build ends normally and the last one releases the handle
   * (valgrind sees any leak or use after free). */
  for (int how = 1; how <= 2; how++) {
    r.free_it = how;
    r.ran = 0;
    gdn_result got = build(item, NULL, 0, out, r.options);
    expect(got == GDN_OK && r.ran && exists(out), "a handle freed during its build %s: the build completes (got %d: %s)",
           how == 1 ? "by its callback" : "by another thread", got, last_error());
    unlink(out);
    if (how == 1) {
      r.options = gdn_options_new();
      if (!r.options || gdn_options_set_store_dir(r.options, store) != GDN_OK ||
          gdn_options_set_progress_callback(r.options, reenter, &r) != GDN_OK) {
        expect(0, "options for the second free test: %s", last_error());
        return;
      }
    }
  }
  expect(entries_in(dir) == 0, "nothing is left in %s", dir);
  free(out);
  free(nested_out);
  rmdir(dir);
  free(dir);
}

static gdn_options *rich_options(const char *store, const char *database, const char *work,
                                 const char *entry_point, progress_log *log) {
  gdn_options *o = gdn_options_new();
  if (!o) return NULL;
  char *extra = join(work, "extra-file.txt");
  FILE *f = fopen(extra, "w");
  if (f) {
    fputs("added through gdn_options_add_file\n", f);
    fclose(f);
  }
  struct {
    const char *what;
    gdn_result r;
  } steps[] = {
      {"store dir", gdn_options_set_store_dir(o, store)},
      {"database", gdn_options_set_database(o, database)},
      {"tag", gdn_options_add_tag(o, "gdn-c-test:1.0")},
      {"second tag", gdn_options_add_tag(o, "example.org/gdn/c-test")},
      {"entry point", entry_point ? gdn_options_set_entry_point(o, entry_point) : GDN_OK},
      {"entry point argument", entry_point ? gdn_options_add_entry_point_argument(o, "--from-c") : GDN_OK},
      {"cmd", gdn_options_add_cmd(o, "extra")},
      {"env", gdn_options_add_env(o, "GDN_TEST=1")},
      {"working dir", gdn_options_set_working_dir(o, "/")},
      {"user", gdn_options_set_user(o, "0:0")},
      {"label", gdn_options_add_label(o, "org.example.test", "c abi")},
      {"port", gdn_options_add_exposed_port(o, "8080/tcp")},
      {"volume", gdn_options_add_volume(o, "/data")},
      {"symlink", gdn_options_add_symlink(o, "/bin", "bin")},
      {"directory", gdn_options_add_directory(o, "/tmp", 0, 0, 01777)},
      {"file", gdn_options_add_file(o, "/etc/gdn-test.txt", extra)},
      {"max layers", gdn_options_set_max_layers(o, 3)},
      {"system", gdn_options_set_system(o, "x86_64-linux")},
      {"creation time", gdn_options_set_creation_time(o, 1700000000)},
      {"compression", gdn_options_set_compression(o, "none", 0)},
      {"threads", gdn_options_set_threads(o, 2)},
      {"progress", gdn_options_set_progress_callback(o, on_progress, log)},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
    expect(steps[i].r == GDN_OK, "set option %s: %d", steps[i].what, steps[i].r);
  free(extra);
  return o;
}

/* gdn_options_set_localstatedir: the store database in the image, from the
 * options' database; refused without one, leaving nothing. */
static void test_localstatedir(const char *store, const char *item, const char *database,
                               const char *work) {
  gdn_options *o = gdn_options_new();
  char *out = join(work, "localstatedir.tar");
  expect(gdn_options_set_store_dir(o, store) == GDN_OK, "store dir accepted");
  expect(gdn_options_set_localstatedir(o, 1) == GDN_OK, "localstatedir accepted");
  expect(gdn_last_error_message() == NULL, "gdn_options_set_localstatedir leaves no error");
  expect_build_failure("localstatedir without a database", build_docker_image(item, NULL, 0, out, o),
                       GDN_ERR_INVALID_ARGUMENT, "no store database was given", out, NULL);
  expect(gdn_options_set_database(o, database) == GDN_OK, "database accepted");
  gdn_result r = build_docker_image(item, NULL, 0, out, o);
  expect(r == GDN_OK, "localstatedir build: %d %s", r, last_error());
  bytes image = read_file(out);
  bytes layer = tar_find(image, "/layer.tar", 1);
  bytes db = layer.data ? tar_find(layer, "var/guix/db/db.sqlite", 0) : layer;
  expect(db.size > 100 && memcmp(db.data, "SQLite format 3", 16) == 0,
         "the layer holds var/guix/db/db.sqlite, an SQLite database (%zu bytes)", db.size);
  expect(layer.data && tar_find(layer, "var/guix/profiles/per-user/root/guix-profile-1-link", 0).data,
         "the layer holds root's profile link, a GC root");
  char *again = join(work, "localstatedir-again.tar");
  r = build_docker_image(item, NULL, 0, again, o);
  bytes second = read_file(again);
  expect(r == GDN_OK && same_bytes(image, second), "two localstatedir builds give the same bytes");
  expect(gdn_options_set_localstatedir(o, 0) == GDN_OK, "localstatedir turned off");
  r = build_docker_image(item, NULL, 0, again, o);
  bytes plain = read_file(again);
  bytes plain_layer = tar_find(plain, "/layer.tar", 1);
  expect(r == GDN_OK && plain_layer.data && !tar_find(plain_layer, "var/guix/db/db.sqlite", 0).data,
         "with localstatedir off, no database in the image");
  free(plain.data);
  free(second.data);
  free(image.data);
  free(again);
  free(out);
  gdn_options_free(o);
}

static void test_builds(const char *store, const char *item, const char *database,
                        const char *work, const char *entry_point) {
  progress_log log;
  atomic_init(&log.inside, 0);
  atomic_init(&log.overlapped, 0);
  atomic_init(&log.foreign_thread, 0);
  atomic_init(&log.calls, 0);
  atomic_init(&log.beyond_total, 0);
  gdn_options *o = rich_options(store, database, work, entry_point, &log);
  if (!o) {
    expect(0, "gdn_options_new: %s", last_error());
    return;
  }

  /* An explicit closure: every item of the sample store. */
  size_t n = 0;
  char **all = store_items(store, &n);
  char *explicit_out = join(work, "explicit.tar");
  gdn_options_add_tag(o, "NOT VALID"); /* leaves an error for the build to clear */
  gdn_result r = build(item, (const char *const *)all, n, explicit_out, o);
  expect(r == GDN_OK, "build with an explicit closure of %zu items: %d %s", n, r, last_error());
  expect(gdn_last_error_message() == NULL, "a successful build clears the last error");
  expect_image("explicit closure", explicit_out, "gdn-c-test:1.0");
  expect(atomic_load(&log.calls) > 0, "the progress callback was called (%ld times)", atomic_load(&log.calls));
  expect(!atomic_load(&log.overlapped), "progress calls never overlapped");
  expect(!atomic_load(&log.beyond_total), "progress never exceeded the total");
  free_strings(all, n);

  /* The closure from the database. */
  char *db_out = join(work, "database.tar");
  r = build(item, NULL, 0, db_out, o);
  expect(r == GDN_OK, "build with the closure from the database: %d %s", r, last_error());
  expect_image("database closure", db_out, "gdn-c-test:1.0");
  bytes first = read_file(db_out);

  /* Two threads at once with one shared handle: the same bytes again, and
   * the main thread's last error is its own. */
  gdn_options_set_max_layers(o, 0);
  char *main_error = strdup(last_error());
  build_job jobs[2];
  pthread_t threads[2];
  for (int i = 0; i < 2; i++) {
    memset(&jobs[i], 0, sizeof jobs[i]);
    jobs[i].item = item;
    jobs[i].output = join(work, i ? "thread1.tar" : "thread0.tar");
    jobs[i].options = o;
    pthread_create(&threads[i], NULL, run_build, &jobs[i]);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(threads[i], NULL);
    expect(jobs[i].clean_start, "thread %d starts with no last error", i);
    expect(jobs[i].result == GDN_OK, "thread %d build: %d %s", i, jobs[i].result, jobs[i].message);
    bytes again = read_file(jobs[i].output);
    expect(same_bytes(first, again), "thread %d wrote the same bytes as the first build", i);
    free(again.data);
    free((char *)jobs[i].output);
  }
  expect(strcmp(last_error(), main_error) == 0, "the main thread kept its own last error");
  free(main_error);
  expect(!atomic_load(&log.overlapped), "progress calls never overlapped, even from two builds");
  expect(!atomic_load(&log.foreign_thread), "progress was only called on the building threads");

  /* Standard output, with one worker thread instead of two: the bytes
   * depend on neither. */
  expect(gdn_options_set_threads(o, 1) == GDN_OK, "threads 1 accepted");
  char *stdout_copy = join(work, "stdout.tar");
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  int fd = open(stdout_copy, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  r = GDN_ERR_IO;
  if (saved >= 0 && fd >= 0 && dup2(fd, STDOUT_FILENO) >= 0) {
    r = build(item, NULL, 0, "-", o);
    dup2(saved, STDOUT_FILENO);
  }
  if (fd >= 0) close(fd);
  if (saved >= 0) close(saved);
  expect(r == GDN_OK, "build to standard output (\"-\"): %d %s", r, last_error());
  bytes streamed = read_file(stdout_copy);
  expect(same_bytes(first, streamed), "standard output with 1 thread got the same bytes as the file with 2");
  free(streamed.data);
  free(first.data);

  test_localstatedir(store, item, database, work);

  /* Compressed. */
  expect(gdn_options_set_compression(o, "gzip", 0) == GDN_OK, "gzip compression accepted");
  char *gz_out = join(work, "image.tar.gz");
  r = build(item, NULL, 0, gz_out, o);
  expect(r == GDN_OK, "gzip build: %d %s", r, last_error());
  bytes gz = read_file(gz_out);
  expect(gz.size > 2 && gz.data[0] == 0x1f && gz.data[1] == 0x8b, "the gzip archive starts with gzip's magic");
  free(gz.data);

  gdn_options_free(o);
  free(gz_out);
  free(stdout_copy);
  free(db_out);
  free(explicit_out);
}

/* SBOMs (GDN_1.2): the setters' errors, a build with two formats beside
 * the image, and a failed build leaving neither image nor SBOM. */
static void test_sbom(const char *store, const char *item, const char *database, const char *work) {
  NULL_OPTIONS(gdn_options_add_sbom(NULL, "spdx"));
  NULL_OPTIONS(gdn_options_set_sbom_output(NULL, "x.json"));
  NULL_OPTIONS(gdn_options_add_sbom_license(NULL, item, "MIT"));
  gdn_options *o = gdn_options_new();
  NULL_ARG(gdn_options_add_sbom(o, NULL), "format");
  NULL_ARG(gdn_options_set_sbom_output(o, NULL), "file");
  NULL_ARG(gdn_options_add_sbom_license(o, NULL, "MIT"), "item");
  NULL_ARG(gdn_options_add_sbom_license(o, item, NULL), "expression");
  INVALID(gdn_options_add_sbom(o, "swid"), "'swid'");
  INVALID(gdn_options_add_sbom_license(o, item, "GPL 3+"), "'GPL 3+'");
  INVALID(gdn_options_add_sbom_license(o, "relative", "MIT"), "relative");

  char *out = join(work, "sbom.tar"), *base = join(work, "sbom");
  char *spdx = join(work, "sbom.spdx.json"), *cdx = join(work, "sbom.cdx.json");
  expect(gdn_options_set_store_dir(o, store) == GDN_OK, "store dir accepted");
  expect(gdn_options_set_database(o, database) == GDN_OK, "database accepted");
  expect(gdn_options_add_sbom(o, "spdx") == GDN_OK && gdn_options_add_sbom(o, "cyclonedx") == GDN_OK,
         "gdn_options_add_sbom spdx and cyclonedx accepted");
  expect(gdn_options_add_sbom_license(o, item, "GPL-3.0-or-later") == GDN_OK, "an SPDX licence accepted");
  expect(gdn_options_set_sbom_output(o, base) == GDN_OK, "gdn_options_set_sbom_output accepted");
  gdn_result r = build_docker_image(item, NULL, 0, out, o);
  expect(r == GDN_OK, "a build with SBOMs: %d %s", r, last_error());
  bytes doc = read_file(spdx);
  if (doc.data) doc.data[doc.size] = 0; /* read_file leaves room for it */
  expect(doc.data && strstr((char *)doc.data, "\"spdxVersion\": \"SPDX-2.3\"") &&
             strstr((char *)doc.data, "GPL-3.0-or-later") && strstr((char *)doc.data, base_name(item)),
         "%s is SPDX 2.3 naming the item and its licence", spdx);
  free(doc.data);
  doc = read_file(cdx);
  if (doc.data) doc.data[doc.size] = 0;
  expect(doc.data && strstr((char *)doc.data, "\"bomFormat\": \"CycloneDX\""), "%s is CycloneDX", cdx);
  free(doc.data);
  unlink(out);
  unlink(spdx);
  unlink(cdx);

  /* A licence for an item outside the closure fails the build, leaving nothing. */
  char *other = join(store, "00000000000000000000000000000000-other");
  expect(gdn_options_add_sbom_license(o, other, "MIT") == GDN_OK, "a licence for another item is accepted");
  expect_build_failure("a licence for an item outside the closure", build_docker_image(item, NULL, 0, out, o),
                       GDN_ERR_INVALID_ARGUMENT, "not an item of the image's closure", out, NULL);
  expect(!exists(spdx) && !exists(cdx), "no SBOM left either");
  free(other);
  free(cdx);
  free(spdx);
  free(base);
  free(out);
  gdn_options_free(o);
}

/* ---- destinations (GDN_1.2) ---- */

/* Runs the shell command `command` (a real consumer: skopeo, umoci) and
 * returns its standard output (empty on failure), its status in *status. */
static char *run_command(const char *command, int *status) {
  FILE *p = popen(command, "r");
  size_t n = 0, cap = 4096;
  char *out = malloc(cap);
  if (!out) abort();
  if (p) {
    size_t got;
    while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) {
      n += got;
      if (cap - n < 2) {
        cap *= 2;
        out = realloc(out, cap);
        if (!out) abort();
      }
    }
    *status = pclose(p);
  } else {
    *status = -1;
  }
  out[n] = '\0';
  return out;
}

/* `command` (formatted) succeeds and its output holds every needle. */
static void expect_command(const char *what, const char *const *needles, const char *fmt, ...) {
  char command[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(command, sizeof command, fmt, ap);
  va_end(ap);
  int status;
  char *out = run_command(command, &status);
  expect(status == 0, "%s: `%s` succeeds (status %d)", what, command, status);
  for (const char *const *n = needles; n && *n; n++)
    expect(strstr(out, *n) != NULL, "%s: its output has %s", what, *n);
  free(out);
}

/* The store item of `store` whose name (after the hash) is `name`. */
static char *item_named(const char *store, const char *name) {
  size_t n;
  char **items = store_items(store, &n);
  char *found = NULL;
  for (size_t i = 0; i < n && !found; i++)
    if (strcmp(base_name(items[i]) + 33, name) == 0) found = strdup(items[i]);
  free_strings(items, n);
  return found;
}

static void test_destinations(const char *store, const char *item, const char *work,
                              const char *entry_point) {
  char *dir = join(work, "destinations");
  if (mkdir(dir, 0755) != 0) {
    perror(dir);
    exit(2);
  }
  gdn_options *o = gdn_options_new();
  if (!o || gdn_options_set_store_dir(o, store) != GDN_OK || gdn_options_add_tag(o, "hello:c") != GDN_OK ||
      gdn_options_set_max_layers(o, 10) != GDN_OK ||
      (entry_point && gdn_options_set_entry_point(o, entry_point) != GDN_OK)) {
    expect(0, "options for the destinations: %s", last_error());
    return;
  }
  char *layout = join(dir, "layout");
  char destination[4096];
  gdn_result r;

  /* An OCI layout, through the one parser; read by skopeo and umoci. */
  snprintf(destination, sizeof destination, "oci:%s:c-single", layout);
  r = gdn_build_image(destination, item, NULL, 0, o);
  expect(r == GDN_OK, "gdn_build_image(\"oci:DIR:c-single\"): %d %s", r, last_error());
  char *index = join(layout, "index.json");
  expect(exists(index), "the layout has index.json");
  const char *single[] = {"\"Architecture\": \"amd64\"", "\"Os\": \"linux\"", NULL};
  expect_command("skopeo inspect oci:DIR:c-single", single, "skopeo inspect oci:%s:c-single", layout);
  char *bundle = join(dir, "bundle");
  char *rooted = join(bundle, "rootfs");
  char *in_image = join(rooted, item + 1);
  expect_command("umoci unpack of the layout", NULL, "umoci unpack --rootless --image %s:c-single %s >/dev/null 2>&1",
                 layout, bundle);
  expect(exists(in_image), "umoci's root file system holds the item %s", base_name(item));

  /* An oci-archive, then a docker-archive, through the same function. */
  char *oci_archive = join(dir, "image-oci.tar");
  snprintf(destination, sizeof destination, "oci-archive:%s", oci_archive);
  r = gdn_build_image(destination, item, NULL, 0, o);
  expect(r == GDN_OK, "gdn_build_image(\"oci-archive:FILE\"): %d %s", r, last_error());
  const char *archived[] = {"\"Architecture\": \"amd64\"", NULL};
  expect_command("skopeo inspect oci-archive:FILE", archived, "skopeo inspect oci-archive:%s", oci_archive);
  char *docker_archive = join(dir, "image-docker.tar");
  snprintf(destination, sizeof destination, "docker-archive:%s", docker_archive);
  r = gdn_build_image(destination, item, NULL, 0, o);
  expect(r == GDN_OK, "gdn_build_image(\"docker-archive:FILE\"): %d %s", r, last_error());
  expect_image("gdn_build_image(\"docker-archive:FILE\")", docker_archive, "hello:c");

  /* Bad destinations: a clear error, nothing left. */
  char *elsewhere = join(dir, "x");
  snprintf(destination, sizeof destination, "dir:%s", elsewhere);
  expect_build_failure("gdn_build_image(\"dir:...\")", gdn_build_image(destination, item, NULL, 0, o),
                       GDN_ERR_INVALID_ARGUMENT, "unknown transport 'dir'", elsewhere, NULL);
  snprintf(destination, sizeof destination, "oci:%s:Bad Ref", elsewhere);
  expect_build_failure("gdn_build_image(\"oci:DIR:Bad Ref\")", gdn_build_image(destination, item, NULL, 0, o),
                       GDN_ERR_INVALID_ARGUMENT, "reference 'Bad Ref'", elsewhere, NULL);
  snprintf(destination, sizeof destination, "oci:%s", oci_archive);
  expect_build_failure("gdn_build_image(\"oci:\") onto a file", gdn_build_image(destination, item, NULL, 0, o),
                       GDN_ERR_OUTPUT, "is not a directory", NULL, NULL);
  char *deep = join(elsewhere, "sub");
  snprintf(destination, sizeof destination, "oci:%s", deep);
  expect_build_failure("gdn_build_image(\"oci:\") in a missing directory",
                       gdn_build_image(destination, item, NULL, 0, o), GDN_ERR_OUTPUT, "cannot create", elsewhere,
                       NULL);
  expect_build_failure("gdn_build_image(NULL destination)", gdn_build_image(NULL, item, NULL, 0, o),
                       GDN_ERR_NULL_ARGUMENT, "'destination'", NULL, NULL);

  /* A multi-platform image: the profile for x86_64, hello for aarch64
   * (the same store: glibc-sample and greeting-data are in both closures,
   * their layers stored once). */
  char *hello = item_named(store, "hello-2.12.1");
  expect(hello != NULL, "the sample store has hello-2.12.1");
  if (hello) {
    const char *systems[] = {"x86_64-linux", "aarch64-linux"};
    const char *items[] = {item, hello};
    char *multi = join(dir, "multi");
    snprintf(destination, sizeof destination, "oci:%s:multi", multi);
    r = gdn_build_platform_image(destination, systems, items, 2, o);
    expect(r == GDN_OK, "gdn_build_platform_image(\"oci:DIR:multi\"): %d %s", r, last_error());
    const char *raw[] = {"application/vnd.oci.image.index.v1+json", "\"architecture\":\"amd64\"",
                         "\"architecture\":\"arm64\"", "\"variant\":\"v8\"", NULL};
    expect_command("skopeo inspect --raw of the platforms' index", raw, "skopeo inspect --raw oci:%s:multi", multi);
    const char *arm[] = {"\"Architecture\": \"arm64\"", NULL};
    expect_command("skopeo inspect --override-arch arm64", arm,
                   "skopeo inspect --override-arch arm64 oci:%s:multi", multi);
    /* The profile's 4 items, hello's 3 (the same layers), 2 configs, 2
     * manifests, the index. */
    char *blobs = join(multi, "blobs/sha256");
    int n = entries_in(blobs);
    expect(n == 9, "the shared layers are stored once: %d blobs (want 9)", n);

    char *one_file = join(dir, "multi.tar");
    expect_build_failure("gdn_build_platform_image to a docker-archive",
                         gdn_build_platform_image(one_file, systems, items, 2, o), GDN_ERR_INVALID_ARGUMENT,
                         "a docker-archive holds the image of one platform", one_file, NULL);
    const char *bad_systems[] = {"x86_64-linux", "sparc-linux"};
    char *never = join(dir, "never");
    snprintf(destination, sizeof destination, "oci:%s", never);
    expect_build_failure("gdn_build_platform_image with an unknown system",
                         gdn_build_platform_image(destination, bad_systems, items, 2, o),
                         GDN_ERR_INVALID_ARGUMENT, "sparc-linux", never, NULL);
    free(never);
    free(one_file);
    free(blobs);
    free(multi);
    free(hello);
  }

  gdn_options_free(o);
  free(deep);
  free(elsewhere);
  free(docker_archive);
  free(oci_archive);
  free(in_image);
  free(rooted);
  free(bundle);
  free(index);
  free(layout);
  free(dir);
}

/* ---- the layer cache (GDN_1.3) ---- */

/* A layout written with gdn_options_set_cache_dir, then rewritten with the
 * cache warm: the same index; an entry per layer in the cache directory;
 * with gdn_options_set_cache(o, 0), none. */
static void test_cache(const char *store, const char *item, const char *work) {
  char *dir = join(work, "cache-test");
  if (mkdir(dir, 0755) != 0) {
    perror(dir);
    exit(2);
  }
  char *cache = join(dir, "cache");
  char *entries = join(cache, "layers-1");
  char *layout = join(dir, "layout");
  char *index = join(layout, "index.json");
  char destination[4096];
  snprintf(destination, sizeof destination, "oci:%s", layout);
  gdn_options *o = gdn_options_new();
  if (!o || gdn_options_set_store_dir(o, store) != GDN_OK || gdn_options_set_max_layers(o, 3) != GDN_OK ||
      gdn_options_set_compression(o, "gzip", 0) != GDN_OK || gdn_options_set_cache_dir(o, cache) != GDN_OK) {
    expect(0, "options for the cache: %s", last_error());
    return;
  }
  gdn_result r = gdn_build_image(destination, item, NULL, 0, o);
  expect(r == GDN_OK, "a build with a cache directory: %d %s", r, last_error());
  int n = entries_in(entries);
  expect(n >= 1 && n <= 3, "the cache directory has an entry per layer (%d)", n);
  bytes cold = read_file(index);
  r = gdn_build_image(destination, item, NULL, 0, o);
  expect(r == GDN_OK, "the same build, the cache warm: %d %s", r, last_error());
  bytes warm = read_file(index);
  expect(same_bytes(cold, warm), "the warm rewrite gives the same index");
  char *other = join(dir, "other-cache");
  expect(gdn_options_set_cache_dir(o, other) == GDN_OK && gdn_options_set_cache(o, 0) == GDN_OK, "the cache off");
  r = gdn_build_image(destination, item, NULL, 0, o);
  expect(r == GDN_OK, "a build without the cache: %d %s", r, last_error());
  expect(!exists(other), "no cache directory is made with the cache off");
  bytes off = read_file(index);
  expect(same_bytes(cold, off), "without the cache, the same index");
  free(cold.data);
  free(warm.data);
  free(off.data);
  gdn_options_free(o);
  free(other);
  free(index);
  free(layout);
  free(entries);
  free(cache);
  free(dir);
}

int main(int argc, char **argv) {
  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: %s STORE_DIR ITEM DATABASE WORKDIR [ENTRY_POINT]\n", argv[0]);
    return 2;
  }
  const char *store = argv[1], *item = argv[2], *database = argv[3], *work = argv[4];
  const char *entry_point = argc == 6 ? argv[5] : NULL;

  test_versions();
  test_null_options_handle();
  test_setter_errors();
  test_names(store, item, database, work);
  test_build_errors(store, item, work);
  test_cancel(store, item, work);
  test_reentry(store, item, work);
  test_builds(store, item, database, work, entry_point);
  test_sbom(store, item, database, work);
  test_destinations(store, item, work, entry_point);
  test_cache(store, item, work);

  printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
