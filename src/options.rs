//! What a caller can ask of an image, validated where it is set.
//!
//! The CLI, the C ABI and (through it) Guile all fill an [`ImageOptions`]
//! with the same setters, so a bad value gets the same error everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::reference::validate_tag;

/// Compression applied to the whole archive, as `guix pack -C` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
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
    pub link: String,
    pub target: String,
}

/// A directory added to the image (Guix's `(directory "/tmp" uid gid mode)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraDirectory {
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// A regular file copied into the image from the host (a store database).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    pub path: String,
    pub source: PathBuf,
}

/// How far a build has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub items_done: u64,
    pub items_total: u64,
}

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
    pub store_dir: PathBuf,
    /// A store database to read references from.
    pub database: Option<PathBuf>,
    /// `name:tag` references, validated and complete (`:latest` added).
    pub tags: Vec<String>,
    /// Program and arguments; a relative program is relative to the first item.
    pub entry_point: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=VALUE` strings.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Normalised `PORT/PROTO` keys.
    pub exposed_ports: BTreeSet<String>,
    pub volumes: BTreeSet<String>,
    pub symlinks: Vec<ExtraSymlink>,
    pub directories: Vec<ExtraDirectory>,
    pub files: Vec<ExtraFile>,
    /// Put the store database of the closure in the image, as
    /// `guix pack --localstatedir` (see [`crate::localstate`]).
    pub localstatedir: bool,
    /// `(old, new)` prefix rewrites of archive names.
    pub transformations: Vec<(String, String)>,
    /// `None`: one layer.  `Some(n)`: at most n layers.
    pub max_layers: Option<u32>,
    /// Docker's architecture name (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Seconds since the epoch; `None`: `SOURCE_DATE_EPOCH`, else 1.
    pub creation_time: Option<i64>,
    pub compression: Compression,
    /// `None`: the compressor's default level.
    pub compression_level: Option<i32>,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    pub progress: Option<ProgressFn>,
    /// Set from another thread (or a signal handler) to stop the build.
    pub cancel: Option<Arc<AtomicBool>>,
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
            architecture: host_architecture().to_string(),
            creation_time: None,
            compression: Compression::None,
            compression_level: None,
            threads: 0,
            progress: None,
            cancel: None,
        }
    }
}

/// `$NIX_STORE_DIR` when set and not empty, else `/gnu/store`, as Guix decides.
pub fn default_store_dir() -> PathBuf {
    match std::env::var_os("NIX_STORE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/gnu/store"),
    }
}

fn host_architecture() -> &'static str {
    architecture_of_cpu(std::env::consts::ARCH).unwrap_or("amd64")
}

/// Guix's mapping from a CPU name to Docker's architecture name.
fn architecture_of_cpu(cpu: &str) -> Option<&'static str> {
    Some(match cpu {
        "x86_64" => "amd64",
        "i686" | "i586" | "i486" | "i386" | "x86" => "386",
        "aarch64" => "arm64",
        "mips64el" | "mips64" => "mips64le",
        "riscv64" => "riscv64",
        _ if cpu.starts_with("arm") => "arm",
        _ => return None,
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
        let cpu = system.split('-').next().unwrap_or("");
        match architecture_of_cpu(cpu) {
            Some(arch) => {
                self.architecture = arch.to_string();
                Ok(())
            }
            None => Err(Error::invalid_argument(format!(
                "system '{system}': unsupported; expected x86_64, i686, arm, aarch64, mips64el or riscv64"
            ))),
        }
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

    pub fn set_working_dir(&mut self, dir: &str) -> Result<()> {
        require_absolute("working directory", dir)?;
        require_no_nul("working directory", dir)?;
        self.working_dir = Some(dir.to_string());
        Ok(())
    }

    pub fn set_user(&mut self, user: &str) -> Result<()> {
        if user.is_empty() {
            return Err(Error::invalid_argument("user '': empty"));
        }
        require_no_nul("user", user)?;
        self.user = Some(user.to_string());
        Ok(())
    }

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
        let valid_number = number.parse::<u16>().map(|n| n > 0).unwrap_or(false)
            && !number.starts_with('0');
        if !valid_number || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(Error::invalid_argument(format!(
                "exposed port '{port}': expected PORT or PORT/tcp, PORT/udp, PORT/sctp with PORT in 1..65535"
            )));
        }
        self.exposed_ports.insert(format!("{number}/{proto}"));
        Ok(())
    }

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

    /// Rewrites archive names starting with `old` to start with `new`.
    pub fn add_transformation(&mut self, old: &str, new: &str) -> Result<()> {
        require_absolute("transformation source", old)?;
        require_absolute("transformation target", new)?;
        self.transformations.push((old.trim_end_matches('/').to_string(), new.trim_end_matches('/').to_string()));
        Ok(())
    }

    pub fn set_max_layers(&mut self, n: u32) -> Result<()> {
        if n == 0 || n > MAX_LAYERS_LIMIT {
            return Err(Error::invalid_argument(format!(
                "max-layers {n}: must be between 1 and {MAX_LAYERS_LIMIT} (the Docker engine's limit)"
            )));
        }
        self.max_layers = Some(n);
        Ok(())
    }

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
    /// else 1970-01-01T00:00:01Z.
    pub fn effective_creation_time(&self) -> Result<i64> {
        if let Some(t) = self.creation_time {
            return Ok(t);
        }
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(value) if !value.is_empty() => value.trim().parse::<i64>().map_err(|_| {
                Error::invalid_argument(format!(
                    "SOURCE_DATE_EPOCH '{value}': not a number of seconds"
                ))
            }),
            _ => Ok(DEFAULT_CREATION_TIME),
        }
    }

    /// The compression level to use.
    pub fn effective_compression_level(&self) -> i32 {
        self.compression_level.unwrap_or(self.compression.levels().2)
    }

    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        }
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
            assert_eq!(o.architecture, arch, "{system}");
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
        for bad in ["0", "65536", "http", "80/icmp", "080", ""] {
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
}
