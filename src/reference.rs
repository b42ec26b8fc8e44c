//! Image references (`name:tag`) in the Docker reference grammar.

use crate::error::{Error, Result};
use crate::manifest;
use crate::store::StoreItem;

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
pub(crate) fn valid_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__' or one or more '-'.
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry host, optionally with a port.
pub(crate) fn valid_domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (s, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        let inner = &host[1..host.len() - 1];
        return !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_hexdigit() || c == b':');
    }
    !host.is_empty()
        && host.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// `[\w][\w.-]{0,127}`
pub(crate) fn valid_tag_part(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty() && b.len() <= 128 && word(b[0]) && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// Splits `reference` into its name and tag.  The tag is after the last
/// ':' that follows the last '/': a ':' before it is a registry's port
/// (`localhost:5000/app`).
pub(crate) fn split_tag(reference: &str) -> (&str, Option<&str>) {
    let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    match reference[last_slash..].rfind(':') {
        Some(i) => (&reference[..last_slash + i], Some(&reference[last_slash + i + 1..])),
        None => (reference, None),
    }
}

/// Checks `reference` (`name` or `name:tag`) and returns it as `name:tag`,
/// adding `:latest` when the tag is missing.
pub fn validate_tag(reference: &str) -> Result<String> {
    let bad = |why: &str| Error::invalid_argument(format!("tag '{reference}': {why}"));
    if reference.contains('@') {
        return Err(bad("digests cannot name an image being built"));
    }
    let (name, tag) = split_tag(reference);
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    if name.len() > 255 {
        return Err(bad("name longer than 255 characters"));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    if components.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost") {
        if !valid_domain(first) {
            return Err(bad(&format!("'{first}' is not a valid registry host")));
        }
        components.remove(0);
    }
    for c in &components {
        if c.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository names must be lowercase"));
        }
        if !valid_path_component(c) {
            return Err(bad(&format!(
                "'{c}' is not a valid name component (lowercase letters, digits, and '.', '_', '__' or '-' between them)"
            )));
        }
    }
    let tag = tag.unwrap_or("latest");
    if !valid_tag_part(tag) {
        return Err(bad(&format!(
            "'{tag}' is not a valid tag (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')"
        )));
    }
    Ok(format!("{name}:{tag}"))
}

/// The repository Guix derives from a name: lowercased, with every
/// character outside `[a-z0-9._-]` mapped to `.`; separator runs the
/// grammar forbids become one `.`, and separators at either end go.
pub fn repository_from_name(name: &str) -> String {
    let mapped: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' { c } else { '.' })
        .collect();
    let is_sep = |c: char| c == '.' || c == '_' || c == '-';
    let mut out = String::new();
    let mut run = String::new();
    for c in mapped.chars() {
        if is_sep(c) {
            run.push(c);
            continue;
        }
        if !run.is_empty() && !out.is_empty() {
            let valid = run == "." || run == "_" || run == "__" || run.chars().all(|c| c == '-');
            out.push_str(if valid { &run } else { "." });
        }
        run.clear();
        out.push(c);
    }
    if out.is_empty() {
        "image".to_string()
    } else {
        out
    }
}

/// The name `guix pack` gives the image of a profile: the names of its
/// manifest's entries joined with `-`, dropping entries from the end while
/// the result is 40 characters or more (one entry's name is kept whatever
/// its length).
pub fn friendly_name(names: &[String]) -> String {
    let mut count = names.len();
    loop {
        let joined = names[..count].join("-");
        if joined.chars().count() < 40 || count <= 1 {
            return joined;
        }
        count -= 1;
    }
}

/// The repository the image of `item` is named after when no tag is given,
/// as `guix pack` names it: for a profile (an item with a manifest listing
/// packages), [`friendly_name`] of its entries; for anything else, the
/// item's name.  Either way mapped to a valid repository by
/// [`repository_from_name`].
pub fn default_repository(item: &StoreItem) -> String {
    match manifest::entry_names(&item.path) {
        Some(names) if !names.is_empty() => repository_from_name(&friendly_name(&names)),
        _ => repository_from_name(item.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_follows_the_last_colon_after_the_last_slash() {
        assert_eq!(split_tag("hello"), ("hello", None));
        assert_eq!(split_tag("hello:2.12"), ("hello", Some("2.12")));
        assert_eq!(split_tag("localhost:5000/guix/hello"), ("localhost:5000/guix/hello", None));
        assert_eq!(split_tag("localhost:5000/guix/hello:1"), ("localhost:5000/guix/hello", Some("1")));
        assert_eq!(split_tag("a:b:c"), ("a:b", Some("c")));
    }

    #[test]
    fn good_tags() {
        assert_eq!(validate_tag("hello").unwrap(), "hello:latest");
        assert_eq!(validate_tag("hello:2.12").unwrap(), "hello:2.12");
        assert_eq!(validate_tag("guix/hello-world:v1_0").unwrap(), "guix/hello-world:v1_0");
        assert_eq!(validate_tag("localhost:5000/a/b:c").unwrap(), "localhost:5000/a/b:c");
        assert_eq!(validate_tag("registry.example.org/x__y").unwrap(), "registry.example.org/x__y:latest");
    }

    #[test]
    fn bad_tags() {
        for bad in ["Hello", "hello:", ":x", "a//b", "-a", "a-", "a..b", "hello:.x", "a@sha256:00", "a:b:c", "héllo"] {
            let err = validate_tag(bad).unwrap_err();
            assert!(err.message.contains(bad), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn repositories_from_names_are_valid() {
        for (name, repo) in [("hello-2.12", "hello-2.12"), ("Guile+GnuTLS", "guile.gnutls"), ("a..b", "a.b"), ("+++", "image"), ("x__y", "x__y"), ("-a-", "a")] {
            let r = repository_from_name(name);
            assert_eq!(r, repo, "{name}");
            validate_tag(&r).unwrap();
        }
    }

    #[test]
    fn friendly_names_drop_entries_from_the_end() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(friendly_name(&names(&["hello"])), "hello");
        assert_eq!(friendly_name(&names(&["guile", "guile-json", "hello"])), "guile-guile-json-hello");
        // 39 characters stay; 40 do not.
        let a = "a".repeat(19);
        assert_eq!(friendly_name(&names(&[&a, &a, "b"])), format!("{a}-{a}"));
        assert_eq!(friendly_name(&names(&[&a, &"b".repeat(20), "c"])), a);
        // One name of 40 characters or more is kept as it is.
        let long = "x".repeat(45);
        assert_eq!(friendly_name(&names(&[&long, "y"])), long);
        assert_eq!(friendly_name(&[]), "");
    }

    #[test]
    fn profiles_are_named_after_their_packages() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::StoreDir::new(dir.path()).unwrap();
        let profile = dir.path().join("00000000000000000000000000000000-profile");
        std::fs::create_dir(&profile).unwrap();
        let item = store.parse_item(&profile).unwrap();
        assert_eq!(default_repository(&item), "profile", "no manifest: the item's name");
        let entry = |name: &str| format!("(\"{name}\" \"1.0\" \"out\" \"/gnu/store/x-{name}\" (propagated-inputs ()) (search-paths ()))");
        let write = |names: &[&str]| {
            let entries: Vec<String> = names.iter().map(|n| entry(n)).collect();
            std::fs::write(profile.join("manifest"), format!("(manifest (version 3) (packages ({})))", entries.join(" "))).unwrap();
        };
        write(&["GNU-Hello"]);
        assert_eq!(default_repository(&item), "gnu-hello");
        write(&["coreutils", "findutils", "grep", "sed", "gawk", "tar", "diffutils"]);
        assert_eq!(default_repository(&item), "coreutils-findutils-grep-sed-gawk-tar", "47 characters with diffutils");
        write(&[]);
        assert_eq!(default_repository(&item), "profile", "no entries: the item's name");
        std::fs::write(profile.join("manifest"), "not a manifest").unwrap();
        assert_eq!(default_repository(&item), "profile");
    }
}
