//! The command line, in `guix pack`'s words, and its translation into
//! [`ImageOptions`] through the options' own setters (so that a bad value
//! gets the same message here as through the C ABI or Guile).

// The doc comments of `Cli` are clap's `--help` text, where `<name>` is
// meant as written, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use guix_docker_native::reference::default_repository;
use guix_docker_native::{
    parse_destination, store_dir_from_environment, Compression, Destination, Error, ErrorKind, ImageOptions, ManifestFormat,
    Output, PlatformItem, RegistryReference, Result, SbomFormat, StoreDir,
};

use super::time::parse_creation_time;

/// The directory every image gets unless `--no-tmp`, as with `guix pack`:
/// `/tmp`, mode 1777 (sticky, writable by all), owned by root.
const TMP_DIRECTORY: &str = "/tmp";
const TMP_MODE: u32 = 0o1777;

/// Mode of a `--directory` given without one.
const DEFAULT_DIRECTORY_MODE: u32 = 0o755;

const ABOUT: &str = "Make a Docker image archive from Guix store items";

const LONG_ABOUT: &str = "\
Make a Docker image archive from Guix store items.

Writes ITEM... and every store item they refer to (their closure) into one
image archive, as `guix pack -f docker` does, that `docker load`,
`podman load` and `skopeo copy docker-archive:...` read.  The same inputs
give the same bytes, whatever the files' dates, owners and order on disk.
On success the archive's file name is printed on standard output.

The closure comes from --closure-file, else from the store database
(--database), else from scanning the items' files for references to other
store items, as the Guix daemon does.";

const AFTER_LONG_HELP: &str = "\
Examples:
  # An image of a profile whose entry point is its bin/hello; prints the
  # archive's name, profile-docker-image.tar:
  guix-docker-native --entry-point bin/hello -t hello:2.12 \\
      /gnu/store/...-profile
  docker load -i profile-docker-image.tar
  docker run --rm hello:2.12

  # Straight into docker, without a file:
  guix-docker-native -o - --entry-point bin/hello /gnu/store/...-hello-2.12 | docker load

  # With the closure as Guix knows it:
  guix gc -R /gnu/store/...-hello-2.12 > closure.txt
  guix-docker-native --closure-file closure.txt -o hello.tar /gnu/store/...-hello-2.12

  # An OCI image layout, each layer gzipped on its own, then into podman:
  guix-docker-native -C gzip --max-layers 10 -t hello:2.12 -o oci:/tmp/layout \\
      /gnu/store/...-hello-2.12
  podman pull oci:/tmp/layout:hello:2.12

  # One image for two systems (an OCI image index), the same package
  # built with guix build --system=...; skopeo, docker and ctr pick theirs:
  guix-docker-native -C gzip -t hello:2.12 --entry-point bin/hello \\
      --platform x86_64-linux=/gnu/store/...-hello-2.12 \\
      --platform aarch64-linux=/gnu/store/...-hello-2.12 -o oci:/tmp/layout

  # Several layers that images can share, compressed; a store elsewhere:
  guix-docker-native --store-dir /tmp/x/gnu/store --database /tmp/x/var/guix/db/db.sqlite \\
      --max-layers 20 -C gzip /tmp/x/gnu/store/...-profile

Layer cache:
  What a build learns of each layer (its diff_id, sizes and compressed
  digests) is kept in the cache directory, a few hundred bytes a layer, so
  that rewriting an oci: layout does not read or compress again a layer
  whose blob the layout holds.  A layer is known by its store items'
  registrations in --database (hash and registration time), or without
  one by the metadata of every file (size, mode, mtime, ctime, inode):
  an item changed under the same path is another layer.  The image is the
  same with or without the cache; a damaged cache is a warning.  Clear it
  with: rm -rf ~/.cache/guix-docker-native

Progress:
  When standard error is a terminal a progress bar shows the bytes and items
  written, the rate and the time left; --quiet turns it off.

Signals:
  SIGINT, SIGTERM or SIGHUP stop the build: the partial archive is removed
  and the exit status is 128 plus the signal's number.  A second signal ends
  the program at once.";

/// The help's last part, after the exit statuses.
const ERRORS_HELP: &str = "Errors are printed on standard error as `guix-docker-native: error: ...`.";

/// Width of the generated exit-status lines.
const HELP_WIDTH: usize = 78;

/// The long help's text after the options: the examples, progress and
/// signals, then the exit statuses, made from the library's list of result
/// codes (`ErrorKind::ALL`) so that they cannot drift from it.
fn after_long_help() -> String {
    let mut text = format!("{AFTER_LONG_HELP}\n\nExit status (the library's result codes):\n");
    let mut status = |code: &str, meaning: &str| {
        let mut line = format!("{code:>5}  ");
        let indent = line.len();
        for word in meaning.split(' ') {
            if line.len() > indent && line.len() + 1 + word.len() > HELP_WIDTH {
                text.push_str(line.trim_end());
                text.push('\n');
                line = " ".repeat(indent);
            } else if line.len() > indent {
                line.push(' ');
            }
            line.push_str(word);
        }
        text.push_str(&line);
        text.push('\n');
    };
    status("0", "the archive was written");
    for kind in ErrorKind::ALL.into_iter().filter(|kind| kind.is_cli_exit_status()) {
        status(&kind.code().to_string(), kind.meaning());
    }
    status("129, 130, 143", "interrupted by SIGHUP, SIGINT or SIGTERM");
    text.push_str(ERRORS_HELP);
    text
}

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "guix-docker-native",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = after_long_help(),
    after_help = "See --help for examples and exit codes.",
    max_term_width = 100,
    // As with guix pack, an option given twice takes the last value.
    args_override_self = true
)]
pub struct Cli {
    /// Store items to put in the image; the first is the main one (entry
    /// point and symlink targets are relative to it).  Not with --platform,
    /// whose items are each platform's
    #[arg(value_name = "ITEM", required_unless_present = "platforms", conflicts_with = "platforms")]
    pub items: Vec<PathBuf>,

    /// A multi-platform image (repeatable): the store item ITEM, built for
    /// the Guix system SYSTEM (guix build --system=SYSTEM), is the image of
    /// that system's platform (x86_64-linux: linux/amd64, aarch64-linux:
    /// linux/arm64/v8, armhf-linux: linux/arm/v7, i686-linux: linux/386,
    /// riscv64-linux, powerpc64le-linux, mips64el-linux).  Each item is its
    /// image's main item, its closure from --database or scanning; every
    /// other option applies to each image.  The images go under one OCI
    /// image index (REF: the first tag), so -o is oci:DIR[:REF] or
    /// oci-archive:FILE[:REF] (a docker-archive holds one platform); layers
    /// the platforms share are stored once.  No ITEM, --system or
    /// --closure-file with it
    #[arg(
        long = "platform",
        value_name = "SYSTEM=ITEM",
        help_heading = "Image",
        conflicts_with_all = ["system", "closure_file"]
    )]
    pub platforms: Vec<String>,

    /// Where the image goes, in skopeo's words: FILE, docker-archive:FILE
    /// or '-' (standard output): a docker-archive; oci:DIR[:REF]: an OCI
    /// image layout directory, added to (an entry of the same REF is
    /// replaced); oci-archive:FILE[:REF]: that layout as one tar file
    /// (oci-archive:- is standard output: to a pipe or a device each blob
    /// is first spooled to an unnamed temporary file under $TMPDIR, which
    /// needs room for the largest layer); docker://HOST[:PORT]/REPOSITORY[:TAG]:
    /// pushed to a registry, under TAG and each -t's tag (default latest).  REF, the image's name in the layout's
    /// index, defaults to the first tag (hello:latest).  A file whose name
    /// starts with a transport and a colon is given as ./NAME
    /// [default: <name>-docker-image.tar[.gz|.zst] in the current directory,
    /// <name> from the first ITEM]
    #[arg(short = 'o', long, value_name = "DEST", help_heading = "Output")]
    pub output: Option<PathBuf>,

    /// Compression: none, gzip or zstd; of the whole archive for a
    /// docker-archive, of each layer on its own (its own blob) for oci:,
    /// oci-archive: and docker://.  Docker 20.10 (Debian 12's docker.io) reads gzip but
    /// not zstd; podman, skopeo and Docker 23 and later read both
    #[arg(short = 'C', long, value_name = "NAME", default_value = "none", help_heading = "Output")]
    pub compression: String,

    /// Compression level: gzip 1-9 (default 6; zlib's scale: each gives
    /// output no larger than zlib's at that level, faster), zstd 1-19
    /// (default 3)
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Output")]
    pub compression_level: Option<String>,

    /// Worker threads for reading, hashing and compressing (0: one per core)
    #[arg(long, value_name = "N", default_value = "0", allow_negative_numbers = true, help_heading = "Output")]
    pub threads: String,

    /// No progress bar
    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,

    /// Keep the layer cache in DIR [default: $XDG_CACHE_HOME/guix-docker-native,
    /// else ~/.cache/guix-docker-native]
    #[arg(long, value_name = "DIR", help_heading = "Cache")]
    pub cache_dir: Option<PathBuf>,

    /// Neither use nor update the layer cache (the image is the same
    /// either way)
    #[arg(long, help_heading = "Cache")]
    pub no_cache: bool,

    /// Registry credentials, as skopeo's --creds (for docker://)
    #[arg(long, value_name = "USER:PASSWORD", help_heading = "Registry (-o docker://HOST[:PORT]/REPOSITORY[:TAG])")]
    pub creds: Option<String>,

    /// A directory of CA certificates (DIR/*.crt) trusted besides the
    /// system's, and a client certificate (DIR/NAME.cert with its key
    /// DIR/NAME.key) for a registry that asks for one, as skopeo's
    /// --cert-dir, for a private registry
    #[arg(long, value_name = "DIR", help_heading = "Registry (-o docker://HOST[:PORT]/REPOSITORY[:TAG])")]
    pub cert_dir: Option<PathBuf>,

    /// --tls-verify=false: accept any certificate, and speak plain HTTP to
    /// a registry without TLS [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true",
          help_heading = "Registry (-o docker://HOST[:PORT]/REPOSITORY[:TAG])")]
    pub tls_verify: Option<String>,

    /// The manifest pushed: oci (default), or docker (Docker's schema 2,
    /// gzip or uncompressed layers only)
    #[arg(long, value_name = "FORMAT", help_heading = "Registry (-o docker://HOST[:PORT]/REPOSITORY[:TAG])")]
    pub manifest_format: Option<String>,

    /// At most N layers upload at once (1-64) [default: 4]
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          help_heading = "Registry (-o docker://HOST[:PORT]/REPOSITORY[:TAG])")]
    pub jobs: Option<String>,

    /// The store directory [default: $NIX_STORE_DIR, else /gnu/store]
    #[arg(long, value_name = "DIR", help_heading = "Store")]
    pub store_dir: Option<PathBuf>,

    /// Read references from this store database (Guix's db.sqlite)
    #[arg(long, value_name = "FILE", help_heading = "Store")]
    pub database: Option<PathBuf>,

    /// The closure: one store path a line, as `guix gc -R ITEM` prints; it
    /// must contain every ITEM (and, with --database, every item they refer to)
    #[arg(long, value_name = "FILE", help_heading = "Store")]
    pub closure_file: Option<PathBuf>,

    /// Tag the image NAME:TAG (repeatable; TAG defaults to 'latest')
    /// [default, as guix pack: for a profile, its packages' names joined
    /// with '-' (fewer than 40 characters); else the first ITEM's name,
    /// e.g. hello:latest]
    #[arg(short = 't', long = "tag", visible_alias = "image-tag", value_name = "NAME[:TAG]", help_heading = "Image")]
    pub tags: Vec<String>,

    /// The program the image runs, relative to the first ITEM (bin/hello)
    /// or absolute
    #[arg(long, value_name = "PROGRAM", help_heading = "Image")]
    pub entry_point: Option<String>,

    /// An argument appended to the entry point (repeatable)
    #[arg(short = 'A', long = "entry-point-argument", value_name = "ARG", allow_hyphen_values = true, help_heading = "Image")]
    pub entry_point_arguments: Vec<String>,

    /// The image's default command, or arguments to the entry point (repeatable)
    #[arg(long = "cmd", value_name = "ARG", allow_hyphen_values = true, help_heading = "Image")]
    pub cmd: Vec<String>,

    /// Set an environment variable in the image (repeatable)
    #[arg(short = 'E', long = "env", value_name = "NAME=VALUE", help_heading = "Image")]
    pub env: Vec<String>,

    /// Add a symlink to the image: -S /bin=bin links /bin to the first
    /// ITEM's bin (repeatable; a relative target is relative to the first ITEM)
    #[arg(short = 'S', long = "symlink", value_name = "LINK=TARGET", help_heading = "Image")]
    pub symlinks: Vec<String>,

    /// Add a directory to the image, with MODE in octal (default 755) and
    /// owner UID:GID (default 0:0), e.g. --directory /srv/data=750:1000:1000
    /// (repeatable)
    #[arg(long = "directory", value_name = "PATH[=MODE[:UID:GID]]", help_heading = "Image")]
    pub directories: Vec<String>,

    /// Copy the host's regular file SOURCE into the image at PATH (repeatable)
    #[arg(long = "file", value_name = "PATH=SOURCE", help_heading = "Image")]
    pub files: Vec<String>,

    /// No /tmp directory in the image (by default there is one, mode 1777,
    /// as guix pack makes it)
    #[arg(long, help_heading = "Image")]
    pub no_tmp: bool,

    /// Put the store database in the image, as guix pack --localstatedir:
    /// /var/guix/db/db.sqlite registering the closure with the hashes,
    /// sizes and references --database gives (required), and the first
    /// ITEM as root's profile, a GC root
    #[arg(long, help_heading = "Image")]
    pub localstatedir: bool,

    /// The working directory of the image's processes
    #[arg(long, value_name = "DIR", help_heading = "Image")]
    pub workdir: Option<String>,

    /// The user the image's processes run as (NAME, UID or UID:GID)
    #[arg(long, value_name = "USER", help_heading = "Image")]
    pub user: Option<String>,

    /// Add a label (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", help_heading = "Image")]
    pub labels: Vec<String>,

    /// Declare an exposed port: 8080, 8080/tcp, 53/udp (repeatable)
    #[arg(long = "expose", value_name = "PORT[/PROTO]", help_heading = "Image")]
    pub exposed_ports: Vec<String>,

    /// Declare a volume (repeatable)
    #[arg(long = "volume", value_name = "PATH", help_heading = "Image")]
    pub volumes: Vec<String>,

    /// At most N layers (1-125, Docker's limit): the largest items get layers
    /// of their own, the others share [default: one layer]
    #[arg(long, value_name = "N", allow_negative_numbers = true, help_heading = "Image")]
    pub max_layers: Option<String>,

    /// The system the image is for, as Guix names it (x86_64-linux,
    /// aarch64-linux, ...) [default: this machine's]
    #[arg(long, value_name = "SYSTEM", help_heading = "Image")]
    pub system: Option<String>,

    /// The image's creation time: YYYY-MM-DDTHH:MM:SSZ (UTC) or @SECONDS
    /// [default: $SOURCE_DATE_EPOCH, else 1970-01-01T00:00:01Z, as guix pack]
    #[arg(long, value_name = "TIME", help_heading = "Image")]
    pub creation_time: Option<String>,

    /// Also write an SBOM of exactly what the image holds (its store items,
    /// with NAR hashes and references from --database, and the extras):
    /// spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.5 JSON) (repeatable).
    /// Beside a docker-archive as FILE.spdx.json / FILE.cdx.json; into an
    /// oci: or oci-archive: layout as an artifact whose subject is the image
    #[arg(long = "sbom", value_name = "FORMAT", help_heading = "SBOM")]
    pub sboms: Vec<String>,

    /// Write the SBOM to FILE (with several --sbom: FILE.spdx.json and
    /// FILE.cdx.json) [default: beside a docker-archive file, none for oci:]
    #[arg(long, value_name = "FILE", help_heading = "SBOM")]
    pub sbom_output: Option<PathBuf>,

    /// The licence of a store item in the SBOM, an SPDX licence expression
    /// (GPL-3.0-or-later) [default: NOASSERTION] (repeatable)
    #[arg(long = "sbom-license", value_name = "ITEM=EXPRESSION", help_heading = "SBOM")]
    pub sbom_licenses: Vec<String>,
}

/// Where the archive goes, as the command line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChoice {
    /// No `-o`: a name made from the first item, in the current directory.
    Default,
    Stdout,
    File(PathBuf),
    /// `oci:DIR[:REF]` or `oci-archive:FILE[:REF]`.
    Oci(Destination),
    /// `docker://…`.
    Registry(RegistryReference),
}

impl Cli {
    /// The `--platform` items, in the order given: each `SYSTEM=ITEM`
    /// split at its first `=` (the system is checked by the build).
    pub fn platform_items(&self) -> Result<Vec<PlatformItem>> {
        let mut items = Vec::with_capacity(self.platforms.len());
        for spec in &self.platforms {
            let (system, item) = split_pair(spec, "platform", "SYSTEM=ITEM, e.g. aarch64-linux=/gnu/store/...-hello-2.12")?;
            if system.is_empty() || item.is_empty() {
                return Err(Error::invalid_argument(format!(
                    "platform '{spec}': expected SYSTEM=ITEM, e.g. aarch64-linux=/gnu/store/...-hello-2.12"
                )));
            }
            items.push(PlatformItem { system: system.to_string(), item: PathBuf::from(item), closure: None });
        }
        Ok(items)
    }

    /// The main item: the first ITEM, or the first platform's.
    pub fn main_item(&self) -> Result<PathBuf> {
        match self.items.first() {
            Some(item) => Ok(item.clone()),
            None => Ok(self.platform_items()?.swap_remove(0).item),
        }
    }

    /// What `-o` says, parsed as [`parse_destination`] does.
    pub fn output_choice(&self) -> Result<OutputChoice> {
        Ok(match &self.output {
            None => OutputChoice::Default,
            Some(text) => match parse_destination(text.as_os_str())? {
                Destination::DockerArchive(Output::Stdout) => OutputChoice::Stdout,
                Destination::DockerArchive(Output::Path(path)) => OutputChoice::File(path),
                Destination::Registry(reference) => OutputChoice::Registry(reference),
                oci => OutputChoice::Oci(oci),
            },
        })
    }

    /// The options the command line asks for; the first bad value is the error.
    pub fn image_options(&self) -> Result<ImageOptions> {
        let mut o = ImageOptions::new();
        match &self.store_dir {
            Some(dir) => o.set_store_dir(dir)?,
            None => {
                if let Some(dir) = store_dir_from_environment()? {
                    o.set_store_dir(&dir)?;
                }
            }
        }
        if let Some(file) = &self.database {
            o.set_database(file)?;
        }
        for tag in &self.tags {
            o.add_tag(tag)?;
        }
        if let Some(program) = &self.entry_point {
            o.set_entry_point(program)?;
        }
        for arg in &self.entry_point_arguments {
            o.add_entry_point_argument(arg)?;
        }
        for arg in &self.cmd {
            o.add_cmd(arg)?;
        }
        for binding in &self.env {
            o.add_env(binding)?;
        }
        for spec in &self.symlinks {
            let (link, target) = split_pair(spec, "symlink", "/LINK=TARGET, e.g. /bin=bin")?;
            o.add_symlink(link, target)?;
        }
        for spec in &self.directories {
            let (path, mode, uid, gid) = parse_directory(spec)?;
            o.add_directory(path, uid, gid, mode)?;
        }
        for spec in &self.files {
            let (path, source) = split_pair(spec, "file", "PATH=SOURCE, e.g. /etc/app.conf=app.conf")?;
            if source.is_empty() {
                return Err(Error::invalid_argument(format!("file '{spec}': no SOURCE after '='")));
            }
            o.add_file(path, PathBuf::from(source))?;
        }
        // A --directory, --symlink or --file at /tmp replaces the default
        // one rather than conflict with it.
        if !self.no_tmp && !o.adds_entry_at(TMP_DIRECTORY) {
            o.add_directory(TMP_DIRECTORY, 0, 0, TMP_MODE)?;
        }
        o.set_localstatedir(self.localstatedir);
        if let Some(dir) = &self.workdir {
            o.set_working_dir(dir)?;
        }
        if let Some(user) = &self.user {
            o.set_user(user)?;
        }
        for spec in &self.labels {
            let (key, value) = split_pair(spec, "label", "KEY=VALUE")?;
            o.add_label(key, value)?;
        }
        for port in &self.exposed_ports {
            o.add_exposed_port(port)?;
        }
        for path in &self.volumes {
            o.add_volume(path)?;
        }
        if let Some(n) = &self.max_layers {
            o.set_max_layers(parse_number(n, "max-layers", "a number of layers from 1 to 125")?)?;
        }
        if let Some(system) = &self.system {
            o.set_system(system)?;
        }
        if let Some(time) = &self.creation_time {
            let seconds = parse_creation_time(time)
                .map_err(|why| Error::invalid_argument(format!("creation time '{time}': {why}")))?;
            o.set_creation_time(seconds)?;
        }
        let compression = Compression::parse(&self.compression)?;
        let level = match &self.compression_level {
            Some(n) => Some(parse_number(n, "compression level", "a number")?),
            None => None,
        };
        o.set_compression(compression, level)?;
        o.set_threads(parse_number(&self.threads, "threads", "a number of threads (0: one per core)")?)?;
        for name in &self.sboms {
            o.add_sbom(SbomFormat::parse(name)?);
        }
        if let Some(file) = &self.sbom_output {
            o.set_sbom_output(file)?;
        }
        for spec in &self.sbom_licenses {
            // At the last '=': a store name may hold one, an expression not.
            let (item, expression) = spec.rsplit_once('=').ok_or_else(|| {
                Error::invalid_argument(format!(
                    "SBOM licence '{spec}': expected ITEM=EXPRESSION, e.g. /gnu/store/...-hello-2.12=GPL-3.0-or-later"
                ))
            })?;
            o.add_sbom_license(Path::new(item), expression)?;
        }
        if let Some(creds) = &self.creds {
            // The password is never in the message.
            let (user, password) = creds
                .split_once(':')
                .ok_or_else(|| Error::invalid_argument("creds: expected USER:PASSWORD"))?;
            o.set_registry_credentials(user, password)?;
        }
        o.set_cert_dir(self.cert_dir.as_deref())?;
        if let Some(dir) = &self.cache_dir {
            o.set_cache_dir(dir)?;
        }
        o.set_cache(!self.no_cache);
        if let Some(verify) = &self.tls_verify {
            o.set_tls_verify(match verify.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(Error::invalid_argument(format!("tls-verify '{verify}': expected true or false"))),
            });
        }
        if let Some(format) = &self.manifest_format {
            o.set_manifest_format(ManifestFormat::parse(format)?);
        }
        if let Some(jobs) = &self.jobs {
            let n: usize = parse_number(jobs, "jobs", "a number of layers from 1 to 64")?;
            if n == 0 {
                return Err(Error::invalid_argument("jobs 0: at least one layer uploads at a time"));
            }
            o.set_push_jobs(n)?;
        }
        Ok(o)
    }
}

impl Cli {
    /// Tags the image as `guix pack` names it when no -t is given: after the
    /// packages of a profile, else after the first item (see
    /// [`default_repository`]).  An item that is not a store item is left
    /// for the build to report.
    pub fn add_default_tag(&self, o: &mut ImageOptions) -> Result<()> {
        if !o.tags().is_empty() {
            return Ok(());
        }
        let Ok(main) = self.main_item() else { return Ok(()) };
        if let Ok(item) = StoreDir::new(o.store_dir()).and_then(|store| store.parse_item(&main)) {
            o.add_tag(&default_repository(&item))?;
        }
        Ok(())
    }
}

/// Parses `PATH[=MODE[:UID:GID]]`.
fn parse_directory(spec: &str) -> Result<(&str, u32, u32, u32)> {
    let bad = || {
        Error::invalid_argument(format!(
            "directory '{spec}': expected PATH, PATH=MODE or PATH=MODE:UID:GID with MODE in octal, e.g. /srv=750:1000:1000"
        ))
    };
    let Some((path, rest)) = spec.split_once('=') else { return Ok((spec, DEFAULT_DIRECTORY_MODE, 0, 0)) };
    let fields: Vec<&str> = rest.split(':').collect();
    let (mode, uid, gid) = match fields.as_slice() {
        [mode] => (*mode, "0", "0"),
        [mode, uid, gid] => (*mode, *uid, *gid),
        _ => return Err(bad()),
    };
    let octal = !mode.is_empty() && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
    let mode = if octal { u32::from_str_radix(mode, 8).map_err(|_| bad())? } else { return Err(bad()) };
    let id = |text: &str| text.parse::<u32>().map_err(|_| bad());
    Ok((path, mode, id(uid)?, id(gid)?))
}

/// Splits `NAME=VALUE` at the first '='.
fn split_pair<'a>(spec: &'a str, what: &str, expected: &str) -> Result<(&'a str, &'a str)> {
    spec.split_once('=')
        .ok_or_else(|| Error::invalid_argument(format!("{what} '{spec}': expected {expected}")))
}

fn parse_number<T: std::str::FromStr>(text: &str, what: &str, expected: &str) -> Result<T> {
    text.parse::<T>()
        .map_err(|_| Error::invalid_argument(format!("{what} '{text}': expected {expected}")))
}

/// Parses `args` (the program name first), or returns clap's error.
pub fn parse<I, T>(args: I) -> std::result::Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    Cli::try_parse_from(&args).map_err(|err| match err.kind() {
        clap::error::ErrorKind::InvalidUtf8 => name_invalid_utf8(&args).unwrap_or(err),
        _ => err,
    })
}

/// clap says only that "one or more arguments" are not UTF-8: this names
/// the first such argument and the option it is the value of.  (File names
/// may be any bytes; the other values are names, numbers and JSON strings,
/// which must be text.)
fn name_invalid_utf8(args: &[OsString]) -> Option<clap::Error> {
    use std::os::unix::ffi::OsStrExt;
    let index = args.iter().skip(1).position(|arg| arg.to_str().is_none())? + 1;
    let bytes = args[index].as_bytes();
    let shown = bytes.escape_ascii().to_string();
    let command = <Cli as clap::CommandFactory>::command();
    let takes_value = |option: &str| {
        command.get_arguments().any(|arg| {
            let named = match option.strip_prefix("--") {
                Some(long) => arg.get_long() == Some(long),
                None => option.len() == 2 && arg.get_short() == option.chars().nth(1),
            };
            named && arg.get_action().takes_values()
        })
    };
    let previous = args[index - 1].to_str().filter(|p| p.starts_with('-') && *p != "--" && takes_value(p));
    let (owner, shown) = match bytes.iter().position(|&b| b == b'=') {
        Some(equals) if bytes.starts_with(b"--") => (
            format!("the value of {}", String::from_utf8_lossy(&bytes[..equals])),
            bytes[equals + 1..].escape_ascii().to_string(),
        ),
        _ => match previous {
            Some(option) => (format!("the value of {option}"), shown),
            None => (format!("argument {index}"), shown),
        },
    };
    Some(clap::Error::raw(
        clap::error::ErrorKind::InvalidUtf8,
        format!("{owner}, '{shown}', is not valid UTF-8 (only file names may be other bytes)\n"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use guix_docker_native::ErrorKind;

    fn cli(args: &[&str]) -> Cli {
        parse(std::iter::once("guix-docker-native").chain(args.iter().copied())).expect("parses")
    }

    fn options(args: &[&str]) -> Result<ImageOptions> {
        cli(args).image_options()
    }

    fn error(args: &[&str]) -> String {
        let Err(err) = options(args) else { panic!("{args:?} must fail") };
        assert_eq!(err.kind, ErrorKind::InvalidArgument, "{}", err.message);
        err.message
    }

    #[test]
    fn guix_pack_style_command_line() {
        let c = cli(&[
            "-o", "out.tar", "--store-dir", "/tmp/x/gnu/store", "--database", "/tmp/x/db.sqlite",
            "-t", "hello:2.12", "--tag", "guix/hello", "--entry-point", "bin/hello", "-A", "--greet",
            "-A", "world", "-E", "GREETING=hi=there", "-S", "/bin=bin", "--max-layers", "4",
            "--system", "aarch64-linux", "--creation-time", "2024-02-29T12:34:56Z", "--cmd", "-v",
            "--workdir", "/srv", "--user", "1000:1000", "--label", "org.example=a=b", "--expose",
            "53/udp", "--volume", "/data", "-C", "zstd", "--compression-level", "19", "--threads",
            "3", "/tmp/x/gnu/store/00000000000000000000000000000000-profile", "/tmp/x/gnu/store/11111111111111111111111111111111-extra",
        ]);
        assert_eq!(c.items.len(), 2);
        assert_eq!(c.output_choice().unwrap(), OutputChoice::File("out.tar".into()));
        let o = c.image_options().unwrap();
        assert_eq!(o.store_dir(), PathBuf::from("/tmp/x/gnu/store"));
        assert_eq!(o.database(), Some(PathBuf::from("/tmp/x/db.sqlite").as_path()));
        assert_eq!(o.tags(), ["hello:2.12", "guix/hello:latest"]);
        assert_eq!(o.entry_point(), ["bin/hello", "--greet", "world"]);
        assert_eq!(o.cmd(), ["-v"]);
        assert_eq!(o.env(), ["GREETING=hi=there"]);
        assert_eq!((o.symlinks()[0].link.as_str(), o.symlinks()[0].target.as_str()), ("/bin", "bin"));
        assert_eq!(o.max_layers(), Some(4));
        assert_eq!(o.architecture(), "arm64");
        assert_eq!(o.creation_time(), Some(1_709_210_096));
        assert_eq!(o.working_dir(), Some("/srv"));
        assert_eq!(o.user(), Some("1000:1000"));
        assert_eq!(o.labels().get("org.example").map(String::as_str), Some("a=b"));
        assert!(o.exposed_ports().contains("53/udp"));
        assert!(o.volumes().contains("/data"));
        assert_eq!((o.compression(), o.compression_level()), (Compression::Zstd, Some(19)));
        assert_eq!(o.threads(), 3);
    }

    #[test]
    fn defaults() {
        let c = cli(&["/gnu/store/00000000000000000000000000000000-hello"]);
        assert_eq!(c.output_choice().unwrap(), OutputChoice::Default);
        assert!(!c.quiet);
        let o = c.image_options().unwrap();
        assert_eq!(o.store_dir(), guix_docker_native::default_store_dir());
        assert!(o.tags().is_empty() && o.entry_point().is_empty() && o.max_layers().is_none());
        assert_eq!((o.compression(), o.compression_level(), o.threads()), (Compression::None, None, 0));
        assert_eq!(o.creation_time(), None);
        assert_eq!(cli(&["-o", "-", "x"]).output_choice().unwrap(), OutputChoice::Stdout);
        assert_eq!(cli(&["-o", "./-", "x"]).output_choice().unwrap(), OutputChoice::File("./-".into()));
        assert_eq!(
            cli(&["-o", "oci:/tmp/l:a:1", "x"]).output_choice().unwrap(),
            OutputChoice::Oci(Destination::OciLayout { dir: "/tmp/l".into(), reference: Some("a:1".into()) })
        );
        assert_eq!(cli(&["-o", "docker-archive:a.tar", "x"]).output_choice().unwrap(), OutputChoice::File("a.tar".into()));
        let e = cli(&["-o", "docker:hello", "x"]).output_choice().unwrap_err();
        assert!(e.message.contains("unknown transport 'docker'"), "{}", e.message);
        assert_eq!(
            cli(&["-o", "docker://localhost:5000/a/b:1", "x"]).output_choice().unwrap(),
            OutputChoice::Registry(RegistryReference {
                registry: "localhost:5000".into(),
                repository: "a/b".into(),
                tag: Some("1".into())
            })
        );
    }

    #[test]
    fn registry_options() {
        let o = options(&[
            "--creds", "me:pa:ss", "--cert-dir", "/etc/certs", "--tls-verify=false", "--manifest-format", "docker",
            "--jobs", "8", "x",
        ])
        .unwrap();
        assert_eq!(o.registry_user(), Some("me"));
        assert_eq!(o.cert_dir(), Some(std::path::Path::new("/etc/certs")));
        assert!(!o.tls_verify());
        assert_eq!(o.manifest_format(), ManifestFormat::Docker);
        assert_eq!(o.push_jobs(), 8);
        let o = options(&["--tls-verify", "x"]).unwrap();
        assert!(o.tls_verify());
        assert_eq!((o.manifest_format(), o.push_jobs(), o.registry_user()), (ManifestFormat::Oci, 4, None));
        let e = error(&["--creds", "me", "x"]);
        assert!(e.contains("creds: expected USER:PASSWORD"), "{e}");
        let e = error(&["--creds", "me:", "x"]);
        assert!(e.contains("no password for user 'me'"), "{e}");
        assert!(error(&["--tls-verify=no", "x"]).contains("tls-verify 'no'"));
        assert!(error(&["--manifest-format", "v1", "x"]).contains("manifest format 'v1'"));
        assert!(error(&["--jobs", "0", "x"]).contains("jobs 0"));
        assert!(error(&["--jobs", "65", "x"]).contains("jobs 65"));
        // A password never shows in an error.
        assert!(!error(&["--creds", ":hunter2", "x"]).contains("hunter2"));
    }

    #[test]
    fn creation_time_at_seconds() {
        assert_eq!(options(&["--creation-time", "@1700000000", "x"]).unwrap().creation_time(), Some(1_700_000_000));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(error(&["-t", "Hello", "x"]).contains("'Hello'"));
        assert!(error(&["--max-layers", "0", "x"]).contains("max-layers 0"));
        assert!(error(&["--max-layers", "126", "x"]).contains("max-layers 126"));
        assert!(error(&["--max-layers", "-1", "x"]).contains("max-layers '-1'"));
        assert!(error(&["--max-layers", "many", "x"]).contains("max-layers 'many'"));
        assert!(error(&["-A", "x", "x"]).contains("no entry point"));
        assert!(error(&["-E", "GREETING", "x"]).contains("'GREETING'"));
        assert!(error(&["-S", "/bin", "x"]).contains("symlink '/bin'"));
        assert!(error(&["-S", "bin=bin", "x"]).contains("'bin'"));
        assert!(error(&["--label", "k", "x"]).contains("label 'k'"));
        assert!(error(&["--expose", "http", "x"]).contains("'http'"));
        assert!(error(&["--volume", "data", "x"]).contains("'data'"));
        assert!(error(&["--workdir", "srv", "x"]).contains("'srv'"));
        assert!(error(&["--system", "sparc-linux", "x"]).contains("'sparc-linux'"));
        assert!(error(&["--creation-time", "2023-02-29T00:00:00Z", "x"]).contains("creation time '2023-02-29T00:00:00Z': 2023-02 has no day 29"));
        assert!(error(&["-C", "xz", "x"]).contains("'xz'"));
        assert!(error(&["--compression-level", "3", "x"]).contains("no compression"));
        assert!(error(&["-C", "gzip", "--compression-level", "10", "x"]).contains("level 10"));
        assert!(error(&["-C", "gzip", "--compression-level", "fast", "x"]).contains("'fast'"));
        assert!(error(&["--threads", "-2", "x"]).contains("threads '-2'"));
        assert!(error(&["--threads", "5000", "x"]).contains("threads 5000"));
        assert!(error(&["--store-dir", "gnu/store", "x"]).contains("'gnu/store'"));
        assert!(error(&["--creation-time", "@253402300800", "x"]).contains("creation time 253402300800"));
    }

    #[test]
    fn usage_errors_come_from_clap() {
        let parse_args = |args: &[&str]| parse(std::iter::once("guix-docker-native").chain(args.iter().copied()));
        assert!(parse_args(&[]).is_err(), "an ITEM is required");
        assert!(parse_args(&["--no-such-option", "x"]).is_err());
        assert!(parse_args(&["-o"]).is_err());
        assert!(parse_args(&["--help"]).is_err(), "help is an 'error' clap prints itself");
    }

    #[test]
    fn values_that_are_not_utf8_are_named_with_their_option() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(b"a\xffb".to_vec());
        let message = |args: Vec<OsString>| {
            let args = std::iter::once(OsString::from("guix-docker-native")).chain(args);
            parse(args).err().expect("refused").render().to_string()
        };
        let m = message(vec!["-t".into(), bad(), "x".into()]);
        assert!(m.contains("the value of -t, 'a\\xffb', is not valid UTF-8"), "{m}");
        let mut tag = OsString::from("--tag=");
        tag.push(bad());
        let m = message(vec![tag, "x".into()]);
        assert!(m.contains("the value of --tag, 'a\\xffb'"), "{m}");
        let m = message(vec!["--entry-point".into(), bad(), "x".into()]);
        assert!(m.contains("the value of --entry-point"), "{m}");
        // A file name may be any bytes: this one parses.
        let mut output = OsString::from("/tmp/");
        output.push(bad());
        assert!(parse(["guix-docker-native".into(), "-o".into(), output, "x".into()]).is_ok());
    }

    #[test]
    fn the_help_documents_every_option() {
        let help = <Cli as clap::CommandFactory>::command().render_long_help().to_string();
        for needle in [
            "--output", "--store-dir", "--database", "--closure-file", "--tag", "--entry-point ",
            "--entry-point-argument", "--env", "--symlink", "--max-layers", "--system",
            "--creation-time", "--cmd", "--workdir", "--user", "--label", "--expose", "--volume",
            "--compression ", "--compression-level", "--threads", "--quiet", "Docker 20.10",
            "--image-tag", "--directory", "--file", "--no-tmp", "--localstatedir",
            "Examples:", "Exit status", "NIX_STORE_DIR", "SOURCE_DATE_EPOCH",
            "oci:DIR[:REF]", "oci-archive:FILE[:REF]", "docker-archive:FILE", "of each layer",
            "docker://HOST[:PORT]/REPOSITORY[:TAG]", "--creds", "--cert-dir", "--tls-verify", "--manifest-format", "--jobs",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}");
        }
    }

    #[test]
    fn the_help_lists_the_exit_statuses_from_the_library_s_list() {
        let help = <Cli as clap::CommandFactory>::command().render_long_help().to_string();
        let statuses = &help[help.find("Exit status").expect("--help has the exit statuses")..];
        for kind in ErrorKind::ALL {
            // The meaning's words, however the lines are wrapped.
            let line = format!("{:>5}  {}", kind.code(), kind.meaning());
            let words: Vec<&str> = statuses.split_whitespace().collect();
            let wanted: Vec<&str> = line.split_whitespace().collect();
            let listed = words.windows(wanted.len()).any(|w| w == wanted.as_slice());
            assert_eq!(listed, kind.is_cli_exit_status(), "{kind:?} in --help:\n{statuses}");
        }
        assert!(statuses.lines().all(|line| line.len() <= HELP_WIDTH), "{statuses}");
    }

    fn directories(o: &ImageOptions) -> Vec<(String, u32, u32, u32)> {
        o.directories().iter().map(|d| (d.path.clone(), d.mode, d.uid, d.gid)).collect()
    }

    #[test]
    fn tmp_by_default_as_guix_pack_and_no_tmp_turns_it_off() {
        let tmp = ("/tmp".to_string(), 0o1777, 0, 0);
        assert_eq!(directories(&options(&["x"]).unwrap()), [tmp.clone()]);
        assert_eq!(directories(&options(&["--no-tmp", "x"]).unwrap()), []);
        // A --directory, --symlink or --file at /tmp replaces it.
        assert_eq!(directories(&options(&["--directory", "/tmp/=700", "x"]).unwrap()), [("/tmp/".to_string(), 0o700, 0, 0)]);
        let o = options(&["-S", "/tmp=tmp", "x"]).unwrap();
        assert!(directories(&o).is_empty() && o.symlinks().len() == 1);
        assert_eq!(directories(&options(&["--directory", "/tmpx", "x"]).unwrap())[1], tmp);
    }

    #[test]
    fn directories_files_localstatedir_and_image_tag() {
        let o = options(&[
            "--directory", "/srv", "--directory", "/home/app=0700:1000:100", "--directory", "/var/log=1777",
            "--file", "/etc/app.conf=conf/app.conf", "--localstatedir", "--image-tag", "app:1", "--no-tmp", "x",
        ])
        .unwrap();
        assert_eq!(
            directories(&o),
            [("/srv".into(), 0o755, 0, 0), ("/home/app".into(), 0o700, 1000, 100), ("/var/log".into(), 0o1777, 0, 0)]
        );
        assert_eq!((o.files()[0].path.as_str(), o.files()[0].source.as_path()), ("/etc/app.conf", std::path::Path::new("conf/app.conf")));
        assert!(o.localstatedir());
        assert!(!options(&["x"]).unwrap().localstatedir());
        assert_eq!(o.tags(), ["app:1"]);
        assert_eq!(options(&["--image-tag", "a", "-t", "b:2", "x"]).unwrap().tags(), ["a:latest", "b:2"]);
    }

    #[test]
    fn bad_directories_and_files_are_named() {
        assert!(error(&["--directory", "srv", "x"]).contains("directory 'srv'"));
        for bad in ["/srv=", "/srv=8", "/srv=rwx", "/srv=755:1000", "/srv=755:a:b", "/srv=755:1:2:3"] {
            assert!(error(&["--directory", bad, "x"]).contains(&format!("directory '{bad}': expected")), "{bad}");
        }
        assert!(error(&["--directory", "/srv=17777", "x"]).contains("mode 17777"));
        assert!(error(&["--file", "/etc/x", "x"]).contains("file '/etc/x': expected PATH=SOURCE"));
        assert!(error(&["--file", "/etc/x=", "x"]).contains("file '/etc/x=': no SOURCE"));
        assert!(error(&["--file", "etc/x=y", "x"]).contains("'etc/x'"));
    }

    #[test]
    fn the_default_tag_names_a_profile_after_its_packages() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("gnu/store");
        let profile = store.join("00000000000000000000000000000000-profile");
        std::fs::create_dir_all(&profile).unwrap();
        std::fs::write(
            profile.join("manifest"),
            "(manifest (version 4) (packages ((\"hello\" \"2.12\" \"out\" \"/gnu/store/x-hello\") (\"grep\" \"3.11\" \"out\" \"/gnu/store/x-grep\"))))",
        )
        .unwrap();
        let (store, profile) = (store.to_str().unwrap(), profile.to_str().unwrap());
        let tagged = |args: &[&str]| {
            let c = cli(args);
            let mut o = c.image_options().unwrap();
            c.add_default_tag(&mut o).unwrap();
            o.tags().to_vec()
        };
        assert_eq!(tagged(&["--store-dir", store, profile]), ["hello-grep:latest"]);
        assert_eq!(tagged(&["--store-dir", store, "-t", "mine", profile]), ["mine:latest"]);
        // Not a store item: no tag now; the build reports the item.
        assert!(tagged(&["--store-dir", store, "/elsewhere/x"]).is_empty());
    }

    #[test]
    fn platforms_are_system_item_pairs_in_place_of_items() {
        let store = "/gnu/store";
        let x = "/gnu/store/00000000000000000000000000000000-hello-1";
        let a = "/gnu/store/11111111111111111111111111111111-hello-1";
        let c = cli(&["--store-dir", store, "--platform", &format!("x86_64-linux={x}"), "--platform", &format!("aarch64-linux={a}")]);
        assert!(c.items.is_empty());
        let items = c.platform_items().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[1].system.as_str(), items[1].item.to_str().unwrap()), ("aarch64-linux", a));
        assert_eq!(c.main_item().unwrap(), PathBuf::from(x));
        let mut o = c.image_options().unwrap();
        c.add_default_tag(&mut o).unwrap();
        assert_eq!(o.tags(), ["hello-1:latest"]);
        for bad in ["x86_64-linux", "=/gnu/store/x", "x86_64-linux="] {
            let e = cli(&["--platform", bad]).platform_items().unwrap_err();
            assert!(e.message.contains(&format!("platform '{bad}'")) && e.message.contains("SYSTEM=ITEM"), "{}", e.message);
        }
        // No ITEM, --system or --closure-file beside it; and one of ITEM or --platform.
        let refused = |args: &[&str]| parse(std::iter::once("guix-docker-native").chain(args.iter().copied())).unwrap_err();
        refused(&["--platform", "x86_64-linux=/a", "/gnu/store/x"]);
        refused(&["--platform", "x86_64-linux=/a", "--system", "x86_64-linux"]);
        refused(&["--platform", "x86_64-linux=/a", "--closure-file", "c.txt"]);
        refused(&[]);
    }
}
