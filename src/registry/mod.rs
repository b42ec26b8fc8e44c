//! Pushing images to registries (the OCI distribution protocol).

pub(crate) mod credentials;
