//! guix-docker-native: turns a store item and its closure into a Docker
//! image archive that `docker load`, podman and skopeo read.
//!
//! A Rust program fills an [`ImageOptions`] through its setters (each
//! checks its value and names it in the [`Error`]) and calls
//! [`build_docker_image`]:
//!
//! ```no_run
//! use guix_docker_native::{build_docker_image, Compression, ImageOptions, Output};
//! use std::path::{Path, PathBuf};
//!
//! let mut options = ImageOptions::new();
//! options.set_database(Path::new("/var/guix/db/db.sqlite"))?;
//! options.add_tag("hello:2.12")?;
//! options.set_entry_point("bin/hello")?;
//! options.set_compression(Compression::Gzip, None)?;
//! let items = [PathBuf::from("/gnu/store/ri9cdb1m52y0wzqf8crjh5nacvrrzaz0-hello-2.12.1")];
//! build_docker_image(&items, None, &Output::Path("hello.tar.gz".into()), &options)?;
//! # Ok::<(), guix_docker_native::Error>(())
//! ```
//!
//! [`store`], [`closure`] and [`reference`](mod@reference) hold what a caller may want
//! before a build: store items named and checked, a closure computed or read
//! from a file, the tag an item's name gives.  The C ABI (see
//! `include/guix_docker_native.h`) wraps the same API; it is not a Rust
//! interface and has no Rust items here.

#![warn(missing_docs)]

pub mod closure;
pub mod reference;
pub mod store;

mod archive;
mod cache;
mod compress;
mod config;
mod destination;
mod error;
// The C ABI: its functions are exported by `#[no_mangle]` and its result
// codes written into the header by cbindgen (build.rs); no Rust caller
// uses them, which is no sign of dead code.
#[allow(dead_code)]
mod ffi;
mod image;
mod layers;
mod localstate;
mod manifest;
mod oci;
mod options;
mod output;
mod sbom;
mod registry;
mod tree;

/// The tar headers as the layers are written.  Not part of the API: public
/// only for the property tests of `tests/props_tar.rs`, which check that a
/// header's measured length is the length written.
#[doc(hidden)]
pub mod tarfmt;

pub use closure::Closure;
pub use error::{Error, ErrorKind, Result};
pub use destination::{parse_destination, Destination, RegistryReference};
pub use registry::{LayerReport, LayerState, ManifestFormat, PushProgressFn, PushReport};
pub use image::{build_docker_image, build_image, build_platform_images, default_output_name, PlatformItem};
pub use output::Output;
pub use sbom::SbomFormat;
pub use options::{
    default_store_dir, store_dir_from_environment, Compression, ExtraDirectory, ExtraFile, ExtraSymlink,
    platform_of_system, ImageOptions, Platform, Progress, ProgressFn, CREATION_TIME_RANGE, PLATFORMS, DEFAULT_CREATION_TIME, MAX_LAYERS_LIMIT, MAX_THREADS,
};
pub use output::{descriptor_of, is_standard_output, refuse_inputs, Input};
pub use store::{StoreDir, StoreItem};
