//! The names of a Guix profile's packages, from its `manifest` file.
//!
//! A profile's `manifest` is an s-expression:
//!
//! ```text
//! (manifest
//!   (version 4)
//!   (packages (("hello" "2.12.1" "out" "/gnu/store/...-hello-2.12.1"
//!               (propagated-inputs (...))
//!               (search-paths (...))
//!               ...)
//!              ...)))
//! ```
//!
//! (versions 3 and 4 have this shape).  Only the entries' names are read;
//! anything else in the file is skipped.  A file that does not have this
//! shape is not a profile's manifest: [`entry_names`] says so with `None`,
//! and the caller names the image as it would any other item.

use std::io::Read;
use std::path::Path;

/// Manifests larger than this are not read (a profile of thousands of
/// packages has a manifest of a few MiB).
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// Lists nested deeper than this are refused (a manifest nests a few
/// levels per propagated input).
const MAX_DEPTH: usize = 512;

/// The manifest versions whose entries are `(NAME VERSION OUTPUT PATH ...)`.
const VERSIONS: [i64; 2] = [3, 4];

/// An s-expression, as much of one as a manifest needs.
#[derive(Debug, Clone, PartialEq)]
enum Sexp {
    List(Vec<Sexp>),
    String(String),
    /// A symbol, number, boolean or anything else that is not a string.
    Atom(String),
}

/// The names of the top-level entries of the profile `profile`'s manifest,
/// in order, or `None` when `profile/manifest` is missing, unreadable or
/// not a version 3 or 4 manifest.
pub fn entry_names(profile: &Path) -> Option<Vec<String>> {
    let file = std::fs::File::open(profile.join("manifest")).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES + 1).read_to_string(&mut text).ok()?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return None;
    }
    names_in(&text)
}

/// The entries' names of the manifest `text`.
fn names_in(text: &str) -> Option<Vec<String>> {
    let Sexp::List(top) = Reader::new(text).read_top()? else { return None };
    let (head, fields) = top.split_first()?;
    if *head != Sexp::Atom("manifest".into()) {
        return None;
    }
    let field = |name: &str| {
        fields.iter().find_map(|f| match f {
            Sexp::List(items) if items.first() == Some(&Sexp::Atom(name.into())) => Some(&items[1..]),
            _ => None,
        })
    };
    let version = match field("version")? {
        [Sexp::Atom(v)] => v.parse::<i64>().ok()?,
        _ => return None,
    };
    if !VERSIONS.contains(&version) {
        return None;
    }
    let [Sexp::List(entries)] = field("packages")? else { return None };
    entries
        .iter()
        .map(|entry| match entry {
            Sexp::List(parts) => match parts.first() {
                Some(Sexp::String(name)) => Some(name.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A reader of the s-expression syntax Guile writes: lists, strings with
/// backslash escapes, atoms, `;` comments.
struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader { chars: text.chars().peekable() }
    }

    /// The one expression `text` holds (nothing but blanks after it).
    fn read_top(&mut self) -> Option<Sexp> {
        let sexp = self.read(0)?;
        self.skip_blanks();
        self.chars.peek().is_none().then_some(sexp)
    }

    fn skip_blanks(&mut self) {
        while let Some(&c) = self.chars.peek() {
            if c == ';' {
                while self.chars.next().is_some_and(|c| c != '\n') {}
            } else if c.is_whitespace() {
                self.chars.next();
            } else {
                break;
            }
        }
    }

    fn read(&mut self, depth: usize) -> Option<Sexp> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_blanks();
        match self.chars.next()? {
            '(' => {
                let mut items = Vec::new();
                loop {
                    self.skip_blanks();
                    if self.chars.peek() == Some(&')') {
                        self.chars.next();
                        return Some(Sexp::List(items));
                    }
                    items.push(self.read(depth + 1)?);
                }
            }
            ')' => None,
            '"' => self.read_string().map(Sexp::String),
            first => {
                let mut atom = String::from(first);
                while let Some(&c) = self.chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '"' | ';') {
                        break;
                    }
                    atom.push(c);
                    self.chars.next();
                }
                Some(Sexp::Atom(atom))
            }
        }
    }

    /// The rest of a string whose opening quote was read.
    fn read_string(&mut self) -> Option<String> {
        let mut s = String::new();
        loop {
            match self.chars.next()? {
                '"' => return Some(s),
                '\\' => match self.chars.next()? {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'a' => s.push('\u{7}'),
                    '0' => s.push('\0'),
                    // \xHH; (R7RS, as Guile writes non-printing characters).
                    'x' => {
                        let mut hex = String::new();
                        loop {
                            match self.chars.next()? {
                                ';' => break,
                                c if c.is_ascii_hexdigit() && hex.len() < 8 => hex.push(c),
                                _ => return None,
                            }
                        }
                        s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    // A line continuation.
                    '\n' => {
                        while self.chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                            self.chars.next();
                        }
                    }
                    other => s.push(other),
                },
                c => s.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_version_3_and_4_manifests() {
        let v4 = r#"(manifest
  (version 4)
  (packages
    (("hello" "2.12.1" "out" "/gnu/store/aaaa-hello-2.12.1"
      (propagated-inputs ())
      (search-paths ())
      (properties (provenance (repository (version 0) (url "https://git.savannah.gnu.org/git/guix.git")))))
     ("guile" "3.0.9" "out" "/gnu/store/bbbb-guile-3.0.9"
      (propagated-inputs
        (("guile-json" "4.7" "out" "/gnu/store/cccc-guile-json-4.7" (propagated-inputs ()) (search-paths ()))))
      (search-paths (("GUILE_LOAD_PATH" ("share/guile/site/3.0") ":" directory #f)))))))
"#;
        assert_eq!(names_in(v4).unwrap(), ["hello", "guile"]);
        let v3 = "; a comment\n(manifest (version 3) (packages ((\"a \\\"quoted\\\" name\\x41;\" \"1\" \"out\" \"/gnu/store/x-a\" (propagated-inputs ()) (search-paths ())))))";
        assert_eq!(names_in(v3).unwrap(), ["a \"quoted\" nameA"]);
        assert_eq!(names_in("(manifest (version 4) (packages ()))").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn anything_else_is_not_a_manifest() {
        for text in [
            "",
            "hello",
            "(manifest (version 2) (packages ()))",
            "(manifest (version 4))",
            "(manifest (version 4) (packages ((hello \"1\"))))",
            "(manifest (version 4) (packages ()))) extra",
            "(manifest (version 4) (packages ((\"unterminated",
            "(profile (version 4) (packages ()))",
            &"(".repeat(10_000),
        ] {
            assert_eq!(names_in(text), None, "{text:.60}");
        }
    }

    #[test]
    fn a_directory_without_a_manifest_has_no_names() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(entry_names(dir.path()), None);
        std::fs::write(dir.path().join("manifest"), "(manifest (version 4) (packages ((\"x\" \"1\" \"out\" \"/p\"))))").unwrap();
        assert_eq!(entry_names(dir.path()).unwrap(), ["x"]);
    }
}
