//! Where an image goes, in the words skopeo and podman use for their
//! transports.  One parser for the CLI's `-o` (and, later, the C ABI and
//! Guile):
//!
//! - `oci:DIR[:REF]`: an OCI image layout directory, added to;
//! - `oci-archive:FILE[:REF]`: the same layout as one tar file;
//! - `docker-archive:FILE`, a plain path, or `-` (standard output): the
//!   docker-archive `docker load` reads, as before.
//!
//! As with skopeo, `DIR` and `FILE` end at the first `:` after the
//! transport; what follows is `REF`, the name the image gets in the
//! layout's index (default: the first tag).  A plain path is never taken
//! for a transport unless it starts with the name of one, followed by a
//! colon: `./docker:x.tar` writes the file `docker:x.tar`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::output::Output;

/// Where an image is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The docker-archive (a file, or standard output).
    DockerArchive(Output),
    /// An OCI image layout directory.
    OciLayout {
        /// The layout's directory (created when missing).
        dir: PathBuf,
        /// The index entry's ref name; `None`: the first tag.
        reference: Option<String>,
    },
    /// An OCI image layout in one tar file.
    OciArchive {
        /// The tar file; `-` is standard output (a pipe or device gets
        /// each blob spooled to a temporary file first).
        file: PathBuf,
        /// The index entry's ref name; `None`: the first tag.
        reference: Option<String>,
    },
}

/// The transports this program writes, as `--help` lists them.
pub const TRANSPORTS: &str = "oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE, a plain FILE or -";

/// Transports of skopeo and podman (containers/image) that this program
/// does not write: named in the error rather than taken for file names.
const OTHER_TRANSPORTS: &[&str] =
    &["docker", "docker-daemon", "dir", "containers-storage", "ostree", "sif", "tarball", "atomic"];

impl Destination {
    /// The reference asked for (`oci:DIR:REF`), if any.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Destination::DockerArchive(_) => None,
            Destination::OciLayout { reference, .. } | Destination::OciArchive { reference, .. } => reference.as_deref(),
        }
    }

    /// Whether this is an OCI destination (a layout or its tar).
    pub fn is_oci(&self) -> bool {
        !matches!(self, Destination::DockerArchive(_))
    }

    /// The path written (the layout directory, the archive file), or the
    /// docker-archive's output.
    pub fn output(&self) -> Output {
        match self {
            Destination::DockerArchive(output) => output.clone(),
            Destination::OciArchive { file, .. } if file.as_os_str() == "-" => Output::Stdout,
            Destination::OciLayout { dir: path, .. } | Destination::OciArchive { file: path, .. } => Output::Path(path.clone()),
        }
    }
}

/// Parses a destination as `-o` takes it.
pub fn parse_destination(text: &OsStr) -> Result<Destination> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(Error::invalid_argument(format!("output '': empty; give {TRANSPORTS}")));
    }
    if bytes == b"-" {
        return Ok(Destination::DockerArchive(Output::Stdout));
    }
    let shown = text.to_string_lossy();
    let Some(colon) = bytes.iter().position(|&b| b == b':') else {
        return Ok(Destination::DockerArchive(Output::Path(PathBuf::from(text))));
    };
    let (transport, rest) = (&bytes[..colon], &bytes[colon + 1..]);
    let rest_os = OsStr::from_bytes(rest);
    match transport {
        b"docker-archive" => {
            if rest.is_empty() {
                return Err(Error::invalid_argument(format!("output '{shown}': docker-archive: needs a file name")));
            }
            if rest.contains(&b':') {
                return Err(Error::invalid_argument(format!(
                    "output '{shown}': docker-archive:FILE takes no ':REF' (the image's names come from -t NAME:TAG); \
                     a file name with a colon is given as a plain path"
                )));
            }
            if rest == b"-" {
                return Ok(Destination::DockerArchive(Output::Stdout));
            }
            Ok(Destination::DockerArchive(Output::Path(PathBuf::from(rest_os))))
        }
        b"oci" | b"oci-archive" => {
            let is_layout = transport == b"oci";
            let what = if is_layout { "oci:DIR[:REF]" } else { "oci-archive:FILE[:REF]" };
            let (path, reference) = match rest.iter().position(|&b| b == b':') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if path.is_empty() {
                let thing = if is_layout { "directory" } else { "file" };
                return Err(Error::invalid_argument(format!("output '{shown}': {what} needs a {thing} name")));
            }
            if is_layout && path == b"-" {
                return Err(Error::invalid_argument(format!(
                    "output '{shown}': {what} is not written to standard output; give a directory \
                     (or oci-archive:- for the layout as one tar on standard output)"
                )));
            }
            let reference = match reference {
                None => None,
                Some(r) => {
                    let r = std::str::from_utf8(r)
                        .map_err(|_| Error::invalid_argument(format!("output '{shown}': the reference is not UTF-8")))?;
                    check_reference(r).map_err(|why| Error::invalid_argument(format!("output '{shown}': reference '{r}': {why}")))?;
                    Some(r.to_string())
                }
            };
            let path = PathBuf::from(OsStr::from_bytes(path));
            Ok(if is_layout {
                Destination::OciLayout { dir: path, reference }
            } else {
                Destination::OciArchive { file: path, reference }
            })
        }
        _ => {
            let name = String::from_utf8_lossy(transport);
            // `docker://host/name`, `http://...`: a URL, not a file.
            let url = rest.starts_with(b"//");
            if OTHER_TRANSPORTS.contains(&name.as_ref()) || url {
                let hint = if url { String::new() } else { format!(" (a file of that name: ./{shown})") };
                return Err(Error::invalid_argument(format!(
                    "output '{shown}': unknown transport '{name}'; the destinations written are {TRANSPORTS}{hint}"
                )));
            }
            Ok(Destination::DockerArchive(Output::Path(PathBuf::from(text))))
        }
    }
}

/// Checks a reference against the OCI image layout's grammar for
/// `org.opencontainers.image.ref.name` (which skopeo enforces):
/// components of `[A-Za-z0-9]+` joined by `-`, `.`, `_`, `:`, `@`, `+` or
/// `--`, the components separated by `/`.
pub fn check_reference(reference: &str) -> std::result::Result<(), String> {
    if reference.is_empty() {
        return Err("empty; leave out the ':' for the default (the first tag)".into());
    }
    for component in reference.split('/') {
        let b = component.as_bytes();
        if b.is_empty() {
            return Err("an empty component between '/'".into());
        }
        if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
            return Err(format!("component '{component}' must start and end with a letter or digit"));
        }
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_alphanumeric() {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let sep = &component[start..i];
            if !(sep == "--" || (sep.len() == 1 && "-._:@+".contains(sep))) {
                return Err(format!("'{sep}' in '{component}': letters and digits may be joined by one of - . _ : @ + or by --"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Destination> {
        parse_destination(OsStr::new(s))
    }

    fn layout(dir: &str, reference: Option<&str>) -> Destination {
        Destination::OciLayout { dir: dir.into(), reference: reference.map(String::from) }
    }

    #[test]
    fn plain_paths_and_dash_stay_docker_archives() {
        assert_eq!(parse("-").unwrap(), Destination::DockerArchive(Output::Stdout));
        assert_eq!(parse("a.tar").unwrap(), Destination::DockerArchive(Output::Path("a.tar".into())));
        assert_eq!(parse("hello:2.12.tar").unwrap(), Destination::DockerArchive(Output::Path("hello:2.12.tar".into())));
        assert_eq!(parse("/x/oci:y").unwrap(), Destination::DockerArchive(Output::Path("/x/oci:y".into())));
        assert_eq!(parse("./docker:x").unwrap(), Destination::DockerArchive(Output::Path("./docker:x".into())));
        assert_eq!(parse("docker-archive:a.tar").unwrap(), Destination::DockerArchive(Output::Path("a.tar".into())));
        assert_eq!(parse("docker-archive:-").unwrap(), Destination::DockerArchive(Output::Stdout));
    }

    #[test]
    fn oci_destinations_split_at_the_first_colon() {
        assert_eq!(parse("oci:dir").unwrap(), layout("dir", None));
        assert_eq!(parse("oci:/tmp/l:hello:2.12").unwrap(), layout("/tmp/l", Some("hello:2.12")));
        assert_eq!(parse("oci:l:localhost:5000/a/b:1").unwrap(), layout("l", Some("localhost:5000/a/b:1")));
        assert_eq!(
            parse("oci-archive:x.tar:latest").unwrap(),
            Destination::OciArchive { file: "x.tar".into(), reference: Some("latest".into()) }
        );
        assert_eq!(parse("oci-archive:x.tar").unwrap().reference(), None);
        assert_eq!(parse("oci-archive:-").unwrap().output(), Output::Stdout);
        assert_eq!(parse("oci-archive:-:hello:1").unwrap().reference(), Some("hello:1"));
    }

    fn refused(s: &str, needle: &str) {
        let e = parse(s).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::InvalidArgument);
        assert!(e.message.contains(needle), "{s}: {}", e.message);
        assert!(e.message.contains(&format!("output '{s}'")) || s.is_empty(), "{s}: {}", e.message);
    }

    #[test]
    fn bad_destinations_are_named() {
        refused("", "empty");
        refused("docker://hello", "unknown transport 'docker'");
        refused("containers-storage:hello", "unknown transport 'containers-storage'");
        refused("dir:/tmp/x", "unknown transport 'dir'");
        refused("oci:", "needs a directory name");
        refused("oci::ref", "needs a directory name");
        refused("oci-archive:", "needs a file name");
        refused("oci:-", "not written to standard output");
        refused("oci:d:", "empty");
        refused("oci:d:Bad Ref", "' ' in 'Bad Ref'");
        refused("oci:d:a//b", "empty component");
        refused("oci:d:-a", "must start and end");
        refused("oci:d:a...b", "'...'");
        refused("docker-archive:", "needs a file name");
        refused("docker-archive:a.tar:tag", "takes no ':REF'");
    }

    #[test]
    fn references_follow_the_layout_grammar() {
        for ok in ["latest", "hello:2.12", "a--b", "a+b@c", "docker.io/library/hello:latest", "A_1.x"] {
            check_reference(ok).unwrap();
        }
        for bad in ["", "a b", "a/", "/a", "a__b", "é"] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
    }
}
