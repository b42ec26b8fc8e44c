//! What a caller asks of the layer cache, set through [`ImageOptions`]'
//! setters (the CLI's `--cache-dir` and `--no-cache`, the C ABI's
//! `gdn_options_set_cache_dir` and `gdn_options_set_cache`, Guile's
//! `#:cache-dir` and `#:cache?`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::options::ImageOptions;

/// The cache part of the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// Use the cache (the default).
    pub enabled: bool,
    /// The cache directory; `None`: [`super::default_dir`].
    pub dir: Option<PathBuf>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions { enabled: true, dir: None }
    }
}

impl ImageOptions {
    /// Uses (`true`, the default) or leaves alone (`false`, `--no-cache`)
    /// the layer cache.
    pub fn set_cache(&mut self, enabled: bool) {
        self.cache.enabled = enabled;
    }

    /// Keeps the layer cache in `dir` (made when first written) rather
    /// than `$XDG_CACHE_HOME/guix-docker-native` or
    /// `~/.cache/guix-docker-native`.  A relative name is taken from the
    /// current directory now.
    pub fn set_cache_dir(&mut self, dir: &Path) -> Result<()> {
        if dir.as_os_str().is_empty() {
            return Err(Error::invalid_argument("cache directory '': empty directory name"));
        }
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()
                .map_err(|e| Error::invalid_argument(format!("cache directory '{}': {e}", dir.display())))?
                .join(dir)
        };
        self.cache.dir = Some(dir);
        Ok(())
    }

    /// Keeps the layer cache in the default directory again.
    pub fn reset_cache_dir(&mut self) {
        self.cache.dir = None;
    }

    /// Whether the layer cache is used.
    pub fn cache_enabled(&self) -> bool {
        self.cache.enabled
    }

    /// The cache directory a build uses: the one set, else the default;
    /// `None` when the cache is off or no directory is known (no
    /// `$XDG_CACHE_HOME` or `$HOME`).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if !self.cache.enabled {
            return None;
        }
        self.cache.dir.clone().or_else(super::default_dir)
    }
}
