//! gdn-scale-store: makes a store of many tiny items, for the scale benchmark
//! (`bench/scale.sh`).
//!
//! ```text
//! gdn-scale-store [--force] --items N [--profile M]... DIR
//! ```
//!
//! creates `DIR/gnu/store` with `N` items and the store database
//! `DIR/var/guix/db/db.sqlite` (Guix's schema), and, for each `M` given
//! with `--profile` (default: `N`), a profile item whose closure is the
//! first `M` items and itself.  It prints one line per profile, `M
//! PROFILE-PATH`, on standard output.  The same arguments give the same
//! store, whatever `DIR` is (hash parts do not depend on it).
//!
//! Item `i` (named `<hash>-item-<i>`) refers to item 0 (as nearly every Guix
//! item refers to glibc) and to up to three items made before it, chosen by
//! a hash of `i`: the reference graph is acyclic, with a few very popular
//! items and a long tail, like a real closure.  Three items in four are a
//! regular file naming their references, one in four a directory with
//! `bin/item-<i>` (executable, naming the references) and a symlink `lib`
//! to its first reference.  A profile is a directory with a `manifest`
//! naming its items.  Contents name exactly the references the database
//! records, so scanning finds the same graph.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use sha2::{Digest, Sha256};

use guix_docker_native::closure::STORE_DATABASE_SCHEMA;
use guix_docker_native::store::nix_base32_encode;

/// Makes a store of many tiny items in DIR and prints its profiles.
#[derive(Parser)]
#[command(name = "gdn-scale-store")]
struct Args {
    /// Delete an existing DIR/gnu/store and DIR/var/guix/db first.
    #[arg(long)]
    force: bool,
    /// How many items (besides the profiles).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    items: u32,
    /// A profile referring to the first M items (repeatable; default: all).
    #[arg(long = "profile", value_name = "M", value_parser = clap::value_parser!(u32).range(1..))]
    profiles: Vec<u32>,
    /// The directory to make the store in (created if missing).
    dir: PathBuf,
}

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args = Args::parse();
    match generate(&args) {
        Ok(profiles) => {
            for (m, path) in profiles {
                println!("{m} {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("gdn-scale-store: {message}");
            ExitCode::FAILURE
        }
    }
}

fn io_error(path: &Path, what: &str, err: std::io::Error) -> String {
    format!("{}: {what}: {err}", path.display())
}

/// `<hash>-<name>`, the hash part derived from the name alone.
fn base_name(name: &str) -> String {
    let digest = Sha256::digest(format!("gdn-scale-store:{name}").as_bytes());
    format!("{}-{name}", nix_base32_encode(&digest[..20]))
}

/// A 64-bit mix of `x` (splitmix64's finaliser): the same on every run.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The items item `i` refers to: 0 and up to three earlier ones, sorted.
fn references(i: u32) -> Vec<u32> {
    if i == 0 {
        return Vec::new();
    }
    let h = mix(u64::from(i));
    let mut refs = vec![0];
    for k in 0..(h % 4) {
        refs.push((mix(h ^ (k + 1)) % u64::from(i)) as u32);
    }
    refs.sort_unstable();
    refs.dedup();
    refs
}

fn generate(args: &Args) -> Result<Vec<(u32, PathBuf)>> {
    let root = std::path::absolute(&args.dir).map_err(|err| io_error(&args.dir, "cannot make absolute", err))?;
    if root.to_str().is_none() {
        return Err(format!("{}: not UTF-8; choose another directory", root.display()));
    }
    let mut profiles = if args.profiles.is_empty() { vec![args.items] } else { args.profiles.clone() };
    profiles.sort_unstable();
    profiles.dedup();
    if let Some(m) = profiles.iter().find(|&&m| m > args.items) {
        return Err(format!("--profile {m}: more than the {} items", args.items));
    }
    let store = root.join("gnu/store");
    let db_dir = root.join("var/guix/db");
    prepare(&store, &db_dir, args.force)?;

    let paths: Vec<String> =
        (0..args.items).map(|i| format!("{}/{}", store.display(), base_name(&format!("item-{i}")))).collect();
    for i in 0..args.items {
        let refs = references(i);
        let mut text = String::new();
        for &r in &refs {
            text.push_str(&paths[r as usize]);
            text.push('\n');
        }
        let path = Path::new(&paths[i as usize]);
        if i % 4 == 3 {
            let bin = path.join("bin");
            fs::create_dir_all(&bin).map_err(|err| io_error(&bin, "cannot create", err))?;
            write_file(&bin.join(format!("item-{i}")), text.as_bytes(), 0o555)?;
            if let Some(&first) = refs.first() {
                let link = path.join("lib");
                std::os::unix::fs::symlink(&paths[first as usize], &link)
                    .map_err(|err| io_error(&link, "cannot create", err))?;
            }
        } else {
            write_file(path, text.as_bytes(), 0o444)?;
        }
    }
    let mut made = Vec::new();
    for &m in &profiles {
        let profile = store.join(base_name(&format!("profile-{m}")));
        fs::create_dir_all(&profile).map_err(|err| io_error(&profile, "cannot create", err))?;
        let manifest: String = paths[..m as usize].iter().map(|p| format!("{p}\n")).collect();
        write_file(&profile.join("manifest"), manifest.as_bytes(), 0o444)?;
        made.push((m, profile));
    }
    write_database(&db_dir.join("db.sqlite"), &paths, &made)?;
    Ok(made)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    fs::write(path, contents).map_err(|err| io_error(path, "cannot write", err))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|err| io_error(path, "cannot set the mode", err))
}

/// Makes sure the store and the database directory are empty, deleting
/// them first with `force`.
fn prepare(store: &Path, db_dir: &Path, force: bool) -> Result<()> {
    for dir in [store, db_dir] {
        let has_entries = match fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
            Err(err) => return Err(io_error(dir, "cannot list", err)),
        };
        if has_entries {
            if !force {
                return Err(format!("{} exists and is not empty; pass --force to delete it", dir.display()));
            }
            fs::remove_dir_all(dir).map_err(|err| io_error(dir, "cannot delete", err))?;
        }
        fs::create_dir_all(dir).map_err(|err| io_error(dir, "cannot create", err))?;
    }
    Ok(())
}

/// Registers every item and profile with its references, in one transaction.
fn write_database(file: &Path, paths: &[String], profiles: &[(u32, PathBuf)]) -> Result<()> {
    let db_error = |err: rusqlite::Error| format!("{}: {err}", file.display());
    let mut connection = rusqlite::Connection::open(file).map_err(db_error)?;
    connection.execute_batch(STORE_DATABASE_SCHEMA).map_err(db_error)?;
    let transaction = connection.transaction().map_err(db_error)?;
    {
        let mut add_path = transaction
            .prepare("INSERT INTO ValidPaths (id, path, hash, registrationTime, narSize) VALUES (?1, ?2, ?3, 1, 0)")
            .map_err(db_error)?;
        let mut add_ref =
            transaction.prepare("INSERT INTO Refs (referrer, reference) VALUES (?1, ?2)").map_err(db_error)?;
        // Nothing reads the hash column; a hash of the path stands in for the NAR hash.
        let hash = |path: &str| format!("sha256:{}", hex::encode(Sha256::digest(path.as_bytes())));
        for (i, path) in paths.iter().enumerate() {
            add_path.execute(rusqlite::params![i as i64 + 1, path, hash(path)]).map_err(db_error)?;
            for r in references(i as u32) {
                add_ref.execute([i as i64 + 1, i64::from(r) + 1]).map_err(db_error)?;
            }
        }
        for (k, (m, profile)) in profiles.iter().enumerate() {
            let id = paths.len() as i64 + 1 + k as i64;
            let path = profile.to_str().expect("checked UTF-8 directory");
            add_path.execute(rusqlite::params![id, path, hash(path)]).map_err(db_error)?;
            for r in 0..i64::from(*m) {
                add_ref.execute([id, r + 1]).map_err(db_error)?;
            }
        }
    }
    transaction.commit().map_err(db_error)
}
