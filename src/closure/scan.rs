//! Finding references by scanning, as the daemon does when it registers an
//! item: an item refers to every store item whose 32-character hash part
//! occurs in one of its files or in one of its symlinks' targets.
//!
//! The candidates are the entries of the store directory named like store
//! items, except the `.lock` files and `.chroot` directories the daemon
//! makes beside items it builds.  Every byte of every item in the closure is
//! read once; items are scanned on several threads.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{ErrorKind as IoErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::store::{is_nix_base32, StoreDir, StoreItem, HASH_LEN};

/// A hash part, the key references are found by.
type Hash = [u8; HASH_LEN];

/// Size of the buffer files are read in.
const CHUNK: usize = 1 << 20;

/// The store items a reference can point to, by hash part.  Two entries
/// may share a hash part (an item and a leftover of its build); a
/// reference then counts for both.
pub struct Candidates {
    by_hash: HashMap<Hash, Vec<StoreItem>>,
}

impl Candidates {
    /// Lists the store directory.
    pub fn list(store: &StoreDir) -> Result<Candidates> {
        let dir = store.path();
        let entries = std::fs::read_dir(dir).map_err(|err| Error::io(dir, "listing the store directory", &err))?;
        let mut by_hash: HashMap<Hash, Vec<StoreItem>> = HashMap::new();
        for entry in entries {
            let entry = entry.map_err(|err| Error::io(dir, "listing the store directory", &err))?;
            let name = entry.file_name();
            let bytes = name.as_bytes();
            if bytes.ends_with(b".lock") || bytes.ends_with(b".chroot") {
                continue;
            }
            if let Some(item) = store.item(&name) {
                by_hash.entry(hash_of(&item)).or_default().push(item);
            }
        }
        for items in by_hash.values_mut() {
            items.sort();
        }
        Ok(Candidates { by_hash })
    }

    fn contains(&self, hash: &[u8]) -> bool {
        let hash: &Hash = hash.try_into().expect("a window of HASH_LEN bytes");
        self.by_hash.contains_key(hash)
    }
}

fn hash_of(item: &StoreItem) -> Hash {
    item.hash().as_bytes().try_into().expect("validated store item")
}

/// The items `roots` reference, transitively, each with its references
/// (without itself).  Every root must exist.
pub fn scan_closure(
    roots: &[StoreItem],
    candidates: &Candidates,
    threads: usize,
) -> Result<BTreeMap<StoreItem, BTreeSet<StoreItem>>> {
    struct Work {
        queue: Vec<StoreItem>,
        visited: HashSet<StoreItem>,
        in_flight: usize,
        done: BTreeMap<StoreItem, BTreeSet<StoreItem>>,
        error: Option<Error>,
    }
    let mut visited = HashSet::new();
    let mut queue: Vec<StoreItem> = roots.iter().filter(|root| visited.insert((*root).clone())).cloned().collect();
    queue.reverse(); // taken from the end: roots in their order
    let work = Mutex::new(Work { queue, visited, in_flight: 0, done: BTreeMap::new(), error: None });
    let changed = Condvar::new();

    let worker = || {
        let mut scanner = Scanner::new(candidates);
        loop {
            let item = {
                let mut w = work.lock().unwrap();
                loop {
                    if w.error.is_some() {
                        return;
                    }
                    if let Some(item) = w.queue.pop() {
                        w.in_flight += 1;
                        break item;
                    }
                    if w.in_flight == 0 {
                        return;
                    }
                    w = changed.wait(w).unwrap();
                }
            };
            let found = scanner.scan_item(&item.path);
            let mut w = work.lock().unwrap();
            w.in_flight -= 1;
            match found {
                Ok(hashes) => {
                    let own = hash_of(&item);
                    let mut references = BTreeSet::new();
                    for hash in hashes.iter().filter(|hash| **hash != own) {
                        for referenced in &candidates.by_hash[hash] {
                            references.insert(referenced.clone());
                            if w.visited.insert(referenced.clone()) {
                                w.queue.push(referenced.clone());
                            }
                        }
                    }
                    w.done.insert(item, references);
                }
                Err(err) => {
                    w.error.get_or_insert(err);
                }
            }
            changed.notify_all();
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..threads.max(1) {
            scope.spawn(worker);
        }
        worker();
    });
    let work = work.into_inner().unwrap();
    match work.error {
        Some(err) => Err(err),
        None => Ok(work.done),
    }
}

/// Finds hash parts of candidates in bytes, one buffer at a time.
pub struct Scanner<'a> {
    candidates: &'a Candidates,
    buffer: Vec<u8>,
    found: HashSet<Hash>,
}

impl<'a> Scanner<'a> {
    pub fn new(candidates: &'a Candidates) -> Scanner<'a> {
        Scanner { candidates, buffer: vec![0; HASH_LEN - 1 + CHUNK], found: HashSet::new() }
    }

    /// The hash parts of candidates found in the files and symlink targets
    /// under `path` (a store item: a directory, a file or a symlink).
    /// Symlinks are never followed.
    pub fn scan_item(&mut self, path: &Path) -> Result<HashSet<Hash>> {
        self.found.clear();
        let mut pending = vec![path.to_path_buf()];
        while let Some(path) = pending.pop() {
            let metadata = std::fs::symlink_metadata(&path).map_err(|err| Error::io(&path, "reading", &err))?;
            let kind = metadata.file_type();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|err| Error::io(&path, "reading the symlink", &err))?;
                self.scan_bytes(target.as_os_str().as_bytes());
            } else if kind.is_file() {
                self.scan_file(&path)?;
            } else if kind.is_dir() {
                let entries = std::fs::read_dir(&path).map_err(|err| Error::io(&path, "listing", &err))?;
                for entry in entries {
                    pending.push(entry.map_err(|err| Error::io(&path, "listing", &err))?.path());
                }
            }
            // Sockets, FIFOs and devices hold no references; the image
            // builder refuses them with its own error.
        }
        Ok(std::mem::take(&mut self.found))
    }

    fn scan_file(&mut self, path: &PathBuf) -> Result<()> {
        // Never wait: a FIFO or device node put in the file's place opens at
        // once, and is refused here.
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|err| Error::io(path, "opening", &err))?;
        if !file.metadata().map_err(|err| Error::io(path, "reading", &err))?.is_file() {
            return Err(crate::tree::changed(path, "it is no longer a regular file"));
        }
        // The buffer starts with the end of the previous chunk's last run of
        // base32 characters (at most HASH_LEN - 1 of them), so a hash split
        // across two reads is still found.
        let mut carried = 0;
        loop {
            let read = match file.read(&mut self.buffer[carried..carried + CHUNK]) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(err) if err.kind() == IoErrorKind::Interrupted => continue,
                Err(err) => return Err(Error::io(path, "reading", &err)),
            };
            let filled = carried + read;
            let buffer = std::mem::take(&mut self.buffer);
            self.scan_bytes(&buffer[..filled]);
            self.buffer = buffer;
            let tail = self.buffer[..filled].iter().rev().take(HASH_LEN - 1).take_while(|&&b| is_nix_base32(b)).count();
            self.buffer.copy_within(filled - tail..filled, 0);
            carried = tail;
        }
    }

    /// Records every window of HASH_LEN base32 characters that is a
    /// candidate's hash part.
    ///
    /// A window is checked from its last byte backwards; at a byte outside
    /// the alphabet no window holding it can match, so the next window
    /// starts just after it.  In binary data most windows fail on their
    /// last byte and the scan advances HASH_LEN bytes at a time.
    pub fn scan_bytes(&mut self, bytes: &[u8]) {
        let mut start = 0;
        // bytes[start..known_good] are known to be in the alphabet.
        let mut known_good = 0;
        while start + HASH_LEN <= bytes.len() {
            let end = start + HASH_LEN;
            let unchecked = known_good.max(start);
            match bytes[unchecked..end].iter().rposition(|&b| !is_nix_base32(b)) {
                Some(bad) => start = unchecked + bad + 1,
                None => {
                    let window = &bytes[start..end];
                    if self.candidates.contains(window) {
                        self.found.insert(window.try_into().unwrap());
                    }
                    known_good = end;
                    start += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(hashes: &[&str]) -> Candidates {
        let store = StoreDir::new(Path::new("/gnu/store")).unwrap();
        let mut by_hash = HashMap::new();
        for hash in hashes {
            let item = store.parse_item(Path::new(&format!("/gnu/store/{hash}-x"))).unwrap();
            by_hash.insert(hash_of(&item), vec![item]);
        }
        Candidates { by_hash }
    }

    const A: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    const B: &str = "zyxwvsrqpnmlkjihgfdcba9876543210";

    fn found(scanner: &mut Scanner) -> BTreeSet<String> {
        scanner.found.drain().map(|h| String::from_utf8(h.to_vec()).unwrap()).collect()
    }

    #[test]
    fn a_file_replaced_by_a_fifo_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let candidates = candidates(&[A]);
        let e = Scanner::new(&candidates).scan_file(&fifo).unwrap_err();
        assert_eq!(e.message, format!("{}: changed during the build (it is no longer a regular file)", fifo.display()));
    }

    #[test]
    fn finds_hashes_inside_longer_runs() {
        let candidates = candidates(&[A, B]);
        let mut scanner = Scanner::new(&candidates);
        // Embedded in a path, preceded by other base32 characters, and B
        // overlapping the end of another run.
        scanner.scan_bytes(format!("xx/gnu/store/{A}-hello\0aaa{B}").as_bytes());
        assert_eq!(found(&mut scanner), [A.to_string(), B.to_string()].into());
        // A window one character short, or with a character outside the
        // alphabet, is no hash.
        scanner.scan_bytes(format!("{}-{}", &A[..31], A.replace('z', "e")).as_bytes());
        assert!(found(&mut scanner).is_empty());
        // Anywhere in a long run of base32 characters.
        for offset in 0..40 {
            let run = format!("{}{B}{}", "0".repeat(offset), "1".repeat(40 - offset));
            scanner.scan_bytes(run.as_bytes());
            assert_eq!(found(&mut scanner), [B.to_string()].into(), "offset {offset}");
        }
        // Two adjacent hashes in one run.
        scanner.scan_bytes(format!("{A}{B}").as_bytes());
        assert_eq!(found(&mut scanner), [A.to_string(), B.to_string()].into());
    }

    #[test]
    fn finds_hashes_across_buffer_boundaries() {
        let candidates = candidates(&[A]);
        let dir = tempfile::tempdir().unwrap();
        // For each split of A across the boundary of the first chunk.
        for split in 0..=HASH_LEN {
            let mut data = vec![b'e'; CHUNK - split];
            // Base32 characters just before A: the carry must still keep A's start.
            for b in data.iter_mut().rev().take(5) {
                *b = b'q';
            }
            data.extend_from_slice(A.as_bytes());
            data.extend_from_slice(b"\n");
            let path = dir.path().join(format!("file-{split}"));
            std::fs::write(&path, &data).unwrap();
            let mut scanner = Scanner::new(&candidates);
            let hashes = scanner.scan_item(&path).unwrap();
            assert_eq!(hashes.len(), 1, "hash split {split} bytes into the second chunk");
        }
    }
}

