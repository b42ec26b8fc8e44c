//! Where an image goes, in the words skopeo and podman use for their
//! transports.  One parser for the CLI's `-o` (and, later, the C ABI and
//! Guile):
//!
//! - `oci:DIR[:REF]`: an OCI image layout directory, added to;
//! - `oci-archive:FILE[:REF]`: the same layout as one tar file;
//! - `docker-archive:FILE`, a plain path, or `-` (standard output): the
//!   docker-archive `docker load` reads, as before;
//! - `docker://HOST[:PORT]/REPOSITORY[:TAG]`: pushed to a registry (see
//!   [`crate::registry`]).
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
    /// A repository of a registry, pushed to.
    Registry(RegistryReference),
}

/// `docker://HOST[:PORT]/REPOSITORY[:TAG]`, as skopeo writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryReference {
    /// The registry as named (`localhost:5000`, `docker.io`), for messages
    /// and the credentials' lookup.
    pub registry: String,
    /// The repository (`app`, `library/hello`).
    pub repository: String,
    /// The tag in the destination, if any (`-t` tags are pushed too).
    pub tag: Option<String>,
}

impl RegistryReference {
    /// The host (and port) spoken to: Docker Hub's API is not at `docker.io`.
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl std::fmt::Display for RegistryReference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "docker://{}/{}", self.registry, self.repository)?;
        match &self.tag {
            Some(tag) => write!(f, ":{tag}"),
            None => Ok(()),
        }
    }
}

/// The transports this program writes, as `--help` lists them.
pub const TRANSPORTS: &str =
    "oci:DIR[:REF], oci-archive:FILE[:REF], docker://HOST[:PORT]/REPOSITORY[:TAG], docker-archive:FILE, a plain FILE or -";

/// Transports of skopeo and podman (containers/image) that this program
/// does not write: named in the error rather than taken for file names.
const OTHER_TRANSPORTS: &[&str] =
    &["docker", "docker-daemon", "dir", "containers-storage", "ostree", "sif", "tarball", "atomic"];

impl Destination {
    /// The reference asked for (`oci:DIR:REF`), if any.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Destination::DockerArchive(_) | Destination::Registry(_) => None,
            Destination::OciLayout { reference, .. } | Destination::OciArchive { reference, .. } => reference.as_deref(),
        }
    }

    /// Whether this is an OCI destination (a layout or its tar).
    pub fn is_oci(&self) -> bool {
        matches!(self, Destination::OciLayout { .. } | Destination::OciArchive { .. })
    }

    /// The path written (the layout directory, the archive file), or the
    /// docker-archive's output; none for a registry.
    pub fn output(&self) -> Option<Output> {
        match self {
            Destination::DockerArchive(output) => Some(output.clone()),
            Destination::OciArchive { file, .. } if file.as_os_str() == "-" => Some(Output::Stdout),
            Destination::OciLayout { dir: path, .. } | Destination::OciArchive { file: path, .. } => Some(Output::Path(path.clone())),
            Destination::Registry(_) => None,
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
        b"docker" if rest.starts_with(b"//") => parse_registry(&shown, &rest[2..]).map(Destination::Registry),
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

/// Parses `HOST[:PORT]/REPOSITORY[:TAG]` (after `docker://`), with the
/// rules of Docker's reference grammar: a first component with a `.` or a
/// `:`, or `localhost`, is the registry; otherwise the registry is
/// `docker.io` (and a one-component name is under `library/`), as skopeo
/// resolves it.
fn parse_registry(shown: &str, rest: &[u8]) -> Result<RegistryReference> {
    let bad = |why: String| Error::invalid_argument(format!("output '{shown}': {why}"));
    let text = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8".into()))?;
    if text.is_empty() {
        return Err(bad("needs HOST[:PORT]/REPOSITORY[:TAG] after docker://".into()));
    }
    if text.contains('@') {
        return Err(bad("a digest (@sha256:...) names a manifest that exists; a push gives a tag, or none".into()));
    }
    let (name, tag) = crate::reference::split_tag(text);
    if let Some(tag) = tag {
        if !crate::reference::valid_tag_part(tag) {
            return Err(bad(format!(
                "tag '{tag}': up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )));
        }
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            if !crate::reference::valid_domain(first) {
                return Err(bad(format!("registry '{first}': not a host name or address with an optional :PORT")));
            }
            (first.to_string(), path.to_string())
        }
        Some(_) => ("docker.io".to_string(), name.to_string()),
        None => ("docker.io".to_string(), format!("library/{name}")),
    };
    if repository.is_empty() {
        return Err(bad(format!("no repository after the registry '{registry}'")));
    }
    for component in repository.split('/') {
        if !crate::reference::valid_path_component(component) {
            return Err(bad(format!(
                "repository '{repository}': component '{component}' must be lowercase letters and digits, \
                 joined by '.', '_', '__' or dashes"
            )));
        }
    }
    if repository.len() + registry.len() + 1 > 255 {
        return Err(bad("the name is longer than 255 characters".into()));
    }
    Ok(RegistryReference { registry, repository, tag: tag.map(String::from) })
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
        assert_eq!(parse("oci-archive:-").unwrap().output(), Some(Output::Stdout));
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
        refused("docker:hello", "unknown transport 'docker'");
        refused("docker://", "needs HOST");
        refused("docker://localhost:5000/", "no repository");
        refused("docker://localhost:5000/App", "component 'App'");
        refused("docker://localhost:5000/a//b", "component ''");
        refused("docker://localhost:5000/a:-x", "tag '-x'");
        refused("docker://localhost:5000/a@sha256:00", "digest");
        refused("docker://local_host:5000/a", "registry 'local_host:5000'");
        refused("docker://bad_host.x/a", "registry 'bad_host.x'");
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

    fn registry(registry: &str, repository: &str, tag: Option<&str>) -> Destination {
        Destination::Registry(RegistryReference { registry: registry.into(), repository: repository.into(), tag: tag.map(String::from) })
    }

    #[test]
    fn registry_destinations_as_skopeo_writes_them() {
        assert_eq!(parse("docker://localhost:5000/app").unwrap(), registry("localhost:5000", "app", None));
        assert_eq!(parse("docker://localhost:5000/a/b:1.0").unwrap(), registry("localhost:5000", "a/b", Some("1.0")));
        assert_eq!(parse("docker://127.0.0.1:5000/x:y").unwrap(), registry("127.0.0.1:5000", "x", Some("y")));
        assert_eq!(parse("docker://quay.io/me/app").unwrap(), registry("quay.io", "me/app", None));
        assert_eq!(parse("docker://hello:2").unwrap(), registry("docker.io", "library/hello", Some("2")));
        assert_eq!(parse("docker://me/app").unwrap(), registry("docker.io", "me/app", None));
        let Destination::Registry(r) = parse("docker://hello").unwrap() else { panic!() };
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.to_string(), "docker://docker.io/library/hello");
        assert_eq!(parse("docker://localhost:5000/app").unwrap().output(), None);
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
