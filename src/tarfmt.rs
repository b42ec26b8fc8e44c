//! The tar format as written here: POSIX ustar headers, with a PAX extended
//! header in front of an entry whose name, link target, size or ids do not
//! fit.  Sizes are computed before anything is written, so that every
//! layer's length (and every offset in the outer archive) is known in advance.
//!
//! A header block is the `tar` crate's [`tar::Header`] (see [`ustar_block`]
//! for the two fields set by hand).  The PAX extended header is written
//! here: the crate makes one only through its `Builder`
//! (`append_pax_extensions`), into a writer, as it writes it, where the
//! one-pass design needs its length before anything is written
//! ([`header_len`]: the records' lengths, which count their own digits,
//! are computed without writing them); and the crate's extended header has
//! no name and mtime 0 where these have a deterministic name
//! (`PaxHeaders/<base name>`) and the entries' mtime, which the bytes of
//! every image built so far depend on.

/// The tar block size.
pub const BLOCK: u64 = 512;

/// What an archive ends with: two zero blocks.
pub const END_OF_ARCHIVE: [u8; 1024] = [0; 1024];

/// The mtime of every entry, as Guix and Nix write it.
pub const MTIME: u64 = 1;

const NAME_LEN: usize = 100;
const OCTAL_SIZE_MAX: u64 = 0o777_7777_7777; // 11 octal digits
const OCTAL_ID_MAX: u32 = 0o777_7777; // 7 octal digits

/// The kinds of entry a layer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

impl Kind {
    fn entry_type(self) -> tar::EntryType {
        match self {
            Kind::File => tar::EntryType::Regular,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Dir => tar::EntryType::Directory,
        }
    }
}

/// One entry's header fields.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// The archive name; a directory's ends with `/`.
    pub name: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Data length (0 but for files).
    pub size: u64,
    /// Symlink target (empty but for symlinks).
    pub link: &'a [u8],
}

impl<'a> Header<'a> {
    /// A regular file of `size` bytes, mode 0644, owned by root: the
    /// header of a file that is not from the store (a layer file, the
    /// config, the manifest).
    pub fn file(name: &'a [u8], size: u64) -> Header<'a> {
        Header { name, kind: Kind::File, mode: 0o644, uid: 0, gid: 0, size, link: b"" }
    }
}

/// `n` rounded up to a whole number of blocks.
pub fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

fn needs_pax(h: &Header) -> bool {
    h.name.len() > NAME_LEN
        || h.link.len() > NAME_LEN
        || h.size > OCTAL_SIZE_MAX
        || h.uid > OCTAL_ID_MAX
        || h.gid > OCTAL_ID_MAX
}

/// Length of one PAX record `"<len> <key>=<value>\n"`, whose length field
/// counts its own digits.
fn pax_record_len(key: &str, value_len: usize) -> usize {
    let base = key.len() + value_len + 3; // ' ', '=', '\n'
    let mut len = base + 1;
    while base + decimal_digits(len) != len {
        len = base + decimal_digits(len);
    }
    len
}

fn decimal_digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn pax_records(h: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    let mut record = |key: &str, value: &[u8]| {
        let len = pax_record_len(key, value.len());
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    };
    if h.gid > OCTAL_ID_MAX {
        record("gid", h.gid.to_string().as_bytes());
    }
    if h.link.len() > NAME_LEN {
        record("linkpath", h.link);
    }
    if h.name.len() > NAME_LEN {
        record("path", h.name);
    }
    if h.size > OCTAL_SIZE_MAX {
        record("size", h.size.to_string().as_bytes());
    }
    if h.uid > OCTAL_ID_MAX {
        record("uid", h.uid.to_string().as_bytes());
    }
    out
}

/// Bytes the header(s) of `h` take, without the entry's data.
pub fn header_len(h: &Header) -> u64 {
    if needs_pax(h) {
        2 * BLOCK + padded(pax_records(h).len() as u64)
    } else {
        BLOCK
    }
}

/// Bytes the whole entry takes: header(s) and padded data.
pub fn entry_len(h: &Header) -> u64 {
    header_len(h) + padded(h.size)
}

/// One ustar header block, made with the `tar` crate's [`tar::Header`]
/// (the field layout, the octal numbers, the checksum's sum).  Fields that
/// do not fit were given in a PAX header; here they are truncated (name,
/// link) or zero (size, ids), as POSIX says a reader then ignores them.
///
/// Written here by hand, and why:
/// - the name and the link target are copied as bytes: the crate's
///   `set_path` and `set_link_name` clean a path (they drop a directory
///   name's trailing `/`, refuse `..` and anything over 100 bytes), and an
///   archive name must be kept byte for byte;
/// - the checksum field is GNU tar's six digits, a NUL and a space, which
///   every archive has had from the first; the crate writes seven digits
///   and a NUL (both are valid), and a different byte would change every
///   layer's `diff_id`.
fn ustar_block(name: &[u8], entry_type: tar::EntryType, h: &Header, size: u64) -> [u8; BLOCK as usize] {
    let mut block = tar::Header::new_ustar();
    let fields = block.as_ustar_mut().expect("a ustar header");
    put_bytes(&mut fields.name, name);
    put_bytes(&mut fields.linkname, h.link);
    fields.set_device_major(0);
    fields.set_device_minor(0);
    block.set_mode(h.mode);
    block.set_uid(u64::from(if h.uid > OCTAL_ID_MAX { 0 } else { h.uid }));
    block.set_gid(u64::from(if h.gid > OCTAL_ID_MAX { 0 } else { h.gid }));
    // The tar crate writes a size of more than 11 octal digits in GNU's
    // base-256 form; `write_header` never gives it one (PAX has it).
    block.set_size(size);
    block.set_mtime(MTIME);
    block.set_entry_type(entry_type);
    block.set_cksum();
    let sum = block.cksum().expect("the checksum just written");
    block.as_old_mut().cksum.copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    *block.as_bytes()
}

fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Appends the header(s) of `h` to `out`: exactly [`header_len`] bytes.
pub fn write_header(h: &Header, out: &mut Vec<u8>) {
    let start = out.len();
    if needs_pax(h) {
        let records = pax_records(h);
        // The extended header's own name: deterministic and short.
        let trimmed = h.name.strip_suffix(b"/").unwrap_or(h.name);
        let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
        let mut pax_name = b"PaxHeaders/".to_vec();
        pax_name.extend_from_slice(&base[..base.len().min(NAME_LEN - pax_name.len())]);
        let pax = Header { name: &pax_name, kind: Kind::File, mode: 0o644, uid: 0, gid: 0, size: records.len() as u64, link: b"" };
        out.extend_from_slice(&ustar_block(&pax_name, tar::EntryType::XHeader, &pax, records.len() as u64));
        out.extend_from_slice(&records);
        out.resize(start + BLOCK as usize + padded(records.len() as u64) as usize, 0);
    }
    let size = if h.size > OCTAL_SIZE_MAX { 0 } else { h.size };
    out.extend_from_slice(&ustar_block(h.name, h.kind.entry_type(), h, size));
    debug_assert_eq!((out.len() - start) as u64, header_len(h));
}

/// The one header block of `h`, whatever its size: for a header written
/// after its data, into the block left for it (an oci-archive's blob,
/// whose size is known only at its end).  The same bytes as
/// [`write_header`] up to 8 GiB - 1; a larger size goes in the size field
/// in GNU tar's base-256 form (the first byte's high bit set, the number in
/// the last 8 bytes), which Go's `archive/tar` (skopeo, podman, containerd,
/// umoci, Docker), GNU tar and the `tar` crate read in any header.  The
/// name and link target must fit their fields, the ids 7 octal digits.
pub fn fixed_header_block(h: &Header) -> [u8; BLOCK as usize] {
    assert!(
        h.name.len() <= NAME_LEN && h.link.len() <= NAME_LEN && h.uid <= OCTAL_ID_MAX && h.gid <= OCTAL_ID_MAX,
        "a fixed-length header's fields fit ustar's"
    );
    ustar_block(h.name, h.kind.entry_type(), h, h.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entry(name: &[u8], kind: Kind, size: u64, link: &[u8]) -> Vec<u8> {
        let h = Header { name, kind, mode: if kind == Kind::Dir { 0o555 } else { 0o444 }, uid: 0, gid: 0, size, link };
        let mut out = Vec::new();
        write_header(&h, &mut out);
        assert_eq!(out.len() as u64, header_len(&h));
        out.resize(out.len() + padded(size) as usize, b'x');
        out
    }

    #[test]
    fn the_tar_crate_reads_what_we_write() {
        let long_name = format!("gnu/store/{}/{}", "a".repeat(40), "b".repeat(120));
        let long_link = format!("/gnu/store/{}", "c".repeat(150));
        let mut archive = Vec::new();
        archive.extend(entry(b"gnu/", Kind::Dir, 0, b""));
        archive.extend(entry(long_name.as_bytes(), Kind::File, 700, b""));
        archive.extend(entry(b"gnu/link", Kind::Symlink, 0, long_link.as_bytes()));
        archive.extend_from_slice(&END_OF_ARCHIVE);
        let mut reader = tar::Archive::new(&archive[..]);
        let mut seen = Vec::new();
        for e in reader.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
            assert_eq!(e.header().mtime().unwrap(), 1);
            assert_eq!(e.header().uid().unwrap(), 0);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((path, link, data.len()));
        }
        assert_eq!(
            seen,
            [
                ("gnu/".to_string(), None, 0),
                (long_name.clone(), None, 700),
                ("gnu/link".to_string(), Some(long_link.clone()), 0)
            ]
        );
    }

    /// A fixed header block: the ustar one below 8 GiB; above, the size in
    /// base-256, which the `tar` crate reads back (as Go's archive/tar and
    /// GNU tar do), with the checksum right.
    #[test]
    fn fixed_headers_hold_sizes_over_8_gib() {
        let name = format!("blobs/sha256/{}", "a".repeat(64));
        for size in [0, 12345, OCTAL_SIZE_MAX] {
            let h = Header::file(name.as_bytes(), size);
            let mut out = Vec::new();
            write_header(&h, &mut out);
            assert_eq!(out[..], fixed_header_block(&h)[..], "{size}");
        }
        for size in [OCTAL_SIZE_MAX + 1, 9 << 30, 1 << 40, (1 << 62) + 7] {
            let block = fixed_header_block(&Header::file(name.as_bytes(), size));
            let field = &block[124..136];
            assert_eq!(field[0], 0x80, "{size}");
            assert_eq!(field[1..4], [0, 0, 0]);
            assert_eq!(field[4..], size.to_be_bytes());
            let mut data = block.to_vec();
            data.extend_from_slice(&END_OF_ARCHIVE);
            let reader = tar::Header::from_byte_slice(&data[..512]);
            assert_eq!(reader.entry_size().unwrap(), size);
            assert_eq!(reader.cksum().unwrap(), {
                let mut sum: u32 = 0;
                for (i, b) in block.iter().enumerate() {
                    sum += if (148..156).contains(&i) { 32 } else { u32::from(*b) };
                }
                sum
            });
            assert_eq!(&block[148..156], format!("{:06o}\0 ", reader.cksum().unwrap()).as_bytes());
            assert_eq!(&block[257..263], b"ustar\0");
        }
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for n in [0, 5, 90, 95, 96, 97, 990, 995, 996, 9990] {
            let len = pax_record_len("path", n);
            assert_eq!(len, format!("{len} path=").len() + n + 1, "{n}");
        }
    }

    #[test]
    fn names_of_exactly_100_bytes_need_no_pax() {
        let name = vec![b'n'; 100];
        let h = Header { name: &name, kind: Kind::File, mode: 0o444, uid: 0, gid: 0, size: 1, link: b"" };
        assert_eq!(header_len(&h), 512);
        let name = vec![b'n'; 101];
        let h = Header { name: &name, ..h };
        assert_eq!(header_len(&h), 1536);
    }

    /// Headers of every kind and size, as this module has written them
    /// since the first image (the digests of every image built depend on
    /// these bytes): any change to the bytes fails here.
    #[test]
    fn headers_keep_their_bytes() {
        use sha2::{Digest, Sha256};
        let long = vec![b'n'; 150];
        let long_dir = [&long[..], b"/"].concat();
        let hundred = vec![b'h'; 100];
        let headers = [
            Header { name: b"gnu/", kind: Kind::Dir, mode: 0o555, uid: 0, gid: 0, size: 0, link: b"" },
            Header { name: b"gnu/store/x/bin/hello", kind: Kind::File, mode: 0o555, uid: 0, gid: 0, size: 12345, link: b"" },
            Header { name: b"gnu/store/x/bin/hi", kind: Kind::Symlink, mode: 0o777, uid: 0, gid: 0, size: 0, link: b"hello" },
            Header::file(b"0123abcd/layer.tar", 1 << 30),
            Header { name: &hundred, kind: Kind::File, mode: 0o444, uid: 0, gid: 0, size: 1, link: &hundred },
            Header { name: &long, kind: Kind::File, mode: 0o444, uid: 0, gid: 0, size: 700, link: b"" },
            Header { name: &long_dir, kind: Kind::Dir, mode: 0o750, uid: 1000, gid: 1000, size: 0, link: b"" },
            Header { name: b"l", kind: Kind::Symlink, mode: 0o777, uid: 0, gid: 0, size: 0, link: &long },
            Header { name: b"big", kind: Kind::File, mode: 0o644, uid: 0, gid: 0, size: OCTAL_SIZE_MAX + 1, link: b"" },
            Header { name: b"ids/", kind: Kind::Dir, mode: 0o7777, uid: OCTAL_ID_MAX + 1, gid: u32::MAX, size: 0, link: b"" },
            Header { name: b"m", kind: Kind::File, mode: u32::MAX, uid: OCTAL_ID_MAX, gid: 7, size: OCTAL_SIZE_MAX, link: b"" },
        ];
        let mut out = Vec::new();
        for h in &headers {
            write_header(h, &mut out);
        }
        assert_eq!(out.len(), 21 * 512);
        assert_eq!(hex::encode(Sha256::digest(&out)), "09e47a96687ebd6efb0ce673b7a7ac29e968040d694a7ba0bd2d370a57642158");
    }
}
