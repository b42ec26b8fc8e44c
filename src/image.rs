//! The whole job: items and options in, an image archive out.

use std::path::PathBuf;

use crate::error::Result;
use crate::options::ImageOptions;
use crate::store::StoreItem;

/// Where the archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file, written beside its final name and renamed at the end.
    Path(PathBuf),
    /// Standard output, streamed.
    Stdout,
}

/// Builds the image of `items` (the first is the main item: a relative entry
/// point or symlink target is relative to it).
///
/// `closure`: the closure as the caller knows it (checked), or `None` to
/// compute it (from `options.database`, else by scanning the store).
/// On error nothing is left at the output path.
pub fn build_docker_image(
    items: &[PathBuf],
    closure: Option<&[PathBuf]>,
    output: &Output,
    options: &ImageOptions,
) -> Result<()> {
    todo!("{items:?} {closure:?} {output:?} {}", options.architecture)
}

/// The file name the CLI writes when no `-o` is given:
/// `<name>-docker-image.tar` plus the compression's suffix.
pub fn default_output_name(item: &StoreItem, options: &ImageOptions) -> String {
    format!("{}-docker-image.tar{}", item.name(), options.compression.suffix())
}
