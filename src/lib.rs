//! guix-docker-native: turns a store item and its closure into a Docker
//! image archive that `docker load`, podman and skopeo read.
//!
//! The Rust API is [`build_docker_image`] with an [`ImageOptions`]; the C ABI
//! in [`ffi`] wraps it (see `include/guix_docker_native.h`).

pub mod archive;
pub mod closure;
pub mod compress;
pub mod config;
pub mod destination;
pub mod error;
pub mod ffi;
pub mod image;
pub mod layers;
pub mod localstate;
pub mod manifest;
pub mod oci;
pub mod options;
pub mod output;
pub mod reference;
pub mod store;
pub mod tarfmt;
pub mod tree;

pub use error::{Error, ErrorKind, Result};
pub use destination::{parse_destination, Destination};
pub use image::{build_docker_image, build_image, default_output_name};
pub use output::Output;
pub use options::{Compression, ImageOptions, Progress};
