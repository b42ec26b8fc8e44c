//! Refusing an output that is one of the build's inputs.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::destination::{descriptor_of, parent_of};
use super::sys::{fd_id, path_id, FileId};
use super::Output;
use crate::error::{Error, ErrorKind, Result};
use crate::options::ImageOptions;

/// A file the build reads, which the output must not be.
pub struct Input<'a> {
    /// What it is, for the message: "store database", "closure file".
    pub what: &'a str,
    pub path: &'a Path,
}

/// Refuses, before anything is written, an output that is one of the
/// build's inputs (the same file, by device and inode where both exist, or
/// the same place, by canonical path of its directory), or that is inside
/// the store directory `store` (under any store item, or the store itself).
pub fn refuse_inputs(output: &Output, inputs: &[Input], store: Option<&Path>) -> Result<()> {
    let (name, id, place) = match output {
        Output::Stdout => (Path::new("-"), fd_id(1), None),
        Output::Path(path) => match descriptor_of(path) {
            Some(fd) => (path.as_path(), fd_id(fd), None),
            None => (path.as_path(), path_id(path), place_of(path)),
        },
    };
    for input in inputs {
        // A character device read and written (`/dev/null`, a terminal) is
        // not an input the output could damage.
        let input_meta = fs::metadata(input.path).ok();
        if input_meta.as_ref().is_some_and(|m| m.file_type().is_char_device()) {
            continue;
        }
        let same_file = id.is_some() && id == input_meta.map(|m| FileId::of(&m));
        let same_place = place.is_some() && place == place_of(input.path);
        if same_file || same_place {
            return Err(Error::new(
                ErrorKind::Output,
                format!(
                    "output '{}' is the {} '{}': refusing to write over an input of the build",
                    name.display(),
                    input.what,
                    input.path.display()
                ),
            ));
        }
    }
    if let (Some(store), Some(place)) = (store, &place) {
        // By device and inode, so that a bind mount or a symlink to the
        // store is seen too.
        if let Some(store_id) = path_id(store) {
            if place.ancestors().any(|a| path_id(a) == Some(store_id)) {
                return Err(Error::new(
                    ErrorKind::Output,
                    format!(
                        "output '{}' is inside the store directory '{}': refusing to write into the store the image is made of",
                        name.display(),
                        store.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// [`refuse_inputs`] with the inputs `options` name: the store database
/// (and its journal files), the extra files, and the store directory.
pub fn refuse_build_inputs(output: &Output, options: &ImageOptions) -> Result<()> {
    let mut journals = Vec::new();
    if let Some(db) = &options.database {
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = db.clone().into_os_string();
            p.push(suffix);
            journals.push(PathBuf::from(p));
        }
    }
    let mut inputs = Vec::new();
    if let Some(db) = &options.database {
        inputs.push(Input { what: "store database", path: db });
    }
    inputs.extend(journals.iter().map(|p| Input { what: "store database's journal", path: p }));
    inputs.extend(options.files.iter().map(|f| Input { what: "extra file", path: &f.source }));
    refuse_inputs(output, &inputs, Some(&options.store_dir))
}

/// Where `path` is: its canonical path when it exists, else its
/// directory's canonical path and its name.
fn place_of(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = fs::canonicalize(path) {
        return Some(real);
    }
    let name = path.file_name()?;
    Some(fs::canonicalize(parent_of(path)).ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::symlink;

    fn input<'a>(what: &'a str, path: &'a Path) -> Input<'a> {
        Input { what, path }
    }

    #[test]
    fn an_output_that_is_an_input_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        fs::write(&db, "database").unwrap();
        let store = dir.path().join("gnu/store");
        let item = store.join("0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-app");
        fs::create_dir_all(item.join("bin")).unwrap();
        fs::write(item.join("bin/app"), "app").unwrap();
        let link_to_db = dir.path().join("link");
        symlink(&db, &link_to_db).unwrap();
        let other_name_of_store = dir.path().join("store-link");
        symlink(&store, &other_name_of_store).unwrap();
        let inputs = [input("store database", &db)];
        let check = |out: &Path| refuse_inputs(&Output::Path(out.to_path_buf()), &inputs, Some(&store));

        for out in [db.clone(), link_to_db.clone(), dir.path().join("./db.sqlite"), dir.path().join("gnu/../db.sqlite")] {
            let err = check(&out).err().unwrap();
            assert_eq!(err.kind, ErrorKind::Output);
            assert!(err.message.contains(&*out.to_string_lossy()) && err.message.contains("store database")
                && err.message.contains(&*db.to_string_lossy()), "{}", err.message);
        }
        for out in [store.clone(), item.clone(), item.join("bin/app"), item.join("new.tar"), store.join("new.tar"),
            other_name_of_store.join("new.tar")]
        {
            let err = check(&out).err().unwrap();
            assert!(err.message.contains("inside the store directory") && err.message.contains(&*store.to_string_lossy()), "{}", err.message);
        }
        for out in [dir.path().join("image.tar"), dir.path().join("gnu/image.tar"), PathBuf::from("/dev/null")] {
            check(&out).unwrap();
        }
        refuse_inputs(&Output::Path("/dev/null".into()), &[input("closure file", Path::new("/dev/null"))], None).unwrap();
        // A journal file that does not exist yet: the same place.
        let wal = dir.path().join("db.sqlite-wal");
        let err = refuse_inputs(&Output::Path(wal.clone()), &[input("store database's journal", &wal)], None).err().unwrap();
        assert!(err.message.contains("journal"), "{}", err.message);
        // A descriptor open on an input.
        let file = File::options().write(true).open(&db).unwrap();
        let fd = PathBuf::from(format!("/dev/fd/{}", file.as_raw_fd()));
        assert!(check(&fd).err().unwrap().message.contains("is the store database"));
        assert_eq!(fs::read(&db).unwrap(), b"database");
    }

    #[test]
    fn the_options_inputs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        fs::write(&db, "database").unwrap();
        let extra = dir.path().join("extra");
        fs::write(&extra, "extra").unwrap();
        let mut options = ImageOptions::new();
        options.store_dir = dir.path().join("gnu/store");
        fs::create_dir_all(&options.store_dir).unwrap();
        options.database = Some(db.clone());
        options.files.push(crate::options::ExtraFile { path: "/etc/extra".into(), source: extra.clone() });
        let check = |p: &Path| refuse_build_inputs(&Output::Path(p.to_path_buf()), &options);
        assert!(check(&db).err().unwrap().message.contains("is the store database '"));
        assert!(check(&dir.path().join("db.sqlite-shm")).err().unwrap().message.contains("journal"));
        assert!(check(&extra).err().unwrap().message.contains("is the extra file"));
        assert!(check(&options.store_dir.join("x.tar")).err().unwrap().message.contains("inside the store"));
        check(&dir.path().join("image.tar")).unwrap();
    }
}
