//! What an SBOM says, whatever its format: one package per store item of
//! the image's closure (name and version as Guix splits them, store path,
//! NAR hash from the store database, references, licence), the extra
//! directories, symlinks and files the options add, and the image itself.
//! The writers ([`super::spdx`], [`super::cyclonedx`]) turn it into bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{nar_hash, name};
use crate::closure::database;
use crate::closure::Closure;
use crate::error::{Error, ErrorKind, Result};
use crate::layers::{archive_name, Unit};
use crate::options::ImageOptions;
use crate::store::StoreItem;

/// The contents of the image, as an SBOM lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// The image's name: its first tag (`hello:2.12`).
    pub image_name: String,
    /// Seconds since the epoch: the image's creation time.
    pub created: i64,
    /// The closure's items, sorted by path.
    pub items: Vec<Package>,
    /// The items given to the build (indices into `items`), the main one first.
    pub roots: Vec<usize>,
    /// What the options add, sorted by path.
    pub extras: Vec<Extra>,
    /// The store database the hashes come from, if any.
    pub database: Option<PathBuf>,
}

/// A store item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `/gnu/store/<hash>-<name>`.
    pub path: String,
    /// The 32 characters of the hash part.
    pub hash_part: String,
    /// The package name, as Guix splits the item's name (the whole name when
    /// that leaves nothing).
    pub name: String,
    pub version: Option<String>,
    /// The NAR hash, when a store database says it.
    pub nar_sha256: Option<[u8; 32]>,
    /// The items it references (indices, sorted, without itself); `None`
    /// when the references are not known (a closure given without a
    /// database).
    pub depends_on: Option<Vec<usize>>,
    /// An SPDX licence expression, when the caller gave one.
    pub license: Option<String>,
}

impl Package {
    /// `pkg:guix/NAME@VERSION` (no `@` without a version), percent-encoded
    /// as the purl specification asks.
    pub fn purl(&self) -> String {
        let mut purl = format!("pkg:guix/{}", percent_encode(&self.name));
        if let Some(v) = &self.version {
            purl.push('@');
            purl.push_str(&percent_encode(v));
        }
        purl
    }
}

/// What an extra is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraKind {
    Directory { mode: u32, uid: u32, gid: u32 },
    Symlink { target: String },
    /// A host file copied in, with the SHA-256 of its content.
    File { sha256: [u8; 32] },
    /// The store database `--localstatedir` puts in, registering the
    /// closure, with the SHA-256 of its content.
    StoreDatabase { sha256: [u8; 32] },
}

impl ExtraKind {
    /// The SHA-256 of a file's content.
    pub fn sha256(&self) -> Option<&[u8; 32]> {
        match self {
            ExtraKind::File { sha256 } | ExtraKind::StoreDatabase { sha256 } => Some(sha256),
            _ => None,
        }
    }
}

/// A directory, symlink or file the options add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    /// Its absolute path in the image (after the transformations).
    pub path: String,
    pub kind: ExtraKind,
}

impl Model {
    /// The model of an image of `closure` (whose `roots` were given,
    /// `roots[0]` the main item), named `image_name`, created at `created`,
    /// with the extras and licences of `options`, the units of the store
    /// database the image carries (`--localstatedir`: `image_database`, its
    /// directories, GC-root symlinks and the database file) and, when
    /// `options.database` is set, the NAR hashes it holds.
    ///
    /// Errors: a licence for an item outside the closure
    /// (`InvalidArgument`); a hash column that is not a SHA-256 in Guix's
    /// or Nix's form (`Database`, naming the item); an extra file that
    /// cannot be read (`Io`).
    pub fn new(
        roots: &[StoreItem],
        closure: &Closure,
        image_name: &str,
        created: i64,
        options: &ImageOptions,
        image_database: &[Unit],
    ) -> Result<Model> {
        for item in options.sbom.licenses.keys() {
            if !closure.items.iter().any(|i| i.path == *item) {
                return Err(Error::invalid_argument(format!(
                    "SBOM licence for {}: not an item of the image's closure",
                    item.display()
                )));
            }
        }
        let hashes = match &options.database {
            Some(file) => Some(nar_hashes(file, &closure.items)?),
            None => None,
        };
        let mut items = Vec::with_capacity(closure.items.len());
        for (i, item) in closure.items.iter().enumerate() {
            let (name, version) = name::name_and_version(item.name());
            items.push(Package {
                path: item.path.to_str().expect("store paths are UTF-8").to_string(),
                hash_part: item.hash().to_string(),
                name: if name.is_empty() { item.name() } else { name }.to_string(),
                version: version.map(str::to_string),
                nar_sha256: hashes.as_ref().map(|h| h[i]),
                depends_on: closure.references.as_ref().map(|r| r[i].clone()),
                license: options.sbom.licenses.get(&item.path).cloned(),
            });
        }
        let root_indices = roots.iter().map(|r| closure.index_of(r).expect("the roots are in the closure")).collect();
        Ok(Model {
            image_name: image_name.to_string(),
            created,
            items,
            roots: root_indices,
            extras: extras(&roots[0], options, image_database)?,
            database: options.database.clone(),
        })
    }
}

/// The NAR hash of each of `items`, from the database `file`.
fn nar_hashes(file: &Path, items: &[StoreItem]) -> Result<Vec<[u8; 32]>> {
    let registrations = database::registrations(file, items)?;
    items
        .iter()
        .zip(registrations)
        .map(|(item, registration)| {
            let (text, parsed) = match registration.hash {
                Some(text) => {
                    let parsed = nar_hash::parse(&text);
                    (text, parsed)
                }
                None => (String::new(), Err("the column does not hold text".to_string())),
            };
            parsed.map_err(|why| {
                Error::new(
                    ErrorKind::Database,
                    format!(
                        "store database {}: the NAR hash of {} ('{}') is malformed: {why}; the SBOM cannot give its checksum",
                        file.display(),
                        item.path.display(),
                        text.escape_debug()
                    ),
                )
            })
        })
        .collect()
}

/// The directories, symlinks and files `options` add, and the units of
/// the image's store database (`image_database`, named as in the image
/// already), sorted by path; a relative `-S` target is relative to `main`,
/// as in the image.
fn extras(main: &StoreItem, options: &ImageOptions, image_database: &[Unit]) -> Result<Vec<Extra>> {
    let t = &options.transformations;
    let path_in_image = |path: &str| -> Result<String> { Ok(format!("/{}", String::from_utf8_lossy(&archive_name(path, t)?))) };
    let mut extras = BTreeMap::new();
    for unit in image_database {
        let kind = match unit {
            Unit::Dir { mode, uid, gid, .. } => ExtraKind::Directory { mode: *mode, uid: *uid, gid: *gid },
            Unit::Symlink { target, .. } => ExtraKind::Symlink { target: String::from_utf8_lossy(target).into_owned() },
            Unit::File { source, .. } => ExtraKind::StoreDatabase { sha256: file_sha256(source)? },
            Unit::Item { .. } => continue,
        };
        extras.insert(format!("/{}", String::from_utf8_lossy(unit.name())), kind);
    }
    for d in &options.directories {
        let kind = ExtraKind::Directory { mode: d.mode, uid: d.uid, gid: d.gid };
        extras.insert(path_in_image(&d.path)?, kind);
    }
    for s in &options.symlinks {
        let target = if s.target.starts_with('/') {
            s.target.clone()
        } else {
            format!("{}/{}", main.path.display(), s.target)
        };
        extras.insert(path_in_image(&s.link)?, ExtraKind::Symlink { target });
    }
    for f in &options.files {
        extras.insert(path_in_image(&f.path)?, ExtraKind::File { sha256: file_sha256(&f.source)? });
    }
    Ok(extras.into_iter().map(|(path, kind)| Extra { path, kind }).collect())
}

fn file_sha256(source: &Path) -> Result<[u8; 32]> {
    let mut file = std::fs::File::open(source).map_err(|e| Error::io(source, "opening the extra file", &e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(source, "reading the extra file", &e))?;
    Ok(hasher.finalize().into())
}

/// Percent-encodes what the purl specification does not leave as it is
/// (anything but letters, digits and `.-_~`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, version: Option<&str>) -> Package {
        Package {
            path: String::new(),
            hash_part: String::new(),
            name: name.into(),
            version: version.map(Into::into),
            nar_sha256: None,
            depends_on: None,
            license: None,
        }
    }

    /// A store database holding `rows` (path, hash column).
    fn database(dir: &Path, rows: &[(&str, &str)]) -> PathBuf {
        let file = dir.join("db.sqlite");
        let db = rusqlite::Connection::open(&file).unwrap();
        db.execute_batch(crate::closure::STORE_DATABASE_SCHEMA).unwrap();
        for (path, hash) in rows {
            db.execute(
                "INSERT INTO ValidPaths (path, hash, registrationTime, narSize) VALUES (?1, ?2, 1, 1)",
                [path, hash],
            )
            .unwrap();
        }
        file
    }

    #[test]
    fn nar_hashes_in_guix_and_nix_forms_and_a_malformed_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::StoreDir::new(Path::new("/gnu/store")).unwrap();
        let a = "/gnu/store/00000000000000000000000000000000-a-1";
        let b = "/gnu/store/11111111111111111111111111111111-b-2";
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let items: Vec<StoreItem> = [a, b].iter().map(|p| store.parse_item(Path::new(p)).unwrap()).collect();
        let file = database(
            dir.path(),
            &[(a, &format!("sha256:{abc}")), (b, "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s")],
        );
        let hashes = nar_hashes(&file, &items).unwrap();
        assert_eq!(hex::encode(hashes[0]), abc);
        assert_eq!(hashes[0], hashes[1]);

        let dir = tempfile::tempdir().unwrap();
        let file = database(dir.path(), &[(a, &format!("sha256:{abc}")), (b, "sha256:xyz")]);
        let e = nar_hashes(&file, &items).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Database);
        assert!(e.message.contains(b) && e.message.contains("'sha256:xyz'") && e.message.contains("malformed"), "{}", e.message);

        let dir = tempfile::tempdir().unwrap();
        let file = database(dir.path(), &[(a, &format!("sha256:{abc}"))]);
        let e = nar_hashes(&file, &items).unwrap_err();
        assert!(e.message.contains(b) && e.message.contains("not a valid item"), "{}", e.message);
    }

    #[test]
    fn purls_are_percent_encoded() {
        assert_eq!(package("hello", Some("2.12.1")).purl(), "pkg:guix/hello@2.12.1");
        assert_eq!(package("profile", None).purl(), "pkg:guix/profile");
        assert_eq!(package("libstdc++", Some("1+2")).purl(), "pkg:guix/libstdc%2B%2B@1%2B2");
    }
}

/// A small model for the writers' tests: `main` referring to `lib`, an
/// extra file, and (with `known`) hashes and references.
#[cfg(test)]
pub(super) fn sample(known: bool) -> Model {
    let package = |hash: &str, name: &str, version: Option<&str>, depends: Vec<usize>| Package {
        path: format!("/gnu/store/{hash}-{name}{}", version.map(|v| format!("-{v}")).unwrap_or_default()),
        hash_part: hash.to_string(),
        name: name.to_string(),
        version: version.map(Into::into),
        nar_sha256: known.then_some([7; 32]),
        depends_on: known.then_some(depends),
        license: None,
    };
    let mut main = package("00000000000000000000000000000000", "profile", None, vec![1]);
    main.license = Some("GPL-3.0-or-later OR LicenseRef-x".into());
    Model {
        image_name: "hello:1".into(),
        created: 1,
        items: vec![main, package("11111111111111111111111111111111", "libstdc++", Some("13"), vec![])],
        roots: vec![0],
        extras: vec![Extra { path: "/etc/a".into(), kind: ExtraKind::File { sha256: [1; 32] } }],
        database: known.then(|| PathBuf::from("/var/guix/db/db.sqlite")),
    }
}
