//! Property-based tests of the parsers of user input in the library's API:
//! image references (tags), store paths and store directories, Nix base32,
//! and every `ImageOptions` setter.  Each property either compares with a
//! reference written here from the grammar (not from the code under test),
//! or round-trips a value, or checks what an accepted value must satisfy;
//! every refusal must name the input.

use std::path::{Path, PathBuf};

use guix_docker_native::{CREATION_TIME_RANGE, MAX_LAYERS_LIMIT, MAX_THREADS};
use guix_docker_native::reference::{repository_from_name, validate_tag};
use guix_docker_native::store::{nix_base32_encode, StoreDir, HASH_LEN, NIX_BASE32};
use guix_docker_native::{Compression, ErrorKind, ImageOptions};
use proptest::prelude::*;

// ---------------------------------------------------------------------
// The Docker reference grammar, written from distribution/reference's
// grammar text:
//
//   reference      := name [ ":" tag ]
//   name           := [domain '/'] path-component ['/' path-component]*
//   domain         := host [':' port-number]
//   host           := domain-name | '[' IPv6address ']'
//   domain-name    := domain-component ['.' domain-component]*
//   domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//   port-number    := [0-9]+
//   path-component := alnum [separator alnum]*
//   alnum          := [a-z0-9]+
//   separator      := [_.] | '__' | [-]+
//   tag            := [\w][\w.-]{0,127}
//
// with the name at most 255 characters.  The first component is a domain
// when there is a '/' after it and it contains '.' or ':' or is
// "localhost".
// ---------------------------------------------------------------------

/// `alnum [separator alnum]*`, by splitting into alternating runs.
fn grammar_path_component(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut runs: Vec<(bool, String)> = Vec::new();
    for c in s.chars() {
        let kind = alnum(c);
        match runs.last_mut() {
            Some((k, run)) if *k == kind => run.push(c),
            _ => runs.push((kind, c.to_string())),
        }
    }
    // Alternating, starting and ending with an alphanumeric run.
    if runs.is_empty() || !runs[0].0 || !runs[runs.len() - 1].0 {
        return false;
    }
    runs.iter().filter(|(k, _)| !k).all(|(_, sep)| {
        sep == "." || sep == "_" || sep == "__" || (!sep.is_empty() && sep.chars().all(|c| c == '-'))
    })
}

fn grammar_domain_component(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric();
    let first = s.chars().next();
    let last = s.chars().last();
    first.is_some_and(ok) && last.is_some_and(ok) && s.chars().all(|c| ok(c) || c == '-')
}

fn grammar_domain(s: &str) -> bool {
    // An IPv6 host in brackets, optionally with a port.
    if let Some(rest) = s.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else { return false };
        let port_ok = after.is_empty()
            || after.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        return !inner.is_empty() && inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':') && port_ok;
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty() && host.split('.').all(grammar_domain_component)
}

fn grammar_tag(t: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = t.chars();
    chars.next().is_some_and(word) && t.len() <= 128 && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// Does `full` (`name:tag`, as `validate_tag` returns it) meet the grammar?
fn grammar_full_reference(full: &str) -> bool {
    let slash = full.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = full[slash..].rfind(':') else { return false };
    let (name, tag) = (&full[..slash + colon], &full[slash + colon + 1..]);
    if name.len() > 255 || !grammar_tag(tag) {
        return false;
    }
    let components: Vec<&str> = name.split('/').collect();
    let (domain, path) = if components.len() > 1
        && (components[0].contains('.') || components[0].contains(':') || components[0] == "localhost")
    {
        (Some(components[0]), &components[1..])
    } else {
        (None, &components[..])
    };
    domain.is_none_or(grammar_domain) && path.iter().all(|c| grammar_path_component(c))
}

/// Strategies for the pieces of a valid reference.
fn path_component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}((\\.|_|__|-{1,3})[a-z0-9]{1,6}){0,3}"
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("localhost".to_string()),
        "[a-z0-9]([a-z0-9-]{0,5}[a-z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,5}[a-zA-Z0-9])?){1,3}",
        "localhost:[0-9]{1,5}",
        "[a-z]{1,5}\\.[a-z]{2,3}:[0-9]{1,5}",
        // An IPv6 address has a ':', which is what marks the component as a host.
        "\\[[0-9a-f]{0,4}:[0-9a-f:]{0,10}\\](:[0-9]{1,5})?",
    ]
}

fn tag_part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
}

fn valid_reference() -> impl Strategy<Value = (String, Option<String>)> {
    (
        proptest::option::of(domain()),
        proptest::collection::vec(path_component(), 1..4),
        proptest::option::of(tag_part()),
    )
        // Without a domain, a first component with a '.' would be read as one.
        .prop_filter("a first path component that is not a host", |(domain, path, _)| {
            domain.is_some() || path.len() == 1 || !(path[0].contains('.') || path[0] == "localhost")
        })
        .prop_map(|(domain, path, tag)| {
            let mut name = path.join("/");
            if let Some(d) = domain {
                name = format!("{d}/{name}");
            }
            let reference = match &tag {
                Some(t) => format!("{name}:{t}"),
                None => name,
            };
            (reference, tag)
        })
        .prop_filter("names of at most 255 characters", |(r, t)| {
            r.len() - t.as_ref().map_or(0, |t| t.len() + 1) <= 255
        })
}

/// Strings made mostly of the characters references are made of, so that
/// random ones come close to the grammar's edges.
fn reference_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._:/@-]{0,40}",
        "[a-z0-9._:/-]{0,40}",
        ".{0,20}",
        "[a-z]{250,260}(:[a-z]{0,3})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every reference the grammar generates is accepted, with `:latest`
    /// added when the tag is missing.
    #[test]
    fn references_of_the_grammar_are_accepted((reference, tag) in valid_reference()) {
        let full = validate_tag(&reference).map_err(|e| TestCaseError::fail(e.message))?;
        let expected = match tag {
            Some(_) => reference.clone(),
            None => format!("{reference}:latest"),
        };
        prop_assert_eq!(full, expected);
    }

    /// Random strings never panic; what is accepted meets the grammar and
    /// is the input (plus `:latest`); what is refused names the input.
    #[test]
    fn random_references_are_accepted_only_by_the_grammar(reference in reference_like()) {
        match validate_tag(&reference) {
            Ok(full) => {
                prop_assert!(grammar_full_reference(&full), "accepted {:?} as {:?}", reference, full);
                prop_assert!(full == reference || full == format!("{reference}:latest"), "{} -> {}", reference, full);
                // Validating the result again changes nothing.
                prop_assert_eq!(validate_tag(&full).ok(), Some(full.clone()));
            }
            Err(err) => {
                prop_assert_eq!(err.kind, ErrorKind::InvalidArgument);
                let named = format!("tag '{reference}'");
                prop_assert!(err.message.contains(&named), "{}", err.message);
                // The grammar refuses it too, with or without a tag added.
                prop_assert!(!grammar_full_reference(&reference) && !grammar_full_reference(&format!("{reference}:latest")),
                    "refused {:?}, which the grammar accepts: {}", reference, err.message);
            }
        }
    }

    /// The repository Guix derives from any name is a valid reference, a
    /// valid repository maps to itself, and the mapping is idempotent.
    #[test]
    fn repositories_from_any_name_are_valid(name in prop_oneof![".{0,60}", "[A-Za-z0-9+._?=-]{1,222}"]) {
        let repository = repository_from_name(&name);
        prop_assert!(!repository.contains('/') && !repository.contains(':'));
        prop_assert!(grammar_path_component(&repository), "{:?} -> {:?}", name, repository);
        prop_assert_eq!(validate_tag(&repository).ok(), Some(format!("{repository}:latest")));
        prop_assert_eq!(repository_from_name(&repository), repository.clone());
        if grammar_path_component(&name) {
            prop_assert_eq!(repository, name);
        }
    }
}

// ---------------------------------------------------------------------
// Store paths.
// ---------------------------------------------------------------------

const NAME_CHARS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=";

/// The rule from Nix's documentation of store path names, checked on chars.
fn reference_is_item_name(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    chars.len() >= HASH_LEN + 2
        && chars[..HASH_LEN].iter().all(|c| "0123456789abcdfghijklmnpqrsvwxyz".contains(*c))
        && chars[HASH_LEN] == '-'
        && chars[HASH_LEN + 1] != '.'
        && chars[HASH_LEN + 1..].iter().all(|c| NAME_CHARS.contains(*c))
}

fn hash_part() -> impl Strategy<Value = String> {
    "[0-9abcdfghijklmnpqrsvwxyz]{32}"
}

fn item_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9+_?=-][a-zA-Z0-9+._?=-]{0,40}"
}

/// One class of invalid base names each.
fn invalid_base_name() -> impl Strategy<Value = (String, &'static str)> {
    let bad_hash_char = (hash_part(), 0..HASH_LEN, "[eotuA-Z_.+]", item_name()).prop_map(|(h, i, c, n)| {
        let mut h: Vec<char> = h.chars().collect();
        h[i] = c.chars().next().unwrap();
        (format!("{}-{n}", h.into_iter().collect::<String>()), "a hash character outside nix-base32")
    });
    let short_hash = ("[0-9a-df-np-sv-z]{0,31}", item_name()).prop_map(|(h, n)| (format!("{h}-{n}"), "a short hash"));
    let long_hash = ("[0-9a-df-np-sv-z]{33,40}", item_name()).prop_map(|(h, n)| (format!("{h}{n}"), "no dash after 32 characters"));
    let no_dash = (hash_part(), "[a-z0-9+_?=]", item_name()).prop_map(|(h, c, n)| (format!("{h}{c}{n}"), "no dash"));
    let empty_name = hash_part().prop_map(|h| (format!("{h}-"), "an empty name"));
    let dot_name = (hash_part(), "[a-z0-9.]{0,10}").prop_map(|(h, n)| (format!("{h}-.{n}"), "a name starting with a dot"));
    let bad_name_char = (hash_part(), item_name(), "[ \t\n/\\\\~!@#$%^&*(){}\\[\\]|;:'\",<>`é\u{0}]", item_name())
        .prop_map(|(h, a, c, b)| (format!("{h}-{a}{c}{b}"), "a character outside [A-Za-z0-9+-._?=]"));
    prop_oneof![bad_hash_char, short_hash, long_hash, no_dash, empty_name, dot_name, bad_name_char]
}

/// Path strings built from pieces that make store paths interesting.
fn path_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("gnu".to_string()),
        Just("store".to_string()),
        Just("storex".to_string()),
        (hash_part(), item_name()).prop_map(|(h, n)| format!("{h}-{n}")),
        "[a-z0-9.-]{1,8}",
        ".{1,6}",
    ];
    (any::<bool>(), proptest::collection::vec(piece, 0..7)).prop_map(|(absolute, pieces)| {
        let joined = pieces.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

/// What a store item path must be, from the rules: absolute, no `..`;
/// after dropping `.` and empty components, the store's components and
/// then exactly one valid base name.  Returns the item's path.
fn reference_parse_item(store: &[&str], path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.contains(&"..") || parts.len() != store.len() + 1 || parts[..store.len()] != *store {
        return None;
    }
    let base = parts[store.len()];
    reference_is_item_name(base).then(|| format!("/{}/{base}", store.join("/")))
}

/// Decodes Nix base32 (the inverse of the encoding as Nix defines it: the
/// character for 5-bit group n, counted from the least significant end, is
/// written at position len-1-n).
fn nix_base32_decode(s: &str, bytes: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; bytes];
    for (pos, c) in s.bytes().enumerate() {
        let digit = NIX_BASE32.iter().position(|&d| d == c)? as u16;
        let n = s.len() - 1 - pos;
        let bit = n * 5;
        let (i, j) = (bit / 8, bit % 8);
        let spread = digit << j;
        out[i] |= spread as u8;
        if i + 1 < bytes {
            out[i + 1] |= (spread >> 8) as u8;
        } else if spread >> 8 != 0 {
            return None;
        }
    }
    Some(out)
}

fn gnu_store() -> StoreDir {
    StoreDir::new(Path::new("/gnu/store")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_item_names_are_accepted(hash in hash_part(), name in item_name()) {
        let base = format!("{hash}-{name}");
        prop_assert!(StoreDir::is_item_name(&base), "{}", base);
        let item = gnu_store().parse_item(Path::new(&format!("/gnu/store/{base}"))).unwrap();
        prop_assert_eq!(item.hash(), hash.as_str());
        prop_assert_eq!(item.name(), name.as_str());
        prop_assert_eq!(item.base_name(), base.as_str());
        // `.` components, repeated and trailing slashes name the same item.
        let same = gnu_store().parse_item(Path::new(&format!("//gnu/./store///{base}/./"))).unwrap();
        prop_assert_eq!(same, item);
    }

    #[test]
    fn every_class_of_invalid_name_is_refused((base, why) in invalid_base_name()) {
        prop_assert!(!StoreDir::is_item_name(&base), "{:?} ({}) accepted", base, why);
        prop_assert!(!reference_is_item_name(&base), "the reference accepts {:?}", base);
        let path = format!("/gnu/store/{base}");
        let err = gnu_store().parse_item(Path::new(&path)).unwrap_err();
        prop_assert_eq!(err.kind, ErrorKind::InvalidStorePath);
        prop_assert!(err.message.contains(&Path::new(&path).display().to_string()), "{}", err.message);
        prop_assert!(gnu_store().item(std::ffi::OsStr::new(&base)).is_none());
    }

    #[test]
    fn item_names_agree_with_the_rule(base in prop_oneof![".{0,50}", "[0-9a-z]{30,34}-?[a-zA-Z0-9+._?= -]{0,5}"]) {
        prop_assert_eq!(StoreDir::is_item_name(&base), reference_is_item_name(&base), "{:?}", base);
    }

    /// Random paths never panic; accepted exactly when the rules say so,
    /// as the normalised item; a refusal names the path.
    #[test]
    fn store_paths_agree_with_the_rules(path in path_like()) {
        let expected = reference_parse_item(&["gnu", "store"], &path);
        match gnu_store().parse_item(Path::new(&path)) {
            Ok(item) => prop_assert_eq!(Some(item.path), expected.map(PathBuf::from), "{:?}", path),
            Err(err) => {
                prop_assert!(expected.is_none(), "{:?} refused: {}", path, err.message);
                prop_assert_eq!(err.kind, ErrorKind::InvalidStorePath);
                prop_assert!(err.message.contains(&format!("'{path}'")), "{}", err.message);
            }
        }
    }

    /// A store directory is accepted when absolute, without `..`, and not
    /// the root; it comes back normalised, and items under it parse.
    #[test]
    fn store_directories_agree_with_the_rules(dir in path_like(), hash in hash_part(), name in item_name()) {
        let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        let valid = dir.starts_with('/') && !parts.contains(&"..") && !parts.is_empty();
        match StoreDir::new(Path::new(&dir)) {
            Ok(store) => {
                prop_assert!(valid, "{:?} accepted", dir);
                let normal = format!("/{}", parts.join("/"));
                prop_assert_eq!(store.path(), Path::new(&normal));
                let item = format!("{dir}/{hash}-{name}");
                let parsed = store.parse_item(Path::new(&item));
                prop_assert_eq!(parsed.map(|i| i.path).ok(), reference_parse_item(&parts, &item).map(PathBuf::from));
            }
            Err(err) => {
                prop_assert!(!valid, "{:?} refused: {}", dir, err.message);
                prop_assert_eq!(err.kind, ErrorKind::InvalidStorePath);
                prop_assert!(err.message.contains(&format!("'{dir}'")), "{}", err.message);
            }
        }
    }

    /// Nix base32 round-trips through an independent decoder; 20 bytes
    /// give a hash part that store paths accept.
    #[test]
    fn nix_base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let encoded = nix_base32_encode(&bytes);
        prop_assert_eq!(encoded.len(), (bytes.len() * 8).div_ceil(5));
        prop_assert_eq!(nix_base32_decode(&encoded, bytes.len()), Some(bytes.clone()));
        if bytes.len() == 20 {
            let base = format!("{encoded}-x");
            prop_assert!(StoreDir::is_item_name(&base), "{}", base);
        }
    }
}

// ---------------------------------------------------------------------
// ImageOptions setters: random values never panic; each is accepted (and
// then found in the options, as given or normalised) or refused with an
// InvalidArgument error whose message names the option and the value.
// ---------------------------------------------------------------------

/// Values with the characters options care about: '/', '=', ':', digits,
/// NUL, spaces, non-ASCII.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,12}",
        "[/=:a-z0-9 \u{0}é.-]{0,12}",
        "/[a-z/.]{0,10}",
        "[+-]?[0-9]{1,6}(/(tcp|udp|sctp|icmp|TCP))?",
    ]
}

fn refused(err: &guix_docker_native::Error, option: &str, value: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(err.kind, ErrorKind::InvalidArgument, "{}", err.message);
    prop_assert!(err.message.contains(option), "{:?} does not name {}", err.message, option);
    prop_assert!(err.message.contains(value), "{:?} does not name {:?}", err.message, value);
    Ok(())
}

/// Docker's port syntax: a decimal number 1..65535 without sign or
/// leading zero, optionally with a protocol.
fn reference_port(port: &str) -> Option<String> {
    let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
    let digits_ok = !number.is_empty() && number.len() <= 5 && number.bytes().all(|b| b.is_ascii_digit()) && !number.starts_with('0');
    let in_range = digits_ok && number.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
    (in_range && ["tcp", "udp", "sctp"].contains(&proto)).then(|| format!("{number}/{proto}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn string_setters_accept_or_name_the_option(v in value(), w in value()) {
        let mut o = ImageOptions::new();
        let has_nul = v.contains('\0');
        let absolute = v.starts_with('/');

        match o.set_entry_point(&v) {
            Ok(()) => { prop_assert!(!v.is_empty() && !has_nul); prop_assert_eq!(o.entry_point(), &[v.clone()][..]); }
            Err(e) => { prop_assert!(v.is_empty() || has_nul); refused(&e, "entry point", &v)?; }
        }
        let mut with_program = ImageOptions::new();
        with_program.set_entry_point("bin/x").unwrap();
        match with_program.add_entry_point_argument(&v) {
            Ok(()) => { prop_assert!(!has_nul); prop_assert_eq!(with_program.entry_point().last(), Some(&v)); }
            Err(e) => { prop_assert!(has_nul); refused(&e, "entry point argument", &v)?; }
        }
        match ImageOptions::new().add_entry_point_argument(&v) {
            Ok(()) => prop_assert!(false, "an argument without an entry point was accepted"),
            Err(e) => refused(&e, "entry point argument", &v)?,
        }
        match o.add_cmd(&v) {
            Ok(()) => { prop_assert!(!has_nul); prop_assert_eq!(o.cmd().last(), Some(&v)); }
            Err(e) => { prop_assert!(has_nul); refused(&e, "command argument", &v)?; }
        }
        let env_ok = !has_nul && v.split_once('=').is_some_and(|(n, _)| !n.is_empty());
        match o.add_env(&v) {
            Ok(()) => { prop_assert!(env_ok); prop_assert_eq!(o.env().last(), Some(&v)); }
            Err(e) => { prop_assert!(!env_ok); refused(&e, "environment variable", &v)?; }
        }
        match o.set_working_dir(&v) {
            Ok(()) => { prop_assert!(absolute && !has_nul); prop_assert_eq!(o.working_dir(), Some(v.as_str())); }
            Err(e) => { prop_assert!(!absolute || has_nul); refused(&e, "working directory", &v)?; }
        }
        match o.set_user(&v) {
            Ok(()) => { prop_assert!(!v.is_empty() && !has_nul); prop_assert_eq!(o.user(), Some(v.as_str())); }
            Err(e) => { prop_assert!(v.is_empty() || has_nul); refused(&e, "user", &v)?; }
        }
        match o.add_label(&v, &w) {
            Ok(()) => { prop_assert!(!v.is_empty() && !has_nul && !w.contains('\0')); prop_assert_eq!(o.labels().get(&v), Some(&w)); }
            Err(e) => {
                prop_assert!(v.is_empty() || has_nul || w.contains('\0'));
                refused(&e, "label", if v.is_empty() || has_nul { &v } else { &w })?;
            }
        }
        match o.add_volume(&v) {
            Ok(()) => { prop_assert!(absolute && !has_nul); prop_assert!(o.volumes().contains(&v)); }
            Err(e) => { prop_assert!(!absolute || has_nul); refused(&e, "volume", &v)?; }
        }
        let symlink_ok = absolute && v != "/" && !has_nul && !w.is_empty() && !w.contains('\0');
        match o.add_symlink(&v, &w) {
            Ok(()) => {
                prop_assert!(symlink_ok);
                let last = o.symlinks().last().unwrap();
                prop_assert_eq!((&last.link, &last.target), (&v, &w));
            }
            Err(e) => { prop_assert!(!symlink_ok); refused(&e, "symlink", if !absolute || has_nul || !w.contains('\0') { &v } else { &w })?; }
        }
        match o.add_directory(&v, 0, 0, 0o755) {
            Ok(()) => { prop_assert!(absolute && !has_nul); prop_assert_eq!(&o.directories().last().unwrap().path, &v); }
            Err(e) => { prop_assert!(!absolute || has_nul); refused(&e, "directory", &v)?; }
        }
    }

    #[test]
    fn exposed_ports_follow_docker_syntax(port in value()) {
        let mut o = ImageOptions::new();
        match o.add_exposed_port(&port) {
            Ok(()) => {
                let expected = reference_port(&port);
                prop_assert!(expected.is_some(), "{:?} accepted as {:?}", port, o.exposed_ports());
                prop_assert!(o.exposed_ports().contains(&expected.unwrap()));
            }
            Err(e) => {
                prop_assert!(reference_port(&port).is_none(), "{:?} refused", port);
                refused(&e, "exposed port", &port)?;
            }
        }
    }

    #[test]
    fn numeric_setters_check_their_ranges(seconds in prop_oneof![any::<i64>(), CREATION_TIME_RANGE, -62_167_219_300i64..-62_167_219_100, 253_402_300_700i64..253_402_300_900],
                                          threads in prop_oneof![any::<usize>(), 0..2000usize],
                                          layers in prop_oneof![any::<u32>(), 0..200u32],
                                          level in prop_oneof![any::<i32>(), -2..25i32],
                                          mode in prop_oneof![any::<u32>(), 0..0o20000u32]) {
        let mut o = ImageOptions::new();
        match o.set_creation_time(seconds) {
            Ok(()) => { prop_assert!(CREATION_TIME_RANGE.contains(&seconds)); prop_assert_eq!(o.creation_time(), Some(seconds)); }
            Err(e) => { prop_assert!(!CREATION_TIME_RANGE.contains(&seconds)); refused(&e, "creation time", &seconds.to_string())?; }
        }
        match o.set_threads(threads) {
            Ok(()) => { prop_assert!(threads <= MAX_THREADS); prop_assert_eq!(o.threads(), threads); }
            Err(e) => { prop_assert!(threads > MAX_THREADS); refused(&e, "threads", &threads.to_string())?; }
        }
        match o.set_max_layers(layers) {
            Ok(()) => { prop_assert!((1..=MAX_LAYERS_LIMIT).contains(&layers)); prop_assert_eq!(o.max_layers(), Some(layers)); }
            Err(e) => { prop_assert!(!(1..=MAX_LAYERS_LIMIT).contains(&layers)); refused(&e, "max-layers", &layers.to_string())?; }
        }
        for (compression, range) in [(Compression::None, None), (Compression::Gzip, Some(1..=9)), (Compression::Zstd, Some(1..=19))] {
            let mut o = ImageOptions::new();
            match o.set_compression(compression, Some(level)) {
                Ok(()) => {
                    prop_assert!(range.as_ref().is_some_and(|r| r.contains(&level)));
                    prop_assert_eq!((o.compression(), o.effective_compression_level()), (compression, level));
                }
                Err(e) => {
                    prop_assert!(!range.as_ref().is_some_and(|r| r.contains(&level)));
                    refused(&e, "compression level", &level.to_string())?;
                    prop_assert_eq!(o.compression(), Compression::None, "a refused value changed the options");
                }
            }
        }
        match o.add_directory("/d", 0, 0, mode) {
            Ok(()) => { prop_assert!(mode <= 0o7777); prop_assert_eq!(o.directories().last().unwrap().mode, mode); }
            Err(e) => { prop_assert!(mode > 0o7777); refused(&e, "directory", "/d")?; }
        }
    }

    #[test]
    fn names_of_compressions_and_systems(name in prop_oneof![".{0,10}", "(none|gzip|zstd|xz|GZIP)", "(x86_64|i686|i386|armhf|aarch64|mips64el|riscv64|sparc|arm|)(-linux(-gnu)?)?"]) {
        match Compression::parse(&name) {
            Ok(c) => prop_assert_eq!(Some(c), match name.as_str() { "none" => Some(Compression::None), "gzip" => Some(Compression::Gzip), "zstd" => Some(Compression::Zstd), _ => None }),
            Err(e) => { prop_assert!(!["none", "gzip", "zstd"].contains(&name.as_str())); refused(&e, "compression", &name)?; }
        }
        let cpu = name.split('-').next().unwrap();
        let expected = match cpu {
            "x86_64" => Some("amd64"),
            "i686" | "i586" | "i486" | "i386" | "x86" => Some("386"),
            "aarch64" => Some("arm64"),
            "mips64el" | "mips64" => Some("mips64le"),
            "riscv64" => Some("riscv64"),
            _ if cpu.starts_with("arm") => Some("arm"),
            _ => None,
        };
        let mut o = ImageOptions::new();
        let before = o.architecture().to_string();
        match o.set_system(&name) {
            Ok(()) => prop_assert_eq!(Some(o.architecture()), expected),
            Err(e) => {
                prop_assert!(expected.is_none());
                refused(&e, "system", &name)?;
                prop_assert_eq!(o.architecture(), before);
            }
        }
    }

    #[test]
    fn tags_added_are_validated_and_deduplicated(tags in proptest::collection::vec(reference_like(), 0..5)) {
        let mut o = ImageOptions::new();
        let mut expected: Vec<String> = Vec::new();
        for tag in &tags {
            match (o.add_tag(tag), validate_tag(tag)) {
                (Ok(()), Ok(full)) => if !expected.contains(&full) { expected.push(full) },
                (Err(e), Err(_)) => refused(&e, "tag", tag)?,
                (a, b) => prop_assert!(false, "add_tag and validate_tag disagree on {:?}: {:?} {:?}", tag, a.err(), b.err()),
            }
        }
        prop_assert_eq!(o.tags(), expected);
    }

    #[test]
    fn store_dir_database_and_transformations(v in value(), w in value()) {
        let mut o = ImageOptions::new();
        match o.set_store_dir(Path::new(&v)) {
            Ok(()) => { prop_assert!(v.starts_with('/')); prop_assert_eq!(o.store_dir(), Path::new(&v)); }
            Err(e) => { prop_assert!(!v.starts_with('/')); refused(&e, "store directory", &v)?; }
        }
        match o.set_database(Path::new(&v)) {
            Ok(()) => { prop_assert!(!v.is_empty()); prop_assert_eq!(o.database(), Some(Path::new(&v))); }
            Err(e) => { prop_assert!(v.is_empty()); refused(&e, "database", &v)?; }
        }
        let ok = v.starts_with('/') && w.starts_with('/');
        match o.add_transformation(&v, &w) {
            Ok(()) => {
                prop_assert!(ok);
                let (old, new) = o.transformations().last().unwrap();
                prop_assert_eq!((old.as_str(), new.as_str()), (v.trim_end_matches('/'), w.trim_end_matches('/')));
            }
            Err(e) => { prop_assert!(!ok); refused(&e, "transformation", if v.starts_with('/') { &w } else { &v })?; }
        }
    }
}
