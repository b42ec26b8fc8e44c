//! What a caller can ask of an image, validated where it is set.
//!
//! The CLI, the C ABI and (through it) Guile all fill an [`ImageOptions`]
//! with the same setters, so a bad value gets the same error everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layers::archive_name;
use crate::reference::validate_tag;

/// Compression applied to the whole archive, as `guix pack -C` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// An uncompressed tar archive.
    None,
    /// gzip (levels 1 to 9, 6 by default).
    Gzip,
    /// zstd (levels 1 to 19, 3 by default).
    Zstd,
}

impl Compression {
    /// Parses `none`, `gzip` or `zstd` (the names `guix pack -C` uses).
    pub fn parse(name: &str) -> Result<Compression> {
        match name {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(Error::invalid_argument(format!(
                "compression '{name}': unknown; expected none, gzip or zstd"
            ))),
        }
    }

    /// The file name suffix an archive with this compression gets.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// The levels the compressor accepts and its default.
    pub fn levels(self) -> (i32, i32, i32) {
        match self {
            Compression::None => (0, 0, 0),
            Compression::Gzip => (1, 9, 6),
            Compression::Zstd => (1, 19, 3),
        }
    }
}

/// A symbolic link added to the image (`-S /bin=bin`, or Guix's
/// `("/bin" -> "/gnu/store/...")`).  A relative target is relative to the
/// first item, as with `guix pack -S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraSymlink {
    /// Where the link is, an absolute path in the image.
    pub link: String,
    /// What it points to, as given.
    pub target: String,
}

/// A directory added to the image (Guix's `(directory "/tmp" uid gid mode)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDirectory {
    /// Its absolute path in the image.
    pub path: String,
    /// Its owner's user id.
    pub uid: u32,
    /// Its group id.
    pub gid: u32,
    /// Its permission bits (at most `0o7777`).
    pub mode: u32,
}

/// A regular file copied into the image from the host (a store database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Its absolute path in the image.
    pub path: String,
    /// The host file its content is read from.
    pub source: PathBuf,
}

/// How far a build has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Bytes of the archive written so far.
    pub bytes_done: u64,
    /// Bytes the archive will have (before compression).
    pub bytes_total: u64,
    /// Store items written so far.
    pub items_done: u64,
    /// Store items in the closure.
    pub items_total: u64,
}

/// A progress callback (see [`ImageOptions::set_progress`]).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Largest number of layers: the classic Docker engine refuses more than 125.
pub const MAX_LAYERS_LIMIT: u32 = 125;

/// `guix pack`'s creation time: 1970-01-01T00:00:01Z.
pub const DEFAULT_CREATION_TIME: i64 = 1;

/// The creation times RFC 3339 can write (years 0000 to 9999), in seconds
/// since the epoch.
pub const CREATION_TIME_RANGE: std::ops::RangeInclusive<i64> = -62_167_219_200..=253_402_300_799;

/// More worker threads than this is a mistake, not a wish.
pub const MAX_THREADS: usize = 1024;

/// Everything that shapes an image besides its items.
#[derive(Clone)]
pub struct ImageOptions {
    /// The store directory (default `$NIX_STORE_DIR`, else `/gnu/store`).
    pub(crate) store_dir: PathBuf,
    /// A store database to read references from.
    pub(crate) database: Option<PathBuf>,
    /// `name:tag` references, validated and complete (`:latest` added).
    pub(crate) tags: Vec<String>,
    /// Program and arguments; a relative program is relative to the first item.
    pub(crate) entry_point: Vec<String>,
    pub(crate) cmd: Vec<String>,
    /// `NAME=VALUE` strings.
    pub(crate) env: Vec<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// Normalised `PORT/PROTO` keys.
    pub(crate) exposed_ports: BTreeSet<String>,
    pub(crate) volumes: BTreeSet<String>,
    pub(crate) symlinks: Vec<ExtraSymlink>,
    pub(crate) directories: Vec<ExtraDirectory>,
    pub(crate) files: Vec<ExtraFile>,
    /// Put the store database of the closure in the image, as
    /// `guix pack --localstatedir` (see [`crate::localstate`]).
    pub(crate) localstatedir: bool,
    /// `(old, new)` prefix rewrites of archive names.
    pub(crate) transformations: Vec<(String, String)>,
    /// `None`: one layer.  `Some(n)`: at most n layers.
    pub(crate) max_layers: Option<u32>,
    /// The platform the image is for (its architecture and variant).
    pub(crate) platform: &'static Platform,
    /// Seconds since the epoch; `None`: `SOURCE_DATE_EPOCH`, else 1.
    pub(crate) creation_time: Option<i64>,
    pub(crate) compression: Compression,
    /// `None`: the compressor's default level.
    pub(crate) compression_level: Option<i32>,
    /// Worker threads; 0 means one per core.
    pub(crate) threads: usize,
    pub(crate) progress: Option<ProgressFn>,
    /// Set from another thread (or a signal handler) to stop the build.
    pub(crate) cancel: Option<Arc<AtomicBool>>,
    /// The SBOMs asked for (setters in `crate::sbom::options`).
    pub(crate) sbom: crate::sbom::SbomOptions,
    /// How a push to a registry goes (`docker://`).
    pub(crate) registry: crate::registry::RegistryOptions,
    /// The layer cache (setters in `crate::cache::options`).
    pub(crate) cache: crate::cache::CacheOptions,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            store_dir: default_store_dir(),
            database: None,
            tags: Vec::new(),
            entry_point: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            exposed_ports: BTreeSet::new(),
            volumes: BTreeSet::new(),
            symlinks: Vec::new(),
            directories: Vec::new(),
            files: Vec::new(),
            localstatedir: false,
            transformations: Vec::new(),
            max_layers: None,
            platform: host_platform(),
            creation_time: None,
            compression: Compression::None,
            compression_level: None,
            threads: 0,
            progress: None,
            cancel: None,
            sbom: Default::default(),
            registry: Default::default(),
            cache: Default::default(),
        }
    }
}

/// `$NIX_STORE_DIR` when set and not empty, else `/gnu/store`, as Guix
/// decides.  The value is taken as it is (a build refuses a bad store
/// directory); [`store_dir_from_environment`] checks it as the option.
pub fn default_store_dir() -> PathBuf {
    match std::env::var_os("NIX_STORE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/gnu/store"),
    }
}

/// `$NIX_STORE_DIR` checked as the store directory option is (absolute),
/// with an error naming it; `None` when it is unset or empty.
pub fn store_dir_from_environment() -> Result<Option<PathBuf>> {
    match std::env::var_os("NIX_STORE_DIR") {
        Some(dir) if !dir.is_empty() => check_store_dir_variable(PathBuf::from(dir)).map(Some),
        _ => Ok(None),
    }
}

fn check_store_dir_variable(dir: PathBuf) -> Result<PathBuf> {
    if !dir.is_absolute() {
        return Err(Error::invalid_argument(format!(
            "NIX_STORE_DIR '{}': not an absolute path; set it to the store directory, e.g. /gnu/store, or unset it",
            dir.display()
        )));
    }
    Ok(dir)
}

/// The value of `SOURCE_DATE_EPOCH`, checked as the creation time option.
fn source_date_epoch(value: &str) -> Result<i64> {
    let refuse = |why: &str| {
        Err(Error::invalid_argument(format!(
            "SOURCE_DATE_EPOCH '{value}': {why}; unset it or set the creation time explicitly"
        )))
    };
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return refuse("not an integer number of seconds since the epoch");
    }
    match value.parse::<i64>() {
        Ok(seconds) if CREATION_TIME_RANGE.contains(&seconds) => Ok(seconds),
        _ => refuse(&format!(
            "outside the years 0000 to 9999 that an image's creation time can hold ({} to {} seconds)",
            CREATION_TIME_RANGE.start(),
            CREATION_TIME_RANGE.end()
        )),
    }
}

fn host_platform() -> &'static Platform {
    // std names the CPU without its byte order where Guix's names have it.
    let cpu = match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le",
        "mips64" if cfg!(target_endian = "little") => "mips64el",
        cpu => cpu,
    };
    platform_of_cpu(cpu).unwrap_or(&PLATFORMS[0])
}

/// The platform an image for a Guix system runs on, as the OCI image spec
/// and Docker name it (`linux/arm64/v8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// Guix's name of the system (`aarch64-linux`).
    pub system: &'static str,
    /// The CPU names (of GNU triplets) that mean this system; a name that
    /// ends in `*` is a prefix.
    cpus: &'static [&'static str],
    /// Docker's architecture name (`arm64`).
    pub architecture: &'static str,
    /// The architecture's variant (`v8`), when it has one.
    pub variant: Option<&'static str>,
}

impl Platform {
    /// `os/architecture[/variant]`, as `docker --platform` takes it.
    pub fn name(&self) -> String {
        match self.variant {
            Some(v) => format!("linux/{}/{v}", self.architecture),
            None => format!("linux/{}", self.architecture),
        }
    }
}

/// Guix's systems and their platforms: the one table the image config
/// (`architecture`, `variant`) and the OCI index's `platform` come from.
/// The first is the default on an unknown host.
pub const PLATFORMS: &[Platform] = &[
    Platform { system: "x86_64-linux", cpus: &["x86_64"], architecture: "amd64", variant: None },
    Platform { system: "i686-linux", cpus: &["i686", "i586", "i486", "i386", "x86"], architecture: "386", variant: None },
    Platform { system: "aarch64-linux", cpus: &["aarch64"], architecture: "arm64", variant: Some("v8") },
    Platform { system: "armhf-linux", cpus: &["arm*"], architecture: "arm", variant: Some("v7") },
    Platform { system: "powerpc64le-linux", cpus: &["powerpc64le", "ppc64le"], architecture: "ppc64le", variant: None },
    Platform { system: "riscv64-linux", cpus: &["riscv64"], architecture: "riscv64", variant: None },
    Platform { system: "mips64el-linux", cpus: &["mips64el", "mips64"], architecture: "mips64le", variant: None },
];

/// The platform of a CPU name (`aarch64`, `armv7l`).
fn platform_of_cpu(cpu: &str) -> Option<&'static Platform> {
    PLATFORMS.iter().find(|p| {
        p.cpus.iter().any(|c| match c.strip_suffix('*') {
            Some(prefix) => cpu.starts_with(prefix),
            None => cpu == *c,
        })
    })
}

/// The platform of a Guix system or GNU triplet (`x86_64-linux`,
/// `aarch64-linux-gnu`), or an error naming it.
pub fn platform_of_system(system: &str) -> Result<&'static Platform> {
    let cpu = system.split('-').next().unwrap_or("");
    platform_of_cpu(cpu).ok_or_else(|| {
        let known: Vec<&str> = PLATFORMS.iter().map(|p| p.system).collect();
        Error::invalid_argument(format!("system '{system}': unsupported; expected one of {}", known.join(", ")))
    })
}

fn require_absolute(what: &str, path: &str) -> Result<()> {
    if !path.starts_with('/') {
        return Err(Error::invalid_argument(format!("{what} '{path}': not an absolute path")));
    }
    Ok(())
}

fn require_no_nul(what: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(Error::invalid_argument(format!("{what} '{value}': contains a NUL byte")));
    }
    Ok(())
}

impl ImageOptions {
    /// The defaults: no tag, entry point or extra entries, one layer, no
    /// compression, the host's architecture, the store directory of
    /// [`default_store_dir`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the store directory, which must be an absolute path.
    pub fn set_store_dir(&mut self, dir: &Path) -> Result<()> {
        if !dir.is_absolute() {
            return Err(Error::invalid_argument(format!(
                "store directory '{}': not an absolute path",
                dir.display()
            )));
        }
        self.store_dir = dir.to_path_buf();
        Ok(())
    }

    /// Sets the store database to read references from.
    pub fn set_database(&mut self, file: &Path) -> Result<()> {
        if file.as_os_str().is_empty() {
            return Err(Error::invalid_argument("database '': empty file name"));
        }
        self.database = Some(file.to_path_buf());
        Ok(())
    }

    /// Sets the creation time recorded in the config, in seconds since the epoch.
    pub fn set_creation_time(&mut self, seconds: i64) -> Result<()> {
        if !CREATION_TIME_RANGE.contains(&seconds) {
            return Err(Error::invalid_argument(format!(
                "creation time {seconds}: outside the years 0000 to 9999 that RFC 3339 can write"
            )));
        }
        self.creation_time = Some(seconds);
        Ok(())
    }

    /// Sets the number of worker threads; 0 means one per core.
    pub fn set_threads(&mut self, n: usize) -> Result<()> {
        if n > MAX_THREADS {
            return Err(Error::invalid_argument(format!(
                "threads {n}: at most {MAX_THREADS}"
            )));
        }
        self.threads = n;
        Ok(())
    }

    /// Adds a tag; `name` alone means `name:latest`.
    pub fn add_tag(&mut self, tag: &str) -> Result<()> {
        let full = validate_tag(tag)?;
        if !self.tags.contains(&full) {
            self.tags.push(full);
        }
        Ok(())
    }

    /// Sets the architecture from a GNU triplet or Guix system
    /// (`x86_64-linux`, `aarch64-linux-gnu`, ...).
    pub fn set_system(&mut self, system: &str) -> Result<()> {
        self.platform = platform_of_system(system)?;
        Ok(())
    }

    /// Sets the entry point's program (its arguments follow with
    /// [`add_entry_point_argument`](Self::add_entry_point_argument)).
    pub fn set_entry_point(&mut self, program: &str) -> Result<()> {
        if program.is_empty() {
            return Err(Error::invalid_argument("entry point '': empty program name"));
        }
        require_no_nul("entry point", program)?;
        if self.entry_point.is_empty() {
            self.entry_point.push(program.to_string());
        } else {
            self.entry_point[0] = program.to_string();
        }
        Ok(())
    }

    /// Adds an argument to the entry point (after its program is set).
    pub fn add_entry_point_argument(&mut self, arg: &str) -> Result<()> {
        require_no_nul("entry point argument", arg)?;
        if self.entry_point.is_empty() {
            return Err(Error::invalid_argument(format!(
                "entry point argument '{arg}': no entry point was given"
            )));
        }
        self.entry_point.push(arg.to_string());
        Ok(())
    }

    /// Adds an argument to the command (the config's `Cmd`).
    pub fn add_cmd(&mut self, arg: &str) -> Result<()> {
        require_no_nul("command argument", arg)?;
        self.cmd.push(arg.to_string());
        Ok(())
    }

    /// Adds `NAME=VALUE` to the environment.
    pub fn add_env(&mut self, binding: &str) -> Result<()> {
        require_no_nul("environment variable", binding)?;
        match binding.split_once('=') {
            Some((name, _)) if !name.is_empty() => {
                self.env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(name));
                self.env.push(binding.to_string());
                Ok(())
            }
            _ => Err(Error::invalid_argument(format!(
                "environment variable '{binding}': expected NAME=VALUE"
            ))),
        }
    }

    /// Sets the working directory, an absolute path.
    pub fn set_working_dir(&mut self, dir: &str) -> Result<()> {
        require_absolute("working directory", dir)?;
        require_no_nul("working directory", dir)?;
        self.working_dir = Some(dir.to_string());
        Ok(())
    }

    /// Sets the user the container runs as (`NAME`, `UID` or `UID:GID`).
    pub fn set_user(&mut self, user: &str) -> Result<()> {
        if user.is_empty() {
            return Err(Error::invalid_argument("user '': empty"));
        }
        require_no_nul("user", user)?;
        self.user = Some(user.to_string());
        Ok(())
    }

    /// Adds (or replaces) the label `key`.
    pub fn add_label(&mut self, key: &str, value: &str) -> Result<()> {
        if key.is_empty() {
            return Err(Error::invalid_argument(format!("label '={value}': empty key")));
        }
        require_no_nul("label", key)?;
        require_no_nul("label value", value)?;
        self.labels.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Adds an exposed port: `8080`, `8080/tcp`, `53/udp` or `9/sctp`.
    pub fn add_exposed_port(&mut self, port: &str) -> Result<()> {
        let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
        // Digits only: `u16::from_str` also takes a sign ("+80"), which
        // engines do not.
        let valid_number = number.bytes().all(|b| b.is_ascii_digit())
            && number.parse::<u16>().map(|n| n > 0).unwrap_or(false)
            && !number.starts_with('0');
        if !valid_number || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(Error::invalid_argument(format!(
                "exposed port '{port}': expected PORT or PORT/tcp, PORT/udp, PORT/sctp with PORT in 1..65535"
            )));
        }
        self.exposed_ports.insert(format!("{number}/{proto}"));
        Ok(())
    }

    /// Adds a volume, an absolute path.
    pub fn add_volume(&mut self, path: &str) -> Result<()> {
        require_absolute("volume", path)?;
        require_no_nul("volume", path)?;
        self.volumes.insert(path.to_string());
        Ok(())
    }

    /// Adds a symlink `link` -> `target` (`-S /bin=bin`).
    pub fn add_symlink(&mut self, link: &str, target: &str) -> Result<()> {
        require_absolute("symlink", link)?;
        require_no_nul("symlink", link)?;
        require_no_nul("symlink target", target)?;
        if link == "/" || target.is_empty() {
            return Err(Error::invalid_argument(format!(
                "symlink '{link}={target}': expected /PATH=TARGET"
            )));
        }
        self.symlinks.push(ExtraSymlink { link: link.to_string(), target: target.to_string() });
        Ok(())
    }

    /// Adds a directory at `path` (absolute) with owner, group and mode.
    pub fn add_directory(&mut self, path: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        require_absolute("directory", path)?;
        require_no_nul("directory", path)?;
        if mode > 0o7777 {
            return Err(Error::invalid_argument(format!(
                "directory '{path}': mode {mode:o} is not a permission mode"
            )));
        }
        self.directories.push(ExtraDirectory { path: path.to_string(), uid, gid, mode });
        Ok(())
    }

    /// Adds a file at `path` (absolute) copied from the host file `source`.
    pub fn add_file(&mut self, path: &str, source: PathBuf) -> Result<()> {
        require_absolute("file", path)?;
        require_no_nul("file", path)?;
        self.files.push(ExtraFile { path: path.to_string(), source });
        Ok(())
    }

    /// Asks for the store database in the image (`/var/guix/db/db.sqlite`
    /// holding the closure, with root's profile linking to the first item as
    /// a GC root), as `guix pack --localstatedir` does.  The rows come from
    /// the store database ([`set_database`](Self::set_database)), which the
    /// build then requires.
    pub fn set_localstatedir(&mut self, enable: bool) {
        self.localstatedir = enable;
    }

    /// Calls `report` as the build goes, on the thread that builds, with
    /// the bytes and items written so far; `None` stops the reports.
    pub fn set_progress(&mut self, report: Option<ProgressFn>) {
        self.progress = report;
    }

    /// Stops the build, with [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled),
    /// soon after `flag` becomes true (set it from another thread or a signal
    /// handler); `None` detaches the flag.
    pub fn set_cancel(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.cancel = flag;
    }

    /// Rewrites archive names starting with `old` to start with `new`.
    pub fn add_transformation(&mut self, old: &str, new: &str) -> Result<()> {
        require_absolute("transformation source", old)?;
        require_absolute("transformation target", new)?;
        self.transformations.push((old.trim_end_matches('/').to_string(), new.trim_end_matches('/').to_string()));
        Ok(())
    }

    /// Splits the closure into at most `n` layers (1 to [`MAX_LAYERS_LIMIT`]).
    pub fn set_max_layers(&mut self, n: u32) -> Result<()> {
        if n == 0 || n > MAX_LAYERS_LIMIT {
            return Err(Error::invalid_argument(format!(
                "max-layers {n}: must be between 1 and {MAX_LAYERS_LIMIT} (the Docker engine's limit)"
            )));
        }
        self.max_layers = Some(n);
        Ok(())
    }

    /// Sets the compression and its level (`None`: the compressor's default).
    pub fn set_compression(&mut self, compression: Compression, level: Option<i32>) -> Result<()> {
        if let Some(level) = level {
            let (low, high, _) = compression.levels();
            if compression == Compression::None || level < low || level > high {
                return Err(Error::invalid_argument(format!(
                    "compression level {level}: {} takes levels {low} to {high}",
                    match compression {
                        Compression::None => "no compression",
                        Compression::Gzip => "gzip",
                        Compression::Zstd => "zstd",
                    }
                )));
            }
        }
        self.compression = compression;
        self.compression_level = level;
        Ok(())
    }

    /// The creation time to record: the option, else `SOURCE_DATE_EPOCH`,
    /// else 1970-01-01T00:00:01Z.  `SOURCE_DATE_EPOCH` is checked as the
    /// option is: an integer number of seconds (ASCII digits, an optional
    /// `-`) within the years 0000 to 9999; anything else is an error naming
    /// it, not an image whose date no loader reads.  Set but empty means
    /// unset, as the reproducible-builds specification allows.
    pub fn effective_creation_time(&self) -> Result<i64> {
        if let Some(t) = self.creation_time {
            return Ok(t);
        }
        match std::env::var_os("SOURCE_DATE_EPOCH") {
            Some(value) if !value.is_empty() => source_date_epoch(&value.to_string_lossy()),
            _ => Ok(DEFAULT_CREATION_TIME),
        }
    }

    /// The compression level to use.
    pub fn effective_compression_level(&self) -> i32 {
        self.compression_level.unwrap_or(self.compression.levels().2)
    }

    /// The number of worker threads to use: the option, or one per core.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
    }

    /// Does a directory, symlink or file added so far sit at `path`?  Paths
    /// are compared as the archive names them (`/tmp/` and `/tmp` are one
    /// place); a path that is no archive name sits nowhere.
    pub fn adds_entry_at(&self, path: &str) -> bool {
        let Ok(wanted) = archive_name(path, &[]) else { return false };
        let paths = self.directories.iter().map(|d| d.path.as_str());
        let paths = paths.chain(self.symlinks.iter().map(|s| s.link.as_str()));
        let mut paths = paths.chain(self.files.iter().map(|f| f.path.as_str()));
        paths.any(|p| archive_name(p, &[]).is_ok_and(|name| name == wanted))
    }
}

/// What was set, for a caller that shows or checks the options.  The
/// values are those the setters stored (tags completed with `:latest`,
/// ports normalised to `PORT/PROTO`, ...).
impl ImageOptions {
    /// The store directory.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The store database references are read from, if one was set.
    pub fn database(&self) -> Option<&Path> {
        self.database.as_deref()
    }

    /// The image's `name:tag` references, in the order they were added.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The entry point: the program, then its arguments (empty: none).
    pub fn entry_point(&self) -> &[String] {
        &self.entry_point
    }

    /// The command's arguments (the config's `Cmd`).
    pub fn cmd(&self) -> &[String] {
        &self.cmd
    }

    /// The environment, as `NAME=VALUE` strings, one per name.
    pub fn env(&self) -> &[String] {
        &self.env
    }

    /// The working directory, if one was set.
    pub fn working_dir(&self) -> Option<&str> {
        self.working_dir.as_deref()
    }

    /// The user the container runs as, if one was set.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The labels, by key.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The exposed ports, as `PORT/PROTO`.
    pub fn exposed_ports(&self) -> &BTreeSet<String> {
        &self.exposed_ports
    }

    /// The volumes' paths.
    pub fn volumes(&self) -> &BTreeSet<String> {
        &self.volumes
    }

    /// The symlinks added to the image.
    pub fn symlinks(&self) -> &[ExtraSymlink] {
        &self.symlinks
    }

    /// The directories added to the image.
    pub fn directories(&self) -> &[ExtraDirectory] {
        &self.directories
    }

    /// The files copied into the image.
    pub fn files(&self) -> &[ExtraFile] {
        &self.files
    }

    /// Whether the image gets the closure's store database.
    pub fn localstatedir(&self) -> bool {
        self.localstatedir
    }

    /// The `(old, new)` prefix rewrites of archive names, in order.
    pub fn transformations(&self) -> &[(String, String)] {
        &self.transformations
    }

    /// The most layers the image may have; `None`: one layer.
    pub fn max_layers(&self) -> Option<u32> {
        self.max_layers
    }

    /// Docker's name of the image's architecture (`amd64`, `arm64`, ...).
    pub fn architecture(&self) -> &str {
        self.platform.architecture
    }

    /// The platform of the image (architecture and variant).
    pub fn platform(&self) -> &'static Platform {
        self.platform
    }

    /// The creation time set, in seconds since the epoch; `None`: see
    /// [`effective_creation_time`](Self::effective_creation_time).
    pub fn creation_time(&self) -> Option<i64> {
        self.creation_time
    }

    /// The compression of the archive.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The compression level set; `None`: the compressor's default.
    pub fn compression_level(&self) -> Option<i32> {
        self.compression_level
    }

    /// The number of worker threads set; 0 means one per core.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_map_to_docker_architectures() {
        let mut o = ImageOptions::new();
        for (system, arch) in [
            ("x86_64-linux", "amd64"),
            ("i686-linux", "386"),
            ("armhf-linux", "arm"),
            ("aarch64-linux-gnu", "arm64"),
            ("mips64el-linux", "mips64le"),
            ("riscv64-linux", "riscv64"),
        ] {
            o.set_system(system).unwrap();
            assert_eq!(o.architecture(), arch, "{system}");
        }
        let err = o.set_system("sparc-linux").unwrap_err();
        assert!(err.message.contains("sparc-linux"));
    }

    #[test]
    fn ports_are_normalised_and_checked() {
        let mut o = ImageOptions::new();
        o.add_exposed_port("8080").unwrap();
        o.add_exposed_port("53/udp").unwrap();
        assert_eq!(o.exposed_ports.iter().cloned().collect::<Vec<_>>(), ["53/udp", "8080/tcp"]);
        // "+80": a sign Rust's parser takes but no engine does (found by tests/props_parsers.rs).
        for bad in ["0", "65536", "http", "80/icmp", "080", "", "+80", "+80/udp"] {
            assert!(o.add_exposed_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_layers_bounds() {
        let mut o = ImageOptions::new();
        assert!(o.set_max_layers(0).is_err());
        assert!(o.set_max_layers(126).is_err());
        o.set_max_layers(125).unwrap();
        assert_eq!(o.max_layers, Some(125));
    }

    #[test]
    fn env_needs_a_name() {
        let mut o = ImageOptions::new();
        assert!(o.add_env("=x").is_err());
        assert!(o.add_env("PATH").is_err());
        o.add_env("A=1").unwrap();
        o.add_env("A=2").unwrap();
        assert_eq!(o.env, ["A=2"]);
    }

    #[test]
    fn store_dir_database_time_threads_are_checked() {
        let mut o = ImageOptions::new();
        let err = o.set_store_dir(Path::new("gnu/store")).unwrap_err();
        assert!(err.message.contains("'gnu/store'"), "{}", err.message);
        o.set_store_dir(Path::new("/tmp/x/gnu/store")).unwrap();
        assert_eq!(o.store_dir, Path::new("/tmp/x/gnu/store"));
        assert!(o.set_database(Path::new("")).is_err());
        o.set_database(Path::new("db.sqlite")).unwrap();
        assert!(o.set_creation_time(253_402_300_800).is_err());
        o.set_creation_time(-1).unwrap();
        assert_eq!(o.creation_time, Some(-1));
        assert!(o.set_threads(MAX_THREADS + 1).is_err());
        o.set_threads(2).unwrap();
        assert_eq!(o.worker_threads(), 2);
    }

    #[test]
    fn compression_levels_are_checked() {
        let mut o = ImageOptions::new();
        assert!(o.set_compression(Compression::Gzip, Some(10)).is_err());
        assert!(o.set_compression(Compression::None, Some(3)).is_err());
        o.set_compression(Compression::Zstd, Some(19)).unwrap();
        assert_eq!(o.effective_compression_level(), 19);
    }

    #[test]
    fn source_date_epoch_is_checked_as_the_option_is() {
        for good in ["0", "1", "1700000000", "-62167219200", "253402300799"] {
            assert_eq!(source_date_epoch(good).unwrap(), good.parse::<i64>().unwrap(), "{good}");
        }
        for (bad, why) in [
            ("253402300800", "outside the years 0000 to 9999"),
            ("-62167219201", "outside the years 0000 to 9999"),
            ("99999999999999999999", "outside the years 0000 to 9999"),
            ("1.5", "not an integer"),
            ("1e9", "not an integer"),
            (" 1", "not an integer"),
            ("+1", "not an integer"),
            ("-", "not an integer"),
            ("now", "not an integer"),
            ("1700000000\n", "not an integer"),
        ] {
            let err = source_date_epoch(bad).unwrap_err();
            assert_eq!(err.kind, crate::error::ErrorKind::InvalidArgument);
            assert!(err.message.starts_with(&format!("SOURCE_DATE_EPOCH '{bad}': ")), "{}", err.message);
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn the_creation_time_option_wins_over_source_date_epoch() {
        // The environment is the process's: only read it here, never set it.
        let mut o = ImageOptions::new();
        o.set_creation_time(42).unwrap();
        assert_eq!(o.effective_creation_time().unwrap(), 42);
    }

    #[test]
    fn nix_store_dir_is_checked_as_the_option_is() {
        let err = check_store_dir_variable(PathBuf::from("gnu/store")).unwrap_err();
        assert_eq!(err.kind, crate::error::ErrorKind::InvalidArgument);
        assert!(err.message.starts_with("NIX_STORE_DIR 'gnu/store': not an absolute path"), "{}", err.message);
        assert_eq!(check_store_dir_variable(PathBuf::from("/x/gnu/store")).unwrap(), Path::new("/x/gnu/store"));
    }
}
