//! A store item's name split into a package name and version, as Guix's
//! `package-name->name+version` splits it: the version starts at the
//! first `-` that a digit follows (`gcc-toolchain-13.2.0` is
//! `gcc-toolchain` and `13.2.0`; `foo-1.2-bar-3` is `foo` and
//! `1.2-bar-3`); without such a `-` (`profile`, `foo-`) there is no
//! version.  A `-` at the very start counts too (`-1` is `` and `1`), as
//! in Guix.

/// `(name, version)` of a store item's name (the part after the hash).
pub fn name_and_version(name: &str) -> (&str, Option<&str>) {
    let bytes = name.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            return (&name[..i], Some(&name[i + 1..]));
        }
    }
    (name, None)
}

#[cfg(test)]
mod tests {
    use super::name_and_version;

    #[test]
    fn the_version_starts_at_the_first_dash_before_a_digit() {
        assert_eq!(name_and_version("hello-2.12.1"), ("hello", Some("2.12.1")));
        assert_eq!(name_and_version("gcc-toolchain-13.2.0"), ("gcc-toolchain", Some("13.2.0")));
        assert_eq!(name_and_version("foo-1.2-bar-3"), ("foo", Some("1.2-bar-3")));
        assert_eq!(name_and_version("python-3-x"), ("python", Some("3-x")));
        assert_eq!(name_and_version("glibc-sample-2.39"), ("glibc-sample", Some("2.39")));
        assert_eq!(name_and_version("openssl-1.1.1w-doc"), ("openssl", Some("1.1.1w-doc")));
    }

    #[test]
    fn names_without_a_version() {
        assert_eq!(name_and_version("profile"), ("profile", None));
        assert_eq!(name_and_version("foo-"), ("foo-", None));
        assert_eq!(name_and_version("foo-bar"), ("foo-bar", None));
        assert_eq!(name_and_version("x86_64"), ("x86_64", None));
        assert_eq!(name_and_version(""), ("", None));
    }

    #[test]
    fn a_leading_dash_starts_the_version_as_in_guix() {
        assert_eq!(name_and_version("-1"), ("", Some("1")));
        assert_eq!(name_and_version("a-1b-2"), ("a", Some("1b-2")));
    }
}
